package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"git.metacircular.net/metacircular/mcdsl/tlsutil"
	"git.metacircular.net/metacircular/mcproxy/internal/h1scan"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// maxHeaderBytes bounds an L7 request's header block (HTTP/1.1) or
// header list (HTTP/2): nginx's default is 32 KiB (4 x 8k buffers);
// net/http's 1 MiB would let each slow client hold a megabyte.
const maxHeaderBytes = 64 << 10

// maxScannedHeader is what h1scan follows: at least what net/http
// accepts (MaxHeaderBytes plus its 4 KiB read buffer).
const maxScannedHeader = maxHeaderBytes + 8<<10

// l7Front serves the connections of one version of one L7 route: an
// http.Server of its own, fed the route's TLS connections through an
// in-memory listener. When the route changes or is removed the front is
// retired (see retire); a changed route gets a new front for its new
// connections.
type l7Front struct {
	s       *Server
	ls      *listenerState
	route   route.Route
	metrics *routeMetrics
	srv     *http.Server
	ln      *chanListener
	done    chan struct{}
	// retired is set once the route changed: requests still arriving are
	// served by the route as it is now (or refused, if it is gone).
	retired    atomic.Bool
	retireOnce sync.Once
	// conns are the client connections' own backend transports, for a
	// route with send_proxy_protocol (net.Conn -> *clientConn).
	conns sync.Map

	// pool holds the backend connections of the HTTP/1.1 fast path (nil
	// when the route's clients do not take it; see fast.go); fast are the
	// connections on it, stopping is set once the front shuts down.
	pool     *backendPool
	stopping atomic.Bool
	fastMu   sync.Mutex
	fast     map[*fastConn]struct{}
}

// h1ConnKey keys the *h1Conn of an HTTP/1 connection in its context.
type h1ConnKey struct{}

// h1Conn is an L7 connection that did not negotiate h2: the TLS
// connection, handshaken, with an h1scan.Scanner fed every byte net/http
// reads from it. It is deliberately not a *tls.Conn, so net/http serves
// it as the HTTP/1 connection it is.
type h1Conn struct {
	*tls.Conn
	scan *h1scan.Scanner
	// prefix is what the fast path had read and not served when it
	// handed the connection over; it is read first.
	prefix []byte
	// served counts the requests handed to the handler (the scanner's
	// request numbers).
	served atomic.Int64
}

func (c *h1Conn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		_, _ = c.scan.Write(p[:n]) // never fails
		return n, nil
	}
	n, err := c.Conn.Read(p)
	_, _ = c.scan.Write(p[:n]) // never fails
	return n, err
}

// hand terminates TLS on an accepted connection with the route's
// certificate and passes it to the route's front: as the *tls.Conn when
// the client negotiated h2, as an h1Conn otherwise.
func (s *Server) hand(ls *listenerState, c *trackedConn, rt route.Route, hello []byte) {
	cfg, err := s.certs.serverConfig(rt.TLSCert, rt.TLSKey)
	if err != nil {
		s.log.Error("l7: no certificate; reset", "listener", ls.Name, "host", rt.Hostname, "err", err)
		ls.m.certificate.Inc()
		reset(c)
		return
	}
	rc := &replayConn{trackedConn: c, prefix: hello}
	tc := tls.Server(rc, cfg)
	if err := c.SetDeadline(time.Now().Add(s.opts.HelloTimeout)); err != nil {
		reset(c)
		return
	}
	if err := tc.Handshake(); err != nil {
		s.log.Debug("l7: tls handshake failed", "listener", ls.Name, "host", rt.Hostname, "client", c.client, "err", err)
		c.Close() //nolint:errcheck,gosec // failed handshake
		return
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close() //nolint:errcheck,gosec // broken connection
		return
	}
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		s.serveH1(ls, c, tc, rt)
		return
	}
	// Many streams share the connection: gather their frames into fewer
	// writes (see coalescer).
	rc.out = newCoalescer(c)
	s.push(ls, c, tc, rt.Hostname, nil)
}

// newScanner is the h1scan.Scanner of an HTTP/1 connection net/http
// serves.
func newScanner() *h1scan.Scanner { return h1scan.New(maxScannedHeader) }

// frontFor returns the front of the current version of the L7 route for
// host on ls, starting one if there is none, and records it as c's
// front. It returns nil when the route is gone or no longer L7, or when
// ls is draining. The lookup happens under ls.mu, which SetRoutes takes
// after swapping the table, so a front for a replaced version is never
// left behind in ls.fronts.
func (s *Server) frontFor(ls *listenerState, host string, c *trackedConn) *l7Front {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return nil
	}
	rt, rm, ok := s.routing.Load().lookup(ls.Name, host)
	if !ok || rt.Mode != route.L7 {
		return nil
	}
	f := ls.fronts[rt.Hostname]
	if f == nil || f.route != rt {
		if f != nil {
			f.retire() // SetRoutes is about to; this connection saw the new table first
		}
		f = s.newFront(ls, rt, rm)
		ls.fronts[rt.Hostname] = f
		go f.serve()
	}
	c.front = f
	return f
}

