package dnsserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serveRaw does with one UDP datagram what the UDP read loop does
// (packet, and forwardPacket for a query handed over) and returns the bytes
// sent (nil: nothing) and the size they must fit in: the client's EDNS
// size when the query unpacks, else 512.
func serveRaw(s *Server, raw []byte, src netip.Addr) ([]byte, int) {
	buf, limit, _ := serveRawQuery(s, raw, src)
	return buf, limit
}

// serveRawQuery is serveRaw that also returns the unpacked query, or nil
// when it does not unpack (the reply is then a FORMERR built like
// miekg/dns's server's).
func serveRawQuery(s *Server, raw []byte, src netip.Addr) ([]byte, int, *dns.Msg) {
	ctx := context.Background()
	buf, forward := s.packet(ctx, raw, src, nil)
	if forward {
		buf = s.forwardPacket(ctx, raw, src)
	}
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		return buf, dns.MinMsgSize, nil
	}
	return buf, advertised(req), req
}

// advertised is the UDP size a reply to req may take: the EDNS size the
// client offers, bounded to [512, maxUDPSize], or 512 without EDNS.
func advertised(req *dns.Msg) int {
	if opt, n := clientOPT(req); n == 1 {
		return max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize))
	}
	return dns.MinMsgSize
}

func packed(tb testing.TB, m *dns.Msg) []byte {
	tb.Helper()
	buf, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return buf
}

// fuzzSeeds are the seed inputs: queries the zones (seed and seedKnot)
// answer in every way, EDNS variants, other opcodes and question counts,
// and broken messages.
func fuzzSeeds(tb testing.TB) [][]byte {
	edns := query("www.example.test.", dns.TypeA)
	edns.SetEdns0(1232, true)
	bigEDNS := query("big.example.test.", dns.TypeTXT)
	bigEDNS.SetEdns0(4096, false)
	badvers := query("www.example.test.", dns.TypeA)
	badvers.SetEdns0(1232, false)
	badvers.IsEdns0().SetVersion(3)
	normal := packed(tb, query("www.example.test.", dns.TypeA))

	withEDNS := func(m *dns.Msg, size uint16) *dns.Msg {
		m.SetEdns0(size, true)
		return m
	}
	opcode := func(op int, m *dns.Msg) *dns.Msg {
		m.Opcode = op
		m.AuthenticatedData, m.CheckingDisabled = true, true
		return m
	}
	a, err := dns.NewRR("x.example.test. 60 IN A 192.0.2.9")
	if err != nil {
		tb.Fatal(err)
	}
	soa, err := dns.NewRR("example.test. 60 IN SOA ns. h. 1 2 3 4 5")
	if err != nil {
		tb.Fatal(err)
	}
	notify := withEDNS(opcode(dns.OpcodeNotify, query("example.test.", dns.TypeSOA)), 1232)
	notify.Answer = []dns.RR{soa}
	update := withEDNS(opcode(dns.OpcodeUpdate, query("example.test.", dns.TypeSOA)), 1232)
	update.Answer, update.Ns = []dns.RR{a}, []dns.RR{a, a, a}
	notifyV1 := withEDNS(opcode(dns.OpcodeNotify, query("example.test.", dns.TypeSOA)), 1232)
	notifyV1.IsEdns0().SetVersion(1)
	noQuestion := withEDNS(query("www.example.test.", dns.TypeA), 1232)
	noQuestion.Question = nil
	iqueryNoQuestion := opcode(dns.OpcodeIQuery, withEDNS(query("www.example.test.", dns.TypeA), 1232))
	iqueryNoQuestion.Question = nil
	twoQuestions := withEDNS(query("www.example.test.", dns.TypeA), 1232)
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	carrying := withEDNS(query("www.example.test.", dns.TypeA), 1232)
	carrying.Answer = []dns.RR{a, a}
	updatePacked := packed(tb, update)
	// Plain queries as resolvers send them (0x20 case, a cookie and
	// padding), and names the plain-query parser leaves to Unpack.
	plain := withEDNS(query("WwW.eXaMpLe.TeSt.", dns.TypeAAAA), 1232)
	plain.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
		&dns.EDNS0_PADDING{Padding: make([]byte, 16)}}
	escaped := query(`a\.b\032c.example.test.`, dns.TypeA)

	return [][]byte{
		normal,
		packed(tb, edns),
		packed(tb, bigEDNS),
		packed(tb, badvers),
		packed(tb, query("big.example.test.", dns.TypeTXT)),
		packed(tb, query("chain1.example.test.", dns.TypeA)),
		packed(tb, query("loop1.example.test.", dns.TypeANY)),
		packed(tb, query("x.anything.wild.example.test.", dns.TypeA)),
		packed(tb, query("host.sub.example.test.", dns.TypeA)),
		packed(tb, query("nothere.example.test.", dns.TypeMX)),
		packed(tb, query("example.org.", dns.TypeA)),
		// DS at and below zone cuts, and at a served child's apex.
		packed(tb, query("sub.example.test.", dns.TypeDS)),
		packed(tb, query("x.sub.knot.test.", dns.TypeDS)),
		packed(tb, withEDNS(query("child.knot.test.", dns.TypeDS), 1232)),
		packed(tb, query("orphan.knot.test.", dns.TypeDS)),
		// Additional addresses: in full, cut to fit, and glue forcing TC.
		packed(tb, query("example.test.", dns.TypeMX)),
		packed(tb, withEDNS(query("knot.test.", dns.TypeNS), 512)),
		packed(tb, query("mxs.knot.test.", dns.TypeMX)),
		packed(tb, withEDNS(query("mxs.knot.test.", dns.TypeMX), 1232)),
		packed(tb, query("x.sib.knot.test.", dns.TypeA)),
		packed(tb, query("x.big.knot.test.", dns.TypeA)),
		packed(tb, query("wmx.knot.test.", dns.TypeMX)),
		// Other opcodes, question counts and QTYPE 0.
		packed(tb, notify),
		updatePacked,
		packed(tb, notifyV1),
		packed(tb, opcode(15, withEDNS(query("example.test.", dns.TypeSOA), 1232))),
		packed(tb, noQuestion),
		packed(tb, iqueryNoQuestion),
		packed(tb, twoQuestions),
		packed(tb, carrying),
		packed(tb, query("www.example.test.", 0)),
		packed(tb, plain),
		packed(tb, escaped),
		updatePacked[:len(updatePacked)-20], // an update cut inside its records
		normal[:len(normal)-3],              // truncated
		normal[:12],                         // header only, claiming a question
		{0x00},                              // shorter than a header
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
			0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01}, // name is a pointer to itself
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
			0x01, 'a', 0xc0, 0x0e, 0x00, 0x01, 0x00, 0x01}, // pointer to its own tail
		{0x12, 0x34, 0x29, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, // UPDATE opcode
		{0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, // a response
		{0x12, 0x34, 0x21, 0x30, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0x00, 0x00, 0x06, 0x00, 0x01}, // a NOTIFY whose counts lie
	}
}

