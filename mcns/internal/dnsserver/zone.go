package dnsserver

import (
	"log/slog"
	"slices"

	"github.com/miekg/dns"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/rr"
)

// zone is one served zone indexed for lookups. It is never modified after
// buildZone returns: a change to the zone builds a new one, so queries read
// it without locks.
type zone struct {
	name string // canonical: lower case with the trailing dot
	// negSOA is the SOA put in the authority section of negative answers,
	// its TTL lowered to the SOA minimum (RFC 2308 section 3).
	negSOA *dns.SOA
	nodes  map[string]*node
	// ents are the empty non-terminals: names without records of their own
	// but with records below them. They exist (NODATA, not NXDOMAIN) and
	// stop wildcard matching (RFC 4592 section 2.2.2).
	ents map[string]struct{}
	// cuts are the delegation points: owners of NS records below the apex.
	cuts map[string]struct{}
	// wild says some owner is a wildcard, so a missing name is worth the
	// closest-encloser search.
	wild bool
	// addrs holds, for every NS, MX and SRV target inside the zone, the
	// target's address RRsets (A, then AAAA) for the additional section:
	// its own, glue below a zone cut included, or synthesized from a
	// wildcard. Targets without addresses are absent. Computed with the
	// build, so a change to a target's addresses reaches the additional
	// section with the next swap, like every other answer.
	addrs map[string][][]dns.RR
	// built keeps each record with its parsed RR so the next build reuses
	// the RRs of records that did not change.
	built map[int64]builtRecord
}

type builtRecord struct {
	rec dnsdata.Record
	rr  dns.RR
}

// node is the data at one owner name.
type node struct {
	byType map[uint16][]dns.RR
	all    []dns.RR // every RR at the name, grouped by type, for ANY
}

// buildZone indexes z and its records. prev, the zone's previous build or
// nil, supplies already-parsed RRs for unchanged records. A record that
// does not parse (the store validates on write, so only a hand-edited
// database has one) is logged and left out rather than taking the whole
// zone down.
func buildZone(z dnsdata.Zone, recs []dnsdata.Record, prev *zone, logger *slog.Logger) *zone {
	soa := rr.SOA(z)
	neg := *soa
	neg.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	out := &zone{
		name:   z.Name,
		negSOA: &neg,
		nodes:  map[string]*node{},
		ents:   map[string]struct{}{},
		cuts:   map[string]struct{}{},
		addrs:  map[string][][]dns.RR{},
		built:  make(map[int64]builtRecord, len(recs)),
	}
	add := func(r dns.RR) {
		owner := r.Header().Name
		n := out.nodes[owner]
		if n == nil {
			n = &node{byType: map[uint16][]dns.RR{}}
			out.nodes[owner] = n
		}
		n.byType[r.Header().Rrtype] = append(n.byType[r.Header().Rrtype], r)
	}
	add(soa)
	for _, rec := range recs {
		var parsed dns.RR
		if b, ok := prev.reuse(rec); ok {
			parsed = b
		} else {
			var err error
			if parsed, err = rr.ToRR(rec); err != nil {
				logger.Error("dns: record left out of the zone", "zone", z.Name, "record", rec.ID, "err", err)
				continue
			}
			parsed.Header().Name = dns.CanonicalName(parsed.Header().Name)
		}
		out.built[rec.ID] = builtRecord{rec: rec, rr: parsed}
		add(parsed)
	}
	apexLabels := dns.CountLabel(z.Name)
	for owner, n := range out.nodes {
		types := make([]uint16, 0, len(n.byType))
		for t := range n.byType {
			types = append(types, t)
		}
		slices.Sort(types)
		for _, t := range types {
			n.all = append(n.all, n.byType[t]...)
		}
		if _, ok := n.byType[dns.TypeNS]; ok && owner != z.Name {
			out.cuts[owner] = struct{}{}
		}
		if len(owner) > 1 && owner[0] == '*' && owner[1] == '.' {
			out.wild = true
		}
		// Every ancestor between the owner and the apex exists.
		offs := dns.Split(owner)
		for i := 1; i < len(offs)-apexLabels; i++ {
			if anc := owner[offs[i]:]; out.nodes[anc] == nil {
				out.ents[anc] = struct{}{}
			}
		}
	}
	// Wildcards and empty non-terminals are known now, so every target
	// resolves as a query for it would.
	for _, n := range out.nodes {
		for _, t := range additionalTypes {
			for _, r := range n.byType[t] {
				target := targetOf(r)
				if _, done := out.addrs[target]; done || !dns.IsSubDomain(out.name, target) {
					continue
				}
				if sets := out.addresses(target); len(sets) > 0 {
					out.addrs[target] = sets
				}
			}
		}
	}
	return out
}

