package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"git.metacircular.net/metacircular/mcdsl/jsonapi"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/mcdsl/auth"
	mcweb "git.metacircular.net/metacircular/mcdsl/web"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/webui"
)

// WebAuthnConfig is the [webauthn] section: the passkey relying party.
// Without rp_id, passkeys are off and the web UI offers password sign-in
// only.
type WebAuthnConfig struct {
	// RPID is the relying party ID, normally MCIAS's host name.
	RPID string `toml:"rp_id"`
	// RPDisplayName is shown by browsers while creating a passkey
	// (default "MCIAS").
	RPDisplayName string `toml:"rp_display_name"`
	// RPOrigins are the exact origins (scheme://host[:port]) the web UI is
	// served on; ceremonies from any other origin fail.
	RPOrigins []string `toml:"rp_origins"`
}

// Enabled reports whether passkeys are configured.
func (c WebAuthnConfig) Enabled() bool { return c.RPID != "" || len(c.RPOrigins) > 0 }

func (c WebAuthnConfig) passkeys() identity.PasskeyConfig {
	return identity.PasskeyConfig{RPID: c.RPID, RPDisplayName: c.RPDisplayName, RPOrigins: c.RPOrigins}
}

// Validate checks the section when it is used; errors name the key.
func (c WebAuthnConfig) Validate() error {
	if !c.Enabled() {
		if c.RPDisplayName != "" {
			return errors.New("webauthn.rp_display_name is set but webauthn.rp_id is not")
		}
		return nil
	}
	if err := c.passkeys().Validate(); err != nil {
		return fmt.Errorf("webauthn.%w", err)
	}
	return nil
}

// ceremonyCookie carries the ID of a passkey ceremony between its begin and
// finish requests; the challenge itself stays on the server.
const ceremonyCookie = "mc_webauthn"

// webAPI serves the passkey REST endpoints.
type webAPI struct {
	*REST
	passkeys *identity.Passkeys // nil: not configured
}

// mountWeb adds the web UI (/, /login, /logout, /account, /admin/...,
// /static/...) and the passkey REST endpoints. Requests that would be
// authenticated by the session cookie must carry the CSRF token; bearer
// requests need not.
func (h *REST) mountWeb(r chi.Router) {
	api := webAPI{REST: h}
	if h.cfg.WebAuthn.Enabled() {
		pk, err := identity.NewPasskeys(h.svc, h.cfg.WebAuthn.passkeys())
		if err != nil {
			// LoadConfig validated the section, so this is a Config built
			// by hand; serve without passkeys rather than not at all.
			h.logger.Error("passkeys disabled", "error", err)
		} else {
			api.passkeys = pk
		}
	}
	ui, err := webui.New(webui.Options{Service: h.svc, Passkeys: api.passkeys, Logger: h.logger})
	if err != nil {
		h.logger.Error("web ui disabled", "error", err)
		return
	}
	ui.Mount(r)

	authed := auth.Middleware(h.svc, auth.MiddlewareOptions{})
	r.Group(func(r chi.Router) {
		r.Use(ui.CSRFUnlessBearer)
		r.Post("/v1/webauthn/login/begin", api.loginBegin)
		r.Post("/v1/webauthn/login/finish", api.loginFinish)
		r.Group(func(r chi.Router) {
			r.Use(authed)
			r.Post("/v1/webauthn/register/begin", api.registerBegin)
			r.Post("/v1/webauthn/register/finish", api.registerFinish)
			r.Get("/v1/accounts/{id}/passkeys", api.listPasskeys)
			r.Patch("/v1/accounts/{id}/passkeys/{credential}", api.renamePasskey)
			r.Delete("/v1/accounts/{id}/passkeys/{credential}", api.deletePasskey)
		})
	})
}

// enabled answers 404 when passkeys are not configured.
func (a webAPI) enabled(w http.ResponseWriter) bool {
	if a.passkeys == nil {
		jsonapi.Error(w, http.StatusNotFound, "passkeys are not enabled on this server (no [webauthn] rp_id)")
		return false
	}
	return true
}

