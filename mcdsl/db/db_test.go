package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func counterMigrations(runs *atomic.Int32) []Migration {
	return []Migration{
		{Version: 1, Name: "create items", Up: func(ctx context.Context, tx *sql.Tx) error {
			runs.Add(1)
			_, err := tx.ExecContext(ctx, `CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
			return err
		}},
		{Version: 2, Name: "add note", Up: func(ctx context.Context, tx *sql.Tx) error {
			runs.Add(1)
			_, err := tx.ExecContext(ctx, `ALTER TABLE items ADD COLUMN note TEXT NOT NULL DEFAULT ''`)
			return err
		}},
	}
}

func TestOpenPragmasAndMode(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "svc.db")
	d, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var mode string
	if err := d.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	var fk, busy int
	if err := d.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
	if err := d.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != 5000 {
		t.Fatalf("busy_timeout = %d, %v", busy, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v", st.Mode().Perm())
	}
}

func TestMigrationsOnceInOrderAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "svc.db")
	var runs atomic.Int32
	migs := counterMigrations(&runs)
	for i := 0; i < 3; i++ {
		d, err := Open(ctx, path, Options{Migrations: migs})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if _, err := d.ExecContext(ctx, `INSERT INTO items (name, note) VALUES ('x', 'y')`); err != nil {
			t.Fatalf("insert after open %d: %v", i, err)
		}
		v, err := d.AppliedVersions(ctx)
		if err != nil || len(v) != 2 || v[0] != 1 || v[1] != 2 {
			t.Fatalf("applied = %v, %v", v, err)
		}
		_ = d.Close()
	}
	if runs.Load() != 2 {
		t.Fatalf("migrations ran %d times, want 2", runs.Load())
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "svc.db")
	bad := []Migration{{Version: 1, Name: "half", Up: func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE t (id INTEGER)`); err != nil {
			return err
		}
		return errors.New("boom")
	}}}
	if _, err := Open(ctx, path, Options{Migrations: bad}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("want migration error, got %v", err)
	}
	d, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 't'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("partial migration left table t: n=%d err=%v", n, err)
	}
}

func TestMigrationValidation(t *testing.T) {
	ctx := context.Background()
	noop := func(context.Context, *sql.Tx) error { return nil }
	for _, migs := range [][]Migration{
		{{Version: 2, Up: noop}, {Version: 1, Up: noop}},
		{{Version: 1, Up: noop}, {Version: 1, Up: noop}},
		{{Version: 0, Up: noop}},
		{{Version: 1}},
	} {
		if _, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{Migrations: migs}); err == nil {
			t.Errorf("migrations %+v accepted", migs)
		}
	}
}

func TestChmodFailureOnlyWarns(t *testing.T) {
	orig := chmod
	chmod = func(string, os.FileMode) error { return os.ErrPermission }
	t.Cleanup(func() { chmod = orig })
	var logs bytes.Buffer
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "svc.db"),
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("open failed on chmod error: %v", err)
	}
	defer d.Close()
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "could not set database file mode") {
		t.Fatalf("no warning logged: %q", logs.String())
	}
}

func TestSnapshotConsistentUnderWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var runs atomic.Int32
	d, err := Open(ctx, filepath.Join(dir, "svc.db"), Options{Migrations: counterMigrations(&runs)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Each transaction inserts a pair; a consistent snapshot always holds an
	// even number of rows.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written atomic.Int64
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tx, err := d.BeginTx(ctx, nil)
				if err != nil {
					t.Error(err)
					return
				}
				for i := 0; i < 2; i++ {
					if _, err := tx.ExecContext(ctx, `INSERT INTO items (name) VALUES ('pair')`); err != nil {
						t.Error(err)
						_ = tx.Rollback()
						return
					}
				}
				if err := tx.Commit(); err != nil {
					t.Error(err)
					return
				}
				written.Add(2)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for written.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		dest := filepath.Join(dir, "backups", "snap"+string(rune('a'+i))+".db")
		if err := d.Snapshot(ctx, dest); err != nil {
			t.Fatal(err)
		}
		s, err := Open(ctx, dest, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		if n == 0 || n%2 != 0 {
			t.Fatalf("snapshot %d holds %d rows: torn or empty", i, n)
		}
		if _, err := os.Stat(dest + ".partial"); !os.IsNotExist(err) {
			t.Fatalf("partial file left behind: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	// A newer snapshot replaces an older one at the same path.
	if err := d.Snapshot(ctx, filepath.Join(dir, "backups", "snapa.db")); err != nil {
		t.Fatalf("snapshot over an existing file: %v", err)
	}
}

// BenchmarkInsert measures one single-row write transaction with the
// platform pragmas (WAL, synchronous=NORMAL).
func BenchmarkInsert(b *testing.B) {
	ctx := context.Background()
	var runs atomic.Int32
	d, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{Migrations: counterMigrations(&runs)})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.ExecContext(ctx, `INSERT INTO items (name) VALUES ('x')`); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUniqueAndTimes(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "v.db"), Options{Migrations: []Migration{{
		Version: 1, Name: "t", Up: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `CREATE TABLE t (k TEXT PRIMARY KEY, u TEXT UNIQUE, at TEXT NOT NULL, gone TEXT)`)
			return err
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	at := time.Date(2026, 11, 30, 9, 1, 2, 300, time.FixedZone("x", 3600))
	if _, err := d.ExecContext(ctx, `INSERT INTO t VALUES ('a', 'x', ?, NULL)`, Time(&at)); err != nil {
		t.Fatal(err)
	}
	_, err = d.ExecContext(ctx, `INSERT INTO t VALUES ('a', 'y', ?, NULL)`, Time(&at))
	if !IsUnique(err) {
		t.Errorf("primary key clash: IsUnique(%v) = false", err)
	}
	_, err = d.ExecContext(ctx, `INSERT INTO t VALUES ('b', 'x', ?, NULL)`, Time(&at))
	if !IsUnique(err) {
		t.Errorf("unique clash: IsUnique(%v) = false", err)
	}
	_, err = d.ExecContext(ctx, `INSERT INTO t VALUES ('c', 'z', NULL, NULL)`)
	if err == nil || IsUnique(err) {
		t.Errorf("NOT NULL violation: IsUnique(%v) = true", err)
	}
	if IsUnique(errors.New("UNIQUE constraint failed: t.k")) {
		t.Error("IsUnique matched an error by its text")
	}
	var got time.Time
	var gone *time.Time
	if err := d.QueryRowContext(ctx, `SELECT at, gone FROM t WHERE k = 'a'`).Scan(Time(&got), NullTime(&gone)); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(at) || got.Location() != time.UTC || gone != nil {
		t.Errorf("scanned %v %v, want %v nil", got, gone, at)
	}
	if _, err := d.ExecContext(ctx, `UPDATE t SET gone = ?, at = 'garbage' WHERE k = 'a'`, NullTime(&gone)); err != nil {
		t.Fatal(err)
	}
	if err := d.QueryRowContext(ctx, `SELECT at FROM t WHERE k = 'a'`).Scan(Time(&got)); err == nil {
		t.Error("a corrupt stored time scanned without error")
	}
}

func TestPreparedReusedConcurrentlyAndInTx(t *testing.T) {
	ctx := context.Background()
	var runs atomic.Int32
	d, err := Open(ctx, filepath.Join(t.TempDir(), "svc.db"), Options{Migrations: counterMigrations(&runs)})
	if err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO items (name) VALUES (?)`
	const count = `SELECT COUNT(*) FROM items WHERE name = ?`
	a, err := d.Prepared(ctx, insert)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := d.Prepared(ctx, insert); err != nil || b != a {
		t.Fatalf("second Prepared = %p, %v; want the cached %p", b, err, a)
	}
	if _, err := d.Prepared(ctx, `SELECT nope FROM nowhere`); err == nil {
		t.Fatal("a statement that does not compile was prepared")
	}
	// More writers and readers at once than the pool keeps idle by
	// default, each through the cached statements.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			ins, err := d.Prepared(ctx, insert)
			if err == nil {
				_, err = ins.ExecContext(ctx, "w")
			}
			if err != nil {
				errs <- err
				return
			}
			sel, err := d.Prepared(ctx, count)
			var n int
			if err == nil {
				err = sel.QueryRowContext(ctx, "w").Scan(&n)
			}
			if err != nil || n < 1 {
				errs <- fmt.Errorf("count %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// In a transaction: rolled back, nothing stays.
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.StmtContext(ctx, a).ExecContext(ctx, "tx"); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	sel, err := d.Prepared(ctx, count)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := sel.QueryRowContext(ctx, "tx").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled-back insert: count %d, %v", n, err)
	}
	if err := sel.QueryRowContext(ctx, "w").Scan(&n); err != nil || n != 32 {
		t.Fatalf("concurrent inserts: count %d, %v", n, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.QueryRowContext(ctx, "w").Scan(&n); err == nil {
		t.Fatal("a prepared statement still runs after Close")
	}
}

// TestIdleConnectionsKept checks connections come back to the pool
// instead of being closed, as database/sql's default of 2 idle
// connections would do under a little concurrency.
func TestIdleConnectionsKept(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "svc.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	conns := make([]*sql.Conn, 8)
	for i := range conns {
		if conns[i], err = d.Conn(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if st := d.Stats(); st.MaxIdleClosed != 0 || st.Idle != len(conns) {
		t.Fatalf("after returning %d connections: %+v", len(conns), st)
	}
}
