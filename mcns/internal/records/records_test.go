package records

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

const zone = "svc.mcp.test."

var (
	admin   = &auth.Identity{Subject: "1", Username: "admin", AccountType: auth.AccountHuman, Roles: []string{auth.RoleAdmin}}
	agent   = &auth.Identity{Subject: "2", Username: "mcp-agent", AccountType: auth.AccountSystem}
	mcq     = &auth.Identity{Subject: "3", Username: "mcq", AccountType: auth.AccountSystem}
	mcr     = &auth.Identity{Subject: "4", Username: "mcr", AccountType: auth.AccountSystem}
	alice   = &auth.Identity{Subject: "5", Username: "alice", AccountType: auth.AccountHuman, Roles: []string{auth.RoleUser}}
	guest   = &auth.Identity{Subject: "6", Username: "gina", AccountType: auth.AccountHuman, Roles: []string{auth.RoleGuest}}
	fakeBot = &auth.Identity{Subject: "7", Username: "mcp-agent", AccountType: auth.AccountHuman, Roles: []string{auth.RoleUser}}
)

func newService(t *testing.T) (*Service, *store.Store, *syncbuf.Buffer) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "mcns.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logs := &syncbuf.Buffer{}
	svc := New(st, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if _, created, err := svc.EnsureZone(t.Context(), dnsdata.Spec{Name: "SVC.mcp.test"}); err != nil || !created {
		t.Fatalf("EnsureZone = %v, %v", created, err)
	}
	return svc, st, logs
}

func serial(t *testing.T, st *store.Store) uint32 {
	t.Helper()
	z, err := st.GetZone(context.Background(), zone)
	if err != nil {
		t.Fatal(err)
	}
	return z.Serial
}

