package dnsserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// The wire format the UDP path reads and patches (RFC 1035 section 4.1).
const (
	headerLen  = 12
	minUDPSize = dns.MinMsgSize // 512: a client without EDNS
	// maxNameWire is the longest name on the wire, its root label included.
	maxNameWire = 255
	// sizeClassLen is the size class at the end of a cache key.
	sizeClassLen = 2
	// maxKeyLen is the longest answer cache key: a name, QTYPE, QCLASS,
	// the EDNS flags and the size class.
	maxKeyLen = maxNameWire + 2 + 2 + 1 + sizeClassLen

	flagQR = 0x80 // in byte 2
	flagRD = 0x01 // in byte 2
	flagRA = 0x80 // in byte 3

	keyEDNS = 1 << 0 // in the key's flags byte
	keyDO   = 1 << 1
)

// wireQuery is a query read straight from the datagram by parseQuery.
type wireQuery struct {
	// nameEnd is the offset just past the question name, which starts
	// at headerLen: raw[headerLen:nameEnd] is the client's spelling.
	nameEnd int
	edns    bool
	udpSize uint16
	// key is the answer cache key: the name in lower case as on the wire,
	// QTYPE, QCLASS, a flags byte (EDNS, DO) and the size class, which
	// lookup and put set.
	key []byte
}

// limit is the reply size the client accepts over UDP: its EDNS size
// bounded to [512, maxUDPSize], or 512 without EDNS.
func (q *wireQuery) limit() int {
	if !q.edns {
		return minUDPSize
	}
	return max(minUDPSize, min(int(q.udpSize), maxUDPSize))
}

// setSizeClass sets the size class of a cache key: 0 for a complete reply
// (which answers every client that accepts its length), else the limit a
// cut reply was cut for.
func setSizeClass(key []byte, limit int) {
	binary.BigEndian.PutUint16(key[len(key)-sizeClassLen:], uint16(limit)) //nolint:gosec // limit is at most maxUDPSize
}

// parseQuery reads raw, a datagram, as a plain query: opcode QUERY, one
// question whose name has no compression pointers and no byte miekg/dns
// would escape, no answer or authority records, and nothing in the
// additional section but an EDNS version 0 OPT owned by the root whose
// options (if any) are cookies, NSIDs or padding. That is nearly every
// query a resolver or stub sends. For such a datagram miekg/dns's Unpack
// succeeds and reads the same question, flags and OPT (FuzzParseQuery
// checks this), so it may be answered from the cache. Anything else
// returns false and takes the general path, which unpacks it. The key is
// built in key's array (cap maxKeyLen).
func parseQuery(raw, key []byte) (wireQuery, bool) {
	var q wireQuery
	if len(raw) < headerLen || raw[2]&0xF8 != 0 || // QR and opcode
		binary.BigEndian.Uint16(raw[4:]) != 1 || binary.BigEndian.Uint16(raw[6:]) != 0 ||
		binary.BigEndian.Uint16(raw[8:]) != 0 || binary.BigEndian.Uint16(raw[10:]) > 1 {
		return q, false
	}
	off := headerLen
	budget := maxNameWire
	for {
		if off >= len(raw) {
			return q, false
		}
		n := int(raw[off])
		off++
		if n == 0 {
			break
		}
		// A pointer or a reserved label type, or a name miekg/dns would
		// refuse as too long (its budget counts a separator per label).
		if n > 63 || off+n > len(raw) {
			return q, false
		}
		if budget -= n + 1; budget <= 0 {
			return q, false
		}
		key = append(key, byte(n))
		for _, b := range raw[off : off+n] {
			if !plainNameByte(b) {
				return q, false
			}
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			key = append(key, b)
		}
		off += n
	}
	key = append(key, 0)
	q.nameEnd = off
	if off+4 > len(raw) {
		return q, false
	}
	key = append(key, raw[off:off+4]...) // QTYPE, QCLASS
	off += 4
	var flags byte
	if binary.BigEndian.Uint16(raw[10:]) == 1 {
		// The OPT record: root owner, type, class (the UDP size), TTL
		// (extended rcode, version, flags), RDLENGTH, options.
		if off+11 > len(raw) || raw[off] != 0 || binary.BigEndian.Uint16(raw[off+1:]) != dns.TypeOPT {
			return q, false
		}
		q.udpSize = binary.BigEndian.Uint16(raw[off+3:])
		version, do := raw[off+6], raw[off+7]&0x80 != 0
		rdlen := int(binary.BigEndian.Uint16(raw[off+9:]))
		off += 11
		if version != 0 || off+rdlen > len(raw) || !plainOptions(raw[off:off+rdlen]) {
			return q, false
		}
		q.edns = true
		flags = keyEDNS
		if do {
			flags |= keyDO
		}
	}
	key = append(key, flags, 0, 0)
	q.key = key
	return q, true
}

// plainNameByte reports whether miekg/dns shows b in a name as itself:
// printable, and not one of the bytes it escapes.
func plainNameByte(b byte) bool {
	switch b {
	case '.', ' ', '\'', '@', ';', '(', ')', '"', '\\':
		return false
	}
	return b > ' ' && b <= '~'
}

