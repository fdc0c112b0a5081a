// docko-worker dashboard: refreshes the live part of the page, and asks before destructive
// actions. Served as a file of its own (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  // A notice belongs to the action that led here: keep it on screen, not in the address.
  var address = new URL(window.location.href);
  if (address.searchParams.has("notice")) {
    address.searchParams.delete("notice");
    address.searchParams.delete("count");
    window.history.replaceState(null, "", address.toString());
  }

  // Forms with data-confirm ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    }
  });

  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!live || !live.dataset.refresh) {
    return;
  }
  var every = Number(live.dataset.refresh) || 5000;
  var busy = false;

  function show(text, state) {
    if (status) {
      status.textContent = text;
      status.dataset.state = state;
    }
  }

  function typingInside() {
    var active = document.activeElement;
    return active && live.contains(active) && active.matches("input, select, textarea");
  }

  function refresh() {
    if (busy || document.hidden || typingInside()) {
      return;
    }
    busy = true;
    fetch(window.location.href, {
      headers: { "X-Docko-Fragment": "1" },
      credentials: "same-origin",
      cache: "no-store",
      redirect: "error"
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        // Server-rendered and escaped; the same markup the page itself was built with.
        live.innerHTML = html;
        live.dataset.refreshedAt = String(Date.now());
        show("live", "ok");
      })
      .catch(function () {
        show("reconnecting…", "error");
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, every);
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      show("paused", "paused");
    } else {
      refresh();
    }
  });
})();
