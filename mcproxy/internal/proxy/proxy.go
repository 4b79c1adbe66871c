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
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"git.metacircular.net/metacircular/mcproxy/internal/firewall"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// Listener is one listening socket with its own route table.
type Listener struct {
	// Name keys the listener's routes (route.Route.Listener).
	Name string
	// Addr is the address to bind when Serve is not given a listener.
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
	// ShutdownTimeout bounds the drain when Serve's context ends (default 30s).
	ShutdownTimeout time.Duration
	// Firewall is the global firewall applied on every listener.
	Firewall firewall.Config
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

// Server is the proxy. Create it with New and run it with Serve.
type Server struct {
	opts    Options
	log     *slog.Logger
	fw      *firewall.Firewall
	table   atomic.Pointer[route.Table]
	metrics *metrics
	certs   *certCache
	backend *backendTransport

	mu     sync.Mutex
	addrs  map[string]string
	conns  map[*trackedConn]struct{}
	closed bool
	open   atomic.Int64
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
	fw, err := firewall.New(opts.Firewall)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		fw:      fw,
		metrics: newMetrics(),
		certs:   newCertCache(opts.Logger),
		addrs:   map[string]string{},
		conns:   map[*trackedConn]struct{}{},
	}
	s.backend = newBackendTransport(s.certs)
	s.metrics.open = func() float64 { return float64(s.open.Load()) }
	for _, l := range opts.Listeners {
		s.addrs[l.Name] = l.Addr
	}
	s.SetRoutes(table)
	return s, nil
}

func defaultDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// SetRoutes swaps the route table; connections already routed keep theirs.
func (s *Server) SetRoutes(t *route.Table) {
	if t == nil {
		t, _ = route.NewTable(nil)
	}
	s.table.Store(t)
}

// SetRules swaps the firewall rules; the GeoIP database stays open.
func (s *Server) SetRules(rules []route.Rule) error {
	return s.fw.SetRules(rules)
}

// Status reports listeners, their route counts and open connections.
func (s *Server) Status() Status {
	counts := map[string]int{}
	for _, r := range s.table.Load().Routes() {
		counts[r.Listener]++
	}
	st := Status{OpenConnections: s.open.Load()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.opts.Listeners {
		st.Listeners = append(st.Listeners, ListenerStatus{Name: l.Name, Addr: s.addrs[l.Name], Routes: counts[l.Name]})
	}
	return st
}

// MetricsHandler serves the Prometheus metrics of this server.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }

// Serve accepts on every listener until ctx ends, then stops accepting,
// drains for up to ShutdownTimeout and closes what is left. lns supplies
// pre-bound listeners by name; the others are bound from their Addr.
func (s *Server) Serve(ctx context.Context, lns map[string]net.Listener) error {
	defer s.fw.Close() //nolint:errcheck // nothing to do about it at exit
	bound := make([]net.Listener, 0, len(s.opts.Listeners))
	closeAll := func() {
		for _, ln := range bound {
			ln.Close() //nolint:errcheck,gosec // shutting down
		}
	}
	for _, l := range s.opts.Listeners {
		ln := lns[l.Name]
		if ln == nil {
			var err error
			ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", l.Addr)
			if err != nil {
				closeAll()
				return fmt.Errorf("proxy: listen %s on %s: %w", l.Name, l.Addr, err)
			}
		}
		bound = append(bound, ln)
		s.mu.Lock()
		s.addrs[l.Name] = ln.Addr().String()
		s.mu.Unlock()
	}

	var accepting sync.WaitGroup
	fronts := make([]*l7Front, len(s.opts.Listeners))
	errc := make(chan error, len(bound))
	for i, l := range s.opts.Listeners {
		fronts[i] = s.newL7Front(l)
		go fronts[i].serve()
		accepting.Go(func() {
			if err := s.acceptLoop(ctx, l, bound[i], fronts[i]); err != nil {
				errc <- err
			}
		})
	}
	s.log.Info("mc-proxy serving", "listeners", s.Status().Listeners)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	closeAll()
	accepting.Wait()
	s.drain(fronts)
	return serveErr
}

func (s *Server) acceptLoop(ctx context.Context, l Listener, ln net.Listener, front *l7Front) error {
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
				s.log.Warn("accept failed; retrying", "listener", l.Name, "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("proxy: accept on %s: %w", l.Name, err)
		}
		backoff = 0
		tc := s.track(c)
		if tc == nil {
			reset(c)
			continue
		}
		go s.handle(ctx, l, tc, front)
	}
}

// drain shuts the L7 servers down (GOAWAY to HTTP/2 clients, idle
// connections closed), waits for the remaining tracked connections (L4
// relays, hijacked websockets, in-flight requests) and closes whatever is
// left when ShutdownTimeout passes.
func (s *Server) drain(fronts []*l7Front) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range fronts {
		wg.Go(func() {
			if err := f.srv.Shutdown(ctx); err != nil {
				f.srv.Close() //nolint:errcheck,gosec // forced close after the drain
			}
		})
	}
	wg.Wait()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.open.Load() > 0 {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			left := make([]*trackedConn, 0, len(s.conns))
			for c := range s.conns {
				left = append(left, c)
			}
			s.mu.Unlock()
			s.log.Warn("drain timed out; closing connections", "open", len(left))
			for _, c := range left {
				c.Close() //nolint:errcheck,gosec // forced close
			}
			return
		case <-tick.C:
		}
	}
}
