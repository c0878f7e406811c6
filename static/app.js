// Keystep's pages work without this file; it only makes them kinder.
// It is loaded with <script src defer> because the CSP allows no inline
// script (script-src 'self').
(function () {
  "use strict";

  // Destructive actions ask first: <button data-confirm="Remove this app?">.
  // Capture phase, so a "no" stops the click before it submits anything.
  document.addEventListener("click", function (e) {
    var el = e.target instanceof Element ? e.target.closest("[data-confirm]") : null;
    if (el && !window.confirm(el.getAttribute("data-confirm"))) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, true);

  // A form is sent once: a second click or Enter while the first is on its
  // way does nothing, and the buttons say so.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (e.defaultPrevented || !(form instanceof HTMLFormElement)) {
      return;
    }
    if (form.hasAttribute("data-sent")) {
      e.preventDefault();
      return;
    }
    form.setAttribute("data-sent", "");
    var submitter = e.submitter;
    // Disable after the browser has read the form: a button disabled now
    // would drop its own name=value (decision=allow) from the submission.
    window.setTimeout(function () {
      form.querySelectorAll("button, input[type=submit]").forEach(function (b) {
        b.disabled = true;
      });
      if (submitter) {
        submitter.classList.add("busy");
        submitter.setAttribute("aria-busy", "true");
      }
    }, 0);
  });

  // Back from the next page (back/forward cache): the forms work again.
  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) {
      return;
    }
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      form.removeAttribute("data-sent");
      form.querySelectorAll("button, input[type=submit]").forEach(function (b) {
        b.disabled = false;
        b.classList.remove("busy");
        b.removeAttribute("aria-busy");
      });
    });
  });

  // say returns a text the page holds for this script, in the page's
  // language (layout.html: data-msg-* on <body>).
  function say(name) {
    return document.body.dataset[name] || "";
  }

  // "Copy" for recovery codes: <button data-copy="id-of-list" hidden>.
  // The button stays hidden where the clipboard cannot be written.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var list = document.getElementById(button.getAttribute("data-copy"));
    if (!list || !navigator.clipboard || !window.isSecureContext) {
      return;
    }
    var status = document.getElementById(button.getAttribute("aria-describedby") || "");
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      var codes = Array.prototype.map.call(list.querySelectorAll("code"), function (c) {
        return c.textContent.trim();
      });
      navigator.clipboard.writeText(codes.join("\n") + "\n").then(function () {
        button.textContent = say("msgCopied");
        if (status) {
          status.textContent = say("msgCopyDone");
        }
        window.setTimeout(function () { button.textContent = label; }, 4000);
      }, function () {
        if (status) {
          status.textContent = say("msgCopyFailed");
        }
      });
    });
  });
})();
