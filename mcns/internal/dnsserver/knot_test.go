package dnsserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"

	"github.com/miekg/dns"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/dnstest"
	"git.metacircular.net/metacircular/mcns/internal/store"
	"git.metacircular.net/metacircular/mcns/internal/zonefile"
)

// This file runs knot (knotd 3.2, Debian's knot package) beside MCNS on
// the same zones and compares their replies to the same queries, sent by
// the real kdig and dig and, for messages those cannot build, as raw
// packets. knot is the reference for how an authoritative server answers.

// seedKnot fills st with the zones of the conformance test:
//
//   - knot.test: name servers, mail exchangers and SRV targets with and
//     without addresses (in the zone, in a wildcard, below a cut, in
//     another zone, missing, at an empty non-terminal), CNAMEs, a
//     wildcard, delegations whose name servers are below the cut (glue),
//     beside it in the zone, and in another zone, a delegation with more
//     glue than a UDP reply holds, and an MX set with more addresses than
//     a UDP reply holds;
//   - child.knot.test, served and delegated from knot.test;
//   - orphan.knot.test, served but not delegated from knot.test;
//   - other.test, a zone beside it, as seed makes it (the two may fill one
//     store).
func seedKnot(t testing.TB, st *store.Store) {
	t.Helper()
	addZone(t, st, "knot.test.", 300, 60)
	addZone(t, st, "child.knot.test.", 300, 120)
	addZone(t, st, "orphan.knot.test.", 300, 120)
	if _, err := st.GetZone(context.Background(), "other.test."); errors.Is(err, dnsdata.ErrNotFound) {
		addZone(t, st, "other.test.", 300, 300)
		addRecord(t, st, "other.test.", "host", "A", "198.51.100.7")
	} else if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][3]string{
		{"@", "NS", "ns1.knot.test."},
		{"@", "NS", "ns2.knot.test."},
		{"@", "MX", "10 mail.knot.test."},
		{"@", "MX", "20 mail.knot.test."},
		{"ns1", "A", "192.0.2.1"},
		{"ns1", "AAAA", "2001:db8::1"},
		{"ns2", "A", "192.0.2.2"},
		{"mail", "A", "192.0.2.25"},
		{"mail", "AAAA", "2001:db8::25"},
		{"www", "A", "192.0.2.80"},
		{"www", "A", "192.0.2.81"},
		{"alias", "CNAME", "www.knot.test."},
		{"cmx", "CNAME", "knot.test."},
		{"txt", "TXT", "hello world"},
		{"x.y", "A", "192.0.2.90"},
		{"*.wild", "A", "192.0.2.99"},
		{"*.wild", "AAAA", "2001:db8::99"},
		{"_sip._tcp", "SRV", "0 5 5060 sip.knot.test."},
		{"sip", "A", "192.0.2.60"},
		{"_ext._tcp", "SRV", "0 5 5060 host.other.test."},
		{"extmx", "MX", "10 host.other.test."},
		{"nomx", "MX", "10 nowhere.knot.test."},
		{"entmx", "MX", "10 y.knot.test."},
		{"wmx", "MX", "10 host.wild.knot.test."},
		{"gmx", "MX", "10 ns.sub.knot.test."},
		{"sub", "NS", "ns.sub.knot.test."},
		{"sub", "NS", "ns1.knot.test."},
		{"sub", "NS", "ns.other.test."},
		{"ns.sub", "A", "192.0.2.77"},
		{"ns.sub", "AAAA", "2001:db8::77"},
		{"child", "NS", "ns1.knot.test."},
	} {
		addRecord(t, st, "knot.test.", r[0], r[1], r[2])
	}
	for i := 1; i <= 20; i++ {
		ns := fmt.Sprintf("ns%02d.big", i)
		addRecord(t, st, "knot.test.", "big", "NS", ns+".knot.test.")
		addRecord(t, st, "knot.test.", ns, "A", fmt.Sprintf("192.0.2.%d", 100+i))
		addRecord(t, st, "knot.test.", ns, "AAAA", fmt.Sprintf("2001:db8::%d", 100+i))
		mx := fmt.Sprintf("mx%02d", i)
		addRecord(t, st, "knot.test.", "mxs", "MX", fmt.Sprintf("%d %s.knot.test.", i, mx))
		addRecord(t, st, "knot.test.", "sib", "NS", mx+".knot.test.")
		addRecord(t, st, "knot.test.", mx, "A", fmt.Sprintf("192.0.2.%d", 150+i))
		addRecord(t, st, "knot.test.", mx, "AAAA", fmt.Sprintf("2001:db8::1:%d", 150+i))
	}
	addRecord(t, st, "child.knot.test.", "@", "NS", "ns1.knot.test.")
	addRecord(t, st, "child.knot.test.", "www", "A", "192.0.2.111")
	addRecord(t, st, "orphan.knot.test.", "www", "A", "192.0.2.112")
	addRecord(t, st, "other.test.", "ns", "A", "198.51.100.53")
}