// TestAuthorization checks every role against every kind of write, and
// that a refused write changes nothing.
func TestAuthorization(t *testing.T) {
	svc, st, logs := newService(t)
	ctx := t.Context()
	seed := func(name string) dnsdata.Record {
		t.Helper()
		r, err := svc.CreateRecord(ctx, admin, zone, dnsdata.RecordSpec{Name: name, Type: "A", Value: "10.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, c := range []struct {
		who       *auth.Identity
		zones     bool // may create zones
		own, any  bool // may write the record named after itself / any record
		ownPrefix string
	}{
		{who: admin, zones: true, own: true, any: true},
		{who: agent, own: true, any: true},
		{who: mcq, own: true},
		{who: mcr, own: true},
		{who: alice},
		{who: guest},
		{who: fakeBot}, // a human named like an agent is not an agent
	} {
		t.Run(c.who.Username+"-"+c.who.AccountType, func(t *testing.T) {
			want := func(op string, err error, allowed bool) {
				t.Helper()
				if allowed && err != nil {
					t.Errorf("%s: %v; want success", op, err)
				}
				if !allowed && !errors.Is(err, dnsdata.ErrForbidden) {
					t.Errorf("%s: %v; want dnsdata.ErrForbidden", op, err)
				}
			}
			if _, err := svc.ListZones(ctx, c.who); err != nil {
				t.Errorf("list zones: %v", err)
			}
			if _, err := svc.ListRecords(ctx, c.who, zone, dnsdata.Filter{}); err != nil {
				t.Errorf("list records: %v", err)
			}
			before := serial(t, st)
			_, err := svc.CreateZone(ctx, c.who, dnsdata.Spec{Name: c.who.Subject + ".zones.test"})
			want("create zone", err, c.zones)
			if !c.zones {
				if _, err := st.GetZone(ctx, c.who.Subject+".zones.test."); !errors.Is(err, dnsdata.ErrNotFound) {
					t.Errorf("refused create zone left a zone: %v", err)
				}
				want("update zone", errOnly(svc.UpdateZone(ctx, c.who, dnsdata.Spec{Name: zone, TTL: 60})), false)
				want("delete zone", svc.DeleteZone(ctx, c.who, zone), false)
			}

			own := c.who.Username // relative to the zone
			created, err := svc.CreateRecord(ctx, c.who, zone, dnsdata.RecordSpec{Name: own, Type: "A", Value: "10.1.0.1"})
			want("create own", err, c.own)
			target := created
			if err != nil {
				target = seed(own + "." + zone)
			}
			_, err = svc.UpdateRecord(ctx, c.who, zone, target.ID, dnsdata.RecordSpec{Name: own, Type: "A", Value: "10.1.0.2"})
			want("update own", err, c.own)
			_, err = svc.UpdateRecord(ctx, c.who, zone, target.ID, dnsdata.RecordSpec{Name: "other", Type: "A", Value: "10.1.0.3"})
			want("move own to another name", err, c.any)

			other := seed("web-" + c.who.Subject + "." + zone)
			_, err = svc.CreateRecord(ctx, c.who, zone, dnsdata.RecordSpec{Name: "x-" + c.who.Subject, Type: "TXT", Value: "hello"})
			want("create other", err, c.any)
			_, err = svc.UpdateRecord(ctx, c.who, zone, other.ID, dnsdata.RecordSpec{Name: other.Name, Type: "A", Value: "10.2.0.2"})
			want("update other", err, c.any)
			_, err = svc.UpdateRecord(ctx, c.who, zone, other.ID, dnsdata.RecordSpec{Name: own, Type: "A", Value: "10.2.0.3"})
			want("take over other", err, c.any)
			want("delete other", svc.DeleteRecord(ctx, c.who, zone, other.ID), c.any)
			// Below its own name is not its own name.
			_, err = svc.CreateRecord(ctx, c.who, zone, dnsdata.RecordSpec{Name: "_http._tcp." + own, Type: "SRV", Value: "0 0 80 x.test."})
			want("create below own", err, c.any)

			if !c.any {
				// Nothing the refused writes touched changed.
				got, err := svc.GetRecord(ctx, c.who, zone, other.ID)
				if err != nil || got.Value != "10.0.0.1" || got.Name != other.Name {
					t.Errorf("other record after refused writes: %+v %v", got, err)
				}
			}
			want("delete own", svc.DeleteRecord(ctx, c.who, zone, target.ID), c.own)
			if !c.own && !c.any && !c.zones && serial(t, st) != before+2 {
				// Only the two seeds (by admin) changed the zone.
				t.Errorf("serial %d after refused writes; want %d", serial(t, st), before+2)
			}
		})
	}
	for _, who := range []string{"by=admin", "by=mcp-agent", "by=mcq"} {
		if !strings.Contains(logs.String(), who) {
			t.Errorf("change log lacks %q:\n%s", who, logs)
		}
	}
}

func errOnly[T any](_ T, err error) error { return err }

func TestUnauthenticated(t *testing.T) {
	svc, _, _ := newService(t)
	ctx := t.Context()
	for name, err := range map[string]error{
		"list zones":   errOnly(svc.ListZones(ctx, nil)),
		"get zone":     errOnly(svc.GetZone(ctx, nil, zone)),
		"list records": errOnly(svc.ListRecords(ctx, nil, zone, dnsdata.Filter{})),
		"get record":   errOnly(svc.GetRecord(ctx, nil, zone, 1)),
		"create":       errOnly(svc.CreateRecord(ctx, nil, zone, dnsdata.RecordSpec{Name: "a", Type: "A", Value: "10.0.0.1"})),
		"delete zone":  svc.DeleteZone(ctx, nil, zone),
	} {
		if !errors.Is(err, dnsdata.ErrUnauthenticated) {
			t.Errorf("%s without a caller: %v", name, err)
		}
	}
}

func TestValidationChangesNothing(t *testing.T) {
	svc, st, _ := newService(t)
	ctx := t.Context()
	r, err := svc.CreateRecord(ctx, agent, "svc.mcp.test", dnsdata.RecordSpec{Name: "Web", Type: "a", Value: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "web."+zone || r.Type != "A" || r.TTL != 300 {
		t.Fatalf("record not canonicalized: %+v", r)
	}
	before := serial(t, st)
	for _, c := range []struct {
		spec  dnsdata.RecordSpec
		field string
	}{
		{dnsdata.RecordSpec{Name: "a", Type: "A", Value: "not-an-ip"}, "value"},
		{dnsdata.RecordSpec{Name: "a", Type: "BOGUS", Value: "x"}, "type"},
		{dnsdata.RecordSpec{Name: "a.other.test.", Type: "A", Value: "10.0.0.1"}, "name"},
		{dnsdata.RecordSpec{Name: "a", Type: "A", TTL: 1 << 30, Value: "10.0.0.1"}, "ttl"},
	} {
		_, err := svc.CreateRecord(ctx, agent, zone, c.spec)
		if !errors.Is(err, dnsdata.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("create %+v: %v; want ErrInvalid naming %s", c.spec, err, c.field)
		}
		_, err = svc.UpdateRecord(ctx, agent, zone, r.ID, c.spec)
		if !errors.Is(err, dnsdata.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("update %+v: %v; want ErrInvalid naming %s", c.spec, err, c.field)
		}
	}
	if _, err := svc.CreateRecord(ctx, agent, zone, dnsdata.RecordSpec{Name: "web", Type: "CNAME", Value: "x.test."}); !errors.Is(err, dnsdata.ErrConflict) {
		t.Errorf("CNAME beside A: %v; want ErrConflict", err)
	}
	if _, err := svc.CreateRecord(ctx, agent, "nowhere.test", dnsdata.RecordSpec{Name: "a", Type: "A", Value: "10.0.0.1"}); !errors.Is(err, dnsdata.ErrNotFound) {
		t.Errorf("record in a missing zone: %v; want ErrNotFound", err)
	}
	if _, err := svc.ListRecords(ctx, alice, zone, dnsdata.Filter{Type: "nope"}); !errors.Is(err, dnsdata.ErrInvalid) {
		t.Errorf("list with a bad type: %v", err)
	}
	if _, err := svc.CreateZone(ctx, admin, dnsdata.Spec{Name: ""}); !errors.Is(err, dnsdata.ErrInvalid) || !strings.Contains(err.Error(), "name") {
		t.Errorf("zone without a name: %v", err)
	}
	if _, err := svc.CreateZone(ctx, admin, dnsdata.Spec{Name: "svc.mcp.test"}); !errors.Is(err, dnsdata.ErrConflict) {
		t.Errorf("duplicate zone: %v", err)
	}
	if got := serial(t, st); got != before {
		t.Errorf("serial %d after refused changes; want %d", got, before)
	}
	list, err := svc.ListRecords(ctx, alice, zone, dnsdata.Filter{})
	if err != nil || len(list) != 1 {
		t.Errorf("records after refused changes: %+v %v", list, err)
	}
}

func TestFiltersAndAgentList(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "mcns.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := New(st, []string{"Edge-Agent"}, nil)
	ctx := t.Context()
	if _, err := svc.CreateZone(ctx, admin, dnsdata.Spec{Name: zone}); err != nil {
		t.Fatal(err)
	}
	edge := &auth.Identity{Username: "edge-agent", AccountType: auth.AccountSystem}
	if _, err := svc.CreateRecord(ctx, edge, zone, dnsdata.RecordSpec{Name: "a", Type: "A", Value: "10.0.0.1"}); err != nil {
		t.Fatalf("configured agent: %v", err)
	}
	if _, err := svc.CreateRecord(ctx, edge, zone, dnsdata.RecordSpec{Name: "a", Type: "TXT", Value: "hi there"}); err != nil {
		t.Fatal(err)
	}
	// With a configured list, mcp-agent is an ordinary system account.
	if _, err := svc.CreateRecord(ctx, agent, zone, dnsdata.RecordSpec{Name: "b", Type: "A", Value: "10.0.0.2"}); !errors.Is(err, dnsdata.ErrForbidden) {
		t.Errorf("mcp-agent not in the list: %v", err)
	}
	for _, c := range []struct {
		f    dnsdata.Filter
		want int
	}{{dnsdata.Filter{}, 2}, {dnsdata.Filter{Name: "a"}, 2}, {dnsdata.Filter{Name: "A." + zone}, 2}, {dnsdata.Filter{Type: "txt"}, 1}, {dnsdata.Filter{Name: "b"}, 0}} {
		got, err := svc.ListRecords(ctx, guest, zone, c.f)
		if err != nil || len(got) != c.want {
			t.Errorf("ListRecords(%+v) = %d records, %v; want %d", c.f, len(got), err, c.want)
		}
	}
}
