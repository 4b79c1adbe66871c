package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcias/internal/server"
)

// TestPprofListenerIsOptIn: runtime profiles are served only on the
// loopback debug.pprof_addr listener, and never on the API listener.
func TestPprofListenerIsOptIn(t *testing.T) {
	off := start(t, "")
	if code, body := off.rest(t, http.MethodGet, "/debug/pprof/", "", nil); code != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ on the API listener without [debug] = %d %s; want 404", code, body)
	}

	pprofLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := newConfig(t, fmt.Sprintf("[debug]\npprof_addr = %q\n", pprofLn.Addr().String()))
	tc.extra = map[string]net.Listener{"pprof": pprofLn}
	bootstrap(t, tc.cfg)
	on, _ := serve(t, tc, server.Build)
	if code, body := on.rest(t, http.MethodGet, "/debug/pprof/", "", nil); code != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ on the API listener with [debug] = %d %s; want 404", code, body)
	}
	for path, want := range map[string]string{
		"/debug/pprof/allocs?debug=1":    "heap profile:",
		"/debug/pprof/goroutine?debug=1": "goroutine profile:",
		"/debug/pprof/cmdline":           "",
	} {
		resp, err := http.Get("http://" + pprofLn.Addr().String() + path) //nolint:noctx // loopback test server
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(data), want) {
			t.Fatalf("GET %s = %d %.80q, %v; want 200 containing %q", path, resp.StatusCode, data, err, want)
		}
	}
}

// TestPprofAddrMustBeLoopback: a profiling listener reachable from the
// network is refused at load, naming the key.
func TestPprofAddrMustBeLoopback(t *testing.T) {
	load := func(addr string) error {
		path := filepath.Join(t.TempDir(), "mcias.toml")
		toml := "[server]\nlisten_addr = \":8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[database]\npath = \"x.db\"\n" +
			fmt.Sprintf("[debug]\npprof_addr = %q\n", addr)
		if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := server.LoadConfig(path)
		return err
	}
	for _, addr := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:6060", ""} {
		if err := load(addr); err != nil {
			t.Errorf("pprof_addr %q refused: %v", addr, err)
		}
	}
	for _, addr := range []string{":6060", "0.0.0.0:6060", "[::]:6060", "10.0.0.1:6060", "mcias.example:6060", "127.0.0.1"} {
		if err := load(addr); err == nil || !strings.Contains(err.Error(), "debug.pprof_addr") {
			t.Errorf("pprof_addr %q: %v; want an error naming debug.pprof_addr", addr, err)
		}
	}
}
