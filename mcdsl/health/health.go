package health

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Path is the REST health endpoint.
const Path = "/v1/health"

// Checker reports nil when the service can do its work. A nil Checker means
// "up whenever the process answers".
type Checker func(ctx context.Context) error

// checkTimeout bounds one run of the checker.
const checkTimeout = 5 * time.Second

func run(ctx context.Context, check Checker) error {
	if check == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	return check(ctx)
}

// Handler serves GET /v1/health: 200 {"status":"ok"}, or 503
// {"status":"unavailable","error":"..."} when the check fails.
func Handler(check Checker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "method not allowed"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err := run(r.Context(), check); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
	})
}

// GRPC implements the grpc.health.v1.Health service on the same checker.
// It answers for the whole server ("") and for its own service name.
type GRPC struct {
	healthpb.UnimplementedHealthServer
	service string
	check   Checker
	// watchInterval is how often Watch re-runs the check.
	watchInterval time.Duration
}

// NewGRPC returns the gRPC health service for service.
func NewGRPC(service string, check Checker) *GRPC {
	return &GRPC{service: service, check: check, watchInterval: time.Second}
}

func (g *GRPC) status(ctx context.Context) healthpb.HealthCheckResponse_ServingStatus {
	if run(ctx, g.check) != nil {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return healthpb.HealthCheckResponse_SERVING
}

func (g *GRPC) known(name string) bool { return name == "" || name == g.service }

// Check answers SERVING or NOT_SERVING; unknown service names are NotFound.
func (g *GRPC) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if !g.known(req.GetService()) {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: g.status(ctx)}, nil
}

// List reports the status of every service this server answers for.
func (g *GRPC) List(ctx context.Context, _ *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	st := &healthpb.HealthCheckResponse{Status: g.status(ctx)}
	out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{"": st}}
	if g.service != "" {
		out.Statuses[g.service] = st
	}
	return out, nil
}

// Watch sends the current status, then every change, until the client
// goes away. Unknown names get SERVICE_UNKNOWN, as the protocol asks.
func (g *GRPC) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx := stream.Context()
	last := healthpb.HealthCheckResponse_UNKNOWN
	ticker := time.NewTicker(g.watchInterval)
	defer ticker.Stop()
	for {
		cur := healthpb.HealthCheckResponse_SERVICE_UNKNOWN
		if g.known(req.GetService()) {
			cur = g.status(ctx)
		}
		if cur != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: cur}); err != nil {
				return err
			}
			last = cur
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