// additionalTypes are the types whose targets' addresses go into the
// additional section (RFC 1035 section 3.3, RFC 2782), as knot does.
var additionalTypes = [...]uint16{dns.TypeNS, dns.TypeMX, dns.TypeSRV}

// targetOf is the canonical host name an NS, MX or SRV record points to,
// or "" for other types.
func targetOf(r dns.RR) string {
	switch r := r.(type) {
	case *dns.NS:
		return dns.CanonicalName(r.Ns)
	case *dns.MX:
		return dns.CanonicalName(r.Mx)
	case *dns.SRV:
		return dns.CanonicalName(r.Target)
	}
	return ""
}

// addresses returns the A and AAAA RRsets at name, a canonical name inside
// the zone: a node's own (glue below a cut included), or a wildcard's,
// synthesized with name as owner. An alias is not followed: NS, MX and
// SRV targets must not be CNAMEs (RFC 2181 section 10.3).
func (z *zone) addresses(name string) [][]dns.RR {
	n, synth := z.nodes[name], false
	if n == nil {
		if !z.wild || z.exists(name) {
			return nil
		}
		if n = z.wildcard(name); n == nil {
			return nil
		}
		synth = true
	}
	var sets [][]dns.RR
	for _, t := range [...]uint16{dns.TypeA, dns.TypeAAAA} {
		if rrs := n.byType[t]; len(rrs) > 0 {
			if synth {
				rrs = synthesize(rrs, name)
			}
			sets = append(sets, rrs)
		}
	}
	return sets
}

// synthesize copies rrs with name as their owner (RFC 4592 section 3.3).
func synthesize(rrs []dns.RR, name string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, r := range rrs {
		out[i] = dns.Copy(r)
		out[i].Header().Name = name
	}
	return out
}

// reuse returns the RR built last time for rec if rec has not changed.
func (z *zone) reuse(rec dnsdata.Record) (dns.RR, bool) {
	if z == nil {
		return nil, false
	}
	b, ok := z.built[rec.ID]
	if !ok || b.rec.Name != rec.Name || b.rec.Type != rec.Type || b.rec.TTL != rec.TTL || b.rec.Value != rec.Value {
		return nil, false
	}
	return b.rr, true
}

// exists reports whether name has records or records below it.
func (z *zone) exists(name string) bool {
	if z.nodes[name] != nil {
		return true
	}
	_, ok := z.ents[name]
	return ok
}

// kind is what a lookup in one zone found.
type kind int

const (
	kindAnswer     kind = iota // records of the asked type (or all, for ANY)
	kindCNAME                  // a CNAME to follow
	kindNoData                 // the name exists without records of that type
	kindNXDomain               // the name does not exist
	kindDelegation             // the name is at or below a zone cut
)

// result is the outcome of one lookup.
type result struct {
	kind   kind
	rrs    []dns.RR // the answer, the CNAME, or the delegation's NS set
	cut    string   // the delegation point, for kindDelegation
	target string   // the CNAME target, canonical
	synth  bool     // rrs were synthesized from a wildcard
}

// lookup answers qtype at name, a canonical name inside the zone.
func (z *zone) lookup(name string, qtype uint16) result {
	if res, ok := z.delegation(name, qtype); ok {
		return res
	}
	if n := z.nodes[name]; n != nil {
		return n.answer(name, qtype, false)
	}
	if _, ok := z.ents[name]; ok {
		return result{kind: kindNoData}
	}
	if z.wild {
		if n := z.wildcard(name); n != nil {
			return n.answer(name, qtype, true)
		}
	}
	return result{kind: kindNXDomain}
}

