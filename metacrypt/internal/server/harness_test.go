package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/restclient"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
	"git.metacircular.net/metacircular/metacrypt/client"
	"git.metacircular.net/metacircular/metacrypt/internal/server"
)

const (
	adminPassword  = "metacrypt-test-admin-password"
	unsealPassword = "metacrypt unseal password for tests"
	// domain is the platform domain D of these tests.
	domain = "mcp.test"
)

// The callers, each an MCIAS account.
const (
	admin = "admin"
	agent = "mcp-agent"  // system: may issue names under svc.<D>
	edge  = "agent-edge" // system: may issue public names only
	alice = "alice"      // human user: reads
	gina  = "gina"       // human guest: nothing
)

// env is what TestMain sets up once: a real MCIAS (the mcias binary,
// built and run as an operator would) with an account per caller, and
// the seed CA that signs MCIAS's and Metacrypt's TLS certificates.
var env struct {
	dir       string
	ca        *seedpki.CA
	mciasURL  string
	mciasGRPC string
	cert      seedpki.Issued
	tokens    map[string]string
	// webLn is bound before MCIAS starts, so the web UI's SSO redirect
	// URI (https://<webLn>/sso/callback) is registered in MCIAS's
	// configuration; one harness serves on it (harness.httpLn).
	webLn net.Listener
}

func TestMain(m *testing.M) {
	stop, err := setup()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "metacrypt server tests: setup: %v\n", err)
	} else {
		code = m.Run()
	}
	stopMCNS()
	if stop != nil {
		stop()
	}
	if env.dir != "" {
		_ = os.RemoveAll(env.dir)
	}
	os.Exit(code)
}

