package server_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/client"
	"git.metacircular.net/metacircular/metacrypt/internal/server"
)

// TestBootstrap: the offline bootstrap sets up the platform CA on a fresh
// database (as the launcher does), changes nothing when run again, refuses
// a wrong password, and leaves a Metacrypt whose agent issues names under
// svc.D only, chained to the imported seed root.
func TestBootstrap(t *testing.T) {
	h := start(t)
	h.stop()
	cfg, err := server.LoadConfig(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	req := server.BootstrapRequest{
		Password: []byte(unsealPassword), RootCertFile: env.ca.CertPath(),
		RootKeyFile: filepath.Join(filepath.Dir(env.ca.CertPath()), "ca.key"), Domain: domain,
	}
	var out bytes.Buffer
	if err := server.Bootstrap(t.Context(), cfg, req, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"initialized", "created CA mount pki", "imported root", "created issuer services", "limited mcp-agent to *.svc." + domain} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("first bootstrap output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := server.Bootstrap(t.Context(), cfg, req, &out); err != nil || out.Len() != 0 {
		t.Fatalf("second bootstrap: %v, said %q; want nothing changed", err, out.String())
	}
	wrong := req
	wrong.Password = []byte("not the unseal password")
	if err := server.Bootstrap(t.Context(), cfg, wrong, &out); err == nil {
		t.Fatal("bootstrap accepted a wrong unseal password")
	}

	h.run(t)
	ctx := t.Context()
	if _, err := h.client(t, admin).Unseal(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	ag := h.client(t, agent)
	is, err := ag.Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("web")}})
	if err != nil {
		t.Fatalf("agent issue under svc.D: %v", err)
	}
	block, _ := pem.Decode([]byte(is.CertificatePEM))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM([]byte(is.ChainPEM))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: env.ca.Pool(), Intermediates: inter, DNSName: svcName("web")}); err != nil {
		t.Errorf("issued chain does not verify against the seed root: %v", err)
	}
	if _, err := ag.Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{"svc." + domain}}); apierr.KindOf(err) != apierr.Denied {
		t.Errorf("agent issued the bare suffix: %v", err)
	}
}
