// Console-wide behaviour without inline script (the Content-Security-Policy forbids it):
// a form with data-confirm="question" asks before it is sent; data-change-submit below.
(function () {
  if (window.exalateConsoleJs) return;
  window.exalateConsoleJs = true;

  // A select with data-change-submit="#button" presses that button when it changes
  // (General settings: another tracker shows its own fields; without script, press it).
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-change-submit]");
    var button = select && document.querySelector(select.getAttribute("data-change-submit"));
    if (button) button.click();
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
  }, true);
})();

// Issue 12: the Errors page's "select all" box (data-select-all="name" checks every
// checkbox named so in its form).
(function () {
  if (window.exalateSelectAll) return;
  window.exalateSelectAll = true;
  document.addEventListener("change", function (event) {
    var box = event.target.closest("input[data-select-all]");
    if (!box) return;
    var name = box.getAttribute("data-select-all");
    box.form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (b) {
      b.checked = box.checked;
    });
  });
})();
