// Keystep passkeys: WebAuthn ceremonies for sign-in, step-up and the
// account portal. No inline script (CSP script-src 'self'); only the pages
// that offer a passkey load this file.
//
//   [data-passkey-step="<auth request id>"]   sign-in and step-up: a
//       [data-passkey-button] starts the ceremony, [data-passkey-error]
//       shows what went wrong. data-passkey-path names other endpoints
//       (a password reset's, with its link's token as the id).
//   [data-passkey-autofill="<auth request id>"] sign-in: passkeys offered in
//       the username field's autofill (conditional mediation).
//   [data-passkey-register]                   portal: add a passkey.
//   [data-passkey-register="<auth request id>"] step-up: set one up now.
(function () {
  "use strict";

  // ---- base64url (RFC 4648 §5), as the server's JSON carries binary ----

  function b64urlToBuf(s) {
    s = String(s).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s);
    var buf = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i);
    return buf.buffer;
  }

  function bufToB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // ---- talking to the server ----

  // say returns a text the page holds for this script, in the page's
  // language (layout.html: data-msg-* on <body>); the script has no words
  // of its own.
  function say(name) {
    return document.body.dataset[name] || "";
  }

  // A failure the server explained: its message is meant for people.
  function ServerError(message) {
    this.name = "ServerError";
    this.message = message;
  }

  async function post(url, body) {
    var resp;
    try {
      resp = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new ServerError(say("msgOffline"));
    }
    var data = {};
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) throw new ServerError(data.error || say("msgFailed"));
    return data;
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return pk;
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user.id = b64urlToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return pk;
  }

  function assertionJSON(cred) {
    return {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      response: {
        clientDataJSON: bufToB64url(cred.response.clientDataJSON),
        authenticatorData: bufToB64url(cred.response.authenticatorData),
        signature: bufToB64url(cred.response.signature),
        userHandle: cred.response.userHandle ? bufToB64url(cred.response.userHandle) : undefined,
      },
      clientExtensionResults: cred.getClientExtensionResults(),
    };
  }

  function attestationJSON(cred) {
    return {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      response: {
        clientDataJSON: bufToB64url(cred.response.clientDataJSON),
        attestationObject: bufToB64url(cred.response.attestationObject),
        transports: cred.response.getTransports ? cred.response.getTransports() : [],
      },
      clientExtensionResults: cred.getClientExtensionResults(),
    };
  }

  // ---- what people read ----

  // words of one ceremony: data-msg-<kind>-<what> on <body>.
  function wordsOf(kind) {
    return {
      unsupported: say(kind + "Unsupported"),
      cancelled: say(kind + "Cancelled"),
      timedOut: say(kind + "TimedOut"),
      address: say(kind + "Address"),
      exists: say(kind + "Exists"),
      other: say(kind + "Other"),
    };
  }

  var words = { signIn: wordsOf("msgSignin"), register: wordsOf("msgRegister") };

  // explain turns a failure into a sentence. started and timeout (ms) tell
  // a timeout from a cancel: browsers report both as NotAllowedError.
  function explain(w, err, started, timeout) {
    if (!window.PublicKeyCredential) return w.unsupported;
    if (!err) return w.other;
    if (err.name === "ServerError") return err.message;
    if (err.name === "NotAllowedError") {
      return timeout && Date.now() - started >= timeout - 1000 ? w.timedOut : w.cancelled;
    }
    if (err.name === "AbortError") return w.cancelled;
    if (err.name === "InvalidStateError" && w.exists) return w.exists;
    if (err.name === "SecurityError") return w.address;
    if (err.name === "NotSupportedError") return w.unsupported;
    return w.other;
  }

  // busy shows that a ceremony runs: the button is disabled, announced as
  // busy, and says what it waits for.
  function busy(button, on) {
    if (!button) return;
    button.disabled = on;
    button.classList.toggle("busy", on);
    if (on) {
      button.setAttribute("aria-busy", "true");
      if (!button.dataset.label) button.dataset.label = button.textContent;
      button.textContent = button.dataset.busyLabel || say("msgPasskeyWaiting");
    } else {
      button.removeAttribute("aria-busy");
      if (button.dataset.label) button.textContent = button.dataset.label;
    }
  }

  function showError(box, msg) {
    if (!box) return;
    box.textContent = msg;
    box.hidden = false;
    // On a step-up page the other ways are right below: open them.
    var others = document.querySelector("details.others");
    if (others) others.open = true;
  }

  function hideError(box) {
    if (box) box.hidden = true;
  }

  // ---- sign-in and step-up ----

  // signIn runs one assertion for the auth request. With mediation
  // "conditional" it is the username field's autofill and fails silently.
  async function signIn(requestID, button, errorBox, mediation, signal, path) {
    var started = Date.now(), timeout = 0;
    path = path || "/login/webauthn";
    if (!mediation) busy(button, true);
    try {
      var pk = requestOptions(await post(path + "/options", { id: requestID }));
      timeout = pk.timeout || 0;
      var getOpts = { publicKey: pk };
      if (mediation) { getOpts.mediation = mediation; getOpts.signal = signal; }
      started = Date.now();
      var cred = await navigator.credentials.get(getOpts);
      if (mediation) busy(button, true);
      var res = await post(path + "/verify", { id: requestID, credential: assertionJSON(cred) });
      window.location.assign(res.redirect); // busy until the next page
    } catch (err) {
      busy(button, false);
      if (!mediation) showError(errorBox, explain(words.signIn, err, started, timeout));
      else if (err && err.name === "ServerError") showError(errorBox, err.message);
    }
  }

  // The pending autofill request: a button press aborts it, and waits for
  // its options request to land first, so that the challenge the server
  // keeps for this browser is the button's, not the autofill's. Once a
  // button was pressed, autofill does not start at all, for the same reason.
  var conditional = null, pressed = false;

  document.querySelectorAll("[data-passkey-step]").forEach(function (el) {
    var id = el.getAttribute("data-passkey-step");
    var button = el.querySelector("[data-passkey-button]");
    var errorBox = el.querySelector("[data-passkey-error]");
    if (!button) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showError(errorBox, words.signIn.unsupported);
      button.disabled = true;
      return;
    }
    button.addEventListener("click", async function () {
      if (button.disabled) return;
      pressed = true;
      hideError(errorBox);
      busy(button, true);
      if (conditional) {
        var pending = conditional;
        conditional = null;
        pending.abort.abort();
        await pending.done;
      }
      signIn(id, button, errorBox, null, null, el.getAttribute("data-passkey-path"));
    });
  });

  var auto = document.querySelector("[data-passkey-autofill]");
  if (auto && window.PublicKeyCredential && PublicKeyCredential.isConditionalMediationAvailable) {
    var autoStep = document.querySelector("[data-passkey-step]");
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok || pressed) return;
      var abort = new AbortController();
      conditional = { abort: abort, done: null };
      conditional.done = signIn(auto.getAttribute("data-passkey-autofill"),
        autoStep ? autoStep.querySelector("[data-passkey-button]") : null,
        autoStep ? autoStep.querySelector("[data-passkey-error]") : null,
        "conditional", abort.signal);
    }, function () { /* no autofill; the button still works */ });
  }

  // ---- portal: add a passkey or security key ----

  document.querySelectorAll("[data-passkey-register]").forEach(function (el) {
    var button = el.querySelector("[data-passkey-button]");
    var errorBox = el.querySelector("[data-passkey-error]");
    var nameInput = el.querySelector("input[name=name]");
    var requestID = el.getAttribute("data-passkey-register");
    var base = requestID ? "/login/enroll/passkey/" : "/account/passkey/";
    if (!button) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      showError(errorBox, words.register.unsupported);
      button.disabled = true;
      return;
    }
    button.addEventListener("click", async function () {
      if (button.disabled) return;
      var started = Date.now(), timeout = 0;
      busy(button, true);
      hideError(errorBox);
      try {
        var pk = creationOptions(await post(base + "options", requestID ? { id: requestID } : {}));
        timeout = pk.timeout || 0;
        started = Date.now();
        var cred = await navigator.credentials.create({ publicKey: pk });
        var body = { name: nameInput ? nameInput.value : "", credential: attestationJSON(cred) };
        if (requestID) body.id = requestID;
        var res = await post(base + "verify", body);
        window.location.assign(res.redirect); // busy until the next page
      } catch (err) {
        busy(button, false);
        showError(errorBox, explain(words.register, err, started, timeout));
      }
    });
  });

  // Back from the next page (back/forward cache): the buttons work again.
  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) return;
    document.querySelectorAll("[data-passkey-button]").forEach(function (b) { busy(b, false); });
  });
})();
