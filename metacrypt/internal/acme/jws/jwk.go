package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// The RSA modulus sizes accepted for account keys.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// JWK is an account's public key.
type JWK struct {
	Key crypto.PublicKey
}

// jwkFields are the members of the public JWKs ACME uses. Private members
// (d, p, q...) are refused: a client that sends its private key has a bug
// we should not hide.
type jwkFields struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	// Optional members clients add; accepted and ignored.
	Alg    string   `json:"alg,omitempty"`
	Use    string   `json:"use,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	Kid    string   `json:"kid,omitempty"`
}

// ParseJWK reads a public JWK: EC P-256 or P-384, RSA of 2048 to 8192
// bits with a small odd exponent, or OKP Ed25519.
func ParseJWK(raw []byte) (*JWK, error) {
	var f jwkFields
	if err := decodeStrict(raw, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	switch f.Kty {
	case "EC":
		var curve elliptic.Curve
		var size int
		switch f.Crv {
		case "P-256":
			curve, size = elliptic.P256(), 32
		case "P-384":
			curve, size = elliptic.P384(), 48
		default:
			return nil, fmt.Errorf("%w: EC curve %q (P-256 or P-384)", ErrKey, f.Crv)
		}
		x, err1 := b64(f.X)
		y, err2 := b64(f.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("%w: EC coordinates must be %d bytes of base64url", ErrKey, size)
		}
		// The point must be on the curve: ParseUncompressedPublicKey
		// refuses anything else, including the point at infinity.
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("%w: EC point is not on %s", ErrKey, f.Crv)
		}
		return &JWK{Key: pub}, nil
	case "RSA":
		n, err1 := b64(f.N)
		e, err2 := b64(f.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 || n[0] == 0 || e[0] == 0 {
			return nil, fmt.Errorf("%w: RSA n and e must be minimal base64url integers", ErrKey)
		}
		mod := new(big.Int).SetBytes(n)
		exp := int(new(big.Int).SetBytes(e).Int64())
		if bits := mod.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits (%d to %d)", ErrKey, bits, MinRSABits, MaxRSABits)
		}
		if exp < 3 || exp%2 == 0 || mod.Bit(0) == 0 {
			return nil, fmt.Errorf("%w: RSA exponent or modulus is even or too small", ErrKey)
		}
		return &JWK{Key: &rsa.PublicKey{N: mod, E: exp}}, nil
	case "OKP":
		if f.Crv != "Ed25519" {
			return nil, fmt.Errorf("%w: OKP curve %q (Ed25519)", ErrKey, f.Crv)
		}
		x, err := b64(f.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: Ed25519 x must be %d bytes of base64url", ErrKey, ed25519.PublicKeySize)
		}
		return &JWK{Key: ed25519.PublicKey(x)}, nil
	}
	return nil, fmt.Errorf("%w: key type %q (EC, RSA or OKP)", ErrKey, f.Kty)
}

// NewJWK wraps a public key, refusing the kinds ParseJWK refuses.
func NewJWK(pub crypto.PublicKey) (*JWK, error) {
	k := &JWK{Key: pub}
	raw, err := k.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return ParseJWK(raw)
}

// members are the key's required members (RFC 7638 §3.2), as strings.
func (k *JWK) members() (map[string]string, error) {
	enc := base64.RawURLEncoding.EncodeToString
	switch p := k.Key.(type) {
	case *ecdsa.PublicKey:
		b, err := p.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKey, err)
		}
		size := (len(b) - 1) / 2
		return map[string]string{"kty": "EC", "crv": p.Curve.Params().Name, "x": enc(b[1 : 1+size]), "y": enc(b[1+size:])}, nil
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "n": enc(p.N.Bytes()), "e": enc(big.NewInt(int64(p.E)).Bytes())}, nil
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(p)}, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrKey, k.Key)
}

// MarshalJSON writes the canonical public JWK: its required members in
// lexicographic order, nothing else (RFC 7638 §3).
func (k *JWK) MarshalJSON() ([]byte, error) {
	m, err := k.members()
	if err != nil {
		return nil, err
	}
	// encoding/json sorts map keys, which is RFC 7638's order.
	return json.Marshal(m)
}

// UnmarshalJSON reads a JWK as ParseJWK does.
func (k *JWK) UnmarshalJSON(b []byte) error {
	p, err := ParseJWK(b)
	if err != nil {
		return err
	}
	*k = *p
	return nil
}

// Thumbprint is the key's RFC 7638 SHA-256 thumbprint, base64url.
func (k *JWK) Thumbprint() string {
	b, err := k.MarshalJSON()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Equal reports whether two JWKs are the same key.
func (k *JWK) Equal(o *JWK) bool {
	if k == nil || o == nil {
		return false
	}
	t := k.Thumbprint()
	return t != "" && t == o.Thumbprint()
}

// KeyAuthorization is a challenge's key authorization: token "."
// thumbprint of the account key (RFC 8555 §8.1).
func (k *JWK) KeyAuthorization(token string) string { return token + "." + k.Thumbprint() }
