package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/names"
)

// Effect is what a matching rule or limit decides.
type Effect string

// The effects.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
)

// The operations rules name. Engines map each of their operations to one.
const (
	OpRead   = "read"
	OpIssue  = "issue"
	OpSign   = "sign"
	OpRenew  = "renew"
	OpRevoke = "revoke"
	OpManage = "manage"
)

// Operations lists the operations a rule may name ("*" names all): the
// ones above, shared by the engines, then the transit engine's (encrypt,
// decrypt, rewrap, datakey, verify, hmac, export) and the user-to-user
// engine's (send, open). The engines import this package, so their
// operations are listed here by name rather than imported; a test checks
// every engine's ACL operations are among them.
var Operations = []string{
	OpRead, OpIssue, OpSign, OpRenew, OpRevoke, OpManage,
	"encrypt", "decrypt", "rewrap", "datakey", "verify", "hmac", "export",
	"send", "open",
}

// Subject selects callers; empty lists match anyone, and a caller must
// match every list that is set.
type Subject struct {
	Accounts     []string `json:"accounts,omitempty"`
	Roles        []string `json:"roles,omitempty"`
	AccountTypes []string `json:"account_types,omitempty"`
}

// Matches reports whether the caller is selected.
func (s Subject) Matches(c engine.Caller) bool {
	if len(s.Accounts) > 0 && !slices.Contains(s.Accounts, c.Username) {
		return false
	}
	if len(s.Roles) > 0 && !slices.ContainsFunc(s.Roles, func(r string) bool { return slices.Contains(c.Roles, r) }) {
		return false
	}
	if len(s.AccountTypes) > 0 && !slices.Contains(s.AccountTypes, c.AccountType) {
		return false
	}
	return true
}

