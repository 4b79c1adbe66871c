package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/server"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// The bootstrap admin every harness starts with.
const (
	adminUser     = "admin"
	adminPassword = "admin-password-123"
	// userPassword is what createUser gives new human accounts.
	userPassword = "user-password-1234"
)

// harness is one real MCIAS (Build on service.Run, as the binary runs it)
// on loopback, with real HTTPS and gRPC clients trusting its test CA.
type harness struct {
	base string // https://127.0.0.1:port
	pki  *tlstest.PKI
	http *http.Client
	conn *grpc.ClientConn

	auth     mciasv1.AuthServiceClient
	accounts mciasv1.AccountServiceClient
	policies mciasv1.PolicyServiceClient
	keys     mciasv1.KeyServiceClient
}

// testConfig is a loaded mcias.toml whose listeners are already bound.
type testConfig struct {
	cfg            *server.Config
	pki            *tlstest.PKI
	httpLn, grpcLn net.Listener
	// extra are further pre-bound listeners by component name ("pprof").
	extra map[string]net.Listener
}

// newConfig binds two loopback listeners and writes and loads an
// mcias.toml for them, with fast Argon2 parameters and a throttle of three
// failures per account; extraTOML is appended. The per-IP limit is high
// because every test client is 127.0.0.1.
func newConfig(t *testing.T, extraTOML string) testConfig {
	t.Helper()
	dir := t.TempDir()
	pki := tlstest.New(t)
	pair := pki.Issue(t, "mcias", "127.0.0.1")
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "mcias.toml")
	toml := fmt.Sprintf(`
[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
shutdown_timeout = "5s"

[database]
path = %q

[argon2]
memory_kib = 8192
iterations = 1
parallelism = 1

[throttle]
account_failures = 3
ip_failures = 1000
%s
`, httpLn.Addr().String(), grpcLn.Addr().String(), pair.CertFile, pair.KeyFile,
		filepath.Join(dir, "mcias.db"), extraTOML)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return testConfig{cfg: cfg, pki: pki, httpLn: httpLn, grpcLn: grpcLn}
}

// start runs MCIAS as the binary does (service.Run with server.Build) on a
// newConfig with the admin bootstrapped, until the test ends.
func start(t *testing.T, extraTOML string) *harness {
	t.Helper()
	tc := newConfig(t, extraTOML)
	bootstrap(t, tc.cfg)
	h, _ := serve(t, tc, server.Build)
	return h
}

// serve runs build on tc's listeners until the test ends and returns the
// harness and the server's log.
func serve(t *testing.T, tc testConfig, build func(context.Context, *server.Config, *service.Runtime) error) (*harness, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		listeners := map[string]net.Listener{"http": tc.httpLn, "grpc": tc.grpcLn}
		maps.Copy(listeners, tc.extra)
		done <- service.Run(ctx, service.Options{
			Name: server.ServiceName, Logger: logger, Listeners: listeners,
		}, func(ctx context.Context, rt *service.Runtime) error { return build(ctx, tc.cfg, rt) })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("service.Run did not return after cancel")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})

	tr := &http.Transport{TLSClientConfig: tc.pki.ClientConfig(), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	conn, err := grpc.NewClient(tc.grpcLn.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc.pki.ClientConfig())))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the server's cleanup, so it runs first: the server
	// then drains without open client connections.
	t.Cleanup(func() { _ = conn.Close() })
	return &harness{
		base:     "https://" + tc.httpLn.Addr().String(),
		pki:      tc.pki,
		http:     &http.Client{Transport: tr, Timeout: 10 * time.Second},
		conn:     conn,
		auth:     mciasv1.NewAuthServiceClient(conn),
		accounts: mciasv1.NewAccountServiceClient(conn),
		policies: mciasv1.NewPolicyServiceClient(conn),
		keys:     mciasv1.NewKeyServiceClient(conn),
	}, logs
}

// bootstrap creates the admin and the default policy the way `mcias init`
// does, on the database the server will open.
func bootstrap(t *testing.T, cfg *server.Config) {
	t.Helper()
	ctx := t.Context()
	icfg, err := cfg.Identity()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, cfg.Database.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	svc, err := identity.New(ctx, st, icfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := svc.Bootstrap(ctx, adminUser, adminPassword)
	if err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v; want true, nil", created, err)
	}
}

// rest sends one request and returns the status and body. body is sent
// as is when it is a string, and as JSON otherwise (nil: no body).
func (h *harness) rest(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, h.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// call is rest that insists on status want and decodes the answer into out
// (when out is not nil).
func (h *harness) call(t *testing.T, method, path, token string, body any, want int, out any) {
	t.Helper()
	code, data := h.rest(t, method, path, token, body)
	if code != want {
		t.Fatalf("%s %s = %d %s; want %d", method, path, code, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

// errorOf returns the "error" member of a REST error body.
func errorOf(t *testing.T, data []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(data, &e); err != nil || e.Error == "" {
		t.Fatalf("not an error body: %s", data)
	}
	return e.Error
}

// issued is a login, renew or system-token answer.
type issued struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// validation is a /v1/token/validate or /v1/whoami answer.
type validation struct {
	Valid       bool      `json:"valid"`
	Subject     string    `json:"subject"`
	Username    string    `json:"username"`
	AccountType string    `json:"account_type"`
	Roles       []string  `json:"roles"`
	ExpiresAt   time.Time `json:"expires_at"`
}

type loginBody struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	TOTPCode    string   `json:"totp_code,omitempty"`
	ServiceName string   `json:"service_name,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

// login logs in over REST and returns the token.
func (h *harness) login(t *testing.T, user, password string) string {
	t.Helper()
	var out issued
	h.call(t, http.MethodPost, "/v1/auth/login", "", loginBody{Username: user, Password: password}, http.StatusOK, &out)
	if out.Token == "" {
		t.Fatal("login answered an empty token")
	}
	return out.Token
}

// validate asks REST whether tok is valid.
func (h *harness) validate(t *testing.T, tok string) validation {
	t.Helper()
	var v validation
	h.call(t, http.MethodPost, "/v1/token/validate", "", map[string]string{"token": tok}, http.StatusOK, &v)
	return v
}

// createUser creates a human account with userPassword over REST.
func (h *harness) createUser(t *testing.T, adminTok, name string, roles ...string) identity.Account {
	t.Helper()
	var a identity.Account
	h.call(t, http.MethodPost, "/v1/accounts", adminTok, identity.CreateAccountRequest{
		Username: name, AccountType: "human", Password: userPassword, Roles: roles,
	}, http.StatusCreated, &a)
	return a
}

// withToken attaches a bearer token to outgoing gRPC metadata.
func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// jwtSegment decodes the JSON of a compact JWS segment (0 header, 1
// claims).
func jwtSegment(t *testing.T, tok string, i int, out any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3", len(parts))
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
}

// kidOf is the kid in a token's header.
func kidOf(t *testing.T, tok string) string {
	t.Helper()
	var hdr struct {
		Kid string `json:"kid"`
	}
	jwtSegment(t, tok, 0, &hdr)
	if hdr.Kid == "" {
		t.Fatal("token header has no kid")
	}
	return hdr.Kid
}

// jtiOf is the jti claim of a token.
func jtiOf(t *testing.T, tok string) string {
	t.Helper()
	var c struct {
		JTI string `json:"jti"`
	}
	jwtSegment(t, tok, 1, &c)
	if c.JTI == "" {
		t.Fatal("token has no jti")
	}
	return c.JTI
}
