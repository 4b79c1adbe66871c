// Package client is the public Go client for mc-proxy's admin API
// (mcproxy.v1.AdminService) on its Unix socket: routes, firewall rules and
// status. mcproxyctl is built on it; the MCP agent uses it to register the
// routes of the services it runs. There is no login: the socket's file
// permissions decide who may connect (ARCHITECTURE.md, Security model).
//
// Failed calls return *apierr.Remote errors that keep mc-proxy's kind:
// apierr.Invalid for a route or rule mc-proxy refuses (nothing is
// written), apierr.NotFound for removing what does not exist,
// apierr.Precondition when the data plane refuses a rule set, and
// apierr.Unavailable when the socket does not answer.
package client

import (
	"context"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/grpcclient"
	mcproxyv1 "git.metacircular.net/metacircular/mcproxy/gen/mcproxy/v1"
)

// DefaultSocket is the admin socket of a standard install: the
// server.admin_socket of deploy/examples/mc-proxy.toml.
const DefaultSocket = "/srv/mc-proxy/mc-proxy.sock"

// EnvSocket names the environment variable tools read the socket path
// from when no flag gives it.
const EnvSocket = "METACIRCULAR_MCPROXY_SOCKET"

// Route modes.
const (
	// ModeL4 relays the raw TCP stream; the backend terminates TLS.
	ModeL4 = "l4"
	// ModeL7 terminates TLS with the route's certificate and reverse
	// proxies HTTP/1.1 and HTTP/2 clients to the backend in the route's
	// BackendProtocol (gRPC needs BackendH2C, or BackendAuto with
	// BackendTLS).
	ModeL7 = "l7"
)

// Backend protocols of an L7 route (Route.BackendProtocol): what mc-proxy
// speaks to the backend, whatever the client speaks to mc-proxy.
const (
	// BackendHTTP1 is HTTP/1.1 (over TLS with BackendTLS); the default.
	BackendHTTP1 = "http1"
	// BackendH2C is HTTP/2 with prior knowledge over plain TCP: gRPC
	// backends without TLS. Not with BackendTLS.
	BackendH2C = "h2c"
	// BackendAuto offers h2 and http/1.1 in ALPN to a BackendTLS backend;
	// without BackendTLS it is HTTP/1.1.
	BackendAuto = "auto"
)

// Firewall rule kinds.
const (
	RuleIP      = "ip"      // Value: an IP address
	RuleCIDR    = "cidr"    // Value: a CIDR network
	RuleCountry = "country" // Value: an ISO 3166-1 alpha-2 code (needs firewall.geoip_db)
)

// KindOf is the kind of a failed call's error (apierr.NotFound,
// apierr.Invalid, ...).
func KindOf(err error) apierr.Kind { return apierr.KindOf(err) }

// Route sends connections for one SNI host name on one listener to a
// backend; the fields are those of mc-proxy.toml's [[routes]].
type Route struct {
	// Listener names one of mc-proxy.toml's [[listeners]] ("https").
	Listener string `json:"listener"`
	// Hostname is the SNI name, matched exactly and case-insensitively
	// (mc-proxy stores it lower case, without a trailing dot).
	Hostname string `json:"hostname"`
	// Mode is ModeL4 or ModeL7.
	Mode string `json:"mode"`
	// Backend is host:port.
	Backend string `json:"backend"`
	// TLSCert and TLSKey are the full-chain certificate and key files an
	// L7 route serves; mc-proxy must be able to read them.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// BackendTLS re-encrypts L7 traffic to the backend, verified against
	// BackendCA (system roots when empty) and BackendServerName (the
	// backend host when empty).
	BackendTLS        bool   `json:"backend_tls,omitempty"`
	BackendCA         string `json:"backend_ca,omitempty"`
	BackendServerName string `json:"backend_server_name,omitempty"`
	// SendProxyProtocol sends a PROXY v2 header to the backend first.
	SendProxyProtocol bool `json:"send_proxy_protocol,omitempty"`
	// BackendProtocol is BackendHTTP1, BackendH2C or BackendAuto on an L7
	// route; empty means BackendHTTP1 (mc-proxy stores it so). Empty on
	// L4 routes. A gRPC backend needs BackendH2C, or BackendAuto with
	// BackendTLS.
	BackendProtocol string `json:"backend_protocol,omitempty"`
}

// Rule is one firewall block rule.
type Rule struct {
	// Kind is RuleIP, RuleCIDR or RuleCountry.
	Kind  string `json:"kind"`
	Value string `json:"value"`
	// Reason is free text shown by firewall listings.
	Reason string `json:"reason,omitempty"`
}

// Listener is one listener as the data plane reports it.
type Listener struct {
	Name string `json:"name"`
	// Addr is the bound address ("" before the listener serves).
	Addr string `json:"addr"`
	// Routes counts the listener's routes.
	Routes int `json:"routes"`
}

// Status is the running mc-proxy's state.
type Status struct {
	Listeners       []Listener `json:"listeners"`
	OpenConnections int64      `json:"open_connections"`
	Routes          int        `json:"routes"`
	FirewallRules   int        `json:"firewall_rules"`
	// Divergence lists every difference between mc-proxy.toml and the
	// database, one line each; empty when they agree. The database is
	// what is served.
	Divergence []string `json:"divergence"`
	// Database is the path of mc-proxy's SQLite database.
	Database string `json:"database"`
}

// Client calls one mc-proxy over its admin socket. It is safe for
// concurrent use.
type Client struct {
	conn  *grpcclient.Conn
	admin mcproxyv1.AdminServiceClient
}

