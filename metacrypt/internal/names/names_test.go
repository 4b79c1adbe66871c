package names

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDNS(t *testing.T) {
	good := map[string]string{
		"MCQ.svc.MCP.metacircular.net.": "mcq.svc.mcp.metacircular.net",
		"localhost":                     "localhost",
		"*.svc.example.net":             "*.svc.example.net",
		"xn--bcher-kva.example":         "xn--bcher-kva.example",
		"a-b.c1":                        "a-b.c1",
	}
	for in, want := range good {
		got, err := ParseDNS(in)
		if err != nil || got != want {
			t.Errorf("ParseDNS(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "a..b", "-a.b", "a-.b", "a_b.c", "*.net", "a.*.b.c", "*a.b.c",
		"**.b.c", "ex ample.net", "bücher.example", strings.Repeat("a", 64) + ".net",
		strings.Repeat("abcdefghi.", 26) + "net", "10.0.0.1/8", "a.b.c\x00"} {
		if _, err := ParseDNS(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDNS(%q) accepted", bad)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	const d = "mcp.metacircular.net"
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"*.svc." + d, "x.svc." + d, true},
		{"*.svc." + d, "svc." + d, false},
		{"*.svc." + d, "a.b.svc." + d, false},
		{"*.svc." + d, "x.svc." + d + ".evil.net", false},
		{"*.svc." + d, "xsvc." + d, false},
		{"*.svc." + d, "x.evilsvc." + d, false},
		{"*.svc." + d, "*.svc." + d, true},
		{"**.metacircular.net", "www.metacircular.net", true},
		{"**.metacircular.net", "a.b.metacircular.net", true},
		{"**.metacircular.net", "metacircular.net", false},
		{"**.metacircular.net", "evilmetacircular.net", false},
		{"**.metacircular.net", "x.evilmetacircular.net", false},
		{"metacircular.net", "metacircular.net", true},
		{"metacircular.net", "www.metacircular.net", false},
		{"*.net", "example.net", true},
		{"*.net", "a.example.net", false},
	}
	for _, c := range cases {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", c.pattern, err)
		}
		name, err := ParseDNS(c.name)
		if err != nil {
			name = c.name // patterns see only parsed names; keep the raw one for *.net cases
		}
		if got := p.Match(name); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestParsePatternRejects(t *testing.T) {
	for _, bad := range []string{"", "*", "*.", "**", "**.", "a.*.b", "*x.b", "***.b", "a..b", "*.*.b", "foo bar.net"} {
		if _, err := ParsePattern(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
	if p, err := ParsePattern("**.Example.NET."); err != nil || p.String() != "**.example.net" {
		t.Errorf("String = %v, %v", p, err)
	}
}
