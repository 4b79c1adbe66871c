package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/client"
	"git.metacircular.net/metacircular/mcproxy/internal/server"
)

// startProxy runs a real mc-proxy on the service runtime and returns its
// admin socket.
func startProxy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	path := filepath.Join(dir, "mc-proxy.toml")
	if err := os.WriteFile(path, fmt.Appendf(nil, `[server]
admin_socket = %q
shutdown_timeout = "2s"
[database]
path = %q
[[listeners]]
name = "https"
addr = "127.0.0.1:0"
`, sock, filepath.Join(dir, "mc-proxy.db")), 0o600); err != nil {
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
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("admin socket never appeared")
		}
	}
}

// ctl runs mcproxyctl in process.
func ctl(args ...string) (string, error) {
	cmd := root()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestRoutesRemoveTakesFlagsOrArguments(t *testing.T) {
	sock := startProxy(t)
	add := func(host string) {
		t.Helper()
		if out, err := ctl("--socket", sock, "routes", "add", "--listener", "https", "--hostname", host, "--mode", "l4", "--backend", "127.0.0.1:9"); err != nil {
			t.Fatalf("routes add %s: %v\n%s", host, err, out)
		}
	}
	add("flags.example")
	add("args.example")
	if out, err := ctl("--socket", sock, "routes", "remove", "--listener", "https", "--hostname", "flags.example"); err != nil || out != "removed route https/flags.example\n" {
		t.Fatalf("remove with flags: %v %q", err, out)
	}
	if out, err := ctl("--socket", sock, "routes", "remove", "https", "args.example"); err != nil || out != "removed route https/args.example\n" {
		t.Fatalf("remove with arguments: %v %q", err, out)
	}
	for _, args := range [][]string{
		{"routes", "remove", "--listener", "https"},
		{"routes", "remove", "https"},
		{"routes", "remove", "--listener", "https", "--hostname", "a.example", "https", "a.example"},
	} {
		if _, err := ctl(append([]string{"--socket", sock}, args...)...); err == nil {
			t.Errorf("mcproxyctl %v succeeded", args)
		}
	}
	_, err := ctl("--socket", sock, "routes", "remove", "--listener", "https", "--hostname", "args.example")
	if client.KindOf(err) != apierr.NotFound {
		t.Fatalf("removing a missing route: %v", err)
	}
}

func TestSocketDefault(t *testing.T) {
	t.Setenv(client.EnvSocket, "")
	if got := root().PersistentFlags().Lookup("socket").DefValue; got != client.DefaultSocket {
		t.Fatalf("default socket %q; want %q", got, client.DefaultSocket)
	}
	t.Setenv(client.EnvSocket, "/run/x/admin.sock")
	if got := root().PersistentFlags().Lookup("socket").DefValue; got != "/run/x/admin.sock" {
		t.Fatalf("socket from $%s = %q", client.EnvSocket, got)
	}
	// A socket nobody serves: one error naming it.
	_, err := ctl("--socket", filepath.Join(t.TempDir(), "none.sock"), "status")
	if err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("status without a server: %v", err)
	}
}

func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" && c.Name() != "help" && c.Name() != "completion" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			if sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(root())
}

func TestRoutesAddBackendProtocol(t *testing.T) {
	sock := startProxy(t)
	pair := tlstest.New(t).Issue(t, "grpc.example", "grpc.example")
	add := []string{"--socket", sock, "routes", "add", "--listener", "https", "--hostname", "grpc.example", "--mode", "l7",
		"--backend", "127.0.0.1:9090", "--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile}
	out, err := ctl(append(add, "--backend-protocol", "h2c")...)
	if err != nil || out != "added route https/grpc.example -> 127.0.0.1:9090 (l7, h2c)\n" {
		t.Fatalf("routes add --backend-protocol h2c: %v %q", err, out)
	}
	out, err = ctl("--socket", sock, "routes", "list")
	if err != nil || !strings.Contains(out, "BACKEND PROTOCOL") || !strings.Contains(out, " h2c ") {
		t.Fatalf("routes list: %v\n%s", err, out)
	}
	out, err = ctl("--socket", sock, "--json", "routes", "list")
	if err != nil || !strings.Contains(out, `"backend_protocol": "h2c"`) {
		t.Fatalf("routes list --json: %v\n%s", err, out)
	}
	// The default is http1; an unknown value and h2c over TLS are refused.
	if out, err := ctl(add...); err != nil || !strings.Contains(out, "(l7, http1)") {
		t.Fatalf("routes add without --backend-protocol: %v %q", err, out)
	}
	for _, extra := range [][]string{{"--backend-protocol", "h3"}, {"--backend-protocol", "h2c", "--backend-tls"}} {
		if _, err := ctl(append(add, extra...)...); client.KindOf(err) != apierr.Invalid {
			t.Errorf("routes add %v: %v; want invalid", extra, err)
		}
	}
	if _, err := ctl("--socket", sock, "routes", "add", "--listener", "https", "--hostname", "l4.example", "--mode", "l4",
		"--backend", "127.0.0.1:9", "--backend-protocol", "http1"); client.KindOf(err) != apierr.Invalid {
		t.Errorf("routes add l4 --backend-protocol: %v; want invalid", err)
	}
}
