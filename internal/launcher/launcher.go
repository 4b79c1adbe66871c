package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/atomicfile"
)

const (
	// DefaultDomain is the platform domain when Options sets none.
	DefaultDomain = "mcp.metacircular.net"
	// DefaultStopTimeout is how long a service gets to exit after SIGTERM
	// before it is killed, when Options sets no StopTimeout.
	DefaultStopTimeout = 10 * time.Second

	logTailLines = 20
	logTailBytes = 4 << 10
)

// Service is one platform service as the launcher runs it.
type Service struct {
	// Name names the service's state directory <root>/<name> and its log
	// file. It follows seedpki.ValidateName; "ca" and "launcher" are
	// reserved for the launcher's own state.
	Name string
	// Prepare writes the service's configuration if it is absent, so that
	// a re-run reuses it, and returns how to run the service. It is called
	// only after every service before it is healthy.
	Prepare func(ctx context.Context, env *Env) (*Process, error)
}

// Process says how to run a prepared service.
type Process struct {
	// Path is the binary. A name without a slash is looked up in the
	// launcher's BinDir, then in $PATH; a relative path with a slash is
	// taken from the launcher's working directory.
	Path string
	// Args are the arguments after the program name. They are written to
	// the service log, so secrets belong in files or Env, not here.
	Args []string
	// Env is added to the launcher's environment; later entries win.
	Env []string
	// Dir is the working directory; empty means the service's state
	// directory <root>/<name>.
	Dir string
	// Health tells when the service is up.
	Health HealthCheck
	// Endpoints are shown to the operator and recorded in state.json,
	// e.g. {"https": "https://mcias.svc.mcp.metacircular.net:8443"}.
	Endpoints map[string]string
	// Exports are the environment variables that point the operator's
	// tools at the service (METACIRCULAR_MCIAS=host:port, ...); Up writes
	// them to <root>/env for "metacircular env".
	Exports map[string]string
	// AfterHealthy, when set, runs once the service is healthy, before the
	// next service starts (registering names, say); an error stops the
	// start-up like an unhealthy service.
	AfterHealthy func(ctx context.Context) error
}

// Options configures Up.
type Options struct {
	// Root is the state root; it is created with mode 0700. Required.
	Root string
	// Domain is the platform domain; empty means DefaultDomain.
	Domain string
	// BinDir is where service binaries live; empty means the directory of
	// the running executable.
	BinDir string
	// Services are started in this order and stopped in reverse.
	Services []Service
	// Stdout receives progress, the table of running services and the
	// lines services Print; nil discards them.
	Stdout io.Writer
	// StopTimeout is how long each service gets between SIGTERM and
	// SIGKILL; zero means DefaultStopTimeout.
	StopTimeout time.Duration
}

// child is one started service process.
type child struct {
	name      string
	proc      *Process
	cmd       *exec.Cmd
	logPath   string
	logOffset int64 // log size before this run, so error tails show only this run
	startedAt time.Time

	done    chan struct{} // closed once the process has been reaped
	waitErr error         // the process's exit status; read only after done
}

// run is one invocation of Up.
type run struct {
	opts      Options
	dir       string // <root>/launcher
	ca        *seedpki.CA
	ports     *portStore
	startedAt time.Time
	children  []*child
	exited    chan *child
}

