// Console-wide behaviour without inline script (the Content-Security-Policy forbids it):
// a form with data-confirm="question" asks before it is sent.
(function () {
  if (window.exalateConsoleJs) return;
  window.exalateConsoleJs = true;

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
  }, true);
})();
