package server_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/web"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/server"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// skewClock is a clock the test can move forward.
type skewClock struct{ skew atomic.Int64 }

func (c *skewClock) now() time.Time          { return time.Now().Add(time.Duration(c.skew.Load())) }
func (c *skewClock) advance(d time.Duration) { c.skew.Add(int64(d)) }

// ssoHarness is a real MCIAS (Build on service.Run, on TLS loopback
// listeners) whose identity clock the test controls, with two
// registered SSO clients, and a browser: an HTTPS client with a cookie jar
// that does not follow redirects, so each hop can be checked.
type ssoHarness struct {
	*harness
	clock   *skewClock
	browser *http.Client
	jar     http.CookieJar
	// wiki's redirect URI carries a query of its own; board's service name
	// is denied by a policy the tests add.
	wiki, board server.SSOClient
	// rpLn is bound before MCIAS starts so the wiki redirect URI can name
	// it; TestSSOClientHelper serves the relying party on it.
	rpLn net.Listener

	mu      sync.Mutex
	secrets []string // codes and tokens seen, which the log must not show
}

func (h *ssoHarness) secret(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, s)
}

func startSSO(t *testing.T) *ssoHarness {
	t.Helper()
	rpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rpLn.Close() })
	wiki := server.SSOClient{
		ClientID:    "wiki",
		RedirectURI: "https://" + rpLn.Addr().String() + "/sso/callback?tenant=a%2Fb&x=1",
		ServiceName: "wiki",
	}
	board := server.SSOClient{ClientID: "board", RedirectURI: "https://board.example/sso/callback", ServiceName: "board"}
	var extra strings.Builder
	for _, c := range []server.SSOClient{wiki, board} {
		fmt.Fprintf(&extra, "\n[[sso_clients]]\nclient_id = %q\nredirect_uri = %q\nservice_name = %q\n", c.ClientID, c.RedirectURI, c.ServiceName)
	}
	tc := newConfig(t, extra.String())
	bootstrap(t, tc.cfg)

	clk := &skewClock{}
	h := &ssoHarness{clock: clk, wiki: wiki, board: board, rpLn: rpLn}
	var logs *syncbuf.Buffer
	// Registered before the server starts, so it runs after the server
	// has stopped (cleanups run last first) and sees the whole log.
	t.Cleanup(func() {
		if logs == nil {
			return
		}
		log := logs.String()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, s := range append(h.secrets, userPassword, adminPassword) {
			if strings.Contains(log, s) {
				t.Errorf("the server log shows a code, token or password")
			}
		}
	})
	h.harness, logs = serve(t, tc, server.BuildAt(clk.now))
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.browser = &http.Client{
		Transport: h.http.Transport, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	h.jar = jar
	return h
}

// signIn stands in for the web login page: it logs in over the API and
// puts the token in the browser's MCIAS session cookie.
func (h *ssoHarness) signIn(t *testing.T, user, password string) {
	t.Helper()
	tok := h.login(t, user, password)
	h.secret(tok)
	u, err := url.Parse(h.base)
	if err != nil {
		t.Fatal(err)
	}
	h.jar.SetCookies(u, []*http.Cookie{{Name: auth.DefaultCookieName, Value: tok, Path: "/", Secure: true, HttpOnly: true}})
}

