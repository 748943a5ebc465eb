// Vantage web UI: the overview's panels refresh themselves. Everything else
// works without this script; here it only keeps the live view live.
(function () {
  "use strict";
  // a query error: put the cursor where the query went wrong
  var qerr = document.getElementById("qerr"), q = document.getElementById("q");
  if (qerr && q) {
    var col = parseInt(qerr.getAttribute("data-column"), 10);
    q.focus();
    if (col > 0 && q.setSelectionRange) q.setSelectionRange(col - 1, col - 1);
  }
  var box = document.getElementById("overview");
  if (!box || !window.fetch) return;
  var every = (parseInt(box.getAttribute("data-refresh"), 10) || 10) * 1000;
  var busy = false;
  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    var panels = document.getElementById("panels");
    var win = panels ? panels.getAttribute("data-window") : "";
    fetch("/live" + (win ? "?window=" + encodeURIComponent(win) : ""), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { box.innerHTML = html; box.removeAttribute("data-stale"); })
      .catch(function () { box.setAttribute("data-stale", "true"); })
      .then(function () { busy = false; });
  }
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  // "/" focuses the IP box, as search boxes do elsewhere
  document.addEventListener("keydown", function (e) {
    var t = e.target && e.target.tagName;
    if (e.key === "/" && t !== "INPUT" && t !== "TEXTAREA") {
      var q = document.getElementById("q") || document.getElementById("ipbox");
      if (q) { e.preventDefault(); q.focus(); }
    }
  });
})();
