package token_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcias/internal/token"
)

const issuer = "https://mcias.example.net"

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB) token.Key {
	t.Helper()
	k, err := token.NewKey(now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func lookup(keys ...token.Key) token.KeyLookup {
	return func(kid string) (ed25519.PublicKey, bool) {
		for _, k := range keys {
			if k.ID == kid {
				return k.Public, true
			}
		}
		return nil, false
	}
}

func validClaims() token.Claims {
	return token.Claims{
		Issuer:      issuer,
		Subject:     "6f1c1a55-2a8f-4b8e-9d55-0a3c2f9e7b11",
		ExpiresAt:   now.Add(time.Hour),
		IssuedAt:    now,
		ID:          "0123456789abcdef0123456789abcdef",
		Username:    "kyle",
		AccountType: token.AccountHuman,
		Roles:       []string{"admin", "user"},
	}
}

func sign(t testing.TB, k token.Key, c token.Claims) string {
	t.Helper()
	tok, err := token.Sign(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// forge builds a token from raw header and claims JSON, correctly signed
// with k, so a test reaches the check it is aimed at.
func forge(k token.Key, header, claims string) string {
	signed := b64(header) + "." + b64(claims)
	return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.Private, []byte(signed)))
}

func goodHeader(k token.Key) string {
	return fmt.Sprintf(`{"alg":"EdDSA","typ":"JWT","kid":%q}`, k.ID)
}

// claimsJSON returns valid claims JSON after mod has edited them; mod may
// delete members or set them to any JSON value.
func claimsJSON(mod func(m map[string]any)) string {
	m := map[string]any{
		"iss": issuer, "sub": "6f1c1a55-2a8f-4b8e-9d55-0a3c2f9e7b11",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"jti": "0123456789abcdef0123456789abcdef", "username": "kyle",
		"account_type": "human", "roles": []string{"admin"},
	}
	if mod != nil {
		mod(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func set(key string, v any) func(map[string]any) {
	return func(m map[string]any) { m[key] = v }
}

func del(key string) func(map[string]any) {
	return func(m map[string]any) { delete(m, key) }
}

func TestSignParseRoundTrip(t *testing.T) {
	k := newKey(t)
	system := validClaims()
	system.AccountType = token.AccountSystem
	system.Roles = nil
	system.ExpiresAt = now.Add(365 * 24 * time.Hour)
	subSecond := validClaims()
	subSecond.IssuedAt = now.Add(700 * time.Millisecond)
	subSecond.ExpiresAt = now.Add(time.Hour + 300*time.Millisecond)

	tests := []struct {
		name string
		in   token.Claims
		want token.Claims
	}{
		{"human with roles", validClaims(), validClaims()},
		{"system without roles", system, func() token.Claims { c := system; c.Roles = []string{}; return c }()},
		{"times truncate to seconds", subSecond, validClaims()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, k, tt.in)
			if len(strings.Split(tok, ".")) != 3 {
				t.Fatalf("token %q is not three segments", tok)
			}
			got, err := token.Parse(tok, lookup(k), issuer, now)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("claims:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSignHeader(t *testing.T) {
	k := newKey(t)
	tok := sign(t, k, validClaims())
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"alg":"EdDSA","typ":"JWT","kid":"` + k.ID + `"}`
	if string(h) != want {
		t.Fatalf("header %s, want %s", h, want)
	}
}

func TestParseRejects(t *testing.T) {
	k := newKey(t)
	other := newKey(t)
	valid := sign(t, k, validClaims())
	parts := strings.Split(valid, ".")
	h, p, s := parts[0], parts[1], parts[2]

	hs256 := func() string {
		signed := b64(fmt.Sprintf(`{"alg":"HS256","typ":"JWT","kid":%q}`, k.ID)) + "." + p
		mac := hmac.New(sha256.New, k.Public)
		mac.Write([]byte(signed))
		return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}()
	tamperedPayload := func() string {
		c := validClaims()
		c.Roles = []string{"admin", "superuser"}
		evil := strings.Split(sign(t, other, c), ".")[1]
		return h + "." + evil + "." + s
	}()
	tamperedSig := func() string {
		sig, _ := base64.RawURLEncoding.DecodeString(s)
		sig[10] ^= 1
		return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(sig)
	}()
	padded := func() string {
		hb, _ := base64.RawURLEncoding.DecodeString(h)
		ph := base64.URLEncoding.EncodeToString(append(hb, ' ')) // length not a multiple of 3
		if !strings.HasSuffix(ph, "=") {
			panic("expected padding")
		}
		signed := ph + "." + p
		return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.Private, []byte(signed)))
	}()
	// The last of 86 signature characters carries 4 bits and 2 zero bits;
	// setting a zero bit changes the text but not the decoded bytes.
	nonCanonicalSig := func() string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, s[len(s)-1])
		return h + "." + p + "." + s[:len(s)-1] + string(alphabet[last|1])
	}()
	future := func(d time.Duration) string {
		c := validClaims()
		c.IssuedAt = now.Add(d)
		c.ExpiresAt = now.Add(d + time.Hour)
		return sign(t, k, c)
	}
	expiresIn := func(d time.Duration) string {
		c := validClaims()
		c.IssuedAt = now.Add(-2 * time.Hour)
		c.ExpiresAt = now.Add(d)
		return sign(t, k, c)
	}
	withIssuer := func(iss string) string {
		c := validClaims()
		c.Issuer = iss
		return sign(t, k, c)
	}
	withHeader := func(hdr string) string { return forge(k, hdr, claimsJSON(nil)) }
	withClaims := func(mod func(map[string]any)) string { return forge(k, goodHeader(k), claimsJSON(mod)) }

	tests := []struct {
		name string
		tok  string
		keys token.KeyLookup
		want error // nil: accepted
	}{
		// Controls: the forging helpers make tokens Parse accepts, so each
		// rejection below is caused by the one thing it changes.
		{"control: signed", valid, nil, nil},
		{"control: forged", withClaims(nil), nil, nil},
		{"control: typ absent", withHeader(fmt.Sprintf(`{"alg":"EdDSA","kid":%q}`, k.ID)), nil, nil},
		{"control: roles absent", withClaims(del("roles")), nil, nil},
		{"control: username absent", withClaims(del("username")), nil, nil},
		{"control: iat 60s ahead", future(60 * time.Second), nil, nil},
		{"control: exp 1s ahead", expiresIn(time.Second), nil, nil},

		{"empty", "", nil, token.ErrMalformed},
		{"two segments", h + "." + p, nil, token.ErrMalformed},
		{"extra segment", valid + ".e30", nil, token.ErrMalformed},
		{"trailing dot", valid + ".", nil, token.ErrMalformed},
		{"empty header", "." + p + "." + s, nil, token.ErrMalformed},
		{"empty payload", h + ".." + s, nil, token.ErrMalformed},
		{"empty signature", h + "." + p + ".", nil, token.ErrMalformed},
		{"oversize", valid + strings.Repeat("A", token.MaxLength), nil, token.ErrMalformed},
		{"padding", padded, nil, token.ErrMalformed},
		{"std alphabet in signature", h + "." + p + "." + "+" + s[1:], nil, token.ErrMalformed},
		{"std alphabet in header", "/" + h[1:] + "." + p + "." + s, nil, token.ErrMalformed},
		{"newline in signature", h + "." + p + "." + s[:20] + "\n" + s[20:], nil, token.ErrMalformed},
		{"space in payload", h + "." + p[:5] + " " + p[5:] + "." + s, nil, token.ErrMalformed},
		{"non-canonical signature bits", nonCanonicalSig, nil, token.ErrMalformed},
		{"short signature", h + "." + p + "." + s[:40], nil, token.ErrMalformed},

		{"alg none unsigned", b64(fmt.Sprintf(`{"alg":"none","kid":%q}`, k.ID)) + "." + p + ".", nil, token.ErrMalformed},
		{"alg none signed", withHeader(fmt.Sprintf(`{"alg":"none","typ":"JWT","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg HS256 with public key as secret", hs256, nil, token.ErrMalformed},
		{"alg lower case", withHeader(fmt.Sprintf(`{"alg":"eddsa","typ":"JWT","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg upper case", withHeader(fmt.Sprintf(`{"alg":"EDDSA","typ":"JWT","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg Ed25519", withHeader(fmt.Sprintf(`{"alg":"Ed25519","typ":"JWT","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg RS256", withHeader(fmt.Sprintf(`{"alg":"RS256","typ":"JWT","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg missing", withHeader(fmt.Sprintf(`{"typ":"JWT","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg not a string", withHeader(fmt.Sprintf(`{"alg":["EdDSA"],"kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg key upper case", withHeader(fmt.Sprintf(`{"ALG":"EdDSA","typ":"JWT","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg duplicated", withHeader(fmt.Sprintf(`{"alg":"none","alg":"EdDSA","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"alg duplicated by case", withHeader(fmt.Sprintf(`{"alg":"none","Alg":"EdDSA","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"crit header", withHeader(fmt.Sprintf(`{"alg":"EdDSA","typ":"JWT","kid":%q,"crit":["exp"]}`, k.ID)), nil, token.ErrMalformed},
		{"jku header", withHeader(fmt.Sprintf(`{"alg":"EdDSA","kid":%q,"jku":"https://evil.example/jwks"}`, k.ID)), nil, token.ErrMalformed},
		{"jwk header", withHeader(fmt.Sprintf(`{"alg":"EdDSA","kid":%q,"jwk":{"kty":"OKP"}}`, k.ID)), nil, token.ErrMalformed},
		{"typ lower case", withHeader(fmt.Sprintf(`{"alg":"EdDSA","typ":"jwt","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"typ empty", withHeader(fmt.Sprintf(`{"alg":"EdDSA","typ":"","kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"typ null", withHeader(fmt.Sprintf(`{"alg":"EdDSA","typ":null,"kid":%q}`, k.ID)), nil, token.ErrMalformed},
		{"kid missing", withHeader(`{"alg":"EdDSA","typ":"JWT"}`), nil, token.ErrMalformed},
		{"kid empty", withHeader(`{"alg":"EdDSA","typ":"JWT","kid":""}`), nil, token.ErrMalformed},
		{"kid with newline", withHeader(`{"alg":"EdDSA","typ":"JWT","kid":"a\nb"}`), nil, token.ErrMalformed},
		{"kid too long", withHeader(fmt.Sprintf(`{"alg":"EdDSA","kid":%q}`, strings.Repeat("a", 65))), nil, token.ErrMalformed},
		{"header not an object", withHeader(`["EdDSA"]`), nil, token.ErrMalformed},
		{"header trailing data", withHeader(goodHeader(k) + `{}`), nil, token.ErrMalformed},
		{"header not json", withHeader(`alg=EdDSA`), nil, token.ErrMalformed},

		{"unknown kid", sign(t, other, validClaims()), nil, token.ErrUnknownKey},
		{"lookup returns short key", valid, func(string) (ed25519.PublicKey, bool) { return k.Public[:16], true }, token.ErrUnknownKey},
		{"tampered payload", tamperedPayload, nil, token.ErrBadSignature},
		{"tampered signature", tamperedSig, nil, token.ErrBadSignature},
		{"signed by another key under this kid", forge(other, goodHeader(k), claimsJSON(nil)), nil, token.ErrBadSignature},

		{"missing iss", withClaims(del("iss")), nil, token.ErrMalformed},
		{"missing sub", withClaims(del("sub")), nil, token.ErrMalformed},
		{"empty sub", withClaims(set("sub", "")), nil, token.ErrMalformed},
		{"missing jti", withClaims(del("jti")), nil, token.ErrMalformed},
		{"missing exp", withClaims(del("exp")), nil, token.ErrMalformed},
		{"missing iat", withClaims(del("iat")), nil, token.ErrMalformed},
		{"account_type missing", withClaims(del("account_type")), nil, token.ErrMalformed},
		{"account_type admin", withClaims(set("account_type", "admin")), nil, token.ErrMalformed},
		{"account_type case variant", withClaims(set("account_type", "Human")), nil, token.ErrMalformed},
		{"unknown claim nbf", withClaims(set("nbf", now.Unix())), nil, token.ErrMalformed},
		{"unknown claim admin", withClaims(set("admin", true)), nil, token.ErrMalformed},
		{"claim key case variant", withClaims(func(m map[string]any) { m["SUB"] = m["sub"]; delete(m, "sub") }), nil, token.ErrMalformed},
		{"roles null", withClaims(set("roles", nil)), nil, token.ErrMalformed},
		{"roles not a list", withClaims(set("roles", "admin")), nil, token.ErrMalformed},
		{"empty role", withClaims(set("roles", []string{"admin", ""})), nil, token.ErrMalformed},
		{"exp string", withClaims(set("exp", "1772370000")), nil, token.ErrMalformed},
		{"exp fraction", withClaims(set("exp", json.RawMessage(`1772370000.5`))), nil, token.ErrMalformed},
		{"exp exponent", withClaims(set("exp", json.RawMessage(`1.8e9`))), nil, token.ErrMalformed},
		{"exp past year 9999", withClaims(set("exp", int64(253402300800))), nil, token.ErrMalformed},
		{"exp overflows int64", withClaims(set("exp", json.RawMessage(`99999999999999999999`))), nil, token.ErrMalformed},
		{"iat negative", withClaims(set("iat", -1)), nil, token.ErrMalformed},
		{"exp before iat", withClaims(set("iat", now.Add(2*time.Hour).Unix())), nil, token.ErrMalformed},
		{"claims not an object", forge(k, goodHeader(k), `[]`), nil, token.ErrMalformed},

		{"wrong issuer", withIssuer("https://evil.example"), nil, token.ErrWrongIssuer},
		{"issuer prefix", withIssuer(issuer + "/x"), nil, token.ErrWrongIssuer},
		{"expired now", expiresIn(0), nil, token.ErrExpired},
		{"expired an hour ago", expiresIn(-time.Hour), nil, token.ErrExpired},
		{"iat 61s in the future", future(61 * time.Second), nil, token.ErrNotYetValid},
		{"iat a day in the future", future(24 * time.Hour), nil, token.ErrNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := tt.keys
			if keys == nil {
				keys = lookup(k)
			}
			c, err := token.Parse(tt.tok, keys, issuer, now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse rejected a valid token: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
			if n := sentinelsIn(err); n != 1 {
				t.Errorf("error %v wraps %d sentinels, want 1", err, n)
			}
			if !reflect.DeepEqual(c, token.Claims{}) {
				t.Errorf("rejected token returned claims %+v", c)
			}
		})
	}
}

func TestParseMisuse(t *testing.T) {
	k := newKey(t)
	tok := sign(t, k, validClaims())
	if _, err := token.Parse(tok, lookup(k), "", now); !errors.Is(err, token.ErrWrongIssuer) {
		t.Errorf("Parse with empty issuer: %v, want ErrWrongIssuer", err)
	}
	if _, err := token.Parse(tok, nil, issuer, now); !errors.Is(err, token.ErrUnknownKey) {
		t.Errorf("Parse with nil lookup: %v, want ErrUnknownKey", err)
	}
}

func TestSignRefuses(t *testing.T) {
	k := newKey(t)
	verifyOnly := k
	verifyOnly.Private = nil
	mismatched := k
	mismatched.Public = newKey(t).Public
	badID := k
	badID.ID = "bad kid"
	mod := func(f func(c *token.Claims)) token.Claims { c := validClaims(); f(&c); return c }

	tests := []struct {
		name string
		key  token.Key
		c    token.Claims
	}{
		{"verify-only key", verifyOnly, validClaims()},
		{"public key mismatch", mismatched, validClaims()},
		{"invalid key id", badID, validClaims()},
		{"missing iss", k, mod(func(c *token.Claims) { c.Issuer = "" })},
		{"missing sub", k, mod(func(c *token.Claims) { c.Subject = "" })},
		{"missing jti", k, mod(func(c *token.Claims) { c.ID = "" })},
		{"missing exp", k, mod(func(c *token.Claims) { c.ExpiresAt = time.Time{} })},
		{"missing iat", k, mod(func(c *token.Claims) { c.IssuedAt = time.Time{} })},
		{"exp before iat", k, mod(func(c *token.Claims) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) })},
		{"exp within the same second as iat", k, mod(func(c *token.Claims) { c.ExpiresAt = c.IssuedAt.Add(500 * time.Millisecond) })},
		{"exp past year 9999", k, mod(func(c *token.Claims) { c.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"bad account type", k, mod(func(c *token.Claims) { c.AccountType = "root" })},
		{"empty role", k, mod(func(c *token.Claims) { c.Roles = []string{""} })},
		{"oversize", k, mod(func(c *token.Claims) { c.Roles = []string{strings.Repeat("r", token.MaxLength)} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := token.Sign(tt.key, tt.c); err == nil {
				t.Fatalf("Sign accepted, returned %q", tok)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	old := newKey(t)
	current := newKey(t)
	oldTok := sign(t, old, validClaims())
	newTok := sign(t, current, validClaims())

	retiring := old
	retiring.Private = nil // kept only to verify
	tests := []struct {
		name string
		keys token.KeyLookup
		tok  string
		want error
	}{
		{"old token, both keys", lookup(current, retiring), oldTok, nil},
		{"new token, both keys", lookup(current, retiring), newTok, nil},
		{"old token, old key retired", lookup(current), oldTok, token.ErrUnknownKey},
		{"new token, only old key", lookup(retiring), newTok, token.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := token.Parse(tt.tok, tt.keys, issuer, now); !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewKeyAndID(t *testing.T) {
	kidRE := regexp.MustCompile(`^[0-9a-f]{16}$`)
	jtiRE := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seenKid, seenJti := map[string]bool{}, map[string]bool{}
	for range 100 {
		k := newKey(t)
		if !kidRE.MatchString(k.ID) || seenKid[k.ID] {
			t.Fatalf("bad or repeated kid %q", k.ID)
		}
		seenKid[k.ID] = true
		if len(k.Public) != ed25519.PublicKeySize || len(k.Private) != ed25519.PrivateKeySize || !k.CreatedAt.Equal(now) {
			t.Fatalf("bad key %+v", k)
		}
		id, err := token.NewID()
		if err != nil {
			t.Fatal(err)
		}
		if !jtiRE.MatchString(id) || seenJti[id] {
			t.Fatalf("bad or repeated jti %q", id)
		}
		seenJti[id] = true
	}
}

func TestJWKS(t *testing.T) {
	a, b := newKey(t), newKey(t)
	b.Private = nil // verify-only keys are published too
	broken := newKey(t)
	broken.Public = broken.Public[:31]

	tests := []struct {
		name string
		keys []token.Key
		want []token.Key
	}{
		{"none", nil, nil},
		{"current and retiring", []token.Key{a, b}, []token.Key{a, b}},
		{"malformed key left out", []token.Key{broken, a}, []token.Key{a}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(token.JWKSFor(tt.keys))
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string][]map[string]string
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			got, ok := doc["keys"]
			if len(doc) != 1 || !ok || got == nil {
				t.Fatalf("document %s: want exactly a \"keys\" array", raw)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d keys published, want %d: %s", len(got), len(tt.want), raw)
			}
			for i, jwk := range got {
				want := map[string]string{
					"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
					"kid": tt.want[i].ID, "x": base64.RawURLEncoding.EncodeToString(tt.want[i].Public),
				}
				if !reflect.DeepEqual(jwk, want) {
					t.Errorf("key %d = %v, want %v", i, jwk, want)
				}
				x, err := base64.RawURLEncoding.Strict().DecodeString(jwk["x"])
				if err != nil || len(x) != ed25519.PublicKeySize || !ed25519.PublicKey(x).Equal(tt.want[i].Public) {
					t.Errorf("key %d: x %q is not the base64url of the 32-byte key", i, jwk["x"])
				}
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	k := newKey(b)
	c := validClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := token.Sign(k, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	k := newKey(b)
	tok := sign(b, k, validClaims())
	keys := lookup(k)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := token.Parse(tok, keys, issuer, now); err != nil {
			b.Fatal(err)
		}
	}
}
