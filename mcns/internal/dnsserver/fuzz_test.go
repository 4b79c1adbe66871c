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

// serveRaw does with one UDP datagram what the UDP server does: miekg/dns
// reads the header, asks accept, unpacks and, on a rejected or unreadable
// message, answers FORMERR or NOTIMP itself (the code below mirrors its
// serveDNS); every other message goes to Server.reply. It returns the bytes
// sent (nil: nothing) and the size they must fit in.
func serveRaw(s *Server, raw []byte, src netip.Addr) ([]byte, int) {
	if len(raw) < 12 {
		return nil, 0 // the header does not unpack: the server stays silent
	}
	dh := dns.Header{
		Id:      binary.BigEndian.Uint16(raw[0:]),
		Bits:    binary.BigEndian.Uint16(raw[2:]),
		Qdcount: binary.BigEndian.Uint16(raw[4:]),
		Ancount: binary.BigEndian.Uint16(raw[6:]),
		Nscount: binary.BigEndian.Uint16(raw[8:]),
		Arcount: binary.BigEndian.Uint16(raw[10:]),
	}
	action := accept(dh)
	if action == dns.MsgIgnore {
		return nil, 0
	}
	req := new(dns.Msg)
	req.Id = dh.Id
	req.Opcode = int(dh.Bits>>11) & 0xF
	req.RecursionDesired = dh.Bits&(1<<8) != 0
	req.CheckingDisabled = dh.Bits&(1<<4) != 0
	if action == dns.MsgAccept {
		full := new(dns.Msg)
		if err := full.Unpack(raw); err == nil {
			return s.reply(context.Background(), full, src, true), advertised(full)
		}
		// As in the server: the partly unpacked message is answered.
		req, action = full, dns.MsgReject
	}
	// miekg/dns's rejection: the header (and whatever question unpacked)
	// with FORMERR or NOTIMP, no records.
	opcode := req.Opcode
	req.SetRcodeFormatError(req)
	req.Zero = false
	if action == dns.MsgRejectNotImplemented {
		req.Opcode = opcode
		req.Rcode = dns.RcodeNotImplemented
	}
	req.Ns, req.Answer, req.Extra = nil, nil, nil
	buf, err := req.Pack()
	if err != nil {
		return nil, 0
	}
	return buf, dns.MinMsgSize
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

// fuzzSeeds are the seed inputs: queries the zones answer in every way,
// EDNS variants, and broken messages.
func fuzzSeeds(tb testing.TB) [][]byte {
	edns := query("www.example.test.", dns.TypeA)
	edns.SetEdns0(1232, true)
	bigEDNS := query("big.example.test.", dns.TypeTXT)
	bigEDNS.SetEdns0(4096, false)
	badvers := query("www.example.test.", dns.TypeA)
	badvers.SetEdns0(1232, false)
	badvers.IsEdns0().SetVersion(3)
	normal := packed(tb, query("www.example.test.", dns.TypeA))
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
		normal[:len(normal)-3], // truncated
		normal[:12],            // header only, claiming a question
		{0x00},                 // shorter than a header
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
			0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01}, // name is a pointer to itself
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
			0x01, 'a', 0xc0, 0x0e, 0x00, 0x01, 0x00, 0x01}, // pointer to its own tail
		{0x12, 0x34, 0x29, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, // UPDATE opcode
		{0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, // a response
	}
}

// FuzzHandler feeds raw datagrams through the UDP server's path and checks
// that nothing panics, that every reply unpacks, answers the query's ID and
// fits the size the client advertised.
func FuzzHandler(f *testing.F) {
	st := openStore(f)
	seed(f, st)
	s := newServer(f, st, Config{})

	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		buf, limit := serveRaw(s, raw, loopback)
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
	})
}

// TestServeRawMatchesServer checks that serveRaw, the fuzz target's
// stand-in for the UDP server, sends what the real server sends.
func TestServeRawMatchesServer(t *testing.T) {
	st := openStore(t)
	seed(t, st)
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
