package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcr/internal/server"
)

// TestExampleConfig: the shipped example loads, and bad values name the
// key.
func TestExampleConfig(t *testing.T) {
	cfg, err := server.LoadConfig(filepath.Join("..", "..", "deploy", "examples", "mcr.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registry.Service != "mcr.svc.mcp.metacircular.net" || cfg.GC.Grace.Hours() != 1 || !cfg.Web.Enabled {
		t.Fatalf("example: %+v", cfg.Registry)
	}
	dir := t.TempDir()
	for _, c := range []struct{ toml, want string }{
		{"[registry]\npublic_url = \"http://x\"\n", "registry.public_url"},
		{"[registry]\nbogus = 1\n", "unknown key"},
		{"[gc]\ninterval = \"1s\"\n", "gc.interval"},
		{"[web]\nenabled = true\n", "web.sso_client_id"},
	} {
		p := filepath.Join(dir, "mcr.toml")
		base := "[server]\nlisten_addr = \":8443\"\ntls_cert = \"c\"\ntls_key = \"k\"\n[database]\npath = \"/tmp/x/mcr.db\"\n[mcias]\nserver_url = \"https://m\"\n"
		if err := os.WriteFile(p, []byte(base+c.toml), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := server.LoadConfig(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.toml, err, c.want)
		}
	}
}
