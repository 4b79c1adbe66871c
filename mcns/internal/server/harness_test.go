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

	"git.metacircular.net/metacircular/mcns/internal/dnstest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
	mcnsv1 "git.metacircular.net/metacircular/mcns/gen/mcns/v1"
	"git.metacircular.net/metacircular/mcns/internal/server"
)

// The zones every MCNS in these tests is seeded with.
const (
	zone     = "svc.mcp.test."
	nodeZone = "mcp.test."
)

const adminPassword = "mcns-test-admin-password"

// env is what TestMain sets up once for the package: a real MCIAS (the
// mcias binary, built and run as an operator would) with accounts for every
// role, and the seed CA that signs MCIAS's and MCNS's certificates.
var env struct {
	dir      string
	ca       *seedpki.CA
	mciasURL string
	// mciasGRPC is MCIAS's gRPC address, where its client talks.
	mciasGRPC string
	mcnsCert  seedpki.Issued
	// tokens by caller name: admin, mcp-agent, mcq, mcr, alice (user),
	// gina (guest).
	tokens map[string]string
}

// The callers, each an MCIAS account.
const (
	admin = "admin"
	agent = "mcp-agent"
	mcq   = "mcq" // a system account: may manage mcq.<zone> only
	mcr   = "mcr" // another system account
	alice = "alice"
	gina  = "gina"
)

func TestMain(m *testing.M) {
	stop, err := setup()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcns server tests: setup: %v\n", err)
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

// setup builds and starts MCIAS and creates the test accounts; stop ends
// MCIAS.
func setup() (stop func(), err error) {
	env.dir, err = os.MkdirTemp("", "mcns-server-test-")
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
	if env.mcnsCert, err = env.ca.Issue("mcns", loopback); err != nil {
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
account_failures = 100
ip_failures = 1000
`, addr, env.mciasGRPC, mciasCert.CertPath, mciasCert.KeyPath, filepath.Join(env.dir, "mcias.db"))), 0o600); err != nil {
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
	if err := createAccounts(); err != nil {
		return stop, err
	}
	return stop, nil
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// tlsConfig trusts the test seed CA only.
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

// createAccounts creates one MCIAS account per role through the public
// MCIAS client and collects a token for each.
func createAccounts() error {
	ctx := context.Background()
	mc, err := mciasclient.New(env.mciasGRPC, env.ca.CertPath(), "")
	if err != nil {
		return err
	}
	login := func(user, pw string) (string, error) {
		c, err := mciasclient.New(env.mciasGRPC, env.ca.CertPath(), "")
		if err != nil {
			return "", err
		}
		t, err := c.Login(ctx, mciasclient.LoginRequest{Username: user, Password: pw})
		return t.Token, err
	}
	adminTok, err := login(admin, adminPassword)
	if err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	mc.SetToken(adminTok)
	env.tokens = map[string]string{admin: adminTok}
	for _, h := range []struct{ name, role string }{{alice, "user"}, {gina, "guest"}} {
		pw := h.name + "-password-123"
		if _, err := mc.CreateAccount(ctx, mciasclient.CreateAccountRequest{
			Username: h.name, AccountType: "human", Password: pw, Roles: []string{h.role},
		}); err != nil {
			return fmt.Errorf("create %s: %w", h.name, err)
		}
		if env.tokens[h.name], err = login(h.name, pw); err != nil {
			return fmt.Errorf("%s login: %w", h.name, err)
		}
	}
	for _, name := range []string{agent, mcq, mcr} {
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

// harness is one MCNS (server.Run, as the binary runs it) on loopback,
// authenticating against the package's MCIAS.
type harness struct {
	cfg  *server.Config
	logs *syncbuf.Buffer
	rest string // https://127.0.0.1:port
	dns  string // 127.0.0.1:port, UDP and TCP
	conn *grpc.ClientConn
}

// start writes an mcns.toml for fresh loopback listeners, loads it, and
// runs server.Run until the test ends.
func start(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, dnsTCP, _ := dnstest.ListenPair(t)
	cfgPath := filepath.Join(dir, "mcns.toml")
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
service_name = "mcns"

[dns]
listen_addr = %q

[[zones]]
name = "svc.mcp.test"
primary_ns = "mcns.svc.mcp.test."
admin_email = "hostmaster@mcp.test"

[[zones]]
name = "mcp.test."
`, httpLn.Addr(), grpcLn.Addr(), env.mcnsCert.CertPath, env.mcnsCert.KeyPath, filepath.Join(dir, "mcns.db"),
		env.mciasURL, env.ca.CertPath(), udp.LocalAddr())
	if err := os.WriteFile(cfgPath, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{
			Name: server.ServiceName, Logger: logger,
			Listeners:   map[string]net.Listener{"http": httpLn, "grpc": grpcLn, "dns": dnsTCP},
			PacketConns: map[string]net.PacketConn{"dns": udp},
		}, func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, cfg, rt) })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("server.Run did not return after cancel")
		}
		if t.Failed() {
			t.Logf("mcns log:\n%s", logs.String())
		}
	})
	conn, err := grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig())))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the server's cleanup, so it runs first.
	t.Cleanup(func() { _ = conn.Close() })
	return &harness{cfg: cfg, logs: logs, rest: "https://" + httpLn.Addr().String(), dns: udp.LocalAddr().String(), conn: conn}
}

// client is a REST client for MCNS acting as caller ("" for none).
func (h *harness) client(t *testing.T, caller string) *restClient {
	t.Helper()
	c, err := newRESTClient(h.rest, env.ca.CertPath(), env.tokens[caller])
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

func (h *harness) zones() mcnsv1.ZoneServiceClient     { return mcnsv1.NewZoneServiceClient(h.conn) }
func (h *harness) records() mcnsv1.RecordServiceClient { return mcnsv1.NewRecordServiceClient(h.conn) }

// serial is the zone's current serial, read over REST as the admin.
func (h *harness) serial(t *testing.T, name string) uint32 {
	t.Helper()
	z, err := h.client(t, admin).GetZone(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return z.Serial
}
