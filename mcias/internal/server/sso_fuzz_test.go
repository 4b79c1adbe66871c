package server

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzWithCode: whatever state a client sends, the redirect MCIAS builds
// starts with the registered URI unchanged, stays on its host, and hands
// back exactly that state and the code.
func FuzzWithCode(f *testing.F) {
	registered := []string{
		"https://wiki.example/sso/callback",
		"https://wiki.example:8443/sso/callback?tenant=a%2Fb&x=1",
		"https://wiki.example/cb?",
		"https://wiki.example/cb?a=1&",
		"http://127.0.0.1:8080/cb",
	}
	for _, s := range []string{"s", "", "a&code=evil", "x#frag", "%zz", "a;b", "😀", "\x00\xff", strings.Repeat("s", 512)} {
		f.Add(uint8(1), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, state string) {
		reg := registered[int(which)%len(registered)]
		if err := validateRedirectURI(reg); err != nil {
			t.Fatalf("seed URI %q invalid: %v", reg, err)
		}
		const code = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE"
		got := withCode(reg, code, state)
		if !strings.HasPrefix(got, strings.TrimSuffix(reg, "?")) {
			t.Fatalf("redirect %q does not start with the registered %q", got, reg)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("redirect %q does not parse: %v", got, err)
		}
		r, _ := url.Parse(reg)
		if u.Scheme != r.Scheme || u.Host != r.Host || u.Path != r.Path || u.Fragment != "" {
			t.Fatalf("redirect %q leaves the registered %q", got, reg)
		}
		q := u.Query()
		if len(q["state"]) != 1 || q.Get("state") != state || len(q["code"]) != 1 || q.Get("code") != code {
			t.Fatalf("redirect %q carries state %q code %q; want %q and the code", got, q["state"], q["code"], state)
		}
		for k, v := range r.Query() {
			if strings.Join(q[k], "\x00") != strings.Join(v, "\x00") {
				t.Fatalf("redirect %q changed the registered parameter %s", got, k)
			}
		}
	})
}
