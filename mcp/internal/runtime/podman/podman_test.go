package podman

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/testtool"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
)

// testPodman is podman with storage of the test's own (so removing
// everything removes only the test's containers and images) and a small
// image built FROM scratch.
func testPodman(t *testing.T) (*Podman, string) {
	t.Helper()
	bin := testtool.Require(t, "podman")
	dir := t.TempDir()
	conf := filepath.Join(dir, "storage.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
		filepath.Join(dir, "graph"), filepath.Join(dir, "run"))), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Podman{Bin: bin, Env: []string{"CONTAINERS_STORAGE_CONF=" + conf}, AuthFile: filepath.Join(dir, "auth.json")}
	t.Cleanup(func() {
		for _, args := range [][]string{{"rm", "--all", "--force", "--time", "0"}, {"rmi", "--all", "--force"}} {
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), p.Env...)
			_ = cmd.Run()
		}
	})
	ctxDir := filepath.Join(dir, "ctx")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9", "-o", filepath.Join(ctxDir, "hello"),
		"git.metacircular.net/metacircular/mcp/examples/hello/cmd/hello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte("FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := "localhost/mcp-podman-test:v9.9.9"
	if _, err := p.run(context.Background(), "build", "--quiet", "--tag", ref, ctxDir); err != nil {
		t.Fatal(err)
	}
	return p, ref
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port //nolint:errcheck // a TCP listener
}

func TestLifecycle(t *testing.T) {
	p, ref := testPodman(t)
	ctx := context.Background()
	id, err := p.ImageID(ctx, ref)
	if err != nil || id == "" {
		t.Fatalf("image id: %q %v", id, err)
	}
	if ep, err := p.Entrypoint(ctx, ref); err != nil || len(ep) != 1 || ep[0] != "/hello" {
		t.Fatalf("entrypoint %v %v", ep, err)
	}
	if _, err := p.ImageID(ctx, "localhost/none:v1.0.0"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("missing image: %v", err)
	}
	port := freePort(t)
	name := fmt.Sprintf("mcp-podman-test-%d", port)
	labels := map[string]string{runtime.LabelAgent: "podman-test", runtime.LabelService: "hello"}
	cid, err := p.Create(ctx, runtime.ContainerSpec{
		Name: name, Image: ref, Env: []string{fmt.Sprintf("PORT=%d", port)},
		Ports: []runtime.PortMapping{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: port}}, Labels: labels,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	st, err := p.Inspect(ctx, name)
	if err != nil || st.ID != cid || !st.Running() || st.ImageID != id || st.Labels[runtime.LabelService] != "hello" {
		t.Fatalf("inspect: %+v %v", st, err)
	}
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			body = string(b)
			break
		}
	}
	if body != "hello v9.9.9\n" {
		t.Fatalf("container answered %q", body)
	}
	list, err := p.List(ctx, labels)
	if err != nil || len(list) != 1 || list[0].Name != name || !list[0].Running() {
		t.Fatalf("list: %+v %v", list, err)
	}
	if other, err := p.List(ctx, map[string]string{runtime.LabelAgent: "someone-else"}); err != nil || len(other) != 0 {
		t.Fatalf("list by another label: %+v %v", other, err)
	}
	var logs bytes.Buffer
	if err := p.Logs(ctx, name, runtime.LogOptions{Tail: 5}, &logs); err != nil || !strings.Contains(logs.String(), "hello v9.9.9 listening") {
		t.Fatalf("logs: %v %q", err, logs.String())
	}
	if err := p.Stop(ctx, name, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Inspect(ctx, name); err != nil || st.Running() || st.State != runtime.StateExited {
		t.Fatalf("after stop: %+v %v", st, err)
	}
	if err := p.Remove(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(ctx, name); err != nil {
		t.Fatalf("removing a missing container: %v", err)
	}
	if _, err := p.Inspect(ctx, name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("inspect after remove: %v", err)
	}
	if err := p.Start(ctx, name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("start of a missing container: %v", err)
	}
	if info, err := p.Info(ctx); err != nil || info.Name != "podman" || info.Version == "" {
		t.Fatalf("info %+v %v", info, err)
	}
}

func TestPullFailureSaysWhy(t *testing.T) {
	p, _ := testPodman(t)
	_, err := p.Pull(context.Background(), "127.0.0.1:1/nothing:v1.0.0", &runtime.Auth{Registry: "127.0.0.1:1", Username: "mcp-agent", Password: "tok"})
	if err == nil || !strings.Contains(err.Error(), "podman pull") {
		t.Fatalf("%v", err)
	}
	b, err := os.ReadFile(p.AuthFile)
	if err != nil || !strings.Contains(string(b), `"127.0.0.1:1"`) {
		t.Fatalf("auth file: %v %s", err, b)
	}
	if st, _ := os.Stat(p.AuthFile); st.Mode().Perm() != 0o600 {
		t.Fatalf("auth file mode %v", st.Mode())
	}
}
