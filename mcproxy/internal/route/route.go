// Package route is mc-proxy's routing data: listeners, per-listener routes
// keyed by SNI host name, and the firewall rules. A Table is immutable once
// built; the proxy swaps whole tables atomically, so a connection always
// sees one consistent version.
package route

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Modes.
const (
	L4 = "l4"
	L7 = "l7"
)

// Backend protocols of an L7 route: what mc-proxy speaks to the backend,
// whatever the client spoke to mc-proxy.
const (
	// HTTP1 is HTTP/1.1, over plain TCP or, with BackendTLS, over TLS
	// offering only http/1.1 in ALPN. The default: every HTTP server
	// speaks it.
	HTTP1 = "http1"
	// H2C is HTTP/2 with prior knowledge over plain TCP (gRPC backends
	// without TLS). It cannot be combined with BackendTLS.
	H2C = "h2c"
	// Auto offers h2 and http/1.1 in ALPN to a BackendTLS backend and
	// speaks what it picks; without BackendTLS there is no negotiation
	// and it is HTTP1.
	Auto = "auto"
)

// Route sends connections for one SNI host name on one listener to a
// backend.
type Route struct {
	// Listener is the listener's name (from the config), e.g. "https".
	Listener string `json:"listener"`
	// Hostname is the SNI name, lower case, no trailing dot.
	Hostname string `json:"hostname"`
	// Mode is L4 (raw TCP relay; the backend sees the original handshake)
	// or L7 (TLS terminated here, HTTP reverse proxied).
	Mode string `json:"mode"`
	// Backend is host:port.
	Backend string `json:"backend"`
	// TLSCert and TLSKey are the full-chain certificate and key an L7 route
	// serves (reloaded when the files change).
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// BackendTLS re-encrypts L7 traffic to the backend, verified against
	// BackendCA (system roots when empty) and BackendServerName (the
	// backend host when empty). Without it L7 speaks HTTP/1.1 or h2c.
	BackendTLS        bool   `json:"backend_tls,omitempty"`
	BackendCA         string `json:"backend_ca,omitempty"`
	BackendServerName string `json:"backend_server_name,omitempty"`
	// SendProxyProtocol sends a PROXY v2 header to the backend first.
	SendProxyProtocol bool `json:"send_proxy_protocol,omitempty"`
	// BackendProtocol is HTTP1, H2C or Auto on L7 routes (Normalize makes
	// an empty one HTTP1) and empty on L4 routes.
	BackendProtocol string `json:"backend_protocol,omitempty"`
}

// Key identifies a route.
func (r Route) Key() string { return r.Listener + "/" + r.Hostname }

// Normalize lower-cases the host name and strips a trailing dot,
// lower-cases the mode and the backend protocol, and gives an L7 route
// without a backend protocol HTTP1.
func (r *Route) Normalize() {
	r.Hostname = NormalizeHost(strings.TrimSpace(r.Hostname))
	r.Mode = strings.ToLower(strings.TrimSpace(r.Mode))
	r.BackendProtocol = strings.ToLower(strings.TrimSpace(r.BackendProtocol))
	if r.Mode == L7 && r.BackendProtocol == "" {
		r.BackendProtocol = HTTP1
	}
}

// NormalizeHost is how a host name is matched, as nginx matches
// server_name: lower case, one trailing dot (the DNS root, "name.")
// removed. SNI names, Host headers and route host names all go through
// it.
func NormalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// Validate checks a normalized route.
func (r Route) Validate() error {
	if r.Listener == "" {
		return fmt.Errorf("route: listener is required")
	}
	if r.Hostname == "" || strings.ContainsAny(r.Hostname, " /:*") || strings.HasPrefix(r.Hostname, ".") ||
		strings.HasSuffix(r.Hostname, ".") || strings.Contains(r.Hostname, "..") {
		return fmt.Errorf("route %s: hostname %q is not a host name", r.Listener, r.Hostname)
	}
	if r.Mode != L4 && r.Mode != L7 {
		return fmt.Errorf("route %s: mode must be %q or %q, got %q", r.Key(), L4, L7, r.Mode)
	}
	if _, err := netip.ParseAddrPort(r.Backend); err != nil {
		if host, port, ok := strings.Cut(r.Backend, ":"); !ok || host == "" || port == "" {
			return fmt.Errorf("route %s: backend %q must be host:port", r.Key(), r.Backend)
		}
	}
	if r.Mode == L7 && (r.TLSCert == "" || r.TLSKey == "") {
		return fmt.Errorf("route %s: an l7 route needs tls_cert and tls_key", r.Key())
	}
	if r.Mode == L4 && (r.TLSCert != "" || r.BackendTLS || r.BackendProtocol != "") {
		return fmt.Errorf("route %s: tls_cert, backend_tls and backend_protocol apply to l7 routes only", r.Key())
	}
	if r.Mode == L7 {
		switch r.BackendProtocol {
		case HTTP1, Auto:
		case H2C:
			if r.BackendTLS {
				return fmt.Errorf("route %s: backend_protocol %q is HTTP/2 without TLS and cannot be combined with backend_tls; use %q (ALPN h2, http/1.1) or %q", r.Key(), H2C, Auto, HTTP1)
			}
		default:
			return fmt.Errorf("route %s: backend_protocol must be %q, %q or %q, got %q", r.Key(), HTTP1, H2C, Auto, r.BackendProtocol)
		}
	}
	return nil
}

