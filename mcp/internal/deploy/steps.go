package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/health"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/routes"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// run is an operation being executed: its row and the definitions it
// works with, loaded from the registry (so a resumed operation has the
// same ones).
type run struct {
	op registry.Operation
	// sp is the revision the operation brings about (or acts on); prev the
	// one serving before a deploy (nil for a first deploy, and equal to sp
	// for the other kinds).
	sp, prev *spec.Service
}

func (e *Engine) load(ctx context.Context, op registry.Operation) (*run, error) {
	r := &run{op: op}
	rev, err := e.Registry.Revision(ctx, op.Service, op.Revision)
	if err != nil {
		return nil, err
	}
	r.sp = rev.Spec
	if op.PrevRevision != 0 {
		prev, err := e.Registry.Revision(ctx, op.Service, op.PrevRevision)
		if err != nil {
			return nil, err
		}
		r.prev = prev.Spec
	}
	return r, nil
}

// redeploy reports whether a deploy replaces a serving revision.
func (r *run) redeploy() bool { return r.prev != nil && r.op.PrevRevision != r.op.Revision }

type step struct {
	name string
	// do returns a short message for the event ("reused", "issued").
	do   func(ctx context.Context, r *run) (string, error)
	undo func(ctx context.Context, r *run) error
}

// Steps lists the step names of an operation kind, in order.
func (e *Engine) Steps(kind string) []string {
	var out []string
	for _, s := range e.steps(kind) {
		out = append(out, s.name)
	}
	return out
}

func (e *Engine) steps(kind string) []step {
	switch kind {
	case KindDeploy:
		return []step{
			{"ports", e.allocatePorts, e.releaseNewPorts},
			{"certs", e.ensureCerts, e.removeNewCerts},
			{"pull", e.pull, nil},
			{"start", e.startNew, e.removeNew},
			{"health", e.waitHealthy, nil},
			{"routes", e.switchRoutes, e.restoreRoutes},
			{"dns", e.registerNames, e.restoreNames},
			{"drain", e.drainOld, nil},
			{"record", e.recordServing, nil},
		}
	case KindUndeploy:
		return []step{
			{"dns", e.removeNames, nil},
			{"routes", e.removeRoutes, nil},
			{"certs", e.removeCerts, nil},
			{"containers", e.removeContainers, nil},
			{"ports", e.releaseAllPorts, nil},
			{"record", e.forgetService, nil},
		}
	case KindStop:
		return []step{
			{"desired", e.setDesired(registry.DesiredStopped), nil},
			{"dns", e.removeNames, nil},
			{"routes", e.removeRoutes, nil},
			{"containers", e.stopContainers, nil},
		}
	case KindStart:
		return []step{
			{"desired", e.setDesired(registry.DesiredRunning), e.undoDesired(registry.DesiredStopped)},
			{"containers", e.ensureContainers(false), e.stopContainersUndo},
			{"health", e.waitHealthy, nil},
			{"routes", e.switchRoutes, nil},
			{"dns", e.registerNames, nil},
		}
	case KindRestart:
		return []step{
			{"containers", e.restartContainers, nil},
			{"health", e.waitHealthy, nil},
			{"routes", e.switchRoutes, nil},
		}
	case KindBoot:
		return []step{
			{"containers", e.ensureContainers(true), nil},
			{"health", e.waitHealthy, nil},
		}
	case KindRecover:
		return []step{
			{"containers", e.ensureContainers(true), nil},
			{"health", e.waitHealthy, nil},
			{"routes", e.switchRoutes, nil},
			{"dns", e.registerNames, nil},
		}
	}
	return nil
}

// --- ports ---

func (e *Engine) allocatePorts(ctx context.Context, r *run) (string, error) {
	var got []string
	for _, c := range r.sp.Components {
		for _, rt := range c.Routes {
			p, err := e.Registry.AllocatePort(ctx, registry.Port{Service: r.sp.Name, Component: c.Name, Revision: r.op.Revision, Route: rt.Name},
				e.Config.PortLow, e.Config.PortHigh, e.portFree)
			if err != nil {
				return "", err
			}
			got = append(got, fmt.Sprintf("%s=%d", spec.PortEnv(rt.Name), p))
		}
	}
	return strings.Join(got, " "), nil
}

