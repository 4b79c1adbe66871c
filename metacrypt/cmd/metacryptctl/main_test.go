package main

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasExample walks the command tree: every command a user
// can run carries an Examples section.
func TestEveryCommandHasExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" || c.Parent() != nil && c.Parent().Name() == "completion" {
			return
		}
		if c.Example == "" {
			t.Errorf("%q has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]string{"90d": "2160h0m0s", "1d12h": "36h0m0s", "30m": "30m0s", "": "0s"} {
		d, err := parseTTL("ttl", in)
		if err != nil || d.String() != want {
			t.Errorf("parseTTL(%q) = %s, %v", in, d, err)
		}
	}
	if _, err := parseTTL("ttl", "soon"); err == nil {
		t.Error("accepted soon")
	}
}
