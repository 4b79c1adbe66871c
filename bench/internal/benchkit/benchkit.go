// Package benchkit is what the Go benchmark programs under bench/ share:
// running the servers they measure as child processes, pinning the load
// generator to a CPU, reading CPU time from /proc, and describing the
// machine, the commit and the command in their result files, and reading
// a server's resident memory.
package benchkit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a server process started by a benchmark, its output in a log
// file.
type Proc struct {
	Name   string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
}

// Start runs bin with args (after the prefix, e.g. taskset -c 0) and env
// added to this process's environment, its output going to logPath.
func Start(name, logPath string, prefix []string, bin string, env []string, args ...string) (*Proc, error) {
	lf, err := os.Create(logPath) //nolint:gosec // in the benchmark's temporary directory
	if err != nil {
		return nil, err
	}
	argv := append(append(slices.Clone(prefix), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec // binaries the benchmark built or installed
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, log: lf, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM, waits up to 15 s, then kills.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	_ = p.log.Close()
}

// Tail is the last n bytes of the process's log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Alive fails if the process has exited.
func (p *Proc) Alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited:\n%s", p.Name, p.Tail(4000))
	default:
		return nil
	}
}

// WaitStatus polls url until it answers want, for up to 30 s, failing at
// once if the process exits.
func WaitStatus(ctx context.Context, p *Proc, url string, want int, tlsCfg *tls.Config) error {
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready:\n%s", p.Name, p.Tail(4000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := c.Get(url) //nolint:gosec // a loopback server the benchmark started
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: %s did not answer %d within 30s:\n%s", p.Name, url, want, p.Tail(4000))
}

// FreeAddr is a loopback TCP address free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// PinSelf moves every thread of this process to cpu (threads created later
// inherit it) and runs Go code on one OS thread at a time accordingly.
func PinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	runtime.GOMAXPROCS(1)
	for range 3 { // threads started while pinning are caught by the next pass
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pin client: %w", err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin client thread %d: %w", tid, err)
			}
		}
	}
	return nil
}

// CPUTicks is utime+stime of pid in clock ticks (USER_HZ, 100 on Linux).
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	s := string(b)
	// The command name (field 2) may hold spaces; fields after its ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, fmt.Errorf("cpu time of %d: bad /proc stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short /proc stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + st, errors.Join(err1, err2)
}

// Memory is pid's resident set now (VmRSS) and its peak so far (VmHWM),
// in KiB, from /proc/<pid>/status.
func Memory(pid int) (rssKiB, hwmKiB int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of %d: %w", pid, err)
	}
	rssKiB, hwmKiB, err = parseMemory(b)
	if err != nil {
		return 0, 0, fmt.Errorf("memory of %d: %w", pid, err)
	}
	return rssKiB, hwmKiB, nil
}

// parseMemory reads VmRSS and VmHWM from the text of a /proc status file.
func parseMemory(status []byte) (rssKiB, hwmKiB int64, err error) {
	var haveRSS, haveHWM bool
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected %q", k, strings.TrimSpace(v))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", k, err)
		}
		if k == "VmRSS" {
			rssKiB, haveRSS = n, true
		} else {
			hwmKiB, haveHWM = n, true
		}
	}
	if !haveRSS || !haveHWM {
		return 0, 0, errors.New("no VmRSS/VmHWM in /proc status (not a live user process)")
	}
	return rssKiB, hwmKiB, nil
}

// Median of xs (0 for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Command is how the program was invoked; under go run, os.Args[0] is a
// temporary build, so the go run form (of pkg, e.g. ./bench/mcr) is
// reported instead.
func Command(pkg string) string {
	args := strings.Join(os.Args[1:], " ")
	if strings.Contains(os.Args[0], "go-build") {
		return strings.TrimSpace("go run " + pkg + " " + args)
	}
	return strings.TrimSpace(os.Args[0] + " " + args)
}

// Commit is HEAD's short hash, marked when dirs (the code measured) have
// uncommitted or untracked changes.
func Commit(dirs ...string) string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	dirty := exec.Command("git", append([]string{"diff", "--quiet", "HEAD", "--"}, dirs...)...).Run() != nil                                                          //nolint:gosec // fixed git arguments
	if untracked, err := exec.Command("git", append([]string{"ls-files", "--others", "--exclude-standard"}, dirs...)...).Output(); err == nil && len(untracked) > 0 { //nolint:gosec // fixed git arguments
		dirty = true
	}
	if dirty {
		names := make([]string, len(dirs))
		for i, d := range dirs {
			names[i] = d + "/"
		}
		c += " (with uncommitted changes in " + strings.Join(names, ", ") + ")"
	}
	return c
}

// CPUModel is the CPU's model name from /proc/cpuinfo.
func CPUModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "model unknown"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "model unknown"
}

// LoadAvg is the 1, 5 and 15 minute load averages.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// MemTotal is the machine's memory in GiB.
func MemTotal() string {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return "memory unknown"
	}
	return fmt.Sprintf("%.0f GiB", float64(si.Totalram)*float64(si.Unit)/(1<<30))
}

// Kernel is the kernel's name and release.
func Kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "kernel unknown"
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
}

// Filesystem describes the filesystem holding dir (type and device).
func Filesystem(dir string) string {
	out, err := exec.Command("df", "-PT", dir).Output() //nolint:gosec // the benchmark's temporary directory
	if err != nil {
		return "unknown"
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 7 {
		return "unknown"
	}
	return fmt.Sprintf("%s on %s (mounted on %s)", f[1], f[0], f[6])
}

// StallReport is what Stalls saw: how long it spun, and the gaps in its
// own running longer than StallFloor, in all and by size.
type StallReport struct {
	Spun    time.Duration
	Lost    time.Duration // the sum of the gaps
	Longest time.Duration
	Over1ms int
	Over5ms int
	Gaps    int
}

// StallFloor is the shortest gap Stalls counts: a clock read and a loop
// turn take tens of nanoseconds, an interrupt a few microseconds.
const StallFloor = 50 * time.Microsecond

// Stalls spins on one OS thread for d, reading the clock, and reports the
// time the thread did not run: the kernel running something else on its
// CPU, or the VM's host not running the CPU at all. Run pinned to the CPU
// a benchmark's server uses, on an otherwise idle machine, it measures
// the stalls every server there suffers, which no server can avoid.
func Stalls(d time.Duration) StallReport {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r StallReport
	start := time.Now()
	end, prev := start.Add(d), start
	for prev.Before(end) {
		now := time.Now()
		if g := now.Sub(prev); g > StallFloor {
			r.Gaps++
			r.Lost += g
			r.Longest = max(r.Longest, g)
			if g > time.Millisecond {
				r.Over1ms++
			}
			if g > 5*time.Millisecond {
				r.Over5ms++
			}
		}
		prev = now
	}
	r.Spun = prev.Sub(start)
	return r
}

// String is the report on one line.
func (r StallReport) String() string {
	pct := 0.0
	if r.Spun > 0 {
		pct = 100 * float64(r.Lost) / float64(r.Spun)
	}
	return fmt.Sprintf("spun %.1fs, lost %.2f%% in %d gaps over %v (%d over 1 ms, %d over 5 ms), longest %.2f ms",
		r.Spun.Seconds(), pct, r.Gaps, StallFloor, r.Over1ms, r.Over5ms, float64(r.Longest)/float64(time.Millisecond))
}
