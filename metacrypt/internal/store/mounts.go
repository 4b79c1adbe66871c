package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// MountRow is a row of the mount table.
type MountRow struct {
	ID, Name, Type string
	CreatedAt      time.Time
}

// CreateMount adds a mount and its wrapped data key in one transaction;
// engine.ErrConflict if the name is taken.
func (s *Store) CreateMount(ctx context.Context, m MountRow, keyVersion int64, wrapped []byte) error {
	return s.tx(ctx, "create mount", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO data_keys (owner, key_version, wrapped) VALUES (?, ?, ?)`, m.ID, keyVersion, wrapped); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO mounts (id, name, type, created_at) VALUES (?, ?, ?, ?)`, m.ID, m.Name, m.Type, db.Time(&m.CreatedAt))
		if db.IsUnique(err) {
			return fmt.Errorf("%w: mount %s", engine.ErrConflict, m.Name)
		}
		return err
	})
}

// DeleteMount deletes a mount, its data key, its secrets and its CA
// material.
func (s *Store) DeleteMount(ctx context.Context, id string) error {
	return s.tx(ctx, "delete mount", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM mounts WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return engine.ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM data_keys WHERE owner = ?`, id)
		return err
	})
}

// Mounts lists the mounts by name.
func (s *Store) Mounts(ctx context.Context) ([]MountRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, type, created_at FROM mounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []MountRow
	for rows.Next() {
		var m MountRow
		if err := rows.Scan(&m.ID, &m.Name, &m.Type, db.Time(&m.CreatedAt)); err != nil {
			return nil, fmt.Errorf("list mounts: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Mount finds a mount by name; engine.ErrNotFound if there is none.
func (s *Store) Mount(ctx context.Context, name string) (MountRow, error) {
	var m MountRow
	err := s.row(ctx, `SELECT id, name, type, created_at FROM mounts WHERE name = ?`, name).
		Scan(&m.ID, &m.Name, &m.Type, db.Time(&m.CreatedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return MountRow{}, fmt.Errorf("%w: mount %s", engine.ErrNotFound, name)
	}
	if err != nil {
		return MountRow{}, fmt.Errorf("read mount: %w", err)
	}
	return m, nil
}

// Secret reads one encrypted value; engine.ErrNotFound if absent.
func (s *Store) Secret(ctx context.Context, owner, kind, key string) ([]byte, error) {
	var v []byte
	err := s.row(ctx, `SELECT value FROM secrets WHERE owner = ? AND kind = ? AND key = ?`, owner, kind, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, engine.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	return v, nil
}

// PutSecret writes one encrypted value.
func (s *Store) PutSecret(ctx context.Context, owner, kind, key string, value []byte) error {
	now := s.now()
	_, err := s.exec(ctx, `INSERT INTO secrets (owner, kind, key, value, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (owner, kind, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		owner, kind, key, value, db.Time(&now))
	if err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	return nil
}

// DeleteSecret removes one value (absent is not an error).
func (s *Store) DeleteSecret(ctx context.Context, owner, kind, key string) error {
	if _, err := s.exec(ctx, `DELETE FROM secrets WHERE owner = ? AND kind = ? AND key = ?`, owner, kind, key); err != nil {
		return fmt.Errorf("delete secret: %w", err)
	}
	return nil
}

// SecretKeys lists the keys of one kind, sorted.
func (s *Store) SecretKeys(ctx context.Context, owner, kind string) ([]string, error) {
	rows, err := s.query(ctx, `SELECT key FROM secrets WHERE owner = ? AND kind = ? ORDER BY key`, owner, kind)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
