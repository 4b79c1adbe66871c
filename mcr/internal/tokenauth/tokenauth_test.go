package tokenauth

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcr/internal/access"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

func TestIssueVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token.key")
	key, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadKey(path)
	if err != nil || !again.Equal(key) {
		t.Fatalf("reloaded key differs: %v", err)
	}
	now := time.Now()
	iss := NewIssuer(key, "mcr", "mcr.test", 5*time.Minute)
	iss.SetClock(func() time.Time { return now })
	grant := []oci.Access{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}
	tok, _, err := iss.Issue("sub-1", access.Principal{Username: "alice", AccountType: "human", Roles: []string{"user"}}, grant)
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != "alice" || !c.Allows("repository", "team/app", "push") || c.Allows("repository", "team/app", "delete") {
		t.Fatalf("claims %+v", c)
	}
	other := NewIssuer(key, "mcr", "other.service", time.Minute)
	if _, err := other.Verify(tok); err == nil {
		t.Fatal("token for another audience verified")
	}
	later := NewIssuer(key, "mcr", "mcr.test", time.Minute)
	later.SetClock(func() time.Time { return now.Add(7 * time.Minute) })
	if _, err := later.Verify(tok); err == nil {
		t.Fatal("expired token verified")
	}
	forged := tok[:len(tok)-4] + "AAAA"
	if _, err := iss.Verify(forged); err == nil {
		t.Fatal("forged token verified")
	}
	if _, err := iss.Verify(strings.Replace(tok, "eyJ", "eyK", 1)); err == nil {
		t.Fatal("mangled token verified")
	}
}

func TestParseScopes(t *testing.T) {
	got, err := oci.ParseScopes([]string{"repository:a/b:pull,push repository:c:pull", "repository:a/b:delete", "registry:catalog:*"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || strings.Join(got[0].Actions, ",") != "pull,push,delete" {
		t.Fatalf("scopes %+v", got)
	}
	for _, bad := range []string{"repository:A:pull", "repository:a:fly", "bogus:a:pull", "repository", "registry:other:*"} {
		if _, err := oci.ParseScopes([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzLooksLikeJWT(f *testing.F) {
	f.Add("eyJhbGciOiJFZERTQSJ9.eyJ9.c2ln")
	f.Add("password")
	f.Fuzz(func(t *testing.T, s string) {
		if LooksLikeJWT(s) && strings.Count(s, ".") != 2 {
			t.Fatalf("%q taken for a JWT", s)
		}
	})
}
