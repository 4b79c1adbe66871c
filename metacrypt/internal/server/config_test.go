package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExampleConfigLoads keeps deploy/examples/metacrypt.toml valid.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../../deploy/examples/metacrypt.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PKI.ExternalURL != "http://pki.metacircular.net" || cfg.PKI.CRLLifetime.Duration != 72*time.Hour || cfg.Seal.Argon2MemoryKiB != 65536 {
		t.Fatalf("%+v", cfg)
	}
	if len(cfg.ACME.Resolvers) != 2 || cfg.ACME.HTTP01Port != 80 || cfg.ACME.TLSALPN01Port != 443 || cfg.ACME.ValidationAttempts != 5 {
		t.Fatalf("[acme] %+v", cfg.ACME)
	}
	if !cfg.Web.Enabled || cfg.Web.SSOClientID != "metacrypt" || cfg.Web.SSOMCIASURL != cfg.MCIAS.ServerURL {
		t.Fatalf("[web] %+v", cfg.Web)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	base := `[server]
grpc_addr = "127.0.0.1:0"
tls_cert = "c"
tls_key = "k"
[database]
path = "m.db"
[mcias]
server_url = "https://mcias.test"
`
	for extra, want := range map[string]string{
		"[pki]\nexternal_url = \"pki.example.net\"\n":            "pki.external_url",
		"[pki]\nexternal_url = \"http://pki.test/x\"\n":          "pki.external_url",
		"[pki]\ncrl_lifetime = \"5m\"\n":                         "pki.crl_lifetime",
		"[seal]\nargon2_memory_kib = 1024\n":                     "seal.argon2_memory_kib",
		"[seal]\nargon2_iterations = 0\nargon2_memory_kib = 1\n": "seal.argon2_memory_kib",
		"[pki]\nexternal_urll = \"http://x\"\n":                  "pki.external_urll",
		"[acme]\nresolvers = [\"mcns.example:53\"]\n":            "acme.resolvers[0]",
		"[acme]\nhttp01_port = 70000\n":                          "acme.http01_port",
		"[acme]\ntls_alpn01_port = -1\n":                         "acme.tls_alpn01_port",
		"[acme]\nvalidation_attempts = 50\n":                     "acme.validation_attempts",
		"[acme]\nvalidation_backoff = \"1ms\"\n":                 "acme.validation_backoff",
		"[acme]\norder_lifetime = \"1s\"\n":                      "acme.order_lifetime",
		"[web]\nenabled = true\n":                                "web.sso_client_id",
		"[web]\nenabled = true\nsso_client_id = \"m\"\n":         "web.sso_redirect_uri",
		"[web]\nenabled = true\nsso_client_id = \"m\"\nsso_redirect_uri = \"http://m.test/sso/callback\"\n":                                  "web.sso_redirect_uri",
		"[web]\nenabled = true\nsso_client_id = \"m\"\nsso_redirect_uri = \"https://m.test/callback\"\n":                                     "web.sso_redirect_uri",
		"[web]\nenabled = true\nsso_client_id = \"m\"\nsso_redirect_uri = \"https://m.test/sso/callback\"\nsso_mcias_url = \"mcias.test\"\n": "web.sso_mcias_url",
		"[web]\nenable = true\n": "web.enable",
	} {
		p := filepath.Join(t.TempDir(), "metacrypt.toml")
		if err := os.WriteFile(p, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: %v, want an error naming %s and the file", extra, err, want)
		}
	}
	p := filepath.Join(t.TempDir(), "metacrypt.toml")
	if err := os.WriteFile(p, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Seal.Argon2MemoryKiB != 65536 || cfg.PKI.OCSPLifetime.Duration != time.Hour || cfg.PKI.RefreshInterval.Duration != time.Minute ||
		cfg.ACME.HTTP01Port != 80 || cfg.ACME.ValidationBackoff.Duration != 5*time.Second || cfg.ACME.OrderLifetime.Duration != 24*time.Hour {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.Web.Enabled {
		t.Fatal("the web UI is on by default")
	}
}
