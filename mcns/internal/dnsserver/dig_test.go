package dnsserver

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"

	"github.com/miekg/dns"
)

// requireDig skips the test when dig (Debian's dnsutils, installed by
// scripts/deps.sh test) is missing, unless METACIRCULAR_REQUIRE_TOOLS=1
// makes that a failure.
func requireDig(t *testing.T) {
	t.Helper()
	testtool.Require(t, "dig")
}

// digResult is what dig printed, parsed.
type digResult struct {
	opcode     string
	status     string
	flags      []string
	edns       bool
	udpSize    int
	opt        []string // the OPT pseudosection's lines, without the leading "; "
	question   string   // as printed with +question, without the leading ';'
	questions  []string // each question's fields, joined by one space
	answer     []dns.RR // the answer (UPDATE: prerequisite) section
	authority  []dns.RR // the authority (UPDATE: update) section
	additional []dns.RR // with +additional; the OPT record is in opt
	out        string
}

func (r digResult) flag(f string) bool { return slices.Contains(r.flags, f) }

var (
	digStatus = regexp.MustCompile(`opcode: ([A-Z0-9]+), status: ([A-Z0-9]+)`)
	digFlags  = regexp.MustCompile(`;; flags:([a-z ]*);`)
	digEDNS   = regexp.MustCompile(`; EDNS: version: \d+, flags:[^;]*; udp: (\d+)`)
)

// dig runs the real dig against addr with args and parses its output.
func dig(t *testing.T, addr string, args ...string) digResult {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	argv := append([]string{"@" + host, "-p", port, "+tries=1", "+time=5", "+noall", "+comments", "+answer", "+authority"}, args...)
	out, err := exec.CommandContext(ctx, "dig", argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	r := digResult{out: string(out)}
	if m := digStatus.FindStringSubmatch(r.out); m != nil {
		r.opcode, r.status = m[1], m[2]
	}
	if m := digFlags.FindStringSubmatch(r.out); m != nil {
		r.flags = strings.Fields(m[1])
	}
	if m := digEDNS.FindStringSubmatch(r.out); m != nil {
		r.edns = true
		r.udpSize, _ = strconv.Atoi(m[1])
	}
	section := ""
	for line := range strings.SplitSeq(r.out, "\n") {
		switch {
		case line == "":
			section = ""
		case strings.HasPrefix(line, ";; ") && strings.HasSuffix(line, "SECTION:"):
			section = strings.TrimSuffix(strings.TrimPrefix(line, ";; "), ":")
		case section == "OPT PSEUDOSECTION":
			r.opt = append(r.opt, strings.TrimPrefix(line, "; "))
		case section == "QUESTION SECTION" || section == "ZONE SECTION":
			q := strings.Fields(strings.TrimPrefix(line, ";"))
			r.questions = append(r.questions, strings.Join(q, " "))
			if r.question == "" && len(q) > 0 {
				r.question = q[0]
			}
		case strings.HasPrefix(line, ";") || section == "":
		default:
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Fatalf("dig printed a record that does not parse: %q: %v", line, err)
			}
			switch section {
			case "ANSWER SECTION", "PREREQUISITE SECTION":
				r.answer = append(r.answer, rr)
			case "AUTHORITY SECTION", "UPDATE SECTION":
				r.authority = append(r.authority, rr)
			case "ADDITIONAL SECTION":
				r.additional = append(r.additional, rr)
			}
		}
	}
	if r.status == "" {
		t.Fatalf("dig %s: no status in\n%s", strings.Join(argv, " "), out)
	}
	return r
}

// rdata is each RR's data in presentation form.
func rdata(rrs []dns.RR) []string {
	out := []string{}
	for _, r := range rrs {
		out = append(out, dns.TypeToString[r.Header().Rrtype]+" "+strings.TrimSpace(strings.TrimPrefix(r.String(), r.Header().String())))
	}
	slices.Sort(out)
	return out
}

