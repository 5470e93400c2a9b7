/* Live pages and trend charts. Device strings are set with textContent, never as HTML. */
(function () {
  "use strict";

  var POLL_MS = 4000;

  function fire(name) {
    if (window.htmx) {
      window.htmx.trigger(document.body, name);
    }
  }

  /* Job changes arrive as Server-Sent Events; the page's htmx fragments listen for
     "jobs-changed" and "devices-changed" on the body and fetch themselves again.
     Without EventSource, or when the stream keeps failing, poll instead. */
  function startLiveUpdates() {
    var url = document.body.getAttribute("data-events-url");
    if (!url) {
      return;
    }
    var pollTimer = null;
    function poll() {
      if (pollTimer) {
        return;
      }
      document.body.setAttribute("data-live", "polling");
      pollTimer = window.setInterval(function () {
        fire("jobs-changed");
        fire("devices-changed");
      }, POLL_MS);
    }
    if (!("EventSource" in window)) {
      poll();
      return;
    }
    var failures = 0;
    var source = new EventSource(url);
    source.addEventListener("open", function () {
      failures = 0;
      document.body.setAttribute("data-live", "events");
      // Changes made while (re)connecting were not streamed: catch up once.
      fire("jobs-changed");
      fire("devices-changed");
    });
    source.addEventListener("catch-up", function () {
      fire("jobs-changed");
      fire("devices-changed");
    });
    source.addEventListener("jobs", function (event) {
      var jobs;
      try {
        jobs = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      fire("jobs-changed");
      if (jobs.some(function (job) { return job.finished; })) {
        fire("devices-changed");
      }
    });
    source.addEventListener("error", function () {
      failures += 1;
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        poll();
      }
    });
  }

  function setText(id, text) {
    var element = id ? document.getElementById(id) : null;
    if (element) {
      element.textContent = text;
    }
  }

  /* The pages' one date-time format (2026-11-23 10:41:00), 24-hour, on the axis too:
     uPlot's tick table, [tick step, format, format at a new year, -, at a new month, -,
     at a new day, -, mode]. */
  var TIME_FORMAT = "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}";
  var TIME_TICKS = [
    [3600 * 24 * 365, "{YYYY}", null, null, null, null, null, null, 1],
    [3600 * 24 * 28, "{YYYY}-{MM}", null, null, null, null, null, null, 1],
    [3600 * 24, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
    [3600, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [60, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
    [1, "{HH}:{mm}:{ss}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1]
  ];

  /* Binary and multi-state points are drawn as steps between their named states. */
  function stateNamer(point) {
    var states = point.states || [];
    var first = point.first_state || 0;
    return function (value) {
      if (value === null || value === undefined) {
        return "--";
      }
      var name = states[Math.round(value) - first];
      return name === undefined ? String(value) : name;
    };
  }

  function describe(data, zone) {
    var text = data.t.length + " points, times in " + zone;
    if (data.bucket_seconds >= 1) {
      text += "; each the time-weighted average of up to " + Math.round(data.bucket_seconds) + " s";
      text += data.point.drawn_as === "steps"
        ? " (lowest and highest state in each)"
        : " (thin lines: minimum and maximum)";
    } else {
      text += "; each a reading as it was read";
    }
    var summary = data.summary || {};
    if (summary.time_average !== null && summary.time_average !== undefined && data.point.drawn_as !== "steps") {
      // Time-weighted: what the point was over the range, not the mean of its readings.
      var units = data.point.units ? " " + data.point.units : "";
      text += ". Over the range: time-weighted average " + String(+summary.time_average.toPrecision(6)) + units +
        ", minimum " + String(+summary.minimum.toPrecision(6)) + units +
        ", maximum " + String(+summary.maximum.toPrecision(6)) + units +
        " (" + summary.readings + " readings; a value holds until the next, at most " +
        Math.round(data.hold_seconds / 60) + " min)";
    }
    return text + "." + (data.note ? " " + data.note : "");
  }

  /* Raw readings are one series ("value" or "state"); buckets have an average with its
     minimum and maximum, or for states the lowest and highest state. */
  function chartSeries(data) {
    var point = data.point;
    var units = point.units ? " " + point.units : "";
    var stateful = point.drawn_as === "steps";
    var name = stateNamer(point);
    var shown = stateful ? function (u, v) { return name(v); }
      : function (u, v) { return v === null || v === undefined ? "--" : String(+v.toPrecision(6)) + units; };
    var steps = stateful ? window.uPlot.paths.stepped({ align: 1 }) : undefined;
    function line(label, stroke, width) {
      return { label: label, stroke: stroke, width: width, value: shown, paths: steps };
    }
    if (data.bucket_seconds < 1) {
      return { series: [line(stateful ? "state" : "value", "#1f6feb", 2)], values: [data.avg] };
    }
    if (stateful) {
      return {
        series: [line("lowest state", "#1f6feb", 2), line("highest state", "#8fb3e8", 1)],
        values: [data.min, data.max]
      };
    }
    return {
      series: [line("average", "#1f6feb", 2), line("minimum", "#8fb3e8", 1), line("maximum", "#8fb3e8", 1)],
      values: [data.avg, data.min, data.max]
    };
  }

  function yAxis(point) {
    if (point.drawn_as !== "steps" || !(point.states || []).length) {
      return {};
    }
    var first = point.first_state || 0;
    var last = first + point.states.length - 1;
    var name = stateNamer(point);
    return {
      size: 90,
      splits: function () {
        var splits = [];
        for (var v = first; v <= last; v++) {
          splits.push(v);
        }
        return splits;
      },
      values: function (u, splits) { return splits.map(name); }
    };
  }

  function drawChart(box) {
    var statusId = box.getAttribute("data-status");
    var zone = box.getAttribute("data-time-zone") || "UTC";
    fetch(box.getAttribute("data-url"), {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("the server answered " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        var point = data.point;
        setText(box.getAttribute("data-caption"), point.label + (point.units ? " (" + point.units + ")" : ""));
        box.setAttribute("data-points", String(data.t.length));
        box.setAttribute("data-chart-kind", point.drawn_as === "steps" ? "steps" : "lines");
        box.setAttribute("data-state-names", (point.states || []).join(","));
        if (!data.t.length) {
          setText(statusId, "No readings in this range.");
          box.classList.add("drawn");
          return;
        }
        var chosen = chartSeries(data);
        var first = point.first_state || 0;
        var options = {
          width: box.clientWidth || 800,
          height: 320,
          // Axis and legend in the site's zone (TIME_ZONE), not the browser's.
          tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1e3), zone); },
          scales: point.drawn_as === "steps" && (point.states || []).length
            ? { x: { time: true }, y: { range: [first - 0.3, first + point.states.length - 0.7] } }
            : { x: { time: true } },
          axes: [{ values: TIME_TICKS }, yAxis(point)],
          series: [{ label: "time (" + zone + ")", value: TIME_FORMAT }].concat(chosen.series)
        };
        var chart = new window.uPlot(options, [data.t].concat(chosen.values), box);
        window.addEventListener("resize", function () {
          chart.setSize({ width: box.clientWidth || 800, height: 320 });
        });
        box.classList.add("drawn");
        setText(statusId, describe(data, zone));
      })
      .catch(function (err) {
        setText(statusId, "The chart could not be loaded: " + err.message + ".");
      });
  }

  /* Editing the dates of the range form means a custom range. */
  function linkRangeInputs() {
    var form = document.getElementById("range-form");
    if (!form || !form.elements.range) {
      return;
    }
    ["start", "end"].forEach(function (name) {
      var input = form.elements[name];
      if (input) {
        input.addEventListener("change", function () {
          form.elements.range.value = "custom";
        });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    startLiveUpdates();
    linkRangeInputs();
    var charts = document.querySelectorAll(".chart[data-url]");
    Array.prototype.forEach.call(charts, drawChart);
  });
})();