// delegation finds the zone cut closest to the apex at or above name. A
// DS query is not referred at the cut itself: DS records belong to the
// parent side of the cut, so this zone answers them (RFC 4035 section
// 3.1.4.1).
func (z *zone) delegation(name string, qtype uint16) (result, bool) {
	if len(z.cuts) == 0 {
		return result{}, false
	}
	offs := dns.Split(name)
	last := 0
	if qtype == dns.TypeDS {
		last = 1
	}
	// offs[i] starts the ancestor with len(offs)-i labels; walk from the
	// apex's child down to name itself so the topmost cut wins.
	for i := len(offs) - dns.CountLabel(z.name) - 1; i >= last; i-- {
		cut := name[offs[i]:]
		if _, ok := z.cuts[cut]; ok {
			return result{kind: kindDelegation, rrs: z.nodes[cut].byType[dns.TypeNS], cut: cut}, true
		}
	}
	return result{}, false
}

// wildcard returns the wildcard node that answers name, which has no node
// of its own: "*." + the closest encloser (RFC 4592 section 3.3.1).
func (z *zone) wildcard(name string) *node {
	offs := dns.Split(name)
	last := len(offs) - dns.CountLabel(z.name)
	for i := 1; i <= last; i++ {
		if ce := name[offs[i]:]; z.exists(ce) {
			return z.nodes["*."+ce]
		}
	}
	return nil
}

// answer picks the records of n for qtype. Synthesized answers (from a
// wildcard) are copies owned by name.
func (n *node) answer(name string, qtype uint16, synth bool) result {
	pick := func(rrs []dns.RR) []dns.RR {
		if !synth {
			return rrs
		}
		return synthesize(rrs, name)
	}
	if qtype == dns.TypeANY {
		return result{kind: kindAnswer, rrs: pick(n.all), synth: synth}
	}
	if rrs := n.byType[qtype]; len(rrs) > 0 {
		return result{kind: kindAnswer, rrs: pick(rrs), synth: synth}
	}
	if rrs := n.byType[dns.TypeCNAME]; len(rrs) > 0 {
		res := result{kind: kindCNAME, rrs: pick(rrs[:1]), synth: synth}
		if c, ok := rrs[0].(*dns.CNAME); ok {
			res.target = dns.CanonicalName(c.Target)
		}
		return res
	}
	return result{kind: kindNoData}
}

// zoneSet is the served zones by canonical name; like zone it is replaced,
// never modified, when a zone changes.
type zoneSet struct {
	byName map[string]*zone
}

// zoneFor returns the zone that answers qtype at name: the one name belongs
// to (find), except for DS at the apex of a served zone whose parent zone
// is served too and delegates it. DS lives on the parent side of a zone
// cut (RFC 4035 section 3.1.4.1), so the parent answers. When the parent
// has no delegation there, the name's own zone answers, rather than the
// parent denying a name that exists (knot asks the parent anyway and
// answers NXDOMAIN).
func (zs *zoneSet) zoneFor(name string, qtype uint16) *zone {
	z := zs.find(name)
	if z == nil || qtype != dns.TypeDS || z.name != name {
		return z
	}
	off, end := dns.NextLabel(name, 0)
	if end {
		return z
	}
	if p := zs.find(name[off:]); p != nil {
		if _, cut := p.cuts[name]; cut {
			return p
		}
	}
	return z
}

// find returns the zone name belongs to (the longest matching suffix), or
// nil. It walks up the labels of name, one map lookup per label.
func (zs *zoneSet) find(name string) *zone {
	if len(zs.byName) == 0 {
		return nil
	}
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if z := zs.byName[name[off:]]; z != nil {
			return z
		}
	}
	return nil
}

// with returns a copy of zs with z in place of its namesake (or without
// zone name, when z is nil).
func (zs *zoneSet) with(name string, z *zone) *zoneSet {
	out := &zoneSet{byName: make(map[string]*zone, len(zs.byName)+1)}
	for k, v := range zs.byName {
		out.byName[k] = v
	}
	if z == nil {
		delete(out.byName, name)
	} else {
		out.byName[name] = z
	}
	return out
}
