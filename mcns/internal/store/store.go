package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
)

var migrations = []db.Migration{
	{Version: 1, Name: "zones and records", Up: func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range []string{
			`CREATE TABLE zones (
				name        TEXT PRIMARY KEY,
				primary_ns  TEXT NOT NULL,
				admin_email TEXT NOT NULL,
				serial      INTEGER NOT NULL,
				refresh     INTEGER NOT NULL,
				retry       INTEGER NOT NULL,
				expire      INTEGER NOT NULL,
				minimum     INTEGER NOT NULL,
				ttl         INTEGER NOT NULL,
				created_at  TEXT NOT NULL,
				updated_at  TEXT NOT NULL
			)`,
			`CREATE TABLE records (
				id         INTEGER PRIMARY KEY AUTOINCREMENT,
				zone       TEXT NOT NULL REFERENCES zones(name) ON DELETE CASCADE,
				name       TEXT NOT NULL,
				type       TEXT NOT NULL,
				ttl        INTEGER NOT NULL,
				value      TEXT NOT NULL,
				created_at TEXT NOT NULL,
				updated_at TEXT NOT NULL,
				UNIQUE (zone, name, type, value)
			)`,
			`CREATE INDEX records_zone_name ON records(zone, name)`,
		} {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}},
}

// Store is the MCNS database.
type Store struct {
	db  *db.DB
	now func() time.Time

	mu        sync.Mutex
	listeners []func(zoneName string)
}

// Open opens (creating and migrating) the database at path.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	d, err := db.Open(ctx, path, db.Options{Logger: logger, Migrations: migrations})
	if err != nil {
		return nil, err
	}
	return &Store{db: d, now: time.Now}, nil
}

