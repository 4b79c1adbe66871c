package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// Store is MCR's database.
type Store struct {
	db  *db.DB
	now func() time.Time
}

// Open opens (creating and migrating) the database at path.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	d, err := db.Open(ctx, path, db.Options{Logger: logger, Migrations: migrations})
	if err != nil {
		return nil, err
	}
	return &Store{db: d, now: time.Now}, nil
}

// SetClock replaces the store's clock (tests of the GC grace window).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Now is the store's current time.
func (s *Store) Now() time.Time { return s.now().UTC() }

// DB is the underlying database (snapshots, health).
func (s *Store) DB() *db.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Tx runs fn in one write transaction (BEGIN IMMEDIATE): committed when fn
// returns nil, rolled back otherwise.
func (s *Store) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) ts() string { return db.FormatTime(s.now()) }

// ErrNoRepository is NAME_UNKNOWN: the repository does not exist.
var ErrNoRepository = oci.NewError(oci.ErrNameUnknown, "repository name not known to registry")

// repoID is the id of repository name, or ErrNoRepository.
func repoID(ctx context.Context, q queryer, name string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNoRepository
	}
	return id, err
}

// ensureRepo returns repository name's id, creating it.
func (s *Store) ensureRepo(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	id, err := repoID(ctx, tx, name)
	if !errors.Is(err, ErrNoRepository) {
		return id, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO repositories (name, created_at) VALUES (?, ?)`, name, s.ts())
	if err != nil {
		return 0, fmt.Errorf("create repository %s: %w", name, err)
	}
	return res.LastInsertId()
}

// EnsureRepo creates repository name if it does not exist.
func (s *Store) EnsureRepo(ctx context.Context, name string) error {
	return s.Tx(ctx, func(tx *sql.Tx) error {
		_, err := s.ensureRepo(ctx, tx, name)
		return err
	})
}
