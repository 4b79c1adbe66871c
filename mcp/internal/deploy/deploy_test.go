package deploy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/deploy"
	"git.metacircular.net/metacircular/mcp/internal/deploy/deploytest"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/runtime/fake"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

const domain = "mcp.test"

// world is one node: a registry, a fake runtime whose containers really
// serve HTTP, and in-memory mc-proxy, MCNS and Metacrypt.
type world struct {
	t      *testing.T
	dbPath string
	reg    *registry.Store
	rt     *fake.Runtime
	routes *deploytest.Routes
	dns    *deploytest.DNS
	certs  *deploytest.Certs
	eng    *deploy.Engine
	cancel context.CancelFunc
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, dbPath: filepath.Join(t.TempDir(), "agent.db"), rt: fake.New(), routes: deploytest.NewRoutes(),
		dns: deploytest.NewDNS("svc." + domain), certs: deploytest.NewCerts()}
	w.open(nil)
	t.Cleanup(func() { w.close() })
	return w
}

// open starts an engine on the world's registry (again, after a crash).
func (w *world) open(hook func(registry.Operation, string)) {
	w.t.Helper()
	reg, err := registry.Open(context.Background(), w.dbPath, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.reg = reg
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.eng = deploy.New(ctx, deploy.Deps{
		Config: deploy.Config{
			Node: "n1", Domain: domain, Address: "127.0.0.1", PublishIP: "127.0.0.1", PortLow: 20000, PortHigh: 60000,
			DefaultListener: "https", HealthTimeout: time.Second, HealthInterval: 20 * time.Millisecond,
			Drain: 10 * time.Millisecond, StopTimeout: time.Second,
		},
		Registry: reg, Runtime: w.rt, Certs: w.certs, Routes: w.routes, DNS: w.dns, BeforeStep: hook,
	})
}

func (w *world) close() {
	w.cancel()
	w.eng.Wait()
	_ = w.reg.Close()
}

func hello(version string) *spec.Service {
	return &spec.Service{Name: "hello", Active: true, Components: []spec.Component{{
		Name: "web", Image: "mcr.test/hello:" + version, Restart: spec.RestartUnlessStopped,
		Routes: []spec.Route{{Port: 443, Mode: spec.ModeL7, BackendProtocol: spec.BackendHTTP1}},
		Health: spec.Health{Type: spec.HealthHTTP, Path: "/"},
	}}}
}

// run runs an operation to its end and returns its final event.
func (w *world) run(kind, service string, sp *spec.Service) deploy.Event {
	w.t.Helper()
	_, ch, err := w.eng.Begin(kind, service, sp)
	if err != nil {
		w.t.Fatalf("%s: %v", kind, err)
	}
	var last deploy.Event
	for ev := range ch {
		last = ev
	}
	if !last.Final {
		w.t.Fatalf("%s: no final event", kind)
	}
	return last
}

// serving checks the single route of hello goes to a container that
// answers with version, and that DNS and the certificate are in place.
func (w *world) serving(version string) {
	w.t.Helper()
	rt, ok := w.routes.Get("https", "hello.svc."+domain)
	if !ok {
		w.t.Fatal("no route")
	}
	if rt.TLSCert != "/certs/hello.svc."+domain+".pem" || rt.Mode != "l7" || rt.BackendProtocol != "http1" {
		w.t.Fatalf("route %+v", rt)
	}
	resp, err := http.Get("http://" + rt.Backend + "/")
	if err != nil {
		w.t.Fatalf("backend %s: %v", rt.Backend, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), "hello:"+version) {
		w.t.Fatalf("backend serves %q, want %s", body, version)
	}
	if got := w.dns.Records(); !slices.Equal(got, []string{"hello.svc." + domain + " 127.0.0.1"}) {
		w.t.Fatalf("dns %v", got)
	}
	if got := w.certs.Hosts(); !slices.Equal(got, []string{"hello.svc." + domain}) {
		w.t.Fatalf("certs %v", got)
	}
	if n := w.rt.Names(); len(n) != 1 {
		w.t.Fatalf("containers %v", n)
	}
}

// empty checks nothing of hello is left anywhere.
func (w *world) empty() {
	w.t.Helper()
	if n := w.rt.Names(); len(n) != 0 {
		w.t.Fatalf("containers left: %v", n)
	}
	if w.routes.Len() != 0 || len(w.dns.Records()) != 0 {
		w.t.Fatalf("routes %d, records %v left", w.routes.Len(), w.dns.Records())
	}
	if _, err := w.reg.Service(context.Background(), "hello"); err == nil {
		w.t.Fatal("service still registered")
	}
	ports, _ := w.reg.Ports(context.Background(), "hello", 0)
	if len(ports) != 0 {
		w.t.Fatalf("ports left: %v", ports)
	}
}

func TestDeployRedeployStopStartUndeploy(t *testing.T) {
	w := newWorld(t)
	if ev := w.run(deploy.KindDeploy, "hello", hello("v1.0.0")); ev.Result != registry.OpSucceeded {
		t.Fatalf("deploy: %+v", ev)
	}
	w.serving("v1.0.0")
	first, _ := w.routes.Get("https", "hello.svc."+domain)

	if ev := w.run(deploy.KindDeploy, "hello", hello("v1.1.0")); ev.Result != registry.OpSucceeded {
		t.Fatalf("redeploy: %+v", ev)
	}
	w.serving("v1.1.0")
	second, _ := w.routes.Get("https", "hello.svc."+domain)
	if first.Backend == second.Backend {
		t.Fatal("the new revision reuses the old port: no side-by-side switch")
	}
	ports, _ := w.reg.Ports(context.Background(), "hello", 0)
	if len(ports) != 1 || ports[0].Revision != 2 {
		t.Fatalf("old ports not released: %+v", ports)
	}

	if ev := w.run(deploy.KindStop, "hello", nil); ev.Result != registry.OpSucceeded {
		t.Fatalf("stop: %+v", ev)
	}
	if w.routes.Len() != 0 || len(w.dns.Records()) != 0 {
		t.Fatal("stop left routes or names")
	}
	st, err := w.rt.Inspect(context.Background(), "hello-web-2")
	if err != nil || st.Running() {
		t.Fatalf("stopped container: %+v %v", st, err)
	}
	if ev := w.run(deploy.KindStart, "hello", nil); ev.Result != registry.OpSucceeded {
		t.Fatalf("start: %+v", ev)
	}
	w.serving("v1.1.0")
	if ev := w.run(deploy.KindRestart, "hello", nil); ev.Result != registry.OpSucceeded {
		t.Fatalf("restart: %+v", ev)
	}
	w.serving("v1.1.0")

	if ev := w.run(deploy.KindUndeploy, "hello", nil); ev.Result != registry.OpSucceeded {
		t.Fatalf("undeploy: %+v", ev)
	}
	w.empty()
	if len(w.certs.Hosts()) != 0 {
		t.Fatal("undeploy left the certificate")
	}
}

func TestFailedHealthKeepsOldVersion(t *testing.T) {
	w := newWorld(t)
	w.run(deploy.KindDeploy, "hello", hello("v1.0.0"))
	w.rt.Unhealthy["mcr.test/hello:v2.0.0"] = true
	ev := w.run(deploy.KindDeploy, "hello", hello("v2.0.0"))
	if ev.Result != registry.OpRolledBack || !strings.Contains(ev.Error, "deploy hello: health: component web") ||
		!strings.Contains(ev.Error, "503") {
		t.Fatalf("unhealthy deploy: %+v", ev)
	}
	w.serving("v1.0.0")
	svc, _ := w.reg.Service(context.Background(), "hello")
	if svc.Revision != 1 {
		t.Fatalf("serving revision %d", svc.Revision)
	}
}

func TestCertificateFailureFailsDeploy(t *testing.T) {
	w := newWorld(t)
	w.certs.Fail["hello.svc."+domain] = true
	ev := w.run(deploy.KindDeploy, "hello", hello("v1.0.0"))
	if ev.Result != registry.OpRolledBack || !strings.Contains(ev.Error, "certs: issue certificate for hello.svc.mcp.test") {
		t.Fatalf("%+v", ev)
	}
	w.empty()
}

func TestPullFailureNamesStep(t *testing.T) {
	w := newWorld(t)
	w.rt.PullErr = fmt.Errorf("unauthorized: authentication required")
	ev := w.run(deploy.KindDeploy, "hello", hello("v1.0.0"))
	if ev.Result != registry.OpRolledBack || !strings.Contains(ev.Error, "deploy hello: pull: pull mcr.test/hello:v1.0.0: unauthorized") {
		t.Fatalf("%+v", ev)
	}
	w.empty()
}

func TestBusy(t *testing.T) {
	w := newWorld(t)
	block := make(chan struct{})
	w.close()
	w.open(func(_ registry.Operation, step string) {
		if step == "health" {
			<-block
		}
	})
	_, ch, err := w.eng.Begin(deploy.KindDeploy, "hello", hello("v1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.eng.Begin(deploy.KindStop, "hello", nil); err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("second operation: %v", err)
	}
	close(block)
	for range ch {
	}
}

func TestRecoverAfterLostRuntime(t *testing.T) {
	w := newWorld(t)
	w.run(deploy.KindDeploy, "hello", hello("v1.0.0"))
	w.rt.LoseState()
	if _, err := w.rt.ImageID(context.Background(), "mcr.test/hello:v1.0.0"); err == nil {
		t.Fatal("image survived")
	}
	if ev := w.run(deploy.KindRecover, "hello", nil); ev.Result != registry.OpSucceeded {
		t.Fatalf("recover: %+v", ev)
	}
	w.serving("v1.0.0")
}

// crash stops the operation's goroutine dead at a step, as kill -9 would:
// nothing after it runs, and the registry holds what was written so far.
func crashAt(target string) func(registry.Operation, string) {
	done := false
	return func(_ registry.Operation, step string) {
		if step == target && !done {
			done = true
			goruntime.Goexit()
		}
	}
}

// runCrashing begins an operation that the hook kills; it returns once
// the operation's goroutine is gone.
func (w *world) runCrashing(kind string, sp *spec.Service) {
	w.t.Helper()
	if _, _, err := w.eng.Begin(kind, "hello", sp); err != nil {
		w.t.Fatal(err)
	}
	w.eng.Wait()
}

// restart reopens the registry with a new engine and resumes.
func (w *world) restart() {
	w.t.Helper()
	w.close()
	w.open(nil)
	if err := w.eng.Resume(context.Background()); err != nil {
		w.t.Fatal(err)
	}
}

func TestCrashAtEveryDeployStep(t *testing.T) {
	steps := newWorld(t).eng.Steps(deploy.KindDeploy)
	for _, s := range steps {
		t.Run("first deploy/"+s, func(t *testing.T) {
			w := newWorld(t)
			w.close()
			w.open(crashAt(s))
			w.runCrashing(deploy.KindDeploy, hello("v1.0.0"))
			w.restart()
			w.serving("v1.0.0")
			op, _ := w.reg.LastOperation(context.Background(), "hello")
			if op.State != registry.OpSucceeded {
				t.Fatalf("operation %+v", op)
			}
		})
		t.Run("redeploy/"+s, func(t *testing.T) {
			w := newWorld(t)
			w.run(deploy.KindDeploy, "hello", hello("v1.0.0"))
			w.close()
			w.open(crashAt(s))
			w.runCrashing(deploy.KindDeploy, hello("v2.0.0"))
			w.restart()
			w.serving("v2.0.0")
		})
	}
	// A crash while rolling back resumes the rollback: the old version
	// serves, nothing of the new one is left.
	for _, s := range []string{"undo dns", "undo routes", "undo start", "undo certs", "undo ports"} {
		t.Run("rollback/"+s, func(t *testing.T) {
			w := newWorld(t)
			w.run(deploy.KindDeploy, "hello", hello("v1.0.0"))
			w.rt.Unhealthy["mcr.test/hello:v2.0.0"] = true
			w.close()
			w.open(crashAt(s))
			w.runCrashing(deploy.KindDeploy, hello("v2.0.0"))
			w.restart()
			w.serving("v1.0.0")
			op, _ := w.reg.LastOperation(context.Background(), "hello")
			if op.State != registry.OpRolledBack {
				t.Fatalf("operation %+v", op)
			}
		})
	}
}

func TestCrashAtEveryUndeployStep(t *testing.T) {
	for _, s := range newWorld(t).eng.Steps(deploy.KindUndeploy) {
		t.Run(s, func(t *testing.T) {
			w := newWorld(t)
			w.run(deploy.KindDeploy, "hello", hello("v1.0.0"))
			w.close()
			w.open(crashAt(s))
			w.runCrashing(deploy.KindUndeploy, nil)
			w.restart()
			w.empty()
		})
	}
}