// DB exposes the database for snapshots.
func (s *Store) DB() *db.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// OnChange registers fn to run after every committed change to a zone.
func (s *Store) OnChange(fn func(zoneName string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listeners = append(s.listeners, fn)
}

func (s *Store) changed(zoneName string) {
	s.mu.Lock()
	ls := append([]func(string){}, s.listeners...)
	s.mu.Unlock()
	for _, fn := range ls {
		fn(zoneName)
	}
}

func ts(t time.Time) string { return db.FormatTime(t) }

// NextSerial returns the serial after old for a change made at now, in the
// YYYYMMDDnn convention: the first change of a day is YYYYMMDD00, later ones
// count up; if old is already ahead (more than 99 changes in a day, or a
// clock set back) it simply increments, because a serial must never go
// backwards for secondaries.
func NextSerial(old uint32, now time.Time) uint32 {
	day, _ := strconv.ParseUint(now.UTC().Format("20060102"), 10, 32)
	base := uint32(day) * 100 //nolint:gosec // YYYYMMDD*100 fits in uint32 until 4294
	if old < base {
		return base
	}
	return old + 1
}

const zoneCols = `name, primary_ns, admin_email, serial, refresh, retry, expire, minimum, ttl, created_at, updated_at`

func scanZone(row interface{ Scan(...any) error }) (dnsdata.Zone, error) {
	var z dnsdata.Zone
	err := row.Scan(&z.Name, &z.PrimaryNS, &z.AdminEmail, &z.Serial, &z.Refresh, &z.Retry, &z.Expire, &z.Minimum, &z.TTL,
		db.Time(&z.CreatedAt), db.Time(&z.UpdatedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return z, dnsdata.ErrNotFound
	}
	return z, err
}

// CreateZone adds a zone (already validated); its serial starts today.
func (s *Store) CreateZone(ctx context.Context, z dnsdata.Zone) (dnsdata.Zone, error) {
	now := s.now()
	z.Serial = NextSerial(0, now)
	z.CreatedAt, z.UpdatedAt = now, now
	_, err := s.db.ExecContext(ctx, `INSERT INTO zones (`+zoneCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		z.Name, z.PrimaryNS, z.AdminEmail, z.Serial, z.Refresh, z.Retry, z.Expire, z.Minimum, z.TTL, ts(now), ts(now))
	if db.IsUnique(err) {
		return dnsdata.Zone{}, fmt.Errorf("create zone %s: %w: zone exists", z.Name, dnsdata.ErrConflict)
	}
	if err != nil {
		return dnsdata.Zone{}, fmt.Errorf("create zone %s: %w", z.Name, err)
	}
	s.changed(z.Name)
	return z, nil
}

// GetZone loads a zone.
func (s *Store) GetZone(ctx context.Context, name string) (dnsdata.Zone, error) {
	z, err := scanZone(s.db.QueryRowContext(ctx, `SELECT `+zoneCols+` FROM zones WHERE name = ?`, name))
	if err != nil {
		return dnsdata.Zone{}, fmt.Errorf("zone %s: %w", name, err)
	}
	return z, nil
}

// ListZones lists zones by name.
func (s *Store) ListZones(ctx context.Context) ([]dnsdata.Zone, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+zoneCols+` FROM zones ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list zones: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []dnsdata.Zone{}
	for rows.Next() {
		z, err := scanZone(rows)
		if err != nil {
			return nil, fmt.Errorf("list zones: %w", err)
		}
		out = append(out, z)
	}
	return out, rows.Err()
}

// UpdateZone replaces a zone's SOA fields and bumps its serial.
func (s *Store) UpdateZone(ctx context.Context, z dnsdata.Zone) (dnsdata.Zone, error) {
	var out dnsdata.Zone
	err := s.inZone(ctx, z.Name, func(tx *sql.Tx, cur dnsdata.Zone) error {
		now := s.now()
		z.Serial, z.CreatedAt, z.UpdatedAt = NextSerial(cur.Serial, now), cur.CreatedAt, now
		_, err := tx.ExecContext(ctx, `UPDATE zones SET primary_ns = ?, admin_email = ?, serial = ?, refresh = ?, retry = ?,
			expire = ?, minimum = ?, ttl = ?, updated_at = ? WHERE name = ?`,
			z.PrimaryNS, z.AdminEmail, z.Serial, z.Refresh, z.Retry, z.Expire, z.Minimum, z.TTL, ts(now), z.Name)
		out = z
		return err
	})
	return out, err
}

// DeleteZone removes a zone and its records.
func (s *Store) DeleteZone(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM zones WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete zone %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete zone %s: %w", name, dnsdata.ErrNotFound)
	}
	s.changed(name)
	return nil
}

// inZone runs fn in a write transaction holding the zone row, bumps nothing
// itself, and notifies listeners after commit.
func (s *Store) inZone(ctx context.Context, zoneName string, fn func(tx *sql.Tx, cur dnsdata.Zone) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("zone %s: %w", zoneName, err)
	}
	defer func() { _ = tx.Rollback() }()
	cur, err := scanZone(tx.QueryRowContext(ctx, `SELECT `+zoneCols+` FROM zones WHERE name = ?`, zoneName))
	if err != nil {
		return fmt.Errorf("zone %s: %w", zoneName, err)
	}
	if err := fn(tx, cur); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("zone %s: %w", zoneName, err)
	}
	s.changed(zoneName)
	return nil
}

func bumpSerial(ctx context.Context, tx *sql.Tx, cur dnsdata.Zone, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE zones SET serial = ?, updated_at = ? WHERE name = ?`, NextSerial(cur.Serial, now), ts(now), cur.Name)
	return err
}

const recordCols = `id, zone, name, type, ttl, value, created_at, updated_at`

func scanRecord(row interface{ Scan(...any) error }) (dnsdata.Record, error) {
	var r dnsdata.Record
	err := row.Scan(&r.ID, &r.Zone, &r.Name, &r.Type, &r.TTL, &r.Value, db.Time(&r.CreatedAt), db.Time(&r.UpdatedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return r, dnsdata.ErrNotFound
	}
	return r, err
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func queryRecords(ctx context.Context, q querier, query string, args ...any) ([]dnsdata.Record, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := []dnsdata.Record{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Records lists a zone's records, optionally only those with name and/or
// type (empty means any), ordered by name, type and id.
func (s *Store) Records(ctx context.Context, zoneName, name, typ string) ([]dnsdata.Record, error) {
	q := `SELECT ` + recordCols + ` FROM records WHERE zone = ?`
	args := []any{zoneName}
	if name != "" {
		q += ` AND name = ?`
		args = append(args, name)
	}
	if typ != "" {
		q += ` AND type = ?`
		args = append(args, typ)
	}
	out, err := queryRecords(ctx, s.db, q+` ORDER BY name, type, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list records of %s: %w", zoneName, err)
	}
	return out, nil
}

// GetRecord loads one record of a zone.
func (s *Store) GetRecord(ctx context.Context, zoneName string, id int64) (dnsdata.Record, error) {
	r, err := scanRecord(s.db.QueryRowContext(ctx, `SELECT `+recordCols+` FROM records WHERE zone = ? AND id = ?`, zoneName, id))
	if err != nil {
		return dnsdata.Record{}, fmt.Errorf("record %d in %s: %w", id, zoneName, err)
	}
	return r, nil
}

// checkExclusive enforces CNAME exclusivity for r inside tx, ignoring the
// record being replaced (skipID).
func checkExclusive(ctx context.Context, tx *sql.Tx, r dnsdata.Record, skipID int64) error {
	others, err := queryRecords(ctx, tx, `SELECT `+recordCols+` FROM records WHERE zone = ? AND name = ? AND id != ?`, r.Zone, r.Name, skipID)
	if err != nil {
		return err
	}
	for _, o := range others {
		if r.Type == "CNAME" || o.Type == "CNAME" {
			return fmt.Errorf("%w: %s already has a %s record; a CNAME cannot share its name with other records", dnsdata.ErrConflict, r.Name, o.Type)
		}
		if o.Type == r.Type && o.Value == r.Value {
			return fmt.Errorf("%w: %s %s %s already exists", dnsdata.ErrConflict, r.Name, r.Type, r.Value)
		}
	}
	return nil
}

// CreateRecord adds a validated record and bumps the zone serial.
func (s *Store) CreateRecord(ctx context.Context, r dnsdata.Record) (dnsdata.Record, error) {
	err := s.inZone(ctx, r.Zone, func(tx *sql.Tx, cur dnsdata.Zone) error {
		if err := checkExclusive(ctx, tx, r, 0); err != nil {
			return err
		}
		now := s.now()
		res, err := tx.ExecContext(ctx, `INSERT INTO records (zone, name, type, ttl, value, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.Zone, r.Name, r.Type, r.TTL, r.Value, ts(now), ts(now))
		if err != nil {
			return fmt.Errorf("create record: %w", err)
		}
		r.ID, _ = res.LastInsertId()
		r.CreatedAt, r.UpdatedAt = now, now
		return bumpSerial(ctx, tx, cur, now)
	})
	return r, err
}

// UpdateRecord replaces record r.ID (name, type, ttl, value) and bumps the
// serial.
func (s *Store) UpdateRecord(ctx context.Context, r dnsdata.Record) (dnsdata.Record, error) {
	err := s.inZone(ctx, r.Zone, func(tx *sql.Tx, cur dnsdata.Zone) error {
		old, err := scanRecord(tx.QueryRowContext(ctx, `SELECT `+recordCols+` FROM records WHERE zone = ? AND id = ?`, r.Zone, r.ID))
		if err != nil {
			return fmt.Errorf("record %d in %s: %w", r.ID, r.Zone, err)
		}
		if err := checkExclusive(ctx, tx, r, r.ID); err != nil {
			return err
		}
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE records SET name = ?, type = ?, ttl = ?, value = ?, updated_at = ? WHERE id = ?`,
			r.Name, r.Type, r.TTL, r.Value, ts(now), r.ID); err != nil {
			return fmt.Errorf("update record: %w", err)
		}
		r.CreatedAt, r.UpdatedAt = old.CreatedAt, now
		return bumpSerial(ctx, tx, cur, now)
	})
	return r, err
}

// DeleteRecord removes a record and bumps the serial; it returns the record
// as it was.
func (s *Store) DeleteRecord(ctx context.Context, zoneName string, id int64) (dnsdata.Record, error) {
	var old dnsdata.Record
	err := s.inZone(ctx, zoneName, func(tx *sql.Tx, cur dnsdata.Zone) error {
		var err error
		old, err = scanRecord(tx.QueryRowContext(ctx, `SELECT `+recordCols+` FROM records WHERE zone = ? AND id = ?`, zoneName, id))
		if err != nil {
			return fmt.Errorf("record %d in %s: %w", id, zoneName, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM records WHERE id = ?`, id); err != nil {
			return err
		}
		return bumpSerial(ctx, tx, cur, s.now())
	})
	return old, err
}
