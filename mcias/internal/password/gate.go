package password

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// ErrBusy is Gate.Do giving up: every slot stayed taken for the whole wait.
var ErrBusy = errors.New("password hashing: every slot is busy")

// DefaultMaxWait is how long Gate.Do waits for a slot unless told otherwise:
// long enough to ride out a burst of honest logins, short enough that a
// flood is answered (and can back off) instead of piling up.
const DefaultMaxWait = 2 * time.Second

// Gate bounds how many Argon2id computations run at once. Each one holds
// its parameters' memory (64 MiB by default) for its whole run, so without
// a bound a burst of parallel logins — wrong ones cost as much as right
// ones, and unknown users just as much through the Equalizer — takes the
// process's memory up with it. A slot is taken before the work starts;
// callers that find none free wait up to the gate's maximum wait (or their
// context) and then get ErrBusy.
type Gate struct {
	slots   chan struct{}
	maxWait time.Duration
	hold    func()
}

// GateOptions configure NewGate.
type GateOptions struct {
	// Slots is how many computations may run at once (at least 1).
	Slots int
	// MaxWait is how long a caller waits for a slot (DefaultMaxWait if
	// zero).
	MaxWait time.Duration
	// Hold, when set, runs inside every slot before the work: tests use it
	// to keep a slot taken. Nil in production.
	Hold func()
}

// NewGate returns a gate with o.Slots slots.
func NewGate(o GateOptions) *Gate {
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	return &Gate{slots: make(chan struct{}, max(1, o.Slots)), maxWait: o.MaxWait, hold: o.Hold}
}

// Slots is the number of computations the gate lets run at once.
func (g *Gate) Slots() int { return cap(g.slots) }

// MaxWait is how long Do waits for a slot.
func (g *Gate) MaxWait() time.Duration { return g.maxWait }

// Do runs fn, an Argon2id computation, in a slot. It waits for a free slot
// at most the gate's maximum wait and returns ErrBusy after that, or the
// context's error if ctx ends first; fn has not run then.
func (g *Gate) Do(ctx context.Context, fn func()) error {
	select {
	case g.slots <- struct{}{}:
	default:
		t := time.NewTimer(g.maxWait)
		defer t.Stop()
		select {
		case g.slots <- struct{}{}:
		case <-t.C:
			return ErrBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-g.slots }()
	if g.hold != nil {
		g.hold()
	}
	fn()
	return nil
}

// AutoSlots sizes a gate: two computations per usable CPU (Argon2 is CPU
// bound; more in flight only adds waiting and memory), and no more than
// fit in budgetKiB of memory at p.Memory each; at least one. A budgetKiB
// of 0 means unknown: the CPU bound alone applies.
func AutoSlots(p Params, budgetKiB uint64, procs int) int {
	n := max(1, 2*procs)
	if budgetKiB > 0 && p.Memory > 0 {
		n = min(n, int(min(budgetKiB/uint64(p.Memory), 1<<20))) //nolint:gosec // bounded above
	}
	return max(1, n)
}

// MemoryBudgetKiB is the memory Argon2 may use by default: half of the
// process's memory limit, which is its cgroup v2 memory.max when one is
// set (a systemd MemoryMax=, a container limit), else the machine's
// MemTotal. The other half is left for everything else the process does
// and for the garbage collector's headroom. 0 when neither can be read.
func MemoryBudgetKiB() uint64 {
	if limit, ok := cgroupMemoryMax(); ok {
		return limit / 1024 / 2
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	total, ok := parseMemTotal(f)
	if !ok {
		return 0
	}
	return total / 2
}

// cgroupMemoryMax reads this process's cgroup v2 memory.max in bytes; false
// when there is none, or it is "max" (no limit).
func cgroupMemoryMax() (uint64, bool) {
	var candidates []string
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		if p, ok := cgroupV2Path(string(b)); ok {
			candidates = append(candidates, path.Join("/sys/fs/cgroup", p, "memory.max"))
		}
	}
	candidates = append(candidates, "/sys/fs/cgroup/memory.max")
	for _, c := range candidates {
		b, err := os.ReadFile(c) //nolint:gosec // a fixed cgroupfs path
		if err != nil {
			continue
		}
		if v, ok := parseMemoryMax(string(b)); ok {
			return v, true
		}
	}
	return 0, false
}

// cgroupV2Path is the unified hierarchy's path in /proc/self/cgroup
// ("0::/system.slice/mcias.service").
func cgroupV2Path(s string) (string, bool) {
	for line := range strings.Lines(s) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok && strings.HasPrefix(p, "/") && !strings.Contains(p, "..") {
			return p, true
		}
	}
	return "", false
}

// parseMemoryMax reads a memory.max file: a byte count, or "max".
func parseMemoryMax(s string) (uint64, bool) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || v == 0 {
		return 0, false
	}
	return v, true
}

// parseMemTotal finds "MemTotal: N kB" in /proc/meminfo.
func parseMemTotal(r io.Reader) (uint64, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		return v, err == nil && v > 0
	}
	return 0, false
}
