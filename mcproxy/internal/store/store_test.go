package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcproxy/internal/route"
	"git.metacircular.net/metacircular/mcproxy/internal/store"
)

func open(t *testing.T, path string) *store.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "mc-proxy.db")
	}
	s, err := store.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func l4(host, backend string) route.Route {
	return route.Route{Listener: "https", Hostname: host, Mode: route.L4, Backend: backend}
}

func TestRoutesRoundTripAllFields(t *testing.T) {
	ctx := context.Background()
	s := open(t, "")
	full := route.Route{
		Listener: "https", Hostname: "App.Example.NET.", Mode: "L7", Backend: "10.0.0.1:8443",
		TLSCert: "/c.pem", TLSKey: "/k.pem", BackendTLS: true, BackendCA: "/ca.pem",
		BackendServerName: "app.internal", SendProxyProtocol: true, BackendProtocol: "AUTO",
	}
	created, err := s.PutRoute(ctx, full, nil)
	if err != nil || !created {
		t.Fatalf("PutRoute = %v, %v; want created", created, err)
	}
	got, err := s.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := full
	want.Normalize()
	if want.BackendProtocol != route.Auto || len(got) != 1 || got[0] != want {
		t.Fatalf("Routes = %+v, want [%+v]", got, want)
	}
}

func TestPutRouteUpsertIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s := open(t, "")
	r := l4("a.example", "10.0.0.1:443")
	if c, err := s.PutRoute(ctx, r, nil); err != nil || !c {
		t.Fatalf("first put = %v, %v", c, err)
	}
	if c, err := s.PutRoute(ctx, r, nil); err != nil || c {
		t.Fatalf("second put = %v, %v; want not created", c, err)
	}
	r.Backend = "10.0.0.2:443"
	if c, err := s.PutRoute(ctx, r, nil); err != nil || c {
		t.Fatalf("update = %v, %v", c, err)
	}
	got, _ := s.Routes(ctx)
	if len(got) != 1 || got[0].Backend != "10.0.0.2:443" {
		t.Fatalf("Routes = %+v", got)
	}
}

func TestInvalidAndRefusedChangesWriteNothing(t *testing.T) {
	ctx := context.Background()
	s := open(t, "")
	if _, err := s.PutRoute(ctx, route.Route{Listener: "https", Hostname: "x", Mode: "l9", Backend: "a:1"}, nil); err == nil {
		t.Fatal("invalid mode accepted")
	}
	refuse := errors.New("data plane refused")
	if _, err := s.PutRoute(ctx, l4("b.example", "10.0.0.1:1"), func([]route.Route) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("PutRoute with refusing apply = %v", err)
	}
	if _, err := s.PutRule(ctx, route.Rule{Kind: "ip", Value: "192.0.2.1"}, func([]route.Rule) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("PutRule with refusing apply = %v", err)
	}
	if _, err := s.PutRule(ctx, route.Rule{Kind: "cidr", Value: "nope"}, nil); err == nil {
		t.Fatal("invalid cidr accepted")
	}
	rs, _ := s.Routes(ctx)
	rules, _ := s.Rules(ctx)
	if len(rs) != 0 || len(rules) != 0 {
		t.Fatalf("refused changes were stored: %+v %+v", rs, rules)
	}
}

