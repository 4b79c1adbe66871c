package dnsserver

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"git.metacircular.net/metacircular/mcns/internal/dnstest"

	"github.com/miekg/dns"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/rr"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// openStore opens a fresh store in a temporary directory.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "mcns.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// addZone creates a zone with the store's defaults and the given TTL and
// negative TTL (minimum).
func addZone(t testing.TB, st *store.Store, name string, ttl, minimum uint32) dnsdata.Zone {
	t.Helper()
	z := dnsdata.Zone{Name: name, TTL: ttl, Minimum: minimum}
	if err := rr.ValidateZone(&z); err != nil {
		t.Fatal(err)
	}
	z, err := st.CreateZone(context.Background(), z)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// addRecord validates and stores one record.
func addRecord(t testing.TB, st *store.Store, zone, name, typ, value string) dnsdata.Record {
	t.Helper()
	r := dnsdata.Record{Name: name, Type: typ, Value: value}
	if err := rr.Validate(zone, 300, &r); err != nil {
		t.Fatalf("%s %s %s: %v", name, typ, value, err)
	}
	r, err := st.CreateRecord(context.Background(), r)
	if err != nil {
		t.Fatalf("%s %s %s: %v", name, typ, value, err)
	}
	return r
}

// bigTXTCount TXT records at big.example.test make an answer larger than
// any UDP limit the server uses.
const bigTXTCount = 40

// seed fills st with the zones every test uses: example.test (all record
// types, CNAME chains and loops, wildcards, an empty non-terminal, a
// delegation), other.test (a CNAME target in another served zone) and a
// reverse zone.
func seed(t testing.TB, st *store.Store) {
	t.Helper()
	addZone(t, st, "example.test.", 300, 60)
	addZone(t, st, "other.test.", 300, 300)
	addZone(t, st, "2.0.192.in-addr.arpa.", 300, 300)
	for _, r := range [][3]string{
		{"@", "NS", "ns1.example.test."},
		{"@", "MX", "10 mail.example.test."},
		{"ns1", "A", "192.0.2.53"},
		{"mail", "A", "192.0.2.25"},
		{"www", "A", "192.0.2.1"},
		{"www", "A", "192.0.2.2"},
		{"www", "AAAA", "2001:db8::1"},
		{"alias", "CNAME", "www.example.test."},
		{"chain1", "CNAME", "chain2.example.test."},
		{"chain2", "CNAME", "alias.example.test."},
		{"loop1", "CNAME", "loop2.example.test."},
		{"loop2", "CNAME", "loop1.example.test."},
		{"dangling", "CNAME", "nowhere.example.test."},
		{"cross", "CNAME", "host.other.test."},
		{"out", "CNAME", "example.org."},
		{"txt", "TXT", "hello world"},
		{"_sip._tcp", "SRV", "10 5 5060 sip.example.test."},
		{"*.wild", "A", "192.0.2.99"},
		{"host.wild", "A", "192.0.2.100"},
		{"x.y", "A", "192.0.2.50"},
		{"sub", "NS", "ns.sub.example.test."},
		{"ns.sub", "A", "192.0.2.77"},
	} {
		addRecord(t, st, "example.test.", r[0], r[1], r[2])
	}
	for i := range bigTXTCount {
		addRecord(t, st, "example.test.", "big", "TXT", fmt.Sprintf("record %02d of a set too large for one UDP answer", i))
	}
	addRecord(t, st, "other.test.", "host", "A", "198.51.100.7")
	addRecord(t, st, "2.0.192.in-addr.arpa.", "1", "PTR", "www.example.test.")
}

// newServer builds a Server over st with cfg (validated here).
func newServer(t testing.TB, st *store.Store, cfg Config) *Server {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(st, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve runs s on a loopback port until the test ends and returns the
// address.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	udp, tcp, addr := dnstest.ListenPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, udp, tcp) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr
}

// upstream is a resolver for forwarding tests: it answers example.org A,
// nx.example.org with NXDOMAIN and big.example.org TXT truncated over UDP,
// and counts what it is asked.
type upstream struct {
	addr              string
	queries, tcpCount atomic.Int32
}

func startUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{}
	udp, tcp, addr := dnstest.ListenPair(t)
	u.addr = addr
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		u.queries.Add(1)
		_, overTCP := w.RemoteAddr().(*net.TCPAddr)
		if overTCP {
			u.tcpCount.Add(1)
		}
		m := new(dns.Msg)
		m.SetReply(req)
		m.RecursionAvailable = true
		q := req.Question[0]
		soa := &dns.SOA{Hdr: dns.RR_Header{Name: "example.org.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 900},
			Ns: "ns.example.org.", Mbox: "h.example.org.", Serial: 1, Refresh: 1, Retry: 1, Expire: 1, Minttl: 120}
		switch {
		case strings.EqualFold(q.Name, "example.org.") && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
				A: net.ParseIP("203.0.113.10")})
		case strings.EqualFold(q.Name, "big.example.org.") && q.Qtype == dns.TypeTXT:
			if !overTCP {
				m.Truncated = true
				break
			}
			for i := range 3 {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
					Txt: []string{fmt.Sprintf("over tcp %d", i)}})
			}
		case strings.EqualFold(q.Name, "example.org."):
			m.Ns = append(m.Ns, soa)
		default:
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, soa)
		}
		_ = w.WriteMsg(m)
	})
	servers := []*dns.Server{{PacketConn: udp, Handler: h}, {Listener: tcp, Handler: h}}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return u
}

// blackhole is a UDP socket that never answers: an upstream that is down
// without saying so, so each try at it costs the whole timeout.
func blackhole(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.LocalAddr().String()
}

// closedPort is a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
