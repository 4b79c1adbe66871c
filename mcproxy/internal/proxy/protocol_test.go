package proxy

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/peertest"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// pythonBackend is an HTTP/1.1-only backend: Python's http.server.
const pythonBackend = `
import http.server

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("python %s host=%s" % (self.request_version, self.headers.get("Host"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
`

// curlStatus runs curl against host on the proxy and returns the body
// and the HTTP status curl saw.
func curlStatus(t *testing.T, pki *tlstest.PKI, host, addr string, args ...string) (string, string) {
	t.Helper()
	out, err := curl(t, pki, host, addr, append([]string{"-w", "\n%{http_code}"}, args...)...)
	if err != nil {
		t.Fatalf("curl %s %v: %v: %s", host, args, err, out)
	}
	i := strings.LastIndexByte(out, '\n')
	return out[:i], out[i+1:]
}

// TestBackendProtocolPeers: HTTP/1.1-only backends (nginx, Python's
// http.server) behind routes of the default backend_protocol answer
// HTTP/2 clients as well as HTTP/1.1 ones; before it was a route
// property, an HTTP/2 client made mc-proxy speak h2c to them and got 502
// ("http2: frame too large, note that the frame header looked like an
// HTTP/1.1 header"). An h2c route to such a backend fails with 502, at
// once.
func TestBackendProtocolPeers(t *testing.T) {
	pki := tlstest.New(t)
	nginx := peertest.Nginx(t, "", `location / { return 200 "nginx $server_protocol host=$http_host"; }`)
	python := peertest.Python(t, pythonBackend)
	h2c := func(r route.Route) route.Route { r.BackendProtocol = route.H2C; return r }
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}},
		l7Route(t, pki, "nginx.test", nginx), l7Route(t, pki, "python.test", python),
		h2c(l7Route(t, pki, "nginx-h2c.test", nginx)), h2c(l7Route(t, pki, "python-h2c.test", python)))
	addr := env.addrs["https"]
	_, port, _ := net.SplitHostPort(addr)

	for _, client := range []string{"--http1.1", "--http2"} {
		for _, tc := range []struct{ host, want string }{
			{"nginx.test", "nginx HTTP/1.1 host=nginx.test:" + port},
			{"python.test", "python HTTP/1.1 host=python.test:" + port},
		} {
			if body, code := curlStatus(t, pki, tc.host, addr, client); code != "200" || body != tc.want {
				t.Errorf("curl %s %s: %s %q, want 200 %q", client, tc.host, code, body, tc.want)
			}
		}
		for _, host := range []string{"nginx-h2c.test", "python-h2c.test"} {
			if body, code := curlStatus(t, pki, host, addr, client); code != "502" {
				t.Errorf("curl %s %s (h2c to an HTTP/1.1 backend): %s %q, want 502", client, host, code, body)
			}
		}
	}
}

// TestGRPCNeedsHTTP2Route: a gRPC call on a route that speaks HTTP/1.1 to
// its backend fails at once with Unavailable and never reaches the
// backend (which could not answer it); the log names the fix.
func TestGRPCNeedsHTTP2Route(t *testing.T) {
	pki := tlstest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	gs := grpc.NewServer()
	gs.RegisterService(echoDesc, nil)
	go gs.Serve(counted) //nolint:errcheck // stopped below
	defer gs.Stop()
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "grpc.test", ln.Addr().String()))

	cc, err := grpc.NewClient(env.addrs["https"], grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientConfig())), grpc.WithAuthority("grpc.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = cc.Invoke(ctx, "/test.v1.Echo/Fail", wrapperspb.String("x"), new(wrapperspb.StringValue))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "502") {
		t.Fatalf("gRPC on an http1 route: %v; want Unavailable (502)", err)
	}
	if n := counted.accepted.Load(); n != 0 {
		t.Fatalf("the backend got %d connections", n)
	}
}

type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}
