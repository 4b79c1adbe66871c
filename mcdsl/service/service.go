package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/health"
	"git.metacircular.net/metacircular/mcdsl/httpserver"
	"git.metacircular.net/metacircular/mcdsl/metrics"
)

// Options configures Run.
type Options struct {
	// Name is the service's name, for log lines ("mcns").
	Name string
	// Version is logged at start.
	Version string
	// Logger receives the service's logs. Nil discards.
	Logger *slog.Logger
	// Metrics is the registry the servers report to (nil: a new one).
	Metrics *metrics.Registry
	// Listeners and PacketConns hand pre-bound sockets to the components
	// of those names instead of binding their configured addresses (tests
	// bind 127.0.0.1:0 themselves to know the ports).
	Listeners   map[string]net.Listener
	PacketConns map[string]net.PacketConn
}

// Runtime collects what a service's build function constructs.
type Runtime struct {
	// Logger is the service's logger.
	Logger *slog.Logger
	// Metrics is the service's registry; servers added with HTTP and GRPC
	// report to it, and services add their own collectors.
	Metrics *metrics.Registry

	opts       Options
	health     health.Checker
	components []*component
	closers    []func() error
}

// component is something that binds, then serves until its context ends.
type component struct {
	name  string
	bind  func(ctx context.Context) (addr string, err error)
	serve func(ctx context.Context) error
	// abort releases what bind took when serve will never run.
	abort func()
	bound bool
}

// OnClose registers f to run when the service stops or fails to start,
// after every server has stopped; closers run in reverse order.
func (rt *Runtime) OnClose(f func() error) { rt.closers = append(rt.closers, f) }

// SetHealth sets the check behind GET /v1/health on every HTTP server the
// runtime adds (gRPC servers take theirs in grpcserver.Options).
func (rt *Runtime) SetHealth(check health.Checker) { rt.health = check }

// Listener is the pre-bound listener for name, if the caller handed one in.
func (rt *Runtime) Listener(name string) (net.Listener, bool) {
	ln, ok := rt.opts.Listeners[name]
	return ln, ok
}

// PacketConn is the pre-bound packet socket for name, if any.
func (rt *Runtime) PacketConn(name string) (net.PacketConn, bool) {
	pc, ok := rt.opts.PacketConns[name]
	return pc, ok
}

// Add registers a component: bind is called after build has succeeded and
// returns the address it bound (for the start log line); serve then runs
// until ctx ends and must return once it has drained; abort releases what
// bind took if the service stops before serving.
func (rt *Runtime) Add(name string, bind func(context.Context) (string, error), serve func(context.Context) error, abort func()) {
	rt.components = append(rt.components, &component{name: name, bind: bind, serve: serve, abort: abort})
}

// Task runs f for the service's lifetime (a background loop). f must
// return when ctx ends; an error it returns stops the service.
func (rt *Runtime) Task(name string, f func(context.Context) error) {
	rt.Add(name, func(context.Context) (string, error) { return "", nil }, f, func() {})
}

// listen adds a component serving a stream listener: the pre-bound one for
// name, or the one listen binds.
func (rt *Runtime) listen(name string, listen func(context.Context) (net.Listener, error), serve func(context.Context, net.Listener) error) {
	var ln net.Listener
	rt.Add(name, func(ctx context.Context) (string, error) {
		if pre, ok := rt.Listener(name); ok {
			ln = pre
		} else {
			l, err := listen(ctx)
			if err != nil {
				return "", err
			}
			ln = l
		}
		return ln.Addr().String(), nil
	}, func(ctx context.Context) error {
		return serve(ctx, ln)
	}, func() {
		if ln != nil {
			_ = ln.Close()
		}
	})
}

// HTTP builds the service's HTTP server from the [server] section and adds
// it under the name "http": h behind request metrics, with GET /v1/health
// (SetHealth) and, unless the section has a metrics_addr, GET /metrics.
// A section without listen_addr adds nothing (unless a listener named
// "http" was handed in).
func (rt *Runtime) HTTP(s config.Server, h http.Handler) error {
	if _, ok := rt.Listener("http"); s.ListenAddr == "" && !ok {
		return rt.metricsListener(s)
	}
	srv, err := httpserver.New(httpserver.FromConfig(s, rt.Logger), rt.Handler(h, s.MetricsAddr == ""))
	if err != nil {
		return err
	}
	rt.listen("http", srv.Listen, srv.Serve)
	return rt.metricsListener(s)
}

// Handler wraps a service's HTTP handler as HTTP does: request metrics,
// GET /v1/health and (withMetrics) GET /metrics. Services with several
// HTTP servers wrap each with it.
func (rt *Runtime) Handler(h http.Handler, withMetrics bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+health.Path, rt.named(health.Path, health.Handler(func(ctx context.Context) error { return rt.checkHealth(ctx) })))
	if withMetrics {
		mux.Handle("GET "+metrics.Path, rt.named(metrics.Path, rt.Metrics.Handler()))
	}
	mux.Handle("/", h)
	return rt.Metrics.Middleware(mux)
}

