// uebench static site: sortable leaderboard tables. No dependencies, nothing fetched; works from file://.
(function () {
  "use strict";

  function key(cell, numeric) {
    if (!cell) return numeric ? NaN : "";
    if (numeric) {
      var raw = cell.getAttribute("data-value");
      return raw === null || raw === "" ? NaN : parseFloat(raw);
    }
    return (cell.getAttribute("data-text") || cell.textContent).trim().toLowerCase();
  }

  function sortBy(table, th) {
    var headers = Array.prototype.slice.call(th.parentNode.children);
    var index = headers.indexOf(th);
    var numeric = th.getAttribute("data-type") === "number";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      return { row: row, value: key(row.cells[index], numeric), position: position };
    });
    rows.sort(function (a, b) {
      var aMissing = numeric ? isNaN(a.value) : a.value === "";
      var bMissing = numeric ? isNaN(b.value) : b.value === "";
      if (aMissing !== bMissing) return aMissing ? 1 : -1;  // cells without a number go last either way
      if (!aMissing && a.value !== b.value) {
        var order = a.value < b.value ? -1 : 1;
        return ascending ? order : -order;
      }
      return a.position - b.position;  // stable
    });
    rows.forEach(function (entry) { body.appendChild(entry.row); });
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function init() {
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (table) {
      var headers = table.tHead ? table.tHead.rows[0].cells : [];
      Array.prototype.forEach.call(headers, function (th) {
        th.tabIndex = 0;
        th.title = "sort by this column";
        th.addEventListener("click", function () { sortBy(table, th); });
        th.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, th); }
        });
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
