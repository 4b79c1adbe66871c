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
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/client"
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
		"ipv6 prefix":         {base + "[firewall]\nrate_ipv6_prefix = 129\n", "firewall.rate_ipv6_prefix"},
		"ipv4 prefix":         {base + "[firewall]\nrate_ipv4_prefix = 33\n", "firewall.rate_ipv4_prefix"},
		"backend protocol":    {base + "[[routes]]\nlistener = \"https\"\nhostname = \"a.example\"\nmode = \"l7\"\nbackend = \"127.0.0.1:1\"\ntls_cert = \"c\"\ntls_key = \"k\"\nbackend_protocol = \"h3\"\n", `backend_protocol must be "http1", "h2c" or "auto", got "h3"`},
		"h2c with tls":        {base + "[[routes]]\nlistener = \"https\"\nhostname = \"a.example\"\nmode = \"l7\"\nbackend = \"127.0.0.1:1\"\ntls_cert = \"c\"\ntls_key = \"k\"\nbackend_tls = true\nbackend_protocol = \"h2c\"\n", "cannot be combined with backend_tls"},
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
	cfg     *server.Config
	logs    *syncbuf.Buffer
	client  *client.Client
	proxy   string
	metrics string
	stop    func() error
}

// startServer runs mc-proxy as "mc-proxy server" does, on the service
// runtime, with its "https" listener and its metrics listener pre-bound
// on loopback ports chosen by the kernel.
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
		done <- service.Run(ctx, service.Options{
			Name: server.ServiceName, Logger: logger,
			Listeners: map[string]net.Listener{server.ListenerComponent("https"): ln, server.MetricsComponent: mln},
		}, func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, cfg, rt) })
	}()
	// Calling before the socket exists would put the connection into
	// gRPC's reconnect backoff.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(cfg.Server.AdminSocket); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := client.New(cfg.Server.AdminSocket)
	if err != nil {
		t.Fatal(err)
	}
	for {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Status(cctx)
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
	r := &running{cfg: cfg, logs: logs, client: c, proxy: ln.Addr().String(), metrics: "http://" + mln.Addr().String() + "/metrics"}
	stopped := false
	r.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = c.Close()
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
	if _, err := scrape(r.metrics); err != nil {
		t.Fatal(err)
	}
	return r
}

// scrape reads the metrics page at url.
func scrape(url string) (string, error) {
	resp, err := http.Get(url) //nolint:gosec,noctx // the test's own loopback server
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s = %d", url, resp.StatusCode)
	}
	return string(b), nil
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
metrics_addr = "127.0.0.1:0"
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
	if _, _, err := a.client.AddRoute(ctx, client.Route{Listener: "https", Hostname: "api.example", Mode: client.ModeL4, Backend: apiBackend}); err != nil {
		t.Fatal(err)
	}
	if got, err := through(t, pki, a.proxy, "API.example"); err != nil || got != "hello from api.example" {
		t.Fatalf("route added over the API: %q, %v", got, err)
	}
	// One metrics page: the data plane's series, the Go runtime's and the
	// admin API's RPCs.
	page, err := scrape(a.metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`mcproxy_connections_total{listener="https"} `,
		`mcproxy_route_requests_total{host="api.example",listener="https",mode="l4",outcome="ok"} `,
		"mcproxy_open_connections ",
		"go_goroutines ",
		`grpc_server_handled_total{grpc_code="OK",grpc_method="AddRoute",grpc_service="mcproxy.v1.AdminService"} 1`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := a.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	logs := a.logs.String()
	for _, want := range []string{"msg=\"mc-proxy started\"", "listener:https=" + a.proxy, "admin=" + a.cfg.Server.AdminSocket, "metrics=127.0.0.1:", "msg=\"mc-proxy stopped cleanly\""} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if _, err := os.Stat(a.cfg.Server.AdminSocket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("admin socket left behind: %v", err)
	}

	b := startServer(t, cfgPath)
	if got, err := through(t, pki, b.proxy, "api.example"); err != nil || got != "hello from api.example" {
		t.Fatalf("after restart, API route: %q, %v", got, err)
	}
	logs = b.logs.String()
	if n := strings.Count(logs, "mc-proxy.toml and the database differ"); n != 1 || !strings.Contains(logs, "route https/api.example: in the database, not in the TOML") {
		t.Fatalf("want one divergence warning naming https/api.example, got %d:\n%s", n, logs)
	}
	st, err := b.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Routes != 2 || st.FirewallRules != 1 || len(st.Divergence) != 1 ||
		len(st.Listeners) != 1 || st.Listeners[0].Routes != 2 || st.Listeners[0].Addr != b.proxy {
		t.Fatalf("Status = %+v", st)
	}
}

// TestStartFailureReleasesEverything: a metrics port that is taken (bound
// last) stops the start before anything serves, and what was bound
// before it (the proxy listener, the admin socket) is released.
func TestStartFailureReleasesEverything(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	sock := filepath.Join(dir, "mc-proxy.sock")
	cfg, err := server.LoadConfig(writeConfig(t, dir, fmt.Sprintf(`[server]
admin_socket = %q
metrics_addr = %q
[database]
path = %q
[[listeners]]
name = "https"
addr = "127.0.0.1:0"
`, sock, taken.Addr().String(), filepath.Join(dir, "mc-proxy.db"))))
	if err != nil {
		t.Fatal(err)
	}
	err = service.Run(context.Background(), service.Options{Name: server.ServiceName},
		func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, cfg, rt) })
	if err == nil || !strings.Contains(err.Error(), "metrics:") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run = %v; want the metrics listener's bind error", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("admin socket after a failed start: %v", err)
	}
}

