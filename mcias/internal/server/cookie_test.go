package server_test

import (
	"net/http"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/auth"
)

// TestAPIIgnoresSessionCookie: the JSON API has no CSRF protection, so the
// web UI's session cookie — which a browser sends along with any same-site
// request — must not authenticate there; only a bearer header does.
func TestAPIIgnoresSessionCookie(t *testing.T) {
	h := start(t, "")
	tok := h.login(t, adminUser, adminPassword)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.base+"/v1/accounts",
		strings.NewReader(`{"username":"mallory","account_type":"system"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: auth.DefaultCookieName, Value: tok})
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("cookie-authenticated API call answered %d, want 401", resp.StatusCode)
	}
	if code, _ := h.rest(t, http.MethodGet, "/v1/accounts/mallory", tok, nil); code != http.StatusNotFound {
		t.Fatalf("the refused call created the account (GET answered %d)", code)
	}
}
