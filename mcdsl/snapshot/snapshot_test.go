package snapshot

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"git.metacircular.net/metacircular/mcdsl/db"
	mcdslv1 "git.metacircular.net/metacircular/mcdsl/gen/mcdsl/v1"
)

var pairsMigrations = []db.Migration{{
	Version: 1,
	Name:    "pairs",
	Up: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE pairs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)`)
		return err
	},
}}

// openDB opens a fresh database holding 20 rows in <tmp>/svc/svc.db.
func openDB(t *testing.T) *db.DB {
	t.Helper()
	d, err := db.Open(t.Context(), filepath.Join(t.TempDir(), "svc", "svc.db"), db.Options{Migrations: pairsMigrations})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	for range 10 {
		if err := insertPair(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// insertPair inserts two rows in one transaction, so a consistent copy
// always holds an even number of rows.
func insertPair(ctx context.Context, d *db.DB) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for range 2 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO pairs (payload) VALUES (?)`, strings.Repeat("p", 100)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// checkCopy opens a snapshot and checks it is intact and consistent.
func checkCopy(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	// Opened read-only through the driver so the check cannot alter it.
	c, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	var check string
	if err := c.QueryRowContext(t.Context(), `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check of %s = %q, %v", path, check, err)
	}
	var n int
	if err := c.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pairs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < 20 || n%2 != 0 {
		t.Fatalf("%s holds %d rows; want an even number of at least 20", path, n)
	}
}

var nameRE = regexp.MustCompile(`^svc-\d{8}T\d{6}Z(-\d+)?\.db$`)

func TestTakeUnderConcurrentWrites(t *testing.T) {
	ctx := t.Context()
	d := openDB(t)
	var inserted atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := insertPair(ctx, d); err != nil {
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
	var results []Result
	for range 3 {
		res, err := Take(ctx, d, "", "svc")
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}

	wantDir := filepath.Join(filepath.Dir(d.Path()), "backups")
	for _, res := range results {
		if filepath.Dir(res.Path) != wantDir || !nameRE.MatchString(filepath.Base(res.Path)) {
			t.Errorf("snapshot at %s, want %s/svc-<UTC stamp>.db", res.Path, wantDir)
		}
		if res.CreatedAt.Location() != time.UTC || time.Since(res.CreatedAt) > time.Minute {
			t.Errorf("CreatedAt %v is not a recent UTC time", res.CreatedAt)
		}
		fi, err := os.Stat(res.Path)
		if err != nil || fi.Size() != res.Size || res.Size == 0 {
			t.Errorf("Size %d, file: %v, %v", res.Size, fi, err)
		}
		checkCopy(t, res.Path)
	}
	if fi, err := os.Stat(wantDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("backups dir: %v, %v; want mode 0700", fi, err)
	}
}

func TestTakeSameSecond(t *testing.T) {
	fixed := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	now = func() time.Time { return fixed }
	t.Cleanup(func() { now = time.Now })
	d := openDB(t)
	dir := t.TempDir()
	var names []string
	for range 3 {
		res, err := Take(t.Context(), d, dir, "svc")
		if err != nil {
			t.Fatal(err)
		}
		checkCopy(t, res.Path)
		names = append(names, filepath.Base(res.Path))
	}
	want := []string{"svc-20250304T050607Z.db", "svc-20250304T050607Z-1.db", "svc-20250304T050607Z-2.db"}
	if !slices.Equal(names, want) {
		t.Fatalf("snapshots %q, want %q", names, want)
	}
}

func TestTakeRejectsBadService(t *testing.T) {
	d := openDB(t)
	dir := t.TempDir()
	for _, service := range []string{"", "../svc", "svc/x", "Svc", "svc.db", "-svc", strings.Repeat("s", 64)} {
		if _, err := Take(t.Context(), d, dir, service); err == nil {
			t.Errorf("Take accepted service name %q", service)
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("rejected names left files: %v, %v", entries, err)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	// Listed oldest first; the suffixed names sort before their unsuffixed
	// sibling as strings ("-" < "."), which Prune must not be fooled by.
	snaps := []string{
		"svc-20240101T000000Z.db",
		"svc-20240101T000000Z-1.db",
		"svc-20240101T000000Z-2.db",
		"svc-20240102T000000Z.db",
		"svc-20240102T000000Z-1.db",
	}
	others := []string{
		"svc-proxy-20200101T000000Z.db", // another service sharing the prefix
		"svc-20200101T000000Z.db.partial",
		"svc-20200101T000000Z-01.db",
		"svc-2020.db",
		"notes.txt",
	}
	for _, name := range append(slices.Clone(snaps), others...) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := Prune(dir, "svc", 2)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range []string{snaps[2], snaps[1], snaps[0]} {
		want = append(want, filepath.Join(dir, name))
	}
	if !slices.Equal(removed, want) {
		t.Fatalf("removed %q, want %q", removed, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	wantLeft := append([]string{snaps[3], snaps[4]}, others...)
	slices.Sort(wantLeft)
	if !slices.Equal(left, wantLeft) {
		t.Fatalf("left %q, want %q", left, wantLeft)
	}

	if removed, err := Prune(dir, "svc", 5); err != nil || len(removed) != 0 {
		t.Errorf("Prune keeping more than exist: %q, %v", removed, err)
	}
	if _, err := Prune(dir, "svc", -1); err == nil {
		t.Error("Prune accepted keep -1")
	}
	if removed, err := Prune(filepath.Join(dir, "missing"), "svc", 0); err != nil || removed != nil {
		t.Errorf("Prune of a missing dir: %q, %v", removed, err)
	}
}

func TestServer(t *testing.T) {
	d := openDB(t)
	dir := t.TempDir()
	var seen atomic.Value
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		seen.Store(info.FullMethod)
		return handler(ctx, req)
	}
	gs := grpc.NewServer(grpc.UnaryInterceptor(record))
	Register(gs, NewServer(d, dir, "svc"))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	resp, err := mcdslv1.NewSnapshotServiceClient(conn).Snapshot(t.Context(), &mcdslv1.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(resp.GetPath()) != dir || !nameRE.MatchString(filepath.Base(resp.GetPath())) {
		t.Errorf("path %q, want %s/svc-<UTC stamp>.db", resp.GetPath(), dir)
	}
	fi, err := os.Stat(resp.GetPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != resp.GetSizeBytes() {
		t.Errorf("size_bytes %d, file has %d", resp.GetSizeBytes(), fi.Size())
	}
	if err := resp.GetCreatedAt().CheckValid(); err != nil || time.Since(resp.GetCreatedAt().AsTime()) > time.Minute {
		t.Errorf("created_at %v (%v) is not a recent time", resp.GetCreatedAt(), err)
	}
	checkCopy(t, resp.GetPath())
	if got := seen.Load(); got != FullMethod || FullMethod != "/mcdsl.v1.SnapshotService/Snapshot" {
		t.Errorf("server saw method %v, FullMethod is %q", got, FullMethod)
	}
}

// runCommand mounts Command under a root command the way a service binary
// does and runs it with args.
func runCommand(t *testing.T, open OpenFunc, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "svc", SilenceErrors: true}
	root.AddCommand(Command(open))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func TestCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	if d, err := db.Open(t.Context(), path, db.Options{Migrations: pairsMigrations}); err != nil {
		t.Fatal(err)
	} else if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	opened := 0
	open := func(ctx context.Context) (*db.DB, string, string, error) {
		opened++
		d, err := db.Open(ctx, path, db.Options{})
		return d, "", "svc", err
	}

	out, err := runCommand(t, open, "snapshot", "--json")
	if err != nil {
		t.Fatalf("snapshot --json: %v\n%s", err, out)
	}
	var res Result
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("output is not a Result in JSON: %v\n%s", err, out)
	}
	if fi, err := os.Stat(res.Path); err != nil || fi.Size() != res.Size || res.CreatedAt.IsZero() {
		t.Fatalf("JSON result %+v; file %v, %v", res, fi, err)
	}
	if filepath.Dir(res.Path) != filepath.Join(filepath.Dir(path), "backups") {
		t.Errorf("snapshot in %s, want the backups directory beside %s", res.Path, path)
	}

	out, err = runCommand(t, open, "snapshot")
	if err != nil {
		t.Fatalf("snapshot: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "PATH") || !strings.Contains(lines[1], filepath.Join(filepath.Dir(path), "backups", "svc-")) {
		t.Fatalf("table output:\n%s", out)
	}
	if opened != 2 {
		t.Errorf("open called %d times, want 2", opened)
	}

	if _, err := runCommand(t, open, "snapshot", "extra"); err == nil {
		t.Error("snapshot accepted a positional argument")
	}
	failing := func(context.Context) (*db.DB, string, string, error) {
		return nil, "", "", errors.New("no config")
	}
	if _, err := runCommand(t, failing, "snapshot"); err == nil || !strings.Contains(err.Error(), "no config") {
		t.Errorf("snapshot with a failing open: %v", err)
	}
}

func TestFormatSize(t *testing.T) {
	tests := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"}
	for n, want := range tests {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
