// Package engine holds what every Metacrypt engine and the code around it
// share: the caller of an operation, the encrypted storage an engine sees
// for one mount, the generic request, the registry of engine types, and
// the errors they answer with. It imports nothing of Metacrypt, so the
// barrier, the mount table, the policy and the engines all depend on it
// and never on each other for these types.
//
// An engine type is one object serving all of its mounts: it keeps no
// per-mount key material in memory (keys are read through the barrier for
// each operation and dropped), so sealing zeroizes everything in one
// place, the barrier.
package engine

import (
	"context"
	"slices"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// The errors engines, the barrier and the mount table answer with.
var (
	// ErrSealed: the barrier is sealed (503 / Unavailable).
	ErrSealed = apierr.New(apierr.Unavailable, "metacrypt is sealed")
	// ErrNotFound: no such mount, key, issuer, certificate...
	ErrNotFound = apierr.New(apierr.NotFound, "not found")
	// ErrConflict: it exists already.
	ErrConflict = apierr.New(apierr.Conflict, "already exists")
	// ErrDenied: the policy refuses the caller.
	ErrDenied = apierr.New(apierr.Denied, "permission denied")
	// ErrUnauthenticated: there is no caller.
	ErrUnauthenticated = apierr.New(apierr.Unauthenticated, "authentication required")
	// ErrPrecondition: the request does not fit the current state
	// (renewing a revoked certificate, issuing without a root).
	ErrPrecondition = apierr.New(apierr.Precondition, "precondition failed")
)

// Caller is who asks for an operation: an MCIAS identity.
type Caller struct {
	// Username is the MCIAS account name; Subject its stable id.
	Username    string
	Subject     string
	AccountType string
	Roles       []string
}

// RoleAdmin is the MCIAS role that bypasses Metacrypt's policy.
const RoleAdmin = "admin"

// IsAdmin reports whether the caller has the admin role.
func (c Caller) IsAdmin() bool { return slices.Contains(c.Roles, RoleAdmin) }

// Storage is one mount's view of the barrier: values addressed by (kind,
// key), encrypted under the mount's data key with the row's identity as
// additional data. Every method fails with ErrSealed while sealed; Get of
// a missing value is ErrNotFound.
type Storage interface {
	Get(ctx context.Context, kind, key string) ([]byte, error)
	Put(ctx context.Context, kind, key string, value []byte) error
	Delete(ctx context.Context, kind, key string) error
	List(ctx context.Context, kind string) ([]string, error)
}

// Mount is a mounted engine instance: its identity and its storage.
type Mount struct {
	// ID is the mount's stable identifier (the storage and AAD key);
	// Name what callers use.
	ID, Name, Type string
	Storage        Storage
}

// Request is one generic engine request (POST /v1/engine/request).
type Request struct {
	Caller    Caller
	Mount     Mount
	Operation string
	// Path is the operation's resource, if given ("issuer/services").
	Path string
	// Data is the operation's fields as decoded JSON.
	Data map[string]any
}

// Engine is an engine type: it answers generic requests for its mounts
// and does its periodic work.
type Engine interface {
	// Type is the mount type it serves ("ca").
	Type() string
	// Handle answers a generic request for one of its mounts.
	Handle(ctx context.Context, r Request) (map[string]any, error)
	// Periodic does time-driven work (CRL refresh) for its mounts; it is
	// called while unsealed only.
	Periodic(ctx context.Context, mounts []Mount) error
}

// Registry maps mount types to engines.
type Registry struct {
	engines map[string]Engine
}

// NewRegistry registers the given engines by type.
func NewRegistry(engines ...Engine) *Registry {
	r := &Registry{engines: map[string]Engine{}}
	for _, e := range engines {
		r.engines[e.Type()] = e
	}
	return r
}

// Register adds an engine (replacing one of the same type).
func (r *Registry) Register(e Engine) { r.engines[e.Type()] = e }

// Get is the engine for a mount type.
func (r *Registry) Get(typ string) (Engine, bool) {
	e, ok := r.engines[typ]
	return e, ok
}

// Types lists the registered types, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.engines))
	for t := range r.engines {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
