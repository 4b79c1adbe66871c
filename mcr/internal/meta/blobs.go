package meta

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// ErrBlobUnknown is BLOB_UNKNOWN: the blob is not linked into the repository.
var ErrBlobUnknown = oci.NewError(oci.ErrBlobUnknown, "blob unknown to registry")

// RepoBlob returns the size of a blob linked into repo, or ErrBlobUnknown.
func (s *Store) RepoBlob(ctx context.Context, repo, digest string) (int64, error) {
	var size int64
	err := s.db.QueryRowContext(ctx, `
SELECT b.size FROM repository_blobs l
JOIN repositories r ON r.id = l.repository_id
JOIN blobs b ON b.digest = l.digest
WHERE r.name = ? AND l.digest = ?`, repo, digest).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrBlobUnknown
	}
	return size, err
}

// CommitBlob records a verified blob of size in repo. When the content
// store has no such blob yet, place is called inside the transaction to
// move the staged file into the store, so the rename and the row commit
// or fail together with respect to every other writer (and the GC, which
// removes files inside its own transactions). It reports whether the blob
// was already stored (the staged copy is then the caller's to remove).
func (s *Store) CommitBlob(ctx context.Context, repo, digest string, size int64, place func() error) (existed bool, err error) {
	err = s.Tx(ctx, func(tx *sql.Tx) error {
		id, err := s.ensureRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		now := s.ts()
		res, err := tx.ExecContext(ctx, `UPDATE blobs SET used_at = ? WHERE digest = ?`, now, digest)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			existed = true
		} else {
			if err := place(); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO blobs (digest, size, created_at, used_at) VALUES (?, ?, ?, ?)`,
				digest, size, now, now); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)`,
			id, digest, now)
		return err
	})
	return existed, err
}

// Mount links a stored blob into repo if it is linked into one of
// sources (or, with sources empty, if it is stored at all). It reports
// whether it linked the blob and its size.
func (s *Store) Mount(ctx context.Context, repo, digest string, sources []string) (bool, int64, error) {
	var ok bool
	var size int64
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT size FROM blobs WHERE digest = ?`, digest).Scan(&size)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found := len(sources) == 0
		for _, src := range sources {
			var one int
			err := tx.QueryRowContext(ctx, `
SELECT 1 FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id
WHERE r.name = ? AND l.digest = ?`, src, digest).Scan(&one)
			if err == nil {
				found = true
				break
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if !found {
			return nil
		}
		id, err := s.ensureRepo(ctx, tx, repo)
		if err != nil {
			return err
		}
		now := s.ts()
		if _, err := tx.ExecContext(ctx, `UPDATE blobs SET used_at = ? WHERE digest = ?`, now, digest); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)`,
			id, digest, now); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return ok, size, err
}

// UnlinkBlob removes a blob's link from repo (the content stays until the
// GC finds it unreferenced), or returns ErrBlobUnknown.
func (s *Store) UnlinkBlob(ctx context.Context, repo, digest string) error {
	return s.Tx(ctx, func(tx *sql.Tx) error {
		id, err := repoID(ctx, tx, repo)
		if err != nil {
			return ErrBlobUnknown
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?`, id, digest)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrBlobUnknown
		}
		return nil
	})
}

// BlobInfo is a stored blob.
type BlobInfo struct {
	Digest string
	Size   int64
	UsedAt time.Time
}

// UnreferencedBlobs lists stored blobs that no manifest references and
// that were last used before cutoff: the GC's candidates, re-checked one
// by one by SweepBlob.
func (s *Store) UnreferencedBlobs(ctx context.Context, cutoff time.Time) ([]BlobInfo, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT digest, size, used_at FROM blobs b WHERE used_at < ?
AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.digest = b.digest AND r.kind = 'blob')
ORDER BY digest`, db.FormatTime(cutoff))
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []BlobInfo
	for rows.Next() {
		var b BlobInfo
		if err := rows.Scan(&b.Digest, &b.Size, db.Time(&b.UsedAt)); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// SweepBlob deletes a GC candidate if, inside the transaction, it is still
// unreferenced and unused since cutoff: its row and links go, and remove
// (which moves the file out of the content store) runs before the commit.
// It reports whether the blob was deleted.
func (s *Store) SweepBlob(ctx context.Context, digest string, cutoff time.Time, remove func() error) (bool, error) {
	var deleted bool
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, `
SELECT COUNT(*) FROM blobs b WHERE digest = ? AND used_at < ?
AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.digest = b.digest AND r.kind = 'blob')`,
			digest, db.FormatTime(cutoff)).Scan(&n)
		if err != nil || n == 0 {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE digest = ?`, digest); err != nil {
			return err
		}
		if err := remove(); err != nil {
			return err
		}
		deleted = true
		return nil
	})
	return deleted, err
}

// BlobTx runs fn inside a write transaction with whether digest has a
// row, so file moves decided on it (trash recovery, orphan removal) are
// serialized with commits and the GC.
func (s *Store) BlobTx(ctx context.Context, digest string, fn func(stored bool) error) error {
	return s.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM blobs WHERE digest = ?`, digest).Scan(&n); err != nil {
			return err
		}
		return fn(n > 0)
	})
}

// BlobStats counts stored blobs and their bytes.
func (s *Store) BlobStats(ctx context.Context) (count int64, bytes int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs`).Scan(&count, &bytes)
	return count, bytes, err
}

// BlobDigests is the set of stored digests.
func (s *Store) BlobDigests(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT digest FROM blobs`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := map[string]bool{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out[d] = true
	}
	return out, rows.Err()
}
