// The redirect page's form to the gateway submits itself; without scripts
// the shopper presses its button.
document.querySelectorAll("form[data-autosubmit]").forEach(function (form) { form.submit(); });