// named labels a fixed route's requests in the request metrics.
func (rt *Runtime) named(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		metrics.SetRoute(r.Context(), route)
		h.ServeHTTP(w, r)
	})
}

func (rt *Runtime) checkHealth(ctx context.Context) error {
	if rt.health == nil {
		return nil
	}
	return rt.health(ctx)
}

// metricsListener adds the plain-HTTP /metrics listener of metrics_addr.
func (rt *Runtime) metricsListener(s config.Server) error {
	if s.MetricsAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, rt.Metrics.Handler())
	mux.Handle("GET "+health.Path, health.Handler(func(ctx context.Context) error { return rt.checkHealth(ctx) }))
	srv, err := httpserver.New(httpserver.Options{
		Addr: s.MetricsAddr, Plain: true, ShutdownTimeout: s.ShutdownTimeout.Duration,
	}, mux)
	if err != nil {
		return err
	}
	rt.listen("metrics", srv.Listen, srv.Serve)
	return nil
}

// GRPC adds srv's network listener under the name "grpc" when it has an
// address (or a listener named "grpc" was handed in). A server without one
// still answers in process, for the REST gateway. Either way the service
// refuses to start while a registered RPC is in no method map: the
// omission shows at the first start, not as a denied call in production.
func (rt *Runtime) GRPC(srv *grpcserver.Server) { rt.GRPCAs("grpc", srv) }

// GRPCAs is GRPC under another component name (and pre-bound listener
// name), for a gRPC server that is not the service's API listener:
// mc-proxy's admin socket is "admin".
func (rt *Runtime) GRPCAs(name string, srv *grpcserver.Server) {
	rt.Add(name+"-maps", func(context.Context) (string, error) {
		if u := srv.Unregistered(); len(u) > 0 {
			return "", fmt.Errorf("RPCs in no method map: %s", strings.Join(u, ", "))
		}
		return "", nil
	}, func(context.Context) error { return nil }, func() {})
	if _, ok := rt.Listener(name); srv.Addr() == "" && !ok {
		return
	}
	rt.listen(name, srv.Listen, srv.Serve)
}

// GRPCOptions fills the listener, TLS, logger and metrics fields of opts
// from the [server] section and the runtime.
func (rt *Runtime) GRPCOptions(s config.Server, opts grpcserver.Options) grpcserver.Options {
	opts = grpcserver.FromConfig(s, opts)
	if opts.Logger == nil {
		opts.Logger = rt.Logger
	}
	if opts.Metrics == nil {
		opts.Metrics = rt.Metrics
	}
	return opts
}

// Run builds the service, binds every listener, serves until ctx ends and
// stops cleanly (see the package documentation). A cancellation that
// arrives while the service is still starting is a clean stop, not an
// error.
func Run(ctx context.Context, opts Options, build func(ctx context.Context, rt *Runtime) error) error {
	err := run(ctx, opts, build)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func run(ctx context.Context, opts Options, build func(context.Context, *Runtime) error) (err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Metrics
	if reg == nil {
		reg = metrics.New()
	}
	rt := &Runtime{Logger: logger, Metrics: reg, opts: opts}
	defer func() {
		if cerr := rt.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if err := build(ctx, rt); err != nil {
		return err
	}
	if err := rt.bind(ctx); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range rt.components {
		g.Go(func() error {
			err := c.serve(gctx)
			if stopping := errors.Is(err, context.Canceled) && gctx.Err() != nil; err != nil && !stopping {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		logger.Error(opts.Name+" stopped on an error", "error", err)
		return err
	}
	logger.Info(opts.Name + " stopped cleanly")
	return nil
}

// bind binds every component in order; on a failure it releases what the
// earlier ones took.
func (rt *Runtime) bind(ctx context.Context) error {
	var addrs []any
	for _, c := range rt.components {
		addr, err := c.bind(ctx)
		if err != nil {
			for _, b := range slices.Backward(rt.components) {
				if b.bound {
					b.abort()
				}
			}
			return fmt.Errorf("%s: %w", c.name, err)
		}
		c.bound = true
		if addr != "" {
			addrs = append(addrs, c.name, addr)
		}
	}
	rt.Logger.Info(rt.opts.Name+" started", append([]any{"version", rt.opts.Version}, addrs...)...)
	return nil
}

func (rt *Runtime) close() error {
	var errs []error
	for _, f := range slices.Backward(rt.closers) {
		if err := f(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("close: %w", errors.Join(errs...))
	}
	return nil
}
