// The QR page asks the shop whether the payment arrived and moves on to the
// result page once it did (the status URL is on the QR element), and counts
// down to the code's expiry. The seconds left come from the server, so a
// wrong clock on the shopper's computer does not matter.
(function () {
  var qr = document.querySelector("[data-status-url]");
  if (!qr) { return; }
  var statusUrl = qr.getAttribute("data-status-url");
  function poll() {
    fetch(statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.done) { window.location.href = data.result_url; return; }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1500);

  var expiry = document.querySelector("[data-countdown]");
  if (!expiry) { return; }
  var deadline = Date.now() + 1000 * parseInt(expiry.getAttribute("data-seconds-left"), 10);
  var remaining = expiry.querySelector("[data-countdown-remaining]");
  var expired = expiry.querySelector("[data-countdown-expired]");
  var counter = expiry.querySelector(".countdown");
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function tick() {
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    if (left === 0) {
      remaining.hidden = true;
      expired.hidden = false;
      qr.classList.add("expired");
      return;
    }
    counter.textContent = Math.floor(left / 60) + ":" + pad(left % 60);
    remaining.hidden = false;
    setTimeout(tick, 1000);
  }
  tick();
})();
