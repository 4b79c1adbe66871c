// Package jwstest signs ACME JWS requests with chosen headers, for tests
// that need requests a well-behaved client would never send (a replayed
// nonce, a wrong url, both jwk and kid).
package jwstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// Header is a protected header; empty fields are left out. JWK, when
// set, embeds the public key of Key.
type Header struct {
	Alg   string `json:"alg"`
	Nonce string `json:"nonce,omitempty"`
	URL   string `json:"url,omitempty"`
	KID   string `json:"kid,omitempty"`
	JWK   any    `json:"jwk,omitempty"`
}

var enc = base64.RawURLEncoding.EncodeToString

// Alg is the JWS algorithm of a key (ES256, ES384, RS256, EdDSA).
func Alg(key crypto.Signer) string {
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize == 384 {
			return "ES384"
		}
		return "ES256"
	case *rsa.PublicKey:
		return "RS256"
	case ed25519.PublicKey:
		return "EdDSA"
	}
	return ""
}

// PublicJWK is the public JWK of a key as a JSON value.
func PublicJWK(pub crypto.PublicKey) map[string]string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		size := (len(b) - 1) / 2
		return map[string]string{"kty": "EC", "crv": k.Curve.Params().Name, "x": enc(b[1 : 1+size]), "y": enc(b[1+size:])}
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(k)}
	}
	return nil
}

// Sign makes a flattened JWS of payload (nil: POST-as-GET) under h,
// signed by key. h.Alg defaults to the key's.
func Sign(key crypto.Signer, h Header, payload []byte) []byte {
	if h.Alg == "" {
		h.Alg = Alg(key)
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		panic(err)
	}
	input := enc(hdr) + "." + enc(payload)
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		var digest []byte
		if k.Curve.Params().BitSize == 384 {
			d := sha512.Sum384([]byte(input))
			digest = d[:]
		} else {
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			panic(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...)
	case *rsa.PrivateKey:
		d := sha256.Sum256([]byte(input))
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
		if err != nil {
			panic(err)
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(input))
	default:
		panic(fmt.Sprintf("jwstest: key type %T", key))
	}
	return flat(enc(hdr), enc(payload), enc(sig))
}

// MAC makes an HS256 JWS of payload under h (External Account Binding).
func MAC(macKey []byte, h Header, payload []byte) []byte {
	h.Alg = "HS256"
	hdr, err := json.Marshal(h)
	if err != nil {
		panic(err)
	}
	input := enc(hdr) + "." + enc(payload)
	m := hmac.New(sha256.New, macKey)
	m.Write([]byte(input))
	return flat(enc(hdr), enc(payload), enc(m.Sum(nil)))
}

func flat(protected, payload, sig string) []byte {
	b, err := json.Marshal(map[string]string{"protected": protected, "payload": payload, "signature": sig})
	if err != nil {
		panic(err)
	}
	return b
}

// EAB is the externalAccountBinding member of a newAccount payload
// binding key's public key to kid, for url.
func EAB(kid string, macKey []byte, url string, pub crypto.PublicKey) json.RawMessage {
	jwk, err := json.Marshal(PublicJWK(pub))
	if err != nil {
		panic(err)
	}
	return MAC(macKey, Header{KID: kid, URL: url}, jwk)
}
