package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/health"
	"git.metacircular.net/metacircular/mcdsl/metrics"
	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
)

// DefaultShutdownTimeout bounds the graceful drain.
const DefaultShutdownTimeout = 10 * time.Second

// MethodMaps classify every full method name ("/pkg.Service/Method").
type MethodMaps struct {
	// Public methods need no token.
	Public map[string]bool
	// AuthRequired methods need a valid MCIAS token.
	AuthRequired map[string]bool
	// AdminRequired methods need a valid token with the admin role.
	AdminRequired map[string]bool
	// SealRequired methods answer Unavailable while the service is sealed.
	// Each must also be in one of the access maps.
	SealRequired map[string]bool
}

// level is a method's access requirement.
type level int

const (
	levelDenied level = iota
	levelPublic
	levelAuth
	levelAdmin
)

// Options configures a Server.
type Options struct {
	// Addr is the listen address.
	Addr string
	// Socket, instead of Addr, serves on a Unix socket at this path, with
	// neither TLS nor tokens: the socket's file permissions (SocketMode)
	// decide who may connect, so every method must be Public. For admin
	// sockets such as mc-proxy's.
	Socket string
	// SocketMode is the socket file's permission (default
	// DefaultSocketMode).
	SocketMode fs.FileMode
	// TLSCert (full chain) and TLSKey are required.
	TLSCert, TLSKey string
	// Service is the name the health service answers for.
	Service string
	// Maps classify the methods.
	Maps MethodMaps
	// Validator checks tokens; required when any method needs auth.
	Validator auth.Validator
	// Sealed reports whether seal-required methods must be refused.
	Sealed func() bool
	// Health is the health check (nil: always serving).
	Health health.Checker
	// ShutdownTimeout bounds the drain (default DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// Logger receives one line per RPC. Nil discards.
	Logger *slog.Logger
	// Metrics, when set, counts and times every RPC.
	Metrics *metrics.Registry
	// ProxyTrusted are the peers whose PROXY headers give the client's
	// address (mcdsl/proxyproto); ProxyHeaderTimeout bounds reading one.
	ProxyTrusted       []netip.Prefix
	ProxyHeaderTimeout time.Duration
}

// FromConfig fills the address, TLS and PROXY fields from the [server]
// section (proxy_protocol_from was checked by config.Load).
func FromConfig(s config.Server, opts Options) Options {
	opts.Addr, opts.TLSCert, opts.TLSKey = s.GRPCAddr, s.TLSCert, s.TLSKey
	if opts.ProxyTrusted == nil {
		opts.ProxyTrusted, _ = proxyproto.ParseTrusted(s.ProxyProtocolFrom)
		opts.ProxyHeaderTimeout = s.ProxyHeaderTimeout.Duration
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = s.ShutdownTimeout.Duration
	}
	return opts
}

// Server is a gRPC server with the platform's interceptors.
type Server struct {
	opts    Options
	grpc    *grpc.Server
	tls     bool
	levels  map[string]level
	sealed  map[string]bool
	logger  *slog.Logger
	healthS *health.GRPC
	local   map[string]localMethod
}

// New validates the maps, loads TLS and builds the server. Register the
// service implementations on the server (it is a grpc.ServiceRegistrar)
// before serving. TLS material is needed to serve on the network (and
// required when Options.Addr is set); without it the server still answers
// in process through Local, which is how the REST gateway reaches it.
func New(opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	levels, err := buildLevels(opts.Maps)
	if err != nil {
		return nil, fmt.Errorf("grpc server: %w", err)
	}
	needsAuth := false
	for _, l := range levels {
		if l == levelAuth || l == levelAdmin {
			needsAuth = true
		}
	}
	if needsAuth && opts.Validator == nil {
		return nil, errors.New("grpc server: a token validator is required when methods need auth")
	}
	if len(opts.Maps.SealRequired) > 0 && opts.Sealed == nil {
		return nil, errors.New("grpc server: seal-required methods need a Sealed function")
	}
	s := &Server{opts: opts, levels: levels, sealed: opts.Maps.SealRequired, logger: logger, local: map[string]localMethod{}}
	sopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.stream),
	}
	switch {
	case opts.TLSCert != "" && opts.TLSKey != "":
		tlsCfg, err := tlsutil.ServerConfig(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("grpc server: %w", err)
		}
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(tlsCfg)))
		s.tls = true
	case opts.Socket != "":
		if opts.SocketMode == 0 {
			opts.SocketMode = DefaultSocketMode
		}
		s.opts.SocketMode = opts.SocketMode
		for name, l := range levels {
			if l != levelPublic {
				return nil, fmt.Errorf("grpc server: %s needs a token, which a Unix socket server cannot check; socket methods are public", name)
			}
		}
	case opts.Addr != "":
		return nil, errors.New("grpc server: tls_cert and tls_key are required to serve gRPC on " + opts.Addr)
	}
	s.grpc = grpc.NewServer(sopts...)
	s.healthS = health.NewGRPC(opts.Service, opts.Health)
	healthpb.RegisterHealthServer(s, s.healthS)
	return s, nil
}

// healthMethods are public on every server.
var healthMethods = []string{
	healthpb.Health_Check_FullMethodName,
	healthpb.Health_Watch_FullMethodName,
	healthpb.Health_List_FullMethodName,
}

