package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/internal/seedpki"
)

// TestMCIASCtl drives mciasctl against a real MCIAS the way an operator
// does: login with the password on stdin, then accounts, roles, system
// tokens, policies, keys, in tables and --json.
func TestMCIASCtl(t *testing.T) {
	bin := buildBinaries(t, "git.metacircular.net/metacircular/mcias/cmd/mcias", "git.metacircular.net/metacircular/mcias/cmd/mciasctl")
	dir := t.TempDir()
	ca, err := seedpki.Init(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("mcias", seedpki.IssueRequest{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}}
	t.Cleanup(tr.CloseIdleConnections)
	ep, _ := startMCIAS(t, bin, dir, cert, &http.Client{Transport: tr, Timeout: 10 * time.Second})

	session := filepath.Join(dir, "session.json")
	ctl := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(bin, "mciasctl"), append([]string{"--session", session}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := ctl(stdin, args...)
		if err != nil {
			t.Fatalf("mciasctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	if out, err := ctl("wrong-password\n", "--mcias", ep.grpc, "--ca", ca.CertPath(), "login", "-u", "admin", "--password-stdin"); err == nil ||
		!strings.Contains(out, "invalid credentials") || strings.Count(out, "\n") != 1 {
		t.Fatalf("bad login must fail with one line: %v\n%s", err, out)
	}
	must(adminPassword+"\n", "--mcias", ep.grpc, "--ca", ca.CertPath(), "login", "-u", "admin", "--password-stdin")
	if out := must("", "whoami"); !strings.Contains(out, "admin") || !strings.Contains(out, "human") {
		t.Fatalf("whoami:\n%s", out)
	}
	must("carol-password-1\n", "accounts", "create", "carol", "--password-stdin")
	must("", "roles", "set", "carol", "user,guest")
	var carol struct {
		Roles  []string `json:"roles"`
		Status string   `json:"status"`
	}
	if err := json.Unmarshal([]byte(must("", "--json", "accounts", "show", "carol")), &carol); err != nil ||
		strings.Join(carol.Roles, ",") != "guest,user" || carol.Status != "active" {
		t.Fatalf("carol: %+v %v", carol, err)
	}
	must("", "accounts", "disable", "carol")
	if out := must("", "accounts", "list"); !strings.Contains(out, "carol") || !strings.Contains(out, "disabled") {
		t.Fatalf("list after disable:\n%s", out)
	}

	must("", "accounts", "create", "--system", "mcns-agent")
	tok := strings.TrimSpace(must("", "token", "issue", "mcns-agent", "--ttl", "720h"))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token issue printed %q", tok)
	}
	if out := must("", "token", "list", "mcns-agent"); !strings.Contains(out, "system") {
		t.Fatalf("token list:\n%s", out)
	}

	must("", "policies", "create", "--priority", "5", "--effect", "deny", "--role", "guest", "--service", "mcp", "--description", "guests stay out of mcp")
	var rules []struct {
		Priority    int    `json:"priority"`
		Effect      string `json:"effect"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal([]byte(must("", "--json", "policies", "list")), &rules); err != nil || len(rules) != 2 ||
		rules[0].Priority != 5 || rules[0].Effect != "deny" {
		t.Fatalf("policies: %+v %v", rules, err)
	}
	if out, err := ctl("", "policies", "create", "--effect", "maybe"); err == nil || !strings.Contains(out, "effect") {
		t.Fatalf("invalid rule accepted: %v\n%s", err, out)
	}

	before := must("", "keys", "list")
	must("", "keys", "rotate")
	after := must("", "keys", "list")
	if strings.Count(after, "\n") != strings.Count(before, "\n")+1 {
		t.Fatalf("rotate did not add a key:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	must("", "logout")
	if out, err := ctl("", "whoami"); err == nil {
		t.Fatalf("whoami after logout succeeded:\n%s", out)
	}
}
