package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// ErrNotFound is returned when a route or rule to remove does not exist.
var ErrNotFound = apierr.New(apierr.NotFound, "not found")

// seededKey is the meta row that marks a database as initialized. It is
// written by Seed even when the TOML has nothing to seed, so a database
// whose routes were all removed at run time is not re-seeded at the next
// start.
const seededKey = "seeded_at"

var migrations = []db.Migration{
	{Version: 1, Name: "routes, firewall rules and meta", Up: func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range []string{
			`CREATE TABLE routes (
				listener            TEXT NOT NULL,
				hostname            TEXT NOT NULL,
				mode                TEXT NOT NULL CHECK (mode IN ('l4', 'l7')),
				backend             TEXT NOT NULL,
				tls_cert            TEXT NOT NULL DEFAULT '',
				tls_key             TEXT NOT NULL DEFAULT '',
				backend_tls         INTEGER NOT NULL DEFAULT 0,
				backend_ca          TEXT NOT NULL DEFAULT '',
				backend_server_name TEXT NOT NULL DEFAULT '',
				send_proxy_protocol INTEGER NOT NULL DEFAULT 0,
				created_at          TEXT NOT NULL,
				updated_at          TEXT NOT NULL,
				PRIMARY KEY (listener, hostname)
			)`,
			`CREATE TABLE firewall_rules (
				kind       TEXT NOT NULL CHECK (kind IN ('ip', 'cidr', 'country')),
				value      TEXT NOT NULL,
				reason     TEXT NOT NULL DEFAULT '',
				created_at TEXT NOT NULL,
				PRIMARY KEY (kind, value)
			)`,
			`CREATE TABLE meta (
				key   TEXT PRIMARY KEY,
				value TEXT NOT NULL
			)`,
		} {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}},
	{Version: 2, Name: "routes.backend_protocol", Up: func(ctx context.Context, tx *sql.Tx) error {
		// Routes stored before the protocol was a route property get
		// HTTP/1.1, which every backend speaks; a route that needs h2c
		// (a gRPC backend) is changed with mcproxyctl.
		for _, s := range []string{
			`ALTER TABLE routes ADD COLUMN backend_protocol TEXT NOT NULL DEFAULT ''
				CHECK (backend_protocol IN ('', 'http1', 'h2c', 'auto'))`,
			`UPDATE routes SET backend_protocol = 'http1' WHERE mode = 'l7'`,
		} {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}},
}

// Store is the open mc-proxy database.
type Store struct {
	db *db.DB
}

// Open opens (creating and migrating) the database at path.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	d, err := db.Open(ctx, path, db.Options{Logger: logger, Migrations: migrations})
	if err != nil {
		return nil, err
	}
	return &Store{db: d}, nil
}

// DB is the underlying database, for snapshots and health checks.
func (s *Store) DB() *db.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// ApplyRoutes receives every route after a change, inside the change's
// transaction: an error rolls the change back. mc-proxy uses it to hand the
// new table to the data plane, so the data plane never runs a state the
// database refused, and a state it refused is never stored.
type ApplyRoutes func(all []route.Route) error

// ApplyRules is ApplyRoutes for firewall rules.
type ApplyRules func(all []route.Rule) error

