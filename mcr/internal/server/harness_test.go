package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
	"git.metacircular.net/metacircular/mcr/internal/server"
)

const adminPassword = "mcr-test-admin-password"

// The MCIAS accounts of these tests.
const (
	admin = "admin"     // admin role
	alice = "alice"     // user role
	bob   = "bob"       // user role, read-only by the rules the tests add
	ci    = "ci"        // user role: the conformance suite's account
	gina  = "gina"      // guest role
	agent = "mcp-agent" // system account: pulls everything
)

// env is set up once per package: a real MCIAS (the mcias binary), the
// mcr binary, a seed CA and the accounts.
var env struct {
	dir       string
	ca        *seedpki.CA
	mciasURL  string
	mciasGRPC string
	cert      seedpki.Issued
	mcrBin    string
	mcrctlBin string
	proxyBin  string // mc-proxy, to run MCR behind it
	passwords map[string]string
	tokens    map[string]string
	// webLn is bound before MCIAS starts so MCR's SSO redirect URI can be
	// registered in MCIAS's configuration.
	webLn net.Listener
}

func TestMain(m *testing.M) {
	stop, err := setup()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcr server tests: setup: %v\n", err)
	} else {
		code = m.Run()
	}
	if stop != nil {
		stop()
	}
	if env.dir != "" {
		_ = os.RemoveAll(env.dir)
	}
	os.Exit(code)
}

func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

