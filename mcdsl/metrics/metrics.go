package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

// Path is where Handler is mounted.
const Path = "/metrics"

// latencyBuckets cover a fast API call (100 µs) to a slow one (30 s).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Registry holds a service's collectors.
type Registry struct {
	reg *prometheus.Registry

	rpcStarted  *prometheus.CounterVec
	rpcHandled  *prometheus.CounterVec
	rpcLatency  *prometheus.HistogramVec
	rpcInFlight *prometheus.GaugeVec
	rpcs        sync.Map // full method -> *RPC

	httpRequests *prometheus.CounterVec
	httpLatency  *prometheus.HistogramVec
	httpInFlight prometheus.Gauge
	routes       sync.Map // routeKey -> *routeSeries
}

// New returns a registry with the Go runtime and process collectors and
// the platform's RPC and HTTP series.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	r.rpcStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_server_started_total", Help: "RPCs started on the server, by service and method.",
	}, []string{"grpc_service", "grpc_method"})
	r.rpcHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_server_handled_total", Help: "RPCs completed on the server, by service, method and status code.",
	}, []string{"grpc_service", "grpc_method", "grpc_code"})
	r.rpcLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "grpc_server_handling_seconds", Help: "Time to handle an RPC, by service and method.",
		Buckets: latencyBuckets,
	}, []string{"grpc_service", "grpc_method"})
	r.rpcInFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "grpc_server_in_flight", Help: "RPCs being handled now, by service and method.",
	}, []string{"grpc_service", "grpc_method"})
	r.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "HTTP requests served, by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	r.httpLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "Time to serve an HTTP request, by route pattern and method.",
		Buckets: latencyBuckets,
	}, []string{"route", "method"})
	r.httpInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "http_requests_in_flight", Help: "HTTP requests being served now.",
	})
	r.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		r.rpcStarted, r.rpcHandled, r.rpcLatency, r.rpcInFlight,
		r.httpRequests, r.httpLatency, r.httpInFlight,
	)
	return r
}

// Registerer is where a service registers its own collectors.
func (r *Registry) Registerer() prometheus.Registerer { return r.reg }

// Gatherer reads the registry (tests, custom exporters).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the registry in the Prometheus exposition formats. At most
// two scrapes run at once; more wait for a slot rather than pile up work.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 2, Timeout: 10 * time.Second})
}

// RPC is the resolved series of one RPC method.
type RPC struct {
	started  prometheus.Counter
	latency  prometheus.Observer
	inFlight prometheus.Gauge
	service  string
	method   string
	handled  [codes.Unauthenticated + 1]atomic.Pointer[prometheus.Counter]
	parent   *Registry
}

// RPC returns the series of fullMethod ("/pkg.Service/Method"), creating
// them on first use.
func (r *Registry) RPC(fullMethod string) *RPC {
	if v, ok := r.rpcs.Load(fullMethod); ok {
		return v.(*RPC) //nolint:errcheck,forcetypeassert // only *RPC is stored
	}
	svc, method := splitMethod(fullMethod)
	m := &RPC{
		started:  r.rpcStarted.WithLabelValues(svc, method),
		latency:  r.rpcLatency.WithLabelValues(svc, method),
		inFlight: r.rpcInFlight.WithLabelValues(svc, method),
		service:  svc, method: method, parent: r,
	}
	v, _ := r.rpcs.LoadOrStore(fullMethod, m)
	return v.(*RPC) //nolint:errcheck,forcetypeassert // only *RPC is stored
}

func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

// Start counts an RPC as started and in flight; call Done when it ends.
func (m *RPC) Start() time.Time {
	m.started.Inc()
	m.inFlight.Inc()
	return time.Now()
}

// Done records an RPC that started at start and ended with code.
func (m *RPC) Done(start time.Time, code codes.Code) {
	m.inFlight.Dec()
	m.latency.Observe(time.Since(start).Seconds())
	m.handledCounter(code).Inc()
}

func (m *RPC) handledCounter(code codes.Code) prometheus.Counter {
	if int(code) >= len(m.handled) {
		code = codes.Unknown
	}
	if c := m.handled[code].Load(); c != nil {
		return *c
	}
	c := m.parent.rpcHandled.WithLabelValues(m.service, m.method, code.String())
	m.handled[code].Store(&c)
	return c
}

// --- HTTP ---

type routeKey struct {
	route, method string
	code          int
}

type routeSeries struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

type routeHolder struct{ route atomic.Pointer[string] }

type routeCtxKey struct{}

// SetRoute names the route pattern serving the request ctx belongs to
// ("/v1/zones/{zone}"); routers call it once they have matched. Requests
// no router names are counted under "unmatched", never under their raw
// path, so a scan of random URLs cannot grow the series without bound.
func SetRoute(ctx context.Context, pattern string) {
	if h, ok := ctx.Value(routeCtxKey{}).(*routeHolder); ok && pattern != "" {
		h.route.Store(&pattern)
	}
}

// methods bounds the method label.
var methods = map[string]string{
	http.MethodGet: http.MethodGet, http.MethodHead: http.MethodHead, http.MethodPost: http.MethodPost,
	http.MethodPut: http.MethodPut, http.MethodPatch: http.MethodPatch, http.MethodDelete: http.MethodDelete,
	http.MethodOptions: http.MethodOptions,
}

// Middleware counts and times every request of next by route, method and
// status code.
func (r *Registry) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		r.httpInFlight.Inc()
		h := &routeHolder{}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			r.httpInFlight.Dec()
			route := "unmatched"
			if p := h.route.Load(); p != nil {
				route = *p
			}
			method, ok := methods[req.Method]
			if !ok {
				method = "OTHER"
			}
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			s := r.route(routeKey{route: route, method: method, code: code})
			s.requests.Inc()
			s.latency.Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(sw, req.WithContext(context.WithValue(req.Context(), routeCtxKey{}, h)))
	})
}

func (r *Registry) route(k routeKey) *routeSeries {
	if v, ok := r.routes.Load(k); ok {
		return v.(*routeSeries) //nolint:errcheck,forcetypeassert // only *routeSeries is stored
	}
	s := &routeSeries{
		requests: r.httpRequests.WithLabelValues(k.route, k.method, strconv.Itoa(k.code)),
		latency:  r.httpLatency.WithLabelValues(k.route, k.method),
	}
	v, _ := r.routes.LoadOrStore(k, s)
	return v.(*routeSeries) //nolint:errcheck,forcetypeassert // only *routeSeries is stored
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= http.StatusOK {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes through (grpc-gateway streams and SSE need it).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ChiRoutes is chi middleware (use it on the top router) that names each
// request's route for Middleware by the pattern chi matched.
func ChiRoutes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		next.ServeHTTP(w, req)
		if rc := chi.RouteContext(req.Context()); rc != nil {
			SetRoute(req.Context(), rc.RoutePattern())
		}
	})
}
