// Connections wizards: the "Copy invitation code" button. Everything else works without JavaScript.
(function () {
  if (window.exalateConnectionsJs) return;
  window.exalateConnectionsJs = true;

  function fallbackCopy(field) {
    field.focus();
    field.select();
    try { return document.execCommand("copy"); } catch (e) { return false; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy-target"));
    if (!field) return;
    var done = function () {
      button.textContent = button.getAttribute("data-copied-label") || "Copied";
      button.classList.add("copied");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { if (fallbackCopy(field)) done(); });
    } else if (fallbackCopy(field)) {
      done();
    }
  });

  // Escape closes a wizard opened over the Connections list.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var modal = document.querySelector("#modal .modal-backdrop");
    if (modal) modal.remove();
  });
})();