// New returns a client for the admin socket at socketPath
// (server.admin_socket). It connects on the first call, so a missing
// socket or one the caller may not open is an apierr.Unavailable error
// of that call.
func New(socketPath string) (*Client, error) {
	conn, err := grpcclient.DialUnix("mc-proxy", socketPath)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, admin: mcproxyv1.NewAdminServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ListRoutes lists the routes sorted by listener and host name; only
// listener's when listener is not empty.
func (c *Client) ListRoutes(ctx context.Context, listener string) ([]Route, error) {
	resp, err := c.admin.ListRoutes(ctx, &mcproxyv1.ListRoutesRequest{Listener: listener})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Route, 0, len(resp.GetRoutes()))
	for _, r := range resp.GetRoutes() {
		out = append(out, routeOf(r))
	}
	return out, nil
}

// AddRoute stores r, replacing the route with the same listener and host
// name, and switches the data plane to it before returning. It is an
// idempotent upsert: it returns the route as stored (normalized) and
// whether its listener and host name were new. An L7 route's certificate
// and key must load, or the call fails with apierr.Invalid.
func (c *Client) AddRoute(ctx context.Context, r Route) (Route, bool, error) {
	resp, err := c.admin.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: r.pb()})
	if err != nil {
		return Route{}, false, c.conn.Err(err)
	}
	return routeOf(resp.GetRoute()), resp.GetCreated(), nil
}

// RemoveRoute removes the route for listener and hostname
// (apierr.NotFound if there is none).
func (c *Client) RemoveRoute(ctx context.Context, listener, hostname string) error {
	_, err := c.admin.RemoveRoute(ctx, &mcproxyv1.RemoveRouteRequest{Listener: listener, Hostname: hostname})
	return c.conn.Err(err)
}

// ListFirewallRules lists the block rules sorted by kind and value.
func (c *Client) ListFirewallRules(ctx context.Context) ([]Rule, error) {
	resp, err := c.admin.ListFirewallRules(ctx, &mcproxyv1.ListFirewallRulesRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Rule, 0, len(resp.GetRules()))
	for _, r := range resp.GetRules() {
		out = append(out, ruleOf(r))
	}
	return out, nil
}

// AddFirewallRule stores a block rule, or replaces the reason of the same
// rule, and applies it before returning. It returns the rule as stored
// (normalized: an IP unmapped, a CIDR masked, a country upper case) and
// whether it was new. A rule set the data plane refuses (a country rule
// without firewall.geoip_db) is apierr.Precondition and is not stored.
func (c *Client) AddFirewallRule(ctx context.Context, r Rule) (Rule, bool, error) {
	resp, err := c.admin.AddFirewallRule(ctx, &mcproxyv1.AddFirewallRuleRequest{
		Rule: &mcproxyv1.FirewallRule{Kind: r.Kind, Value: r.Value, Reason: r.Reason},
	})
	if err != nil {
		return Rule{}, false, c.conn.Err(err)
	}
	return ruleOf(resp.GetRule()), resp.GetCreated(), nil
}

// RemoveFirewallRule removes the rule kind:value (apierr.NotFound if
// there is none).
func (c *Client) RemoveFirewallRule(ctx context.Context, kind, value string) error {
	_, err := c.admin.RemoveFirewallRule(ctx, &mcproxyv1.RemoveFirewallRuleRequest{Kind: kind, Value: value})
	return c.conn.Err(err)
}

// Status reports the listeners, counts, open connections and the
// TOML/database divergence.
func (c *Client) Status(ctx context.Context) (Status, error) {
	resp, err := c.admin.Status(ctx, &mcproxyv1.StatusRequest{})
	if err != nil {
		return Status{}, c.conn.Err(err)
	}
	st := Status{
		Listeners:       make([]Listener, 0, len(resp.GetListeners())),
		OpenConnections: resp.GetOpenConnections(),
		Routes:          int(resp.GetRoutes()),
		FirewallRules:   int(resp.GetFirewallRules()),
		Divergence:      append([]string{}, resp.GetDivergence()...),
		Database:        resp.GetDatabase(),
	}
	for _, l := range resp.GetListeners() {
		st.Listeners = append(st.Listeners, Listener{Name: l.GetName(), Addr: l.GetAddr(), Routes: int(l.GetRoutes())})
	}
	return st, nil
}

func (r Route) pb() *mcproxyv1.Route {
	return &mcproxyv1.Route{
		Listener: r.Listener, Hostname: r.Hostname, Mode: r.Mode, Backend: r.Backend,
		TlsCert: r.TLSCert, TlsKey: r.TLSKey, BackendTls: r.BackendTLS, BackendCa: r.BackendCA,
		BackendServerName: r.BackendServerName, SendProxyProtocol: r.SendProxyProtocol,
		BackendProtocol: r.BackendProtocol,
	}
}

func routeOf(p *mcproxyv1.Route) Route {
	return Route{
		Listener: p.GetListener(), Hostname: p.GetHostname(), Mode: p.GetMode(), Backend: p.GetBackend(),
		TLSCert: p.GetTlsCert(), TLSKey: p.GetTlsKey(), BackendTLS: p.GetBackendTls(), BackendCA: p.GetBackendCa(),
		BackendServerName: p.GetBackendServerName(), SendProxyProtocol: p.GetSendProxyProtocol(),
		BackendProtocol: p.GetBackendProtocol(),
	}
}

func ruleOf(p *mcproxyv1.FirewallRule) Rule {
	return Rule{Kind: p.GetKind(), Value: p.GetValue(), Reason: p.GetReason()}
}