func (s *Server) newFront(ls *listenerState, rt route.Route, rm *routeMetrics) *l7Front {
	f := &l7Front{s: s, ls: ls, route: rt, metrics: rm, ln: newChanListener(), done: make(chan struct{}), fast: map[*fastConn]struct{}{}}
	if fastEligible(rt) {
		// A backend TLS configuration that does not load leaves the
		// route's clients to the net/http path, which answers 502 and
		// logs why.
		f.pool, _ = newBackendPool(rt, s.backend)
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	f.srv = &http.Server{
		Handler:           f,
		ReadHeaderTimeout: s.opts.HelloTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		Protocols:         protos,
		// OPTIONS * reaches the handler like every other request, so the
		// handler sees each request h1scan counts.
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if rt.SendProxyProtocol {
				cc := newClientConn(c, s.backend)
				f.conns.Store(c, cc)
				ctx = context.WithValue(ctx, clientConnKey{}, cc)
			}
			if hc, ok := c.(*h1Conn); ok {
				return context.WithValue(ctx, h1ConnKey{}, hc)
			}
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st != http.StateClosed && st != http.StateHijacked {
				return
			}
			if cc, ok := f.conns.LoadAndDelete(c); ok {
				cc.(*clientConn).close() //nolint:errcheck,forcetypeassert // only *clientConn is stored
			}
		},
	}
	return f
}

func (f *l7Front) serve() {
	defer close(f.done)
	if err := f.srv.Serve(f.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		f.s.log.Error("l7 server stopped", "listener", f.ls.Name, "host", f.route.Hostname, "err", err)
	}
}

// retire drains a front whose route changed or was removed, as nginx
// drains the workers of its previous configuration on a reload: idle
// connections are closed at once, an HTTP/1.1 connection is closed after
// the response in flight, HTTP/2 clients get a GOAWAY, and requests in
// flight finish. Whatever is still open after ShutdownTimeout (a slow
// request, a websocket) is closed. Call it with f.ls.mu held.
func (f *l7Front) retire() {
	f.retireOnce.Do(func() {
		f.retired.Store(true)
		f.s.log.Info("l7: route changed; draining its connections", "listener", f.ls.Name, "host", f.route.Hostname)
		f.ls.retiring.Add(1)
		go func() {
			defer f.ls.retiring.Done()
			ctx, cancel := context.WithTimeout(context.Background(), f.s.opts.ShutdownTimeout)
			defer cancel()
			f.shutdown(ctx)
			// Hijacked connections (websockets) are no longer the
			// http.Server's: wait for them too, then close what is left.
			if n := f.s.waitConns(ctx, f.ls, func(c *trackedConn) bool { return c.front == f }); n > 0 {
				f.s.log.Warn("l7: drain of a changed route timed out; closed its connections", "listener", f.ls.Name,
					"host", f.route.Hostname, "closed", n)
			}
		}()
	})
}

// shutdown stops the front's http.Server gracefully until ctx ends, then
// forcibly.
func (f *l7Front) shutdown(ctx context.Context) {
	f.stopFast()
	if err := f.srv.Shutdown(ctx); err != nil {
		f.srv.Close() //nolint:errcheck,gosec // forced close after the drain
	}
	<-f.done
	if f.pool != nil {
		f.pool.close()
	}
}

