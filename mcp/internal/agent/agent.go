// Package agent is the node's domain service, what the agent API's
// handlers call: it checks requests against the node (a definition
// pinned elsewhere is refused), starts operations on the deploy engine,
// joins the registry's desired state with what the runtime and the
// monitor observe for ps and status, streams logs, and moves files and
// archives in and out of a service's data directory.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcp/internal/deploy"
	"git.metacircular.net/metacircular/mcp/internal/monitor"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// Config describes the node.
type Config struct {
	Node, Domain, Address string
	// DataRoot holds the services' data directories (/srv).
	DataRoot string
	Version  string
}

// Agent is one node's agent.
type Agent struct {
	Config   Config
	Registry *registry.Store
	Runtime  runtime.Runtime
	Engine   *deploy.Engine
	Monitor  *monitor.Monitor
	Logger   *slog.Logger
	// Snapshotter calls a service's SnapshotService (snapshot method grpc).
	Snapshotter Snapshotter

	started time.Time
	boot    atomic.Value // string
}

// New returns an agent.
func New(a Agent) *Agent {
	a.started = time.Now()
	a.boot.Store("pending")
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	return &a
}

// SetBoot records the boot sequence's state (pending, running, done).
func (a *Agent) SetBoot(state string) { a.boot.Store(state) }

// Deploy starts a deploy of sp on this node.
func (a *Agent) Deploy(sp *spec.Service) (registry.Operation, <-chan deploy.Event, error) {
	if sp.Node != "" && sp.Node != a.Config.Node {
		return registry.Operation{}, nil, apierr.InvalidField("node", "service %s is pinned to node %s; this agent is node %s", sp.Name, sp.Node, a.Config.Node)
	}
	op, ch, err := a.Engine.Begin(deploy.KindDeploy, sp.Name, sp)
	if err == nil && a.Monitor != nil {
		a.Monitor.Forget(sp.Name)
	}
	return op, ch, err
}

// Act starts an undeploy, stop, start, restart or recover of a service.
func (a *Agent) Act(kind, service string) (registry.Operation, <-chan deploy.Event, error) {
	if err := spec.ValidName(service); err != nil {
		return registry.Operation{}, nil, apierr.InvalidField("service", "%s", err.Error())
	}
	switch kind {
	case deploy.KindUndeploy, deploy.KindStop, deploy.KindStart, deploy.KindRestart, deploy.KindRecover, deploy.KindBoot:
	default:
		return registry.Operation{}, nil, apierr.InvalidField("kind", "%s", "unknown operation "+kind)
	}
	op, ch, err := a.Engine.Begin(kind, service, nil)
	if err == nil && a.Monitor != nil && kind != deploy.KindBoot {
		a.Monitor.Forget(service)
	}
	return op, ch, err
}

