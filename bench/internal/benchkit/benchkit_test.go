package benchkit

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
