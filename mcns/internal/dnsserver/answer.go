package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/miekg/dns"
)

const (
	// maxUDPSize is the EDNS UDP payload size advertised and the most sent
	// over UDP whatever the client offers (the DNS flag day 2020 value, which
	// avoids IP fragmentation).
	maxUDPSize = 1232
	// maxCNAMEChain bounds the CNAMEs followed for one answer, which also
	// ends loops.
	maxCNAMEChain = 8
	// readBufferSize is the UDP read buffer; queries are small, but EDNS
	// options may take them past 512 bytes.
	readBufferSize = 4096
)

// accept is the servers' MsgAcceptFunc, run on the header before the
// message is unpacked: responses are dropped (answering them invites
// reflection loops), opcodes other than QUERY get NOTIMP, and anything
// that is not a single question with at most an OPT and a signature gets
// FORMERR.
func accept(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	if opcode := int(dh.Bits>>11) & 0xF; opcode != dns.OpcodeQuery {
		return dns.MsgRejectNotImplemented
	}
	if dh.Qdcount != 1 || dh.Ancount > 1 || dh.Nscount > 1 || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// reply is everything after unpacking: it answers req, received from src
// over UDP (udp) or TCP, and returns the packed reply, or nil to send
// nothing. The servers and the fuzz target both go through it.
func (s *Server) reply(ctx context.Context, req *dns.Msg, src netip.Addr, udp bool) []byte {
	m, limit := s.respond(ctx, req, src, udp)
	if m == nil {
		return nil
	}
	buf, err := encode(m, limit)
	if err == nil {
		return buf
	}
	s.logger.Warn("dns: reply does not pack; sending SERVFAIL", "name", questionName(req), "err", err)
	fail := new(dns.Msg)
	fail.SetRcode(req, dns.RcodeServerFailure)
	if buf, err = fail.Pack(); err != nil {
		return nil
	}
	return buf
}

func questionName(m *dns.Msg) string {
	if len(m.Question) == 0 {
		return ""
	}
	return m.Question[0].Name
}

// respond builds the reply to req and the size it must pack into: the
// client's EDNS UDP size between 512 and maxUDPSize over UDP, the DNS
// maximum over TCP. A nil reply means send nothing.
func (s *Server) respond(ctx context.Context, req *dns.Msg, src netip.Addr, udp bool) (*dns.Msg, int) {
	if req.Response {
		return nil, 0
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	limit := dns.MaxMsgSize
	if udp {
		limit = dns.MinMsgSize
	}
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, limit
	}

	opt, opts := clientOPT(req)
	if opts > 1 || opt != nil && opt.Hdr.Name != "." {
		// RFC 6891 section 6.1.1: more than one OPT is a format error,
		// answered without EDNS.
		m.Rcode = dns.RcodeFormatError
		return m, limit
	}
	var own *dns.OPT
	if opt != nil {
		if udp {
			limit = max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize))
		}
		own = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		own.SetUDPSize(maxUDPSize)
		if opt.Do() {
			own.SetDo()
		}
		if opt.Version() != 0 {
			// Only version 0 exists; the reply says which we speak.
			m.Rcode = dns.RcodeBadVers
			m.Extra = []dns.RR{own}
			return m, limit
		}
	}
	s.answer(ctx, m, req, src, opt != nil && opt.Do())
	if own != nil {
		m.Extra = append(m.Extra, own)
	}
	return m, limit
}

// clientOPT returns the query's OPT record and how many it has.
func clientOPT(req *dns.Msg) (*dns.OPT, int) {
	var opt *dns.OPT
	n := 0
	for _, r := range req.Extra {
		if o, ok := r.(*dns.OPT); ok {
			opt = o
			n++
		}
	}
	return opt, n
}

