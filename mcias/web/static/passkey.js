// passkey.js — the WebAuthn (passkey) ceremonies of the MCIAS web UI.
//
// Everything else in the UI works without JavaScript; creating and using a
// passkey cannot, because it goes through the browser's
// navigator.credentials API. The script only runs where the page has the
// passkey elements, and reveals them only if the browser supports WebAuthn.
// It talks JSON to /v1/webauthn/*, sending the page's CSRF token in the
// X-CSRF-Token header; the ceremony ID travels in an HttpOnly cookie.
(function () {
  "use strict";

  function toBuffer(b64url) {
    var s = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) {
      s += "=";
    }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  async function post(path, body) {
    var init = {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken() },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var resp = await fetch(path, init);
    var data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      throw new Error((data && data.error) || "the server answered " + resp.status);
    }
    return data;
  }

  function show(statusEl, text) {
    if (statusEl) {
      statusEl.textContent = text;
    }
  }

  function describe(err) {
    if (err && err.name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out.";
    }
    if (err && err.name === "InvalidStateError") {
      return "This device already has a passkey for your account.";
    }
    return (err && err.message) || String(err);
  }

  // The answer of navigator.credentials, in the JSON form the server reads
  // (binary fields as base64url without padding).
  function credentialJSON(cred) {
    var r = cred.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) {
        response.userHandle = toB64url(r.userHandle);
      }
    }
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      response: response,
      clientExtensionResults: cred.getClientExtensionResults(),
    };
  }

  async function signIn(button, statusEl) {
    button.disabled = true;
    show(statusEl, "Waiting for your passkey…");
    try {
      var opts = await post("/v1/webauthn/login/begin");
      var pk = opts.publicKey;
      pk.challenge = toBuffer(pk.challenge);
      (pk.allowCredentials || []).forEach(function (c) {
        c.id = toBuffer(c.id);
      });
      var cred = await navigator.credentials.get({ publicKey: pk });
      await post("/v1/webauthn/login/finish", credentialJSON(cred));
      show(statusEl, "Signed in.");
      window.location.assign(button.getAttribute("data-next") || "/account");
    } catch (err) {
      show(statusEl, "Passkey sign-in failed: " + describe(err));
      button.disabled = false;
    }
  }

  async function addPasskey(button, nameEl, statusEl) {
    button.disabled = true;
    show(statusEl, "Follow your browser's prompt to create the passkey…");
    try {
      var opts = await post("/v1/webauthn/register/begin");
      var pk = opts.publicKey;
      pk.challenge = toBuffer(pk.challenge);
      pk.user.id = toBuffer(pk.user.id);
      (pk.excludeCredentials || []).forEach(function (c) {
        c.id = toBuffer(c.id);
      });
      var cred = await navigator.credentials.create({ publicKey: pk });
      await post("/v1/webauthn/register/finish", {
        name: nameEl ? nameEl.value : "",
        credential: credentialJSON(cred),
      });
      show(statusEl, "Passkey added.");
      window.location.assign("/account");
    } catch (err) {
      show(statusEl, "Adding the passkey failed: " + describe(err));
      button.disabled = false;
    }
  }

  function init() {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      return;
    }
    var statusEl = document.getElementById("passkey-status");
    var login = document.getElementById("passkey-login");
    if (login) {
      document.getElementById("passkey-login-box").hidden = false;
      login.addEventListener("click", function () {
        signIn(login, statusEl);
      });
    }
    var add = document.getElementById("passkey-add");
    if (add) {
      document.getElementById("passkey-add-box").hidden = false;
      add.addEventListener("click", function () {
        addPasskey(add, document.getElementById("passkey-name"), statusEl);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
