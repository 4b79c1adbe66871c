package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/testtool"

	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

func l7Route(t testing.TB, pki *tlstest.PKI, host, backend string) route.Route {
	t.Helper()
	pair := pki.Issue(t, host, host)
	return route.Route{Listener: "https", Hostname: host, Mode: route.L7, Backend: backend, TLSCert: pair.CertFile, TLSKey: pair.KeyFile}
}

// TestL7Curl: the protocol spoken to the backend is the route's, whatever
// the client speaks.
func TestL7Curl(t *testing.T) {
	pki := tlstest.New(t)
	backend := echoBackend(t, "app")
	h2c := l7Route(t, pki, "h2c.test", backend)
	h2c.BackendProtocol = route.H2C
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", backend), h2c)
	addr := env.addrs["https"]

	cases := []struct {
		name, host string
		args       []string
		want       string
	}{
		{"http1.1 to http1", "APP.test", []string{"--http1.1"}, "app proto=HTTP/1.1 host=APP.test:"},
		{"http2 to http1", "APP.test", []string{"--http2"}, "app proto=HTTP/1.1 host=APP.test:"},
		{"http1.1 to h2c", "h2c.test", []string{"--http1.1"}, "app proto=HTTP/2.0 host=h2c.test:"},
		{"http2 to h2c", "h2c.test", []string{"--http2"}, "app proto=HTTP/2.0 host=h2c.test:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := curl(t, pki, tc.host, addr, tc.args...)
			if err != nil {
				t.Fatalf("curl: %v: %s", err, out)
			}
			if !strings.HasPrefix(out, tc.want) {
				t.Fatalf("got %q, want prefix %q", out, tc.want)
			}
			for _, want := range []string{"xff=127.0.0.1 ", "xrealip=127.0.0.1 ", "xproto=https ", "path=/hello"} {
				if !strings.Contains(out, want) {
					t.Errorf("%q lacks %q", out, want)
				}
			}
		})
	}

	metrics := env.scrape(t)
	for _, want := range []string{
		`mcproxy_route_requests_total{listener="https",host="app.test",mode="l7",outcome="200"} 2`,
		`mcproxy_route_duration_seconds_count{listener="https",host="app.test",mode="l7"} 2`,
		`mcproxy_connections_total{listener="https"} 4`,
	} {
		if !hasSample(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	st := env.srv.Status()
	if len(st.Listeners) != 1 || st.Listeners[0].Routes != 2 || st.Listeners[0].Addr != addr {
		t.Errorf("status %+v", st)
	}
}

func TestL7BackendDown(t *testing.T) {
	pki := tlstest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", dead))
	code, _ := get(t, httpClient(pki, env.addrs["https"], nil, true), "https://app.test/")
	if code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", code)
	}
}

func TestL7BackendTLS(t *testing.T) {
	pki := tlstest.New(t)
	bpair := pki.Issue(t, "backend.internal", "backend.internal")
	bs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("tls backend " + r.Proto + " " + r.Header.Get("X-Forwarded-For")))
	}))
	bs.TLS = &tls.Config{Certificates: []tls.Certificate{bpair.TLS}}
	bs.EnableHTTP2 = true
	bs.StartTLS()
	defer bs.Close()
	rt := l7Route(t, pki, "app.test", bs.Listener.Addr().String())
	rt.BackendTLS, rt.BackendCA, rt.BackendServerName = true, pki.CAFile, "backend.internal"
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, rt)
	// http1 (the default) offers only http/1.1 to a backend that also
	// speaks h2; auto lets ALPN pick h2. Neither depends on the client.
	for _, tc := range []struct {
		protocol, want string
		clientH2       bool
	}{
		{route.HTTP1, "tls backend HTTP/1.1 127.0.0.1", true},
		{route.HTTP1, "tls backend HTTP/1.1 127.0.0.1", false}, // the fast path (fast.go)
		{route.Auto, "tls backend HTTP/2.0 127.0.0.1", false},
		{route.Auto, "tls backend HTTP/2.0 127.0.0.1", true},
	} {
		rt.BackendProtocol = tc.protocol
		table, _ := route.NewTable([]route.Route{rt})
		env.srv.SetRoutes(table)
		code, body := get(t, httpClient(pki, env.addrs["https"], nil, tc.clientH2), "https://app.test/")
		if code != 200 || body != tc.want {
			t.Fatalf("%s (client h2 %v): %d %q, want %q", tc.protocol, tc.clientH2, code, body, tc.want)
		}
	}

	if env.srv.fastRequests.Load() != 1 {
		t.Fatalf("fast path answered %d requests, want 1", env.srv.fastRequests.Load())
	}

	// A backend certificate from another CA is refused: 502.
	other := tlstest.New(t)
	rt.BackendCA = other.CAFile
	table, _ := route.NewTable([]route.Route{rt})
	env.srv.SetRoutes(table)
	if code, _ := get(t, httpClient(pki, env.addrs["https"], nil, false), "https://app.test/"); code != http.StatusBadGateway {
		t.Fatalf("unverified backend: status %d", code)
	}
}

