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

  function describe(data) {
    var text = data.t.length + " points";
    if (data.bucket_seconds >= 1) {
      text += ", each the average of up to " + Math.round(data.bucket_seconds) + " s of readings";
      text += " (thin lines: minimum and maximum)";
    }
    return text + ".";
  }

  function drawChart(box) {
    var statusId = box.getAttribute("data-status");
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
        setText(box.getAttribute("data-caption"), data.point.label + (data.point.units ? " (" + data.point.units + ")" : ""));
        box.setAttribute("data-points", String(data.t.length));
        if (!data.t.length) {
          setText(statusId, "No readings in this range.");
          box.classList.add("drawn");
          return;
        }
        var options = {
          width: box.clientWidth || 800,
          height: 320,
          scales: { x: { time: true } },
          series: [
            {},
            { label: "average", stroke: "#1f6feb", width: 2 },
            { label: "minimum", stroke: "#8fb3e8", width: 1 },
            { label: "maximum", stroke: "#8fb3e8", width: 1 }
          ]
        };
        var chart = new window.uPlot(options, [data.t, data.avg, data.min, data.max], box);
        window.addEventListener("resize", function () {
          chart.setSize({ width: box.clientWidth || 800, height: 320 });
        });
        box.classList.add("drawn");
        setText(statusId, describe(data));
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
