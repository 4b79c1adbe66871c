package proxy

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// metrics are the server's Prometheus collectors, written in the text
// exposition format (version 0.0.4). They are kept per Server so several
// servers (and tests) never share state.
//
// The module's go.sum does not carry client_golang's dependencies
// (client_model, common, procfs at the versions v1.25 needs) and adding
// them changes go.mod; the handful of series here do not justify that.
type metrics struct {
	connections   *counterVec
	rejects       *counterVec
	firewallDrops *counterVec
	bytes         *counterVec
	requests      *counterVec
	latency       *histogramVec
	open          func() float64
}

func newMetrics() *metrics {
	return &metrics{
		connections: newCounterVec("mcproxy_connections_total",
			"Connections accepted, by listener.", "listener"),
		rejects: newCounterVec("mcproxy_connection_resets_total",
			"Connections reset before routing, by listener and reason (untrusted_proxy, proxy_header, client_hello, unknown_sni, certificate).",
			"listener", "reason"),
		firewallDrops: newCounterVec("mcproxy_firewall_drops_total",
			"Connections reset by the firewall, by reason (ip, cidr, country, rate).", "reason"),
		bytes: newCounterVec("mcproxy_l4_bytes_total",
			"Bytes relayed on L4 routes, by listener and direction (in: client to backend).", "listener", "direction"),
		requests: newCounterVec("mcproxy_route_requests_total",
			"L7 requests and L4 connections per route, by outcome (HTTP status, ok, backend_error).",
			"listener", "host", "mode", "outcome"),
		latency: newHistogramVec("mcproxy_route_duration_seconds",
			"L7 request duration and L4 connection lifetime per route.",
			[]float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800},
			"listener", "host", "mode"),
	}
}

func (m *metrics) observe(listener string, rt route.Route, outcome string, start time.Time) {
	m.requests.WithLabelValues(listener, rt.Hostname, rt.Mode, outcome).Inc()
	m.latency.WithLabelValues(listener, rt.Hostname, rt.Mode).Observe(time.Since(start).Seconds())
}

func (m *metrics) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, "# HELP mcproxy_open_connections Client connections currently open.\n# TYPE mcproxy_open_connections gauge\nmcproxy_open_connections %s\n",
			formatFloat(m.open()))
		m.connections.write(w)
		m.rejects.write(w)
		m.firewallDrops.write(w)
		m.bytes.write(w)
		m.requests.write(w)
		m.latency.write(w)
	})
}

type series struct {
	labels string
	mu     sync.Mutex
	value  float64
	counts []uint64
	sum    float64
	count  uint64
}

type vec struct {
	name, help, typ string
	labels          []string
	mu              sync.Mutex
	series          map[string]*series
}

func (v *vec) get(values []string) *series {
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.series[key]
	if !ok {
		parts := make([]string, len(values))
		for i, val := range values {
			parts[i] = fmt.Sprintf("%s=%q", v.labels[i], val)
		}
		s = &series{labels: strings.Join(parts, ",")}
		v.series[key] = s
	}
	return s
}

func (v *vec) sorted() []*series {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*series, 0, len(v.series))
	for _, s := range v.series {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].labels < out[j].labels })
	return out
}

type counterVec struct{ vec }

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{vec{name: name, help: help, typ: "counter", labels: labels, series: map[string]*series{}}}
}

// counter is one labelled counter series.
type counter struct{ s *series }

func (c *counterVec) WithLabelValues(values ...string) counter { return counter{c.get(values)} }

func (c counter) Inc() { c.Add(1) }

func (c counter) Add(v float64) {
	c.s.mu.Lock()
	c.s.value += v
	c.s.mu.Unlock()
}

func (c *counterVec) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", c.name, c.help, c.name, c.typ)
	for _, s := range c.sorted() {
		s.mu.Lock()
		fmt.Fprintf(w, "%s{%s} %s\n", c.name, s.labels, formatFloat(s.value))
		s.mu.Unlock()
	}
}

type histogramVec struct {
	vec
	buckets []float64
}

func newHistogramVec(name, help string, buckets []float64, labels ...string) *histogramVec {
	return &histogramVec{vec: vec{name: name, help: help, typ: "histogram", labels: labels, series: map[string]*series{}}, buckets: buckets}
}

// histogram is one labelled histogram series.
type histogram struct {
	s       *series
	buckets []float64
}

func (h *histogramVec) WithLabelValues(values ...string) histogram {
	return histogram{h.get(values), h.buckets}
}

func (h histogram) Observe(v float64) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.s.counts == nil {
		h.s.counts = make([]uint64, len(h.buckets))
	}
	for i, b := range h.buckets {
		if v <= b {
			h.s.counts[i]++
		}
	}
	h.s.sum += v
	h.s.count++
}

func (h *histogramVec) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	for _, s := range h.sorted() {
		s.mu.Lock()
		for i, b := range h.buckets {
			var n uint64
			if s.counts != nil {
				n = s.counts[i]
			}
			fmt.Fprintf(w, "%s_bucket{%s,le=%q} %d\n", h.name, s.labels, formatFloat(b), n)
		}
		fmt.Fprintf(w, "%s_bucket{%s,le=\"+Inf\"} %d\n", h.name, s.labels, s.count)
		fmt.Fprintf(w, "%s_sum{%s} %s\n%s_count{%s} %d\n", h.name, s.labels, formatFloat(s.sum), h.name, s.labels, s.count)
		s.mu.Unlock()
	}
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return fmt.Sprint(f)
}
