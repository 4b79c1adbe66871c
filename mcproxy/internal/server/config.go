package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// ServiceName is mc-proxy's name for config env overrides
// (MC_PROXY_SECTION_KEY) and snapshots.
const ServiceName = "mc-proxy"

// Defaults for the [timeouts] and [server] sections.
const (
	DefaultHelloTimeout       = 10 * time.Second
	DefaultProxyHeaderTimeout = 5 * time.Second
	DefaultIdleTimeout        = 5 * time.Minute
	DefaultShutdownTimeout    = 30 * time.Second
)

// Config is mc-proxy.toml.
type Config struct {
	Server    ServiceSection   `toml:"server"`
	Database  config.Database  `toml:"database"`
	Log       logging.Config   `toml:"log"`
	Listeners []ListenerConfig `toml:"listeners"`
	// Routes seed an empty database; afterwards the database wins and
	// differences are reported (see store.Diff).
	Routes   []RouteConfig  `toml:"routes"`
	Firewall FirewallConfig `toml:"firewall"`
	Timeouts TimeoutsConfig `toml:"timeouts"`
}

// ServiceSection is the [server] section.
type ServiceSection struct {
	// AdminSocket is the admin gRPC Unix socket (mode 0660).
	AdminSocket string `toml:"admin_socket" required:"true"`
	// MetricsAddr serves Prometheus metrics at /metrics over plain HTTP;
	// empty disables it.
	MetricsAddr string `toml:"metrics_addr"`
	// ShutdownTimeout bounds the drain of open connections on SIGTERM.
	ShutdownTimeout config.Duration `toml:"shutdown_timeout"`
}

// ListenerConfig is one [[listeners]] table.
type ListenerConfig struct {
	Name string `toml:"name"`
	Addr string `toml:"addr"`
	// ProxyProtocol accepts a PROXY v1/v2 header first, from
	// TrustedProxies only.
	ProxyProtocol  bool     `toml:"proxy_protocol"`
	TrustedProxies []string `toml:"trusted_proxies"`
}

// RouteConfig is one [[routes]] table: route.Route's fields.
type RouteConfig struct {
	Listener          string `toml:"listener"`
	Hostname          string `toml:"hostname"`
	Mode              string `toml:"mode"`
	Backend           string `toml:"backend"`
	TLSCert           string `toml:"tls_cert"`
	TLSKey            string `toml:"tls_key"`
	BackendTLS        bool   `toml:"backend_tls"`
	BackendCA         string `toml:"backend_ca"`
	BackendServerName string `toml:"backend_server_name"`
	SendProxyProtocol bool   `toml:"send_proxy_protocol"`
	// BackendProtocol is what an l7 route speaks to its backend: "http1"
	// (the default), "h2c" or "auto" (see route.HTTP1, H2C, Auto).
	BackendProtocol string `toml:"backend_protocol"`
}

// Route converts the table, normalized.
func (r RouteConfig) Route() route.Route {
	out := route.Route{
		Listener: r.Listener, Hostname: r.Hostname, Mode: r.Mode, Backend: r.Backend,
		TLSCert: r.TLSCert, TLSKey: r.TLSKey, BackendTLS: r.BackendTLS, BackendCA: r.BackendCA,
		BackendServerName: r.BackendServerName, SendProxyProtocol: r.SendProxyProtocol,
		BackendProtocol: r.BackendProtocol,
	}
	out.Normalize()
	return out
}

// FirewallConfig is the [firewall] section. The blocked_* lists seed the
// firewall rules of an empty database, like [[routes]]; geoip_db and the
// rate limit are read at every start.
type FirewallConfig struct {
	BlockedIPs       []string `toml:"blocked_ips"`
	BlockedCIDRs     []string `toml:"blocked_cidrs"`
	BlockedCountries []string `toml:"blocked_countries"`
	// GeoIPDB is a MaxMind country mmdb, needed for country rules.
	GeoIPDB string `toml:"geoip_db"`
	// RatePerSecond limits new connections per client (0: no limit);
	// Burst is the bucket size.
	RatePerSecond float64 `toml:"rate_per_second"`
	Burst         int     `toml:"burst"`
	// RateIPv4Prefix and RateIPv6Prefix are the prefix lengths a client
	// address is counted under by the rate limit (0: 32 and 64): one
	// IPv6 subscriber usually holds a whole /64 and can rotate through it.
	RateIPv4Prefix int `toml:"rate_ipv4_prefix"`
	RateIPv6Prefix int `toml:"rate_ipv6_prefix"`
}

// Rules converts the blocked_* lists to rules.
func (f FirewallConfig) Rules() []route.Rule {
	var out []route.Rule
	add := func(kind string, values []string) {
		for _, v := range values {
			r := route.Rule{Kind: kind, Value: v, Reason: "mc-proxy.toml"}
			_ = r.Validate() // normalizes; Config.Validate reported errors
			out = append(out, r)
		}
	}
	add(route.RuleIP, f.BlockedIPs)
	add(route.RuleCIDR, f.BlockedCIDRs)
	add(route.RuleCountry, f.BlockedCountries)
	return out
}

