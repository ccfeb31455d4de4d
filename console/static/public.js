// quantrac public page: the 24-hour VN_AQI charts (uPlot, vendored), drawn from the page's own
// JSON feed. Loaded from /static under the console's CSP: no inline script.
"use strict";

(function () {
  const HOUR = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "Asia/Ho_Chi_Minh",
  });

  function draw(station, label) {
    const box = document.getElementById("chart-" + station.id);
    if (!box || typeof uPlot === "undefined") return;
    const xs = station.last_24h.map((h) => Date.parse(h.at) / 1000);
    const ys = station.last_24h.map((h) => h.aqi);
    const opts = {
      width: Math.max(260, box.clientWidth || 320),
      height: 160,
      legend: { show: false },
      scales: { y: { range: (u, lo, hi) => [0, Math.max(100, Math.ceil((hi || 0) / 50) * 50)] } },
      // hours in Vietnam's time (the stations' clock), 24-hour notation, whatever the reader's
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Asia/Ho_Chi_Minh"),
      axes: [{ values: (u, splits) => splits.map((ts) => HOUR.format(new Date(ts * 1000))) },
             { size: 40 }],
      series: [{}, { label: label, stroke: "#12324f", width: 2, points: { show: true, size: 4 } }],
    };
    box.textContent = "";
    new uPlot(opts, [xs, ys], box);
    box.dataset.points = String(xs.length);
  }

  function start() {
    const body = document.body;
    fetch(body.dataset.feed, { credentials: "omit" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then((feed) => {
        for (const s of feed.stations) if (s.kind === "ambient_air") draw(s, body.dataset.chartLabel);
        body.dataset.charts = "ready";
      })
      .catch((err) => {
        body.dataset.charts = "failed";
        console.warn("public page: charts unavailable", err);
      });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
