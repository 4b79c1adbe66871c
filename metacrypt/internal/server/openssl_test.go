package server_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
	"git.metacircular.net/metacircular/metacrypt/client"
)

// tool runs a real client program and returns its combined output; a
// non-zero exit fails the test unless mayFail.
func tool(t *testing.T, mayFail bool, name string, args ...string) string {
	t.Helper()
	path := testtool.Require(t, name)
	out, err := exec.CommandContext(t.Context(), path, args...).CombinedOutput() //nolint:gosec // test programs
	if err != nil && !mayFail {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// write puts text in a file of dir and returns its path.
func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// curlGet fetches a URL with curl into a file (trusting the test CA for
// https) and returns the file's path.
func curlGet(t *testing.T, dir, name, u string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	tool(t, false, "curl", "-sS", "--fail", "--cacert", env.ca.CertPath(), "-o", out, u)
	return out
}

func firstPEM(t *testing.T, bundle string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(bundle))
	if block == nil {
		t.Fatalf("no PEM in %q", bundle)
	}
	return string(pem.EncodeToMemory(block))
}

// TestIssuedChainsVerifyWithOpenSSL issues certificates of every key
// type, from issuers of several key types, and has openssl verify each
// full chain against the root fetched with curl from the public
// endpoint; the chain also passes the platform's own full-chain check,
// and the certificate carries the CRL, OCSP and CA-issuers URLs.
func TestIssuedChainsVerifyWithOpenSSL(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	dir := t.TempDir()
	root := curlGet(t, dir, "root.pem", h.rest+"/v1/pki/pki/ca")
	ad := h.client(t, admin)
	for _, r := range []client.IssuerRequest{{Name: "edwards", KeyType: "ed25519"}, {Name: "rsa", KeyType: "rsa-3072"}} {
		if _, err := ad.CreateIssuer(ctx, "pki", r); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ issuer, keyType string }{
		{"services", ""}, {"services", "ec-p384"}, {"services", "ed25519"}, {"services", "rsa-2048"}, {"services", "rsa-3072"},
		{"edwards", "ec-p256"}, {"rsa", "ec-p256"}, {"infra", "ec-p256"},
	}
	for _, c := range cases {
		kt := c.keyType
		if kt == "" {
			kt = "default"
		}
		name := c.issuer + "-" + kt + ".svc." + domain
		is, err := ad.Issue(ctx, "pki", client.IssueRequest{Issuer: c.issuer, DNSNames: []string{name}, IPAddresses: []string{"10.1.2.3"}, KeyType: c.keyType})
		if err != nil {
			t.Fatalf("%s/%s: %v", c.issuer, c.keyType, err)
		}
		if err := tlsutil.VerifyFullChain([]byte(is.ChainPEM)); err != nil {
			t.Fatalf("%s/%s: not a full chain: %v", c.issuer, c.keyType, err)
		}
		leaf := write(t, dir, "leaf.pem", is.CertificatePEM)
		untrusted := write(t, dir, "issuer.pem", firstPEM(t, is.CAChainPEM))
		out := tool(t, false, "openssl", "verify", "-CAfile", root, "-untrusted", untrusted, "-purpose", "sslserver", leaf)
		if !strings.Contains(out, "leaf.pem: OK") {
			t.Fatalf("%s/%s: openssl verify: %s", c.issuer, c.keyType, out)
		}
		text := tool(t, false, "openssl", "x509", "-in", leaf, "-noout", "-text")
		for _, want := range []string{"DNS:" + name, "IP Address:10.1.2.3", "CA Issuers - URI:" + h.pki + "/v1/pki/pki/issuer/" + c.issuer + "/der",
			"URI:" + h.pki + "/v1/pki/pki/crl/" + c.issuer} {
			if !strings.Contains(text, want) {
				t.Fatalf("%s/%s: certificate lacks %q:\n%s", c.issuer, c.keyType, want, text)
			}
		}
		if c.issuer != "edwards" && !strings.Contains(text, "OCSP - URI:"+h.pki+"/v1/pki/pki/ocsp") {
			t.Fatalf("%s/%s: no OCSP URL:\n%s", c.issuer, c.keyType, text)
		}
		// The key returned once is the certificate's.
		keyFile := write(t, dir, "leaf.key", is.PrivateKeyPEM)
		pub1 := tool(t, false, "openssl", "pkey", "-in", keyFile, "-pubout")
		pub2 := tool(t, false, "openssl", "x509", "-in", leaf, "-noout", "-pubkey")
		if pub1 != pub2 {
			t.Fatalf("%s/%s: the returned key is not the certificate's", c.issuer, c.keyType)
		}
	}
	// A client certificate fails sslserver and passes sslclient.
	is, err := ad.Issue(ctx, "pki", client.IssueRequest{Issuer: "clients", DNSNames: []string{"alice.users." + domain}, Profile: "client"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := write(t, dir, "client.pem", is.CertificatePEM)
	untrusted := write(t, dir, "clients.pem", firstPEM(t, is.CAChainPEM))
	if out := tool(t, true, "openssl", "verify", "-CAfile", root, "-untrusted", untrusted, "-purpose", "sslserver", leaf); strings.Contains(out, ": OK") {
		t.Fatalf("client certificate verified for a server: %s", out)
	}
	if out := tool(t, false, "openssl", "verify", "-CAfile", root, "-untrusted", untrusted, "-purpose", "sslclient", leaf); !strings.Contains(out, ": OK") {
		t.Fatalf("client certificate: %s", out)
	}
}

// TestOCSPAndCRLWithOpenSSL drives the public responder and CRL with the
// URLs written in the certificate: openssl ocsp says good (POST), then,
// after a revocation, revoked with its reason; the GET form answers too
// (fetched with curl, checked by openssl); the CRL fetched with curl
// verifies under the issuer and lists the serial.
func TestOCSPAndCRLWithOpenSSL(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	dir := t.TempDir()
	ag := h.client(t, agent)
	is, err := ag.Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("ocsp")}})
	if err != nil {
		t.Fatal(err)
	}
	leafCert := parseCert(t, is.CertificatePEM)
	if len(leafCert.OCSPServer) != 1 || len(leafCert.CRLDistributionPoints) != 1 || len(leafCert.IssuingCertificateURL) != 1 {
		t.Fatalf("URLs: %v %v %v", leafCert.OCSPServer, leafCert.CRLDistributionPoints, leafCert.IssuingCertificateURL)
	}
	root := curlGet(t, dir, "root.pem", h.pki+"/v1/pki/pki/ca")
	issuerDER := curlGet(t, dir, "issuer.der", leafCert.IssuingCertificateURL[0])
	issuer := filepath.Join(dir, "issuer.pem")
	tool(t, false, "openssl", "x509", "-inform", "DER", "-in", issuerDER, "-out", issuer)
	leaf := write(t, dir, "leaf.pem", is.CertificatePEM)
	ocspURL := leafCert.OCSPServer[0]
	ocspCheck := func() string {
		return tool(t, false, "openssl", "ocsp", "-issuer", issuer, "-cert", leaf, "-url", ocspURL, "-CAfile", root, "-no_nonce")
	}
	if out := ocspCheck(); !strings.Contains(out, "leaf.pem: good") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("openssl ocsp before revocation:\n%s", out)
	}
	crlCheck := func() string {
		crl := curlGet(t, dir, "crl.der", leafCert.CRLDistributionPoints[0])
		return tool(t, false, "openssl", "crl", "-inform", "DER", "-in", crl, "-CAfile", issuer, "-noout", "-text")
	}
	// openssl prints a serial as whole bytes: an odd number of hex digits
	// gets a leading zero.
	serialHex := strings.ToUpper(is.Certificate.Serial)
	if len(serialHex)%2 == 1 {
		serialHex = "0" + serialHex
	}
	if out := crlCheck(); !strings.Contains(out, "verify OK") || strings.Contains(out, serialHex) || !strings.Contains(out, "No Revoked Certificates") {
		t.Fatalf("CRL before revocation:\n%s", out)
	}

	if _, err := ag.Revoke(ctx, "pki", is.Certificate.Serial, "key-compromise"); err != nil {
		t.Fatal(err)
	}
	out := ocspCheck()
	if !strings.Contains(out, "leaf.pem: revoked") || !strings.Contains(out, "Reason: keyCompromise") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("openssl ocsp after revocation:\n%s", out)
	}
	if out := crlCheck(); !strings.Contains(out, "verify OK") || !strings.Contains(out, "Serial Number: "+serialHex) || !strings.Contains(out, "Key Compromise") {
		t.Fatalf("CRL after revocation (want %s):\n%s", serialHex, out)
	}

	// RFC 6960's GET form, with a request made by x/crypto/ocsp.
	issuerCert := parseCertDER(t, issuerDER)
	req, err := ocsp.CreateRequest(leafCert, issuerCert, nil)
	if err != nil {
		t.Fatal(err)
	}
	respFile := curlGet(t, dir, "resp.der", ocspURL+"/"+url.PathEscape(base64.StdEncoding.EncodeToString(req)))
	out = tool(t, false, "openssl", "ocsp", "-respin", respFile, "-issuer", issuer, "-cert", leaf, "-CAfile", root, "-no_nonce")
	if !strings.Contains(out, "leaf.pem: revoked") || !strings.Contains(out, "Response verify OK") {
		t.Fatalf("GET response:\n%s", out)
	}

	// A certificate the mount never issued, under a known issuer, is
	// unknown; while sealed the responder says tryLater.
	other, err := ag.Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("other")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client(t, admin).Seal(ctx); err != nil {
		t.Fatal(err)
	}
	otherLeaf := write(t, dir, "other.pem", other.CertificatePEM)
	out = tool(t, true, "openssl", "ocsp", "-issuer", issuer, "-cert", otherLeaf, "-url", ocspURL, "-CAfile", root, "-no_nonce")
	if !strings.Contains(strings.ToLower(out), "trylater") {
		t.Fatalf("sealed responder:\n%s", out)
	}
	if _, err := h.client(t, "").Unseal(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Revoke(ctx, "pki", is.Certificate.Serial, ""); client.KindOf(err) != apierr.Conflict {
		t.Fatalf("second revocation: %v", err)
	}
}

