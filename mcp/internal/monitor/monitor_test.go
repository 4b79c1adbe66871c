package monitor_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/alert"
	"git.metacircular.net/metacircular/mcp/internal/deploy"
	"git.metacircular.net/metacircular/mcp/internal/deploy/deploytest"
	"git.metacircular.net/metacircular/mcp/internal/monitor"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/restart"
	"git.metacircular.net/metacircular/mcp/internal/routes"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/runtime/fake"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

type node struct {
	reg    *registry.Store
	rt     *fake.Runtime
	routes *deploytest.Routes
	dns    *deploytest.DNS
	certs  *deploytest.Certs
	eng    *deploy.Engine
	mon    *monitor.Monitor
	logs   *bytes.Buffer
	now    time.Time
}

func newNode(t *testing.T) *node {
	t.Helper()
	n := &node{rt: fake.New(), routes: deploytest.NewRoutes(), dns: deploytest.NewDNS("svc.mcp.test"), certs: deploytest.NewCerts(),
		logs: &bytes.Buffer{}, now: time.Unix(1_000_000, 0)}
	reg, err := registry.Open(context.Background(), filepath.Join(t.TempDir(), "agent.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	n.reg = reg
	ctx, cancel := context.WithCancel(context.Background())
	n.eng = deploy.New(ctx, deploy.Deps{
		Config: deploy.Config{Node: "n1", Domain: "mcp.test", Address: "127.0.0.1", PublishIP: "127.0.0.1", PortLow: 30000, PortHigh: 40000,
			DefaultListener: "https", HealthTimeout: 2 * time.Second, HealthInterval: 20 * time.Millisecond},
		Registry: reg, Runtime: n.rt, Certs: n.certs, Routes: n.routes, DNS: n.dns,
	})
	logger := slog.New(slog.NewTextHandler(n.logs, nil))
	n.mon = &monitor.Monitor{
		Node: "n1", Address: "127.0.0.1", Engine: n.eng, Registry: reg, Runtime: n.rt, Routes: n.routes, DNS: n.dns, Certs: n.certs,
		Alerts: &alert.Sink{Node: "n1", Registry: reg, Logger: logger}, Restarts: restart.NewTracker(2, time.Hour), Logger: logger,
		Interval: time.Second, OrphanGrace: time.Minute, Now: func() time.Time { return n.now },
	}
	t.Cleanup(func() {
		cancel()
		n.eng.Wait()
		_ = reg.Close()
	})
	sp := &spec.Service{Name: "hello", Active: true, Components: []spec.Component{{
		Name: "web", Image: "mcr.test/hello:v1.0.0", Restart: spec.RestartUnlessStopped,
		Routes: []spec.Route{{Port: 443, Mode: spec.ModeL7, BackendProtocol: spec.BackendHTTP1}},
		Health: spec.Health{Type: spec.HealthTCP},
	}}}
	_, ch, err := n.eng.Begin(deploy.KindDeploy, "hello", sp)
	if err != nil {
		t.Fatal(err)
	}
	for ev := range ch {
		if ev.Final && ev.Result != registry.OpSucceeded {
			t.Fatalf("deploy: %+v", ev)
		}
	}
	// The final event comes just before the operation lets go of the
	// service; a monitor pass before that skips the service, as it skips
	// any service an operation holds.
	n.eng.Wait()
	return n
}

func (n *node) alerts(t *testing.T, kind string) []string {
	t.Helper()
	as, err := n.reg.Alerts(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		if a.Kind == kind {
			out = append(out, a.Message)
		}
	}
	return out
}

func TestRestartDeadContainerThenStopFlapping(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for i := range 2 {
		n.rt.Die("hello-web-1", 1)
		n.now = n.now.Add(time.Minute)
		n.mon.Pass(ctx)
		st, _ := n.rt.Inspect(ctx, "hello-web-1")
		if !st.Running() {
			t.Fatalf("crash %d: container not restarted: %+v\n%s", i+1, st, n.logs.String())
		}
	}
	if got := n.alerts(t, alert.Restart); len(got) != 2 || !strings.Contains(got[0], "exited with code 1") {
		t.Fatalf("restart alerts %v", got)
	}
	// The third crash within the window is a restart storm.
	n.rt.Die("hello-web-1", 1)
	n.now = n.now.Add(time.Minute)
	n.mon.Pass(ctx)
	n.mon.Pass(ctx)
	st, _ := n.rt.Inspect(ctx, "hello-web-1")
	if st.Running() {
		t.Fatal("a flapping container was restarted")
	}
	if got := n.alerts(t, alert.Flapping); len(got) != 1 {
		t.Fatalf("flapping alerts %v", got)
	}
	if d := n.mon.Drift("hello"); len(d) != 1 || !strings.Contains(d[0], "container-dead") {
		t.Fatalf("drift %v", d)
	}
	sp := &spec.Service{Name: "hello", Components: []spec.Component{{Name: "web"}}}
	if f := n.mon.Flapping(sp); len(f) != 1 || f[0] != "web" {
		t.Fatalf("flapping %v", f)
	}
	// An operator's restart clears it.
	n.mon.Forget("hello")
	n.mon.Pass(ctx)
	if st, _ := n.rt.Inspect(ctx, "hello-web-1"); !st.Running() {
		t.Fatal("not restarted after the operator acted")
	}
}

func TestRepairRoutesAndNames(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	if err := n.routes.Remove(ctx, "https", "hello.svc.mcp.test"); err != nil {
		t.Fatal(err)
	}
	if err := n.dns.Remove(ctx, "hello.svc.mcp.test", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	n.mon.Pass(ctx)
	if _, ok := n.routes.Get("https", "hello.svc.mcp.test"); !ok {
		t.Fatal("route not registered again")
	}
	if ok, _ := n.dns.Has(ctx, "hello.svc.mcp.test", "127.0.0.1"); !ok {
		t.Fatal("name not registered again")
	}
	if got := n.alerts(t, alert.Repaired); len(got) != 2 {
		t.Fatalf("repaired alerts %v", got)
	}
	if d := n.mon.Drift("hello"); len(d) != 0 {
		t.Fatalf("drift after repair %v", d)
	}
}

func TestLostContainerIsDriftNotRecreated(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	n.rt.LoseState()
	n.mon.Pass(ctx)
	n.mon.Pass(ctx)
	if len(n.rt.Names()) != 0 {
		t.Fatal("the monitor recreated a lost container (that is recover's job)")
	}
	d := n.mon.Drift("hello")
	if len(d) != 1 || !strings.Contains(d[0], "container hello-web-1 is gone (run mcp-agent recover)") {
		t.Fatalf("drift %v", d)
	}
	if got := n.alerts(t, alert.Drift); len(got) != 1 {
		t.Fatalf("a drift alerts once, got %v", got)
	}
}

func TestOrphanRemovedAfterGrace(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	labels := n.eng.Labels(&spec.Service{Name: "hello"}, "web", 7)
	if _, err := n.rt.Pull(ctx, "mcr.test/hello:v0.9.0", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := n.rt.Create(ctx, runtime.ContainerSpec{Name: "hello-web-7", Image: "mcr.test/hello:v0.9.0", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	unknown := n.eng.Labels(&spec.Service{Name: "ghost"}, "web", 1)
	if _, err := n.rt.Create(ctx, runtime.ContainerSpec{Name: "ghost-web-1", Image: "mcr.test/hello:v0.9.0", Labels: unknown}); err != nil {
		t.Fatal(err)
	}
	n.mon.Pass(ctx)
	if len(n.rt.Names()) != 3 {
		t.Fatalf("orphans removed before the grace period: %v", n.rt.Names())
	}
	n.now = n.now.Add(2 * time.Minute)
	n.mon.Pass(ctx)
	if names := n.rt.Names(); len(names) != 1 || names[0] != "hello-web-1" {
		t.Fatalf("containers after the grace period: %v", names)
	}
}

func TestDiff(t *testing.T) {
	sp := &spec.Service{Name: "s", Components: []spec.Component{{Name: "web"}}}
	base := monitor.Desired{
		Service:   registry.Service{Name: "s", Desired: registry.DesiredRunning, Revision: 3},
		Spec:      sp,
		Instances: []registry.Instance{{Name: "s-web-3", ImageID: "img-a"}},
		Routes:    []registry.Route{{Listener: "https", Hostname: "s.svc.d", Backend: "127.0.0.1:1"}},
		Names:     []string{"s.svc.d"},
	}
	running := runtime.Status{Name: "s-web-3", State: runtime.StateRunning, ImageID: "img-a"}
	cases := []struct {
		name string
		d    func(monitor.Desired) monitor.Desired
		o    monitor.Observed
		want []string
	}{
		{"in sync", nil, monitor.Observed{Containers: map[string]runtime.Status{"s-web-3": running},
			Routes: map[string]routes.Route{"https/s.svc.d": {Backend: "127.0.0.1:1"}}, Names: map[string]bool{"s.svc.d": true}}, nil},
		{"unknown observations", nil, monitor.Observed{Containers: map[string]runtime.Status{"s-web-3": running}}, nil},
		{"gone", nil, monitor.Observed{Containers: map[string]runtime.Status{}}, []string{monitor.ContainerMissing}},
		{"dead and image changed", nil, monitor.Observed{Containers: map[string]runtime.Status{"s-web-3": {Name: "s-web-3", State: "exited", ImageID: "img-b"}}},
			[]string{monitor.ContainerDead, monitor.ImageChanged}},
		{"route elsewhere, name missing", nil, monitor.Observed{Containers: map[string]runtime.Status{"s-web-3": running},
			Routes: map[string]routes.Route{"https/s.svc.d": {Backend: "127.0.0.1:2"}}, Names: map[string]bool{}},
			[]string{monitor.RouteMissing, monitor.DNSMissing}},
		{"stopped but running", func(d monitor.Desired) monitor.Desired { d.Service.Desired = registry.DesiredStopped; return d },
			monitor.Observed{Containers: map[string]runtime.Status{"s-web-3": running}, Names: map[string]bool{}}, []string{monitor.ContainerRunning}},
		{"orphan", nil, monitor.Observed{Containers: map[string]runtime.Status{"s-web-3": running,
			"s-web-2": {Name: "s-web-2", Labels: map[string]string{runtime.LabelService: "s", runtime.LabelAgent: "n1", runtime.LabelRevision: "2"}}}},
			[]string{monitor.Orphan}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := base
			if c.d != nil {
				d = c.d(base)
			}
			var got []string
			for _, f := range monitor.Diff(d, c.o, "n1") {
				got = append(got, f.Kind)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("findings %v, want %v", got, c.want)
			}
		})
	}
}
