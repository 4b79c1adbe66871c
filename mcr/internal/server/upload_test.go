package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"git.metacircular.net/metacircular/mcdsl/syncbuf"
)

// killedPatch sends a PATCH of chunk announcing its full length over a raw
// TLS connection, writes only the first sent bytes, and drops the
// connection: a client killed mid-chunk.
func killedPatch(host, loc, token string, chunk []byte, start, sent int) error {
	conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: env.ca.Pool(), MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return err
	}
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\n", loc, host, token)
	fmt.Fprintf(w, "Content-Range: %d-%d\r\nContent-Length: %d\r\n\r\n", start, start+len(chunk)-1, len(chunk))
	_, _ = w.Write(chunk[:sent])
	err = w.Flush()
	time.Sleep(200 * time.Millisecond)
	_ = conn.Close()
	return err
}

// uploadRange asks a session where it stands: the last byte received.
func uploadRange(t *testing.T, c *regClient, loc string) int64 {
	t.Helper()
	r := c.do(t, http.MethodGet, loc, nil, nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("GET %s: %d %s", loc, r.status, r.body)
	}
	end, err := strconv.ParseInt(strings.TrimPrefix(r.header.Get("Range"), "0-"), 10, 64)
	if err != nil {
		t.Fatalf("Range %q", r.header.Get("Range"))
	}
	return end
}

// TestChunkedUploadResumesAfterKilledClient: a client dies in the middle
// of its second chunk; a new client asks the session's status, sends the
// rest from the next byte and commits the blob, whose content is exact.
// A chunk that overlaps what arrived is refused with 416 and the Range.
func TestChunkedUploadResumesAfterKilledClient(t *testing.T) {
	h := start(t, options{})
	blob := make([]byte, 3<<20)
	_, _ = rand.Read(blob)
	d := digest.FromBytes(blob)
	c := h.client(alice)
	r := c.do(t, http.MethodPost, "/v2/team/big/blobs/uploads/", nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatal(r.status)
	}
	loc := r.header.Get("Location")
	first := 1 << 20
	r = c.do(t, http.MethodPatch, loc, http.Header{"Content-Range": {fmt.Sprintf("0-%d", first-1)}, "Content-Type": {"application/octet-stream"}}, blob[:first])
	if r.status != http.StatusAccepted || r.header.Get("Range") != fmt.Sprintf("0-%d", first-1) {
		t.Fatalf("first chunk: %d %v", r.status, r.header)
	}
	tok := h.token(t, alice, "repository:team/big:pull,push")
	if err := killedPatch(h.host, loc, tok, blob[first:2<<20], first, 300<<10); err != nil {
		t.Fatal(err)
	}
	// The server notices the dropped connection on its own schedule (a
	// loaded machine may take a while); until then the session is still
	// receiving and its status may change. Resume once it has given up.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(h.logs.String(), "unexpected EOF") {
		if time.Now().After(deadline) {
			t.Fatal("the server never noticed the killed client")
		}
		time.Sleep(20 * time.Millisecond)
	}

	c2 := h.client(alice)
	end := uploadRange(t, c2, loc)
	if end < int64(first-1) || end >= 2<<20 {
		t.Fatalf("after the killed chunk the upload ends at %d", end)
	}
	// Overlapping what was received: 416 with the Range to resume from.
	r = c2.do(t, http.MethodPatch, loc, http.Header{"Content-Range": {fmt.Sprintf("0-%d", 9)}}, blob[:10])
	if r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Range") != fmt.Sprintf("0-%d", end) || r.header.Get("Location") == "" {
		t.Fatalf("overlapping chunk: %d %v", r.status, r.header)
	}
	// Skipping ahead: 416 too.
	r = c2.do(t, http.MethodPatch, loc, http.Header{"Content-Range": {fmt.Sprintf("%d-%d", end+10, end+19)}}, blob[end+10:end+20])
	if r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("out-of-order chunk: %d", r.status)
	}
	rest := blob[end+1:]
	r = c2.do(t, http.MethodPut, loc+"?digest="+d.String(),
		http.Header{"Content-Range": {fmt.Sprintf("%d-%d", end+1, len(blob)-1)}, "Content-Type": {"application/octet-stream"}}, rest)
	if r.status != http.StatusCreated {
		t.Fatalf("final chunk: %d %s", r.status, r.body)
	}
	got := c2.do(t, http.MethodGet, "/v2/team/big/blobs/"+d.String(), nil, nil)
	if got.status != http.StatusOK || !bytes.Equal(got.body, blob) {
		t.Fatalf("resumed blob: %d, %d bytes, equal %v", got.status, len(got.body), bytes.Equal(got.body, blob))
	}
	// A ranged read of it.
	got = c2.do(t, http.MethodGet, "/v2/team/big/blobs/"+d.String(), http.Header{"Range": {"bytes=100-199"}}, nil)
	if got.status != http.StatusPartialContent || !bytes.Equal(got.body, blob[100:200]) {
		t.Fatalf("range read: %d", got.status)
	}
}

