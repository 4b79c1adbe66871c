package dnsserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"git.metacircular.net/metacircular/mcns/internal/zonefile"
)

// spell0x20 spells name with letters in alternating case, as a resolver
// using 0x20 randomization might.
func spell0x20(name string) string {
	b := []byte(name)
	for i, c := range b {
		if i%2 == 0 && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// datagram packs req, failing the test if it does not pack.
func datagram(t testing.TB, req *dns.Msg) []byte {
	t.Helper()
	raw, err := req.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// udpReply answers raw as the read loop would, forwarding included.
func udpReply(s *Server, raw []byte, src netip.Addr) []byte {
	buf, forward := s.packet(context.Background(), raw, src, nil)
	if forward {
		buf = s.forwardPacket(context.Background(), raw, src)
	}
	return buf
}

// TestPacketMatchesUncached asks a server with the answer cache and one
// without the same datagrams, three times each with fresh IDs, from a
// client that may recurse and one that may not: every reply must be the
// same bytes, so the cache's patches (ID, RD, RA, the question's spelling)
// and its size classes change nothing. For lower-case questions the reply
// must also be what reply, the builder the TCP server uses, makes of the
// unpacked query: answering in lower case and patching changes nothing
// either.
func TestPacketMatchesUncached(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	seedKnot(t, st)
	up := startUpstream(t)
	cached := newServer(t, st, Config{Upstreams: []string{up.addr}})
	uncached := newServer(t, st, Config{Upstreams: []string{up.addr}, AnswerCacheBytes: -1})
	var names []string
	for _, z := range cached.zones.Load().byName {
		for name := range z.nodes {
			names = append(names, name, "x."+name)
		}
	}
	slices.Sort(names)
	names = append(names, "example.org.", "nx.example.org.")
	outsider := netip.MustParseAddr("192.0.2.200")
	hits := 0
	for _, name := range names {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeMX, dns.TypeTXT, dns.TypeDS, dns.TypeANY, dns.TypeSOA, 4242} {
			for _, bufsize := range []uint16{0, 512, 700, 1232, 4096} {
				for _, spelling := range []string{name, spell0x20(name)} {
					req := query(spelling, qtype)
					req.RecursionDesired = qtype%2 == 0
					if bufsize > 0 {
						req.SetEdns0(bufsize, bufsize == 4096)
					}
					raw := datagram(t, req)
					for i := range 6 {
						binary.BigEndian.PutUint16(raw, uint16(rand.N(1<<16)))
						src := loopback
						if i%2 == 1 {
							src = outsider
						}
						if _, ok := cachedReply(cached, raw, src); ok {
							hits++
						}
						got, want := udpReply(cached, raw, src), udpReply(uncached, raw, src)
						if !bytes.Equal(got, want) {
							t.Fatalf("%s %s bufsize %d from %v, try %d: the cached server sent\n%x\nthe uncached\n%x",
								spelling, dns.TypeToString[qtype], bufsize, src, i, got, want)
						}
						if spelling == name {
							req.Id = binary.BigEndian.Uint16(raw)
							if built := uncached.reply(context.Background(), req, src, true); !bytes.Equal(got, built) {
								t.Fatalf("%s %s bufsize %d: the datagram path sent\n%x\nreply built\n%x", name, dns.TypeToString[qtype], bufsize, got, built)
							}
						}
					}
				}
			}
		}
	}
	if hits == 0 {
		t.Fatal("no reply came from the cache")
	}
	t.Logf("%d replies from the cache", hits)
}

// TestPacketPatches checks what a reply from the cache takes from its
// query: the ID, the question exactly as spelled (0x20), RD, and RA for a
// client that may recurse; and that it comes from the cache.
func TestPacketPatches(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	up := startUpstream(t)
	s := newServer(t, st, Config{Upstreams: []string{up.addr}})
	build := func(id uint16, name string, rd bool) []byte {
		req := query(name, dns.TypeA)
		req.Id, req.RecursionDesired = id, rd
		req.SetEdns0(1232, true)
		return datagram(t, req)
	}
	udpReply(s, build(1, "www.example.test.", false), loopback)
	for _, tc := range []struct {
		id   uint16
		name string
		rd   bool
		src  netip.Addr
		ra   bool
	}{
		{0xBEEF, "WwW.ExAmPlE.TeSt.", true, loopback, true},
		{0x1234, "www.EXAMPLE.test.", false, netip.MustParseAddr("192.0.2.200"), false},
		{0, "WWW.EXAMPLE.TEST.", true, netip.MustParseAddr("::1"), true},
	} {
		raw := build(tc.id, tc.name, tc.rd)
		if _, ok := cachedReply(s, raw, tc.src); !ok {
			t.Fatalf("%s: not in the cache", tc.name)
		}
		buf := udpReply(s, raw, tc.src)
		m := new(dns.Msg)
		if err := m.Unpack(buf); err != nil {
			t.Fatal(err)
		}
		end := headerLen + len(tc.name) + 1
		if m.Id != tc.id || !bytes.Equal(buf[headerLen:end], raw[headerLen:end]) || m.Question[0].Name != tc.name {
			t.Errorf("id %#x question %q, want %#x %q", m.Id, m.Question[0].Name, tc.id, tc.name)
		}
		if m.RecursionDesired != tc.rd || m.RecursionAvailable != tc.ra || !m.Authoritative || m.Truncated || m.CheckingDisabled || m.AuthenticatedData {
			t.Errorf("%s from %v: flags %+v, want rd %v ra %v aa", tc.name, tc.src, m.MsgHdr, tc.rd, tc.ra)
		}
		if got := short(m.Answer); len(got) != 2 || !strings.EqualFold(m.Answer[0].Header().Name, "www.example.test.") {
			t.Errorf("answer %v", got)
		}
		if opt := m.IsEdns0(); opt == nil || !opt.Do() || opt.UDPSize() != maxUDPSize {
			t.Errorf("OPT %v, want ours with DO", opt)
		}
	}
}

// askCached asks name until its reply is in the answer cache (an
// open-class reply is stored the second time it is built) and returns the
// reply.
func askCached(t *testing.T, s *Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	raw := datagram(t, query(spell0x20(name), qtype))
	for range 3 {
		udpReply(s, raw, loopback)
	}
	if _, ok := cachedReply(s, raw, loopback); !ok {
		t.Fatalf("%s %s: not cached", name, dns.TypeToString[qtype])
	}
	return ask(t, s, query(spell0x20(name), qtype), loopback, true)
}

// TestAnswerCacheFollowsChanges caches answers and then changes the zones
// through every kind of store write (record create, update, delete; zone
// update, create, delete; a zone file import): the next answer must show
// the change.
func TestAnswerCacheFollowsChanges(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{})
	ctx := context.Background()
	soaOf := func(m *dns.Msg) *dns.SOA {
		t.Helper()
		for _, r := range m.Ns {
			if soa, ok := r.(*dns.SOA); ok {
				return soa
			}
		}
		t.Fatalf("no SOA in %v", m)
		return nil
	}
	answer := func(m *dns.Msg) []string {
		for _, r := range m.Answer {
			r.Header().Name = strings.ToLower(r.Header().Name)
		}
		return short(m.Answer)
	}

	m := askCached(t, s, "new.example.test.", dns.TypeA)
	if m.Rcode != dns.RcodeNameError {
		t.Fatalf("before: %v", m)
	}
	r := addRecord(t, st, "example.test.", "new", "A", "192.0.2.123")
	if m = ask(t, s, query(spell0x20("new.example.test."), dns.TypeA), loopback, true); !slices.Equal(answer(m), []string{"new.example.test. A 192.0.2.123"}) {
		t.Fatalf("after create: %v", m)
	}

	askCached(t, s, "new.example.test.", dns.TypeA)
	r.Value = "192.0.2.124"
	if _, err := st.UpdateRecord(ctx, r); err != nil {
		t.Fatal(err)
	}
	if m = ask(t, s, query(spell0x20("new.example.test."), dns.TypeA), loopback, true); !slices.Equal(answer(m), []string{"new.example.test. A 192.0.2.124"}) {
		t.Fatalf("after update: %v", m)
	}

	askCached(t, s, "new.example.test.", dns.TypeA)
	if _, err := st.DeleteRecord(ctx, "example.test.", r.ID); err != nil {
		t.Fatal(err)
	}
	if m = ask(t, s, query("new.example.test.", dns.TypeA), loopback, true); m.Rcode != dns.RcodeNameError {
		t.Fatalf("after delete: %v", m)
	}

	// A zone update changes the SOA every negative answer carries.
	before := soaOf(askCached(t, s, "gone.example.test.", dns.TypeA))
	z, err := st.GetZone(ctx, "example.test.")
	if err != nil {
		t.Fatal(err)
	}
	z.Minimum = 45
	if _, err := st.UpdateZone(ctx, z); err != nil {
		t.Fatal(err)
	}
	after := soaOf(ask(t, s, query("gone.example.test.", dns.TypeA), loopback, true))
	if after.Serial <= before.Serial || after.Minttl != 45 || after.Hdr.Ttl != 45 {
		t.Fatalf("after a zone update: SOA %v, was %v", after, before)
	}

	// A zone created below a served one takes over its names at once, and
	// gives them back when it is deleted.
	if soa := soaOf(askCached(t, s, "www.kid.example.test.", dns.TypeA)); !strings.EqualFold(soa.Hdr.Name, "example.test.") {
		t.Fatalf("before the child zone: SOA of %s", soa.Hdr.Name)
	}
	addZone(t, st, "kid.example.test.", 300, 30)
	if m = ask(t, s, query("www.kid.example.test.", dns.TypeA), loopback, true); soaOf(m).Hdr.Name != "kid.example.test." {
		t.Fatalf("after creating the child zone: %v", m)
	}
	askCached(t, s, "www.kid.example.test.", dns.TypeA)
	if err := st.DeleteZone(ctx, "kid.example.test."); err != nil {
		t.Fatal(err)
	}
	if m = ask(t, s, query("www.kid.example.test.", dns.TypeA), loopback, true); soaOf(m).Hdr.Name != "example.test." {
		t.Fatalf("after deleting the child zone: %v", m)
	}

	// A zone file import writes through the same store.
	askCached(t, s, "www.imported.example.test.", dns.TypeA)
	zf := "$ORIGIN imported.example.test.\n@ 300 IN SOA ns.example.test. h.example.test. 1 3600 600 86400 60\nwww 300 IN A 192.0.2.77\n"
	if _, _, err := zonefile.Import(ctx, st, strings.NewReader(zf), "imported.example.test."); err != nil {
		t.Fatal(err)
	}
	if m = ask(t, s, query(spell0x20("www.imported.example.test."), dns.TypeA), loopback, true); !slices.Equal(answer(m), []string{"www.imported.example.test. A 192.0.2.77"}) {
		t.Fatalf("after a zone file import: %v", m)
	}
}

// TestAnswerCacheFlood is the abuse case: a flood of made-up questions
// (random names, random types at a name that exists, random names under a
// wildcard and below a delegation, a large answer at odd EDNS sizes) must
// neither grow the cache past its budget nor evict the answers the zones
// hold; and no made-up name asked once is stored at all.
func TestAnswerCacheFlood(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	const budget = 64 << 10
	s := newServer(t, st, Config{AnswerCacheBytes: budget})
	kept := []dns.Question{{Name: "www.example.test.", Qtype: dns.TypeA}, {Name: "www.example.test.", Qtype: dns.TypeAAAA},
		{Name: "alias.example.test.", Qtype: dns.TypeA}, {Name: "example.test.", Qtype: dns.TypeMX},
		{Name: "txt.example.test.", Qtype: dns.TypeTXT}, {Name: "host.other.test.", Qtype: dns.TypeA}}
	raws := make([][]byte, len(kept))
	for i, k := range kept {
		raws[i] = datagram(t, query(k.Name, k.Qtype))
		udpReply(s, raws[i], loopback)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	label := func() string { return fmt.Sprintf("r%x", rnd.Uint64()) }
	for i := range 40000 {
		var req *dns.Msg
		switch i % 5 {
		case 0:
			req = query(label()+".example.test.", dns.TypeA)
		case 1:
			req = query("www.example.test.", uint16(1000+i)) //nolint:gosec // below 65536
		case 2:
			req = query(label()+".wild.example.test.", dns.TypeA)
		case 3:
			req = query(label()+".sub.example.test.", dns.TypeAAAA)
		case 4:
			req = query("big.example.test.", dns.TypeTXT)
			req.SetEdns0(uint16(513+rnd.IntN(1232-513)), false)
		}
		if udpReply(s, datagram(t, req), loopback) == nil {
			t.Fatalf("no reply to %v", req.Question)
		}
	}
	entries, used := s.answers.usage()
	if entries[cacheOpen] != 0 {
		t.Errorf("%d made-up questions cached", entries[cacheOpen])
	}
	if total := used[cacheBounded] + used[cacheOpen]; total > budget {
		t.Errorf("cache holds %d bytes, over its budget of %d", total, budget)
	}
	for i, raw := range raws {
		if _, ok := cachedReply(s, raw, loopback); !ok {
			t.Errorf("%v evicted by the flood", kept[i])
		}
	}
	// Names asked again and again are cached, within their share.
	for i := range 5000 {
		raw := datagram(t, query(fmt.Sprintf("again%d.example.test.", i), dns.TypeA))
		udpReply(s, raw, loopback)
		udpReply(s, raw, loopback)
	}
	entries, used = s.answers.usage()
	if entries[cacheOpen] == 0 || used[cacheOpen] > budget/openShare {
		t.Errorf("repeated NXDOMAINs: %d entries of %d bytes, want some within %d", entries[cacheOpen], used[cacheOpen], budget/openShare)
	}
	for i, raw := range raws {
		if _, ok := cachedReply(s, raw, loopback); !ok {
			t.Errorf("%v evicted by repeated NXDOMAINs", kept[i])
		}
	}
}

// TestFormErrMatchesMiekg sends datagrams that do not unpack to a
// miekg/dns server, as MCNS used to run for UDP, and checks that packet
// answers each with the same bytes (or, like it, not at all).
func TestFormErrMatchesMiekg(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(dns.ResponseWriter, *dns.Msg) { t.Error("the handler got a message that does not unpack") })
	srv := &dns.Server{PacketConn: pc, Handler: h, MsgAcceptFunc: accept, UDPSize: readBufferSize}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	conn, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n := 0
	for _, raw := range fuzzSeeds(t) {
		if err := new(dns.Msg).Unpack(raw); err == nil || len(raw) < headerLen {
			continue
		}
		n++
		want, _ := s.packet(context.Background(), raw, loopback, nil)
		if _, err := conn.Write(raw); err != nil {
			t.Fatal(err)
		}
		wait := 2 * time.Second
		if want == nil {
			wait = 300 * time.Millisecond
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, dns.MaxMsgSize)
		got, err := conn.Read(buf)
		switch {
		case want == nil && err == nil:
			t.Errorf("%x: miekg/dns answered %x, packet nothing", raw, buf[:got])
		case want != nil && err != nil:
			t.Errorf("%x: miekg/dns did not answer: %v", raw, err)
		case want != nil && !bytes.Equal(buf[:got], want):
			t.Errorf("%x: miekg/dns sent\n%x\npacket\n%x", raw, buf[:got], want)
		}
	}
	if n == 0 {
		t.Fatal("no seed fails to unpack")
	}
}

// FuzzParseQuery checks parseQuery against miekg/dns: whatever it admits,
// Unpack reads as the same plain query (one question with the name, type
// and class of the key, no other records but the OPT, an OPT exactly when
// parseQuery saw one, with its size, version 0 and DO bit).
func FuzzParseQuery(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var kb [maxKeyLen]byte
		q, ok := parseQuery(raw, kb[:0])
		if !ok {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(raw); err != nil {
			t.Fatalf("parseQuery admits a message Unpack refuses: %v", err)
		}
		if m.Response || m.Opcode != dns.OpcodeQuery || len(m.Question) != 1 || len(m.Answer) != 0 || len(m.Ns) != 0 {
			t.Fatalf("admitted %v", m)
		}
		qn := m.Question[0]
		wire := make([]byte, maxNameWire)
		n, err := dns.PackDomainName(strings.ToLower(qn.Name), wire, 0, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if q.nameEnd != headerLen+n || !bytes.Equal(q.key[:n], wire[:n]) || !bytes.Equal(q.key[:n], dnsLower(raw[headerLen:q.nameEnd])) {
			t.Fatalf("key name %q for question %q", q.key[:q.nameEnd-headerLen], qn.Name)
		}
		rest := q.key[n:]
		if binary.BigEndian.Uint16(rest) != qn.Qtype || binary.BigEndian.Uint16(rest[2:]) != qn.Qclass {
			t.Fatalf("key type/class %x for %v", rest[:4], qn)
		}
		opt, n := clientOPT(m)
		if n != len(m.Extra) || q.edns != (n == 1) {
			t.Fatalf("additional %v, parseQuery saw EDNS %v", m.Extra, q.edns)
		}
		if opt != nil && (opt.Hdr.Name != "." || opt.Version() != 0 || opt.UDPSize() != q.udpSize || opt.Do() != (rest[4]&keyDO != 0)) {
			t.Fatalf("OPT %v, key flags %x size %d", opt, rest[4], q.udpSize)
		}
	})
}

// dnsLower lower-cases the ASCII letters of a name on the wire.
func dnsLower(b []byte) []byte {
	out := bytes.Clone(b)
	for i, c := range out {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return out
}