// SpeaksHTTP2 reports whether the route can carry HTTP/2-only traffic
// (gRPC) to its backend: h2c, or auto over TLS (if the backend picks h2).
func (r Route) SpeaksHTTP2() bool {
	return r.BackendProtocol == H2C || (r.BackendProtocol == Auto && r.BackendTLS)
}

// Table is an immutable set of routes.
type Table struct {
	byKey map[tableKey]Route
}

// tableKey is a route's key in a Table: a struct rather than Key(), so a
// lookup builds no string.
type tableKey struct{ listener, hostname string }

// NewTable builds a table; routes must be valid and unique per key.
func NewTable(routes []Route) (*Table, error) {
	t := &Table{byKey: make(map[tableKey]Route, len(routes))}
	for _, r := range routes {
		r.Normalize()
		if err := r.Validate(); err != nil {
			return nil, err
		}
		k := tableKey{r.Listener, r.Hostname}
		if _, dup := t.byKey[k]; dup {
			return nil, fmt.Errorf("route %s: defined twice", r.Key())
		}
		t.byKey[k] = r
	}
	return t, nil
}

// Lookup finds the route for an SNI name on a listener (exact,
// case-insensitive match). It allocates nothing for a lower-case name.
func (t *Table) Lookup(listener, sni string) (Route, bool) {
	if t == nil {
		return Route{}, false
	}
	r, ok := t.byKey[tableKey{listener, NormalizeHost(sni)}]
	return r, ok
}

// Routes lists the table sorted by listener and host name.
func (t *Table) Routes() []Route {
	if t == nil {
		return nil
	}
	out := make([]Route, 0, len(t.byKey))
	for _, r := range t.byKey {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Len is the number of routes.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byKey)
}

// Rule kinds.
const (
	RuleIP      = "ip"      // Value: an IP address
	RuleCIDR    = "cidr"    // Value: a CIDR network
	RuleCountry = "country" // Value: ISO 3166-1 alpha-2 code, upper case
)

// Rule is one firewall block rule.
type Rule struct {
	Kind   string `json:"kind"`
	Value  string `json:"value"`
	Reason string `json:"reason,omitempty"`
}

// Validate normalizes and checks a rule.
func (r *Rule) Validate() error {
	r.Kind = strings.ToLower(strings.TrimSpace(r.Kind))
	r.Value = strings.TrimSpace(r.Value)
	switch r.Kind {
	case RuleIP:
		a, err := netip.ParseAddr(r.Value)
		if err != nil {
			return fmt.Errorf("firewall rule: %q is not an IP address", r.Value)
		}
		r.Value = a.Unmap().String()
	case RuleCIDR:
		p, err := netip.ParsePrefix(r.Value)
		if err != nil {
			return fmt.Errorf("firewall rule: %q is not a CIDR network", r.Value)
		}
		r.Value = p.Masked().String()
	case RuleCountry:
		r.Value = strings.ToUpper(r.Value)
		if len(r.Value) != 2 || r.Value[0] < 'A' || r.Value[0] > 'Z' || r.Value[1] < 'A' || r.Value[1] > 'Z' {
			return fmt.Errorf("firewall rule: %q is not a two-letter country code", r.Value)
		}
	default:
		return fmt.Errorf("firewall rule: kind must be ip, cidr or country, got %q", r.Kind)
	}
	return nil
}

// Key identifies a rule.
func (r Rule) Key() string { return r.Kind + ":" + r.Value }
