package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	// MaxLength is the longest token Parse will look at, and the longest
	// Sign will produce. Real tokens are a few hundred bytes; the cap bounds
	// the work an unauthenticated caller can ask for.
	MaxLength = 8 << 10

	// AccountHuman is the account_type of a person's account.
	AccountHuman = "human"
	// AccountSystem is the account_type of a service's password-less account.
	AccountSystem = "system"
)

const (
	algEdDSA       = "EdDSA"
	typJWT         = "JWT"
	maxKeyIDLength = 64
	// iatSkew tolerates clocks a little ahead of ours without accepting
	// tokens minted for the future.
	iatSkew = 60 * time.Second
	// maxNumericDate is 9999-12-31T23:59:59Z; later dates are nonsense that
	// time.Time arithmetic and RFC 3339 formatting handle badly.
	maxNumericDate = 253402300799
)

// Errors returned by Parse (and, for ErrMalformed, by Sign), checked with
// errors.Is. Every rejection wraps exactly one of them.
var (
	ErrMalformed    = errors.New("malformed token")
	ErrUnknownKey   = errors.New("unknown token signing key")
	ErrBadSignature = errors.New("bad token signature")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token issued in the future")
	ErrWrongIssuer  = errors.New("wrong token issuer")
)

// Claims are MCIAS token claims (PLATFORM.md §5): iss sub exp iat jti
// username account_type roles. Times travel as whole seconds.
type Claims struct {
	Issuer      string    // iss
	Subject     string    // sub: account UUID
	ExpiresAt   time.Time // exp
	IssuedAt    time.Time // iat
	ID          string    // jti
	Username    string    // username
	AccountType string    // account_type: AccountHuman or AccountSystem
	Roles       []string  // roles; empty for most system accounts
}

// KeyLookup returns the public key for a key ID, and false when the ID is
// unknown (never issued, or retired after its last token expired).
type KeyLookup func(kid string) (ed25519.PublicKey, bool)

// header is the JOSE header. Typ is a pointer so an absent typ can be told
// apart from a wrong one.
type header struct {
	Alg string  `json:"alg"`
	Typ *string `json:"typ,omitempty"`
	Kid string  `json:"kid"`
}

var headerFields = []string{"alg", "typ", "kid"}

// payload is the claims set as it travels. Exp and Iat are pointers so a
// missing date is told apart from 1970.
type payload struct {
	Iss         string   `json:"iss"`
	Sub         string   `json:"sub"`
	Exp         *int64   `json:"exp"`
	Iat         *int64   `json:"iat"`
	Jti         string   `json:"jti"`
	Username    string   `json:"username"`
	AccountType string   `json:"account_type"`
	Roles       []string `json:"roles"`
}

var payloadFields = []string{"iss", "sub", "exp", "iat", "jti", "username", "account_type", "roles"}

// Sign returns the compact JWS of c signed with k. It refuses a verify-only
// key and claims Parse would reject as malformed (missing iss, sub, jti, exp
// or iat, exp not after iat, an unknown account type, an empty role), so
// every token it issues can be verified.
func Sign(k Key, c Claims) (string, error) {
	if len(k.Private) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("sign token: key %q has no private key", k.ID)
	}
	if pub, ok := k.Private.Public().(ed25519.PublicKey); !ok || !pub.Equal(k.Public) {
		return "", fmt.Errorf("sign token: key %q: public key does not match private key", k.ID)
	}
	if !validKeyID(k.ID) {
		return "", fmt.Errorf("sign token: invalid key id %q", k.ID)
	}
	if err := c.validate(); err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	typ := typJWT
	hb, err := json.Marshal(header{Alg: algEdDSA, Typ: &typ, Kid: k.ID})
	if err != nil {
		return "", fmt.Errorf("sign token: encode header: %w", err)
	}
	exp, iat := c.ExpiresAt.Unix(), c.IssuedAt.Unix()
	roles := c.Roles
	if roles == nil {
		roles = []string{}
	}
	pb, err := json.Marshal(payload{
		Iss: c.Issuer, Sub: c.Subject, Exp: &exp, Iat: &iat, Jti: c.ID,
		Username: c.Username, AccountType: c.AccountType, Roles: roles,
	})
	if err != nil {
		return "", fmt.Errorf("sign token: encode claims: %w", err)
	}
	signed := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(pb)
	sig := ed25519.Sign(k.Private, []byte(signed))
	tok := signed + "." + base64.RawURLEncoding.EncodeToString(sig)
	if len(tok) > MaxLength {
		return "", fmt.Errorf("sign token: %w: %d bytes exceeds %d", ErrMalformed, len(tok), MaxLength)
	}
	return tok, nil
}

