package health

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestRESTAndGRPCAgree(t *testing.T) {
	var down atomic.Bool
	check := func(context.Context) error {
		if down.Load() {
			return errors.New("database locked")
		}
		return nil
	}
	ts := httptest.NewServer(Handler(check))
	defer ts.Close()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := NewGRPC("svc", check)
	hs.watchInterval = 20 * time.Millisecond
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx := context.Background()

	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watch.Recv()
	if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch first: %v %v", first, err)
	}

	for _, isDown := range []bool{false, true} {
		down.Store(isDown)
		resp, err := http.Get(ts.URL + Path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		_ = resp.Body.Close()
		g, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		restOK := resp.StatusCode == http.StatusOK && body["status"] == "ok"
		grpcOK := g.GetStatus() == healthpb.HealthCheckResponse_SERVING
		if restOK != !isDown || grpcOK != !isDown {
			t.Fatalf("down=%v: rest %d %v, grpc %v", isDown, resp.StatusCode, body, g.GetStatus())
		}
		if isDown && body["error"] != "database locked" {
			t.Fatalf("error not reported: %v", body)
		}
	}
	next, err := watch.Recv()
	if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch change: %v %v", next, err)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "other"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown service: %v", err)
	}
	list, err := client.List(ctx, &healthpb.HealthListRequest{})
	if err != nil || len(list.GetStatuses()) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	resp, err := http.Post(ts.URL+Path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST health: %d", resp.StatusCode)
	}
}
