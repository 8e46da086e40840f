// The site's tables: click a header to sort (again to reverse), pick a value in a drop-down or type
// in the search box to filter. Cells sort by their data-value when they have one (numbers behind
// formatted text), else by their text; empty values sort last either way. Points of a figure that
// carry a page in their customdata open it when clicked. No dependencies, no network.
(function () {
  "use strict";

  function sortKey(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (!numeric) return raw === "" ? null : raw.toLowerCase();
    var number = parseFloat(raw.replace(/,/g, ""));
    return isNaN(number) ? null : number;
  }

  function sortTable(table, header) {
    var index = header.cellIndex;
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, position) { return [sortKey(row, index, numeric), position, row]; });
    keyed.sort(function (a, b) {
      if (a[0] === b[0]) return a[1] - b[1];
      if (a[0] === null) return 1;
      if (b[0] === null) return -1;
      return (a[0] < b[0] ? -1 : 1) * (ascending ? 1 : -1);
    });
    keyed.forEach(function (entry) { body.appendChild(entry[2]); });
    table.querySelectorAll("th").forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function columnIndex(table, name) {
    var headers = table.tHead.rows[0].cells;
    for (var i = 0; i < headers.length; i++) {
      if (headers[i].getAttribute("data-name") === name) return i;
    }
    return -1;
  }

  function applyFilters(table) {
    var id = table.id;
    var selects = document.querySelectorAll('select[data-table="' + id + '"]');
    var search = document.querySelector('input[data-table="' + id + '"][data-search]');
    var needle = search ? search.value.trim().toLowerCase() : "";
    var wanted = [];
    selects.forEach(function (select) {
      if (select.value !== "") wanted.push([columnIndex(table, select.getAttribute("data-filter")), select.value]);
    });
    var shown = 0;
    var rows = table.tBodies[0].rows;
    for (var r = 0; r < rows.length; r++) {
      var row = rows[r];
      var keep = wanted.every(function (w) { return row.cells[w[0]].textContent.trim() === w[1]; });
      if (keep && needle) keep = row.textContent.toLowerCase().indexOf(needle) !== -1;
      row.hidden = !keep;
      if (keep) shown++;
    }
    var counter = document.querySelector('.rows-shown[data-table="' + id + '"]');
    if (counter) counter.textContent = shown + " of " + rows.length + " rows";
  }

  function setUpTable(table) {
    table.querySelectorAll("th").forEach(function (header) {
      header.addEventListener("click", function () { sortTable(table, header); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortTable(table, header); }
      });
    });
    document.querySelectorAll('[data-table="' + table.id + '"]').forEach(function (control) {
      if (control.matches("select, input")) {
        control.addEventListener("input", function () { applyFilters(table); });
      }
    });
  }

  function linkPoints(plot) {
    if (typeof plot.on !== "function") return;
    plot.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      var target = point && point.customdata && point.customdata[0];
      if (typeof target === "string" && target !== "") window.location.href = target;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.interactive").forEach(setUpTable);
    document.querySelectorAll(".js-plotly-plot").forEach(linkPoints);
  });
})();
