package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	mcproxyv1 "git.metacircular.net/metacircular/mcproxy/gen/mcproxy/v1"
	"git.metacircular.net/metacircular/mcproxy/internal/admin"
	"git.metacircular.net/metacircular/mcproxy/internal/server"
)

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "mc-proxy.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigErrors(t *testing.T) {
	base := `[server]
admin_socket = "/tmp/x.sock"
[database]
path = "/tmp/x.db"
[[listeners]]
name = "https"
addr = "127.0.0.1:0"
`
	for name, tc := range map[string]struct{ body, want string }{
		"unknown key":         {base + "[timeouts]\nhelo = \"1s\"\n", `unknown key "timeouts.helo"`},
		"route listener":      {base + "[[routes]]\nlistener = \"alt\"\nhostname = \"a.example\"\nmode = \"l4\"\nbackend = \"127.0.0.1:1\"\n", `no [[listeners]] named "alt"`},
		"route mode":          {base + "[[routes]]\nlistener = \"https\"\nhostname = \"a.example\"\nmode = \"l3\"\nbackend = \"127.0.0.1:1\"\n", `mode must be`},
		"duplicate route":     {base + strings.Repeat("[[routes]]\nlistener = \"https\"\nhostname = \"a.example\"\nmode = \"l4\"\nbackend = \"127.0.0.1:1\"\n", 2), "listed twice"},
		"bad cidr":            {base + "[firewall]\nblocked_cidrs = [\"10.0.0.0/33\"]\n", "firewall.blocked_cidrs[0]"},
		"country needs geoip": {base + "[firewall]\nblocked_countries = [\"XX\"]\n", "needs firewall.geoip_db"},
		"proxy protocol":      {base + "proxy_protocol = true\n", "needs trusted_proxies"},
		"no listeners":        {"[server]\nadmin_socket = \"/tmp/x.sock\"\n[database]\npath = \"/tmp/x.db\"\n", "[[listeners]]"},
		"no admin socket":     {"[server]\n[database]\npath = \"/tmp/x.db\"\n[[listeners]]\nname = \"h\"\naddr = \":1\"\n", "server.admin_socket"},
	} {
		_, err := server.LoadConfig(writeConfig(t, t.TempDir(), tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: LoadConfig = %v, want an error containing %q", name, err, tc.want)
		}
	}
	cfg, err := server.LoadConfig(writeConfig(t, t.TempDir(), base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeouts.Hello.Duration != server.DefaultHelloTimeout || cfg.Server.ShutdownTimeout.Duration != server.DefaultShutdownTimeout {
		t.Fatalf("defaults not applied: %+v %+v", cfg.Timeouts, cfg.Server)
	}
}

// backend is a TLS server answering one line per connection with its name,
// standing for a service behind an L4 route.
func backend(t *testing.T, pki *tlstest.PKI, name string) string {
	t.Helper()
	pair := pki.Issue(t, name, name)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair.TLS}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = fmt.Fprintf(c, "hello from %s\n", name)
			}()
		}
	}()
	return ln.Addr().String()
}

type running struct {
	cfg    *server.Config
	logs   *syncbuf.Buffer
	client mcproxyv1.AdminServiceClient
	proxy  string
	stop   func() error
}

func startServer(t *testing.T, cfgPath string) *running {
	t.Helper()
	cfg, err := server.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, logger, server.Listeners{Proxy: map[string]net.Listener{"https": ln}, Metrics: mln})
	}()
	client, cc, err := admin.Dial(cfg.Server.AdminSocket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Status(cctx, &mcproxyv1.StatusRequest{})
		ccancel()
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before serving: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin socket not ready: %v\n%s", err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := &running{cfg: cfg, logs: logs, client: client, proxy: ln.Addr().String()}
	stopped := false
	r.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cc.Close()
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Run did not return within 15s of cancel")
		}
	}
	t.Cleanup(func() { _ = r.stop() })
	// The metrics endpoint serves.
	resp, err := http.Get("http://" + mln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	return r
}

// through connects to the proxy with SNI host and returns the backend's
// greeting (trusting the test PKI, as a real client trusts the backend's
// certificate through an L4 route).
func through(t *testing.T, pki *tlstest.PKI, proxyAddr, host string) (string, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", proxyAddr, &tls.Config{ServerName: host, RootCAs: pki.Pool, MinVersion: tls.VersionTLS13})
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func TestRunSeedsServesAndKeepsAdminChangesAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pki := tlstest.New(t)
	seedBackend := backend(t, pki, "seed.example")
	apiBackend := backend(t, pki, "api.example")
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`[server]
admin_socket = %q
shutdown_timeout = "2s"
[database]
path = %q
[[listeners]]
name = "https"
addr = "127.0.0.1:0"
[[routes]]
listener = "https"
hostname = "seed.example"
mode = "l4"
backend = %q
[firewall]
blocked_cidrs = ["192.0.2.0/24"]
`, filepath.Join(dir, "mc-proxy.sock"), filepath.Join(dir, "mc-proxy.db"), seedBackend))

	a := startServer(t, cfgPath)
	if strings.Contains(a.logs.String(), "differ") {
		t.Fatalf("divergence reported right after seeding:\n%s", a.logs)
	}
	fi, err := os.Stat(a.cfg.Server.AdminSocket)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("admin socket mode = %v, %v", fi.Mode().Perm(), err)
	}
	if got, err := through(t, pki, a.proxy, "seed.example"); err != nil || got != "hello from seed.example" {
		t.Fatalf("seed route: %q, %v", got, err)
	}
	if _, err := through(t, pki, a.proxy, "api.example"); err == nil {
		t.Fatal("unknown SNI was proxied")
	}
	if _, err := a.client.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: &mcproxyv1.Route{
		Listener: "https", Hostname: "api.example", Mode: "l4", Backend: apiBackend,
	}}); err != nil {
		t.Fatal(err)
	}
	if got, err := through(t, pki, a.proxy, "API.example"); err != nil || got != "hello from api.example" {
		t.Fatalf("route added over the API: %q, %v", got, err)
	}
	if err := a.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(a.cfg.Server.AdminSocket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("admin socket left behind: %v", err)
	}

	b := startServer(t, cfgPath)
	if got, err := through(t, pki, b.proxy, "api.example"); err != nil || got != "hello from api.example" {
		t.Fatalf("after restart, API route: %q, %v", got, err)
	}
	logs := b.logs.String()
	if n := strings.Count(logs, "mc-proxy.toml and the database differ"); n != 1 || !strings.Contains(logs, "route https/api.example: in the database, not in the TOML") {
		t.Fatalf("want one divergence warning naming https/api.example, got %d:\n%s", n, logs)
	}
	st, err := b.client.Status(ctx, &mcproxyv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetRoutes() != 2 || st.GetFirewallRules() != 1 || len(st.GetDivergence()) != 1 ||
		len(st.GetListeners()) != 1 || st.GetListeners()[0].GetRoutes() != 2 || st.GetListeners()[0].GetAddr() != b.proxy {
		t.Fatalf("Status = %v", st)
	}
}
