package launcher

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
)

// The test binary doubles as the trivial child service: TestMain runs a
// child mode instead of the tests when childModeEnv is set.
const (
	childModeEnv = "LAUNCHER_TEST_CHILD"

	modeServe      = "serve"       // HTTPS /v1/health → 200; exits on SIGTERM
	modeIgnoreTerm = "ignore-term" // like serve, but survives SIGTERM
	modeExit       = "exit"        // fails at once
	modeUnhealthy  = "unhealthy"   // serves /v1/health → 503 forever
	modeLauncher   = "launcher"    // runs Up itself, with one serving service

	waitLimit = 60 * time.Second
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

func runChild(mode string) int {
	switch mode {
	case modeExit:
		fmt.Fprintln(os.Stderr, "child failing on purpose")
		return 3
	case modeLauncher:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		err := Up(ctx, Options{
			Root:        os.Getenv("LAUNCHER_ROOT"),
			Services:    []Service{testService(spec{name: "a", mode: modeServe})},
			Stdout:      os.Stdout,
			StopTimeout: 5 * time.Second,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case modeServe, modeIgnoreTerm, modeUnhealthy:
		return serveChild(mode)
	}
	fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
	return 2
}

func serveChild(mode string) int {
	dir := os.Getenv("CHILD_DIR")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if err := os.WriteFile(filepath.Join(dir, "child.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pair, err := tls.LoadX509KeyPair(os.Getenv("CHILD_CERT"), os.Getenv("CHILD_KEY"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := tls.Listen("tcp", os.Getenv("CHILD_ADDR"), &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	status, body := http.StatusOK, `{"status":"ok"}`
	if mode == modeUnhealthy {
		status, body = http.StatusServiceUnavailable, `{"status":"unavailable"}`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println("child serving on", ln.Addr())
	for range sigs {
		if mode == modeIgnoreTerm {
			fmt.Println("ignoring SIGTERM")
			continue
		}
		stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
		if err := os.WriteFile(filepath.Join(dir, "stopped"), []byte(stamp), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		srv.Close()
		break
	}
	return 0
}

// spec describes one test service built by testService.
type spec struct {
	name          string
	mode          string
	healthTimeout time.Duration
	tcpHealth     bool                                      // check by TCP connect instead of HTTPS
	before        func(ctx context.Context, env *Env) error // runs first in Prepare
}

// testService is a service the way a real one joins the platform: Prepare
// takes a port and a certificate, writes its config only if absent, prints
// a one-time secret when it does, and runs a binary (this test binary).
func testService(s spec) Service {
	return Service{Name: s.name, Prepare: func(ctx context.Context, env *Env) (*Process, error) {
		if s.before != nil {
			if err := s.before(ctx, env); err != nil {
				return nil, err
			}
		}
		dir, err := env.Dir(s.name)
		if err != nil {
			return nil, err
		}
		port, err := env.Port(s.name + ".https")
		if err != nil {
			return nil, err
		}
		host := s.name + ".svc." + env.Domain
		cert, err := env.Issue(s.name, []string{host, "localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cfg := filepath.Join(dir, s.name+".toml")
		if _, err := os.Stat(cfg); errors.Is(err, fs.ErrNotExist) {
			secret := rand.Text()
			content := fmt.Sprintf("[server]\nlisten_addr = %q\nsecret = %q\n", addr, secret)
			if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
				return nil, err
			}
			env.Print("one-time secret for " + s.name + ": " + secret)
		}
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		health := HealthCheck{URL: "https://" + addr + "/v1/health", Timeout: s.healthTimeout}
		if s.tcpHealth {
			health = HealthCheck{TCP: addr, Timeout: s.healthTimeout}
		}
		return &Process{
			Path: exe,
			Args: []string{"-test.run=^$"},
			Env: []string{
				childModeEnv + "=" + s.mode,
				"CHILD_ADDR=" + addr,
				"CHILD_CERT=" + cert.CertPath,
				"CHILD_KEY=" + cert.KeyPath,
				"CHILD_DIR=" + dir,
			},
			Health:    health,
			Endpoints: map[string]string{"https": fmt.Sprintf("https://%s:%d", host, port)},
		}, nil
	}}
}

// upRun is an Up running in a goroutine.
type upRun struct {
	root   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	out    *syncbuf.Buffer
}

func startUp(t *testing.T, opts Options) *upRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u := &upRun{root: opts.Root, cancel: cancel, done: make(chan struct{}), out: &syncbuf.Buffer{}}
	opts.Stdout = u.out
	go func() {
		u.err = Up(ctx, opts)
		close(u.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-u.done
	})
	return u
}

// wait returns Up's result once it has returned.
func (u *upRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-u.done:
		return u.err
	case <-time.After(waitLimit):
		t.Fatalf("Up did not return within %s; output:\n%s", waitLimit, u.out)
		return nil
	}
}

// stop cancels Up and returns its result.
func (u *upRun) stop(t *testing.T) error {
	t.Helper()
	u.cancel()
	return u.wait(t)
}

// waitRunning polls Status until the launcher reports PhaseRunning.
func (u *upRun) waitRunning(t *testing.T) *PlatformStatus {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		select {
		case <-u.done:
			t.Fatalf("Up returned before running: %v\noutput:\n%s", u.err, u.out)
		default:
		}
		st, err := Status(context.Background(), u.root)
		// Up records the running phase, then prints its table: wait for
		// both.
		if err == nil && st.Phase == PhaseRunning && strings.Contains(u.out.String(), "stop with Ctrl-C") {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("launcher not running after %s (last status %+v, err %v); output:\n%s", waitLimit, st, err, u.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func childPID(t *testing.T, root, name string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, name, "child.pid"))
	if err != nil {
		t.Fatalf("child %s pid: %v", name, err)
	}
	pid, err := strconv.Atoi(string(data))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// assertGone checks that a child the launcher started has been stopped and
// reaped.
func assertGone(t *testing.T, name string, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("%s (pid %d) still exists: kill(0) = %v", name, pid, err)
	}
}

func assertNoRuntimeFiles(t *testing.T, root string) {
	t.Helper()
	for _, f := range []string{pidFile, stateFile} {
		if _, err := os.Stat(filepath.Join(root, launcherDir, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still present after stop (stat err %v)", f, err)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func getHealth(ctx context.Context, pool *x509.CertPool, url string) error {
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func TestUpStartsInOrderAndStopsInReverse(t *testing.T) {
	root := filepath.Join(t.TempDir(), "srv")
	var aHealthyBeforeB atomic.Bool
	checkA := func(ctx context.Context, env *Env) error {
		port, err := env.Port("a.https")
		if err != nil {
			return err
		}
		if err := getHealth(ctx, env.CA.Pool(), fmt.Sprintf("https://127.0.0.1:%d/v1/health", port)); err != nil {
			return fmt.Errorf("a is not healthy when b is prepared: %w", err)
		}
		aHealthyBeforeB.Store(true)
		return nil
	}
	u := startUp(t, Options{
		Root:        root,
		StopTimeout: 5 * time.Second,
		Services: []Service{
			testService(spec{name: "a", mode: modeServe}),
			testService(spec{name: "b", mode: modeServe, before: checkA}),
		},
	})
	st := u.waitRunning(t)
	if !aHealthyBeforeB.Load() {
		t.Error("b was prepared without a being healthy")
	}

	if st.PID != os.Getpid() || st.Root != root || st.Domain != DefaultDomain {
		t.Errorf("status header = pid %d root %s domain %s", st.PID, st.Root, st.Domain)
	}
	if len(st.Services) != 2 || st.Services[0].Name != "a" || st.Services[1].Name != "b" {
		t.Fatalf("status services = %+v, want a then b", st.Services)
	}
	pids := map[string]int{}
	for _, s := range st.Services {
		if !s.Running || !s.Healthy {
			t.Errorf("%s: running=%v healthy=%v (%s)", s.Name, s.Running, s.Healthy, s.HealthError)
		}
		if !strings.HasPrefix(s.Endpoints["https"], "https://"+s.Name+".svc."+DefaultDomain+":") {
			t.Errorf("%s endpoints = %v", s.Name, s.Endpoints)
		}
		if s.Log != filepath.Join(root, s.Name, "logs", s.Name+".log") {
			t.Errorf("%s log = %s", s.Name, s.Log)
		}
		if !bytes.Contains(readFile(t, s.Log), []byte("child serving on")) {
			t.Errorf("%s log lacks the child's output", s.Name)
		}
		if want := childPID(t, root, s.Name); s.PID != want {
			t.Errorf("%s: status pid %d, child reports %d", s.Name, s.PID, want)
		}
		pids[s.Name] = s.PID
	}
	if got := strings.TrimSpace(string(readFile(t, filepath.Join(root, launcherDir, pidFile)))); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file = %q, want %d", got, os.Getpid())
	}
	out := u.out.String()
	for _, want := range []string{"NAME", "one-time secret for a: ", "one-time secret for b: ", filepath.Join(root, "ca", "ca.crt")} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	if err := u.stop(t); err != nil {
		t.Fatalf("Up after cancel = %v, want nil", err)
	}
	assertGone(t, "a", pids["a"])
	assertGone(t, "b", pids["b"])
	stoppedA, errA := strconv.ParseInt(string(readFile(t, filepath.Join(root, "a", "stopped"))), 10, 64)
	stoppedB, errB := strconv.ParseInt(string(readFile(t, filepath.Join(root, "b", "stopped"))), 10, 64)
	if errA != nil || errB != nil {
		t.Fatalf("stop stamps: %v %v", errA, errB)
	}
	if stoppedB >= stoppedA {
		t.Error("a was stopped before b; want reverse start order")
	}
	assertNoRuntimeFiles(t, root)
	if _, err := Status(context.Background(), root); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Status after stop = %v, want ErrNotRunning", err)
	}
}

func TestUpEscalatesToSIGKILL(t *testing.T) {
	root := t.TempDir()
	u := startUp(t, Options{
		Root:        root,
		StopTimeout: 300 * time.Millisecond,
		Services:    []Service{testService(spec{name: "stubborn", mode: modeIgnoreTerm})},
	})
	st := u.waitRunning(t)
	pid := st.Services[0].PID
	if err := u.stop(t); err != nil {
		t.Fatalf("Up = %v", err)
	}
	assertGone(t, "stubborn", pid)
	if out := u.out.String(); !strings.Contains(out, "did not stop within 300ms; killing it") {
		t.Errorf("output does not report the SIGKILL escalation:\n%s", out)
	}
	if logText := readFile(t, st.Services[0].Log); !bytes.Contains(logText, []byte("ignoring SIGTERM")) {
		t.Errorf("child never received SIGTERM before being killed; log:\n%s", logText)
	}
}

func TestUpFailsWhenServiceCannotStart(t *testing.T) {
	tests := []struct {
		name  string
		b     spec
		wants []string
	}{
		{
			name:  "exits at once",
			b:     spec{name: "b", mode: modeExit},
			wants: []string{"service b exited before becoming healthy", "exit status 3", "child failing on purpose"},
		},
		{
			name:  "never healthy",
			b:     spec{name: "b", mode: modeUnhealthy, healthTimeout: time.Second},
			wants: []string{"service b", "not healthy within 1s", "503 Service Unavailable", "child serving on"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			var out syncbuf.Buffer
			err := Up(context.Background(), Options{
				Root:        root,
				Stdout:      &out,
				StopTimeout: 5 * time.Second,
				Services: []Service{
					testService(spec{name: "a", mode: modeServe}),
					testService(tt.b),
				},
			})
			if err == nil {
				t.Fatalf("Up succeeded; output:\n%s", out.String())
			}
			for _, want := range tt.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			assertGone(t, "a", childPID(t, root, "a"))
			if tt.b.mode == modeUnhealthy {
				assertGone(t, "b", childPID(t, root, "b"))
			}
			if !strings.Contains(out.String(), "one-time secret for b: ") {
				t.Errorf("b's one-time secret was not shown despite its failure:\n%s", out.String())
			}
			if _, err := os.Stat(filepath.Join(root, "a", "stopped")); err != nil {
				t.Errorf("a was not stopped with SIGTERM: %v", err)
			}
			assertNoRuntimeFiles(t, root)
		})
	}
}

func TestUpStopsAllWhenServiceDies(t *testing.T) {
	root := t.TempDir()
	u := startUp(t, Options{
		Root:        root,
		StopTimeout: 5 * time.Second,
		Services: []Service{
			testService(spec{name: "a", mode: modeServe}),
			testService(spec{name: "b", mode: modeServe}),
		},
	})
	st := u.waitRunning(t)
	if err := syscall.Kill(st.Services[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := u.wait(t)
	if err == nil || !strings.Contains(err.Error(), "service a") || !strings.Contains(err.Error(), "exited unexpectedly") {
		t.Fatalf("Up = %v, want an error naming a as exited unexpectedly", err)
	}
	if !strings.Contains(u.out.String(), "exited unexpectedly") {
		t.Errorf("the death was not reported on the output:\n%s", u.out)
	}
	assertGone(t, "a", st.Services[0].PID)
	assertGone(t, "b", st.Services[1].PID)
	assertNoRuntimeFiles(t, root)
}

func TestUpAbortsStartWhenEarlierServiceDies(t *testing.T) {
	root := t.TempDir()
	killA := func(context.Context, *Env) error {
		data, err := os.ReadFile(filepath.Join(root, "a", "child.pid"))
		if err != nil {
			return err
		}
		pid, err := strconv.Atoi(string(data))
		if err != nil {
			return err
		}
		return syscall.Kill(pid, syscall.SIGKILL)
	}
	var out syncbuf.Buffer
	err := Up(context.Background(), Options{
		Root:        root,
		Stdout:      &out,
		StopTimeout: 5 * time.Second,
		Services: []Service{
			testService(spec{name: "a", mode: modeServe}),
			// b would wait a minute for health; a's death must cut that short.
			testService(spec{name: "b", mode: modeUnhealthy, before: killA, healthTimeout: waitLimit}),
		},
	})
	if err == nil || !strings.Contains(err.Error(), "start b: service a") || !strings.Contains(err.Error(), "exited unexpectedly") {
		t.Fatalf("Up = %v, want start of b aborted because a died", err)
	}
	if strings.Contains(err.Error(), "not healthy within") {
		t.Errorf("Up waited for b's health timeout: %v", err)
	}
	assertGone(t, "a", childPID(t, root, "a"))
	// b may be stopped before it records its own pid; the launcher logs it.
	var bPID int
	if i := strings.Index(out.String(), "started b (pid "); i < 0 {
		t.Errorf("b was never started:\n%s", out.String())
	} else if _, err := fmt.Sscanf(out.String()[i:], "started b (pid %d)", &bPID); err != nil {
		t.Fatal(err)
	} else {
		assertGone(t, "b", bPID)
	}
	assertNoRuntimeFiles(t, root)
}

func TestUpInterruptedDuringStart(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupt := func(context.Context, *Env) error {
		cancel()
		return nil
	}
	var out syncbuf.Buffer
	err := Up(ctx, Options{
		Root:        root,
		Stdout:      &out,
		StopTimeout: 5 * time.Second,
		Services: []Service{
			testService(spec{name: "a", mode: modeServe}),
			testService(spec{name: "b", mode: modeUnhealthy, before: interrupt, healthTimeout: waitLimit}),
		},
	})
	if err != nil {
		t.Fatalf("Up interrupted during start = %v, want nil (a requested stop)", err)
	}
	if !strings.Contains(out.String(), "interrupted while starting b") {
		t.Errorf("output does not report the interruption:\n%s", out.String())
	}
	assertGone(t, "a", childPID(t, root, "a"))
	if _, err := os.Stat(filepath.Join(root, "a", "stopped")); err != nil {
		t.Errorf("a was not stopped with SIGTERM: %v", err)
	}
	assertNoRuntimeFiles(t, root)
}

func TestUpRefusesSecondLauncher(t *testing.T) {
	root := t.TempDir()
	u := startUp(t, Options{Root: root})
	u.waitRunning(t)

	err := Up(context.Background(), Options{Root: root})
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Up = %v, want ErrAlreadyRunning", err)
	}
	if want := fmt.Sprintf("(pid %d)", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the running launcher %s", err, want)
	}
	if _, err := Status(context.Background(), root); err != nil {
		t.Errorf("the refused Up disturbed the running one: Status = %v", err)
	}
	if err := u.stop(t); err != nil {
		t.Fatal(err)
	}
}

func TestUpWithoutServices(t *testing.T) {
	root := t.TempDir()
	u := startUp(t, Options{Root: root, Services: []Service{}})
	st := u.waitRunning(t)
	if len(st.Services) != 0 || st.CACert != filepath.Join(root, "ca", "ca.crt") {
		t.Errorf("status = %+v", st)
	}
	if !strings.Contains(u.out.String(), "no services to start") {
		t.Errorf("output does not say no services exist:\n%s", u.out)
	}
	if err := u.stop(t); err != nil {
		t.Fatal(err)
	}
	assertNoRuntimeFiles(t, root)
	if _, err := os.Stat(filepath.Join(root, "ca", "ca.key")); err != nil {
		t.Errorf("seed CA missing after run: %v", err)
	}
}

func TestUpReusesStateOnRerun(t *testing.T) {
	root := t.TempDir()
	services := []Service{
		testService(spec{name: "a", mode: modeServe}),
		testService(spec{name: "b", mode: modeServe, tcpHealth: true}),
	}
	files := []string{"ca/ca.crt", "ca/ca.key", "launcher/ports.json", "a/a.toml", "b/b.toml", "ca/issued/a.crt", "ca/issued/b.key"}

	first := startUp(t, Options{Root: root, Services: services, StopTimeout: 5 * time.Second})
	st1 := first.waitRunning(t)
	saved := map[string][]byte{}
	for _, f := range files {
		saved[f] = readFile(t, filepath.Join(root, f))
	}
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first.out.String(), "one-time secret for a") {
		t.Errorf("first run printed no secret:\n%s", first.out)
	}

	second := startUp(t, Options{Root: root, Services: services, StopTimeout: 5 * time.Second})
	st2 := second.waitRunning(t)
	for _, f := range files {
		if !bytes.Equal(saved[f], readFile(t, filepath.Join(root, f))) {
			t.Errorf("%s changed on re-run", f)
		}
	}
	for i := range st1.Services {
		if st1.Services[i].Endpoints["https"] != st2.Services[i].Endpoints["https"] {
			t.Errorf("%s endpoint moved: %v → %v", st1.Services[i].Name, st1.Services[i].Endpoints, st2.Services[i].Endpoints)
		}
		if !st2.Services[i].Healthy {
			t.Errorf("%s unhealthy on re-run: %s", st2.Services[i].Name, st2.Services[i].HealthError)
		}
	}
	if strings.Contains(second.out.String(), "one-time secret") {
		t.Errorf("re-run printed a new one-time secret, so it rewrote a config:\n%s", second.out)
	}
	if err := second.stop(t); err != nil {
		t.Fatal(err)
	}
}

func TestUpRejectsBadServices(t *testing.T) {
	prep := func(context.Context, *Env) (*Process, error) { return nil, errors.New("unused") }
	tests := []struct {
		name     string
		services []Service
		want     string
	}{
		{"reserved name", []Service{{Name: "ca", Prepare: prep}}, "reserved"},
		{"duplicate", []Service{{Name: "x", Prepare: prep}, {Name: "x", Prepare: prep}}, "listed twice"},
		{"bad name", []Service{{Name: "../x", Prepare: prep}}, "invalid name"},
		{"no prepare", []Service{{Name: "x"}}, "no Prepare"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "srv")
			err := Up(context.Background(), Options{Root: root, Services: tt.services})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Up = %v, want error containing %q", err, tt.want)
			}
			if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
				t.Error("Up created the state root despite invalid services")
			}
		})
	}
}

func TestUpPrepareFailureStopsEarlierServices(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(context.Context, *Env) (*Process, error)
		want    string
	}{
		{"prepare error", func(context.Context, *Env) (*Process, error) { return nil, errors.New("no config for you") }, "prepare b: no config for you"},
		{"no health check", func(context.Context, *Env) (*Process, error) { return &Process{Path: "true"}, nil }, "prepare b: health check needs a URL or a TCP address"},
		{"missing binary", func(context.Context, *Env) (*Process, error) {
			return &Process{Path: "metacircular-no-such-binary", Health: HealthCheck{TCP: "127.0.0.1:1"}}, nil
		}, "start b: binary \"metacircular-no-such-binary\" is neither in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			err := Up(context.Background(), Options{
				Root:        root,
				StopTimeout: 5 * time.Second,
				Services:    []Service{testService(spec{name: "a", mode: modeServe}), {Name: "b", Prepare: tt.prepare}},
			})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Up = %v, want error containing %q", err, tt.want)
			}
			assertGone(t, "a", childPID(t, root, "a"))
			assertNoRuntimeFiles(t, root)
		})
	}
}

