package httpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
)

// Platform timeouts.
const (
	ReadTimeout            = 30 * time.Second
	WriteTimeout           = 30 * time.Second
	IdleTimeout            = 120 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// Options configures a Server.
type Options struct {
	// Addr is the listen address, e.g. "127.0.0.1:8443" or ":8443".
	Addr string
	// TLSCert (full chain) and TLSKey are required unless Plain is set.
	TLSCert, TLSKey string
	// Plain serves HTTP without TLS; only for services behind an L7 proxy.
	Plain bool
	// ShutdownTimeout bounds the drain (default DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// Logger receives one line per request. Nil discards.
	Logger *slog.Logger
	// ProxyTrusted are the peers whose PROXY headers give the client's
	// address (mcdsl/proxyproto); ProxyHeaderTimeout bounds reading one.
	ProxyTrusted       []netip.Prefix
	ProxyHeaderTimeout time.Duration
}

// FromConfig turns the standard [server] section into Options
// (proxy_protocol_from was checked by config.Load).
func FromConfig(s config.Server, logger *slog.Logger) Options {
	trusted, _ := proxyproto.ParseTrusted(s.ProxyProtocolFrom)
	return Options{
		Addr: s.ListenAddr, TLSCert: s.TLSCert, TLSKey: s.TLSKey, Plain: s.PlainHTTP,
		ShutdownTimeout: s.ShutdownTimeout.Duration, Logger: logger,
		ProxyTrusted: trusted, ProxyHeaderTimeout: s.ProxyHeaderTimeout.Duration,
	}
}

// Server is an HTTP server with the platform defaults.
type Server struct {
	opts   Options
	srv    *http.Server
	tlsCfg *tls.Config
	logger *slog.Logger
}

// New prepares a server for handler; TLS material is loaded now so a bad
// certificate stops the service at start, not at the first request.
func New(opts Options, handler http.Handler) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	h := logRequests(logger, handler)
	if !opts.Plain {
		h = strictTransport(h)
	}
	srv := &http.Server{
		Handler:           h,
		ReadTimeout:       ReadTimeout,
		ReadHeaderTimeout: ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	var tlsCfg *tls.Config
	if !opts.Plain {
		if opts.TLSCert == "" || opts.TLSKey == "" {
			return nil, errors.New("http server: tls_cert and tls_key are required (or set plain_http for a service behind an L7 proxy)")
		}
		cfg, err := tlsutil.ServerConfig(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("http server: %w", err)
		}
		cfg.NextProtos = []string{"h2", "http/1.1"}
		srv.TLSConfig = cfg
		tlsCfg = cfg.Clone()
	}
	return &Server{opts: opts, srv: srv, tlsCfg: tlsCfg, logger: logger}, nil
}

// Addr is the configured listen address.
func (s *Server) Addr() string { return s.opts.Addr }

// TLS reports whether the server speaks HTTPS.
func (s *Server) TLS() bool { return s.tlsCfg != nil }

// Listen binds Options.Addr.
func (s *Server) Listen(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("http server: %w", err)
	}
	return ln, nil
}

// ListenAndServe listens on Options.Addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := s.Listen(ctx)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is cancelled, then stops accepting and waits
// up to the shutdown timeout for in-flight requests before closing the rest.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if len(s.opts.ProxyTrusted) > 0 {
		ln = &proxyproto.Listener{Listener: ln, Trusted: s.opts.ProxyTrusted, HeaderTimeout: s.opts.ProxyHeaderTimeout}
	}
	// The listener gets its own copy of the TLS configuration: Serve
	// adjusts s.srv.TLSConfig for HTTP/2 while handshakes may be running.
	if s.tlsCfg != nil {
		ln = tls.NewListener(ln, s.tlsCfg.Clone())
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	s.logger.Info("http server listening", "addr", ln.Addr().String(), "tls", s.tlsCfg != nil)
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		_ = s.srv.Close()
		s.logger.Warn("http server drain timed out; closed remaining connections", "timeout", s.opts.ShutdownTimeout.String())
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("http server shutdown: %w", err)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// HSTS is the Strict-Transport-Security value of every HTTPS answer: a
// year, so a browser that has been here once never tries plain HTTP (or a
// downgrade by someone on its path) again.
const HSTS = "max-age=31536000"

// strictTransport adds HSTS to every answer.
func strictTransport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", HSTS)
		next.ServeHTTP(w, r)
	})
}

// logRequests writes one line per request. Only the path is logged: query
// strings can carry SSO codes and other secrets.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		logger.Info("http request",
			"method", r.Method, "path", r.URL.Path, "status", sw.status, "bytes", sw.bytes,
			"duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr, "proto", r.Proto)
	})
}