// Up runs the platform under opts.Root until ctx is cancelled or a service
// dies. It takes the root's lock (failing with ErrAlreadyRunning if another
// launcher holds it), initializes the seed CA in <root>/ca, then prepares,
// starts and health-checks each service in order. If a service fails to
// start, every service already started is stopped and the error names the
// failing service and quotes the end of its log. Cancelling ctx stops all
// services in reverse order and returns nil; a service dying on its own
// stops the rest and returns an error.
func Up(ctx context.Context, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	if err := validateServices(opts.Services); err != nil {
		return err
	}
	dir := filepath.Join(opts.Root, launcherDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state root: %w", err)
	}
	lock, err := acquireLock(dir)
	if err != nil {
		return err
	}
	defer lock.release()
	// A launcher killed outright leaves its state behind; it describes
	// processes that no longer exist.
	_ = os.Remove(filepath.Join(dir, stateFile))
	if err := atomicfile.Write(filepath.Join(dir, pidFile), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o600); err != nil {
		return err
	}
	defer func() {
		_ = os.Remove(filepath.Join(dir, stateFile))
		_ = os.Remove(filepath.Join(dir, pidFile))
	}()

	ca, err := seedpki.Init(filepath.Join(opts.Root, caDir))
	if err != nil {
		return err
	}
	ports, err := loadPorts(filepath.Join(dir, portsFile))
	if err != nil {
		return err
	}
	r := &run{
		opts:      opts,
		dir:       dir,
		ca:        ca,
		ports:     ports,
		startedAt: time.Now().UTC(),
		exited:    make(chan *child, len(opts.Services)),
	}
	return r.serve(ctx)
}

func (o Options) withDefaults() (Options, error) {
	if o.Root == "" {
		return o, errors.New("up: state root is required")
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return o, fmt.Errorf("up: %w", err)
	}
	o.Root = root
	if o.Domain == "" {
		o.Domain = DefaultDomain
	}
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("up: locate binaries: %w", err)
		}
		o.BinDir = filepath.Dir(exe)
	}
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return o, fmt.Errorf("up: %w", err)
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.StopTimeout < 0 {
		return o, fmt.Errorf("up: stop timeout %s is negative", o.StopTimeout)
	}
	return o, nil
}

func validateServices(services []Service) error {
	seen := map[string]bool{}
	for i, s := range services {
		if err := seedpki.ValidateName(s.Name); err != nil {
			return fmt.Errorf("up: service %d: %w", i, err)
		}
		if s.Name == caDir || s.Name == launcherDir {
			return fmt.Errorf("up: service name %q is reserved", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("up: service %q listed twice", s.Name)
		}
		if s.Prepare == nil {
			return fmt.Errorf("up: service %q has no Prepare", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (r *run) printf(format string, args ...any) {
	fmt.Fprintf(r.opts.Stdout, format, args...)
}

// serve starts every service, waits, and stops them all before returning.
func (r *run) serve(ctx context.Context) error {
	if err := r.saveState(PhaseStarting); err != nil {
		return err
	}
	r.printf("seed CA: %s\n", r.ca.CertPath())
	for _, svc := range r.opts.Services {
		err := r.start(ctx, svc)
		if err == nil {
			continue
		}
		r.stopAll()
		if ctx.Err() != nil {
			r.printf("interrupted while starting %s; stopped\n", svc.Name)
			return nil
		}
		return err
	}
	if err := r.saveState(PhaseRunning); err != nil {
		r.stopAll()
		return err
	}
	if err := r.writeEnv(); err != nil {
		r.stopAll()
		return err
	}
	r.printTable()

	select {
	case <-ctx.Done():
		r.printf("stopping platform\n")
		r.stopAll()
		r.printf("platform stopped\n")
		return nil
	case c := <-r.exited:
		err := c.diedUnexpectedly()
		r.printf("%v\nstopping platform\n", err)
		r.stopAll()
		return err
	}
}

// start prepares and starts svc and waits until it is healthy. A started
// child is recorded in r.children first, so on failure the caller's stopAll
// stops it with the others.
func (r *run) start(ctx context.Context, svc Service) error {
	env := &Env{Root: r.opts.Root, Domain: r.opts.Domain, BinDir: r.opts.BinDir, CA: r.ca, ports: r.ports}
	// Lines are shown even if the service fails: a one-time credential
	// generated with a config that a re-run reuses would otherwise be lost.
	defer func() {
		for _, line := range env.outputs {
			r.printf("  %s: %s\n", svc.Name, line)
		}
	}()
	proc, err := svc.Prepare(ctx, env)
	if err != nil {
		return fmt.Errorf("prepare %s: %w", svc.Name, err)
	}
	if proc == nil {
		return fmt.Errorf("prepare %s: no process returned", svc.Name)
	}
	if err := proc.Health.validate(); err != nil {
		return fmt.Errorf("prepare %s: %w", svc.Name, err)
	}
	c, err := r.spawn(svc.Name, proc)
	if err != nil {
		return err
	}
	r.children = append(r.children, c)
	if err := r.saveState(PhaseStarting); err != nil {
		return err
	}
	r.printf("started %s (pid %d), waiting for it to be healthy\n", c.name, c.cmd.Process.Pid)
	if err := r.waitHealthy(ctx, c); err != nil {
		return err
	}
	r.printf("%s is healthy (%s)\n", c.name, time.Since(c.startedAt).Round(time.Millisecond))
	if proc.AfterHealthy != nil {
		actx, cancel := context.WithTimeout(ctx, afterHealthyTimeout)
		defer cancel()
		if err := proc.AfterHealthy(actx); err != nil {
			return fmt.Errorf("%s: after start: %w", c.name, err)
		}
	}
	return nil
}

// afterHealthyTimeout bounds a service's AfterHealthy step.
const afterHealthyTimeout = 30 * time.Second

func (r *run) spawn(name string, proc *Process) (*child, error) {
	path, err := resolveBinary(r.opts.BinDir, proc.Path)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	svcDir := filepath.Join(r.opts.Root, name)
	logDir := filepath.Join(svcDir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600) //nolint:gosec // under the launcher's state root
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", name, err)
	}
	// The child writes to its own copy of the descriptor.
	defer func() { _ = logf.Close() }()
	fi, err := logf.Stat()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	workDir := proc.Dir
	if workDir == "" {
		workDir = svcDir
	}
	fmt.Fprintf(logf, "--- %s metacircular launcher: starting %s %s\n",
		time.Now().UTC().Format(time.RFC3339), path, strings.Join(proc.Args, " "))

	cmd := &exec.Cmd{
		Path:   path,
		Args:   append([]string{path}, proc.Args...),
		Env:    append(os.Environ(), proc.Env...),
		Dir:    workDir,
		Stdout: logf,
		Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{
			// Its own process group, so stopping reaches the whole tree.
			Setpgid: true,
			// A launcher killed outright takes its children with it.
			Pdeathsig: syscall.SIGKILL,
		},
	}
	c := &child{
		name:      name,
		proc:      proc,
		cmd:       cmd,
		logPath:   logPath,
		logOffset: fi.Size(),
		done:      make(chan struct{}),
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c.startedAt = time.Now().UTC()
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
		r.exited <- c
	}()
	return c, nil
}

func resolveBinary(binDir, path string) (string, error) {
	if path == "" {
		return "", errors.New("no binary path")
	}
	if strings.ContainsRune(path, '/') {
		return filepath.Abs(path)
	}
	candidate := filepath.Join(binDir, path)
	if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return candidate, nil
	}
	found, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("binary %q is neither in %s nor in $PATH", path, binDir)
	}
	return filepath.Abs(found)
}

func (r *run) waitHealthy(ctx context.Context, c *child) error {
	timeout := c.proc.Health.timeout()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(healthInterval)
	defer tick.Stop()
	p := newProber(r.ca.Pool())
	defer p.close()

	for {
		select {
		case <-c.done:
			return c.exitedEarly()
		default:
		}
		attempt, cancel := context.WithTimeout(ctx, healthAttempt)
		err := p.check(attempt, c.proc.Health)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("start %s: %w", c.name, ctx.Err())
		case <-c.done:
			return c.exitedEarly()
		case dead := <-r.exited:
			// An earlier service died while this one was starting: nothing
			// after it can work, so give up now rather than at the timeout.
			if dead == c {
				return c.exitedEarly()
			}
			err := dead.diedUnexpectedly()
			r.printf("%v\n", err)
			return fmt.Errorf("start %s: %w", c.name, err)
		case <-deadline.C:
			return fmt.Errorf("service %s (pid %d) not healthy within %s: %w%s",
				c.name, c.cmd.Process.Pid, timeout, err, c.logTail())
		case <-tick.C:
		}
	}
}

func (c *child) diedUnexpectedly() error {
	return fmt.Errorf("service %s (pid %d) exited unexpectedly (%w)%s", c.name, c.cmd.Process.Pid, c.waitErr, c.logTail())
}

func (c *child) exitedEarly() error {
	return fmt.Errorf("service %s exited before becoming healthy (%w)%s", c.name, c.waitErr, c.logTail())
}

// logTail returns the end of what the child logged in this run, formatted
// to follow an error message.
func (c *child) logTail() string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	from := max(c.logOffset, fi.Size()-logTailBytes)
	buf := make([]byte, fi.Size()-from)
	n, _ := f.ReadAt(buf, from)
	lines := bytes.Split(bytes.TrimRight(buf[:n], "\n"), []byte("\n"))
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return fmt.Sprintf("\nlast lines of %s:\n%s", c.logPath, bytes.Join(lines, []byte("\n")))
}

