package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"git.metacircular.net/metacircular/mcdsl/metrics"
)

func scrape(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return string(b)
}

func TestRPCSeries(t *testing.T) {
	r := metrics.New()
	m := r.RPC("/mcns.v1.RecordService/CreateRecord")
	start := m.Start()
	m.Done(start.Add(-2*time.Millisecond), codes.OK)
	r.RPC("/mcns.v1.RecordService/CreateRecord").Done(r.RPC("/mcns.v1.RecordService/CreateRecord").Start(), codes.NotFound)
	out := scrape(t, r)
	for _, want := range []string{
		`grpc_server_started_total{grpc_method="CreateRecord",grpc_service="mcns.v1.RecordService"} 2`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateRecord",grpc_service="mcns.v1.RecordService"} 1`,
		`grpc_server_handled_total{grpc_code="NotFound",grpc_method="CreateRecord",grpc_service="mcns.v1.RecordService"} 1`,
		`grpc_server_handling_seconds_count{grpc_method="CreateRecord",grpc_service="mcns.v1.RecordService"} 2`,
		`grpc_server_in_flight{grpc_method="CreateRecord",grpc_service="mcns.v1.RecordService"} 0`,
		"go_goroutines", "process_open_fds",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
}

func TestHTTPSeriesAreBounded(t *testing.T) {
	r := metrics.New()
	h := r.Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v1/zones/x" {
			metrics.SetRoute(req.Context(), "/v1/zones/{zone}")
			w.WriteHeader(http.StatusCreated)
			return
		}
		http.NotFound(w, req)
	}))
	for _, p := range []string{"/v1/zones/x", "/random-1", "/random-2", "/random-3"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, p, nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/random-4", nil))
	out := scrape(t, r)
	for _, want := range []string{
		`http_requests_total{code="201",method="POST",route="/v1/zones/{zone}"} 1`,
		`http_requests_total{code="404",method="POST",route="unmatched"} 3`,
		`http_requests_total{code="404",method="OTHER",route="unmatched"} 1`,
		`http_requests_in_flight 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(out, "random") || strings.Contains(out, "BREW") {
		t.Error("a raw path or method became a label value")
	}
}

func BenchmarkRPCObserve(b *testing.B) {
	r := metrics.New()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := r.RPC("/mcias.v1.AuthService/ValidateToken")
			m.Done(m.Start(), codes.OK)
		}
	})
}
