// Charts: every element with data-option names a <script type="application/json"> holding an
// ECharts option built by the server. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";

  function initCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-option]").forEach(function (element) {
      var source = document.getElementById(element.dataset.option);
      if (!source) return;
      var existing = echarts.getInstanceByDom(element);
      if (existing) existing.dispose();
      var chart = echarts.init(element, null, { renderer: "svg" });
      chart.setOption(JSON.parse(source.textContent));
      var clickUrl = element.dataset.clickUrl;
      if (clickUrl) {
        chart.on("click", function (params) {
          var name = params.data && params.data.link ? params.data.link : params.name;
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
    document.body.addEventListener("htmx:afterSettle", function (event) {
      initCharts(event.target);
    });
  });
  window.addEventListener("resize", resizeCharts);
})();
