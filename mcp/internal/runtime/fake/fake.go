// Package fake is an in-memory runtime.Runtime for tests. A started
// container really listens: each published port serves HTTP on its host
// address (answering "<container name> <image>"), so health checks and
// mc-proxy routes work against it as against a real container. Tests can
// make pulls fail, make containers die and lose every container at once
// (a runtime that lost its state).
package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/runtime"
)

// Runtime is the fake runtime. The zero value is not usable: use New.
type Runtime struct {
	mu         sync.Mutex
	containers map[string]*container
	images     map[string]string
	nextID     int
	// PullErr, when set, fails every pull.
	PullErr error
	// StartErr, when set, fails every start.
	StartErr error
	// Unhealthy images start but serve 503.
	Unhealthy map[string]bool
}

type container struct {
	status runtime.Status
	spec   runtime.ContainerSpec
	srv    []*http.Server
	lns    []net.Listener
	logs   bytes.Buffer
}

// New returns an empty fake runtime.
func New() *Runtime {
	return &Runtime{containers: map[string]*container{}, images: map[string]string{}, Unhealthy: map[string]bool{}}
}

var _ runtime.Runtime = (*Runtime)(nil)

// Pull implements runtime.Runtime.
func (r *Runtime) Pull(_ context.Context, ref string, _ *runtime.Auth) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.PullErr != nil {
		return "", r.PullErr
	}
	id, ok := r.images[ref]
	if !ok {
		r.nextID++
		id = fmt.Sprintf("image%04d", r.nextID)
		r.images[ref] = id
	}
	return id, nil
}

// ImageID implements runtime.Runtime.
func (r *Runtime) ImageID(_ context.Context, ref string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.images[ref]
	if !ok {
		return "", fmt.Errorf("image %s: %w", ref, runtime.ErrNotFound)
	}
	return id, nil
}

// Create implements runtime.Runtime.
func (r *Runtime) Create(_ context.Context, s runtime.ContainerSpec) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.containers[s.Name]; ok {
		return "", fmt.Errorf("create %s: name already in use", s.Name)
	}
	img, ok := r.images[s.Image]
	if !ok {
		return "", fmt.Errorf("create %s: image %s: %w", s.Name, s.Image, runtime.ErrNotFound)
	}
	r.nextID++
	c := &container{spec: s, status: runtime.Status{
		ID: fmt.Sprintf("c%04d", r.nextID), Name: s.Name, Image: s.Image, ImageID: img,
		State: runtime.StateCreated, Labels: s.Labels,
	}}
	r.containers[s.Name] = c
	return c.status.ID, nil
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(_ context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[name]
	if !ok {
		return fmt.Errorf("start %s: %w", name, runtime.ErrNotFound)
	}
	if r.StartErr != nil {
		return r.StartErr
	}
	if c.status.Running() {
		return nil
	}
	for _, pm := range c.spec.Ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(pm.HostIP, strconv.Itoa(pm.HostPort)))
		if err != nil {
			r.stopLocked(c)
			return fmt.Errorf("start %s: %w", name, err)
		}
		body := c.spec.Name + " " + c.spec.Image + "\n"
		unhealthy := r.Unhealthy[c.spec.Image]
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if unhealthy {
				http.Error(w, "unhealthy", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, body)
		})}
		go func() { _ = srv.Serve(ln) }()
		c.srv = append(c.srv, srv)
		c.lns = append(c.lns, ln)
	}
	c.status.State = runtime.StateRunning
	c.status.StartedAt = time.Now()
	fmt.Fprintf(&c.logs, "%s started\n", name)
	return nil
}

func (r *Runtime) stopLocked(c *container) {
	// The listeners are closed here, not only through the servers: a
	// server whose Serve has not begun yet would close its listener later,
	// holding the port against a restart.
	for _, ln := range c.lns {
		_ = ln.Close()
	}
	for _, s := range c.srv {
		_ = s.Close()
	}
	c.srv, c.lns = nil, nil
}

// Stop implements runtime.Runtime.
func (r *Runtime) Stop(_ context.Context, name string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[name]
	if !ok {
		return fmt.Errorf("stop %s: %w", name, runtime.ErrNotFound)
	}
	r.stopLocked(c)
	if c.status.Running() {
		c.status.State = runtime.StateExited
		c.status.FinishedAt = time.Now()
	}
	return nil
}

// Remove implements runtime.Runtime.
func (r *Runtime) Remove(_ context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[name]; ok {
		r.stopLocked(c)
		delete(r.containers, name)
	}
	return nil
}

// Inspect implements runtime.Runtime.
func (r *Runtime) Inspect(_ context.Context, name string) (runtime.Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[name]
	if !ok {
		return runtime.Status{}, fmt.Errorf("inspect %s: %w", name, runtime.ErrNotFound)
	}
	return c.status, nil
}

// List implements runtime.Runtime.
func (r *Runtime) List(_ context.Context, labels map[string]string) ([]runtime.Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.Status
	for _, c := range r.containers {
		match := true
		for k, v := range labels {
			match = match && c.status.Labels[k] == v
		}
		if match {
			out = append(out, c.status)
		}
	}
	return out, nil
}

// Logs implements runtime.Runtime.
func (r *Runtime) Logs(_ context.Context, name string, _ runtime.LogOptions, w io.Writer) error {
	r.mu.Lock()
	c, ok := r.containers[name]
	var b []byte
	if ok {
		b = append(b, c.logs.Bytes()...)
	}
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("logs %s: %w", name, runtime.ErrNotFound)
	}
	_, err := w.Write(b)
	return err
}

// Exec implements runtime.Runtime.
func (r *Runtime) Exec(_ context.Context, name string, _ []string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[name]
	if !ok || !c.status.Running() {
		return nil, errors.New("exec: container not running")
	}
	return nil, nil
}

// Info implements runtime.Runtime.
func (r *Runtime) Info(context.Context) (runtime.Info, error) {
	return runtime.Info{Name: "fake", Version: "1"}, nil
}

// Die makes a running container exit with code, as a crash would.
func (r *Runtime) Die(name string, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[name]; ok {
		r.stopLocked(c)
		c.status.State = runtime.StateExited
		c.status.ExitCode = code
		c.status.FinishedAt = time.Now()
	}
}

// LoseState removes every container and image without stopping anything
// gracefully: the runtime's database is gone.
func (r *Runtime) LoseState() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		r.stopLocked(c)
	}
	r.containers = map[string]*container{}
	r.images = map[string]string{}
}

// Names lists the containers' names.
func (r *Runtime) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n := range r.containers {
		out = append(out, n)
	}
	return out
}

// Entrypoint is "/<repository name>" for every image.
func (r *Runtime) Entrypoint(_ context.Context, image string) ([]string, error) {
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.Index(name, ":"); i >= 0 {
		name = name[:i]
	}
	return []string{"/" + name}, nil
}
