// Package enginetest is what engine tests share: an in-memory
// engine.Storage that can be sealed and snapshotted, an environment of
// mounts over it with an ACL evaluated by the policy's own rule code, and
// a fixture on the real barrier, SQLite store and mount table.
//
// The in-memory environment keeps engine tests fast and lets them seal,
// snapshot and add rules without a barrier: rules are evaluated with
// policy.EvaluateRules, so everything about a rule (operations, subjects,
// mount and resource globs, priorities, deny first, admin bypass) is the
// policy's code.
package enginetest

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/mount"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
	"git.metacircular.net/metacircular/metacrypt/internal/seal"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// Storage is an in-memory engine.Storage with the barrier's semantics:
// every method fails with engine.ErrSealed while sealed, Get of a missing
// value is engine.ErrNotFound, Delete of a missing value is not an error,
// List is sorted, and values are copied in and out.
type Storage struct {
	sealed *atomic.Bool
	mu     sync.Mutex
	data   map[[2]string][]byte
}

var _ engine.Storage = (*Storage)(nil)

// NewStorage is an empty, unsealed storage.
func NewStorage() *Storage {
	return &Storage{sealed: new(atomic.Bool), data: map[[2]string][]byte{}}
}

// Get implements engine.Storage.
func (s *Storage) Get(_ context.Context, kind, key string) ([]byte, error) {
	if s.sealed.Load() {
		return nil, engine.ErrSealed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[[2]string{kind, key}]
	if !ok {
		return nil, engine.ErrNotFound
	}
	return slices.Clone(v), nil
}

// Put implements engine.Storage.
func (s *Storage) Put(_ context.Context, kind, key string, value []byte) error {
	if s.sealed.Load() {
		return engine.ErrSealed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[[2]string{kind, key}] = slices.Clone(value)
	return nil
}

// Delete implements engine.Storage.
func (s *Storage) Delete(_ context.Context, kind, key string) error {
	if s.sealed.Load() {
		return engine.ErrSealed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, [2]string{kind, key})
	return nil
}

// List implements engine.Storage.
func (s *Storage) List(_ context.Context, kind string) ([]string, error) {
	if s.sealed.Load() {
		return nil, engine.ErrSealed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.data {
		if k[0] == kind {
			out = append(out, k[1])
		}
	}
	slices.Sort(out)
	return out, nil
}

// Snapshot is a copy of everything stored, keyed "kind/key", for tests
// asserting that a request wrote nothing.
func (s *Storage) Snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.data))
	for k, v := range s.data {
		out[k[0]+"/"+k[1]] = string(v)
	}
	return out
}

// Env is a set of mounts on in-memory storage sharing one seal, and an
// ACL. It implements the engines' Mounts (Resolve) and Authorizer
// (Allow) dependencies and their Sealed function.
type Env struct {
	sealed   atomic.Bool
	mu       sync.Mutex
	mounts   map[string]engine.Mount
	storages map[string]*Storage
	rules    []policy.Rule
}

// New is an empty, unsealed environment.
func New() *Env { return &Env{mounts: map[string]engine.Mount{}, storages: map[string]*Storage{}} }

// Mount adds a mount of type typ with fresh storage and returns it.
func (e *Env) Mount(name, typ string) engine.Mount {
	st := NewStorage()
	st.sealed = &e.sealed
	m := engine.Mount{ID: "id-" + name, Name: name, Type: typ, Storage: st}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mounts[name], e.storages[name] = m, st
	return m
}

// Storage is a mount's storage.
func (e *Env) Storage(name string) *Storage {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.storages[name]
}

// Resolve finds a mount by name, sealed or not, as mount.Table does.
func (e *Env) Resolve(_ context.Context, name string) (engine.Mount, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, ok := e.mounts[name]
	if !ok {
		return engine.Mount{}, engine.ErrNotFound
	}
	return m, nil
}

// Sealed reports the environment's seal.
func (e *Env) Sealed() bool { return e.sealed.Load() }

// Seal seals every mount's storage.
func (e *Env) Seal() { e.sealed.Store(true) }

// Unseal opens every mount's storage again.
func (e *Env) Unseal() { e.sealed.Store(false) }

// Rule adds an ACL rule (IDs are assigned in order).
func (e *Env) Rule(r policy.Rule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r.ID = int64(len(e.rules) + 1)
	e.rules = append(e.rules, r)
	policy.SortRules(e.rules)
}

// Allow decides as policy.Engine.Allow does: no caller is
// unauthenticated, admins pass, the policy (behind the seal) is read,
// then the rules decide with default deny.
func (e *Env) Allow(_ context.Context, c engine.Caller, mount, op, resource string) error {
	if c.Username == "" {
		return engine.ErrUnauthenticated
	}
	if c.IsAdmin() {
		return nil
	}
	if e.Sealed() {
		return engine.ErrSealed
	}
	e.mu.Lock()
	rules := slices.Clone(e.rules)
	e.mu.Unlock()
	if d := policy.EvaluateRules(rules, c, mount, op, resource); !d.Allowed {
		return engine.ErrDenied
	}
	return nil
}

// Password is the unseal password of a Real fixture.
const Password = "a long unseal password" //nolint:gosec // a test fixture's, not a credential

// Real is Metacrypt's storage stack as the server builds it: SQLite
// store, barrier (initialized and unsealed), mount table routing generic
// requests by type, and the policy in the barrier's sys view.
type Real struct {
	Store    *store.Store
	Barrier  *barrier.Barrier
	Registry *engine.Registry
	Mounts   *mount.Table
	Policy   *policy.Engine
}

// NewReal builds the stack in a temporary directory. Register the engine
// under test in Registry before creating its mounts.
func NewReal(t testing.TB) *Real {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "metacrypt.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b := barrier.New(st, barrier.Options{Params: seal.Params{MemoryKiB: 8192, Iterations: 1, Parallelism: 1}})
	if err := b.Init(ctx, []byte(Password)); err != nil {
		t.Fatal(err)
	}
	reg := engine.NewRegistry()
	return &Real{Store: st, Barrier: b, Registry: reg, Mounts: mount.New(st, b, reg), Policy: policy.New(b.View(barrier.SysOwner))}
}

// Value is a generic response's field as a T (its zero value if absent or
// of another type), for tests reading decoded JSON.
func Value[T any](m map[string]any, key string) T {
	v, _ := m[key].(T)
	return v
}