// stopAll stops every started service in reverse start order.
func (r *run) stopAll() {
	if len(r.children) > 0 {
		_ = r.saveState(PhaseStopping)
	}
	for _, c := range slices.Backward(r.children) {
		r.stop(c)
	}
	r.children = nil
}

// stop sends SIGTERM to the child's process group, waits up to StopTimeout
// and then sends SIGKILL.
func (r *run) stop(c *child) {
	pid := c.cmd.Process.Pid
	select {
	case <-c.done:
	default:
		r.printf("stopping %s (pid %d)\n", c.name, pid)
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		timer := time.NewTimer(r.opts.StopTimeout)
		select {
		case <-c.done:
			timer.Stop()
		case <-timer.C:
			r.printf("%s (pid %d) did not stop within %s; killing it\n", c.name, pid, r.opts.StopTimeout)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-c.done
		}
	}
	// Whatever the service left behind in its group goes too.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

func (r *run) saveState(phase Phase) error {
	st := &state{
		PID:       os.Getpid(),
		Root:      r.opts.Root,
		Domain:    r.opts.Domain,
		CACert:    r.ca.CertPath(),
		Phase:     phase,
		StartedAt: r.startedAt,
		Services:  []serviceState{},
	}
	for _, c := range r.children {
		st.Services = append(st.Services, serviceState{
			Name:      c.name,
			PID:       c.cmd.Process.Pid,
			Endpoints: c.proc.Endpoints,
			Health:    healthTarget{URL: c.proc.Health.URL, TCP: c.proc.Health.TCP},
			Log:       c.logPath,
			StartedAt: c.startedAt,
		})
	}
	return writeState(r.dir, st)
}

func (r *run) printTable() {
	r.printf("platform up: root %s, domain %s\n", r.opts.Root, r.opts.Domain)
	if len(r.children) == 0 {
		r.printf("no services to start; only the seed CA is set up.\n")
		r.printf("waiting; stop with Ctrl-C or \"metacircular down\"\n")
		return
	}
	tw := tabwriter.NewWriter(r.opts.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tENDPOINTS\tLOG")
	for _, c := range r.children {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.name, c.cmd.Process.Pid, FormatEndpoints(c.proc.Endpoints), c.logPath)
	}
	tw.Flush()
	r.printf("tools: eval \"$(metacircular env --root %s)\" points mciasctl, mcnsctl and mcproxyctl at this platform\n", r.opts.Root)
	r.printf("stop with Ctrl-C or \"metacircular down\"\n")
}

// FormatEndpoints renders endpoints as "name=url" pairs sorted by name, or
// "-" if there are none.
func FormatEndpoints(endpoints map[string]string) string {
	if len(endpoints) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(endpoints)) {
		parts = append(parts, k+"="+endpoints[k])
	}
	return strings.Join(parts, " ")
}
