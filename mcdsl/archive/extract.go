package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Default limits applied by Extract to Limits fields left zero.
const (
	DefaultMaxEntrySize int64 = 8 << 30
	DefaultMaxTotalSize int64 = 64 << 30
	DefaultMaxEntries         = 1_000_000
)

const (
	// maxNameLen bounds entry names and link targets (Linux PATH_MAX).
	maxNameLen = 4096
	// maxWindow bounds the zstd window, and with it the decoder's memory;
	// 128 MiB admits every standard level and `zstd --long`.
	maxWindow = 128 << 20
	// maxTrailing bounds the bytes accepted after the end-of-archive
	// marker (GNU tar pads to a 10 KiB record).
	maxTrailing = 1 << 20
)

var (
	// ErrUnsafeEntry reports an entry Extract refuses to create: a path
	// leaving the destination, a link, a device or another unsupported type.
	ErrUnsafeEntry = errors.New("unsafe archive entry")
	// ErrLimit reports an archive exceeding one of its Limits.
	ErrLimit = errors.New("archive limit exceeded")
	// ErrDestination reports a destination that exists and is not an empty
	// directory.
	ErrDestination = errors.New("destination exists and is not an empty directory")
)

// Limits bounds what Extract accepts. Zero (or negative) fields take the
// Default values.
type Limits struct {
	// MaxEntrySize is the largest regular file, in bytes.
	MaxEntrySize int64
	// MaxTotalSize is the largest sum of regular file sizes, in bytes.
	MaxTotalSize int64
	// MaxEntries is the largest number of entries of any type.
	MaxEntries int
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntrySize <= 0 {
		l.MaxEntrySize = DefaultMaxEntrySize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = DefaultMaxTotalSize
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	return l
}

// Extract unpacks the zstd-compressed tar stream r, as written by Create,
// into the directory dest, which must not exist or be an empty directory and
// whose parent must exist.
//
// The stream is untrusted. Extract refuses, naming the entry: absolute
// paths, any ".." component, names that are not clean relative paths,
// symbolic links that are absolute or resolve outside dest, entries placed
// under a symbolic link, duplicate entries, hard links, devices, FIFOs and
// any other type, and archives that exceed lim in header sizes or in bytes
// actually read. Files keep their permission bits without setuid, setgid
// or sticky; directories are created 0700 while extracting and end with
// their recorded permission bits plus owner rwx. Ownership is not restored.
//
// The archive is unpacked into a sibling temporary directory through an
// os.Root, so even a missed check cannot write outside it, and renamed onto
// dest only when complete: on any error dest is left as it was.
func Extract(ctx context.Context, r io.Reader, dest string, lim Limits) (err error) {
	if dest == "" {
		return errors.New("extract archive: empty destination")
	}
	dest = filepath.Clean(dest)
	mode, err := checkDest(dest)
	if err != nil {
		return fmt.Errorf("extract archive to %s: %w", dest, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), filepath.Base(dest)+".extract-*")
	if err != nil {
		return fmt.Errorf("extract archive to %s: %w", dest, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := extractInto(ctx, r, tmp, lim.withDefaults()); err != nil {
		return fmt.Errorf("extract archive to %s: %w", dest, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("extract archive to %s: %w", dest, err)
	}
	// rename(2) replaces an empty directory atomically and fails on a
	// non-empty one or a file, so a dest filled meanwhile is never
	// overwritten. os.Rename refuses every existing directory, hence the
	// system call.
	if err := syscall.Rename(tmp, dest); err != nil {
		return fmt.Errorf("extract archive to %s: %w", dest, &os.LinkError{Op: "rename", Old: tmp, New: dest, Err: err})
	}
	return nil
}

// checkDest verifies dest is absent or an empty directory and returns the
// mode the extracted tree's root gets.
func checkDest(dest string) (fs.FileMode, error) {
	fi, err := os.Lstat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return 0o700, nil
	}
	if err != nil {
		return 0, err
	}
	if !fi.IsDir() {
		return 0, ErrDestination
	}
	f, err := os.Open(dest) //nolint:gosec // the caller names the destination; only its names are read
	if err != nil {
		return 0, err
	}
	names, err := f.Readdirnames(1)
	_ = f.Close()
	if len(names) > 0 {
		return 0, ErrDestination
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return fi.Mode().Perm(), nil
}

func extractInto(ctx context.Context, r io.Reader, dir string, lim Limits) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	// One decoder goroutine: restores are bound by disk, and a synchronous
	// decoder leaves nothing running after an error.
	zr, err := zstd.NewReader(ctxReader{ctx: ctx, r: r}, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return err
	}
	defer zr.Close()
	x := &extractor{ctx: ctx, root: root, lim: lim}
	cr := &countingReader{r: zr}
	tr := tar.NewReader(cr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		x.entries++
		if x.entries > lim.MaxEntries {
			return fmt.Errorf("entry %q: more than %d entries: %w", hdr.Name, lim.MaxEntries, ErrLimit)
		}
		if err := x.extract(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	// Reading to the end of the zstd stream verifies its checksum, so a
	// corrupted or truncated archive fails instead of restoring silently.
	n, err := io.Copy(io.Discard, io.LimitReader(cr, maxTrailing+1))
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	if n > maxTrailing {
		return fmt.Errorf("read archive: more than %d bytes after the end of the archive", maxTrailing)
	}
	// archive/tar also ends cleanly on a stream that stops between
	// entries; every complete tar stream has its two zero blocks, so a
	// shorter one (an empty input, say) is not an archive.
	if cr.n < 2*blockSize {
		return fmt.Errorf("read archive: no end-of-archive marker: %w", io.ErrUnexpectedEOF)
	}
	return x.closeDirs("")
}

// blockSize is the tar block size.
const blockSize = 512

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// extractor holds the state of one extraction.
type extractor struct {
	ctx     context.Context
	root    *os.Root
	lim     Limits
	entries int
	total   int64
	// parent is the last directory verified to be a real directory (no
	// component a symlink); consecutive entries usually share it.
	parent string
	// open are the directories on the path of the current entry, outermost
	// first, whose final mode and mtime are applied once the archive moves
	// past them (writing their children changes their mtime).
	open []openDir
}

type openDir struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

func (x *extractor) extract(hdr *tar.Header, r io.Reader) error {
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if err := x.closeDirs(name); err != nil {
		return err
	}
	perm := fs.FileMode(hdr.Mode & 0o777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(name, perm, hdr.ModTime)
	case tar.TypeReg:
		return x.file(name, perm, hdr.ModTime, hdr.Size, r)
	case tar.TypeSymlink:
		return x.symlink(name, hdr.Linkname)
	case tar.TypeLink:
		return fmt.Errorf("hard link to %q: %w", hdr.Linkname, ErrUnsafeEntry)
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("device node: %w", ErrUnsafeEntry)
	case tar.TypeFifo:
		return fmt.Errorf("FIFO: %w", ErrUnsafeEntry)
	default:
		return fmt.Errorf("unsupported entry type %q: %w", hdr.Typeflag, ErrUnsafeEntry)
	}
}

// entryName validates an archive entry name and returns it without the
// trailing slash directories carry.
func entryName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", fmt.Errorf("empty name: %w", ErrUnsafeEntry)
	case len(raw) > maxNameLen:
		return "", fmt.Errorf("name longer than %d bytes: %w", maxNameLen, ErrUnsafeEntry)
	case strings.ContainsRune(raw, 0):
		return "", fmt.Errorf("NUL in name: %w", ErrUnsafeEntry)
	case strings.HasPrefix(raw, "/"):
		return "", fmt.Errorf("absolute path: %w", ErrUnsafeEntry)
	}
	name := strings.TrimSuffix(raw, "/")
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("'..' in path: %w", ErrUnsafeEntry)
		}
	}
	if name == "" || name == "." {
		return "", fmt.Errorf("names the archive root: %w", ErrUnsafeEntry)
	}
	if path.Clean(name) != name {
		return "", fmt.Errorf("not a clean relative path: %w", ErrUnsafeEntry)
	}
	return name, nil
}

// checkLinkTarget verifies that a symbolic link stored at name (a clean
// relative path) with the given target stays inside the tree. A ".." after
// a named component is refused outright: the component may itself be a
// symlink, so where ".." lands cannot be known from the text. Leading ".."
// components climb from the link's own directory, which Extract guarantees
// is a real directory, and may not climb above the root.
func checkLinkTarget(name, target string) error {
	switch {
	case target == "":
		return fmt.Errorf("empty symlink target: %w", ErrUnsafeEntry)
	case len(target) > maxNameLen:
		return fmt.Errorf("symlink target longer than %d bytes: %w", maxNameLen, ErrUnsafeEntry)
	case strings.ContainsRune(target, 0):
		return fmt.Errorf("NUL in symlink target: %w", ErrUnsafeEntry)
	case strings.HasPrefix(target, "/"):
		return fmt.Errorf("absolute symlink target %q: %w", target, ErrUnsafeEntry)
	}
	depth := strings.Count(name, "/")
	up, named := 0, false
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if named {
				return fmt.Errorf("symlink target %q has '..' after a path element: %w", target, ErrUnsafeEntry)
			}
			up++
		default:
			named = true
		}
	}
	if up > depth {
		return fmt.Errorf("symlink target %q points outside the archive: %w", target, ErrUnsafeEntry)
	}
	return nil
}

