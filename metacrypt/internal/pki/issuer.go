package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"net/netip"
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// Names are the names a certificate asks for: DNS names (the common name
// included when it is one) and IP addresses.
type Names struct {
	DNS []string
	IPs []netip.Addr
}

// SignOptions tune a signature; zero values take the issuer's defaults.
type SignOptions struct {
	TTL     time.Duration
	Profile Profile
}

// Issuer is the CA engine as other code in the same process uses it —
// the seam for the ACME server. Every method applies the same policy as
// the gRPC and REST APIs: the caller's ACL rules for the operation and
// its issuance limits on every name, admins bypassing both, and answers
// engine.ErrSealed while the barrier is sealed. Errors are apierr kinds.
type Issuer interface {
	// Authorize checks, without issuing, that the caller may have these
	// names signed by the issuer: "sign" on issuer/<issuer> and every
	// name within its limits. ACME calls it when an order is created, so
	// a refused name fails early instead of at finalization.
	Authorize(ctx context.Context, c engine.Caller, mount, issuer string, names Names) error
	// SignCSR checks the request's signature and names, then issues. The
	// result holds the full chain; PrivateKeyPEM is empty.
	SignCSR(ctx context.Context, c engine.Caller, mount, issuer string, csr *x509.CertificateRequest, o SignOptions) (Issued, error)
	// Revoke revokes a certificate the caller may revoke (its ACL rules
	// and limits cover the certificate's issuer and names) and rebuilds
	// the issuer's CRL.
	Revoke(ctx context.Context, c engine.Caller, mount, serial string, reason Reason) error
	// RevokeByKey revokes a certificate on proof of possession of its
	// private key (RFC 8555 §7.6: the revocation request was signed with
	// it); key must be the certificate's public key.
	RevokeByKey(ctx context.Context, mount, serial string, key crypto.PublicKey, reason Reason) error
	// Lookup returns a certificate's record (public material; it works
	// while sealed).
	Lookup(ctx context.Context, mount, serial string) (Certificate, error)
}
