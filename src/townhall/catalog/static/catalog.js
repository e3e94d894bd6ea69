/* Small helpers for the catalog pages; every page works without them.
   - Copy buttons on the API examples (shown only when the clipboard can be written).
   - On a form with mistakes, focus moves to the list of problems. */
(function () {
  "use strict";
  var status = document.getElementById("copy-status");
  var canCopy = !!(navigator.clipboard && window.isSecureContext);
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) { return; }
    if (!canCopy) { return; }  /* stay hidden: selecting the text by hand still works */
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent).then(function () {
        button.textContent = "Copied";
        if (status) { status.textContent = "Copied to the clipboard."; }
        window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
      }, function () {
        if (status) { status.textContent = "Could not copy; select the text instead."; }
      });
    });
  });
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
