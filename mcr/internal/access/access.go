package access

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// Effects of a rule.
const (
	Allow = "allow"
	Deny  = "deny"
)

// AccountAnonymous is the account type of a caller without credentials;
// a rule naming it lets anonymous clients pull a public repository.
const AccountAnonymous = "anonymous"

// Actions a rule may name.
var Actions = []string{oci.ActionPull, oci.ActionPush, oci.ActionDelete}

// Rule is one access rule. It applies to a caller matching any of
// Accounts ("*": any signed-in account), Roles or AccountTypes, on the
// repositories matching Repository (a glob: * is any run of characters,
// / included; ? is one character).
type Rule struct {
	ID           int64     `json:"id"`
	Priority     int       `json:"priority"`
	Effect       string    `json:"effect"`
	Repository   string    `json:"repository"`
	Accounts     []string  `json:"accounts"`
	Roles        []string  `json:"roles"`
	AccountTypes []string  `json:"account_types"`
	Actions      []string  `json:"actions"`
	Description  string    `json:"description"`
	CreatedBy    string    `json:"created_by"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

var globChars = regexp.MustCompile(`^[a-z0-9._/*?-]+$`)

// Validate checks a rule and normalizes its lists (sorted, deduplicated).
func (r *Rule) Validate() error {
	if r.Effect != Allow && r.Effect != Deny {
		return fmt.Errorf("effect %q: want allow or deny", r.Effect)
	}
	if r.Repository == "" || len(r.Repository) > oci.MaxNameLength || !globChars.MatchString(r.Repository) {
		return fmt.Errorf("repository %q: want a repository name or glob (a-z 0-9 . _ - / * ?)", r.Repository)
	}
	if len(r.Accounts)+len(r.Roles)+len(r.AccountTypes) == 0 {
		return fmt.Errorf("name at least one account, role or account type")
	}
	for _, t := range r.AccountTypes {
		if t != "human" && t != "system" && t != AccountAnonymous {
			return fmt.Errorf("account type %q: want human, system or anonymous", t)
		}
	}
	for _, list := range [][]string{r.Accounts, r.Roles} {
		for _, v := range list {
			if v == "" || len(v) > 128 || strings.ContainsAny(v, " \t\n,") {
				return fmt.Errorf("account or role %q is not a name", v)
			}
		}
	}
	if len(r.Actions) == 0 {
		return fmt.Errorf("name at least one action (pull, push, delete)")
	}
	for _, a := range r.Actions {
		if !slices.Contains(Actions, a) {
			return fmt.Errorf("action %q: want pull, push or delete", a)
		}
	}
	if len(r.Description) > 512 {
		return fmt.Errorf("description longer than 512 characters")
	}
	for _, l := range []*[]string{&r.Accounts, &r.Roles, &r.AccountTypes, &r.Actions} {
		*l = norm(*l)
	}
	return nil
}

func norm(l []string) []string {
	out := slices.Clone(l)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// Principal is a caller as the rules see it.
type Principal struct {
	Username    string
	AccountType string
	Roles       []string
}

// Anonymous is the caller without credentials.
var Anonymous = Principal{AccountType: AccountAnonymous}

// IsAdmin reports whether p has the admin role.
func (p Principal) IsAdmin() bool { return slices.Contains(p.Roles, "admin") }

// appliesTo reports whether r names p.
func (r *Rule) appliesTo(p Principal) bool {
	if slices.Contains(r.AccountTypes, p.AccountType) {
		return true
	}
	if p.AccountType == AccountAnonymous {
		return false
	}
	if slices.Contains(r.Accounts, p.Username) || slices.Contains(r.Accounts, "*") {
		return true
	}
	for _, role := range p.Roles {
		if slices.Contains(r.Roles, role) {
			return true
		}
	}
	return false
}

// MatchGlob reports whether repo matches pattern (* any run, ? one
// character).
func MatchGlob(pattern, repo string) bool {
	p, s := 0, 0
	star, mark := -1, 0
	for s < len(repo) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == repo[s]):
			p++
			s++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, s
			p++
		case star >= 0:
			p = star + 1
			mark++
			s = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Policy is a set of rules ready to evaluate.
type Policy struct {
	rules  []Rule
	agents []string
}

// New orders rules by priority (then id) and adds the implicit agent rule:
// agents (system accounts) pull every repository.
func New(rules []Rule, agents []string) *Policy {
	sorted := slices.Clone(rules)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Priority != sorted[j].Priority {
			return sorted[i].Priority < sorted[j].Priority
		}
		return sorted[i].ID < sorted[j].ID
	})
	return &Policy{rules: sorted, agents: slices.Clone(agents)}
}

// Rules are the stored rules in evaluation order.
func (p *Policy) Rules() []Rule { return slices.Clone(p.rules) }

// Allowed lists the actions p may take on repo, in Actions order.
func (p *Policy) Allowed(pr Principal, repo string) []string {
	out := []string{}
	for _, a := range Actions {
		if p.Can(pr, repo, a) {
			out = append(out, a)
		}
	}
	return out
}

// Can reports whether pr may take action on repo: admins always; else the
// first rule (by priority) naming pr, the repository and the action
// decides; else the agent rule (pull); else no.
func (p *Policy) Can(pr Principal, repo, action string) bool {
	if pr.IsAdmin() {
		return true
	}
	for i := range p.rules {
		r := &p.rules[i]
		if slices.Contains(r.Actions, action) && r.appliesTo(pr) && MatchGlob(r.Repository, repo) {
			return r.Effect == Allow
		}
	}
	return action == oci.ActionPull && pr.AccountType == "system" && slices.Contains(p.agents, pr.Username)
}

// CanCatalog reports whether pr may list every repository (admins).
func (p *Policy) CanCatalog(pr Principal) bool { return pr.IsAdmin() }
