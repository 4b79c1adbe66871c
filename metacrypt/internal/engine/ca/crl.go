package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// buildCRL signs and stores a new CRL for an issuer (or the root): every
// revoked certificate it signed that has not expired, the number one
// above the last.
func (s *Service) buildCRL(ctx context.Context, m engine.Mount, issuer string) (pki.CRLInfo, error) {
	s.crlMu.Lock()
	defer s.crlMu.Unlock()
	iss, err := load(ctx, m.Storage, issuer)
	if err != nil {
		return pki.CRLInfo{}, err
	}
	now := s.now().Truncate(time.Second)
	entries, err := s.d.Store.RevokedBy(ctx, m.ID, issuer, now)
	if err != nil {
		return pki.CRLInfo{}, err
	}
	number := int64(1)
	prev, err := s.d.Store.CRL(ctx, m.ID, issuer)
	switch {
	case err == nil:
		number = prev.Number + 1
	case !errors.Is(err, engine.ErrNotFound):
		return pki.CRLInfo{}, err
	}
	list := &x509.RevocationList{
		Number:     big.NewInt(number),
		ThisUpdate: now,
		NextUpdate: now.Add(s.d.Config.CRLLifetime),
	}
	serials := make([]string, 0, len(entries))
	for _, e := range entries {
		n, ok := new(big.Int).SetString(e.Serial, 16)
		if !ok {
			return pki.CRLInfo{}, fmt.Errorf("stored serial %q is not hex", e.Serial)
		}
		list.RevokedCertificateEntries = append(list.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: n, RevocationTime: e.RevokedAt, ReasonCode: int(e.Reason),
		})
		serials = append(serials, e.Serial)
	}
	der, err := x509.CreateRevocationList(rand.Reader, list, iss.cert, iss.signer)
	if err != nil {
		return pki.CRLInfo{}, fmt.Errorf("sign CRL of %s: %w", issuer, err)
	}
	if err := s.d.Store.PutCRL(ctx, m.ID, issuer, store.CRL{Number: number, ThisUpdate: now, NextUpdate: list.NextUpdate, DER: der}); err != nil {
		return pki.CRLInfo{}, err
	}
	return pki.CRLInfo{Issuer: issuer, Number: number, ThisUpdate: now, NextUpdate: list.NextUpdate, Revoked: serials, DER: der}, nil
}

// GetCRL returns an issuer's current CRL (read on the issuer).
func (s *Service) GetCRL(ctx context.Context, c engine.Caller, mount, issuer string) (pki.CRLInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.CRLInfo{}, err
	}
	if err := checkIssuerRef("issuer", issuer); err != nil {
		return pki.CRLInfo{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, "issuer/"+issuer); err != nil {
		return pki.CRLInfo{}, err
	}
	return s.crlInfo(ctx, m, issuer)
}

// RebuildCRL signs a fresh CRL now (manage on the issuer).
func (s *Service) RebuildCRL(ctx context.Context, c engine.Caller, mount, issuer string) (pki.CRLInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.CRLInfo{}, err
	}
	if err := checkIssuerRef("issuer", issuer); err != nil {
		return pki.CRLInfo{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpManage, "issuer/"+issuer); err != nil {
		return pki.CRLInfo{}, err
	}
	return s.buildCRL(ctx, m, issuer)
}

func (s *Service) crlInfo(ctx context.Context, m engine.Mount, issuer string) (pki.CRLInfo, error) {
	c, err := s.d.Store.CRL(ctx, m.ID, issuer)
	if err != nil {
		return pki.CRLInfo{}, err
	}
	list, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		return pki.CRLInfo{}, fmt.Errorf("stored CRL of %s: %w", issuer, err)
	}
	info := pki.CRLInfo{Issuer: issuer, Number: c.Number, ThisUpdate: c.ThisUpdate, NextUpdate: c.NextUpdate, DER: c.DER, Revoked: []string{}}
	for _, e := range list.RevokedCertificateEntries {
		info.Revoked = append(info.Revoked, pki.FormatSerial(e.SerialNumber))
	}
	return info, nil
}

// checkIssuerRef accepts "root" or an issuer name.
func checkIssuerRef(field, name string) error {
	if name == pki.RootName {
		return nil
	}
	return pki.ValidateIssuerName(field, name)
}

// crlStale reports whether a CRL must be rebuilt: missing, half its
// lifetime gone, or older than the issuer's latest revocation.
func crlStale(c store.CRL, lastRevocation, now time.Time) bool {
	if c.DER == nil {
		return true
	}
	half := c.ThisUpdate.Add(c.NextUpdate.Sub(c.ThisUpdate) / 2)
	return !now.Before(half) || lastRevocation.After(c.ThisUpdate) || lastRevocation.Equal(c.ThisUpdate)
}

// Periodic implements engine.Engine: it rebuilds the stale CRLs of every
// issuer of every CA mount. One failure does not stop the others; the
// errors are joined.
func (s *Service) Periodic(ctx context.Context, mounts []engine.Mount) error {
	var errs []error
	now := s.now()
	for _, m := range mounts {
		if m.Type != Type {
			continue
		}
		certs, err := s.d.Store.CACerts(ctx, m.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for issuer := range certs {
			c, err := s.d.Store.CRL(ctx, m.ID, issuer)
			if err != nil && !errors.Is(err, engine.ErrNotFound) {
				errs = append(errs, err)
				continue
			}
			last, err := s.d.Store.LastRevocation(ctx, m.ID, issuer)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !crlStale(c, last, now) {
				continue
			}
			if _, err := s.buildCRL(ctx, m, issuer); err != nil {
				if apierr.KindOf(err) == apierr.Unavailable {
					return err
				}
				errs = append(errs, fmt.Errorf("mount %s issuer %s: %w", m.Name, issuer, err))
				continue
			}
			s.d.Logger.Info("CRL refreshed", "mount", m.Name, "issuer", issuer)
		}
	}
	return errors.Join(errs...)
}
