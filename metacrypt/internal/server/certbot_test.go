package server_test

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/testtool"
)

// writeRoot saves the mount's root certificate (from the public endpoint)
// for openssl verify.
func (e *acmeEnv) writeRoot(t *testing.T) string {
	t.Helper()
	r := do(t, http.MethodGet, e.rest+"/v1/pki/pki/ca", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("root: %d", r.status)
	}
	path := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// opensslVerify checks a full chain (leaf first) against the root.
func opensslVerify(t *testing.T, openssl, root, chainFile string) {
	t.Helper()
	b, err := os.ReadFile(chainFile) //nolint:gosec // the test's own file
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]byte
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		blocks = append(blocks, pem.EncodeToMemory(blk))
	}
	if len(blocks) != 2 {
		t.Fatalf("%s holds %d certificates, want leaf and issuer", chainFile, len(blocks))
	}
	dir := t.TempDir()
	leaf, inter := filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "issuer.pem")
	if err := os.WriteFile(leaf, blocks[0], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inter, blocks[1], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "verify", "-CAfile", root, "-untrusted", inter, "-purpose", "sslserver", leaf).CombinedOutput() //nolint:gosec // test tools
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}

func leafSerial(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file) //nolint:gosec // the test's own file
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Text(16)
}

// TestCertbot drives the certbot CLI, unmodified, against an issuer's ACME
// directory: registration with EAB credentials made for mcp-agent,
// standalone http-01 on the validator's port, renewal, revocation, and an
// issued chain that openssl verifies against the root.
func TestCertbot(t *testing.T) {
	certbot := testtool.Require(t, "certbot")
	openssl := testtool.Require(t, "openssl")
	e := startACME(t, "")
	ctx := t.Context()
	k := e.eab(t, agent)
	dir := t.TempDir()
	name := svcName("certbot")
	run := func(args ...string) {
		t.Helper()
		args = append(args, "--non-interactive", "--config-dir", filepath.Join(dir, "config"),
			"--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"))
		cmd := exec.CommandContext(ctx, certbot, args...) //nolint:gosec // the test's tool
		cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+env.ca.CertPath())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("certbot %s: %v\n%s", args[0], err, out)
		}
	}
	run("certonly", "--standalone", "--server", e.directory,
		"--eab-kid", k.KID, "--eab-hmac-key", k.HMACKey, "--agree-tos", "--register-unsafely-without-email",
		"--http-01-address", "127.0.0.1", "--http-01-port", strconv.Itoa(e.httpPort), "--key-type", "ecdsa", "-d", name)
	live := filepath.Join(dir, "config", "live", name)
	root := e.writeRoot(t)
	opensslVerify(t, openssl, root, filepath.Join(live, "fullchain.pem"))
	first := leafSerial(t, filepath.Join(live, "cert.pem"))
	rec, err := e.client(t, admin).Certificate(ctx, "pki", first)
	if err != nil || rec.RequestedBy != agent || rec.Issuer != "services" {
		t.Fatalf("Metacrypt's record of %s: %+v %v", first, rec, err)
	}

	// Renewal: the account and the saved renewal settings, no new EAB.
	run("renew", "--cert-name", name, "--force-renewal", "--no-random-sleep-on-renew")
	second := leafSerial(t, filepath.Join(live, "cert.pem"))
	if second == first {
		t.Fatal("renew kept the old certificate")
	}
	opensslVerify(t, openssl, root, filepath.Join(live, "fullchain.pem"))

	run("revoke", "--server", e.directory, "--cert-path", filepath.Join(live, "cert.pem"), "--reason", "superseded", "--no-delete-after-revoke")
	rec, err = e.client(t, admin).Certificate(ctx, "pki", second)
	if err != nil || !rec.Revoked || rec.RevocationReason != "superseded" {
		t.Fatalf("after certbot revoke: %+v %v", rec, err)
	}
}
