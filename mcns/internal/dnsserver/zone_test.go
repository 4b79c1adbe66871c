package dnsserver

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// soaOwner is the owner of the SOA in m's authority section, or "".
func soaOwner(m *dns.Msg) string {
	for _, r := range m.Ns {
		if r.Header().Rrtype == dns.TypeSOA {
			return r.Header().Name
		}
	}
	return ""
}

func TestDSFromTheParent(t *testing.T) {
	st := openStore(t)
	seedKnot(t, st)
	// A CNAME onto the child's apex: DS for the target also comes from
	// the parent.
	addRecord(t, st, "other.test.", "tochild", "CNAME", "child.knot.test.")
	s := newServer(t, st, Config{})
	for _, tc := range []struct {
		name, qname string
		qtype       uint16
		rcode       int
		aa          bool
		ns          string // the SOA's owner, or "NS" for a referral
	}{
		{"DS at a delegation: the parent's NODATA", "sub.knot.test.", dns.TypeDS, dns.RcodeSuccess, true, "knot.test."},
		{"DS at a served child's apex: the parent answers", "child.knot.test.", dns.TypeDS, dns.RcodeSuccess, true, "knot.test."},
		{"DS at a child's apex in another case", "CHILD.Knot.Test.", dns.TypeDS, dns.RcodeSuccess, true, "knot.test."},
		{"other types at the child's apex: the child answers", "child.knot.test.", dns.TypeTXT, dns.RcodeSuccess, true, "child.knot.test."},
		{"DS below a delegation: a referral", "x.sub.knot.test.", dns.TypeDS, dns.RcodeSuccess, false, "NS"},
		{"DS below a nested cut: a referral to the upper cut", "ns.sub.knot.test.", dns.TypeDS, dns.RcodeSuccess, false, "NS"},
		{"DS inside the child", "www.child.knot.test.", dns.TypeDS, dns.RcodeSuccess, true, "child.knot.test."},
		{"DS at an apex whose parent is not served", "knot.test.", dns.TypeDS, dns.RcodeSuccess, true, "knot.test."},
		{"DS at an apex its parent does not delegate", "orphan.knot.test.", dns.TypeDS, dns.RcodeSuccess, true, "orphan.knot.test."},
		{"DS at a missing name", "nothere.knot.test.", dns.TypeDS, dns.RcodeNameError, true, "knot.test."},
		{"DS after a CNAME onto a child's apex", "tochild.other.test.", dns.TypeDS, dns.RcodeSuccess, true, "knot.test."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ask(t, s, query(tc.qname, tc.qtype), loopback, true)
			if m.Rcode != tc.rcode || m.Authoritative != tc.aa {
				t.Fatalf("rcode %s aa %v, want %s aa %v:\n%v", dns.RcodeToString[m.Rcode], m.Authoritative, dns.RcodeToString[tc.rcode], tc.aa, m)
			}
			for _, a := range m.Answer {
				if a.Header().Rrtype != dns.TypeCNAME {
					t.Errorf("answer %v", a)
				}
			}
			if tc.ns == "NS" {
				if types(m.Ns)[0] != "NS" || m.Ns[0].Header().Name != "sub.knot.test." {
					t.Errorf("authority %v, want the referral to sub.knot.test.", m.Ns)
				}
			} else if got := soaOwner(m); !strings.EqualFold(got, tc.ns) || len(m.Ns) != 1 {
				// EqualFold: over UDP, names that compress to the question
				// come back in the client's spelling.
				t.Errorf("authority %v, want the SOA of %s", m.Ns, tc.ns)
			}
		})
	}
}