func setCeremony(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: ceremonyCookie, Value: id, Path: "/v1/webauthn/", MaxAge: int(identity.DefaultCeremonyTTL / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// takeCeremony reads the ceremony ID and clears the cookie: a ceremony is
// finished once, successfully or not.
func takeCeremony(w http.ResponseWriter, r *http.Request) string {
	http.SetCookie(w, &http.Cookie{
		Name: ceremonyCookie, Value: "", Path: "/v1/webauthn/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	c, err := r.Cookie(ceremonyCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// readBody reads a bounded request body as is (a PublicKeyCredential in
// JSON, which browsers may extend with members the server does not know).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, jsonapi.MaxBody))
	if err != nil {
		return nil, fmt.Errorf("%w: request body: %v", identity.ErrInvalid, err) //nolint:errorlint // shown, not matched
	}
	return b, nil
}

// registerBegin is POST /v1/webauthn/register/begin: options for
// navigator.credentials.create, for the caller's own account.
func (a webAPI) registerBegin(w http.ResponseWriter, r *http.Request) {
	if !a.enabled(w) {
		return
	}
	id, opts, err := a.passkeys.BeginRegistration(r.Context(), caller(r))
	if err != nil {
		a.fail(w, err)
		return
	}
	setCeremony(w, id)
	jsonapi.Write(w, http.StatusOK, opts)
}

// registerFinish is POST /v1/webauthn/register/finish
// {"name", "credential": PublicKeyCredential} → 201 passkey.
func (a webAPI) registerFinish(w http.ResponseWriter, r *http.Request) {
	if !a.enabled(w) {
		return
	}
	ceremony := takeCeremony(w, r)
	var b struct {
		Name       string          `json:"name"`
		Credential json.RawMessage `json:"credential"`
	}
	if err := decode(w, r, &b); err != nil {
		a.fail(w, err)
		return
	}
	info, err := a.passkeys.FinishRegistration(r.Context(), caller(r), ceremony, b.Name, b.Credential)
	if err != nil {
		a.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusCreated, info)
}

// loginBegin is POST /v1/webauthn/login/begin: options for
// navigator.credentials.get (usernameless).
func (a webAPI) loginBegin(w http.ResponseWriter, r *http.Request) {
	if !a.enabled(w) {
		return
	}
	id, opts, err := a.passkeys.BeginLogin(r.Context(), r.RemoteAddr)
	if err != nil {
		a.fail(w, err)
		return
	}
	setCeremony(w, id)
	jsonapi.Write(w, http.StatusOK, opts)
}

// loginFinish is POST /v1/webauthn/login/finish (PublicKeyCredential) →
// {token, expires_at}, and the same token as the browser's session cookie.
func (a webAPI) loginFinish(w http.ResponseWriter, r *http.Request) {
	if !a.enabled(w) {
		return
	}
	ceremony := takeCeremony(w, r)
	body, err := readBody(w, r)
	if err != nil {
		a.fail(w, err)
		return
	}
	iss, err := a.passkeys.FinishLogin(r.Context(), ceremony, body, r.RemoteAddr)
	if err != nil {
		a.fail(w, err)
		return
	}
	mcweb.SetSession(w, "", iss.Token, iss.ExpiresAt)
	jsonapi.Write(w, http.StatusOK, iss)
}

// listPasskeys is GET /v1/accounts/{id}/passkeys.
func (a webAPI) listPasskeys(w http.ResponseWriter, r *http.Request) {
	id, err := a.accountID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	list, err := a.svc.ListPasskeys(r.Context(), caller(r), id)
	if err != nil {
		a.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, map[string]any{"passkeys": list})
}

// renamePasskey is PATCH /v1/accounts/{id}/passkeys/{credential} {"name"}.
func (a webAPI) renamePasskey(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Name string `json:"name"`
	}
	if err := decode(w, r, &b); err != nil {
		a.fail(w, err)
		return
	}
	id, err := a.accountID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	info, err := a.svc.RenamePasskey(r.Context(), caller(r), id, chi.URLParam(r, "credential"), b.Name)
	if err != nil {
		a.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, info)
}

// deletePasskey is DELETE /v1/accounts/{id}/passkeys/{credential}.
func (a webAPI) deletePasskey(w http.ResponseWriter, r *http.Request) {
	id, err := a.accountID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.svc.DeletePasskey(r.Context(), caller(r), id, chi.URLParam(r, "credential")); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
