package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcp/internal/boot"
	"git.metacircular.net/metacircular/mcp/internal/spec"
	mcproxyclient "git.metacircular.net/metacircular/mcproxy/client"
)

// ServiceName is the agent's service name (config env overrides are
// MCP_AGENT_<SECTION>_<KEY>).
const ServiceName = "mcp-agent"

// Config is mcp-agent.toml.
type Config struct {
	Server    config.Server   `toml:"server"`
	Database  config.Database `toml:"database"`
	MCIAS     config.MCIAS    `toml:"mcias"`
	Log       logging.Config  `toml:"log"`
	Agent     Agent           `toml:"agent"`
	Auth      Auth            `toml:"auth"`
	Runtime   Runtime         `toml:"runtime"`
	Registry  Registry        `toml:"registry"`
	Metacrypt Metacrypt       `toml:"metacrypt"`
	MCProxy   MCProxy         `toml:"mcproxy"`
	MCNS      MCNS            `toml:"mcns"`
	Monitor   Monitor         `toml:"monitor"`
	Boot      Boot            `toml:"boot"`
}

// Agent is the [agent] section: the node.
type Agent struct {
	// Node is this node's name.
	Node string `toml:"node" required:"true"`
	// Domain is the platform domain D (default mcp.metacircular.net).
	Domain string `toml:"domain"`
	// Address is the node's address: DNS records and mc-proxy backends.
	Address string `toml:"address" required:"true"`
	// PublishAddress is where container ports are published (default
	// Address).
	PublishAddress string `toml:"publish_address"`
	// DataRoot holds the services' data directories (default /srv).
	DataRoot string `toml:"data_root"`
	// TokenFile holds the agent's MCIAS system-account token (mcp-agent).
	TokenFile string `toml:"token_file" required:"true"`
	// CACert is the platform root, trusted for Metacrypt and MCNS
	// (default mcias.ca_cert).
	CACert string `toml:"ca_cert"`
	// PortRange is the host port range for routes (default 10000-60000).
	PortRange      string          `toml:"port_range"`
	Drain          config.Duration `toml:"drain"`
	StopTimeout    config.Duration `toml:"stop_timeout"`
	HealthTimeout  config.Duration `toml:"health_timeout"`
	HealthInterval config.Duration `toml:"health_interval"`
}

// Auth is the [auth] section.
type Auth struct {
	// SystemAccounts may call the agent (default mcp-master and
	// mcp-agent, the latter for "mcp-agent recover").
	SystemAccounts []string `toml:"system_accounts"`
}

// Runtime is the [runtime] section.
type Runtime struct {
	// Podman is the podman binary (default "podman").
	Podman string `toml:"podman"`
	// Args go before every podman subcommand (--root, ...).
	Args []string `toml:"args"`
	// Env is added to podman's environment (KEY=VALUE).
	Env       []string `toml:"env"`
	LogDriver string   `toml:"log_driver"`
	// AuthFile holds the registry credentials podman pulls with (default
	// auth.json beside the database).
	AuthFile string `toml:"auth_file"`
}

// Registry is the [registry] section: image pulls from MCR.
type Registry struct {
	// Hosts are the registries (host[:port]) the agent's credentials are
	// sent to; images from elsewhere are pulled anonymously.
	Hosts []string `toml:"hosts"`
	// Username is the account (default mcp-agent); the password is the
	// agent's token.
	Username string `toml:"username"`
	// CertDir is a containers-style certificate directory trusting the
	// registries' CA ("" the system's).
	CertDir string `toml:"cert_dir"`
}

// Metacrypt is the [metacrypt] section: certificates of L7 routes.
type Metacrypt struct {
	// Address is Metacrypt's gRPC address ("" no certificates: deploying
	// an L7 route fails).
	Address     string          `toml:"address"`
	Mount       string          `toml:"mount"`
	Issuer      string          `toml:"issuer"`
	CertsDir    string          `toml:"certs_dir"`
	TTL         config.Duration `toml:"ttl"`
	RenewBefore config.Duration `toml:"renew_before"`
}

// MCProxy is the [mcproxy] section.
type MCProxy struct {
	// Socket is mc-proxy's admin socket.
	Socket string `toml:"socket"`
	// Listeners map route ports to listener names; DefaultListener
	// serves the others (default "https" when no listener is given).
	Listeners       []Listener `toml:"listeners"`
	DefaultListener string     `toml:"default_listener"`
}

// Listener maps a route port to an mc-proxy listener.
type Listener struct {
	Port int    `toml:"port"`
	Name string `toml:"name"`
}

// MCNS is the [mcns] section.
type MCNS struct {
	// Address is MCNS's gRPC address ("" no DNS registration).
	Address string `toml:"address"`
	// Zone is the service zone (default svc.<domain>).
	Zone string `toml:"zone"`
}

// Monitor is the [monitor] section.
type Monitor struct {
	Interval     config.Duration `toml:"interval"`
	OrphanGrace  config.Duration `toml:"orphan_grace"`
	FlapRestarts int             `toml:"flap_restarts"`
	FlapWindow   config.Duration `toml:"flap_window"`
	Webhook      string          `toml:"webhook"`
	Command      []string        `toml:"command"`
}