func (e *Engine) releaseNewPorts(ctx context.Context, r *run) error {
	if r.op.Revision == r.op.PrevRevision {
		return nil
	}
	return e.Registry.ReleasePorts(ctx, r.sp.Name, r.op.Revision)
}

func (e *Engine) releaseAllPorts(ctx context.Context, r *run) (string, error) {
	return "", e.Registry.ReleasePorts(ctx, r.sp.Name, 0)
}

// --- certificates ---

func (e *Engine) ensureCerts(ctx context.Context, r *run) (string, error) {
	var msgs []string
	for _, h := range e.l7Hosts(r.sp) {
		if e.Certs == nil {
			return "", errors.New("no certificate provider configured for L7 routes")
		}
		f, err := e.Certs.Ensure(ctx, h)
		if err != nil {
			return "", err
		}
		verb := "issued"
		if f.Reused {
			verb = "reused"
		}
		msgs = append(msgs, fmt.Sprintf("%s %s (until %s)", verb, h, f.NotAfter.UTC().Format("2006-01-02")))
	}
	return strings.Join(msgs, "; "), nil
}

// removeNewCerts removes the certificates a failed deploy issued for
// names the serving revision does not use.
func (e *Engine) removeNewCerts(ctx context.Context, r *run) error {
	var keep []string
	if r.prev != nil {
		keep = e.l7Hosts(r.prev)
	}
	for _, h := range e.l7Hosts(r.sp) {
		if !slices.Contains(keep, h) && e.Certs != nil {
			if err := e.Certs.Remove(ctx, h); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Engine) removeCerts(ctx context.Context, r *run) (string, error) {
	if e.Certs == nil {
		return "", nil
	}
	others, err := e.Registry.Routes(ctx, "")
	if err != nil {
		return "", err
	}
	for _, h := range e.l7Hosts(r.sp) {
		// A name another service routes keeps its certificate.
		if slices.ContainsFunc(others, func(o registry.Route) bool { return o.Hostname == h && o.Service != r.sp.Name }) {
			continue
		}
		if err := e.Certs.Remove(ctx, h); err != nil {
			return "", err
		}
	}
	return "", nil
}

// --- images and containers ---

func (e *Engine) auth(image string) (*runtime.Auth, error) {
	if e.Config.Auth == nil {
		return nil, nil
	}
	img, err := spec.ParseImage(image)
	if err != nil {
		return nil, err
	}
	return e.Config.Auth(img)
}

func (e *Engine) pullImage(ctx context.Context, image string) (string, error) {
	a, err := e.auth(image)
	if err != nil {
		return "", err
	}
	id, err := e.Runtime.Pull(ctx, image, a)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", image, err)
	}
	return id, nil
}

func (e *Engine) pull(ctx context.Context, r *run) (string, error) {
	var msgs []string
	for _, img := range r.sp.Images() {
		id, err := e.pullImage(ctx, img)
		if err != nil {
			return "", err
		}
		msgs = append(msgs, img+" "+shortID(id))
	}
	return strings.Join(msgs, "; "), nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ensureContainer makes the component's container of revision rev exist
// and run: an existing one of that revision is kept (started if needed),
// anything else by that name is replaced. pull fetches a missing image.
func (e *Engine) ensureContainer(ctx context.Context, sp *spec.Service, c *spec.Component, rev int64, pull bool) (string, error) {
	ports, err := e.portsOf(ctx, sp.Name, rev)
	if err != nil {
		return "", err
	}
	cs, err := e.ContainerSpec(sp, c, rev, ports[c.Name])
	if err != nil {
		return "", err
	}
	st, err := e.Runtime.Inspect(ctx, cs.Name)
	switch {
	case err == nil && st.Labels[runtime.LabelRevision] == strconv.FormatInt(rev, 10) && st.Labels[runtime.LabelAgent] == e.Config.Node:
		if st.Running() {
			return e.record(ctx, sp, c, rev, st, "kept")
		}
		if err := e.Runtime.Start(ctx, cs.Name); err != nil {
			return "", fmt.Errorf("start %s: %w", cs.Name, err)
		}
		st, err = e.Runtime.Inspect(ctx, cs.Name)
		if err != nil {
			return "", err
		}
		return e.record(ctx, sp, c, rev, st, "started")
	case err == nil:
		if err := e.Runtime.Remove(ctx, cs.Name); err != nil {
			return "", err
		}
	case !errors.Is(err, runtime.ErrNotFound):
		return "", err
	}
	if _, err := e.Runtime.ImageID(ctx, c.Image); errors.Is(err, runtime.ErrNotFound) && pull {
		if _, err := e.pullImage(ctx, c.Image); err != nil {
			return "", err
		}
	}
	if err := e.ensureVolumes(sp, c); err != nil {
		return "", err
	}
	if _, err := e.Runtime.Create(ctx, cs); err != nil {
		return "", fmt.Errorf("create %s: %w", cs.Name, err)
	}
	if err := e.Runtime.Start(ctx, cs.Name); err != nil {
		return "", fmt.Errorf("start %s: %w", cs.Name, err)
	}
	if st, err = e.Runtime.Inspect(ctx, cs.Name); err != nil {
		return "", err
	}
	return e.record(ctx, sp, c, rev, st, "created")
}

func (e *Engine) record(ctx context.Context, sp *spec.Service, c *spec.Component, rev int64, st runtime.Status, verb string) (string, error) {
	err := e.Registry.PutInstance(ctx, registry.Instance{
		Name: st.Name, Service: sp.Name, Component: c.Name, Revision: rev, ContainerID: st.ID, Image: c.Image, ImageID: st.ImageID,
	})
	return verb + " " + st.Name, err
}

// startNew starts the new revision's containers. A component without
// routes cannot run twice behind a switch, so its old container is
// stopped first (recreated in place); routed components run side by side
// with the old revision until the routes switch.
func (e *Engine) startNew(ctx context.Context, r *run) (string, error) {
	var msgs []string
	for i := range r.sp.Components {
		c := &r.sp.Components[i]
		if r.redeploy() && len(c.Routes) == 0 {
			if old, ok := r.prev.Component(c.Name); ok {
				name := ContainerName(r.sp.Name, old.Name, r.op.PrevRevision)
				if err := e.Runtime.Stop(ctx, name, e.Config.StopTimeout); err != nil && !errors.Is(err, runtime.ErrNotFound) {
					return "", fmt.Errorf("stop %s: %w", name, err)
				}
			}
		}
		msg, err := e.ensureContainer(ctx, r.sp, c, r.op.Revision, false)
		if err != nil {
			return "", err
		}
		msgs = append(msgs, msg)
	}
	return strings.Join(msgs, "; "), nil
}

// removeNew removes the new revision's containers — those recorded and
// any carrying its labels (created just before a crash) — and starts the
// old revision's containers a recreate stopped.
func (e *Engine) removeNew(ctx context.Context, r *run) error {
	if !r.redeploy() && r.prev != nil {
		return nil
	}
	if err := e.removeRevision(ctx, r.sp.Name, r.op.Revision); err != nil {
		return err
	}
	if !r.redeploy() {
		return nil
	}
	for i := range r.prev.Components {
		c := &r.prev.Components[i]
		name := ContainerName(r.prev.Name, c.Name, r.op.PrevRevision)
		st, err := e.Runtime.Inspect(ctx, name)
		if err == nil && !st.Running() {
			if err := e.Runtime.Start(ctx, name); err != nil {
				return fmt.Errorf("restart %s: %w", name, err)
			}
		}
	}
	return nil
}

// removeRevision removes every container of a revision (rev 0: all of
// the service's) and forgets them.
func (e *Engine) removeRevision(ctx context.Context, service string, rev int64) error {
	labels := map[string]string{runtime.LabelAgent: e.Config.Node, runtime.LabelService: service}
	if rev != 0 {
		labels[runtime.LabelRevision] = strconv.FormatInt(rev, 10)
	}
	found, err := e.Runtime.List(ctx, labels)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, st := range found {
		names[st.Name] = true
	}
	recorded, err := e.Registry.Instances(ctx, service, rev)
	if err != nil {
		return err
	}
	for _, in := range recorded {
		names[in.Name] = true
	}
	for n := range names {
		if err := e.stopRemove(ctx, n); err != nil {
			return err
		}
		if err := e.Registry.DeleteInstance(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) stopRemove(ctx context.Context, name string) error {
	if err := e.Runtime.Stop(ctx, name, e.Config.StopTimeout); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		e.log.Warn("stop container", "container", name, "error", err)
	}
	if err := e.Runtime.Remove(ctx, name); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

func (e *Engine) removeContainers(ctx context.Context, r *run) (string, error) {
	return "", e.removeRevision(ctx, r.sp.Name, 0)
}

// ensureContainers (start, recover) brings every container of the
// serving revision up, recreating missing ones; recover also pulls
// images the runtime lost.
func (e *Engine) ensureContainers(pull bool) func(ctx context.Context, r *run) (string, error) {
	return func(ctx context.Context, r *run) (string, error) {
		var msgs []string
		for i := range r.sp.Components {
			msg, err := e.ensureContainer(ctx, r.sp, &r.sp.Components[i], r.op.Revision, pull)
			if err != nil {
				return "", err
			}
			msgs = append(msgs, msg)
		}
		return strings.Join(msgs, "; "), nil
	}
}

func (e *Engine) stopContainers(ctx context.Context, r *run) (string, error) {
	ins, err := e.Registry.Instances(ctx, r.sp.Name, 0)
	if err != nil {
		return "", err
	}
	var names []string
	for _, in := range ins {
		if err := e.Runtime.Stop(ctx, in.Name, e.Config.StopTimeout); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			return "", fmt.Errorf("stop %s: %w", in.Name, err)
		}
		names = append(names, in.Name)
	}
	return "stopped " + strings.Join(names, ", "), nil
}

func (e *Engine) stopContainersUndo(ctx context.Context, r *run) error {
	_, err := e.stopContainers(ctx, r)
	return err
}

func (e *Engine) restartContainers(ctx context.Context, r *run) (string, error) {
	var msgs []string
	for i := range r.sp.Components {
		c := &r.sp.Components[i]
		name := ContainerName(r.sp.Name, c.Name, r.op.Revision)
		if err := e.Runtime.Stop(ctx, name, e.Config.StopTimeout); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			return "", fmt.Errorf("stop %s: %w", name, err)
		}
		msg, err := e.ensureContainer(ctx, r.sp, c, r.op.Revision, true)
		if err != nil {
			return "", err
		}
		msgs = append(msgs, msg)
	}
	return strings.Join(msgs, "; "), nil
}

// --- health ---

func (e *Engine) waitHealthy(ctx context.Context, r *run) (string, error) {
	ports, err := e.portsOf(ctx, r.sp.Name, r.op.Revision)
	if err != nil {
		return "", err
	}
	var msgs []string
	for i := range r.sp.Components {
		c := &r.sp.Components[i]
		name := ContainerName(r.sp.Name, c.Name, r.op.Revision)
		check := e.HealthCheck(c, ports[c.Name])
		timeout := e.Config.HealthTimeout
		if c.Health.Timeout > 0 {
			timeout = c.Health.Timeout
		}
		err := health.Wait(ctx, check, timeout, e.Config.HealthInterval, func(ctx context.Context) error {
			st, err := e.Runtime.Inspect(ctx, name)
			if err != nil {
				return err
			}
			if !st.Running() {
				return fmt.Errorf("container %s %s (exit code %d)", name, st.State, st.ExitCode)
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("component %s: %w%s", c.Name, err, e.logTail(ctx, name))
		}
		msgs = append(msgs, fmt.Sprintf("%s healthy (%s)", name, check))
	}
	return strings.Join(msgs, "; "), nil
}

// logTail is the end of a container's output, for an error that says why
// it is not healthy.
func (e *Engine) logTail(ctx context.Context, name string) string {
	var b bytes.Buffer
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.Runtime.Logs(lctx, name, runtime.LogOptions{Tail: 10}, &b); err != nil || b.Len() == 0 {
		return ""
	}
	return "\ncontainer output:\n" + strings.TrimRight(b.String(), "\n")
}

// --- routes ---

func (e *Engine) certFiles(host string) (string, string) {
	if p, ok := e.Certs.(interface{ Paths(string) (string, string) }); ok {
		return p.Paths(host)
	}
	return "", ""
}

// applyRoutes makes mc-proxy route sp at rev, removing the service's
// other recorded routes.
func (e *Engine) applyRoutes(ctx context.Context, sp *spec.Service, rev int64) ([]string, error) {
	ports, err := e.portsOf(ctx, sp.Name, rev)
	if err != nil {
		return nil, err
	}
	want, err := e.DesiredRoutes(sp, ports, e.certFiles)
	if err != nil {
		return nil, err
	}
	var msgs []string
	for _, rt := range want {
		if err := e.Routes.Upsert(ctx, routes.Route{
			Listener: rt.Listener, Hostname: rt.Hostname, Mode: rt.Mode, Backend: rt.Backend,
			TLSCert: rt.TLSCert, TLSKey: rt.TLSKey, BackendProtocol: rt.BackendProtocol,
		}); err != nil {
			return nil, err
		}
		if err := e.Registry.PutRoute(ctx, rt); err != nil {
			return nil, err
		}
		msgs = append(msgs, fmt.Sprintf("%s → %s (%s)", rt.Hostname, rt.Backend, rt.Mode))
	}
	have, err := e.Registry.Routes(ctx, sp.Name)
	if err != nil {
		return nil, err
	}
	for _, h := range have {
		if slices.ContainsFunc(want, func(w registry.Route) bool { return w.Listener == h.Listener && w.Hostname == h.Hostname }) {
			continue
		}
		if err := e.Routes.Remove(ctx, h.Listener, h.Hostname); err != nil {
			return nil, err
		}
		if err := e.Registry.DeleteRoute(ctx, h.Listener, h.Hostname); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

func (e *Engine) switchRoutes(ctx context.Context, r *run) (string, error) {
	msgs, err := e.applyRoutes(ctx, r.sp, r.op.Revision)
	return strings.Join(msgs, "; "), err
}

// restoreRoutes points the routes back at the serving revision, or
// removes them when there is none.
func (e *Engine) restoreRoutes(ctx context.Context, r *run) error {
	if r.redeploy() {
		_, err := e.applyRoutes(ctx, r.prev, r.op.PrevRevision)
		return err
	}
	_, err := e.removeRoutes(ctx, r)
	return err
}

func (e *Engine) removeRoutes(ctx context.Context, r *run) (string, error) {
	have, err := e.Registry.Routes(ctx, r.sp.Name)
	if err != nil {
		return "", err
	}
	// Also the routes the definition implies, in case a crash came between
	// registering and recording one.
	if ports, err := e.portsOf(ctx, r.sp.Name, r.op.Revision); err == nil {
		if want, err := e.DesiredRoutes(r.sp, ports, nil); err == nil {
			for _, w := range want {
				if !slices.ContainsFunc(have, func(h registry.Route) bool { return h.Listener == w.Listener && h.Hostname == w.Hostname }) {
					have = append(have, w)
				}
			}
		}
	}
	var names []string
	for _, h := range have {
		if err := e.Routes.Remove(ctx, h.Listener, h.Hostname); err != nil {
			return "", err
		}
		if err := e.Registry.DeleteRoute(ctx, h.Listener, h.Hostname); err != nil {
			return "", err
		}
		names = append(names, h.Hostname)
	}
	return "removed " + strings.Join(names, ", "), nil
}

// --- DNS ---

func (e *Engine) applyNames(ctx context.Context, sp *spec.Service) ([]string, error) {
	want := e.DNSNames(sp)
	for _, n := range want {
		if err := e.DNS.Ensure(ctx, n, e.Config.Address); err != nil {
			return nil, err
		}
		if err := e.Registry.PutRecord(ctx, registry.Record{Name: n, Value: e.Config.Address, Service: sp.Name}); err != nil {
			return nil, err
		}
	}
	have, err := e.Registry.Records(ctx, sp.Name)
	if err != nil {
		return nil, err
	}
	for _, h := range have {
		if h.Value == e.Config.Address && slices.Contains(want, h.Name) {
			continue
		}
		if err := e.DNS.Remove(ctx, h.Name, h.Value); err != nil {
			return nil, err
		}
		if err := e.Registry.DeleteRecord(ctx, h.Name, h.Value); err != nil {
			return nil, err
		}
	}
	return want, nil
}

func (e *Engine) registerNames(ctx context.Context, r *run) (string, error) {
	if e.DNS == nil {
		return "skipped: no MCNS configured", nil
	}
	names, err := e.applyNames(ctx, r.sp)
	return strings.Join(names, ", ") + " → " + e.Config.Address, err
}

func (e *Engine) restoreNames(ctx context.Context, r *run) error {
	if e.DNS == nil {
		return nil
	}
	if r.redeploy() {
		_, err := e.applyNames(ctx, r.prev)
		return err
	}
	_, err := e.removeNames(ctx, r)
	return err
}

func (e *Engine) removeNames(ctx context.Context, r *run) (string, error) {
	if e.DNS == nil {
		return "", nil
	}
	have, err := e.Registry.Records(ctx, r.sp.Name)
	if err != nil {
		return "", err
	}
	for _, n := range e.DNSNames(r.sp) {
		if !slices.ContainsFunc(have, func(h registry.Record) bool { return h.Name == n && h.Value == e.Config.Address }) {
			have = append(have, registry.Record{Name: n, Value: e.Config.Address, Service: r.sp.Name})
		}
	}
	var names []string
	for _, h := range have {
		if err := e.DNS.Remove(ctx, h.Name, h.Value); err != nil {
			return "", err
		}
		if err := e.Registry.DeleteRecord(ctx, h.Name, h.Value); err != nil {
			return "", err
		}
		names = append(names, h.Name)
	}
	return "removed " + strings.Join(names, ", "), nil
}

// --- drain and record ---

// drainOld lets requests in flight on the old revision finish, then
// removes its containers and frees its ports. Past the switch there is
// no going back: failures here are logged and left to the monitor's
// orphan reaper.
func (e *Engine) drainOld(ctx context.Context, r *run) (string, error) {
	if !r.redeploy() {
		return "nothing to drain", nil
	}
	if e.Config.Drain > 0 {
		select {
		case <-time.After(e.Config.Drain):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	svc := r.sp.Name
	all, err := e.Runtime.List(ctx, map[string]string{runtime.LabelAgent: e.Config.Node, runtime.LabelService: svc})
	if err != nil {
		e.log.Warn("drain: list containers", "service", svc, "error", err)
	}
	cur := strconv.FormatInt(r.op.Revision, 10)
	var removed []string
	for _, st := range all {
		if st.Labels[runtime.LabelRevision] == cur {
			continue
		}
		if err := e.stopRemove(ctx, st.Name); err != nil {
			e.log.Warn("drain: remove old container", "container", st.Name, "error", err)
			continue
		}
		removed = append(removed, st.Name)
	}
	ins, _ := e.Registry.Instances(ctx, svc, 0)
	for _, in := range ins {
		if in.Revision != r.op.Revision {
			_ = e.Registry.DeleteInstance(ctx, in.Name)
		}
	}
	ports, _ := e.Registry.Ports(ctx, svc, 0)
	for _, p := range ports {
		if p.Revision != r.op.Revision {
			_ = e.Registry.ReleasePorts(ctx, svc, p.Revision)
		}
	}
	return fmt.Sprintf("drained %s, removed %s", e.Config.Drain, strings.Join(removed, ", ")), nil
}

func (e *Engine) recordServing(ctx context.Context, r *run) (string, error) {
	return fmt.Sprintf("revision %d serving", r.op.Revision), e.Registry.SetServing(ctx, r.sp.Name, r.op.Revision, registry.DesiredRunning)
}

func (e *Engine) forgetService(ctx context.Context, r *run) (string, error) {
	return "forgotten", e.Registry.DeleteService(ctx, r.sp.Name)
}

func (e *Engine) setDesired(state string) func(ctx context.Context, r *run) (string, error) {
	return func(ctx context.Context, r *run) (string, error) {
		return state, e.Registry.SetDesired(ctx, r.sp.Name, state)
	}
}

func (e *Engine) undoDesired(state string) func(ctx context.Context, r *run) error {
	return func(ctx context.Context, r *run) error {
		return e.Registry.SetDesired(ctx, r.sp.Name, state)
	}
}
