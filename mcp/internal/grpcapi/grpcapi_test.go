package grpcapi_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/archive"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/auth/authtest"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcp/client"
	mcpv1 "git.metacircular.net/metacircular/mcp/gen/mcp/v1"
	"git.metacircular.net/metacircular/mcp/internal/agent"
	"git.metacircular.net/metacircular/mcp/internal/deploy"
	"git.metacircular.net/metacircular/mcp/internal/deploy/deploytest"
	"git.metacircular.net/metacircular/mcp/internal/grpcapi"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/runtime/fake"
	"git.metacircular.net/metacircular/mcp/internal/spec"
	"git.metacircular.net/metacircular/mcp/internal/specpb"
)

// api is an agent with in-memory seams behind the real gRPC server
// (TLS on loopback, tokens checked by an MCIAS stand-in).
type api struct {
	mcias    *authtest.Server
	addr     string
	dataRoot string
	rt       *fake.Runtime
}

func start(t *testing.T) *api {
	t.Helper()
	a := &api{mcias: authtest.New(t), rt: fake.New(), dataRoot: t.TempDir()}
	for _, u := range []authtest.User{
		{Username: "root", Password: "pw", Roles: []string{auth.RoleAdmin}},
		{Username: "alice", Password: "pw", Roles: []string{auth.RoleUser}},
		{Username: "gina", Password: "pw", Roles: []string{auth.RoleGuest}},
		{Username: "mcp-master", AccountType: auth.AccountSystem},
		{Username: "mcq", AccountType: auth.AccountSystem},
	} {
		a.mcias.AddUser(u)
	}
	reg, err := registry.Open(context.Background(), filepath.Join(t.TempDir(), "agent.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	eng := deploy.New(ctx, deploy.Deps{
		Config: deploy.Config{Node: "n1", Domain: "mcp.test", Address: "127.0.0.1", PublishIP: "127.0.0.1", PortLow: 40000, PortHigh: 45000,
			DefaultListener: "https", HealthTimeout: 2 * time.Second, HealthInterval: 20 * time.Millisecond, DataRoot: a.dataRoot},
		Registry: reg, Runtime: a.rt, Certs: deploytest.NewCerts(), Routes: deploytest.NewRoutes(), DNS: deploytest.NewDNS("svc.mcp.test"),
	})
	ag := agent.New(agent.Agent{Config: agent.Config{Node: "n1", Domain: "mcp.test", Address: "127.0.0.1", DataRoot: a.dataRoot, Version: "test"},
		Registry: reg, Runtime: a.rt, Engine: eng})
	validator, err := auth.New(a.mcias.Config("mcp-agent"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pair := a.mcias.PKI.Issue(t, "agent", "127.0.0.1")
	srv, err := grpcserver.New(grpcserver.Options{Addr: "127.0.0.1:0", TLSCert: pair.CertFile, TLSKey: pair.KeyFile,
		Service: "mcp-agent", Validator: validator, Maps: grpcapi.MethodMaps()})
	if err != nil {
		t.Fatal(err)
	}
	if err := grpcapi.Register(srv, ag, grpcapi.Policy{SystemAccounts: []string{"mcp-master"}, Allowed: grpcapi.Allowed}); err != nil {
		t.Fatal(err)
	}
	if u := srv.Unregistered(); len(u) != 0 {
		t.Fatalf("RPCs in no method map: %v", u)
	}
	ln, err := srv.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		eng.Wait()
		_ = reg.Close()
	})
	return a
}

