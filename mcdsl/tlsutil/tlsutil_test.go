package tlsutil

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

func TestServerConfigFullChain(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "svc", "svc.example", "127.0.0.1")
	cfg, err := ServerConfig(pair.CertFile, pair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Fatalf("min version %x", cfg.MinVersion)
	}
	if len(cfg.Certificates[0].Certificate) != 2 {
		t.Fatalf("chain length %d", len(cfg.Certificates[0].Certificate))
	}
}

func TestVerifyFullChain(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "svc", "svc.example")
	full, err := os.ReadFile(pair.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	leafOnly := full[:len(full)-len(caPEM)]
	other := tlstest.New(t)
	otherCA, err := os.ReadFile(other.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pem  []byte
		want string
	}{
		{"full", full, ""},
		{"self-signed root alone", caPEM, ""},
		{"leaf only", leafOnly, "no issuer certificate"},
		{"wrong issuer", append(append([]byte{}, leafOnly...), otherCA...), "not signed by"},
		{"reversed", append(append([]byte{}, caPEM...), leafOnly...), "expected the leaf first"},
		{"garbage", []byte("hello"), "no PEM certificates"},
	} {
		err := VerifyFullChain(tc.pem)
		if tc.want == "" && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: want error containing %q, got %v", tc.name, tc.want, err)
		}
	}
	// A server refuses to start with a leaf-only certificate.
	leafFile := filepath.Join(t.TempDir(), "leaf.crt")
	if err := os.WriteFile(leafFile, leafOnly, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ServerConfig(leafFile, pair.KeyFile); err == nil || !strings.Contains(err.Error(), leafFile) {
		t.Fatalf("leaf-only cert accepted or error lacks file name: %v", err)
	}
}

func TestCAPoolAndClientConfig(t *testing.T) {
	pki := tlstest.New(t)
	cfg, err := ClientConfig(pki.CAFile)
	if err != nil || cfg.RootCAs == nil || cfg.MinVersion != tls.VersionTLS13 {
		t.Fatalf("client config: %+v %v", cfg, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCAPool(bad); err == nil {
		t.Fatal("bad pool accepted")
	}
	if _, err := LoadCAPool(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing pool accepted")
	}
}
