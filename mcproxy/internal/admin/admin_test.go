package admin_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcdsl/grpcclient"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	mcproxyv1 "git.metacircular.net/metacircular/mcproxy/gen/mcproxy/v1"
	"git.metacircular.net/metacircular/mcproxy/internal/admin"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
	"git.metacircular.net/metacircular/mcproxy/internal/store"
)

// fakeDataplane records what the admin service hands over; it stands in
// for the proxy, whose own tests cover serving the tables.
type fakeDataplane struct {
	mu     sync.Mutex
	table  *route.Table
	rules  []route.Rule
	refuse error
}

func (f *fakeDataplane) SetRoutes(t *route.Table) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table = t
}

func (f *fakeDataplane) SetRules(r []route.Rule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	f.rules = r
	return nil
}

func (f *fakeDataplane) routes() []route.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.table.Routes()
}

type instance struct {
	client mcproxyv1.AdminServiceClient
	dp     *fakeDataplane
	stop   func()
}

var tomlRoutes = []route.Route{{Listener: "https", Hostname: "seed.example", Mode: route.L4, Backend: "127.0.0.1:9001"}}

// start opens the database at dbPath and serves the admin API on a real
// Unix socket in dir, as mc-proxy's Run does.
func start(t *testing.T, dir string) *instance {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "mc-proxy.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Seed(ctx, tomlRoutes, nil); err != nil {
		t.Fatal(err)
	}
	dp := &fakeDataplane{}
	rs, err := st.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := admin.Table(rs)
	if err != nil {
		t.Fatal(err)
	}
	dp.SetRoutes(tbl)
	svc := admin.New(admin.Options{Store: st, Dataplane: dp, Listeners: []string{"https", "alt"}, TOMLRoutes: tomlRoutes})
	sock := filepath.Join(dir, "admin.sock")
	gs := newAdminServer(t, sock)
	admin.Register(gs, svc)
	if u := gs.Unregistered(); len(u) > 0 {
		t.Fatalf("AdminService methods in no method map: %v", u)
	}
	ln, err := gs.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = gs.Serve(sctx, ln); close(done) }()
	conn, err := grpcclient.DialUnix("mc-proxy", sock)
	if err != nil {
		t.Fatal(err)
	}
	inst := &instance{client: mcproxyv1.NewAdminServiceClient(conn), dp: dp}
	var once sync.Once
	inst.stop = func() {
		once.Do(func() {
			_ = conn.Close()
			cancel()
			<-done
			_ = st.Close()
		})
	}
	t.Cleanup(inst.stop)
	return inst
}

// newAdminServer is the admin socket's gRPC server, as mc-proxy builds it.
func newAdminServer(t *testing.T, sock string) *grpcserver.Server {
	t.Helper()
	gs, err := grpcserver.New(grpcserver.Options{Socket: sock, Service: "mc-proxy", Maps: admin.MethodMaps()})
	if err != nil {
		t.Fatal(err)
	}
	return gs
}

func code(err error) codes.Code { return status.Code(err) }

func TestRoutesSurviveRestartAndUpsertIsIdempotent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := start(t, dir)
	r := &mcproxyv1.Route{Listener: "https", Hostname: "App.Example.", Mode: "l4", Backend: "127.0.0.1:9002"}
	resp, err := a.client.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: r})
	if err != nil || !resp.GetCreated() || resp.GetRoute().GetHostname() != "app.example" {
		t.Fatalf("AddRoute = %v, %v", resp, err)
	}
	resp, err = a.client.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: r})
	if err != nil || resp.GetCreated() {
		t.Fatalf("repeated AddRoute = %v, %v; want created=false", resp, err)
	}
	if got := a.dp.routes(); len(got) != 2 {
		t.Fatalf("data plane has %d routes, want 2: %+v", len(got), got)
	}
	list, err := a.client.ListRoutes(ctx, &mcproxyv1.ListRoutesRequest{})
	if err != nil || len(list.GetRoutes()) != 2 {
		t.Fatalf("ListRoutes = %v, %v", list, err)
	}
	a.stop()

	b := start(t, dir)
	list, err = b.client.ListRoutes(ctx, &mcproxyv1.ListRoutesRequest{Listener: "https"})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, r := range list.GetRoutes() {
		hosts = append(hosts, r.GetHostname())
	}
	if strings.Join(hosts, ",") != "app.example,seed.example" {
		t.Fatalf("after restart routes = %v", hosts)
	}
	if got := b.dp.routes(); len(got) != 2 {
		t.Fatalf("after restart the data plane has %d routes", len(got))
	}
}

