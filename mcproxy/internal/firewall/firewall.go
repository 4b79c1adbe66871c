// Package firewall decides, before any routing, whether mc-proxy serves a
// client address at all: IP and CIDR blocks, GeoIP country blocks from a
// MaxMind database, and a per-client connection rate limit, a client being
// an IPv4 address or an IPv6 /64 (configurable prefixes). The rules swap
// atomically; the GeoIP database is opened once.
package firewall

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"

	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// Config configures a Firewall.
type Config struct {
	// Rules are the block rules.
	Rules []route.Rule
	// GeoIPPath is a MaxMind country (or city) mmdb; required when a
	// country rule is ever used.
	GeoIPPath string
	// RatePerSecond is the sustained number of new connections allowed
	// per client (see RateIPv4Prefix); zero disables the limit.
	RatePerSecond float64
	// Burst is the bucket size (at least 1 when a rate is set).
	Burst int
	// RateIPv4Prefix and RateIPv6Prefix are the prefix lengths that make
	// one client for the rate limit: every address in the same prefix
	// shares a bucket. Zero means DefaultRateIPv4Prefix and
	// DefaultRateIPv6Prefix. An IPv6 subscriber is normally given a whole
	// /64 and can pick a new source address in it for every connection;
	// keyed by full address, each would get a fresh bucket.
	RateIPv4Prefix int
	RateIPv6Prefix int
}

// Default rate-limit prefixes: one IPv4 address, one IPv6 /64 (the
// smallest prefix an IPv6 subscriber is normally given, RFC 6177).
const (
	DefaultRateIPv4Prefix = 32
	DefaultRateIPv6Prefix = 64
)

// Reasons a connection is blocked, used as metric labels.
const (
	ReasonIP      = "ip"
	ReasonCIDR    = "cidr"
	ReasonCountry = "country"
	ReasonRate    = "rate"
)

// Decision is the verdict for one connection.
type Decision struct {
	// Blocked is true when the connection must be reset.
	Blocked bool
	// Reason is one of the Reason constants when Blocked.
	Reason string
	// Detail names the rule or country that matched.
	Detail string
}

type ruleSet struct {
	ips       map[netip.Addr]struct{}
	prefixes  []netip.Prefix
	countries map[string]struct{}
}

// Firewall evaluates connections. It is safe for concurrent use.
type Firewall struct {
	rules atomic.Pointer[ruleSet]
	geo   *maxminddb.Reader
	rate  float64
	burst float64
	// v4Bits and v6Bits are the rate-limit prefix lengths.
	v4Bits, v6Bits int

	mu        sync.Mutex
	buckets   map[netip.Prefix]*bucket
	lastSweep time.Time
	now       func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New builds a firewall, opening the GeoIP database when configured.
func New(cfg Config) (*Firewall, error) {
	f := &Firewall{
		rate: cfg.RatePerSecond, burst: float64(max(cfg.Burst, 1)),
		v4Bits: cmp.Or(cfg.RateIPv4Prefix, DefaultRateIPv4Prefix), v6Bits: cmp.Or(cfg.RateIPv6Prefix, DefaultRateIPv6Prefix),
		buckets: map[netip.Prefix]*bucket{}, now: time.Now,
	}
	if cfg.RatePerSecond < 0 || math.IsNaN(cfg.RatePerSecond) {
		return nil, fmt.Errorf("firewall: rate_per_second must not be negative, got %v", cfg.RatePerSecond)
	}
	if f.v4Bits < 1 || f.v4Bits > 32 {
		return nil, fmt.Errorf("firewall: rate_ipv4_prefix must be from 1 to 32, got %d", cfg.RateIPv4Prefix)
	}
	if f.v6Bits < 1 || f.v6Bits > 128 {
		return nil, fmt.Errorf("firewall: rate_ipv6_prefix must be from 1 to 128, got %d", cfg.RateIPv6Prefix)
	}
	if cfg.GeoIPPath != "" {
		db, err := maxminddb.Open(cfg.GeoIPPath)
		if err != nil {
			return nil, fmt.Errorf("firewall: open geoip database %s: %w", cfg.GeoIPPath, err)
		}
		f.geo = db
	}
	if err := f.SetRules(cfg.Rules); err != nil {
		f.Close() //nolint:errcheck,gosec // already failing
		return nil, err
	}
	return f, nil
}

// SetRules replaces the block rules atomically.
func (f *Firewall) SetRules(rules []route.Rule) error {
	rs := &ruleSet{ips: map[netip.Addr]struct{}{}, countries: map[string]struct{}{}}
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return err
		}
		switch r.Kind {
		case route.RuleIP:
			rs.ips[netip.MustParseAddr(r.Value)] = struct{}{}
		case route.RuleCIDR:
			rs.prefixes = append(rs.prefixes, netip.MustParsePrefix(r.Value))
		case route.RuleCountry:
			if f.geo == nil {
				return fmt.Errorf("firewall rule country:%s: no geoip database configured", r.Value)
			}
			rs.countries[r.Value] = struct{}{}
		}
	}
	f.rules.Store(rs)
	return nil
}