// TestSeedRootImport imports the seed root (as the launcher does) and
// checks a certificate the seed CA issued before keeps validating against
// the root Metacrypt serves, and new ones validate against the seed
// ca.crt.
func TestSeedRootImport(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, true)
	dir := t.TempDir()
	served := curlGet(t, dir, "root.pem", h.rest+"/v1/pki/pki/ca")
	servedPEM, err := os.ReadFile(served)
	if err != nil {
		t.Fatal(err)
	}
	seedPEM, err := os.ReadFile(env.ca.CertPath())
	if err != nil {
		t.Fatal(err)
	}
	if string(servedPEM) != string(seedPEM) {
		t.Fatal("the served root is not the seed root")
	}
	if out := tool(t, false, "openssl", "verify", "-CAfile", served, env.cert.CertPath); !strings.Contains(out, ": OK") {
		t.Fatalf("seed-issued certificate: %s", out)
	}
	is, err := h.client(t, agent).Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("new")}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := write(t, dir, "leaf.pem", is.CertificatePEM)
	untrusted := write(t, dir, "issuer.pem", firstPEM(t, is.CAChainPEM))
	if out := tool(t, false, "openssl", "verify", "-CAfile", env.ca.CertPath(), "-untrusted", untrusted, leaf); !strings.Contains(out, ": OK") {
		t.Fatalf("new certificate against the seed root: %s", out)
	}
	if _, err := h.client(t, admin).ImportRoot(ctx, "pki", string(seedPEM), "x"); client.KindOf(err) != apierr.Invalid && client.KindOf(err) != apierr.Conflict {
		t.Fatalf("second import: %v", err)
	}
}

