package boot

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/registry"
)

type fakeNode struct {
	mu       sync.Mutex
	order    []string
	failures map[string]int // Up fails this many times
	ports    map[string]int
	svcs     []registry.Service
}

func (f *fakeNode) Up(_ context.Context, s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.order = append(f.order, s)
	if f.failures[s] > 0 {
		f.failures[s]--
		return errors.New(s + " unhealthy")
	}
	return nil
}

func (f *fakeNode) Services(context.Context) ([]registry.Service, error) { return f.svcs, nil }

func (f *fakeNode) FirstPort(_ context.Context, s string) (int, error) { return f.ports[s], nil }

func running(names ...string) []registry.Service {
	var out []registry.Service
	for _, n := range names {
		out = append(out, registry.Service{Name: n, Desired: registry.DesiredRunning, Revision: 1})
	}
	return out
}

func TestStagesInOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port //nolint:errcheck // a TCP listener
	n := &fakeNode{
		failures: map[string]int{"mcns": 2, "mcq": 5},
		ports:    map[string]int{"mcns": port},
		svcs: append(running("mcq", "mcns", "mcr", "extra"),
			registry.Service{Name: "stopped", Desired: registry.DesiredStopped, Revision: 1}),
	}
	var alerts []string
	s := &Sequence{
		Stages: []Stage{
			{Name: "foundation", Services: []string{"mcns", "notdeployed"}, Health: "tcp", Timeout: time.Second},
			{Name: "core", Services: []string{"mcr"}, Timeout: time.Second},
			{Name: "apps", Services: []string{"mcq"}, Timeout: time.Second},
		},
		Node: n, Logger: slog.New(slog.DiscardHandler), Retry: 10 * time.Millisecond,
		Alert: func(_ context.Context, _, msg string) { alerts = append(alerts, msg) },
	}
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The foundation is retried until healthy; a later stage that fails is
	// passed over after one attempt; services in no stage come last;
	// stopped ones are left alone.
	want := []string{"mcns", "mcns", "mcns", "mcr", "mcq", "extra"}
	if len(n.order) != len(want) {
		t.Fatalf("order %v, want %v", n.order, want)
	}
	for i := range want {
		if n.order[i] != want[i] {
			t.Fatalf("order %v, want %v", n.order, want)
		}
	}
	if len(alerts) != 2 {
		t.Fatalf("alerts %v", alerts)
	}
}

func TestFoundationBlocksUntilHealthy(t *testing.T) {
	// Nothing listens on the port: the foundation's tcp check fails and
	// boot keeps trying until its context ends.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port //nolint:errcheck // a TCP listener
	_ = ln.Close()
	n := &fakeNode{ports: map[string]int{"mcns": port}, svcs: running("mcns", "mcq")}
	s := &Sequence{Stages: []Stage{{Name: "foundation", Services: []string{"mcns"}, Health: "tcp", Timeout: 200 * time.Millisecond}},
		Node: n, Logger: slog.New(slog.DiscardHandler), Retry: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run: %v", err)
	}
	for _, o := range n.order {
		if o == "mcq" {
			t.Fatal("a later service started before the foundation was healthy")
		}
	}
	if len(n.order) < 2 {
		t.Fatalf("foundation not retried: %v", n.order)
	}
}
