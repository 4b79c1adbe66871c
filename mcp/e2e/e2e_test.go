package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/mcp/internal/platformtest"
	mcproxyclient "git.metacircular.net/metacircular/mcproxy/client"
)

func TestMain(m *testing.M) {
	code := m.Run()
	platformtest.Cleanup()
	os.Exit(code)
}

const helloHost = "hello.svc." + platformtest.Domain

// world is a platform, an agent and the operator's CLI setup.
type world struct {
	t        *testing.T
	p        *platformtest.Platform
	a        *platformtest.Agent
	cfg      string
	work     string
	services string
	curl     string
	dig      string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, curl: testtool.Require(t, "curl"), dig: testtool.Require(t, "dig")}
	testtool.Require(t, "podman")
	w.p = platformtest.Start(t)
	w.a = w.p.StartAgent(platformtest.AgentOptions{})
	w.work, w.services = t.TempDir(), t.TempDir()
	w.cfg = w.p.CLIConfig(w.a, w.services, w.work)
	return w
}

// mcp runs the CLI and fails the test on error.
func (w *world) mcp(args ...string) string {
	w.t.Helper()
	out, err := w.p.MCP(w.cfg, args...)
	if err != nil {
		w.t.Fatalf("mcp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// mcpFails runs the CLI and expects it to fail with code.
func (w *world) mcpFails(code int, args ...string) string {
	w.t.Helper()
	out, err := w.p.MCP(w.cfg, args...)
	var ee *exec.ExitError
	if err == nil || !asExit(err, &ee) || ee.ExitCode() != code {
		w.t.Fatalf("mcp %s: want exit %d, got %v\n%s", strings.Join(args, " "), code, err, out)
	}
	return out
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError) //nolint:errorlint // exec returns it unwrapped
	*ee = e
	return ok
}

// buildHello compiles the hello service at version into the workspace.
func (w *world) buildHello(version string) {
	w.t.Helper()
	dir := filepath.Join(w.work, "hello")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", filepath.Join(dir, "hello"),
		"git.metacircular.net/metacircular/mcp/examples/hello/cmd/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("go build hello: %v\n%s", err, out)
	}
	df, err := os.ReadFile(filepath.Join("testdata", "hello", "Dockerfile"))
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// defineHello writes the hello definition at version with extra env.
func (w *world) defineHello(version string, env ...string) {
	w.t.Helper()
	envLine := ""
	if len(env) > 0 {
		envLine = fmt.Sprintf("env = [%q]\n", strings.Join(env, `", "`))
		envLine = strings.ReplaceAll(envLine, `\"`, `"`)
	}
	def := fmt.Sprintf(`name = "hello"
node = "n1"

[build.images]
hello = "Dockerfile"

[[components]]
name = "web"
image = "%s/hello:%s"
%s
[[components.routes]]
port = 443
mode = "l7"

[components.health]
type = "http"
path = "/v1/health"
`, w.p.MCRHost, version, envLine)
	if err := os.WriteFile(filepath.Join(w.services, "hello.toml"), []byte(def), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// release builds, defines and pushes hello at version.
func (w *world) release(version string, env ...string) {
	w.t.Helper()
	w.buildHello(version)
	w.defineHello(version, env...)
	out := w.mcp("build", "hello")
	if !strings.Contains(out, "push "+w.p.MCRHost+"/hello:"+version) || !strings.Contains(out, "built 1 image(s) of hello") {
		w.t.Fatalf("mcp build:\n%s", out)
	}
}

func (w *world) proxyPort() string {
	_, port, _ := net.SplitHostPort(w.p.ProxyHTTPS)
	return port
}

// curlHost fetches https://host/path through mc-proxy with curl,
// verifying TLS against the platform root.
func (w *world) curlHost(host, path string) (string, error) {
	port := w.proxyPort()
	out, err := exec.Command(w.curl, "-sS", "--fail", "--max-time", "10", "--resolve", host+":"+port+":127.0.0.1",
		"--cacert", w.p.CA.CertPath(), "https://"+host+":"+port+path).CombinedOutput()
	return string(out), err
}

func (w *world) curlHello() (string, error) { return w.curlHost(helloHost, "/") }

func (w *world) expectServing(version string) {
	w.t.Helper()
	out, err := w.curlHello()
	if err != nil || strings.TrimSpace(out) != "hello "+version {
		w.t.Fatalf("curl through mc-proxy: %v: %q (want hello %s)", err, out, version)
	}
}

// digHello asks MCNS for hello's A records.
func (w *world) digHello() string {
	w.t.Helper()
	host, port, _ := net.SplitHostPort(w.p.MCNSDNS)
	out, err := exec.Command(w.dig, "@"+host, "-p", port, "+short", "+time=2", "+tries=1", helloHost, "A").CombinedOutput()
	if err != nil {
		w.t.Fatalf("dig: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// containers lists the test storage's containers of a service.
func (w *world) containers(service string) []string {
	w.t.Helper()
	out, err := w.p.Podman("ps", "--all", "--filter", "label=mcp.service="+service, "--format", "json")
	if err != nil {
		w.t.Fatalf("podman ps: %v\n%s", err, out)
	}
	var list []struct {
		Names []string
		State string
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		w.t.Fatalf("podman ps: %v\n%s", err, out)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Names[0]+" "+c.State)
	}
	return names
}

// routes lists mc-proxy's routes.
func (w *world) routes() []mcproxyclient.Route {
	w.t.Helper()
	c, err := mcproxyclient.New(w.p.ProxySocket)
	if err != nil {
		w.t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	rs, err := c.ListRoutes(context.Background(), "")
	if err != nil {
		w.t.Fatal(err)
	}
	return rs
}

func (w *world) helloRoute() (mcproxyclient.Route, bool) {
	for _, r := range w.routes() {
		if r.Hostname == helloHost {
			return r, true
		}
	}
	return mcproxyclient.Route{}, false
}

// status is the agent's view of a service (mcp status --json).
type status struct {
	Service struct {
		Revision      int64    `json:"revision"`
		Drift         []string `json:"drift"`
		LastOperation string   `json:"last_operation"`
		Instances     []struct {
			Container string `json:"container"`
			State     string `json:"state"`
		} `json:"instances"`
	} `json:"service"`
	Events []struct {
		Kind  string `json:"kind"`
		Step  string `json:"step"`
		State string `json:"state"`
	} `json:"events"`
}

func (w *world) status(service string) (status, error) {
	out, err := w.p.MCP(w.cfg, "status", service, "--json")
	var s status
	if err != nil {
		return s, fmt.Errorf("%w: %s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("%w: %s", err, out)
	}
	return s, nil
}

// eventually retries f for up to d.
func (w *world) eventually(d time.Duration, what string, f func() error) {
	w.t.Helper()
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	w.t.Fatalf("%s: %v", what, err)
}

// poller requests hello through mc-proxy in a loop and counts what it
// sees. keepAlive reuses its connection to mc-proxy.
type poller struct {
	requests, failures atomic.Int64
	mu                 sync.Mutex
	seen               map[string]int
	errs               []string
	stop               chan struct{}
	done               sync.WaitGroup
}

func (w *world) poll(keepAlive bool) *poller {
	pl := &poller{seen: map[string]int{}, stop: make(chan struct{})}
	proxy := w.p.ProxyHTTPS
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: w.p.CA.Pool(), MinVersion: tls.VersionTLS13},
		DisableKeepAlives: !keepAlive,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", proxy)
		},
	}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	pl.done.Add(1)
	go func() {
		defer pl.done.Done()
		defer tr.CloseIdleConnections()
		for {
			select {
			case <-pl.stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			pl.requests.Add(1)
			resp, err := c.Get("https://" + helloHost + "/")
			if err != nil {
				pl.fail(err.Error())
				continue
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				pl.fail(fmt.Sprintf("%s %v %s", resp.Status, err, body))
				continue
			}
			pl.mu.Lock()
			pl.seen[strings.TrimSpace(string(body))]++
			pl.mu.Unlock()
		}
	}()
	return pl
}

func (pl *poller) fail(msg string) {
	pl.failures.Add(1)
	pl.mu.Lock()
	if len(pl.errs) < 5 {
		pl.errs = append(pl.errs, msg)
	}
	pl.mu.Unlock()
}

func (pl *poller) finish() {
	close(pl.stop)
	pl.done.Wait()
}

// TestDeployRedeployRecoverUndeploy is the acceptance test of the agent
// and the CLI against the real platform: mcp build pushes a small HTTP
// service to MCR; mcp deploy runs it with an L7 route (certificate from
// Metacrypt, route in mc-proxy, name in MCNS); curl reaches it through
// mc-proxy verifying TLS against the platform root and dig finds its
// name; a redeploy switches with clients polling and not one failed
// request; an unhealthy version leaves the old one serving; the agent
// killed with SIGKILL in the middle of a deploy finishes it on restart;
// podman losing every container and image is undone by mcp-agent
// recover; mcp undeploy removes the DNS record, the route and the
// container.
func TestDeployRedeployRecoverUndeploy(t *testing.T) {
	w := newWorld(t)

	// Build, validate, plan.
	w.release("v1.0.0")
	if out := w.mcp("validate"); !strings.Contains(out, "1 definition(s) valid") {
		t.Fatalf("validate:\n%s", out)
	}
	if out := w.mcpFails(2, "sync", "--dry-run"); !strings.Contains(out, "deploy") || !strings.Contains(out, "not deployed") {
		t.Fatalf("sync --dry-run before the first deploy:\n%s", out)
	}

	// Deploy.
	out := w.mcp("deploy", "hello")
	for _, step := range []string{"ports", "certs", "pull", "start", "health", "routes", "dns", "record", "deploy hello on n1: succeeded"} {
		if !strings.Contains(out, step) {
			t.Fatalf("deploy output lacks %q:\n%s", step, out)
		}
	}
	w.expectServing("v1.0.0")
	if got := w.digHello(); got != "127.0.0.1" {
		t.Fatalf("dig %s: %q", helloHost, got)
	}
	if r, ok := w.helloRoute(); !ok || r.Mode != "l7" || r.BackendProtocol != "http1" {
		t.Fatalf("route: %+v %v", r, ok)
	}
	t.Logf("mcp deploy hello:\n%s", out)
	w.mcp("sync", "--dry-run") // exit 0: nothing to do
	if out := w.mcp("ps"); !strings.Contains(out, "hello-web-1") || !strings.Contains(out, "running") || !strings.Contains(out, "hello:v1.0.0") {
		t.Fatalf("ps:\n%s", out)
	} else {
		t.Logf("mcp ps:\n%s", out)
	}

	// Zero-downtime redeploy: two clients, one keeping its connection to
	// mc-proxy alive, one connecting per request.
	w.release("v1.1.0")
	if out := w.mcpFails(2, "sync", "--dry-run"); !strings.Contains(out, "redeploy") {
		t.Fatalf("sync --dry-run after a change:\n%s", out)
	}
	keep, fresh := w.poll(true), w.poll(false)
	time.Sleep(300 * time.Millisecond)
	w.mcp("deploy", "hello")
	time.Sleep(300 * time.Millisecond)
	keep.finish()
	fresh.finish()
	for name, pl := range map[string]*poller{"keep-alive": keep, "per-request": fresh} {
		if pl.failures.Load() != 0 || pl.seen["hello v1.0.0"] == 0 || pl.seen["hello v1.1.0"] == 0 {
			t.Fatalf("%s client during the redeploy: %d of %d failed %v, saw %v", name, pl.failures.Load(), pl.requests.Load(), pl.errs, pl.seen)
		}
		t.Logf("%s client: %d requests, none failed, saw %v", name, pl.requests.Load(), pl.seen)
	}
	w.expectServing("v1.1.0")
	if c := w.containers("hello"); len(c) != 1 || !strings.HasPrefix(c[0], "hello-web-2 running") {
		t.Fatalf("containers after the redeploy: %v", c)
	}

	// An unhealthy version: the deploy fails naming the health step, the
	// old version keeps serving, nothing of the new one is left.
	w.release("v1.2.0", "FAIL_HEALTH=1")
	out = w.mcpFails(1, "deploy", "hello")
	if !strings.Contains(out, "deploy hello rolled back: deploy hello: health: component web") || !strings.Contains(out, "500") {
		t.Fatalf("unhealthy deploy:\n%s", out)
	}
	w.expectServing("v1.1.0")
	if c := w.containers("hello"); len(c) != 1 || !strings.HasPrefix(c[0], "hello-web-2 running") {
		t.Fatalf("containers after the failed deploy: %v", c)
	}

	// SIGKILL the agent while a deploy waits for health: restarted, it
	// finishes the deploy; no container, route or record is left over.
	w.release("v1.3.0", "SLEEP=4s")
	deploying := make(chan string, 1)
	go func() {
		out, _ := w.p.MCP(w.cfg, "deploy", "hello")
		deploying <- out
	}()
	w.eventually(30*time.Second, "deploy reaching the health step", func() error {
		s, err := w.status("hello")
		if err != nil {
			return err
		}
		if n := len(s.Events); n > 0 && s.Events[n-1].Step == "health" && s.Events[n-1].State == "running" {
			return nil
		}
		return fmt.Errorf("events %+v", s.Events)
	})
	w.a.Proc.Kill()
	<-deploying
	w.p.RestartAgent(w.a)
	w.eventually(60*time.Second, "the interrupted deploy finishing", func() error {
		s, err := w.status("hello")
		if err != nil {
			return err
		}
		// v1.0.0, v1.1.0, v1.2.0 (rolled back), v1.3.0: revision 4.
		if s.Service.Revision != 4 {
			return fmt.Errorf("serving revision %d, last operation %q", s.Service.Revision, s.Service.LastOperation)
		}
		return nil
	})
	w.expectServing("v1.3.0")
	if c := w.containers("hello"); len(c) != 1 || !strings.Contains(c[0], "running") {
		t.Fatalf("containers after the resumed deploy: %v", c)
	}
	if got := w.digHello(); got != "127.0.0.1" {
		t.Fatalf("dig after the resumed deploy: %q", got)
	}

	// The runtime loses everything (the seed's incident): every container
	// and image of the test's storage removed.
	if out, err := w.p.Podman("rm", "--all", "--force", "--time", "0"); err != nil {
		t.Fatalf("podman rm: %v\n%s", err, out)
	}
	if out, err := w.p.Podman("rmi", "--all", "--force"); err != nil {
		t.Fatalf("podman rmi: %v\n%s", err, out)
	}
	if _, err := w.curlHello(); err == nil {
		t.Fatal("hello still answers without its container")
	}
	w.eventually(20*time.Second, "mcp status showing the drift", func() error {
		s, err := w.status("hello")
		if err != nil {
			return err
		}
		if len(s.Service.Drift) == 0 || !strings.Contains(strings.Join(s.Service.Drift, " "), "container-missing") {
			return fmt.Errorf("drift %v", s.Service.Drift)
		}
		return nil
	})
	t.Logf("mcp status hello after the runtime lost its state:\n%s", w.mcp("status", "hello"))
	rec := w.p.MustRun("mcp-agent", "--config", w.a.Config, "recover")
	t.Logf("mcp-agent recover:\n%s", rec)
	if !strings.Contains(rec, "recovered") || !strings.Contains(rec, "created hello-web-") {
		t.Fatalf("mcp-agent recover:\n%s", rec)
	}
	w.expectServing("v1.3.0")
	if out, _ := w.p.Podman("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, "hello:v1.3.0") {
		t.Fatalf("image not pulled again: %s", out)
	}

	// Undeploy: record, route, container and certificate gone.
	out = w.mcp("undeploy", "hello")
	if !strings.Contains(out, "undeploy hello on n1: succeeded") {
		t.Fatalf("undeploy:\n%s", out)
	}
	if got := w.digHello(); got != "" {
		t.Fatalf("dig after undeploy: %q", got)
	}
	if r, ok := w.helloRoute(); ok {
		t.Fatalf("route left: %+v", r)
	}
	if c := w.containers("hello"); len(c) != 0 {
		t.Fatalf("containers left: %v", c)
	}
	if _, err := os.Stat(filepath.Join(w.a.CertsDir, helloHost+".pem")); !os.IsNotExist(err) {
		t.Fatalf("certificate left: %v", err)
	}
	if out := w.mcp("ps"); strings.Contains(out, "hello") {
		t.Fatalf("ps after undeploy:\n%s", out)
	}
}

// TestPlatformServiceContainer deploys a platform service built from this
// repository as a container: MCAT, from the repository's mcat/Dockerfile
// and services/mcat.toml (node, registry and data directory adapted to
// the test platform), its configuration pushed into its data directory
// with mcp push, behind an L7 route with a Metacrypt certificate. Its
// data comes back out with mcp pull and mcp export.
func TestPlatformServiceContainer(t *testing.T) {
	w := newWorld(t)
	repo := filepath.Join("..", "..")
	// The workspace is a copy of the repository's layout: the Dockerfile
	// under test and the static binary "make build" would leave in bin/.
	copyFile(t, filepath.Join(repo, "mcat", "Dockerfile"), filepath.Join(w.work, "mcat", "Dockerfile"))
	copyFile(t, filepath.Join(w.p.Bin, "mcat"), filepath.Join(w.work, "bin", "mcat"))
	def, err := os.ReadFile(filepath.Join(repo, "services", "mcat.toml"))
	if err != nil {
		t.Fatal(err)
	}
	d := strings.ReplaceAll(string(def), `node = "rift"`, `node = "n1"`)
	d = strings.ReplaceAll(d, "mcr.svc.mcp.metacircular.net:8443", w.p.MCRHost)
	d = strings.ReplaceAll(d, `"/srv/mcat:`, `"`+filepath.Join(w.a.DataRoot, "mcat")+`:`)
	if err := os.WriteFile(filepath.Join(w.services, "mcat.toml"), []byte(d), 0o600); err != nil {
		t.Fatal(err)
	}

	// Configuration and CA into the (new) data directory.
	local := t.TempDir()
	cfg := fmt.Sprintf(`[server]
listen_addr = ":8080"
plain_http = true
[mcias]
server_url = "https://%s"
ca_cert = "/srv/mcat/ca.crt"
service_name = "mcat"
`, w.p.MCIASHTTPS)
	if err := os.WriteFile(filepath.Join(local, "mcat.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := w.mcp("push", "mcat", filepath.Join(local, "mcat.toml")); !strings.Contains(out, "mcat.toml (") {
		t.Fatalf("push:\n%s", out)
	}
	w.mcp("push", "mcat", w.p.CA.CertPath(), "ca.crt")

	w.mcp("build", "mcat")
	out := w.mcp("sync")
	if !strings.Contains(out, "deploy mcat on n1: succeeded") {
		t.Fatalf("sync:\n%s", out)
	}
	body, err := w.curlHost("mcat.svc."+platformtest.Domain, "/v1/health")
	if err != nil || !strings.Contains(body, `"ok"`) {
		t.Fatalf("mcat through mc-proxy: %v %s", err, body)
	}
	if out := w.mcp("logs", "mcat", "--tail", "20"); !strings.Contains(out, "mcat started") {
		t.Fatalf("logs:\n%s", out)
	}
	// logs --follow streams until interrupted.
	follow := exec.Command(filepath.Join(w.p.Bin, "mcp"), "--config", w.cfg, "logs", "mcat", "--follow")
	var followed syncWriter
	follow.Stdout, follow.Stderr = &followed, &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	w.eventually(20*time.Second, "logs --follow streaming", func() error {
		if _, err := w.curlHost("mcat.svc."+platformtest.Domain, "/v1/health"); err != nil {
			return err
		}
		if !strings.Contains(followed.String(), "/v1/health") {
			return fmt.Errorf("followed %q", followed.String())
		}
		return nil
	})
	_ = follow.Process.Signal(os.Interrupt)
	_ = follow.Wait()

	// Data out: one file, then the whole directory.
	if got := w.mcp("pull", "mcat", "mcat.toml", "-"); !strings.Contains(got, "plain_http = true") {
		t.Fatalf("pull:\n%s", got)
	}
	arch := filepath.Join(local, "mcat.tar.zst")
	w.mcp("export", "mcat", "-o", arch)
	if out := w.mcpFails(1, "import", "mcat", arch); !strings.Contains(out, "is not empty") {
		t.Fatalf("import over live data:\n%s", out)
	}
	// Into another service's empty directory (the migration path).
	if out := w.mcp("import", "mcat-copy", arch, "--node", "n1"); !strings.Contains(out, "unpacked") {
		t.Fatalf("import:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(w.a.DataRoot, "mcat-copy", "mcat.toml")); err != nil || string(b) != cfg {
		t.Fatalf("imported config: %v %q", err, b)
	}

	// The definition gone, sync undeploys the service.
	if err := os.Remove(filepath.Join(w.services, "mcat.toml")); err != nil {
		t.Fatal(err)
	}
	if out := w.mcpFails(2, "sync", "--dry-run"); !strings.Contains(out, "no definition for this node") {
		t.Fatalf("sync --dry-run:\n%s", out)
	}
	if out := w.mcp("sync"); !strings.Contains(out, "undeploy mcat on n1: succeeded") {
		t.Fatalf("sync:\n%s", out)
	}
	if c := w.containers("mcat"); len(c) != 0 {
		t.Fatalf("containers left: %v", c)
	}
}

// syncWriter is a goroutine-safe buffer for a process's output.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o700); err != nil {
		t.Fatal(err)
	}
}
