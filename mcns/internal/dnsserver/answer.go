package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"

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
// message is unpacked. Responses are dropped: answering them invites
// reflection loops. Everything else is unpacked and answered by respond,
// which needs the question and the OPT record to answer a rejected opcode
// or question count the way knot does, with the question and OPT echoed;
// miekg/dns's own rejection would answer with neither. Unpacking costs no
// more than the bytes sent: at most readBufferSize over UDP, 64 KiB over
// TCP.
func accept(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// response is a reply being built: the message, the size it must pack
// into, our OPT record (packed last) and the additional-section address
// RRsets, which give way first when the reply is too large.
type response struct {
	msg   *dns.Msg
	limit int
	opt   *dns.OPT
	// class says whether the packed reply may go into the answer cache,
	// and in which part: only answers from the zones do.
	class cacheClass
	// forward is set instead of an answer when the question must wait
	// for an upstream and the caller asked not to block (the UDP read
	// loop, which hands such a query to a goroutine of its own).
	forward bool
	// glue are the in-domain glue RRsets of a referral (name servers below
	// the cut): without them the referral cannot be followed, so a reply
	// they do not fit in is truncated (RFC 9471).
	glue [][]dns.RR
	// extra are address RRsets that only save the client a query. They are
	// dropped, last first, until the reply fits, and never cause TC (RFC
	// 2181 section 9).
	extra [][]dns.RR
}

// addTargets queues the addresses z has for the targets of the NS, MX and
// SRV records in rrs. cut is the delegation point when rrs is a referral's
// NS set: targets below it are glue the referral needs. Each target's
// addresses are added once.
func (r *response) addTargets(z *zone, rrs []dns.RR, cut string) {
	for _, rr := range rrs {
		target := targetOf(rr)
		sets := z.addrs[target]
		if len(sets) == 0 || r.queued(target) {
			continue
		}
		if cut != "" && dns.IsSubDomain(cut, target) {
			r.glue = append(r.glue, sets...)
		} else {
			r.extra = append(r.extra, sets...)
		}
	}
}

// queued reports whether the addresses of name are already queued.
func (r *response) queued(name string) bool {
	for _, sets := range [2][][]dns.RR{r.glue, r.extra} {
		for _, set := range sets {
			if set[0].Header().Name == name {
				return true
			}
		}
	}
	return false
}

// reply is everything after unpacking: it answers req, received from src
// over UDP (udp) or TCP, and returns the packed reply, or nil to send
// nothing, waiting for upstreams if it must. The TCP server goes through
// it; the UDP path (packet.go) through the same respond and packReply.
func (s *Server) reply(ctx context.Context, req *dns.Msg, src netip.Addr, udp bool) []byte {
	var r response
	if !s.respond(ctx, &r, req, src, udp, true) {
		return nil
	}
	buf, _ := s.packReply(&r, req)
	return buf
}

// packReply packs the reply r built for req; complete reports that nothing
// was left out to fit r.limit, so the same bytes answer any client that
// accepts len(buf). A reply that does not pack becomes SERVFAIL, or nil if
// even that fails.
func (s *Server) packReply(r *response, req *dns.Msg) (buf []byte, complete bool) {
	buf, complete, err := r.pack()
	if err == nil {
		return buf, complete
	}
	s.logger.Warn("dns: reply does not pack; sending SERVFAIL", "name", questionName(req), "err", err)
	r.class = notCached
	m := r.msg
	m.Rcode = dns.RcodeServerFailure
	m.Authoritative, m.Truncated, m.AuthenticatedData = false, false, false
	m.Answer, m.Ns, m.Extra = nil, nil, nil
	if r.opt != nil {
		m.Extra = []dns.RR{r.opt}
	}
	if buf, err = m.Pack(); err != nil {
		return nil, false
	}
	return buf, false
}

func questionName(m *dns.Msg) string {
	if len(m.Question) == 0 {
		return ""
	}
	return m.Question[0].Name
}

// respond builds in r the reply to req and the size it must pack into: the
// client's EDNS UDP size between 512 and maxUDPSize over UDP, the DNS
// maximum over TCP. False means send nothing. Unless block, a question the
// forwarder cannot answer from its cache sets r.forward instead of waiting
// for an upstream.
//
// Every reply echoes the ID, the opcode, RD and the question when there is
// exactly one, and never Z; AA, TC, RA, AD and CD are set only where the
// answer calls for them, never copied from the query. The checks run in
// knot's order: OPT records, EDNS version, question count, class, then
// the opcode.
func (s *Server) respond(ctx context.Context, r *response, req *dns.Msg, src netip.Addr, udp, block bool) bool {
	if req.Response {
		return false
	}
	m := &dns.Msg{Compress: true}
	m.Id, m.Response, m.Opcode = req.Id, true, req.Opcode
	m.RecursionDesired = req.RecursionDesired
	if len(req.Question) == 1 {
		m.Question = []dns.Question{req.Question[0]}
	}
	*r = response{msg: m, limit: dns.MaxMsgSize}
	if udp {
		r.limit = dns.MinMsgSize
	}

	opt, opts := clientOPT(req)
	if opts > 1 || opt != nil && opt.Hdr.Name != "." {
		// RFC 6891 section 6.1.1: more than one OPT is a format error,
		// answered without EDNS.
		m.Rcode = dns.RcodeFormatError
		return true
	}
	if opt != nil {
		if udp {
			r.limit = max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize))
		}
		// Our own OPT: our size and version, the DO bit echoed, and none
		// of the client's options (they are not ours to repeat).
		r.opt = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		r.opt.SetUDPSize(maxUDPSize)
		if opt.Do() {
			r.opt.SetDo()
		}
		if opt.Version() != 0 {
			// Only version 0 exists; the reply says which we speak.
			m.Rcode = dns.RcodeBadVers
			return true
		}
	}
	if len(req.Question) != 1 {
		// The opcodes we know all take exactly one question (RFC 1035
		// section 4.1.2, RFC 1996, RFC 2136); the others are not
		// implemented at all.
		m.Rcode = dns.RcodeFormatError
		if len(req.Question) == 0 && !knownOpcode(req.Opcode) {
			m.Rcode = dns.RcodeNotImplemented
		}
		return true
	}
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = otherOpcode(req.Opcode, req.Question[0])
		return true
	}
	s.answer(ctx, r, req, src, opt != nil && opt.Do(), block)
	return true
}

