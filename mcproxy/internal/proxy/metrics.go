package proxy

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"git.metacircular.net/metacircular/mcproxy/internal/firewall"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// metrics are the data plane's Prometheus collectors (client_golang),
// registered on the Registerer the server is given, so several servers
// (and tests) never share state. Names, help texts, label names and
// buckets are those of the hand-written exposition they replaced, so
// dashboards and alerts keep working.
//
// The connection path takes no lock: every series a listener can touch is
// resolved once when the server is built (listenerMetrics), and every
// series of a route when its route table is installed (routeMetrics); a
// connection then costs a few atomic adds. Only the first answer of an L7
// route with a given HTTP status resolves that series, once.
type metrics struct {
	connections   *prometheus.CounterVec
	resets        *prometheus.CounterVec
	firewallDrops *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	// drops are the firewall drop counters by reason, resolved in
	// newMetrics and only read afterwards.
	drops map[string]prometheus.Counter
}

// Reasons a connection is reset before routing (the reason label of
// mcproxy_connection_resets_total).
const (
	resetUntrustedProxy = "untrusted_proxy"
	resetProxyHeader    = "proxy_header"
	resetClientHello    = "client_hello"
	resetUnknownSNI     = "unknown_sni"
	resetCertificate    = "certificate"
)

// L4 outcomes (the outcome label of mcproxy_route_requests_total; L7
// routes report the HTTP status).
const (
	outcomeOK           = "ok"
	outcomeBackendError = "backend_error"
)

// routeBuckets span a fast L7 request (1 ms) to a long-lived L4
// connection (30 min).
var routeBuckets = []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}

// newMetrics registers the collectors on reg; open reports the open
// connections for the mcproxy_open_connections gauge.
func newMetrics(reg prometheus.Registerer, open func() float64) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcproxy_connections_total",
			Help: "Connections accepted, by listener.",
		}, []string{"listener"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcproxy_connection_resets_total",
			Help: "Connections reset before routing, by listener and reason (untrusted_proxy, proxy_header, client_hello, unknown_sni, certificate).",
		}, []string{"listener", "reason"}),
		firewallDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcproxy_firewall_drops_total",
			Help: "Connections reset by the firewall, by reason (ip, cidr, country, rate).",
		}, []string{"reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcproxy_l4_bytes_total",
			Help: "Bytes relayed on L4 routes, by listener and direction (in: client to backend).",
		}, []string{"listener", "direction"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcproxy_route_requests_total",
			Help: "L7 requests and L4 connections per route, by outcome (HTTP status, ok, backend_error).",
		}, []string{"listener", "host", "mode", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcproxy_route_duration_seconds",
			Help:    "L7 request duration and L4 connection lifetime per route.",
			Buckets: routeBuckets,
		}, []string{"listener", "host", "mode"}),
	}
	collectors := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mcproxy_open_connections",
			Help: "Client connections currently open.",
		}, open),
		m.connections, m.resets, m.firewallDrops, m.bytes, m.requests, m.latency,
	}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("proxy: register metrics: %w", err)
		}
	}
	m.drops = map[string]prometheus.Counter{}
	for _, reason := range []string{firewall.ReasonIP, firewall.ReasonCIDR, firewall.ReasonCountry, firewall.ReasonRate} {
		m.drops[reason] = m.firewallDrops.WithLabelValues(reason)
	}
	return m, nil
}

// drop is the firewall drop counter of reason.
func (m *metrics) drop(reason string) prometheus.Counter {
	if c, ok := m.drops[reason]; ok {
		return c
	}
	return m.firewallDrops.WithLabelValues(reason)
}

// listenerMetrics are the series of one listener.
type listenerMetrics struct {
	connections prometheus.Counter

	untrustedProxy, proxyHeader, clientHello, unknownSNI, certificate prometheus.Counter

	bytesIn, bytesOut prometheus.Counter
}

