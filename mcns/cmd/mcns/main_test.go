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
// init (seeding and a zone file import), status and snapshot against a
// real database file.
func TestOfflineCommands(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mcns")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "mcns.toml")
	body := `[server]
listen_addr = "127.0.0.1:0"
tls_cert = "unused.crt"
tls_key = "unused.key"
[database]
path = "` + filepath.Join(dir, "mcns.db") + `"
[mcias]
server_url = "https://127.0.0.1:1"
[[zones]]
name = "mcp.test"
[[zones]]
name = "svc.mcp.test"
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"--config", cfg}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := run("status")
	if err == nil || !strings.Contains(out, "run mcns init") {
		t.Fatalf("status before init: %v %s", err, out)
	}
	out, err = run("init")
	if err != nil || !strings.Contains(out, "created zone mcp.test.") || !strings.Contains(out, "created zone svc.mcp.test.") {
		t.Fatalf("init: %v\n%s", err, out)
	}
	out, err = run("init")
	if err != nil || !strings.Contains(out, "nothing changed") {
		t.Fatalf("second init: %v\n%s", err, out)
	}

	zoneFile := filepath.Join(dir, "old.zone")
	if err := os.WriteFile(zoneFile, []byte(`$ORIGIN old.test.
$TTL 600
@    IN SOA ns.old.test. hostmaster.old.test. 7 3600 600 1209600 300
@    IN NS  ns.old.test.
www  IN A   192.0.2.1
mail IN MX  10 www.old.test.
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = run("init", "--zone-file", zoneFile, "--origin", "old.test")
	if err != nil || !strings.Contains(out, "imported zone old.test. from "+zoneFile+": 3 records") {
		t.Fatalf("init --zone-file: %v\n%s", err, out)
	}
	if out, err = run("init", "--zone-file", zoneFile, "--origin", "old.test"); err == nil {
		t.Fatalf("importing an existing zone again succeeded:\n%s", out)
	}
	if out, err = run("init", "--origin", "old.test"); err == nil || !strings.Contains(out, "--origin needs --zone-file") {
		t.Fatalf("--origin alone: %v\n%s", err, out)
	}

	out, err = run("status", "--json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var sum struct {
		Zones []struct {
			Name    string `json:"name"`
			Serial  uint32 `json:"serial"`
			Records int    `json:"records"`
		} `json:"zones"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("status output %s: %v", out, err)
	}
	got := map[string]int{}
	for _, z := range sum.Zones {
		got[z.Name] = z.Records
		if z.Serial == 0 {
			t.Errorf("zone %s has serial 0", z.Name)
		}
	}
	if len(got) != 3 || got["old.test."] != 3 || got["mcp.test."] != 0 || got["svc.mcp.test."] != 0 {
		t.Errorf("status zones: %+v", sum.Zones)
	}
	if out, err = run("status"); err != nil || !strings.Contains(out, "old.test.  serial") {
		t.Errorf("status table: %v\n%s", err, out)
	}

	out, err = run("snapshot", "--json")
	if err != nil {
		t.Fatalf("snapshot: %v\n%s", err, out)
	}
	var snap struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(out), &snap); err != nil || !strings.HasPrefix(snap.Path, filepath.Join(dir, "backups", "mcns-")) {
		t.Fatalf("snapshot output: %s %v", out, err)
	}
	if _, err := os.Stat(snap.Path); err != nil {
		t.Fatal(err)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(body+"[mcns]\nagent_acounts = [\"x\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := exec.Command(bin, "--config", bad, "init").CombinedOutput()
	if err == nil || !strings.Contains(string(raw), `unknown key "mcns.agent_acounts"`) || strings.Count(string(raw), "\n") != 1 {
		t.Fatalf("typo in config: %v %s", err, raw)
	}
}
