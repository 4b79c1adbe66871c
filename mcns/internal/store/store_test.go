package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "mcns.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestNextSerial(t *testing.T) {
	day := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ old, want uint32 }{
		{0, 2026112600},
		{2026112600, 2026112601},
		{2026112599, 2026112600}, // past 99 changes: keep counting
		{2026112700, 2026112701}, // clock went back: never decrease
		{2025010105, 2026112600},
	} {
		if got := NextSerial(tc.old, day); got != tc.want {
			t.Errorf("NextSerial(%d) = %d, want %d", tc.old, got, tc.want)
		}
	}
}

func TestSerialBumpsWithEveryChange(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var notified []string
	s.OnChange(func(z string) { notified = append(notified, z) })
	z, err := s.CreateZone(ctx, dnsdata.Zone{Name: "example.test.", PrimaryNS: "ns.example.test.", AdminEmail: "h.example.test.", TTL: 300})
	if err != nil {
		t.Fatal(err)
	}
	serial := z.Serial
	r, err := s.CreateRecord(ctx, dnsdata.Record{Zone: z.Name, Name: "a.example.test.", Type: "A", TTL: 60, Value: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	next := func() uint32 {
		t.Helper()
		got, err := s.GetZone(ctx, z.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Serial <= serial {
			t.Fatalf("serial %d did not increase past %d", got.Serial, serial)
		}
		return got.Serial
	}
	serial = next()
	r.Value = "10.0.0.2"
	if _, err := s.UpdateRecord(ctx, r); err != nil {
		t.Fatal(err)
	}
	serial = next()
	if _, err := s.DeleteRecord(ctx, z.Name, r.ID); err != nil {
		t.Fatal(err)
	}
	next()
	if len(notified) != 4 {
		t.Fatalf("listeners ran %d times, want 4", len(notified))
	}
	// A failed change bumps nothing.
	before, _ := s.GetZone(ctx, z.Name)
	if _, err := s.DeleteRecord(ctx, z.Name, 9999); !errors.Is(err, dnsdata.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	after, _ := s.GetZone(ctx, z.Name)
	if after.Serial != before.Serial {
		t.Fatal("failed delete bumped the serial")
	}
}

func TestCNAMEExclusivity(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if _, err := s.CreateZone(ctx, dnsdata.Zone{Name: "example.test.", TTL: 300}); err != nil {
		t.Fatal(err)
	}
	a := dnsdata.Record{Zone: "example.test.", Name: "www.example.test.", Type: "A", TTL: 60, Value: "10.0.0.1"}
	if _, err := s.CreateRecord(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRecord(ctx, a); !errors.Is(err, dnsdata.ErrConflict) {
		t.Fatalf("duplicate record: %v", err)
	}
	c := dnsdata.Record{Zone: "example.test.", Name: "www.example.test.", Type: "CNAME", TTL: 60, Value: "web.example.test."}
	if _, err := s.CreateRecord(ctx, c); !errors.Is(err, dnsdata.ErrConflict) {
		t.Fatalf("CNAME beside A: %v", err)
	}
	c.Name = "alias.example.test."
	if _, err := s.CreateRecord(ctx, c); err != nil {
		t.Fatal(err)
	}
	a.Name = "alias.example.test."
	if _, err := s.CreateRecord(ctx, a); !errors.Is(err, dnsdata.ErrConflict) {
		t.Fatalf("A beside CNAME: %v", err)
	}
	if _, err := s.CreateRecord(ctx, dnsdata.Record{Zone: "nope.test.", Name: "x.nope.test.", Type: "A", Value: "10.0.0.1"}); !errors.Is(err, dnsdata.ErrNotFound) {
		t.Fatalf("record in missing zone: %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	z, err := s.CreateZone(ctx, dnsdata.Zone{Name: "example.test.", TTL: 300})
	if err != nil {
		t.Fatal(err)
	}
	// Eight writers race to put a CNAME or an A at the same name: exactly
	// one kind may win, and every successful write bumps the serial once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			r := dnsdata.Record{Zone: z.Name, Name: "race.example.test.", TTL: 60}
			if i%2 == 0 {
				r.Type, r.Value = "CNAME", "target.example.test."
			} else {
				r.Type, r.Value = "A", "10.0.0."+string(rune('1'+i))
			}
			if _, err := s.CreateRecord(ctx, r); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if !errors.Is(err, dnsdata.ErrConflict) {
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	recs, err := s.Records(ctx, z.Name, "race.example.test.", "")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range recs {
		kinds[r.Type] = true
	}
	if len(kinds) != 1 || len(recs) != ok {
		t.Fatalf("mixed or lost writes: %d ok, records %+v", ok, recs)
	}
	got, _ := s.GetZone(ctx, z.Name)
	if got.Serial != z.Serial+uint32(ok) {
		t.Fatalf("serial %d after %d writes from %d", got.Serial, ok, z.Serial)
	}
}
