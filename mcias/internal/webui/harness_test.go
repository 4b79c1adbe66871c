package webui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/server"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

const (
	adminUser     = "admin"
	adminPassword = "admin-password-123"
	userPassword  = "user-password-1234"
)

// env is one real MCIAS (server.Build on service.Run, as the binary runs
// it) serving HTTPS on https://localhost:<port> with a test CA, passkeys
// configured for that exact origin.
type env struct {
	origin string // https://localhost:port
	pki    *tlstest.PKI
	dbPath string
}

// start runs MCIAS until the test ends.
func start(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	pki := tlstest.New(t)
	pair := pki.Issue(t, "mcias", "localhost", "127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	origin := "https://localhost:" + port
	dbPath := filepath.Join(dir, "mcias.db")
	cfgPath := filepath.Join(dir, "mcias.toml")
	toml := fmt.Sprintf(`
[server]
listen_addr = %q
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
account_failures = 5
ip_failures = 1000

[webauthn]
rp_id = "localhost"
rp_display_name = "MCIAS test"
rp_origins = [%q]
`, ln.Addr().String(), pair.CertFile, pair.KeyFile, dbPath, origin)
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	bootstrap(t, cfg)

	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{Name: server.ServiceName, Logger: logger, Listeners: map[string]net.Listener{"http": ln}},
			func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, cfg, rt) })
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
	return &env{origin: origin, pki: pki, dbPath: dbPath}
}

// bootstrap creates the admin and the default policy as `mcias init` does.
func bootstrap(t *testing.T, cfg *server.Config) {
	t.Helper()
	icfg, err := cfg.Identity()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), cfg.Database.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	svc, err := identity.New(t.Context(), st, icfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := svc.Bootstrap(t.Context(), adminUser, adminPassword); err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v", created, err)
	}
}

// browser is an HTTPS client with a cookie jar that does not follow
// redirects, so tests see each answer.
type browser struct {
	t      *testing.T
	e      *env
	client *http.Client
}

func (e *env) browser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: e.pki.ClientConfig(), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, e: e, client: &http.Client{
		Transport: tr, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is an answer with its body read.
type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{Response: resp, body: string(data)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), http.MethodGet, b.e.origin+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post submits a form as is (add csrf_token to pass the CSRF check).
func (b *browser) post(path string, form url.Values) response {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), http.MethodPost, b.e.origin+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// csrf loads a page (the login page, or the account page when signed in;
// either sets the CSRF cookie) and returns the token its forms carry.
func (b *browser) csrf() string {
	b.t.Helper()
	page := b.get("/login")
	if page.StatusCode == http.StatusSeeOther {
		page = b.get("/account")
	}
	m := csrfMeta.FindStringSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on /login (%d):\n%s", page.StatusCode, page.body)
	}
	return m[1]
}

// submit posts a form with the CSRF token.
func (b *browser) submit(path string, form url.Values) response {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", b.csrf())
	return b.post(path, form)
}

// login signs in through the form and fails the test if it does not work.
func (b *browser) login(user, password string) {
	b.t.Helper()
	resp := b.submit("/login", url.Values{"username": {user}, "password": {password}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account" {
		b.t.Fatalf("login as %s = %d %s:\n%s", user, resp.StatusCode, resp.Header.Get("Location"), resp.body)
	}
}

// cookie returns the named cookie the jar would send to the server.
func (b *browser) cookie(name string) *http.Cookie {
	u, err := url.Parse(b.e.origin + "/")
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// api calls the REST API with a bearer token and decodes the JSON answer.
func (b *browser) api(method, path, token string, body any, want int, out any) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = strings.NewReader(string(data))
	}
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.e.origin+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp := b.do(req)
	if resp.StatusCode != want {
		b.t.Fatalf("%s %s = %d %s; want %d", method, path, resp.StatusCode, resp.body, want)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(resp.body), out); err != nil {
			b.t.Fatalf("%s %s: %v in %s", method, path, err, resp.body)
		}
	}
}

// token logs in over REST and returns the token.
func (b *browser) token(user, password string) string {
	b.t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	b.api(http.MethodPost, "/v1/auth/login", "", map[string]string{"username": user, "password": password}, http.StatusOK, &out)
	return out.Token
}

// createUser creates a human account with userPassword and the given roles.
func (b *browser) createUser(adminToken, name string, roles ...string) identity.Account {
	b.t.Helper()
	var a identity.Account
	b.api(http.MethodPost, "/v1/accounts", adminToken, identity.CreateAccountRequest{
		Username: name, AccountType: "human", Password: userPassword, Roles: roles,
	}, http.StatusCreated, &a)
	return a
}
