package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// alwaysExcluded are base-name patterns Create never archives: the live
// SQLite WAL and shared-memory files (the *.db snapshot already holds their
// committed content) and half-written snapshots.
var alwaysExcluded = []string{"*-wal", "*-shm", "*.db.partial"}

// backupsDir is the top-level directory Create skips: archiving old
// snapshots into every new archive would grow archives without bound.
const backupsDir = "backups"

// CreateOptions configures Create.
type CreateOptions struct {
	// Exclude holds extra glob patterns (path.Match syntax). An entry is left
	// out, with everything under it, when a pattern matches its
	// slash-separated path relative to the archived directory or its base
	// name.
	Exclude []string
	// Logger receives warnings about entries that are skipped, such as
	// sockets. Nil discards them.
	Logger *slog.Logger
}

// Create writes the directory dir to w as a zstd-compressed tar stream.
// Entries are written in lexical order with their permission bits and
// modification times; symbolic links are stored as links and must point
// inside dir, because Extract refuses any other. Every regular file named
// *.db is opened as a SQLite database and captured with VACUUM INTO into a
// temporary file outside dir, so writers may keep running; the live *-wal,
// *-shm and *.db.partial files and the top-level backups/ directory are
// never archived. Sockets and other special files are skipped with a
// warning. On error, w holds a partial stream that must be discarded.
func Create(ctx context.Context, w io.Writer, dir string, opts CreateOptions) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range opts.Exclude {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("create archive: exclude pattern %q: %w", p, err)
		}
	}
	// Absolute, so walked paths compare with the scratch directory's.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("create archive: %s is not a directory", dir)
	}
	tmp, err := os.MkdirTemp("", "mcdsl-archive-*")
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	zw, err := zstd.NewWriter(w)
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	c := &creator{
		ctx:     ctx,
		dir:     dir,
		tmp:     tmp,
		exclude: opts.Exclude,
		logger:  logger,
		dbOpts:  db.Options{Logger: logger},
		tw:      tar.NewWriter(zw),
	}
	if err := filepath.WalkDir(dir, c.visit); err != nil {
		_ = zw.Close()
		return fmt.Errorf("create archive of %s: %w", dir, err)
	}
	if err := c.tw.Close(); err != nil {
		_ = zw.Close()
		return fmt.Errorf("create archive of %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("create archive of %s: %w", dir, err)
	}
	return nil
}

type creator struct {
	ctx     context.Context
	dir     string
	tmp     string
	exclude []string
	logger  *slog.Logger
	dbOpts  db.Options
	tw      *tar.Writer
	dbs     int
}

func (c *creator) visit(p string, d fs.DirEntry, walkErr error) error {
	// The service keeps running, so files may disappear between reading a
	// directory and opening them; what is gone is simply not archived.
	if walkErr != nil {
		if p != c.dir && errors.Is(walkErr, fs.ErrNotExist) {
			return nil
		}
		return walkErr
	}
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if p == c.dir {
		return nil
	}
	if p == c.tmp {
		// The snapshot scratch directory lives in os.TempDir, which may be
		// inside dir when dir is an ancestor of it.
		return fs.SkipDir
	}
	rel, err := filepath.Rel(c.dir, p)
	if err != nil {
		return err
	}
	rel = filepath.ToSlash(rel)
	if c.excluded(rel) {
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	}
	info, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	switch mode := info.Mode(); {
	case mode.IsDir():
		return c.writeHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: int64(mode.Perm()), ModTime: info.ModTime()})
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := checkLinkTarget(rel, target); err != nil {
			return fmt.Errorf("symlink %s -> %s: %w (Extract would refuse it; exclude it with CreateOptions.Exclude)", rel, target, err)
		}
		return c.writeHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: rel, Linkname: target, Mode: int64(mode.Perm()), ModTime: info.ModTime()})
	case mode.IsRegular() && strings.HasSuffix(rel, ".db"):
		return c.writeDatabase(p, rel, info)
	case mode.IsRegular():
		return c.copyFile(p, &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(mode.Perm()), ModTime: info.ModTime(), Size: info.Size()})
	default:
		c.logger.Warn("archive: skipping special file", "path", p, "mode", mode.String())
		return nil
	}
}

// excluded reports whether the entry at the slash-separated relative path
// rel is left out of the archive.
func (c *creator) excluded(rel string) bool {
	if rel == backupsDir {
		return true
	}
	base := path.Base(rel)
	for _, p := range alwaysExcluded {
		if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	for _, p := range c.exclude {
		// Patterns were validated in Create, so Match cannot fail here.
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
		if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}

func (c *creator) writeHeader(hdr *tar.Header) error {
	if err := c.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	return nil
}

// writeDatabase stores a VACUUM INTO copy of the database at p under the
// database's own name, mode and modification time.
func (c *creator) writeDatabase(p, rel string, info fs.FileInfo) error {
	c.dbs++
	snap := filepath.Join(c.tmp, strconv.Itoa(c.dbs)+".db")
	d, err := db.Open(c.ctx, p, c.dbOpts)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", rel, err)
	}
	err = d.Snapshot(c.ctx, snap)
	if cerr := d.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", rel, err)
	}
	defer func() { _ = os.Remove(snap) }()
	si, err := os.Stat(snap)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", rel, err)
	}
	return c.copyFile(snap, &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime(), Size: si.Size()})
}

// copyFile writes hdr and then exactly hdr.Size bytes of the file at src.
// A file that grows meanwhile is cut at the size its header announced; one
// that shrinks fails the archive rather than storing a short entry.
func (c *creator) copyFile(src string, hdr *tar.Header) error {
	f, err := os.Open(src) //nolint:gosec // a file found walking the directory being archived, or our own snapshot copy
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := c.writeHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyN(c.tw, ctxReader{ctx: c.ctx, r: f}, hdr.Size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("write %s: file shrank from %d to %d bytes while being archived", hdr.Name, hdr.Size, n)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	return nil
}

// ctxReader stops a long copy once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
