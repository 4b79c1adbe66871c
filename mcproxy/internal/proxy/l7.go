package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/tlsutil"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// grpcStatusFields are the gRPC status fields a trailers-only response
// carries in its single header block.
var grpcStatusFields = []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"}

// grpcTrailersOnly turns a gRPC trailers-only response (status in the one
// and only header block) into headers followed by trailers. Relayed as is,
// the immediate header flush of a streaming proxy can send that block
// without END_STREAM, and the client then sees a status in the headers and
// a stream that ends without trailers. As headers + trailers the answer is
// equivalent and flush timing no longer matters.
func grpcTrailersOnly(res *http.Response) error {
	if res.ProtoMajor != 2 || res.Header.Get("Grpc-Status") == "" || len(res.Trailer) > 0 {
		return nil
	}
	ct := res.Header.Get("Content-Type")
	if ct != "application/grpc" && !strings.HasPrefix(ct, "application/grpc+") {
		return nil
	}
	res.Trailer = http.Header{}
	for _, k := range grpcStatusFields {
		if v, ok := res.Header[k]; ok {
			res.Trailer[k] = v
			delete(res.Header, k)
		}
	}
	return nil
}

// l7Front is one listener's HTTP server, fed the TLS connections of its
// L7 routes through an in-memory listener.
type l7Front struct {
	s    *Server
	l    *listenerState
	srv  *http.Server
	ln   *chanListener
	done chan struct{}
}

type routeKey struct{}

type requestInfo struct {
	route    route.Route
	metrics  *routeMetrics
	listener string
	http2    bool
}

func (s *Server) newL7Front(l *listenerState) *l7Front {
	f := &l7Front{s: s, l: l, ln: newChanListener(), done: make(chan struct{})}
	rp := &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      s.backend,
		FlushInterval:  -1,
		ModifyResponse: grpcTrailersOnly,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var host, backend string
			if info, ok := r.Context().Value(routeKey{}).(*requestInfo); ok {
				host, backend = info.route.Hostname, info.route.Backend
			}
			level := slog.LevelWarn
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				// The client went away mid-request: not a backend problem.
				level = slog.LevelDebug
			}
			s.log.Log(r.Context(), level, "l7: backend error", "listener", l.Name, "host", host, "backend", backend, "client", r.RemoteAddr, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	f.srv = &http.Server{
		Handler:           f.handler(rp),
		ReadHeaderTimeout: s.opts.HelloTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		Protocols:         protos,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				if rc, ok := tc.NetConn().(*replayConn); ok {
					return context.WithValue(ctx, routeKey{}, &requestInfo{route: rc.route, metrics: rc.metrics, listener: l.Name})
				}
			}
			return ctx
		},
	}
	return f
}

func (f *l7Front) serve() {
	defer close(f.done)
	if err := f.srv.Serve(f.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		f.s.log.Error("l7 server stopped", "listener", f.l.Name, "err", err)
	}
}

// hand passes an accepted connection to the HTTP server, with TLS
// terminated using the route's certificate.
func (f *l7Front) hand(c *trackedConn, rt route.Route, rm *routeMetrics, hello []byte) {
	cfg, err := f.s.certs.serverConfig(rt.TLSCert, rt.TLSKey)
	if err != nil {
		f.s.log.Error("l7: no certificate; reset", "listener", f.l.Name, "host", rt.Hostname, "err", err)
		f.l.m.certificate.Inc()
		reset(c)
		return
	}
	if err := f.ln.push(tls.Server(&replayConn{trackedConn: c, prefix: hello, route: rt, metrics: rm}, cfg)); err != nil {
		reset(c)
	}
}

