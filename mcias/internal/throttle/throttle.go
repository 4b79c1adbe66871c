package throttle

import (
	"sync"
	"time"
)

// Limiter counts failures per key.
type Limiter struct {
	max            int
	window         time.Duration
	now            func() time.Time
	clearOnSuccess bool

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	failures []time.Time // within the window, oldest first
	inflight int
}

// New allows at most max failures per key within window. With
// clearOnSuccess a Succeeded attempt forgets the key's failures (right for
// an account: its owner got in); without it failures only age out (right
// for a source address: one good login must not reset the count for
// guesses at others). now may be nil.
func New(max int, window time.Duration, now func() time.Time, clearOnSuccess bool) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{max: max, window: window, now: now, clearOnSuccess: clearOnSuccess, entries: map[string]*entry{}}
}

// Outcome is how a reserved attempt ended.
type Outcome int

const (
	// Failed means a credential was checked and was wrong. It counts against
	// every key of the attempt. The zero value, so an attempt that ends
	// without a decision errs on the side of counting.
	Failed Outcome = iota
	// Succeeded means the whole credential was verified (password and second
	// factor, or a passkey). A limiter made with clearOnSuccess forgets
	// the key's failures. Only this outcome ever clears a count.
	Succeeded
	// Withdrawn means nothing was verified, or what was verified does not
	// settle the question — the attempt was refused by another limit, the
	// server was too busy to check it, login policy denied a correct
	// credential, or only part of the credential was checked. The
	// reservation is released and the count stays as it was.
	Withdrawn
)

// Attempt is a reserved attempt; finish it with Done.
type Attempt struct {
	l    *Limiter
	keys []string
}

// Begin reserves an attempt for every key, or refuses (false) if any key has
// reached its limit counting attempts still in flight.
func (l *Limiter) Begin(keys ...string) (*Attempt, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		e := l.entries[k]
		if e == nil {
			continue
		}
		l.expire(e, now)
		if len(e.failures)+e.inflight >= l.max {
			return nil, false
		}
	}
	for _, k := range keys {
		e := l.entries[k]
		if e == nil {
			e = &entry{}
			l.entries[k] = e
		}
		e.inflight++
	}
	if len(l.entries) > 100_000 {
		l.sweep(now)
	}
	return &Attempt{l: l, keys: keys}, true
}

// Done releases the reservation and records the outcome: Failed adds one
// failure to each key; Succeeded clears the keys' failures if the limiter
// clears on success; Withdrawn changes nothing else.
func (a *Attempt) Done(o Outcome) {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range a.keys {
		e := l.entries[k]
		if e == nil {
			continue
		}
		e.inflight--
		switch o {
		case Failed:
			e.failures = append(e.failures, now)
		case Succeeded:
			if l.clearOnSuccess {
				e.failures = nil
			}
		case Withdrawn:
		}
		if e.inflight == 0 && len(e.failures) == 0 {
			delete(l.entries, k)
		}
	}
}

// RetryAfter is how long until key may try again (0 if it may now).
func (l *Limiter) RetryAfter(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[key]
	if e == nil {
		return 0
	}
	now := l.now()
	l.expire(e, now)
	if len(e.failures)+e.inflight < l.max || len(e.failures) == 0 {
		return 0
	}
	return e.failures[0].Add(l.window).Sub(now)
}

func (l *Limiter) expire(e *entry, now time.Time) {
	cut := 0
	for cut < len(e.failures) && !now.Before(e.failures[cut].Add(l.window)) {
		cut++
	}
	e.failures = e.failures[cut:]
}

func (l *Limiter) sweep(now time.Time) {
	for k, e := range l.entries {
		l.expire(e, now)
		if e.inflight == 0 && len(e.failures) == 0 {
			delete(l.entries, k)
		}
	}
}