// tlsBackend is an L4 backend terminating TLS itself.
func tlsBackend(t *testing.T, pki *tlstest.PKI, host, tag string) string {
	t.Helper()
	pair := pki.Issue(t, host, host)
	bs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(tag + " saw sni " + r.TLS.ServerName))
	}))
	bs.TLS = &tls.Config{Certificates: []tls.Certificate{pair.TLS}}
	bs.StartTLS()
	t.Cleanup(bs.Close)
	return bs.Listener.Addr().String()
}

func TestL4CurlAndOpenSSL(t *testing.T) {
	pki := tlstest.New(t)
	backend := tlsBackend(t, pki, "l4.test", "l4")
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}},
		route.Route{Listener: "https", Hostname: "l4.test", Mode: route.L4, Backend: backend})
	addr := env.addrs["https"]

	out, err := curl(t, pki, "l4.test", addr)
	if err != nil || out != "l4 saw sni l4.test" {
		t.Fatalf("curl: %v: %q", err, out)
	}

	bin := testtool.Require(t, "openssl")
	cmd := exec.Command(bin, "s_client", "-connect", addr, "-servername", "l4.test", "-CAfile", pki.CAFile, "-verify_return_error", "-brief")
	cmd.Stdin = strings.NewReader("")
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "Verification: OK") {
		t.Fatalf("openssl l4: %v: %s", err, b)
	}

	// Unknown SNI: reset before any TLS byte comes back.
	cmd = exec.Command(bin, "s_client", "-connect", addr, "-servername", "nope.test", "-CAfile", pki.CAFile, "-brief")
	cmd.Stdin = strings.NewReader("")
	b, err = cmd.CombinedOutput()
	if err == nil || strings.Contains(string(b), "CONNECTION ESTABLISHED") || !strings.Contains(string(b), "errno=104") {
		t.Fatalf("openssl unknown sni: %v: %s", err, b)
	}
	expectReset(t, addr, clientHello(t, "nope.test"))
	expectReset(t, addr, []byte("GET / HTTP/1.1\r\nHost: l4.test\r\n\r\n"))
}

func TestSetRoutes(t *testing.T) {
	pki := tlstest.New(t)
	a, b := echoBackend(t, "A"), echoBackend(t, "B")
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, l7Route(t, pki, "app.test", a))
	addr := env.addrs["https"]
	if _, body := get(t, httpClient(pki, addr, nil, false), "https://app.test/"); !strings.HasPrefix(body, "A ") {
		t.Fatalf("before swap: %q", body)
	}
	rt := l7Route(t, pki, "app.test", b)
	table, _ := route.NewTable([]route.Route{rt})
	env.srv.SetRoutes(table)
	if _, body := get(t, httpClient(pki, addr, nil, false), "https://app.test/"); !strings.HasPrefix(body, "B ") {
		t.Fatalf("after swap: %q", body)
	}
	empty, _ := route.NewTable(nil)
	env.srv.SetRoutes(empty)
	expectReset(t, addr, clientHello(t, "app.test"))
	if n := env.srv.Status().Listeners[0].Routes; n != 0 {
		t.Fatalf("status routes %d", n)
	}
}

// TestChainedProxies: client → edge (accepts PROXY from 127.0.0.1, L4
// with SendProxyProtocol) → origin (accepts PROXY, L7) → backend. The
// client's claimed address survives both hops.
func TestChainedProxies(t *testing.T) {
	pki := tlstest.New(t)
	backend := echoBackend(t, "origin")
	loop := []netipPrefix{mustPrefix("127.0.0.0/8")}
	origin := startProxy(t, Options{Listeners: []Listener{{Name: "https", AcceptProxyProtocol: true, TrustedProxies: loop}}},
		l7Route(t, pki, "app.test", backend))
	edge := startProxy(t, Options{Listeners: []Listener{{Name: "https", AcceptProxyProtocol: true, TrustedProxies: loop}}},
		route.Route{Listener: "https", Hostname: "app.test", Mode: route.L4, Backend: origin.addrs["https"], SendProxyProtocol: true})

	for _, tc := range []struct {
		name   string
		header []byte
		h2     bool
	}{
		{"v1 http1", []byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"), false},
		{"v2 h2", proxyproto.AppendV2(nil, mustAddrPort("[2001:db8::7]:40000"), mustAddrPort("127.0.0.1:443")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := httpClient(pki, edge.addrs["https"], tc.header, tc.h2)
			defer c.CloseIdleConnections()
			code, body := get(t, c, "https://app.test/")
			h, _ := proxyproto.Read(strings.NewReader(string(tc.header)))
			ip := h.Source.Addr().String()
			if code != 200 || !strings.Contains(body, "xff="+ip+" ") || !strings.Contains(body, "xrealip="+ip+" ") {
				t.Fatalf("%d %q, want the client %s", code, body, ip)
			}
		})
	}

	// Without a PROXY header the edge resets; the origin refuses peers it
	// does not trust.
	expectReset(t, edge.addrs["https"], clientHello(t, "app.test"))
	strict := startProxy(t, Options{Listeners: []Listener{{Name: "https", AcceptProxyProtocol: true, TrustedProxies: []netipPrefix{mustPrefix("192.0.2.0/24")}}}},
		l7Route(t, pki, "app.test", backend))
	expectReset(t, strict.addrs["https"], []byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"))
}