// plainOptions reports whether opts, an OPT record's RDATA, is a list of
// options miekg/dns unpacks without fail: cookies, NSIDs and padding,
// each within the RDATA. They play no part in the reply (none is echoed).
func plainOptions(opts []byte) bool {
	for len(opts) > 0 {
		if len(opts) < 4 {
			return false
		}
		code, n := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if code != dns.EDNS0COOKIE && code != dns.EDNS0NSID && code != dns.EDNS0PADDING || 4+n > len(opts) {
			return false
		}
		opts = opts[4+n:]
	}
	return true
}

// patch copies a cached reply into out (or a new slice if out is too
// small) and makes it the reply to raw: the query's ID, its RD bit, RA for
// a client that may recurse, and the question name as the client spelled
// it. Names in the answer that compress to the question take that
// spelling too, as knot's do.
func (q *wireQuery) patch(out, cached, raw []byte, ra bool) []byte {
	if cap(out) < len(cached) {
		out = make([]byte, len(cached))
	}
	out = out[:len(cached)]
	copy(out, cached)
	out[0], out[1] = raw[0], raw[1]
	out[2] |= raw[2] & flagRD
	if ra {
		out[3] |= flagRA
	}
	copy(out[headerLen:q.nameEnd], raw[headerLen:q.nameEnd])
	return out
}

// canonical is the form a reply is cached in: a copy without the parts
// patch fills in per query (ID, RD, RA).
func canonical(reply []byte) []byte {
	c := bytes.Clone(reply)
	c[0], c[1] = 0, 0
	c[2] &^= flagRD
	c[3] &^= flagRA
	return c
}

// packet answers one UDP datagram from src: the reply to send (built in
// out when it fits there), or nil to send nothing. A query that has to
// wait for an upstream is not answered here: forward is true, and the
// caller answers it with forwardPacket in a goroutine of its own, so that
// the read loop never waits. The fuzz target runs this same function.
func (s *Server) packet(ctx context.Context, raw []byte, src netip.Addr, out []byte) (reply []byte, forward bool) {
	if len(raw) < headerLen || raw[2]&flagQR != 0 {
		// No header, or a response: answering responses invites
		// reflection loops.
		return nil, false
	}
	var kb [maxKeyLen]byte
	q, plain := parseQuery(raw, kb[:0])
	if plain {
		if cached := s.answers.lookup(q.key, q.limit()); cached != nil {
			return q.patch(out, cached, raw, s.recursionAllowed(src)), false
		}
	}
	return s.answerPacket(ctx, raw, &q, plain, src, false)
}

// forwardPacket answers a datagram packet handed over: it waits for the
// upstreams as long as they take.
func (s *Server) forwardPacket(ctx context.Context, raw []byte, src netip.Addr) []byte {
	var kb [maxKeyLen]byte
	q, plain := parseQuery(raw, kb[:0])
	reply, _ := s.answerPacket(ctx, raw, &q, plain, src, true)
	return reply
}

// answerPacket answers raw by unpacking it and building the reply (see
// packet; block is respond's). A plain query is answered as if its name
// were in lower case, and its reply is cached in that form when the zones
// gave it; the client's spelling goes back into the question afterwards.
// Answering every plain query that way, cached or not, keeps the bytes
// sent the same whether or not the cache held the reply.
func (s *Server) answerPacket(ctx context.Context, raw []byte, q *wireQuery, plain bool, src netip.Addr, block bool) (reply []byte, forward bool) {
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		return formErr(req), false
	}
	gen := s.answers.generation()
	spelled := ""
	if plain {
		spelled = req.Question[0].Name
		req.Question[0].Name = strings.ToLower(spelled)
	}
	var r response
	if !s.respond(ctx, &r, req, src, true, block) {
		return nil, false
	}
	if r.forward {
		return nil, true
	}
	buf, complete := s.packReply(&r, req)
	if buf == nil || !plain {
		return buf, false
	}
	if len(buf) < q.nameEnd || !bytes.EqualFold(buf[headerLen:q.nameEnd], raw[headerLen:q.nameEnd]) {
		// parseQuery admits only names that pack back as they came, so
		// this does not happen; if it did, answer the question as asked.
		req.Question[0].Name = spelled
		return s.reply(ctx, req, src, true), false
	}
	if limit := q.limit(); complete || cutCached(limit) {
		if complete {
			limit = 0
		}
		setSizeClass(q.key, limit)
		s.answers.put(q.key, canonical(buf), r.class, gen)
	}
	copy(buf[headerLen:q.nameEnd], raw[headerLen:q.nameEnd])
	return buf, false
}

// formErr is the reply to a message that does not unpack, as miekg/dns's
// server (which MCNS used for UDP before it had its own read loop) sends
// it: the header and whatever question was read, with FORMERR, opcode
// QUERY and no records. req is the partly unpacked message.
func formErr(req *dns.Msg) []byte {
	req.SetRcodeFormatError(req)
	req.Zero = false
	req.Answer, req.Ns, req.Extra = nil, nil, nil
	buf, err := req.Pack()
	if err != nil {
		return nil
	}
	return buf
}
