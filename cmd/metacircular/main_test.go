package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
)

const (
	testVersion = "v0.0.0-test"
	waitLimit   = 60 * time.Second
)

// buildBinary compiles this command and the platform services it starts
// into dir/bin, as `make build` would, beside a copy of the example
// service's Dockerfile (so dir looks like a checkout to the launcher), and
// returns the launcher's path.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-o", bin+"/", "-ldflags", "-X main.version="+testVersion,
		".", "../../mcias/cmd/mcias", "../../mcias/cmd/mciasctl", "../../mcns/cmd/mcns", "../../mcns/cmd/mcnsctl",
		"../../mcproxy/cmd/mc-proxy", "../../mcproxy/cmd/mcproxyctl", "../../metacrypt/cmd/metacrypt", "../../metacrypt/cmd/metacryptctl",
		"../../mcr/cmd/mcr", "../../mcr/cmd/mcrctl", "../../mcp/cmd/mcp", "../../mcp/cmd/mcp-agent", "../../mcp/examples/hello/cmd/hello")
	// Static binaries, as make build makes them: hello runs FROM scratch.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	example := filepath.Join(dir, "mcp", "examples", "hello", "Dockerfile")
	if err := os.MkdirAll(filepath.Dir(example), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(example, readFile(t, "../../mcp/examples/hello/Dockerfile"), 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(bin, "metacircular")
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func mustRun(t *testing.T, bin string, args ...string) string {
	t.Helper()
	r := run(t, bin, nil, args...)
	if r.code != 0 {
		t.Fatalf("metacircular %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// wantFailure checks the CLI error contract: exit 1, one line on stderr.
func wantFailure(t *testing.T, r result, contains string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit code %d, want 1 (stderr %q)", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "metacircular: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, contains) {
		t.Errorf("stderr = %q, want one line mentioning %q", r.stderr, contains)
	}
}

type background struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

func startUp(t *testing.T, bin string, env []string, args ...string) *background {
	t.Helper()
	b := &background{cmd: exec.Command(bin, append([]string{"up"}, args...)...), out: &syncbuf.Buffer{}, done: make(chan struct{})}
	b.cmd.Env = append(os.Environ(), env...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
	})
	return b
}

func (b *background) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-b.done:
		return b.err
	case <-time.After(waitLimit):
		t.Fatalf("up did not exit within %s; output:\n%s", waitLimit, b.out)
		return nil
	}
}

// waitRunning polls `status --json` until it reports the launcher pid.
func waitRunning(t *testing.T, bin, root string, up *background) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		r := run(t, bin, nil, "status", "--json", "--root", root)
		if r.code == 0 {
			var st struct {
				PID   int    `json:"pid"`
				Phase string `json:"phase"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
				t.Fatalf("status --json: %v\n%s", err, r.stdout)
			}
			if st.Phase == "running" {
				if st.PID != up.cmd.Process.Pid {
					t.Fatalf("status reports pid %d, up has pid %d", st.PID, up.cmd.Process.Pid)
				}
				return
			}
		}
		select {
		case <-up.done:
			t.Fatalf("up exited early (%v):\n%s", up.err, up.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reported running; last: %+v\nup output:\n%s", r, up.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func assertNoRuntimeFiles(t *testing.T, root string) {
	t.Helper()
	for _, f := range []string{"pid", "state.json"} {
		if _, err := os.Stat(filepath.Join(root, "launcher", f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("launcher/%s still present (stat err %v)", f, err)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCLI(t *testing.T) {
	bin := buildBinary(t, t.TempDir())

	t.Run("version", func(t *testing.T) {
		if out := mustRun(t, bin, "version"); out != "metacircular "+testVersion+"\n" {
			t.Errorf("version = %q", out)
		}
	})

	t.Run("help", func(t *testing.T) {
		// --help names the services up starts, and only those.
		out := mustRun(t, bin, "--help")
		if !strings.Contains(out, "then mcias, metacrypt, mcr, mcns, mc-proxy, mcp") || strings.Contains(out, "MCP joins") {
			t.Errorf("--help:\n%s", out)
		}
		for _, c := range []string{"up", "down", "status", "env", "ca", "version"} {
			if out := mustRun(t, bin, c, "--help"); !strings.Contains(out, "Examples:") {
				t.Errorf("%s --help has no Examples:\n%s", c, out)
			}
		}
	})

	t.Run("ca", func(t *testing.T) {
		root := t.TempDir()
		out := mustRun(t, bin, "ca", "init", "--root", root)
		caCert := filepath.Join(root, "ca", "ca.crt")
		if !strings.Contains(out, caCert) || !strings.Contains(out, "SHA-256 fingerprint: ") {
			t.Errorf("ca init output:\n%s", out)
		}
		first := readFile(t, caCert)
		mustRun(t, bin, "ca", "init", "--root", root)
		if !bytes.Equal(first, readFile(t, caCert)) {
			t.Error("second ca init replaced the root")
		}

		out = mustRun(t, bin, "ca", "issue", "web", "--root", root, "--dns", "web.example,localhost", "--ip", "127.0.0.1", "--validity", "30d")
		crt, key := filepath.Join(root, "ca", "issued", "web.crt"), filepath.Join(root, "ca", "issued", "web.key")
		if !strings.Contains(out, "certificate: "+crt) || !strings.Contains(out, "key: "+key) {
			t.Errorf("ca issue output:\n%s", out)
		}
		var chain []*x509.Certificate
		for rest := readFile(t, crt); ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			chain = append(chain, c)
		}
		if len(chain) != 2 {
			t.Fatalf("issued chain has %d certificates, want 2", len(chain))
		}
		roots := x509.NewCertPool()
		roots.AddCert(chain[1])
		for _, name := range []string{"web.example", "localhost", "127.0.0.1"} {
			if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
				t.Errorf("verify %s: %v", name, err)
			}
		}
		if days := time.Until(chain[0].NotAfter).Hours() / 24; days < 29.9 || days > 30.1 {
			t.Errorf("--validity 30d gave %.1f days", days)
		}
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key file: %v mode %v", err, fi.Mode())
		}

		wantFailure(t, run(t, bin, nil, "ca", "issue", "../evil", "--root", root, "--dns", "a.example"), "invalid name")
		wantFailure(t, run(t, bin, nil, "ca", "issue", "nosans", "--root", root), "at least one DNS name or IP address")
		wantFailure(t, run(t, bin, nil, "ca", "issue", "x", "--root", root, "--dns", "a.example", "--validity", "soon"), "invalid --validity")
		wantFailure(t, run(t, bin, nil, "ca", "issue", "x", "--root", t.TempDir(), "--dns", "a.example"), "ca init")
		for _, f := range []string{"evil.crt", "nosans.crt", "x.crt"} {
			if _, err := os.Stat(filepath.Join(root, "ca", "issued", f)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s written by a failed issue", f)
			}
		}
	})

	t.Run("up status down", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "srv")
		up := startUp(t, bin, nil, "--root", root)
		waitRunning(t, bin, root, up)

		out := mustRun(t, bin, "status", "--root", root)
		if want := fmt.Sprintf("launcher pid %d on %s: running", up.cmd.Process.Pid, root); !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
		password := checkMCIAS(t, bin, root, up.out.String())
		checkMCNS(t, bin, root, password)
		checkMCProxy(t, bin, root)
		checkMCR(t, bin, root, password)
		checkMCP(t, bin, root, up.out.String(), password)
		checkEnv(t, bin, root, password)
		wantFailure(t, run(t, bin, nil, "up", "--root", root), fmt.Sprintf("already running on %s (pid %d)", root, up.cmd.Process.Pid))

		if out := mustRun(t, bin, "down", "--root", root); !strings.Contains(out, "stopped") {
			t.Errorf("down output: %q", out)
		}
		if err := up.wait(t); err != nil {
			t.Errorf("up exited with %v:\n%s", err, up.out)
		}
		if !strings.Contains(up.out.String(), "mcias is healthy") || !strings.Contains(up.out.String(), "metacrypt is healthy") ||
			!strings.Contains(up.out.String(), "mcns is healthy") || !strings.Contains(up.out.String(), "mcr is healthy") ||
			!strings.Contains(up.out.String(), "mc-proxy is healthy") || !strings.Contains(up.out.String(), "mcp is healthy") {
			t.Errorf("up output:\n%s", up.out)
		}
		assertNoRuntimeFiles(t, root)
		wantFailure(t, run(t, bin, nil, "status", "--root", root), "no launcher running")
		if out := mustRun(t, bin, "down", "--root", root); !strings.Contains(out, "nothing running") {
			t.Errorf("down with nothing running: %q", out)
		}
	})

	t.Run("interrupt and rerun", func(t *testing.T) {
		root := t.TempDir()
		env := []string{"METACIRCULAR_ROOT=" + root}
		up := startUp(t, bin, env)
		waitRunning(t, bin, root, up)
		caBytes := readFile(t, filepath.Join(root, "ca", "ca.crt"))
		if err := up.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if err := up.wait(t); err != nil {
			t.Fatalf("up after SIGINT exited with %v:\n%s", err, up.out)
		}
		assertNoRuntimeFiles(t, root)

		again := startUp(t, bin, env)
		waitRunning(t, bin, root, again)
		if !bytes.Equal(caBytes, readFile(t, filepath.Join(root, "ca", "ca.crt"))) {
			t.Error("re-run replaced the seed CA")
		}
		if err := again.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if err := again.wait(t); err != nil {
			t.Fatalf("second up after SIGINT exited with %v:\n%s", err, again.out)
		}
		if !strings.Contains(again.out.String(), "platform stopped") {
			t.Errorf("second up output:\n%s", again.out)
		}
		if !strings.Contains(up.out.String(), "MCIAS admin:") || strings.Contains(again.out.String(), "MCIAS admin:") {
			t.Errorf("the admin password must be printed on the first run only:\nfirst:\n%s\nsecond:\n%s", up.out, again.out)
		}
		if !strings.Contains(again.out.String(), "recover-admin admin") {
			t.Errorf("a re-run does not say how to set a new admin password:\n%s", again.out)
		}
	})
}

// checkEnv: "metacircular env" prints exports with which the CLIs need no
// address flags, and MCNS answers for the platform's own names.
func checkEnv(t *testing.T, bin, root, adminPassword string) {
	t.Helper()
	out := mustRun(t, bin, "env", "--root", root)
	vars := map[string]string{}
	var env []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		kv, ok := strings.CutPrefix(line, "export ")
		k, v, ok2 := strings.Cut(kv, "=")
		if !ok || !ok2 || !strings.HasPrefix(v, "'") || !strings.HasSuffix(v, "'") {
			t.Fatalf("env line %q", line)
		}
		vars[k] = strings.Trim(v, "'")
		env = append(env, k+"="+vars[k])
	}
	for _, k := range []string{"METACIRCULAR_ROOT", "METACIRCULAR_CA", "METACIRCULAR_MCIAS", "METACIRCULAR_MCNS", "METACIRCULAR_MCPROXY_SOCKET",
		"METACIRCULAR_METACRYPT", "METACIRCULAR_MCR", "METACIRCULAR_MCP_AGENT", "MCP_CONFIG"} {
		if vars[k] == "" {
			t.Errorf("env lacks %s:\n%s", k, out)
		}
	}
	tool := func(name, stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(filepath.Dir(bin), name), args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v with the env exports: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	tool("mciasctl", adminPassword+"\n", "--session", filepath.Join(t.TempDir(), "s.json"), "login", "-u", "admin", "--password-stdin")
	session := filepath.Join(t.TempDir(), "n.json")
	tool("mcnsctl", adminPassword+"\n", "--session", session, "login", "-u", "admin", "--password-stdin")
	const domain = "mcp.metacircular.net"
	for _, svc := range []string{"mcias", "metacrypt", "mcr", "mcns"} {
		if out := tool("mcnsctl", "", "--session", session, "records", "list", "svc."+domain, "--name", svc, "--type", "A"); !strings.Contains(out, "127.0.0.1") {
			t.Errorf("%s.svc.%s not registered:\n%s", svc, domain, out)
		}
	}
	mcrSession := filepath.Join(t.TempDir(), "r.json")
	tool("mcrctl", adminPassword+"\n", "--session", mcrSession, "login", "-u", "admin", "--password-stdin")
	tool("mcrctl", "", "--session", mcrSession, "repos", "list")
	if out := tool("mcproxyctl", "", "routes", "list"); !strings.Contains(out, "mcns.svc."+domain) {
		t.Errorf("mcproxyctl routes list with the env exports:\n%s", out)
	}

	// Metacrypt is unsealed and its CA holds the seed root: the mcp-agent
	// (with the token the launcher provisioned) gets a certificate for a
	// service name that openssl verifies against the seed root, and is
	// refused the bare suffix.
	if out := tool("metacryptctl", "", "status"); !regexp.MustCompile(`sealed\s+false`).MatchString(out) {
		t.Errorf("metacryptctl status:\n%s", out)
	}
	token, err := os.ReadFile(filepath.Join(root, "mcp", "mcp-agent.token"))
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, "METACRYPTCTL_TOKEN="+strings.TrimSpace(string(token)))
	dir := t.TempDir()
	chain, key := filepath.Join(dir, "web.crt"), filepath.Join(dir, "web.key")
	tool("metacryptctl", "", "issue", "services", "--dns", "web.svc."+domain, "--cert-file", chain, "--key-file", key)
	if out, err := exec.Command("openssl", "verify", "-CAfile", vars["METACIRCULAR_CA"], "-untrusted", chain, chain).CombinedOutput(); err != nil {
		t.Errorf("openssl verify of a Metacrypt certificate against the seed root: %v\n%s", err, out)
	}
	checkSSO(t, bin, root, "metacrypt")
	// The ACME directory the launcher prints answers (RFC 8555 §7.1.1).
	acme := endpoints(t, bin, root, "metacrypt")["acme"]
	if out, err := exec.Command("curl", "-sS", "--fail", "--max-time", "10", "--cacert", vars["METACIRCULAR_CA"], acme).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), `"newNonce"`) || !strings.Contains(string(out), `"externalAccountRequired":true`) {
		t.Errorf("ACME directory %s: %v\n%s", acme, err, out)
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(bin), "metacryptctl"), "issue", "services", "--dns", "svc."+domain)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("the agent was issued the bare suffix svc.%s:\n%s", domain, out)
	}
}

// platformStatus is `metacircular status --json`.
type platformStatus struct {
	Services []struct {
		Name      string            `json:"name"`
		Healthy   bool              `json:"healthy"`
		Endpoints map[string]string `json:"endpoints"`
	} `json:"services"`
}

// endpoints returns the endpoints of the named service, which must be
// running and healthy, in a platform of MCIAS, Metacrypt, MCR, MCNS,
// mc-proxy, then MCP.
func endpoints(t *testing.T, bin, root, name string) map[string]string {
	t.Helper()
	var st platformStatus
	if err := json.Unmarshal([]byte(mustRun(t, bin, "status", "--json", "--root", root)), &st); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range st.Services {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "mcias,metacrypt,mcr,mcns,mc-proxy,mcp" {
		t.Fatalf("status services: %+v; want mcias, metacrypt, mcr, mcns, mc-proxy, then mcp", st.Services)
	}
	for _, s := range st.Services {
		if s.Name == name {
			if !s.Healthy {
				t.Fatalf("%s is not healthy: %+v", name, s)
			}
			return s.Endpoints
		}
	}
	t.Fatalf("no service %s in status", name)
	return nil
}

// checkMCIAS uses the MCIAS the launcher started the way an operator would:
// curl for health, mciasctl with the printed one-time admin password. It
// returns that password.
func checkMCIAS(t *testing.T, bin, root, upOutput string) string {
	t.Helper()
	_, rest, ok := strings.Cut(upOutput, "MCIAS admin: username admin, password ")
	if !ok {
		t.Fatalf("no admin credentials printed:\n%s", upOutput)
	}
	password, _, _ := strings.Cut(rest, " ")
	url, ca := endpoints(t, bin, root, "mcias")["https"], filepath.Join(root, "ca", "ca.crt")
	if out, err := exec.Command("curl", "-sS", "--fail", "--cacert", ca, url+"/v1/health").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), `"status":"ok"`) {
		t.Fatalf("curl health: %v %s", err, out)
	}
	ctl := filepath.Join(filepath.Dir(bin), "mciasctl")
	session := filepath.Join(t.TempDir(), "session.json")
	login := exec.Command(ctl, "--mcias", endpoints(t, bin, root, "mcias")["grpc"], "--ca", ca, "--session", session, "login", "-u", "admin", "--password-stdin")
	login.Stdin = strings.NewReader(password + "\n")
	if out, err := login.CombinedOutput(); err != nil {
		t.Fatalf("mciasctl login: %v\n%s", err, out)
	}
	out, err := exec.Command(ctl, "--session", session, "--json", "accounts", "create", "--system", "mcq").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"account_type": "system"`) {
		t.Fatalf("mciasctl accounts create: %v\n%s", err, out)
	}
	// mcp-agent was created by MCNS's Prepare, offline.
	out, err = exec.Command(ctl, "--session", session, "accounts", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mcp-agent") || !strings.Contains(string(out), "mcq") || !strings.Contains(string(out), "admin") {
		t.Fatalf("mciasctl accounts list: %v\n%s", err, out)
	}
	return password
}

// checkMCNS uses the MCNS the launcher started: dig answers for the
// platform zones, and records changed with mcnsctl — logged in as the
// admin, and with the mcp-agent token the launcher provisioned — show up
// in dig at once.
func checkMCNS(t *testing.T, bin, root, adminPassword string) {
	t.Helper()
	dig, err := exec.LookPath("dig")
	if err != nil {
		if testtool.Required() {
			t.Fatalf("dig not found and METACIRCULAR_REQUIRE_TOOLS=1: %v", err)
		}
		// Not Skip: the caller still has down and re-run to check.
		t.Logf("dig not found, MCNS not checked: %v", err)
		return
	}
	const domain = "mcp.metacircular.net"
	ep := endpoints(t, bin, root, "mcns")
	host, port, err := net.SplitHostPort(ep["dns"])
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("dns endpoint %q: %v", ep["dns"], err)
	}
	query := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(dig, append([]string{"@127.0.0.1", "-p", port, "+short", "+time=2", "+tries=2"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, zone := range []string{"svc." + domain, domain} {
		if soa := strings.Fields(query("SOA", zone)); len(soa) != 7 || soa[0] != "mcns.svc."+domain+"." {
			t.Fatalf("dig SOA %s = %q", zone, soa)
		}
	}
	for _, tcp := range []bool{false, true} {
		args := []string{"SOA", "svc." + domain}
		if tcp {
			args = append(args, "+tcp")
		}
		if query(args...) == "" {
			t.Fatalf("dig %v: no answer", args)
		}
	}

	ca, ctl := filepath.Join(root, "ca", "ca.crt"), filepath.Join(filepath.Dir(bin), "mcnsctl")
	session := filepath.Join(t.TempDir(), "mcnsctl.json")
	mcnsctl := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(ctl, append([]string{"--session", session}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mcnsctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	mcnsctl(adminPassword+"\n", "--server", ep["grpc"], "--mcias", endpoints(t, bin, root, "mcias")["grpc"], "--ca", ca,
		"login", "-u", "admin", "--password-stdin")
	if out := mcnsctl("", "zones", "list"); !strings.Contains(out, "svc."+domain+".") {
		t.Fatalf("mcnsctl zones list:\n%s", out)
	}
	mcnsctl("", "records", "add", "svc."+domain, "web", "A", "192.0.2.10")
	if got := query("A", "web.svc."+domain); got != "192.0.2.10" {
		t.Fatalf("dig A web.svc.%s = %q after mcnsctl records add; want 192.0.2.10", domain, got)
	}
	if out := mcnsctl("", "--json", "zones", "update", "svc."+domain, "--minimum", "120"); !strings.Contains(out, `"minimum": 120`) ||
		!strings.Contains(out, `"primary_ns": "mcns.svc.`+domain+`."`) {
		t.Fatalf("mcnsctl zones update:\n%s", out)
	}
	if soa := strings.Fields(query("SOA", "svc."+domain)); len(soa) != 7 || soa[6] != "120" {
		t.Fatalf("dig SOA after zones update = %q", soa)
	}

	tokenFile := filepath.Join(root, "mcp", "mcp-agent.token")
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mcp-agent token file: %v mode %v", err, fi.Mode())
	}
	agentToken := strings.TrimSpace(string(readFile(t, tokenFile)))
	out := mcnsctl("", "--token", agentToken, "--json", "records", "add", "svc."+domain, "mcq", "A", "192.0.2.11")
	if !strings.Contains(out, `"name": "mcq.svc.`+domain+`."`) {
		t.Fatalf("mcnsctl as mcp-agent:\n%s", out)
	}
	if got := query("A", "mcq.svc."+domain); got != "192.0.2.11" {
		t.Fatalf("dig A mcq.svc.%s = %q; want 192.0.2.11", domain, got)
	}
}

// checkMCProxy reaches MCIAS and Metacrypt (L7) and MCNS's REST API (L4) through the
// mc-proxy the launcher started, by SNI on its one loopback listener, and
// lists its routes with mcproxyctl over the admin socket. A name with no
// route gets no TLS session.
func checkMCProxy(t *testing.T, bin, root string) {
	t.Helper()
	const domain = "mcp.metacircular.net"
	ep := endpoints(t, bin, root, "mc-proxy")
	host, port, err := net.SplitHostPort(ep["https"])
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("mc-proxy https endpoint %q: %v", ep["https"], err)
	}
	ca := filepath.Join(root, "ca", "ca.crt")
	curl := func(name string) ([]byte, error) {
		return exec.Command("curl", "-sS", "--fail", "--max-time", "10", "--resolve", name+":"+port+":127.0.0.1",
			"--cacert", ca, "https://"+name+":"+port+"/v1/health").CombinedOutput()
	}
	for _, svc := range []string{"mcias", "mcns", "metacrypt"} {
		name := svc + ".svc." + domain
		if out, err := curl(name); err != nil || !strings.Contains(string(out), `"status":"ok"`) {
			t.Fatalf("curl %s health through mc-proxy: %v %s", name, err, out)
		}
	}
	// Reset before any certificate is sent, not a name mismatch.
	if out, err := curl("unknown.svc." + domain); err == nil || strings.Contains(string(out), "certificate") {
		t.Fatalf("curl with an unrouted SNI: %v %s; want the connection reset", err, out)
	}

	if ep["admin"] != filepath.Join(root, "mc-proxy", "admin.sock") {
		t.Fatalf("mc-proxy admin endpoint %q", ep["admin"])
	}
	ctl := filepath.Join(filepath.Dir(bin), "mcproxyctl")
	out, err := exec.Command(ctl, "--socket", ep["admin"], "routes", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("mcproxyctl routes list: %v\n%s", err, out)
	}
	for _, want := range []string{"mcias.svc." + domain, "mcns.svc." + domain, "metacrypt.svc." + domain, "l7", "l4"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("mcproxyctl routes list lacks %q:\n%s", want, out)
		}
	}
}

// checkMCR uses the MCR the launcher started: podman logs in with the
// printed line's --cert-dir; through mc-proxy (mcr.svc.D, L4 with a PROXY
// header) the registry challenges with a realm on the name the client
// used and answers once the client has a token from that realm; the web
// UI's sign-in reaches MCIAS's login page, which only happens for a
// registered SSO client.
func checkMCR(t *testing.T, bin, root, adminPassword string) {
	t.Helper()
	const domain = "mcp.metacircular.net"
	ep := endpoints(t, bin, root, "mcr")
	certDir := filepath.Join(root, "mcr", "certs.d")
	podman := exec.Command("podman", "login", "--authfile", filepath.Join(t.TempDir(), "auth.json"),
		"--cert-dir", certDir, ep["registry"], "-u", "admin", "--password-stdin")
	podman.Stdin = strings.NewReader(adminPassword)
	if out, err := podman.CombinedOutput(); err != nil || !strings.Contains(string(out), "Login Succeeded") {
		t.Fatalf("podman login %s: %v\n%s", ep["registry"], err, out)
	}

	_, port, err := net.SplitHostPort(endpoints(t, bin, root, "mc-proxy")["https"])
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(root, "ca", "ca.crt")
	name := "mcr.svc." + domain
	base := "https://" + name + ":" + port
	curl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "10", "--resolve", name + ":" + port + ":127.0.0.1",
			"--cacert", ca}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := curl("-i", base+"/v2/"); !strings.Contains(out, " 401") || !strings.Contains(out, `realm="`+base+`/v2/token"`) {
		t.Fatalf("GET /v2/ through mc-proxy: want 401 with the realm on %s:\n%s", base, out)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(curl("--fail", "-u", "admin:"+adminPassword, base+"/v2/token?service=mcr")), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token through mc-proxy: %v %+v", err, tok)
	}
	if out := curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+tok.Token, base+"/v2/"); out != "200" {
		t.Fatalf("GET /v2/ with a token through mc-proxy: %s", out)
	}

	checkSSO(t, bin, root, "mcr")
}

