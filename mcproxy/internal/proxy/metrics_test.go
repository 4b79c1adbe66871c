package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/firewall"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// exposition is what the hand-written exposition (before client_golang)
// announced; dashboards and alerts depend on these names, help texts,
// types and buckets.
var exposition = []string{
	"# HELP mcproxy_open_connections Client connections currently open.",
	"# TYPE mcproxy_open_connections gauge",
	"# HELP mcproxy_connections_total Connections accepted, by listener.",
	"# TYPE mcproxy_connections_total counter",
	"# HELP mcproxy_connection_resets_total Connections reset before routing, by listener and reason (untrusted_proxy, proxy_header, client_hello, unknown_sni, certificate).",
	"# TYPE mcproxy_connection_resets_total counter",
	"# HELP mcproxy_firewall_drops_total Connections reset by the firewall, by reason (ip, cidr, country, rate).",
	"# TYPE mcproxy_firewall_drops_total counter",
	"# HELP mcproxy_l4_bytes_total Bytes relayed on L4 routes, by listener and direction (in: client to backend).",
	"# TYPE mcproxy_l4_bytes_total counter",
	"# HELP mcproxy_route_requests_total L7 requests and L4 connections per route, by outcome (HTTP status, ok, backend_error).",
	"# TYPE mcproxy_route_requests_total counter",
	"# HELP mcproxy_route_duration_seconds L7 request duration and L4 connection lifetime per route.",
	"# TYPE mcproxy_route_duration_seconds histogram",
}

