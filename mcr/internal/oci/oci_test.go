package oci

import (
	"strings"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		in         string
		start, end int64
		ok         bool
	}{
		{"0-1023", 0, 1023, true}, {"bytes 10-20/*", 10, 20, true}, {"bytes=5-5", 5, 5, true}, {"bytes 0-9/10", 0, 9, true},
		{"", 0, 0, false}, {"10-5", 0, 0, false}, {"-5", 0, 0, false}, {"a-b", 0, 0, false}, {"1-2-3", 0, 0, false},
		{"+1-2", 0, 0, false}, {"0-9999999999999999999", 0, 0, false}, {"bytes 0-9/x", 0, 0, false},
	} {
		r, err := ParseContentRange(c.in)
		if (err == nil) != c.ok || (c.ok && (r.Start != c.start || r.End != c.end)) {
			t.Errorf("%q: %+v %v", c.in, r, err)
		}
	}
}

func TestParseDigestAndName(t *testing.T) {
	good := []string{"sha256:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("b", 128)}
	for _, g := range good {
		if _, err := ParseDigest(g); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	for _, b := range []string{"sha256:baddigeststring", "sha384:" + strings.Repeat("a", 96), "md5:abc", "", "sha256:" + strings.Repeat("A", 64)} {
		if _, err := ParseDigest(b); err == nil {
			t.Errorf("%q parsed", b)
		}
	}
	for _, n := range []string{"a", "team/app", "a.b_c__d-e/f--g"} {
		if _, err := ParseName(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"", "A", "a//b", "/a", "a/", "a..b", strings.Repeat("a", 256)} {
		if _, err := ParseName(n); err == nil {
			t.Errorf("%q parsed", n)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-1023", "bytes 10-20/*", "bytes=5-5", "10-5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseContentRange(s)
		if err != nil {
			return
		}
		if r.Start < 0 || r.End < r.Start || r.Len() <= 0 {
			t.Fatalf("%q gave %+v", s, r)
		}
	})
}

func FuzzParseDigest(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("a", 64))
	f.Add("sha512:" + strings.Repeat("0", 128))
	f.Add("sha256:baddigeststring")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			if _, ok := AsError(err); !ok {
				t.Fatalf("error of no spec code: %v", err)
			}
			return
		}
		if d.String() != s || d.Validate() != nil {
			t.Fatalf("%q accepted as %q", s, d)
		}
	})
}

func FuzzParseScopes(f *testing.F) {
	f.Add("repository:a/b:pull,push repository:c:*")
	f.Add("registry:catalog:*")
	f.Fuzz(func(t *testing.T, s string) {
		list, err := ParseScopes([]string{s})
		if err != nil {
			return
		}
		for _, a := range list {
			if a.Type == ResourceRepository {
				if _, err := ParseName(a.Name); err != nil {
					t.Fatalf("%q gave repository %q", s, a.Name)
				}
			}
		}
	})
}