func setup() (stop func(), err error) {
	if env.dir, err = os.MkdirTemp("", "mcr-server-test-"); err != nil {
		return nil, err
	}
	mciasBin := filepath.Join(env.dir, "mcias")
	env.mcrBin = filepath.Join(env.dir, "mcr")
	env.mcrctlBin = filepath.Join(env.dir, "mcrctl")
	env.proxyBin = filepath.Join(env.dir, "mc-proxy")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	wg.Add(4)
	go func() {
		defer wg.Done()
		errs[3] = goBuild(env.proxyBin, "git.metacircular.net/metacircular/mcproxy/cmd/mc-proxy")
	}()
	go func() {
		defer wg.Done()
		errs[2] = goBuild(env.mcrctlBin, "git.metacircular.net/metacircular/mcr/cmd/mcrctl")
	}()
	go func() {
		defer wg.Done()
		errs[0] = goBuild(mciasBin, "git.metacircular.net/metacircular/mcias/cmd/mcias")
	}()
	go func() {
		defer wg.Done()
		errs[1] = goBuild(env.mcrBin, "git.metacircular.net/metacircular/mcr/cmd/mcr")
	}()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if env.ca, err = seedpki.Init(filepath.Join(env.dir, "ca")); err != nil {
		return nil, err
	}
	loopback := seedpki.IssueRequest{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	mciasCert, err := env.ca.Issue("mcias", loopback)
	if err != nil {
		return nil, err
	}
	if env.cert, err = env.ca.Issue("mcr", loopback); err != nil {
		return nil, err
	}
	if env.webLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if env.mciasGRPC, err = freeAddr(); err != nil {
		return nil, err
	}
	cfg := filepath.Join(env.dir, "mcias.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[argon2]
memory_kib = 8192
iterations = 1
parallelism = 1
[throttle]
account_failures = 1000
ip_failures = 10000
[[sso_clients]]
client_id = "mcr"
redirect_uri = "https://%s/sso/callback"
service_name = "mcr"
`, addr, env.mciasGRPC, mciasCert.CertPath, mciasCert.KeyPath, filepath.Join(env.dir, "mcias.db"), env.webLn.Addr())), 0o600); err != nil {
		return nil, err
	}
	pwFile := filepath.Join(env.dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte(adminPassword), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(mciasBin, "--config", cfg, "init", "--password-file", pwFile).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mcias init: %w\n%s", err, out)
	}
	logs := &syncbuf.Buffer{}
	cmd := exec.Command(mciasBin, "--config", cfg, "server")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	env.mciasURL = "https://" + addr
	if err := waitHealthy(env.mciasURL+"/v1/health", done); err != nil {
		return stop, fmt.Errorf("%w\nmcias output:\n%s", err, logs.String())
	}
	return stop, createAccounts()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

func tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: env.ca.Pool(), MinVersion: tls.VersionTLS13}
}

func waitHealthy(u string, exited <-chan struct{}) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig()}}
	defer c.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			return errors.New("exited before it was healthy")
		default:
		}
		if resp, err := c.Get(u); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s not healthy after 30s", u)
}

func createAccounts() error {
	ctx := context.Background()
	login := func(user, pw string) (string, error) {
		c, err := mciasclient.New(env.mciasGRPC, env.ca.CertPath(), "")
		if err != nil {
			return "", err
		}
		defer func() { _ = c.Close() }()
		t, err := c.Login(ctx, mciasclient.LoginRequest{Username: user, Password: pw})
		return t.Token, err
	}
	adminTok, err := login(admin, adminPassword)
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	mc, err := mciasclient.New(env.mciasGRPC, env.ca.CertPath(), adminTok)
	if err != nil {
		return err
	}
	defer func() { _ = mc.Close() }()
	env.passwords = map[string]string{admin: adminPassword}
	env.tokens = map[string]string{admin: adminTok}
	for _, h := range []struct{ name, role string }{{alice, "user"}, {bob, "user"}, {ci, "user"}, {gina, "guest"}} {
		pw := h.name + "-password-123"
		if _, err := mc.CreateAccount(ctx, mciasclient.CreateAccountRequest{
			Username: h.name, AccountType: "human", Password: pw, Roles: []string{h.role},
		}); err != nil {
			return fmt.Errorf("create %s: %w", h.name, err)
		}
		env.passwords[h.name] = pw
		if env.tokens[h.name], err = login(h.name, pw); err != nil {
			return fmt.Errorf("%s login: %w", h.name, err)
		}
	}
	if _, err := mc.CreateAccount(ctx, mciasclient.CreateAccountRequest{Username: agent, AccountType: "system"}); err != nil {
		return fmt.Errorf("create %s: %w", agent, err)
	}
	t, err := mc.IssueSystemToken(ctx, agent, 0)
	if err != nil {
		return err
	}
	env.tokens[agent] = t.Token
	// A system account has no password: its MCIAS token is the password
	// at the token endpoint.
	env.passwords[agent] = t.Token
	return nil
}

// harness is one MCR (server.Build under service.Run, as the binary runs
// it) on loopback.
type harness struct {
	cfg     *server.Config
	cfgPath string
	dir     string
	logs    *syncbuf.Buffer
	host    string // 127.0.0.1:port of the HTTPS listener
	grpc    string
	base    string // https://host
	service string // the registry's token service name
}

// options vary a harness.
type options struct {
	extra  string       // appended TOML
	sparse bool         // registry.allow_sparse
	grace  string       // gc.grace (default 1h)
	web    net.Listener // pre-bound HTTPS listener (the web UI's)
	// behindProxy runs MCR the way it runs behind mc-proxy: no
	// public_url (the token realm follows each request's Host, the
	// service is "mcr") and PROXY headers believed from 127.0.0.1.
	behindProxy bool
}

// start runs an MCR until the test ends, with rules letting ci do
// everything under conformance/ and alice push under alice/ and team/,
// and bob pull team/.
func start(t *testing.T, o options) *harness {
	t.Helper()
	dir := t.TempDir()
	httpLn := o.web
	if httpLn == nil {
		var err error
		if httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{dir: dir, host: httpLn.Addr().String(), grpc: grpcLn.Addr().String(), logs: &syncbuf.Buffer{}}
	h.base = "https://" + h.host
	h.cfgPath = filepath.Join(dir, "mcr.toml")
	h.service = "127.0.0.1"
	publicURL, proxyFrom := fmt.Sprintf("public_url = %q", h.base), ""
	if o.behindProxy {
		h.service, publicURL, proxyFrom = "mcr", "", `proxy_protocol_from = ["127.0.0.1"]`
	}
	toml := fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
shutdown_timeout = "5s"
%s

[database]
path = %q

[mcias]
server_url = %q
ca_cert = %q
service_name = "mcr"

[registry]
%s
allow_sparse = %v

[gc]
disabled = true
grace = %q
%s`, h.host, h.grpc, env.cert.CertPath, env.cert.KeyPath, proxyFrom, filepath.Join(dir, "mcr.db"), env.mciasURL, env.ca.CertPath(), publicURL, o.sparse, cmpOr(o.grace, "1h"), o.extra)
	if err := os.WriteFile(h.cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	if h.cfg, err = server.LoadConfig(h.cfgPath); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{Name: server.ServiceName, Logger: logger,
			Listeners: map[string]net.Listener{"http": httpLn, "grpc": grpcLn}},
			func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, h.cfg, rt) })
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
			t.Logf("mcr log (tail):\n%s", tail(h.logs.String(), 8000))
		}
	})
	if err := waitHealthy(h.base+"/v1/health", nil); err != nil {
		t.Fatal(err)
	}
	h.addRules(t)
	return h
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// rest calls the management REST API as caller and decodes into out.
func (h *harness) rest(t *testing.T, caller, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if caller != "" {
		req.Header.Set("Authorization", "Bearer "+env.tokens[caller])
	}
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (h *harness) addRules(t *testing.T) {
	t.Helper()
	for _, r := range []map[string]any{
		{"priority": 10, "effect": "allow", "repository": "conformance/*", "accounts": []string{ci}, "actions": []string{"pull", "push", "delete"}},
		{"priority": 20, "effect": "allow", "repository": "team/*", "accounts": []string{alice}, "actions": []string{"pull", "push", "delete"}},
		{"priority": 20, "effect": "allow", "repository": "alice/*", "accounts": []string{alice}, "actions": []string{"pull", "push", "delete"}},
		{"priority": 30, "effect": "allow", "repository": "team/*", "accounts": []string{bob}, "actions": []string{"pull"}},
		{"priority": 40, "effect": "allow", "repository": "public/*", "account_types": []string{"anonymous"}, "actions": []string{"pull"}},
	} {
		if code := h.rest(t, admin, http.MethodPost, "/v1/policies", r, nil); code != http.StatusCreated {
			t.Fatalf("create policy %v: %d", r, code)
		}
	}
}

var (
	clientOnce sync.Once
	client     *http.Client
)

func httpClient() *http.Client {
	clientOnce.Do(func() {
		client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig(), ForceAttemptHTTP2: true}}
	})
	return client
}

// repoRoot is the module root (for the pinned tools under .bin/).
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// goTool installs a pinned Go program into <repo>/.bin/mcr-test/<name>-<version>
// (once; later runs reuse it) and returns its path.
func goTool(t *testing.T, name, pkg, version string) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), ".bin", "mcr-test", name+"-"+version)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", pkg+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s@%s: %v\n%s", pkg, version, err, out)
	}
	return bin
}

// token fetches a registry token for scopes as user (password login).
func (h *harness) token(t *testing.T, user string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {h.service}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	req, _ := http.NewRequest(http.MethodGet, h.base+"/v2/token?"+q.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, env.passwords[user])
	}
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("token for %s: %d %s", user, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Token
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
