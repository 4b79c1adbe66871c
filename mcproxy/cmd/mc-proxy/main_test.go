package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
)

// TestBinaries builds mc-proxy and mcproxyctl, runs "mc-proxy server" and
// drives it with mcproxyctl and "mc-proxy status" over the admin socket.
func TestBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	dir := t.TempDir()
	proxyBin, ctlBin := filepath.Join(dir, "mc-proxy"), filepath.Join(dir, "mcproxyctl")
	for bin, pkg := range map[string]string{proxyBin: ".", ctlBin: "../mcproxyctl"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	// A free port for the listener; the race with another process taking
	// it in between is accepted in a test.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	sock := filepath.Join(dir, "mc-proxy.sock")
	cfg := filepath.Join(dir, "mc-proxy.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `[server]
admin_socket = %q
shutdown_timeout = "2s"
[database]
path = %q
[[listeners]]
name = "https"
addr = %q
[[routes]]
listener = "https"
hostname = "seed.example"
mode = "l4"
backend = "127.0.0.1:9"
`, sock, filepath.Join(dir, "mc-proxy.db"), addr), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(proxyBin, "--config", cfg, "server")
	logs := &syncbuf.Buffer{}
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })

	ctl := func(args ...string) (string, error) {
		out, err := exec.Command(ctlBin, append([]string{"--socket", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ctl("status"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mc-proxy did not come up:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	must := func(want string, args ...string) string {
		t.Helper()
		out, err := ctl(args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("mcproxyctl %v = %v\n%s\nwant output containing %q", args, err, out, want)
		}
		return out
	}
	must("added route https/api.example -> 127.0.0.1:8443 (l4)",
		"routes", "add", "--listener", "https", "--hostname", "API.example", "--mode", "l4", "--backend", "127.0.0.1:8443")
	must("replaced route https/api.example",
		"routes", "add", "--listener", "https", "--hostname", "api.example", "--mode", "l4", "--backend", "127.0.0.1:8443")
	out := must("api.example", "routes", "list")
	if !strings.HasPrefix(out, "LISTENER") || !strings.Contains(out, "seed.example") {
		t.Fatalf("routes list table:\n%s", out)
	}
	out = must(`"hostname": "api.example"`, "--json", "routes", "list")
	var routes []map[string]any
	if err := json.Unmarshal([]byte(out), &routes); err != nil || len(routes) != 2 {
		t.Fatalf("routes list --json: %v\n%s", err, out)
	}
	must("added firewall rule cidr:198.51.100.0/24", "firewall", "add", "cidr", "198.51.100.7/24", "--reason", "scanner")
	must("scanner", "firewall", "list")

	// Failures: one line on stderr, non-zero exit.
	for _, args := range [][]string{
		{"routes", "add", "--listener", "https", "--hostname", "x.example", "--mode", "l9", "--backend", "127.0.0.1:1"},
		{"routes", "remove", "https", "missing.example"},
		{"firewall", "add", "ip", "not-an-ip"},
	} {
		out, err := ctl(args...)
		if err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.HasPrefix(out, "mcproxyctl: ") {
			t.Errorf("mcproxyctl %v = %v, %q; want one error line and a failure", args, err, out)
		}
	}

	out = must("route https/api.example: in the database, not in the TOML", "status")
	if !strings.Contains(out, "firewall rule cidr:198.51.100.0/24: in the database") {
		t.Fatalf("status:\n%s", out)
	}
	statusOut, err := exec.Command(proxyBin, "--config", cfg, "status", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("mc-proxy status: %v\n%s", err, statusOut)
	}
	var st struct {
		Routes     int      `json:"routes"`
		Divergence []string `json:"divergence"`
		Listeners  []struct {
			Addr string `json:"addr"`
		} `json:"listeners"`
	}
	if err := json.Unmarshal(statusOut, &st); err != nil || st.Routes != 2 || len(st.Divergence) != 2 || len(st.Listeners) != 1 || st.Listeners[0].Addr != addr {
		t.Fatalf("mc-proxy status --json: %v\n%s", err, statusOut)
	}
	must("removed route https/api.example", "routes", "remove", "https", "api.example")
	must("removed firewall rule cidr:198.51.100.0/24", "firewall", "remove", "cidr", "198.51.100.0/24")
	must("agree", "status")

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("mc-proxy server exited with %v after SIGTERM:\n%s", err, logs)
	}
	snap, err := exec.Command(proxyBin, "--config", cfg, "snapshot", "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(snap), `"path"`) {
		t.Fatalf("mc-proxy snapshot: %v\n%s", err, snap)
	}
}
