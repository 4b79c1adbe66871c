package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// Route modes.
const (
	ModeL4 = "l4"
	ModeL7 = "l7"
)

// Backend protocols of an L7 route (mc-proxy's backend_protocol).
const (
	BackendHTTP1 = "http1"
	BackendH2C   = "h2c"
	BackendAuto  = "auto"
)

// Restart policies. The agent, not the runtime, restarts containers, so
// that restart storms can be seen and stopped (see internal/restart).
const (
	RestartNo            = "no"
	RestartOnFailure     = "on-failure"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
)

// Health check types (components and boot stages).
const (
	HealthTCP  = "tcp"
	HealthHTTP = "http"
	HealthGRPC = "grpc"
	HealthNone = "none"
)

// Tiers of a service without a node pin.
const (
	TierCore   = "core"
	TierWorker = "worker"
)

// Snapshot methods (how ExportServiceData captures a consistent copy).
const (
	SnapshotDefault = "default"
	SnapshotGRPC    = "grpc"
	SnapshotCLI     = "cli"
	SnapshotExec    = "exec"
	SnapshotFull    = "full"
)

// Service is one service definition.
type Service struct {
	// Name is the service's name: its DNS label (<name>.svc.D), its data
	// directory (/srv/<name>) and the prefix of its containers.
	Name string `json:"name"`
	// Node pins the service to a node; Tier places it otherwise (the
	// master's job; an agent only checks a pin names itself).
	Node string `json:"node,omitempty"`
	Tier string `json:"tier,omitempty"`
	// Active is whether MCP keeps it deployed ("mcp sync" undeploys an
	// inactive service).
	Active bool `json:"active"`
	// Path is the source directory relative to the build workspace.
	Path string `json:"path,omitempty"`
	// BuildImages maps an image repository (the last path element of a
	// component image, without tag) to its Dockerfile, relative to Path.
	BuildImages map[string]string `json:"build_images,omitempty"`
	Components  []Component       `json:"components"`
	Snapshot    Snapshot          `json:"snapshot"`
}

// Component is one container of a service.
type Component struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Volumes []string `json:"volumes,omitempty"`
	Cmd     []string `json:"cmd,omitempty"`
	Env     []string `json:"env,omitempty"`
	Network string   `json:"network,omitempty"`
	User    string   `json:"user,omitempty"`
	Restart string   `json:"restart"`
	Routes  []Route  `json:"routes,omitempty"`
	Health  Health   `json:"health"`
}

// Route is a name the component answers on through mc-proxy.
type Route struct {
	// Name is empty for a component's single unnamed route ($PORT);
	// named routes get $PORT_<NAME>.
	Name string `json:"name,omitempty"`
	// Port is the mc-proxy listener port the route is served on (443,
	// 8443, 9443); the agent maps it to a listener by name.
	Port int    `json:"port"`
	Mode string `json:"mode"`
	// Hostname is the SNI name (default <service>.svc.D).
	Hostname string `json:"hostname,omitempty"`
	// Public routes are published on the edge (the master's job).
	Public bool `json:"public,omitempty"`
	// BackendProtocol is what mc-proxy speaks to an L7 backend.
	BackendProtocol string `json:"backend_protocol,omitempty"`
}

// Health is how the agent decides a new container is ready.
type Health struct {
	// Type is tcp (default for a component with routes), http, grpc or
	// none (default without routes: running is enough).
	Type string `json:"type"`
	// Path is the HTTP path (default /v1/health).
	Path string `json:"path,omitempty"`
	// Route names the route whose port is probed (default the first).
	Route string `json:"route,omitempty"`
	// Timeout bounds the wait for the first healthy answer (default: the
	// agent's health_timeout).
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Snapshot is how a service's data is captured for export.
type Snapshot struct {
	// Method is default (archive the data directory, databases via VACUUM
	// INTO), grpc (call the service's SnapshotService first), cli (run
	// "<binary> snapshot" in the container first), exec (run Exec in the
	// container first) or full (stop the service while archiving).
	Method  string   `json:"method"`
	Exec    []string `json:"exec,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// Hash is the canonical hash of the definition: equal for definitions
// that deploy the same thing, whatever their key order or comments.
func (s *Service) Hash() string {
	c := *s
	if len(c.BuildImages) == 0 {
		c.BuildImages = nil
	}
	b, err := json.Marshal(c) // maps marshal with sorted keys
	if err != nil {
		panic("spec: hash: " + err.Error()) // plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Component returns the component named name.
func (s *Service) Component(name string) (*Component, bool) {
	for i := range s.Components {
		if s.Components[i].Name == name {
			return &s.Components[i], true
		}
	}
	return nil, false
}

// RouteHost is the SNI name of r in domain D: its hostname, or
// <service>.svc.D.
func (s *Service) RouteHost(r Route, domain string) string {
	if r.Hostname != "" {
		return strings.ToLower(strings.TrimSuffix(r.Hostname, "."))
	}
	return s.Name + ".svc." + domain
}

// PortEnv is the environment variable carrying a route's port: PORT for
// an unnamed route, PORT_<NAME> (upper case, '-' → '_') for a named one.
func PortEnv(route string) string {
	if route == "" {
		return "PORT"
	}
	return "PORT_" + strings.ToUpper(strings.ReplaceAll(route, "-", "_"))
}

// Images lists the distinct component images, sorted.
func (s *Service) Images() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range s.Components {
		if !seen[c.Image] {
			seen[c.Image] = true
			out = append(out, c.Image)
		}
	}
	sort.Strings(out)
	return out
}
