package cliconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcp/internal/spec"
)

func TestExample(t *testing.T) {
	c, err := Load("../../deploy/examples/mcp.toml")
	if err != nil {
		t.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	if !strings.HasPrefix(c.Auth.TokenPath, home) || c.MCIAS.ServiceName != "mcp" {
		t.Fatalf("%+v", c)
	}
	rift, err := c.Node("rift")
	if err != nil || len(rift.All()) != 2 {
		t.Fatalf("%+v %v", rift, err)
	}
	if _, err := c.NodeFor(&spec.Service{Name: "x", Tier: "worker"}); err == nil {
		t.Fatal("an unpinned service placed without the master among two nodes")
	}
	if n, err := c.NodeFor(&spec.Service{Name: "x", Node: "orion"}); err != nil || n.Name != "orion" {
		t.Fatalf("%+v %v", n, err)
	}
}

func TestErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"[[nodes]]\nname = \"a\"\n":                              "needs addresses",
		"[[nodes]]\nname = \"a\"\naddress = \"x:1\"\nport = 3\n": `unknown key "nodes.port"`,
		"[auth]\ntoken = \"x\"\n":                                `unknown key "auth.token"`,
	} {
		path := filepath.Join(t.TempDir(), "mcp.toml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", doc, err)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.toml")); err == nil || !strings.Contains(err.Error(), "create it") {
		t.Fatal(err)
	}
}