func buildLevels(m MethodMaps) (map[string]level, error) {
	levels := map[string]level{}
	for _, name := range healthMethods {
		levels[name] = levelPublic
	}
	add := func(methods map[string]bool, l level, label string) error {
		for name, on := range methods {
			if !on {
				continue
			}
			if !strings.HasPrefix(name, "/") || strings.Count(name, "/") != 2 {
				return fmt.Errorf("%s map: %q is not a full method name like /pkg.Service/Method", label, name)
			}
			if prev, ok := levels[name]; ok && prev != l {
				return fmt.Errorf("method %s is in more than one access map", name)
			}
			levels[name] = l
		}
		return nil
	}
	if err := add(m.Public, levelPublic, "public"); err != nil {
		return nil, err
	}
	if err := add(m.AuthRequired, levelAuth, "auth-required"); err != nil {
		return nil, err
	}
	if err := add(m.AdminRequired, levelAdmin, "admin-required"); err != nil {
		return nil, err
	}
	var orphans []string
	for name, on := range m.SealRequired {
		if _, ok := levels[name]; on && !ok {
			orphans = append(orphans, name)
		}
	}
	if len(orphans) > 0 {
		sort.Strings(orphans)
		return nil, fmt.Errorf("seal-required methods not in any access map: %s", strings.Join(orphans, ", "))
	}
	return levels, nil
}

// RegisterService registers a service implementation, for the network and
// for Local. It makes Server a grpc.ServiceRegistrar, so generated
// Register<Service>Server functions take it directly.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		s.local["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{srv: impl, handler: m.Handler}
	}
}

// GetServiceInfo lists the registered services (grpc.ServiceInfoProvider).
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.grpc.GetServiceInfo() }

// Unregistered lists registered methods that are in no access map; services
// assert in their tests that it is empty.
func (s *Server) Unregistered() []string {
	var out []string
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			name := "/" + svc + "/" + m.Name
			if _, ok := s.levels[name]; !ok {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Addr is the configured listen address or socket path (empty: in process
// only).
func (s *Server) Addr() string {
	if s.opts.Socket != "" {
		return s.opts.Socket
	}
	return s.opts.Addr
}

// Listen binds Options.Addr (or the Unix socket).
func (s *Server) Listen(ctx context.Context) (net.Listener, error) {
	if s.opts.Socket != "" {
		return listenUnix(s.opts.Socket, s.opts.SocketMode)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("grpc server: %w", err)
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

// Serve serves on ln until ctx is cancelled, then drains in-flight RPCs for
// up to the shutdown timeout and stops the rest.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.tls && s.opts.Socket == "" {
		_ = ln.Close()
		return errors.New("grpc server: no tls_cert and tls_key to serve on the network with")
	}
	if len(s.opts.ProxyTrusted) > 0 {
		ln = &proxyproto.Listener{Listener: ln, Trusted: s.opts.ProxyTrusted, HeaderTimeout: s.opts.ProxyHeaderTimeout}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(ln) }()
	s.logger.Info("grpc server listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("grpc server: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	var err error
	select {
	case <-stopped:
	case <-time.After(s.opts.ShutdownTimeout):
		s.grpc.Stop()
		<-stopped
		err = fmt.Errorf("grpc server shutdown: drain exceeded %s", s.opts.ShutdownTimeout)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, grpc.ErrServerStopped) {
		return fmt.Errorf("grpc server: %w", serr)
	}
	return err
}

// authorize applies the maps to one call and returns the context the
// handler should see.
func (s *Server) authorize(ctx context.Context, method string) (context.Context, error) {
	l, ok := s.levels[method]
	if !ok || l == levelDenied {
		return nil, status.Errorf(codes.PermissionDenied, "method %s is not in any access map", method)
	}
	if s.sealed[method] && s.opts.Sealed() {
		return nil, status.Error(codes.Unavailable, "service is sealed")
	}
	if l == levelPublic {
		return ctx, nil
	}
	tok, ok := auth.TokenFromGRPC(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authentication required")
	}
	id, err := s.opts.Validator.ValidateToken(ctx, tok)
	if err != nil {
		if errors.Is(err, auth.ErrUnavailable) {
			return nil, status.Error(codes.Unavailable, auth.ErrUnavailable.Error())
		}
		return nil, status.Error(codes.Unauthenticated, auth.ErrInvalidToken.Error())
	}
	if l == levelAdmin && !id.IsAdmin() {
		return nil, status.Error(codes.PermissionDenied, "admin role required")
	}
	return auth.WithIdentity(ctx, id), nil
}

// begin starts the bookkeeping of one call; end finishes it, turning a
// domain error into its gRPC status (mcdsl/apierr) and logging the call.
func (s *Server) begin(method string) (*metrics.RPC, time.Time) {
	if s.opts.Metrics == nil {
		return nil, time.Now()
	}
	m := s.opts.Metrics.RPC(method)
	return m, m.Start()
}

func (s *Server) end(ctx context.Context, method string, m *metrics.RPC, start time.Time, err error) error {
	err = apierr.GRPC(s.logger, err)
	code := status.Code(err)
	if m != nil {
		m.Done(start, code)
	}
	user := ""
	if id, ok := auth.IdentityFrom(ctx); ok {
		user = id.Username
	}
	s.logger.Info("grpc call", "method", method, "code", code.String(),
		"duration_ms", time.Since(start).Milliseconds(), "user", user)
	return err
}

func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	m, start := s.begin(info.FullMethod)
	actx, err := s.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, s.end(ctx, info.FullMethod, m, start, err)
	}
	resp, err := handler(actx, req)
	if err != nil {
		return nil, s.end(actx, info.FullMethod, m, start, err)
	}
	return resp, s.end(actx, info.FullMethod, m, start, nil)
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	m, start := s.begin(info.FullMethod)
	actx, err := s.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return s.end(ss.Context(), info.FullMethod, m, start, err)
	}
	err = handler(srv, &wrappedStream{ServerStream: ss, ctx: actx})
	return s.end(actx, info.FullMethod, m, start, err)
}
