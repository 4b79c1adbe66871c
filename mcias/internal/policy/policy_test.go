package policy

import (
	"errors"
	"testing"
)

func TestEvaluate(t *testing.T) {
	rules := []Rule{
		{ID: 1, Priority: 1000, Effect: Allow, Actions: []string{ActionLogin}, Description: "default allow"},
		{ID: 2, Priority: 10, Effect: Deny, Roles: []string{"guest"}, ServiceNames: []string{"mcp"}},
		{ID: 3, Priority: 20, Effect: Deny, AccountTypes: []string{"system"}, ServiceNames: []string{"mcias-web"}},
		{ID: 4, Priority: 5, Effect: Allow, Roles: []string{"user"}, ServiceNames: []string{"mcq"}, RequiredTags: []string{"env:prod", "tier:core"}},
		{ID: 5, Priority: 6, Effect: Deny, ServiceNames: []string{"mcq"}},
		{ID: 6, Priority: 10, Effect: Allow, Roles: []string{"guest"}, ServiceNames: []string{"mcp"}},
	}
	for _, tc := range []struct {
		name string
		req  Request
		want bool
		rule int64
	}{
		{"default allow", Request{Roles: []string{"user"}, AccountType: "human", Action: ActionLogin, ServiceName: "mcns"}, true, 1},
		{"guest denied on mcp; deny wins the priority tie by lower id", Request{Roles: []string{"guest"}, AccountType: "human", Action: ActionLogin, ServiceName: "mcp"}, false, 2},
		{"system denied on web", Request{AccountType: "system", Action: ActionLogin, ServiceName: "mcias-web"}, false, 3},
		{"tags all present", Request{Roles: []string{"user"}, AccountType: "human", Action: ActionLogin, ServiceName: "mcq", Tags: []string{"tier:core", "env:prod", "x"}}, true, 4},
		{"a tag missing", Request{Roles: []string{"user"}, AccountType: "human", Action: ActionLogin, ServiceName: "mcq", Tags: []string{"env:prod"}}, false, 5},
		{"other action: no rule", Request{Roles: []string{"user"}, Action: "auth:sso"}, false, 0},
	} {
		d := Evaluate(rules, tc.req)
		if d.Allow != tc.want || d.RuleID != tc.rule {
			t.Errorf("%s: got %+v, want allow=%v rule=%d", tc.name, d, tc.want, tc.rule)
		}
	}
	if d := Evaluate(nil, Request{Action: ActionLogin}); d.Allow {
		t.Fatal("empty rule set allowed a login")
	}
}

func TestWildcards(t *testing.T) {
	rules := []Rule{{ID: 1, Effect: Allow, ServiceNames: []string{"*"}}, {ID: 2, Priority: 1, Effect: Allow, Actions: []string{"auth:*"}}}
	if !Evaluate(rules[:1], Request{ServiceName: "x"}).Allow || Evaluate(rules[:1], Request{}).Allow {
		t.Fatal("* must match any non-empty service name only")
	}
	if !Evaluate(rules[1:], Request{Action: "auth:login"}).Allow || Evaluate(rules[1:], Request{Action: "token:renew"}).Allow {
		t.Fatal("prefix wildcard")
	}
}

func TestValidate(t *testing.T) {
	good := Rule{Effect: Allow, Priority: 1, Roles: []string{"admin"}, AccountTypes: []string{"human"}, Actions: []string{"auth:login"}, ServiceNames: []string{"mcns"}, RequiredTags: []string{"env:prod"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Rule){
		"effect":   func(r *Rule) { r.Effect = "maybe" },
		"priority": func(r *Rule) { r.Priority = -1 },
		"role":     func(r *Rule) { r.Roles = []string{"root"} },
		"type":     func(r *Rule) { r.AccountTypes = []string{"robot"} },
		"service":  func(r *Rule) { r.ServiceNames = []string{"Bad Name"} },
		"tag":      func(r *Rule) { r.RequiredTags = []string{"has space"} },
	} {
		r := good
		mut(&r)
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