func now() string { return db.FormatTime(time.Now()) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Routes lists every route, sorted by listener and host name.
func (s *Store) Routes(ctx context.Context) ([]route.Route, error) {
	return routes(ctx, s.db)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func routes(ctx context.Context, q querier) ([]route.Route, error) {
	rows, err := q.QueryContext(ctx, `SELECT listener, hostname, mode, backend, tls_cert, tls_key,
		backend_tls, backend_ca, backend_server_name, send_proxy_protocol, backend_protocol
		FROM routes ORDER BY listener, hostname`)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []route.Route{}
	for rows.Next() {
		var r route.Route
		if err := rows.Scan(&r.Listener, &r.Hostname, &r.Mode, &r.Backend, &r.TLSCert, &r.TLSKey,
			&r.BackendTLS, &r.BackendCA, &r.BackendServerName, &r.SendProxyProtocol, &r.BackendProtocol); err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return out, nil
}

// Rules lists every firewall rule, sorted by kind and value.
func (s *Store) Rules(ctx context.Context) ([]route.Rule, error) {
	return rules(ctx, s.db)
}

func rules(ctx context.Context, q querier) ([]route.Rule, error) {
	rows, err := q.QueryContext(ctx, `SELECT kind, value, reason FROM firewall_rules ORDER BY kind, value`)
	if err != nil {
		return nil, fmt.Errorf("list firewall rules: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := []route.Rule{}
	for rows.Next() {
		var r route.Rule
		if err := rows.Scan(&r.Kind, &r.Value, &r.Reason); err != nil {
			return nil, fmt.Errorf("list firewall rules: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list firewall rules: %w", err)
	}
	return out, nil
}

// tx runs fn in one transaction and commits it when fn succeeds.
func (s *Store) tx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func putRoute(ctx context.Context, tx *sql.Tx, r route.Route) (created bool, err error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM routes WHERE listener = ? AND hostname = ?`,
		r.Listener, r.Hostname).Scan(&n); err != nil {
		return false, err
	}
	t := now()
	_, err = tx.ExecContext(ctx, `INSERT INTO routes (listener, hostname, mode, backend, tls_cert, tls_key,
		backend_tls, backend_ca, backend_server_name, send_proxy_protocol, backend_protocol, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (listener, hostname) DO UPDATE SET mode = excluded.mode, backend = excluded.backend,
		tls_cert = excluded.tls_cert, tls_key = excluded.tls_key, backend_tls = excluded.backend_tls,
		backend_ca = excluded.backend_ca, backend_server_name = excluded.backend_server_name,
		send_proxy_protocol = excluded.send_proxy_protocol, backend_protocol = excluded.backend_protocol,
		updated_at = excluded.updated_at`,
		r.Listener, r.Hostname, r.Mode, r.Backend, r.TLSCert, r.TLSKey, b2i(r.BackendTLS), r.BackendCA,
		r.BackendServerName, b2i(r.SendProxyProtocol), r.BackendProtocol, t, t)
	return n == 0, err
}

func putRule(ctx context.Context, tx *sql.Tx, r route.Rule) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO firewall_rules (kind, value, reason, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason`, r.Kind, r.Value, r.Reason, now())
	return err
}

// PutRoute validates r and inserts it, or replaces the route with the same
// listener and host name (an idempotent upsert). apply, when not nil, sees
// the resulting routes before the commit. created reports whether the key
// was new.
func (s *Store) PutRoute(ctx context.Context, r route.Route, apply ApplyRoutes) (created bool, err error) {
	r.Normalize()
	if err := r.Validate(); err != nil {
		return false, err
	}
	err = s.tx(ctx, "put route "+r.Key(), func(tx *sql.Tx) error {
		if created, err = putRoute(ctx, tx, r); err != nil {
			return err
		}
		return applyRoutes(ctx, tx, apply)
	})
	return created, err
}

// DeleteRoute removes the route for listener and hostname; ErrNotFound if
// there is none.
func (s *Store) DeleteRoute(ctx context.Context, listener, hostname string, apply ApplyRoutes) error {
	k := route.Route{Listener: listener, Hostname: hostname}
	k.Normalize()
	return s.tx(ctx, "remove route "+k.Key(), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM routes WHERE listener = ? AND hostname = ?`, k.Listener, k.Hostname)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return applyRoutes(ctx, tx, apply)
	})
}

func applyRoutes(ctx context.Context, tx *sql.Tx, apply ApplyRoutes) error {
	if apply == nil {
		return nil
	}
	all, err := routes(ctx, tx)
	if err != nil {
		return err
	}
	return apply(all)
}

func applyRules(ctx context.Context, tx *sql.Tx, apply ApplyRules) error {
	if apply == nil {
		return nil
	}
	all, err := rules(ctx, tx)
	if err != nil {
		return err
	}
	return apply(all)
}

// PutRule validates r and inserts it, or updates the reason of the same
// rule (an idempotent upsert). created reports whether the rule was new.
func (s *Store) PutRule(ctx context.Context, r route.Rule, apply ApplyRules) (created bool, err error) {
	if err := r.Validate(); err != nil {
		return false, err
	}
	err = s.tx(ctx, "put firewall rule "+r.Key(), func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM firewall_rules WHERE kind = ? AND value = ?`,
			r.Kind, r.Value).Scan(&n); err != nil {
			return err
		}
		created = n == 0
		if err := putRule(ctx, tx, r); err != nil {
			return err
		}
		return applyRules(ctx, tx, apply)
	})
	return created, err
}

// DeleteRule removes the rule kind:value; ErrNotFound if there is none.
func (s *Store) DeleteRule(ctx context.Context, kind, value string, apply ApplyRules) error {
	r := route.Rule{Kind: kind, Value: value}
	if err := r.Validate(); err != nil {
		return err
	}
	return s.tx(ctx, "remove firewall rule "+r.Key(), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM firewall_rules WHERE kind = ? AND value = ?`, r.Kind, r.Value)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return applyRules(ctx, tx, apply)
	})
}

// Seed stores the TOML routes and rules if the database has never held
// state (no routes, no rules, never seeded) and marks it seeded, all in one
// transaction. It reports whether it seeded. Every route and rule must be
// valid; an invalid one seeds nothing.
func (s *Store) Seed(ctx context.Context, rs []route.Route, rules []route.Rule) (bool, error) {
	seeded := false
	err := s.tx(ctx, "seed", func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM routes) + (SELECT COUNT(*) FROM firewall_rules)
			+ (SELECT COUNT(*) FROM meta WHERE key = ?)`, seededKey).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		for _, r := range rs {
			r.Normalize()
			if err := r.Validate(); err != nil {
				return err
			}
			if _, err := putRoute(ctx, tx, r); err != nil {
				return err
			}
		}
		for _, r := range rules {
			if err := r.Validate(); err != nil {
				return err
			}
			if err := putRule(ctx, tx, r); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, seededKey, now()); err != nil {
			return err
		}
		seeded = true
		return nil
	})
	return seeded, err
}

// Diff compares the TOML's routes and rules with the database and returns
// one line per difference, sorted: a route or rule only in the TOML, only
// in the database, or (routes) with different fields. Nil means they agree.
func (s *Store) Diff(ctx context.Context, tomlRoutes []route.Route, tomlRules []route.Rule) ([]string, error) {
	dbRoutes, err := s.Routes(ctx)
	if err != nil {
		return nil, err
	}
	dbRules, err := s.Rules(ctx)
	if err != nil {
		return nil, err
	}
	return Diff(tomlRoutes, dbRoutes, tomlRules, dbRules), nil
}

// Diff is Store.Diff on given states.
func Diff(tomlRoutes, dbRoutes []route.Route, tomlRules, dbRules []route.Rule) []string {
	var out []string
	inDB := make(map[string]route.Route, len(dbRoutes))
	for _, r := range dbRoutes {
		inDB[r.Key()] = r
	}
	inTOML := make(map[string]bool, len(tomlRoutes))
	for _, t := range tomlRoutes {
		t.Normalize()
		inTOML[t.Key()] = true
		d, ok := inDB[t.Key()]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("route %s: in the TOML, not in the database (removed at run time, or added to the TOML after the first start)", t.Key()))
		case d != t:
			out = append(out, fmt.Sprintf("route %s: differs: %s", t.Key(), fieldDiff(t, d)))
		}
	}
	for _, d := range dbRoutes {
		if !inTOML[d.Key()] {
			out = append(out, fmt.Sprintf("route %s: in the database, not in the TOML (added at run time)", d.Key()))
		}
	}
	ruleDB := make(map[string]bool, len(dbRules))
	for _, r := range dbRules {
		ruleDB[r.Key()] = true
	}
	ruleTOML := make(map[string]bool, len(tomlRules))
	for _, r := range tomlRules {
		if err := r.Validate(); err != nil {
			continue
		}
		ruleTOML[r.Key()] = true
		if !ruleDB[r.Key()] {
			out = append(out, fmt.Sprintf("firewall rule %s: in the TOML, not in the database", r.Key()))
		}
	}
	for _, r := range dbRules {
		if !ruleTOML[r.Key()] {
			out = append(out, fmt.Sprintf("firewall rule %s: in the database, not in the TOML (added at run time)", r.Key()))
		}
	}
	sort.Strings(out)
	return out
}

// fieldDiff names each field that differs, as field toml=... db=....
func fieldDiff(t, d route.Route) string {
	var parts []string
	add := func(name string, a, b any) {
		if a != b {
			parts = append(parts, fmt.Sprintf("%s toml=%v db=%v", name, a, b))
		}
	}
	add("mode", t.Mode, d.Mode)
	add("backend", t.Backend, d.Backend)
	add("tls_cert", t.TLSCert, d.TLSCert)
	add("tls_key", t.TLSKey, d.TLSKey)
	add("backend_tls", t.BackendTLS, d.BackendTLS)
	add("backend_ca", t.BackendCA, d.BackendCA)
	add("backend_server_name", t.BackendServerName, d.BackendServerName)
	add("send_proxy_protocol", t.SendProxyProtocol, d.SendProxyProtocol)
	add("backend_protocol", t.BackendProtocol, d.BackendProtocol)
	return strings.Join(parts, ", ")
}
