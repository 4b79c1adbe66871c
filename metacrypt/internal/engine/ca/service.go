package ca

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// Type is the mount type of the CA engine.
const Type = "ca"

// Mounts resolves a mount name to the mount (whether sealed or not;
// its storage fails with engine.ErrSealed while sealed).
type Mounts interface {
	Resolve(ctx context.Context, name string) (engine.Mount, error)
}

// Authorizer is the policy as the engine consumes it (policy.Engine).
// An operation that checks names as well as its rule (issue, sign, renew,
// revoke, the ACME seam) takes one Snapshot for both, so the policy is
// read once per request.
type Authorizer interface {
	Allow(ctx context.Context, c engine.Caller, mount, op, resource string) error
	Snapshot(ctx context.Context, c engine.Caller) (*policy.Snapshot, error)
}

// Config is the engine's configuration ([pki] in metacrypt.toml).
type Config struct {
	// ExternalURL is the base URL (scheme://host[:port]) where the public
	// endpoints are reachable; issued certificates carry the CRL
	// distribution point, OCSP and CA issuers URLs under it. Empty: no
	// such URLs are written.
	ExternalURL string
	// CRLLifetime is a CRL's validity (nextUpdate - thisUpdate); a CRL is
	// rebuilt when half of it has passed, and on every revocation.
	CRLLifetime time.Duration
	// OCSPLifetime is an OCSP response's validity.
	OCSPLifetime time.Duration
}

// The defaults of Config.
const (
	DefaultCRLLifetime  = 72 * time.Hour
	DefaultOCSPLifetime = time.Hour
)

// Deps are what the engine is built from.
type Deps struct {
	Mounts Mounts
	Store  *store.Store
	Authz  Authorizer
	// Sealed reports the barrier's state.
	Sealed func() bool
	Config Config
	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the CA engine for every "ca" mount.
type Service struct {
	d Deps
	// crlMu serializes CRL builds, so two never take the same number.
	crlMu sync.Mutex
}

var (
	_ engine.Engine = (*Service)(nil)
	_ pki.Issuer    = (*Service)(nil)
)

// New returns the engine.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Config.CRLLifetime <= 0 {
		d.Config.CRLLifetime = DefaultCRLLifetime
	}
	if d.Config.OCSPLifetime <= 0 {
		d.Config.OCSPLifetime = DefaultOCSPLifetime
	}
	d.Config.ExternalURL = strings.TrimSuffix(d.Config.ExternalURL, "/")
	return &Service{d: d}
}

// Type implements engine.Engine.
func (s *Service) Type() string { return Type }

// mount resolves a CA mount, refusing while sealed and refusing mounts of
// other types.
func (s *Service) mount(ctx context.Context, name string) (engine.Mount, error) {
	if s.d.Sealed() {
		return engine.Mount{}, engine.ErrSealed
	}
	return s.publicMount(ctx, name)
}

// publicMount resolves a CA mount whether sealed or not (public
// material).
func (s *Service) publicMount(ctx context.Context, name string) (engine.Mount, error) {
	m, err := s.d.Mounts.Resolve(ctx, name)
	if err != nil {
		return m, err
	}
	if m.Type != Type {
		return engine.Mount{}, wrapf(engine.ErrPrecondition, "mount %s is a %s mount, not a CA", name, m.Type)
	}
	return m, nil
}

// authorize checks the caller's ACL for op on resource in the mount.
func (s *Service) authorize(ctx context.Context, c engine.Caller, m engine.Mount, op, resource string) error {
	return s.d.Authz.Allow(ctx, c, m.Name, op, resource)
}

// decide is authorize for an operation that goes on to check names: it
// returns the policy it read, for the names' check.
func (s *Service) decide(ctx context.Context, c engine.Caller, m engine.Mount, op, resource string) (*policy.Snapshot, error) {
	pol, err := s.d.Authz.Snapshot(ctx, c)
	if err != nil {
		return nil, err
	}
	return pol, pol.Allow(m.Name, op, resource)
}

func (s *Service) now() time.Time { return s.d.Now().UTC() }

// urls are the URLs written into certificates signed by issuer.
type urls struct {
	crl, ocsp, issuer []string
}

func (s *Service) urlsFor(mount, issuer string) urls {
	base := s.d.Config.ExternalURL
	if base == "" {
		return urls{}
	}
	p := base + "/v1/pki/" + mount
	u := urls{crl: []string{p + "/crl/" + issuer}, issuer: []string{p + "/issuer/" + issuer + "/der"}}
	if issuer != pki.RootName {
		u.ocsp = []string{p + "/ocsp"}
	} else {
		u.issuer = []string{p + "/ca/der"}
	}
	return u
}
