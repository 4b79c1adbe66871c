package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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
	// answers caches packed replies from the zones (answercache.go).
	answers *answerCache

	zones atomic.Pointer[zoneSet]
	// reload serializes zone reloads, so the last one to swap in a zone
	// is also the last one to have read it.
	reload sync.Mutex
}

// New loads every zone from st into memory and registers st.OnChange so each
// committed change is served immediately (reload that zone, empty the
// answer cache, purge the forward cache for the changed zone's names). cfg
// must have been validated.
func New(st *store.Store, cfg Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nets, err := cfg.Networks()
	if err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
	}
	s := &Server{st: st, cfg: cfg, logger: logger, nets: nets, fwd: newForwarder(cfg, logger),
		answers: newAnswerCache(cfg.AnswerCacheBytes)}
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

// zoneChanged is the store's change listener, which the store runs after
// every committed write to a zone or its records: it swaps in a fresh
// build of the zone (or drops it, if deleted), then empties the answer
// cache (an answer may draw on several zones: CNAMEs across zones, DS from
// the parent) and forgets forwarded answers for the zone's names, which
// the zone now answers or, after a delete, must be asked upstream afresh.
func (s *Server) zoneChanged(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	s.reload.Lock()
	defer s.reload.Unlock()
	if err := s.loadZone(ctx, name); err != nil {
		// The old build keeps being served; the next change retries.
		s.logger.Error("dns: zone reload failed; serving its previous contents", "zone", name, "err", err)
	}
	s.answers.invalidate()
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

// handler adapts the Server to miekg/dns's TCP server for one Serve call.
type handler struct {
	s   *Server
	ctx context.Context
}

// ServeDNS answers one query received over TCP; reply does the work.
func (h handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	var src netip.Addr
	if a, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		src = a.AddrPort().Addr()
	}
	if buf := h.s.reply(h.ctx, req, src, false); buf != nil {
		_, _ = w.Write(buf)
	}
}

// Serve answers on the given sockets until ctx ends, then shuts both down
// (closing udp) and returns nil; it returns early with an error if either
// fails. UDP is served by MCNS's own read loops, one per core
// (GOMAXPROCS); TCP by miekg/dns's server. If udp has SO_REUSEPORT set (as
// Listen binds it on a machine with several cores), each loop reads a
// socket of its own bound to the same address, and the kernel spreads the
// clients over them; otherwise the loops share udp.
func (s *Server) Serve(ctx context.Context, udp net.PacketConn, tcp net.Listener) error {
	if udp == nil || tcp == nil {
		return errors.New("dns serve: both a UDP socket and a TCP listener are needed")
	}
	uc, ok := udp.(*net.UDPConn)
	if !ok {
		return fmt.Errorf("dns serve: the UDP socket is a %T, not a *net.UDPConn", udp)
	}
	pktinfo, err := socketOptions(uc)
	if err != nil {
		return err
	}
	srv := &dns.Server{Listener: tcp, Handler: handler{s: s, ctx: ctx}, MsgAcceptFunc: accept}
	started, tcpDone := make(chan struct{}), make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	var tcpErr error
	go func() {
		defer close(tcpDone)
		tcpErr = srv.ActivateAndServe()
	}()
	// Shutdown fails on a server that has not started yet, so wait until
	// it has either started or given up.
	select {
	case <-started:
	case <-tcpDone:
	}
	udpCtx, stopUDP := context.WithCancel(ctx)
	defer stopUDP()
	udpDone := make(chan struct{})
	var udpErr error
	go func() {
		defer close(udpDone)
		udpErr = s.serveUDP(udpCtx, uc, pktinfo)
	}()
	s.logger.Info("dns: serving", "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(),
		"zones", len(s.zones.Load().byName), "upstreams", len(s.fwd.upstreams), "udp_loops", runtime.GOMAXPROCS(0))
	select {
	case <-ctx.Done():
	case <-udpDone:
	case <-tcpDone:
	}
	stopUDP()
	select {
	case <-tcpDone:
	default:
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.ShutdownContext(sctx); err != nil {
			s.logger.Warn("dns: shutdown", "err", err)
		}
		cancel()
	}
	<-udpDone
	<-tcpDone
	var errs []error
	if udpErr != nil {
		errs = append(errs, fmt.Errorf("dns serve udp: %w", udpErr))
	}
	if tcpErr != nil {
		errs = append(errs, fmt.Errorf("dns serve tcp: %w", tcpErr))
	}
	return errors.Join(errs...)
}

// maxForwards bounds the queries the UDP read loops have handed over
// because they wait for an upstream; while that many wait, further ones
// are dropped, and their clients ask again.
const maxForwards = 1024

// forwards runs the queries handed over by the read loops, each in its
// own goroutine.
type forwards struct {
	slots chan struct{}
	wg    sync.WaitGroup
}

// start runs fn in a goroutine unless maxForwards already run.
func (f *forwards) start(fn func()) {
	select {
	case f.slots <- struct{}{}:
	default:
		return
	}
	f.wg.Go(func() {
		defer func() { <-f.slots }()
		fn()
	})
}

// serveUDP runs GOMAXPROCS read loops until ctx ends or one fails, then
// waits for the loops and the forwarded queries, and closes the sockets:
// conn and, if it allows them, the siblings opened beside it, one loop per
// socket; else every loop reads conn.
func (s *Server) serveUDP(ctx context.Context, conn *net.UDPConn, pktinfo bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := runtime.GOMAXPROCS(0)
	conns := []*net.UDPConn{conn}
	sibs, err := siblings(ctx, conn, n-1)
	if err != nil {
		s.logger.Warn("dns: every UDP read loop shares one socket", "err", err)
	}
	conns = append(conns, sibs...)
	for _, c := range conns {
		// An expired read deadline ends the loops' wait for datagrams.
		stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	fw := &forwards{slots: make(chan struct{}, maxForwards)}
	errs := make([]error, n)
	var loops sync.WaitGroup
	for i := range n {
		loops.Go(func() {
			if errs[i] = s.readLoop(ctx, conns[i%len(conns)], pktinfo, fw); errs[i] != nil {
				cancel()
			}
		})
	}
	loops.Wait()
	fw.wg.Wait()
	for _, c := range conns {
		_ = c.Close()
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
// retries a truncated answer over TCP expects; when another program holds
// that port for TCP, a new UDP port is picked (a few times). On a machine
// with several cores (GOMAXPROCS > 1) the UDP socket allows SO_REUSEPORT
// siblings, which Serve opens, one per core.
func (s *Server) Listen(ctx context.Context) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	host, port, splitErr := net.SplitHostPort(s.cfg.ListenAddr)
	anyPort := splitErr == nil && port == "0"
	for attempt := 0; ; attempt++ {
		udp, err := udpListenConfig(runtime.GOMAXPROCS(0) > 1).ListenPacket(ctx, "udp", s.cfg.ListenAddr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen udp %s: %w", s.cfg.ListenAddr, err)
		}
		tcpAddr := s.cfg.ListenAddr
		if ua, ok := udp.LocalAddr().(*net.UDPAddr); ok && anyPort {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(ua.Port))
		}
		tcp, err := lc.Listen(ctx, "tcp", tcpAddr)
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		if !anyPort || attempt == 9 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("dns listen tcp %s: %w", tcpAddr, err)
		}
	}
}
