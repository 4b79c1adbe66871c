package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/atomicfile"
)

const (
	launcherDir = "launcher"
	caDir       = "ca"
	lockFile    = "lock"
	pidFile     = "pid"
	stateFile   = "state.json"
	portsFile   = "ports.json"

	// DefaultDownTimeout is how long Down waits for the launcher to exit
	// when it is given no timeout.
	DefaultDownTimeout = 2 * time.Minute

	statusProbeTimeout = 3 * time.Second
	lockRetries        = 20
	lockRetryInterval  = 25 * time.Millisecond
)

var (
	// ErrNotRunning reports that no launcher holds the state root.
	ErrNotRunning = errors.New("no launcher running")
	// ErrAlreadyRunning reports that another launcher holds the state root.
	ErrAlreadyRunning = errors.New("launcher already running")
)

// Phase is where a running launcher is in its life.
type Phase string

// The phases a running launcher goes through, in order.
const (
	PhaseStarting Phase = "starting"
	PhaseRunning  Phase = "running"
	PhaseStopping Phase = "stopping"
)

// PlatformStatus describes a running launcher and its services.
type PlatformStatus struct {
	Root      string          `json:"root"`
	PID       int             `json:"pid"`
	Phase     Phase           `json:"phase"`
	Domain    string          `json:"domain,omitempty"`
	CACert    string          `json:"ca_cert,omitempty"`
	StartedAt time.Time       `json:"started_at"`
	Services  []ServiceStatus `json:"services"`
}

// ServiceStatus describes one service of a running launcher as observed now.
type ServiceStatus struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// Running reports whether the process still exists.
	Running bool `json:"running"`
	// Healthy reports whether the service's health check passed just now.
	Healthy bool `json:"healthy"`
	// HealthError says why the health check failed.
	HealthError string            `json:"health_error,omitempty"`
	Endpoints   map[string]string `json:"endpoints,omitempty"`
	Log         string            `json:"log"`
}

// state is the content of <root>/launcher/state.json.
type state struct {
	PID       int            `json:"pid"`
	Root      string         `json:"root"`
	Domain    string         `json:"domain"`
	CACert    string         `json:"ca_cert"`
	Phase     Phase          `json:"phase"`
	StartedAt time.Time      `json:"started_at"`
	Services  []serviceState `json:"services"`
}

type serviceState struct {
	Name      string            `json:"name"`
	PID       int               `json:"pid"`
	Endpoints map[string]string `json:"endpoints,omitempty"`
	Health    healthTarget      `json:"health"`
	Log       string            `json:"log"`
	StartedAt time.Time         `json:"started_at"`
}

type healthTarget struct {
	URL string `json:"url,omitempty"`
	TCP string `json:"tcp,omitempty"`
}

// rootLock is the exclusive flock a launcher holds on <root>/launcher/lock
// for as long as it runs; the kernel drops it if the launcher dies.
type rootLock struct {
	f *os.File
}

func acquireLock(dir string) (*rootLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // under the launcher state root
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	// Status and Down probe the lock with a brief shared lock; retry so a
	// probe in flight is not mistaken for a running launcher.
	for range lockRetries {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			break
		}
		time.Sleep(lockRetryInterval)
	}
	if err == nil {
		return &rootLock{f: f}, nil
	}
	_ = f.Close()
	if errors.Is(err, syscall.EWOULDBLOCK) {
		root := filepath.Dir(dir)
		if pid, perr := readPID(dir); perr == nil && pid > 0 {
			return nil, fmt.Errorf("%w on %s (pid %d)", ErrAlreadyRunning, root, pid)
		}
		return nil, fmt.Errorf("%w on %s", ErrAlreadyRunning, root)
	}
	return nil, fmt.Errorf("lock %s: %w", dir, err)
}

func (l *rootLock) release() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}

// lockHeld reports whether some launcher holds the lock in dir, without
// keeping any lock itself.
func lockHeld(dir string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, lockFile)) //nolint:gosec // under the launcher state root
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open lock: %w", err)
	}
	defer func() { _ = f.Close() }()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	switch {
	case err == nil:
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, nil
	default:
		return false, fmt.Errorf("probe lock: %w", err)
	}
}

func readPID(dir string) (int, error) {
	data, err := os.ReadFile(filepath.Join(dir, pidFile)) //nolint:gosec // under the launcher state root
	if err != nil {
		return 0, fmt.Errorf("read pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("read pid: %s: %w", filepath.Join(dir, pidFile), err)
	}
	return pid, nil
}

func readState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile)) //nolint:gosec // under the launcher state root
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read state: %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

func writeState(dir string, st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), append(data, '\n'), 0o600)
}

// processAlive reports whether pid names a live process. A zombie counts
// as gone: it no longer runs anything.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state letter follows the parenthesized command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// Status reports the launcher running on root and checks the health of each
// of its services now. It returns an error wrapping ErrNotRunning if no
// launcher holds root.
func Status(ctx context.Context, root string) (*PlatformStatus, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	dir := filepath.Join(root, launcherDir)
	held, err := lockHeld(dir)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	if !held {
		return nil, fmt.Errorf("status: %w on %s", ErrNotRunning, root)
	}
	out := &PlatformStatus{Root: root, Phase: PhaseStarting, Services: []ServiceStatus{}}
	out.PID, _ = readPID(dir) // absent only in the instant after the lock is taken
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	out.PID, out.Phase, out.Domain, out.CACert, out.StartedAt = st.PID, st.Phase, st.Domain, st.CACert, st.StartedAt

	var p *prober
	ca, caErr := seedpki.Load(filepath.Join(root, caDir))
	if caErr == nil {
		p = newProber(ca.Pool())
		defer p.close()
	}
	for _, s := range st.Services {
		ss := ServiceStatus{Name: s.Name, PID: s.PID, Running: processAlive(s.PID), Endpoints: s.Endpoints, Log: s.Log}
		switch {
		case caErr != nil:
			ss.HealthError = caErr.Error()
		default:
			probeCtx, cancel := context.WithTimeout(ctx, statusProbeTimeout)
			err := p.check(probeCtx, HealthCheck{URL: s.Health.URL, TCP: s.Health.TCP})
			cancel()
			ss.Healthy = err == nil
			if err != nil {
				ss.HealthError = err.Error()
			}
		}
		out.Services = append(out.Services, ss)
	}
	return out, nil
}

// Down asks the launcher running on root to stop (SIGTERM) and waits up to
// timeout (zero means DefaultDownTimeout) for it to stop its services and
// exit. It returns an error wrapping ErrNotRunning if no launcher holds root.
func Down(ctx context.Context, root string, timeout time.Duration) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	if timeout == 0 {
		timeout = DefaultDownTimeout
	}
	dir := filepath.Join(root, launcherDir)
	held, err := lockHeld(dir)
	if err != nil {
		return fmt.Errorf("down: %w", err)
	}
	if !held {
		return fmt.Errorf("down: %w on %s", ErrNotRunning, root)
	}
	pid, err := readPID(dir)
	if err != nil {
		return fmt.Errorf("down: launcher on %s has no readable pid file: %w", root, err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("down: signal launcher (pid %d): %w", pid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		held, err := lockHeld(dir)
		if err != nil {
			return fmt.Errorf("down: %w", err)
		}
		if !held {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("down: launcher (pid %d) did not exit within %s", pid, timeout)
			}
			return fmt.Errorf("down: waiting for launcher (pid %d): %w", pid, ctx.Err())
		case <-tick.C:
		}
	}
}
