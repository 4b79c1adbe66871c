package server_test

// Abuse cases from issue #9, each driven through real HTTPS (and gRPC where
// the RPC exists) against a running MCIAS: account-limit resets, tokens
// outliving a credential change, unbounded Argon2 memory, cross-origin
// "simple request" bodies, and typed secrets in the logs.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/server"
)

// fromAddr dials from a given loopback source address (Linux routes all
// of 127.0.0.0/8 to lo), so one test can be many clients as far as the
// per-IP throttle can tell.
func fromAddr(ip string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}
}

// restFrom is an HTTPS client whose connections come from ip.
func (h *harness) restFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: h.pki.ClientConfig(), ForceAttemptHTTP2: true, DialContext: fromAddr(ip)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// grpcFrom is an AuthService client whose connection comes from ip.
func (h *harness) grpcFrom(t *testing.T, ip string) mciasv1.AuthServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(h.conn.Target(), grpc.WithTransportCredentials(credentials.NewTLS(h.pki.ClientConfig())),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return fromAddr(ip)(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return mciasv1.NewAuthServiceClient(conn)
}

// post sends body with the given Content-Type (none when empty) and
// returns the response with its body read.
func post(t *testing.T, c *http.Client, u, contentType, body string, hdr map[string]string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	resp, data, err := tryPost(t.Context(), c, u, contentType, body, hdr, cookies...)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	return resp, data
}

// tryPost is post for goroutines other than the test's: it returns its
// error instead of failing the test.
func tryPost(ctx context.Context, c *http.Client, u, contentType, body string, hdr map[string]string, cookies ...*http.Cookie) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	return resp, string(data), err
}

func loginJSON(user, pw string) string {
	b, _ := json.Marshal(loginBody{Username: user, Password: pw})
	return string(b)
}

// TestAccountLimitHoldsAcrossAddresses: an attacker guessing one account's
// password from many addresses, each driven into its own per-IP limit,
// gets exactly account_failures answers that checked a password (401) in
// the window, whatever the face. Before the fix a 429 from the address
// limit cleared the account's count, so every new address bought a fresh
// set of guesses (27 wrong guesses got 401 inside a 10-per-window limit).
func TestAccountLimitHoldsAcrossAddresses(t *testing.T) {
	for _, face := range []string{"rest", "grpc"} {
		t.Run(face, func(t *testing.T) {
			t.Setenv("MCIAS_THROTTLE_IP_FAILURES", "2") // account_failures is 3 (newConfig)
			h := start(t, "")
			adminTok := h.login(t, adminUser, adminPassword)
			h.createUser(t, adminTok, "victim")

			guess := func(ip, pw string) int {
				if face == "rest" {
					resp, _ := post(t, h.restFrom(t, ip), h.base+"/v1/auth/login", "application/json", loginJSON("victim", pw), nil)
					return resp.StatusCode
				}
				_, err := h.grpcFrom(t, ip).Login(t.Context(), &mciasv1.LoginRequest{Username: "victim", Password: pw})
				switch status.Code(err) {
				case codes.OK:
					return http.StatusOK
				case codes.Unauthenticated:
					return http.StatusUnauthorized
				case codes.ResourceExhausted:
					return http.StatusTooManyRequests
				}
				t.Fatalf("guess from %s: %v", ip, err)
				return 0
			}
			checked := 0
			for i := range 10 {
				ip := fmt.Sprintf("127.0.0.%d", 10+i)
				for j := range 3 { // the third from each address hits its IP limit
					switch code := guess(ip, fmt.Sprintf("guess-%d-%d-password", i, j)); code {
					case http.StatusUnauthorized:
						checked++
					case http.StatusTooManyRequests:
					default:
						t.Fatalf("guess %d from %s answered %d", j, ip, code)
					}
				}
			}
			if checked != 3 {
				t.Fatalf("%d guesses were checked (401) within the window; the account limit is 3", checked)
			}
			// The account stays locked for its owner too, from anywhere,
			// until the window passes: the limit is the account's.
			if code := guess("127.0.0.99", userPassword); code != http.StatusTooManyRequests {
				t.Fatalf("right password during the lockout answered %d; want 429", code)
			}
		})
	}
}

