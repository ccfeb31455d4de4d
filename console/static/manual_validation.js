// Manual validation on a source's page (issue 21): the form invalidates a period, a row's
// Restore button restores the same period and parameter; both POST to the JSON API with the
// session's CSRF token and reload the page, or show the console's refusal as text.
"use strict";

(() => {
  const box = document.getElementById("manual-validation");
  if (!box) return;
  const error = document.getElementById("mv-error");

  async function decide(body) {
    const res = await fetch(box.dataset.url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content,
      },
      body: JSON.stringify(body),
    });
    if (res.ok) { location.reload(); return; }
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
    if (Array.isArray(detail)) detail = detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
    error.textContent = res.status + " " + detail;
    error.hidden = false;
  }

  const form = document.getElementById("mv-form");
  form?.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    decide({  // times without an offset: the console reads them as local time (Asia/Ho_Chi_Minh)
      parameter: f.get("parameter") || null,
      start: f.get("start"),
      end: f.get("end"),
      action: "invalidate",
      reason: f.get("reason"),
      note: f.get("note") || "",
    });
  });

  for (const b of box.querySelectorAll("button.mv-restore")) {
    b.addEventListener("click", () => decide({
      parameter: b.dataset.parameter || null,
      start: b.dataset.start,
      end: b.dataset.end,
      action: "restore",
      reason: b.dataset.reason,
      note: box.dataset.tRestores + b.dataset.id,
    }));
  }
})();
