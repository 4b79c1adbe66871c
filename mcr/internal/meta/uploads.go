package meta

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// ErrUploadUnknown is BLOB_UPLOAD_UNKNOWN: no such upload session in this repository.
var ErrUploadUnknown = oci.NewError(oci.ErrBlobUploadUnknown, "blob upload unknown to registry")

// Upload is an upload session: the bytes received so far (in the staging
// file) and the hash state over them.
type Upload struct {
	ID        string
	Repo      string
	Algorithm string
	Size      int64
	HashState []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// CreateUpload records a new session in repo (creating the repository).
func (s *Store) CreateUpload(ctx context.Context, u Upload) error {
	return s.Tx(ctx, func(tx *sql.Tx) error {
		id, err := s.ensureRepo(ctx, tx, u.Repo)
		if err != nil {
			return err
		}
		now := s.ts()
		_, err = tx.ExecContext(ctx, `INSERT INTO uploads (id, repository_id, algorithm, size, hash_state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			u.ID, id, u.Algorithm, u.Size, u.HashState, now, now)
		return err
	})
}

// GetUpload returns session id of repo, or ErrUploadUnknown.
func (s *Store) GetUpload(ctx context.Context, repo, id string) (Upload, error) {
	var u Upload
	err := s.db.QueryRowContext(ctx, `
SELECT u.id, r.name, u.algorithm, u.size, u.hash_state, u.created_at, u.updated_at
FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.id = ? AND r.name = ?`, id, repo).
		Scan(&u.ID, &u.Repo, &u.Algorithm, &u.Size, &u.HashState, db.Time(&u.CreatedAt), db.Time(&u.UpdatedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return Upload{}, ErrUploadUnknown
	}
	return u, err
}

// UpdateUpload records the session's new size and hash state.
func (s *Store) UpdateUpload(ctx context.Context, id string, size int64, state []byte) error {
	return s.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE uploads SET size = ?, hash_state = ?, updated_at = ? WHERE id = ?`, size, state, s.ts(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrUploadUnknown
		}
		return nil
	})
}

// TouchUpload marks the session active now.
func (s *Store) TouchUpload(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE uploads SET updated_at = ? WHERE id = ?`, s.ts(), id)
		return err
	})
}

// DeleteUpload removes a session's row; it reports whether it existed.
func (s *Store) DeleteUpload(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, id)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		ok = n > 0
		return nil
	})
	return ok, err
}

// StaleUploads lists sessions idle since before cutoff.
func (s *Store) StaleUploads(ctx context.Context, cutoff time.Time) ([]Upload, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT u.id, r.name, u.algorithm, u.size, u.created_at, u.updated_at
FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.updated_at < ? ORDER BY u.updated_at`, db.FormatTime(cutoff))
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []Upload
	for rows.Next() {
		var u Upload
		if err := rows.Scan(&u.ID, &u.Repo, &u.Algorithm, &u.Size, db.Time(&u.CreatedAt), db.Time(&u.UpdatedAt)); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UploadIDs lists every session id (to find staging files without one).
func (s *Store) UploadIDs(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM uploads`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}
