// Package peertest runs the real servers mc-proxy's tests put behind the
// proxy or beside it — nginx and Python's http.server — on loopback ports
// chosen by the kernel, stopped when the test ends. A missing program
// skips the test, or fails it under `make test` (mcdsl/testtool).
package peertest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"
)

// startTimeout bounds a peer's start.
const startTimeout = 10 * time.Second

// Nginx runs nginx in the foreground with one server block listening on
// 127.0.0.1 (listen params, e.g. "ssl", follow the address), whose
// directives are body, and returns its address. Its pid, logs and
// temporary files live in a directory of the test's; the error log is
// written to the test log when the test fails.
func Nginx(t testing.TB, params, body string) string {
	t.Helper()
	bin := testtool.Require(t, "nginx")
	dir := t.TempDir()
	errorLog := filepath.Join(dir, "error.log")
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(errorLog); err == nil { //nolint:gosec // the test's own directory
				t.Logf("nginx error log:\n%s", b)
			}
		}
	})
	// nginx binds the port itself: pick a free one and retry if another
	// process takes it first.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		conf := fmt.Sprintf(`daemon off;
# One process, running as the test's user: no workers to switch user.
master_process off;
pid %[1]s/nginx.pid;
error_log %[2]s info;
events { worker_connections 128; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[3]s %[4]s;
		%[5]s
	}
}
`, dir, errorLog, addr, params, body)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", errorLog) //nolint:gosec // nginx from PATH, the test's own files
		if lastErr = start(t, cmd, addr); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("nginx did not start: %v", lastErr)
	return ""
}

// Python runs `python3 -c script`. The script must bind a listening
// socket on 127.0.0.1, print its port on a line of its own to stdout,
// flush, and serve until killed. Python returns the address.
func Python(t testing.TB, script string) string {
	t.Helper()
	bin := testtool.Require(t, "python3")
	cmd := exec.Command(bin, "-u", "-c", script) //nolint:gosec // python3 from PATH running the test's script
	cmd.Stderr = testLog{t, "python3"}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
			t.Logf("python3: %s", sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-read // the pipe ends with the process; Wait must come after
		_ = cmd.Wait()
	})
	select {
	case port, ok := <-lines:
		if !ok {
			t.Fatal("python3 exited without printing its port")
		}
		addr := net.JoinHostPort("127.0.0.1", strings.TrimSpace(port))
		if err := waitDial(addr, startTimeout); err != nil {
			t.Fatal(err)
		}
		return addr
	case <-time.After(startTimeout):
		t.Fatal("python3 did not print its port")
	}
	return ""
}

// start runs cmd and waits until addr accepts connections, or cmd exits.
func start(t testing.TB, cmd *exec.Cmd, addr string) error {
	t.Helper()
	cmd.Stdout = testLog{t, "nginx"}
	cmd.Stderr = testLog{t, "nginx"}
	if err := cmd.Start(); err != nil {
		return err
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-exited:
			return fmt.Errorf("%s exited: %w", filepath.Base(cmd.Path), waitErr)
		case <-ctx.Done():
			stop()
			return fmt.Errorf("%s: %s never accepted connections", filepath.Base(cmd.Path), addr)
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			t.Cleanup(stop)
			return nil
		}
	}
}

func waitDial(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never accepted connections: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (uint16, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	return ap.Port(), err
}

// testLog writes a peer's output to the test log, line by line.
type testLog struct {
	t      testing.TB
	prefix string
}

func (l testLog) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		l.t.Logf("%s: %s", l.prefix, line)
	}
	return len(p), nil
}
