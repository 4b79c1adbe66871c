package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	var sum summary
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
