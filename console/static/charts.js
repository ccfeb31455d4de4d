// quantrac console charts: uPlot (vendored in /static/vendor/uplot, no CDN) drawing the JSON of
// /api/sources/{id}/chart and /api/violations/{id}/chart (console/chart_data.py).
// Each <figure class="qt-chart" data-src=…> becomes one chart: measured values as a line (gaps at
// flagged values and outages), the Savitzky–Golay smoothed line, the regulatory means as dots,
// QC-flagged values as separate points, one dashed line per limit. The y-axis always holds the
// data and the limits; hover shows the values in the legend below; drag zooms, double-click resets.
// No inline script or style attribute (CSP, console/headers.py); text via textContent only.
"use strict";

window.qtCharts = {}; // figure id → uPlot instance (tests read its scales)

const TZ = "Asia/Ho_Chi_Minh";
const STYLE = {
  measured: { stroke: "#5b8fc7", width: 1.5 },
  smoothed: { stroke: "#2e7d32", width: 2 },
  average: { stroke: "#12324f", width: 2 },
  flagged: { stroke: "#e65100" },
  limit: { stroke: "#d32f2f", width: 1.5, dash: [8, 5] },
};

function num(v) {
  if (v === null || v === undefined) return "—";
  return Math.abs(v) >= 1000 ? v.toFixed(0) : String(Number(v.toPrecision(4)));
}

const partsCache = {};
function timeParts(ts, withYear) {
  const key = withYear ? "y" : "n";
  partsCache[key] = partsCache[key] || new Intl.DateTimeFormat("en-GB", {
    timeZone: TZ, hour12: false, day: "2-digit", month: "2-digit", hour: "2-digit",
    minute: "2-digit", ...(withYear ? { year: "numeric" } : {}),
  });
  const p = {};
  for (const x of partsCache[key].formatToParts(new Date(ts * 1000))) p[x.type] = x.value;
  return p;
}

function fullTime(ts) {
  if (ts === null || ts === undefined) return "—";
  const p = timeParts(ts, true);
  return `${p.day}/${p.month}/${p.year} ${p.hour}:${p.minute}`;
}

// Tick labels in local time: hours within a day, the date when a tick crosses midnight.
function timeTicks(u, splits, axisIdx, space, incr) {
  let lastDay = null;
  return splits.map((ts) => {
    const p = timeParts(ts, false);
    const day = `${p.day}/${p.month}`;
    const hm = `${p.hour}:${p.minute}`;
    const label = incr >= 86400 ? day : (day !== lastDay ? `${hm}\n${day}` : hm);
    lastDay = day;
    return label;
  });
}

// The y-range: every visible value and every limit (the limit series are on this scale too),
// from 0 when nothing is negative, padded and rounded to readable numbers by uPlot.
function yRange(u, dataMin, dataMax) {
  if (dataMin === null || dataMax === null || !isFinite(dataMin) || !isFinite(dataMax)) {
    return [0, 1];
  }
  const lo = dataMin >= 0 ? 0 : dataMin;
  const hi = dataMax > lo ? dataMax : lo + 1;
  const [a, b] = uPlot.rangeNum(lo, hi, 0.1, true);
  return [dataMin >= 0 ? Math.max(0, a) : a, Math.max(b, dataMax)];
}

function buildData(payload) {
  const tables = payload.series.map((s) => [s.t, s.v]);
  const joined = uPlot.join(tables);
  const xs = joined[0];
  // the whole window is on the x-axis, even where nothing was measured
  if (!xs.length || xs[0] > payload.start) {
    xs.unshift(payload.start);
    for (let i = 1; i < joined.length; i++) joined[i].unshift(undefined);
  }
  if (xs[xs.length - 1] < payload.end) {
    xs.push(payload.end);
    for (let i = 1; i < joined.length; i++) joined[i].push(undefined);
  }
  for (const lim of payload.limits) joined.push(xs.map(() => lim.value));
  return joined;
}

function buildSeries(payload, xs) {
  const flagAt = {};
  const flagged = payload.series.find((s) => s.key === "flagged");
  flagged.t.forEach((t, i) => { flagAt[t] = flagged.flags[i]; });
  const timeLabel = document.body.dataset.lang === "en" ? "Time" : "Thời gian";
  const series = [{ label: timeLabel, value: (u, ts) => fullTime(ts) }];
  for (const s of payload.series) {
    const st = STYLE[s.key];
    const one = { label: s.label, stroke: st.stroke, width: st.width || 1, value: (u, v) => num(v) };
    if (s.key === "measured") {
      one.spanGaps = false;
    } else if (s.key === "smoothed") {
      one.points = { show: false };
    } else if (s.key === "average") {
      one.points = { show: true, size: 6, fill: st.stroke };
    } else if (s.key === "flagged") {
      one.paths = () => null; // points only: flagged values are never joined into the line
      one.points = { show: true, size: 8, stroke: st.stroke, fill: "#ffcc80", width: 2 };
      one.value = (u, v, si, idx) => (v === null || v === undefined || idx === null
        ? "—" : `${num(v)} (${flagAt[xs[idx]] || "?"})`);
    }
    series.push(one);
  }
  for (const lim of payload.limits) {
    series.push({
      label: lim.label, stroke: STYLE.limit.stroke, width: STYLE.limit.width,
      dash: STYLE.limit.dash, points: { show: false }, value: () => num(lim.value),
    });
  }
  return series;
}

function drawChart(fig, payload) {
  const box = fig.querySelector(".plot");
  const data = buildData(payload);
  const unit = payload.unit && payload.unit !== "-" ? payload.unit : ""; // pH has none
  const opts = {
    width: Math.max(320, box.clientWidth || fig.clientWidth || 600),
    height: 260,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TZ),
    scales: { x: { time: true }, y: { auto: true, range: yRange } },
    axes: [
      { values: timeTicks, space: 60 },
      { label: unit, size: 60, values: (u, splits) => splits.map(num) },
    ],
    cursor: { y: false, drag: { x: true, y: false }, focus: { prox: 24 } },
    legend: { live: true },
    series: buildSeries(payload, data[0]),
  };
  const u = new uPlot(opts, data, box);
  u.qtPayload = payload; // what the chart was drawn from (tests compare the range with it)
  window.qtCharts[fig.id] = u;
  if (window.ResizeObserver) {
    new ResizeObserver(() => {
      const w = Math.max(320, box.clientWidth);
      if (Math.abs(w - u.width) > 4) u.setSize({ width: w, height: 260 });
    }).observe(box);
  }
}

async function loadChart(fig) {
  const status = fig.querySelector(".chart-status");
  try {
    const res = await fetch(fig.dataset.src, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const payload = await res.json();
    drawChart(fig, payload);
    const n = payload.series.reduce((k, s) => k + s.v.filter((v) => v !== null).length, 0);
    status.textContent = n ? "" : "—";
    status.hidden = n > 0;
    fig.dataset.ready = "true";
  } catch (e) {
    status.textContent = e.message;
    status.classList.add("error");
    fig.dataset.ready = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const fig of document.querySelectorAll("figure.qt-chart[data-src]")) loadChart(fig);
});