func (a *api) client(t *testing.T, user string) *client.Client {
	t.Helper()
	tok := ""
	if user != "" {
		tok = a.mcias.Token(user)
	}
	c, err := client.New(a.addr, a.mcias.CAFile, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func hello() *mcpv1.ServiceSpec {
	return specpb.ToPB(&spec.Service{Name: "hello", Active: true, Components: []spec.Component{{
		Name: "web", Image: "mcr.test/hello:v1.0.0",
		Routes: []spec.Route{{Port: 443, Mode: spec.ModeL7}},
		Health: spec.Health{Type: spec.HealthHTTP, Path: "/"},
	}}})
}

func TestCallers(t *testing.T) {
	a := start(t)
	ctx := context.Background()
	// An operator (role user) deploys and lists.
	final, err := a.client(t, "alice").Deploy(ctx, hello(), nil)
	if err != nil || final.GetResult() != registry.OpSucceeded {
		t.Fatalf("deploy as a user: %v %+v", err, final)
	}
	for _, c := range []struct {
		user string
		call func(*client.Client) error
		want apierr.Kind
		ok   bool
	}{
		{"alice", func(c *client.Client) error { _, err := c.ListServices(ctx); return err }, 0, true},
		{"mcp-master", func(c *client.Client) error { _, err := c.ListServices(ctx); return err }, 0, true},
		{"root", func(c *client.Client) error { _, err := c.Export(ctx, "hello", &bytes.Buffer{}); return err }, apierr.NotFound, false},
		{"alice", func(c *client.Client) error { _, err := c.Export(ctx, "hello", &bytes.Buffer{}); return err }, apierr.Denied, false},
		{"gina", func(c *client.Client) error { _, err := c.ListServices(ctx); return err }, apierr.Denied, false},
		{"mcq", func(c *client.Client) error { _, err := c.ListServices(ctx); return err }, apierr.Denied, false},
		{"", func(c *client.Client) error { _, err := c.ListServices(ctx); return err }, apierr.Unauthenticated, false},
		{"alice", func(c *client.Client) error { _, err := c.Recover(ctx, nil, nil); return err }, apierr.Denied, false},
	} {
		err := c.call(a.client(t, c.user))
		if c.ok && err != nil || !c.ok && apierr.KindOf(err) != c.want {
			t.Errorf("%s: %v (want kind %v, ok %v)", c.user, err, c.want, c.ok)
		}
	}
}

func TestGuardRefusesAnUnlistedRPC(t *testing.T) {
	desc := mcpv1.AgentService_ServiceDesc
	desc.Methods = append(append([]grpc.MethodDesc(nil), desc.Methods...), grpc.MethodDesc{MethodName: "Forgotten"})
	p := grpcapi.Policy{Allowed: grpcapi.Allowed}
	if _, err := p.Guard(&desc); err == nil || !strings.Contains(err.Error(), "Forgotten has no allowed callers") {
		t.Fatalf("%v", err)
	}
}

func TestBadInputAndOperations(t *testing.T) {
	a := start(t)
	ctx := context.Background()
	c := a.client(t, "root")
	bad := hello()
	bad.Components[0].Image = "mcr.test/hello:latest"
	if _, err := c.Deploy(ctx, bad, nil); apierr.KindOf(err) != apierr.Invalid || !strings.Contains(err.Error(), ":latest is refused") {
		t.Fatalf("deploy with :latest: %v", err)
	}
	pinned := hello()
	pinned.Node = "elsewhere"
	if _, err := c.Deploy(ctx, pinned, nil); apierr.KindOf(err) != apierr.Invalid || !strings.Contains(err.Error(), "pinned to node elsewhere") {
		t.Fatalf("deploy pinned elsewhere: %v", err)
	}
	if _, err := c.Stop(ctx, "nothing", nil); apierr.KindOf(err) != apierr.NotFound {
		t.Fatalf("stop of an unknown service: %v", err)
	}
	var steps []string
	if _, err := c.Deploy(ctx, hello(), func(ev *mcpv1.OperationEvent) {
		if ev.GetState() == deploy.StepDone {
			steps = append(steps, ev.GetStep())
		}
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(steps, " ") != "ports certs pull start health routes dns drain record" {
		t.Fatalf("steps %v", steps)
	}
	a.rt.Unhealthy["mcr.test/hello:v2.0.0"] = true
	v2 := hello()
	v2.Components[0].Image = "mcr.test/hello:v2.0.0"
	final, err := c.Deploy(ctx, v2, nil)
	var oe *client.OperationError
	if !errors.As(err, &oe) || final.GetResult() != registry.OpRolledBack || !strings.Contains(err.Error(), "health") {
		t.Fatalf("unhealthy deploy: %v %+v", err, final)
	}
	resp, err := c.GetService(ctx, "hello")
	if err != nil || resp.GetService().GetRevision() != 1 || len(resp.GetEvents()) == 0 {
		t.Fatalf("status: %v %+v", err, resp)
	}
	st, err := c.NodeStatus(ctx)
	if err != nil || st.GetNode() != "n1" || st.GetServices() != 1 || st.GetRunning() != 1 {
		t.Fatalf("node status: %v %+v", err, st)
	}
	var logs bytes.Buffer
	if err := c.Logs(ctx, &mcpv1.LogsRequest{Service: "hello"}, &logs); err != nil || !strings.Contains(logs.String(), "hello-web-1 started") {
		t.Fatalf("logs: %v %q", err, logs.String())
	}
}

func TestFilesAndArchives(t *testing.T) {
	a := start(t)
	ctx := context.Background()
	c := a.client(t, "root")
	if _, err := c.Deploy(ctx, hello(), nil); err != nil {
		t.Fatal(err)
	}
	resp, err := c.PushFile(ctx, "hello", "conf/hello.toml", 0o640, strings.NewReader("x = 1\n"))
	if err != nil || resp.GetSize() != 6 {
		t.Fatalf("push: %v %+v", err, resp)
	}
	st, err := os.Stat(filepath.Join(a.dataRoot, "hello", "conf", "hello.toml"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("pushed file: %v %v", st, err)
	}
	for _, bad := range []string{"../escape", "/etc/passwd", "a/../../b", ""} {
		if _, err := c.PushFile(ctx, "hello", bad, 0, strings.NewReader("x")); apierr.KindOf(err) != apierr.Invalid {
			t.Errorf("push to %q: %v", bad, err)
		}
	}
	// A symbolic link out of the data directory is not followed.
	if err := os.Symlink("/etc", filepath.Join(a.dataRoot, "hello", "etc")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PullFile(ctx, "hello", "etc/hostname", &bytes.Buffer{}); err == nil {
		t.Fatal("pulled a file through a link out of the data directory")
	}
	if err := os.Remove(filepath.Join(a.dataRoot, "hello", "etc")); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := c.PullFile(ctx, "hello", "conf/hello.toml", &got); err != nil || got.String() != "x = 1\n" {
		t.Fatalf("pull: %v %q", err, got.String())
	}
	var arch bytes.Buffer
	if _, err := c.Export(ctx, "hello", &arch); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x")
	if err := archive.Extract(ctx, bytes.NewReader(arch.Bytes()), out, archive.Limits{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "conf", "hello.toml")); err != nil || string(b) != "x = 1\n" {
		t.Fatalf("exported: %v %q", err, b)
	}
	if _, err := c.Import(ctx, "hello", false, bytes.NewReader(arch.Bytes())); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("import over data: %v", err)
	}
	if _, err := c.Import(ctx, "hello", true, bytes.NewReader(arch.Bytes())); apierr.KindOf(err) != apierr.Precondition {
		t.Fatalf("replace under a running container: %v", err)
	}
	if _, err := c.Stop(ctx, "hello", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Import(ctx, "hello", true, bytes.NewReader(arch.Bytes())); err != nil {
		t.Fatalf("replace with the service stopped: %v", err)
	}
	if _, err := c.Import(ctx, "other", false, strings.NewReader("not an archive")); err == nil {
		t.Fatal("imported garbage")
	}
	if _, err := os.Stat(filepath.Join(a.dataRoot, "other")); !os.IsNotExist(err) {
		t.Fatalf("a failed import left %v", err)
	}
}
