package jws_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws/jwstest"
)

// FuzzParse feeds arbitrary bodies to the parser and, for what parses,
// the request rules and the verifier: nothing may panic, and a JWS that
// parses and verifies must re-verify after a round trip of its key.
func FuzzParse(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := jwstest.PublicJWK(key.Public())
	f.Add(jwstest.Sign(key, jwstest.Header{Nonce: "n", URL: "https://x/new-account", JWK: jwk}, []byte(`{"termsOfServiceAgreed":true}`)))
	f.Add(jwstest.Sign(key, jwstest.Header{Nonce: "n", URL: "https://x/order/1", KID: "https://x/account/1"}, nil))
	f.Add(jwstest.MAC([]byte("k"), jwstest.Header{KID: "eab", URL: "https://x/new-account"}, []byte(`{"kty":"EC"}`)))
	f.Add([]byte(`{"protected":"eyJhbGciOiJub25lIn0","payload":"","signature":""}`))
	f.Add([]byte(`{"protected":"e30","payload":"e30","signature":"AA","header":{}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		j, err := jws.Parse(body)
		if err != nil {
			return
		}
		_ = j.CheckRequest(jws.Rules{})
		_ = j.CheckRequest(jws.Rules{NoNonce: true})
		_ = j.VerifyMAC([]byte("key"))
		if j.Header.JWK == nil {
			return
		}
		if j.Verify(j.Header.JWK) == nil {
			again, err := jws.NewJWK(j.Header.JWK.Key)
			if err != nil || !again.Equal(j.Header.JWK) || j.Verify(again) != nil {
				t.Fatalf("key does not survive a round trip: %v", err)
			}
		}
		_, _ = jws.ParseEAB(j.Payload, j.Header.URL, j.Header.JWK)
	})
}
