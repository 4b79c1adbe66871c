package dnsserver

import (
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// cacheClass is the part of the answer cache a reply may go into.
type cacheClass uint8

const (
	// notCached replies are never cached: forwarded answers (the
	// forwarder caches those itself, and ages their TTLs), refusals that
	// depend on the client's address, protocol errors.
	notCached cacheClass = iota
	// cacheBounded replies answer with records of the asked type at a
	// name that exists: the zones hold a bounded number of them.
	cacheBounded
	// cacheOpen replies are the ones a client can have for any name or
	// type it makes up: NXDOMAIN, NODATA, wildcard answers, referrals.
	cacheOpen
	numClasses
)

const (
	// answerShards splits the cache so the UDP read loops of several
	// cores rarely wait for one another.
	answerShards = 16
	// entryOverhead approximates what an entry costs besides its key and
	// reply: the entry itself, its map slot and its eviction list slot.
	entryOverhead = 128
	// doorBuckets and doorWays size each shard's doorkeeper: the hashes
	// of open-class answers seen once (see answerCache), in buckets of
	// doorWays, so that keys whose hashes share a bucket do not push each
	// other out.
	doorBuckets = 32
	doorWays    = 8
	// openShare is the part of the budget (1/openShare) open-class
	// answers may use; bounded answers get the rest.
	openShare = 4
)

// answerCache holds packed replies to the questions the zones answer,
// keyed by the lower-cased question, the EDNS flags and the size class (see
// packet.go), so a repeated question is answered with a copy and three
// patches instead of a lookup and a pack. It is bounded in bytes, split
// between the two classes so that made-up questions can never evict the
// answers the zones hold: open-class answers get 1/openShare of the budget.
// When a class is full, a random entry of that class gives way.
//
// An open-class answer is stored only the second time it is built within
// the doorkeeper's memory: the first time only its 64-bit hash is
// remembered, in a fixed set-associative table (4096 hashes), where a new
// hash takes the place of a random one in its bucket. A flood of random
// names therefore allocates nothing in the cache and evicts nothing, while
// the NXDOMAIN of a name asked again and again is cached.
//
// Every change to the zones empties the cache (invalidate). A reply built
// from the zones as they were before a change must not be stored after
// it: put stores only if the generation read before the zones were looked
// at is still current.
type answerCache struct {
	seed maphash.Seed
	// budget is each shard's byte budget per class; zero disables the
	// cache.
	budget [numClasses]int
	gen    atomic.Uint64
	shards [answerShards]answerShard
}

type answerShard struct {
	mu      sync.RWMutex
	entries map[string]*answerEntry
	// byClass lists the entries of each class for random eviction.
	byClass [numClasses][]*answerEntry
	bytes   [numClasses]int
	door    [doorBuckets][doorWays]uint64
}

// answerEntry is one cached reply. reply is never modified once stored:
// readers copy it without holding the lock.
type answerEntry struct {
	key   string
	reply []byte
	class cacheClass
	idx   int // position in its shard's byClass list
}

func (e *answerEntry) cost() int { return len(e.key) + len(e.reply) + entryOverhead }

// newAnswerCache returns a cache of about maxBytes; zero or less disables
// it.
func newAnswerCache(maxBytes int) *answerCache {
	c := &answerCache{seed: maphash.MakeSeed()}
	if maxBytes > 0 {
		open := maxBytes / openShare
		c.budget[cacheOpen] = open / answerShards
		c.budget[cacheBounded] = (maxBytes - open) / answerShards
	}
	for i := range c.shards {
		c.shards[i].entries = map[string]*answerEntry{}
	}
	return c
}

// shardOf picks the shard for a key; the size class (the key's last two
// bytes) is left out so every size of one question lands in one shard.
func (c *answerCache) shardOf(key []byte) (*answerShard, uint64) {
	h := maphash.Bytes(c.seed, key[:len(key)-sizeClassLen])
	return &c.shards[h%answerShards], h
}

// lookup returns the cached reply to the question in key for a client
// that accepts limit bytes: the complete reply if it fits, else the reply
// cut for exactly that limit. It sets key's size class while looking.
func (c *answerCache) lookup(key []byte, limit int) []byte {
	if c.budget[cacheBounded] == 0 {
		return nil
	}
	sh, _ := c.shardOf(key)
	setSizeClass(key, 0)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if e := sh.entries[string(key)]; e != nil && len(e.reply) <= limit {
		return e.reply
	}
	if !cutCached(limit) {
		return nil
	}
	setSizeClass(key, limit)
	if e := sh.entries[string(key)]; e != nil {
		return e.reply
	}
	return nil
}

// cutCached reports whether replies cut to fit limit are cached: only for
// the two sizes nearly every client uses (no EDNS, and the 1232 bytes of
// DNS flag day 2020), so that odd sizes cannot multiply the entries.
func cutCached(limit int) bool { return limit == minUDPSize || limit == maxUDPSize }

// generation is read before the zones are, and handed to put.
func (c *answerCache) generation() uint64 { return c.gen.Load() }

// put stores reply under key unless the zones changed since generation gen
// was read, the reply is larger than its class's share of a shard, or it
// is an open-class reply seen for the first time. The cache keeps reply.
func (c *answerCache) put(key, reply []byte, class cacheClass, gen uint64) {
	if class == notCached || c.budget[class] == 0 {
		return
	}
	cost := len(key) + len(reply) + entryOverhead
	if cost > c.budget[class] {
		return
	}
	sh, h := c.shardOf(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if class == cacheOpen && !sh.seen(h) {
		return
	}
	if old := sh.entries[string(key)]; old != nil {
		sh.remove(old)
	}
	for sh.bytes[class]+cost > c.budget[class] {
		list := sh.byClass[class]
		sh.remove(list[rand.IntN(len(list))]) //nolint:gosec // eviction needs no unpredictability
	}
	e := &answerEntry{key: string(key), reply: reply, class: class, idx: len(sh.byClass[class])}
	sh.byClass[class] = append(sh.byClass[class], e)
	sh.entries[e.key] = e
	sh.bytes[class] += cost
}

// seen reports whether the doorkeeper holds h, and remembers h if not;
// sh.mu is held.
func (sh *answerShard) seen(h uint64) bool {
	// The shard index used h's low bits; the bucket takes others.
	bucket := &sh.door[(h/answerShards)%doorBuckets]
	for _, w := range bucket {
		if w == h {
			return true
		}
	}
	bucket[rand.IntN(doorWays)] = h //nolint:gosec // replacement needs no unpredictability
	return false
}

// remove drops e; sh.mu is held.
func (sh *answerShard) remove(e *answerEntry) {
	list := sh.byClass[e.class]
	last := list[len(list)-1]
	list[e.idx], last.idx = last, e.idx
	list[len(list)-1] = nil
	sh.byClass[e.class] = list[:len(list)-1]
	delete(sh.entries, e.key)
	sh.bytes[e.class] -= e.cost()
}

// invalidate empties the cache after a change to the zones; replies built
// before it can no longer be stored.
func (c *answerCache) invalidate() {
	c.gen.Add(1)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.entries)
		for cl := range sh.byClass {
			clear(sh.byClass[cl])
			sh.byClass[cl] = sh.byClass[cl][:0]
			sh.bytes[cl] = 0
		}
		sh.mu.Unlock()
	}
}

// usage is the number of entries and the bytes they are counted for, per
// class.
func (c *answerCache) usage() (entries, bytes [numClasses]int) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for cl := range sh.byClass {
			entries[cl] += len(sh.byClass[cl])
			bytes[cl] += sh.bytes[cl]
		}
		sh.mu.RUnlock()
	}
	return entries, bytes
}