// TestMetrics drives every counted event once — an L7 request, an L4
// relay, an unreachable L4 backend, each reset reason and a firewall
// drop — and checks the series against the exposition mc-proxy has
// always served.
func TestMetrics(t *testing.T) {
	pki := tlstest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()
	env := startProxy(t, Options{
		Listeners: []Listener{
			listener("https"),
			{Name: "edge", AcceptProxyProtocol: true, TrustedProxies: []netipPrefix{mustPrefix("127.0.0.0/8")}},
			{Name: "far", AcceptProxyProtocol: true, TrustedProxies: []netipPrefix{mustPrefix("10.0.0.0/8")}},
		},
		Firewall: firewall.Config{Rules: []route.Rule{{Kind: "ip", Value: "127.0.0.2"}}},
	},
		l7Route(t, pki, "app.test", echoBackend(t, "app")),
		route.Route{Listener: "https", Hostname: "l4.test", Mode: route.L4, Backend: tlsBackend(t, pki, "l4.test", "l4")},
		route.Route{Listener: "https", Hostname: "dead.test", Mode: route.L4, Backend: dead},
		route.Route{Listener: "https", Hostname: "nocert.test", Mode: route.L7, Backend: dead, TLSCert: "/nonexistent.crt", TLSKey: "/nonexistent.key"},
	)
	https := env.addrs["https"]
	if code, _ := get(t, httpClient(pki, https, nil, false), "https://app.test/"); code != 200 {
		t.Fatalf("l7 status %d", code)
	}
	c, err := tlsDial(https, &tls.Config{RootCAs: pki.Pool, ServerName: "l4.test", MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\nHost: l4.test\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(c); !strings.Contains(string(body), "l4 saw sni l4.test") {
		t.Fatalf("l4 answer %q", body)
	}
	_ = c.Close()
	expectReset(t, https, clientHello(t, "dead.test"))
	expectReset(t, https, clientHello(t, "nocert.test"))
	expectReset(t, https, clientHello(t, "unknown.test"))
	expectReset(t, https, []byte("GET / HTTP/1.1\r\n\r\n"))
	expectReset(t, env.addrs["edge"], []byte("NOT A PROXY HEADER\r\n\r\n"))
	expectReset(t, env.addrs["far"], []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"))
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	if fc, err := d.Dial("tcp", https); err == nil {
		_ = fc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = fc.Read(make([]byte, 1))
		_ = fc.Close()
	}

	// The L4 relay records its outcome once both directions have ended,
	// and the server side of a closed connection closes a moment later.
	var scrape string
	deadline := time.Now().Add(5 * time.Second)
	for {
		scrape = env.scrape(t)
		if hasSample(scrape, `mcproxy_route_requests_total{listener="https",host="l4.test",mode="l4",outcome="ok"} 1`) &&
			hasSample(scrape, `mcproxy_firewall_drops_total{reason="ip"} 1`) && hasSample(scrape, "mcproxy_open_connections 0") ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range exposition {
		if !strings.Contains(scrape, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, want := range []string{
		`mcproxy_open_connections 0`,
		`mcproxy_connections_total{listener="https"} 7`,
		`mcproxy_connections_total{listener="edge"} 1`,
		`mcproxy_connections_total{listener="far"} 1`,
		`mcproxy_connection_resets_total{listener="edge",reason="proxy_header"} 1`,
		`mcproxy_connection_resets_total{listener="far",reason="untrusted_proxy"} 1`,
		`mcproxy_connection_resets_total{listener="https",reason="certificate"} 1`,
		`mcproxy_connection_resets_total{listener="https",reason="client_hello"} 1`,
		`mcproxy_connection_resets_total{listener="https",reason="unknown_sni"} 1`,
		`mcproxy_firewall_drops_total{reason="ip"} 1`,
		`mcproxy_firewall_drops_total{reason="rate"} 0`,
		`mcproxy_route_requests_total{listener="https",host="app.test",mode="l7",outcome="200"} 1`,
		`mcproxy_route_requests_total{listener="https",host="dead.test",mode="l4",outcome="backend_error"} 1`,
		`mcproxy_route_requests_total{listener="https",host="l4.test",mode="l4",outcome="ok"} 1`,
		`mcproxy_route_duration_seconds_count{listener="https",host="app.test",mode="l7"} 1`,
		`mcproxy_route_duration_seconds_count{listener="https",host="l4.test",mode="l4"} 1`,
		`mcproxy_route_duration_seconds_count{listener="https",host="dead.test",mode="l4"} 1`,
	} {
		if !hasSample(scrape, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The buckets (how many requests fall in each depends on timing).
	for _, le := range []string{"0.001", "0.005", "0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300", "1800"} {
		if !hasSample(scrape, `mcproxy_route_duration_seconds_bucket{listener="https",host="app.test",mode="l7",le="`+le+`"} `) {
			t.Errorf("no bucket le=%s", le)
		}
	}
	if !hasSample(scrape, `mcproxy_route_duration_seconds_bucket{listener="https",host="app.test",mode="l7",le="+Inf"} 1`) {
		t.Error("no bucket le=+Inf holding the request")
	}
	if n := strings.Count(scrape, `mcproxy_route_duration_seconds_bucket{host="app.test",`); n != 16 {
		t.Errorf("%d buckets; want 15 and +Inf", n)
	}
	for _, name := range []string{"mcproxy_l4_bytes_total{direction=\"in\",listener=\"https\"} ", "mcproxy_l4_bytes_total{direction=\"out\",listener=\"https\"} "} {
		if !strings.Contains(scrape, name) || strings.Contains(scrape, name+"0\n") {
			t.Errorf("no L4 bytes counted for %s", name)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", scrape)
	}
}

// TestMetricsPerServer: a second server on one registry is refused (each
// server needs its own) and the first keeps its series.
func TestMetricsPerServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := Options{Listeners: []Listener{listener("https")}, Metrics: reg}
	a, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close() //nolint:errcheck // test
	if _, err := New(opts, nil); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Fatalf("second server on one registry: %v", err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != len(exposition)/2-2 {
		// Families with no series yet (the route vectors of an empty
		// table) are not gathered.
		var names []string
		for _, f := range fams {
			names = append(names, f.GetName())
		}
		t.Fatalf("families after a failed registration: %v", names)
	}
}
