// quantrac console: the station board's sort, search and filter, all in the browser.
// The server renders every row; without this script the whole table simply shows.
// Sort keys come from each cell's data-v (numbers, ids), else its text.
"use strict";

function boardRows(table) {
  return Array.from(table.tBodies[0].rows);
}

function cellKey(row, col, numeric) {
  const cell = row.cells[col];
  const raw = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim();
  if (!numeric) return raw.toLocaleLowerCase();
  return raw === "" ? null : Number(raw);
}

function sortBoard(table, th) {
  const col = th.cellIndex;
  const numeric = th.dataset.sort === "num";
  const asc = th.getAttribute("aria-sort") !== "ascending";
  for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  const rows = boardRows(table).map((r, i) => ({ r, i, k: cellKey(r, col, numeric) }));
  rows.sort((a, b) => {
    // empty cells (no reading, no AQI) go last either way; ties keep the server's order
    if (a.k === null || b.k === null) return (a.k === null) - (b.k === null) || a.i - b.i;
    const c = numeric ? a.k - b.k : a.k.localeCompare(b.k, undefined, { numeric: true });
    return (asc ? c : -c) || a.i - b.i;
  });
  table.tBodies[0].append(...rows.map((x) => x.r));
}

function filterBoard(table) {
  const words = document.getElementById("board-search").value.trim().toLocaleLowerCase()
    .split(/\s+/).filter(Boolean);
  const kind = document.getElementById("board-kind").value;
  const state = document.getElementById("board-state").value;
  let shown = 0;
  for (const row of boardRows(table)) {
    const d = row.dataset;
    const ok = (!kind || d.kind === kind) && (!state || d.state === state)
      && words.every((w) => d.search.includes(w));
    row.hidden = !ok;
    if (ok) shown += 1;
  }
  const count = document.getElementById("board-count");
  count.textContent = `${shown} / ${count.dataset.total} ${count.dataset.tShown}`;
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("board");
  const tools = document.getElementById("board-tools");
  if (!table || !tools) return;
  tools.hidden = false;
  tools.addEventListener("submit", (ev) => ev.preventDefault());
  tools.addEventListener("input", () => filterBoard(table));
  tools.addEventListener("change", () => filterBoard(table));
  for (const th of table.tHead.rows[0].cells) {
    if (!th.dataset.sort) continue;
    const b = document.createElement("button");
    b.type = "button";
    b.className = "sort";
    b.textContent = th.textContent;
    th.replaceChildren(b);
    b.addEventListener("click", () => sortBoard(table, th));
  }
});
