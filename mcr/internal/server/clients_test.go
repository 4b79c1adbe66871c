package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/testtool"
)

// craneVersion pins go-containerregistry's crane.
const craneVersion = "v0.22.1"

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// certDir is a containers-style certificate directory trusting the test
// CA for host.
func certDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca, err := os.ReadFile(env.ca.CertPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPodman builds an image FROM scratch with a static binary, logs in
// through the token flow (MCIAS password), pushes it through mc-proxy's L7
// route with TLS verified against the test CA, removes it locally and
// pulls it back.
func TestPodman(t *testing.T) {
	podman := testtool.Require(t, "podman")
	h := start(t, options{behindProxy: true})
	registry := startProxy(t, h).host
	work := t.TempDir()
	prog := filepath.Join(work, "hello.go")
	if err := os.WriteFile(prog, []byte("package main\n\nfunc main() { println(\"hello from mcr\") }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Join(work, "ctx")
	if err := os.MkdirAll(ctxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(ctxDir, "hello"), prog)
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte("FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	conf := filepath.Join(state, "containers.conf")
	if err := os.WriteFile(conf, []byte("[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	penv := []string{"CONTAINERS_CONF=" + conf, "REGISTRY_AUTH_FILE=" + filepath.Join(state, "auth.json"), "TMPDIR=" + t.TempDir()}
	base := []string{"--root", filepath.Join(state, "root"), "--runroot", filepath.Join(state, "runroot"), "--storage-driver", "vfs"}
	p := func(args ...string) string {
		return run(t, penv, podman, append(append([]string{}, base...), args...)...)
	}
	certs := certDir(t)
	ref := registry + "/team/hello:1.0.0"
	p("build", "--format", "oci", "-t", ref, ctxDir)
	out := p("login", "--cert-dir", certs, "-u", alice, "-p", env.passwords[alice], registry)
	if !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("podman login: %s", out)
	}
	digestFile := filepath.Join(state, "digest")
	p("push", "--cert-dir", certs, "--digestfile", digestFile, ref)
	d, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatal(err)
	}
	local := strings.TrimSpace(string(d))
	if served := h.client(agent).do(t, "HEAD", "/v2/team/hello/manifests/1.0.0", nil, nil); served.header.Get("Docker-Content-Digest") != local {
		t.Fatalf("MCR serves %q for the tag, podman pushed %q", served.header.Get("Docker-Content-Digest"), local)
	}
	p("rmi", ref)
	p("pull", "--cert-dir", certs, ref)
	pulled := strings.TrimSpace(p("image", "inspect", "--format", "{{.Digest}}", ref))
	if pulled == "" || pulled != local {
		t.Fatalf("pulled digest %q, pushed %q", pulled, local)
	}
	// Bob may pull team/ but not push there.
	p("logout", registry)
	p("login", "--cert-dir", certs, "-u", bob, "-p", env.passwords[bob], registry)
	cmd := exec.CommandContext(t.Context(), podman, append(append([]string{}, base...), "push", "--cert-dir", certs, ref, registry+"/team/hello:bob")...)
	cmd.Env = append(os.Environ(), penv...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(strings.ToLower(string(out)), "denied") {
		t.Fatalf("a read-only push succeeded or failed oddly: %v\n%s", err, out)
	}
	// A wrong password fails the login.
	cmd = exec.CommandContext(t.Context(), podman, append(append([]string{}, base...), "login", "--cert-dir", certs, "-u", alice, "-p", "wrong", registry)...)
	cmd.Env = append(os.Environ(), penv...)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("login with a wrong password succeeded:\n%s", out)
	}
}

// writeBlob stores b in an OCI layout and returns its descriptor fields.
func writeBlob(t *testing.T, layout string, b []byte) (string, int) {
	t.Helper()
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(layout, "blobs", "sha256", h), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + h, len(b)
}

// twoPlatformLayout writes an OCI layout holding an index of a linux/amd64
// and a linux/arm64 image, tagged v1; it returns the index digest.
func twoPlatformLayout(t *testing.T) (string, string) {
	t.Helper()
	layout := t.TempDir()
	if err := os.MkdirAll(filepath.Join(layout, "blobs", "sha256"), 0o700); err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, arch := range []string{"amd64", "arm64"} {
		cfgD, cfgN := writeBlob(t, layout, []byte(fmt.Sprintf(`{"architecture":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, arch)))
		layD, layN := writeBlob(t, layout, []byte(strings.Repeat(arch, 1000)))
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cfgD, cfgN, layD, layN)
		md, mn := writeBlob(t, layout, []byte(m))
		entries = append(entries, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"architecture":%q,"os":"linux"}}`, md, mn, arch))
	}
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}`, strings.Join(entries, ","))
	idxD, idxN := writeBlob(t, layout, []byte(idx))
	top := fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}`, idxD, idxN)
	if err := os.WriteFile(filepath.Join(layout, "index.json"), []byte(top), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return layout, idxD
}

// TestSkopeoCopyAll copies a two-platform index into MCR with --all and
// back out, and checks the index digest and both platforms survive.
func TestSkopeoCopyAll(t *testing.T) {
	skopeo := testtool.Require(t, "skopeo")
	h := start(t, options{})
	layout, idx := twoPlatformLayout(t)
	certs := certDir(t)
	dst := "docker://" + h.host + "/team/multi:v1"
	run(t, nil, skopeo, "copy", "--all", "--preserve-digests", "--dest-cert-dir", certs, "--dest-creds", alice+":"+env.passwords[alice], "oci:"+layout+":v1", dst)
	raw := run(t, nil, skopeo, "inspect", "--raw", "--cert-dir", certs, "--creds", bob+":"+env.passwords[bob], dst)
	if got := "sha256:" + hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte(raw)); return s[:] }()); got != idx {
		t.Fatalf("index digest in MCR %s, pushed %s", got, idx)
	}
	var index struct {
		Manifests []struct {
			Platform struct{ Architecture string } `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(raw), &index); err != nil || len(index.Manifests) != 2 {
		t.Fatalf("index: %v %s", err, raw)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		out := run(t, nil, skopeo, "inspect", "--override-arch", arch, "--override-os", "linux", "--cert-dir", certs, "--creds", agent+":"+env.passwords[agent], dst)
		if !strings.Contains(out, `"Architecture": "`+arch+`"`) {
			t.Fatalf("platform %s: %s", arch, out)
		}
	}
	back := t.TempDir()
	run(t, nil, skopeo, "copy", "--all", "--preserve-digests", "--src-cert-dir", certs, "--src-creds", bob+":"+env.passwords[bob], dst, "oci:"+back+":v1")
	top, err := os.ReadFile(filepath.Join(back, "index.json"))
	if err != nil || !strings.Contains(string(top), idx) {
		t.Fatalf("copied back: %v %s", err, top)
	}
}

// TestCrane drives crane through copy, ls, manifest, pull, push and
// delete, authenticated with crane auth login.
func TestCrane(t *testing.T) {
	crane := goTool(t, "crane", "github.com/google/go-containerregistry/cmd/crane", craneVersion)
	h := start(t, options{})
	cenv := []string{"DOCKER_CONFIG=" + t.TempDir(), "SSL_CERT_FILE=" + env.ca.CertPath()}
	c := func(args ...string) string { return run(t, cenv, crane, args...) }
	c("auth", "login", h.host, "-u", alice, "-p", env.passwords[alice])
	img := newImage("crane")
	h.client(alice).pushImage(t, "team/src", "v1", img)
	c("copy", h.host+"/team/src:v1", h.host+"/team/dst:v1")
	if out := c("ls", h.host+"/team/dst"); strings.TrimSpace(out) != "v1" {
		t.Fatalf("crane ls: %q", out)
	}
	if out := c("manifest", h.host+"/team/dst:v1"); out != string(img.manifest) {
		t.Fatalf("crane manifest: %s", out)
	}
	tarball := filepath.Join(t.TempDir(), "img.tar")
	c("pull", "--format", "tarball", h.host+"/team/dst:v1", tarball)
	pushed := strings.TrimSpace(c("push", tarball, h.host+"/team/pushed:v2"))
	if !strings.Contains(pushed, "@sha256:") {
		t.Fatalf("crane push: %s", pushed)
	}
	digestOut := strings.TrimSpace(c("digest", h.host+"/team/pushed:v2"))
	c("delete", h.host+"/team/pushed@"+digestOut)
	cmd := exec.CommandContext(t.Context(), crane, "manifest", h.host+"/team/pushed:v2")
	cmd.Env = append(os.Environ(), cenv...)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "MANIFEST_UNKNOWN") {
		t.Fatalf("deleted manifest still served: %v %s", err, out)
	}
}
