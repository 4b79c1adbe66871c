package grpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/auth/authtest"
	"git.metacircular.net/metacircular/mcdsl/metrics"
	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

// testService is a hand-written gRPC service so the interceptor is tested
// without a generated stub: each method echoes the caller's username.
const svcName = "test.v1.Test"

func method(name string) string { return "/" + svcName + "/" + name }

type gate struct {
	entered chan struct{}
	release chan struct{}
}

func echo(g *gate) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) {
			switch in.GetValue() {
			case "slow":
				close(g.entered)
				<-g.release
			case "missing":
				return nil, fmt.Errorf("%w: thing x", errMissing)
			case "boom":
				return nil, errors.New("disk on fire at /secret/path")
			case "peer":
				p, ok := peer.FromContext(ctx)
				if !ok {
					return wrapperspb.String("no peer"), nil
				}
				return wrapperspb.String(p.Addr.String()), nil
			case "header":
				if err := grpc.SetHeader(ctx, metadata.Pairs("x-answer", "42")); err != nil {
					return nil, err
				}
			}
			user := "anonymous"
			if id, ok := auth.IdentityFrom(ctx); ok {
				user = id.Username
			}
			return wrapperspb.String(user), nil
		}
		return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method(nameOf(ctx))}, h)
	}
}

var errMissing = apierr.New(apierr.NotFound, "not found")

func nameOf(ctx context.Context) string {
	m, _ := grpc.Method(ctx)
	return m[strings.LastIndex(m, "/")+1:]
}

func desc(g *gate) *grpc.ServiceDesc {
	d := &grpc.ServiceDesc{ServiceName: svcName, HandlerType: (*any)(nil)}
	for _, n := range []string{"Public", "User", "Admin", "Sealed", "Forgotten"} {
		d.Methods = append(d.Methods, grpc.MethodDesc{MethodName: n, Handler: echo(g)})
	}
	d.Streams = []grpc.StreamDesc{{StreamName: "Stream", ServerStreams: true, Handler: func(_ any, stream grpc.ServerStream) error {
		user := "anonymous"
		if id, ok := auth.IdentityFrom(stream.Context()); ok {
			user = id.Username
		}
		return stream.SendMsg(wrapperspb.String(user))
	}}}
	return d
}

type env struct {
	addr   string
	pki    *tlstest.PKI
	mcias  *authtest.Server
	sealed *atomic.Bool
	gate   *gate
	cancel context.CancelFunc
	done   chan error
	srv    *Server
}

