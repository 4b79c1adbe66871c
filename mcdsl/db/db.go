package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// FileMode is the permission applied to database files.
const FileMode os.FileMode = 0o600

// chmod is os.Chmod; a variable so tests can make it fail the way it does
// under rootless container user namespaces, which cannot be staged here.
var chmod = os.Chmod

// Migration is one ordered schema change. Up runs inside a transaction that
// also records the version, so a migration is applied exactly once or not at
// all.
type Migration struct {
	Version int
	Name    string
	Up      func(ctx context.Context, tx *sql.Tx) error
}

// Options configures Open.
type Options struct {
	// Logger receives warnings (such as a failed chmod). Nil discards them.
	Logger *slog.Logger
	// Migrations are applied in Version order after the database opens.
	Migrations []Migration
}

// maxIdleConns is how many pooled connections stay open between uses.
// database/sql keeps 2 by default and closes the rest as they come back,
// so a service answering a few requests at once opens and closes SQLite
// connections (file open, pragmas, schema read, and the statements
// prepared there) all the time; 16 covers the concurrency of a small
// host's services. Idle ones close after connMaxIdleTime.
const (
	maxIdleConns    = 16
	connMaxIdleTime = 5 * time.Minute
)

// DB is an open platform database.
type DB struct {
	*sql.DB
	path string
	// stmts caches the statements of Prepared by query text.
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

// Open opens (creating if needed) the SQLite database at path, applies the
// platform pragmas, makes the file mode 0600 on a best-effort basis and runs
// the given migrations.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("open database: empty path")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Writers take the write lock when the transaction begins, so two
	// writers queue on busy_timeout instead of failing on lock upgrade.
	q.Set("_txlock", "immediate")
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	sqldb.SetMaxIdleConns(maxIdleConns)
	sqldb.SetConnMaxIdleTime(connMaxIdleTime)
	if err := chmod(path, FileMode); err != nil {
		// Never fatal: under rootless user namespaces the file can belong to
		// a mapped UID that may not chmod it, and the service must still run.
		logger.Warn("could not set database file mode", "path", path, "mode", FileMode.String(), "error", err)
	}
	d := &DB{DB: sqldb, path: path}
	if len(opts.Migrations) > 0 {
		if err := d.Migrate(ctx, opts.Migrations); err != nil {
			_ = sqldb.Close()
			return nil, err
		}
	}
	return d, nil
}

// Path returns the database file path.
func (d *DB) Path() string { return d.path }

// Prepared returns query as a statement prepared once and kept for the
// life of d, for the statements a service runs on every request: SQLite
// then parses the SQL text once per pooled connection instead of at every
// call. The statement is safe for concurrent use; use it in a
// transaction with tx.StmtContext. Do not close it: Close does.
func (d *DB) Prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	d.mu.RLock()
	st, ok := d.stmts[query]
	d.mu.RUnlock()
	if ok {
		return st, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, ok := d.stmts[query]; ok {
		return st, nil
	}
	st, err := d.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if d.stmts == nil {
		d.stmts = map[string]*sql.Stmt{}
	}
	d.stmts[query] = st
	return st, nil
}

// Close closes the prepared statements and the database.
func (d *DB) Close() error {
	d.mu.Lock()
	for _, st := range d.stmts {
		_ = st.Close()
	}
	d.stmts = nil
	d.mu.Unlock()
	return d.DB.Close()
}

// Migrate applies every migration not yet recorded in schema_migrations, in
// version order, each in its own transaction.
func (d *DB) Migrate(ctx context.Context, migrations []Migration) error {
	for i, m := range migrations {
		if m.Version <= 0 || m.Up == nil {
			return fmt.Errorf("migrate: migration %d (%q) needs a positive version and an Up function", i, m.Name)
		}
		if i > 0 && m.Version <= migrations[i-1].Version {
			return fmt.Errorf("migrate: versions must increase: %d follows %d", m.Version, migrations[i-1].Version)
		}
	}
	if _, err := d.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if err := d.apply(ctx, m); err != nil {
			return fmt.Errorf("migrate: %d %s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

func (d *DB) apply(ctx context.Context, m Migration) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	// Checked inside the write transaction so two processes opening the
	// same file cannot both apply a migration.
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if err := m.Up(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	return tx.Commit()
}

// AppliedVersions lists the migration versions recorded in the database.
func (d *DB) AppliedVersions(ctx context.Context) ([]int, error) {
	rows, err := d.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("list migrations: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Snapshot writes a consistent copy of the database to dest with VACUUM
// INTO. Writers may continue meanwhile. The copy is written beside dest and
// renamed into place, so dest is either absent or complete.
func (d *DB) Snapshot(ctx context.Context, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return fmt.Errorf("snapshot %s: %w", dest, err)
	}
	tmp := dest + ".partial"
	_ = os.Remove(tmp)
	if _, err := d.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", dest, err)
	}
	if err := chmod(tmp, FileMode); err != nil && !errors.Is(err, os.ErrPermission) {
		_ = os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", dest, err)
	}
	return nil
}
