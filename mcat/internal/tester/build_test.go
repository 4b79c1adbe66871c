package tester

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth/authtest"
	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

// TestBuild runs MCAT as "mcat server" does, on the service runtime: the
// page over TLS, with the runtime's health and metrics beside it.
func TestBuild(t *testing.T) {
	mcias := authtest.New(t)
	mcias.AddUser(authtest.User{Username: "alice", Password: "alice-password", Roles: []string{"user"}})
	pki := tlstest.New(t)
	pair := pki.Issue(t, "mcat", "127.0.0.1")
	cfg := &Config{
		Server: config.Server{ListenAddr: "127.0.0.1:0", TLSCert: pair.CertFile, TLSKey: pair.KeyFile},
		MCIAS:  config.MCIAS{ServerURL: mcias.URL, CACert: mcias.CAFile, ServiceName: "mcat"},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{Name: ServiceName, Listeners: map[string]net.Listener{"http": ln}},
			func(ctx context.Context, rt *service.Runtime) error { return Build(ctx, cfg, rt) })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mcat: %v", err)
		}
	}()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}, Jar: jar, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	base := "https://" + ln.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/v1/health"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Fatalf("GET /v1/health = %d %s", code, body)
	}
	b := &browser{t: t, c: c, base: base}
	if code, body := b.post(url.Values{"username": {"alice"}, "password": {"alice-password"}, "service_name": {"web"}}, ""); code != http.StatusOK || outcomeIn(body) != "allowed" {
		t.Fatalf("login test = %d outcome %q", code, outcomeIn(body))
	}
	code, page := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`http_requests_total{code="200",method="GET",route="GET /{$}"} 1`,
		`http_requests_total{code="200",method="POST",route="POST /{$}"} 1`,
		"go_goroutines ",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