func TestInvalidRouteWritesNothing(t *testing.T) {
	ctx := context.Background()
	a := start(t, t.TempDir())
	pki := tlstest.New(t)
	pair := pki.Issue(t, "ok.example")
	for name, r := range map[string]*mcproxyv1.Route{
		"bad mode":         {Listener: "https", Hostname: "x.example", Mode: "l5", Backend: "127.0.0.1:1"},
		"no backend port":  {Listener: "https", Hostname: "x.example", Mode: "l4", Backend: "127.0.0.1"},
		"unknown listener": {Listener: "nope", Hostname: "x.example", Mode: "l4", Backend: "127.0.0.1:1"},
		"l7 without cert":  {Listener: "https", Hostname: "x.example", Mode: "l7", Backend: "127.0.0.1:1"},
		"l7 missing files": {Listener: "https", Hostname: "x.example", Mode: "l7", Backend: "127.0.0.1:1", TlsCert: "/nonexistent.pem", TlsKey: "/nonexistent.key"},
		"l7 key mismatch":  {Listener: "https", Hostname: "x.example", Mode: "l7", Backend: "127.0.0.1:1", TlsCert: pair.CertFile, TlsKey: pki.CAFile},
		"wildcard":         {Listener: "https", Hostname: "*.example", Mode: "l4", Backend: "127.0.0.1:1"},
	} {
		if _, err := a.client.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: r}); code(err) != codes.InvalidArgument {
			t.Errorf("%s: AddRoute = %v, want InvalidArgument", name, err)
		}
	}
	if _, err := a.client.AddRoute(ctx, &mcproxyv1.AddRouteRequest{}); code(err) != codes.InvalidArgument {
		t.Errorf("empty AddRoute = %v", err)
	}
	list, err := a.client.ListRoutes(ctx, &mcproxyv1.ListRoutesRequest{})
	if err != nil || len(list.GetRoutes()) != 1 {
		t.Fatalf("after invalid adds ListRoutes = %v, %v; want only the seed", list, err)
	}
	good := &mcproxyv1.Route{Listener: "https", Hostname: "ok.example", Mode: "l7", Backend: "127.0.0.1:1", TlsCert: pair.CertFile, TlsKey: pair.KeyFile}
	if _, err := a.client.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: good}); err != nil {
		t.Fatalf("valid l7 route: %v", err)
	}
	if _, err := a.client.RemoveRoute(ctx, &mcproxyv1.RemoveRouteRequest{Listener: "https", Hostname: "missing.example"}); code(err) != codes.NotFound {
		t.Fatalf("RemoveRoute missing = %v, want NotFound", err)
	}
	if _, err := a.client.RemoveRoute(ctx, &mcproxyv1.RemoveRouteRequest{Listener: "https", Hostname: "OK.example"}); err != nil {
		t.Fatalf("RemoveRoute = %v", err)
	}
	if got := a.dp.routes(); len(got) != 1 {
		t.Fatalf("data plane after remove: %+v", got)
	}
}

