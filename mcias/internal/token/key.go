package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// Key is one Ed25519 signing key. Private is nil for a key kept only to
// verify tokens issued before a rotation.
type Key struct {
	ID        string
	Public    ed25519.PublicKey
	Private   ed25519.PrivateKey
	CreatedAt time.Time
}

// NewKey generates a signing key with a random 16-hex-character key ID.
func NewKey(now time.Time) (Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	id, err := randomHex(8)
	if err != nil {
		return Key{}, fmt.Errorf("generate key id: %w", err)
	}
	return Key{ID: id, Public: pub, Private: priv, CreatedAt: now.UTC()}, nil
}

// NewID returns a fresh token ID (jti): 128 random bits as 32 hex characters.
func NewID() (string, error) {
	id, err := randomHex(16)
	if err != nil {
		return "", fmt.Errorf("generate token id: %w", err)
	}
	return id, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// JWK is one public key in a JWK Set, in the OKP form RFC 8037 defines for
// Ed25519.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKSet is the RFC 7517 document served at GET /.well-known/jwks.json.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// JWKSFor publishes the public halves of keys, in order. Keys with a
// malformed public key or ID are left out rather than published, since no
// token they sign could verify.
func JWKSFor(keys []Key) JWKSet {
	set := JWKSet{Keys: make([]JWK, 0, len(keys))}
	for _, k := range keys {
		if len(k.Public) != ed25519.PublicKeySize || !validKeyID(k.ID) {
			continue
		}
		set.Keys = append(set.Keys, JWK{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: k.ID,
			Use: "sig",
			Alg: algEdDSA,
		})
	}
	return set
}

// validKeyID bounds what a kid may be. Our own IDs are 16 hex characters;
// the wider set leaves room for other formats while keeping attacker-chosen
// kids short and free of characters that could corrupt logs.
func validKeyID(kid string) bool {
	if kid == "" || len(kid) > maxKeyIDLength {
		return false
	}
	for i := 0; i < len(kid); i++ {
		if c := kid[i]; !isBase64URL(c) && c != '.' {
			return false
		}
	}
	return true
}
