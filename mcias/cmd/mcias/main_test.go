package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/server"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// TestOfflineCommands runs the built binary the way an operator does:
// init, status, recover-admin and snapshot against a real database file.
func TestOfflineCommands(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mcias")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "mcias.toml")
	body := `[server]
listen_addr = "127.0.0.1:0"
tls_cert = "unused.crt"
tls_key = "unused.key"
[database]
path = "` + filepath.Join(dir, "mcias.db") + `"
[argon2]
memory_kib = 8192
iterations = 1
parallelism = 1
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"--config", cfg}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := run("status")
	if err == nil || !strings.Contains(out, "run mcias init") {
		t.Fatalf("status before init: %v %s", err, out)
	}
	out, err = run("init")
	if err != nil || !strings.Contains(out, `created admin account "admin"`) || !strings.Contains(out, "admin password (shown once): ") {
		t.Fatalf("init: %v\n%s", err, out)
	}
	out, err = run("init")
	if err != nil || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second init: %v\n%s", err, out)
	}
	out, err = run("status", "--json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var sum server.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.Accounts != 1 || sum.Admins != 1 || sum.Keys != 1 || sum.Policies != 1 {
		t.Fatalf("status: %+v %v", sum, err)
	}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("break-glass-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run("recover-admin", "ops", "--password-file", pwFile)
	if err != nil || !strings.Contains(out, "ops is an active admin") || strings.Contains(out, "shown once") {
		t.Fatalf("recover-admin: %v\n%s", err, out)
	}
	if out, err = run("recover-admin", "ops", "--password-file", filepath.Join(dir, "missing")); err == nil {
		t.Fatalf("recover-admin with a missing password file succeeded: %s", out)
	}
	tokFile := filepath.Join(dir, "agent", "mcp-agent.token")
	out, err = run("system-account", "mcp-agent", "--token-file", tokFile)
	if err != nil || !strings.Contains(out, `created system account "mcp-agent"`) || !strings.Contains(out, "token written to "+tokFile) {
		t.Fatalf("system-account: %v\n%s", err, out)
	}
	first := checkSystemToken(t, cfg, tokFile, "mcp-agent")
	if strings.Contains(out, first) {
		t.Fatal("system-account printed the token")
	}
	out, err = run("system-account", "mcp-agent", "--token-file", tokFile)
	if err != nil || !strings.Contains(out, `system account "mcp-agent" exists`) {
		t.Fatalf("second system-account: %v\n%s", err, out)
	}
	if second := checkSystemToken(t, cfg, tokFile, "mcp-agent"); second == first {
		t.Fatal("second system-account did not write a fresh token")
	}
	for _, bad := range [][]string{
		{"system-account", "ops", "--token-file", filepath.Join(dir, "ops.token")}, // a human admin
		{"system-account", "Bad Name", "--token-file", filepath.Join(dir, "bad.token")},
		{"system-account", "mcp-agent"}, // no --token-file
	} {
		if out, err := run(bad...); err == nil {
			t.Fatalf("%v succeeded: %s", bad, out)
		}
	}
	for _, f := range []string{"ops.token", "bad.token"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s written by a failed system-account", f)
		}
	}
	out, err = run("status", "--json")
	if err != nil || json.Unmarshal([]byte(out), &sum) != nil || sum.System != 1 {
		t.Fatalf("status after system-account: %v %s", err, out)
	}
	out, err = run("snapshot", "--json")
	if err != nil {
		t.Fatalf("snapshot: %v\n%s", err, out)
	}
	var snap struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(out), &snap); err != nil || !strings.HasPrefix(snap.Path, filepath.Join(dir, "backups", "mcias-")) {
		t.Fatalf("snapshot output: %s %v", out, err)
	}
	if _, err := os.Stat(snap.Path); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(body+"\n[tokens]\nhuman_tll = \"1h\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := exec.Command(bin, "--config", bad, "status").CombinedOutput()
	if err == nil || !strings.Contains(string(raw), `unknown key "tokens.human_tll"`) {
		t.Fatalf("typo in config: %v %s", err, raw)
	}
}

// checkSystemToken checks that path is a 0600 file holding a token MCIAS
// accepts for the system account name, and returns the token.
func checkSystemToken(t *testing.T, cfgPath, path, name string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(raw))
	cfg, err := server.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	icfg, err := cfg.Identity()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), cfg.Database.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := identity.New(t.Context(), st, icfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.ValidateToken(t.Context(), tok)
	if err != nil {
		t.Fatalf("token in %s: %v", path, err)
	}
	if id.Username != name || !id.IsSystem() {
		t.Fatalf("token in %s is for %s (%s), want system account %s", path, id.Username, id.AccountType, name)
	}
	return tok
}

func TestEveryCommandHasExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" && c.HasParent() {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(service.Command(def()))
}
