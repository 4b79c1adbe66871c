package server_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetacryptctl builds metacryptctl and drives a fresh Metacrypt with
// it as an operator would: init, seal and unseal with the password on
// standard input, a mount, a root, an issuer, the policy, then as the
// agent an issue to files, a search, a revocation and the CRL, ACME EAB
// credentials, and the password change and rotation.
func TestMetacryptctl(t *testing.T) {
	h := start(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "metacryptctl")
	if out, err := exec.Command("go", "build", "-o", bin, "git.metacircular.net/metacircular/metacrypt/cmd/metacryptctl").CombinedOutput(); err != nil {
		t.Fatalf("go build metacryptctl: %v\n%s", err, out)
	}
	run := func(caller, stdin string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Env = append(os.Environ(), "METACIRCULAR_METACRYPT="+h.grpc, "METACIRCULAR_CA="+env.ca.CertPath(),
			"METACRYPTCTL_TOKEN="+env.tokens[caller], "XDG_CONFIG_HOME="+dir, "HOME="+dir)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if err != nil {
			return errb.String(), err
		}
		return out.String(), nil
	}
	must := func(caller, stdin string, args ...string) string {
		t.Helper()
		out, err := run(caller, stdin, args...)
		if err != nil {
			t.Fatalf("metacryptctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	var st struct {
		Initialized bool `json:"initialized"`
		Sealed      bool `json:"sealed"`
		KeyVersion  int  `json:"key_version"`
	}
	if err := json.Unmarshal([]byte(must("", "", "status", "--json")), &st); err != nil || st.Initialized {
		t.Fatalf("status: %+v %v", st, err)
	}
	must(admin, unsealPassword+"\n", "init", "--password-stdin")
	must(admin, "", "seal")
	if out, err := run("", "wrong password here\n", "unseal", "--password-stdin"); err == nil || !strings.Contains(out, "wrong unseal password") {
		t.Fatalf("wrong unseal: %v %s", err, out)
	}
	if out := must("", unsealPassword+"\n", "unseal", "--password-stdin"); !strings.Contains(out, "sealed") || strings.Contains(out, "sealed              true") {
		t.Fatalf("unseal: %s", out)
	}
	must(admin, "", "mounts", "create", "pki", "--type", "ca")
	must(admin, "", "root", "generate", "--key-type", "ec-p384")
	must(admin, "", "issuers", "create", "services", "--max-ttl", "30d", "--permitted-dns", "svc."+domain)
	if out := must(admin, "", "issuers", "list"); !strings.Contains(out, "services") || !strings.Contains(out, "root") {
		t.Fatalf("issuers list:\n%s", out)
	}
	must(admin, "", "policy", "rules", "add", "--account", agent, "--operations", "issue,revoke,read", "--resources", "issuer/services,certs")
	must(admin, "", "policy", "limits", "add", "--account", agent, "--names", "*.svc."+domain)
	out := must(admin, "", "policy", "check", "--account", agent, "--operation", "issue", "--resource", "issuer/services",
		"--dns", svcName("x"), "--dns", "svc."+domain)
	decided := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			decided[f[0]] = f[1]
		}
	}
	if decided["issue"] != "issuer/services" || decided[svcName("x")] != "true" || decided["svc."+domain] != "false" {
		t.Fatalf("policy check:\n%q", out)
	}

	certFile, keyFile := filepath.Join(dir, "cli.crt"), filepath.Join(dir, "cli.key")
	out = must(agent, "", "issue", "services", "--dns", svcName("cli"), "--cert-file", certFile, "--key-file", keyFile)
	if !strings.Contains(out, svcName("cli")) {
		t.Fatalf("issue:\n%s", out)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	chain, err := os.ReadFile(certFile)
	if err != nil || strings.Count(string(chain), "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("chain file: %v\n%s", err, chain)
	}
	if out, err := run(agent, "", "issue", "services", "--dns", "www.example.net"); err == nil || !strings.Contains(out, "www.example.net") {
		t.Fatalf("foreign name: %v %s", err, out)
	}
	var list []struct {
		Serial string `json:"serial"`
	}
	if err := json.Unmarshal([]byte(must(agent, "", "list", "--name", svcName("cli"), "--json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	must(agent, "", "revoke", list[0].Serial, "--reason", "superseded")
	if out := must(admin, "", "crl", "services", "--json"); !strings.Contains(out, list[0].Serial) {
		t.Fatalf("crl:\n%s", out)
	}
	if out := must(admin, "", "request", "pki", "list", "--data", `{"status":"revoked"}`); !strings.Contains(out, list[0].Serial) {
		t.Fatalf("request:\n%s", out)
	}
	// EAB credentials: an admin's for mcp-agent, listed, revoked; the
	// agent may not make them for another identity.
	var eab struct {
		KID     string `json:"kid"`
		HMACKey string `json:"hmac_key"`
		Account string `json:"account"`
	}
	if err := json.Unmarshal([]byte(must(admin, "", "acme", "eab", "create", "--for", agent, "--ttl", "1h", "--json")), &eab); err != nil ||
		eab.KID == "" || eab.HMACKey == "" || eab.Account != agent {
		t.Fatalf("acme eab create: %+v %v", eab, err)
	}
	if out := must(agent, "", "acme", "eab", "list"); !strings.Contains(out, eab.KID) || !strings.Contains(out, "usable") || strings.Contains(out, eab.HMACKey) {
		t.Fatalf("acme eab list:\n%s", out)
	}
	if out, err := run(agent, "", "acme", "eab", "create", "--for", alice); err == nil || !strings.Contains(out, "admin") {
		t.Fatalf("agent creates for alice: %v %s", err, out)
	}
	if out := must(agent, "", "acme", "eab", "revoke", eab.KID); !strings.Contains(out, "revoked") {
		t.Fatalf("acme eab revoke:\n%s", out)
	}
	const next = "the next unseal password"
	must(admin, unsealPassword+"\n"+next+"\n", "password", "--password-stdin")
	out = must(admin, next+"\n", "rotate", "--password-stdin", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.KeyVersion != 2 {
		t.Fatalf("rotate: %s %v", out, err)
	}
	must(admin, "", "seal")
	must("", next+"\n", "unseal", "--password-stdin")
	if out := must(agent, "", "list"); !strings.Contains(out, "revoked (superseded)") {
		t.Fatalf("after rotate and unseal:\n%s", out)
	}
}
