// Charts: every element with data-option names a <script type="application/json"> holding an
// ECharts option built by the server. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";

  // htmx drops every <script> of a fragment it swaps in (allowScriptTags: false), the options'
  // JSON scripts too: they are read from the response before the swap and kept here by id.
  var swappedOptions = {};

  function keepSwappedOptions(event) {
    var text = event.detail.serverResponse;
    if (typeof text !== "string" || text.indexOf("application/json") < 0) return;
    var parsed = new DOMParser().parseFromString(text, "text/html");
    parsed.querySelectorAll('script[type="application/json"]').forEach(function (script) {
      if (script.id) swappedOptions[script.id] = script.textContent;
    });
  }

  function optionText(id) {
    var source = document.getElementById(id);
    return source ? source.textContent : swappedOptions[id];
  }

  function initCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-option]").forEach(function (element) {
      var text = optionText(element.dataset.option);
      if (!text) return;
      var existing = echarts.getInstanceByDom(element);
      if (existing) existing.dispose();
      var chart = echarts.init(element, null, { renderer: "svg" });
      chart.setOption(JSON.parse(text));
      var clickUrl = element.dataset.clickUrl;
      if (clickUrl) {
        chart.on("click", function (params) {
          // A data item may name its own target (`link`), or have none (`link: null`, e.g. a
          // Sankey flow); otherwise the item's name is the target.
          var data = params.data;
          var hasLink = data !== null && typeof data === "object" && "link" in data;
          var name = hasLink ? data.link : params.name;
          if (name) window.location.href = clickUrl.replace("{name}", encodeURIComponent(name));
        });
      }
      element.dataset.rendered = "true";
    });
  }

  function resizeCharts() {
    if (!window.echarts) return;
    document.querySelectorAll("[data-option]").forEach(function (element) {
      var chart = echarts.getInstanceByDom(element);
      if (chart) chart.resize();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initCharts(document);
    document.body.addEventListener("htmx:beforeSwap", keepSwappedOptions);
    document.body.addEventListener("htmx:afterSettle", function (event) {
      initCharts(event.target);
    });
  });
  window.addEventListener("resize", resizeCharts);
})();
