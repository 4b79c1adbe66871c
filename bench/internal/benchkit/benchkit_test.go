package benchkit

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestProcLifecycle(t *testing.T) {
	dir := t.TempDir()
	p, err := Start("sh", filepath.Join(dir, "sh.log"), nil, "/bin/sh", []string{"BENCHKIT_WORD=ready"}, "-c", "echo $BENCHKIT_WORD; exec sleep 30")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Alive(); err != nil {
		t.Fatal(err)
	}
	if _, err := CPUTicks(p.Pid()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	defer srv.Close()
	if err := WaitStatus(t.Context(), p, srv.URL, http.StatusTeapot, nil); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	if err := p.Alive(); err == nil {
		t.Fatal("alive after Stop")
	}
	if got := p.Tail(100); !strings.Contains(got, "ready") {
		t.Fatalf("log tail %q lacks the process's output", got)
	}
	// A process that exits is reported by WaitStatus at once.
	q, err := Start("false", filepath.Join(dir, "false.log"), nil, "/bin/false", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Stop()
	if err := WaitStatus(t.Context(), q, srv.URL+"/nothing", http.StatusOK, nil); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("WaitStatus on an exited process: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Fatalf("median = %v", m)
	}
	if m := Median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median = %v", m)
	}
	if Median(nil) != 0 {
		t.Fatal("median of nothing")
	}
	if _, err := CPUTicks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := CPUTicks(-1); err == nil {
		t.Fatal("CPU ticks of no process")
	}
	addr, err := FreeAddr()
	if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr = %q, %v", addr, err)
	}
	if LoadAvg() == "unknown" || Kernel() == "kernel unknown" {
		t.Fatal("machine description missing")
	}
	if fs := Filesystem(t.TempDir()); fs == "unknown" {
		t.Fatal("filesystem unknown")
	}
}

func TestMemory(t *testing.T) {
	rss0, hwm0, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss0 <= 0 || hwm0 < rss0 {
		t.Fatalf("VmRSS %d KiB, VmHWM %d KiB", rss0, hwm0)
	}
	// 64 MiB mapped afresh (outside Go's heap, which may hold freed pages
	// still resident) and touched page by page become resident, and the
	// peak follows.
	const size = 64 << 20
	buf, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Munmap(buf) }()
	for i := 0; i < size; i += 4096 {
		buf[i] = 1
	}
	rss1, hwm1, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if grew := rss1 - rss0; grew < 48<<10 {
		t.Fatalf("VmRSS grew %d KiB (%d -> %d) after touching 64 MiB", grew, rss0, rss1)
	}
	if hwm1 < rss1 || hwm1 < hwm0 {
		t.Fatalf("VmHWM %d KiB (was %d) below VmRSS %d KiB", hwm1, hwm0, rss1)
	}
	if _, _, err := Memory(-1); err == nil {
		t.Fatal("memory of no process")
	}
}

func TestParseMemory(t *testing.T) {
	rss, hwm, err := parseMemory([]byte("Name:\tx\nVmPeak:\t 9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t3\n"))
	if err != nil || rss != 1024 || hwm != 2048 {
		t.Fatalf("parseMemory = %d, %d, %v", rss, hwm, err)
	}
	for _, bad := range []string{
		"Name:\tkthreadd\nThreads:\t1\n",  // a kernel thread: no Vm* lines
		"VmHWM:\t2048 kB\n",               // VmRSS missing
		"VmHWM:\t2048 kB\nVmRSS:\t1 MB\n", // not kB
		"VmHWM:\t2048 kB\nVmRSS:\tx kB\n", // not a number
	} {
		if _, _, err := parseMemory([]byte(bad)); err == nil {
			t.Fatalf("parseMemory(%q) did not fail", bad)
		}
	}
}

func TestStalls(t *testing.T) {
	r := Stalls(200 * time.Millisecond)
	if r.Spun < 200*time.Millisecond || r.Spun > 2*time.Second {
		t.Fatalf("spun %v, want about 200ms", r.Spun)
	}
	if r.Lost < 0 || r.Lost > r.Spun || r.Longest > r.Lost {
		t.Fatalf("lost %v, longest %v of %v spun", r.Lost, r.Longest, r.Spun)
	}
	if r.Over5ms > r.Over1ms || r.Over1ms > r.Gaps || (r.Gaps > 0) != (r.Longest > StallFloor) {
		t.Fatalf("inconsistent counts: %+v", r)
	}
	if s := r.String(); !strings.HasPrefix(s, "spun ") || !strings.Contains(s, "gaps over 50µs") {
		t.Fatalf("String() = %q", s)
	}
}
