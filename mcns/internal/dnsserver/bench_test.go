package dnsserver

import (
	"context"
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
