package server_test

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
)

// mcProxy is a real mc-proxy with one L7 route, SNI "localhost", to an
// MCR: TLS terminated with the test CA's certificate, re-encrypted to MCR
// and verified, a PROXY v2 header naming the client first — the route
// the launcher gives mcr.svc.D.
type mcProxy struct {
	host string // localhost:port, the name clients use
	pid  int
}

func startProxy(t *testing.T, h *harness) *mcProxy {
	t.Helper()
	dir := t.TempDir()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mc-proxy.toml")
	toml := fmt.Sprintf(`[server]
admin_socket = %q
shutdown_timeout = "5s"

[database]
path = %q

[[listeners]]
name = "https"
addr = %q

[[routes]]
listener = "https"
hostname = "localhost"
mode = "l7"
backend = %q
tls_cert = %q
tls_key = %q
backend_tls = true
backend_ca = %q
backend_server_name = "localhost"
send_proxy_protocol = true
`, filepath.Join(dir, "admin.sock"), filepath.Join(dir, "mc-proxy.db"), addr, h.host, env.cert.CertPath, env.cert.KeyPath, env.ca.CertPath())
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	cmd := exec.Command(env.proxyBin, "--config", cfg, "server")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mc-proxy log (tail):\n%s", tail(logs.String(), 4000))
		}
	})
	_, port, _ := net.SplitHostPort(addr)
	p := &mcProxy{host: "localhost:" + port, pid: cmd.Process.Pid}
	// Healthy once MCR's health answers through it.
	client := proxyClient()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + p.host + "/v1/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-done:
			t.Fatalf("mc-proxy exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("MCR not reachable through mc-proxy: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proxyClient reaches MCR through an mcProxy, verifying the certificate against
// the test CA; bodies stream (no timeout for the whole exchange).
func proxyClient() *http.Client {
	cfg := tlsConfig().Clone()
	cfg.ServerName = "localhost"
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
}

// peakRSS is a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestLargeBlobThroughMCProxy pushes a blob much larger than mc-proxy's
// whole memory use through its L7 route and pulls it back, checking the
// digest: both directions stream, neither side holds a whole body, and
// the token realm follows the name the client used.
func TestLargeBlobThroughMCProxy(t *testing.T) {
	h := start(t, options{behindProxy: true})
	p := startProxy(t, h)
	client := proxyClient()
	base := "https://" + p.host

	resp, err := client.Get(base + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if want := `realm="` + base + `/v2/token"`; resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), want) {
		t.Fatalf("GET /v2/ through mc-proxy: %d %q; want 401 with %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	tok := h.token(t, alice, "repository:alice/big:push,pull")

	const size = 192 << 20
	src := filepath.Join(t.TempDir(), "blob")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, sum), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + hex.EncodeToString(sum.Sum(nil))
	before := peakRSS(t, p.pid)

	do := func(req *http.Request) *http.Response {
		t.Helper()
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v2/alice/big/blobs/uploads/", nil)
	resp = do(req)
	_ = resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusAccepted || err != nil {
		t.Fatalf("start upload: %d %v", resp.StatusCode, err)
	}
	put, _ := url.Parse(base + "/")
	put = put.ResolveReference(loc)
	q := put.Query()
	q.Set("digest", digest)
	put.RawQuery = q.Encode()
	body, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = body.Close() }()
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPut, put.String(), body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp = do(req)
	msg, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %d MiB through mc-proxy: %d %s", size>>20, resp.StatusCode, msg)
	}

	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v2/alice/big/blobs/"+digest, nil)
	resp = do(req)
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || n != size || "sha256:"+hex.EncodeToString(got.Sum(nil)) != digest {
		t.Fatalf("GET the blob back through mc-proxy: %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	// mc-proxy's peak resident set grew by far less than one body: it
	// streamed both ways.
	grew := peakRSS(t, p.pid) - before
	t.Logf("mc-proxy peak RSS: %d MiB before, grew %d MiB moving %d MiB each way", before>>20, grew>>20, size>>20)
	if grew > size/4 {
		t.Fatalf("mc-proxy's peak RSS grew by %d MiB moving a %d MiB blob each way", grew>>20, size>>20)
	}
}
