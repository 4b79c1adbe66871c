package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/mcp/internal/platformtest"
)

// BenchmarkDeploy measures, on the real platform (bench/mcp/run.sh runs
// it once with -benchtime 1x):
//
//   - deploy latency: from starting "mcp deploy hello" to mc-proxy serving
//     the new revision (a client polling through mc-proxy sees its mark),
//     over 20 redeploys of a cached image — the pull step still asks the
//     registry for the manifest, and its time is reported apart;
//   - beside it, in the same run, "podman run" of the same image plus
//     waiting for its port to answer HTTP (the floor a deploy builds on);
//   - the agent's RSS idle and with 20 services deployed.
func BenchmarkDeploy(b *testing.B) {
	testtool.Require(b, "podman")
	p := platformtest.Start(b)
	a := p.StartAgent(platformtest.AgentOptions{Drain: "1ms"})
	w := &world{p: p, a: a, work: b.TempDir(), services: b.TempDir()}
	w.cfg = p.CLIConfig(a, w.services, w.work)
	tb := &tbWorld{w: w, tb: b}
	tb.buildRelease("v1.0.0")

	time.Sleep(3 * time.Second) // a few monitor passes
	idle := rss(b, a.Proc.Cmd.Process.Pid)

	const n = 20
	client := proxyClient(p)
	var deploys, pulls []time.Duration
	for i := 0; i <= n; i++ { // deploy 0 pulls the image: not counted
		tb.define("hello", "v1.0.0", fmt.Sprintf("MARK=m%d", i))
		start := time.Now()
		cmd := exec.Command(filepath.Join(p.Bin, "mcp"), "--config", w.cfg, "deploy", "hello") //nolint:gosec // the test's binary
		cmd.Env = p.PodmanEnv()
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pullCh := make(chan time.Duration, 1)
		go func() {
			var pullStart time.Time
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) >= 4 && f[2] == "pull" {
					switch f[3] {
					case "running":
						pullStart = time.Now()
					case "done":
						pullCh <- time.Since(pullStart)
					}
				}
			}
			_, _ = io.Copy(io.Discard, stdout)
		}()
		want := fmt.Sprintf("hello v1.0.0 m%d", i)
		for {
			if body, err := get(client, "https://"+helloHost+"/"); err == nil && body == want {
				break
			}
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("deploy %d never served", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("deploy %d: %v", i, err)
		}
		pull := <-pullCh
		if i > 0 {
			deploys = append(deploys, took)
			pulls = append(pulls, pull)
		}
	}

	// The floor: podman run of the same (cached) image and wait for HTTP.
	var bare []time.Duration
	image := p.MCRHost + "/hello:v1.0.0"
	for i := range n {
		port := freePort(b)
		name := fmt.Sprintf("bench-bare-%d-%d", os.Getpid(), i)
		start := time.Now()
		if out, err := p.Podman("run", "--detach", "--name", name, "--env", "PORT="+strconv.Itoa(port),
			"--publish", fmt.Sprintf("127.0.0.1:%d:%d", port, port), image); err != nil {
			b.Fatalf("podman run: %v\n%s", err, out)
		}
		for {
			if _, err := get(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatal("bare container never answered")
			}
			time.Sleep(5 * time.Millisecond)
		}
		bare = append(bare, time.Since(start))
		if out, err := p.Podman("rm", "--force", "--time", "0", name); err != nil {
			b.Fatalf("podman rm: %v\n%s", err, out)
		}
	}

	// RSS with 20 services.
	for i := range 20 {
		name := fmt.Sprintf("svc%02d", i)
		tb.define(name, "v1.0.0")
		if out, err := p.MCP(w.cfg, "deploy", name); err != nil {
			b.Fatalf("deploy %s: %v\n%s", name, err, out)
		}
	}
	time.Sleep(3 * time.Second)
	loaded := rss(b, a.Proc.Cmd.Process.Pid)

	dp50, dp99 := pct(deploys, 50), pct(deploys, 99)
	bp50, bp99 := pct(bare, 50), pct(bare, 99)
	b.ReportMetric(ms(dp50), "deploy-p50-ms")
	b.ReportMetric(ms(dp99), "deploy-p99-ms")
	b.ReportMetric(ms(pct(pulls, 50)), "pull-step-p50-ms")
	b.ReportMetric(ms(bp50), "podman-run-p50-ms")
	b.ReportMetric(ms(bp99), "podman-run-p99-ms")
	b.ReportMetric(float64(dp50)/float64(bp50), "ratio-p50")
	b.ReportMetric(float64(dp99)/float64(bp99), "ratio-p99")
	b.ReportMetric(float64(idle)/1024, "rss-idle-MiB")
	b.ReportMetric(float64(loaded)/1024, "rss-20-services-MiB")
	b.Logf("deploy → serving over %d redeploys: p50 %s p99 %s (pull step, cached image: p50 %s); podman run + port: p50 %s p99 %s; ratio p50 %.2f p99 %.2f; agent RSS idle %.1f MiB, with 20 services %.1f MiB",
		n, dp50, dp99, pct(pulls, 50), bp50, bp99, float64(dp50)/float64(bp50), float64(dp99)/float64(bp99), float64(idle)/1024, float64(loaded)/1024)
}

type tbWorld struct {
	w  *world
	tb testing.TB
}

func (t *tbWorld) buildRelease(version string) {
	dir := filepath.Join(t.w.work, "hello")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.tb.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", filepath.Join(dir, "hello"),
		"git.metacircular.net/metacircular/mcp/examples/hello/cmd/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.tb.Fatalf("go build: %v\n%s", err, out)
	}
	df, err := os.ReadFile(filepath.Join("testdata", "hello", "Dockerfile"))
	if err != nil {
		t.tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o600); err != nil {
		t.tb.Fatal(err)
	}
	t.define("hello", version)
	if out, err := t.w.p.MCP(t.w.cfg, "build", "hello"); err != nil {
		t.tb.Fatalf("mcp build: %v\n%s", err, out)
	}
}

func (t *tbWorld) define(name, version string, env ...string) {
	envLine := ""
	if len(env) > 0 {
		quoted := make([]string, len(env))
		for i, e := range env {
			quoted[i] = strconv.Quote(e)
		}
		envLine = "env = [" + strings.Join(quoted, ", ") + "]\n"
	}
	def := fmt.Sprintf(`name = %q
node = "n1"
path = "hello"
[build.images]
hello = "Dockerfile"
[[components]]
name = "web"
image = "%s/hello:%s"
%s[[components.routes]]
port = 443
mode = "l7"
[components.health]
type = "http"
`, name, t.w.p.MCRHost, version, envLine)
	if err := os.WriteFile(filepath.Join(t.w.services, name+".toml"), []byte(def), 0o600); err != nil {
		t.tb.Fatal(err)
	}
}

func proxyClient(p *platformtest.Platform) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.CA.Pool(), MinVersion: tls.VersionTLS13},
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", p.ProxyHTTPS)
		},
	}}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port //nolint:errcheck // a TCP listener
}

// rss is a process's resident set in KiB.
func rss(tb testing.TB, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