func TestDigAuthoritative(t *testing.T) {
	requireDig(t)
	st := openStore(t)
	seed(t, st)
	addr := serve(t, newServer(t, st, Config{}))

	t.Run("record types", func(t *testing.T) {
		for _, tc := range []struct {
			name, qtype string
			want        []string
		}{
			{"www.example.test", "A", []string{"A 192.0.2.1", "A 192.0.2.2"}},
			{"www.example.test", "AAAA", []string{"AAAA 2001:db8::1"}},
			{"alias.example.test", "CNAME", []string{"CNAME www.example.test."}},
			{"txt.example.test", "TXT", []string{`TXT "hello world"`}},
			{"_sip._tcp.example.test", "SRV", []string{"SRV 10 5 5060 sip.example.test."}},
			{"example.test", "MX", []string{"MX 10 mail.example.test."}},
			{"example.test", "NS", []string{"NS ns1.example.test."}},
			{"1.2.0.192.in-addr.arpa", "PTR", []string{"PTR www.example.test."}},
		} {
			r := dig(t, addr, tc.name, tc.qtype)
			if r.status != "NOERROR" || !r.flag("aa") || r.flag("ra") {
				t.Errorf("%s %s: status %s flags %v, want NOERROR with aa, without ra", tc.name, tc.qtype, r.status, r.flags)
			}
			if got := rdata(r.answer); !slices.Equal(got, tc.want) {
				t.Errorf("%s %s: %q, want %q", tc.name, tc.qtype, got, tc.want)
			}
		}
		r := dig(t, addr, "example.test", "SOA")
		soa, ok := func() (*dns.SOA, bool) {
			if len(r.answer) != 1 {
				return nil, false
			}
			s, ok := r.answer[0].(*dns.SOA)
			return s, ok
		}()
		if !ok || soa.Ns != "ns.example.test." || soa.Minttl != 60 || soa.Serial < 2026000000 || !r.flag("aa") {
			t.Errorf("SOA: %v flags %v", r.answer, r.flags)
		}
	})

	t.Run("CNAME chain", func(t *testing.T) {
		r := dig(t, addr, "chain1.example.test", "A")
		want := []string{"A 192.0.2.1", "A 192.0.2.2", "CNAME alias.example.test.", "CNAME chain2.example.test.", "CNAME www.example.test."}
		if got := rdata(r.answer); r.status != "NOERROR" || !slices.Equal(got, want) {
			t.Errorf("status %s answer %q, want %q", r.status, got, want)
		}
	})

	t.Run("NXDOMAIN and NODATA", func(t *testing.T) {
		nx := dig(t, addr, "nothere.example.test", "A")
		nodata := dig(t, addr, "www.example.test", "MX")
		for _, tc := range []struct {
			r      digResult
			status string
		}{{nx, "NXDOMAIN"}, {nodata, "NOERROR"}} {
			if tc.r.status != tc.status || len(tc.r.answer) != 0 || !tc.r.flag("aa") {
				t.Errorf("status %s answer %v flags %v, want %s, no answer, aa", tc.r.status, tc.r.answer, tc.r.flags, tc.status)
			}
			if len(tc.r.authority) != 1 || tc.r.authority[0].Header().Rrtype != dns.TypeSOA || tc.r.authority[0].Header().Ttl != 60 {
				t.Errorf("%s: authority %v, want the SOA with TTL min(300, 60)", tc.status, tc.r.authority)
			}
		}
	})

	t.Run("wildcard", func(t *testing.T) {
		r := dig(t, addr, "anything.wild.example.test", "A")
		if got := rdata(r.answer); !slices.Equal(got, []string{"A 192.0.2.99"}) || r.answer[0].Header().Name != "anything.wild.example.test." {
			t.Errorf("answer %v", r.answer)
		}
		r = dig(t, addr, "host.wild.example.test", "A")
		if got := rdata(r.answer); !slices.Equal(got, []string{"A 192.0.2.100"}) {
			t.Errorf("a name with its own records: %v", got)
		}
	})

	t.Run("case insensitive, question echoed", func(t *testing.T) {
		r := dig(t, addr, "+question", "WwW.ExAmPlE.tEsT", "AAAA")
		if got := rdata(r.answer); !slices.Equal(got, []string{"AAAA 2001:db8::1"}) || r.question != "WwW.ExAmPlE.tEsT." {
			t.Errorf("question %q answer %q", r.question, got)
		}
	})

	t.Run("EDNS", func(t *testing.T) {
		r := dig(t, addr, "+bufsize=1232", "www.example.test", "A")
		if !r.edns || r.udpSize != maxUDPSize {
			t.Errorf("EDNS %v udp %d, want an OPT advertising %d", r.edns, r.udpSize, maxUDPSize)
		}
		r = dig(t, addr, "+noedns", "www.example.test", "A")
		if r.edns || strings.Contains(r.out, "OPT PSEUDOSECTION") || len(r.answer) != 2 {
			t.Errorf("+noedns: OPT in the reply or answer %v:\n%s", r.answer, r.out)
		}
	})

	t.Run("truncation and TCP", func(t *testing.T) {
		r := dig(t, addr, "+ignore", "big.example.test", "TXT")
		if !r.flag("tc") || len(r.answer) != 0 {
			t.Errorf("UDP: flags %v, %d answers; want tc and none", r.flags, len(r.answer))
		}
		r = dig(t, addr, "big.example.test", "TXT")
		if len(r.answer) != bigTXTCount || r.flag("tc") {
			t.Errorf("after the TCP retry: %d answers flags %v, want %d", len(r.answer), r.flags, bigTXTCount)
		}
		r = dig(t, addr, "+tcp", "big.example.test", "TXT")
		if len(r.answer) != bigTXTCount {
			t.Errorf("+tcp: %d answers, want %d", len(r.answer), bigTXTCount)
		}
	})

	t.Run("change served immediately", func(t *testing.T) {
		if r := dig(t, addr, "fresh.example.test", "A"); r.status != "NXDOMAIN" {
			t.Fatalf("before: %s", r.status)
		}
		addRecord(t, st, "example.test.", "fresh", "A", "192.0.2.201")
		if r := dig(t, addr, "fresh.example.test", "A"); !slices.Equal(rdata(r.answer), []string{"A 192.0.2.201"}) {
			t.Errorf("after the change: %s %v", r.status, r.answer)
		}
	})
}

