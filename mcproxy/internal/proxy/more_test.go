package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/firewall"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// echoDesc is a hand-written gRPC service: a bidi Echo stream that sets a
// trailer, and a unary Fail that answers trailers-only.
var echoDesc = &grpc.ServiceDesc{
	ServiceName: "test.v1.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Fail", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		return nil, status.Error(codes.NotFound, "no "+in.GetValue())
	}}},
	Streams: []grpc.StreamDesc{{StreamName: "Echo", ServerStreams: true, ClientStreams: true, Handler: func(_ any, stream grpc.ServerStream) error {
		n := 0
		for {
			in := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(in); errors.Is(err, io.EOF) {
				stream.SetTrailer(metadata.Pairs("x-count", strings.Repeat("i", n)))
				return nil
			} else if err != nil {
				return err
			}
			n++
			if err := stream.SendMsg(wrapperspb.String("echo " + in.GetValue())); err != nil {
				return err
			}
		}
	}}},
}

func TestL7GRPC(t *testing.T) {
	pki := tlstest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	gs.RegisterService(echoDesc, nil)
	go gs.Serve(ln) //nolint:errcheck // stopped below
	defer gs.Stop()
	rt := l7Route(t, pki, "grpc.test", ln.Addr().String())
	rt.BackendProtocol = route.H2C
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, rt)

	cc, err := grpc.NewClient(env.addrs["https"], grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientConfig())), grpc.WithAuthority("grpc.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	stream, err := cc.NewStream(ctx, &echoDesc.Streams[0], "/test.v1.Echo/Echo")
	if err != nil {
		t.Fatal(err)
	}
	// Interleaved: each reply must arrive before the next message is sent,
	// which fails if the proxy buffers either direction.
	for _, word := range []string{"a", "b", "c"} {
		if err := stream.SendMsg(wrapperspb.String(word)); err != nil {
			t.Fatal(err)
		}
		out := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(out); err != nil || out.GetValue() != "echo "+word {
			t.Fatalf("recv %q, %v", out.GetValue(), err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := stream.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	if got := stream.Trailer().Get("x-count"); len(got) != 1 || got[0] != "iii" {
		t.Fatalf("trailer %v", got)
	}

	err = cc.Invoke(ctx, "/test.v1.Echo/Fail", wrapperspb.String("thing"), new(wrapperspb.StringValue))
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "no thing" {
		t.Fatalf("trailers-only answer: %v", err)
	}
}

func writeGeoIP(t *testing.T, cidr, country string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Test-Country", IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, n, _ := net.ParseCIDR(cidr)
	if err := tree.Insert(n, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(country)}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFirewallReset(t *testing.T) {
	pki := tlstest.New(t)
	backend := echoBackend(t, "app")
	env := startProxy(t, Options{
		Listeners: []Listener{
			{Name: "https"},
			{Name: "edge", AcceptProxyProtocol: true, TrustedProxies: []netipPrefix{mustPrefix("127.0.0.0/8")}},
		},
		Firewall: firewall.Config{GeoIPPath: writeGeoIP(t, "203.0.113.0/24", "XA"), Rules: []route.Rule{{Kind: "country", Value: "XA"}}},
	}, l7Route(t, pki, "app.test", backend), func() route.Route {
		r := l7Route(t, pki, "app.test", backend)
		r.Listener = "edge"
		return r
	}())

	// Allowed first, then blocked by IP after a rule swap.
	if code, _ := get(t, httpClient(pki, env.addrs["https"], nil, false), "https://app.test/"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if err := env.srv.SetRules([]route.Rule{{Kind: "ip", Value: "127.0.0.1"}, {Kind: "country", Value: "XA"}}); err != nil {
		t.Fatal(err)
	}
	expectReset(t, env.addrs["https"], clientHello(t, "app.test"))

	// A client in a blocked country, known through the PROXY header.
	if err := env.srv.SetRules([]route.Rule{{Kind: "country", Value: "XA"}}); err != nil {
		t.Fatal(err)
	}
	expectReset(t, env.addrs["edge"], append([]byte("PROXY TCP4 203.0.113.9 127.0.0.1 1 443\r\n"), clientHello(t, "app.test")...))
	hdr := proxyproto.AppendV2(nil, mustAddrPort("198.51.100.9:1"), mustAddrPort("127.0.0.1:443"))
	if code, body := get(t, httpClient(pki, env.addrs["edge"], hdr, false), "https://app.test/"); code != 200 || !strings.Contains(body, "xff=198.51.100.9 ") {
		t.Fatalf("%d %q", code, body)
	}

	rec := env.scrape(t)
	if !hasSample(rec, `mcproxy_firewall_drops_total{reason="ip"} 1`) || !hasSample(rec, `mcproxy_firewall_drops_total{reason="country"} 1`) {
		t.Fatalf("metrics:\n%s", rec)
	}
}

func TestFirewallRate(t *testing.T) {
	pki := tlstest.New(t)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}, Firewall: firewall.Config{RatePerSecond: 0.001, Burst: 1}},
		l7Route(t, pki, "app.test", echoBackend(t, "app")))
	if code, _ := get(t, httpClient(pki, env.addrs["https"], nil, false), "https://app.test/"); code != 200 {
		t.Fatalf("status %d", code)
	}
	expectReset(t, env.addrs["https"], clientHello(t, "app.test"))
}

// TestDrain: on shutdown new connections are refused, an open L4 relay
// and a websocket keep working until they finish, and Serve returns once
// they are done.
func TestDrain(t *testing.T) {
	pki := tlstest.New(t)
	l4 := tlsBackend(t, pki, "l4.test", "l4")
	ws := wsEchoBackend(t)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}, ShutdownTimeout: 20 * time.Second},
		route.Route{Listener: "https", Hostname: "l4.test", Mode: route.L4, Backend: l4},
		l7Route(t, pki, "ws.test", ws))
	addr := env.addrs["https"]

	// An L4 TLS connection and a websocket, both open.
	cfg := pki.ClientConfig()
	cfg.ServerName = "l4.test"
	l4c, err := tlsDial(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l4c.Close()
	cfg = pki.ClientConfig()
	cfg.ServerName, cfg.NextProtos = "ws.test", []string{"http/1.1"}
	wsc, err := tlsDial(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer wsc.Close()
	if _, err := wsc.Write([]byte("GET /ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	wsr := bufio.NewReader(wsc)
	resp, err := http.ReadResponse(wsr, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- env.stop() }()
	// New connections are refused once the listener is closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The open connections still work.
	_, _ = wsc.Write([]byte("ping\n"))
	if line, err := wsr.ReadString('\n'); err != nil || line != "ws ping\n" {
		t.Fatalf("websocket during drain: %q %v", line, err)
	}
	_, _ = l4c.Write([]byte("GET / HTTP/1.1\r\nHost: l4.test\r\nConnection: close\r\n\r\n"))
	body, err := io.ReadAll(l4c)
	if err != nil || !strings.HasSuffix(string(body), "l4 saw sni l4.test") {
		t.Fatalf("l4 during drain: %q %v", body, err)
	}
	l4c.Close()
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) with a websocket open", err)
	case <-time.After(100 * time.Millisecond):
	}
	wsc.Close()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the connections closed")
	}
}