func TestApplySeesStateInsideTransaction(t *testing.T) {
	ctx := context.Background()
	s := open(t, "")
	var seen []route.Route
	if _, err := s.PutRoute(ctx, l4("a.example", "10.0.0.1:1"), func(all []route.Route) error { seen = all; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].Hostname != "a.example" {
		t.Fatalf("apply saw %+v", seen)
	}
	if err := s.DeleteRoute(ctx, "https", "A.example.", func(all []route.Route) error { seen = all; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 0 {
		t.Fatalf("apply after delete saw %+v", seen)
	}
	if err := s.DeleteRoute(ctx, "https", "a.example", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete = %v, want ErrNotFound", err)
	}
}

func TestRules(t *testing.T) {
	ctx := context.Background()
	s := open(t, "")
	for _, r := range []route.Rule{
		{Kind: "IP", Value: "::ffff:192.0.2.1"},
		{Kind: "cidr", Value: "198.51.100.7/24", Reason: "scanner"},
		{Kind: "country", Value: "xx"},
	} {
		if c, err := s.PutRule(ctx, r, nil); err != nil || !c {
			t.Fatalf("PutRule(%+v) = %v, %v", r, c, err)
		}
	}
	if c, err := s.PutRule(ctx, route.Rule{Kind: "ip", Value: "192.0.2.1", Reason: "again"}, nil); err != nil || c {
		t.Fatalf("repeat PutRule = %v, %v", c, err)
	}
	got, _ := s.Rules(ctx)
	want := []string{"cidr:198.51.100.0/24", "country:XX", "ip:192.0.2.1"}
	if len(got) != len(want) {
		t.Fatalf("Rules = %+v", got)
	}
	for i, r := range got {
		if r.Key() != want[i] {
			t.Fatalf("Rules[%d] = %s, want %s", i, r.Key(), want[i])
		}
	}
	if err := s.DeleteRule(ctx, "cidr", "198.51.100.0/24", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRule(ctx, "cidr", "198.51.100.0/24", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteRule = %v", err)
	}
}

func TestSeedOnlyOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mc-proxy.db")
	s := open(t, path)
	seed := []route.Route{l4("a.example", "10.0.0.1:1")}
	rules := []route.Rule{{Kind: "ip", Value: "192.0.2.9"}}
	if ok, err := s.Seed(ctx, seed, rules); err != nil || !ok {
		t.Fatalf("Seed = %v, %v", ok, err)
	}
	// Remove everything at run time: the next start must not resurrect
	// the TOML's routes.
	if err := s.DeleteRoute(ctx, "https", "a.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRule(ctx, "ip", "192.0.2.9", nil); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s2 := open(t, path)
	if ok, err := s2.Seed(ctx, seed, rules); err != nil || ok {
		t.Fatalf("second Seed = %v, %v; want no seeding", ok, err)
	}
	if rs, _ := s2.Routes(ctx); len(rs) != 0 {
		t.Fatalf("re-seeded: %+v", rs)
	}
}

func TestSeedInvalidSeedsNothing(t *testing.T) {
	ctx := context.Background()
	s := open(t, "")
	bad := []route.Route{l4("a.example", "10.0.0.1:1"), {Listener: "https", Hostname: "b", Mode: "l7", Backend: "x:1"}}
	if _, err := s.Seed(ctx, bad, nil); err == nil {
		t.Fatal("invalid seed accepted")
	}
	if ok, err := s.Seed(ctx, bad[:1], nil); err != nil || !ok {
		t.Fatalf("Seed after failed seed = %v, %v", ok, err)
	}
}

func TestDiff(t *testing.T) {
	ctx := context.Background()
	s := open(t, "")
	toml := []route.Route{l4("same.example", "10.0.0.1:1"), l4("changed.example", "10.0.0.1:1"), l4("gone.example", "10.0.0.1:1")}
	if _, err := s.Seed(ctx, toml, []route.Rule{{Kind: "ip", Value: "192.0.2.1"}}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Diff(ctx, toml, []route.Rule{{Kind: "ip", Value: "192.0.2.1"}}); err != nil || len(d) != 0 {
		t.Fatalf("Diff right after seeding = %q, %v", d, err)
	}
	if _, err := s.PutRoute(ctx, l4("changed.example", "10.0.0.2:1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRoute(ctx, "https", "gone.example", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRoute(ctx, l4("new.example", "10.0.0.3:1"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRule(ctx, route.Rule{Kind: "country", Value: "XX"}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := s.Diff(ctx, toml, []route.Rule{{Kind: "ip", Value: "192.0.2.1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"firewall rule country:XX: in the database, not in the TOML",
		"route https/changed.example: differs: backend toml=10.0.0.1:1 db=10.0.0.2:1",
		"route https/gone.example: in the TOML, not in the database",
		"route https/new.example: in the database, not in the TOML",
	}
	if len(d) != len(want) {
		t.Fatalf("Diff = %q", d)
	}
	for i := range want {
		if !strings.HasPrefix(d[i], want[i]) {
			t.Errorf("Diff[%d] = %q, want prefix %q", i, d[i], want[i])
		}
	}
}
