// pgqueue dashboard: refresh <main> every few seconds from /partial/<page>
// (JSON {"html": ...}, rendered and escaped by the server). Pauses while the
// user is typing in a form, has ticked jobs for a bulk action or is selecting
// text, and while the tab is hidden.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var main = document.getElementById("main");
  var status = document.getElementById("status");
  if (!main) { return; }

  function ticked() {
    return main.querySelectorAll("form[data-bulk] input[type=checkbox]:checked").length;
  }

  function selecting() {
    var selection = window.getSelection && window.getSelection();
    return selection && !selection.isCollapsed && main.contains(selection.anchorNode);
  }

  function busy() {
    var active = document.activeElement;
    return document.hidden || ticked() > 0 || selecting() || (active && main.contains(active) &&
      /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }

  function countSelected() {
    var label = main.querySelector("[data-selected-count]");
    if (!label) { return; }
    var all = main.querySelector("[data-select-all]");
    var n = main.querySelectorAll("form[data-bulk] input[name=job]:checked").length;
    label.textContent = all && all.checked ? "all matching jobs" :
      (n ? n + " selected" : "none selected");
    if (status) { status.textContent = busy() ? "live updates paused while you select" : ""; }
  }

  main.addEventListener("change", function (event) {
    if (event.target && event.target.type === "checkbox") { countSelected(); }
  });

  if (!main.dataset.refresh) { return; }
  var source = main.dataset.refresh;
  var last = main.innerHTML;

  function refresh() {
    if (busy()) {
      if (status) { status.textContent = "live updates paused"; }
      return schedule();
    }
    fetch(source, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (typeof data.html === "string" && data.html !== last && !busy()) {
          main.innerHTML = data.html;
          last = data.html;
        }
        if (status) { status.textContent = "updated " + new Date().toLocaleTimeString(); }
      })
      .catch(function (error) {
        if (status) { status.textContent = "refresh failed: " + error.message; }
      })
      .then(schedule);
  }

  function schedule() { window.setTimeout(refresh, INTERVAL_MS); }
  schedule();
})();