// get is one browser hop: status, Location and body.
func (h *ssoHarness) get(t *testing.T, rawURL string) (int, string, string) {
	t.Helper()
	resp, err := h.browser.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func authorizePath(c server.SSOClient, state string) string {
	return "/sso/authorize?" + url.Values{"client_id": {c.ClientID}, "redirect_uri": {c.RedirectURI}, "state": {state}}.Encode()
}

// authorize runs the authorize step for a signed-in browser and returns the
// code from the redirect, checking that it goes to the registered URI with
// its own query intact and the state unchanged.
func (h *ssoHarness) authorize(t *testing.T, c server.SSOClient, state string) string {
	t.Helper()
	code, loc, body := h.get(t, h.base+authorizePath(c, state))
	if code != http.StatusFound {
		t.Fatalf("authorize = %d %s; want 302", code, body)
	}
	prefix := c.RedirectURI + "&"
	if !strings.Contains(c.RedirectURI, "?") {
		prefix = c.RedirectURI + "?"
	}
	if !strings.HasPrefix(loc, prefix) {
		t.Fatalf("redirect to %q; want the registered %q with code and state appended", loc, c.RedirectURI)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("state") != state || len(q["code"]) != 1 || len(q.Get("code")) != 43 {
		t.Fatalf("redirect query %v; want state %q and one 43-character code", q, state)
	}
	h.secret(q.Get("code"))
	return q.Get("code")
}

type exchangeBody struct {
	Code        string `json:"code"`
	ClientID    string `json:"client_id"`
	RedirectURI string `json:"redirect_uri"`
}

// exchange posts a code to /v1/sso/token. It is safe to call from any
// goroutine: a transport failure is an error, not t.Fatal.
func (h *ssoHarness) exchange(c server.SSOClient, code string) (int, []byte, error) {
	data, err := json.Marshal(exchangeBody{Code: code, ClientID: c.ClientID, RedirectURI: c.RedirectURI})
	if err != nil {
		return 0, nil, err
	}
	resp, err := h.http.Post(h.base+"/v1/sso/token", "application/json", bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode == http.StatusOK {
		var tok issued
		if json.Unmarshal(body, &tok) == nil {
			h.secret(tok.Token)
		}
	}
	return resp.StatusCode, body, err
}

// mustExchange is exchange on the test goroutine.
func (h *ssoHarness) mustExchange(t *testing.T, c server.SSOClient, code string) (int, []byte) {
	t.Helper()
	sc, body, err := h.exchange(c, code)
	if err != nil {
		t.Fatalf("POST /v1/sso/token: %v", err)
	}
	return sc, body
}

func wantInvalidGrant(t *testing.T, what string, code int, body []byte) {
	t.Helper()
	if code != http.StatusBadRequest || !strings.Contains(errorOf(t, body), "invalid_grant") {
		t.Fatalf("%s = %d %s; want 400 invalid_grant", what, code, body)
	}
}

func TestSSOFlow(t *testing.T) {
	h := startSSO(t)
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice", "user")

	// Without a session the browser goes to the login page, which will
	// send it back to exactly this authorize request.
	start := authorizePath(h.wiki, "s1")
	code, loc, _ := h.get(t, h.base+start)
	if code != http.StatusFound || loc != "/login?next="+url.QueryEscape(start) {
		t.Fatalf("unauthenticated authorize = %d to %q; want 302 to /login?next=%s", code, loc, url.QueryEscape(start))
	}
	next, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	back := next.Query().Get("next")

	// An invalid session is no session.
	u, _ := url.Parse(h.base)
	h.jar.SetCookies(u, []*http.Cookie{{Name: auth.DefaultCookieName, Value: "not-a-token", Path: "/"}})
	if code, loc, _ := h.get(t, h.base+back); code != http.StatusFound || !strings.HasPrefix(loc, "/login?next=") {
		t.Fatalf("authorize with a bad session = %d to %q; want the login page", code, loc)
	}

	h.signIn(t, "alice", userPassword)
	c := h.authorize(t, h.wiki, "s1")

	var tok issued
	sc, body := h.mustExchange(t, h.wiki, c)
	if sc != http.StatusOK {
		t.Fatalf("exchange = %d %s", sc, body)
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" || time.Until(tok.ExpiresAt) < 11*time.Hour {
		t.Fatalf("exchange answer %s: %v; want a login token for about 12h", body, err)
	}
	if v := h.validate(t, tok.Token); !v.Valid || v.Username != "alice" || v.AccountType != "human" {
		t.Fatalf("validate the SSO token = %+v", v)
	}
	var list struct {
		Tokens []identity.TokenInfo `json:"tokens"`
	}
	h.call(t, http.MethodGet, "/v1/accounts/alice/tokens", tok.Token, nil, http.StatusOK, &list)
	kind := ""
	for _, ti := range list.Tokens {
		if ti.JTI == jtiOf(t, tok.Token) {
			kind = ti.Kind
		}
	}
	if kind != store.KindSSO {
		t.Fatalf("token kind %q; want %q", kind, store.KindSSO)
	}

	// Replay: refused, nothing issued, and the token the code produced is
	// revoked because the code evidently leaked.
	sc, body = h.mustExchange(t, h.wiki, c)
	wantInvalidGrant(t, "replayed exchange", sc, body)
	if v := h.validate(t, tok.Token); v.Valid {
		t.Fatal("the token of a replayed code is still valid")
	}

	// gRPC mirrors the exchange, without a token (public).
	sso := mciasv1.NewSSOServiceClient(h.conn)
	c = h.authorize(t, h.wiki, "s2")
	res, err := sso.ExchangeCode(t.Context(), &mciasv1.ExchangeCodeRequest{Code: c, ClientId: h.wiki.ClientID, RedirectUri: h.wiki.RedirectURI})
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	if v := h.validate(t, res.GetToken()); !v.Valid || v.Username != "alice" || !v.ExpiresAt.Equal(res.GetExpiresAt().AsTime()) {
		t.Fatalf("validate the gRPC SSO token = %+v (expires %v)", v, res.GetExpiresAt().AsTime())
	}
	_, err = sso.ExchangeCode(t.Context(), &mciasv1.ExchangeCodeRequest{Code: c, ClientId: h.wiki.ClientID, RedirectUri: h.wiki.RedirectURI})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "invalid_grant") {
		t.Fatalf("gRPC replay: %v; want InvalidArgument invalid_grant", err)
	}
	if v := h.validate(t, res.GetToken()); v.Valid {
		t.Fatal("the token of a code replayed over gRPC is still valid")
	}
}

func TestSSOAuthorizeRefusesWithoutRedirect(t *testing.T) {
	h := startSSO(t)
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice", "user")
	h.signIn(t, "alice", userPassword)
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return "/sso/authorize?" + v.Encode()
	}
	r := h.wiki.RedirectURI
	tests := map[string]string{
		"unknown client":            q("client_id", "nope", "redirect_uri", r, "state", "s"),
		"no client":                 q("redirect_uri", r, "state", "s"),
		"two client ids":            q("client_id", "wiki", "client_id", "board", "redirect_uri", r, "state", "s"),
		"no redirect_uri":           q("client_id", "wiki", "state", "s"),
		"other client's redirect":   q("client_id", "wiki", "redirect_uri", h.board.RedirectURI, "state", "s"),
		"trailing slash":            q("client_id", "wiki", "redirect_uri", strings.Replace(r, "/sso/callback", "/sso/callback/", 1), "state", "s"),
		"extra query":               q("client_id", "wiki", "redirect_uri", r+"&y=2", "state", "s"),
		"query without its escape":  q("client_id", "wiki", "redirect_uri", strings.Replace(r, "a%2Fb", "a/b", 1), "state", "s"),
		"upper-case scheme":         q("client_id", "wiki", "redirect_uri", "HTTPS"+strings.TrimPrefix(r, "https"), "state", "s"),
		"http instead of https":     q("client_id", "wiki", "redirect_uri", "http"+strings.TrimPrefix(r, "https"), "state", "s"),
		"two redirect_uris":         q("client_id", "wiki", "redirect_uri", r, "redirect_uri", "https://evil.example/", "state", "s"),
		"no state":                  q("client_id", "wiki", "redirect_uri", r),
		"empty state":               q("client_id", "wiki", "redirect_uri", r, "state", ""),
		"oversized state":           q("client_id", "wiki", "redirect_uri", r, "state", strings.Repeat("s", 513)),
		"two states":                q("client_id", "wiki", "redirect_uri", r, "state", "a", "state", "b"),
		"attacker redirect":         q("client_id", "wiki", "redirect_uri", "https://evil.example/cb", "state", "s"),
		"registered uri of nothing": q("client_id", "", "redirect_uri", r, "state", "s"),
	}
	for name, path := range tests {
		code, loc, body := h.get(t, h.base+path)
		if code != http.StatusBadRequest || loc != "" || !strings.Contains(body, "<h1>") {
			t.Errorf("%s: %d Location %q; want a 400 page and no redirect", name, code, loc)
		}
	}
	// The largest allowed state still works.
	if c := h.authorize(t, h.wiki, strings.Repeat("s", 512)); c == "" {
		t.Fatal("no code for a 512-byte state")
	}
}

func TestSSOExchangeRefusals(t *testing.T) {
	h := startSSO(t)
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice", "user")
	h.signIn(t, "alice", userPassword)
	c := h.authorize(t, h.wiki, "s")
	other := c[:42] + "A"
	if other == c {
		other = c[:42] + "E"
	}

	for name, b := range map[string]exchangeBody{
		"other redirect_uri":    {Code: c, ClientID: "wiki", RedirectURI: h.wiki.RedirectURI + "&y=2"},
		"other client's uri":    {Code: c, ClientID: "wiki", RedirectURI: h.board.RedirectURI},
		"other client":          {Code: c, ClientID: "board", RedirectURI: h.wiki.RedirectURI},
		"other client, its uri": {Code: c, ClientID: "board", RedirectURI: h.board.RedirectURI},
		"unknown code":          {Code: other, ClientID: "wiki", RedirectURI: h.wiki.RedirectURI},
	} {
		sc, body := h.rest(t, http.MethodPost, "/v1/sso/token", "", b)
		wantInvalidGrant(t, name, sc, body)
	}
	for name, b := range map[string]exchangeBody{
		"unknown client": {Code: c, ClientID: "nope", RedirectURI: h.wiki.RedirectURI},
		"no client":      {Code: c, RedirectURI: h.wiki.RedirectURI},
	} {
		sc, body := h.rest(t, http.MethodPost, "/v1/sso/token", "", b)
		if sc != http.StatusBadRequest || !strings.Contains(errorOf(t, body), "invalid_client") {
			t.Fatalf("%s = %d %s; want 400 invalid_client", name, sc, body)
		}
	}
	_, err := mciasv1.NewSSOServiceClient(h.conn).ExchangeCode(t.Context(),
		&mciasv1.ExchangeCodeRequest{Code: c, ClientId: "board", RedirectUri: h.wiki.RedirectURI})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC exchange by another client: %v; want InvalidArgument", err)
	}
	if sc, body := h.rest(t, http.MethodPost, "/v1/sso/token", "", `{"code":"x","client_id":"wiki","redirect_uri":"y","extra":1}`); sc != http.StatusBadRequest {
		t.Fatalf("unknown field = %d %s; want 400", sc, body)
	}

	// None of that consumed the code: the rightful client still can.
	if sc, body := h.mustExchange(t, h.wiki, c); sc != http.StatusOK {
		t.Fatalf("exchange after refused attempts = %d %s", sc, body)
	}
}

