package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/service"
)

func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.WriteString(stdin)
	_ = w.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; _ = r.Close() }()
	root := service.Command(def())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), err
}

// TestInitVerb sets the unseal password on the host with init
// --password-stdin, refuses nothing on a second run, and status reports
// the result.
func TestInitVerb(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "metacrypt.toml")
	if err := os.WriteFile(cfg, []byte(`[server]
grpc_addr = "127.0.0.1:0"
tls_cert = "c"
tls_key = "k"
[database]
path = "`+filepath.Join(dir, "metacrypt.db")+`"
[mcias]
server_url = "https://mcias.test"
[seal]
argon2_memory_kib = 8192
argon2_iterations = 1
argon2_parallelism = 1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "short\n", "--config", cfg, "init", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "at least 12") {
		t.Fatalf("short password: %v", err)
	}
	out, err := run(t, "a good long unseal password\n", "--config", cfg, "init", "--password-stdin")
	if err != nil || !strings.Contains(out, "initialized") {
		t.Fatalf("init: %q %v", out, err)
	}
	if out, err := run(t, "", "--config", cfg, "init"); err != nil || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second init: %q %v", out, err)
	}
	out, err = run(t, "", "--config", cfg, "status", "--json")
	var st struct {
		Initialized bool `json:"initialized"`
		KeyVersion  int  `json:"key_version"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || !st.Initialized || st.KeyVersion != 1 {
		t.Fatalf("status: %q %v", out, err)
	}
}

// TestEveryCommandHasExample walks the binary's commands.
func TestEveryCommandHasExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" || c.Parent() != nil && c.Parent().Name() == "completion" {
			return
		}
		if c.HasParent() && c.Example == "" {
			t.Errorf("%q has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(service.Command(def()))
}
