package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcr/internal/gc"
	"git.metacircular.net/metacircular/mcr/internal/tokenauth"
)

// OpenDB opens MCR's database with its migrations applied (for the
// snapshot verb).
func OpenDB(ctx context.Context, cfg *Config) (*db.DB, error) {
	s, err := openStores(ctx, cfg, logging.Discard())
	if err != nil {
		return nil, err
	}
	return s.meta.DB(), nil
}

// Init creates the database, the blob store's directories and the token
// signing key; running it again changes nothing.
func Init(ctx context.Context, cfg *Config, out io.Writer) error {
	s, err := openStores(ctx, cfg, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = s.meta.Close() }()
	if _, err := tokenauth.LoadKey(cfg.Registry.TokenKey); err != nil {
		return err
	}
	fmt.Fprintf(out, "mcr: database %s, storage %s, token key %s ready\n", cfg.Database.Path, cfg.Registry.Storage, cfg.Registry.TokenKey)
	return nil
}

type summary struct {
	Database     string `json:"database"`
	Storage      string `json:"storage"`
	Repositories int64  `json:"repositories"`
	Manifests    int64  `json:"manifests"`
	Tags         int64  `json:"tags"`
	Blobs        int64  `json:"blobs"`
	BlobBytes    int64  `json:"blob_bytes"`
	DiskBytes    int64  `json:"disk_bytes"`
}

// Status prints counts of repositories, manifests, tags and blobs and the
// bytes stored.
func Status(ctx context.Context, cfg *Config, out io.Writer, asJSON bool) error {
	s, err := openStores(ctx, cfg, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = s.meta.Close() }()
	sum := summary{Database: cfg.Database.Path, Storage: cfg.Registry.Storage}
	if sum.Repositories, sum.Manifests, sum.Tags, err = s.meta.ManifestStats(ctx); err != nil {
		return err
	}
	if sum.Blobs, sum.BlobBytes, err = s.meta.BlobStats(ctx); err != nil {
		return err
	}
	if sum.DiskBytes, err = s.blobs.Usage(); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	fmt.Fprintf(out, "database:      %s\nstorage:       %s\nrepositories:  %d\nmanifests:     %d\ntags:          %d\nblobs:         %d (%s)\non disk:       %s\n",
		sum.Database, sum.Storage, sum.Repositories, sum.Manifests, sum.Tags, sum.Blobs, HumanBytes(sum.BlobBytes), HumanBytes(sum.DiskBytes))
	return nil
}

// RunGC collects garbage from this process (the `mcr gc` verb), safe
// while the server runs; progress is called as stages advance.
func RunGC(ctx context.Context, cfg *Config, dryRun bool, progress func(stage string, done, total int)) (gc.Report, error) {
	s, err := openStores(ctx, cfg, logging.Discard())
	if err != nil {
		return gc.Report{}, err
	}
	defer func() { _ = s.meta.Close() }()
	c := gc.New(s.meta, s.blobs, s.uploads, cfg.GC.Grace.Duration, cfg.GC.UploadTTL.Duration, nil)
	return c.Run(ctx, gc.Options{DryRun: dryRun, Progress: progress})
}

// HumanBytes formats n as "12.3 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