// closeDirs finalizes the open directories that name is not inside; an
// empty name finalizes them all.
func (x *extractor) closeDirs(name string) error {
	for len(x.open) > 0 {
		d := x.open[len(x.open)-1]
		if name != "" && strings.HasPrefix(name, d.name+"/") {
			return nil
		}
		x.open = x.open[:len(x.open)-1]
		// The owner keeps rwx so the tree stays usable and removable by the
		// user who restored it.
		if err := x.root.Chmod(d.name, d.mode|0o700); err != nil {
			return err
		}
		if err := x.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

// ensureParent makes sure dir exists as a real directory with no symlink
// among its components, creating missing components 0700. Checking each
// component keeps an entry from being placed through a link stored earlier
// in the archive, which could otherwise turn a harmless relative target
// into one that escapes.
func (x *extractor) ensureParent(dir string) error {
	if dir == "." || dir == x.parent {
		return nil
	}
	start := 0
	if x.parent != "" && strings.HasPrefix(dir, x.parent+"/") {
		start = len(x.parent) + 1
	}
	for i := start; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		p := dir[:i]
		fi, err := x.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(p, 0o700); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("parent %q is a symlink: %w", p, ErrUnsafeEntry)
		case !fi.IsDir():
			return fmt.Errorf("parent %q is not a directory: %w", p, ErrUnsafeEntry)
		}
	}
	x.parent = dir
	return nil
}