func TestAdditionalAddresses(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	seedKnot(t, st)
	addRecord(t, st, "knot.test.", "anymx", "MX", "10 mail.knot.test.")
	addRecord(t, st, "knot.test.", "upper", "MX", "10 MAIL.Knot.Test.")
	s := newServer(t, st, Config{})
	for _, tc := range []struct {
		name, qname string
		qtype       uint16
		extra       []string // additional records, OPT excluded
	}{
		{"MX: the exchanger's A and AAAA, once for two records", "knot.test.", dns.TypeMX,
			[]string{"mail.knot.test. A 192.0.2.25", "mail.knot.test. AAAA 2001:db8::25"}},
		{"NS at the apex", "knot.test.", dns.TypeNS,
			[]string{"ns1.knot.test. A 192.0.2.1", "ns1.knot.test. AAAA 2001:db8::1", "ns2.knot.test. A 192.0.2.2"}},
		{"SRV", "_sip._tcp.knot.test.", dns.TypeSRV, []string{"sip.knot.test. A 192.0.2.60"}},
		{"a target in another served zone is left to its zone", "extmx.knot.test.", dns.TypeMX, []string{}},
		{"SRV into another served zone", "_ext._tcp.knot.test.", dns.TypeSRV, []string{}},
		{"a missing target", "nomx.knot.test.", dns.TypeMX, []string{}},
		{"a target that is an empty non-terminal", "entmx.knot.test.", dns.TypeMX, []string{}},
		{"a target covered by a wildcard", "wmx.knot.test.", dns.TypeMX,
			[]string{"host.wild.knot.test. A 192.0.2.99", "host.wild.knot.test. AAAA 2001:db8::99"}},
		{"a target below a cut: its glue", "gmx.knot.test.", dns.TypeMX,
			[]string{"ns.sub.knot.test. A 192.0.2.77", "ns.sub.knot.test. AAAA 2001:db8::77"}},
		{"after a CNAME", "cmx.knot.test.", dns.TypeMX,
			[]string{"mail.knot.test. A 192.0.2.25", "mail.knot.test. AAAA 2001:db8::25"}},
		{"a target written in upper case", "upper.knot.test.", dns.TypeMX,
			[]string{"mail.knot.test. A 192.0.2.25", "mail.knot.test. AAAA 2001:db8::25"}},
		{"ANY gets none", "anymx.knot.test.", dns.TypeANY, []string{}},
		{"A gets none", "www.knot.test.", dns.TypeA, []string{}},
		{"a referral: glue below the cut and addresses in the zone, not other zones", "host.sub.knot.test.", dns.TypeA,
			[]string{"ns.sub.knot.test. A 192.0.2.77", "ns.sub.knot.test. AAAA 2001:db8::77", "ns1.knot.test. A 192.0.2.1", "ns1.knot.test. AAAA 2001:db8::1"}},
		{"the child zone's NS: its server's addresses are in the parent", "child.knot.test.", dns.TypeNS, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := query(tc.qname, tc.qtype)
			req.SetEdns0(4096, false)
			m := ask(t, s, req, loopback, false)
			if m.Rcode != dns.RcodeSuccess || m.Truncated {
				t.Fatalf("rcode %s tc %v", dns.RcodeToString[m.Rcode], m.Truncated)
			}
			var extra []dns.RR
			for _, r := range m.Extra {
				if r.Header().Rrtype != dns.TypeOPT {
					extra = append(extra, r)
				}
			}
			if got := short(extra); !slices.Equal(got, tc.extra) {
				t.Errorf("additional\n%q\nwant\n%q", got, tc.extra)
			}
			if len(extra)+1 != len(m.Extra) || m.Extra[len(m.Extra)-1].Header().Rrtype != dns.TypeOPT {
				t.Errorf("additional %v: the OPT must come once, last", m.Extra)
			}
		})
	}
}

// packedReply runs req through the server's path and returns the packed
// reply and its unpacked form.
func packedReply(t *testing.T, s *Server, req *dns.Msg, udp bool) ([]byte, *dns.Msg) {
	t.Helper()
	buf := exchange(t, s, req, loopback, udp)
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		t.Fatal(err)
	}
	return buf, m
}

