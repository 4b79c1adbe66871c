// Package runtime is the agent's view of a container runtime: a small
// interface (pull, create, start, stop, remove, inspect, list, logs,
// exec) with its types and the ownership labels every container the agent
// creates carries. runtime/podman implements it with the podman CLI;
// runtime/fake is an in-memory implementation for tests. It imports
// nothing else of MCP.
package runtime

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound reports a container or image the runtime does not have.
var ErrNotFound = errors.New("not found")

// Ownership labels. A container is the agent's when LabelAgent names the
// node; the others tie it to the registry, so a restarted agent finds its
// containers again and removes the ones no record explains.
const (
	LabelAgent     = "mcp.agent"
	LabelService   = "mcp.service"
	LabelComponent = "mcp.component"
	LabelRevision  = "mcp.revision"
	LabelSpecHash  = "mcp.spec-hash"
)

// Container states as reported by Status.State.
const (
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited"
)

// PortMapping publishes HostIP:HostPort to the container's port.
type PortMapping struct {
	HostIP        string
	HostPort      int
	ContainerPort int
}

// ContainerSpec is a container to create.
type ContainerSpec struct {
	Name    string
	Image   string
	Cmd     []string
	Env     []string
	Volumes []string
	// Network is the runtime network ("" the runtime's default, "host").
	Network string
	User    string
	Ports   []PortMapping
	Labels  map[string]string
}

// Status is a container as the runtime sees it.
type Status struct {
	ID      string
	Name    string
	Image   string
	ImageID string
	// State is one of the State constants (or the runtime's own word).
	State      string
	ExitCode   int
	StartedAt  time.Time
	FinishedAt time.Time
	Labels     map[string]string
}

// Running reports whether the container runs.
func (s Status) Running() bool { return s.State == StateRunning }

// Auth is how the runtime authenticates to an image registry: the
// registry's host, the account and its password (for MCR, the account's
// MCIAS token), and a containers-style certificate directory trusting the
// registry's CA ("" for the system's).
type Auth struct {
	Registry string
	Username string
	Password string
	CertDir  string
}

// LogOptions select the lines Logs writes.
type LogOptions struct {
	Follow bool
	// Tail is the number of last lines (0: all).
	Tail int
	// Since is a duration ("10m") or a time (RFC 3339), as the runtime
	// takes it.
	Since string
}

// Info describes the runtime.
type Info struct {
	Name    string
	Version string
}

// Runtime runs containers. Names identify containers; every method is
// safe for concurrent use.
type Runtime interface {
	// Pull fetches ref and returns its image ID.
	Pull(ctx context.Context, ref string, auth *Auth) (string, error)
	// ImageID is the ID of ref if it is present (ErrNotFound otherwise).
	ImageID(ctx context.Context, ref string) (string, error)
	// Create creates a container and returns its ID.
	Create(ctx context.Context, s ContainerSpec) (string, error)
	Start(ctx context.Context, name string) error
	// Stop stops a container, killing it after grace.
	Stop(ctx context.Context, name string, grace time.Duration) error
	// Remove removes a container, running or not; a missing one is no
	// error.
	Remove(ctx context.Context, name string) error
	// Inspect returns a container's status (ErrNotFound if it does not
	// exist).
	Inspect(ctx context.Context, name string) (Status, error)
	// List lists the containers carrying all of labels.
	List(ctx context.Context, labels map[string]string) ([]Status, error)
	// Logs writes a container's output to w until it is done (or ctx ends
	// when following).
	Logs(ctx context.Context, name string, o LogOptions, w io.Writer) error
	// Exec runs cmd in a running container and returns its output.
	Exec(ctx context.Context, name string, cmd []string) ([]byte, error)
	Info(ctx context.Context) (Info, error)
}
