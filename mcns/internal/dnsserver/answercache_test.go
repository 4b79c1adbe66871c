package dnsserver

import (
	"bytes"
	"fmt"
	"testing"
)

// testKey is a cache key for name (as wire labels need not matter here).
func testKey(name string) []byte {
	k := append([]byte(name), 0, 1, 0, 1, keyEDNS)
	return append(k, 0, 0)
}

func reply(n int, fill byte) []byte { return bytes.Repeat([]byte{fill}, n) }

func TestAnswerCacheSizeClasses(t *testing.T) {
	c := newAnswerCache(1 << 20)
	gen := c.generation()
	k := testKey("big")
	// A complete reply of 900 bytes answers every client that takes 900.
	setSizeClass(k, 0)
	c.put(k, reply(900, 'c'), cacheBounded, gen)
	for _, tc := range []struct {
		limit int
		want  byte // 0: miss
	}{{maxUDPSize, 'c'}, {900, 'c'}, {899, 0}, {minUDPSize, 0}} {
		got := c.lookup(testKey("big"), tc.limit)
		if (got == nil) != (tc.want == 0) || got != nil && got[0] != tc.want {
			t.Errorf("limit %d: got %.1q, want %q", tc.limit, got, tc.want)
		}
	}
	// The reply cut for 512 answers 512 only; cuts for other sizes are
	// not kept at all.
	setSizeClass(k, minUDPSize)
	c.put(k, reply(500, 't'), cacheBounded, gen)
	if got := c.lookup(testKey("big"), minUDPSize); got == nil || got[0] != 't' {
		t.Errorf("limit 512: got %.1q, want the cut reply", got)
	}
	if got := c.lookup(testKey("big"), 700); got != nil {
		t.Errorf("limit 700: got %.1q, want a miss", got)
	}
}

func TestAnswerCacheGenerations(t *testing.T) {
	c := newAnswerCache(1 << 20)
	stale := c.generation()
	c.put(testKey("a"), reply(10, 'a'), cacheBounded, stale)
	c.invalidate()
	if got := c.lookup(testKey("a"), maxUDPSize); got != nil {
		t.Fatal("entry survived invalidate")
	}
	// A reply built from the zones before the change arrives late.
	c.put(testKey("a"), reply(10, 'a'), cacheBounded, stale)
	if got := c.lookup(testKey("a"), maxUDPSize); got != nil {
		t.Fatal("a reply built before the change was stored after it")
	}
	c.put(testKey("a"), reply(10, 'b'), cacheBounded, c.generation())
	if got := c.lookup(testKey("a"), maxUDPSize); got == nil || got[0] != 'b' {
		t.Fatalf("current reply not stored: %.1q", got)
	}
	if e, _ := c.usage(); e[cacheBounded] != 1 {
		t.Errorf("%d entries, want 1", e[cacheBounded])
	}
}

func TestAnswerCacheDoorkeeper(t *testing.T) {
	c := newAnswerCache(1 << 20)
	gen := c.generation()
	c.put(testKey("nx"), reply(50, 'n'), cacheOpen, gen)
	if got := c.lookup(testKey("nx"), maxUDPSize); got != nil {
		t.Fatal("an open-class reply was stored the first time it was built")
	}
	c.put(testKey("nx"), reply(50, 'n'), cacheOpen, gen)
	if got := c.lookup(testKey("nx"), maxUDPSize); got == nil {
		t.Fatal("an open-class reply built twice was not stored")
	}
	c.put(testKey("pos"), reply(50, 'p'), cacheBounded, gen)
	if got := c.lookup(testKey("pos"), maxUDPSize); got == nil {
		t.Fatal("a bounded reply was not stored the first time")
	}
	c.put(testKey("never"), reply(50, 'x'), notCached, gen)
	c.put(testKey("never"), reply(50, 'x'), notCached, gen)
	if got := c.lookup(testKey("never"), maxUDPSize); got != nil {
		t.Fatal("a notCached reply was stored")
	}
}

func TestAnswerCacheBudget(t *testing.T) {
	const budget = 256 << 10
	c := newAnswerCache(budget)
	gen := c.generation()
	// Bounded answers: a few, well within their share.
	for i := range 50 {
		c.put(testKey(fmt.Sprintf("pos%d", i)), reply(100, 'p'), cacheBounded, gen)
	}
	// Open answers, each built twice, far beyond their share.
	for i := range 20000 {
		k := testKey(fmt.Sprintf("nx%d", i))
		c.put(k, reply(100, 'n'), cacheOpen, gen)
		c.put(k, reply(100, 'n'), cacheOpen, gen)
	}
	entries, used := c.usage()
	if used[cacheOpen] > budget/openShare || used[cacheBounded]+used[cacheOpen] > budget {
		t.Errorf("bytes used %v over the budget %d (open share %d)", used, budget, budget/openShare)
	}
	if entries[cacheOpen] == 0 {
		t.Error("no open-class entries kept")
	}
	for i := range 50 {
		if c.lookup(testKey(fmt.Sprintf("pos%d", i)), maxUDPSize) == nil {
			t.Fatalf("bounded answer %d evicted by open-class answers", i)
		}
	}
	// Bounded answers beyond their own share evict each other, and
	// nothing larger than a shard's share is kept at all.
	for i := range 20000 {
		c.put(testKey(fmt.Sprintf("many%d", i)), reply(200, 'm'), cacheBounded, gen)
	}
	c.put(testKey("huge"), reply(budget, 'h'), cacheBounded, gen)
	if _, used = c.usage(); used[cacheBounded] > budget-budget/openShare {
		t.Errorf("bounded bytes %d over their share %d", used[cacheBounded], budget-budget/openShare)
	}
	if c.lookup(testKey("huge"), 1<<30) != nil {
		t.Error("a reply larger than a shard's share was stored")
	}

	off := newAnswerCache(0)
	off.put(testKey("a"), reply(10, 'a'), cacheBounded, off.generation())
	if off.lookup(testKey("a"), maxUDPSize) != nil {
		t.Error("a disabled cache stored an answer")
	}
}