// Recover runs a recover operation on each named service (all services
// whose desired state is running when none is named), one after the
// other, passing every event to send. It returns the services that did
// not recover.
func (a *Agent) Recover(ctx context.Context, names []string, send func(deploy.Event) error) ([]string, error) {
	if len(names) == 0 {
		svcs, err := a.Registry.Services(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range svcs {
			if s.Desired == registry.DesiredRunning && s.Revision > 0 {
				names = append(names, s.Name)
			}
		}
	}
	var failed []string
	for _, n := range names {
		_, ch, err := a.Act(deploy.KindRecover, n)
		if err != nil {
			failed = append(failed, n)
			if serr := send(deploy.Event{Event: registry.Event{Service: n, Kind: deploy.KindRecover, Step: "begin", State: deploy.StepFailed, Message: err.Error()}}); serr != nil {
				return failed, serr
			}
			continue
		}
		for ev := range ch {
			if ev.Final && ev.Result != registry.OpSucceeded {
				failed = append(failed, n)
			}
			ev.Final = false // the whole recover ends after the last service
			if err := send(ev); err != nil {
				return failed, err
			}
		}
	}
	return failed, nil
}

// Instance is one container of a service as ps shows it.
type Instance struct {
	Component   string
	Container   string
	ContainerID string
	Image       string
	ImageID     string
	// State is the runtime's, or "missing".
	State     string
	Revision  int64
	StartedAt time.Time
	ExitCode  int
	Ports     []Port
}

// Port is a route's host port.
type Port struct {
	Route        string
	Port         int
	Hostname     string
	ListenerPort int
}

// Service is a service as ps and status show it.
type Service struct {
	registry.Service
	Spec      *spec.Service
	Hash      string
	Instances []Instance
	Drift     []string
	Flapping  []string
	LastOp    *registry.Operation
}

// Services lists every service with its observed containers.
func (a *Agent) Services(ctx context.Context) ([]Service, error) {
	svcs, err := a.Registry.Services(ctx)
	if err != nil {
		return nil, err
	}
	observed, err := a.observed(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Service, 0, len(svcs))
	for _, s := range svcs {
		v, err := a.view(ctx, s, observed)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Service is one service with its recent events and alerts.
func (a *Agent) Service(ctx context.Context, name string) (Service, []registry.Event, []registry.Alert, error) {
	s, err := a.Registry.Service(ctx, name)
	if err != nil {
		return Service{}, nil, nil, err
	}
	observed, err := a.observed(ctx)
	if err != nil {
		return Service{}, nil, nil, err
	}
	v, err := a.view(ctx, s, observed)
	if err != nil {
		return Service{}, nil, nil, err
	}
	events, err := a.Registry.Events(ctx, name, 50)
	if err != nil {
		return v, nil, nil, err
	}
	alerts, err := a.Registry.Alerts(ctx, name, 20)
	return v, events, alerts, err
}

func (a *Agent) observed(ctx context.Context) (map[string]runtime.Status, error) {
	list, err := a.Runtime.List(ctx, map[string]string{runtime.LabelAgent: a.Config.Node})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]runtime.Status{}
	for _, st := range list {
		out[st.Name] = st
	}
	return out, nil
}

func (a *Agent) view(ctx context.Context, s registry.Service, observed map[string]runtime.Status) (Service, error) {
	v := Service{Service: s}
	if op, err := a.Registry.LastOperation(ctx, s.Name); err == nil {
		v.LastOp = &op
	}
	rev := s.Revision
	if rev == 0 && v.LastOp != nil {
		rev = v.LastOp.Revision // first deploy in progress
	}
	r, err := a.Registry.Revision(ctx, s.Name, rev)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return v, nil
		}
		return v, err
	}
	v.Spec, v.Hash = r.Spec, r.Hash
	ports, err := a.Registry.Ports(ctx, s.Name, 0)
	if err != nil {
		return v, err
	}
	recorded, err := a.Registry.Instances(ctx, s.Name, 0)
	if err != nil {
		return v, err
	}
	seen := map[string]bool{}
	for _, c := range r.Spec.Components {
		name := deploy.ContainerName(s.Name, c.Name, rev)
		seen[name] = true
		in := Instance{Component: c.Name, Container: name, Image: c.Image, Revision: rev, State: "missing"}
		for _, rec := range recorded {
			if rec.Name == name {
				in.ImageID = rec.ImageID
			}
		}
		if st, ok := observed[name]; ok {
			in.ContainerID, in.State, in.StartedAt, in.ExitCode, in.ImageID = st.ID, st.State, st.StartedAt, st.ExitCode, st.ImageID
		}
		for _, rt := range c.Routes {
			for _, p := range ports {
				if p.Component == c.Name && p.Route == rt.Name && p.Revision == rev {
					in.Ports = append(in.Ports, Port{Route: rt.Name, Port: p.Port, Hostname: r.Spec.RouteHost(rt, a.Config.Domain), ListenerPort: rt.Port})
				}
			}
		}
		v.Instances = append(v.Instances, in)
	}
	// Containers of other revisions (a redeploy in progress, draining).
	for name, st := range observed {
		if st.Labels[runtime.LabelService] != s.Name || seen[name] {
			continue
		}
		rv, _ := strconv.ParseInt(st.Labels[runtime.LabelRevision], 10, 64)
		v.Instances = append(v.Instances, Instance{Component: st.Labels[runtime.LabelComponent], Container: name, ContainerID: st.ID,
			Image: st.Image, ImageID: st.ImageID, State: st.State, Revision: rv, StartedAt: st.StartedAt, ExitCode: st.ExitCode})
	}
	sort.SliceStable(v.Instances, func(i, j int) bool { return v.Instances[i].Revision > v.Instances[j].Revision })
	if a.Monitor != nil {
		v.Drift = a.Monitor.Drift(s.Name)
		v.Flapping = a.Monitor.Flapping(r.Spec)
	}
	return v, nil
}