func TestDigForwarding(t *testing.T) {
	requireDig(t)
	st := openStore(t)
	seed(t, st)
	up := startUpstream(t)
	const timeout = 500 * time.Millisecond
	// A closed loopback port fails at once (ICMP port unreachable); the
	// silent one is what costs the whole timeout before the live upstream
	// is tried.
	cfg := Config{Upstreams: []string{closedPort(t), blackhole(t), up.addr}}
	cfg.UpstreamTimeout.Duration = timeout
	addr := serve(t, newServer(t, st, cfg))

	start := time.Now()
	r := dig(t, addr, "example.org", "A")
	elapsed := time.Since(start)
	if r.status != "NOERROR" || !slices.Equal(rdata(r.answer), []string{"A 203.0.113.10"}) {
		t.Fatalf("status %s answer %v\n%s", r.status, r.answer, r.out)
	}
	if !r.flag("ra") || !r.flag("rd") || r.flag("aa") {
		t.Errorf("flags %v, want ra and rd without aa", r.flags)
	}
	if elapsed < timeout {
		t.Errorf("answered in %v: the dead upstreams were not tried first (timeout %v)", elapsed, timeout)
	}
	if n := up.queries.Load(); n != 1 {
		t.Fatalf("upstream asked %d times", n)
	}

	r = dig(t, addr, "EXAMPLE.org", "A")
	if !slices.Equal(rdata(r.answer), []string{"A 203.0.113.10"}) || r.answer[0].Header().Ttl > 300 {
		t.Errorf("cached answer %v", r.answer)
	}
	if n := up.queries.Load(); n != 1 {
		t.Errorf("upstream asked %d times; the second query should come from the cache", n)
	}

	r = dig(t, addr, "nx.example.org", "A")
	if r.status != "NXDOMAIN" || len(r.authority) != 1 {
		t.Errorf("forwarded NXDOMAIN: %s %v", r.status, r.authority)
	}

	r = dig(t, addr, "big.example.org", "TXT")
	if len(r.answer) != 3 || up.tcpCount.Load() != 1 {
		t.Errorf("truncated upstream answer: %d answers, %d TCP queries upstream", len(r.answer), up.tcpCount.Load())
	}
}

func TestDigNoOpenResolver(t *testing.T) {
	requireDig(t)
	st := openStore(t)
	seed(t, st)
	up := startUpstream(t)
	// 127.0.0.1 is outside the recursion networks.
	addr := serve(t, newServer(t, st, Config{Upstreams: []string{up.addr}, RecursionNetworks: []string{"10.99.0.0/16"}}))

	r := dig(t, addr, "example.org", "A")
	if r.status != "REFUSED" || len(r.answer) != 0 || r.flag("ra") {
		t.Errorf("status %s flags %v answer %v, want REFUSED without ra", r.status, r.flags, r.answer)
	}
	r = dig(t, addr, "www.example.test", "A")
	if r.status != "NOERROR" || !r.flag("aa") || len(r.answer) != 2 {
		t.Errorf("served zone for the same client: %s flags %v answer %v", r.status, r.flags, r.answer)
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("upstream asked %d times on behalf of a refused client", n)
	}
}