func (f *l7Front) handler(rp *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, ok := r.Context().Value(routeKey{}).(*requestInfo)
		if !ok {
			http.Error(w, "no route", http.StatusMisdirectedRequest)
			return
		}
		// HTTP/2 coalescing could carry a request for another host on this
		// connection; only the routed host is served.
		if host := hostOnly(r.Host); host != "" && !equalFoldHost(host, info.route.Hostname) {
			http.Error(w, "misdirected request", http.StatusMisdirectedRequest)
			return
		}
		start := time.Now()
		ri := *info
		ri.http2 = r.ProtoMajor == 2
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), routeKey{}, &ri)))
		info.metrics.done(info.metrics.status(sw.code), start)
		f.s.log.Debug("l7 request", "listener", f.l.Name, "host", info.route.Hostname, "method", r.Method, "path", r.URL.Path,
			"proto", r.Proto, "status", sw.code, "client", r.RemoteAddr, "duration", time.Since(start))
	})
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

func equalFoldHost(a, b string) bool {
	return len(a) == len(b) && (a == b || httpLower(a) == b)
}

func httpLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// rewrite points the request at the route's backend and sets the
// forwarding headers. X-Forwarded-For is replaced, not appended to: the
// proxy is the trust boundary and the client address it knows (from the
// peer or a trusted PROXY header) is the only one it vouches for.
func rewrite(pr *httputil.ProxyRequest) {
	info, _ := pr.In.Context().Value(routeKey{}).(*requestInfo) // set by the handler before ServeHTTP
	scheme := "http"
	if info.route.BackendTLS {
		scheme = "https"
	}
	pr.SetURL(&url.URL{Scheme: scheme, Host: info.route.Backend})
	pr.Out.Host = pr.In.Host
	clientIP := hostOnly(pr.In.RemoteAddr)
	pr.Out.Header.Set("X-Forwarded-For", clientIP)
	pr.Out.Header.Set("X-Real-IP", clientIP)
	pr.Out.Header.Set("X-Forwarded-Proto", "https")
	pr.Out.Header.Set("X-Forwarded-Host", pr.In.Host)
}

// statusWriter records the status code; Unwrap keeps Flush, Hijack and
// full-duplex working through http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.code = code
		w.wroteHeader = true
	} else if code == http.StatusSwitchingProtocols {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// backendTransport picks the transport per request: re-encrypted TLS for
// BackendTLS routes, h2c for HTTP/2 requests (so gRPC keeps its framing
// and trailers), HTTP/1.1 otherwise (including websocket upgrades).
type backendTransport struct {
	certs *certCache
	h1    *http.Transport
	h2c   *http.Transport

	mu  sync.Mutex
	tls map[string]*http.Transport
}

// h2cOnly makes a Transport speak HTTP/2 with prior knowledge over
// plain TCP (h2c).
var h2cOnly = func() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}()

func newBackendTransport(certs *certCache) *backendTransport {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &backendTransport{
		certs: certs,
		h1: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		h2c: &http.Transport{
			DialContext:         dialer.DialContext,
			Protocols:           h2cOnly,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		tls: map[string]*http.Transport{},
	}
}

func (b *backendTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	info, _ := r.Context().Value(routeKey{}).(*requestInfo)
	if info == nil {
		return nil, errors.New("proxy: request without a route")
	}
	switch {
	case info.route.BackendTLS:
		t, err := b.tlsTransport(info.route)
		if err != nil {
			return nil, err
		}
		return t.RoundTrip(r)
	case info.http2:
		return b.h2c.RoundTrip(r)
	default:
		return b.h1.RoundTrip(r)
	}
}

func (b *backendTransport) tlsTransport(rt route.Route) (*http.Transport, error) {
	key := rt.BackendCA + "\x00" + rt.BackendServerName + "\x00" + rt.Backend
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.tls[key]; ok {
		return t, nil
	}
	cfg, err := tlsutil.ClientConfig(rt.BackendCA)
	if err != nil {
		return nil, fmt.Errorf("proxy: backend tls for %s: %w", rt.Key(), err)
	}
	cfg.ServerName = rt.BackendServerName
	if cfg.ServerName == "" {
		cfg.ServerName = hostOnly(rt.Backend)
	}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:         dialer.DialContext,
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	b.tls[key] = t
	return t, nil
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
