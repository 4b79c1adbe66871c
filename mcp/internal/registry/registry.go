// Package registry is the agent's SQLite database: the desired state
// (services, their immutable revisions of the definition), what the agent
// created to realize it (containers, host ports, mc-proxy routes, DNS
// records), and the record of every operation step by step, so an agent
// killed at any point finds what it was doing and finishes or undoes it.
package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// ErrNotFound reports a service, revision or operation that does not exist.
var ErrNotFound = apierr.New(apierr.NotFound, "not found")

// Desired states of a service.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
)

// Operation states.
const (
	OpRunning     = "running"
	OpRollingBack = "rolling_back"
	OpSucceeded   = "succeeded"
	OpFailed      = "failed"
	OpRolledBack  = "rolled_back"
)

var migrations = []db.Migration{
	{Version: 1, Name: "agent registry", Up: func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range []string{
			`CREATE TABLE services (
				name       TEXT PRIMARY KEY,
				desired    TEXT NOT NULL,
				revision   INTEGER NOT NULL,
				created_at TEXT NOT NULL,
				updated_at TEXT NOT NULL
			)`,
			`CREATE TABLE revisions (
				service    TEXT NOT NULL,
				revision   INTEGER NOT NULL,
				spec       TEXT NOT NULL,
				spec_hash  TEXT NOT NULL,
				created_at TEXT NOT NULL,
				PRIMARY KEY (service, revision)
			)`,
			`CREATE TABLE instances (
				name         TEXT PRIMARY KEY,
				service      TEXT NOT NULL,
				component    TEXT NOT NULL,
				revision     INTEGER NOT NULL,
				container_id TEXT NOT NULL,
				image        TEXT NOT NULL,
				image_id     TEXT NOT NULL,
				created_at   TEXT NOT NULL
			)`,
			`CREATE INDEX instances_service ON instances(service, revision)`,
			`CREATE TABLE ports (
				port      INTEGER PRIMARY KEY,
				service   TEXT NOT NULL,
				component TEXT NOT NULL,
				revision  INTEGER NOT NULL,
				route     TEXT NOT NULL,
				UNIQUE (service, component, revision, route)
			)`,
			`CREATE TABLE routes (
				listener         TEXT NOT NULL,
				hostname         TEXT NOT NULL,
				service          TEXT NOT NULL,
				backend          TEXT NOT NULL,
				mode             TEXT NOT NULL,
				tls_cert         TEXT NOT NULL,
				tls_key          TEXT NOT NULL,
				backend_protocol TEXT NOT NULL,
				PRIMARY KEY (listener, hostname)
			)`,
			`CREATE TABLE records (
				name    TEXT NOT NULL,
				value   TEXT NOT NULL,
				service TEXT NOT NULL,
				PRIMARY KEY (name, value)
			)`,
			`CREATE TABLE operations (
				id            INTEGER PRIMARY KEY AUTOINCREMENT,
				service       TEXT NOT NULL,
				kind          TEXT NOT NULL,
				revision      INTEGER NOT NULL,
				prev_revision INTEGER NOT NULL,
				state         TEXT NOT NULL,
				step          INTEGER NOT NULL,
				error         TEXT NOT NULL,
				started_at    TEXT NOT NULL,
				finished_at   TEXT
			)`,
			`CREATE INDEX operations_service ON operations(service, id)`,
			`CREATE TABLE events (
				id        INTEGER PRIMARY KEY AUTOINCREMENT,
				operation INTEGER NOT NULL,
				service   TEXT NOT NULL,
				kind      TEXT NOT NULL,
				step      TEXT NOT NULL,
				state     TEXT NOT NULL,
				message   TEXT NOT NULL,
				at        TEXT NOT NULL
			)`,
			`CREATE INDEX events_service ON events(service, id)`,
			`CREATE TABLE alerts (
				id      INTEGER PRIMARY KEY AUTOINCREMENT,
				at      TEXT NOT NULL,
				service TEXT NOT NULL,
				kind    TEXT NOT NULL,
				message TEXT NOT NULL
			)`,
		} {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}},
}

// Store is the agent's registry.
type Store struct {
	db  *db.DB
	now func() time.Time
}

