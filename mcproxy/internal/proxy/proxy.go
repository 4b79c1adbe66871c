// Package proxy is mc-proxy's data plane: it accepts TLS connections on the
// configured listeners, applies the firewall to the real client address
// (from PROXY protocol when the listener accepts it), reads the SNI name
// from the ClientHello, and either relays the raw bytes to the route's
// backend (L4) or terminates TLS and reverse proxies HTTP/1.1, HTTP/2,
// gRPC and websockets (L7). Routes and firewall rules swap atomically.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"git.metacircular.net/metacircular/mcproxy/internal/firewall"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// Listener is one listening socket with its own route table.
type Listener struct {
	// Name keys the listener's routes (route.Route.Listener).
	Name string
	// Addr is the address Listen (and Serve, for a listener not handed in)
	// binds.
	Addr string
	// AcceptProxyProtocol requires a PROXY v1/v2 header from every
	// connection; connections from outside TrustedProxies are reset.
	AcceptProxyProtocol bool
	// TrustedProxies are the peers allowed to send PROXY headers.
	TrustedProxies []netip.Prefix
}

// Options configures a Server.
type Options struct {
	Listeners []Listener
	// HelloTimeout bounds the wait for a ClientHello (default 10s).
	HelloTimeout time.Duration
	// ProxyHeaderTimeout bounds the wait for a PROXY header (default 5s).
	ProxyHeaderTimeout time.Duration
	// IdleTimeout closes L4 relays and idle L7 connections (default 5m).
	IdleTimeout time.Duration
	// ShutdownTimeout bounds the drain when a listener's context ends
	// (default 30s).
	ShutdownTimeout time.Duration
	// Firewall is the global firewall applied on every listener.
	Firewall firewall.Config
	// Metrics receives the data plane's collectors (mcproxy_*); nil keeps
	// them in a registry of the server's own that nothing scrapes.
	Metrics prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Status is a snapshot of the server.
type Status struct {
	Listeners       []ListenerStatus
	OpenConnections int64
}

// ListenerStatus describes one listener.
type ListenerStatus struct {
	Name, Addr string
	// Routes is the number of routes on this listener.
	Routes int
}

// Server is the proxy. Create it with New, then serve each listener with
// ServeListener (or all of them with Serve) and Close it once they have
// returned.
type Server struct {
	opts    Options
	log     *slog.Logger
	fw      *firewall.Firewall
	metrics *metrics
	certs   *certCache
	backend *backendTransport

	routing atomic.Pointer[routing]
	// setRoutes orders SetRoutes calls, which reuse the previous
	// routing's series.
	setRoutes sync.Mutex

	listeners map[string]*listenerState
	open      atomic.Int64
	closeOnce sync.Once

	// noFast sends every HTTP/1.1 connection to net/http (tests compare
	// the fast path with it); fastRequests counts the requests the fast
	// path answered.
	noFast       bool
	fastRequests atomic.Int64
}

// listenerState is one listener's live state.
type listenerState struct {
	Listener
	m *listenerMetrics

	mu      sync.Mutex
	addr    string
	serving bool
	// closed refuses new connections once the drain has begun.
	closed bool
	conns  map[*trackedConn]struct{}
	open   atomic.Int64
	// fronts are the L7 fronts of the current route versions, by host
	// name; retiring counts the fronts of changed routes still draining.
	fronts   map[string]*l7Front
	retiring sync.WaitGroup
}

// New validates the options and builds a server serving table.
func New(opts Options, table *route.Table) (*Server, error) {
	if len(opts.Listeners) == 0 {
		return nil, errors.New("proxy: no listeners configured")
	}
	seen := map[string]bool{}
	for _, l := range opts.Listeners {
		if l.Name == "" {
			return nil, errors.New("proxy: listener without a name")
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("proxy: listener %q defined twice", l.Name)
		}
		seen[l.Name] = true
		if l.AcceptProxyProtocol && len(l.TrustedProxies) == 0 {
			return nil, fmt.Errorf("proxy: listener %q accepts PROXY protocol but has no trusted proxies", l.Name)
		}
	}
	defaultDuration(&opts.HelloTimeout, 10*time.Second)
	defaultDuration(&opts.ProxyHeaderTimeout, 5*time.Second)
	defaultDuration(&opts.IdleTimeout, 5*time.Minute)
	defaultDuration(&opts.ShutdownTimeout, 30*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		certs:     newCertCache(opts.Logger),
		listeners: make(map[string]*listenerState, len(opts.Listeners)),
	}
	m, err := newMetrics(opts.Metrics, func() float64 { return float64(s.open.Load()) })
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if s.fw, err = firewall.New(opts.Firewall); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.backend = newBackendTransport()
	for _, l := range opts.Listeners {
		s.listeners[l.Name] = &listenerState{
			Listener: l, m: m.listener(l.Name), addr: l.Addr,
			conns: map[*trackedConn]struct{}{}, fronts: map[string]*l7Front{},
		}
	}
	s.SetRoutes(table)
	return s, nil
}

func defaultDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// SetRoutes swaps the route table. New connections see only the new
// table. L7 connections of a route that changed or is gone are drained
// (l7Front.retire): kept-alive connections are closed, requests in flight
// finish, and no new request reaches the old backend. L4 relays are
// byte streams without requests and run until they end.
func (s *Server) SetRoutes(t *route.Table) {
	if t == nil {
		t, _ = route.NewTable(nil)
	}
	s.setRoutes.Lock()
	defer s.setRoutes.Unlock()
	s.routing.Store(s.metrics.newRouting(t, s.routing.Load()))
	for _, ls := range s.listeners {
		ls.mu.Lock()
		for host, f := range ls.fronts {
			if cur, ok := t.Lookup(ls.Name, host); !ok || cur != f.route {
				delete(ls.fronts, host)
				f.retire()
			}
		}
		ls.mu.Unlock()
	}
	s.backend.prune(t)
}

// SetRules swaps the firewall rules; the GeoIP database stays open.
func (s *Server) SetRules(rules []route.Rule) error {
	return s.fw.SetRules(rules)
}

// Status reports listeners, their route counts and open connections.
func (s *Server) Status() Status {
	counts := map[string]int{}
	for _, r := range s.routing.Load().table.Routes() {
		counts[r.Listener]++
	}
	st := Status{OpenConnections: s.open.Load()}
	for _, l := range s.opts.Listeners {
		ls := s.listeners[l.Name]
		ls.mu.Lock()
		addr := ls.addr
		ls.mu.Unlock()
		st.Listeners = append(st.Listeners, ListenerStatus{Name: l.Name, Addr: addr, Routes: counts[l.Name]})
	}
	return st
}

// Listen binds the address of the listener called name.
func (s *Server) Listen(ctx context.Context, name string) (net.Listener, error) {
	ls, ok := s.listeners[name]
	if !ok {
		return nil, fmt.Errorf("proxy: no listener named %q", name)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", ls.Addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen %s on %s: %w", name, ls.Addr, err)
	}
	return ln, nil
}