func TestAdditionalFits(t *testing.T) {
	st := openStore(t)
	seedKnot(t, st)
	s := newServer(t, st, Config{})
	for _, tc := range []struct {
		name    string
		qname   string
		qtype   uint16
		bufsize uint16 // 0: no EDNS
		udp     bool
		tc      bool
	}{
		{"MX addresses cut to 512 bytes, no TC", "mxs.knot.test.", dns.TypeMX, 0, true, false},
		{"MX addresses cut to the client's 700 bytes", "mxs.knot.test.", dns.TypeMX, 700, true, false},
		{"MX addresses cut to 1232 bytes for a client offering more", "mxs.knot.test.", dns.TypeMX, 65000, true, false},
		{"MX addresses all over TCP", "mxs.knot.test.", dns.TypeMX, 0, false, false},
		{"a referral's addresses beside the cut are optional", "x.sib.knot.test.", dns.TypeA, 0, true, false},
		{"a referral's glue below the cut is not: TC", "x.big.knot.test.", dns.TypeA, 0, true, true},
		{"the same referral with EDNS 1232: TC", "x.big.knot.test.", dns.TypeA, 1232, true, true},
		{"the same referral over TCP", "x.big.knot.test.", dns.TypeA, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := query(tc.qname, tc.qtype)
			limit := dns.MaxMsgSize
			if tc.udp {
				limit = dns.MinMsgSize
			}
			if tc.bufsize > 0 {
				req.SetEdns0(tc.bufsize, false)
				if tc.udp {
					limit = max(dns.MinMsgSize, min(int(tc.bufsize), maxUDPSize))
				}
			}
			buf, m := packedReply(t, s, req, tc.udp)
			if len(buf) > limit {
				t.Fatalf("%d bytes over the limit %d", len(buf), limit)
			}
			if m.Truncated != tc.tc {
				t.Fatalf("TC %v, want %v", m.Truncated, tc.tc)
			}
			if (m.IsEdns0() != nil) != (tc.bufsize > 0) {
				t.Errorf("OPT %v with client size %d", m.IsEdns0(), tc.bufsize)
			}
			if tc.tc {
				if len(m.Answer)+len(m.Ns) != 0 || len(m.Question) != 1 {
					t.Errorf("truncated reply with records: %v", m)
				}
				return
			}
			// The full reply, over TCP, says what there is to give.
			_, full := packedReply(t, s, query(tc.qname, tc.qtype), false)
			if !slices.Equal(short(m.Answer), short(full.Answer)) || !slices.Equal(short(m.Ns), short(full.Ns)) {
				t.Fatalf("answer or authority cut:\n%v", m)
			}
			var extra []dns.RR
			for _, r := range m.Extra {
				if r.Header().Rrtype != dns.TypeOPT {
					extra = append(extra, r)
				}
			}
			if !tc.udp {
				if len(extra) != len(full.Extra) {
					t.Errorf("TCP: %d additional records, want all %d", len(extra), len(full.Extra))
				}
				return
			}
			// A prefix of whole RRsets: the last target kept has both its
			// A and its AAAA, or the next one did not fit.
			if len(extra) == 0 || len(extra) >= len(full.Extra) {
				t.Fatalf("%d of %d additional records kept", len(extra), len(full.Extra))
			}
			if !slices.Equal(short(extra), short(full.Extra[:len(extra)])) {
				t.Errorf("additional %v is not a prefix of %v", extra, full.Extra)
			}
			// The next RRset would not have fitted.
			next := full.Extra[len(extra) : len(extra)+1]
			for _, r := range full.Extra[len(extra)+1:] {
				if r.Header().Name != next[0].Header().Name || r.Header().Rrtype != next[0].Header().Rrtype {
					break
				}
				next = append(next, r)
			}
			bigger := m.Copy()
			bigger.Extra = slices.Concat(extra, next, []dns.RR{m.IsEdns0()})
			if m.IsEdns0() == nil {
				bigger.Extra = bigger.Extra[:len(bigger.Extra)-1]
			}
			if n := packedLen(t, bigger); n <= limit {
				t.Errorf("%d bytes sent, and with %v (%d bytes) it would still fit in %d", len(buf), next, n, limit)
			}
		})
	}
}

