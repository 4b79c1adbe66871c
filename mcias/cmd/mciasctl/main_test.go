package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcias/internal/server"
	"git.metacircular.net/metacircular/mcias/internal/totp"
)

func TestEveryCommandHasExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
}

const adminPassword = "admin-password-123"

// TestCommands runs the built mciasctl against a real MCIAS (gRPC only)
// the way an operator does, addresses from the environment.
func TestCommands(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mciasctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr, caFile := startMCIAS(t, dir)
	session := filepath.Join(dir, "session.json")
	ctl := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--session", session}, args...)...)
		cmd.Env = append(os.Environ(), "METACIRCULAR_MCIAS="+addr, "METACIRCULAR_CA="+caFile, "MCIASCTL_TOKEN=")
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

	if out, err := ctl("", "whoami"); err == nil || !strings.Contains(out, "not logged in") {
		t.Fatalf("whoami before login: %v\n%s", err, out)
	}
	if out, err := ctl("wrong-password\n", "login", "-u", "admin", "--password-stdin"); err == nil ||
		!strings.Contains(out, "invalid credentials") || strings.Count(out, "\n") != 1 {
		t.Fatalf("bad login must fail with one line: %v\n%s", err, out)
	}
	must(adminPassword+"\n", "login", "-u", "admin", "--password-stdin")
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
	// --token is used instead of the session's; a system token is no admin.
	if out, err := ctl("", "--token", tok, "accounts", "list"); err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("accounts list with a system token: %v\n%s", err, out)
	}
	must("", "policies", "create", "--priority", "5", "--effect", "deny", "--role", "guest", "--service", "mcp")
	var rules []struct {
		Priority int    `json:"priority"`
		Effect   string `json:"effect"`
	}
	if err := json.Unmarshal([]byte(must("", "--json", "policies", "list")), &rules); err != nil || len(rules) != 2 || rules[0].Effect != "deny" {
		t.Fatalf("policies: %+v %v", rules, err)
	}
	if out, err := ctl("", "policies", "create", "--effect", "maybe"); err == nil || !strings.Contains(out, "effect") {
		t.Fatalf("invalid rule accepted: %v\n%s", err, out)
	}
	before := must("", "keys", "list")
	must("", "keys", "rotate")
	if after := must("", "keys", "list"); strings.Count(after, "\n") != strings.Count(before, "\n")+1 {
		t.Fatalf("rotate did not add a key:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	must("", "logout")
	if out, err := ctl("", "whoami"); err == nil {
		t.Fatalf("whoami after logout succeeded:\n%s", out)
	}
}

// TestSessionFollowsCredentialChanges: turning TOTP on or off revokes every
// token of the account and answers with a fresh one, which mciasctl saves
// in the session so the next command works; resetting one's own password
// with set-password ends the session, and mciasctl says so.
func TestSessionFollowsCredentialChanges(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mciasctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr, caFile := startMCIAS(t, dir)
	session := filepath.Join(dir, "session.json")
	ctl := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--session", session}, args...)...)
		cmd.Env = append(os.Environ(), "METACIRCULAR_MCIAS="+addr, "METACIRCULAR_CA="+caFile, "MCIASCTL_TOKEN=")
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
	must(adminPassword+"\n", "login", "-u", "admin", "--password-stdin")
	var enr struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(must("", "--json", "totp", "enroll")), &enr); err != nil || enr.Secret == "" {
		t.Fatalf("enroll: %v", err)
	}
	now, err := totp.Code(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	must("", "totp", "confirm", now)
	if out := must("", "whoami"); !strings.Contains(out, "admin") {
		t.Fatalf("whoami after turning TOTP on:\n%s", out)
	}
	next, err := totp.Code(enr.Secret, time.Now().Add(totp.Period))
	if err != nil {
		t.Fatal(err)
	}
	must("", "totp", "disable", next)
	if out := must("", "whoami"); !strings.Contains(out, "admin") {
		t.Fatalf("whoami after turning TOTP off:\n%s", out)
	}
	out := must("admin-new-password-1\n", "accounts", "set-password", "admin", "--password-stdin")
	if !strings.Contains(out, "run mciasctl login") {
		t.Fatalf("resetting one's own password did not say the session ended:\n%s", out)
	}
	if out, err := ctl("", "whoami"); err == nil {
		t.Fatalf("whoami with the session the reset ended:\n%s", out)
	}
	must("admin-new-password-1\n", "login", "-u", "admin", "--password-stdin")
	must("", "whoami")
}

// startMCIAS runs MCIAS (gRPC only) with a bootstrapped admin until the
// test ends and returns its address and CA file.
func startMCIAS(t *testing.T, dir string) (addr, caFile string) {
	t.Helper()
	pki := tlstest.New(t)
	pair := pki.Issue(t, "mcias", "127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "mcias.toml")
	body := fmt.Sprintf("[server]\ngrpc_addr = %q\ntls_cert = %q\ntls_key = %q\nshutdown_timeout = \"5s\"\n[database]\npath = %q\n"+
		"[argon2]\nmemory_kib = 8192\niterations = 1\nparallelism = 1\n",
		ln.Addr().String(), pair.CertFile, pair.KeyFile, filepath.Join(dir, "mcias.db"))
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(adminPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Init(t.Context(), cfg, "admin", pwFile, io.Discard); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{Name: server.ServiceName, Listeners: map[string]net.Listener{"grpc": ln}},
			func(ctx context.Context, rt *service.Runtime) error { return server.Build(ctx, cfg, rt) })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service.Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("service.Run did not return after cancel")
		}
	})
	return ln.Addr().String(), pki.CAFile
}