// TestCredentialChangeEndsSessions: after an admin reset, the owner's own
// password change, or TOTP being turned on or off, no token issued before
// it validates or renews, over either face; the self-service change answers
// with the one token that goes on.
func TestCredentialChangeEndsSessions(t *testing.T) {
	h := start(t, "")
	ctx := t.Context()
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "alice")

	validREST := func(tok string) bool { return h.validate(t, tok).Valid }
	validGRPC := func(tok string) bool {
		v, err := h.auth.ValidateToken(ctx, &mciasv1.ValidateTokenRequest{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		return v.GetValid()
	}
	renewREST := func(tok string) int {
		code, _ := h.rest(t, http.MethodPost, "/v1/auth/renew", tok, nil)
		return code
	}
	renewGRPC := func(tok string) codes.Code {
		_, err := h.auth.Renew(withToken(ctx, tok), &mciasv1.RenewRequest{})
		return status.Code(err)
	}
	grpcLogin := func(pw string) string {
		r, err := h.auth.Login(ctx, &mciasv1.LoginRequest{Username: "alice", Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetToken()
	}
	dead := func(when string, toks ...string) {
		t.Helper()
		for i, tok := range toks {
			if validREST(tok) || validGRPC(tok) {
				t.Fatalf("%s: token %d still validates", when, i)
			}
			if code := renewREST(tok); code != http.StatusUnauthorized {
				t.Fatalf("%s: REST renew of token %d = %d; want 401", when, i, code)
			}
			if c := renewGRPC(tok); c != codes.Unauthenticated {
				t.Fatalf("%s: gRPC renew of token %d = %v; want Unauthenticated", when, i, c)
			}
		}
	}

	// 1. Admin reset: every session of alice ends, including one renewed
	// (the "renewed forever" chain) and one from gRPC.
	restTok := h.login(t, "alice", userPassword)
	var renewed issued
	h.call(t, http.MethodPost, "/v1/auth/renew", h.login(t, "alice", userPassword), nil, http.StatusOK, &renewed)
	grpcTok := grpcLogin(userPassword)
	h.call(t, http.MethodPatch, "/v1/accounts/alice", adminTok, map[string]string{"password": "alice-reset-password"}, http.StatusOK, nil)
	dead("after the admin reset", restTok, renewed.Token, grpcTok)
	if !validREST(adminTok) {
		t.Fatal("resetting alice's password ended the admin's session")
	}

	// 2. Self-service over REST: the answer is the one token that lives.
	mine := h.login(t, "alice", "alice-reset-password")
	thief := grpcLogin("alice-reset-password")
	var changed issued
	h.call(t, http.MethodPost, "/v1/accounts/alice/password", mine,
		map[string]string{"current_password": "alice-reset-password", "new_password": "alice-own-password"}, http.StatusOK, &changed)
	dead("after the REST password change", mine, thief)
	if !validREST(changed.Token) || !validGRPC(changed.Token) {
		t.Fatal("the token the password change answered with does not validate")
	}
	var next issued
	h.call(t, http.MethodPost, "/v1/auth/renew", changed.Token, nil, http.StatusOK, &next)

	// 3. Self-service over gRPC.
	thief = h.login(t, "alice", "alice-own-password")
	resp, err := h.accounts.ChangePassword(withToken(ctx, next.Token), &mciasv1.ChangePasswordRequest{
		Account: "alice", CurrentPassword: "alice-own-password", NewPassword: "alice-grpc-password"})
	if err != nil || resp.GetToken() == "" || resp.GetExpiresAt() == nil {
		t.Fatalf("gRPC ChangePassword = %v, %v", resp, err)
	}
	dead("after the gRPC password change", next.Token, thief)
	if !validGRPC(resp.GetToken()) {
		t.Fatal("the token gRPC ChangePassword answered with does not validate")
	}
	// The old password is gone and the new one works.
	if code, _ := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "alice", Password: "alice-own-password"}); code != http.StatusUnauthorized {
		t.Fatalf("old password login = %d", code)
	}
	cur := h.login(t, "alice", "alice-grpc-password")

	// 4. TOTP on, then off by an admin: each ends alice's sessions.
	var enr struct {
		Secret string `json:"secret"`
	}
	h.call(t, http.MethodPost, "/v1/accounts/alice/totp", cur, nil, http.StatusOK, &enr)
	passwordOnly := grpcLogin("alice-grpc-password") // a session opened with the password alone
	var conf struct {
		issued
	}
	h.call(t, http.MethodPost, "/v1/accounts/alice/totp/confirm", cur, map[string]string{"code": code(t, enr.Secret, time.Now())}, http.StatusOK, &conf)
	dead("after TOTP was turned on", cur, passwordOnly)
	if !validREST(conf.Token) {
		t.Fatal("the token ConfirmTOTP answered with does not validate")
	}
	h.call(t, http.MethodDelete, "/v1/accounts/alice/totp", adminTok, nil, http.StatusOK, nil)
	dead("after an admin turned TOTP off", conf.Token)
	h.login(t, "alice", "alice-grpc-password")
}

// TestArgon2ConcurrencyBound: with max_concurrent = 1, parallel logins
// never hash two at a time — known and unknown users alike — and those
// that cannot get the slot within max_wait are answered 503 with
// Retry-After (REST) or Unavailable with RetryInfo (gRPC). Before the fix
// every login hashed at once: 60 parallel ones took MCIAS from 0.7 GB to
// 6.3 GB.
func TestArgon2ConcurrencyBound(t *testing.T) {
	t.Setenv("MCIAS_ARGON2_MAX_CONCURRENT", "1")
	t.Setenv("MCIAS_ARGON2_MAX_WAIT", "200ms")
	tc := newConfig(t, "")
	bootstrap(t, tc.cfg)
	var (
		armed           atomic.Bool
		running, peak   atomic.Int32
		entered         = make(chan struct{})
		release         = make(chan struct{})
		enterOnce       sync.Once
		releaseOnce     sync.Once
		closeRelease    = func() { releaseOnce.Do(func() { close(release) }) }
		hashesWhileHeld atomic.Int32
	)
	t.Cleanup(closeRelease)
	hook := func() {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if !armed.Load() {
			return
		}
		hashesWhileHeld.Add(1)
		enterOnce.Do(func() { close(entered) })
		<-release
	}
	h, _ := serve(t, tc, server.BuildHashHook(hook))
	adminTok := h.login(t, adminUser, adminPassword)
	h.createUser(t, adminTok, "carol")
	peak.Store(0)
	armed.Store(true)

	type answer struct {
		code  int
		retry string
		body  string
		err   error
	}
	const n = 8
	answers := make(chan answer, n)
	for i := range n {
		go func() {
			user := fmt.Sprintf("ghost%d", i) // unknown: the equalizer's hash
			if i == 0 {
				user = "carol" // known, wrong password: a real verification
			}
			resp, body, err := tryPost(t.Context(), h.http, h.base+"/v1/auth/login", "application/json", loginJSON(user, "not-the-password"), nil)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), body, nil}
		}()
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no login reached the hash")
	}
	busy := 0
	for busy < n-1 {
		select {
		case a := <-answers:
			if a.err != nil || a.code != http.StatusServiceUnavailable || a.retry != "1" || !strings.Contains(a.body, `"error":"too many password checks in progress`) {
				t.Fatalf("a login that found the slot taken answered %d, Retry-After %q, %s (%v); want 503, 1", a.code, a.retry, a.body, a.err)
			}
			busy++
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d logins were answered while the slot was held", busy, n-1)
		}
	}
	// gRPC is bound by the same slots.
	_, err := h.auth.Login(t.Context(), &mciasv1.LoginRequest{Username: "carol", Password: "not-the-password"})
	st := status.Convert(err)
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if st.Code() != codes.Unavailable || retry == nil || retry.GetRetryDelay().AsDuration() != time.Second {
		t.Fatalf("gRPC login while the slot was held: %v (retry %v); want Unavailable with a 1s RetryInfo", err, retry)
	}
	closeRelease()
	select {
	case a := <-answers:
		if a.err != nil || a.code != http.StatusUnauthorized {
			t.Fatalf("the login holding the slot answered %d %s (%v); want 401", a.code, a.body, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the login holding the slot never answered")
	}
	if p := peak.Load(); p != 1 || hashesWhileHeld.Load() != 1 {
		t.Fatalf("peak concurrent hashes %d, hashes started %d; want 1 and 1", p, hashesWhileHeld.Load())
	}
	// The 503s were no failed attempts, and the slot is free again.
	armed.Store(false)
	h.login(t, "carol", userPassword)
}

// TestJSONBodiesOnly: a body that is not application/json is refused with
// 415 before anything reads it, on the generated REST API (mcdsl/gateway)
// and on the hand-written WebAuthn ceremonies alike. text/plain and form
// bodies are what any web page can make a visitor's browser POST
// cross-origin without a preflight ("simple requests"): with them a page
// could fire logins — and lockouts — from its visitors' browsers.
func TestJSONBodiesOnly(t *testing.T) {
	h := start(t, webauthnTOML)
	adminTok := h.login(t, adminUser, adminPassword)
	want415 := func(what string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(body, `"error":"request body must be application/json"`) ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s = %d %q (%s); want 415 with a JSON error", what, resp.StatusCode, body, resp.Header.Get("Content-Type"))
		}
	}

	// The generated login endpoint (mcdsl/gateway's rule).
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		resp, body := post(t, h.http, h.base+"/v1/auth/login", ct, loginJSON(adminUser, adminPassword), nil)
		want415("POST /v1/auth/login as "+ct, resp, body)
	}
	if resp, body := post(t, h.http, h.base+"/v1/auth/login", "application/json; charset=utf-8", loginJSON(adminUser, adminPassword), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("login with application/json; charset=utf-8 = %d %s", resp.StatusCode, body)
	}

	// The hand-written WebAuthn ceremonies, with everything else right
	// (CSRF cookie and header, or a bearer token).
	page, html := h.webCall(t, http.MethodGet, "/login", "", nil, nil, nil)
	csrfCookie, m := cookieNamed(page, "__Host-mc_csrf"), csrfMeta.FindSubmatch(html)
	if csrfCookie == nil || m == nil {
		t.Fatal("GET /login gave no CSRF cookie or token")
	}
	csrf := map[string]string{"X-CSRF-Token": string(m[1])}
	bearer := map[string]string{"Authorization": "Bearer " + adminTok}
	for _, c := range []struct {
		path    string
		hdr     map[string]string
		cookies []*http.Cookie
	}{
		{"/v1/webauthn/login/begin", csrf, []*http.Cookie{csrfCookie}},
		{"/v1/webauthn/login/finish", csrf, []*http.Cookie{csrfCookie}},
		{"/v1/webauthn/register/begin", bearer, nil},
		{"/v1/webauthn/register/finish", bearer, nil},
	} {
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded"} {
			resp, body := post(t, h.http, h.base+c.path, ct, `{"id":"x"}`, c.hdr, c.cookies...)
			want415("POST "+c.path+" as "+ct, resp, body)
		}
		// JSON (with a charset) gets past the check to the handler.
		if resp, body := post(t, h.http, h.base+c.path, "application/json;charset=UTF-8", `{}`, c.hdr, c.cookies...); resp.StatusCode == http.StatusUnsupportedMediaType {
			t.Fatalf("POST %s as JSON = 415 %s", c.path, body)
		}
	}
	// A cross-site form carries no CSRF header: it is refused for its body
	// before the CSRF check would refuse it.
	resp, body := post(t, h.http, h.base+"/v1/webauthn/login/finish", "text/plain", `{"id":"x"}`, nil)
	want415("cross-site text/plain login/finish", resp, body)
	// The ceremonies that take no body need no Content-Type.
	if resp, body := post(t, h.http, h.base+"/v1/webauthn/register/begin", "", "", bearer); resp.StatusCode != http.StatusOK {
		t.Fatalf("register/begin without a body = %d %s", resp.StatusCode, body)
	}
}

