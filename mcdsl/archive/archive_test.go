package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// entry is one tar entry of a hand-built test archive.
type entry struct {
	hdr  tar.Header
	body []byte
}

func file(name, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body: []byte(body)}
}

func sized(name string, size int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(size)}, body: bytes.Repeat([]byte{'x'}, size)}
}

func dirEntry(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func special(name string, typ byte) entry {
	return entry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o644}}
}

// encoder compresses test streams; EncodeAll is safe for concurrent use.
var encoder, _ = zstd.NewWriter(nil)

// buildArchive writes entries as a zstd-compressed tar stream.
func buildArchive(tb testing.TB, entries ...entry) []byte {
	tb.Helper()
	return encoder.EncodeAll(buildTar(tb, entries...), nil)
}

// buildTar writes entries as an uncompressed tar stream.
func buildTar(tb testing.TB, entries ...entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			tb.Fatalf("write header %q: %v", hdr.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			tb.Fatalf("write body %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox returns a destination four levels below a fresh temporary base
// directory, so an entry escaping by up to four ".." lands inside base,
// where checkSandbox sees it.
func sandbox(tb testing.TB) (base, dest string) {
	tb.Helper()
	base = tb.TempDir()
	parent := filepath.Join(base, "a", "b", "c")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		tb.Fatal(err)
	}
	return base, filepath.Join(parent, "dest")
}

// checkSandbox fails unless base holds exactly a/b/c, plus the dest
// directory when wantDest, and nothing else outside dest.
func checkSandbox(tb testing.TB, base string, wantDest bool) {
	tb.Helper()
	want := []string{"a", "a/b", "a/b/c"}
	if wantDest {
		want = append(want, "a/b/c/dest")
	}
	var got []string
	err := filepath.WalkDir(base, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == base {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		got = append(got, filepath.ToSlash(rel))
		if rel == filepath.Join("a", "b", "c", "dest") {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if !slices.Equal(got, want) {
		tb.Fatalf("sandbox holds %q, want exactly %q", got, want)
	}
}

var pairsMigrations = []db.Migration{{
	Version: 1,
	Name:    "pairs",
	Up: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE pairs (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, payload TEXT NOT NULL)`)
		return err
	},
}}

// insertPair inserts two rows in one transaction, so any consistent copy of
// the table holds an even number of rows.
func insertPair(ctx context.Context, d *db.DB, writer int) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for range 2 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO pairs (writer, payload) VALUES (?, ?)`, writer, strings.Repeat("p", 200)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func countRows(t *testing.T, d *db.DB) int {
	t.Helper()
	var n int
	if err := d.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pairs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func writeFile(t *testing.T, p, body string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripLiveDatabase(t *testing.T) {
	ctx := t.Context()
	svc := filepath.Join(t.TempDir(), "svc")
	d, err := db.Open(ctx, filepath.Join(svc, "svc.db"), db.Options{Migrations: pairsMigrations})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	for range 50 {
		if err := insertPair(ctx, d, 0); err != nil {
			t.Fatal(err)
		}
	}

	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	writeFile(t, filepath.Join(svc, "svc.toml"), "[server]\nlisten_addr = \":8443\"\n", 0o640)
	if err := os.Chtimes(filepath.Join(svc, "svc.toml"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(svc, "certs", "cert.pem"), "CERT", 0o600)
	if err := os.Symlink("certs/cert.pem", filepath.Join(svc, "current.pem")); err != nil {
		t.Fatal(err)
	}
	// Always excluded, whatever the options say.
	writeFile(t, filepath.Join(svc, "backups", "svc-20240101T000000Z.db"), "not a database", 0o600)
	writeFile(t, filepath.Join(svc, "svc.db.partial"), "half a snapshot", 0o600)
	// Excluded by the caller's patterns: by base name and by relative path.
	writeFile(t, filepath.Join(svc, "app.log"), "log", 0o600)
	writeFile(t, filepath.Join(svc, "certs", "debug.log"), "log", 0o600)
	writeFile(t, filepath.Join(svc, "cache", "blob"), "cached", 0o600)
	for _, live := range []string{"svc.db-wal", "svc.db-shm"} {
		if _, err := os.Stat(filepath.Join(svc, live)); err != nil {
			t.Fatalf("the live database should have %s while open: %v", live, err)
		}
	}

	// Writers run before, during and after Create.
	var inserted atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 1; w <= 4; w++ {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := insertPair(ctx, d, w); err != nil {
					errs <- err
					return
				}
				inserted.Add(2)
			}
		})
	}
	for inserted.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	before := inserted.Load()
	var buf bytes.Buffer
	err = Create(ctx, &buf, svc, CreateOptions{Exclude: []string{"*.log", "cache"}})
	during := inserted.Load() - before
	close(stop)
	wg.Wait()
	close(errs)
	for werr := range errs {
		t.Fatalf("writer: %v", werr)
	}
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if during == 0 {
		t.Fatal("no rows were written while Create ran; the test did not exercise a live database")
	}

	_, dest := sandbox(t)
	if err := Extract(ctx, bytes.NewReader(buf.Bytes()), dest, Limits{}); err != nil {
		t.Fatalf("Extract: %v", err)
	}

	got, err := os.ReadFile(filepath.Join(dest, "svc.toml"))
	if err != nil || string(got) != "[server]\nlisten_addr = \":8443\"\n" {
		t.Fatalf("svc.toml = %q, %v", got, err)
	}
	fi, err := os.Stat(filepath.Join(dest, "svc.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Errorf("svc.toml mode %v mtime %v, want 0640 and %v", fi.Mode().Perm(), fi.ModTime(), mtime)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "certs")); err != nil || !fi.IsDir() {
		t.Fatalf("certs: %v, %v", fi, err)
	}
	target, err := os.Readlink(filepath.Join(dest, "current.pem"))
	if err != nil || target != "certs/cert.pem" {
		t.Fatalf("current.pem -> %q, %v", target, err)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "current.pem")); err != nil || string(got) != "CERT" {
		t.Fatalf("through current.pem: %q, %v", got, err)
	}
	for _, gone := range []string{"svc.db-wal", "svc.db-shm", "svc.db.partial", "backups", "app.log", "certs/debug.log", "cache"} {
		if _, err := os.Lstat(filepath.Join(dest, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s should be excluded from the archive, stat: %v", gone, err)
		}
	}

	restored, err := db.Open(ctx, filepath.Join(dest, "svc.db"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = restored.Close() }()
	var check string
	if err := restored.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	n := countRows(t, restored)
	if n < 100+int(before) || n%2 != 0 {
		t.Fatalf("restored %d rows; want an even count of at least %d", n, 100+before)
	}
	versions, err := restored.AppliedVersions(ctx)
	if err != nil || !slices.Equal(versions, []int{1}) {
		t.Fatalf("restored migrations %v, %v; want [1]", versions, err)
	}
}

func TestCreateRefusesEscapingSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := Create(t.Context(), &buf, dir, CreateOptions{})
	if !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), "passwd") {
		t.Fatalf("Create = %v, want ErrUnsafeEntry naming passwd", err)
	}
	// The caller can leave it out and archive the rest.
	buf.Reset()
	if err := Create(t.Context(), &buf, dir, CreateOptions{Exclude: []string{"passwd"}}); err != nil {
		t.Fatalf("Create with the link excluded: %v", err)
	}
}

// TestCreateSkipsVanishedFile removes a file between the directory read
// and the visit, as a running service may, and expects the walk to go on
// without it.
func TestCreateSkipsVanishedFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tmpfile"), "x", 0o600)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("ReadDir: %v, %v", entries, err)
	}
	if err := os.Remove(filepath.Join(dir, "tmpfile")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	c := &creator{ctx: t.Context(), dir: dir, logger: slog.New(slog.DiscardHandler), tw: tar.NewWriter(&buf)}
	if err := c.visit(filepath.Join(dir, "tmpfile"), entries[0], nil); err != nil {
		t.Fatalf("visit of a vanished file: %v", err)
	}
	if err := c.copyFile(filepath.Join(dir, "tmpfile"), &tar.Header{Typeflag: tar.TypeReg, Name: "tmpfile", Size: 1}); err != nil {
		t.Fatalf("copyFile of a vanished file: %v", err)
	}
	if err := c.tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("a vanished file left %d bytes of tar entries", buf.Len())
	}
}

func TestCreateBadExcludePattern(t *testing.T) {
	var buf bytes.Buffer
	if err := Create(t.Context(), &buf, t.TempDir(), CreateOptions{Exclude: []string{"["}}); err == nil {
		t.Fatal("Create accepted the malformed pattern \"[\"")
	}
}

func TestCreateCanceled(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), "data", 0o600)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var buf bytes.Buffer
	if err := Create(ctx, &buf, dir, CreateOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a canceled context = %v, want context.Canceled", err)
	}
}

func TestExtractRejects(t *testing.T) {
	small := Limits{MaxEntrySize: 1024, MaxTotalSize: 1500, MaxEntries: 4}
	tests := []struct {
		name    string
		entries []entry
		lim     Limits
		want    error
		naming  string
	}{
		{"absolute path", []entry{file("/evil", "x")}, Limits{}, ErrUnsafeEntry, "/evil"},
		{"dot-dot", []entry{file("../evil", "x")}, Limits{}, ErrUnsafeEntry, "../evil"},
		{"nested dot-dot", []entry{dirEntry("a/"), file("a/../../evil", "x")}, Limits{}, ErrUnsafeEntry, "a/../../evil"},
		{"archive root", []entry{dirEntry("./")}, Limits{}, ErrUnsafeEntry, "./"},
		{"unclean name", []entry{file("a//b", "x")}, Limits{}, ErrUnsafeEntry, "a//b"},
		{"absolute symlink", []entry{symlink("link", "/etc")}, Limits{}, ErrUnsafeEntry, "link"},
		{"escaping symlink", []entry{symlink("link", "../../x")}, Limits{}, ErrUnsafeEntry, "link"},
		{"file through absolute symlink", []entry{symlink("link", "/etc"), file("link/passwd", "x")}, Limits{}, ErrUnsafeEntry, "link"},
		{"file through escaping symlink", []entry{symlink("link", "../../.."), file("link/evil", "x")}, Limits{}, ErrUnsafeEntry, "link"},
		// Each link is harmless alone; stored through the first, the
		// second would climb out of dest.
		{"symlink through symlink", []entry{dirEntry("d/"), symlink("d/up", ".."), symlink("d/up/out", "../x")}, Limits{}, ErrUnsafeEntry, "d/up/out"},
		{"file through internal symlink", []entry{dirEntry("d/"), symlink("d/up", ".."), file("d/up/f", "x")}, Limits{}, ErrUnsafeEntry, "d/up/f"},
		{"dot-dot after element in target", []entry{dirEntry("d/"), symlink("d/up", ".."), symlink("d/t", "up/../x")}, Limits{}, ErrUnsafeEntry, "d/t"},
		{"duplicate file", []entry{file("f", "a"), file("f", "b")}, Limits{}, ErrUnsafeEntry, "f"},
		{"file over symlink", []entry{symlink("f", "g"), file("f", "b")}, Limits{}, ErrUnsafeEntry, "f"},
		{"hard link", []entry{file("f", "a"), {hdr: tar.Header{Typeflag: tar.TypeLink, Name: "hl", Linkname: "f"}}}, Limits{}, ErrUnsafeEntry, "hl"},
		{"char device", []entry{special("null", tar.TypeChar)}, Limits{}, ErrUnsafeEntry, "null"},
		{"block device", []entry{special("sda", tar.TypeBlock)}, Limits{}, ErrUnsafeEntry, "sda"},
		{"FIFO", []entry{special("fifo", tar.TypeFifo)}, Limits{}, ErrUnsafeEntry, "fifo"},
		{"global header", []entry{{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global", PAXRecords: map[string]string{"comment": "x"}}}}, Limits{}, ErrUnsafeEntry, "global"},
		{"entry over size limit", []entry{sized("big", 2048)}, small, ErrLimit, "big"},
		{"too many entries", []entry{file("1", "a"), file("2", "b"), file("3", "c"), file("4", "d"), file("5", "e")}, small, ErrLimit, "5"},
		{"total over limit", []entry{sized("one", 1000), sized("two", 1000)}, small, ErrLimit, "two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, dest := sandbox(t)
			err := Extract(t.Context(), bytes.NewReader(buildArchive(t, tt.entries...)), dest, tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Extract = %v, want %v", err, tt.want)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), `"`+tt.naming+`"`) {
				t.Errorf("error %q does not name the entry %q", err, tt.naming)
			}
			checkSandbox(t, base, false)
		})
	}
}

// TestExtractCountsBytes feeds the file writer more content than its header
// announced, which archive/tar itself never does, to prove the copy is
// bounded by counting and not by the header.
func TestExtractCountsBytes(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = root.Close() }()
	x := &extractor{ctx: t.Context(), root: root, lim: Limits{MaxEntrySize: 100, MaxTotalSize: 150, MaxEntries: 10}}
	if err := x.file("a", 0o600, time.Now(), 10, strings.NewReader(strings.Repeat("x", 101))); !errors.Is(err, ErrLimit) {
		t.Fatalf("101 bytes under a 100-byte entry limit: %v, want ErrLimit", err)
	}
	if err := x.file("b", 0o600, time.Now(), 10, strings.NewReader(strings.Repeat("x", 60))); !errors.Is(err, ErrLimit) {
		t.Fatalf("161 bytes under a 150-byte total limit: %v, want ErrLimit", err)
	}
}

func TestExtractValid(t *testing.T) {
	mtime := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	exec := entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/tool", Mode: 0o4755, Size: 2, ModTime: mtime}, body: []byte("#!")}
	locked := entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "locked/", Mode: 0o500, ModTime: mtime}}
	archive := buildArchive(t, exec, locked, file("locked/f", "x"), file("implicit/deep/f", "y"), symlink("implicit/up", "../bin/tool"))

	base, dest := sandbox(t)
	if err := Extract(t.Context(), bytes.NewReader(archive), dest, Limits{}); err != nil {
		t.Fatal(err)
	}
	checkSandbox(t, base, true)
	fi, err := os.Stat(filepath.Join(dest, "bin", "tool"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o755 || !fi.ModTime().Equal(mtime) {
		t.Errorf("bin/tool mode %v mtime %v; want -rwxr-xr-x without setuid and %v", fi.Mode(), fi.ModTime(), mtime)
	}
	fi, err = os.Stat(filepath.Join(dest, "locked"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 || !fi.ModTime().Equal(mtime) {
		t.Errorf("locked mode %v mtime %v; want 0700 (0500 plus owner rwx) and %v", fi.Mode().Perm(), fi.ModTime(), mtime)
	}
	if got, err := os.ReadFile(filepath.Join(dest, "implicit", "up")); err != nil || string(got) != "#!" {
		t.Errorf("implicit/up: %q, %v", got, err)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("new dest: %v, %v; want mode 0700", fi, err)
	}
}

func TestExtractIntoEmptyDirectory(t *testing.T) {
	base, dest := sandbox(t)
	if err := os.Mkdir(dest, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := Extract(t.Context(), bytes.NewReader(buildArchive(t, file("f", "x"))), dest, Limits{}); err != nil {
		t.Fatal(err)
	}
	checkSandbox(t, base, true)
	if got, err := os.ReadFile(filepath.Join(dest, "f")); err != nil || string(got) != "x" {
		t.Fatalf("f: %q, %v", got, err)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("dest: %v, %v; want its mode 0750 kept", fi, err)
	}
}

func TestExtractRefusesDestination(t *testing.T) {
	archive := buildArchive(t, file("f", "new"))
	t.Run("non-empty directory", func(t *testing.T) {
		base, dest := sandbox(t)
		writeFile(t, filepath.Join(dest, "keep"), "old", 0o600)
		err := Extract(t.Context(), bytes.NewReader(archive), dest, Limits{})
		if !errors.Is(err, ErrDestination) {
			t.Fatalf("Extract = %v, want ErrDestination", err)
		}
		checkSandbox(t, base, true)
		names, err := os.ReadDir(dest)
		if err != nil || len(names) != 1 || names[0].Name() != "keep" {
			t.Fatalf("dest changed: %v, %v", names, err)
		}
	})
	t.Run("file", func(t *testing.T) {
		_, dest := sandbox(t)
		writeFile(t, dest, "old", 0o600)
		if err := Extract(t.Context(), bytes.NewReader(archive), dest, Limits{}); !errors.Is(err, ErrDestination) {
			t.Fatalf("Extract = %v, want ErrDestination", err)
		}
	})
}

func TestExtractCorruptStream(t *testing.T) {
	valid := buildArchive(t, sized("f", 4096), file("g", "x"))
	tests := map[string][]byte{
		"truncated":   valid[:len(valid)-6],
		"not zstd":    []byte("this is not a zstd stream"),
		"empty":       nil,
		"bit flipped": func() []byte { b := bytes.Clone(valid); b[len(b)/2] ^= 0x40; return b }(),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			base, dest := sandbox(t)
			if err := Extract(t.Context(), bytes.NewReader(data), dest, Limits{}); err == nil {
				t.Fatal("Extract accepted a corrupt stream")
			}
			checkSandbox(t, base, false)
		})
	}
}

func TestExtractCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	base, dest := sandbox(t)
	err := Extract(ctx, bytes.NewReader(buildArchive(t, file("f", "x"))), dest, Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract = %v, want context.Canceled", err)
	}
	checkSandbox(t, base, false)
}
