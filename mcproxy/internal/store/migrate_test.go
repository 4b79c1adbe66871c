package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// TestBackendProtocolMigration: routes stored before backend_protocol
// existed come back as HTTP/1.1 routes (L7) or without a protocol (L4),
// as the TOML seed that created them now normalizes, so a database from
// before the migration shows no divergence; the column refuses unknown
// values.
func TestBackendProtocolMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mc-proxy.db")
	old, err := db.Open(ctx, path, db.Options{Migrations: migrations[:1]})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO routes (listener, hostname, mode, backend, tls_cert, tls_key, backend_tls, created_at, updated_at)
			VALUES ('https', 'mcias.svc.test', 'l7', '127.0.0.1:8443', '/c', '/k', 1, 'x', 'x')`,
		`INSERT INTO routes (listener, hostname, mode, backend, created_at, updated_at)
			VALUES ('https', 'mcns.svc.test', 'l4', '127.0.0.1:9443', 'x', 'x')`,
	} {
		if _, err := old.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Hostname != "mcias.svc.test" || got[0].BackendProtocol != route.HTTP1 || got[1].BackendProtocol != "" {
		t.Fatalf("migrated routes: %+v", got)
	}
	toml := []route.Route{
		{Listener: "https", Hostname: "mcias.svc.test", Mode: "l7", Backend: "127.0.0.1:8443", TLSCert: "/c", TLSKey: "/k", BackendTLS: true},
		{Listener: "https", Hostname: "mcns.svc.test", Mode: "l4", Backend: "127.0.0.1:9443"},
	}
	if d, err := s.Diff(ctx, toml, nil); err != nil || len(d) != 0 {
		t.Fatalf("Diff after the migration = %q, %v", d, err)
	}
	auto := toml[0]
	auto.BackendProtocol = route.Auto
	if _, err := s.PutRoute(ctx, auto, nil); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Diff(ctx, toml, nil); err != nil || len(d) != 1 || !strings.HasSuffix(d[0], "differs: backend_protocol toml=http1 db=auto") {
		t.Fatalf("Diff of a protocol change = %q, %v", d, err)
	}
	_, err = s.DB().ExecContext(ctx, `UPDATE routes SET backend_protocol = 'h3' WHERE hostname = 'mcias.svc.test'`)
	if err == nil || !strings.Contains(err.Error(), "CHECK") {
		t.Fatalf("backend_protocol h3 stored: %v", err)
	}
}