func TestDrainTimeout(t *testing.T) {
	pki := tlstest.New(t)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}, ShutdownTimeout: 300 * time.Millisecond},
		route.Route{Listener: "https", Hostname: "l4.test", Mode: route.L4, Backend: tlsBackend(t, pki, "l4.test", "l4")})
	cfg := pki.ClientConfig()
	cfg.ServerName = "l4.test"
	c, err := tlsDial(env.addrs["https"], cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := env.stop(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("drain took %v", time.Since(start))
	}
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after the drain timeout")
	}
	if n := env.srv.Status().OpenConnections; n != 0 {
		t.Fatalf("%d connections still counted", n)
	}
}

// TestFirewallRateIPv6Prefix: clients known through PROXY headers from
// addresses in one IPv6 /64 share one rate-limit bucket; loopback has
// only ::1, so the addresses come in the header.
func TestFirewallRateIPv6Prefix(t *testing.T) {
	pki := tlstest.New(t)
	rt := l7Route(t, pki, "app.test", echoBackend(t, "app"))
	rt.Listener = "edge"
	env := startProxy(t, Options{
		Listeners: []Listener{{Name: "edge", AcceptProxyProtocol: true, TrustedProxies: []netipPrefix{mustPrefix("127.0.0.0/8")}}},
		Firewall:  firewall.Config{RatePerSecond: 0.001, Burst: 1},
	}, rt)
	from := func(client string) []byte {
		return proxyproto.AppendV2(nil, mustAddrPort(client), mustAddrPort("[2001:db8::443]:443"))
	}
	if code, body := get(t, httpClient(pki, env.addrs["edge"], from("[2001:db8:1:2::1]:40000"), false), "https://app.test/"); code != 200 {
		t.Fatalf("first client of the /64: %d %q", code, body)
	}
	// Another address of the same /64: the same client.
	expectReset(t, env.addrs["edge"], append(from("[2001:db8:1:2:ffff:1:2:3]:40001"), clientHello(t, "app.test")...))
	// The next /64 is another client.
	if code, body := get(t, httpClient(pki, env.addrs["edge"], from("[2001:db8:1:3::1]:40002"), false), "https://app.test/"); code != 200 {
		t.Fatalf("client of another /64: %d %q", code, body)
	}
	if scrape := env.scrape(t); !hasSample(scrape, `mcproxy_firewall_drops_total{reason="rate"} 1`) {
		t.Fatalf("metrics:\n%s", scrape)
	}
}
