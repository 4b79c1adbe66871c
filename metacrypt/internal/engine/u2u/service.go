package u2u

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

// Type is the mount type of the user-to-user engine.
const Type = "u2u"

// The ACL operations of a u2u mount (see doc.go). Read and manage are the
// policy's own; send and open are the u2u engine's.
const (
	OpRead   = policy.OpRead
	OpManage = policy.OpManage
	OpSend   = "send"
	OpOpen   = "open"
)

// ACLOperations are the operations ACL rules on a u2u mount name.
var ACLOperations = []string{OpRead, OpManage, OpSend, OpOpen}

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

// Service is the user-to-user engine for every "u2u" mount. It keeps no
// key material between operations.
type Service struct {
	d Deps
	// mu serializes the creation and rotation of key pairs.
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

// Periodic implements engine.Engine: u2u has no time-driven work.
func (s *Service) Periodic(context.Context, []engine.Mount) error { return nil }

// mount resolves a u2u mount, refusing while sealed and refusing mounts
// of other types.
func (s *Service) mount(ctx context.Context, name string) (engine.Mount, error) {
	if s.d.Sealed() {
		return engine.Mount{}, engine.ErrSealed
	}
	m, err := s.d.Mounts.Resolve(ctx, name)
	if err != nil {
		return m, err
	}
	if m.Type != Type {
		return engine.Mount{}, wrapf(engine.ErrPrecondition, "mount %s is a %s mount, not u2u", name, m.Type)
	}
	return m, nil
}

// authorize checks the caller's ACL for op on resource in the mount.
func (s *Service) authorize(ctx context.Context, c engine.Caller, m engine.Mount, op, resource string) error {
	return s.d.Authz.Allow(ctx, c, m.Name, op, resource)
}

// self checks the caller has a usable username and returns the
// resource of its own key.
func self(c engine.Caller) (string, error) {
	if c.Username == "" {
		return "", engine.ErrUnauthenticated
	}
	if !usernameRE.MatchString(c.Username) {
		return "", wrapf(engine.ErrDenied, "username %q cannot hold a u2u key", c.Username)
	}
	return resourceUser(c.Username), nil
}

func resourceUser(name string) string { return "user/" + name }

// resourceUsers is the resource of listing keys.
const resourceUsers = "users"

func validateUsername(field, name string) error {
	if !usernameRE.MatchString(name) {
		return apierr.InvalidField(field, "%q is not an MCIAS username", name)
	}
	return nil
}

func (s *Service) now() time.Time { return s.d.Now().UTC() }

// wrapf wraps a sentinel with a message: "<sentinel>: <message>".
func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