// Rule is one ACL rule.
type Rule struct {
	ID          int64    `json:"id"`
	Priority    int      `json:"priority"`
	Effect      Effect   `json:"effect"`
	Subject     Subject  `json:"subject"`
	Mounts      []string `json:"mounts,omitempty"`
	Operations  []string `json:"operations,omitempty"`
	Resources   []string `json:"resources,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Limit is one issuance limit.
type Limit struct {
	ID          int64    `json:"id"`
	Priority    int      `json:"priority"`
	Effect      Effect   `json:"effect"`
	Subject     Subject  `json:"subject"`
	Mounts      []string `json:"mounts,omitempty"`
	Names       []string `json:"names,omitempty"`
	IPRanges    []string `json:"ip_ranges,omitempty"`
	Wildcards   bool     `json:"wildcards,omitempty"`
	Description string   `json:"description,omitempty"`
}

var (
	accountRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)
	mountGlob  = regexp.MustCompile(`^[a-z0-9*-]{1,63}$`)
	resourceRE = regexp.MustCompile(`^[A-Za-z0-9*._/:-]{1,256}$`)
)

func validateCommon(prefix string, priority int, effect Effect, s Subject, mounts []string, desc string) error {
	if priority < 0 || priority > 1_000_000 {
		return apierr.InvalidField(prefix+"priority", "must be 0..1000000, got %d", priority)
	}
	if effect != Allow && effect != Deny {
		return apierr.InvalidField(prefix+"effect", "must be allow or deny, got %q", effect)
	}
	for i, a := range s.Accounts {
		if !accountRE.MatchString(a) {
			return apierr.InvalidField(fmt.Sprintf("%ssubject.accounts[%d]", prefix, i), "%q is not an account name", a)
		}
	}
	for i, r := range s.Roles {
		if r != "admin" && r != "user" && r != "guest" {
			return apierr.InvalidField(fmt.Sprintf("%ssubject.roles[%d]", prefix, i), "unknown role %q (admin, user, guest)", r)
		}
	}
	for i, t := range s.AccountTypes {
		if t != "human" && t != "system" {
			return apierr.InvalidField(fmt.Sprintf("%ssubject.account_types[%d]", prefix, i), "unknown account type %q (human, system)", t)
		}
	}
	for i, m := range mounts {
		if !mountGlob.MatchString(m) {
			return apierr.InvalidField(fmt.Sprintf("%smounts[%d]", prefix, i), "%q is not a mount name or glob", m)
		}
	}
	if len(desc) > 512 {
		return apierr.InvalidField(prefix+"description", "longer than 512 bytes")
	}
	return nil
}

// Validate checks a rule; the error names the bad field.
func (r Rule) Validate() error {
	if err := validateCommon("rule.", r.Priority, r.Effect, r.Subject, r.Mounts, r.Description); err != nil {
		return err
	}
	for i, op := range r.Operations {
		if op != "*" && !slices.Contains(Operations, op) {
			return apierr.InvalidField(fmt.Sprintf("rule.operations[%d]", i), "unknown operation %q (%s or *)", op, strings.Join(Operations, ", "))
		}
	}
	for i, res := range r.Resources {
		if !resourceRE.MatchString(res) {
			return apierr.InvalidField(fmt.Sprintf("rule.resources[%d]", i), "%q is not a resource or glob", res)
		}
	}
	return nil
}

// Validate checks a limit and normalizes its patterns and ranges; the
// error names the bad field.
func (l *Limit) Validate() error {
	if err := validateCommon("limit.", l.Priority, l.Effect, l.Subject, l.Mounts, l.Description); err != nil {
		return err
	}
	if len(l.Names) == 0 && len(l.IPRanges) == 0 {
		return apierr.InvalidField("limit.names", "a limit needs names or ip_ranges")
	}
	for i, n := range l.Names {
		p, err := names.ParsePattern(n)
		if err != nil {
			return apierr.InvalidField(fmt.Sprintf("limit.names[%d]", i), "%v", err)
		}
		l.Names[i] = p.String()
	}
	for i, s := range l.IPRanges {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return apierr.InvalidField(fmt.Sprintf("limit.ip_ranges[%d]", i), "%q is not a CIDR prefix", s)
		}
		l.IPRanges[i] = p.Masked().String()
	}
	return nil
}

// glob matches s against a pattern where "*" stands for any run of
// characters, "/" included.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func globAny(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	return slices.ContainsFunc(patterns, func(p string) bool { return glob(p, s) })
}

// less orders for evaluation: ascending priority, deny first at equal
// priority, then ascending id.
func less(pa, pb int, ea, eb Effect, ia, ib int64) int {
	if pa != pb {
		return pa - pb
	}
	if ea != eb {
		if ea == Deny {
			return -1
		}
		return 1
	}
	switch {
	case ia < ib:
		return -1
	case ia > ib:
		return 1
	}
	return 0
}

// SortRules puts rules in evaluation order.
func SortRules(rules []Rule) {
	slices.SortStableFunc(rules, func(a, b Rule) int {
		return less(a.Priority, b.Priority, a.Effect, b.Effect, a.ID, b.ID)
	})
}

// SortLimits puts limits in evaluation order.
func SortLimits(limits []Limit) {
	slices.SortStableFunc(limits, func(a, b Limit) int {
		return less(a.Priority, b.Priority, a.Effect, b.Effect, a.ID, b.ID)
	})
}

// Decision is the outcome of an evaluation.
type Decision struct {
	Allowed bool
	// ID is the deciding rule or limit (0: none matched).
	ID     int64
	Reason string
}

func decided(kind string, id int64, e Effect, desc string) Decision {
	reason := fmt.Sprintf("%s %d (%s)", kind, id, e)
	if desc != "" {
		reason += ": " + desc
	}
	return Decision{Allowed: e == Allow, ID: id, Reason: reason}
}

// EvaluateRules decides an operation: rules must be in evaluation order.
func EvaluateRules(rules []Rule, c engine.Caller, mount, op, resource string) Decision {
	for _, r := range rules {
		if !r.Subject.Matches(c) || !globAny(r.Mounts, mount) || !globAny(r.Resources, resource) {
			continue
		}
		if len(r.Operations) > 0 && !slices.Contains(r.Operations, "*") && !slices.Contains(r.Operations, op) {
			continue
		}
		return decided("rule", r.ID, r.Effect, r.Description)
	}
	return Decision{Reason: "no rule matched (default deny)"}
}

// EvaluateName decides one name of a certificate: a DNS name as returned
// by names.ParseDNS, or an IP address. limits must be in evaluation
// order.
func EvaluateName(limits []Limit, c engine.Caller, mount, name string, ip netip.Addr) Decision {
	wildcard := !ip.IsValid() && names.IsWildcard(name)
	for _, l := range limits {
		if !l.Subject.Matches(c) || !globAny(l.Mounts, mount) {
			continue
		}
		if !l.covers(name, ip) {
			continue
		}
		if wildcard && l.Effect == Allow && !l.Wildcards {
			continue
		}
		return decided("limit", l.ID, l.Effect, l.Description)
	}
	if wildcard {
		return Decision{Reason: "no limit allowing wildcards covers it (default deny)"}
	}
	return Decision{Reason: "no issuance limit covers it (default deny)"}
}

func (l Limit) covers(name string, ip netip.Addr) bool {
	if ip.IsValid() {
		for _, s := range l.IPRanges {
			if p, err := netip.ParsePrefix(s); err == nil && p.Contains(ip) {
				return true
			}
		}
		return false
	}
	for _, s := range l.Names {
		if p, err := names.ParsePattern(s); err == nil && p.Match(name) {
			return true
		}
	}
	return false
}
