package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig("../../deploy/examples/mcp-agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Node != "rift" || c.Agent.PublishAddress != c.Agent.Address || c.Agent.CACert != c.MCIAS.CACert {
		t.Fatalf("defaults: %+v", c.Agent)
	}
	if len(c.Stages()) != 3 || c.Stages()[0].Name != "foundation" || c.Stages()[0].Timeout != 2*time.Minute {
		t.Fatalf("boot: %+v", c.Stages())
	}
	if lo, hi, err := c.Ports(); err != nil || lo != 10000 || hi != 60000 {
		t.Fatalf("ports %d-%d %v", lo, hi, err)
	}
}

func TestConfigErrors(t *testing.T) {
	base := `[server]
grpc_addr = "127.0.0.1:9444"
tls_cert = "c"
tls_key = "k"
[database]
path = "/tmp/x.db"
[mcias]
server_url = "https://127.0.0.1:1"
[agent]
node = "n1"
address = "127.0.0.1"
token_file = "/tmp/t"
`
	for _, c := range []struct{ extra, want string }{
		{"colour = 1\n", `unknown key "agent.colour"`},
		{"port_range = \"60000-10000\"\n", "agent.port_range"},
		{"[[boot.sequence]]\nname = \"a\"\nservices = [\"x\"]\n[[boot.sequence]]\nname = \"b\"\nservices = [\"x\"]\n", "service x is already in stage a"},
		{"[[boot.sequence]]\nname = \"a\"\nhealth = \"ping\"\n", "boot.sequence[0].health"},
		{"[runtime]\nenv = [\"NOEQUALS\"]\n", "runtime.env[0]"},
	} {
		path := filepath.Join(t.TempDir(), "mcp-agent.toml")
		if err := os.WriteFile(path, []byte(base+c.extra), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: %v (want %q and the file)", c.extra, err, c.want)
		}
	}
}
