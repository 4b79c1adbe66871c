package policy

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/names"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/seal"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

const d = "mcp.metacircular.net"

var (
	agent = engine.Caller{Username: "mcp-agent", AccountType: "system"}
	edge  = engine.Caller{Username: "agent-edge", AccountType: "system"}
	alice = engine.Caller{Username: "alice", AccountType: "human", Roles: []string{"user"}}
	admin = engine.Caller{Username: "admin", AccountType: "human", Roles: []string{"admin"}}
)

// platformLimits are the limits the platform is expected to run with:
// the agent issues service names, the edge public names but never the
// platform's own.
func platformLimits() []Limit {
	l := []Limit{
		{ID: 1, Priority: 10, Effect: Allow, Subject: Subject{Accounts: []string{"mcp-agent"}}, Names: []string{"*.svc." + d}, IPRanges: []string{"10.0.0.0/8"}},
		{ID: 2, Priority: 5, Effect: Deny, Subject: Subject{Accounts: []string{"agent-edge"}}, Names: []string{d, "**." + d}},
		{ID: 3, Priority: 10, Effect: Allow, Subject: Subject{Accounts: []string{"agent-edge"}}, Names: []string{"metacircular.net", "**.metacircular.net", "wntrmute.net", "**.wntrmute.net"}},
		{ID: 4, Priority: 10, Effect: Allow, Subject: Subject{Roles: []string{"user"}}, Names: []string{"*.users." + d}, Wildcards: true},
	}
	SortLimits(l)
	return l
}

func TestEvaluateNameMatrix(t *testing.T) {
	limits := platformLimits()
	cases := []struct {
		who  engine.Caller
		name string
		want bool
	}{
		{agent, "mcq.svc." + d, true},
		{agent, "MCQ.svc." + d + ".", true},
		{agent, "svc." + d, false},                   // bare suffix
		{agent, "a.mcq.svc." + d, false},             // deeper label
		{agent, "mcq.svc." + d + ".evil.net", false}, // suffix elsewhere
		{agent, "mcq.svc.evil.net", false},           // wrong suffix
		{agent, "*.svc." + d, false},                 // wildcard without wildcards
		{agent, "10.1.2.3", true},                    // IP SAN in range
		{agent, "192.168.1.1", false},                // IP SAN out of range
		{agent, "::ffff:10.1.2.3", true},             // mapped v4 counts as v4
		{edge, "www.metacircular.net", true},
		{edge, "metacircular.net", true},
		{edge, "a.b.wntrmute.net", true},
		{edge, "mcq.svc." + d, false}, // the platform's names are denied first
		{edge, d, false},
		{edge, "evilmetacircular.net", false},
		{edge, "10.1.2.3", false},
		{alice, "*.users." + d, true},
		{alice, "x.users." + d, true},
		{alice, "mcq.svc." + d, false},
		{engine.Caller{Username: "nobody"}, "mcq.svc." + d, false},
	}
	for _, c := range cases {
		var dec Decision
		if ip, err := netip.ParseAddr(c.name); err == nil {
			dec = EvaluateName(limits, c.who, "pki", "", ip.Unmap())
		} else {
			n, err := names.ParseDNS(c.name)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			dec = EvaluateName(limits, c.who, "pki", n, netip.Addr{})
		}
		if dec.Allowed != c.want {
			t.Errorf("%s asking for %s: allowed=%v (%s), want %v", c.who.Username, c.name, dec.Allowed, dec.Reason, c.want)
		}
	}
}

func TestEvaluateRules(t *testing.T) {
	rules := []Rule{
		{ID: 1, Priority: 10, Effect: Allow, Subject: Subject{Accounts: []string{"mcp-agent"}}, Mounts: []string{"pki"}, Operations: []string{OpIssue, OpSign, OpRenew}, Resources: []string{"issuer/services"}},
		{ID: 2, Priority: 20, Effect: Allow, Subject: Subject{AccountTypes: []string{"human"}}, Operations: []string{OpRead}},
		{ID: 3, Priority: 20, Effect: Deny, Subject: Subject{Roles: []string{"guest"}}},
		{ID: 4, Priority: 30, Effect: Allow, Subject: Subject{Roles: []string{"user"}}, Mounts: []string{"lab-*"}, Operations: []string{"*"}, Resources: []string{"issuer/*"}},
	}
	SortRules(rules)
	guest := engine.Caller{Username: "gina", AccountType: "human", Roles: []string{"guest"}}
	cases := []struct {
		who                 engine.Caller
		mount, op, resource string
		want                bool
		decidingRule        int64
	}{
		{agent, "pki", OpIssue, "issuer/services", true, 1},
		{agent, "pki", OpIssue, "issuer/infra", false, 0},
		{agent, "other", OpIssue, "issuer/services", false, 0},
		{agent, "pki", OpRevoke, "issuer/services", false, 0},
		{alice, "pki", OpRead, "certs", true, 2},
		{guest, "pki", OpRead, "certs", false, 3}, // deny first at equal priority
		{alice, "lab-1", OpRevoke, "issuer/x", true, 4},
		{alice, "lab-1", OpRevoke, "root", false, 0},
	}
	for _, c := range cases {
		dec := EvaluateRules(rules, c.who, c.mount, c.op, c.resource)
		if dec.Allowed != c.want || dec.ID != c.decidingRule {
			t.Errorf("%s %s %s %s: %+v, want %v by %d", c.who.Username, c.mount, c.op, c.resource, dec, c.want, c.decidingRule)
		}
	}
}

