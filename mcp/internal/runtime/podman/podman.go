// Package podman implements runtime.Runtime with the podman CLI (rootless
// when the agent runs as an unprivileged user, rootful as root), reading
// its --format json output. The CLI rather than libpod's REST socket: it
// needs no podman service running, behaves the same rootless and rootful,
// and every call is one an operator can repeat by hand.
package podman

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
)

// Podman runs podman. The zero value runs "podman" from $PATH with the
// caller's environment.
type Podman struct {
	// Bin is the podman binary (default "podman").
	Bin string
	// Args go before every subcommand (--root, --runroot, ...).
	Args []string
	// Env is added to the environment (CONTAINERS_STORAGE_CONF, ...).
	Env []string
	// AuthFile is where registry credentials are written (mode 0600) for
	// pulls; required when Pull gets credentials.
	AuthFile string
	// LogDriver is passed to create ("" podman's default).
	LogDriver string
}

var _ runtime.Runtime = (*Podman)(nil)

func (p *Podman) bin() string {
	if p.Bin == "" {
		return "podman"
	}
	return p.Bin
}

func (p *Podman) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin(), append(append([]string{}, p.Args...), args...)...) //nolint:gosec // the configured podman binary
	if len(p.Env) > 0 {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs podman and returns its standard output; a failure carries the
// subcommand and podman's message.
func (p *Podman) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := p.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if notFound(msg) {
			return nil, fmt.Errorf("podman %s: %w: %s", args[0], runtime.ErrNotFound, msg)
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("podman %s: %s", args[0], lastLine(msg))
	}
	return stdout.Bytes(), nil
}

func notFound(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "no such container") || strings.Contains(m, "no such object") ||
		strings.Contains(m, "no such image") || strings.Contains(m, "image not known")
}

// lastLine keeps podman's final error line (it prints progress before).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Pull implements runtime.Runtime.
func (p *Podman) Pull(ctx context.Context, ref string, auth *runtime.Auth) (string, error) {
	args := []string{"pull", "--quiet"}
	if auth != nil {
		if auth.Username != "" {
			if p.AuthFile == "" {
				return "", errors.New("podman pull: no auth file configured for registry credentials")
			}
			if err := p.writeAuth(auth); err != nil {
				return "", err
			}
			args = append(args, "--authfile", p.AuthFile)
		}
		if auth.CertDir != "" {
			args = append(args, "--cert-dir", auth.CertDir)
		}
	}
	if _, err := p.run(ctx, append(args, ref)...); err != nil {
		return "", err
	}
	return p.ImageID(ctx, ref)
}

// writeAuth writes the registry's credentials in the containers
// auth.json format (mode 0600), keeping other registries' entries.
func (p *Podman) writeAuth(a *runtime.Auth) error {
	doc := struct {
		Auths map[string]map[string]string `json:"auths"`
	}{Auths: map[string]map[string]string{}}
	if b, err := os.ReadFile(p.AuthFile); err == nil {
		_ = json.Unmarshal(b, &doc)
		if doc.Auths == nil {
			doc.Auths = map[string]map[string]string{}
		}
	}
	doc.Auths[a.Registry] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password))}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.AuthFile), 0o700); err != nil {
		return fmt.Errorf("registry auth file: %w", err)
	}
	return atomicfile.Write(p.AuthFile, b, 0o600)
}

