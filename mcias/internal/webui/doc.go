// Package webui is MCIAS's web UI: server-rendered pages for signing in
// (password, TOTP, passkey), account self-service and administration. It
// translates forms into identity.Service calls with the caller taken from
// the session cookie; every rule stays in identity. Pages come from the
// embedded mcias/web templates and work without JavaScript, except the
// passkey buttons, which need the browser's WebAuthn API.
package webui