func setup(t *testing.T, shutdown time.Duration) *env {
	t.Helper()
	mcias := authtest.New(t)
	mcias.AddUser(authtest.User{Username: "admin", Roles: []string{"admin"}})
	mcias.AddUser(authtest.User{Username: "alice", Roles: []string{"user"}})
	v, err := auth.New(mcias.Config("test"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pki := tlstest.New(t)
	pair := pki.Issue(t, "grpc", "127.0.0.1")
	sealed := &atomic.Bool{}
	srv, err := New(Options{
		TLSCert: pair.CertFile, TLSKey: pair.KeyFile, Service: "test", Metrics: metrics.New(),
		Validator: v, Sealed: sealed.Load, ShutdownTimeout: shutdown,
		Maps: MethodMaps{
			Public:        map[string]bool{method("Public"): true},
			AuthRequired:  map[string]bool{method("User"): true, method("Sealed"): true, method("Stream"): true},
			AdminRequired: map[string]bool{method("Admin"): true},
			SealRequired:  map[string]bool{method("Sealed"): true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	srv.RegisterService(desc(g), struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(cancel)
	return &env{addr: ln.Addr().String(), pki: pki, mcias: mcias, sealed: sealed, gate: g, cancel: cancel, done: done, srv: srv}
}

func (e *env) conn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(e.pki.ClientConfig())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func call(ctx context.Context, c grpc.ClientConnInterface, name, token, arg string, opts ...grpc.CallOption) (string, error) {
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	out := new(wrapperspb.StringValue)
	err := c.Invoke(ctx, method(name), wrapperspb.String(arg), out, opts...)
	return out.GetValue(), err
}

// checkMaps runs the access table through c (a network or local
// connection), including domain errors turned into statuses.
func checkMaps(t *testing.T, e *env, c grpc.ClientConnInterface) {
	t.Helper()
	admin := e.mcias.Token("admin")
	alice := e.mcias.Token("alice")
	ctx := context.Background()
	for _, tc := range []struct {
		method, token string
		sealed        bool
		want          codes.Code
		user          string
	}{
		{"Public", "", false, codes.OK, "anonymous"},
		{"Forgotten", admin, false, codes.PermissionDenied, ""},
		{"User", "", false, codes.Unauthenticated, ""},
		{"User", "not-a-token", false, codes.Unauthenticated, ""},
		{"User", alice, false, codes.OK, "alice"},
		{"Admin", alice, false, codes.PermissionDenied, ""},
		{"Admin", admin, false, codes.OK, "admin"},
		{"Sealed", alice, true, codes.Unavailable, ""},
		{"Sealed", alice, false, codes.OK, "alice"},
	} {
		e.sealed.Store(tc.sealed)
		got, err := call(ctx, c, tc.method, tc.token, "")
		if status.Code(err) != tc.want || (tc.want == codes.OK && got != tc.user) {
			t.Errorf("%s token=%v sealed=%v: got %q %v, want %v %q", tc.method, tc.token != "", tc.sealed, got, err, tc.want, tc.user)
		}
	}
	e.sealed.Store(false)
	_, err := call(ctx, c, "Public", "", "missing")
	if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != "not found: thing x" {
		t.Errorf("domain error became %v", err)
	}
	_, err = call(ctx, c, "Public", "", "boom")
	if s := status.Convert(err); s.Code() != codes.Internal || s.Message() != "internal error" {
		t.Errorf("internal error became %v (its detail must stay in the log)", err)
	}
	var hdr metadata.MD
	if _, err := call(ctx, c, "Public", "", "header", grpc.Header(&hdr)); err != nil || len(hdr.Get("x-answer")) != 1 || hdr.Get("x-answer")[0] != "42" {
		t.Errorf("header set by the handler: %v %v", hdr, err)
	}
}

func TestLocal(t *testing.T) {
	e := setup(t, time.Second)
	c := e.srv.Local()
	checkMaps(t, e, c)
	// The peer is whatever the caller put in the context: the REST gateway
	// puts the HTTP client's address there.
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 4242}
	got, err := call(peer.NewContext(context.Background(), &peer.Peer{Addr: addr}), c, "Public", "", "peer")
	if err != nil || got != addr.String() {
		t.Errorf("peer = %q %v, want %s", got, err, addr)
	}
	if _, err := call(context.Background(), c, "Nope", "", ""); status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := c.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, method("Stream")); status.Code(err) != codes.Unimplemented {
		t.Errorf("local stream: %v", err)
	}
	// Calls through Local are counted like network calls.
	mfs, err := e.srv.opts.Metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var handled float64
	for _, mf := range mfs {
		if mf.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			handled += m.GetCounter().GetValue()
		}
	}
	if handled < 10 {
		t.Errorf("grpc_server_handled_total = %v after a dozen local calls", handled)
	}
}

func TestMethodMaps(t *testing.T) {
	e := setup(t, time.Second)
	c := e.conn(t)
	checkMaps(t, e, c)
	ctx := context.Background()
	alice := e.mcias.Token("alice")
	// Streams go through the same maps.
	sd := &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true}
	for _, tc := range []struct {
		token string
		want  codes.Code
	}{{"", codes.Unauthenticated}, {alice, codes.OK}} {
		sctx := ctx
		if tc.token != "" {
			sctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
		}
		st, err := c.NewStream(sctx, sd, method("Stream"))
		if err != nil {
			t.Fatal(err)
		}
		_ = st.SendMsg(wrapperspb.String(""))
		_ = st.CloseSend()
		out := new(wrapperspb.StringValue)
		err = st.RecvMsg(out)
		if status.Code(err) != tc.want || (tc.want == codes.OK && out.GetValue() != "alice") {
			t.Errorf("stream token=%v: %q %v", tc.token != "", out.GetValue(), err)
		}
	}
	// Health is public.
	h, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{Service: "test"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	if u := e.srv.Unregistered(); len(u) != 1 || u[0] != method("Forgotten") {
		t.Fatalf("Unregistered() = %v", u)
	}
}

func TestRejectsTLS12(t *testing.T) {
	e := setup(t, time.Second)
	_, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: e.pki.Pool, MaxVersion: tls.VersionTLS12, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err == nil {
		t.Fatal("TLS 1.2 client accepted")
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	e := setup(t, 10*time.Second)
	c := e.conn(t)
	res := make(chan error, 1)
	go func() {
		_, err := call(context.Background(), c, "Public", "", "slow")
		res <- err
	}()
	<-e.gate.entered
	e.cancel()
	select {
	case err := <-e.done:
		t.Fatalf("server stopped with an RPC in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(e.gate.release)
	if err := <-res; err != nil {
		t.Fatalf("in-flight RPC failed: %v", err)
	}
	if err := <-e.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestMapValidation(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "grpc", "127.0.0.1")
	base := Options{TLSCert: pair.CertFile, TLSKey: pair.KeyFile, Sealed: func() bool { return false }}
	for name, maps := range map[string]MethodMaps{
		"two maps":        {Public: map[string]bool{"/a.B/C": true}, AdminRequired: map[string]bool{"/a.B/C": true}},
		"seal only":       {SealRequired: map[string]bool{"/a.B/C": true}},
		"bad name":        {Public: map[string]bool{"C": true}},
		"auth no checker": {AuthRequired: map[string]bool{"/a.B/C": true}},
	} {
		o := base
		o.Maps = maps
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o := base
	o.TLSCert = ""
	o.Addr = "127.0.0.1:0"
	if _, err := New(o); err == nil {
		t.Error("missing TLS accepted for a network listener")
	}
	o.Addr = ""
	srv, err := New(o)
	if err != nil {
		t.Fatalf("in-process server without TLS: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(context.Background(), ln); err == nil {
		t.Error("a server without TLS served on the network")
	}
}

// TestProxyProtocol: a trusted peer's PROXY header becomes the handler's
// gRPC peer; a connection without one keeps the real peer.
func TestProxyProtocol(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "grpc", "127.0.0.1")
	srv, err := New(Options{TLSCert: pair.CertFile, TLSKey: pair.KeyFile, Sealed: func() bool { return false },
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Maps:         MethodMaps{Public: map[string]bool{method("Public"): true}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.RegisterService(desc(&gate{}), struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, ln) }()
	dial := func(header []byte) grpc.ClientConnInterface {
		c, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientConfig())),
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "tcp", a)
				if err == nil && header != nil {
					_, err = conn.Write(header)
				}
				return conn, err
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	hdr := proxyproto.AppendV2(nil, netip.MustParseAddrPort("198.51.100.20:7000"), netip.MustParseAddrPort("127.0.0.1:443"))
	if got, err := call(ctx, dial(hdr), "Public", "", "peer"); err != nil || got != "198.51.100.20:7000" {
		t.Errorf("through the proxy: %q %v", got, err)
	}
	if got, err := call(ctx, dial(nil), "Public", "", "peer"); err != nil || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("direct: %q %v", got, err)
	}
}
