package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcproxy/client"
	"git.metacircular.net/metacircular/mcproxy/internal/server"
)

// start runs a real mc-proxy (the service runtime with server.Build) with
// one "https" listener and returns a client of its admin socket.
func start(t *testing.T) *client.Client {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mc-proxy.toml")
	if err := os.WriteFile(path, fmt.Appendf(nil, `[server]
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
backend = "127.0.0.1:9"
`, filepath.Join(dir, "admin.sock"), filepath.Join(dir, "mc-proxy.db")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{Name: server.ServiceName, Listeners: map[string]net.Listener{server.ListenerComponent("https"): ln}},
			func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, cfg, rt) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mc-proxy: %v", err)
		}
	})
	// Calling before the socket exists would put the connection into
	// gRPC's reconnect backoff.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(cfg.Server.AdminSocket); err == nil || time.Now().After(deadline) {
			break
		}
	}
	c, err := client.New(cfg.Server.AdminSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := c.Status(ctx); err == nil {
			return c
		} else if time.Now().After(deadline) {
			t.Fatalf("mc-proxy did not answer: %v", err)
		}
	}
}

func TestRoutes(t *testing.T) {
	ctx := context.Background()
	c := start(t)
	r := client.Route{Listener: "https", Hostname: "App.Example.", Mode: client.ModeL4, Backend: "127.0.0.1:8443"}
	got, created, err := c.AddRoute(ctx, r)
	if err != nil || !created || got.Hostname != "app.example" || got.Backend != r.Backend {
		t.Fatalf("AddRoute = %+v, %v, %v", got, created, err)
	}
	// An idempotent upsert: the same route again is not new.
	if _, created, err := c.AddRoute(ctx, r); err != nil || created {
		t.Fatalf("AddRoute again = %v, %v; want created=false", created, err)
	}
	routes, err := c.ListRoutes(ctx, "https")
	if err != nil || len(routes) != 2 || routes[0].Hostname != "app.example" || routes[1].Hostname != "seed.example" {
		t.Fatalf("ListRoutes = %+v, %v", routes, err)
	}
	if routes, err := c.ListRoutes(ctx, "other"); err != nil || len(routes) != 0 {
		t.Fatalf("ListRoutes(other) = %+v, %v", routes, err)
	}
	_, _, err = c.AddRoute(ctx, client.Route{Listener: "nope", Hostname: "x.example", Mode: client.ModeL4, Backend: "127.0.0.1:1"})
	if client.KindOf(err) != apierr.Invalid {
		t.Fatalf("route on an unknown listener: %v (kind %v); want invalid", err, client.KindOf(err))
	}
	var remote *apierr.Remote
	if !errors.As(err, &remote) || remote.Service != "mc-proxy" {
		t.Fatalf("error %T %v; want an *apierr.Remote from mc-proxy", err, err)
	}
	if err := c.RemoveRoute(ctx, "https", "APP.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveRoute(ctx, "https", "app.example"); client.KindOf(err) != apierr.NotFound {
		t.Fatalf("second RemoveRoute = %v; want not found", err)
	}
}

func TestFirewallRulesAndStatus(t *testing.T) {
	ctx := context.Background()
	c := start(t)
	got, created, err := c.AddFirewallRule(ctx, client.Rule{Kind: client.RuleCIDR, Value: "198.51.100.7/24", Reason: "scanner"})
	if err != nil || !created || got.Value != "198.51.100.0/24" || got.Reason != "scanner" {
		t.Fatalf("AddFirewallRule = %+v, %v, %v", got, created, err)
	}
	if _, _, err := c.AddFirewallRule(ctx, client.Rule{Kind: client.RuleCountry, Value: "XX"}); client.KindOf(err) != apierr.Precondition {
		t.Fatalf("country rule without geoip_db = %v; want precondition failed", err)
	}
	if _, _, err := c.AddFirewallRule(ctx, client.Rule{Kind: client.RuleIP, Value: "not-an-ip"}); client.KindOf(err) != apierr.Invalid {
		t.Fatalf("bad IP = %v; want invalid", err)
	}
	rules, err := c.ListFirewallRules(ctx)
	if err != nil || len(rules) != 1 || rules[0] != got {
		t.Fatalf("ListFirewallRules = %+v, %v", rules, err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Routes != 1 || st.FirewallRules != 1 || len(st.Divergence) != 1 || len(st.Listeners) != 1 ||
		st.Listeners[0].Name != "https" || st.Listeners[0].Addr == "" || st.Database == "" {
		t.Fatalf("Status = %+v", st)
	}
	if err := c.RemoveFirewallRule(ctx, client.RuleCIDR, "198.51.100.0/24"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveFirewallRule(ctx, client.RuleCIDR, "198.51.100.0/24"); client.KindOf(err) != apierr.NotFound {
		t.Fatalf("second RemoveFirewallRule = %v; want not found", err)
	}
}

func TestNoServer(t *testing.T) {
	c, err := client.New(filepath.Join(t.TempDir(), "missing.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Status(ctx); client.KindOf(err) != apierr.Unavailable {
		t.Fatalf("Status without a server = %v; want unavailable", err)
	}
	if _, err := client.New(""); err == nil {
		t.Fatal("New with no socket path succeeded")
	}
}
