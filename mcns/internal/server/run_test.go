package server_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/restclient"

	"github.com/miekg/dns"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	mcnsv1 "git.metacircular.net/metacircular/mcns/gen/mcns/v1"
)

// TestRunServesDNSFromTheAPI checks Run's wiring: the seeded zones answer
// over DNS, and a record written through the API is answered at once, over
// UDP and TCP.
func TestRunServesDNSFromTheAPI(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	if err := h.client(t, "").Health(ctx); err != nil {
		t.Fatalf("REST health without a token: %v", err)
	}
	hc, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v %v", hc, err)
	}
	zones, err := h.client(t, gina).ListZones(ctx)
	if err != nil || len(zones) != 2 || zones[0].Name != nodeZone || zones[1].Name != zone {
		t.Fatalf("seeded zones: %+v %v", zones, err)
	}

	resp, err := h.records().CreateRecord(as(ctx, mcq), &mcnsv1.CreateRecordRequest{Zone: "svc.mcp.test",
		Record: &mcnsv1.RecordFields{Name: "mcq", Type: "A", Value: "192.0.2.44"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRecord().GetName() != "mcq."+zone || resp.GetRecord().GetTtl() != 300 {
		t.Errorf("created %+v", resp.GetRecord())
	}
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("mcq."+zone, dns.TypeA)
		in, _, err := c.ExchangeContext(ctx, m, h.dns)
		if err != nil {
			t.Fatalf("%s query: %v", network, err)
		}
		if len(in.Answer) != 1 {
			t.Fatalf("%s answer: %v", network, in)
		}
		a, isA := in.Answer[0].(*dns.A)
		if !isA || !a.A.Equal(net.IPv4(192, 0, 2, 44)) || !in.Authoritative {
			t.Errorf("%s answer: %v", network, in)
		}
		m.SetQuestion(zone, dns.TypeSOA)
		if in, _, err = c.ExchangeContext(ctx, m, h.dns); err != nil || len(in.Answer) != 1 {
			t.Fatalf("%s SOA: %v %v", network, in, err)
		}
		if soa, isSOA := in.Answer[0].(*dns.SOA); !isSOA || soa.Ns != "mcns.svc.mcp.test." || soa.Mbox != "hostmaster.mcp.test." || soa.Serial != h.serial(t, zone) {
			t.Errorf("%s SOA: %v", network, in.Answer[0])
		}
	}
	if _, err := h.client(t, "").ListZones(ctx); restclient.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("API without a token: %v", err)
	}
}
