// The coordinator's dashboard in the browser: the plots (uPlot) drawn from the JSON that the
// server renders into #plot-json, redrawn when a server-sent event swaps it; and the live
// status line. Everything else is server-rendered HTML that htmx's SSE extension swaps in.
// No inline handlers, no eval, no request but to the coordinator itself.
(function () {
  "use strict";

  var PLOTS = [
    { id: "plot-settled", series: [{ label: "Jobs settled", key: "settled", stroke: "#0b3d91" }] },
    { id: "plot-gops", series: [{ label: "GOP/s", key: "gops", stroke: "#0a5c2b" }] },
    {
      id: "plot-failures",
      series: [
        { label: "Disputes opened", key: "disputes", stroke: "#b45309" },
        { label: "Slashings", key: "slashes", stroke: "#8a1111", dash: [6, 4] },
      ],
    },
  ];
  var drawn = {};
  var lastDrawn = null;

  function plotData() {
    var holder = document.getElementById("plot-json");
    if (!holder) {
      return null;
    }
    try {
      return JSON.parse(holder.textContent);
    } catch (err) {
      setStatus("The plots' data could not be read.");
      return null;
    }
  }

  function widthOf(element) {
    return Math.max(240, Math.floor(element.getBoundingClientRect().width) - 8);
  }

  function columns(data, spec) {
    var out = [data.t];
    spec.series.forEach(function (s) {
      out.push(data[s.key]);
    });
    return out;
  }

  function draw() {
    if (typeof window.uPlot !== "function") {
      return;
    }
    var data = plotData();
    if (!data) {
      return;
    }
    lastDrawn = document.getElementById("plot-json").textContent;
    PLOTS.forEach(function (spec) {
      var element = document.getElementById(spec.id);
      if (!element) {
        return;
      }
      var plot = drawn[spec.id];
      if (plot) {
        plot.setData(columns(data, spec));
        return;
      }
      // Axes in the page's own text colour (dark or light scheme alike).
      var ink = window.getComputedStyle(document.body).color;
      var axis = function () {
        var grid = { stroke: "rgba(128, 128, 128, 0.35)", width: 1 };
        return { stroke: ink, grid: grid, ticks: { stroke: grid.stroke, width: 1 } };
      };
      // Times in UTC, 24-hour, as the tables give them.
      var timeAxis = axis();
      timeAxis.values = function (u, splits) {
        return splits.map(function (t) {
          return new Date(t * 1000).toISOString().slice(11, 19);
        });
      };
      var series = [
        {
          label: "Time (UTC)",
          value: function (u, t) {
            return t == null ? "--" : new Date(t * 1000).toISOString().slice(11, 19);
          },
        },
      ];
      spec.series.forEach(function (s) {
        series.push({ label: s.label, stroke: s.stroke, width: 2, dash: s.dash });
      });
      drawn[spec.id] = new window.uPlot(
        {
          width: widthOf(element),
          height: 180,
          scales: { x: { time: true } },
          axes: [timeAxis, axis()],
          series: series,
          // No legend and no cursor: uPlot's legend toggles series by mouse only; the
          // captions name each line and its colour, and the numbers are in the tables.
          legend: { show: false },
          cursor: { show: false },
        },
        columns(data, spec),
        element
      );
    });
  }

  function resize() {
    PLOTS.forEach(function (spec) {
      var element = document.getElementById(spec.id);
      var plot = drawn[spec.id];
      if (element && plot) {
        plot.setSize({ width: widthOf(element), height: 180 });
      }
    });
  }

  function setStatus(text) {
    var status = document.getElementById("live-status");
    if (status && status.textContent !== text) {
      status.textContent = text;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    draw();
    var resizing = null;
    window.addEventListener("resize", function () {
      window.clearTimeout(resizing);
      resizing = window.setTimeout(resize, 150);
    });
    document.body.addEventListener("htmx:sseOpen", function () {
      setStatus("Read-only. Live: this page updates itself as the coordinator's state changes.");
    });
    document.body.addEventListener("htmx:sseMessage", function () {
      var last = document.getElementById("last-change");
      if (last) {
        last.textContent = "Last change shown at " + new Date().toLocaleTimeString() + ".";
      }
    });
    document.body.addEventListener("htmx:sseError", function () {
      setStatus("Live updates interrupted; reconnecting…");
    });
    // Any swap may have brought new plot data (an SSE swap settles on its target): redraw
    // when the JSON changed.
    document.body.addEventListener("htmx:afterSettle", function () {
      var holder = document.getElementById("plot-json");
      if (holder && holder.textContent !== lastDrawn) {
        draw();
      }
    });
  });
})();
