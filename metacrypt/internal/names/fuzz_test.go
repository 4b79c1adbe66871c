package names

import (
	"strings"
	"testing"
)

// FuzzMatch checks the matcher's invariants on arbitrary patterns and
// names: whatever parses never panics, a match always shares the
// pattern's suffix on a label boundary, "*." patterns match exactly one
// extra label, exact patterns match only themselves, and normalization is
// idempotent.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*.svc.mcp.metacircular.net", "x.svc.mcp.metacircular.net"},
		{"*.svc.mcp.metacircular.net", "svc.mcp.metacircular.net"},
		{"*.svc.mcp.metacircular.net", "a.b.svc.mcp.metacircular.net"},
		{"*.svc.mcp.metacircular.net", "x.svc.mcp.metacircular.net.evil.net"},
		{"**.metacircular.net", "evilmetacircular.net"},
		{"metacircular.net", "METACIRCULAR.NET."},
		{"*.svc.x", "*.svc.x"},
		{"**.a", "..a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, raw string) {
		p, perr := ParsePattern(pattern)
		name, nerr := ParseDNS(raw)
		if nerr == nil {
			again, err := ParseDNS(name)
			if err != nil || again != name {
				t.Fatalf("ParseDNS not idempotent: %q -> %q -> %q, %v", raw, name, again, err)
			}
		}
		if perr != nil {
			return
		}
		if q, err := ParsePattern(p.String()); err != nil || q != p {
			t.Fatalf("pattern %q does not round-trip: %v", p.String(), err)
		}
		if nerr != nil {
			return
		}
		if !p.Match(name) {
			return
		}
		suffix := strings.TrimPrefix(strings.TrimPrefix(p.String(), "**."), "*.")
		switch p.Depth() {
		case Exact:
			if name != p.String() {
				t.Fatalf("exact %q matched %q", p, name)
			}
		case One, Many:
			if !strings.HasSuffix(name, "."+suffix) {
				t.Fatalf("%q matched %q without the suffix on a label boundary", p, name)
			}
			extra := strings.Count(strings.TrimSuffix(name, "."+suffix), ".") + 1
			if p.Depth() == One && extra != 1 {
				t.Fatalf("%q matched %q with %d extra labels", p, name, extra)
			}
		}
	})
}
