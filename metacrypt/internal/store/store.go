package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

var migrations = []db.Migration{
	{Version: 1, Name: "barrier, mounts and CA material", Up: func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range []string{
			// The one seal row: the master key wrapped under the key
			// derived from the unseal password, and the unseal throttle.
			`CREATE TABLE seal_state (
				id           INTEGER PRIMARY KEY CHECK (id = 1),
				key_version  INTEGER NOT NULL,
				salt         BLOB NOT NULL,
				params       TEXT NOT NULL,
				wrapped_mek  BLOB NOT NULL,
				created_at   TEXT NOT NULL,
				updated_at   TEXT NOT NULL
			)`,
			`CREATE TABLE unseal_failures (
				id           INTEGER PRIMARY KEY CHECK (id = 1),
				failures     INTEGER NOT NULL,
				last_failure TEXT NOT NULL
			)`,
			// One data key per owner (a mount's id, or "sys"), wrapped
			// under the master key of key_version.
			`CREATE TABLE data_keys (
				owner       TEXT PRIMARY KEY,
				key_version INTEGER NOT NULL,
				wrapped     BLOB NOT NULL
			)`,
			`CREATE TABLE mounts (
				id         TEXT PRIMARY KEY REFERENCES data_keys(owner),
				name       TEXT NOT NULL UNIQUE,
				type       TEXT NOT NULL,
				created_at TEXT NOT NULL
			)`,
			`CREATE TABLE secrets (
				owner      TEXT NOT NULL REFERENCES data_keys(owner) ON DELETE CASCADE,
				kind       TEXT NOT NULL,
				key        TEXT NOT NULL,
				value      BLOB NOT NULL,
				updated_at TEXT NOT NULL,
				PRIMARY KEY (owner, kind, key)
			)`,
			`CREATE TABLE certificates (
				mount_id     TEXT NOT NULL REFERENCES mounts(id) ON DELETE CASCADE,
				serial       TEXT NOT NULL,
				issuer       TEXT NOT NULL,
				common_name  TEXT NOT NULL,
				dns_names    TEXT NOT NULL,
				ip_addresses TEXT NOT NULL,
				profile      TEXT NOT NULL,
				key_type     TEXT NOT NULL,
				not_before   INTEGER NOT NULL,
				not_after    INTEGER NOT NULL,
				requested_by TEXT NOT NULL,
				created_at   TEXT NOT NULL,
				revoked_at   TEXT,
				reason       INTEGER NOT NULL DEFAULT 0,
				renewed_from TEXT NOT NULL DEFAULT '',
				der          BLOB NOT NULL,
				PRIMARY KEY (mount_id, serial)
			)`,
			`CREATE INDEX certificates_issuer_not_after ON certificates(mount_id, issuer, not_after)`,
			`CREATE INDEX certificates_not_after ON certificates(mount_id, not_after)`,
			`CREATE TABLE certificate_names (
				mount_id TEXT NOT NULL,
				serial   TEXT NOT NULL,
				name     TEXT NOT NULL,
				PRIMARY KEY (mount_id, name, serial),
				FOREIGN KEY (mount_id, serial) REFERENCES certificates(mount_id, serial) ON DELETE CASCADE
			)`,
			// The public copy of the root ("root") and issuer
			// certificates; the barrier holds the authoritative one.
			`CREATE TABLE ca_certs (
				mount_id TEXT NOT NULL REFERENCES mounts(id) ON DELETE CASCADE,
				name     TEXT NOT NULL,
				der      BLOB NOT NULL,
				PRIMARY KEY (mount_id, name)
			)`,
			`CREATE TABLE crls (
				mount_id    TEXT NOT NULL REFERENCES mounts(id) ON DELETE CASCADE,
				issuer      TEXT NOT NULL,
				number      INTEGER NOT NULL,
				this_update TEXT NOT NULL,
				next_update TEXT NOT NULL,
				der         BLOB NOT NULL,
				PRIMARY KEY (mount_id, issuer)
			)`,
		} {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}},
	{Version: 2, Name: "SSH CA public material", Up: func(ctx context.Context, tx *sql.Tx) error {
		// The public copy of an SSH mount's CA key and KRL, which the
		// barrier holds authoritatively, for the public endpoints while
		// sealed.
		_, err := tx.ExecContext(ctx, `CREATE TABLE ssh_public (
			mount_id         TEXT PRIMARY KEY REFERENCES mounts(id) ON DELETE CASCADE,
			key_type         TEXT NOT NULL,
			public_key       TEXT NOT NULL,
			fingerprint      TEXT NOT NULL,
			created_at       TEXT NOT NULL,
			krl_version      INTEGER NOT NULL,
			krl_generated_at TEXT NOT NULL,
			krl              BLOB NOT NULL
		)`)
		return err
	}},
}

