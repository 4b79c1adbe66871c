// Package cliconfig is the mcp CLI's configuration,
// ~/.config/mcp/mcp.toml: the nodes and their agents' addresses, MCIAS,
// where the token is kept, the services directory and the build
// workspace. Unknown keys are errors naming the file and line.
package cliconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// Config is mcp.toml.
type Config struct {
	MCIAS    MCIAS    `toml:"mcias"`
	Auth     Auth     `toml:"auth"`
	Services Services `toml:"services"`
	Build    Build    `toml:"build"`
	Nodes    []Node   `toml:"nodes"`
	// Path is the file it was read from.
	Path string `toml:"-"`
}

// MCIAS is where "mcp login" logs in.
type MCIAS struct {
	// Address is MCIAS's gRPC address (host:port).
	Address string `toml:"address"`
	// CACert is the platform root CA, trusted for MCIAS and the agents
	// ("" the system roots).
	CACert string `toml:"ca_cert"`
	// ServiceName is the service MCIAS's login policy sees (default mcp).
	ServiceName string `toml:"service_name"`
}

// Auth is where the token is kept.
type Auth struct {
	// TokenPath holds the MCIAS token (default ~/.config/mcp/token).
	TokenPath string `toml:"token_path"`
}

// Services is the definitions directory.
type Services struct {
	// Dir holds one <service>.toml per service (default
	// ~/.config/mcp/services).
	Dir string `toml:"dir"`
}

// Build is how "mcp build" builds images.
type Build struct {
	// Workspace is the source tree; each service's path is relative to it.
	Workspace string `toml:"workspace"`
	// Podman is the podman binary (default "podman").
	Podman string `toml:"podman"`
	// CertDir is a containers-style certificate directory trusting the
	// registry's CA ("" the system's /etc/containers/certs.d).
	CertDir string `toml:"cert_dir"`
}

// Node is one node and its agent.
type Node struct {
	Name string `toml:"name"`
	// Addresses of the agent's gRPC API, tried in order.
	Addresses []string `toml:"addresses"`
	// Address is a single address (the seed's form).
	Address string `toml:"address"`
	SSH     string `toml:"ssh"`
	Arch    string `toml:"arch"`
}

// All is the node's addresses in order.
func (n Node) All() []string {
	out := append([]string(nil), n.Addresses...)
	if n.Address != "" && !slices.Contains(out, n.Address) {
		out = append([]string{n.Address}, out...)
	}
	return out
}

// DefaultPath is ~/.config/mcp/mcp.toml (or $MCP_CONFIG).
func DefaultPath() string {
	if p := os.Getenv("MCP_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "mcp", "mcp.toml")
}

// expand replaces a leading ~/ with the home directory.
func expand(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// Load reads path. A missing file is an error saying how to create one.
func Load(path string) (*Config, error) {
	var c Config
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no configuration at %s: create it (see mcp/deploy/examples/mcp.toml) or pass --config", path)
	}
	if err := config.Load(path, "mcp", &c); err != nil {
		return nil, err
	}
	c.Path = path
	return &c, nil
}

// Validate fills defaults and checks the nodes.
func (c *Config) Validate() error {
	base := filepath.Dir(DefaultPath())
	if c.Auth.TokenPath == "" {
		c.Auth.TokenPath = filepath.Join(base, "token")
	}
	if c.Services.Dir == "" {
		c.Services.Dir = filepath.Join(base, "services")
	}
	if c.MCIAS.ServiceName == "" {
		c.MCIAS.ServiceName = "mcp"
	}
	if c.Build.Podman == "" {
		c.Build.Podman = "podman"
	}
	c.Auth.TokenPath = expand(c.Auth.TokenPath)
	c.Services.Dir = expand(c.Services.Dir)
	c.Build.Workspace = expand(c.Build.Workspace)
	c.Build.CertDir = expand(c.Build.CertDir)
	c.MCIAS.CACert = expand(c.MCIAS.CACert)
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		if err := spec.ValidName(n.Name); err != nil {
			return fmt.Errorf("nodes[%d].name: %w", i, err)
		}
		if seen[n.Name] {
			return fmt.Errorf("nodes[%d]: node %s is listed twice", i, n.Name)
		}
		seen[n.Name] = true
		if len(n.All()) == 0 {
			return fmt.Errorf("nodes[%d] (%s): needs addresses (the agent's gRPC host:port, tried in order)", i, n.Name)
		}
	}
	return nil
}

// Node returns a node by name.
func (c *Config) Node(name string) (Node, error) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("no node %q in %s", name, c.Path)
}

// NodeFor is the node a definition deploys to: its pin, or the only
// node. Placement by tier is the master's job.
func (c *Config) NodeFor(s *spec.Service) (Node, error) {
	if s.Node != "" {
		return c.Node(s.Node)
	}
	if len(c.Nodes) == 1 {
		return c.Nodes[0], nil
	}
	return Node{}, fmt.Errorf("service %s has no node: pin it (node = \"...\") — placement by tier needs the master", s.Name)
}

// Token reads the saved token.
func (c *Config) Token() (string, error) {
	b, err := os.ReadFile(c.Auth.TokenPath)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("not logged in: run mcp login (or pass --token / $MCP_TOKEN)")
	}
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
