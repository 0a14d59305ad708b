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

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // Tooltips the server names (`"formatter": "fn:<name>"`) instead of sending one HTML string
  // per point: thousands of points stay cheap to build and to send.
  var formatters = {
    "rfm-point": function (params) {
      var v = params.value;
      return "<strong>" + escapeHtml(params.name) + "</strong> · " + escapeHtml(params.seriesName) +
        "<br>last order " + v[0].toLocaleString("en", { maximumFractionDigits: 1 }) +
        " days ago<br>" + v[1].toLocaleString("en") + " orders · net spend " +
        v[2].toLocaleString("en", { maximumFractionDigits: 0 });
    },
  };

  function withFormatters(value) {
    if (Array.isArray(value)) return value.map(withFormatters);
    if (value === null || typeof value !== "object") return value;
    Object.keys(value).forEach(function (key) {
      var item = value[key];
      if (key === "formatter" && typeof item === "string" && item.indexOf("fn:") === 0) {
        value[key] = formatters[item.slice(3)];
      } else {
        value[key] = withFormatters(item);
      }
    });
    return value;
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
      chart.setOption(withFormatters(JSON.parse(text)));
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

// Forms: a drop zone hands a dropped file to its file input; a file over the form's limit is
// refused before it is sent; a form with data-busy says so on its button while it is sent.
(function () {
  "use strict";

  function tooLarge(input) {
    var limit = Number(input.dataset.maxBytes || 0);
    var file = input.files && input.files[0];
    return limit > 0 && file && file.size > limit;
  }

  function showProblem(zone, text) {
    var message = zone.querySelector("[data-dropzone-message]");
    if (!message) return;
    message.textContent = text;
    message.hidden = !text;
  }

  function checkSize(zone, input) {
    if (tooLarge(input)) {
      showProblem(zone, input.files[0].name + " is larger than the " + input.dataset.maxSize +
        " an upload may be. Compress it (gzip) or split it by date.");
      return false;
    }
    showProblem(zone, "");
    return true;
  }

  function initDropzone(zone) {
    var input = zone.querySelector("input[type=file]");
    var form = zone.closest("form");
    if (!input || !form) return;
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("over");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      input.files = event.dataTransfer.files;
      if (checkSize(zone, input)) form.requestSubmit();
    });
    input.addEventListener("change", function () { checkSize(zone, input); });
    form.addEventListener("submit", function (event) {
      if (!checkSize(zone, input)) event.preventDefault();
    });
  }

  function initBusy(form) {
    form.addEventListener("submit", function (event) {
      var button = event.submitter;
      // A button with its own formaction does something else than the form's busy label says.
      if (event.defaultPrevented || !button || button.hasAttribute("formaction")) return;
      button.dataset.label = button.textContent;
      button.textContent = form.dataset.busy;
      // Disabled after the submission took the button's value, not before.
      window.setTimeout(function () { button.disabled = true; }, 0);
    });
  }

  // Back to a page kept in the browser's cache: its buttons work again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-busy] button[data-label]").forEach(function (button) {
      button.textContent = button.dataset.label;
      button.disabled = false;
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-dropzone]").forEach(initDropzone);
    document.querySelectorAll("form[data-busy]").forEach(initBusy);
  });
})();

// Wide tables: a table wider than its box scrolls sideways; its box is marked `scrolls` so the
// stylesheet can say so, since a phone shows no scroll bar until the table is touched.
(function () {
  "use strict";

  function markScrollers() {
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      wrap.classList.toggle("scrolls", wrap.scrollWidth > wrap.clientWidth + 1);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    markScrollers();
    document.body.addEventListener("htmx:afterSettle", markScrollers);
  });
  window.addEventListener("resize", markScrollers);
})();
