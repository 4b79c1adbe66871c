// Package gc is MCR's online garbage collector. It runs while the
// registry serves (from the server's schedule, the API or `mcr gc` in
// another process): every manifest in every repository is a root, and a
// blob is kept while any manifest references it (config and layers of
// images, including every child of an index and every referrer, which are
// manifests too). A blob is deleted only inside a write transaction that
// re-checks, against everything committed so far, that no manifest
// references it and that nothing used it within the grace window; an
// upload or mount that commits the same digest is serialized with that
// transaction and sees either the old blob or none. Abandoned upload
// sessions, files the database does not know, and empty repositories go
// too.
package gc

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"git.metacircular.net/metacircular/mcr/internal/blob"
	"git.metacircular.net/metacircular/mcr/internal/meta"
	"git.metacircular.net/metacircular/mcr/internal/upload"
)

// Collector runs collections, one at a time per process.
type Collector struct {
	store     *meta.Store
	blobs     *blob.Store
	uploads   *upload.Service
	grace     time.Duration
	uploadTTL time.Duration
	logger    *slog.Logger
	mu        sync.Mutex
}

// New returns a collector: blobs used within grace are kept, sessions
// idle longer than uploadTTL are abandoned.
func New(store *meta.Store, blobs *blob.Store, uploads *upload.Service, grace, uploadTTL time.Duration, logger *slog.Logger) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{store: store, blobs: blobs, uploads: uploads, grace: grace, uploadTTL: uploadTTL, logger: logger}
}

// Options are a run's choices.
type Options struct {
	// DryRun lists what would be deleted and deletes nothing.
	DryRun bool
	// Progress, if set, is told each stage's progress.
	Progress func(stage string, done, total int)
}

// Item is a deleted (or, in a dry run, deletable) blob.
type Item struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Report is what a run did.
type Report struct {
	DryRun         bool      `json:"dry_run"`
	StartedAt      time.Time `json:"started_at"`
	FinishedAt     time.Time `json:"finished_at"`
	Blobs          []Item    `json:"blobs"`
	BytesFreed     int64     `json:"bytes_freed"`
	BlobsKept      int64     `json:"blobs_kept"`
	Uploads        []string  `json:"uploads"`
	OrphanFiles    []string  `json:"orphan_files"`
	Repositories   []string  `json:"repositories"`
	RecoveredTrash bool      `json:"-"`
}

// Run collects once.
func (c *Collector) Run(ctx context.Context, opts Options) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	progress := opts.Progress
	if progress == nil {
		progress = func(string, int, int) {}
	}
	rep := Report{DryRun: opts.DryRun, StartedAt: c.store.Now(), Blobs: []Item{}, Uploads: []string{}, OrphanFiles: []string{}, Repositories: []string{}}
	if err := c.blobs.Recover(ctx, func(ctx context.Context, d digest.Digest, fn func(bool) error) error {
		return c.store.BlobTx(ctx, d.String(), fn)
	}); err != nil {
		return rep, fmt.Errorf("recover trash: %w", err)
	}
	if err := c.sweepUploads(ctx, &rep, opts.DryRun, progress); err != nil {
		return rep, err
	}
	if err := c.sweepBlobs(ctx, &rep, opts.DryRun, progress); err != nil {
		return rep, err
	}
	if err := c.sweepOrphans(ctx, &rep, opts.DryRun, progress); err != nil {
		return rep, err
	}
	repos, err := c.store.DeleteEmptyRepositories(ctx, c.store.Now().Add(-c.grace), opts.DryRun)
	if err != nil {
		return rep, fmt.Errorf("empty repositories: %w", err)
	}
	rep.Repositories = append(rep.Repositories, repos...)
	count, _, err := c.store.BlobStats(ctx)
	if err != nil {
		return rep, err
	}
	rep.BlobsKept = count
	if opts.DryRun {
		rep.BlobsKept -= int64(len(rep.Blobs))
	}
	rep.FinishedAt = c.store.Now()
	c.logger.Info("garbage collection", "dry_run", opts.DryRun, "blobs", len(rep.Blobs), "bytes", rep.BytesFreed,
		"uploads", len(rep.Uploads), "orphans", len(rep.OrphanFiles), "repositories", len(rep.Repositories),
		"duration", rep.FinishedAt.Sub(rep.StartedAt).String())
	return rep, nil
}

