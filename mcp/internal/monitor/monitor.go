// Package monitor is the agent's watch over its services. Every interval
// it compares the desired state (registry) with what is observed (the
// runtime's containers, mc-proxy's routes, MCNS's names, the certificates
// on disk) — a pure comparison, Diff — and acts on each finding: repairs
// what is safe to repair (routes and names registered again, a
// certificate due for renewal reissued, a dead container restarted as its
// restart policy says, an orphan container removed after a grace period),
// stops restarting a container that flaps, and reports everything else as
// drift, shown by mcp status. Each new finding is an alert.
package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/alert"
	"git.metacircular.net/metacircular/mcp/internal/certs"
	"git.metacircular.net/metacircular/mcp/internal/deploy"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/restart"
	"git.metacircular.net/metacircular/mcp/internal/routes"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// Finding kinds.
const (
	ContainerMissing = "container-missing"
	ContainerDead    = "container-dead"
	ContainerRunning = "container-running" // running while the service is stopped
	ImageChanged     = "image-changed"
	RouteMissing     = "route-missing"
	DNSMissing       = "dns-missing"
	CertExpiring     = "cert-expiring"
	Orphan           = "orphan"
)

// Finding is one difference between desired and observed state.
type Finding struct {
	Service   string
	Component string
	Kind      string
	Detail    string
	// Container is the container concerned (dead, orphan).
	Container string
	ExitCode  int
}

func (f Finding) String() string {
	if f.Component != "" {
		return fmt.Sprintf("%s: %s: %s", f.Component, f.Kind, f.Detail)
	}
	return fmt.Sprintf("%s: %s", f.Kind, f.Detail)
}

// Desired is one service as the registry wants it.
type Desired struct {
	Service   registry.Service
	Spec      *spec.Service
	Instances []registry.Instance
	Routes    []registry.Route
	Names     []string
	// CertHosts are the host names of its L7 routes.
	CertHosts []string
}

// Observed is what the node shows.
type Observed struct {
	// Containers by name (the agent's, by label).
	Containers map[string]runtime.Status
	// Routes by listener/hostname; nil when mc-proxy did not answer.
	Routes map[string]routes.Route
	// Names present in MCNS; nil when MCNS did not answer.
	Names map[string]bool
	// ValidCerts are the host names whose certificate is good.
	ValidCerts map[string]bool
}

// Diff compares one service's desired state with the observations. It is
// pure: it decides nothing about repairs.
func Diff(d Desired, o Observed, node string) []Finding {
	var out []Finding
	name := d.Service.Name
	rev := strconv.FormatInt(d.Service.Revision, 10)
	expected := map[string]bool{}
	for _, c := range d.Spec.Components {
		cname := deploy.ContainerName(name, c.Name, d.Service.Revision)
		expected[cname] = true
		st, ok := o.Containers[cname]
		switch {
		case !ok && d.Service.Desired == registry.DesiredRunning:
			out = append(out, Finding{Service: name, Component: c.Name, Kind: ContainerMissing, Container: cname,
				Detail: fmt.Sprintf("container %s is gone (run mcp-agent recover)", cname)})
			continue
		case !ok:
			continue
		case d.Service.Desired == registry.DesiredRunning && !st.Running():
			out = append(out, Finding{Service: name, Component: c.Name, Kind: ContainerDead, Container: cname, ExitCode: st.ExitCode,
				Detail: fmt.Sprintf("container %s is %s (exit code %d)", cname, st.State, st.ExitCode)})
		case d.Service.Desired == registry.DesiredStopped && st.Running():
			out = append(out, Finding{Service: name, Component: c.Name, Kind: ContainerRunning, Container: cname,
				Detail: fmt.Sprintf("container %s runs while the service is stopped", cname)})
		}
		for _, in := range d.Instances {
			if in.Name == cname && in.ImageID != "" && st.ImageID != "" && in.ImageID != st.ImageID {
				out = append(out, Finding{Service: name, Component: c.Name, Kind: ImageChanged, Container: cname,
					Detail: fmt.Sprintf("container %s runs image %s, deployed %s", cname, short(st.ImageID), short(in.ImageID))})
			}
		}
	}
	for cname, st := range o.Containers {
		if st.Labels[runtime.LabelService] == name && st.Labels[runtime.LabelAgent] == node && !expected[cname] && st.Labels[runtime.LabelRevision] != rev {
			out = append(out, Finding{Service: name, Kind: Orphan, Container: cname,
				Detail: fmt.Sprintf("container %s (revision %s) belongs to no serving revision", cname, st.Labels[runtime.LabelRevision])})
		}
	}
	if d.Service.Desired != registry.DesiredRunning {
		return out
	}
	if o.Routes != nil {
		for _, r := range d.Routes {
			got, ok := o.Routes[r.Listener+"/"+r.Hostname]
			if !ok || got.Backend != r.Backend {
				detail := fmt.Sprintf("route %s on %s missing in mc-proxy", r.Hostname, r.Listener)
				if ok {
					detail = fmt.Sprintf("route %s on %s goes to %s, not %s", r.Hostname, r.Listener, got.Backend, r.Backend)
				}
				out = append(out, Finding{Service: name, Kind: RouteMissing, Detail: detail})
			}
		}
	}
	if o.Names != nil {
		for _, n := range d.Names {
			if !o.Names[n] {
				out = append(out, Finding{Service: name, Kind: DNSMissing, Detail: fmt.Sprintf("%s missing in MCNS", n)})
			}
		}
	}
	if o.ValidCerts != nil {
		for _, h := range d.CertHosts {
			if !o.ValidCerts[h] {
				out = append(out, Finding{Service: name, Kind: CertExpiring, Detail: fmt.Sprintf("certificate for %s is missing or due for renewal", h)})
			}
		}
	}
	return out
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// CertChecker reads the certificates on disk.
type CertChecker interface {
	Current(hostname string) (certs.Files, bool)
}

// Monitor watches a node.
type Monitor struct {
	Node     string
	Address  string
	Engine   *deploy.Engine
	Registry *registry.Store
	Runtime  runtime.Runtime
	Routes   deploy.Routes
	DNS      deploy.DNS
	Certs    deploy.Certs
	Alerts   *alert.Sink
	Restarts *restart.Tracker
	Logger   *slog.Logger
	// Interval between passes; OrphanGrace is how long an orphan
	// container must stay one before it is removed.
	Interval, OrphanGrace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu       sync.Mutex
	drift    map[string][]string
	seen     map[string]bool // service + finding already alerted
	orphans  map[string]time.Time
	lastPass time.Time
}

func (m *Monitor) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Run passes every interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.Pass(ctx)
		}
	}
}