// Boot is the [boot] section.
type Boot struct {
	Sequence []Stage `toml:"sequence"`
}

// Stage is one [[boot.sequence]].
type Stage struct {
	Name     string          `toml:"name"`
	Services []string        `toml:"services"`
	Timeout  config.Duration `toml:"timeout"`
	Health   string          `toml:"health"`
}

// LoadConfig reads and validates mcp-agent.toml.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.Load(path, ServiceName, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func orDuration(d config.Duration, def time.Duration) config.Duration {
	if d.Duration <= 0 {
		return config.Duration{Duration: def}
	}
	return d
}

// Validate fills defaults and checks the agent's sections; config.Load
// calls it and names the file in its error.
func (c *Config) Validate() error {
	a := &c.Agent
	if err := spec.ValidName(a.Node); err != nil {
		return fmt.Errorf("agent.node: %w", err)
	}
	if a.Domain == "" {
		a.Domain = "mcp.metacircular.net"
	}
	if a.PublishAddress == "" {
		a.PublishAddress = a.Address
	}
	if a.DataRoot == "" {
		a.DataRoot = "/srv"
	}
	if a.CACert == "" {
		a.CACert = c.MCIAS.CACert
	}
	if a.PortRange == "" {
		a.PortRange = "10000-60000"
	}
	if _, _, err := c.Ports(); err != nil {
		return err
	}
	a.Drain = orDuration(a.Drain, 5*time.Second)
	a.StopTimeout = orDuration(a.StopTimeout, 10*time.Second)
	a.HealthTimeout = orDuration(a.HealthTimeout, 60*time.Second)
	a.HealthInterval = orDuration(a.HealthInterval, time.Second)
	if c.Auth.SystemAccounts == nil {
		c.Auth.SystemAccounts = []string{"mcp-master", "mcp-agent"}
	}
	if c.Runtime.AuthFile == "" {
		c.Runtime.AuthFile = filepath.Join(filepath.Dir(c.Database.Path), "auth.json")
	}
	for i, e := range c.Runtime.Env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("runtime.env[%d]: %q is not KEY=VALUE", i, e)
		}
	}
	if c.Registry.Username == "" {
		c.Registry.Username = "mcp-agent"
	}
	m := &c.Metacrypt
	if m.Mount == "" {
		m.Mount = "pki"
	}
	if m.Issuer == "" {
		m.Issuer = "services"
	}
	if m.CertsDir == "" {
		m.CertsDir = "/srv/mc-proxy/certs"
	}
	m.TTL = orDuration(m.TTL, 2160*time.Hour)
	m.RenewBefore = orDuration(m.RenewBefore, 720*time.Hour)
	if c.MCProxy.Socket == "" {
		c.MCProxy.Socket = mcproxyclient.DefaultSocket
	}
	if len(c.MCProxy.Listeners) == 0 && c.MCProxy.DefaultListener == "" {
		c.MCProxy.DefaultListener = "https"
	}
	for i, l := range c.MCProxy.Listeners {
		if l.Port < 1 || l.Port > 65535 || l.Name == "" {
			return fmt.Errorf("mcproxy.listeners[%d]: needs a port and a listener name", i)
		}
	}
	if c.MCNS.Zone == "" {
		c.MCNS.Zone = "svc." + a.Domain
	}
	mon := &c.Monitor
	mon.Interval = orDuration(mon.Interval, 30*time.Second)
	mon.OrphanGrace = orDuration(mon.OrphanGrace, 5*time.Minute)
	mon.FlapWindow = orDuration(mon.FlapWindow, 10*time.Minute)
	if mon.FlapRestarts <= 0 {
		mon.FlapRestarts = 5
	}
	seen := map[string]string{}
	for i, st := range c.Boot.Sequence {
		if st.Name == "" {
			return fmt.Errorf("boot.sequence[%d].name is required", i)
		}
		switch st.Health {
		case "", "none", "tcp", "http", "grpc":
		default:
			return fmt.Errorf("boot.sequence[%d].health: must be tcp, http, grpc or none, not %q", i, st.Health)
		}
		for _, s := range st.Services {
			if prev, dup := seen[s]; dup {
				return fmt.Errorf("boot.sequence[%d]: service %s is already in stage %s", i, s, prev)
			}
			seen[s] = st.Name
		}
	}
	return nil
}

// Ports is the configured port range.
func (c *Config) Ports() (lo, hi int, err error) {
	a, b, ok := strings.Cut(c.Agent.PortRange, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("agent.port_range: %q is not LOW-HIGH within 1024-65535", c.Agent.PortRange)
	}
	return lo, hi, nil
}

// Token reads the agent's token file.
func (c *Config) Token() (string, error) {
	b, err := os.ReadFile(c.Agent.TokenFile)
	if err != nil {
		return "", fmt.Errorf("agent token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("agent token: " + c.Agent.TokenFile + " is empty")
	}
	return tok, nil
}

// Stages is the boot sequence.
func (c *Config) Stages() []boot.Stage {
	out := make([]boot.Stage, 0, len(c.Boot.Sequence))
	for _, s := range c.Boot.Sequence {
		out = append(out, boot.Stage{Name: s.Name, Services: s.Services, Timeout: s.Timeout.Duration, Health: s.Health})
	}
	return out
}
