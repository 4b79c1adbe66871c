package acme

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// Mounts resolves the CA mounts ACME serves.
type Mounts interface {
	// Resolve returns a CA mount by name (engine.ErrNotFound for no
	// mount, or a mount of another type).
	Resolve(ctx context.Context, name string) (engine.Mount, error)
	// Names lists the CA mounts, for the validation queue.
	Names(ctx context.Context) ([]string, error)
}

// CA is the CA engine as ACME uses it: the pki.Issuer seam, and the
// public issuer certificates (which answer while sealed).
type CA interface {
	pki.Issuer
	// IssuerDER is an issuer's certificate (engine.ErrNotFound if none).
	IssuerDER(ctx context.Context, mount, name string) ([]byte, error)
}

// Validator checks a challenge over the network: nil when the identifier
// answers with the key authorization, a *Problem (connection, dns, tls,
// incorrectResponse, unauthorized) otherwise.
type Validator interface {
	Validate(ctx context.Context, t ChallengeType, id Identifier, token, keyAuth string) error
}

// Config tunes the server; zero values take the defaults.
type Config struct {
	// OrderLifetime is how long an order and its authorizations may take
	// from creation to finalization (default 24h).
	OrderLifetime time.Duration
	// ValidationAttempts bounds the attempts per challenge (default 5).
	ValidationAttempts int
	// ValidationBackoff is the delay before the second attempt; each
	// further attempt waits that much longer (default 5s: 5s, 10s, 15s...).
	ValidationBackoff time.Duration
	// ValidationTimeout bounds one attempt (default 10s).
	ValidationTimeout time.Duration
	// Workers is how many validations run at once (default 4).
	Workers int
	// NonceLifetime is how long an unused nonce stays valid (default
	// 1h); MaxNonces bounds how many a mount keeps (default 10000, the
	// oldest dropped first).
	NonceLifetime time.Duration
	MaxNonces     int
	// MaxOrderList bounds the orders listed per account (default 1000).
	MaxOrderList int
}

// The defaults of Config.
const (
	DefaultOrderLifetime      = 24 * time.Hour
	DefaultValidationAttempts = 5
	DefaultValidationBackoff  = 5 * time.Second
	DefaultValidationTimeout  = 10 * time.Second
	DefaultWorkers            = 4
	DefaultNonceLifetime      = time.Hour
	DefaultMaxNonces          = 10000
	DefaultMaxOrderList       = 1000
)

// RespondWait bounds how long a challenge response waits for its first
// validation attempt (RespondChallenge): below a client's one-second
// Retry-After, and well below any HTTP client's timeout.
const RespondWait = 2 * time.Second

// Deps are what the service is built from.
type Deps struct {
	Mounts    Mounts
	NewStore  func(engine.Storage) Store
	CA        CA
	Validator Validator
	// Sealed reports the barrier's state.
	Sealed func() bool
	Config Config
	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the ACME server's domain for every CA mount.
type Service struct {
	d     Deps
	locks keyedLocks
	// wake nudges the validation queue when a challenge is queued.
	wake chan struct{}
	// nonces counts nonces issued since the last pruning, per mount.
	noncesMu sync.Mutex
	nonces   map[string]int
	// running holds the validations in progress (mount/authz), so a
	// queue pass does not start one twice.
	runningMu sync.Mutex
	running   map[string]bool
	// queueRunning is set while RunQueue runs; settled holds, per
	// mount/authz, the channels of challenge answers waiting for the
	// first attempt's outcome (RespondChallenge).
	queueRunning atomic.Bool
	settledMu    sync.Mutex
	settled      map[string][]chan struct{}
}

// New returns the service.
func New(d Deps) *Service {
	c := &d.Config
	def := func(v *time.Duration, x time.Duration) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&c.OrderLifetime, DefaultOrderLifetime)
	def(&c.ValidationBackoff, DefaultValidationBackoff)
	def(&c.ValidationTimeout, DefaultValidationTimeout)
	def(&c.NonceLifetime, DefaultNonceLifetime)
	if c.ValidationAttempts <= 0 {
		c.ValidationAttempts = DefaultValidationAttempts
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxNonces <= 0 {
		c.MaxNonces = DefaultMaxNonces
	}
	if c.MaxOrderList <= 0 {
		c.MaxOrderList = DefaultMaxOrderList
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{d: d, wake: make(chan struct{}, 1), nonces: map[string]int{}, running: map[string]bool{}, settled: map[string][]chan struct{}{}}
}

func (s *Service) now() time.Time { return s.d.Now().UTC().Truncate(time.Second) }

// store opens a mount's ACME state, refusing while sealed.
func (s *Service) store(ctx context.Context, mount string) (Store, error) {
	if s.d.Sealed() {
		return nil, engine.ErrSealed
	}
	m, err := s.d.Mounts.Resolve(ctx, mount)
	if err != nil {
		return nil, err
	}
	return s.d.NewStore(m.Storage), nil
}

// CheckDirectory reports whether a mount has an issuer of that name (a
// directory to serve). It works while sealed.
func (s *Service) CheckDirectory(ctx context.Context, mount, issuer string) error {
	if err := pki.ValidateIssuerName("issuer", issuer); err != nil {
		return NewProblem(ErrMalformed, "no ACME directory for issuer %q: %v", issuer, err).withStatus(404)
	}
	if _, err := s.d.CA.IssuerDER(ctx, mount, issuer); err != nil {
		return NewProblem(ErrMalformed, "no ACME directory: mount %q has no issuer %q", mount, issuer).withStatus(404)
	}
	return nil
}

// newID is n random bytes, base64url.
func newID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// keyedLocks is one mutex per key, created on demand and dropped when
// unused: the service's changes to one object (an order and its
// authorizations, an account, an EAB credential, a mount's nonces) are
// serialized; different objects proceed in parallel.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedLocks) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// Sealed reports whether the barrier is sealed (every ACME resource but
// the directory answers 503 then).
func (s *Service) Sealed() bool { return s.d.Sealed() }
