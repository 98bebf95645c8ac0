// The QR page asks the shop whether the payment arrived and moves on to the
// result page once it did (the status URL is on the QR element).
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
})();