// knownOpcode reports whether op is one we answer with more than NOTIMP.
func knownOpcode(op int) bool {
	return op == dns.OpcodeQuery || op == dns.OpcodeNotify || op == dns.OpcodeUpdate
}

// otherOpcode is the rcode for a single-question message with an opcode
// other than QUERY, as knot answers without an ACL allowing the sender:
// NOTIFY is not authorized (MCNS has no secondaries to refresh) and
// neither is UPDATE (the record API changes zones), unless the update's
// zone section is malformed; every other opcode is not implemented.
func otherOpcode(op int, q dns.Question) int {
	switch q.Qclass {
	case dns.ClassINET, dns.ClassANY:
	case dns.ClassCHAOS:
		return dns.RcodeNotImplemented
	default:
		return dns.RcodeRefused
	}
	switch op {
	case dns.OpcodeNotify:
		return dns.RcodeNotAuth
	case dns.OpcodeUpdate:
		if q.Qtype != dns.TypeSOA {
			// RFC 2136 section 3.1.1: the zone section names a zone by
			// its SOA.
			return dns.RcodeFormatError
		}
		return dns.RcodeNotAuth
	}
	return dns.RcodeNotImplemented
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

// answer fills r, the reply to the single-question query req: from the
// zones when the name is in one, else through the forwarder for clients
// allowed to recurse (see respond for block).
func (s *Server) answer(ctx context.Context, r *response, req *dns.Msg, src netip.Addr, do, block bool) {
	m := r.msg
	q := req.Question[0]
	recursion := s.recursionAllowed(src)
	m.RecursionAvailable = recursion
	switch {
	case q.Qclass != dns.ClassINET:
		m.Rcode = dns.RcodeRefused
		return
	case q.Qtype == 0:
		// Type 0 is reserved (RFC 6895 section 3.1); knot does not
		// implement it either.
		m.Rcode = dns.RcodeNotImplemented
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
	if z := zs.zoneFor(name, q.Qtype); z != nil {
		authoritative(r, zs, z, name, q.Qtype)
		return
	}
	if !recursion {
		m.Rcode = dns.RcodeRefused
		return
	}
	k := cacheKey{name: name, qtype: q.Qtype, qclass: q.Qclass, do: do}
	v, hit := s.fwd.cache.get(k)
	if !hit && !block {
		r.forward = true
		return
	}
	var err error
	if !hit {
		v, err = s.fwd.resolve(ctx, k)
	}
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.logger.Warn("dns: forwarding failed", "name", name, "type", dns.TypeToString[q.Qtype], "err", err)
		}
		m.Rcode = dns.RcodeServerFailure
		return
	}
	m.Rcode = v.rcode
	// A recursive answer copies CD (RFC 4035 section 3.2.2); authoritative
	// ones clear it (section 3.1.6).
	m.CheckingDisabled = req.CheckingDisabled
	m.AuthenticatedData = v.authenticated && (do || req.AuthenticatedData)
	m.Answer, m.Ns, m.Extra = v.answer, v.ns, v.ext
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
// within and across served zones, and queues the addresses of NS, MX and
// SRV targets for the additional section (not for ANY, whose answer is
// large enough already). It sets r.class: records of the asked type found
// at names that exist are answers the zones hold a bounded number of;
// every other outcome (NXDOMAIN, NODATA, wildcard answers, referrals, a
// chain cut short) can be had for any name or type a client makes up.
func authoritative(r *response, zs *zoneSet, z *zone, name string, qtype uint16) {
	m := r.msg
	m.Authoritative = true
	r.class = cacheOpen
	synth := false
	for hops := 0; ; hops++ {
		res := z.lookup(name, qtype)
		synth = synth || res.synth
		switch res.kind {
		case kindAnswer:
			m.Answer = append(m.Answer, res.rrs...)
			if slices.Contains(additionalTypes[:], qtype) {
				r.addTargets(z, res.rrs, "")
			}
			if !synth {
				r.class = cacheBounded
			}
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
			r.addTargets(z, res.rrs, res.cut)
			return
		case kindCNAME:
			m.Answer = append(m.Answer, res.rrs...)
			if hops+1 >= maxCNAMEChain || res.target == "" || ownsCNAME(m.Answer, res.target) {
				return
			}
			next := zs.zoneFor(res.target, qtype)
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

// pack packs the reply into at most r.limit bytes. Additional address
// RRsets that do not fit are left out, whole and last first, without TC. A
// reply that does not fit even without them is cut to its header,
// question and OPT with TC set, so the client retries over TCP (RFC 7766);
// over TCP the limit is the protocol's own. complete reports that the
// reply is whole: nothing was left out to fit.
func (r *response) pack() (buf []byte, complete bool, err error) {
	m := r.msg
	// m.Extra holds a forwarded answer's additional records, which stay;
	// clipped, so appending never writes into the cached answer's array.
	add := slices.Clip(m.Extra)
	for _, set := range r.glue {
		add = append(add, set...)
	}
	required := len(add)
	for _, set := range r.extra {
		add = append(add, set...)
	}
	keep := func(n int) {
		m.Extra = add[:n:n]
		if r.opt != nil {
			m.Extra = append(m.Extra, r.opt)
		}
	}
	keep(len(add))
	if buf, err = m.Pack(); err != nil {
		return nil, false, fmt.Errorf("pack reply: %w", err)
	}
	if len(buf) <= r.limit {
		return buf, true, nil
	}
	if len(r.extra) > 0 {
		// ends[i] is how many records of add remain with i extra RRsets.
		ends := make([]int, len(r.extra)+1)
		ends[0] = required
		for i, set := range r.extra {
			ends[i+1] = ends[i] + len(set)
		}
		// The most extra RRsets that fit: fewer records never pack larger.
		var packErr error
		kept := sort.Search(len(ends), func(i int) bool {
			keep(ends[i])
			b, err := m.Pack()
			if err != nil {
				packErr = err
				return true
			}
			return len(b) > r.limit
		}) - 1
		if packErr != nil {
			return nil, false, fmt.Errorf("pack reply: %w", packErr)
		}
		if kept >= 0 {
			keep(ends[kept])
			if buf, err = m.Pack(); err != nil {
				return nil, false, fmt.Errorf("pack reply: %w", err)
			}
			return buf, false, nil
		}
	}
	t := &dns.Msg{MsgHdr: m.MsgHdr, Compress: true, Question: m.Question}
	t.Truncated = true
	if r.opt != nil {
		t.Extra = []dns.RR{r.opt}
	}
	if buf, err = t.Pack(); err != nil {
		return nil, false, fmt.Errorf("pack truncated reply: %w", err)
	}
	if len(buf) > r.limit {
		return nil, false, fmt.Errorf("truncated reply of %d bytes exceeds %d", len(buf), r.limit)
	}
	return buf, false, nil
}