// FuzzHandler feeds raw datagrams through the UDP server's path and checks
// that nothing panics, that every reply unpacks, answers the query's ID and
// fits the size the client advertised, and that replies built by
// Server.reply keep the header rules: opcode and RD echoed, AD, CD and Z
// clear, the question echoed when there is exactly one, our OPT exactly
// when the query had one, nothing but addresses (and the OPT) in the
// additional section, and nothing but the OPT beside a TC bit.
func FuzzHandler(f *testing.F) {
	st := openStore(f)
	seed(f, st)
	seedKnot(f, st)
	s := newServer(f, st, Config{})

	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		buf, limit, req := serveRawQuery(s, raw, loopback)
		if buf == nil {
			return
		}
		if len(buf) > limit {
			t.Fatalf("reply of %d bytes exceeds the advertised %d", len(buf), limit)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
		if !m.Response || m.Id != binary.BigEndian.Uint16(raw) {
			t.Fatalf("reply response=%v id=%d to query id %d", m.Response, m.Id, binary.BigEndian.Uint16(raw))
		}
		if req == nil {
			return // miekg/dns's own FORMERR for a message that does not unpack
		}
		if m.Opcode != req.Opcode || m.RecursionDesired != req.RecursionDesired || m.AuthenticatedData || m.CheckingDisabled || m.Zero {
			t.Fatalf("header %+v to a query with %+v", m.MsgHdr, req.MsgHdr)
		}
		if want := len(req.Question) == 1; want != (len(m.Question) == 1) || len(m.Question) > 1 ||
			want && m.Question[0] != req.Question[0] {
			t.Fatalf("question %v to %v", m.Question, req.Question)
		}
		opt, n := clientOPT(req)
		wantOPT := n == 1 && opt.Hdr.Name == "."
		if got := m.IsEdns0(); wantOPT != (got != nil) || got != nil && (got.UDPSize() != maxUDPSize || len(got.Option) != 0) {
			t.Fatalf("OPT %v to a query with %d OPT records", got, n)
		}
		for _, r := range m.Extra {
			if tp := r.Header().Rrtype; tp != dns.TypeA && tp != dns.TypeAAAA && tp != dns.TypeOPT {
				t.Fatalf("additional %v", r)
			}
		}
		if m.Truncated && (len(m.Answer) > 0 || len(m.Ns) > 0 || len(m.Extra) > 1) {
			t.Fatalf("TC with records:\n%v", m)
		}
	})
}

// TestServeRawMatchesServer checks that serveRaw, the fuzz target's
// stand-in for the UDP server, sends what the real server sends.
func TestServeRawMatchesServer(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	seedKnot(t, st)
	s := newServer(t, st, Config{})
	addr := serve(t, s)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, raw := range fuzzSeeds(t) {
		want, _ := serveRaw(s, raw, loopback)
		if _, err := conn.Write(raw); err != nil {
			t.Fatal(err)
		}
		wait := 2 * time.Second
		if want == nil {
			// Silence cannot be observed, only waited for.
			wait = 300 * time.Millisecond
		}
		if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, dns.MaxMsgSize)
		n, err := conn.Read(buf)
		switch {
		case want == nil && err == nil:
			t.Errorf("seed %d: the server answered %d bytes, serveRaw nothing", i, n)
		case want != nil && err != nil:
			t.Errorf("seed %d: no answer from the server: %v", i, err)
		case want != nil && !bytes.Equal(buf[:n], want):
			t.Errorf("seed %d: the server sent\n%x\nserveRaw\n%x", i, buf[:n], want)
		}
	}
}