func TestValidateNamesField(t *testing.T) {
	cases := map[string]func() error{
		"rule.effect":           func() error { return Rule{Effect: "maybe"}.Validate() },
		"rule.priority":         func() error { return Rule{Effect: Allow, Priority: -1}.Validate() },
		"rule.operations[0]":    func() error { return Rule{Effect: Allow, Operations: []string{"delete"}}.Validate() },
		"rule.subject.roles[0]": func() error { return Rule{Effect: Allow, Subject: Subject{Roles: []string{"root"}}}.Validate() },
		"rule.subject.account_types[0]": func() error {
			return Rule{Effect: Allow, Subject: Subject{AccountTypes: []string{"robot"}}}.Validate()
		},
		"rule.mounts[0]":     func() error { return Rule{Effect: Allow, Mounts: []string{"PKI/x"}}.Validate() },
		"rule.resources[0]":  func() error { return Rule{Effect: Allow, Resources: []string{"a b"}}.Validate() },
		"limit.names":        func() error { return (&Limit{Effect: Allow}).Validate() },
		"limit.names[0]":     func() error { return (&Limit{Effect: Allow, Names: []string{"a.*.b"}}).Validate() },
		"limit.ip_ranges[0]": func() error { return (&Limit{Effect: Allow, IPRanges: []string{"10.0.0.1"}}).Validate() },
		"limit.subject.accounts[0]": func() error {
			return (&Limit{Effect: Allow, Names: []string{"x.y"}, Subject: Subject{Accounts: []string{"has space"}}}).Validate()
		},
	}
	for field, f := range cases {
		err := f()
		if d := apierr.Describe(err); d.Kind != apierr.Invalid || d.Field != field {
			t.Errorf("%s: %+v", field, d)
		}
	}
	l := Limit{Effect: Allow, Names: []string{"*.SVC.Example.NET."}, IPRanges: []string{"10.1.2.3/8"}}
	if err := l.Validate(); err != nil || l.Names[0] != "*.svc.example.net" || l.IPRanges[0] != "10.0.0.0/8" {
		t.Fatalf("normalized: %+v %v", l, err)
	}
}

func TestEngineStoresInBarrier(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "m.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b := barrier.New(st, barrier.Options{Params: seal.Params{MemoryKiB: 8192, Iterations: 1, Parallelism: 1}})
	if err := b.Init(ctx, []byte("a long unseal password")); err != nil {
		t.Fatal(err)
	}
	e := New(b.View(barrier.SysOwner))

	if err := e.Allow(ctx, agent, "pki", OpIssue, "issuer/services"); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("empty policy: %v", err)
	}
	if err := e.Allow(ctx, admin, "pki", OpManage, "root"); err != nil {
		t.Fatalf("admin: %v", err)
	}
	if err := e.Allow(ctx, engine.Caller{}, "pki", OpRead, "certs"); !errors.Is(err, engine.ErrUnauthenticated) {
		t.Fatalf("no caller: %v", err)
	}
	r, err := e.CreateRule(ctx, Rule{Priority: 10, Effect: Allow, Subject: Subject{Accounts: []string{"mcp-agent"}}, Operations: []string{OpIssue}, Resources: []string{"issuer/services"}})
	if err != nil || r.ID != 1 {
		t.Fatalf("create rule: %+v %v", r, err)
	}
	if _, err := e.CreateRule(ctx, Rule{Effect: "permit"}); apierr.KindOf(err) != apierr.Invalid {
		t.Fatalf("bad rule: %v", err)
	}
	lim, err := e.CreateLimit(ctx, Limit{Priority: 10, Effect: Allow, Subject: Subject{Accounts: []string{"mcp-agent"}}, Names: []string{"*.svc." + d}})
	if err != nil || lim.ID != 2 {
		t.Fatalf("create limit: %+v %v", lim, err)
	}
	if err := e.Allow(ctx, agent, "pki", OpIssue, "issuer/services"); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckNames(ctx, agent, "pki", pki.Names{DNS: []string{"mcq.svc." + d}}); err != nil {
		t.Fatal(err)
	}
	err = e.CheckNames(ctx, agent, "pki", pki.Names{DNS: []string{"mcq.svc." + d, "svc." + d}})
	if !errors.Is(err, engine.ErrDenied) || apierr.Describe(err).Message == "" {
		t.Fatalf("bare suffix: %v", err)
	}
	if err := e.CheckNames(ctx, agent, "pki", pki.Names{IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("IP without a range: %v", err)
	}
	if _, err := e.UpdateLimit(ctx, lim.ID, Limit{Priority: 10, Effect: Allow, Subject: Subject{Accounts: []string{"mcp-agent"}}, Names: []string{"*.svc." + d}, IPRanges: []string{"10.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckNames(ctx, agent, "pki", pki.Names{IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}); err != nil {
		t.Fatalf("IP in range: %v", err)
	}
	dec, nds, err := e.Explain(ctx, agent, "pki", OpIssue, "issuer/services", pki.Names{DNS: []string{"a.svc." + d, "b.example.net"}})
	if err != nil || !dec.Allowed || len(nds) != 2 || !nds[0].Allowed || nds[1].Allowed {
		t.Fatalf("explain: %+v %+v %v", dec, nds, err)
	}
	if err := e.DeleteRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteRule(ctx, r.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if rules, _ := e.Rules(ctx); len(rules) != 0 {
		t.Fatalf("rules left: %+v", rules)
	}
	b.Seal()
	if err := e.Allow(ctx, agent, "pki", OpIssue, "issuer/services"); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("sealed: %v", err)
	}
}
