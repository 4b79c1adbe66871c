package jws_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws/jwstest"
)

func keys(t testing.TB) map[string]crypto.Signer {
	t.Helper()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]crypto.Signer{"ES256": p256, "ES384": p384, "RS256": rsaKey, "EdDSA": edKey}
}

const url = "https://ca.example/acme/new-order"

func TestSignVerifyEveryAlgorithm(t *testing.T) {
	for alg, key := range keys(t) {
		t.Run(alg, func(t *testing.T) {
			body := jwstest.Sign(key, jwstest.Header{Nonce: "n1", URL: url, JWK: jwstest.PublicJWK(key.Public())}, []byte(`{"a":1}`))
			j, err := jws.Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			if err := j.CheckRequest(jws.Rules{}); err != nil {
				t.Fatal(err)
			}
			if j.Header.Alg != alg || j.Header.Nonce != "n1" || j.Header.URL != url || string(j.Payload) != `{"a":1}` {
				t.Fatalf("header %+v payload %q", j.Header, j.Payload)
			}
			if err := j.Verify(j.Header.JWK); err != nil {
				t.Fatalf("verify: %v", err)
			}
			want, _ := jws.NewJWK(key.Public())
			if !j.Header.JWK.Equal(want) || j.Header.JWK.Thumbprint() == "" {
				t.Fatal("embedded key is not the signer's")
			}
			// Another key of the same kind does not verify it.
			other := keys(t)[alg]
			ok, _ := jws.NewJWK(other.Public())
			if err := j.Verify(ok); !errors.Is(err, jws.ErrSignature) {
				t.Fatalf("verify with another key: %v", err)
			}
		})
	}
}

