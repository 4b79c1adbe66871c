package server

import (
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// SSOClient is one [[sso_clients]] entry: a web UI that logs its users in
// through MCIAS with the authorization-code flow.
type SSOClient struct {
	// ClientID names the client in /sso/authorize and /v1/sso/token.
	ClientID string `toml:"client_id"`
	// RedirectURI is where MCIAS sends the browser back with the code. A
	// request must present exactly this string, byte for byte.
	RedirectURI string `toml:"redirect_uri"`
	// ServiceName is the service_name login policy sees for this client.
	ServiceName string `toml:"service_name"`
}

// maxSSOState bounds the opaque state a client round-trips through the
// browser; it only needs to hold a random nonce.
const maxSSOState = 512

// maxRedirectURI bounds a registered redirect URI.
const maxRedirectURI = 2048

var ssoNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// validateSSOClients checks [[sso_clients]] at load: names, unique client
// IDs and redirect URIs that are absolute https URLs (http only for a
// loopback host) without user info or fragment and without their own code
// or state parameter, which the redirect appends.
func validateSSOClients(clients []SSOClient) error {
	seen := map[string]bool{}
	for i, c := range clients {
		key := fmt.Sprintf("sso_clients[%d]", i)
		if !ssoNameRe.MatchString(c.ClientID) {
			return fmt.Errorf("%s.client_id %q: expected 1-64 of a-z 0-9 . _ - starting with a letter or digit", key, c.ClientID)
		}
		if seen[c.ClientID] {
			return fmt.Errorf("%s.client_id %q: registered twice", key, c.ClientID)
		}
		seen[c.ClientID] = true
		if !ssoNameRe.MatchString(c.ServiceName) {
			return fmt.Errorf("%s.service_name %q: expected 1-64 of a-z 0-9 . _ - starting with a letter or digit", key, c.ServiceName)
		}
		if err := validateRedirectURI(c.RedirectURI); err != nil {
			return fmt.Errorf("%s.redirect_uri %q: %w", key, c.RedirectURI, err)
		}
	}
	return nil
}

func validateRedirectURI(raw string) error {
	if raw == "" || len(raw) > maxRedirectURI {
		return fmt.Errorf("expected an absolute https:// URL of at most %d bytes", maxRedirectURI)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return errors.New("expected an absolute https:// URL (http:// only for a loopback host)")
	}
	if u.Host == "" || u.Opaque != "" {
		return errors.New("expected an absolute URL with a host")
	}
	if u.User != nil {
		return errors.New("must not carry user information")
	}
	if strings.Contains(raw, "#") {
		return errors.New("must not have a fragment")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	if q.Has("code") || q.Has("state") {
		return errors.New("must not have its own code or state parameter; MCIAS adds them")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ssoClient finds a registered client.
func ssoClient(clients []SSOClient, id string) (identity.SSOClient, bool) {
	for _, c := range clients {
		if c.ClientID == id {
			return identity.SSOClient{ClientID: c.ClientID, RedirectURI: c.RedirectURI, ServiceName: c.ServiceName}, true
		}
	}
	return identity.SSOClient{}, false
}

// single returns the only value of a query parameter; absent, empty or
// repeated parameters are refused, so no two parts of the stack can read
// different values.
func single(q url.Values, key string) (string, bool) {
	v := q[key]
	if len(v) != 1 || v[0] == "" {
		return "", false
	}
	return v[0], true
}

// ssoAuthorize is GET /sso/authorize?client_id&redirect_uri&state. Any
// problem with the request is an error page: MCIAS never redirects to a
// URI that is not registered exactly. Without a valid session the browser
// goes to the login page and comes back here afterwards.
func (h *web) ssoAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, _ := single(q, "client_id")
	client, ok := ssoClient(h.cfg.SSOClients, id)
	if !ok {
		ssoPage(w, http.StatusBadRequest, "Unknown application",
			"The application that sent you here is not registered with MCIAS (unknown or missing client_id).")
		return
	}
	if redirect, ok := single(q, "redirect_uri"); !ok || redirect != client.RedirectURI {
		ssoPage(w, http.StatusBadRequest, "Invalid request",
			"The redirect_uri does not match the one registered for this application.")
		return
	}
	state, ok := single(q, "state")
	if !ok || len(state) > maxSSOState {
		ssoPage(w, http.StatusBadRequest, "Invalid request",
			fmt.Sprintf("The request needs exactly one state parameter of 1 to %d bytes.", maxSSOState))
		return
	}

	var caller *auth.Identity
	if c, err := r.Cookie(auth.DefaultCookieName); err == nil && c.Value != "" {
		caller, err = h.svc.ValidateToken(r.Context(), c.Value)
		if err != nil && !errors.Is(err, identity.ErrInvalidToken) {
			h.logger.Error("sso authorize: validate session", "error", err)
			ssoPage(w, http.StatusInternalServerError, "Something went wrong", "MCIAS could not check your session. Try again.")
			return
		}
	}
	if caller == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}

	code, err := h.svc.IssueSSOCode(r.Context(), caller, client)
	switch {
	case errors.Is(err, identity.ErrPolicyDenied):
		ssoPage(w, http.StatusForbidden, "Access denied",
			fmt.Sprintf("Login policy does not allow %s to sign in to %s.", caller.Username, client.ServiceName))
		return
	case err != nil:
		h.logger.Error("sso authorize: issue code", "error", err)
		ssoPage(w, http.StatusInternalServerError, "Something went wrong", "MCIAS could not complete the sign-in. Try again.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	// Not an open redirect: the target is the registered URI, byte for
	// byte; only the query-escaped state comes from the request.
	http.Redirect(w, r, withCode(client.RedirectURI, code, state), http.StatusFound) //nolint:gosec // see above
}

// withCode appends code and state to the registered redirect URI, keeping
// its own query exactly as registered (validateRedirectURI guarantees it
// has no code or state of its own and no fragment).
func withCode(redirectURI, code, state string) string {
	sep := "?"
	if i := strings.IndexByte(redirectURI, '?'); i >= 0 {
		sep = "&"
		if i == len(redirectURI)-1 || strings.HasSuffix(redirectURI, "&") {
			sep = ""
		}
	}
	return redirectURI + sep + "code=" + url.QueryEscape(code) + "&state=" + url.QueryEscape(state)
}

var ssoPageTmpl = template.Must(template.New("sso").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}} — MCIAS</title></head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
</body>
</html>
`))

// ssoPage answers a browser with a small self-contained error page.
func ssoPage(w http.ResponseWriter, status int, title, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = ssoPageTmpl.Execute(w, struct{ Title, Message string }{title, message})
}