func TestPortsPersistAndDiffer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	s, err := loadPorts(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.get("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.get("b")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("keys a and b share port %d", a)
	}
	if again, _ := s.get("a"); again != a {
		t.Errorf("a moved from %d to %d", a, again)
	}
	reloaded, err := loadPorts(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := reloaded.get("a"); got != a {
		t.Errorf("after reload a = %d, want %d", got, a)
	}
	if got, _ := reloaded.get("b"); got != b {
		t.Errorf("after reload b = %d, want %d", got, b)
	}
	if _, err := s.get(""); err == nil {
		t.Error("empty key accepted")
	}
	if err := os.WriteFile(path, []byte(`{"a": 70000}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPorts(path); err == nil {
		t.Error("out-of-range port accepted")
	}
}

func TestStatusAndDownWithNothingRunning(t *testing.T) {
	root := t.TempDir()
	if _, err := Status(context.Background(), root); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Status(empty root) = %v, want ErrNotRunning", err)
	}
	if err := Down(context.Background(), root, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Down(empty root) = %v, want ErrNotRunning", err)
	}

	// Leftovers of a launcher that was killed: lock file, pid, state.
	dir := filepath.Join(root, launcherDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{lockFile: "", pidFile: "999999999\n", stateFile: `{"pid":999999999}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Status(context.Background(), root); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Status(stale files) = %v, want ErrNotRunning", err)
	}
	if err := Down(context.Background(), root, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Down(stale files) = %v, want ErrNotRunning", err)
	}
}

// launcherProcess runs Up in a separate process (this test binary in
// launcher mode), as `metacircular up` would.
type launcherProcess struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

func startLauncherProcess(t *testing.T, root string) *launcherProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	lp := &launcherProcess{cmd: exec.Command(exe, "-test.run=^$"), out: &syncbuf.Buffer{}, done: make(chan struct{})}
	lp.cmd.Env = append(os.Environ(), childModeEnv+"="+modeLauncher, "LAUNCHER_ROOT="+root)
	lp.cmd.Stdout, lp.cmd.Stderr = lp.out, lp.out
	if err := lp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		lp.err = lp.cmd.Wait()
		close(lp.done)
	}()
	t.Cleanup(func() {
		_ = lp.cmd.Process.Kill()
		<-lp.done
	})
	deadline := time.Now().Add(waitLimit)
	for {
		st, err := Status(context.Background(), root)
		if err == nil && st.Phase == PhaseRunning && len(st.Services) == 1 && st.Services[0].Healthy {
			if st.PID != lp.cmd.Process.Pid {
				t.Fatalf("status pid %d, launcher pid %d", st.PID, lp.cmd.Process.Pid)
			}
			return lp
		}
		select {
		case <-lp.done:
			t.Fatalf("launcher exited early (%v):\n%s", lp.err, lp.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("launcher not running after %s (status %v):\n%s", waitLimit, err, lp.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDownStopsLauncherProcess(t *testing.T) {
	root := t.TempDir()
	lp := startLauncherProcess(t, root)
	svcPID := childPID(t, root, "a")

	if err := Down(context.Background(), root, 30*time.Second); err != nil {
		t.Fatalf("Down = %v; launcher output:\n%s", err, lp.out)
	}
	select {
	case <-lp.done:
	case <-time.After(waitLimit):
		t.Fatal("launcher still running after Down returned")
	}
	if lp.err != nil {
		t.Errorf("launcher exited with %v:\n%s", lp.err, lp.out)
	}
	assertGone(t, "a", svcPID)
	assertNoRuntimeFiles(t, root)
	if err := Down(context.Background(), root, time.Second); !errors.Is(err, ErrNotRunning) {
		t.Errorf("second Down = %v, want ErrNotRunning", err)
	}
}

func TestKilledLauncherTakesChildrenAlongAndRecovers(t *testing.T) {
	root := t.TempDir()
	lp := startLauncherProcess(t, root)
	svcPID := childPID(t, root, "a")

	if err := lp.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-lp.done
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(svcPID) {
		if time.Now().After(deadline) {
			t.Fatalf("service (pid %d) outlived its killed launcher", svcPID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := Status(context.Background(), root); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Status after the launcher was killed = %v, want ErrNotRunning", err)
	}

	// The same root comes back up with one command despite the stale files.
	u := startUp(t, Options{Root: root, StopTimeout: 5 * time.Second, Services: []Service{testService(spec{name: "a", mode: modeServe})}})
	st := u.waitRunning(t)
	if st.PID != os.Getpid() || !st.Services[0].Healthy {
		t.Errorf("restart status = %+v", st)
	}
	if err := u.stop(t); err != nil {
		t.Fatal(err)
	}
}
