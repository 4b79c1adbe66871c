package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
)

// workload is one kind of request the load generator sends back to back.
type workload struct {
	name   string
	method string
	path   string
	body   []byte // nil: no body
	// ok checks a 200 answer's body.
	ok func([]byte) bool
}

// sample is one timed measurement.
type sample struct {
	latencies []time.Duration
	errors    int
	firstErr  error
	elapsed   time.Duration
	srvCPU    time.Duration // CPU time of the server process meanwhile
	cliCPU    time.Duration // CPU time of this process meanwhile
}

func (s sample) rate() float64 { return float64(len(s.latencies)) / s.elapsed.Seconds() }

// measure runs n clients, each with its own keep-alive HTTPS connection
// (HTTP/2), sending w's request to base back to back for d, and records
// every latency and the CPU time the server (pid) and this process used.
func measure(ctx context.Context, tlsCfg *tls.Config, base string, n int, d time.Duration, pid int, w workload) (sample, error) {
	type worker struct {
		lat   []time.Duration
		errs  int
		first error
	}
	workers := make([]worker, n)
	clients := make([]*http.Client, n)
	for i := range clients {
		tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 1}
		defer tr.CloseIdleConnections()
		clients[i] = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		// Warm the connection (TLS handshake) outside the measurement.
		if _, err := do(ctx, clients[i], base, w); err != nil {
			return sample{}, fmt.Errorf("%s: warm-up: %w", w.name, err)
		}
	}
	meter, err := startCPU(pid)
	if err != nil {
		return sample{}, err
	}
	mctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		wg.Go(func() {
			wk := &workers[i]
			for mctx.Err() == nil {
				t0 := time.Now()
				data, err := do(mctx, clients[i], base, w)
				if mctx.Err() != nil {
					return // cut off by the deadline: not a sample
				}
				wk.lat = append(wk.lat, time.Since(t0))
				if err == nil && !w.ok(data) {
					err = fmt.Errorf("unexpected answer %.200q", data)
				}
				if err != nil {
					wk.errs++
					if wk.first == nil {
						wk.first = err
					}
				}
			}
		})
	}
	wg.Wait()
	s := sample{elapsed: time.Since(start)}
	if err := ctx.Err(); err != nil {
		return s, err
	}
	if s.srvCPU, s.cliCPU, err = meter.since(); err != nil {
		return s, err
	}
	for _, wk := range workers {
		s.latencies = append(s.latencies, wk.lat...)
		s.errors += wk.errs
		if s.firstErr == nil {
			s.firstErr = wk.first
		}
	}
	if len(s.latencies) == 0 {
		return s, fmt.Errorf("%s: no request completed", w.name)
	}
	return s, nil
}

func do(ctx context.Context, c *http.Client, base string, w workload) ([]byte, error) {
	var body io.Reader
	if w.body != nil {
		body = bytes.NewReader(w.body)
	}
	req, err := http.NewRequestWithContext(ctx, w.method, base+w.path, body)
	if err != nil {
		return nil, err
	}
	if w.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req) //nolint:gosec // loopback server this program started
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %.200s", resp.StatusCode, data)
	}
	return data, nil
}

// localRate is what local measured.
type localRate struct {
	workers int
	calls   int
	rate    float64       // calls per second of wall time
	cpu     time.Duration // this process's CPU time per call
}

// local runs workers goroutines calling fn back to back until d has
// passed and returns the calls completed per second of wall time and
// this process's CPU time per call.
func local(d time.Duration, workers int, fn func() error) (localRate, error) {
	counts := make([]int, workers)
	errs := make([]error, workers)
	before, err := cpuTicks(os.Getpid())
	if err != nil {
		return localRate{}, err
	}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := fn(); err != nil {
					errs[i] = err
					return
				}
				counts[i]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return localRate{}, err
	}
	after, err := cpuTicks(os.Getpid())
	if err != nil {
		return localRate{}, err
	}
	r := localRate{workers: workers}
	for _, c := range counts {
		r.calls += c
	}
	if r.calls == 0 {
		return localRate{}, errors.New("no call completed")
	}
	r.rate = float64(r.calls) / elapsed.Seconds()
	r.cpu = time.Duration(after-before) * 10 * time.Millisecond / time.Duration(r.calls)
	return r, nil
}

// cpuMeter reads the CPU time of the server and of this process.
type cpuMeter struct {
	pid      int
	srv, cli int64
}

func startCPU(pid int) (cpuMeter, error) {
	m := cpuMeter{pid: pid}
	var err1, err2 error
	m.srv, err1 = cpuTicks(pid)
	m.cli, err2 = cpuTicks(os.Getpid())
	return m, errors.Join(err1, err2)
}

// since returns the CPU time the server and this process used since the
// meter started (10 ms resolution).
func (m cpuMeter) since() (srv, cli time.Duration, err error) {
	s, err1 := cpuTicks(m.pid)
	c, err2 := cpuTicks(os.Getpid())
	tick := 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(s-m.srv) * tick, time.Duration(c-m.cli) * tick, errors.Join(err1, err2)
}

// cpuTicks is utime+stime of pid in clock ticks (/proc/<pid>/stat).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	s := string(b)
	// The command name (field 2) may hold spaces; count fields after ')'.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short /proc stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + st, errors.Join(err1, err2)
}

// memory is a process's resident set now and at its peak.
type memory struct {
	rssKiB, hwmKiB int64
}

func (m memory) String() string {
	return fmt.Sprintf("VmRSS %.1f MiB, VmHWM %.1f MiB", float64(m.rssKiB)/1024, float64(m.hwmKiB)/1024)
}

// readMemory reads VmRSS and VmHWM from /proc/<pid>/status.
func readMemory(pid int) (memory, error) {
	rss, hwm, err := benchkit.Memory(pid)
	if err != nil {
		return memory{}, fmt.Errorf("memory of %d: %w", pid, err)
	}
	return memory{rssKiB: rss, hwmKiB: hwm}, nil
}

// resetPeak restarts the process's VmHWM at its current resident set
// (Linux: "5" to /proc/<pid>/clear_refs), so the next reading is the peak
// of what ran in between.
func resetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak memory of %d: %w", pid, err)
	}
	return nil
}

// summary is what the report shows of a figure's samples.
type summary struct {
	requests            int
	rate                float64 // median requests/s
	rates               []float64
	mean, p50, p99, max time.Duration
	errors              int
	firstErr            error
	srvPerReq           time.Duration // server CPU per request, over all samples
	cliPerReq           time.Duration
}

func summarize(ss []sample) summary {
	var out summary
	var lats []time.Duration
	var srv, cli time.Duration
	for _, s := range ss {
		out.rates = append(out.rates, s.rate())
		lats = append(lats, s.latencies...)
		out.errors += s.errors
		if out.firstErr == nil {
			out.firstErr = s.firstErr
		}
		srv += s.srvCPU
		cli += s.cliCPU
	}
	out.requests = len(lats)
	out.rate = benchkit.Median(out.rates)
	if out.requests == 0 {
		return out
	}
	slices.Sort(lats)
	var sum time.Duration
	for _, l := range lats {
		sum += l
	}
	pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(p*float64(len(lats))))] }
	out.mean, out.p50, out.p99, out.max = sum/time.Duration(len(lats)), pct(0.50), pct(0.99), lats[len(lats)-1]
	out.srvPerReq = srv / time.Duration(out.requests)
	out.cliPerReq = cli / time.Duration(out.requests)
	return out
}