// answer fills m, the reply to the single-question query req: from the
// zones when the name is in one, else through the forwarder for clients
// allowed to recurse.
func (s *Server) answer(ctx context.Context, m, req *dns.Msg, src netip.Addr, do bool) {
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return
	}
	q := req.Question[0]
	recursion := s.recursionAllowed(src)
	m.RecursionAvailable = recursion
	switch {
	case q.Qclass != dns.ClassINET:
		m.Rcode = dns.RcodeRefused
		return
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		// Zone transfers are not offered; the record API is the way to
		// read a zone.
		m.Rcode = dns.RcodeRefused
		return
	case q.Qtype == dns.TypeOPT || q.Qtype == dns.TypeTSIG || q.Qtype == dns.TypeTKEY:
		m.Rcode = dns.RcodeFormatError
		return
	}
	name := dns.CanonicalName(q.Name)
	zs := s.zones.Load()
	if z := zs.find(name); z != nil {
		authoritative(m, zs, z, name, q.Qtype)
		return
	}
	if !recursion {
		m.Rcode = dns.RcodeRefused
		return
	}
	v, err := s.fwd.resolve(ctx, cacheKey{name: name, qtype: q.Qtype, qclass: q.Qclass, do: do})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.logger.Warn("dns: forwarding failed", "name", name, "type", dns.TypeToString[q.Qtype], "err", err)
		}
		m.Rcode = dns.RcodeServerFailure
		return
	}
	m.Rcode = v.rcode
	m.AuthenticatedData = v.authenticated && (do || req.AuthenticatedData)
	m.Answer, m.Ns, m.Extra = v.answer, v.ns, append(m.Extra, v.ext...)
}

// recursionAllowed reports whether src may use forwarding.
func (s *Server) recursionAllowed(src netip.Addr) bool {
	if len(s.fwd.upstreams) == 0 {
		return false
	}
	src = src.Unmap()
	for _, p := range s.nets {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// authoritative answers name (in z) from the zones, following CNAMEs
// within and across served zones.
func authoritative(m *dns.Msg, zs *zoneSet, z *zone, name string, qtype uint16) {
	m.Authoritative = true
	for hops := 0; ; hops++ {
		res := z.lookup(name, qtype)
		switch res.kind {
		case kindAnswer:
			m.Answer = append(m.Answer, res.rrs...)
			return
		case kindNoData:
			m.Ns = append(m.Ns, z.negSOA)
			return
		case kindNXDomain:
			// After a CNAME the rcode still describes the last name
			// (RFC 6604).
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, z.negSOA)
			return
		case kindDelegation:
			// A referral: the child zone's servers hold the answer.
			if hops == 0 {
				m.Authoritative = false
			}
			m.Ns = append(m.Ns, res.rrs...)
			m.Extra = append(m.Extra, res.glue...)
			return
		case kindCNAME:
			m.Answer = append(m.Answer, res.rrs...)
			if hops+1 >= maxCNAMEChain || res.target == "" || ownsCNAME(m.Answer, res.target) {
				return
			}
			next := zs.find(res.target)
			if next == nil {
				// Outside our zones: the client's resolver follows it.
				return
			}
			z, name = next, res.target
		}
	}
}

// ownsCNAME reports whether name already owns a CNAME in answer, which
// would make following it a loop.
func ownsCNAME(answer []dns.RR, name string) bool {
	for _, r := range answer {
		if r.Header().Rrtype == dns.TypeCNAME && r.Header().Name == name {
			return true
		}
	}
	return false
}

// encode packs m into at most limit bytes. A reply that does not fit is
// cut to its header, question and OPT with TC set, so the client retries
// over TCP (RFC 7766); over TCP the limit is the protocol's own.
func encode(m *dns.Msg, limit int) ([]byte, error) {
	buf, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack reply: %w", err)
	}
	if len(buf) <= limit {
		return buf, nil
	}
	t := &dns.Msg{MsgHdr: m.MsgHdr, Compress: true, Question: m.Question}
	t.Truncated = true
	if opt := m.IsEdns0(); opt != nil {
		t.Extra = []dns.RR{opt}
	}
	if buf, err = t.Pack(); err != nil {
		return nil, fmt.Errorf("pack truncated reply: %w", err)
	}
	if len(buf) > limit {
		return nil, fmt.Errorf("truncated reply of %d bytes exceeds %d", len(buf), limit)
	}
	return buf, nil
}