// startKnot serves every zone of st with knotd on a loopback port and
// returns its address. knotd runs in the foreground as the current user,
// with its configuration, zone files, run directory and database in a
// temporary directory, until the test ends.
func startKnot(t *testing.T, st *store.Store) string {
	t.Helper()
	// Debian installs the daemon in /usr/sbin, which is not on an ordinary
	// user's PATH.
	t.Setenv("PATH", os.Getenv("PATH")+string(os.PathListSeparator)+"/usr/sbin")
	knotd := testtool.Require(t, "knotd")
	dir := t.TempDir()
	ctx := context.Background()
	zones, err := st.ListZones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	for _, z := range zones {
		file := filepath.Join(dir, z.Name+"zone")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := zonefile.Export(ctx, st, z.Name, f); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "  - domain: %s\n    file: %q\n", z.Name, file)
	}
	for _, d := range []string{"run", "db"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The port is found free, released and handed to knotd, so another
	// socket may take it in between: then knotd never answers and a fresh
	// port is tried.
	var lastErr error
	for range 3 {
		udp, tcp, addr := dnstest.ListenPair(t)
		_ = udp.Close()
		_ = tcp.Close()
		_, port, _ := net.SplitHostPort(addr)
		cfg := filepath.Join(dir, "knot.conf")
		body := fmt.Sprintf(`server:
    rundir: %q
    listen: 127.0.0.1@%s
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: %q
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: %q
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
%s`, filepath.Join(dir, "run"), port, filepath.Join(dir, "db"), dir, conf.String())
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		cmd := exec.Command(knotd, "-c", cfg)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start knotd: %v", err)
		}
		var waitErr error
		exited := make(chan struct{})
		go func() {
			waitErr = cmd.Wait()
			close(exited)
		}()
		stop := func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if lastErr = knotReady(addr, zones, exited); lastErr == nil {
			t.Cleanup(stop)
			return addr
		}
		stop()
		lastErr = fmt.Errorf("%w (exit: %w); its log:\n%s", lastErr, waitErr, logs.String())
	}
	t.Fatalf("knotd: %v", lastErr)
	return ""
}

