package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcias/internal/server"
)

func TestWebAuthnConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ section, want string }{
		{"[webauthn]\nrp_id = \"localhost\"\nrp_origins = [\"https://localhost:8443/\"]\n", `webauthn.rp_origins[0] "https://localhost:8443/"`},
		{"[webauthn]\nrp_id = \"mcias.example.net\"\nrp_origins = [\"https://mcias.example.net:443\"]\n", "default port"},
		{"[webauthn]\nrp_id = \"mcias.example.net\"\nrp_origins = [\"https://evil.example\"]\n", "subdomain"},
		{"[webauthn]\nrp_id = \"mcias.example.net\"\n", "webauthn.rp_origins"},
		{"[webauthn]\nrp_origins = [\"https://mcias.example.net\"]\n", "webauthn.rp_id"},
		{"[webauthn]\nrp_display_name = \"x\"\n", "webauthn.rp_display_name"},
	} {
		path := filepath.Join(t.TempDir(), "mcias.toml")
		toml := "[server]\nlisten_addr = \":8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[database]\npath = \"x.db\"\n" + tc.section
		if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := server.LoadConfig(path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want one naming the file and %q", tc.section, err, tc.want)
		}
	}
}

// TestExampleConfigPasskeys: the shipped example configures a valid
// relying party.
func TestExampleConfigPasskeys(t *testing.T) {
	cfg, err := server.LoadConfig("../../deploy/examples/mcias.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.WebAuthn.Enabled() || cfg.WebAuthn.RPID != "mcias.svc.mcp.metacircular.net" || len(cfg.WebAuthn.RPOrigins) != 1 {
		t.Fatalf("example [webauthn] = %+v", cfg.WebAuthn)
	}
}
