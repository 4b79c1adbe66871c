package server_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcns/internal/server"
)

const minimalTOML = `[server]
listen_addr = "127.0.0.1:0"
tls_cert = "cert.pem"
tls_key = "key.pem"
[database]
path = "mcns.db"
[mcias]
server_url = "https://127.0.0.1:1"
`

func loadTOML(t *testing.T, body string) (*server.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mcns.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return server.LoadConfig(path)
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadTOML(t, minimalTOML)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.MCNS.AgentAccounts, []string{"mcp-agent"}) {
		t.Errorf("agent_accounts default = %v", cfg.MCNS.AgentAccounts)
	}
	if cfg.DNS.ListenAddr != ":53" || cfg.DNS.UpstreamTimeout.Duration != 2*time.Second || cfg.DNS.AnswerCacheBytes != 8<<20 {
		t.Errorf("[dns] defaults not applied: %+v", cfg.DNS)
	}
	if cfg, err = loadTOML(t, minimalTOML+"[dns]\nanswer_cache_bytes = -1\n"); err != nil {
		t.Errorf("answer_cache_bytes = -1 (no cache): %v", err)
	} else if cfg.DNS.AnswerCacheBytes != -1 {
		t.Errorf("answer_cache_bytes = -1 (no cache) gave %d", cfg.DNS.AnswerCacheBytes)
	}
	cfg, err = loadTOML(t, minimalTOML+"[mcns]\nagent_accounts = []\n")
	if err != nil || cfg.MCNS.AgentAccounts == nil || len(cfg.MCNS.AgentAccounts) != 0 {
		t.Errorf("agent_accounts = [] gave %v, %v; want no agents", cfg.MCNS.AgentAccounts, err)
	}
	t.Setenv("MCNS_MCNS_AGENT_ACCOUNTS", "agent-a, agent-b")
	cfg, err = loadTOML(t, minimalTOML+`
[[zones]]
name = "Example.TEST"
[[zones]]
name = "svc.example.test."
primary_ns = "ns1.example.test."
admin_email = "ops@example.test"
`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.MCNS.AgentAccounts, []string{"agent-a", "agent-b"}) || len(cfg.Zones) != 2 {
		t.Errorf("config: agents %v, zones %+v", cfg.MCNS.AgentAccounts, cfg.Zones)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ extra, want string }{
		{"[mcns]\nagent_acounts = [\"x\"]\n", `unknown key "mcns.agent_acounts"`},
		{"[[zones]]\nprimary_ns = \"ns.example.test.\"\n", "zones[0].name is required"},
		{"[[zones]]\nname = \"bad..zone\"\n", "zones[0] (bad..zone)"},
		{"[[zones]]\nname = \"a.test\"\n[[zones]]\nname = \"A.test.\"\n", "zone a.test. is listed twice"},
		{"[[zones]]\nname = \"a.test\"\ncolor = \"red\"\n", `unknown key "zones.color"`},
		{"[dns]\nupstreams = [\"resolver.example\"]\n", "dns.upstreams"},
		{"[dns]\nanswer_cache_bytes = -2\n", "dns.answer_cache_bytes"},
		{"[mcns]\nagent_accounts = [\"\"]\n", "mcns.agent_accounts[0] is empty"},
	} {
		_, err := loadTOML(t, minimalTOML+c.extra)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "mcns.toml") {
			t.Errorf("%q: %v; want an error naming the file and %q", c.extra, err, c.want)
		}
	}
	_, err := loadTOML(t, strings.Replace(minimalTOML, "server_url", "#server_url", 1))
	if err == nil || !strings.Contains(err.Error(), "mcias.server_url") {
		t.Errorf("missing mcias.server_url: %v", err)
	}
}

// TestExampleConfigLoads keeps deploy/examples/mcns.toml valid.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := server.LoadConfig("../../deploy/examples/mcns.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Zones) != 2 || len(cfg.DNS.Upstreams) == 0 || cfg.DNS.ListenAddr != ":53" {
		t.Errorf("example config: %+v", cfg)
	}
}