// binServer runs the mcr binary on h's configuration.
type binServer struct {
	cmd  *exec.Cmd
	done chan struct{}
	logs *syncbuf.Buffer
}

func runBinary(t *testing.T, cfgPath, base string) *binServer {
	t.Helper()
	s := &binServer{logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(env.mcrBin, "--config", cfgPath, "server")
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.done
	})
	if err := waitHealthy(base+"/v1/health", s.done); err != nil {
		t.Fatalf("%v\n%s", err, s.logs.String())
	}
	return s
}

// TestServerKilledMidUpload kills the mcr process (SIGKILL) in the middle
// of a chunk; after a restart every committed blob is intact and pulls,
// the interrupted session resumes from what was recorded, and `mcr gc`
// (another process) deletes nothing that is referenced.
func TestServerKilledMidUpload(t *testing.T) {
	dir := t.TempDir()
	host, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "mcr.toml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[mcias]
server_url = %q
ca_cert = %q
[registry]
public_url = "https://%s"
[gc]
disabled = true
grace = "1ns"
`, host, grpcAddr, env.cert.CertPath, env.cert.KeyPath, filepath.Join(dir, "mcr.db"), env.mciasURL, env.ca.CertPath(), host)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "https://" + host
	srv := runBinary(t, cfgPath, base)
	h := &harness{host: host, base: base}
	c := h.client(admin)
	imgs := []image{newImage("before-1"), newImage("before-2")}
	for i, img := range imgs {
		c.pushImage(t, "keep/app", fmt.Sprintf("v%d", i), img)
	}
	blob := make([]byte, 4<<20)
	_, _ = rand.Read(blob)
	r := c.do(t, http.MethodPost, "/v2/keep/app/blobs/uploads/", nil, nil)
	loc := r.header.Get("Location")
	r = c.do(t, http.MethodPatch, loc, http.Header{"Content-Range": {"0-1048575"}}, blob[:1<<20])
	if r.status != http.StatusAccepted {
		t.Fatal(r.status)
	}
	// A chunk in flight when the server dies.
	tok := h.token(t, admin, "repository:keep/app:pull,push")
	go func() { _ = killedPatch(host, loc, tok, blob[1<<20:], 1<<20, 1<<20) }()
	time.Sleep(100 * time.Millisecond)
	_ = srv.cmd.Process.Kill()
	<-srv.done

	runBinary(t, cfgPath, base)
	c = h.client(admin)
	for i, img := range imgs {
		got, err := c.pullImage(t, "keep/app", fmt.Sprintf("v%d", i))
		if err != nil || got != img.digest {
			t.Fatalf("after the crash: %v (%s)", err, got)
		}
	}
	end := uploadRange(t, c, loc)
	if end < 1<<20-1 {
		t.Fatalf("recorded upload shrank to %d", end)
	}
	r = c.do(t, http.MethodPut, loc+"?digest="+digest.FromBytes(blob).String(),
		http.Header{"Content-Range": {fmt.Sprintf("%d-%d", end+1, len(blob)-1)}}, blob[end+1:])
	if r.status != http.StatusCreated {
		t.Fatalf("resume after restart: %d %s", r.status, r.body)
	}
	out, err := exec.CommandContext(context.Background(), env.mcrBin, "--config", cfgPath, "gc").CombinedOutput()
	if err != nil {
		t.Fatalf("mcr gc: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "deleted 1 blobs") {
		t.Errorf("mcr gc should delete the one unreferenced blob:\n%s", out)
	}
	for i, img := range imgs {
		if got, err := c.pullImage(t, "keep/app", fmt.Sprintf("v%d", i)); err != nil || got != img.digest {
			t.Fatalf("after gc: %v", err)
		}
	}
	out, err = exec.CommandContext(context.Background(), env.mcrBin, "--config", cfgPath, "status", "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"manifests": 2`) || !strings.Contains(string(out), `"tags": 2`) {
		t.Fatalf("mcr status: %v\n%s", err, out)
	}
}
