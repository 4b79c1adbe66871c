package sshca

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// Type is the mount type of the SSH CA engine.
const Type = "ssh"

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
	// Public receives the public copy of each mount's CA key and KRL
	// (store.Store in the server); nil publishes nothing, and Public then
	// finds nothing.
	Public Publisher
	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the SSH CA engine for every "ssh" mount. It keeps no key
// material between operations: the CA key is read through the barrier
// for each signature and dropped.
type Service struct {
	d Deps
	// mu serializes read-modify-write of a mount's serial counter and
	// revocation state, so two signatures never take the same serial and
	// two revocations never build the same KRL version.
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

// mount resolves an SSH CA mount, refusing while sealed and refusing
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
		return engine.Mount{}, wrapf(engine.ErrPrecondition, "mount %s is a %s mount, not an SSH CA", name, m.Type)
	}
	return m, nil
}

// authorize checks the caller's ACL for op on resource in the mount.
func (s *Service) authorize(ctx context.Context, c engine.Caller, m engine.Mount, op, resource string) error {
	return s.d.Authz.Allow(ctx, c, m.Name, op, resource)
}

func (s *Service) now() time.Time { return s.d.Now().UTC().Truncate(time.Second) }

// deniedField is engine.ErrDenied naming the input it refuses.
func deniedField(field, format string, args ...any) error {
	return &apierr.Error{Kind: apierr.Denied, Field: field, Msg: field + ": " + fmt.Sprintf(format, args...), Err: engine.ErrDenied}
}

// wrapf wraps a sentinel with a message: "<sentinel>: <message>".
func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