func TestThumbprintRFC7638(t *testing.T) {
	// RFC 7638 §3.1's example key and thumbprint.
	raw := `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	k, err := jws.ParseJWK([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Thumbprint(); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint %s", got)
	}
}

func TestCheckRequestRules(t *testing.T) {
	key := keys(t)["ES256"]
	jwk := jwstest.PublicJWK(key.Public())
	cases := []struct {
		name string
		h    jwstest.Header
		r    jws.Rules
		want error
	}{
		{"jwk", jwstest.Header{Nonce: "n", URL: url, JWK: jwk}, jws.Rules{}, nil},
		{"kid", jwstest.Header{Nonce: "n", URL: url, KID: "https://ca.example/acme/account/1"}, jws.Rules{}, nil},
		{"both jwk and kid", jwstest.Header{Nonce: "n", URL: url, JWK: jwk, KID: "k"}, jws.Rules{}, jws.ErrMalformed},
		{"neither", jwstest.Header{Nonce: "n", URL: url}, jws.Rules{}, jws.ErrMalformed},
		{"no nonce", jwstest.Header{URL: url, JWK: jwk}, jws.Rules{}, jws.ErrMalformed},
		{"no url", jwstest.Header{Nonce: "n", JWK: jwk}, jws.Rules{}, jws.ErrMalformed},
		{"nonce where none may be", jwstest.Header{Nonce: "n", URL: url, JWK: jwk}, jws.Rules{NoNonce: true}, jws.ErrMalformed},
		{"no nonce where none may be", jwstest.Header{URL: url, JWK: jwk}, jws.Rules{NoNonce: true}, nil},
		{"none", jwstest.Header{Alg: "none", Nonce: "n", URL: url, JWK: jwk}, jws.Rules{}, jws.ErrAlgorithm},
		{"MAC", jwstest.Header{Alg: "HS256", Nonce: "n", URL: url, JWK: jwk}, jws.Rules{}, jws.ErrAlgorithm},
		{"RS512", jwstest.Header{Alg: "RS512", Nonce: "n", URL: url, JWK: jwk}, jws.Rules{}, jws.ErrAlgorithm},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err := jws.Parse(jwstest.Sign(key, c.h, nil))
			if err != nil {
				t.Fatal(err)
			}
			err = j.CheckRequest(c.r)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestAlgorithmMustFitKey(t *testing.T) {
	ks := keys(t)
	// An ES256 header over an RSA key, an RS256 header over an EC key.
	for _, c := range []struct{ alg, key string }{{"ES256", "RS256"}, {"RS256", "ES256"}, {"ES384", "ES256"}, {"EdDSA", "ES256"}, {"ES256", "EdDSA"}} {
		key := ks[c.key]
		body := jwstest.Sign(key, jwstest.Header{Alg: c.alg, Nonce: "n", URL: url, JWK: jwstest.PublicJWK(key.Public())}, nil)
		j, err := jws.Parse(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Verify(j.Header.JWK); err == nil {
			t.Fatalf("%s over a %s key verified", c.alg, c.key)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	key := keys(t)["ES256"]
	good := jwstest.Sign(key, jwstest.Header{Nonce: "n", URL: url, JWK: jwstest.PublicJWK(key.Public())}, nil)
	var f map[string]string
	if err := json.Unmarshal(good, &f); err != nil {
		t.Fatal(err)
	}
	mut := func(k, v string) string {
		g := map[string]string{}
		for a, b := range f {
			g[a] = b
		}
		if v == "" {
			delete(g, k)
		} else {
			g[k] = v
		}
		b, _ := json.Marshal(g)
		return string(b)
	}
	for name, body := range map[string]string{
		"compact":          strings.Join([]string{f["protected"], f["payload"], f["signature"]}, "."),
		"general":          `{"payload":"","signatures":[{"protected":"` + f["protected"] + `","signature":"` + f["signature"] + `"}]}`,
		"unprotected":      strings.TrimSuffix(string(good), "}") + `,"header":{"kid":"x"}}`,
		"no signature":     mut("signature", ""),
		"padded":           mut("signature", f["signature"]+"=="),
		"std base64":       mut("protected", strings.ReplaceAll(f["protected"], "-", "+")+"+/"),
		"trailing":         string(good) + `{}`,
		"crit":             mut("protected", b64(`{"alg":"ES256","nonce":"n","url":"u","kid":"k","crit":["b64"],"b64":false}`)),
		"jku":              mut("protected", b64(`{"alg":"ES256","nonce":"n","url":"u","jku":"https://x"}`)),
		"empty protected":  mut("protected", b64(``)),
		"no alg":           mut("protected", b64(`{"nonce":"n","url":"u","kid":"k"}`)),
		"private jwk":      mut("protected", b64(`{"alg":"ES256","nonce":"n","url":"u","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}}`)),
		"off-curve jwk":    mut("protected", b64(`{"alg":"ES256","nonce":"n","url":"u","jwk":{"kty":"EC","crv":"P-256","x":"`+strings.Repeat("A", 43)+`","y":"`+strings.Repeat("A", 43)+`"}}`)),
		"small RSA":        mut("protected", b64(`{"alg":"RS256","nonce":"n","url":"u","jwk":{"kty":"RSA","n":"`+strings.Repeat("_", 170)+`","e":"AQAB"}}`)),
		"array":            `[]`,
		"oversized":        `{"protected":"` + strings.Repeat("A", jws.MaxBody) + `"}`,
		"duplicate fields": `{"protected":"` + f["protected"] + `","payload":"","signature":"` + f["signature"] + `","payload":"eA"}`,
	} {
		t.Run(name, func(t *testing.T) {
			j, err := jws.Parse([]byte(body))
			if name == "duplicate fields" {
				// encoding/json keeps the last member: the payload
				// changed, so the signature no longer verifies.
				if err == nil && j.Verify(j.Header.JWK) == nil {
					t.Fatal("a JWS with a replaced payload verified")
				}
				return
			}
			if err == nil {
				t.Fatalf("parsed: %+v", j.Header)
			}
		})
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestEAB(t *testing.T) {
	key := keys(t)["ES256"]
	macKey := []byte("0123456789abcdef0123456789abcdef")
	account, _ := jws.NewJWK(key.Public())
	const newAccount = "https://ca.example/acme/new-account"
	good := jwstest.EAB("kid-1", macKey, newAccount, key.Public())
	inner, err := jws.ParseEAB(good, newAccount, account)
	if err != nil {
		t.Fatal(err)
	}
	if inner.Header.KID != "kid-1" {
		t.Fatalf("kid %q", inner.Header.KID)
	}
	if err := inner.VerifyMAC(macKey); err != nil {
		t.Fatal(err)
	}
	if err := inner.VerifyMAC([]byte("another key of the right length!")); !errors.Is(err, jws.ErrSignature) {
		t.Fatalf("wrong MAC key: %v", err)
	}
	other := keys(t)["ES256"]
	if _, err := jws.ParseEAB(jwstest.EAB("kid-1", macKey, newAccount, other.Public()), newAccount, account); err == nil {
		t.Fatal("an EAB over another key was accepted")
	}
	if _, err := jws.ParseEAB(jwstest.EAB("kid-1", macKey, "https://ca.example/acme/other", key.Public()), newAccount, account); err == nil {
		t.Fatal("an EAB for another url was accepted")
	}
	jwkJSON, _ := json.Marshal(jwstest.PublicJWK(key.Public()))
	withNonce := jwstest.MAC(macKey, jwstest.Header{KID: "kid-1", URL: newAccount, Nonce: "n"}, jwkJSON)
	if _, err := jws.ParseEAB(withNonce, newAccount, account); err == nil {
		t.Fatal("an EAB with a nonce was accepted")
	}
	signed := jwstest.Sign(key, jwstest.Header{KID: "kid-1", URL: newAccount}, jwkJSON)
	if _, err := jws.ParseEAB(signed, newAccount, account); !errors.Is(err, jws.ErrAlgorithm) {
		t.Fatalf("an EAB signed with ES256: %v", err)
	}
}