// checkSSO: the web UI of service svc sends a browser to MCIAS's login
// page, which MCIAS only shows for a registered SSO client.
func checkSSO(t *testing.T, bin, root, svc string) {
	t.Helper()
	jar := filepath.Join(t.TempDir(), "jar")
	out, err := exec.Command("curl", "-sS", "--max-time", "10", "--cacert", filepath.Join(root, "ca", "ca.crt"), "-L", "-c", jar, "-b", jar,
		"-o", "/dev/null", "-w", "%{http_code} %{url_effective}", endpoints(t, bin, root, svc)["web"]+"login").CombinedOutput()
	mcias := endpoints(t, bin, root, "mcias")["web"]
	if err != nil || !strings.HasPrefix(string(out), "200 "+mcias) {
		t.Fatalf("%s's sign-in through MCIAS: %v %s (want 200 at %s)", svc, err, out, mcias)
	}
}

// checkMCP runs the example deployment "up" prints, verbatim: mcp login,
// build (podman build, push to MCR), deploy; the service then answers
// through mc-proxy with a Metacrypt certificate the seed root verifies,
// under the name the agent registered in MCNS; undeploy removes it.
func checkMCP(t *testing.T, bin, root, upOutput, adminPassword string) {
	t.Helper()
	const domain = "mcp.metacircular.net"
	var steps [][]string
	curlLine := ""
	lines := strings.Split(upOutput, "\n")
	for i, l := range lines {
		if !strings.Contains(l, "MCP: deploy the example service") {
			continue
		}
		for _, step := range lines[i+1 : i+5] {
			if cmd, _, _ := strings.Cut(strings.TrimSpace(step), "   #"); strings.HasPrefix(cmd, "curl ") {
				curlLine = cmd
			} else {
				steps = append(steps, strings.Fields(cmd))
			}
		}
	}
	if len(steps) != 3 || curlLine == "" {
		t.Fatalf("up does not print the example's deploy commands:\n%s", upOutput)
	}
	podmanEnv := []string{"REGISTRY_AUTH_FILE=" + filepath.Join(t.TempDir(), "auth.json")}
	mcp := func(stdin string, args []string) string {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), podmanEnv...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	mcp(adminPassword+"\n", append(steps[0], "--password-stdin"))
	mcr := endpoints(t, bin, root, "mcr")["registry"]
	t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", mcr+"/hello:v1.0.0").Run() })
	mcp("", steps[1])
	cfg := steps[2][2]
	t.Cleanup(func() { _ = exec.Command(steps[2][0], "--config", cfg, "undeploy", "hello").Run() })
	mcp("", steps[2])

	curl := strings.Fields(curlLine)
	out, err := exec.Command(curl[0], append([]string{"-sS", "--fail", "--max-time", "10"}, curl[1:]...)...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "hello ") {
		t.Fatalf("%s: %v\n%s", curlLine, err, out)
	}
	ep := endpoints(t, bin, root, "mcns")
	_, dnsPort, _ := net.SplitHostPort(ep["dns"])
	if a, err := exec.Command("dig", "+short", "@127.0.0.1", "-p", dnsPort, "hello.svc."+domain, "A").CombinedOutput(); err != nil || strings.TrimSpace(string(a)) != "127.0.0.1" {
		t.Fatalf("dig hello.svc.%s: %v %q", domain, err, a)
	}

	mcp("", []string{steps[2][0], "--config", cfg, "undeploy", "hello"})
	if out, err := exec.Command(curl[0], append([]string{"-sS", "--fail", "--max-time", "10"}, curl[1:]...)...).CombinedOutput(); err == nil {
		t.Fatalf("hello still answers after undeploy: %s", out)
	}
}
