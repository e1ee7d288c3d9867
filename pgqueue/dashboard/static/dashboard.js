// pgqueue dashboard: refresh <main> every few seconds from /partial/<page>
// (JSON {"html": ...}, rendered and escaped by the server). Pauses while the
// user is typing in a form, and while the tab is hidden.
(function () {
  "use strict";
  var INTERVAL_MS = 2000;
  var main = document.getElementById("main");
  var status = document.getElementById("status");
  if (!main || !main.dataset.refresh) { return; }
  var source = main.dataset.refresh;
  var last = main.innerHTML;

  function busy() {
    var active = document.activeElement;
    return document.hidden || (active && main.contains(active) &&
      /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }

  function refresh() {
    if (busy()) { return schedule(); }
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
