package main

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
)

// sample is one timed measurement.
type sample struct {
	units  int // operations completed (certificates, orders, pairs, signatures)
	reqs   int // requests they took, for the per-request latencies
	secs   float64
	srvCPU float64 // CPU seconds of the server's processes
	cliCPU float64 // CPU seconds of this process
	lats   []time.Duration
	polls  int // ACME: polls of authorizations and orders
}

func (s sample) rate() float64 { return float64(s.units) / s.secs }

// op does one unit of work for worker w and says how many operations it
// completed and how many polls it needed.
type op func(ctx context.Context, w int) (units, polls int, err error)

// cutoffSlack is how close to the deadline an error counts as the
// deadline's, not the server's.
const cutoffSlack = 100 * time.Millisecond

// measure runs workers goroutines calling fn back to back for d and
// measures the operations completed, their latencies and the CPU time of
// pids and of this process. An operation cut off by the deadline is not
// counted; any error stops the measurement and fails it.
func measure(ctx context.Context, d time.Duration, workers int, pids []int, fn op) (sample, error) {
	meter, err := startCPU(pids)
	if err != nil {
		return sample{}, err
	}
	mctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	deadline, _ := mctx.Deadline()
	type acc struct {
		units, polls int
		lats         []time.Duration
		err          error
	}
	accs := make([]acc, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		wg.Go(func() {
			a := &accs[i]
			for mctx.Err() == nil {
				t0 := time.Now()
				n, p, err := fn(mctx, i)
				if mctx.Err() != nil || (err != nil && time.Until(deadline) < cutoffSlack) {
					// Cut off by the deadline: not a sample. gRPC sends
					// the deadline to the server, which can answer
					// DeadlineExceeded a moment before the context here
					// expires.
					return
				}
				if err != nil {
					a.err = err
					cancel()
					return
				}
				a.units += n
				a.polls += p
				a.lats = append(a.lats, time.Since(t0))
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	var errs []error
	s := sample{secs: secs}
	for _, a := range accs {
		errs = append(errs, a.err)
		s.units += a.units
		s.polls += a.polls
		s.lats = append(s.lats, a.lats...)
	}
	if err := errors.Join(errs...); err != nil {
		return sample{}, err
	}
	if s.units == 0 {
		return sample{}, errors.New("no operation completed")
	}
	s.reqs = len(s.lats)
	s.srvCPU, s.cliCPU, err = meter.since()
	return s, err
}

// local runs fn on this process's CPU for d and counts its operations:
// the raw rate of a primitive, one CPU's worth.
func local(d time.Duration, fn func() error) (sample, error) {
	meter, err := startCPU(nil)
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		for range 16 {
			if err := fn(); err != nil {
				return sample{}, err
			}
		}
		n += 16
	}
	s := sample{units: n, secs: time.Since(start).Seconds()}
	_, s.cliCPU, err = meter.since()
	return s, err
}

type cpuMeter struct {
	pids []int
	srv  int64
	cli  int64
}

func startCPU(pids []int) (cpuMeter, error) {
	m := cpuMeter{pids: pids}
	var err1, err2 error
	m.srv, err1 = cpuTicksOf(pids)
	m.cli, err2 = benchkit.CPUTicks(os.Getpid())
	return m, errors.Join(err1, err2)
}

// since returns the CPU seconds used by the servers and the client since
// the meter started.
func (m cpuMeter) since() (float64, float64, error) {
	s, err1 := cpuTicksOf(m.pids)
	c, err2 := benchkit.CPUTicks(os.Getpid())
	return float64(s-m.srv) / 100, float64(c-m.cli) / 100, errors.Join(err1, err2)
}

func cpuTicksOf(pids []int) (int64, error) {
	var sum int64
	for _, p := range pids {
		t, err := benchkit.CPUTicks(p)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// summary is what the report shows of a figure's samples.
type summary struct {
	rate     float64 // median units/s
	srvPerOp float64 // median server CPU ms per unit
	cliPerOp float64 // median client CPU ms per unit
	srvUtil  float64 // median server CPU s per wall s
	p50, p99 time.Duration
	pollsOp  float64
	rates    []float64
	units    int
}

func summarize(ss []sample) summary {
	var r, sc, cc, su, po []float64
	var lats []time.Duration
	var units int
	for _, s := range ss {
		r = append(r, s.rate())
		sc = append(sc, 1000*s.srvCPU/float64(s.units))
		cc = append(cc, 1000*s.cliCPU/float64(s.units))
		su = append(su, s.srvCPU/s.secs)
		po = append(po, float64(s.polls)/float64(s.units))
		lats = append(lats, s.lats...)
		units += s.units
	}
	out := summary{rate: benchkit.Median(r), srvPerOp: benchkit.Median(sc), cliPerOp: benchkit.Median(cc), srvUtil: benchkit.Median(su), pollsOp: benchkit.Median(po), rates: r, units: units}
	if len(lats) > 0 {
		slices.Sort(lats)
		pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(p*float64(len(lats))))] }
		out.p50, out.p99 = pct(0.50), pct(0.99)
	}
	return out
}
