package meta

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// Errors of manifests and tags.
var (
	ErrManifestUnknown = oci.NewError(oci.ErrManifestUnknown, "manifest unknown to registry")
	ErrTagUnknown      = oci.NewError(oci.ErrManifestUnknown, "tag unknown to registry")
)

// Manifest is a stored manifest and what it references.
type Manifest struct {
	Repo            string
	Digest          string
	MediaType       string
	ArtifactType    string
	ConfigMediaType string
	// Subject is the digest of the manifest this one refers to ("").
	Subject     string
	Annotations map[string]string
	Size        int64
	Content     []byte
	CreatedAt   time.Time
	// Blobs must be linked into the repository (config and layers);
	// ForeignBlobs are referenced but served elsewhere (non-distributable
	// layers with urls) and never required; Children are the manifests
	// an index lists, required in the repository.
	Blobs        []string
	ForeignBlobs []string
	Children     []string
	// Tags pointing at it (filled by listings).
	Tags []string
}

// PutOptions are the choices of a manifest push.
type PutOptions struct {
	// Tags to point at the manifest.
	Tags []string
	// AllowMissing accepts references to blobs and manifests the
	// repository does not have (sparse manifests).
	AllowMissing bool
}

// PutManifest stores m in its repository (creating the repository) and
// points opts.Tags at it, in one transaction. References the repository
// lacks are a MANIFEST_BLOB_UNKNOWN error naming them, unless
// opts.AllowMissing. Referenced blobs count as used now (GC grace).
func (s *Store) PutManifest(ctx context.Context, m Manifest, opts PutOptions) error {
	ann, err := json.Marshal(m.Annotations)
	if err != nil {
		return err
	}
	return s.Tx(ctx, func(tx *sql.Tx) error {
		id, err := s.ensureRepo(ctx, tx, m.Repo)
		if err != nil {
			return err
		}
		var missing []string
		for _, d := range m.Blobs {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM repository_blobs WHERE repository_id = ? AND digest = ?`, id, d).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				missing = append(missing, d)
			} else if err != nil {
				return err
			}
		}
		for _, d := range m.Children {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?`, id, d).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				missing = append(missing, d)
			} else if err != nil {
				return err
			}
		}
		if len(missing) > 0 && !opts.AllowMissing {
			return oci.NewError(oci.ErrManifestBlobUnknown, fmt.Sprintf("manifest references %d blob(s) or manifest(s) unknown to the repository", len(missing))).
				WithDetail(map[string]any{"digests": missing})
		}
		now := s.ts()
		if _, err := tx.ExecContext(ctx, `
INSERT INTO manifests (repository_id, digest, media_type, artifact_type, config_media_type, subject, annotations, size, content, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (repository_id, digest) DO NOTHING`,
			id, m.Digest, m.MediaType, m.ArtifactType, m.ConfigMediaType, m.Subject, string(ann), len(m.Content), m.Content, now); err != nil {
			return fmt.Errorf("store manifest: %w", err)
		}
		refs := func(kind string, list []string) error {
			for _, d := range list {
				if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO manifest_refs (repository_id, manifest_digest, digest, kind) VALUES (?, ?, ?, ?)`,
					id, m.Digest, d, kind); err != nil {
					return err
				}
			}
			return nil
		}
		if err := refs("blob", m.Blobs); err != nil {
			return err
		}
		if err := refs("blob", m.ForeignBlobs); err != nil {
			return err
		}
		if err := refs("manifest", m.Children); err != nil {
			return err
		}
		for _, d := range m.Blobs {
			if _, err := tx.ExecContext(ctx, `UPDATE blobs SET used_at = ? WHERE digest = ?`, now, d); err != nil {
				return err
			}
		}
		for _, t := range opts.Tags {
			if _, err := tx.ExecContext(ctx, `
INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
				id, t, m.Digest, now); err != nil {
				return fmt.Errorf("tag %s: %w", t, err)
			}
		}
		return nil
	})
}

const manifestCols = `r.name, m.digest, m.media_type, m.artifact_type, m.config_media_type, m.subject, m.annotations, m.size, m.created_at`

func scanManifest(sc interface{ Scan(...any) error }, withContent bool) (Manifest, error) {
	var m Manifest
	var ann string
	dst := []any{&m.Repo, &m.Digest, &m.MediaType, &m.ArtifactType, &m.ConfigMediaType, &m.Subject, &ann, &m.Size, db.Time(&m.CreatedAt)}
	if withContent {
		dst = append(dst, &m.Content)
	}
	if err := sc.Scan(dst...); err != nil {
		return Manifest{}, err
	}
	if err := json.Unmarshal([]byte(ann), &m.Annotations); err != nil {
		return Manifest{}, fmt.Errorf("manifest %s annotations: %w", m.Digest, err)
	}
	return m, nil
}

// ResolveTag returns the digest a tag points at, or ErrTagUnknown.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (string, error) {
	var d string
	err := s.db.QueryRowContext(ctx, `
SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = ? AND t.name = ?`, repo, tag).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrTagUnknown
	}
	return d, err
}

