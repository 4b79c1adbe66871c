package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcdsl/syncbuf"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// start runs build until the test ends and returns the logs and Run's
// result channel.
func start(t *testing.T, opts service.Options, build func(context.Context, *service.Runtime) error) (*syncbuf.Buffer, context.CancelFunc, chan error) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	opts.Name = "demo"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, opts, build) }()
	t.Cleanup(cancel)
	return logs, cancel, done
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	for range 100 {
		resp, err := http.Get(url) //nolint:gosec,noctx // test URL on loopback
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	t.Fatalf("%s never answered", url)
	return 0, ""
}

func TestServeHealthMetricsAndCleanStop(t *testing.T) {
	httpLn := listen(t)
	metricsLn := listen(t)
	closed := atomic.Bool{}
	healthy := atomic.Bool{}
	healthy.Store(true)
	logs, cancel, done := start(t, service.Options{
		Version:   "v1.2.3",
		Listeners: map[string]net.Listener{"http": httpLn, "metrics": metricsLn},
	}, func(_ context.Context, rt *service.Runtime) error {
		rt.OnClose(func() error { closed.Store(true); return nil })
		rt.SetHealth(func(context.Context) error {
			if !healthy.Load() {
				return errors.New("store is gone")
			}
			return nil
		})
		return rt.HTTP(config.Server{ListenAddr: "unused", PlainHTTP: true, MetricsAddr: "unused"},
			http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") }))
	})
	base := "http://" + httpLn.Addr().String()
	if code, body := get(t, base+"/anything"); code != 200 || body != "hello" {
		t.Fatalf("handler: %d %q", code, body)
	}
	if code, body := get(t, base+"/v1/health"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("health: %d %q", code, body)
	}
	healthy.Store(false)
	if code, body := get(t, base+"/v1/health"); code != 503 || !strings.Contains(body, "store is gone") {
		t.Fatalf("unhealthy: %d %q", code, body)
	}
	// With a metrics_addr, /metrics lives there and not on the main listener.
	if code, body := get(t, base+"/metrics"); code != 200 || body != "hello" {
		t.Errorf("main listener served /metrics: %d", code)
	}
	code, body := get(t, "http://"+metricsLn.Addr().String()+"/metrics")
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", `http_requests_total{code="200",method="GET",route="unmatched"}`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics lack %s (%d)", want, code)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !closed.Load() {
		t.Error("OnClose did not run")
	}
	for _, want := range []string{"demo started", "version=v1.2.3", "http=" + httpLn.Addr().String(), "demo stopped cleanly"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestFailedBindClosesEverything: the second listener cannot bind, so the
// first, already bound, must be released, nothing served, and the store
// closed.
func TestFailedBindClosesEverything(t *testing.T) {
	taken := listen(t)
	defer func() { _ = taken.Close() }()
	served := atomic.Bool{}
	closed := atomic.Bool{}
	var firstAddr string
	err := service.Run(context.Background(), service.Options{Name: "demo"}, func(_ context.Context, rt *service.Runtime) error {
		rt.OnClose(func() error { closed.Store(true); return nil })
		var ln net.Listener
		rt.Add("first", func(context.Context) (string, error) {
			var err error
			ln, err = net.Listen("tcp", "127.0.0.1:0")
			if err == nil {
				firstAddr = ln.Addr().String()
			}
			return firstAddr, err
		}, func(context.Context) error { served.Store(true); return nil }, func() { _ = ln.Close() })
		return rt.HTTP(config.Server{ListenAddr: taken.Addr().String(), PlainHTTP: true}, http.NotFoundHandler())
	})
	if err == nil || !strings.Contains(err.Error(), "http") {
		t.Fatalf("Run = %v, want the bind failure", err)
	}
	if served.Load() || !closed.Load() {
		t.Errorf("served %v, closed %v", served.Load(), closed.Load())
	}
	// The first listener was released: its port can be bound again.
	ln, err := net.Listen("tcp", firstAddr)
	if err != nil {
		t.Fatalf("first listener not released: %v", err)
	}
	_ = ln.Close()
}

func TestBuildFailureBindsNothing(t *testing.T) {
	closed := atomic.Bool{}
	bound := atomic.Bool{}
	err := service.Run(context.Background(), service.Options{Name: "demo"}, func(_ context.Context, rt *service.Runtime) error {
		rt.OnClose(func() error { closed.Store(true); return nil })
		rt.Add("x", func(context.Context) (string, error) { bound.Store(true); return "", nil },
			func(context.Context) error { return nil }, func() {})
		return errors.New("bad certificate")
	})
	if err == nil || err.Error() != "bad certificate" || bound.Load() || !closed.Load() {
		t.Fatalf("Run = %v, bound %v, closed %v", err, bound.Load(), closed.Load())
	}
}

func TestServeErrorStopsTheRest(t *testing.T) {
	stopped := make(chan struct{})
	err := service.Run(context.Background(), service.Options{Name: "demo"}, func(_ context.Context, rt *service.Runtime) error {
		rt.Task("waiter", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
		rt.Task("crasher", func(context.Context) error { return errors.New("disk full") })
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "crasher: disk full") {
		t.Fatalf("Run = %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the other component was not stopped")
	}
}

func TestCancelWhileStartingIsClean(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := service.Run(ctx, service.Options{Name: "demo"}, func(ctx context.Context, _ *service.Runtime) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatalf("Run = %v, want a clean stop", err)
	}
}

// TestUnmappedRPCRefusesToStart: an RPC registered but in no method map
// stops the service at start.
func TestUnmappedRPCRefusesToStart(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "grpc", "127.0.0.1")
	err := service.Run(context.Background(), service.Options{Name: "demo"}, func(_ context.Context, rt *service.Runtime) error {
		srv, err := grpcserver.New(rt.GRPCOptions(config.Server{GRPCAddr: "127.0.0.1:0", TLSCert: pair.CertFile, TLSKey: pair.KeyFile},
			grpcserver.Options{Service: "demo"}))
		if err != nil {
			return err
		}
		srv.RegisterService(&grpc.ServiceDesc{ServiceName: "demo.v1.Demo", HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{MethodName: "Forgotten"}}}, struct{}{})
		rt.GRPC(srv)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "/demo.v1.Demo/Forgotten") {
		t.Fatalf("Run = %v, want a refusal naming the unmapped RPC", err)
	}
}
