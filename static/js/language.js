// The header's language switch submits itself when a language is chosen
// (a script file, not an inline handler: the Content-Security-Policy).
document.querySelectorAll("form.language select[name=language]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});