// TestDefaultSocket: mcproxyctl's default socket is the example
// configuration's server.admin_socket.
func TestDefaultSocket(t *testing.T) {
	cfg, err := server.LoadConfig("../../deploy/examples/mc-proxy.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.AdminSocket != client.DefaultSocket {
		t.Fatalf("example admin_socket %q, client.DefaultSocket %q", cfg.Server.AdminSocket, client.DefaultSocket)
	}
}

// TestInit: init seeds a new database as the server would, and once
// seeded changes nothing and lists the TOML/database differences.
func TestInit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	body := fmt.Sprintf(`[server]
admin_socket = %q
[database]
path = %q
[[listeners]]
name = "https"
addr = "127.0.0.1:0"
[[routes]]
listener = "https"
hostname = "seed.example"
mode = "l4"
backend = "127.0.0.1:9"
`, filepath.Join(dir, "mc-proxy.sock"), filepath.Join(dir, "mc-proxy.db"))
	cfg, err := server.LoadConfig(writeConfig(t, dir, body))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := server.Init(ctx, cfg, &out); err != nil || !strings.Contains(out.String(), "seeded") || !strings.Contains(out.String(), "(1 routes, 0 firewall rules)") {
		t.Fatalf("first init: %v\n%s", err, out.String())
	}
	// The TOML changes after seeding: init reports it and keeps the database.
	cfg, err = server.LoadConfig(writeConfig(t, dir, strings.Replace(body, "127.0.0.1:9", "127.0.0.1:10", 1)))
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := server.Init(ctx, cfg, &out); err != nil || !strings.Contains(out.String(), "nothing changed") ||
		!strings.Contains(out.String(), "route https/seed.example: differs: backend toml=127.0.0.1:10 db=127.0.0.1:9") {
		t.Fatalf("second init: %v\n%s", err, out.String())
	}
}

// TestBackendProtocol: an l7 route's backend_protocol comes from the TOML
// seed, is listed and changed over the admin API, decides what the
// backend is spoken to in whatever the client speaks, and survives a
// restart; an unknown value is refused.
func TestBackendProtocol(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pki := tlstest.New(t)
	pair := pki.Issue(t, "app.example", "app.example")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: protos, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	cfgPath := writeConfig(t, dir, fmt.Sprintf(`[server]
admin_socket = %q
metrics_addr = "127.0.0.1:0"
shutdown_timeout = "2s"
[database]
path = %q
[[listeners]]
name = "https"
addr = "127.0.0.1:0"
[[routes]]
listener = "https"
hostname = "app.example"
mode = "l7"
backend = %q
tls_cert = %q
tls_key = %q
backend_protocol = "h2c"
`, filepath.Join(dir, "mc-proxy.sock"), filepath.Join(dir, "mc-proxy.db"), ln.Addr().String(), pair.CertFile, pair.KeyFile))

	curl := func(r *running) string {
		t.Helper()
		bin := testtool.Require(t, "curl")
		_, port, _ := net.SplitHostPort(r.proxy)
		out, err := exec.Command(bin, "-sS", "--fail", "--max-time", "10", "--http2", "--resolve", "app.example:"+port+":127.0.0.1",
			"--cacert", pki.CAFile, "https://app.example:"+port+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		return string(out)
	}
	a := startServer(t, cfgPath)
	if got := curl(a); got != "HTTP/2.0" {
		t.Fatalf("seeded h2c route: backend saw %q", got)
	}
	routes, err := a.client.ListRoutes(ctx, "https")
	if err != nil || len(routes) != 1 || routes[0].BackendProtocol != client.BackendH2C {
		t.Fatalf("ListRoutes = %+v, %v", routes, err)
	}
	r := routes[0]
	r.BackendProtocol = "h3"
	if _, _, err := a.client.AddRoute(ctx, r); client.KindOf(err) != apierr.Invalid {
		t.Fatalf("backend_protocol h3: %v; want invalid", err)
	}
	r.BackendProtocol = ""
	stored, created, err := a.client.AddRoute(ctx, r)
	if err != nil || created || stored.BackendProtocol != client.BackendHTTP1 {
		t.Fatalf("AddRoute without a protocol = %+v, %v, %v; want it stored as http1", stored, created, err)
	}
	if got := curl(a); got != "HTTP/1.1" {
		t.Fatalf("http1 route, HTTP/2 client: backend saw %q", got)
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	b := startServer(t, cfgPath)
	if got := curl(b); got != "HTTP/1.1" {
		t.Fatalf("after a restart: backend saw %q", got)
	}
	if !strings.Contains(b.logs.String(), "backend_protocol toml=h2c db=http1") {
		t.Fatalf("the changed protocol is not reported as a divergence:\n%s", b.logs)
	}
}
