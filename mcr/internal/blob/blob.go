// Package blob is MCR's content-addressed file store:
// <root>/blobs/<algorithm>/<first two hex>/<hex>, staging files of upload
// sessions under <root>/uploads/, and <root>/trash/ where the garbage
// collector moves a file inside the database transaction that deletes its
// row, so that a crash between the two can be undone (Recover). Files only
// enter the store by rename of a verified, fsynced staging file.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Store is the file store rooted at a directory.
type Store struct {
	root string
}

// Open creates the store's directories under root.
func Open(root string) (*Store, error) {
	for _, d := range []string{"blobs", "uploads", "trash"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Path is where blob d lives.
func (s *Store) Path(d digest.Digest) string {
	hex := d.Encoded()
	return filepath.Join(s.root, "blobs", string(d.Algorithm()), hex[:2], hex)
}

// UploadPath is the staging file of upload session id.
func (s *Store) UploadPath(id string) string { return filepath.Join(s.root, "uploads", id) }

func (s *Store) trashPath(d digest.Digest) string {
	return filepath.Join(s.root, "trash", string(d.Algorithm())+"-"+d.Encoded())
}

// Open opens blob d for reading.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	return os.Open(s.Path(d))
}

// Place moves a verified, fsynced staging file to blob d's path and makes
// the rename durable (directory fsync).
func (s *Store) Place(staged string, d digest.Digest) error {
	dst := s.Path(d)
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("place blob: %w", err)
	}
	if err := os.Rename(staged, dst); err != nil {
		return fmt.Errorf("place blob: %w", err)
	}
	return syncDir(dir)
}

// Trash moves blob d out of the store (inside the GC's transaction).
func (s *Store) Trash(d digest.Digest) error {
	err := os.Rename(s.Path(d), s.trashPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Purge removes blob d's trashed file (after the GC's transaction
// committed).
func (s *Store) Purge(d digest.Digest) error {
	err := os.Remove(s.trashPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Recover puts trashed files back whose rows still exist (a crash between
// the GC moving a file and committing) and removes the others. decide runs
// in a transaction and tells whether the digest is still stored.
func (s *Store) Recover(ctx context.Context, decide func(ctx context.Context, d digest.Digest, fn func(stored bool) error) error) error {
	entries, err := os.ReadDir(filepath.Join(s.root, "trash"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		alg, hex, ok := strings.Cut(e.Name(), "-")
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
		path := filepath.Join(s.root, "trash", e.Name())
		if !ok || d.Validate() != nil {
			_ = os.Remove(path)
			continue
		}
		err := decide(ctx, d, func(stored bool) error {
			if !stored {
				return os.Remove(path)
			}
			if _, err := os.Stat(s.Path(d)); err == nil {
				return os.Remove(path)
			}
			if err := os.MkdirAll(filepath.Dir(s.Path(d)), 0o700); err != nil {
				return err
			}
			return os.Rename(path, s.Path(d))
		})
		if err != nil {
			return fmt.Errorf("recover %s: %w", d, err)
		}
	}
	return nil
}

// Walk calls fn for every file in the blob tree that names a valid digest,
// with its path.
func (s *Store) Walk(ctx context.Context, fn func(d digest.Digest, path string, info fs.FileInfo) error) error {
	base := filepath.Join(s.root, "blobs")
	return filepath.WalkDir(base, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if de.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(base, path)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 3 {
			return nil
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
		if d.Validate() != nil || !strings.HasPrefix(parts[2], parts[1]) {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		return fn(d, path, info)
	})
}

// Usage reports the total size of the files under the store.
func (s *Store) Usage() (int64, error) {
	var total int64
	err := filepath.WalkDir(s.root, func(_ string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		info, err := de.Info()
		if err == nil {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// syncDir fsyncs a directory so a rename in it survives a crash.
func syncDir(dir string) error {
	f, err := os.Open(dir) //nolint:gosec // a directory of the blob store
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
