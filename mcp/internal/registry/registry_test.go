package registry

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"git.metacircular.net/metacircular/mcp/internal/spec"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestPorts(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	p := Port{Service: "a", Component: "web", Revision: 1}
	busy := func(port int) bool { return port != 10001 } // something else holds 10001
	first, err := s.AllocatePort(ctx, p, 10000, 10003, busy)
	if err != nil || first != 10000 {
		t.Fatalf("%d %v", first, err)
	}
	if again, err := s.AllocatePort(ctx, p, 10000, 10003, busy); err != nil || again != first {
		t.Fatalf("not idempotent: %d %v", again, err)
	}
	p2 := Port{Service: "a", Component: "web", Revision: 2}
	if second, err := s.AllocatePort(ctx, p2, 10000, 10003, busy); err != nil || second != 10002 {
		t.Fatalf("second: %d %v", second, err)
	}
	if _, err := s.AllocatePort(ctx, Port{Service: "b", Component: "x", Revision: 1}, 10000, 10003, busy); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllocatePort(ctx, Port{Service: "c", Component: "x", Revision: 1}, 10000, 10003, busy); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("exhausted range: %v", err)
	}
	if err := s.ReleasePorts(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AllocatePort(ctx, Port{Service: "c", Component: "x", Revision: 1}, 10000, 10003, busy); err != nil || got != 10000 {
		t.Fatalf("after release: %d %v", got, err)
	}
}

func TestRevisionsAndOperations(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	sp := &spec.Service{Name: "a", Active: true, Components: []spec.Component{{Name: "web", Image: "r/a:v1.0.0"}}}
	r1, err := s.NewRevision(ctx, sp)
	if err != nil || r1 != 1 {
		t.Fatal(r1, err)
	}
	r2, _ := s.NewRevision(ctx, sp)
	got, err := s.Revision(ctx, "a", r2)
	if err != nil || got.Hash != sp.Hash() || got.Spec.Components[0].Image != "r/a:v1.0.0" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := s.Revision(ctx, "a", 9); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	id, err := s.NewOperation(ctx, Operation{Service: "a", Kind: "deploy", Revision: r2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetStep(ctx, id, OpRollingBack, 3); err != nil {
		t.Fatal(err)
	}
	un, err := s.Unfinished(ctx)
	if err != nil || len(un) != 1 || un[0].Step != 3 || un[0].State != OpRollingBack || un[0].Finished() {
		t.Fatalf("%+v %v", un, err)
	}
	if err := s.FinishOperation(ctx, id, OpRolledBack); err != nil {
		t.Fatal(err)
	}
	if un, _ := s.Unfinished(ctx); len(un) != 0 {
		t.Fatalf("%+v", un)
	}
	if err := s.DeleteService(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Service(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if op, err := s.LastOperation(ctx, "a"); err != nil || op.State != OpRolledBack {
		t.Fatalf("history kept: %+v %v", op, err)
	}
}