// GetManifest returns a manifest of repo by digest, with its content, or
// ErrManifestUnknown.
func (s *Store) GetManifest(ctx context.Context, repo, digest string) (Manifest, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+manifestCols+`, m.content FROM manifests m
JOIN repositories r ON r.id = m.repository_id WHERE r.name = ? AND m.digest = ?`, repo, digest)
	m, err := scanManifest(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return Manifest{}, ErrManifestUnknown
	}
	return m, err
}

// DeleteManifest deletes a manifest of repo and the tags pointing at it,
// returning those tags, or ErrManifestUnknown.
func (s *Store) DeleteManifest(ctx context.Context, repo, digest string) ([]string, error) {
	var tags []string
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		id, err := repoID(ctx, tx, repo)
		if err != nil {
			return ErrManifestUnknown
		}
		rows, err := tx.QueryContext(ctx, `SELECT name FROM tags WHERE repository_id = ? AND digest = ? ORDER BY name`, id, digest)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				_ = rows.Close()
				return err
			}
			tags = append(tags, t)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM manifests WHERE repository_id = ? AND digest = ?`, id, digest)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrManifestUnknown
		}
		return nil
	})
	return tags, err
}

// DeleteTag removes a tag, returning the digest it pointed at, or
// ErrTagUnknown.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) (string, error) {
	var digest string
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		id, err := repoID(ctx, tx, repo)
		if err != nil {
			return ErrTagUnknown
		}
		err = tx.QueryRowContext(ctx, `DELETE FROM tags WHERE repository_id = ? AND name = ? RETURNING digest`, id, tag).Scan(&digest)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrTagUnknown
		}
		return err
	})
	return digest, err
}

// Tag is a tag and the manifest it points at.
type Tag struct {
	Name      string
	Digest    string
	MediaType string
	Size      int64
	UpdatedAt time.Time
}

// Tags lists repo's tags in byte order after last, at most n (n < 0: all),
// and whether more follow. A repository that does not exist is
// ErrNoRepository.
func (s *Store) Tags(ctx context.Context, repo, last string, n int) ([]Tag, bool, error) {
	id, err := repoID(ctx, s.db, repo)
	if err != nil {
		return nil, false, err
	}
	limit := n + 1
	if n < 0 {
		limit = -1
	}
	rows, err := s.db.QueryContext(ctx, `
SELECT t.name, t.digest, m.media_type, m.size, t.updated_at FROM tags t
JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
WHERE t.repository_id = ? AND t.name > ? ORDER BY t.name LIMIT ?`, id, last, limit)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = rows.Close() }()
	out := []Tag{}
	for rows.Next() {
		var t Tag
		if err := rows.Scan(&t.Name, &t.Digest, &t.MediaType, &t.Size, db.Time(&t.UpdatedAt)); err != nil {
			return nil, false, err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := false
	if n >= 0 && len(out) > n {
		out, more = out[:n], true
	}
	return out, more, nil
}

// Manifests lists the manifests of repo with their tags, newest first.
func (s *Store) Manifests(ctx context.Context, repo string) ([]Manifest, error) {
	id, err := repoID(ctx, s.db, repo)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+manifestCols+` FROM manifests m
JOIN repositories r ON r.id = m.repository_id WHERE m.repository_id = ? ORDER BY m.created_at DESC, m.digest`, id)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for rows.Next() {
		m, err := scanManifest(rows, false)
		if err != nil {
			_ = rows.Close()
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	tags, _, err := s.Tags(ctx, repo, "", -1)
	if err != nil {
		return nil, err
	}
	for i := range out {
		for _, t := range tags {
			if t.Digest == out[i].Digest {
				out[i].Tags = append(out[i].Tags, t.Name)
			}
		}
	}
	return out, nil
}

// Referrers lists the manifests of repo whose subject is digest, with
// artifactType when it is not "" (matched against the artifact type the
// referrers API reports: artifactType, else the config media type of an
// image manifest). A repository that does not exist has none.
func (s *Store) Referrers(ctx context.Context, repo, digest, artifactType string) ([]Manifest, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+manifestCols+` FROM manifests m
JOIN repositories r ON r.id = m.repository_id WHERE r.name = ? AND m.subject = ? ORDER BY m.created_at, m.digest`, repo, digest)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := []Manifest{}
	for rows.Next() {
		m, err := scanManifest(rows, false)
		if err != nil {
			return nil, err
		}
		if artifactType != "" && ReferrerArtifactType(m) != artifactType {
			continue
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ReferrerArtifactType is the artifactType the referrers API reports for
// m: its own, else an image manifest's config media type.
func ReferrerArtifactType(m Manifest) string {
	if m.ArtifactType != "" || oci.IsIndex(m.MediaType) {
		return m.ArtifactType
	}
	return m.ConfigMediaType
}

// ManifestChildren lists the digests an index references.
func (s *Store) ManifestChildren(ctx context.Context, repo, digest string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT f.digest FROM manifest_refs f JOIN repositories r ON r.id = f.repository_id
WHERE r.name = ? AND f.manifest_digest = ? AND f.kind = 'manifest' ORDER BY f.digest`, repo, digest)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ManifestStats counts manifests and tags.
func (s *Store) ManifestStats(ctx context.Context) (repos, manifests, tags int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM repositories), (SELECT COUNT(*) FROM manifests), (SELECT COUNT(*) FROM tags)`).
		Scan(&repos, &manifests, &tags)
	return repos, manifests, tags, err
}