// TestFailedLoginLogsNoTypedName: people type passwords into username
// fields. A failed login with a password-looking username, over REST,
// gRPC and the web UI's form, leaves no trace of that string in the logs;
// the failure itself is logged, as an unknown account, and failures on a
// real account name it by ID.
func TestFailedLoginLogsNoTypedName(t *testing.T) {
	tc := newConfig(t, "")
	bootstrap(t, tc.cfg)
	h, logs := serve(t, tc, server.Build)
	const typed = "Tr0ub4dor&3-Correct-Horse" // a password, typed into the username field
	adminTok := h.login(t, adminUser, adminPassword)
	carol := h.createUser(t, adminTok, "carol")

	if code, _ := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: typed, Password: "whatever-it-is"}); code != http.StatusUnauthorized {
		t.Fatalf("REST login = %d", code)
	}
	if _, err := h.auth.Login(t.Context(), &mciasv1.LoginRequest{Username: typed, Password: "whatever-it-is", ServiceName: "mcat"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC login: %v", err)
	}
	page, html := h.webCall(t, http.MethodGet, "/login", "", nil, nil, nil)
	csrfCookie := cookieNamed(page, "__Host-mc_csrf")
	m := csrfField.FindSubmatch(html)
	if csrfCookie == nil || m == nil {
		t.Fatal("GET /login gave no CSRF cookie or form token")
	}
	form := url.Values{"csrf_token": {string(m[1])}, "username": {typed}, "password": {"whatever-it-is"}}
	if resp, _ := post(t, h.http, h.base+"/login", "application/x-www-form-urlencoded", form.Encode(), nil, csrfCookie); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("web UI login = %d", resp.StatusCode)
	}
	// A real account with a wrong password, for contrast.
	if code, _ := h.rest(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: "carol", Password: typed}); code != http.StatusUnauthorized {
		t.Fatalf("REST login = %d", code)
	}

	out := logs.String()
	for _, s := range []string{typed, strings.ToLower(typed), url.QueryEscape(typed), "Tr0ub4dor", "tr0ub4dor"} {
		if strings.Contains(out, s) {
			t.Fatalf("the logs hold %q, typed as a username:\n%s", s, out)
		}
	}
	if n := strings.Count(out, `msg="login failed" account=unknown`); n != 3 {
		t.Fatalf("%d unknown-account login failures logged; want 3 (REST, gRPC, web UI):\n%s", n, out)
	}
	if !strings.Contains(out, `msg="login failed" account=`+carol.ID+` username=carol reason="wrong password"`) {
		t.Fatalf("the failure on carol is not logged by account ID:\n%s", out)
	}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
