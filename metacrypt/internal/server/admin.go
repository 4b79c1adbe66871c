package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// OpenDB opens Metacrypt's database with its migrations applied (for the
// snapshot verb).
func OpenDB(ctx context.Context, cfg *Config) (*db.DB, error) {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return nil, err
	}
	return st.DB(), nil
}

// Init creates the database and, when password is not nil and the
// barrier is not initialized yet, sets the unseal password. It reports
// what it did on out.
func Init(ctx context.Context, cfg *Config, password []byte, out io.Writer) error {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	b := barrier.New(st, barrier.Options{Params: cfg.Seal.Params()})
	defer b.Seal()
	s, err := b.Status(ctx)
	if err != nil {
		return err
	}
	switch {
	case s.Initialized:
		fmt.Fprintf(out, "metacrypt: %s is initialized (key version %d); nothing changed\n", cfg.Database.Path, s.KeyVersion)
	case password == nil:
		fmt.Fprintf(out, "metacrypt: database %s ready; set the unseal password with metacryptctl init (or metacrypt init without --db-only)\n", cfg.Database.Path)
	default:
		if err := b.Init(ctx, password); err != nil {
			return err
		}
		fmt.Fprintf(out, "metacrypt: initialized %s; the server starts sealed: unseal it with metacryptctl unseal\n", cfg.Database.Path)
	}
	return nil
}

// Initialized reports whether the barrier has its unseal password.
func Initialized(ctx context.Context, cfg *Config) (bool, error) {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return false, err
	}
	defer func() { _ = st.Close() }()
	_, err = st.SealState(ctx)
	if errors.Is(err, engine.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

type mountSummary struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type summary struct {
	Database       string         `json:"database"`
	Initialized    bool           `json:"initialized"`
	KeyVersion     int64          `json:"key_version"`
	UnsealFailures int            `json:"unseal_failures"`
	Mounts         []mountSummary `json:"mounts"`
}

// Status prints what the database says: initialized or not, the master
// key version, failed unseal attempts and the mounts. Whether the running
// server is sealed is the server's to say (metacryptctl status).
func Status(ctx context.Context, cfg *Config, out io.Writer, asJSON bool) error {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	sum := summary{Database: cfg.Database.Path, Mounts: []mountSummary{}}
	seal, err := st.SealState(ctx)
	switch {
	case err == nil:
		sum.Initialized, sum.KeyVersion = true, seal.KeyVersion
	case !errors.Is(err, engine.ErrNotFound):
		return err
	}
	if sum.UnsealFailures, _, err = st.Failures(ctx); err != nil {
		return err
	}
	mounts, err := st.Mounts(ctx)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		sum.Mounts = append(sum.Mounts, mountSummary{Name: m.Name, Type: m.Type})
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	fmt.Fprintf(out, "database:        %s\ninitialized:     %v\nkey version:     %d\nunseal failures: %d\nmounts:          %d\n",
		sum.Database, sum.Initialized, sum.KeyVersion, sum.UnsealFailures, len(sum.Mounts))
	for _, m := range sum.Mounts {
		fmt.Fprintf(out, "  %s (%s)\n", m.Name, m.Type)
	}
	return nil
}
