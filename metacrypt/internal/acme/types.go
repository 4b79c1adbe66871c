package acme

import (
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// Status is the state of an account, order, authorization or challenge
// (RFC 8555 §7.1.6).
type Status string

// The states.
const (
	StatusPending     Status = "pending"
	StatusReady       Status = "ready"
	StatusProcessing  Status = "processing"
	StatusValid       Status = "valid"
	StatusInvalid     Status = "invalid"
	StatusDeactivated Status = "deactivated"
	StatusExpired     Status = "expired"
	StatusRevoked     Status = "revoked"
)

// The identifier types: DNS names (RFC 8555) and IP addresses (RFC 8738).
const (
	IdentDNS = "dns"
	IdentIP  = "ip"
)

// Identifier is what an order asks a certificate for.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// String describes an identifier for messages ("dns:x.example").
func (id Identifier) String() string { return id.Type + ":" + id.Value }

// ChallengeType is a validation method.
type ChallengeType string

// The challenge types.
const (
	HTTP01    ChallengeType = "http-01"
	DNS01     ChallengeType = "dns-01"
	TLSALPN01 ChallengeType = "tls-alpn-01"
)

// EAB is an External Account Binding credential: a key ID and an HMAC key
// an MCIAS-authenticated user obtained, which binds the ACME account
// registered with it to Caller. It is good for one registration.
type EAB struct {
	KID string `json:"kid"`
	// Key is the HMAC-SHA256 key (32 random bytes).
	Key []byte `json:"key"`
	// Caller is the identity the account acts as: its ACL rules and
	// issuance limits apply to every order.
	Caller engine.Caller `json:"caller"`
	// CreatedBy is who asked for it (Caller's username, or the admin's
	// who created it for Caller).
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is zero for a credential that does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// UsedAt and Account are set by the registration that used it.
	UsedAt  time.Time `json:"used_at,omitzero"`
	Account string    `json:"account,omitempty"`
	// RevokedAt is set by a revocation, which also deactivates Account.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Usable reports whether the credential can still register an account.
func (e EAB) Usable(now time.Time) bool {
	return e.UsedAt.IsZero() && e.RevokedAt.IsZero() && (e.ExpiresAt.IsZero() || now.Before(e.ExpiresAt))
}

// Account is an ACME account of one issuer's directory.
type Account struct {
	ID     string `json:"id"`
	Issuer string `json:"issuer"`
	Status Status `json:"status"`
	// Key is the account's public JWK (canonical JSON) and Thumbprint its
	// RFC 7638 thumbprint.
	Key        []byte   `json:"key"`
	Thumbprint string   `json:"thumbprint"`
	Contact    []string `json:"contact,omitempty"`
	// TermsAgreed records termsOfServiceAgreed as sent.
	TermsAgreed bool `json:"terms_agreed,omitempty"`
	// EAB is the credential it was registered with; Caller its identity.
	EAB       string        `json:"eab"`
	Caller    engine.Caller `json:"caller"`
	CreatedAt time.Time     `json:"created_at"`
}

// Order is a request for one certificate.
type Order struct {
	ID          string       `json:"id"`
	Account     string       `json:"account"`
	Issuer      string       `json:"issuer"`
	Status      Status       `json:"status"`
	Expires     time.Time    `json:"expires"`
	Identifiers []Identifier `json:"identifiers"`
	// Authzs are the IDs of its authorizations, one per identifier, in
	// the identifiers' order.
	Authzs []string `json:"authzs"`
	// Error says why it became invalid.
	Error *Problem `json:"error,omitempty"`
	// Certificate is the serial of the certificate it was finalized
	// with.
	Certificate string `json:"certificate,omitempty"`
	// Replaces is the RFC 9773 certificate ID of the certificate this
	// order renews, when the client said so.
	Replaces  string    `json:"replaces,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Authz is the authorization of one identifier for one order.
type Authz struct {
	ID         string     `json:"id"`
	Account    string     `json:"account"`
	Order      string     `json:"order"`
	Issuer     string     `json:"issuer"`
	Identifier Identifier `json:"identifier"`
	// Wildcard: the order asked for "*." + Identifier.Value, so only
	// dns-01 is offered.
	Wildcard   bool        `json:"wildcard,omitempty"`
	Status     Status      `json:"status"`
	Expires    time.Time   `json:"expires"`
	Challenges []Challenge `json:"challenges"`
}

// Challenge is one way to prove control of an authorization's
// identifier.
type Challenge struct {
	Type ChallengeType `json:"type"`
	// Token is 32 random bytes, base64url (RFC 8555 §8.3: at least 128
	// bits of entropy).
	Token     string    `json:"token"`
	Status    Status    `json:"status"`
	Validated time.Time `json:"validated,omitzero"`
	// Error is the last failed attempt's problem.
	Error *Problem `json:"error,omitempty"`
}

// Challenge returns the authorization's challenge of a type.
func (a *Authz) Challenge(t ChallengeType) (*Challenge, bool) {
	for i := range a.Challenges {
		if a.Challenges[i].Type == t {
			return &a.Challenges[i], true
		}
	}
	return nil, false
}

// Job is a queued validation: a challenge the client asked to be
// validated, attempted until it succeeds or MaxAttempts fail.
type Job struct {
	// Authz and Type name the challenge.
	Authz    string        `json:"authz"`
	Type     ChallengeType `json:"type"`
	Attempts int           `json:"attempts"`
	NextAt   time.Time     `json:"next_at"`
	// Order is the authorization's order (its lock).
	Order     string    `json:"order"`
	CreatedAt time.Time `json:"created_at"`
}

// Cert is a certificate issued through ACME: who ordered it and the
// chain served for download.
type Cert struct {
	Serial  string `json:"serial"`
	Account string `json:"account"`
	Order   string `json:"order"`
	Issuer  string `json:"issuer"`
	// ChainPEM is the leaf then its issuer.
	ChainPEM string `json:"chain_pem"`
	// ReplacedBy is the order that renewed it, announced with RFC 9773's
	// "replaces".
	ReplacedBy string `json:"replaced_by,omitempty"`
}
