package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/httpserver"
	"git.metacircular.net/metacircular/mcdsl/proxyproto"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

// proxyAwareBackend is a platform service behind mc-proxy: mcdsl's HTTPS
// server believing PROXY headers from loopback, answering with the client
// address it sees.
func proxyAwareBackend(t *testing.T, pki *tlstest.PKI) string {
	t.Helper()
	pair := pki.Issue(t, "backend.test", "127.0.0.1")
	srv, err := httpserver.New(httpserver.Options{TLSCert: pair.CertFile, TLSKey: pair.KeyFile,
		ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "client=%s", r.RemoteAddr) }))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = srv.Serve(ctx, ln) }()
	return ln.Addr().String()
}

// TestL7SendsProxyProtocol: an L7 route with send_proxy_protocol tells the
// backend each client's own address (here the one a front proxy gave
// mc-proxy in its PROXY header), on backend connections never shared
// between clients, over plain and TLS backends, for h1 and h2 clients; and
// every answer carries HSTS.
func TestL7SendsProxyProtocol(t *testing.T) {
	pki := tlstest.New(t)
	tlsRoute := l7Route(t, pki, "app.test", proxyAwareBackend(t, pki))
	tlsRoute.Listener, tlsRoute.SendProxyProtocol = "edge", true
	tlsRoute.BackendTLS, tlsRoute.BackendCA, tlsRoute.BackendServerName = true, pki.CAFile, "127.0.0.1"
	plainBackend := serveHTTPBehindProxy(t)
	plainRoute := l7Route(t, pki, "plain.test", plainBackend)
	plainRoute.Listener, plainRoute.SendProxyProtocol = "edge", true
	env := startProxy(t, Options{Listeners: []Listener{
		{Name: "edge", AcceptProxyProtocol: true, TrustedProxies: []netipPrefix{mustPrefix("127.0.0.0/8")}},
	}}, tlsRoute, plainRoute)
	for _, host := range []string{"app.test", "plain.test"} {
		for _, h2 := range []bool{false, true} {
			for _, client := range []string{"198.51.100.9:4000", "203.0.113.77:5000"} {
				hdr := proxyproto.AppendV2(nil, mustAddrPort(client), mustAddrPort("127.0.0.1:443"))
				c := httpClient(pki, env.addrs["edge"], hdr, h2)
				for range 2 { // two requests on one client connection
					resp, err := c.Get("https://" + host + "/")
					if err != nil {
						t.Fatalf("%s h2=%v %s: %v", host, h2, client, err)
					}
					body, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if string(body) != "client="+client {
						t.Errorf("%s h2=%v: backend saw %q, want client=%s", host, h2, body, client)
					}
					if resp.Header.Get("Strict-Transport-Security") != httpserver.HSTS {
						t.Errorf("%s: no HSTS on the answer: %v", host, resp.Header)
					}
				}
				c.CloseIdleConnections()
			}
		}
	}
	// The HTTP/1.1 clients' requests took the fast path (fast.go), which
	// keeps a private backend connection per client connection.
	if n := env.srv.fastRequests.Load(); n != 8 {
		t.Errorf("fast path answered %d requests, want 8", n)
	}
}

// serveHTTPBehindProxy is a plain HTTP backend believing PROXY headers from
// loopback.
func serveHTTPBehindProxy(t *testing.T) string {
	t.Helper()
	srv, err := httpserver.New(httpserver.Options{Plain: true, ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "client=%s", r.RemoteAddr) }))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = srv.Serve(ctx, ln) }()
	return ln.Addr().String()
}

// TestHSTSOnEveryAnswer: mc-proxy's own answers (misdirected requests)
// carry HSTS too, and a backend's own policy is passed on unchanged.
func TestHSTSOnEveryAnswer(t *testing.T) {
	pki := tlstest.New(t)
	own := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload")
	}))
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}},
		l7Route(t, pki, "app.test", echoBackend(t, "app")), l7Route(t, pki, "own.test", own))
	c := httpClient(pki, env.addrs["https"], nil, false)
	for url, want := range map[string]string{
		"https://app.test/": httpserver.HSTS,
		"https://own.test/": "max-age=63072000; includeSubDomains; preload",
	} {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Values("Strict-Transport-Security"); len(got) != 1 || got[0] != want {
			t.Errorf("%s: HSTS %q, want %q", url, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "https://app.test/", nil)
	req.Host = "other.test"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get("Strict-Transport-Security") != httpserver.HSTS {
		t.Errorf("refusal: %d %v", resp.StatusCode, resp.Header)
	}
}
