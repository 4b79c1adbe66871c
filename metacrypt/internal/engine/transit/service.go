package transit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// Type is the mount type of the transit engine.
const Type = "transit"

// The ACL operations of a transit mount (see doc.go). Read, manage and
// sign are the policy's own; the others are the transit engine's.
const (
	OpRead    = policy.OpRead
	OpManage  = policy.OpManage
	OpSign    = policy.OpSign
	OpEncrypt = "encrypt"
	OpDecrypt = "decrypt"
	OpRewrap  = "rewrap"
	OpDataKey = "datakey"
	OpVerify  = "verify"
	OpHMAC    = "hmac"
	OpExport  = "export"
)

// ACLOperations are the operations ACL rules on a transit mount name.
var ACLOperations = []string{OpRead, OpManage, OpEncrypt, OpDecrypt, OpRewrap, OpDataKey, OpSign, OpVerify, OpHMAC, OpExport}

// Mounts resolves a mount name to the mount (whether sealed or not; its
// storage fails with engine.ErrSealed while sealed).
type Mounts interface {
	Resolve(ctx context.Context, name string) (engine.Mount, error)
}

// Authorizer is the policy as the engine consumes it (policy.Engine).
type Authorizer interface {
	Allow(ctx context.Context, c engine.Caller, mount, op, resource string) error
}

// Deps are what the engine is built from.
type Deps struct {
	Mounts Mounts
	Authz  Authorizer
	// Sealed reports the barrier's state.
	Sealed func() bool
	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the transit engine for every "transit" mount. It keeps no
// key material between operations: a key's versions are read through the
// barrier for each request and cleared after it.
type Service struct {
	d Deps
	// mu serializes read-modify-write of key records (create, rotate,
	// configure, delete), so two rotations never make the same version.
	mu sync.Mutex
}

var _ engine.Engine = (*Service)(nil)

// New returns the engine.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{d: d}
}

// Type implements engine.Engine.
func (s *Service) Type() string { return Type }

// Periodic implements engine.Engine: transit has no time-driven work.
func (s *Service) Periodic(context.Context, []engine.Mount) error { return nil }

// mount resolves a transit mount, refusing while sealed and refusing
// mounts of other types.
func (s *Service) mount(ctx context.Context, name string) (engine.Mount, error) {
	if s.d.Sealed() {
		return engine.Mount{}, engine.ErrSealed
	}
	m, err := s.d.Mounts.Resolve(ctx, name)
	if err != nil {
		return m, err
	}
	if m.Type != Type {
		return engine.Mount{}, wrapf(engine.ErrPrecondition, "mount %s is a %s mount, not transit", name, m.Type)
	}
	return m, nil
}

// open resolves the mount, validates the key name, checks the caller's
// ACL for op on the key and loads the key.
func (s *Service) open(ctx context.Context, c engine.Caller, mount, name, op string) (engine.Mount, *keyRecord, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return m, nil, err
	}
	if err := validateName("key", name); err != nil {
		return m, nil, err
	}
	if err := s.d.Authz.Allow(ctx, c, m.Name, op, resourceKey(name)); err != nil {
		return m, nil, err
	}
	k, err := loadKey(ctx, m, name)
	return m, k, err
}

func resourceKey(name string) string { return "key/" + name }

// resourceKeys is the resource of listing keys.
const resourceKeys = "keys"

func (s *Service) now() time.Time { return s.d.Now().UTC() }

// wrapf wraps a sentinel with a message: "<sentinel>: <message>".
func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// fieldError is a sentinel's kind naming the input it concerns.
func fieldError(sentinel *apierr.Sentinel, field, format string, args ...any) error {
	return &apierr.Error{Kind: sentinel.Kind(), Field: field, Msg: field + ": " + fmt.Sprintf(format, args...), Err: sentinel}
}
