package access

import "testing"

func TestMatchGlob(t *testing.T) {
	for _, c := range []struct {
		pat, repo string
		want      bool
	}{
		{"*", "a/b/c", true}, {"team/*", "team/app", true}, {"team/*", "team/a/b", true},
		{"team/*", "teamx/app", false}, {"app", "app", true}, {"app", "app2", false},
		{"a?c", "abc", true}, {"a?c", "ac", false}, {"*/base", "x/y/base", true}, {"*/base", "base", false},
	} {
		if got := MatchGlob(c.pat, c.repo); got != c.want {
			t.Errorf("MatchGlob(%q, %q) = %v", c.pat, c.repo, got)
		}
	}
}

func TestPolicy(t *testing.T) {
	rules := []Rule{
		{ID: 1, Priority: 10, Effect: Deny, Repository: "team/secret", Accounts: []string{"alice"}, Actions: []string{"pull"}},
		{ID: 2, Priority: 20, Effect: Allow, Repository: "team/*", Roles: []string{"user"}, Actions: []string{"pull", "push"}},
		{ID: 3, Priority: 30, Effect: Allow, Repository: "public/*", AccountTypes: []string{AccountAnonymous}, Actions: []string{"pull"}},
		{ID: 4, Priority: 5, Effect: Deny, Repository: "private/*", Accounts: []string{"mcp-agent"}, Actions: []string{"pull"}},
	}
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	p := New(rules, []string{"mcp-agent"})
	alice := Principal{Username: "alice", AccountType: "human", Roles: []string{"user"}}
	admin := Principal{Username: "root", AccountType: "human", Roles: []string{"admin"}}
	agent := Principal{Username: "mcp-agent", AccountType: "system"}
	other := Principal{Username: "mcq", AccountType: "system"}
	for _, c := range []struct {
		p      Principal
		repo   string
		action string
		want   bool
	}{
		{alice, "team/app", "push", true}, {alice, "team/app", "delete", false}, {alice, "team/secret", "pull", false},
		{alice, "team/secret", "push", true}, {alice, "other", "pull", false},
		{admin, "anything/at/all", "delete", true},
		{agent, "anything", "pull", true}, {agent, "anything", "push", false}, {agent, "private/x", "pull", false},
		{other, "anything", "pull", false},
		{Anonymous, "public/img", "pull", true}, {Anonymous, "public/img", "push", false}, {Anonymous, "team/app", "pull", false},
	} {
		if got := p.Can(c.p, c.repo, c.action); got != c.want {
			t.Errorf("%s %s %s = %v, want %v", c.p.Username, c.action, c.repo, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Rule{
		{Effect: "maybe", Repository: "a", Accounts: []string{"x"}, Actions: []string{"pull"}},
		{Effect: Allow, Repository: "A", Accounts: []string{"x"}, Actions: []string{"pull"}},
		{Effect: Allow, Repository: "a", Actions: []string{"pull"}},
		{Effect: Allow, Repository: "a", Accounts: []string{"x"}, Actions: []string{"fly"}},
		{Effect: Allow, Repository: "a", AccountTypes: []string{"robot"}, Actions: []string{"pull"}},
	}
	for i, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("rule %d validated", i)
		}
	}
}