func setup() (stop func(), err error) {
	env.dir, err = os.MkdirTemp("", "metacrypt-server-test-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(env.dir, "mcias")
	if out, err := exec.Command("go", "build", "-o", bin, "git.metacircular.net/metacircular/mcias/cmd/mcias").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build mcias: %w\n%s", err, out)
	}
	if env.ca, err = seedpki.Init(filepath.Join(env.dir, "ca")); err != nil {
		return nil, err
	}
	loopback := seedpki.IssueRequest{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	mciasCert, err := env.ca.Issue("mcias", loopback)
	if err != nil {
		return nil, err
	}
	if env.cert, err = env.ca.Issue("metacrypt", loopback); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if env.mciasGRPC, err = freeAddr(); err != nil {
		return nil, err
	}
	if env.webLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
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
account_failures = 100
ip_failures = 1000
[[sso_clients]]
client_id = "metacrypt"
redirect_uri = "https://%s/sso/callback"
service_name = "metacrypt"
`, addr, env.mciasGRPC, mciasCert.CertPath, mciasCert.KeyPath, filepath.Join(env.dir, "mcias.db"), env.webLn.Addr())), 0o600); err != nil {
		return nil, err
	}
	pwFile := filepath.Join(env.dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte(adminPassword), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "--config", cfg, "init", "--password-file", pwFile).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mcias init: %w\n%s", err, out)
	}
	logs := &syncbuf.Buffer{}
	cmd := exec.Command(bin, "--config", cfg, "server")
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

func waitHealthy(url string, exited <-chan struct{}) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig()}}
	defer c.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			return errors.New("mcias exited before it was healthy")
		default:
		}
		if resp, err := c.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s not healthy after 30s", url)
}

// createAccounts creates one MCIAS account per caller through the public
// MCIAS client and collects a token for each.
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
	env.tokens = map[string]string{admin: adminTok}
	for _, h := range []struct{ name, role string }{{alice, "user"}, {gina, "guest"}} {
		pw := h.name + "-password-123"
		if _, err := mc.CreateAccount(ctx, mciasclient.CreateAccountRequest{Username: h.name, AccountType: "human", Password: pw, Roles: []string{h.role}}); err != nil {
			return fmt.Errorf("create %s: %w", h.name, err)
		}
		if env.tokens[h.name], err = login(h.name, pw); err != nil {
			return fmt.Errorf("%s login: %w", h.name, err)
		}
	}
	for _, name := range []string{agent, edge} {
		if _, err := mc.CreateAccount(ctx, mciasclient.CreateAccountRequest{Username: name, AccountType: "system"}); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		t, err := mc.IssueSystemToken(ctx, name, 0)
		if err != nil {
			return fmt.Errorf("token for %s: %w", name, err)
		}
		env.tokens[name] = t.Token
	}
	return nil
}

// harness is one Metacrypt (service.Run with server.Build, as the binary
// runs it) on loopback, authenticating against the package's MCIAS.
type harness struct {
	dir     string
	cfgPath string
	cfg     *server.Config
	logs    *syncbuf.Buffer
	// rest is https://127.0.0.1:port (REST and the public endpoints);
	// pki is http://127.0.0.1:port (the public endpoints, plain HTTP);
	// grpc is the gRPC address.
	rest, pki, grpc string
	conn            *grpc.ClientConn
	stop            func()
	// extra is appended to metacrypt.toml (an [acme] section).
	extra string
	// httpLn, when set, is the HTTPS listener of the next run (then
	// cleared): env.webLn for the browser test.
	httpLn net.Listener
}

// start runs a fresh Metacrypt until the test ends.
func start(t *testing.T) *harness { return startFrom(t, "") }

// startFrom runs a Metacrypt on a copy of the database file db (a
// snapshot), or on a fresh one when db is empty.
func startFrom(t *testing.T, db string) *harness { return startWith(t, db, "") }

// startWith runs a Metacrypt like startFrom with extra appended to its
// configuration.
func startWith(t *testing.T, db, extra string) *harness {
	t.Helper()
	h := &harness{dir: t.TempDir(), logs: &syncbuf.Buffer{}, extra: extra}
	if db != "" {
		b, err := os.ReadFile(db) //nolint:gosec // the test's own snapshot
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.dir, "metacrypt.db"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.run(t)
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("metacrypt log:\n%s", h.logs.String())
		}
	})
	return h
}

// run writes metacrypt.toml for fresh loopback listeners and starts the
// service on h.dir's database.
func (h *harness) run(t *testing.T) {
	t.Helper()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	httpLn, grpcLn, pkiLn := h.httpLn, listen(), listen()
	if httpLn == nil {
		httpLn = listen()
	}
	h.httpLn = nil
	h.cfgPath = filepath.Join(h.dir, "metacrypt.toml")
	toml := fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
shutdown_timeout = "5s"

[database]
path = %q

[mcias]
server_url = %q
ca_cert = %q
service_name = "metacrypt"

[seal]
argon2_memory_kib = 8192
argon2_iterations = 1
argon2_parallelism = 1

[pki]
external_url = "http://%s"
listen_addr = %q
crl_lifetime = "24h"
`, httpLn.Addr(), grpcLn.Addr(), env.cert.CertPath, env.cert.KeyPath, filepath.Join(h.dir, "metacrypt.db"),
		env.mciasURL, env.ca.CertPath(), pkiLn.Addr(), pkiLn.Addr()) + h.extra
	if err := os.WriteFile(h.cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{
			Name: server.ServiceName, Logger: logger,
			Listeners: map[string]net.Listener{"http": httpLn, "grpc": grpcLn, "pki": pkiLn},
		}, func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, cfg, rt, "test") })
	}()
	conn, err := grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig())))
	if err != nil {
		t.Fatal(err)
	}
	h.rest, h.pki, h.grpc, h.conn = "https://"+httpLn.Addr().String(), "http://"+pkiLn.Addr().String(), grpcLn.Addr().String(), conn
	h.stop = func() {
		_ = conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("service.Run did not return after cancel")
		}
	}
	if err := waitHealthy(h.rest+"/v1/health", nil); err != nil {
		t.Fatal(err)
	}
}

