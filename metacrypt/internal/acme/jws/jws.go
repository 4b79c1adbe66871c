package jws

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// The signature algorithms accepted for account keys.
const (
	ES256 = "ES256"
	ES384 = "ES384"
	RS256 = "RS256"
	EdDSA = "EdDSA"
	// HS256 is the only MAC, and only for External Account Binding.
	HS256 = "HS256"
)

// Algorithms lists the account-key algorithms, for the badSignatureAlgorithm
// problem document.
var Algorithms = []string{ES256, ES384, RS256, EdDSA}

// MaxBody bounds a JWS as a request body; ACME requests are small (a CSR
// with 100 names is a few KiB).
const MaxBody = 64 << 10

// The errors Parse and Verify answer with; the ACME layer maps them to
// problem types.
var (
	// ErrMalformed: not a flattened JWS, or a header that breaks RFC 8555
	// §6.2's rules.
	ErrMalformed = errors.New("malformed JWS")
	// ErrAlgorithm: an algorithm that is not accepted, or that does not
	// fit the key.
	ErrAlgorithm = errors.New("unsupported JWS algorithm")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("JWS signature does not verify")
	// ErrKey: the JWK is not an acceptable public key.
	ErrKey = errors.New("unacceptable JWK")
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// Header is a JWS protected header as ACME uses it.
type Header struct {
	Alg   string
	Nonce string
	URL   string
	// KID is the account URL, when the request is signed by an account;
	// JWK the embedded key otherwise. Exactly one is set on a request
	// (CheckRequest).
	KID string
	JWK *JWK
}

// JWS is a parsed, not yet verified, flattened JWS.
type JWS struct {
	Header Header
	// Payload is the decoded payload; empty for POST-as-GET.
	Payload []byte
	// signingInput is protected "." payload as received.
	signingInput []byte
	signature    []byte
}

// flattened is RFC 7515 §7.2.2's flattened JSON serialization without
// the unprotected header, which ACME forbids.
type flattened struct {
	Protected *string `json:"protected"`
	Payload   *string `json:"payload"`
	Signature *string `json:"signature"`
}

// protected lists every header parameter Parse accepts; anything else
// (crit, b64, jku, x5u, x5c...) is refused.
type protected struct {
	Alg   string          `json:"alg"`
	Nonce *string         `json:"nonce"`
	URL   *string         `json:"url"`
	KID   *string         `json:"kid"`
	JWK   json.RawMessage `json:"jwk"`
}

// decodeStrict reads exactly one JSON object of v's shape, refusing
// unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		return errors.New("trailing data")
	}
	return nil
}