// Component is a service's component by name ("" for the first).
func (a *Agent) container(ctx context.Context, service, component string) (string, error) {
	s, err := a.Registry.Service(ctx, service)
	if err != nil {
		return "", err
	}
	r, err := a.Registry.Revision(ctx, service, s.Revision)
	if err != nil {
		return "", err
	}
	if component == "" {
		component = r.Spec.Components[0].Name
	}
	if _, ok := r.Spec.Component(component); !ok {
		return "", apierr.InvalidField("component", "service %s has no component %q", service, component)
	}
	return deploy.ContainerName(service, component, s.Revision), nil
}

// Logs writes a component's container output to w.
func (a *Agent) Logs(ctx context.Context, service, component string, o runtime.LogOptions, w interface{ Write([]byte) (int, error) }) error {
	name, err := a.container(ctx, service, component)
	if err != nil {
		return err
	}
	if err := a.Runtime.Logs(ctx, name, o, w); err != nil {
		if errors.Is(err, runtime.ErrNotFound) {
			return apierr.New(apierr.NotFound, "container "+name+" does not exist (run mcp-agent recover)")
		}
		return err
	}
	return nil
}

// NodeStatus is the agent's own state.
type NodeStatus struct {
	Node, Address, Domain, Version string
	StartedAt                      time.Time
	Runtime                        runtime.Info
	Services, Containers, Running  int
	Boot                           string
	Drift                          []string
	Alerts                         []registry.Alert
}

// Status reports the node's state.
func (a *Agent) Status(ctx context.Context) (NodeStatus, error) {
	st := NodeStatus{Node: a.Config.Node, Address: a.Config.Address, Domain: a.Config.Domain, Version: a.Config.Version,
		StartedAt: a.started, Boot: a.boot.Load().(string)} //nolint:errcheck,forcetypeassert // only strings are stored
	info, err := a.Runtime.Info(ctx)
	if err != nil {
		return st, fmt.Errorf("container runtime: %w", err)
	}
	st.Runtime = info
	svcs, err := a.Registry.Services(ctx)
	if err != nil {
		return st, err
	}
	st.Services = len(svcs)
	obs, err := a.observed(ctx)
	if err != nil {
		return st, err
	}
	for _, c := range obs {
		st.Containers++
		if c.Running() {
			st.Running++
		}
	}
	if a.Monitor != nil {
		st.Drift = a.Monitor.Drift("")
	}
	st.Alerts, err = a.Registry.Alerts(ctx, "", 20)
	return st, err
}

// Up runs a boot operation on a service (containers up, health) and
// waits for it: boot sequencing's step.
func (a *Agent) Up(ctx context.Context, service string) error {
	_, ch, err := a.Act(deploy.KindBoot, service)
	if err != nil {
		return err
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				op, err := a.Registry.LastOperation(context.WithoutCancel(ctx), service)
				if err == nil && op.State != registry.OpSucceeded {
					return errors.New(op.Error)
				}
				return err
			}
			if ev.Final {
				if ev.Result != registry.OpSucceeded {
					return errors.New(ev.Error)
				}
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// FirstPort is the host port of a service's first route (0 if none).
func (a *Agent) FirstPort(ctx context.Context, service string) (int, error) {
	s, err := a.Registry.Service(ctx, service)
	if err != nil {
		return 0, err
	}
	r, err := a.Registry.Revision(ctx, service, s.Revision)
	if err != nil {
		return 0, err
	}
	ports, err := a.Registry.Ports(ctx, service, s.Revision)
	if err != nil {
		return 0, err
	}
	for _, c := range r.Spec.Components {
		for _, rt := range c.Routes {
			for _, p := range ports {
				if p.Component == c.Name && p.Route == rt.Name {
					return p.Port, nil
				}
			}
		}
	}
	return 0, nil
}

// ServicesForBoot lists the registry's services (boot.Node).
func (a *Agent) ServicesForBoot(ctx context.Context) ([]registry.Service, error) {
	return a.Registry.Services(ctx)
}