// ImageID implements runtime.Runtime.
func (p *Podman) ImageID(ctx context.Context, ref string) (string, error) {
	out, err := p.run(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Create implements runtime.Runtime. The agent restarts containers
// itself (so it sees restart storms), hence --restart no.
func (p *Podman) Create(ctx context.Context, s runtime.ContainerSpec) (string, error) {
	args := []string{"create", "--name", s.Name, "--restart", "no"}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", k+"="+s.Labels[k])
	}
	for _, e := range s.Env {
		args = append(args, "--env", e)
	}
	for _, v := range s.Volumes {
		args = append(args, "--volume", v)
	}
	if s.Network != "" {
		args = append(args, "--network", s.Network)
	}
	if s.Network != "host" {
		for _, pm := range s.Ports {
			args = append(args, "--publish", fmt.Sprintf("%s:%d:%d", pm.HostIP, pm.HostPort, pm.ContainerPort))
		}
	}
	if s.User != "" {
		args = append(args, "--user", s.User)
	}
	if p.LogDriver != "" {
		args = append(args, "--log-driver", p.LogDriver)
	}
	args = append(args, s.Image)
	args = append(args, s.Cmd...)
	out, err := p.run(ctx, args...)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Start implements runtime.Runtime.
func (p *Podman) Start(ctx context.Context, name string) error {
	_, err := p.run(ctx, "start", name)
	return err
}

// Stop implements runtime.Runtime.
func (p *Podman) Stop(ctx context.Context, name string, grace time.Duration) error {
	_, err := p.run(ctx, "stop", "--time", strconv.Itoa(int(grace.Seconds())), name)
	return err
}

// Remove implements runtime.Runtime.
func (p *Podman) Remove(ctx context.Context, name string) error {
	_, err := p.run(ctx, "rm", "--force", "--ignore", "--volumes", name)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	return err
}

type inspectJSON struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	Image string `json:"Image"`
	// ImageName is the reference the container was created from.
	ImageName string `json:"ImageName"`
	State     struct {
		Status     string    `json:"Status"`
		ExitCode   int       `json:"ExitCode"`
		StartedAt  time.Time `json:"StartedAt"`
		FinishedAt time.Time `json:"FinishedAt"`
	} `json:"State"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
}

// Inspect implements runtime.Runtime.
func (p *Podman) Inspect(ctx context.Context, name string) (runtime.Status, error) {
	out, err := p.run(ctx, "container", "inspect", "--format", "json", name)
	if err != nil {
		return runtime.Status{}, err
	}
	var list []inspectJSON
	if err := json.Unmarshal(out, &list); err != nil {
		return runtime.Status{}, fmt.Errorf("podman inspect %s: %w", name, err)
	}
	if len(list) == 0 {
		return runtime.Status{}, fmt.Errorf("podman inspect %s: %w", name, runtime.ErrNotFound)
	}
	c := list[0]
	return runtime.Status{
		ID: c.ID, Name: c.Name, Image: c.ImageName, ImageID: c.Image, State: c.State.Status,
		ExitCode: c.State.ExitCode, StartedAt: c.State.StartedAt, FinishedAt: c.State.FinishedAt, Labels: c.Config.Labels,
	}, nil
}

type psJSON struct {
	ID        string            `json:"Id"`
	Names     []string          `json:"Names"`
	Image     string            `json:"Image"`
	ImageID   string            `json:"ImageID"`
	State     string            `json:"State"`
	ExitCode  int               `json:"ExitCode"`
	StartedAt int64             `json:"StartedAt"`
	ExitedAt  int64             `json:"ExitedAt"`
	Labels    map[string]string `json:"Labels"`
}

// List implements runtime.Runtime.
func (p *Podman) List(ctx context.Context, labels map[string]string) ([]runtime.Status, error) {
	args := []string{"ps", "--all", "--format", "json"}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--filter", "label="+k+"="+labels[k])
	}
	out, err := p.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	var list []psJSON
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("podman ps: %w", err)
	}
	res := make([]runtime.Status, 0, len(list))
	for _, c := range list {
		s := runtime.Status{ID: c.ID, Image: c.Image, ImageID: c.ImageID, State: c.State, ExitCode: c.ExitCode, Labels: c.Labels}
		if len(c.Names) > 0 {
			s.Name = c.Names[0]
		}
		if c.StartedAt > 0 {
			s.StartedAt = time.Unix(c.StartedAt, 0)
		}
		if c.ExitedAt > 0 {
			s.FinishedAt = time.Unix(c.ExitedAt, 0)
		}
		res = append(res, s)
	}
	return res, nil
}

// Logs implements runtime.Runtime.
func (p *Podman) Logs(ctx context.Context, name string, o runtime.LogOptions, w io.Writer) error {
	args := []string{"logs"}
	if o.Follow {
		args = append(args, "--follow")
	}
	if o.Tail > 0 {
		args = append(args, "--tail", strconv.Itoa(o.Tail))
	}
	if o.Since != "" {
		args = append(args, "--since", o.Since)
	}
	cmd := p.command(ctx, append(args, name)...)
	var stderr bytes.Buffer
	lw := &lockedWriter{w: w}
	cmd.Stdout = lw
	cmd.Stderr = &lineWriter{w: lw, errs: &stderr}
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil // the caller stopped following
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if notFound(msg) {
			return fmt.Errorf("podman logs: %w: %s", runtime.ErrNotFound, msg)
		}
		return fmt.Errorf("podman logs: %s", lastLine(msg+"\n"+err.Error()))
	}
	return nil
}

// lineWriter passes the container's standard error on (podman logs
// writes the container's stderr there) and keeps podman's own error
// lines for the error message.
type lineWriter struct {
	w    io.Writer
	errs *bytes.Buffer
}

func (l *lineWriter) Write(b []byte) (int, error) {
	if bytes.HasPrefix(b, []byte("Error: ")) {
		l.errs.Write(b)
		return len(b), nil
	}
	return l.w.Write(b)
}

// lockedWriter serializes the writes of podman's two output streams.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Exec implements runtime.Runtime.
func (p *Podman) Exec(ctx context.Context, name string, cmd []string) ([]byte, error) {
	c := p.command(ctx, append([]string{"exec", name}, cmd...)...)
	out, err := c.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("podman exec %s %s: %w: %s", name, strings.Join(cmd, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Info implements runtime.Runtime.
func (p *Podman) Info(ctx context.Context) (runtime.Info, error) {
	out, err := p.run(ctx, "version", "--format", "{{.Client.Version}}")
	if err != nil {
		return runtime.Info{}, err
	}
	return runtime.Info{Name: "podman", Version: strings.TrimSpace(string(out))}, nil
}

// Entrypoint is an image's entrypoint (for the snapshot method cli).
func (p *Podman) Entrypoint(ctx context.Context, image string) ([]string, error) {
	out, err := p.run(ctx, "image", "inspect", "--format", "{{json .Config.Entrypoint}}", image)
	if err != nil {
		return nil, err
	}
	var ep []string
	if err := json.Unmarshal(out, &ep); err != nil {
		return nil, fmt.Errorf("podman image inspect %s: %w", image, err)
	}
	return ep, nil
}
