package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/jsonapi"
	mcweb "git.metacircular.net/metacircular/mcdsl/web"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// The WebAuthn (passkey) ceremonies are hand-written JSON endpoints, not
// RPCs: they need the browser's navigator.credentials, and the
// authenticator signs the web origin into every answer, so only the web UI
// on a configured origin can take part. Listing, renaming and deleting
// stored passkeys is PasskeyService (passkey_grpc.go), with a generated
// REST face like every RPC.

// ceremonyCookie carries the ID of a passkey ceremony between its begin and
// finish requests; the challenge itself stays on the server.
const ceremonyCookie = "__Secure-mc_webauthn"

// errPasskeysOff answers the ceremonies when [webauthn] is not configured.
var errPasskeysOff = apierr.New(apierr.NotFound, "passkeys are not enabled on this server (no [webauthn] rp_id)")

// enabled answers 404 when passkeys are not configured.
func (h *web) enabled(w http.ResponseWriter) bool {
	if h.passkeys == nil {
		apierr.WriteHTTP(w, h.logger, errPasskeysOff)
		return false
	}
	return true
}

// fail answers a hand-written JSON endpoint's error the way the REST
// gateway answers an RPC's.
func (h *web) fail(w http.ResponseWriter, err error) { apierr.WriteHTTP(w, h.logger, err) }

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

// signedInCaller is the identity auth.Middleware put in the request.
func signedInCaller(r *http.Request) *auth.Identity {
	id, _ := auth.IdentityFrom(r.Context())
	return id
}

// registerBegin is POST /v1/webauthn/register/begin: options for
// navigator.credentials.create, for the caller's own account.
func (h *web) registerBegin(w http.ResponseWriter, r *http.Request) {
	if !h.enabled(w) {
		return
	}
	id, opts, err := h.passkeys.BeginRegistration(r.Context(), signedInCaller(r))
	if err != nil {
		h.fail(w, err)
		return
	}
	setCeremony(w, id)
	jsonapi.Write(w, http.StatusOK, opts)
}

// registerFinish is POST /v1/webauthn/register/finish
// {"name", "credential": PublicKeyCredential} → 201 passkey.
func (h *web) registerFinish(w http.ResponseWriter, r *http.Request) {
	if !h.enabled(w) {
		return
	}
	ceremony := takeCeremony(w, r)
	var b struct {
		Name       string          `json:"name"`
		Credential json.RawMessage `json:"credential"`
	}
	if err := jsonapi.Decode(w, r, &b, identity.ErrInvalid); err != nil {
		h.fail(w, err)
		return
	}
	info, err := h.passkeys.FinishRegistration(r.Context(), signedInCaller(r), ceremony, b.Name, b.Credential)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusCreated, info)
}

// loginBegin is POST /v1/webauthn/login/begin: options for
// navigator.credentials.get (usernameless).
func (h *web) loginBegin(w http.ResponseWriter, r *http.Request) {
	if !h.enabled(w) {
		return
	}
	id, opts, err := h.passkeys.BeginLogin(r.Context(), r.RemoteAddr)
	if err != nil {
		h.fail(w, err)
		return
	}
	setCeremony(w, id)
	jsonapi.Write(w, http.StatusOK, opts)
}

// loginFinish is POST /v1/webauthn/login/finish (PublicKeyCredential) →
// {token, expires_at}, and the same token as the browser's session cookie.
func (h *web) loginFinish(w http.ResponseWriter, r *http.Request) {
	if !h.enabled(w) {
		return
	}
	ceremony := takeCeremony(w, r)
	body, err := readBody(w, r)
	if err != nil {
		h.fail(w, err)
		return
	}
	iss, err := h.passkeys.FinishLogin(r.Context(), ceremony, body, r.RemoteAddr)
	if err != nil {
		h.fail(w, err)
		return
	}
	mcweb.SetSession(w, "", iss.Token, iss.ExpiresAt)
	jsonapi.Write(w, http.StatusOK, iss)
}