// Store is the Metacrypt database.
type Store struct {
	db  *db.DB
	now func() time.Time
	// write is held (one token) by the transaction or statement writing.
	// SQLite lets one writer in at a time and makes the others poll for
	// the lock, sleeping 1, 2, 5, 10... up to 100 ms between tries (its
	// busy handler), which under concurrent issuance leaves the CPU idle
	// and the latency long; queueing this process's writers here hands
	// the lock on at once, in order. Other processes still meet the busy
	// timeout.
	write chan struct{}
}

// Open opens (creating and migrating) the database at path.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	d, err := db.Open(ctx, path, db.Options{Logger: logger, Migrations: migrations})
	if err != nil {
		return nil, err
	}
	return &Store{db: d, now: time.Now, write: make(chan struct{}, 1)}, nil
}

// DB is the database, for snapshots and health checks.
func (s *Store) DB() *db.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// SealState is the seal row.
type SealState struct {
	KeyVersion int64
	Salt       []byte
	// Params is the Argon2id parameters as JSON.
	Params     []byte
	WrappedMEK []byte
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// SealState reads the seal row; engine.ErrNotFound before init.
func (s *Store) SealState(ctx context.Context) (SealState, error) {
	var st SealState
	err := s.db.QueryRowContext(ctx, `SELECT key_version, salt, params, wrapped_mek, created_at, updated_at FROM seal_state WHERE id = 1`).
		Scan(&st.KeyVersion, &st.Salt, &st.Params, &st.WrappedMEK, db.Time(&st.CreatedAt), db.Time(&st.UpdatedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return SealState{}, engine.ErrNotFound
	}
	if err != nil {
		return SealState{}, fmt.Errorf("read seal state: %w", err)
	}
	return st, nil
}

// Initialize writes the seal row and the system data key in one
// transaction; engine.ErrConflict if the barrier is initialized already.
func (s *Store) Initialize(ctx context.Context, st SealState, sysOwner string, wrappedSys []byte) error {
	return s.tx(ctx, "initialize", func(tx *sql.Tx) error {
		now := s.now()
		_, err := tx.ExecContext(ctx, `INSERT INTO seal_state (id, key_version, salt, params, wrapped_mek, created_at, updated_at)
			VALUES (1, ?, ?, ?, ?, ?, ?)`, st.KeyVersion, st.Salt, st.Params, st.WrappedMEK, db.Time(&now), db.Time(&now))
		if db.IsUnique(err) {
			return fmt.Errorf("%w: the barrier is initialized", engine.ErrConflict)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO data_keys (owner, key_version, wrapped) VALUES (?, ?, ?)`, sysOwner, st.KeyVersion, wrappedSys)
		return err
	})
}

// ReplaceMEK stores a re-wrapped master key (a password change): the
// version and every data key stay as they are. It fails if the stored
// version is no longer version, so two changes cannot interleave.
func (s *Store) ReplaceMEK(ctx context.Context, version int64, salt, params, wrapped []byte) error {
	return s.tx(ctx, "change password", func(tx *sql.Tx) error {
		now := s.now()
		res, err := tx.ExecContext(ctx, `UPDATE seal_state SET salt = ?, params = ?, wrapped_mek = ?, updated_at = ? WHERE id = 1 AND key_version = ?`,
			salt, params, wrapped, db.Time(&now), version)
		if err != nil {
			return err
		}
		return oneRow(res, "seal state changed concurrently")
	})
}

// Rotate stores a new master key (version+1) and every data key
// re-wrapped under it, in one transaction. keys must hold every owner in
// data_keys, so no data key is left wrapped under the old master key.
func (s *Store) Rotate(ctx context.Context, oldVersion int64, wrappedMEK []byte, keys map[string][]byte) error {
	return s.tx(ctx, "rotate", func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM data_keys`).Scan(&n); err != nil {
			return err
		}
		if n != len(keys) {
			return fmt.Errorf("%d data keys stored, %d re-wrapped", n, len(keys))
		}
		now := s.now()
		res, err := tx.ExecContext(ctx, `UPDATE seal_state SET key_version = key_version + 1, wrapped_mek = ?, updated_at = ? WHERE id = 1 AND key_version = ?`,
			wrappedMEK, db.Time(&now), oldVersion)
		if err != nil {
			return err
		}
		if err := oneRow(res, "seal state changed concurrently"); err != nil {
			return err
		}
		for owner, w := range keys {
			res, err := tx.ExecContext(ctx, `UPDATE data_keys SET wrapped = ?, key_version = ? WHERE owner = ?`, w, oldVersion+1, owner)
			if err != nil {
				return err
			}
			if err := oneRow(res, "data key "+owner+" missing"); err != nil {
				return err
			}
		}
		return nil
	})
}

// DataKeys returns every wrapped data key by owner, with the master key
// version it is wrapped under.
func (s *Store) DataKeys(ctx context.Context) (map[string][]byte, map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT owner, key_version, wrapped FROM data_keys`)
	if err != nil {
		return nil, nil, fmt.Errorf("read data keys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	keys, versions := map[string][]byte{}, map[string]int64{}
	for rows.Next() {
		var owner string
		var v int64
		var w []byte
		if err := rows.Scan(&owner, &v, &w); err != nil {
			return nil, nil, fmt.Errorf("read data keys: %w", err)
		}
		keys[owner], versions[owner] = w, v
	}
	return keys, versions, rows.Err()
}

// Failures is the unseal throttle's count of consecutive failures and
// the time of the last.
func (s *Store) Failures(ctx context.Context) (int, time.Time, error) {
	var n int
	var last time.Time
	err := s.db.QueryRowContext(ctx, `SELECT failures, last_failure FROM unseal_failures WHERE id = 1`).Scan(&n, db.Time(&last))
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("read unseal failures: %w", err)
	}
	return n, last, nil
}

// RecordFailure counts one more failed attempt at now.
func (s *Store) RecordFailure(ctx context.Context, now time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO unseal_failures (id, failures, last_failure) VALUES (1, 1, ?)
		ON CONFLICT (id) DO UPDATE SET failures = failures + 1, last_failure = excluded.last_failure`, db.Time(&now))
	if err != nil {
		return fmt.Errorf("record unseal failure: %w", err)
	}
	return nil
}

// ResetFailures clears the throttle after a successful attempt.
func (s *Store) ResetFailures(ctx context.Context) error {
	if _, err := s.exec(ctx, `DELETE FROM unseal_failures`); err != nil {
		return fmt.Errorf("reset unseal failures: %w", err)
	}
	return nil
}

// row, exec and query run q as a statement prepared once for the life of
// the store (mcdsl/db.Prepared): what runs on every request (mounts,
// secrets, certificate records) skips SQLite's parse of the SQL text.
func (s *Store) row(ctx context.Context, q string, args ...any) interface{ Scan(...any) error } {
	st, err := s.db.Prepared(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// exec is for writes: it takes the write lock for the statement.
func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := s.db.Prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	if err := s.lockWrite(ctx); err != nil {
		return nil, err
	}
	defer s.unlockWrite()
	return st.ExecContext(ctx, args...)
}

func (s *Store) lockWrite(ctx context.Context) error {
	select {
	case s.write <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) unlockWrite() { <-s.write }

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.db.Prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// txExec is exec inside tx.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	st, err := s.db.Prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// errRow is a row whose statement did not prepare.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// tx runs fn in a write transaction, holding the write lock.
func (s *Store) tx(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	if err := s.lockWrite(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer s.unlockWrite()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		if errors.Is(err, engine.ErrConflict) || errors.Is(err, engine.ErrNotFound) {
			return err
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func oneRow(res sql.Result, msg string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return errors.New(msg)
	}
	return nil
}
