package dnsserver

import (
	"context"
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkReply measures one query through the server's path after
// unpacking (answer and pack), for the answer kinds the zones give.
func BenchmarkReply(b *testing.B) {
	st := openStore(b)
	seed(b, st)
	s := newServer(b, st, Config{})
	for _, bc := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"A", "www.example.test.", dns.TypeA},
		{"CNAME", "alias.example.test.", dns.TypeA},
		{"NXDOMAIN", "nothere.example.test.", dns.TypeA},
		{"wildcard", "x.wild.example.test.", dns.TypeA},
		{"MX with addresses", "example.test.", dns.TypeMX},
		{"referral with glue", "host.sub.example.test.", dns.TypeA},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := query(bc.qname, bc.qtype)
			req.SetEdns0(1232, false)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if s.reply(ctx, req, loopback, true) == nil {
					b.Fatal("no reply")
				}
			}
		})
	}
}

// BenchmarkPacket measures one datagram through the UDP read loop's path
// (packet): for plain queries after the first, parse, answer cache lookup
// and patch. "miss" asks a new name each time (NXDOMAIN, never cached),
// the cost of a random-name flood.
func BenchmarkPacket(b *testing.B) {
	st := openStore(b)
	seed(b, st)
	s := newServer(b, st, Config{})
	for _, bc := range []struct {
		name  string
		qname string
		qtype uint16
		edns  bool
	}{
		{"A", "www.example.test.", dns.TypeA, false},
		{"A 0x20 EDNS", "wWw.ExAmPlE.tEsT.", dns.TypeA, true},
		{"CNAME", "alias.example.test.", dns.TypeA, false},
		{"NXDOMAIN", "nothere.example.test.", dns.TypeA, false},
		{"MX with addresses", "example.test.", dns.TypeMX, true},
		{"TC", "big.example.test.", dns.TypeTXT, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := query(bc.qname, bc.qtype)
			if bc.edns {
				req.SetEdns0(1232, false)
			}
			raw := datagram(b, req)
			out := make([]byte, maxUDPSize)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if reply, _ := s.packet(ctx, raw, loopback, out[:0]); reply == nil {
					b.Fatal("no reply")
				}
			}
		})
	}
	b.Run("miss", func(b *testing.B) {
		out := make([]byte, maxUDPSize)
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			raw := datagram(b, query(fmt.Sprintf("n%d.example.test.", i), dns.TypeA))
			if reply, _ := s.packet(ctx, raw, loopback, out[:0]); reply == nil {
				b.Fatal("no reply")
			}
		}
	})
}