// knotReady waits until knotd at addr answers authoritatively for every
// zone: it loads them after it starts listening.
func knotReady(addr string, zones []dnsdata.Zone, exited <-chan struct{}) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(15 * time.Second)
	for _, z := range zones {
		for {
			select {
			case <-exited:
				return errors.New("knotd exited")
			default:
			}
			r, _, err := c.Exchange(query(z.Name, dns.TypeSOA), addr)
			if err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative {
				break
			}
			if err == nil {
				err = fmt.Errorf("rcode %s, aa %v", dns.RcodeToString[r.Rcode], r.Authoritative)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no authoritative SOA for %s from %s: %w", z.Name, addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// view is one reply reduced to what the conformance test compares. The
// sections are sorted (order carries no meaning) and owner names lower
// case (knot echoes the question's case in the owner of its first answer
// record); the additional section is also without repeats, since knot
// repeats a target's addresses for every record naming the target.
type view struct {
	silent                        bool // no reply at all
	opcode, rcode                 string
	flags                         string // the header flags set, of aa tc rd ra ad cd z
	question                      []string
	opt                           string // "" without an OPT record
	answer, authority, additional []string
}

func (v view) String() string {
	if v.silent {
		return "(no reply)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s flags [%s] question %q opt %q\n", v.opcode, v.rcode, v.flags, v.question, v.opt)
	for _, s := range []struct {
		name string
		rrs  []string
	}{{"answer", v.answer}, {"authority", v.authority}, {"additional", v.additional}} {
		for _, r := range s.rrs {
			fmt.Fprintf(&b, "  %s: %s\n", s.name, r)
		}
	}
	return b.String()
}

func (v view) truncated() bool { return strings.Contains(" "+v.flags+" ", " tc ") }

// finish sorts the sections and drops repeated additional records.
func (v view) finish() view {
	for _, s := range []*[]string{&v.answer, &v.authority, &v.additional} {
		slices.Sort(*s)
	}
	v.additional = slices.Compact(v.additional)
	return v
}

func flagString(set map[string]bool) string {
	var out []string
	for _, f := range []string{"aa", "tc", "rd", "ra", "ad", "cd", "z"} {
		if set[f] {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// rrString renders r for comparison: owner in lower case, then the rest
// as miekg/dns prints it.
func rrString(r dns.RR) string {
	h := r.Header()
	return strings.ToLower(h.Name) + strings.TrimPrefix(r.String(), h.Name)
}

// kdigView asks addr with kdig +json and reduces the reply.
func kdigView(t *testing.T, addr string, args ...string) view {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"@" + host, "-p", port, "+json", "+retry=0", "+timeout=5"}, args...)
	out, err := exec.CommandContext(ctx, "kdig", argv...).Output()
	if err != nil {
		t.Fatalf("kdig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	type rr struct {
		NAME     string
		TYPE     uint16
		CLASS    uint16
		TTL      uint32
		RDATAHEX string
	}
	var j struct {
		Opcode, RCODE, QDCOUNT int
		AA, TC, RD, RA, AD, CD int
		QNAME                  string
		QTYPE, QCLASS          uint16
		Answer                 []rr `json:"answerRRs"`
		Authority              []rr `json:"authorityRRs"`
		Additional             []rr `json:"additionalRRs"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatalf("kdig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	v := view{opcode: dns.OpcodeToString[j.Opcode]}
	v.flags = flagString(map[string]bool{"aa": j.AA == 1, "tc": j.TC == 1, "rd": j.RD == 1, "ra": j.RA == 1, "ad": j.AD == 1, "cd": j.CD == 1})
	if j.QDCOUNT > 0 {
		v.question = []string{fmt.Sprintf("%s %s %s", j.QNAME, dns.ClassToString[j.QCLASS], dns.TypeToString[j.QTYPE])}
	}
	rcode := j.RCODE
	render := func(rrs []rr) []string {
		out := []string{}
		for _, r := range rrs {
			if r.TYPE == dns.TypeOPT {
				// CLASS is the UDP size, TTL the extended rcode,
				// version and flags, RDATA the options.
				v.opt = fmt.Sprintf("udp=%d ttl=%#x options=%s", r.CLASS, r.TTL, r.RDATAHEX)
				rcode |= int(r.TTL>>24) << 4
				continue
			}
			out = append(out, fmt.Sprintf("%s %d %d %d %s", strings.ToLower(r.NAME), r.TTL, r.CLASS, r.TYPE, r.RDATAHEX))
		}
		return out
	}
	v.answer, v.authority, v.additional = render(j.Answer), render(j.Authority), render(j.Additional)
	v.rcode = dns.RcodeToString[rcode]
	return v.finish()
}

// digView asks addr with dig and reduces the reply.
func digView(t *testing.T, addr string, args ...string) view {
	t.Helper()
	r := dig(t, addr, append([]string{"+question", "+additional"}, args...)...)
	v := view{opcode: r.opcode, rcode: r.status, question: r.questions}
	set := map[string]bool{}
	for _, f := range r.flags {
		set[f] = true
	}
	v.flags = flagString(set)
	if len(r.opt) > 0 {
		v.opt = strings.Join(r.opt, "; ")
	}
	for _, s := range []struct {
		rrs []dns.RR
		out *[]string
	}{{r.answer, &v.answer}, {r.authority, &v.authority}, {r.additional, &v.additional}} {
		*s.out = []string{}
		for _, x := range s.rrs {
			*s.out = append(*s.out, rrString(x))
		}
	}
	return v.finish()
}

// rawView sends raw to addr over netw ("udp" or "tcp") and reduces the
// reply; silence (no reply within a second, or the connection closed)
// is a view too.
func rawView(t *testing.T, addr, netw string, raw []byte) view {
	t.Helper()
	c, err := net.DialTimeout(netw, addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	if netw == "tcp" {
		if _, err := c.Write(append([]byte{byte(len(raw) >> 8), byte(len(raw))}, raw...)); err != nil {
			t.Fatal(err)
		}
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); silence(err) {
			return view{silent: true}
		} else if err != nil {
			t.Fatalf("tcp read from %s: %v", addr, err)
		}
		buf = make([]byte, int(size[0])<<8|int(size[1]))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("tcp read from %s: %v", addr, err)
		}
	} else {
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
		buf = make([]byte, dns.MaxMsgSize)
		n, err := c.Read(buf)
		if silence(err) {
			return view{silent: true}
		} else if err != nil {
			t.Fatalf("udp read from %s: %v", addr, err)
		}
		buf = buf[:n]
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		t.Fatalf("reply from %s does not unpack: %v", addr, err)
	}
	return msgView(m)
}

// silence reports whether a read error means the server sent nothing: a
// timeout, or the connection closed before a reply.
func silence(err error) bool {
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout() || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// msgView reduces an unpacked reply.
func msgView(m *dns.Msg) view {
	v := view{opcode: dns.OpcodeToString[m.Opcode], rcode: dns.RcodeToString[m.Rcode]}
	v.flags = flagString(map[string]bool{"aa": m.Authoritative, "tc": m.Truncated, "rd": m.RecursionDesired,
		"ra": m.RecursionAvailable, "ad": m.AuthenticatedData, "cd": m.CheckingDisabled, "z": m.Zero})
	for _, q := range m.Question {
		v.question = append(v.question, fmt.Sprintf("%s %s %s", q.Name, dns.ClassToString[q.Qclass], dns.TypeToString[q.Qtype]))
	}
	render := func(rrs []dns.RR) []string {
		out := []string{}
		for _, r := range rrs {
			if o, ok := r.(*dns.OPT); ok {
				v.opt = fmt.Sprintf("udp=%d version=%d do=%v options=%v", o.UDPSize(), o.Version(), o.Do(), o.Option)
				continue
			}
			out = append(out, rrString(r))
		}
		return out
	}
	v.answer, v.authority, v.additional = render(m.Answer), render(m.Ns), render(m.Extra)
	return v.finish()
}

// sameView reports how got (MCNS) differs from want (knot), or "". The
// sections of truncated replies are not compared: the client ignores them
// and asks again over TCP (RFC 2181 section 9), and knot keeps what fitted
// where MCNS sends none.
func sameView(got, want view) string {
	if got.truncated() && want.truncated() {
		got.answer, got.authority, got.additional = nil, nil, nil
		want.answer, want.authority, want.additional = nil, nil, nil
	}
	if got.String() == want.String() {
		return ""
	}
	return fmt.Sprintf("MCNS:\n%s\nknot:\n%s", got, want)
}

// TestKnotConformance sends the same queries to MCNS and to knot serving
// the same zones, and requires the same replies: rcode, flags, question,
// OPT record and sections (modulo order). It covers DS at and around
// zone cuts, opcodes other than QUERY and question counts other than one,
// and additional-section addresses; the differences MCNS keeps on
// purpose are asserted as such at the end.
func TestKnotConformance(t *testing.T) {
	testtool.Require(t, "kdig")
	requireDig(t)
	st := openStore(t)
	seedKnot(t, st)
	knot := startKnot(t, st)
	mcns := serve(t, newServer(t, st, Config{}))

	t.Run("kdig", func(t *testing.T) {
		for _, args := range [][]string{
			// Ordinary answers, with and without EDNS, DO, AD and CD.
			{"www.knot.test", "A"},
			{"+noedns", "www.knot.test", "A"},
			{"+dnssec", "+bufsize=4096", "www.knot.test", "A"},
			{"+adflag", "+cdflag", "www.knot.test", "A"},
			{"+cookie=0102030405060708", "www.knot.test", "A"},
			{"WwW.kNoT.TeSt", "A"},
			{"www.knot.test", "AAAA"},
			{"nothere.knot.test", "A"},
			{"y.knot.test", "A"},
			{"alias.knot.test", "A"},
			{"a.wild.knot.test", "AAAA"},
			{"txt.knot.test", "TXT"},
			{"knot.test", "SOA"},
			{"+edns=1", "www.knot.test", "A"},
			{"-t", "TYPE0", "www.knot.test"},
			// Issue 14: DS belongs to the parent side of a cut.
			{"sub.knot.test", "DS"},
			{"+dnssec", "child.knot.test", "DS"},
			{"big.knot.test", "DS"},
			{"x.sub.knot.test", "DS"},
			{"knot.test", "DS"},
			{"www.knot.test", "DS"},
			{"nothere.knot.test", "DS"},
			{"a.wild.knot.test", "DS"},
			{"alias.knot.test", "DS"},
			{"www.child.knot.test", "DS"},
			{"child.knot.test", "NS"},
			{"child.knot.test", "SOA"},
			{"www.child.knot.test", "A"},
			// Issue 16: addresses of NS, MX and SRV targets.
			{"knot.test", "MX"},
			{"knot.test", "NS"},
			{"+noedns", "knot.test", "NS"},
			{"_sip._tcp.knot.test", "SRV"},
			{"_ext._tcp.knot.test", "SRV"},
			{"extmx.knot.test", "MX"},
			{"nomx.knot.test", "MX"},
			{"entmx.knot.test", "MX"},
			{"wmx.knot.test", "MX"},
			{"gmx.knot.test", "MX"},
			{"cmx.knot.test", "MX"},
			{"host.sub.knot.test", "A"},
			{"sub.knot.test", "NS"},
			{"+noedns", "+ignore", "x.big.knot.test", "A"},
			{"+ignore", "x.big.knot.test", "A"},
			{"+tcp", "x.big.knot.test", "A"},
			{"+tcp", "x.sib.knot.test", "A"},
			{"+tcp", "mxs.knot.test", "MX"},
		} {
			got, want := kdigView(t, mcns, args...), kdigView(t, knot, args...)
			if d := sameView(got, want); d != "" {
				t.Errorf("kdig %s:\n%s", strings.Join(args, " "), d)
			}
		}
	})

	t.Run("additional records that do not fit", func(t *testing.T) {
		// Over UDP the addresses are cut to fit, whole RRsets at a time,
		// without TC. Where the cut falls depends on each server's name
		// compression, so the additional section only has to be part of
		// the full one (over TCP) and not empty.
		for _, args := range [][]string{
			{"+noedns", "mxs.knot.test", "MX"},
			{"+bufsize=1232", "mxs.knot.test", "MX"},
			{"+noedns", "x.sib.knot.test", "A"},
		} {
			full := kdigView(t, knot, append([]string{"+tcp"}, args[1:]...)...)
			got, want := kdigView(t, mcns, args...), kdigView(t, knot, args...)
			for _, v := range []*view{&got, &want} {
				if v.truncated() || len(v.additional) == 0 || len(v.additional) >= len(full.additional) {
					t.Errorf("kdig %s: TC or no cut:\n%s", strings.Join(args, " "), v)
				}
				for _, a := range v.additional {
					if !slices.Contains(full.additional, a) {
						t.Errorf("kdig %s: additional %s not in the full answer", strings.Join(args, " "), a)
					}
				}
				v.additional = nil
			}
			if d := sameView(got, want); d != "" {
				t.Errorf("kdig %s:\n%s", strings.Join(args, " "), d)
			}
		}
	})

	t.Run("dig opcodes", func(t *testing.T) {
		// dig sets AD in its queries unless told not to: no reply may
		// copy it.
		var cases [][]string
		for _, transport := range []string{"+notcp", "+tcp"} {
			for _, op := range []string{"1", "2", "3", "4", "5", "6", "15"} {
				cases = append(cases,
					[]string{transport, "+opcode=" + op, "knot.test", "SOA"},
					[]string{transport, "+opcode=" + op, "+noedns", "knot.test", "SOA"},
					[]string{transport, "+opcode=" + op, "+header-only"},
				)
			}
			cases = append(cases,
				[]string{transport, "+opcode=4", "+dnssec", "+cdflag", "+norec", "knot.test", "SOA"},
				[]string{transport, "+opcode=4", "www.knot.test", "A"},
				[]string{transport, "+opcode=4", "example.org", "SOA"},
				[]string{transport, "+opcode=4", "-c", "CH", "knot.test", "SOA"},
				[]string{transport, "+opcode=4", "-c", "HS", "knot.test", "SOA"},
				[]string{transport, "+opcode=4", "+edns=1", "+noednsneg", "knot.test", "SOA"},
				[]string{transport, "+opcode=5", "www.knot.test", "A"},
				[]string{transport, "+opcode=5", "example.org", "SOA"},
				[]string{transport, "+opcode=5", "-c", "CH", "knot.test", "SOA"},
				[]string{transport, "+opcode=1", "+edns=1", "+noednsneg", "knot.test", "SOA"},
				[]string{transport, "+header-only"},
				[]string{transport, "+header-only", "+noedns"},
				[]string{transport, "www.knot.test", "TYPE0"},
			)
		}
		for _, args := range cases {
			got, want := digView(t, mcns, args...), digView(t, knot, args...)
			if d := sameView(got, want); d != "" {
				t.Errorf("dig %s:\n%s", strings.Join(args, " "), d)
			}
		}
	})

	t.Run("raw messages", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			msg  func() *dns.Msg
		}{
			{"no question, EDNS", func() *dns.Msg {
				m := query("www.knot.test.", dns.TypeA)
				m.Question = nil
				m.SetEdns0(4096, true)
				return m
			}},
			{"a query carrying records", func() *dns.Msg {
				m := query("www.knot.test.", dns.TypeA)
				a, _ := dns.NewRR("x.knot.test. 60 IN A 192.0.2.9")
				m.Answer, m.Ns = []dns.RR{a, a}, []dns.RR{a, a}
				m.SetEdns0(1232, false)
				return m
			}},
			{"an update with records", func() *dns.Msg {
				m := new(dns.Msg)
				m.SetUpdate("knot.test.")
				a, _ := dns.NewRR("x.knot.test. 60 IN A 192.0.2.9")
				m.Insert([]dns.RR{a, a, a})
				m.SetEdns0(1232, false)
				return m
			}},
			{"a notify with its SOA", func() *dns.Msg {
				m := new(dns.Msg)
				m.SetNotify("knot.test.")
				soa, _ := dns.NewRR("knot.test. 60 IN SOA ns. h. 1 2 3 4 5")
				m.Answer = []dns.RR{soa}
				m.AuthenticatedData, m.CheckingDisabled = true, true
				m.SetEdns0(1232, false)
				return m
			}},
			{"two OPT records", func() *dns.Msg {
				m := query("www.knot.test.", dns.TypeA)
				m.SetEdns0(1232, false)
				m.Extra = append(m.Extra, m.Extra[0])
				return m
			}},
			{"header flags a query must not set", func() *dns.Msg {
				m := query("www.knot.test.", dns.TypeA)
				m.Authoritative, m.Truncated, m.RecursionAvailable, m.Zero = true, true, true, true
				m.AuthenticatedData, m.CheckingDisabled = true, true
				return m
			}},
		} {
			raw := packed(t, tc.msg())
			for _, netw := range []string{"udp", "tcp"} {
				got, want := rawView(t, mcns, netw, raw), rawView(t, knot, netw, raw)
				if d := sameView(got, want); d != "" {
					t.Errorf("%s over %s:\n%s", tc.name, netw, d)
				}
			}
		}
	})

	t.Run("differences kept on purpose", func(t *testing.T) {
		// Two questions: knot stops parsing at the second and stays
		// silent; MCNS answers FORMERR, with an OPT because the query had
		// one (RFC 6891 section 7) and no question, as there is not
		// exactly one.
		two := query("www.knot.test.", dns.TypeA)
		two.Question = append(two.Question, two.Question[0])
		two.SetEdns0(1232, false)
		raw := packed(t, two)
		for _, netw := range []string{"udp", "tcp"} {
			if v := rawView(t, knot, netw, raw); !v.silent {
				t.Errorf("knot answered two questions over %s:\n%s", netw, v)
			}
			v := rawView(t, mcns, netw, raw)
			if v.silent || v.rcode != "FORMERR" || len(v.question) != 0 || v.opt == "" || v.flags != "rd" {
				t.Errorf("MCNS, two questions over %s:\n%s", netw, v)
			}
		}

		// A served zone its parent zone does not delegate: knot asks the
		// parent for DS, which denies the name; MCNS lets the zone that
		// holds the name answer NODATA.
		k, m := kdigView(t, knot, "orphan.knot.test", "DS"), kdigView(t, mcns, "orphan.knot.test", "DS")
		if k.rcode != "NXDOMAIN" || len(k.authority) != 1 || !strings.HasPrefix(k.authority[0], "knot.test. ") {
			t.Errorf("knot, DS at an undelegated apex:\n%s", k)
		}
		if m.rcode != "NOERROR" || m.flags != "aa rd" || len(m.answer) != 0 || len(m.authority) != 1 ||
			!strings.HasPrefix(m.authority[0], "orphan.knot.test. ") {
			t.Errorf("MCNS, DS at an undelegated apex:\n%s", m)
		}
	})
}