// sweepUploads abandons idle sessions and removes staging files no
// session owns.
func (c *Collector) sweepUploads(ctx context.Context, rep *Report, dryRun bool, progress func(string, int, int)) error {
	cutoff := c.store.Now().Add(-c.uploadTTL)
	stale, err := c.store.StaleUploads(ctx, cutoff)
	if err != nil {
		return fmt.Errorf("stale uploads: %w", err)
	}
	for i, u := range stale {
		progress("uploads", i, len(stale))
		if !dryRun {
			if err := c.uploads.Remove(ctx, u.ID); err != nil {
				return err
			}
		}
		rep.Uploads = append(rep.Uploads, u.Repo+"/"+u.ID)
	}
	ids, err := c.store.UploadIDs(ctx)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.blobs.Root(), "uploads")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || ids[e.Name()] || info.ModTime().After(cutoff) {
			continue
		}
		// A staging file is created before its row: only one older than
		// the session lifetime is certainly abandoned.
		if !dryRun {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
		rep.Uploads = append(rep.Uploads, "(no session)/"+e.Name())
	}
	return nil
}

// sweepBlobs deletes unreferenced blobs last used before the grace
// window, each re-checked inside its own transaction.
func (c *Collector) sweepBlobs(ctx context.Context, rep *Report, dryRun bool, progress func(string, int, int)) error {
	cutoff := c.store.Now().Add(-c.grace)
	cands, err := c.store.UnreferencedBlobs(ctx, cutoff)
	if err != nil {
		return fmt.Errorf("mark: %w", err)
	}
	for i, b := range cands {
		if err := ctx.Err(); err != nil {
			return err
		}
		progress("blobs", i, len(cands))
		if dryRun {
			rep.Blobs = append(rep.Blobs, Item{Digest: b.Digest, Size: b.Size})
			rep.BytesFreed += b.Size
			continue
		}
		d := digest.Digest(b.Digest)
		deleted, err := c.store.SweepBlob(ctx, b.Digest, cutoff, func() error { return c.blobs.Trash(d) })
		if err != nil {
			return fmt.Errorf("sweep %s: %w", b.Digest, err)
		}
		if !deleted {
			continue
		}
		if err := c.blobs.Purge(d); err != nil {
			c.logger.Warn("remove trashed blob", "digest", b.Digest, "error", err)
		}
		rep.Blobs = append(rep.Blobs, Item{Digest: b.Digest, Size: b.Size})
		rep.BytesFreed += b.Size
	}
	progress("blobs", len(cands), len(cands))
	return nil
}

// sweepOrphans removes files in the blob tree that have no row and are
// older than the grace window (left by a crash between placing a file
// and committing its row).
func (c *Collector) sweepOrphans(ctx context.Context, rep *Report, dryRun bool, progress func(string, int, int)) error {
	cutoff := c.store.Now().Add(-c.grace)
	stored, err := c.store.BlobDigests(ctx)
	if err != nil {
		return err
	}
	var cands []digest.Digest
	err = c.blobs.Walk(ctx, func(d digest.Digest, _ string, info fs.FileInfo) error {
		if !stored[d.String()] && info.ModTime().Before(cutoff) {
			cands = append(cands, d)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for i, d := range cands {
		progress("files", i, len(cands))
		var orphan bool
		err := c.store.BlobTx(ctx, d.String(), func(stored bool) error {
			if stored {
				return nil
			}
			orphan = true
			if dryRun {
				return nil
			}
			return c.blobs.Trash(d)
		})
		if err != nil {
			return err
		}
		if orphan {
			if !dryRun {
				_ = c.blobs.Purge(d)
			}
			rep.OrphanFiles = append(rep.OrphanFiles, d.String())
		}
	}
	return nil
}
