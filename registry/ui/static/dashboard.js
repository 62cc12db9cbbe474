// promptreg dashboard: draws the charts of a feature's page from the JSON the page carries
// (the hourly table beside them is the same data, for readers without JavaScript), and
// draws them again when htmx swaps the live section in. No inline script: CSP allows this
// file, htmx and uPlot, all served by the package.
(function () {
  "use strict";

  var CHARTS = [
    { title: "Requests per hour", series: [["requests", "requests", "#2563eb"]] },
    { title: "Error rate, %", series: [["error_pct", "error %", "#dc2626"]] },
    { title: "Latency, ms", series: [["p50", "p50", "#0e7490"], ["p95", "p95", "#7c3aed"]] },
    { title: "Cost per hour, USD", series: [["cost", "cost", "#047857"]] },
    {
      title: "Input tokens per hour: real vs estimated",
      series: [["input_real", "real", "#c2410c"], ["input_estimated", "estimated", "#475569"]],
    },
  ];
  var HEIGHT = 170;
  var plots = [];

  function utc(seconds) {
    return uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
  }

  function drawBox(box) {
    var source = box.querySelector("script.chart-data");
    if (!source || box.dataset.drawn === "yes" || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    box.dataset.drawn = "yes";
    CHARTS.forEach(function (chart) {
      var figure = document.createElement("figure");
      var caption = document.createElement("figcaption");
      var area = document.createElement("div");
      caption.textContent = chart.title;
      area.className = "plot";
      area.setAttribute("aria-hidden", "true"); // the table below holds the same figures
      figure.appendChild(caption);
      figure.appendChild(area);
      box.appendChild(figure);
      var options = {
        width: Math.max(240, area.clientWidth),
        height: HEIGHT,
        tzDate: utc,
        scales: { x: { time: true } },
        axes: [{}, { size: 64 }],
        series: [{}].concat(
          chart.series.map(function (s) {
            return { label: s[1], stroke: s[2], width: 2 };
          })
        ),
      };
      var columns = [data.x].concat(
        chart.series.map(function (s) {
          return data[s[0]];
        })
      );
      plots.push({ plot: new uPlot(options, columns, area), area: area });
    });
    var table = box.nextElementSibling;
    if (table && table.matches("details.data")) table.open = false;
  }

  function drawAll() {
    plots = plots.filter(function (p) {
      return document.body.contains(p.area);
    });
    document.querySelectorAll("[data-charts]").forEach(drawBox);
  }

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      plots.forEach(function (p) {
        p.plot.setSize({ width: Math.max(240, p.area.clientWidth), height: HEIGHT });
      });
    }, 150);
  });
  document.addEventListener("DOMContentLoaded", drawAll);
  document.addEventListener("htmx:afterSettle", drawAll);
})();
