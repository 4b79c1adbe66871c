package policy

import (
	"net/netip"
	"testing"

	"git.metacircular.net/metacircular/metacrypt/internal/names"
)

// FuzzEvaluateName drives the issuance-limit decision with arbitrary
// patterns and requested names: an allow decision must come from a limit
// whose pattern matches the name by the label rules, a wildcard name is
// never allowed by a limit without wildcards, and nothing panics.
func FuzzEvaluateName(f *testing.F) {
	f.Add("*.svc.mcp.metacircular.net", "x.svc.mcp.metacircular.net", false)
	f.Add("*.svc.mcp.metacircular.net", "*.svc.mcp.metacircular.net", false)
	f.Add("*.svc.mcp.metacircular.net", "x.svc.mcp.metacircular.net.evil.net", true)
	f.Add("**.metacircular.net", "a.b.metacircular.net", false)
	f.Add("metacircular.net", "evilmetacircular.net", false)
	f.Add("10.0.0.0/8", "10.9.9.9", false)
	f.Fuzz(func(t *testing.T, pattern, raw string, wildcards bool) {
		l := Limit{ID: 1, Effect: Allow, Names: []string{pattern}, Wildcards: wildcards}
		if p, err := netip.ParsePrefix(pattern); err == nil {
			l = Limit{ID: 1, Effect: Allow, IPRanges: []string{p.String()}}
		}
		if err := l.Validate(); err != nil {
			return
		}
		if ip, err := netip.ParseAddr(raw); err == nil {
			dec := EvaluateName([]Limit{l}, agent, "pki", "", ip)
			if dec.Allowed && len(l.IPRanges) == 0 {
				t.Fatalf("IP %s allowed by a names-only limit", ip)
			}
			return
		}
		name, err := names.ParseDNS(raw)
		if err != nil {
			return
		}
		dec := EvaluateName([]Limit{l}, agent, "pki", name, netip.Addr{})
		if !dec.Allowed {
			return
		}
		p, err := names.ParsePattern(pattern)
		if len(l.Names) == 0 || err != nil || !p.Match(name) {
			t.Fatalf("%q allowed by %+v without a pattern match", name, l)
		}
		if names.IsWildcard(name) && !l.Wildcards {
			t.Fatalf("wildcard %q allowed by a limit without wildcards", name)
		}
	})
}
