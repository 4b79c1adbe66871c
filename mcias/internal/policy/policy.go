package policy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Effects.
const (
	Allow = "allow"
	Deny  = "deny"
)

// ActionLogin is the action a password or passkey login asks for.
const ActionLogin = "auth:login"

// Rule is one policy rule. Empty lists match anything.
type Rule struct {
	ID           int64    `json:"id"`
	Priority     int      `json:"priority"`
	Effect       string   `json:"effect"`
	Roles        []string `json:"roles"`
	AccountTypes []string `json:"account_types"`
	Actions      []string `json:"actions"`
	ServiceNames []string `json:"service_names"`
	RequiredTags []string `json:"required_tags"`
	Description  string   `json:"description"`
}

// Request is what a rule is matched against.
type Request struct {
	Roles       []string
	AccountType string
	Action      string
	ServiceName string
	Tags        []string
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Allow bool
	// RuleID is the deciding rule, 0 when none matched.
	RuleID int64
	Reason string
}

var (
	tokenRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.:*-]{0,63}$`)
	tagRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:=/-]{0,127}$`)
)

// ErrInvalid marks a rule that fails validation.
var ErrInvalid = errors.New("invalid policy rule")

// Validate checks a rule's fields; the error names the bad field.
func (r Rule) Validate() error {
	if r.Effect != Allow && r.Effect != Deny {
		return fmt.Errorf("%w: effect must be %q or %q, got %q", ErrInvalid, Allow, Deny, r.Effect)
	}
	if r.Priority < 0 || r.Priority > 1_000_000 {
		return fmt.Errorf("%w: priority must be 0..1000000, got %d", ErrInvalid, r.Priority)
	}
	for _, role := range r.Roles {
		if role != "admin" && role != "user" && role != "guest" {
			return fmt.Errorf("%w: roles: unknown role %q (admin, user, guest)", ErrInvalid, role)
		}
	}
	for _, t := range r.AccountTypes {
		if t != "human" && t != "system" {
			return fmt.Errorf("%w: account_types: unknown type %q (human, system)", ErrInvalid, t)
		}
	}
	for field, list := range map[string][]string{"actions": r.Actions, "service_names": r.ServiceNames} {
		for _, v := range list {
			if !tokenRe.MatchString(v) {
				return fmt.Errorf("%w: %s: %q is not a valid name", ErrInvalid, field, v)
			}
		}
	}
	for _, v := range r.RequiredTags {
		if !tagRe.MatchString(v) {
			return fmt.Errorf("%w: required_tags: %q is not a valid tag", ErrInvalid, v)
		}
	}
	if len(r.Description) > 512 {
		return fmt.Errorf("%w: description longer than 512 bytes", ErrInvalid)
	}
	return nil
}

// Matches reports whether the rule applies to req.
func (r Rule) Matches(req Request) bool {
	if len(r.Roles) > 0 && !slices.ContainsFunc(r.Roles, func(role string) bool { return slices.Contains(req.Roles, role) }) {
		return false
	}
	if len(r.AccountTypes) > 0 && !slices.Contains(r.AccountTypes, req.AccountType) {
		return false
	}
	if len(r.Actions) > 0 && !matchAny(r.Actions, req.Action) {
		return false
	}
	if len(r.ServiceNames) > 0 && !matchAny(r.ServiceNames, req.ServiceName) {
		return false
	}
	for _, tag := range r.RequiredTags {
		if !slices.Contains(req.Tags, tag) {
			return false
		}
	}
	return true
}

// matchAny matches v against names, where "*" matches any non-empty value
// and "prefix:*" any value with that prefix.
func matchAny(names []string, v string) bool {
	for _, n := range names {
		switch {
		case n == v:
			return true
		case n == "*" && v != "":
			return true
		case strings.HasSuffix(n, ":*") && strings.HasPrefix(v, strings.TrimSuffix(n, "*")):
			return true
		}
	}
	return false
}

// Sort orders rules for evaluation: ascending priority, then ascending ID.
func Sort(rules []Rule) {
	sort.SliceStable(rules, func(i, j int) bool {
		if rules[i].Priority != rules[j].Priority {
			return rules[i].Priority < rules[j].Priority
		}
		return rules[i].ID < rules[j].ID
	})
}

// Evaluate returns the decision of the first matching rule in evaluation
// order; with no match the request is denied.
func Evaluate(rules []Rule, req Request) Decision {
	ordered := slices.Clone(rules)
	Sort(ordered)
	for _, r := range ordered {
		if r.Matches(req) {
			reason := r.Description
			if reason == "" {
				reason = fmt.Sprintf("rule %d (%s)", r.ID, r.Effect)
			}
			return Decision{Allow: r.Effect == Allow, RuleID: r.ID, Reason: reason}
		}
	}
	return Decision{Allow: false, Reason: "no policy rule matched (default deny)"}
}
