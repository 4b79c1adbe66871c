package ca

import (
	"context"
	"slices"

	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// The public material of a mount, served without authentication and
// answered while sealed (it is read from the store, not the barrier).

// RootDER is the mount's root certificate.
func (s *Service) RootDER(ctx context.Context, mount string) ([]byte, error) {
	m, err := s.publicMount(ctx, mount)
	if err != nil {
		return nil, err
	}
	return s.d.Store.CACert(ctx, m.ID, pki.RootName)
}

// IssuerDER is an issuer's certificate ("root" for the root).
func (s *Service) IssuerDER(ctx context.Context, mount, name string) ([]byte, error) {
	if err := checkIssuerRef("name", name); err != nil {
		return nil, err
	}
	m, err := s.publicMount(ctx, mount)
	if err != nil {
		return nil, err
	}
	return s.d.Store.CACert(ctx, m.ID, name)
}

// ChainDER is every CA certificate of the mount: the issuers by name,
// then the root.
func (s *Service) ChainDER(ctx context.Context, mount string) ([][]byte, error) {
	m, err := s.publicMount(ctx, mount)
	if err != nil {
		return nil, err
	}
	certs, err := s.d.Store.CACerts(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	root, ok := certs[pki.RootName]
	if !ok {
		_, err := s.d.Store.CACert(ctx, m.ID, pki.RootName)
		return nil, err
	}
	var names []string
	for n := range certs {
		if n != pki.RootName {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([][]byte, 0, len(certs))
	for _, n := range names {
		out = append(out, certs[n])
	}
	return append(out, root), nil
}

// CRLDER is an issuer's current CRL.
func (s *Service) CRLDER(ctx context.Context, mount, issuer string) ([]byte, error) {
	if err := checkIssuerRef("issuer", issuer); err != nil {
		return nil, err
	}
	m, err := s.publicMount(ctx, mount)
	if err != nil {
		return nil, err
	}
	c, err := s.d.Store.CRL(ctx, m.ID, issuer)
	if err != nil {
		return nil, err
	}
	return c.DER, nil
}