// Open opens (creating and migrating) the registry at path.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	d, err := OpenDB(ctx, path, logger)
	if err != nil {
		return nil, err
	}
	return &Store{db: d, now: time.Now}, nil
}

// OpenDB opens the database with the registry's migrations (for the
// init and snapshot verbs).
func OpenDB(ctx context.Context, path string, logger *slog.Logger) (*db.DB, error) {
	d, err := db.Open(ctx, path, db.Options{Logger: logger, Migrations: migrations})
	if err != nil {
		return nil, fmt.Errorf("open registry: %w", err)
	}
	return d, nil
}

// DB is the underlying database (snapshots, health).
func (s *Store) DB() *db.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) stamp() string { return db.FormatTime(s.now()) }

// --- services and revisions ---

// Service is a service's desired state.
type Service struct {
	Name string
	// Desired is DesiredRunning or DesiredStopped.
	Desired string
	// Revision is the revision serving (0: none has succeeded yet).
	Revision  int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Revision is one immutable version of a service's definition.
type Revision struct {
	Service   string
	Revision  int64
	Spec      *spec.Service
	Hash      string
	CreatedAt time.Time
}

func scanService(sc interface{ Scan(...any) error }) (Service, error) {
	var v Service
	err := sc.Scan(&v.Name, &v.Desired, &v.Revision, db.Time(&v.CreatedAt), db.Time(&v.UpdatedAt))
	return v, err
}

// Services lists the services by name.
func (s *Store) Services(ctx context.Context) ([]Service, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, desired, revision, created_at, updated_at FROM services ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Service
	for rows.Next() {
		v, err := scanService(rows)
		if err != nil {
			return nil, fmt.Errorf("list services: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Service returns one service (ErrNotFound).
func (s *Store) Service(ctx context.Context, name string) (Service, error) {
	v, err := scanService(s.db.QueryRowContext(ctx, `SELECT name, desired, revision, created_at, updated_at FROM services WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Service{}, fmt.Errorf("%w: service %s", ErrNotFound, name)
	}
	if err != nil {
		return Service{}, fmt.Errorf("service %s: %w", name, err)
	}
	return v, nil
}

// NewRevision stores sp as the service's next revision, creating the
// service (desired running, no serving revision) when it is new, and
// returns the revision number.
func (s *Store) NewRevision(ctx context.Context, sp *spec.Service) (int64, error) {
	b, err := json.Marshal(sp)
	if err != nil {
		return 0, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	now := s.stamp()
	if _, err := tx.ExecContext(ctx, `INSERT INTO services (name, desired, revision, created_at, updated_at)
		VALUES (?, ?, 0, ?, ?) ON CONFLICT (name) DO NOTHING`, sp.Name, DesiredRunning, now, now); err != nil {
		return 0, fmt.Errorf("new revision: %w", err)
	}
	var rev int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(revision), 0) + 1 FROM revisions WHERE service = ?`, sp.Name).Scan(&rev); err != nil {
		return 0, fmt.Errorf("new revision: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO revisions (service, revision, spec, spec_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		sp.Name, rev, string(b), sp.Hash(), now); err != nil {
		return 0, fmt.Errorf("new revision: %w", err)
	}
	return rev, tx.Commit()
}

// Revision returns one revision of a service (ErrNotFound).
func (s *Store) Revision(ctx context.Context, service string, rev int64) (*Revision, error) {
	var raw string
	r := &Revision{Service: service, Revision: rev}
	err := s.db.QueryRowContext(ctx, `SELECT spec, spec_hash, created_at FROM revisions WHERE service = ? AND revision = ?`, service, rev).
		Scan(&raw, &r.Hash, db.Time(&r.CreatedAt))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: revision %d of %s", ErrNotFound, rev, service)
	}
	if err != nil {
		return nil, fmt.Errorf("revision %d of %s: %w", rev, service, err)
	}
	r.Spec = &spec.Service{}
	if err := json.Unmarshal([]byte(raw), r.Spec); err != nil {
		return nil, fmt.Errorf("revision %d of %s: corrupt spec: %w", rev, service, err)
	}
	return r, nil
}

// SetServing records rev as the serving revision and the desired state.
func (s *Store) SetServing(ctx context.Context, service string, rev int64, desired string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE services SET revision = ?, desired = ?, updated_at = ? WHERE name = ?`, rev, desired, s.stamp(), service)
	if err != nil {
		return fmt.Errorf("set serving revision of %s: %w", service, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: service %s", ErrNotFound, service)
	}
	return nil
}

// SetDesired records the desired state of a service.
func (s *Store) SetDesired(ctx context.Context, service, desired string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE services SET desired = ?, updated_at = ? WHERE name = ?`, desired, s.stamp(), service)
	if err != nil {
		return fmt.Errorf("set desired state of %s: %w", service, err)
	}
	return nil
}

// DeleteService removes a service with its revisions, instances, ports,
// routes and records. Operations, events and alerts stay as history.
func (s *Store) DeleteService(ctx context.Context, service string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, q := range []string{
		`DELETE FROM services WHERE name = ?`, `DELETE FROM revisions WHERE service = ?`,
		`DELETE FROM instances WHERE service = ?`, `DELETE FROM ports WHERE service = ?`,
		`DELETE FROM routes WHERE service = ?`, `DELETE FROM records WHERE service = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, service); err != nil {
			return fmt.Errorf("delete service %s: %w", service, err)
		}
	}
	return tx.Commit()
}

// --- instances ---

// Instance is a container the agent created.
type Instance struct {
	Name        string
	Service     string
	Component   string
	Revision    int64
	ContainerID string
	Image       string
	ImageID     string
	CreatedAt   time.Time
}

// PutInstance records (or updates) a container.
func (s *Store) PutInstance(ctx context.Context, in Instance) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO instances (name, service, component, revision, container_id, image, image_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET container_id = excluded.container_id,
		image = excluded.image, image_id = excluded.image_id, revision = excluded.revision`,
		in.Name, in.Service, in.Component, in.Revision, in.ContainerID, in.Image, in.ImageID, s.stamp())
	if err != nil {
		return fmt.Errorf("record container %s: %w", in.Name, err)
	}
	return nil
}

// DeleteInstance forgets a container.
func (s *Store) DeleteInstance(ctx context.Context, name string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM instances WHERE name = ?`, name); err != nil {
		return fmt.Errorf("forget container %s: %w", name, err)
	}
	return nil
}

// Instances lists a service's containers (every service's with ""), of
// one revision when rev > 0.
func (s *Store) Instances(ctx context.Context, service string, rev int64) ([]Instance, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, service, component, revision, container_id, image, image_id, created_at
		FROM instances WHERE (? = '' OR service = ?) AND (? = 0 OR revision = ?) ORDER BY service, revision, component`,
		service, service, rev, rev)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Instance
	for rows.Next() {
		var in Instance
		if err := rows.Scan(&in.Name, &in.Service, &in.Component, &in.Revision, &in.ContainerID, &in.Image, &in.ImageID, db.Time(&in.CreatedAt)); err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// --- ports ---

// Port is an allocated host port.
type Port struct {
	Port      int
	Service   string
	Component string
	Revision  int64
	Route     string
}

// ErrNoPorts reports an exhausted port range.
var ErrNoPorts = apierr.New(apierr.Unavailable, "no free port in the configured range")

// AllocatePort returns the port allocated to the route, allocating the
// lowest port of [lo, hi] that is neither allocated nor refused by free
// (a port something else on the host holds) when there is none yet.
func (s *Store) AllocatePort(ctx context.Context, p Port, lo, hi int, free func(int) bool) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	var have int
	err = tx.QueryRowContext(ctx, `SELECT port FROM ports WHERE service = ? AND component = ? AND revision = ? AND route = ?`,
		p.Service, p.Component, p.Revision, p.Route).Scan(&have)
	if err == nil {
		return have, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("allocate port: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT port FROM ports WHERE port BETWEEN ? AND ? ORDER BY port`, lo, hi)
	if err != nil {
		return 0, fmt.Errorf("allocate port: %w", err)
	}
	used := map[int]bool{}
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			_ = rows.Close()
			return 0, err
		}
		used[n] = true
	}
	_ = rows.Close()
	for port := lo; port <= hi; port++ {
		if used[port] || (free != nil && !free(port)) {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ports (port, service, component, revision, route) VALUES (?, ?, ?, ?, ?)`,
			port, p.Service, p.Component, p.Revision, p.Route); err != nil {
			return 0, fmt.Errorf("allocate port: %w", err)
		}
		return port, tx.Commit()
	}
	return 0, fmt.Errorf("%w (%d-%d)", ErrNoPorts, lo, hi)
}

// Ports lists a service's allocated ports (of one revision when rev > 0).
func (s *Store) Ports(ctx context.Context, service string, rev int64) ([]Port, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT port, service, component, revision, route FROM ports
		WHERE service = ? AND (? = 0 OR revision = ?) ORDER BY port`, service, rev, rev)
	if err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Port
	for rows.Next() {
		var p Port
		if err := rows.Scan(&p.Port, &p.Service, &p.Component, &p.Revision, &p.Route); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ReleasePorts frees a service's ports of revision rev (all when 0).
func (s *Store) ReleasePorts(ctx context.Context, service string, rev int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM ports WHERE service = ? AND (? = 0 OR revision = ?)`, service, rev, rev); err != nil {
		return fmt.Errorf("release ports: %w", err)
	}
	return nil
}

// --- routes and records ---

// Route is an mc-proxy route the agent registered.
type Route struct {
	Listener        string
	Hostname        string
	Service         string
	Backend         string
	Mode            string
	TLSCert         string
	TLSKey          string
	BackendProtocol string
}

// PutRoute records a registered route.
func (s *Store) PutRoute(ctx context.Context, r Route) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO routes (listener, hostname, service, backend, mode, tls_cert, tls_key, backend_protocol)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (listener, hostname) DO UPDATE SET service = excluded.service,
		backend = excluded.backend, mode = excluded.mode, tls_cert = excluded.tls_cert, tls_key = excluded.tls_key,
		backend_protocol = excluded.backend_protocol`,
		r.Listener, r.Hostname, r.Service, r.Backend, r.Mode, r.TLSCert, r.TLSKey, r.BackendProtocol)
	if err != nil {
		return fmt.Errorf("record route %s: %w", r.Hostname, err)
	}
	return nil
}

// DeleteRoute forgets a route.
func (s *Store) DeleteRoute(ctx context.Context, listener, hostname string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM routes WHERE listener = ? AND hostname = ?`, listener, hostname); err != nil {
		return fmt.Errorf("forget route %s: %w", hostname, err)
	}
	return nil
}

// Routes lists the recorded routes of a service (all with "").
func (s *Store) Routes(ctx context.Context, service string) ([]Route, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT listener, hostname, service, backend, mode, tls_cert, tls_key, backend_protocol
		FROM routes WHERE ? = '' OR service = ? ORDER BY listener, hostname`, service, service)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Route
	for rows.Next() {
		var r Route
		if err := rows.Scan(&r.Listener, &r.Hostname, &r.Service, &r.Backend, &r.Mode, &r.TLSCert, &r.TLSKey, &r.BackendProtocol); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Record is a DNS record the agent registered (an A or AAAA record).
type Record struct {
	Name    string
	Value   string
	Service string
}

// PutRecord records a registered DNS record.
func (s *Store) PutRecord(ctx context.Context, r Record) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO records (name, value, service) VALUES (?, ?, ?)
		ON CONFLICT (name, value) DO UPDATE SET service = excluded.service`, r.Name, r.Value, r.Service)
	if err != nil {
		return fmt.Errorf("record dns name %s: %w", r.Name, err)
	}
	return nil
}

// DeleteRecord forgets a DNS record.
func (s *Store) DeleteRecord(ctx context.Context, name, value string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM records WHERE name = ? AND value = ?`, name, value); err != nil {
		return fmt.Errorf("forget dns name %s: %w", name, err)
	}
	return nil
}

// Records lists the recorded DNS records of a service (all with "").
func (s *Store) Records(ctx context.Context, service string) ([]Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, value, service FROM records WHERE ? = '' OR service = ? ORDER BY name`, service, service)
	if err != nil {
		return nil, fmt.Errorf("list dns records: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Record
	for rows.Next() {
		var r Record
		if err := rows.Scan(&r.Name, &r.Value, &r.Service); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
