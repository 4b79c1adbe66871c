package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// RevokeRequest is a revokeCert payload's content (RFC 8555 §7.6).
type RevokeRequest struct {
	// CertDER is the certificate to revoke.
	CertDER []byte
	// Reason is the RFC 5280 reason code; nil is unspecified.
	Reason *int
}

// revocable checks a revocation request against the mount's records and
// returns the certificate's serial and the reason.
func (s *Service) revocable(ctx context.Context, mount, issuer string, r RevokeRequest) (string, pki.Reason, error) {
	if s.d.Sealed() {
		return "", 0, engine.ErrSealed
	}
	reason := pki.Unspecified
	if r.Reason != nil {
		reason = pki.Reason(*r.Reason)
		if _, err := pki.ParseReason("reason", reason.String()); err != nil {
			return "", 0, NewProblem(ErrBadRevocationReason, "reason %d is not accepted (0, 1, 3, 4, 5, 9)", *r.Reason)
		}
	}
	cert, err := x509.ParseCertificate(r.CertDER)
	if err != nil {
		return "", 0, NewProblem(ErrMalformed, "certificate: %v", err)
	}
	serial := pki.FormatSerial(cert.SerialNumber)
	rec, err := s.d.CA.Lookup(ctx, mount, serial)
	if err != nil {
		return "", 0, notFound(err, "certificate")
	}
	if !bytes.Equal(rec.DER, r.CertDER) {
		return "", 0, NewProblem(ErrMalformed, "no such certificate").withStatus(http.StatusNotFound)
	}
	if rec.Issuer != issuer {
		return "", 0, NewProblem(ErrUnauthorized, "the certificate was not issued by this directory's issuer")
	}
	if rec.RevokedAt != nil {
		return "", 0, NewProblem(ErrAlreadyRevoked, "certificate %s is revoked already", serial)
	}
	return serial, reason, nil
}

func revokeErr(err error) error {
	switch apierr.KindOf(err) {
	case apierr.Conflict:
		return NewProblem(ErrAlreadyRevoked, "%s", apierr.Describe(err).Message)
	case apierr.Denied:
		return NewProblem(ErrUnauthorized, "%s", apierr.Describe(err).Message)
	}
	return err
}

// RevokeByAccount revokes a certificate for an account: the account's
// identity must be allowed to revoke it (its ACL "revoke" rule on the
// issuer and its limits over the certificate's names), as over gRPC.
func (s *Service) RevokeByAccount(ctx context.Context, mount string, a Account, r RevokeRequest) error {
	serial, reason, err := s.revocable(ctx, mount, a.Issuer, r)
	if err != nil {
		return err
	}
	if err := s.d.CA.Revoke(ctx, a.Caller, mount, serial, reason); err != nil {
		return revokeErr(err)
	}
	s.d.Logger.Info("acme: certificate revoked by account", "mount", mount, "serial", serial, "account", a.ID, "identity", a.Caller.Username)
	return nil
}

// RevokeByKey revokes a certificate for whoever signed the request with
// the certificate's own key.
func (s *Service) RevokeByKey(ctx context.Context, mount, issuer string, key *jws.JWK, r RevokeRequest) error {
	serial, reason, err := s.revocable(ctx, mount, issuer, r)
	if err != nil {
		return err
	}
	if err := s.d.CA.RevokeByKey(ctx, mount, serial, key.Key, reason); err != nil {
		return revokeErr(err)
	}
	s.d.Logger.Info("acme: certificate revoked by its key", "mount", mount, "serial", serial)
	return nil
}
