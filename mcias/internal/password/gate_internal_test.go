package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAutoSlots(t *testing.T) {
	const mib = 1024 // KiB
	p64 := Params{Memory: 64 * mib}
	for _, tc := range []struct {
		name      string
		p         Params
		budgetKiB uint64
		procs     int
		want      int
	}{
		{"cpu bound: 2 CPUs, 8 GiB", p64, 4096 * mib, 2, 4},
		{"memory bound: 2 CPUs, 128 MiB budget", p64, 128 * mib, 2, 2},
		{"memory bound: 32 CPUs, 1 GiB budget", p64, 1024 * mib, 32, 16},
		{"budget below one hash still gets one slot", p64, 32 * mib, 8, 1},
		{"unknown budget: CPU bound only", p64, 0, 3, 6},
		{"big hashes: 1 GiB each in a 2 GiB budget", Params{Memory: 1024 * mib}, 2048 * mib, 16, 2},
		{"no CPUs reported", p64, 4096 * mib, 0, 1},
	} {
		if got := AutoSlots(tc.p, tc.budgetKiB, tc.procs); got != tc.want {
			t.Errorf("%s: AutoSlots = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMemoryLimitParsing(t *testing.T) {
	if v, ok := parseMemoryMax("2147483648\n"); !ok || v != 2<<30 {
		t.Errorf("memory.max bytes: %d %v", v, ok)
	}
	for _, s := range []string{"max\n", "", "0", "-1", "12k"} {
		if v, ok := parseMemoryMax(s); ok {
			t.Errorf("memory.max %q read as a limit %d", s, v)
		}
	}
	meminfo := "MemTotal:        8019020 kB\nMemFree:          123456 kB\n"
	if v, ok := parseMemTotal(strings.NewReader(meminfo)); !ok || v != 8019020 {
		t.Errorf("MemTotal: %d %v", v, ok)
	}
	if _, ok := parseMemTotal(strings.NewReader("MemFree: 1 kB\n")); ok {
		t.Error("meminfo without MemTotal read as a limit")
	}
	if p, ok := cgroupV2Path("12:cpu:/x\n0::/system.slice/mcias.service\n"); !ok || p != "/system.slice/mcias.service" {
		t.Errorf("cgroup path: %q %v", p, ok)
	}
	if _, ok := cgroupV2Path("0::/../../etc\n"); ok {
		t.Error("a cgroup path with .. accepted")
	}
	// Whatever this machine has, the budget is a sane number or unknown.
	if b := MemoryBudgetKiB(); b != 0 && b < 1024 {
		t.Errorf("MemoryBudgetKiB = %d KiB", b)
	}
}

// TestGateBoundsConcurrency: with one slot, parallel callers never run
// together; those that cannot get the slot within the wait get ErrBusy
// without running.
func TestGateBoundsConcurrency(t *testing.T) {
	release := make(chan struct{})
	var running, peak, ran atomic.Int32
	g := NewGate(GateOptions{Slots: 1, MaxWait: 50 * time.Millisecond, Hold: func() {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
	}})
	if g.Slots() != 1 || g.MaxWait() != 50*time.Millisecond {
		t.Fatalf("gate: %d slots, wait %v", g.Slots(), g.MaxWait())
	}
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { errs <- g.Do(context.Background(), func() { ran.Add(1) }) })
	}
	// Everyone but the holder gives up after the wait.
	busy := 0
	for busy < n-1 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrBusy) {
				t.Fatalf("a waiting caller got %v, want ErrBusy", err)
			}
			busy++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d callers gave up", busy, n-1)
		}
	}
	close(release)
	wg.Wait()
	if err := <-errs; err != nil {
		t.Fatalf("the holder: %v", err)
	}
	if peak.Load() != 1 || ran.Load() != 1 {
		t.Fatalf("peak concurrency %d, ran %d; want 1 and 1", peak.Load(), ran.Load())
	}
	// The slot is free again.
	if err := g.Do(context.Background(), func() {}); err != nil {
		t.Fatal(err)
	}
}

func TestGateWaitsAndHonoursContext(t *testing.T) {
	hold := make(chan struct{})
	g := NewGate(GateOptions{Slots: 1, MaxWait: time.Minute})
	started := make(chan struct{})
	go func() { _ = g.Do(context.Background(), func() { close(started); <-hold }) }()
	<-started
	// A caller that waits gets the slot once it is free.
	done := make(chan error, 1)
	go func() { done <- g.Do(context.Background(), func() {}) }()
	time.Sleep(20 * time.Millisecond)
	close(hold)
	if err := <-done; err != nil {
		t.Fatalf("waiting caller: %v", err)
	}
	// A caller whose context ends stops waiting.
	hold2 := make(chan struct{})
	started2 := make(chan struct{})
	go func() { _ = g.Do(context.Background(), func() { close(started2); <-hold2 }) }()
	<-started2
	defer close(hold2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.Do(ctx, func() { t.Error("ran without a slot") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled caller: %v", err)
	}
}