// b64 decodes unpadded base64url, the only encoding JWS allows.
func b64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "=+/") {
		return nil, errors.New("not unpadded base64url")
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// Parse reads a flattened JWS. It checks the form, not the signature and
// not the ACME rules on which header fields a request needs
// (CheckRequest).
func Parse(body []byte) (*JWS, error) {
	if len(body) > MaxBody {
		return nil, malformed("larger than %d bytes", MaxBody)
	}
	var f flattened
	if err := decodeStrict(body, &f); err != nil {
		return nil, malformed("not a flattened JWS: %v", err)
	}
	if f.Protected == nil || f.Payload == nil || f.Signature == nil {
		return nil, malformed("protected, payload and signature are all required")
	}
	hdrJSON, err := b64(*f.Protected)
	if err != nil || len(hdrJSON) == 0 {
		return nil, malformed("protected header is not base64url")
	}
	payload, err := b64(*f.Payload)
	if err != nil {
		return nil, malformed("payload is not base64url")
	}
	sig, err := b64(*f.Signature)
	if err != nil || len(sig) == 0 {
		return nil, malformed("signature is not base64url")
	}
	var p protected
	if err := decodeStrict(hdrJSON, &p); err != nil {
		return nil, malformed("protected header: %v", err)
	}
	if p.Alg == "" {
		return nil, malformed("protected header has no alg")
	}
	h := Header{Alg: p.Alg}
	if p.Nonce != nil {
		if *p.Nonce == "" {
			return nil, malformed("empty nonce")
		}
		h.Nonce = *p.Nonce
	}
	if p.URL != nil {
		h.URL = *p.URL
	}
	if p.KID != nil {
		if *p.KID == "" {
			return nil, malformed("empty kid")
		}
		h.KID = *p.KID
	}
	if len(p.JWK) > 0 && !bytes.Equal(p.JWK, []byte("null")) {
		k, err := ParseJWK(p.JWK)
		if err != nil {
			return nil, err
		}
		h.JWK = k
	}
	return &JWS{
		Header:       h,
		Payload:      payload,
		signingInput: []byte(*f.Protected + "." + *f.Payload),
		signature:    sig,
	}, nil
}

// Rules for a request's protected header.
type Rules struct {
	// NoNonce: the header must not carry a nonce (the inner JWS of a key
	// change); otherwise one is required.
	NoNonce bool
}

// CheckRequest applies RFC 8555 §6.2 to a parsed request: an accepted
// signature algorithm (never a MAC or "none"), a url, a nonce unless
// r.NoNonce (then none), and exactly one of jwk and kid.
func (j *JWS) CheckRequest(r Rules) error {
	h := j.Header
	if !isAccountAlg(h.Alg) {
		return fmt.Errorf("%w: %q (accepted: %s)", ErrAlgorithm, h.Alg, strings.Join(Algorithms, ", "))
	}
	if h.URL == "" {
		return malformed("protected header has no url")
	}
	if r.NoNonce && h.Nonce != "" {
		return malformed("this JWS must not carry a nonce")
	}
	if !r.NoNonce && h.Nonce == "" {
		return malformed("protected header has no nonce")
	}
	switch {
	case h.JWK != nil && h.KID != "":
		return malformed("protected header has both jwk and kid")
	case h.JWK == nil && h.KID == "":
		return malformed("protected header has neither jwk nor kid")
	}
	return nil
}

func isAccountAlg(a string) bool {
	for _, x := range Algorithms {
		if a == x {
			return true
		}
	}
	return false
}

// PostAsGet reports whether the payload is empty (RFC 8555 §6.3).
func (j *JWS) PostAsGet() bool { return len(j.Payload) == 0 }

// Verify checks the signature with key; the header's alg must fit the
// key (ES256 with P-256, ES384 with P-384, RS256 with RSA, EdDSA with
// Ed25519).
func (j *JWS) Verify(key *JWK) error {
	if key == nil {
		return ErrKey
	}
	return verify(j.Header.Alg, key.Key, j.signingInput, j.signature)
}

func verify(alg string, pub crypto.PublicKey, input, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		var size int
		var digest []byte
		switch {
		case alg == ES256 && k.Curve.Params().Name == "P-256":
			size = 32
			d := sha256.Sum256(input)
			digest = d[:]
		case alg == ES384 && k.Curve.Params().Name == "P-384":
			size = 48
			d := sha512.Sum384(input)
			digest = d[:]
		default:
			return fmt.Errorf("%w: %s with a %s key", ErrAlgorithm, alg, k.Curve.Params().Name)
		}
		if len(sig) != 2*size {
			return ErrSignature
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest, r, s) {
			return ErrSignature
		}
		return nil
	case *rsa.PublicKey:
		if alg != RS256 {
			return fmt.Errorf("%w: %s with an RSA key", ErrAlgorithm, alg)
		}
		d := sha256.Sum256(input)
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) != nil {
			return ErrSignature
		}
		return nil
	case ed25519.PublicKey:
		if alg != EdDSA {
			return fmt.Errorf("%w: %s with an Ed25519 key", ErrAlgorithm, alg)
		}
		if !ed25519.Verify(k, input, sig) {
			return ErrSignature
		}
		return nil
	}
	return ErrKey
}

// VerifyMAC checks an HS256 MAC with key (External Account Binding).
func (j *JWS) VerifyMAC(key []byte) error {
	if j.Header.Alg != HS256 {
		return fmt.Errorf("%w: %q (External Account Binding uses HS256)", ErrAlgorithm, j.Header.Alg)
	}
	m := hmac.New(sha256.New, key)
	m.Write(j.signingInput)
	if subtle.ConstantTimeCompare(m.Sum(nil), j.signature) != 1 {
		return ErrSignature
	}
	return nil
}

// ParseEAB reads the inner JWS of an External Account Binding (RFC 8555
// §7.3.4) without verifying its MAC: alg HS256, a kid, the outer
// request's url, no nonce, no jwk, and as payload the outer JWS's account
// key. The caller looks the kid up and calls VerifyMAC.
func ParseEAB(raw json.RawMessage, url string, account *JWK) (*JWS, error) {
	inner, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	h := inner.Header
	switch {
	case h.Alg != HS256:
		return nil, fmt.Errorf("%w: externalAccountBinding alg %q (want HS256)", ErrAlgorithm, h.Alg)
	case h.KID == "":
		return nil, malformed("externalAccountBinding has no kid")
	case h.Nonce != "":
		return nil, malformed("externalAccountBinding must not carry a nonce")
	case h.JWK != nil:
		return nil, malformed("externalAccountBinding must not carry a jwk")
	case h.URL != url:
		return nil, malformed("externalAccountBinding url %q is not the request's %q", h.URL, url)
	}
	key, err := ParseJWK(inner.Payload)
	if err != nil {
		return nil, malformed("externalAccountBinding payload is not a JWK: %v", err)
	}
	if account == nil || key.Thumbprint() != account.Thumbprint() {
		return nil, malformed("externalAccountBinding payload is not the account key")
	}
	return inner, nil
}