func TestFirewallRules(t *testing.T) {
	ctx := context.Background()
	a := start(t, t.TempDir())
	add := func(kind, value string) (*mcproxyv1.AddFirewallRuleResponse, error) {
		return a.client.AddFirewallRule(ctx, &mcproxyv1.AddFirewallRuleRequest{Rule: &mcproxyv1.FirewallRule{Kind: kind, Value: value, Reason: "test"}})
	}
	resp, err := add("cidr", "203.0.113.9/24")
	if err != nil || !resp.GetCreated() || resp.GetRule().GetValue() != "203.0.113.0/24" {
		t.Fatalf("AddFirewallRule = %v, %v", resp, err)
	}
	if resp, err := add("cidr", "203.0.113.0/24"); err != nil || resp.GetCreated() {
		t.Fatalf("repeat = %v, %v", resp, err)
	}
	if _, err := add("asn", "1"); code(err) != codes.InvalidArgument {
		t.Fatalf("bad kind = %v", err)
	}
	a.dp.mu.Lock()
	a.dp.refuse = errors.New("country rules need firewall.geoip_db")
	a.dp.mu.Unlock()
	if _, err := add("country", "XX"); code(err) != codes.FailedPrecondition {
		t.Fatalf("refused rule = %v, want FailedPrecondition", err)
	}
	list, err := a.client.ListFirewallRules(ctx, &mcproxyv1.ListFirewallRulesRequest{})
	if err != nil || len(list.GetRules()) != 1 {
		t.Fatalf("a refused rule was stored: %v, %v", list, err)
	}
	a.dp.mu.Lock()
	a.dp.refuse = nil
	a.dp.mu.Unlock()
	if _, err := a.client.RemoveFirewallRule(ctx, &mcproxyv1.RemoveFirewallRuleRequest{Kind: "cidr", Value: "203.0.113.0/24"}); err != nil {
		t.Fatal(err)
	}
	a.dp.mu.Lock()
	n := len(a.dp.rules)
	a.dp.mu.Unlock()
	if n != 0 {
		t.Fatalf("data plane still has %d rules", n)
	}
	if _, err := a.client.RemoveFirewallRule(ctx, &mcproxyv1.RemoveFirewallRuleRequest{Kind: "cidr", Value: "203.0.113.0/24"}); code(err) != codes.NotFound {
		t.Fatalf("second remove = %v", err)
	}
}

func TestStatusReportsDivergence(t *testing.T) {
	ctx := context.Background()
	a := start(t, t.TempDir())
	st, err := a.client.Status(ctx, &mcproxyv1.StatusRequest{})
	if err != nil || len(st.GetDivergence()) != 0 || st.GetRoutes() != 1 {
		t.Fatalf("Status right after seeding = %v, %v", st, err)
	}
	if _, err := a.client.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: &mcproxyv1.Route{Listener: "alt", Hostname: "new.example", Mode: "l4", Backend: "127.0.0.1:2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.AddRoute(ctx, &mcproxyv1.AddRouteRequest{Route: &mcproxyv1.Route{Listener: "https", Hostname: "seed.example", Mode: "l4", Backend: "127.0.0.1:9999"}}); err != nil {
		t.Fatal(err)
	}
	st, err = a.client.Status(ctx, &mcproxyv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	d := strings.Join(st.GetDivergence(), "\n")
	if len(st.GetDivergence()) != 2 || !strings.Contains(d, "alt/new.example: in the database, not in the TOML") ||
		!strings.Contains(d, "https/seed.example: differs: backend toml=127.0.0.1:9001 db=127.0.0.1:9999") {
		t.Fatalf("divergence = %q", st.GetDivergence())
	}
	if len(st.GetListeners()) != 2 || st.GetListeners()[0].GetRoutes() != 1 || st.GetListeners()[1].GetRoutes() != 1 {
		t.Fatalf("listeners = %v", st.GetListeners())
	}
}

// TestAdminSocket: the socket is mode 0660; a socket another mc-proxy
// serves is refused, a stale one (its server gone without unlinking it)
// replaced, and a regular file at the path left alone.
func TestAdminSocket(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	ln, err := newAdminServer(t, sock).Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, %v; want 0660", fi.Mode().Perm(), err)
	}
	if _, err := newAdminServer(t, sock).Listen(ctx); err == nil {
		t.Fatal("a second Listen on a served socket succeeded")
	}
	ul, ok := ln.(*net.UnixListener)
	if !ok {
		t.Fatalf("Listen returned %T", ln)
	}
	ul.SetUnlinkOnClose(false)
	_ = ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket not left behind for the test: %v", err)
	}
	ln, err = newAdminServer(t, sock).Listen(ctx)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	_ = ln.Close()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newAdminServer(t, regular).Listen(ctx); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
}
