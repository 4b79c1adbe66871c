package deploy

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"git.metacircular.net/metacircular/mcp/internal/health"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// ContainerName is the container of a component at a revision:
// <service>-<component>-<revision>. Each deploy's containers have new
// names, so the new version runs beside the old one until the switch.
func ContainerName(service, component string, rev int64) string {
	return fmt.Sprintf("%s-%s-%d", service, component, rev)
}

// Labels are the ownership labels of a container.
func (e *Engine) Labels(sp *spec.Service, component string, rev int64) map[string]string {
	return map[string]string{
		runtime.LabelAgent: e.Config.Node, runtime.LabelService: sp.Name, runtime.LabelComponent: component,
		runtime.LabelRevision: strconv.FormatInt(rev, 10), runtime.LabelSpecHash: sp.Hash(),
	}
}

// portsOf maps component → route name → host port for a revision.
func (e *Engine) portsOf(ctx context.Context, service string, rev int64) (map[string]map[string]int, error) {
	ps, err := e.Registry.Ports(ctx, service, rev)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]int{}
	for _, p := range ps {
		if out[p.Component] == nil {
			out[p.Component] = map[string]int{}
		}
		out[p.Component][p.Route] = p.Port
	}
	return out, nil
}

// ContainerSpec is the container of one component at a revision, with
// its allocated ports.
func (e *Engine) ContainerSpec(sp *spec.Service, c *spec.Component, rev int64, ports map[string]int) (runtime.ContainerSpec, error) {
	cs := runtime.ContainerSpec{
		Name: ContainerName(sp.Name, c.Name, rev), Image: c.Image, Cmd: c.Cmd, Volumes: c.Volumes,
		Network: c.Network, User: c.User, Labels: e.Labels(sp, c.Name, rev),
	}
	cs.Env = append(cs.Env, c.Env...)
	// $PORT is also the first route's port when every route is named, so
	// an mcdsl service's [server] listen_addr follows its first route
	// ($PORT) and its grpc_addr a route named grpc ($PORT_GRPC).
	if len(c.Routes) > 0 && !slices.ContainsFunc(c.Routes, func(r spec.Route) bool { return r.Name == "" }) {
		if port, ok := ports[c.Routes[0].Name]; ok {
			cs.Env = append(cs.Env, fmt.Sprintf("PORT=%d", port))
		}
	}
	for _, r := range c.Routes {
		port, ok := ports[r.Name]
		if !ok {
			return cs, fmt.Errorf("component %s: no port allocated for route %q", c.Name, r.Name)
		}
		cs.Env = append(cs.Env, fmt.Sprintf("%s=%d", spec.PortEnv(r.Name), port))
		cs.Ports = append(cs.Ports, runtime.PortMapping{HostIP: e.Config.PublishIP, HostPort: port, ContainerPort: port})
	}
	return cs, nil
}

// ensureVolumes creates the host side of volumes under the service's data
// directory (podman refuses a bind mount of a missing path).
func (e *Engine) ensureVolumes(sp *spec.Service, c *spec.Component) error {
	if e.Config.DataRoot == "" {
		return nil
	}
	dataDir := filepath.Join(e.Config.DataRoot, sp.Name)
	for _, v := range c.Volumes {
		host := strings.SplitN(v, ":", 2)[0]
		if host == dataDir || strings.HasPrefix(host, dataDir+string(filepath.Separator)) {
			if err := os.MkdirAll(host, 0o700); err != nil {
				return fmt.Errorf("volume %s: %w", v, err)
			}
		}
	}
	return nil
}

// listener is the mc-proxy listener serving a route's port.
func (e *Engine) listener(port int) (string, error) {
	if l, ok := e.Config.Listeners[port]; ok {
		return l, nil
	}
	if e.Config.DefaultListener != "" {
		return e.Config.DefaultListener, nil
	}
	return "", fmt.Errorf("no mc-proxy listener for port %d on node %s (agent config [[mcproxy.listeners]])", port, e.Config.Node)
}

// DesiredRoutes are the mc-proxy routes of a revision with its ports.
// L7 routes name their certificate files (certFiles gives them).
func (e *Engine) DesiredRoutes(sp *spec.Service, ports map[string]map[string]int, certFiles func(host string) (string, string)) ([]registry.Route, error) {
	var out []registry.Route
	for _, c := range sp.Components {
		for _, r := range c.Routes {
			l, err := e.listener(r.Port)
			if err != nil {
				return nil, err
			}
			port, ok := ports[c.Name][r.Name]
			if !ok {
				return nil, fmt.Errorf("component %s: no port allocated for route %q", c.Name, r.Name)
			}
			rt := registry.Route{
				Listener: l, Hostname: sp.RouteHost(r, e.Config.Domain), Service: sp.Name,
				Backend: net.JoinHostPort(e.Config.Address, strconv.Itoa(port)), Mode: r.Mode, BackendProtocol: r.BackendProtocol,
			}
			if r.Mode == spec.ModeL7 && certFiles != nil {
				rt.TLSCert, rt.TLSKey = certFiles(rt.Hostname)
			}
			out = append(out, rt)
		}
	}
	return out, nil
}

// l7Hosts are the host names of a definition's L7 routes.
func (e *Engine) l7Hosts(sp *spec.Service) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range sp.Components {
		for _, r := range c.Routes {
			h := sp.RouteHost(r, e.Config.Domain)
			if r.Mode == spec.ModeL7 && !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	sort.Strings(out)
	return out
}

// DNSNames are the names a definition registers in MCNS: <service>.svc.D
// and every route host name in the service zone.
func (e *Engine) DNSNames(sp *spec.Service) []string {
	names := map[string]bool{sp.Name + ".svc." + e.Config.Domain: true}
	for _, c := range sp.Components {
		for _, r := range c.Routes {
			if h := sp.RouteHost(r, e.Config.Domain); e.DNS != nil && e.DNS.InZone(h) {
				names[h] = true
			}
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// HealthCheck is the probe of a component's container.
func (e *Engine) HealthCheck(c *spec.Component, ports map[string]int) health.Check {
	h := c.Health
	if h.Type == spec.HealthNone || len(c.Routes) == 0 {
		return health.Check{Type: health.None}
	}
	r := c.Routes[0]
	for _, cand := range c.Routes {
		if cand.Name == h.Route && h.Route != "" {
			r = cand
		}
	}
	ip := e.Config.PublishIP
	if c.Network == "host" || ip == "" || ip == "0.0.0.0" {
		ip = "127.0.0.1"
	}
	// An L4 route's backend terminates TLS itself; an L7 route's backend
	// speaks what mc-proxy speaks to it (plain HTTP or h2c).
	return health.Check{
		Type: h.Type, Addr: net.JoinHostPort(ip, strconv.Itoa(ports[r.Name])), Path: h.Path,
		TLS: r.Mode == spec.ModeL4,
	}
}

// portFree reports whether a host port can be bound on the publish
// address now (something outside the registry may hold it).
func (e *Engine) portFree(port int) bool {
	ip := e.Config.PublishIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
