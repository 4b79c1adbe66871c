package token_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcias/internal/token"
)

// fuzzKey is fixed so the committed corpus under testdata/fuzz stays valid.
var fuzzKey = func() token.Key {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	return token.Key{ID: "f0f0f0f0f0f0f0f0", Public: ed25519.PublicKey(priv[32:]), Private: priv, CreatedAt: now}
}()

// sentinelsIn counts the package's sentinel errors that err wraps.
func sentinelsIn(err error) int {
	n := 0
	for _, s := range []error{
		token.ErrMalformed, token.ErrUnknownKey, token.ErrBadSignature,
		token.ErrExpired, token.ErrNotYetValid, token.ErrWrongIssuer,
	} {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

// parseChecked parses tok with fuzzKey and checks the invariants of the
// answer: a rejection wraps exactly one sentinel and carries no claims; an
// acceptance re-verifies by hand, holds valid claims and survives a
// Sign/Parse round trip unchanged.
func parseChecked(t *testing.T, tok string) {
	t.Helper()
	c, err := token.Parse(tok, lookup(fuzzKey), issuer, now)
	if err != nil {
		if n := sentinelsIn(err); n != 1 {
			t.Fatalf("error %v wraps %d sentinels, want 1", err, n)
		}
		if !reflect.DeepEqual(c, token.Claims{}) {
			t.Fatalf("rejected token returned claims %+v", c)
		}
		return
	}

	i := strings.LastIndexByte(tok, '.')
	sig, derr := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if i < 0 || derr != nil || !ed25519.Verify(fuzzKey.Public, []byte(tok[:i]), sig) {
		t.Fatalf("accepted %q, whose signature does not verify", tok)
	}
	if len(tok) > token.MaxLength {
		t.Fatalf("accepted a %d-byte token", len(tok))
	}
	if c.Issuer != issuer || c.Subject == "" || c.ID == "" ||
		(c.AccountType != token.AccountHuman && c.AccountType != token.AccountSystem) ||
		!now.Before(c.ExpiresAt) || c.IssuedAt.After(now.Add(time.Minute)) || c.Roles == nil {
		t.Fatalf("accepted %q with invalid claims %+v", tok, c)
	}
	again, err := token.Sign(fuzzKey, c)
	if err != nil {
		t.Fatalf("accepted claims %+v that Sign refuses: %v", c, err)
	}
	c2, err := token.Parse(again, lookup(fuzzKey), issuer, now)
	if err != nil || !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip of %+v: got %+v, %v", c, c2, err)
	}
}

func resign(tok string) string {
	signed := tok
	if i := strings.LastIndexByte(tok, '.'); i >= 0 {
		signed = tok[:i]
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(fuzzKey.Private, []byte(signed)))
}

func fuzzSeeds(t testing.TB) []string {
	k := fuzzKey
	valid := sign(t, k, validClaims())
	h, p, _ := strings.Cut(valid, ".")
	p, _, _ = strings.Cut(p, ".")
	return []string{
		valid,
		forge(k, fmt.Sprintf(`{"alg":"EdDSA","kid":%q}`, k.ID), claimsJSON(del("roles"))),
		forge(k, fmt.Sprintf(`{"alg":"none","kid":%q}`, k.ID), claimsJSON(nil)),
		b64(`{"alg":"none"}`) + "." + p + ".",
		b64(fmt.Sprintf(`{"alg":"HS256","typ":"JWT","kid":%q}`, k.ID)) + "." + p + "." + b64(strings.Repeat("x", 32)),
		forge(k, fmt.Sprintf(`{"alg":"EdDSA","kid":%q,"crit":["exp"]}`, k.ID), claimsJSON(nil)),
		forge(k, fmt.Sprintf(`{"alg":"EdDSA","alg":"none","kid":%q}`, k.ID), claimsJSON(nil)),
		forge(k, goodHeader(k), claimsJSON(set("exp", now.Add(-time.Hour).Unix()))),
		forge(k, goodHeader(k), claimsJSON(set("account_type", "admin"))),
		forge(k, goodHeader(k), `{"iss":1,"sub":[],"exp":1e99}`),
		h + "=." + p + "." + "AAAA",
		valid + ".e30",
		h + ".." + p,
		"..",
		"",
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		parseChecked(t, tok)
		// The fuzzer cannot forge Ed25519, so also sign what it made: that
		// reaches the claim checks that sit behind the signature.
		parseChecked(t, resign(tok))
	})
}

// FuzzClaimsJSON mutates the header and claims JSON directly, signing each
// pair, to drive the strict JSON decoding harder than base64 mutations can.
func FuzzClaimsJSON(f *testing.F) {
	k := fuzzKey
	f.Add(goodHeader(k), claimsJSON(nil))
	f.Add(fmt.Sprintf(`{"kid":%q,"alg":"EdDSA"}`, k.ID), claimsJSON(set("account_type", "system")))
	f.Add(fmt.Sprintf(`{"alg":"EdDSA","Kid":%q}`, k.ID), claimsJSON(set("roles", []string{"a", "b\u00e9"})))
	f.Add(goodHeader(k), `{"iss":"`+issuer+`","sub":"s","exp":1772373600,"iat":1772370000,"jti":"j","account_type":"human","iss":"x"}`)
	f.Add(goodHeader(k), `{"iss":"`+issuer+`","sub":"s","exp":1772373600,"iat":1772370000,"jti":"j","account_type":"human","roles":["\ud800"]} `)
	f.Fuzz(func(t *testing.T, header, claims string) {
		parseChecked(t, forge(k, header, claims))
	})
}
