// Package mount is Metacrypt's mount table and router: it creates and
// deletes mounts (each with its own data key in the barrier), resolves a
// mount name to its storage view, sends generic requests to the mount's
// engine and drives the engines' periodic work while unsealed.
package mount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Table is the mount table.
type Table struct {
	st  *store.Store
	b   *barrier.Barrier
	reg *engine.Registry
	now func() time.Time
}

// New returns the mount table over the store and barrier, with the
// engines of reg.
func New(st *store.Store, b *barrier.Barrier, reg *engine.Registry) *Table {
	return &Table{st: st, b: b, reg: reg, now: time.Now}
}

// Create mounts an engine of type typ under name, with a new data key.
func (t *Table) Create(ctx context.Context, name, typ string) (store.MountRow, error) {
	if !nameRE.MatchString(name) {
		return store.MountRow{}, apierr.InvalidField("name", "%q is not a valid mount name (lower-case letters, digits and hyphens, 1-63 characters)", name)
	}
	if _, ok := t.reg.Get(typ); !ok {
		return store.MountRow{}, apierr.InvalidField("type", "unknown engine type %q (%s)", typ, strings.Join(t.reg.Types(), ", "))
	}
	if t.b.Sealed() {
		return store.MountRow{}, engine.ErrSealed
	}
	m := store.MountRow{ID: uuid.NewString(), Name: name, Type: typ, CreatedAt: t.now().UTC()}
	if err := t.b.AddMount(ctx, m); err != nil {
		return store.MountRow{}, err
	}
	return m, nil
}

// Delete deletes a mount with everything in it.
func (t *Table) Delete(ctx context.Context, name string) error {
	if t.b.Sealed() {
		return engine.ErrSealed
	}
	m, err := t.st.Mount(ctx, name)
	if err != nil {
		return err
	}
	return t.b.RemoveMount(ctx, m.ID)
}

// List lists the mounts.
func (t *Table) List(ctx context.Context) ([]store.MountRow, error) {
	return t.st.Mounts(ctx)
}

// Resolve finds a mount by name, with its storage view (whose operations
// fail with engine.ErrSealed while sealed).
func (t *Table) Resolve(ctx context.Context, name string) (engine.Mount, error) {
	if !nameRE.MatchString(name) {
		return engine.Mount{}, apierr.InvalidField("mount", "%q is not a valid mount name", name)
	}
	m, err := t.st.Mount(ctx, name)
	if err != nil {
		return engine.Mount{}, err
	}
	return engine.Mount{ID: m.ID, Name: m.Name, Type: m.Type, Storage: t.b.View(m.ID)}, nil
}

// Request sends a generic request to its mount's engine.
func (t *Table) Request(ctx context.Context, mount string, r engine.Request) (map[string]any, error) {
	if t.b.Sealed() {
		return nil, engine.ErrSealed
	}
	if mount == "" {
		return nil, apierr.InvalidField("mount", "required")
	}
	if r.Operation == "" {
		return nil, apierr.InvalidField("operation", "required")
	}
	m, err := t.Resolve(ctx, mount)
	if err != nil {
		return nil, err
	}
	e, ok := t.reg.Get(m.Type)
	if !ok {
		return nil, fmt.Errorf("mount %s has type %s, which no engine serves", m.Name, m.Type)
	}
	r.Mount = m
	if r.Data == nil {
		r.Data = map[string]any{}
	}
	return e.Handle(ctx, r)
}

// Periodic runs every engine's periodic work for its mounts; it does
// nothing while sealed.
func (t *Table) Periodic(ctx context.Context) error {
	if t.b.Sealed() {
		return nil
	}
	rows, err := t.st.Mounts(ctx)
	if err != nil {
		return err
	}
	byType := map[string][]engine.Mount{}
	for _, m := range rows {
		byType[m.Type] = append(byType[m.Type], engine.Mount{ID: m.ID, Name: m.Name, Type: m.Type, Storage: t.b.View(m.ID)})
	}
	var errs []error
	for typ, mounts := range byType {
		e, ok := t.reg.Get(typ)
		if !ok {
			continue
		}
		if err := e.Periodic(ctx, mounts); err != nil && !errors.Is(err, engine.ErrSealed) {
			errs = append(errs, fmt.Errorf("%s engine: %w", typ, err))
		}
	}
	return errors.Join(errs...)
}

// Run calls Periodic every interval until ctx ends, logging failures (a
// failed refresh must not stop the service).
func (t *Table) Run(ctx context.Context, interval time.Duration, logger *slog.Logger) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := t.Periodic(ctx); err != nil && ctx.Err() == nil {
			logger.Error("periodic engine work", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