func (m *metrics) listener(name string) *listenerMetrics {
	reset := func(reason string) prometheus.Counter { return m.resets.WithLabelValues(name, reason) }
	return &listenerMetrics{
		connections:    m.connections.WithLabelValues(name),
		untrustedProxy: reset(resetUntrustedProxy),
		proxyHeader:    reset(resetProxyHeader),
		clientHello:    reset(resetClientHello),
		unknownSNI:     reset(resetUnknownSNI),
		certificate:    reset(resetCertificate),
		bytesIn:        m.bytes.WithLabelValues(name, "in"),
		bytesOut:       m.bytes.WithLabelValues(name, "out"),
	}
}

// routeMetrics are the series of one route.
type routeMetrics struct {
	requests *prometheus.CounterVec
	labels   routeID
	latency  prometheus.Observer
	// ok and backendError are the L4 outcomes (nil on L7 routes).
	ok, backendError prometheus.Counter
	// statuses caches the counter of each HTTP status (100-599) an L7
	// route has answered with: an atomic load per request, no lock, no
	// allocation.
	statuses [500]atomic.Pointer[statusCounter]
}

// statusCounter is the counter of one HTTP status of a route.
type statusCounter struct{ c prometheus.Counter }

// routeID is what the route series are labelled with.
type routeID struct{ listener, host, mode string }

func idOf(r route.Route) routeID { return routeID{r.Listener, r.Hostname, r.Mode} }

func (m *metrics) route(r route.Route) *routeMetrics {
	id := idOf(r)
	rm := &routeMetrics{
		requests: m.requests, labels: id,
		latency: m.latency.WithLabelValues(id.listener, id.host, id.mode),
	}
	if r.Mode == route.L4 {
		rm.ok = m.requests.WithLabelValues(id.listener, id.host, id.mode, outcomeOK)
		rm.backendError = m.requests.WithLabelValues(id.listener, id.host, id.mode, outcomeBackendError)
	}
	return rm
}

// done records one L4 connection or L7 request that started at start.
func (rm *routeMetrics) done(outcome prometheus.Counter, start time.Time) {
	outcome.Inc()
	rm.latency.Observe(time.Since(start).Seconds())
}

// status is the counter of an L7 answer with HTTP status code.
func (rm *routeMetrics) status(code int) prometheus.Counter {
	i := code - 100
	if i < 0 || i >= len(rm.statuses) {
		return rm.requests.WithLabelValues(rm.labels.listener, rm.labels.host, rm.labels.mode, strconv.Itoa(code))
	}
	if sc := rm.statuses[i].Load(); sc != nil {
		return sc.c
	}
	// Two first answers racing resolve the same series: WithLabelValues
	// returns one counter per label set.
	sc := &statusCounter{rm.requests.WithLabelValues(rm.labels.listener, rm.labels.host, rm.labels.mode, strconv.Itoa(code))}
	rm.statuses[i].Store(sc)
	return sc.c
}

// routing is one route table with the series of its routes; the server
// swaps it whole, so a connection finds a route and its series together.
type routing struct {
	table   *route.Table
	metrics map[routeID]*routeMetrics
}

// newRouting resolves the series of t's routes, reusing those of prev for
// routes that did not change their labels.
func (m *metrics) newRouting(t *route.Table, prev *routing) *routing {
	rs := t.Routes()
	out := &routing{table: t, metrics: make(map[routeID]*routeMetrics, len(rs))}
	for _, r := range rs {
		id := idOf(r)
		if prev != nil {
			if rm, ok := prev.metrics[id]; ok {
				out.metrics[id] = rm
				continue
			}
		}
		out.metrics[id] = m.route(r)
	}
	return out
}

// lookup finds the route for an SNI name on a listener and its series.
func (r *routing) lookup(listener, sni string) (route.Route, *routeMetrics, bool) {
	rt, ok := r.table.Lookup(listener, sni)
	if !ok {
		return route.Route{}, nil, false
	}
	return rt, r.metrics[idOf(rt)], true
}
