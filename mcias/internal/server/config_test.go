package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcias/internal/server"
)

// TestArgon2ConcurrencyConfig: [argon2] max_concurrent and max_wait reach
// the identity service; out-of-range values are refused naming the key.
func TestArgon2ConcurrencyConfig(t *testing.T) {
	load := func(section string) (*server.Config, error) {
		path := filepath.Join(t.TempDir(), "mcias.toml")
		toml := "[server]\nlisten_addr = \":8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[database]\npath = \"x.db\"\n" + section
		if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		return server.LoadConfig(path)
	}
	cfg, err := load("[argon2]\nmax_concurrent = 3\nmax_wait = \"500ms\"\n")
	if err != nil {
		t.Fatal(err)
	}
	ic, err := cfg.Identity()
	if err != nil || ic.Argon2Slots != 3 || ic.Argon2MaxWait != 500*time.Millisecond {
		t.Fatalf("identity config: slots %d, wait %v, %v", ic.Argon2Slots, ic.Argon2MaxWait, err)
	}
	cfg, err = load("")
	if err != nil {
		t.Fatal(err)
	}
	if ic, err = cfg.Identity(); err != nil || ic.Argon2Slots < 1 || ic.Argon2MaxWait != 2*time.Second {
		t.Fatalf("defaults: slots %d, wait %v, %v", ic.Argon2Slots, ic.Argon2MaxWait, err)
	}
	for _, tc := range []struct{ section, want string }{
		{"[argon2]\nmax_concurrent = -1\n", "argon2.max_concurrent"},
		{"[argon2]\nmax_concurrent = 5000\n", "argon2.max_concurrent"},
		{"[argon2]\nmax_wait = \"2m\"\n", "argon2.max_wait"},
	} {
		if _, err := load(tc.section); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want an error naming %s", tc.section, err, tc.want)
		}
	}
}