// ServeHTTP proxies one request to the route's backend.
func (f *l7Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ex := &exchange{f: f, w: w, in: r, route: f.route, metrics: f.metrics, code: http.StatusOK}
	defer func() {
		ex.metrics.done(ex.metrics.status(ex.code), start)
		if f.s.log.Enabled(r.Context(), slog.LevelDebug) {
			f.s.log.Debug("l7 request", "listener", f.ls.Name, "host", ex.route.Hostname, "method", r.Method, "path", r.URL.Path,
				"proto", r.Proto, "status", ex.code, "client", r.RemoteAddr, "duration", time.Since(start))
		}
	}()
	if hc, ok := r.Context().Value(h1ConnKey{}).(*h1Conn); ok {
		n := hc.served.Add(1) - 1
		if reason, refused := hc.scan.Refused(int(n)); refused {
			f.s.log.Info("l7: refused a request with ambiguous framing; answered 400 and closed the connection",
				"listener", f.ls.Name, "host", ex.route.Hostname, "client", r.RemoteAddr, "reason", reason)
			ex.refuse(http.StatusBadRequest, "bad request: "+reason)
			return
		}
		if r.ProtoMajor != 1 {
			// "PRI * HTTP/2.0" on an HTTP/1 connection: h2 is negotiated
			// in ALPN or not at all.
			ex.refuse(http.StatusHTTPVersionNotSupported, "http version not supported")
			return
		}
	}
	if f.retired.Load() {
		// The request raced a route change: serve it as the route is now,
		// and close the connection after the answer.
		cur, curM, ok := f.s.routing.Load().lookup(f.ls.Name, ex.route.Hostname)
		if !ok || cur.Mode != route.L7 {
			ex.refuse(http.StatusMisdirectedRequest, "misdirected request")
			return
		}
		ex.route, ex.metrics = cur, curM
		ex.closeAfter = r.ProtoMajor == 1
	}
	// HTTP/2 coalescing could carry a request for another host on this
	// connection, and an absolute-form request target names its own host
	// (net/http puts it in r.Host); only the routed host is served.
	if host := hostOnly(r.Host); host != "" && route.NormalizeHost(host) != ex.route.Hostname {
		ex.refuse(http.StatusMisdirectedRequest, "misdirected request")
		return
	}
	if r.RequestURI == "*" {
		// OPTIONS *: about this server, not a resource of the backend.
		h := w.Header()
		h["Strict-Transport-Security"] = valueHSTS
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	if isGRPC(r.Header) && !ex.route.SpeaksHTTP2() {
		f.s.log.Warn("l7: gRPC request on a route that speaks HTTP/1.1 to its backend; set backend_protocol = \"h2c\" (or \"auto\" with backend_tls)",
			"listener", f.ls.Name, "host", ex.route.Hostname, "backend_protocol", ex.route.BackendProtocol, "client", r.RemoteAddr)
		w.Header()["Strict-Transport-Security"] = valueHSTS
		ex.code = http.StatusBadGateway
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	if hasToken(r.Header["Upgrade"], "h2c") {
		// h2c is HTTP/2 over cleartext (RFC 7540 §3.2) and has no place on
		// a TLS connection; passed on, a backend that honors it would give
		// the client a raw HTTP/2 tunnel past the proxy. Served as the
		// plain request it also is.
		r.Header.Del("Upgrade")
		r.Header.Del("Http2-Settings")
	}
	if r.Body != nil && r.Body != http.NoBody {
		ex.body = &clientBody{src: r.Body}
	}
	ex.forward()
}

// isGRPC reports whether a request is gRPC (which needs HTTP/2 to the
// backend), not gRPC-Web.
func isGRPC(h http.Header) bool {
	ct := h.Get("Content-Type")
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+")
}

// hasToken reports whether a comma-separated header field holds token
// (case-insensitive).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// clientBody is the client's request body as the backend transport
// reads it. It remembers a failure to read it from the client, so a
// malformed body is told from a backend failure, and its Close does not
// close the client's body: the transport closes the body it sends when
// it fails to connect, and closing the client's body then could hang on
// a client that has not sent it yet (100-continue). net/http closes the
// client's body itself when the handler returns.
type clientBody struct {
	src    io.ReadCloser
	mu     sync.Mutex
	err    error
	closed bool
}

var errBodyClosed = errors.New("proxy: read of a closed request body")

func (b *clientBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return 0, errBodyClosed
	}
	n, err := b.src.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// Close marks the body closed for the transport; see clientBody.
func (b *clientBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// failed is the error reading the body ended with, if any.
func (b *clientBody) failed() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// normalizeHostHeader removes the trailing dot of a Host header's name
// ("app.example.:443" is "app.example:443"), keeping its case and port:
// the backend sees the name it is configured for.
func normalizeHostHeader(h string) string {
	if host, port, err := net.SplitHostPort(h); err == nil {
		if strings.HasSuffix(host, ".") {
			return net.JoinHostPort(strings.TrimSuffix(host, "."), port)
		}
		return h
	}
	return strings.TrimSuffix(h, ".")
}

// certCache holds each route's certificate and reloads it when the cert
// or key file's modification time changes; a failed reload keeps serving
// the previous certificate.
type certCache struct {
	log *slog.Logger
	mu  sync.Mutex
	m   map[string]*certEntry
}

type certEntry struct {
	certMod, keyMod time.Time
	cfg             *tls.Config
}

func newCertCache(log *slog.Logger) *certCache {
	return &certCache{log: log, m: map[string]*certEntry{}}
}

func (c *certCache) serverConfig(certFile, keyFile string) (*tls.Config, error) {
	key := certFile + "\x00" + keyFile
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	cs, err1 := os.Stat(certFile)
	ks, err2 := os.Stat(keyFile)
	if err := errors.Join(err1, err2); err != nil {
		if e != nil {
			c.log.Warn("l7: certificate files unreadable; serving the loaded one", "cert", certFile, "err", err)
			return e.cfg, nil
		}
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	if e != nil && cs.ModTime().Equal(e.certMod) && ks.ModTime().Equal(e.keyMod) {
		return e.cfg, nil
	}
	cfg, err := tlsutil.ServerConfig(certFile, keyFile)
	if err != nil {
		if e != nil {
			c.log.Warn("l7: certificate reload failed; serving the loaded one", "cert", certFile, "err", err)
			return e.cfg, nil
		}
		return nil, err
	}
	cfg.NextProtos = []string{"h2", "http/1.1"}
	if e != nil {
		c.log.Info("l7: certificate reloaded", "cert", certFile)
	}
	c.m[key] = &certEntry{certMod: cs.ModTime(), keyMod: ks.ModTime(), cfg: cfg}
	return cfg, nil
}

// chanListener is the in-memory net.Listener an L7 http.Server accepts
// from.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) error {
	select {
	case l.ch <- c:
		return nil
	case <-l.closed:
		return errClosedListener
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }
