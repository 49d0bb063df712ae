/* Copy buttons (templates/portal/_copy.html): a click copies the button's data-copy value and
   the button says "Copied" for a moment. Certificate fingerprints (the SHA-256 and SHA-1 lines
   of each certificate in the features) get the same button here, so the features template
   stays as it is. */
(function () {
  "use strict";

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function feedback(button, words, state) {
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = words;
    button.dataset.copied = state;
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () {
      button.textContent = label;
      delete button.dataset.copied;
    }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy[data-copy]");
    if (!button) { return; }
    event.preventDefault();
    copy(button.dataset.copy).then(
      function () { feedback(button, "Copied", "yes"); },
      function () { feedback(button, "Copy failed", "no"); }
    );
  });

  function decorate(root) {
    var cells = (root || document).querySelectorAll(
      ".cert-sha256:not([data-copy-ready]), section.cert dd.mono:not([data-copy-ready])");
    Array.prototype.forEach.call(cells, function (cell) {
      var value = cell.textContent.trim();
      cell.setAttribute("data-copy-ready", "");
      if (!/^[0-9a-f]{40,64}$/i.test(value)) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary copy";
      button.style.cssText = "padding:0 .45rem;font-size:.75rem;line-height:1.5;margin-left:.3rem;vertical-align:baseline";
      button.dataset.copy = value;
      var what = value.length === 64 ? "SHA-256" : "SHA-1";
      button.title = "Copy the certificate " + what;
      button.setAttribute("aria-label", "Copy the certificate " + what);
      button.textContent = "Copy";
      cell.appendChild(document.createTextNode(" "));
      cell.appendChild(button);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { decorate(document); });
  document.addEventListener("htmx:afterSettle", function () { decorate(document); });
})();
