// The dashboard's charts (gateway/admin/templates/admin/dashboard.html): uPlot over the JSON the page's
// own endpoint serves (/admin/dashboard/data, the same numbers as GET /v1/metrics). No inline code: the
// CSP allows scripts from /static only, and uPlot styles its elements through the CSSOM.
(function () {
  "use strict";
  var root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") { return; }
  var lang = root.dataset.lang || "en";
  var currency = root.dataset.currency || "USD";
  var palette = ["#1d4ed8", "#059669", "#d97706", "#dc2626", "#7c3aed", "#0891b2"];
  // Amounts are integer minor units; rates decimals (0.25 = 25 %); counts plain numbers.
  var money = new Intl.NumberFormat(lang, { style: "currency", currency: currency });
  var digits = money.resolvedOptions().maximumFractionDigits;
  var pct = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 });
  var kinds = { mrr: "money", movements: "money", arpa: "money", churn: "rate", retention: "rate",
                trials: "count", customers: "count", payments: "rate", recovery: "money" };
  function format(kind, v) {
    if (v === null || v === undefined) { return "—"; }
    if (kind === "money") { return money.format(v / Math.pow(10, digits)); }
    if (kind === "rate") { return pct.format(v); }
    return String(v);
  }
  function draw(box, name, chart) {
    var kind = kinds[name] || "count";
    var bars = name === "movements";
    var series = [{ value: function (u, t) { return t === null ? "—" : new Date(t * 1000).toISOString().slice(0, 7); } }];
    chart.series.forEach(function (label, i) {
      var s = { label: label, stroke: palette[i % palette.length], width: 2,
                value: function (u, v) { return format(kind, v); } };
      if (bars) { s.fill = palette[i % palette.length]; s.paths = uPlot.paths.bars({ size: [0.8, 40] }); }
      series.push(s);
    });
    var opts = {
      width: Math.max(280, box.clientWidth || 600), height: 240, series: series,
      axes: [{}, { size: 80, values: function (u, ticks) { return ticks.map(function (v) { return format(kind, v); }); } }],
      scales: { x: { time: true } }
    };
    box.dataset.drawn = "true";
    return new uPlot(opts, chart.data, box);
  }
  fetch(root.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { if (!r.ok) { throw new Error("dashboard data: " + r.status); } return r.json(); })
    .then(function (data) {
      root.querySelectorAll("[data-chart]").forEach(function (box) {
        var name = box.dataset.chart;
        if (data.charts[name]) { draw(box, name, data.charts[name]); }
      });
      root.dataset.ready = "true";
    });
})();