func (x *extractor) dir(name string, perm fs.FileMode, mtime time.Time) error {
	if err := x.ensureParent(path.Dir(name)); err != nil {
		return err
	}
	if err := x.root.Mkdir(name, 0o700); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		fi, lerr := x.root.Lstat(name)
		if lerr != nil {
			return lerr
		}
		if !fi.IsDir() {
			return fmt.Errorf("duplicate entry: %w", ErrUnsafeEntry)
		}
	}
	x.open = append(x.open, openDir{name: name, mode: perm, mtime: mtime})
	return nil
}

func (x *extractor) file(name string, perm fs.FileMode, mtime time.Time, size int64, r io.Reader) error {
	if size < 0 || size > x.lim.MaxEntrySize {
		return fmt.Errorf("size %d over the %d-byte entry limit: %w", size, x.lim.MaxEntrySize, ErrLimit)
	}
	if size > x.lim.MaxTotalSize-x.total {
		return fmt.Errorf("size %d takes the archive over its %d-byte total limit: %w", size, x.lim.MaxTotalSize, ErrLimit)
	}
	if err := x.ensureParent(path.Dir(name)); err != nil {
		return err
	}
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("duplicate entry: %w", ErrUnsafeEntry)
	}
	if err != nil {
		return err
	}
	// Headers are not trusted: count what is actually copied.
	budget := min(x.lim.MaxEntrySize, x.lim.MaxTotalSize-x.total)
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx: x.ctx, r: r}, budget+1))
	x.total += n
	if err == nil && n > budget {
		err = fmt.Errorf("more than %d bytes of content: %w", budget, ErrLimit)
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return x.root.Chtimes(name, mtime, mtime)
}

func (x *extractor) symlink(name, target string) error {
	if err := checkLinkTarget(name, target); err != nil {
		return err
	}
	if err := x.ensureParent(path.Dir(name)); err != nil {
		return err
	}
	err := x.root.Symlink(target, name)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("duplicate entry: %w", ErrUnsafeEntry)
	}
	return err
}
