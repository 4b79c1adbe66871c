package dnsserver

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxNegativeTTL caps how long a negative answer is cached (RFC 2308
	// recommends one to three hours; we take the short end).
	maxNegativeTTL = 3600
	// maxPositiveTTL caps how long any answer is cached, so a mistaken
	// week-long TTL upstream cannot pin a record here.
	maxPositiveTTL = 86400
)

// cacheKey identifies a forwarded question. The DO bit is part of it
// because the answer differs (DNSSEC records or not).
type cacheKey struct {
	name   string // canonical
	qtype  uint16
	qclass uint16
	do     bool
}

// cached is a forwarded answer as the upstream gave it.
type cached struct {
	rcode           int
	authenticated   bool
	answer, ns, ext []dns.RR
}

type cacheEntry struct {
	key     cacheKey
	val     cached
	stored  time.Time
	expires time.Time
	elem    *list.Element
}

// cache holds forwarded answers for their TTL, at most size of them; when
// full it drops the least recently used. The zero size disables it.
type cache struct {
	size int
	now  func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
	lru     list.List // of *cacheEntry, most recently used first
}

func newCache(size int, now func() time.Time) *cache {
	return &cache{size: size, now: now, entries: map[cacheKey]*cacheEntry{}}
}

// get returns the answer for k with every TTL lowered by the time it has
// been cached, or false if there is none or it expired.
func (c *cache) get(k cacheKey) (cached, bool) {
	now := c.now()
	c.mu.Lock()
	e := c.entries[k]
	if e == nil {
		c.mu.Unlock()
		return cached{}, false
	}
	if !now.Before(e.expires) {
		c.remove(e)
		c.mu.Unlock()
		return cached{}, false
	}
	c.lru.MoveToFront(e.elem)
	c.mu.Unlock()
	age := uint32(now.Sub(e.stored) / time.Second) //nolint:gosec // below the TTL cap, positive
	if age == 0 {
		return e.val, true
	}
	v := e.val
	v.answer, v.ns, v.ext = aged(v.answer, age), aged(v.ns, age), aged(v.ext, age)
	return v, true
}

// aged copies rrs with age taken off each TTL.
func aged(rrs []dns.RR, age uint32) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, r := range rrs {
		out[i] = dns.Copy(r)
		h := out[i].Header()
		if h.Ttl > age {
			h.Ttl -= age
		} else {
			h.Ttl = 0
		}
	}
	return out
}

// put stores v for k if it is cacheable: a positive answer for its lowest
// TTL, a negative one (NXDOMAIN or NODATA) for its SOA's negative TTL.
func (c *cache) put(k cacheKey, v cached) {
	ttl, ok := cacheTTL(v)
	if !ok || c.size <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[k]; old != nil {
		c.remove(old)
	}
	for len(c.entries) >= c.size {
		oldest, _ := c.lru.Back().Value.(*cacheEntry)
		c.remove(oldest)
	}
	e := &cacheEntry{key: k, val: v, stored: now, expires: now.Add(time.Duration(ttl) * time.Second)}
	e.elem = c.lru.PushFront(e)
	c.entries[k] = e
}

// remove drops e; c.mu is held.
func (c *cache) remove(e *cacheEntry) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.key)
}

// purge drops every entry for zone or a name below it.
func (c *cache) purge(zone string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if dns.IsSubDomain(zone, k.name) {
			c.remove(e)
		}
	}
}

// count is the number of entries, expired ones included.
func (c *cache) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// cacheTTL is how long v may be cached, and false if it may not be.
func cacheTTL(v cached) (uint32, bool) {
	switch {
	case v.rcode == dns.RcodeNameError, v.rcode == dns.RcodeSuccess && len(v.answer) == 0:
		for _, r := range v.ns {
			if soa, ok := r.(*dns.SOA); ok {
				ttl := min(soa.Hdr.Ttl, soa.Minttl, maxNegativeTTL)
				return ttl, ttl > 0
			}
		}
		// Without a SOA there is no negative TTL to honour.
		return 0, false
	case v.rcode == dns.RcodeSuccess:
		ttl := uint32(maxPositiveTTL)
		for _, sec := range [][]dns.RR{v.answer, v.ns, v.ext} {
			for _, r := range sec {
				ttl = min(ttl, r.Header().Ttl)
			}
		}
		return ttl, ttl > 0
	}
	return 0, false
}
