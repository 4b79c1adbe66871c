package dnsserver

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func aRR(name string, ttl uint32) dns.RR {
	return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IPv4(192, 0, 2, 1)}
}

func soaRR(name string, ttl, minimum uint32) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns: "ns." + name, Mbox: "h." + name, Minttl: minimum}
}

func key(name string) cacheKey { return cacheKey{name: name, qtype: dns.TypeA, qclass: dns.ClassINET} }

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestCacheTTL(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := newCache(10, clk.now)
	c.put(key("a.example."), cached{answer: []dns.RR{aRR("a.example.", 300), aRR("a.example.", 100)}})

	clk.t = clk.t.Add(30 * time.Second)
	v, ok := c.get(key("a.example."))
	if !ok || v.answer[0].Header().Ttl != 270 || v.answer[1].Header().Ttl != 70 {
		t.Fatalf("after 30s: %v %v, want TTLs 270 and 70", ok, v.answer)
	}
	if v, _ := c.get(key("a.example.")); v.answer[0] == nil {
		t.Fatal("second get")
	}
	clk.t = clk.t.Add(70 * time.Second)
	if _, ok := c.get(key("a.example.")); ok {
		t.Error("served past the lowest TTL")
	}
	if c.count() != 0 {
		t.Errorf("expired entry kept: %d entries", c.count())
	}
	if _, ok := c.get(cacheKey{name: "a.example.", qtype: dns.TypeA, qclass: dns.ClassINET, do: true}); ok {
		t.Error("the DO bit is not part of the key")
	}
}

func TestCacheNegative(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := newCache(10, clk.now)
	for _, tc := range []struct {
		name string
		v    cached
		ttl  time.Duration // 0: not cached
	}{
		{"nxdomain.", cached{rcode: dns.RcodeNameError, ns: []dns.RR{soaRR("example.", 900, 120)}}, 120 * time.Second},
		{"nodata.", cached{ns: []dns.RR{soaRR("example.", 60, 900)}}, 60 * time.Second},
		{"long.", cached{rcode: dns.RcodeNameError, ns: []dns.RR{soaRR("example.", 86400, 86400)}}, time.Hour},
		{"nosoa.", cached{rcode: dns.RcodeNameError}, 0},
		{"servfail.", cached{rcode: dns.RcodeServerFailure}, 0},
		{"zero.", cached{answer: []dns.RR{aRR("zero.", 0)}}, 0},
		{"capped.", cached{answer: []dns.RR{aRR("capped.", 7*86400)}}, maxPositiveTTL * time.Second},
	} {
		c.put(key(tc.name), tc.v)
		start := clk.t
		_, ok := c.get(key(tc.name))
		if ok != (tc.ttl > 0) {
			t.Errorf("%s: cached %v, want %v", tc.name, ok, tc.ttl > 0)
			continue
		}
		if tc.ttl == 0 {
			continue
		}
		clk.t = start.Add(tc.ttl - time.Second)
		if _, ok := c.get(key(tc.name)); !ok {
			t.Errorf("%s: gone before %v", tc.name, tc.ttl)
		}
		clk.t = start.Add(tc.ttl)
		if _, ok := c.get(key(tc.name)); ok {
			t.Errorf("%s: still there after %v", tc.name, tc.ttl)
		}
		clk.t = start
	}
}

func TestCacheBoundAndPurge(t *testing.T) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := newCache(2, clk.now)
	c.put(key("a."), cached{answer: []dns.RR{aRR("a.", 60)}})
	c.put(key("b."), cached{answer: []dns.RR{aRR("b.", 60)}})
	c.get(key("a."))
	c.put(key("c."), cached{answer: []dns.RR{aRR("c.", 60)}})
	if _, ok := c.get(key("b.")); ok || c.count() != 2 {
		t.Errorf("least recently used entry kept; %d entries", c.count())
	}
	if _, ok := c.get(key("a.")); !ok {
		t.Error("recently used entry dropped")
	}

	c = newCache(10, clk.now)
	for _, n := range []string{"example.org.", "www.example.org.", "a.b.example.org.", "example.com.", "notexample.org."} {
		c.put(key(n), cached{answer: []dns.RR{aRR(n, 60)}})
	}
	c.purge("example.org.")
	for n, want := range map[string]bool{"example.org.": false, "www.example.org.": false, "a.b.example.org.": false, "example.com.": true, "notexample.org.": true} {
		if _, ok := c.get(key(n)); ok != want {
			t.Errorf("%s cached %v after purging example.org, want %v", n, ok, want)
		}
	}

	off := newCache(0, clk.now)
	off.put(key("a."), cached{answer: []dns.RR{aRR("a.", 60)}})
	if off.count() != 0 {
		t.Error("a zero-size cache stored an entry")
	}
}