func TestSSOCodeExpires(t *testing.T) {
	h := startSSO(t)
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice", "user")
	h.signIn(t, "alice", userPassword)
	c := h.authorize(t, h.wiki, "s")
	h.clock.advance(identity.SSOCodeTTL + time.Second)
	sc, body := h.mustExchange(t, h.wiki, c)
	wantInvalidGrant(t, "exchange after 61 s", sc, body)
}

func TestSSOPolicyDeny(t *testing.T) {
	h := startSSO(t)
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice", "user")
	h.call(t, http.MethodPost, "/v1/policies", adminTok, policy.Rule{
		Priority: 10, Effect: policy.Deny, Actions: []string{policy.ActionLogin}, ServiceNames: []string{h.board.ServiceName},
	}, http.StatusCreated, nil)
	h.signIn(t, "alice", userPassword)

	code, loc, body := h.get(t, h.base+authorizePath(h.board, "s"))
	if code != http.StatusForbidden || loc != "" || !strings.Contains(body, "Access denied") {
		t.Fatalf("authorize for a denied service = %d Location %q %s; want a 403 page", code, loc, body)
	}
	// The same session still signs in to an allowed service.
	h.authorize(t, h.wiki, "s")
}

func TestSSOParallelExchange(t *testing.T) {
	h := startSSO(t)
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice", "user")
	h.signIn(t, "alice", userPassword)
	c := h.authorize(t, h.wiki, "s")

	const n = 6
	var (
		wg       sync.WaitGroup
		ok, lost atomic.Int32
	)
	ready := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-ready
			sc, body, err := h.exchange(h.wiki, c)
			switch {
			case err != nil:
				t.Errorf("parallel exchange: %v", err)
			case sc == http.StatusOK:
				ok.Add(1)
			case sc == http.StatusBadRequest && strings.Contains(string(body), "invalid_grant"):
				lost.Add(1)
			default:
				t.Errorf("parallel exchange = %d %s", sc, body)
			}
		})
	}
	close(ready)
	wg.Wait()
	if ok.Load() != 1 || lost.Load() != n-1 {
		t.Fatalf("%d exchanges succeeded and %d lost; want exactly 1 and %d", ok.Load(), lost.Load(), n-1)
	}
}