// TestSignCSRFromOpenSSL signs requests openssl made: one within the
// agent's limits verifies; one naming a foreign SAN is refused naming
// it; one with a broken signature is refused.
func TestSignCSRFromOpenSSL(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	dir := t.TempDir()
	csr := func(name, cn, san string) string {
		out := filepath.Join(dir, name+".csr")
		tool(t, false, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", filepath.Join(dir, name+".key"), "-subj", "/CN="+cn, "-addext", "subjectAltName="+san, "-out", out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ag := h.client(t, agent)
	good := csr("good", svcName("csr"), "DNS:"+svcName("csr")+",IP:10.9.9.9")
	is, err := ag.SignCSR(ctx, "pki", "services", good, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	root := curlGet(t, dir, "root.pem", h.pki+"/v1/pki/pki/ca")
	leaf := write(t, dir, "leaf.pem", is.CertificatePEM)
	untrusted := write(t, dir, "issuer.pem", firstPEM(t, is.CAChainPEM))
	if out := tool(t, false, "openssl", "verify", "-CAfile", root, "-untrusted", untrusted, leaf); !strings.Contains(out, ": OK") {
		t.Fatalf("signed CSR: %s", out)
	}
	if pub1, pub2 := tool(t, false, "openssl", "pkey", "-in", filepath.Join(dir, "good.key"), "-pubout"),
		tool(t, false, "openssl", "x509", "-in", leaf, "-noout", "-pubkey"); pub1 != pub2 {
		t.Fatal("the certificate is not for the CSR's key")
	}
	bad := csr("bad", svcName("ok"), "DNS:"+svcName("ok")+",DNS:www.example.org")
	if _, err := ag.SignCSR(ctx, "pki", "services", bad, 0, ""); client.KindOf(err) != apierr.Denied || !strings.Contains(err.Error(), "www.example.org") {
		t.Fatalf("foreign SAN: %v", err)
	}
	block, _ := pem.Decode([]byte(good))
	block.Bytes[len(block.Bytes)-3] ^= 0x55
	broken := string(pem.EncodeToMemory(block))
	if _, err := ag.SignCSR(ctx, "pki", "services", broken, 0, ""); client.KindOf(err) != apierr.Invalid || !strings.Contains(err.Error(), "csr_pem") {
		t.Fatalf("broken signature: %v", err)
	}
}

func parseCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseCertDER(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