// Drift is a service's current drift (what the last pass could not
// repair), or every service's with "".
func (m *Monitor) Drift(service string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if service != "" {
		return append([]string(nil), m.drift[service]...)
	}
	var out []string
	keys := make([]string, 0, len(m.drift))
	for k := range m.drift {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, d := range m.drift[k] {
			out = append(out, k+": "+d)
		}
	}
	return out
}

// Flapping lists a service's flapping components.
func (m *Monitor) Flapping(sp *spec.Service) []string {
	var out []string
	if m.Restarts == nil {
		return nil
	}
	for _, c := range sp.Components {
		if m.Restarts.Flapping(sp.Name + "/" + c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

// Forget clears a service's drift and flapping state (an operator acted).
func (m *Monitor) Forget(service string) {
	if m.Restarts != nil {
		m.Restarts.ResetPrefix(service + "/")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.drift, service)
	for k := range m.seen {
		if len(k) > len(service) && k[:len(service)+1] == service+"\x00" {
			delete(m.seen, k)
		}
	}
}

// Pass looks at every service once and acts on what it finds.
func (m *Monitor) Pass(ctx context.Context) {
	m.mu.Lock()
	if m.drift == nil {
		m.drift, m.seen, m.orphans = map[string][]string{}, map[string]bool{}, map[string]time.Time{}
	}
	m.mu.Unlock()
	svcs, err := m.Registry.Services(ctx)
	if err != nil {
		m.Logger.Error("monitor: list services", "error", err)
		return
	}
	obs, err := m.observe(ctx)
	if err != nil {
		m.Logger.Error("monitor: observe", "error", err)
		return
	}
	known := map[string]bool{}
	for _, svc := range svcs {
		known[svc.Name] = true
		m.check(ctx, svc.Name)
	}
	m.reapUnknown(ctx, obs, known)
	m.mu.Lock()
	for svc := range m.drift {
		if !known[svc] {
			delete(m.drift, svc)
		}
	}
	m.lastPass = m.now()
	m.mu.Unlock()
}

// check looks at one service with the engine's hold on it, so no
// operation changes it meanwhile; observations are made after taking it.
func (m *Monitor) check(ctx context.Context, name string) {
	release, ok := m.Engine.Hold(name)
	if !ok {
		return
	}
	defer release()
	svc, err := m.Registry.Service(ctx, name)
	if err != nil || svc.Revision == 0 {
		return
	}
	d, err := m.desired(ctx, svc)
	if err != nil {
		m.Logger.Error("monitor: desired state", "service", svc.Name, "error", err)
		return
	}
	o, err := m.observe(ctx)
	if err != nil {
		m.Logger.Error("monitor: observe", "error", err)
		return
	}
	if svc.Desired == registry.DesiredRunning {
		o.Names = m.namesPresent(ctx, d.Names)
	}
	var left []string
	for _, f := range Diff(d, o, m.Node) {
		if !m.act(ctx, d, f) {
			left = append(left, f.String())
		}
	}
	m.settle(ctx, svc.Name, left)
}

func (m *Monitor) observe(ctx context.Context) (Observed, error) {
	o := Observed{Containers: map[string]runtime.Status{}}
	list, err := m.Runtime.List(ctx, map[string]string{runtime.LabelAgent: m.Node})
	if err != nil {
		return o, err
	}
	for _, st := range list {
		o.Containers[st.Name] = st
	}
	if m.Routes != nil {
		if rs, err := m.Routes.List(ctx); err == nil {
			o.Routes = map[string]routes.Route{}
			for _, r := range rs {
				o.Routes[r.Listener+"/"+r.Hostname] = r
			}
		} else {
			m.Logger.Warn("monitor: mc-proxy did not answer", "error", err)
		}
	}
	if cc, ok := m.Certs.(CertChecker); ok {
		o.ValidCerts = map[string]bool{}
		hostsRoutes, _ := m.Registry.Routes(ctx, "")
		for _, r := range hostsRoutes {
			if r.Mode == spec.ModeL7 {
				_, good := cc.Current(r.Hostname)
				o.ValidCerts[r.Hostname] = good
			}
		}
	}
	return o, nil
}

func (m *Monitor) desired(ctx context.Context, svc registry.Service) (Desired, error) {
	d := Desired{Service: svc}
	rev, err := m.Registry.Revision(ctx, svc.Name, svc.Revision)
	if err != nil {
		return d, err
	}
	d.Spec = rev.Spec
	if d.Instances, err = m.Registry.Instances(ctx, svc.Name, svc.Revision); err != nil {
		return d, err
	}
	if d.Routes, err = m.Registry.Routes(ctx, svc.Name); err != nil {
		return d, err
	}
	for _, r := range d.Routes {
		if r.Mode == spec.ModeL7 {
			d.CertHosts = append(d.CertHosts, r.Hostname)
		}
	}
	recs, err := m.Registry.Records(ctx, svc.Name)
	if err != nil {
		return d, err
	}
	for _, r := range recs {
		d.Names = append(d.Names, r.Name)
	}
	return d, nil
}

// namesPresent asks MCNS about the service's names (nil if it did not
// answer).
func (m *Monitor) namesPresent(ctx context.Context, names []string) map[string]bool {
	if m.DNS == nil {
		return nil
	}
	out := map[string]bool{}
	for _, n := range names {
		ok, err := m.DNS.Has(ctx, n, m.Address)
		if err != nil {
			m.Logger.Warn("monitor: MCNS did not answer", "error", err)
			return nil
		}
		out[n] = ok
	}
	return out
}

// act repairs a finding when that is safe and reports whether it is
// resolved.
func (m *Monitor) act(ctx context.Context, d Desired, f Finding) bool {
	switch f.Kind {
	case ContainerDead:
		return m.restartDead(ctx, d, f)
	case RouteMissing:
		return m.repair(ctx, d, f, func() error {
			for _, r := range d.Routes {
				if err := m.Routes.Upsert(ctx, routes.Route{Listener: r.Listener, Hostname: r.Hostname, Mode: r.Mode, Backend: r.Backend,
					TLSCert: r.TLSCert, TLSKey: r.TLSKey, BackendProtocol: r.BackendProtocol}); err != nil {
					return err
				}
			}
			return nil
		})
	case CertExpiring:
		return m.repair(ctx, d, f, func() error {
			for _, h := range d.CertHosts {
				if _, err := m.Certs.Ensure(ctx, h); err != nil {
					return err
				}
			}
			// mc-proxy loads a certificate when its route is added.
			for _, r := range d.Routes {
				if r.Mode == spec.ModeL7 {
					if err := m.Routes.Upsert(ctx, routes.Route{Listener: r.Listener, Hostname: r.Hostname, Mode: r.Mode, Backend: r.Backend,
						TLSCert: r.TLSCert, TLSKey: r.TLSKey, BackendProtocol: r.BackendProtocol}); err != nil {
						return err
					}
				}
			}
			return nil
		})
	case DNSMissing:
		return m.repair(ctx, d, f, func() error {
			for _, n := range d.Names {
				if err := m.DNS.Ensure(ctx, n, m.Address); err != nil {
					return err
				}
			}
			return nil
		})
	case Orphan:
		return m.reapOrphan(ctx, f)
	}
	return false
}

func (m *Monitor) repair(ctx context.Context, d Desired, f Finding, fix func() error) bool {
	if err := fix(); err != nil {
		m.alertOnce(ctx, d.Service.Name, f.String(), alert.Drift, f.String()+" (repair failed: "+err.Error()+")")
		return false
	}
	m.Alerts.Send(ctx, d.Service.Name, alert.Repaired, f.String()+": repaired")
	return true
}

func (m *Monitor) restartDead(ctx context.Context, d Desired, f Finding) bool {
	c, _ := d.Spec.Component(f.Component)
	key := d.Service.Name + "/" + f.Component
	if c == nil {
		return false
	}
	if !restart.Wanted(c.Restart, f.ExitCode) {
		m.alertOnce(ctx, d.Service.Name, f.String(), alert.Drift, f.String()+" (restart policy "+c.Restart+")")
		return false
	}
	ok, became := m.Restarts.Allow(key, m.now())
	if became {
		m.Alerts.Send(ctx, d.Service.Name, alert.Flapping, fmt.Sprintf("%s restarted %d times within %s: no longer restarted (mcp restart %s once fixed)",
			f.Container, m.Restarts.MaxRestarts, m.Restarts.Window, d.Service.Name))
	}
	if !ok {
		return false
	}
	if err := m.Runtime.Start(ctx, f.Container); err != nil {
		m.alertOnce(ctx, d.Service.Name, f.String(), alert.Drift, f.String()+" (restart failed: "+err.Error()+")")
		return false
	}
	m.Alerts.Send(ctx, d.Service.Name, alert.Restart, fmt.Sprintf("%s restarted (it exited with code %d; policy %s)", f.Container, f.ExitCode, c.Restart))
	return true
}

// reapOrphan removes a container no serving revision explains once it
// has been one for the grace period (an operation in progress owns its
// new containers; the monitor skips busy services).
func (m *Monitor) reapOrphan(ctx context.Context, f Finding) bool {
	m.mu.Lock()
	first, ok := m.orphans[f.Container]
	if !ok {
		m.orphans[f.Container] = m.now()
		first = m.now()
	}
	m.mu.Unlock()
	if m.now().Sub(first) < m.OrphanGrace {
		return false
	}
	if err := m.Runtime.Remove(ctx, f.Container); err != nil {
		m.Logger.Error("monitor: remove orphan", "container", f.Container, "error", err)
		return false
	}
	m.mu.Lock()
	delete(m.orphans, f.Container)
	m.mu.Unlock()
	m.Alerts.Send(ctx, f.Service, alert.Orphan, "removed "+f.Detail)
	return true
}

// reapUnknown removes the agent's containers of services the registry
// does not know (an undeploy interrupted before its last step, a
// database restored from an older snapshot), after the grace period.
func (m *Monitor) reapUnknown(ctx context.Context, o Observed, known map[string]bool) {
	for name, st := range o.Containers {
		svc := st.Labels[runtime.LabelService]
		if svc == "" || known[svc] || m.Engine.Busy(svc) {
			continue
		}
		m.reapOrphan(ctx, Finding{Service: svc, Kind: Orphan, Container: name,
			Detail: fmt.Sprintf("container %s of unknown service %s", name, svc)})
	}
}

// settle records a service's remaining drift and alerts on what is new.
func (m *Monitor) settle(ctx context.Context, service string, left []string) {
	m.mu.Lock()
	prev := m.drift[service]
	m.drift[service] = left
	if len(left) == 0 {
		delete(m.drift, service)
	}
	m.mu.Unlock()
	for _, l := range left {
		m.alertOnce(ctx, service, l, alert.Drift, l)
	}
	// Findings that went away may alert again if they come back.
	m.mu.Lock()
	for _, p := range prev {
		still := false
		for _, l := range left {
			still = still || l == p
		}
		if !still {
			delete(m.seen, service+"\x00"+p)
		}
	}
	m.mu.Unlock()
}

func (m *Monitor) alertOnce(ctx context.Context, service, key, kind, msg string) {
	m.mu.Lock()
	k := service + "\x00" + key
	dup := m.seen[k]
	m.seen[k] = true
	m.mu.Unlock()
	if !dup {
		m.Alerts.Send(ctx, service, kind, msg)
	}
}
