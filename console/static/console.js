// quantrac console: live alerts over Server-Sent Events, acknowledgements, user admin.
// No framework, no build step; all text goes through textContent (never innerHTML).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function api(method, url, body) {
  const res = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(res.status + " " + JSON.stringify(detail));
  }
  return res.json();
}

const SEV_CLASS = { "none": "sev0", "<1.1": "sev1", "1.1-1.5": "sev2", "1.5-2": "sev3",
  "2-3": "sev4", "3-5": "sev5", "5-10": "sev6", ">=10": "sev7" };
const fmt = (x) => (x === null || x === undefined ? "—" : Number(x).toPrecision(4).replace(/\.?0+$/, ""));
const localTime = (iso) => {
  if (!iso) return "—";
  const parts = {};
  for (const p of new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Ho_Chi_Minh", hour12: false,
    day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit" })
    .formatToParts(new Date(iso))) parts[p.type] = p.value;
  return `${parts.day}/${parts.month}/${parts.year} ${parts.hour}:${parts.minute}`;
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function beep() {
  try {
    const ctx = new AudioContext();
    const o = ctx.createOscillator();
    o.frequency.value = 880;
    o.connect(ctx.destination);
    o.start();
    o.stop(ctx.currentTime + 0.25);
  } catch (e) { /* audio not allowed yet */ }
}

function ackForm(id, table) {
  const f = el("form", { class: "ack-form", "data-id": id },
    el("input", { name: "note", placeholder: table.dataset.tNote, required: "", maxlength: "2000" }),
    el("button", { type: "submit", class: "ack-button" }, table.dataset.tAck));
  return f;
}

function matchesFilter(v, table) {
  const d = table.dataset;
  if (d.filterKind && v.kind !== d.filterKind) return false;
  if (d.filterDistrict && v.district !== d.filterDistrict) return false;
  if (d.filterSeverity && !d.filterSeverity.split(",").includes(v.severity)) return false;
  return true;
}

function renderRow(v, table) {
  const canAck = table.dataset.canAck === "true";
  const kindText = { exceedance: document.body.dataset.lang === "en" ? "Exceedance" : "Vượt chuẩn",
    outage: document.body.dataset.lang === "en" ? "Outage" : "Mất dữ liệu" }[v.kind] || v.kind;
  const ackCell = el("td", { class: "ack" });
  if (v.acknowledged_at) {
    ackCell.append(el("span", { class: "acked" }, "✔ " + v.acknowledged_by + ": " + (v.ack_note || "")));
  }
  if (canAck) ackCell.append(ackForm(v.violation_id, table));
  return el("tr", { id: "v-" + v.violation_id, "data-id": v.violation_id,
      class: (SEV_CLASS[v.severity] || "sev0") + " " + v.kind + " " + v.state + " fresh" },
    el("td", {}, el("span", { class: "sev" }, v.severity),
      v.penalty_article ? el("small", { class: "penalty" },
        v.penalty_article + (v.flow_bracket ? " · " + v.flow_bracket : "")) : ""),
    el("td", {}, kindText),
    el("td", {}, el("a", { href: "/sources/" + encodeURIComponent(v.source_id) }, v.source_id), " " + (v.source_name || "")),
    el("td", {}, v.district || ""),
    el("td", {}, el("a", { href: "/violations/" + encodeURIComponent(v.violation_id) }, v.parameter)),
    el("td", {}, fmt(v.value)),
    el("td", {}, fmt(v.limit)),
    el("td", {}, localTime(v.started_at)),
    el("td", {}, table.dataset["tState_" + v.state] || v.state),
    ackCell);
}

function upsert(v, table) {
  if (!matchesFilter(v, table)) return;
  const tbody = table.tBodies[0];
  const old = document.getElementById("v-" + v.violation_id);
  const row = renderRow(v, table);
  if (old) {
    const typing = old.querySelector("input[name=note]");
    if (typing && typing.value && document.activeElement === typing) return; // don't eat a note
    old.replaceWith(row);
  } else {
    if (table.dataset.filterState && v.state !== table.dataset.filterState) return;
    tbody.prepend(row);
    if (document.getElementById("sound")?.checked) beep();
  }
  document.getElementById("empty").hidden = tbody.rows.length > 0;
}

function startLive(table) {
  const status = document.getElementById("live-status");
  const src = new EventSource("/api/events");
  src.addEventListener("hello", () => status.classList.remove("down"));
  src.addEventListener("violation", (ev) => upsert(JSON.parse(ev.data), table));
  // the server ended the stream because the session is gone (logged out, expired, disabled)
  src.addEventListener("session_ended", () => {
    src.close();
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  });
  src.onerror = () => status.classList.add("down");
}

document.addEventListener("submit", async (ev) => {
  const form = ev.target;
  if (form.classList.contains("ack-form")) {
    ev.preventDefault();
    const note = form.note.value.trim();
    if (!note) return;
    try {
      const v = await api("POST", "/api/violations/" + encodeURIComponent(form.dataset.id) + "/ack", { note });
      if (form.dataset.reload) { location.reload(); return; }
      const table = document.getElementById("alerts");
      if (table) upsert(v, table);
    } catch (e) { alert(e.message); }
  } else if (form.id === "report-form") {
    // the kind is in the path, not the query (CSP: this lives here, not inline in the page)
    const kind = document.getElementById("report-kind");
    form.action = "/api/reports/" + kind.value;
    kind.disabled = true;
    setTimeout(() => { kind.disabled = false; }, 0);
  } else if (form.id === "new-user") {
    ev.preventDefault();
    const err = document.getElementById("user-error");
    try {
      await api("POST", "/api/users", { username: form.username.value, password: form.password.value, role: form.role.value });
      location.reload();
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  }
});

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest(".toggle-user");
  if (!b) return;
  await api("PUT", "/api/users/" + encodeURIComponent(b.dataset.user), { disabled: b.dataset.disabled === "true" });
  location.reload();
});

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("alerts");
  if (table) startLive(table);
  const sound = document.getElementById("sound");
  if (sound) {
    sound.checked = localStorage.getItem("qt-sound") === "1";
    sound.addEventListener("change", () => localStorage.setItem("qt-sound", sound.checked ? "1" : "0"));
  }
});