// TestSSOClientHelper runs mcdsl/web.SSOClient as a relying party against
// this MCIAS: redirect, sign-in, callback with state check, exchange.
func TestSSOClientHelper(t *testing.T) {
	h := startSSO(t)
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice", "user")

	cb, err := url.Parse(h.wiki.RedirectURI)
	if err != nil {
		t.Fatal(err)
	}
	rpBase := "https://" + cb.Host
	sso := &web.SSOClient{MCIASURL: h.base, ClientID: h.wiki.ClientID, RedirectURI: h.wiki.RedirectURI, HTTPClient: h.http}
	tokens := make(chan auth.Token, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/sso", sso.Redirect)
	mux.HandleFunc("GET /sso/callback", func(w http.ResponseWriter, r *http.Request) {
		tok, err := sso.Callback(w, r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tokens <- tok
		web.SetSession(w, "", tok.Token, tok.ExpiresAt)
		http.Redirect(w, r, "/", http.StatusFound)
	})
	pair := h.pki.Issue(t, "rp", "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	rp := httptest.NewUnstartedServer(mux)
	_ = rp.Listener.Close()
	rp.Listener = h.rpLn
	rp.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	rp.StartTLS()
	t.Cleanup(rp.Close)

	// The relying party sends the browser to MCIAS with a state cookie.
	code, loc, _ := h.get(t, rpBase+"/login/sso")
	if code != http.StatusFound || !strings.HasPrefix(loc, h.base+"/sso/authorize?") {
		t.Fatalf("RP login = %d to %q", code, loc)
	}
	// Not signed in at MCIAS yet: the login page, then back.
	code, next, _ := h.get(t, loc)
	if code != http.StatusFound || !strings.HasPrefix(next, "/login?next=") {
		t.Fatalf("authorize = %d to %q; want the login page", code, next)
	}
	h.signIn(t, "alice", userPassword)
	nu, err := url.Parse(next)
	if err != nil {
		t.Fatal(err)
	}
	code, callback, body := h.get(t, h.base+nu.Query().Get("next"))
	if code != http.StatusFound || !strings.HasPrefix(callback, h.wiki.RedirectURI+"&code=") {
		t.Fatalf("authorize after sign-in = %d to %q %s", code, callback, body)
	}
	// A forged callback (another state) is refused and burns the state
	// cookie, so the genuine one fails too; then a fresh login works.
	forged := callback[:strings.LastIndex(callback, "&state=")] + "&state=forged"
	if code, _, body := h.get(t, forged); code != http.StatusBadRequest || !strings.Contains(body, "state") {
		t.Fatalf("forged callback = %d %s; want 400 (state)", code, body)
	}
	if code, _, body := h.get(t, callback); code != http.StatusBadRequest || !strings.Contains(body, "state") {
		t.Fatalf("callback after its state was burnt = %d %s; want 400 (state)", code, body)
	}

	code, loc, _ = h.get(t, rpBase+"/login/sso")
	if code != http.StatusFound {
		t.Fatalf("second RP login = %d", code)
	}
	code, callback, body = h.get(t, loc)
	if code != http.StatusFound || !strings.HasPrefix(callback, h.wiki.RedirectURI+"&code=") {
		t.Fatalf("authorize with a session = %d to %q %s", code, callback, body)
	}
	if code, loc, body := h.get(t, callback); code != http.StatusFound || loc != "/" {
		t.Fatalf("callback = %d to %q %s", code, loc, body)
	}
	var tok auth.Token
	select {
	case tok = <-tokens:
	default:
		t.Fatal("the callback produced no token")
	}
	if v := h.validate(t, tok.Token); !v.Valid || v.Username != "alice" {
		t.Fatalf("RP session token = %+v", v)
	}
	// The callback URL works once: its state cookie is gone.
	if code, _, _ := h.get(t, callback); code != http.StatusBadRequest {
		t.Fatalf("replayed callback = %d; want 400", code)
	}
}

func TestSSOConfigValidation(t *testing.T) {
	good := `client_id = "wiki"
redirect_uri = "https://wiki.example/sso/callback"
service_name = "wiki"`
	tests := []struct {
		name, clients, want string
	}{
		{"ok", "[[sso_clients]]\n" + good, ""},
		{"ok loopback http", "[[sso_clients]]\nclient_id = \"dev\"\nredirect_uri = \"http://127.0.0.1:8080/cb\"\nservice_name = \"dev\"", ""},
		{"ok localhost http", "[[sso_clients]]\nclient_id = \"dev\"\nredirect_uri = \"http://localhost:8080/cb\"\nservice_name = \"dev\"", ""},
		{"ok ipv6 loopback http", "[[sso_clients]]\nclient_id = \"dev\"\nredirect_uri = \"http://[::1]:8080/cb\"\nservice_name = \"dev\"", ""},
		{"duplicate", "[[sso_clients]]\n" + good + "\n[[sso_clients]]\n" + good, `sso_clients[1].client_id "wiki": registered twice`},
		{"bad client_id", "[[sso_clients]]\nclient_id = \"Wiki!\"\nredirect_uri = \"https://w.example/cb\"\nservice_name = \"wiki\"", "sso_clients[0].client_id"},
		{"no service_name", "[[sso_clients]]\nclient_id = \"wiki\"\nredirect_uri = \"https://w.example/cb\"", "sso_clients[0].service_name"},
		{"http", "[[sso_clients]]\nclient_id = \"wiki\"\nredirect_uri = \"http://wiki.example/cb\"\nservice_name = \"wiki\"", "sso_clients[0].redirect_uri"},
		{"relative", "[[sso_clients]]\nclient_id = \"wiki\"\nredirect_uri = \"/cb\"\nservice_name = \"wiki\"", "sso_clients[0].redirect_uri"},
		{"no host", "[[sso_clients]]\nclient_id = \"wiki\"\nredirect_uri = \"https:///cb\"\nservice_name = \"wiki\"", "sso_clients[0].redirect_uri"},
		{"fragment", "[[sso_clients]]\nclient_id = \"wiki\"\nredirect_uri = \"https://w.example/cb#x\"\nservice_name = \"wiki\"", "fragment"},
		{"userinfo", "[[sso_clients]]\nclient_id = \"wiki\"\nredirect_uri = \"https://u:p@w.example/cb\"\nservice_name = \"wiki\"", "user information"},
		{"own code", "[[sso_clients]]\nclient_id = \"wiki\"\nredirect_uri = \"https://w.example/cb?code=1\"\nservice_name = \"wiki\"", "code or state"},
		{"javascript", "[[sso_clients]]\nclient_id = \"wiki\"\nredirect_uri = \"javascript:alert(1)\"\nservice_name = \"wiki\"", "sso_clients[0].redirect_uri"},
		{"unknown key", "[[sso_clients]]\n" + good + "\nsecret = \"x\"", "unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mcias.toml")
			body := fmt.Sprintf("[server]\nlisten_addr = \"127.0.0.1:0\"\ntls_cert = \"c\"\ntls_key = \"k\"\n[database]\npath = %q\n%s\n",
				filepath.Join(dir, "mcias.db"), tc.clients)
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := server.LoadConfig(path)
			if tc.want == "" {
				if err != nil || len(cfg.SSOClients) == 0 {
					t.Fatalf("LoadConfig: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadConfig error %v; want one naming the file and %q", err, tc.want)
			}
		})
	}
}

// TestSSOExampleConfig: the shipped example registers a valid client.
func TestSSOExampleConfig(t *testing.T) {
	cfg, err := server.LoadConfig("../../deploy/examples/mcias.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.SSOClients) != 1 || cfg.SSOClients[0].ClientID != "mcq" || cfg.SSOClients[0].ServiceName != "mcq" {
		t.Fatalf("example sso_clients = %+v", cfg.SSOClients)
	}
}
