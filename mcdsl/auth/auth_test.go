package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/auth/authtest"
	"git.metacircular.net/metacircular/mcdsl/config"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func setup(t *testing.T) (*authtest.Server, *auth.Client, *clock) {
	t.Helper()
	srv := authtest.New(t)
	srv.AddUser(authtest.User{Username: "kyle", Password: "correct horse", Roles: []string{"admin"}})
	srv.AddUser(authtest.User{Username: "guest", Password: "pw", Roles: []string{"guest"}, DenyServices: []string{"mcns"}})
	clk := &clock{now: time.Now()}
	c, err := auth.New(srv.Config("mcns", "env:test"), auth.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, clk
}

func TestLogin(t *testing.T) {
	srv, c, _ := setup(t)
	ctx := context.Background()
	tok, err := c.Login(ctx, "kyle", "correct horse", "")
	if err != nil || tok.Token == "" || tok.ExpiresAt.IsZero() {
		t.Fatalf("login: %+v %v", tok, err)
	}
	logins := srv.Logins()
	if logins[0].ServiceName != "mcns" || len(logins[0].Tags) != 1 || logins[0].Tags[0] != "env:test" {
		t.Fatalf("service_name/tags not sent: %+v", logins[0])
	}
	if _, err := c.Login(ctx, "kyle", "wrong", ""); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := c.Login(ctx, "nobody", "x", ""); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := c.Login(ctx, "guest", "pw", ""); !errors.Is(err, auth.ErrPolicyDenied) {
		t.Fatalf("policy deny: %v", err)
	}
}

func TestValidateCachedByHashAndExpires(t *testing.T) {
	srv, c, clk := setup(t)
	ctx := context.Background()
	tok, err := c.Login(ctx, "kyle", "correct horse", "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.ValidateToken(ctx, tok.Token)
	if err != nil || id.Username != "kyle" || !id.IsAdmin() || id.AccountType != "human" {
		t.Fatalf("validate: %+v %v", id, err)
	}
	if n := srv.Requests("/v1/token/validate"); n != 1 {
		t.Fatalf("requests = %d", n)
	}
	// Inside the window: answered from cache, no request.
	clk.Advance(29 * time.Second)
	if _, err := c.ValidateToken(ctx, tok.Token); err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests("/v1/token/validate"); n != 1 {
		t.Fatalf("second validation inside the window made a request (%d)", n)
	}
	// Revoked: still cached until the window ends, then rejected.
	srv.Revoke(tok.Token)
	if _, err := c.ValidateToken(ctx, tok.Token); err != nil {
		t.Fatalf("cached answer should hold inside the window: %v", err)
	}
	clk.Advance(2 * time.Second)
	if _, err := c.ValidateToken(ctx, tok.Token); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("revoked token after the window: %v", err)
	}
	if n := srv.Requests("/v1/token/validate"); n != 2 {
		t.Fatalf("requests = %d, want 2", n)
	}
	if _, err := c.ValidateToken(ctx, "garbage"); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("garbage token: %v", err)
	}
	if _, err := c.ValidateToken(ctx, ""); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("empty token: %v", err)
	}
}

func TestCacheKeepsIdentitiesApart(t *testing.T) {
	srv, c, _ := setup(t)
	ctx := context.Background()
	a := srv.Token("kyle")
	b := srv.Token("guest")
	ida, err := c.ValidateToken(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	idb, err := c.ValidateToken(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if ida.Username != "kyle" || idb.Username != "guest" {
		t.Fatalf("cache mixed identities: %s %s", ida.Username, idb.Username)
	}
	// A caller mutating the returned roles must not poison the cache.
	ida.Roles[0] = "guest"
	again, err := c.ValidateToken(ctx, a)
	if err != nil || !again.IsAdmin() {
		t.Fatalf("cache poisoned through returned slice: %+v %v", again, err)
	}
}

func TestUnavailable(t *testing.T) {
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	ts.Close()
	c, err := auth.New(config.MCIAS{ServerURL: ts.URL}, auth.Options{HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ValidateToken(context.Background(), "x")
	if !errors.Is(err, auth.ErrUnavailable) || auth.StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("dead MCIAS: %v", err)
	}
	if _, err := auth.New(config.MCIAS{}, auth.Options{}); err == nil {
		t.Fatal("empty server_url accepted")
	}
}

func TestMiddleware(t *testing.T) {
	srv, c, _ := setup(t)
	admin := srv.Token("kyle")
	guest := srv.Token("guest")
	var seen *auth.Identity
	h := auth.Middleware(c, auth.MiddlewareOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = auth.IdentityFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	bearerOnly := auth.Middleware(c, auth.MiddlewareOptions{BearerOnly: true})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	adminOnly := auth.Middleware(c, auth.MiddlewareOptions{Admin: true})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, tc := range []struct {
		name    string
		handler http.Handler
		header  string
		cookie  string
		want    int
	}{
		{"no token", h, "", "", 401},
		{"bad token", h, "Bearer nope", "", 401},
		{"wrong scheme", h, "Basic " + admin, "", 401},
		{"bearer", h, "Bearer " + admin, "", 204},
		{"cookie", h, "", guest, 204},
		{"admin ok", adminOnly, "Bearer " + admin, "", 204},
		{"admin denied", adminOnly, "Bearer " + guest, "", 403},
		{"cookie refused when bearer-only", bearerOnly, "", admin, 401},
		{"bearer accepted when bearer-only", bearerOnly, "Bearer " + admin, "", 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: auth.DefaultCookieName, Value: tc.cookie})
			}
			rec := httptest.NewRecorder()
			tc.handler.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.want, rec.Body)
			}
			if tc.want >= 400 && !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("error body not JSON: %s", rec.Body)
			}
		})
	}
	if seen == nil || seen.Username != "guest" {
		t.Fatalf("identity not in context: %+v", seen)
	}
}

// BenchmarkValidateTokenCached measures the hot path every authenticated
// request takes once its token is in the cache.
func BenchmarkValidateTokenCached(b *testing.B) {
	srv := authtest.New(b)
	srv.AddUser(authtest.User{Username: "svc", AccountType: auth.AccountSystem})
	tok := srv.Token("svc")
	c, err := auth.New(srv.Config("bench"), auth.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.ValidateToken(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.ValidateToken(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestLoginTOTPRequired: MCIAS's "totp code required" 401 is told apart
// from other 401s, and still counts as bad credentials.
func TestLoginTOTPRequired(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Username string `json:"username"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		msg := "invalid credentials"
		if body.Username == "tina" {
			msg = "totp code required"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"` + msg + `"}`))
	}))
	t.Cleanup(ts.Close)
	c, err := auth.New(config.MCIAS{ServerURL: ts.URL}, auth.Options{HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Login(context.Background(), "kyle", "pw", "")
	if !errors.Is(err, auth.ErrBadCredentials) || errors.Is(err, auth.ErrTOTPRequired) {
		t.Fatalf("plain 401: %v; want ErrBadCredentials only", err)
	}
	_, err = c.Login(context.Background(), "tina", "pw", "")
	if !errors.Is(err, auth.ErrTOTPRequired) || !errors.Is(err, auth.ErrBadCredentials) || auth.StatusCode(err) != http.StatusUnauthorized {
		t.Fatalf("totp 401: %v; want ErrTOTPRequired (a kind of ErrBadCredentials)", err)
	}
}