// webTOML is the [web] section enabling the UI with the SSO client
// registered in the package's MCIAS, whose redirect URI is on addr.
func webTOML(addr string) string {
	return fmt.Sprintf("\n[web]\nenabled = true\nsso_client_id = \"metacrypt\"\nsso_redirect_uri = \"https://%s/sso/callback\"\n", addr)
}

// restart stops the service and starts it again on the same database.
func (h *harness) restart(t *testing.T) {
	t.Helper()
	h.stop()
	h.run(t)
}

// client is a Metacrypt Go client (gRPC) acting as caller ("" for none).
func (h *harness) client(t *testing.T, caller string) *client.Client {
	t.Helper()
	c, err := client.New(h.grpc, env.ca.CertPath(), env.tokens[caller])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// restClient is a REST client acting as caller ("" for none).
func (h *harness) restClient(t *testing.T, caller string) *restclient.Client {
	t.Helper()
	c, err := restclient.New("metacrypt", h.rest, env.ca.CertPath(), env.tokens[caller])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// as attaches caller's bearer token to outgoing gRPC metadata.
func as(ctx context.Context, caller string) context.Context {
	if caller == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+env.tokens[caller])
}

// svcName is a name under svc.<D>.
func svcName(label string) string { return label + ".svc." + domain }

// ready initializes and unseals h and sets up the platform's CA: mount
// "pki" with a generated root (or the seed root when importSeed), the
// issuers infra, services and clients, and the policy the platform runs
// with.
func (h *harness) ready(t *testing.T, importSeed bool) {
	t.Helper()
	ctx := t.Context()
	c := h.client(t, admin)
	if _, err := c.Init(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateMount(ctx, "pki", "ca"); err != nil {
		t.Fatal(err)
	}
	if importSeed {
		certPEM, err := os.ReadFile(env.ca.CertPath())
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := os.ReadFile(filepath.Join(filepath.Dir(env.ca.CertPath()), "ca.key"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ImportRoot(ctx, "pki", string(certPEM), string(keyPEM)); err != nil {
			t.Fatal(err)
		}
	} else if _, err := c.GenerateRoot(ctx, "pki", client.RootRequest{Organization: "Metacircular Test"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []client.IssuerRequest{
		{Name: "infra", Profiles: []string{"server", "both"}},
		{Name: "services", MaxTTL: 90 * 24 * time.Hour},
		{Name: "clients", Profiles: []string{"client"}, KeyType: "ec-p384"},
	} {
		if _, err := c.CreateIssuer(ctx, "pki", r); err != nil {
			t.Fatalf("issuer %s: %v", r.Name, err)
		}
	}
	for _, r := range []client.Rule{
		{Priority: 10, Effect: "allow", Subject: client.Subject{Accounts: []string{agent}}, Mounts: []string{"pki"},
			Operations: []string{"issue", "sign", "renew", "revoke", "read"}, Resources: []string{"issuer/services", "certs"}},
		{Priority: 10, Effect: "allow", Subject: client.Subject{Accounts: []string{edge}}, Mounts: []string{"pki"},
			Operations: []string{"issue", "sign"}, Resources: []string{"issuer/services"}},
		{Priority: 20, Effect: "allow", Subject: client.Subject{Roles: []string{"user"}}, Operations: []string{"read"}},
	} {
		if _, err := c.CreateRule(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []client.Limit{
		{Priority: 10, Effect: "allow", Subject: client.Subject{Accounts: []string{agent}}, Names: []string{"*.svc." + domain}, IPRanges: []string{"10.0.0.0/8", "127.0.0.1/32"}},
		{Priority: 5, Effect: "deny", Subject: client.Subject{Accounts: []string{edge}}, Names: []string{domain, "**." + domain}},
		{Priority: 10, Effect: "allow", Subject: client.Subject{Accounts: []string{edge}}, Names: []string{"example.net", "**.example.net"}},
	} {
		if _, err := c.CreateLimit(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
}
