package throttle

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestLimitAndWindow(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	l := New(3, time.Minute, c.now, true)
	for i := 0; i < 3; i++ {
		a, ok := l.Begin("user:kyle", "ip:1.2.3.4")
		if !ok {
			t.Fatalf("attempt %d refused", i)
		}
		a.Done(Failed)
	}
	if _, ok := l.Begin("user:kyle"); ok {
		t.Fatal("fourth failure allowed")
	}
	if _, ok := l.Begin("ip:1.2.3.4", "user:other"); ok {
		t.Fatal("ip limit not shared across accounts")
	}
	if d := l.RetryAfter("user:kyle"); d != time.Minute {
		t.Fatalf("retry after %v", d)
	}
	c.add(time.Minute)
	a, ok := l.Begin("user:kyle")
	if !ok {
		t.Fatal("window did not slide")
	}
	a.Done(Succeeded)
}

func TestSuccessClears(t *testing.T) {
	l := New(2, time.Hour, nil, true)
	a, _ := l.Begin("k")
	a.Done(Failed)
	a, _ = l.Begin("k")
	a.Done(Succeeded)
	for i := 0; i < 2; i++ {
		a, ok := l.Begin("k")
		if !ok {
			t.Fatal("success did not clear failures")
		}
		a.Done(Failed)
	}
	if _, ok := l.Begin("k"); ok {
		t.Fatal("limit not enforced after clearing")
	}
}

// TestParallelBurst is the race a peer project had an advisory for: many
// simultaneous guesses must not all pass before the first failure lands.
func TestParallelBurst(t *testing.T) {
	l := New(5, time.Hour, nil, true)
	var admitted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	release := make(chan struct{})
	for i := 0; i < 100; i++ {
		wg.Go(func() {
			<-start
			a, ok := l.Begin("user:victim")
			if !ok {
				return
			}
			admitted.Add(1)
			<-release // the slow password check
			a.Done(Failed)
		})
	}
	close(start)
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := admitted.Load(); n != 5 {
		t.Fatalf("%d parallel attempts admitted, want exactly 5", n)
	}
}

func TestSuccessKeepsFailuresWithoutClear(t *testing.T) {
	l := New(2, time.Hour, nil, false)
	a, _ := l.Begin("ip:10.0.0.1")
	a.Done(Failed)
	a, _ = l.Begin("ip:10.0.0.1")
	a.Done(Succeeded)
	a, ok := l.Begin("ip:10.0.0.1")
	if !ok {
		t.Fatal("second attempt refused with one failure")
	}
	a.Done(Failed)
	if _, ok := l.Begin("ip:10.0.0.1"); ok {
		t.Fatal("a success in between reset the address's failures")
	}
}

// TestWithdrawnChangesNothing: a withdrawn attempt (refused elsewhere,
// server busy, policy denial) neither counts nor clears — issue #9: a 429
// from the address limit used to clear the account's failures.
func TestWithdrawnChangesNothing(t *testing.T) {
	l := New(3, time.Hour, nil, true)
	for range 2 {
		a, _ := l.Begin("acct:victim")
		a.Done(Failed)
	}
	for range 50 {
		a, ok := l.Begin("acct:victim")
		if !ok {
			t.Fatal("a withdrawn attempt was counted as a failure")
		}
		a.Done(Withdrawn)
	}
	a, ok := l.Begin("acct:victim")
	if !ok {
		t.Fatal("third attempt refused")
	}
	a.Done(Failed)
	if _, ok := l.Begin("acct:victim"); ok {
		t.Fatal("withdrawn attempts cleared the failures")
	}
}