func TestAdditionalFollowsChanges(t *testing.T) {
	st := openStore(t)
	seedKnot(t, st)
	s := newServer(t, st, Config{})
	ctx := context.Background()
	extra := func() []string {
		m := ask(t, s, query("_sip._tcp.knot.test.", dns.TypeSRV), loopback, false)
		return short(m.Extra)
	}
	if got := extra(); !slices.Equal(got, []string{"sip.knot.test. A 192.0.2.60"}) {
		t.Fatalf("before: %q", got)
	}
	r := addRecord(t, st, "knot.test.", "sip", "AAAA", "2001:db8::60")
	if got := extra(); !slices.Equal(got, []string{"sip.knot.test. A 192.0.2.60", "sip.knot.test. AAAA 2001:db8::60"}) {
		t.Errorf("after adding an AAAA: %q", got)
	}
	r.Value = "2001:db8::61"
	if _, err := st.UpdateRecord(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := extra(); !slices.Equal(got, []string{"sip.knot.test. A 192.0.2.60", "sip.knot.test. AAAA 2001:db8::61"}) {
		t.Errorf("after changing it: %q", got)
	}
	recs, err := st.Records(ctx, "knot.test.", "sip.knot.test.", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if _, err := st.DeleteRecord(ctx, "knot.test.", rec.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := extra(); len(got) != 0 {
		t.Errorf("after deleting the target: %q", got)
	}
	// A wildcard added later covers the target.
	addRecord(t, st, "knot.test.", "*", "A", "192.0.2.250")
	if got := extra(); !slices.Equal(got, []string{"sip.knot.test. A 192.0.2.250"}) {
		t.Errorf("after adding a wildcard: %q", got)
	}
}

// TestAmplificationBound asks every name of the zones for every type over
// UDP, with and without EDNS, and checks that no reply exceeds what the
// client may receive, that TC is set only when required data is missing,
// and that the additional section never holds more than addresses and our
// OPT.
func TestAmplificationBound(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	seedKnot(t, st)
	s := newServer(t, st, Config{})
	var names []string
	for _, z := range s.zones.Load().byName {
		for name := range z.nodes {
			names = append(names, name, "x."+name)
		}
	}
	slices.Sort(names)
	worst := 0.0
	for _, name := range names {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeNS, dns.TypeMX, dns.TypeSRV, dns.TypeDS, dns.TypeTXT, dns.TypeANY} {
			for _, bufsize := range []uint16{0, 512, 1232, 4096} {
				req := query(name, qtype)
				limit := dns.MinMsgSize
				if bufsize > 0 {
					req.SetEdns0(bufsize, true)
					limit = min(max(int(bufsize), dns.MinMsgSize), maxUDPSize)
				}
				buf, m := packedReply(t, s, req, true)
				if len(buf) > limit {
					t.Fatalf("%s %s bufsize %d: %d bytes", name, dns.TypeToString[qtype], bufsize, len(buf))
				}
				worst = max(worst, float64(len(buf))/float64(len(packed(t, req))))
				for _, r := range m.Extra {
					if tp := r.Header().Rrtype; tp != dns.TypeA && tp != dns.TypeAAAA && tp != dns.TypeOPT {
						t.Errorf("%s %s: additional %v", name, dns.TypeToString[qtype], r)
					}
				}
				// TC exactly when the required part (answer, authority,
				// in-domain glue, OPT) does not fit.
				_, full := packedReply(t, s, req, false)
				required := &dns.Msg{MsgHdr: full.MsgHdr, Question: full.Question, Answer: full.Answer, Ns: full.Ns, Extra: glueOf(full)}
				if opt := full.IsEdns0(); opt != nil {
					required.Extra = append(required.Extra, opt)
				}
				if need := packedLen(t, required); m.Truncated != (need > limit) {
					t.Errorf("%s %s bufsize %d: TC %v, with %d required bytes for %d", name, dns.TypeToString[qtype], bufsize, m.Truncated, need, limit)
				}
				if !m.Truncated && !slices.Equal(short(glueOf(m)), short(glueOf(full))) {
					t.Errorf("%s %s bufsize %d: glue %v, want %v", name, dns.TypeToString[qtype], bufsize, glueOf(m), glueOf(full))
				}
			}
		}
	}
	t.Logf("largest reply/query size ratio over UDP: %.1f", worst)
}

// glueOf is the in-domain glue of a referral in m: addresses of name
// servers below the cut.
func glueOf(m *dns.Msg) []dns.RR {
	if m.Authoritative || len(m.Ns) == 0 || m.Ns[0].Header().Rrtype != dns.TypeNS {
		return nil
	}
	cut := m.Ns[0].Header().Name
	var out []dns.RR
	for _, r := range m.Extra {
		if r.Header().Rrtype != dns.TypeOPT && dns.IsSubDomain(cut, r.Header().Name) {
			out = append(out, r)
		}
	}
	return out
}

func packedLen(t *testing.T, m *dns.Msg) int {
	t.Helper()
	m.Compress = true
	return len(packed(t, m))
}

func TestCheckingDisabled(t *testing.T) {
	st := openStore(t)
	seed(t, st)
	up := startUpstream(t)
	s := newServer(t, st, Config{Upstreams: []string{up.addr}})
	for _, tc := range []struct {
		qname string
		cd    bool
	}{
		// Authoritative answers clear CD (RFC 4035 section 3.1.6), as
		// knot does; recursive ones copy it (section 3.2.2).
		{"www.example.test.", false},
		{"nothere.example.test.", false},
		{"example.org.", true},
	} {
		req := query(tc.qname, dns.TypeA)
		req.CheckingDisabled = true
		if m := ask(t, s, req, loopback, true); m.CheckingDisabled != tc.cd {
			t.Errorf("%s: CD %v, want %v", tc.qname, m.CheckingDisabled, tc.cd)
		}
	}
}
