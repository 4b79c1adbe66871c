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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
)

const (
	testVersion = "v0.0.0-test"
	waitLimit   = 60 * time.Second
)

// buildBinary compiles this command and the platform services it starts
// into dir, as `make build` would, and returns the launcher's path.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", dir+"/", "-ldflags", "-X main.version="+testVersion,
		".", "../../mcias/cmd/mcias", "../../mcias/cmd/mciasctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "metacircular")
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
		checkMCIAS(t, bin, root, up.out.String())
		wantFailure(t, run(t, bin, nil, "up", "--root", root), fmt.Sprintf("already running on %s (pid %d)", root, up.cmd.Process.Pid))

		if out := mustRun(t, bin, "down", "--root", root); !strings.Contains(out, "stopped") {
			t.Errorf("down output: %q", out)
		}
		if err := up.wait(t); err != nil {
			t.Errorf("up exited with %v:\n%s", err, up.out)
		}
		if !strings.Contains(up.out.String(), "mcias is healthy") {
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
	})
}

// checkMCIAS uses the MCIAS the launcher started the way an operator would:
// curl for health, mciasctl with the printed one-time admin password.
func checkMCIAS(t *testing.T, bin, root, upOutput string) {
	t.Helper()
	_, rest, ok := strings.Cut(upOutput, "MCIAS admin: username admin, password ")
	if !ok {
		t.Fatalf("no admin credentials printed:\n%s", upOutput)
	}
	password, _, _ := strings.Cut(rest, " ")
	var st struct {
		Services []struct {
			Name      string            `json:"name"`
			Healthy   bool              `json:"healthy"`
			Endpoints map[string]string `json:"endpoints"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, bin, "status", "--json", "--root", root)), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 1 || st.Services[0].Name != "mcias" || !st.Services[0].Healthy {
		t.Fatalf("status services: %+v", st.Services)
	}
	url, ca := st.Services[0].Endpoints["https"], filepath.Join(root, "ca", "ca.crt")
	if out, err := exec.Command("curl", "-sS", "--fail", "--cacert", ca, url+"/v1/health").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), `"status":"ok"`) {
		t.Fatalf("curl health: %v %s", err, out)
	}
	ctl := filepath.Join(filepath.Dir(bin), "mciasctl")
	session := filepath.Join(t.TempDir(), "session.json")
	login := exec.Command(ctl, "--server", url, "--ca", ca, "--session", session, "login", "-u", "admin", "--password-stdin")
	login.Stdin = strings.NewReader(password + "\n")
	if out, err := login.CombinedOutput(); err != nil {
		t.Fatalf("mciasctl login: %v\n%s", err, out)
	}
	out, err := exec.Command(ctl, "--session", session, "--json", "accounts", "create", "--system", "mcp-agent").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"account_type": "system"`) {
		t.Fatalf("mciasctl accounts create: %v\n%s", err, out)
	}
	out, err = exec.Command(ctl, "--session", session, "accounts", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mcp-agent") || !strings.Contains(string(out), "admin") {
		t.Fatalf("mciasctl accounts list: %v\n%s", err, out)
	}
}
