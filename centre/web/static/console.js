// Live parts of the console: one server-sent-events stream; on each change the page's
// live region (#live, data-part = its fragment URL) is fetched again and swapped in.
// Forms being typed into are never replaced under the person's hands.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var state = document.getElementById("live-state");
  var broadcastForm = document.getElementById("broadcast-form");
  if (broadcastForm) {
    broadcastForm.addEventListener("submit", function (ev) {
      var actual = broadcastForm.querySelector('input[name="status"][value="Actual"]');
      if (actual && actual.checked && !window.confirm(broadcastForm.dataset.confirm || "Actual?")) {
        ev.preventDefault();
      }
    });
  }
  // Look now: after the order, ask for the result until the picture is here or it failed.
  var look = document.getElementById("look-now-result");
  var lookForm = document.getElementById("look-now-form");
  if (lookForm) {
    lookForm.addEventListener("submit", function () {
      var button = document.getElementById("look-now-button");
      if (button) { button.disabled = true; }
    });
  }
  if (look && look.dataset.part) {
    var lookUntil = Date.now() + 5 * 60 * 1000;
    var pollLook = function () {
      var current = look.querySelector("[data-stage]");
      var stage = current ? current.dataset.stage : "";
      if (stage === "stored" || stage === "failed" || Date.now() > lookUntil) { return; }
      fetch(look.dataset.part, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { window.location.href = "/console/login?expired=1"; return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) { if (html) { look.innerHTML = html; } })
        .catch(function () {})
        .then(function () { setTimeout(pollLook, 250); });
    };
    setTimeout(pollLook, 250);
  }
  if (!live || !window.EventSource) { return; }
  var busy = false, again = false;
  function typing() {
    var el = document.activeElement;
    return el && live.contains(el) && (el.tagName === "INPUT" || el.tagName === "TEXTAREA") && el.value;
  }
  function refresh() {
    if (busy || typing()) { again = true; return; }
    busy = true;
    fetch(live.dataset.part, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/console/login?expired=1"; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) {
          live.innerHTML = html;
          live.dataset.version = String((Number(live.dataset.version) || 0) + 1);
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; setTimeout(refresh, 300); } });
  }
  var es = new EventSource("/console/events");
  es.onmessage = function () { refresh(); };
  es.onopen = function () { if (state) { state.textContent = state.dataset.ok; } };
  es.onerror = function () { if (state) { state.textContent = state.dataset.lost; } };
  es.addEventListener("signed-out", function () { window.location.href = "/console/login?expired=1"; });
})();