// TimeoutsConfig is the [timeouts] section.
type TimeoutsConfig struct {
	// Hello bounds reading the TLS ClientHello.
	Hello config.Duration `toml:"hello"`
	// ProxyHeader bounds reading an inbound PROXY header.
	ProxyHeader config.Duration `toml:"proxy_header"`
	// Idle closes a relayed connection with no traffic either way.
	Idle config.Duration `toml:"idle"`
}

// LoadConfig reads and validates mc-proxy.toml.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := config.Load(path, ServiceName, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks what config.Load does not and fills defaults; config.Load
// calls it and names the file in its error.
func (c *Config) Validate() error {
	if len(c.Listeners) == 0 {
		return errors.New("at least one [[listeners]] is required")
	}
	names := map[string]bool{}
	for i, l := range c.Listeners {
		if l.Name == "" {
			return fmt.Errorf("listeners[%d].name is required", i)
		}
		if names[l.Name] {
			return fmt.Errorf("listeners[%d]: listener %q is listed twice", i, l.Name)
		}
		names[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			return fmt.Errorf("listeners[%d] (%s).addr: expected host:port, got %q", i, l.Name, l.Addr)
		}
		for j, p := range l.TrustedProxies {
			if _, err := parsePrefix(p); err != nil {
				return fmt.Errorf("listeners[%d] (%s).trusted_proxies[%d]: %w", i, l.Name, j, err)
			}
		}
		if l.ProxyProtocol && len(l.TrustedProxies) == 0 {
			return fmt.Errorf("listeners[%d] (%s): proxy_protocol needs trusted_proxies (whose headers to believe)", i, l.Name)
		}
	}
	seen := map[string]bool{}
	for i, rc := range c.Routes {
		r := rc.Route()
		if err := r.Validate(); err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
		if !names[r.Listener] {
			return fmt.Errorf("routes[%d] (%s).listener: no [[listeners]] named %q", i, r.Key(), r.Listener)
		}
		if seen[r.Key()] {
			return fmt.Errorf("routes[%d]: route %s is listed twice", i, r.Key())
		}
		seen[r.Key()] = true
	}
	for _, l := range []struct {
		key, kind string
		values    []string
	}{
		{"blocked_ips", route.RuleIP, c.Firewall.BlockedIPs},
		{"blocked_cidrs", route.RuleCIDR, c.Firewall.BlockedCIDRs},
		{"blocked_countries", route.RuleCountry, c.Firewall.BlockedCountries},
	} {
		for i, v := range l.values {
			r := route.Rule{Kind: l.kind, Value: v}
			if err := r.Validate(); err != nil {
				return fmt.Errorf("firewall.%s[%d]: %w", l.key, i, err)
			}
		}
	}
	if len(c.Firewall.BlockedCountries) > 0 && c.Firewall.GeoIPDB == "" {
		return errors.New("firewall.blocked_countries needs firewall.geoip_db")
	}
	if c.Firewall.RatePerSecond < 0 || c.Firewall.Burst < 0 {
		return errors.New("firewall.rate_per_second and firewall.burst must not be negative")
	}
	if p := c.Firewall.RateIPv4Prefix; p < 0 || p > 32 {
		return fmt.Errorf("firewall.rate_ipv4_prefix: expected a prefix length from 1 to 32 (0 or absent: 32), got %d", p)
	}
	if p := c.Firewall.RateIPv6Prefix; p < 0 || p > 128 {
		return fmt.Errorf("firewall.rate_ipv6_prefix: expected a prefix length from 1 to 128 (0 or absent: 64), got %d", p)
	}
	defaults := []struct {
		d   *config.Duration
		def time.Duration
	}{
		{&c.Timeouts.Hello, DefaultHelloTimeout},
		{&c.Timeouts.ProxyHeader, DefaultProxyHeaderTimeout},
		{&c.Timeouts.Idle, DefaultIdleTimeout},
		{&c.Server.ShutdownTimeout, DefaultShutdownTimeout},
	}
	for _, d := range defaults {
		if d.d.Duration == 0 {
			d.d.Duration = d.def
		}
	}
	return nil
}

// parsePrefix accepts a CIDR network or a single address (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("expected an IP address or CIDR network, got %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// TOMLRoutes is the [[routes]] seed as routes.
func (c *Config) TOMLRoutes() []route.Route {
	out := make([]route.Route, 0, len(c.Routes))
	for _, r := range c.Routes {
		out = append(out, r.Route())
	}
	return out
}

// ListenerNames lists the configured listeners in order.
func (c *Config) ListenerNames() []string {
	out := make([]string, 0, len(c.Listeners))
	for _, l := range c.Listeners {
		out = append(out, l.Name)
	}
	return out
}
