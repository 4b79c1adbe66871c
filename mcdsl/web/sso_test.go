package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
)

// ssoStandIn is a TLS stand-in for MCIAS's POST /v1/sso/token that accepts
// one code for one client and redirect URI. The real server is tested with
// this helper in mcias/internal/server.
type ssoStandIn struct {
	srv       *httptest.Server
	exchanges atomic.Int32
	status    int // answer for a good code (0: 200)
}

const (
	standInCode  = "the-code"
	standInToken = "the-token"
	rpCallback   = "https://rp.example/sso/callback"
)

func newSSOStandIn(t *testing.T) *ssoStandIn {
	t.Helper()
	s := &ssoStandIn{}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/sso/token" {
			http.NotFound(w, r)
			return
		}
		s.exchanges.Add(1)
		var b map[string]string
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if b["code"] != standInCode || b["client_id"] != "rp" || b["redirect_uri"] != rpCallback {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid request: invalid_grant"}`))
			return
		}
		if s.status != 0 {
			w.WriteHeader(s.status)
			_, _ = w.Write([]byte(`{"error":"database is on fire"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(auth.Token{Token: standInToken, ExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *ssoStandIn) client() *SSOClient {
	return &SSOClient{MCIASURL: s.srv.URL + "/", ClientID: "rp", RedirectURI: rpCallback, HTTPClient: s.srv.Client()}
}

func cookieNamed(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("response sets no %s cookie (Set-Cookie: %q)", name, resp.Header.Values("Set-Cookie"))
	return nil
}

func TestSSORedirect(t *testing.T) {
	s := newSSOStandIn(t)
	c := s.client()
	rec := httptest.NewRecorder()
	c.Redirect(rec, httptest.NewRequest(http.MethodGet, "https://rp.example/login/sso", nil))
	resp := rec.Result()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d; want 302", resp.StatusCode)
	}
	ck := cookieNamed(t, resp, SSOStateCookie)
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/sso/callback" || ck.MaxAge <= 0 || ck.MaxAge > 3600 {
		t.Fatalf("state cookie %+v; want HttpOnly, Secure, SameSite=Lax, Path=/sso/callback, short MaxAge", ck)
	}
	if len(ck.Value) < 43 {
		t.Fatalf("state %q is too short to be 32 random bytes", ck.Value)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := loc.Scheme+"://"+loc.Host+loc.Path, s.srv.URL+"/sso/authorize"; got != want {
		t.Fatalf("redirect to %s; want %s", got, want)
	}
	q := loc.Query()
	if q.Get("client_id") != "rp" || q.Get("redirect_uri") != rpCallback || q.Get("state") != ck.Value {
		t.Fatalf("authorize query %v; want client_id, redirect_uri and the cookie's state", q)
	}

	// Every redirect draws a new state.
	rec2 := httptest.NewRecorder()
	c.Redirect(rec2, httptest.NewRequest(http.MethodGet, "https://rp.example/login/sso", nil))
	if cookieNamed(t, rec2.Result(), SSOStateCookie).Value == ck.Value {
		t.Fatal("two redirects used the same state")
	}
}

func TestSSOCallback(t *testing.T) {
	const state = "state-value-from-redirect"
	callback := func(query string, withCookie bool) *http.Request {
		r := httptest.NewRequest(http.MethodGet, rpCallback+"?"+query, nil)
		if withCookie {
			r.AddCookie(&http.Cookie{Name: SSOStateCookie, Value: state})
		}
		return r
	}
	good := "code=" + standInCode + "&state=" + state
	tests := []struct {
		name      string
		req       *http.Request
		status    int
		wantErr   error
		exchanged bool
	}{
		{"good", callback(good, true), 0, nil, true},
		{"state mismatch", callback("code="+standInCode+"&state=other", true), 0, ErrSSOState, false},
		{"state prefix", callback("code="+standInCode+"&state="+state[:5], true), 0, ErrSSOState, false},
		{"no state", callback("code="+standInCode, true), 0, ErrSSOState, false},
		{"no cookie", callback(good, false), 0, ErrSSOState, false},
		{"no code", callback("state="+state, true), 0, ErrSSOCode, false},
		{"code refused", callback("code=wrong&state="+state, true), 0, ErrSSOCode, true},
		{"mcias failing", callback(good, true), http.StatusInternalServerError, auth.ErrUnavailable, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSSOStandIn(t)
			s.status = tc.status
			rec := httptest.NewRecorder()
			tok, err := s.client().Callback(rec, tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Callback error %v; want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (tok.Token != standInToken || tok.ExpiresAt.IsZero()) {
				t.Fatalf("token %+v", tok)
			}
			if tc.wantErr != nil && tok.Token != "" {
				t.Fatalf("failed callback returned a token")
			}
			if got := s.exchanges.Load() > 0; got != tc.exchanged {
				t.Fatalf("exchanged %v; want %v", got, tc.exchanged)
			}
			ck := cookieNamed(t, rec.Result(), SSOStateCookie)
			if ck.MaxAge >= 0 || ck.Value != "" || ck.Path != "/sso/callback" {
				t.Fatalf("state cookie not cleared: %+v", ck)
			}
		})
	}
}

func TestSSOCallbackMCIASDown(t *testing.T) {
	s := newSSOStandIn(t)
	c := s.client()
	s.srv.Close()
	r := httptest.NewRequest(http.MethodGet, rpCallback+"?code=x&state=s", nil)
	r.AddCookie(&http.Cookie{Name: SSOStateCookie, Value: "s"})
	if _, err := c.Callback(httptest.NewRecorder(), r); !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("Callback with MCIAS down: %v; want ErrUnavailable", err)
	}
}
