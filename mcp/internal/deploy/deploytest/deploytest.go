// Package deploytest holds in-memory stand-ins for the deploy engine's
// seams (mc-proxy routes, MCNS names, Metacrypt certificates), for the
// tests of the packages built on the engine. The runtime's stand-in is
// runtime/fake.
package deploytest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/certs"
	"git.metacircular.net/metacircular/mcp/internal/routes"
)

// Routes is an in-memory mc-proxy.
type Routes struct {
	mu     sync.Mutex
	routes map[string]routes.Route
	// Err, when set, fails every call.
	Err error
}

// NewRoutes returns an empty route table.
func NewRoutes() *Routes { return &Routes{routes: map[string]routes.Route{}} }

// Upsert implements deploy.Routes.
func (r *Routes) Upsert(_ context.Context, rt routes.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.routes[rt.Listener+"/"+rt.Hostname] = rt
	return nil
}

// Remove implements deploy.Routes.
func (r *Routes) Remove(_ context.Context, listener, hostname string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	delete(r.routes, listener+"/"+hostname)
	return nil
}

// List implements deploy.Routes.
func (r *Routes) List(context.Context) ([]routes.Route, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return nil, r.Err
	}
	out := make([]routes.Route, 0, len(r.routes))
	for _, rt := range r.routes {
		out = append(out, rt)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out, nil
}

// Get returns one route.
func (r *Routes) Get(listener, hostname string) (routes.Route, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.routes[listener+"/"+hostname]
	return rt, ok
}

// Len counts the routes.
func (r *Routes) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.routes)
}

// DNS is an in-memory MCNS zone.
type DNS struct {
	Zone string
	mu   sync.Mutex
	recs map[string]bool
}

// NewDNS returns an empty zone.
func NewDNS(zone string) *DNS { return &DNS{Zone: zone, recs: map[string]bool{}} }

// InZone implements deploy.DNS.
func (d *DNS) InZone(name string) bool {
	return len(name) > len(d.Zone) && name[len(name)-len(d.Zone)-1:] == "."+d.Zone
}

// Ensure implements deploy.DNS.
func (d *DNS) Ensure(_ context.Context, name, value string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs[name+" "+value] = true
	return nil
}

// Remove implements deploy.DNS.
func (d *DNS) Remove(_ context.Context, name, value string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.recs, name+" "+value)
	return nil
}

// Has implements deploy.DNS.
func (d *DNS) Has(_ context.Context, name, value string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recs[name+" "+value], nil
}

// Records lists "name value" pairs, sorted.
func (d *DNS) Records() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for k := range d.recs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Certs is an in-memory certificate provider.
type Certs struct {
	mu     sync.Mutex
	issued map[string]int
	// Fail names host names whose issuance fails.
	Fail map[string]bool
}

// NewCerts returns an empty provider.
func NewCerts() *Certs { return &Certs{issued: map[string]int{}, Fail: map[string]bool{}} }

// ErrRefused is the failure of a name in Fail.
var ErrRefused = errors.New("issuance refused by policy")

// Ensure implements deploy.Certs.
func (c *Certs) Ensure(_ context.Context, host string) (certs.Files, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Fail[host] {
		return certs.Files{}, fmt.Errorf("issue certificate for %s: %w", host, ErrRefused)
	}
	_, reused := c.issued[host]
	if !reused {
		c.issued[host]++
	}
	return certs.Files{Cert: "/certs/" + host + ".pem", Key: "/certs/" + host + ".key", NotAfter: time.Now().Add(90 * 24 * time.Hour), Reused: reused}, nil
}

// Remove implements deploy.Certs.
func (c *Certs) Remove(_ context.Context, host string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.issued, host)
	return nil
}

// Paths are the files of a host's certificate.
func (c *Certs) Paths(host string) (string, string) {
	return "/certs/" + host + ".pem", "/certs/" + host + ".key"
}

// Current implements monitor.CertChecker.
func (c *Certs) Current(host string) (certs.Files, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.issued[host]; !ok {
		return certs.Files{}, false
	}
	return certs.Files{Cert: "/certs/" + host + ".pem", Key: "/certs/" + host + ".key", Reused: true}, true
}

// Hosts lists the host names holding a certificate.
func (c *Certs) Hosts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for h := range c.issued {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}