// Close releases the GeoIP database.
func (f *Firewall) Close() error {
	if f.geo == nil {
		return nil
	}
	return f.geo.Close()
}

// Check decides whether a connection from addr is served. Allowed
// connections consume a rate-limit token.
func (f *Firewall) Check(addr netip.Addr) Decision {
	addr = addr.Unmap()
	rs := f.rules.Load()
	if _, ok := rs.ips[addr]; ok {
		return Decision{Blocked: true, Reason: ReasonIP, Detail: addr.String()}
	}
	for _, p := range rs.prefixes {
		if p.Contains(addr) {
			return Decision{Blocked: true, Reason: ReasonCIDR, Detail: p.String()}
		}
	}
	if len(rs.countries) > 0 {
		if c := f.Country(addr); c != "" {
			if _, ok := rs.countries[c]; ok {
				return Decision{Blocked: true, Reason: ReasonCountry, Detail: c}
			}
		}
	}
	if f.rate > 0 {
		if client := f.RateKey(addr); !f.allow(client) {
			return Decision{Blocked: true, Reason: ReasonRate, Detail: client.String()}
		}
	}
	return Decision{}
}

// RateKey is the client addr is counted as by the rate limit: its
// prefix of RateIPv4Prefix or RateIPv6Prefix bits (an IPv4-mapped IPv6
// address counts as IPv4).
func (f *Firewall) RateKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	bits := f.v6Bits
	if addr.Is4() {
		bits = f.v4Bits
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		// Only an invalid address gets here; they all share one bucket.
		return netip.Prefix{}
	}
	return p
}

// Country returns the ISO country code of addr, or "" when unknown.
func (f *Firewall) Country(addr netip.Addr) string {
	if f.geo == nil {
		return ""
	}
	var code string
	if err := f.geo.Lookup(addr.Unmap()).DecodePath(&code, "country", "iso_code"); err != nil {
		return ""
	}
	return code
}

// sweepEvery bounds how often idle buckets are dropped, so the map cannot
// grow without bound under a spray of source addresses.
const sweepEvery = time.Minute

func (f *Firewall) allow(client netip.Prefix) bool {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.lastSweep) > sweepEvery {
		full := time.Duration(f.burst / f.rate * float64(time.Second))
		for a, b := range f.buckets {
			if now.Sub(b.last) > full {
				delete(f.buckets, a)
			}
		}
		f.lastSweep = now
	}
	b, ok := f.buckets[client]
	if !ok {
		b = &bucket{tokens: f.burst, last: now}
		f.buckets[client] = b
	}
	b.tokens = min(f.burst, b.tokens+now.Sub(b.last).Seconds()*f.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
