package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
)

// SSOStateCookie holds the state between Redirect and Callback.
// It is a __Secure- cookie (it is scoped to the callback path, which a
// __Host- cookie cannot be).
const SSOStateCookie = "__Secure-mc_sso_state"

// ssoStateTTL is how long a user has to sign in at MCIAS (password, TOTP,
// passkey) before the callback is refused.
const ssoStateTTL = 10 * time.Minute

// maxSSOCode bounds the code accepted from the callback URL.
const maxSSOCode = 256

// Errors returned by SSOClient.Callback. Both mean the user should start
// the login again; MCIAS being unreachable is auth.ErrUnavailable.
var (
	// ErrSSOState: the callback's state is missing or is not the one this
	// browser was sent off with (a forged or stale callback).
	ErrSSOState = errors.New("sso: state missing or not matching; start the login again")
	// ErrSSOCode: the callback carries no code, or MCIAS refused it
	// (unknown, used, expired or for another client).
	ErrSSOCode = errors.New("sso: authorization code refused; start the login again")
)

// SSOClient is the relying-party side of MCIAS's authorization-code flow
// (PLATFORM.md §5) for a web UI registered in MCIAS's [[sso_clients]].
// Mount Redirect on the "Sign in with MCIAS" route and Callback's caller on
// the path of RedirectURI; put the token Callback returns in the session
// with SetSession.
type SSOClient struct {
	// MCIASURL is MCIAS's base URL, e.g. https://mcias.svc.example:8443.
	MCIASURL string
	// ClientID and RedirectURI are exactly what MCIAS has registered.
	ClientID    string
	RedirectURI string
	// HTTPClient makes the code exchange; it must trust MCIAS's CA. Nil
	// uses the system roots with a 10 s timeout.
	HTTPClient *http.Client
}

// callbackPath scopes the state cookie to the callback, the only place it
// is read.
func (c *SSOClient) callbackPath() string {
	u, err := url.Parse(c.RedirectURI)
	if err != nil || u.Path == "" {
		return "/"
	}
	return u.Path
}

func (c *SSOClient) stateCookie(value string, maxAge int) *http.Cookie {
	// SameSite=Lax, not Strict: MCIAS's redirect back is a cross-site
	// top-level navigation, on which Strict cookies are not sent.
	return &http.Cookie{
		Name: SSOStateCookie, Value: value, Path: c.callbackPath(), MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	}
}

// Redirect starts a login: it stores a fresh random state in a short-lived
// cookie scoped to the callback path and sends the browser to MCIAS's
// /sso/authorize.
func (c *SSOClient) Redirect(w http.ResponseWriter, r *http.Request) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	state := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, c.stateCookie(state, int(ssoStateTTL/time.Second)))
	q := url.Values{"client_id": {c.ClientID}, "redirect_uri": {c.RedirectURI}, "state": {state}}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, strings.TrimRight(c.MCIASURL, "/")+"/sso/authorize?"+q.Encode(), http.StatusFound)
}

// Callback finishes a login on the redirect URI: the state query parameter
// must equal the state cookie (compared in constant time; the cookie is
// cleared either way, so a state works once), then the code is exchanged
// at MCIAS's POST /v1/sso/token. It returns the token for the caller to
// store with SetSession.
func (c *SSOClient) Callback(w http.ResponseWriter, r *http.Request) (auth.Token, error) {
	cookie, cookieErr := r.Cookie(SSOStateCookie)
	http.SetCookie(w, c.stateCookie("", -1))
	q := r.URL.Query()
	state := q.Get("state")
	if cookieErr != nil || cookie.Value == "" || state == "" ||
		subtle.ConstantTimeCompare([]byte(state), []byte(cookie.Value)) != 1 {
		return auth.Token{}, ErrSSOState
	}
	code := q.Get("code")
	if code == "" || len(code) > maxSSOCode {
		return auth.Token{}, fmt.Errorf("%w: the callback has no usable code", ErrSSOCode)
	}
	return c.exchange(r.Context(), code)
}

func (c *SSOClient) exchange(ctx context.Context, code string) (auth.Token, error) {
	body, err := json.Marshal(map[string]string{"code": code, "client_id": c.ClientID, "redirect_uri": c.RedirectURI})
	if err != nil {
		return auth.Token{}, err
	}
	endpoint := strings.TrimRight(c.MCIASURL, "/") + "/v1/sso/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return auth.Token{}, fmt.Errorf("sso exchange: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req) //nolint:gosec // the URL is the operator-configured MCIAS, not request input
	if err != nil {
		return auth.Token{}, fmt.Errorf("sso exchange: %w: %w", auth.ErrUnavailable, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return auth.Token{}, fmt.Errorf("sso exchange: %w: read answer: %w", auth.ErrUnavailable, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusBadRequest:
		return auth.Token{}, fmt.Errorf("%w: MCIAS answered: %s", ErrSSOCode, auth.ErrorMessage(data))
	default:
		return auth.Token{}, fmt.Errorf("sso exchange: %w: MCIAS answered %d: %s", auth.ErrUnavailable, resp.StatusCode, auth.ErrorMessage(data))
	}
	var tok auth.Token
	if err := json.Unmarshal(data, &tok); err != nil || tok.Token == "" {
		return auth.Token{}, fmt.Errorf("sso exchange: %w: malformed answer", auth.ErrUnavailable)
	}
	return tok, nil
}
