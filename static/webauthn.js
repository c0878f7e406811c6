// Keystep passkeys: WebAuthn ceremonies for sign-in, step-up and the
// account portal. No inline script; every page that needs this loads it.
(function () {
  "use strict";

  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const bin = atob(s);
    const buf = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) buf[i] = bin.charCodeAt(i);
    return buf.buffer;
  }

  function bufToB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function post(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) throw new Error(data.error || "Something went wrong. Try again.");
    return data;
  }

  function requestOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return o;
  }

  function creationOptions(o) {
    const pk = o.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user.id = b64urlToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return o;
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

  function explain(err) {
    if (!window.PublicKeyCredential) return "This browser doesn't support passkeys. Use another way.";
    if (err && err.name === "NotAllowedError") return "The request was cancelled or timed out. Try again, or use another way.";
    if (err && err.name === "InvalidStateError") return "This passkey or security key is already added.";
    if (err && err.name === "SecurityError") return "Passkeys don't work on this address. Use another way.";
    return (err && err.message) || "That didn't work. Try again, or use another way.";
  }

  function busy(button, on) {
    if (!button) return;
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
    if (on) {
      button.dataset.label = button.textContent;
      button.textContent = "Waiting for your passkey…";
    } else if (button.dataset.label) {
      button.textContent = button.dataset.label;
    }
  }

  function showError(box, msg) {
    if (!box) return;
    box.textContent = msg;
    box.hidden = false;
  }

  async function signIn(requestID, button, errorBox, mediation, signal) {
    busy(button, true);
    try {
      const opts = requestOptions(await post("/login/webauthn/options", { id: requestID }));
      const getOpts = { publicKey: opts.publicKey };
      if (mediation) { getOpts.mediation = mediation; getOpts.signal = signal; }
      const cred = await navigator.credentials.get(getOpts);
      const res = await post("/login/webauthn/verify", { id: requestID, credential: assertionJSON(cred) });
      window.location.assign(res.redirect);
    } catch (err) {
      if (!mediation) showError(errorBox, explain(err));
    } finally {
      busy(button, false);
    }
  }

  let conditional = null; // the pending autofill request, aborted on a button press

  // Step-up and sign-in pages: a button starts the ceremony.
  document.querySelectorAll("[data-passkey-step]").forEach(function (el) {
    const id = el.getAttribute("data-passkey-step");
    const button = el.querySelector("[data-passkey-button]");
    const errorBox = el.querySelector("[data-passkey-error]");
    if (!window.PublicKeyCredential) {
      showError(errorBox, explain(null));
      if (button) button.disabled = true;
      return;
    }
    button.addEventListener("click", function () {
      if (conditional) conditional.abort();
      signIn(id, button, errorBox, null, null);
    });
  });

  // Sign-in page: passkey autofill on the username field (conditional mediation).
  const auto = document.querySelector("[data-passkey-autofill]");
  if (auto && window.PublicKeyCredential && PublicKeyCredential.isConditionalMediationAvailable) {
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok) return;
      conditional = new AbortController();
      signIn(auto.getAttribute("data-passkey-autofill"), null, null, "conditional", conditional.signal);
    });
  }

  // Portal: register a new passkey or security key.
  document.querySelectorAll("[data-passkey-register]").forEach(function (el) {
    const button = el.querySelector("[data-passkey-button]");
    const errorBox = el.querySelector("[data-passkey-error]");
    const nameInput = el.querySelector("input[name=name]");
    if (!window.PublicKeyCredential) {
      showError(errorBox, explain(null));
      button.disabled = true;
      return;
    }
    button.addEventListener("click", async function () {
      busy(button, true);
      errorBox.hidden = true;
      try {
        const opts = creationOptions(await post("/account/passkey/options", {}));
        const cred = await navigator.credentials.create({ publicKey: opts.publicKey });
        const res = await post("/account/passkey/verify", { name: nameInput ? nameInput.value : "", credential: attestationJSON(cred) });
        window.location.assign(res.redirect);
      } catch (err) {
        showError(errorBox, explain(err));
      } finally {
        busy(button, false);
      }
    });
  });
})();
