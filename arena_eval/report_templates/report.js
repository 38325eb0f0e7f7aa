// Filters the per-question view by contestant and by text, and switches the scatter's x-axis. No network,
// no external code.
(function () {
  "use strict";
  var select = document.getElementById("contestant-filter");
  var search = document.getElementById("question-search");
  var count = document.getElementById("question-count");
  var questions = Array.prototype.slice.call(document.querySelectorAll(".question"));
  function apply() {
    var who = select ? select.value : "";
    var needle = search ? search.value.toLowerCase() : "";
    var shown = 0;
    questions.forEach(function (q) {
      var blocks = Array.prototype.slice.call(q.querySelectorAll(".contestant-block"));
      blocks.forEach(function (b) {
        b.hidden = who !== "" && b.getAttribute("data-contestant") !== who;
      });
      var match = needle === "" || q.textContent.toLowerCase().indexOf(needle) !== -1;
      q.hidden = !match;
      if (match) { shown += 1; }
    });
    if (count) { count.textContent = shown + " of " + questions.length + " questions"; }
  }
  if (select) { select.addEventListener("change", apply); }
  if (search) { search.addEventListener("input", apply); }
  apply();
  // The quality/efficiency scatter: one chart per x-axis, the chosen one shown.
  var axis = document.getElementById("scatter-axis");
  var charts = Array.prototype.slice.call(document.querySelectorAll(".scatter"));
  function showAxis() {
    charts.forEach(function (c) { c.hidden = c.getAttribute("data-axis") !== axis.value; });
  }
  if (axis) { axis.addEventListener("change", showAxis); showAxis(); }
})();
