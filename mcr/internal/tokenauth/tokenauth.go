// Package tokenauth issues and verifies MCR's registry tokens: short-lived
// EdDSA JWTs, signed with a key MCR keeps, that carry the caller's
// identity and the access (Docker token "access" claims) granted for the
// scopes asked for. It also writes the Bearer challenge that starts the
// Docker token flow.
package tokenauth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/mcr/internal/access"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 60 * time.Second

// Claims are a registry token's claims.
type Claims struct {
	jwt.RegisteredClaims
	Username    string       `json:"username"`
	AccountType string       `json:"account_type"`
	Roles       []string     `json:"roles,omitempty"`
	Access      []oci.Access `json:"access"`
}

// Principal is the caller the token names.
func (c *Claims) Principal() access.Principal {
	return access.Principal{Username: c.Username, AccountType: c.AccountType, Roles: c.Roles}
}

// Allows reports whether the token grants action on repository repo.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type == typ && a.Name == name && a.Allows(action) {
			return true
		}
	}
	return false
}

// LoadKey reads the Ed25519 signing key at path, creating it (mode 0600,
// written atomically) when the file does not exist.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the key file
	if errors.Is(err, os.ErrNotExist) {
		_, key, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		der, merr := x509.MarshalPKCS8PrivateKey(key)
		if merr != nil {
			return nil, merr
		}
		if werr := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); werr != nil {
			return nil, fmt.Errorf("token key %s: %w", path, werr)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("token key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("token key %s: not an Ed25519 key", path)
	}
	return key, nil
}

// Issuer signs and verifies registry tokens for one service name.
type Issuer struct {
	key     ed25519.PrivateKey
	issuer  string
	service string
	ttl     time.Duration
	now     func() time.Time
}

// NewIssuer returns an issuer: tokens name issuer as iss and service as
// aud, and live for ttl.
func NewIssuer(key ed25519.PrivateKey, issuer, service string, ttl time.Duration) *Issuer {
	return &Issuer{key: key, issuer: issuer, service: service, ttl: ttl, now: time.Now}
}

// SetClock replaces the clock (tests).
func (i *Issuer) SetClock(now func() time.Time) { i.now = now }

// Service is the audience tokens are for.
func (i *Issuer) Service() string { return i.service }

// TTL is a token's lifetime.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Issue signs a token for subject p with the granted access.
func (i *Issuer) Issue(subject string, p access.Principal, granted []oci.Access) (string, time.Time, error) {
	now := i.now().UTC().Truncate(time.Second)
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", time.Time{}, err
	}
	if granted == nil {
		granted = []oci.Access{}
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: i.issuer, Subject: subject, Audience: jwt.ClaimStrings{i.service},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(i.ttl)), ID: fmt.Sprintf("%x", id),
		},
		Username: p.Username, AccountType: p.AccountType, Roles: p.Roles, Access: granted,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(i.key)
	return tok, now, err
}

// ErrInvalidToken is the answer for a token that is malformed, forged, expired or for
// another service.
var ErrInvalidToken = errors.New("invalid registry token")

// Verify checks a token's signature (EdDSA only), issuer, audience and
// times, and returns its claims.
func (i *Issuer) Verify(raw string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return i.key.Public(), nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(i.issuer), jwt.WithAudience(i.service), jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(i.now))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return &c, nil
}

// LooksLikeJWT reports whether s has the shape of a JWT (three base64url
// parts), to tell an MCIAS token given as a password from a password.
func LooksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || !strings.HasPrefix(s, "eyJ") {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for _, r := range p {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_' {
				return false
			}
		}
	}
	return true
}

// Challenge is the WWW-Authenticate value sending a client to realm for a
// token with scopes; errCode ("insufficient_scope", "invalid_token")
// explains a refused token.
func Challenge(realm, service string, scopes []oci.Access, errCode string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bearer realm=%q,service=%q", realm, service)
	if len(scopes) > 0 {
		parts := make([]string, len(scopes))
		for i, s := range scopes {
			parts[i] = s.String()
		}
		fmt.Fprintf(&b, ",scope=%q", strings.Join(parts, " "))
	}
	if errCode != "" {
		fmt.Fprintf(&b, ",error=%q", errCode)
	}
	return b.String()
}
