package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// reloadTimeout bounds reading one zone back after a change.
const reloadTimeout = 30 * time.Second

// Server answers DNS queries for the store's zones and forwards the rest.
type Server struct {
	st     *store.Store
	cfg    Config
	logger *slog.Logger
	nets   []netip.Prefix
	fwd    *forwarder

	zones atomic.Pointer[zoneSet]
	// reload serializes zone reloads, so the last one to swap in a zone
	// is also the last one to have read it.
	reload sync.Mutex
}

// New loads every zone from st into memory and registers st.OnChange so each
// committed change is served immediately (reload that zone, purge the forward
// cache for the changed zone's names). cfg must have been validated.
func New(st *store.Store, cfg Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nets, err := cfg.Networks()
	if err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
	}
	s := &Server{st: st, cfg: cfg, logger: logger, nets: nets, fwd: newForwarder(cfg, logger)}
	s.zones.Store(&zoneSet{byName: map[string]*zone{}})

	// Register before loading, with the reload lock held: a change
	// committed while the zones load waits for the lock and is applied
	// after, instead of being lost between the load and the registration.
	s.reload.Lock()
	defer s.reload.Unlock()
	st.OnChange(s.zoneChanged)
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	zones, err := st.ListZones(ctx)
	if err != nil {
		return nil, fmt.Errorf("dns server: load zones: %w", err)
	}
	set := &zoneSet{byName: make(map[string]*zone, len(zones))}
	for _, z := range zones {
		recs, err := st.Records(ctx, z.Name, "", "")
		if err != nil {
			return nil, fmt.Errorf("dns server: load zone %s: %w", z.Name, err)
		}
		set.byName[z.Name] = buildZone(z, recs, nil, logger)
	}
	s.zones.Store(set)
	return s, nil
}

// zoneChanged is the store's change listener: it swaps in a fresh build of
// the zone (or drops it, if deleted) and forgets forwarded answers for its
// names, which the zone now answers or, after a delete, must be asked
// upstream afresh.
func (s *Server) zoneChanged(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	s.reload.Lock()
	defer s.reload.Unlock()
	if err := s.loadZone(ctx, name); err != nil {
		// The old build keeps being served; the next change retries.
		s.logger.Error("dns: zone reload failed; serving its previous contents", "zone", name, "err", err)
	}
	s.fwd.cache.purge(name)
}

// loadZone reads zone name from the store into the served set; s.reload is
// held.
func (s *Server) loadZone(ctx context.Context, name string) error {
	cur := s.zones.Load()
	z, err := s.st.GetZone(ctx, name)
	if errors.Is(err, dnsdata.ErrNotFound) {
		s.zones.Store(cur.with(name, nil))
		return nil
	}
	if err != nil {
		return fmt.Errorf("load zone %s: %w", name, err)
	}
	recs, err := s.st.Records(ctx, name, "", "")
	if err != nil {
		return fmt.Errorf("load zone %s: %w", name, err)
	}
	s.zones.Store(cur.with(name, buildZone(z, recs, cur.byName[name], s.logger)))
	return nil
}

// handler adapts the Server to miekg/dns for one Serve call.
type handler struct {
	s   *Server
	ctx context.Context
}

// ServeDNS answers one query; reply does the work so that the fuzz target
// runs the same code.
func (h handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	var src netip.Addr
	udp := false
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		src, udp = a.AddrPort().Addr(), true
	case *net.TCPAddr:
		src = a.AddrPort().Addr()
	}
	if buf := h.s.reply(h.ctx, req, src, udp); buf != nil {
		_, _ = w.Write(buf)
	}
}

// Serve answers on the given sockets until ctx ends, then shuts both down
// and returns nil; it returns early with an error if either server fails.
func (s *Server) Serve(ctx context.Context, udp net.PacketConn, tcp net.Listener) error {
	if udp == nil || tcp == nil {
		return errors.New("dns serve: both a UDP socket and a TCP listener are needed")
	}
	h := handler{s: s, ctx: ctx}
	type run struct {
		srv     *dns.Server
		started chan struct{}
		done    chan struct{}
		err     error
	}
	runs := []*run{
		{srv: &dns.Server{PacketConn: udp, Handler: h, MsgAcceptFunc: accept, UDPSize: readBufferSize}},
		{srv: &dns.Server{Listener: tcp, Handler: h, MsgAcceptFunc: accept}},
	}
	for _, r := range runs {
		r.started, r.done = make(chan struct{}), make(chan struct{})
		r.srv.NotifyStartedFunc = func() { close(r.started) }
		go func() {
			defer close(r.done)
			r.err = r.srv.ActivateAndServe()
		}()
	}
	// Shutdown fails on a server that has not started yet, so wait until
	// each one has either started or given up.
	for _, r := range runs {
		select {
		case <-r.started:
		case <-r.done:
		}
	}
	s.logger.Info("dns: serving", "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(),
		"zones", len(s.zones.Load().byName), "upstreams", len(s.fwd.upstreams))
	select {
	case <-ctx.Done():
	case <-runs[0].done:
	case <-runs[1].done:
	}
	for _, r := range runs {
		select {
		case <-r.done:
		default:
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.srv.ShutdownContext(sctx); err != nil {
				s.logger.Warn("dns: shutdown", "err", err)
			}
			cancel()
		}
	}
	var errs []error
	for i, r := range runs {
		<-r.done
		if r.err != nil {
			errs = append(errs, fmt.Errorf("dns serve %s: %w", [...]string{"udp", "tcp"}[i], r.err))
		}
	}
	return errors.Join(errs...)
}

// ListenAndServe binds cfg.ListenAddr on UDP and TCP and calls Serve. With
// port 0, TCP takes the port the kernel chose for UDP, since clients retry
// truncated answers over TCP on the same port.
func (s *Server) ListenAndServe(ctx context.Context) error {
	udp, tcp, err := s.Listen(ctx)
	if err != nil {
		return err
	}
	return s.Serve(ctx, udp, tcp)
}

// Listen binds UDP and TCP on the configured address. With port 0 the
// kernel picks the UDP port and TCP takes the same one, as a client that
// retries a truncated answer over TCP expects.
func (s *Server) Listen(ctx context.Context) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	udp, err := lc.ListenPacket(ctx, "udp", s.cfg.ListenAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns listen udp %s: %w", s.cfg.ListenAddr, err)
	}
	tcpAddr := s.cfg.ListenAddr
	if host, port, err := net.SplitHostPort(tcpAddr); err == nil && port == "0" {
		if ua, ok := udp.LocalAddr().(*net.UDPAddr); ok {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(ua.Port))
		}
	}
	tcp, err := lc.Listen(ctx, "tcp", tcpAddr)
	if err != nil {
		_ = udp.Close()
		return nil, nil, fmt.Errorf("dns listen tcp %s: %w", tcpAddr, err)
	}
	return udp, tcp, nil
}
