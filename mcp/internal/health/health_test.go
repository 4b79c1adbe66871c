package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestProbes(t *testing.T) {
	ctx := context.Background()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "nope", http.StatusServiceUnavailable) }))
	defer bad.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer tlsSrv.Close()
	addr := func(u string) string { return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://") }

	gs := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	for _, c := range []struct {
		check Check
		ok    bool
	}{
		{Check{Type: TCP, Addr: addr(ok.URL)}, true},
		{Check{Type: TCP, Addr: closedAddr}, false},
		{Check{Type: HTTP, Addr: addr(ok.URL), Path: "/"}, true},
		{Check{Type: HTTP, Addr: addr(bad.URL), Path: "/"}, false},
		{Check{Type: HTTP, Addr: addr(tlsSrv.URL), Path: "/", TLS: true}, true},
		{Check{Type: GRPC, Addr: ln.Addr().String()}, true},
		{Check{Type: None}, true},
		{Check{Type: "ping"}, false},
	} {
		if err := Probe(ctx, c.check); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.check, err)
		}
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := Probe(ctx, Check{Type: GRPC, Addr: ln.Addr().String()}); err == nil {
		t.Error("NOT_SERVING passed")
	}
}

func TestWait(t *testing.T) {
	ctx := context.Background()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	_ = closed.Close()
	err := Wait(ctx, Check{Type: TCP, Addr: addr}, 200*time.Millisecond, 20*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "not healthy after 200ms") {
		t.Fatalf("timeout: %v", err)
	}
	err = Wait(ctx, Check{Type: TCP, Addr: addr}, time.Minute, 20*time.Millisecond, func(context.Context) error { return errors.New("exited (1)") })
	if !errors.Is(err, ErrGone) {
		t.Fatalf("gone: %v", err)
	}
	// Comes up while waited for.
	go func() {
		time.Sleep(100 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			time.Sleep(time.Second)
			_ = ln.Close()
		}
	}()
	if err := Wait(ctx, Check{Type: TCP, Addr: addr}, 5*time.Second, 20*time.Millisecond, nil); err != nil {
		t.Fatalf("late start: %v", err)
	}
}