// Parse verifies tok and returns its claims. It accepts only what Sign
// produces: alg EdDSA, a kid that keys knows, a valid signature over the
// first two segments (checked before any claim is decoded), known fields
// only, iss equal to issuer, exp after now and iat no more than a minute
// ahead of now. Rejections wrap ErrMalformed, ErrUnknownKey,
// ErrBadSignature, ErrWrongIssuer, ErrExpired or ErrNotYetValid.
func Parse(tok string, keys KeyLookup, issuer string, now time.Time) (Claims, error) {
	if len(tok) > MaxLength {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLength)
	}
	h, p, s, ok := split(tok)
	if !ok {
		return Claims{}, fmt.Errorf("%w: want three non-empty dot-separated segments", ErrMalformed)
	}
	hb, err := decodeSegment(h)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	pb, err := decodeSegment(p)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	sig, err := decodeSegment(s)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: signature: %w", ErrMalformed, err)
	}
	var hdr header
	if err := decodeObject(hb, headerFields, &hdr); err != nil {
		return Claims{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if hdr.Alg != algEdDSA {
		return Claims{}, fmt.Errorf("%w: unsupported alg %.16q", ErrMalformed, hdr.Alg)
	}
	if hdr.Typ != nil && *hdr.Typ != typJWT {
		return Claims{}, fmt.Errorf("%w: unsupported typ %.16q", ErrMalformed, *hdr.Typ)
	}
	if !validKeyID(hdr.Kid) {
		return Claims{}, fmt.Errorf("%w: invalid kid", ErrMalformed)
	}
	if len(sig) != ed25519.SignatureSize {
		return Claims{}, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(sig), ed25519.SignatureSize)
	}
	if keys == nil {
		return Claims{}, fmt.Errorf("%w: kid %q", ErrUnknownKey, hdr.Kid)
	}
	pub, ok := keys(hdr.Kid)
	// ed25519.Verify panics on a key of the wrong size; treat one as unknown.
	if !ok || len(pub) != ed25519.PublicKeySize {
		return Claims{}, fmt.Errorf("%w: kid %q", ErrUnknownKey, hdr.Kid)
	}
	if !ed25519.Verify(pub, []byte(tok[:len(h)+1+len(p)]), sig) {
		return Claims{}, ErrBadSignature
	}

	var pl payload
	if err := decodeObject(pb, payloadFields, &pl); err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	if pl.Exp == nil {
		return Claims{}, fmt.Errorf("%w: missing exp", ErrMalformed)
	}
	if pl.Iat == nil {
		return Claims{}, fmt.Errorf("%w: missing iat", ErrMalformed)
	}
	for _, d := range []int64{*pl.Exp, *pl.Iat} {
		if d < 0 || d > maxNumericDate {
			return Claims{}, fmt.Errorf("%w: date %d out of range", ErrMalformed, d)
		}
	}
	roles := pl.Roles
	if roles == nil {
		roles = []string{}
	}
	c := Claims{
		Issuer:      pl.Iss,
		Subject:     pl.Sub,
		ExpiresAt:   time.Unix(*pl.Exp, 0).UTC(),
		IssuedAt:    time.Unix(*pl.Iat, 0).UTC(),
		ID:          pl.Jti,
		Username:    pl.Username,
		AccountType: pl.AccountType,
		Roles:       roles,
	}
	if err := c.validate(); err != nil {
		return Claims{}, err
	}
	if issuer == "" || c.Issuer != issuer {
		return Claims{}, fmt.Errorf("%w: %.64q", ErrWrongIssuer, c.Issuer)
	}
	if !now.Before(c.ExpiresAt) {
		return Claims{}, fmt.Errorf("%w at %s", ErrExpired, c.ExpiresAt.Format(time.RFC3339))
	}
	if c.IssuedAt.After(now.Add(iatSkew)) {
		return Claims{}, fmt.Errorf("%w: iat %s", ErrNotYetValid, c.IssuedAt.Format(time.RFC3339))
	}
	return c, nil
}

// validate holds the rules Sign and Parse share, so neither can produce or
// accept a claims set the other would refuse.
func (c Claims) validate() error {
	switch {
	case c.Issuer == "":
		return fmt.Errorf("%w: missing iss", ErrMalformed)
	case c.Subject == "":
		return fmt.Errorf("%w: missing sub", ErrMalformed)
	case c.ID == "":
		return fmt.Errorf("%w: missing jti", ErrMalformed)
	case c.ExpiresAt.IsZero():
		return fmt.Errorf("%w: missing exp", ErrMalformed)
	case c.IssuedAt.IsZero():
		return fmt.Errorf("%w: missing iat", ErrMalformed)
	}
	exp, iat := c.ExpiresAt.Unix(), c.IssuedAt.Unix()
	for _, d := range []int64{exp, iat} {
		if d < 0 || d > maxNumericDate {
			return fmt.Errorf("%w: date %d out of range", ErrMalformed, d)
		}
	}
	if exp <= iat {
		return fmt.Errorf("%w: exp not after iat", ErrMalformed)
	}
	if c.AccountType != AccountHuman && c.AccountType != AccountSystem {
		return fmt.Errorf("%w: account_type %.16q", ErrMalformed, c.AccountType)
	}
	for _, r := range c.Roles {
		if r == "" {
			return fmt.Errorf("%w: empty role", ErrMalformed)
		}
	}
	return nil
}

// split cuts tok into its three segments, all non-empty.
func split(tok string) (h, p, s string, ok bool) {
	h, rest, ok1 := strings.Cut(tok, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || h == "" || p == "" || s == "" || strings.Contains(s, ".") {
		return "", "", "", false
	}
	return h, p, s, true
}

// decodeSegment decodes canonical unpadded base64url. The alphabet is
// checked first because the decoder silently skips CR and LF, and Strict
// rejects non-zero trailing bits, so each value has exactly one encoding.
func decodeSegment(seg string) ([]byte, error) {
	for i := 0; i < len(seg); i++ {
		if !isBase64URL(seg[i]) {
			return nil, fmt.Errorf("invalid base64url character at offset %d", i)
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return nil, fmt.Errorf("decode base64url: %w", err)
	}
	return b, nil
}

// isBase64URL reports whether c is in the base64url alphabet (RFC 4648 §5).
func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
