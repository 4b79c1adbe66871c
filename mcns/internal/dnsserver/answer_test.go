package dnsserver

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// ask runs req through the same path as the servers and unpacks the reply.
func ask(t *testing.T, s *Server, req *dns.Msg, src netip.Addr, udp bool) *dns.Msg {
	t.Helper()
	buf := exchange(t, s, req, src, udp)
	if buf == nil {
		t.Fatalf("no reply to %v", req.Question)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	if m.Id != req.Id || !m.Response {
		t.Fatalf("reply id %d response %v for query id %d", m.Id, m.Response, req.Id)
	}
	return m
}

// exchange runs req through the path its transport takes in the server
// and returns the reply's bytes: over UDP the datagram path (packet, and
// forwardPacket for a query it hands over, as the read loop's goroutine
// would), over TCP reply. When the answer cache now holds the UDP reply,
// the cached one must be the same bytes.
func exchange(t *testing.T, s *Server, req *dns.Msg, src netip.Addr, udp bool) []byte {
	t.Helper()
	ctx := context.Background()
	if !udp {
		return s.reply(ctx, req, src, false)
	}
	raw, err := req.Pack()
	if err != nil {
		t.Fatal(err)
	}
	buf, forward := s.packet(ctx, raw, src, nil)
	if forward {
		buf = s.forwardPacket(ctx, raw, src)
	}
	if hit, ok := cachedReply(s, raw, src); ok && !bytes.Equal(hit, buf) {
		t.Fatalf("the cached reply to %v differs from the one built:\n%x\n%x", req.Question, hit, buf)
	}
	return buf
}

// cachedReply is the reply the answer cache holds for raw, patched for
// it, if it holds one.
func cachedReply(s *Server, raw []byte, src netip.Addr) ([]byte, bool) {
	var kb [maxKeyLen]byte
	q, plain := parseQuery(raw, kb[:0])
	if !plain {
		return nil, false
	}
	c := s.answers.lookup(q.key, q.limit())
	if c == nil {
		return nil, false
	}
	return q.patch(nil, c, raw, s.recursionAllowed(src)), true
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// short renders RRs as "owner TYPE rdata", sorted, without TTLs.
func short(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, r := range rrs {
		h := r.Header()
		out = append(out, h.Name+" "+dns.TypeToString[h.Rrtype]+" "+strings.TrimSpace(strings.TrimPrefix(r.String(), h.String())))
	}
	slices.Sort(out)
	return out
}

func types(rrs []dns.RR) []string {
	out := []string{}
	for _, r := range rrs {
		out = append(out, dns.TypeToString[r.Header().Rrtype])
	}
	return out
}

func TestAuthoritativeAnswers(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{})
	const soa = "example.test. SOA ns.example.test. hostmaster.example.test."
	for _, tc := range []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		aa     bool
		answer []string
		ns     []string // authority section types
		extra  []string // additional section types, OPT excluded
	}{
		{"A", "www.example.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"www.example.test. A 192.0.2.1", "www.example.test. A 192.0.2.2"}, []string{}, []string{}},
		{"AAAA", "www.example.test.", dns.TypeAAAA, dns.RcodeSuccess, true,
			[]string{"www.example.test. AAAA 2001:db8::1"}, []string{}, []string{}},
		{"case insensitive", "WwW.ExAmPlE.TeSt.", dns.TypeAAAA, dns.RcodeSuccess, true,
			[]string{"www.example.test. AAAA 2001:db8::1"}, []string{}, []string{}},
		{"TXT", "txt.example.test.", dns.TypeTXT, dns.RcodeSuccess, true,
			[]string{`txt.example.test. TXT "hello world"`}, []string{}, []string{}},
		{"SRV", "_sip._tcp.example.test.", dns.TypeSRV, dns.RcodeSuccess, true,
			[]string{"_sip._tcp.example.test. SRV 10 5 5060 sip.example.test."}, []string{}, []string{}},
		{"MX, with the exchanger's address", "example.test.", dns.TypeMX, dns.RcodeSuccess, true,
			[]string{"example.test. MX 10 mail.example.test."}, []string{}, []string{"A"}},
		{"NS at the apex, with the server's address", "example.test.", dns.TypeNS, dns.RcodeSuccess, true,
			[]string{"example.test. NS ns1.example.test."}, []string{}, []string{"A"}},
		{"SOA", "example.test.", dns.TypeSOA, dns.RcodeSuccess, true,
			[]string{soa + " " + "SERIAL"}, []string{}, []string{}},
		{"PTR", "1.2.0.192.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, true,
			[]string{"1.2.0.192.in-addr.arpa. PTR www.example.test."}, []string{}, []string{}},
		{"ANY at the apex", "example.test.", dns.TypeANY, dns.RcodeSuccess, true,
			[]string{"example.test. MX 10 mail.example.test.", "example.test. NS ns1.example.test.", soa + " SERIAL"}, []string{}, []string{}},
		{"CNAME itself", "alias.example.test.", dns.TypeCNAME, dns.RcodeSuccess, true,
			[]string{"alias.example.test. CNAME www.example.test."}, []string{}, []string{}},
		{"CNAME followed", "alias.example.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"alias.example.test. CNAME www.example.test.", "www.example.test. A 192.0.2.1", "www.example.test. A 192.0.2.2"}, []string{}, []string{}},
		{"CNAME chain", "chain1.example.test.", dns.TypeAAAA, dns.RcodeSuccess, true,
			[]string{"alias.example.test. CNAME www.example.test.", "chain1.example.test. CNAME chain2.example.test.",
				"chain2.example.test. CNAME alias.example.test.", "www.example.test. AAAA 2001:db8::1"}, []string{}, []string{}},
		{"CNAME loop ends", "loop1.example.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"loop1.example.test. CNAME loop2.example.test.", "loop2.example.test. CNAME loop1.example.test."}, []string{}, []string{}},
		{"CNAME to a missing name", "dangling.example.test.", dns.TypeA, dns.RcodeNameError, true,
			[]string{"dangling.example.test. CNAME nowhere.example.test."}, []string{"SOA"}, []string{}},
		{"CNAME into another served zone", "cross.example.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"cross.example.test. CNAME host.other.test.", "host.other.test. A 198.51.100.7"}, []string{}, []string{}},
		{"CNAME out of the zones", "out.example.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"out.example.test. CNAME example.org."}, []string{}, []string{}},
		{"NXDOMAIN", "nothere.example.test.", dns.TypeA, dns.RcodeNameError, true, []string{}, []string{"SOA"}, []string{}},
		{"NODATA", "www.example.test.", dns.TypeMX, dns.RcodeSuccess, true, []string{}, []string{"SOA"}, []string{}},
		{"empty non-terminal is NODATA", "y.example.test.", dns.TypeA, dns.RcodeSuccess, true, []string{}, []string{"SOA"}, []string{}},
		{"wildcard", "anything.wild.example.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"anything.wild.example.test. A 192.0.2.99"}, []string{}, []string{}},
		{"wildcard below", "a.b.wild.example.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"a.b.wild.example.test. A 192.0.2.99"}, []string{}, []string{}},
		{"wildcard NODATA", "anything.wild.example.test.", dns.TypeTXT, dns.RcodeSuccess, true, []string{}, []string{"SOA"}, []string{}},
		{"own name beats wildcard", "host.wild.example.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"host.wild.example.test. A 192.0.2.100"}, []string{}, []string{}},
		{"existing name gets no wildcard data", "host.wild.example.test.", dns.TypeAAAA, dns.RcodeSuccess, true, []string{}, []string{"SOA"}, []string{}},
		{"wildcard parent is an empty non-terminal", "wild.example.test.", dns.TypeA, dns.RcodeSuccess, true, []string{}, []string{"SOA"}, []string{}},
		{"delegation", "host.sub.example.test.", dns.TypeA, dns.RcodeSuccess, false, []string{}, []string{"NS"}, []string{"A"}},
		{"NS at the cut is a referral", "sub.example.test.", dns.TypeNS, dns.RcodeSuccess, false, []string{}, []string{"NS"}, []string{"A"}},
		{"DS at the cut is the parent's NODATA", "sub.example.test.", dns.TypeDS, dns.RcodeSuccess, true, []string{}, []string{"SOA"}, []string{}},
		{"DS below the cut is a referral", "host.sub.example.test.", dns.TypeDS, dns.RcodeSuccess, false, []string{}, []string{"NS"}, []string{"A"}},
		{"DS at the apex", "example.test.", dns.TypeDS, dns.RcodeSuccess, true, []string{}, []string{"SOA"}, []string{}},
		{"name in a second zone", "host.other.test.", dns.TypeA, dns.RcodeSuccess, true,
			[]string{"host.other.test. A 198.51.100.7"}, []string{}, []string{}},
		{"missing name in the reverse zone", "9.2.0.192.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, true, []string{}, []string{"SOA"}, []string{}},
	} {
		// Over UDP twice: the second reply comes from the answer cache
		// (exchange checks it is the same bytes).
		for _, via := range []struct {
			name string
			udp  bool
		}{{"tcp", false}, {"udp", true}, {"udp again", true}} {
			t.Run(tc.name+" "+via.name, func(t *testing.T) {
				req := query(tc.qname, tc.qtype)
				m := ask(t, s, req, loopback, via.udp)
				if m.Rcode != tc.rcode || m.Authoritative != tc.aa {
					t.Fatalf("rcode %s aa %v, want %s aa %v", dns.RcodeToString[m.Rcode], m.Authoritative, dns.RcodeToString[tc.rcode], tc.aa)
				}
				if m.Question[0].Name != tc.qname {
					t.Errorf("question %q, want the client's spelling %q", m.Question[0].Name, tc.qname)
				}
				if via.udp {
					// Over UDP, owners compressed to the question come
					// back in the client's spelling.
					for _, r := range m.Answer {
						r.Header().Name = strings.ToLower(r.Header().Name)
					}
				}
				checkAuthoritative(t, m, tc.answer, tc.ns, tc.extra)
			})
		}
	}
}

// checkAuthoritative compares m's sections with an expected answer (as
// short renders it; an SOA's serial as SERIAL) and the types of the
// authority and additional sections.
func checkAuthoritative(t *testing.T, m *dns.Msg, answer, ns, extra []string) {
	t.Helper()
	got := short(m.Answer)
	for i, a := range got {
		if strings.Contains(a, " SOA ") {
			// The serial changes with every record added.
			f := strings.Fields(a)
			got[i] = strings.Join(f[:4], " ") + " SERIAL"
		}
	}
	want := slices.Clone(answer)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("answer\n%q\nwant\n%q", got, want)
	}
	if got := types(m.Ns); !slices.Equal(got, ns) {
		t.Errorf("authority %v, want %v", got, ns)
	}
	if got := types(m.Extra); !slices.Equal(got, extra) {
		t.Errorf("additional %v, want %v", got, extra)
	}
}

func TestNegativeAnswerSOA(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{})
	// example.test has TTL 300 and minimum 60; other.test 300 and 300.
	for _, tc := range []struct {
		qname string
		ttl   uint32
	}{{"nothere.example.test.", 60}, {"www.example.test.", 60}, {"nothere.other.test.", 300}} {
		m := ask(t, s, query(tc.qname, dns.TypeMX), loopback, false)
		if len(m.Ns) != 1 {
			t.Fatalf("%s: authority %v", tc.qname, m.Ns)
		}
		soa, ok := m.Ns[0].(*dns.SOA)
		if !ok || soa.Hdr.Ttl != tc.ttl || soa.Minttl == 0 {
			t.Errorf("%s: authority %v, want the SOA with TTL %d", tc.qname, m.Ns[0], tc.ttl)
		}
	}
}

func TestCNAMEChainBound(t *testing.T) {
	st := openStore(t)
	addZone(t, st, "chain.test.", 300, 300)
	for i := range 12 {
		addRecord(t, st, "chain.test.", "c"+string(rune('a'+i)), "CNAME", "c"+string(rune('a'+i+1))+".chain.test.")
	}
	addRecord(t, st, "chain.test.", "cm", "A", "192.0.2.1")
	s := newServer(t, st, Config{})
	m := ask(t, s, query("ca.chain.test.", dns.TypeA), loopback, false)
	if len(m.Answer) != maxCNAMEChain || m.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %s, %d answers, want %d CNAMEs: %v", dns.RcodeToString[m.Rcode], len(m.Answer), maxCNAMEChain, m.Answer)
	}
	for _, a := range m.Answer {
		if a.Header().Rrtype != dns.TypeCNAME {
			t.Errorf("answer %v past the chain bound", a)
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{})

	// msg builds a message as a careless client might: AD and CD set, RD
	// set, EDNS with DO and a cookie option when edns.
	msg := func(op int, edns bool, qs ...dns.Question) *dns.Msg {
		m := new(dns.Msg)
		m.Id = dns.Id()
		m.Opcode = op
		m.RecursionDesired, m.AuthenticatedData, m.CheckingDisabled = true, true, true
		m.Question = qs
		if edns {
			m.SetEdns0(4096, true)
			opt := m.IsEdns0()
			opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}
		return m
	}
	in := func(name string, qtype uint16) dns.Question {
		return dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}
	}
	soa := in("example.test.", dns.TypeSOA)
	www := in("www.example.test.", dns.TypeA)
	chaos := dns.Question{Name: "example.test.", Qtype: dns.TypeSOA, Qclass: dns.ClassCHAOS}
	hesiod := dns.Question{Name: "example.test.", Qtype: dns.TypeSOA, Qclass: dns.ClassHESIOD}
	withRecords := msg(dns.OpcodeUpdate, true, soa)
	a, err := dns.NewRR("x.example.test. 60 IN A 192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	withRecords.Answer, withRecords.Ns = []dns.RR{a, a, a}, []dns.RR{a, a, a}
	notifyV1 := msg(dns.OpcodeNotify, true, soa)
	notifyV1.IsEdns0().SetVersion(1)
	twoOPT := msg(dns.OpcodeQuery, true, www)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])

	for _, tc := range []struct {
		name     string
		req      *dns.Msg
		rcode    int
		question bool // the question echoed
	}{
		{"two questions", msg(dns.OpcodeQuery, true, www, www), dns.RcodeFormatError, false},
		{"two questions without EDNS", msg(dns.OpcodeQuery, false, www, www), dns.RcodeFormatError, false},
		{"no question", msg(dns.OpcodeQuery, true), dns.RcodeFormatError, false},
		{"NOTIFY without a question", msg(dns.OpcodeNotify, true), dns.RcodeFormatError, false},
		{"UPDATE without a question", msg(dns.OpcodeUpdate, true), dns.RcodeFormatError, false},
		{"IQUERY without a question", msg(dns.OpcodeIQuery, true), dns.RcodeNotImplemented, false},
		{"NOTIFY", msg(dns.OpcodeNotify, true, soa), dns.RcodeNotAuth, true},
		{"NOTIFY without EDNS", msg(dns.OpcodeNotify, false, soa), dns.RcodeNotAuth, true},
		{"NOTIFY for a name outside the zones", msg(dns.OpcodeNotify, true, in("example.org.", dns.TypeSOA)), dns.RcodeNotAuth, true},
		{"NOTIFY in CHAOS", msg(dns.OpcodeNotify, true, chaos), dns.RcodeNotImplemented, true},
		{"NOTIFY in HESIOD", msg(dns.OpcodeNotify, true, hesiod), dns.RcodeRefused, true},
		{"NOTIFY with EDNS version 1", notifyV1, dns.RcodeBadVers, true},
		{"UPDATE", msg(dns.OpcodeUpdate, true, soa), dns.RcodeNotAuth, true},
		{"UPDATE with records", withRecords, dns.RcodeNotAuth, true},
		{"UPDATE whose zone is not a SOA question", msg(dns.OpcodeUpdate, true, www), dns.RcodeFormatError, true},
		{"IQUERY", msg(dns.OpcodeIQuery, true, soa), dns.RcodeNotImplemented, true},
		{"STATUS", msg(dns.OpcodeStatus, false, soa), dns.RcodeNotImplemented, true},
		{"opcode 15", msg(15, true, soa), dns.RcodeNotImplemented, true},
		{"QTYPE 0", msg(dns.OpcodeQuery, true, in("www.example.test.", 0)), dns.RcodeNotImplemented, true},
		{"chaos class", msg(dns.OpcodeQuery, true, chaos), dns.RcodeRefused, true},
		{"zone transfer", msg(dns.OpcodeQuery, true, in("example.test.", dns.TypeAXFR)), dns.RcodeRefused, true},
		{"two OPT records", twoOPT, dns.RcodeFormatError, true},
	} {
		for _, udp := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s udp=%v", tc.name, udp), func(t *testing.T) {
				m := ask(t, s, tc.req, loopback, udp)
				if m.Rcode != tc.rcode || m.Opcode != tc.req.Opcode {
					t.Errorf("opcode %s rcode %s, want %s %s", dns.OpcodeToString[m.Opcode], dns.RcodeToString[m.Rcode],
						dns.OpcodeToString[tc.req.Opcode], dns.RcodeToString[tc.rcode])
				}
				if !m.RecursionDesired || m.AuthenticatedData || m.CheckingDisabled || m.Authoritative || m.Truncated || m.RecursionAvailable || m.Zero {
					t.Errorf("flags %+v, want RD copied and everything else clear", m.MsgHdr)
				}
				if tc.question != (len(m.Question) == 1 && m.Question[0] == tc.req.Question[0]) || len(m.Question) > 1 {
					t.Errorf("question %v, want echoed: %v", m.Question, tc.question)
				}
				if len(m.Answer)+len(m.Ns) != 0 {
					t.Errorf("records in the reply: %v %v", m.Answer, m.Ns)
				}
				// An OPT comes back for exactly one OPT in the query, ours:
				// our size and version, DO echoed, no options copied.
				_, opts := clientOPT(tc.req)
				opt := m.IsEdns0()
				switch {
				case (opt != nil) != (opts == 1):
					t.Errorf("OPT %v for a query with %d", opt, opts)
				case opt != nil && (opt.UDPSize() != maxUDPSize || opt.Version() != 0 || !opt.Do() || len(opt.Option) != 0 || len(m.Extra) != 1):
					t.Errorf("OPT %v (additional %v), want udp %d, version 0, do, no options", opt, m.Extra, maxUDPSize)
				case opt == nil && len(m.Extra) != 0:
					t.Errorf("additional %v", m.Extra)
				}
			})
		}
	}

	resp := query("www.example.test.", dns.TypeA)
	resp.Response = true
	if buf := exchange(t, s, resp, loopback, true); buf != nil {
		t.Errorf("answered a response: %d bytes", len(buf))
	}

	// Before unpacking, only responses are turned away: everything else
	// is unpacked so that the reply can echo the question and OPT.
	for _, tc := range []struct {
		h    dns.Header
		want dns.MsgAcceptAction
	}{
		{dns.Header{Qdcount: 1}, dns.MsgAccept},
		{dns.Header{Qdcount: 1, Arcount: 1}, dns.MsgAccept},
		{dns.Header{Bits: 1 << 15, Qdcount: 1}, dns.MsgIgnore},
		{dns.Header{Bits: 1<<15 | dns.OpcodeNotify<<11, Qdcount: 1}, dns.MsgIgnore},
		{dns.Header{Qdcount: 2}, dns.MsgAccept},
		{dns.Header{Qdcount: 0}, dns.MsgAccept},
		{dns.Header{Qdcount: 1, Ancount: 3, Nscount: 5, Arcount: 7}, dns.MsgAccept},
		{dns.Header{Bits: dns.OpcodeUpdate << 11, Qdcount: 1}, dns.MsgAccept},
		{dns.Header{Bits: dns.OpcodeNotify << 11, Qdcount: 1}, dns.MsgAccept},
		{dns.Header{Bits: 15 << 11, Qdcount: 1}, dns.MsgAccept},
	} {
		if got := accept(tc.h); got != tc.want {
			t.Errorf("accept(%+v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestEDNS(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{})

	plain := ask(t, s, query("www.example.test.", dns.TypeA), loopback, true)
	if plain.IsEdns0() != nil {
		t.Errorf("OPT in the reply to a query without EDNS: %v", plain.Extra)
	}

	for _, do := range []bool{false, true} {
		req := query("www.example.test.", dns.TypeA)
		req.SetEdns0(4096, do)
		m := ask(t, s, req, loopback, true)
		opt := m.IsEdns0()
		if opt == nil || opt.UDPSize() != maxUDPSize || opt.Version() != 0 || opt.Do() != do {
			t.Fatalf("OPT %v, want udp %d, version 0, do %v", opt, maxUDPSize, do)
		}
		if len(m.Answer) != 2 {
			t.Errorf("answers %v", m.Answer)
		}
	}

	v1 := query("www.example.test.", dns.TypeA)
	v1.SetEdns0(1232, false)
	v1.IsEdns0().SetVersion(1)
	m := ask(t, s, v1, loopback, true)
	if m.Rcode != dns.RcodeBadVers || m.IsEdns0() == nil || m.IsEdns0().Version() != 0 || len(m.Answer) != 0 {
		t.Errorf("EDNS version 1: rcode %s, OPT %v, answers %v; want BADVERS with a version 0 OPT", dns.RcodeToString[m.Rcode], m.IsEdns0(), m.Answer)
	}
}

func TestTruncation(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{})
	for _, tc := range []struct {
		name    string
		bufsize uint16 // 0: no EDNS
		udp     bool
		limit   int
		tc      bool
	}{
		{"UDP without EDNS", 0, true, 512, true},
		{"UDP with a small EDNS size", 256, true, 512, true},
		{"UDP with a large EDNS size", 65000, true, maxUDPSize, true},
		{"TCP", 0, false, dns.MaxMsgSize, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := query("big.example.test.", dns.TypeTXT)
			if tc.bufsize > 0 {
				req.SetEdns0(tc.bufsize, false)
			}
			buf := exchange(t, s, req, loopback, tc.udp)
			if len(buf) > tc.limit {
				t.Fatalf("reply of %d bytes over the limit %d", len(buf), tc.limit)
			}
			m := new(dns.Msg)
			if err := m.Unpack(buf); err != nil {
				t.Fatal(err)
			}
			if m.Truncated != tc.tc {
				t.Fatalf("TC %v, want %v", m.Truncated, tc.tc)
			}
			wantAnswers := bigTXTCount
			if tc.tc {
				wantAnswers = 0
			}
			if len(m.Answer) != wantAnswers || len(m.Question) != 1 {
				t.Errorf("%d answers and %d questions, want %d and 1", len(m.Answer), len(m.Question), wantAnswers)
			}
			if (m.IsEdns0() != nil) != (tc.bufsize > 0) {
				t.Errorf("OPT %v with client EDNS size %d", m.IsEdns0(), tc.bufsize)
			}
		})
	}
}

func TestNoOpenResolver(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	up := startUpstream(t)
	s := newServer(t, st, Config{Upstreams: []string{up.addr}})
	outside := netip.MustParseAddr("192.0.2.200")

	m := ask(t, s, query("example.org.", dns.TypeA), outside, true)
	if m.Rcode != dns.RcodeRefused || m.RecursionAvailable || len(m.Answer) != 0 {
		t.Errorf("outside client: rcode %s RA %v answers %v, want REFUSED without RA", dns.RcodeToString[m.Rcode], m.RecursionAvailable, m.Answer)
	}
	m = ask(t, s, query("www.example.test.", dns.TypeA), outside, true)
	if m.Rcode != dns.RcodeSuccess || !m.Authoritative || len(m.Answer) != 2 {
		t.Errorf("outside client, served zone: rcode %s AA %v answers %v", dns.RcodeToString[m.Rcode], m.Authoritative, m.Answer)
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("upstream asked %d times for a refused client", n)
	}

	// An IPv4-mapped loopback address is loopback.
	m = ask(t, s, query("example.org.", dns.TypeA), netip.MustParseAddr("::ffff:127.0.0.1"), true)
	if m.Rcode != dns.RcodeSuccess || !m.RecursionAvailable || len(m.Answer) != 1 {
		t.Errorf("mapped loopback: rcode %s RA %v answers %v", dns.RcodeToString[m.Rcode], m.RecursionAvailable, m.Answer)
	}

	// Without upstreams nobody gets forwarding.
	none := newServer(t, st, Config{})
	m = ask(t, none, query("example.org.", dns.TypeA), loopback, true)
	if m.Rcode != dns.RcodeRefused || m.RecursionAvailable {
		t.Errorf("no upstreams: rcode %s RA %v, want REFUSED", dns.RcodeToString[m.Rcode], m.RecursionAvailable)
	}
}

func TestForwarding(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	up := startUpstream(t)
	cfg := Config{Upstreams: []string{closedPort(t), up.addr}}
	cfg.UpstreamTimeout.Duration = 2 * time.Second
	s := newServer(t, st, cfg)

	req := query("Example.ORG.", dns.TypeA)
	req.RecursionDesired = true
	m := ask(t, s, req, loopback, true)
	if m.Rcode != dns.RcodeSuccess || m.Authoritative || !m.RecursionAvailable || !m.RecursionDesired || len(m.Answer) != 1 {
		t.Fatalf("rcode %s AA %v RA %v RD %v answers %v", dns.RcodeToString[m.Rcode], m.Authoritative, m.RecursionAvailable, m.RecursionDesired, m.Answer)
	}
	if m.Question[0].Name != "Example.ORG." {
		t.Errorf("question %q", m.Question[0].Name)
	}
	ask(t, s, query("example.org.", dns.TypeA), loopback, true)
	if n := up.queries.Load(); n != 1 {
		t.Errorf("upstream asked %d times; the second query should come from the cache", n)
	}

	// NXDOMAIN is forwarded with its SOA and cached too.
	for range 2 {
		m = ask(t, s, query("nx.example.org.", dns.TypeA), loopback, true)
		if m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 {
			t.Fatalf("rcode %s authority %v", dns.RcodeToString[m.Rcode], m.Ns)
		}
	}
	if n := up.queries.Load(); n != 2 {
		t.Errorf("upstream asked %d times, want 2", n)
	}

	// A truncated upstream answer is asked again over TCP.
	req = query("big.example.org.", dns.TypeTXT)
	req.SetEdns0(1232, false)
	m = ask(t, s, req, loopback, false)
	if len(m.Answer) != 3 || up.tcpCount.Load() != 1 {
		t.Errorf("answers %v, %d TCP queries upstream; want 3 answers over 1 TCP query", m.Answer, up.tcpCount.Load())
	}

	// The served zones are never forwarded, even for missing names.
	before := up.queries.Load()
	m = ask(t, s, query("missing.example.test.", dns.TypeA), loopback, true)
	if m.Rcode != dns.RcodeNameError || !m.Authoritative || up.queries.Load() != before {
		t.Errorf("served zone: rcode %s AA %v, upstream asked %d more times", dns.RcodeToString[m.Rcode], m.Authoritative, up.queries.Load()-before)
	}
}

func TestForwardingAllUpstreamsFail(t *testing.T) {
	st := openStore(t)
	cfg := Config{Upstreams: []string{closedPort(t), blackhole(t)}}
	cfg.UpstreamTimeout.Duration = 100 * time.Millisecond
	s := newServer(t, st, cfg)
	m := ask(t, s, query("example.org.", dns.TypeA), loopback, true)
	if m.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if n := s.fwd.cache.count(); n != 0 {
		t.Errorf("%d cache entries after a failure", n)
	}
}

func TestChangesServedImmediately(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	up := startUpstream(t)
	s := newServer(t, st, Config{Upstreams: []string{up.addr}})
	ctx := context.Background()

	if m := ask(t, s, query("new.example.test.", dns.TypeA), loopback, true); m.Rcode != dns.RcodeNameError {
		t.Fatalf("before: rcode %s", dns.RcodeToString[m.Rcode])
	}
	r := addRecord(t, st, "example.test.", "new", "A", "192.0.2.123")
	m := ask(t, s, query("new.example.test.", dns.TypeA), loopback, true)
	if got := short(m.Answer); !slices.Equal(got, []string{"new.example.test. A 192.0.2.123"}) {
		t.Fatalf("after create: %v", got)
	}
	r.Value = "192.0.2.124"
	if _, err := st.UpdateRecord(ctx, r); err != nil {
		t.Fatal(err)
	}
	m = ask(t, s, query("new.example.test.", dns.TypeA), loopback, true)
	if got := short(m.Answer); !slices.Equal(got, []string{"new.example.test. A 192.0.2.124"}) {
		t.Fatalf("after update: %v", got)
	}
	if _, err := st.DeleteRecord(ctx, "example.test.", r.ID); err != nil {
		t.Fatal(err)
	}
	if m := ask(t, s, query("new.example.test.", dns.TypeA), loopback, true); m.Rcode != dns.RcodeNameError {
		t.Fatalf("after delete: rcode %s", dns.RcodeToString[m.Rcode])
	}

	// A zone created over a forwarded name takes it over, and deleting
	// it purges the cached forwarded answer, so upstream is asked again.
	ask(t, s, query("example.org.", dns.TypeA), loopback, true)
	addZone(t, st, "example.org.", 300, 300)
	addRecord(t, st, "example.org.", "@", "A", "192.0.2.8")
	m = ask(t, s, query("example.org.", dns.TypeA), loopback, true)
	if got := short(m.Answer); !m.Authoritative || !slices.Equal(got, []string{"example.org. A 192.0.2.8"}) {
		t.Fatalf("zone over a forwarded name: AA %v %v", m.Authoritative, got)
	}
	if err := st.DeleteZone(ctx, "example.org."); err != nil {
		t.Fatal(err)
	}
	m = ask(t, s, query("example.org.", dns.TypeA), loopback, true)
	if got := short(m.Answer); m.Authoritative || !slices.Equal(got, []string{"example.org. A 203.0.113.10"}) {
		t.Fatalf("after deleting the zone: AA %v %v", m.Authoritative, got)
	}
	if n := up.queries.Load(); n != 2 {
		t.Errorf("upstream asked %d times, want 2 (the cache purged with the zone)", n)
	}
}

// TestConcurrentChangesAndQueries runs queries (through the real UDP
// server) while records change, for the race detector, and checks that
// every change is visible once its write returns.
func TestConcurrentChangesAndQueries(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{})
	addr := serve(t, s)
	stop := make(chan struct{})
	done := make(chan error, 2)
	for range 2 {
		go func() {
			c := &dns.Client{Timeout: 2 * time.Second}
			for i := 0; i < 10000; i++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				if _, _, err := c.Exchange(query("www.example.test.", dns.TypeA), addr); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := range 20 {
		name := "c" + strconv.Itoa(i)
		addRecord(t, st, "example.test.", name, "A", "192.0.2."+strconv.Itoa(i+1))
		m := ask(t, s, query(name+".example.test.", dns.TypeA), loopback, true)
		if len(m.Answer) != 1 {
			t.Fatalf("%s not served right after its write: %v", name, m.Answer)
		}
	}
	close(stop)
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
