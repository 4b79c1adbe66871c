package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/testtool"
	mcnsclient "git.metacircular.net/metacircular/mcns/client"
)

// TestLego drives the lego CLI (Debian's lego package, 4.x), unmodified:
// an account with EAB credentials made for mcp-agent, then http-01,
// tls-alpn-01 and dns-01 — the TXT record written into the real MCNS by
// the shipped hook deploy/examples/lego-mcns-hook.sh through mcnsctl,
// found by Metacrypt through [acme] resolvers, and removed afterwards —
// and a revocation. Every chain verifies with openssl against the root.
func TestLego(t *testing.T) {
	lego := testtool.Require(t, "lego")
	openssl := testtool.Require(t, "openssl")
	hook, err := filepath.Abs("../../deploy/examples/lego-mcns-hook.sh")
	if err != nil {
		t.Fatal(err)
	}
	mcnsctl, err := buildTool("git.metacircular.net/metacircular/mcns/cmd/mcnsctl", "mcnsctl")
	if err != nil {
		t.Fatal(err)
	}
	e := startACME(t, "")
	ctx := t.Context()
	k := e.eab(t, agent)
	dir := t.TempDir()
	root := e.writeRoot(t)
	run := func(extraEnv []string, args ...string) {
		t.Helper()
		args = append([]string{"--server", e.directory, "--path", dir, "--email", "ops@example.net", "--accept-tos",
			"--eab", "--kid", k.KID, "--hmac", k.HMACKey, "--key-type", "ec256"}, args...)
		cmd := exec.CommandContext(ctx, lego, args...) //nolint:gosec // the test's tool
		cmd.Env = append(append(os.Environ(), "LEGO_CA_CERTIFICATES="+env.ca.CertPath()), extraEnv...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("lego %v: %v\n%s", args[len(args)-1], err, out)
		}
	}
	chain := func(name string) string { return filepath.Join(dir, "certificates", name+".crt") }

	httpName := svcName("lego-http")
	run(nil, "--http", "--http.port", "127.0.0.1:"+strconv.Itoa(e.httpPort), "-d", httpName, "run")
	opensslVerify(t, openssl, root, chain(httpName))

	tlsName := svcName("lego-tls")
	run(nil, "--tls", "--tls.port", "127.0.0.1:"+strconv.Itoa(e.tlsPort), "-d", tlsName, "run")
	opensslVerify(t, openssl, root, chain(tlsName))

	dnsName := svcName("lego-dns")
	run([]string{
		"EXEC_PATH=" + hook, "EXEC_PROPAGATION_TIMEOUT=30", "EXEC_POLLING_INTERVAL=1",
		"MCNS_ZONE=" + mcnsZone, "MCNSCTL=" + mcnsctl, "METACIRCULAR_MCNS=" + mcns.grpc,
		"METACIRCULAR_CA=" + env.ca.CertPath(), "MCNSCTL_TOKEN=" + env.tokens[agent],
	}, "--dns", "exec", "--dns.resolvers", mcns.dns, "--dns.disable-cp", "-d", dnsName, "run")
	opensslVerify(t, openssl, root, chain(dnsName))
	left, err := mcnsClient(t, admin).ListRecords(ctx, mcnsZone, mcnsclient.Filter{Type: "TXT"})
	if err != nil || len(left) != 0 {
		t.Fatalf("TXT records left in MCNS after cleanup: %+v %v", left, err)
	}

	serial := leafSerial(t, chain(httpName))
	run(nil, "-d", httpName, "revoke")
	rec, err := e.client(t, admin).Certificate(ctx, "pki", serial)
	if err != nil || !rec.Revoked || rec.RequestedBy != agent {
		t.Fatalf("after lego revoke: %+v %v", rec, err)
	}
}