// ServeListener accepts on ln as the listener called name until ctx ends,
// then stops accepting, drains that listener's connections for up to
// ShutdownTimeout and closes what is left. Each listener is served once.
func (s *Server) ServeListener(ctx context.Context, name string, ln net.Listener) error {
	ls, ok := s.listeners[name]
	if !ok {
		_ = ln.Close()
		return fmt.Errorf("proxy: no listener named %q", name)
	}
	ls.mu.Lock()
	if ls.serving {
		ls.mu.Unlock()
		_ = ln.Close()
		return fmt.Errorf("proxy: listener %s is already served", name)
	}
	ls.serving = true
	ls.addr = ln.Addr().String()
	ls.mu.Unlock()

	errc := make(chan error, 1)
	go func() { errc <- s.acceptLoop(ctx, ls, ln) }()
	s.log.Info("proxy listener serving", "listener", name, "addr", ln.Addr().String())
	var err error
	select {
	case <-ctx.Done():
		_ = ln.Close()
		err = <-errc
	case err = <-errc:
		_ = ln.Close()
	}
	s.drain(ls)
	return err
}

// Serve serves every listener until ctx ends (see ServeListener), then
// closes the server. lns supplies pre-bound listeners by name; the others
// are bound from their Addr.
func (s *Server) Serve(ctx context.Context, lns map[string]net.Listener) error {
	defer s.Close() //nolint:errcheck // nothing to do about it at exit
	bound := make(map[string]net.Listener, len(s.opts.Listeners))
	for _, l := range s.opts.Listeners {
		ln := lns[l.Name]
		if ln == nil {
			var err error
			if ln, err = s.Listen(ctx, l.Name); err != nil {
				for _, b := range bound {
					b.Close() //nolint:errcheck,gosec // failing
				}
				return err
			}
		}
		bound[l.Name] = ln
	}
	g, gctx := errgroup.WithContext(ctx)
	for name, ln := range bound {
		g.Go(func() error { return s.ServeListener(gctx, name, ln) })
	}
	return g.Wait()
}

// Close releases what the server holds beyond its listeners (the GeoIP
// database). Call it after every listener has stopped.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.fw.Close() })
	return err
}

func (s *Server) acceptLoop(ctx context.Context, ls *listenerState, ln net.Listener) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "listener", ls.Name, "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("proxy: accept on %s: %w", ls.Name, err)
		}
		backoff = 0
		tc := s.track(ls, c)
		if tc == nil {
			reset(c)
			continue
		}
		go s.handle(ctx, ls, tc)
	}
}

// drain shuts the listener's L7 fronts down (GOAWAY to HTTP/2 clients,
// idle connections closed), waits for its remaining tracked connections
// (L4 relays, hijacked websockets, in-flight requests) and closes
// whatever is left when ShutdownTimeout passes.
func (s *Server) drain(ls *listenerState) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	ls.mu.Lock()
	ls.closed = true
	fronts := slices.Collect(maps.Values(ls.fronts))
	clear(ls.fronts)
	ls.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range fronts {
		wg.Go(func() { f.shutdown(ctx) })
	}
	wg.Wait()
	if n := s.waitConns(ctx, ls, func(*trackedConn) bool { return true }); n > 0 {
		s.log.Warn("drain timed out; closed connections", "listener", ls.Name, "open", n)
	}
	ls.retiring.Wait()
}

// waitConns waits until no connection of ls matching match is open, or
// until ctx ends; then it closes those left and returns how many.
func (s *Server) waitConns(ctx context.Context, ls *listenerState, match func(*trackedConn) bool) int {
	matching := func() []*trackedConn {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		var out []*trackedConn
		for c := range ls.conns {
			if match(c) {
				out = append(out, c)
			}
		}
		return out
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		left := matching()
		if len(left) == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			left = matching()
			for _, c := range left {
				c.Close() //nolint:errcheck,gosec // forced close
			}
			return len(left)
		case <-tick.C:
		}
	}
}
