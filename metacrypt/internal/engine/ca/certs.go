package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net/netip"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/names"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// ListRequest selects certificates.
type ListRequest struct {
	Issuer         string `json:"issuer"`
	Name           string `json:"name"`
	RequestedBy    string `json:"requested_by"`
	Status         string `json:"status"`
	ExpiringWithin string `json:"expiring_within"`
	Limit          int    `json:"limit"`
}

// The bounds of a listing.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// RevokeRequest asks for a revocation.
type RevokeRequest struct {
	Serial string `json:"serial"`
	Reason string `json:"reason"`
}

// Lookup implements pki.Issuer: a certificate's record, public material,
// available while sealed.
func (s *Service) Lookup(ctx context.Context, mount, serial string) (pki.Certificate, error) {
	m, err := s.publicMount(ctx, mount)
	if err != nil {
		return pki.Certificate{}, err
	}
	sn, err := pki.ParseSerial("serial", serial)
	if err != nil {
		return pki.Certificate{}, err
	}
	return s.d.Store.Certificate(ctx, m.ID, m.Name, sn)
}

// GetCertificate returns a certificate the caller may read (read on its
// issuer).
func (s *Service) GetCertificate(ctx context.Context, c engine.Caller, mount, serial string) (pki.Certificate, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.Certificate{}, err
	}
	sn, err := pki.ParseSerial("serial", serial)
	if err != nil {
		return pki.Certificate{}, err
	}
	cert, err := s.d.Store.Certificate(ctx, m.ID, m.Name, sn)
	if err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			// Whether a serial exists is not told to who may not read.
			if aerr := s.authorize(ctx, c, m, policy.OpRead, "certs"); aerr != nil {
				return pki.Certificate{}, aerr
			}
		}
		return pki.Certificate{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, "issuer/"+cert.Issuer); err != nil {
		return pki.Certificate{}, err
	}
	return cert, nil
}

// ListCertificates searches the certificates (read on "certs").
func (s *Service) ListCertificates(ctx context.Context, c engine.Caller, mount string, r ListRequest) ([]pki.Certificate, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, "certs"); err != nil {
		return nil, err
	}
	f := pki.Filter{Issuer: r.Issuer, RequestedBy: r.RequestedBy, Limit: r.Limit, Now: s.now()}
	if r.Issuer != "" && r.Issuer != pki.RootName {
		if err := pki.ValidateIssuerName("issuer", r.Issuer); err != nil {
			return nil, err
		}
	}
	if r.Name != "" {
		if a, err := netip.ParseAddr(r.Name); err == nil {
			f.Name = a.Unmap().String()
		} else if f.Name, err = names.ParseDNS(r.Name); err != nil {
			return nil, apierr.InvalidField("name", "%v", err)
		}
	}
	switch pki.Status(r.Status) {
	case "", pki.Valid, pki.Revoked, pki.Expired:
		f.Status = pki.Status(r.Status)
	default:
		return nil, apierr.InvalidField("status", "%q is not valid, revoked or expired", r.Status)
	}
	if f.ExpiringWithin, err = pki.ParseDuration("expiring_within", r.ExpiringWithin); err != nil {
		return nil, err
	}
	switch {
	case f.Limit == 0:
		f.Limit = DefaultListLimit
	case f.Limit < 0 || f.Limit > MaxListLimit:
		return nil, apierr.InvalidField("limit", "must be 1..%d, got %d", MaxListLimit, f.Limit)
	}
	out, err := s.d.Store.Certificates(ctx, m.ID, m.Name, f)
	if out == nil && err == nil {
		out = []pki.Certificate{}
	}
	return out, err
}

// RevokeCert is the typed API's revocation; it returns the revoked
// record.
func (s *Service) RevokeCert(ctx context.Context, c engine.Caller, mount string, r RevokeRequest) (pki.Certificate, error) {
	reason, err := pki.ParseReason("reason", r.Reason)
	if err != nil {
		return pki.Certificate{}, err
	}
	if err := s.Revoke(ctx, c, mount, r.Serial, reason); err != nil {
		return pki.Certificate{}, err
	}
	return s.Lookup(ctx, mount, r.Serial)
}

// Revoke implements pki.Issuer: revoke on the certificate's issuer, and
// its names within the caller's limits (who could not have it issued may
// not revoke it). The issuer's CRL is rebuilt at once.
func (s *Service) Revoke(ctx context.Context, c engine.Caller, mount, serial string, reason pki.Reason) error {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return err
	}
	sn, err := pki.ParseSerial("serial", serial)
	if err != nil {
		return err
	}
	cert, err := s.d.Store.Certificate(ctx, m.ID, m.Name, sn)
	if err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			if aerr := s.authorize(ctx, c, m, policy.OpRead, "certs"); aerr != nil {
				return aerr
			}
		}
		return err
	}
	pol, err := s.decide(ctx, c, m, policy.OpRevoke, "issuer/"+cert.Issuer)
	if err != nil {
		return err
	}
	if err := pol.CheckNames(m.Name, pki.Names{DNS: cert.DNSNames, IPs: cert.IPs}); err != nil {
		return err
	}
	return s.revoke(ctx, m, cert, reason, c.Username)
}

// RevokeByKey implements pki.Issuer: the proof is possession of the
// certificate's key, so no policy applies.
func (s *Service) RevokeByKey(ctx context.Context, mount, serial string, key crypto.PublicKey, reason pki.Reason) error {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return err
	}
	sn, err := pki.ParseSerial("serial", serial)
	if err != nil {
		return err
	}
	cert, err := s.d.Store.Certificate(ctx, m.ID, m.Name, sn)
	if err != nil {
		return err
	}
	parsed, err := x509.ParseCertificate(cert.DER)
	if err != nil {
		return fmt.Errorf("stored certificate %s: %w", sn, err)
	}
	if !publicKeysEqual(parsed.PublicKey, key) {
		return wrapf(engine.ErrDenied, "the key is not certificate %s's", sn)
	}
	return s.revoke(ctx, m, cert, reason, "key holder")
}

func (s *Service) revoke(ctx context.Context, m engine.Mount, cert pki.Certificate, reason pki.Reason, by string) error {
	if err := s.d.Store.Revoke(ctx, m.ID, cert.Serial, s.now(), reason); err != nil {
		return err
	}
	s.d.Logger.Info("certificate revoked", "mount", m.Name, "issuer", cert.Issuer, "serial", cert.Serial, "reason", reason.String(), "by", by)
	if _, err := s.buildCRL(ctx, m, cert.Issuer); err != nil {
		// The revocation stands; the periodic refresh rebuilds a CRL
		// older than the latest revocation.
		s.d.Logger.Error("CRL not rebuilt after revocation", "mount", m.Name, "issuer", cert.Issuer, "error", err)
	}
	return nil
}
