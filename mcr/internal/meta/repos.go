package meta

import (
	"context"
	"database/sql"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// Repository is a repository and its counts.
type Repository struct {
	Name      string
	Tags      int
	Manifests int
	// Size is the sum of the sizes of the blobs linked into it.
	Size      int64
	CreatedAt time.Time
}

// Repositories lists repositories in name order, after last, at most n
// (n <= 0: all).
func (s *Store) Repositories(ctx context.Context, last string, n int) ([]Repository, error) {
	if n <= 0 {
		n = -1
	}
	rows, err := s.db.QueryContext(ctx, `
SELECT r.name, r.created_at,
	(SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id),
	(SELECT COUNT(*) FROM manifests m WHERE m.repository_id = r.id),
	(SELECT COALESCE(SUM(b.size), 0) FROM repository_blobs l JOIN blobs b ON b.digest = l.digest WHERE l.repository_id = r.id)
FROM repositories r WHERE r.name > ? ORDER BY r.name LIMIT ?`, last, n)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []Repository
	for rows.Next() {
		var r Repository
		if err := rows.Scan(&r.Name, db.Time(&r.CreatedAt), &r.Tags, &r.Manifests, &r.Size); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// GetRepository returns one repository, or ErrNoRepository.
func (s *Store) GetRepository(ctx context.Context, name string) (Repository, error) {
	list, err := s.Repositories(ctx, "", 0)
	if err != nil {
		return Repository{}, err
	}
	for _, r := range list {
		if r.Name == name {
			return r, nil
		}
	}
	return Repository{}, ErrNoRepository
}

// RepositoriesWithBlob lists the repositories a blob is linked into.
func (s *Store) RepositoriesWithBlob(ctx context.Context, digest string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT r.name FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id
WHERE l.digest = ? ORDER BY r.name`, digest)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// DeleteEmptyRepositories removes repositories without manifests, links
// or uploads that were created before cutoff, and returns their names.
func (s *Store) DeleteEmptyRepositories(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error) {
	var names []string
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
SELECT id, name FROM repositories r WHERE created_at < ?
AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
AND NOT EXISTS (SELECT 1 FROM repository_blobs l WHERE l.repository_id = r.id)
AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.repository_id = r.id)`, db.FormatTime(cutoff))
		if err != nil {
			return err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			var n string
			if err := rows.Scan(&id, &n); err != nil {
				_ = rows.Close()
				return err
			}
			ids, names = append(ids, id), append(names, n)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if dryRun {
			return nil
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM repositories WHERE id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
	return names, err
}
