// Command mcr measures MCR, the platform's container registry, against the
// CNCF distribution registry (v3.1.2) on the same machine, disk,
// certificate and client, and writes the figures with the ratio
// MCR/distribution to stdout and <out>/mcr-<UTC timestamp>.txt.
//
//	go run ./bench/mcr -duration 10s -out bench/results   (or: bench/run.sh mcr)
//
// Both registries run as they run in production. MCR is the real mcr
// binary (go build ./mcr/cmd/mcr) with a real MCIAS (the mcias binary,
// initialised with `mcias init --password-file`, its default Argon2id
// cost, an account "bench" created through its API) and an access rule
// letting that account pull and push bench/* (POST /v1/policies with the
// MCIAS admin's token). Distribution is the registry binary installed
// with `go install .../cmd/registry@v3.1.2` (CGO_ENABLED=0, same Go
// toolchain) into <repo>/.bin/bench and reused, configured as its
// cmd/registry/config-example.yml (filesystem storage, in-memory blob
// descriptor cache, htpasswd auth) plus TLS, with OTEL_TRACES_EXPORTER=none
// as its deployment guide says when no collector runs. Both serve HTTPS
// with one certificate issued by a seed CA (internal/seedpki) and keep
// their storage under one temporary directory, on the same filesystem as
// the layer files and the cp below.
//
// One client, written here on net/http, talks to both and sends them the
// same requests. It follows each server's challenge on GET /v2/: for MCR
// the Docker token flow (401 Bearer challenge, GET realm with Basic
// credentials, a registry token cached per scope and sent on every
// request, which MCR verifies on every request), for distribution Basic
// credentials on every request (distribution checks the bcrypt hash on
// every request; the htpasswd file is written with bcrypt cost 5, what
// `htpasswd -Bbn` in distribution's deployment guide produces). Each
// transfer starts with its credentials ready (the token fetch, which makes
// MCR log in to MCIAS, is timed and reported apart), so the figures are
// the registries' data paths with per-request authentication. Every
// request is HTTP/1.1 over TLS 1.3, one connection per blob in flight (as
// podman and skopeo do: containers/image's transport does not enable
// HTTP/2); -h2 switches both to HTTP/2.
//
// Images: a single-layer image (one random layer of -big-mib MiB, written
// once to a file) and an image of -layers random layers of 64 KiB to
// 1 MiB (written once), each with a small JSON config and an OCI image
// manifest. Every push goes to a fresh repository and every layer gets a
// unique 32-byte random tail appended while it is sent, so every push
// stores new content (a HEAD before each blob must answer 404) and every
// byte is transferred, hashed and written by the server. A blob is pushed
// monolithically: POST /v2/<name>/blobs/uploads/, then PUT <Location>
// ?digest= with the body streamed from the file; then the manifest PUT by
// tag. A pull GETs the manifest by tag and every blob, streaming each body
// into SHA-256 and checking digest and size. Blobs of one image move
// -parallel at a time (like podman and skopeo). Each transfer runs -reps
// times per registry, alternating which registry goes first, after an
// untimed warm-up push and pull; the median is reported, with the CPU
// time the registry process and the client used (from /proc).
//
// Manifest GETs: -clients goroutines GET the many-layer image's manifest
// by tag back to back for -duration, each response checked against its
// digest.
//
// cp: `cp` of the big layer file to a new file in the same directory,
// -reps times, median. Page cache: hot everywhere. Right before each pull
// the registry's stored blob files are read in full, as cp's source is
// right before each cp; cp's destination is not fsynced (the pull's client
// writes nothing). Pushes are not compared with cp, as both registries
// fsync what they store; `cp` followed by `sync FILE` is reported as the
// disk's bound on a push instead. sync(2) runs (untimed) before every push
// and every cp, so none starts with an earlier step's dirty pages, and
// after each pull the stored blobs are evicted from the page cache
// (fadvise DONTNEED): on this kind of VM a page cache that grows run
// after run makes every later write slower, whichever registry writes.
//
// Memory: each registry process's resident set from /proc/<pid>/status,
// VmRSS once both registries answer and before any registry request
// (idle), and VmHWM, the process's peak, after the warm-ups, transfers
// and manifest GETs (peak).
//
// With two or more CPUs the registry under test and MCIAS run on CPU 0
// (taskset), this client and cp on CPU 1 (-pin=false turns that off).
// Any error stops the run with a non-zero exit and no figures.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"debug/buildinfo"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
	"git.metacircular.net/metacircular/internal/seedpki"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
)

const (
	adminPassword = "bench-admin-password"
	benchUser     = "bench"
	benchPassword = "bench-user-password"

	distributionModule  = "github.com/distribution/distribution/v3"
	distributionVersion = "v3.1.2"

	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"

	mib = 1 << 20
)

type options struct {
	duration   time.Duration
	clients    int
	reps       int
	bigMiB     int
	layers     int
	parallel   int
	bcryptCost int
	h2         bool
	pin        bool
	dir        string
	out        string
	mcrBin     string
	mciasBin   string
	distBin    string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long the manifest GET measurement runs")
	flag.IntVar(&o.clients, "clients", 16, "concurrent clients for manifest GETs")
	flag.IntVar(&o.reps, "reps", 6, "repetitions of each transfer and of cp (the median is reported)")
	flag.IntVar(&o.bigMiB, "big-mib", 200, "size of the single-layer image's layer, MiB")
	flag.IntVar(&o.layers, "layers", 50, "layers of the many-layer image (64 KiB to 1 MiB each)")
	flag.IntVar(&o.parallel, "parallel", 4, "blobs of one image transferred at a time")
	flag.IntVar(&o.bcryptCost, "bcrypt-cost", 5, "bcrypt cost of distribution's htpasswd entry (htpasswd -B's default is 5)")
	flag.BoolVar(&o.h2, "h2", false, "use HTTP/2 for every request (default HTTP/1.1)")
	flag.BoolVar(&o.pin, "pin", true, "with 2+ CPUs: servers on CPU 0, this client and cp on CPU 1")
	flag.StringVar(&o.dir, "dir", "", "parent of the temporary directory holding every file (default: the system temp dir)")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the result file (empty: stdout only)")
	flag.StringVar(&o.mcrBin, "mcr", "", "prebuilt mcr binary (default: go build it)")
	flag.StringVar(&o.mciasBin, "mcias", "", "prebuilt mcias binary (default: go build it)")
	flag.StringVar(&o.distBin, "registry", "", "distribution registry binary (default: <repo>/.bin/bench/registry, installed if missing)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/mcr: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.duration <= 0 || o.clients < 1 || o.reps < 1 || o.bigMiB < 1 || o.layers < 1 || o.parallel < 1 {
		return errors.New("-duration, -clients, -reps, -big-mib, -layers and -parallel must be positive")
	}
	if o.bcryptCost < bcrypt.MinCost || o.bcryptCost > bcrypt.MaxCost {
		return fmt.Errorf("-bcrypt-cost must be %d..%d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	dir, err := os.MkdirTemp(o.dir, "mcr-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()

	if err := buildBinaries(ctx, &o, dir); err != nil {
		return err
	}
	distInfo, err := buildinfo.ReadFile(o.distBin)
	if err != nil {
		return fmt.Errorf("read build info of %s: %w", o.distBin, err)
	}

	// Layer files first, with both CPUs.
	fmt.Fprintln(os.Stderr, "bench/mcr: writing the layer files")
	layerDir := filepath.Join(dir, "layers")
	big, small, err := writeLayers(layerDir, o)
	if err != nil {
		return err
	}

	pinning := "none (-pin=false)"
	var serverCPU []string
	if o.pin && runtime.NumCPU() >= 2 {
		if _, err := exec.LookPath("taskset"); err != nil {
			return errors.New("taskset not found (util-linux); run with -pin=false")
		}
		if err := benchkit.PinSelf(1); err != nil {
			return err
		}
		serverCPU = []string{"taskset", "-c", "0"}
		pinning = "mcr, mcias and distribution on CPU 0 (taskset); this client and cp on CPU 1 (sched_setaffinity, GOMAXPROCS 1)"
	} else if o.pin {
		pinning = "one CPU: no pinning"
	}

	ca, err := seedpki.Init(filepath.Join(dir, "ca"))
	if err != nil {
		return err
	}
	loopback := seedpki.IssueRequest{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	mciasCert, err := ca.Issue("mcias", loopback)
	if err != nil {
		return err
	}
	regCert, err := ca.Issue("registry", loopback)
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}

	var procs []*benchkit.Proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop()
		}
	}()
	fmt.Fprintln(os.Stderr, "bench/mcr: starting mcias, mcr and distribution")
	mcias, mciasURL, adminToken, err := startMCIAS(ctx, o, dir, ca, mciasCert, tlsCfg, serverCPU)
	if mcias != nil {
		procs = append(procs, mcias)
	}
	if err != nil {
		return err
	}
	mcr, err := startMCR(ctx, o, dir, ca, regCert, mciasURL, adminToken, tlsCfg, serverCPU)
	if mcr != nil {
		procs = append(procs, mcr.proc)
	}
	if err != nil {
		return err
	}
	dist, err := startDistribution(ctx, o, dir, regCert, tlsCfg, serverCPU)
	if dist != nil {
		procs = append(procs, dist.proc)
	}
	if err != nil {
		return err
	}
	if err := sameFilesystem(layerDir, mcr.storage, dist.storage); err != nil {
		return err
	}
	fsDesc := benchkit.Filesystem(layerDir)
	// Idle memory: both answer, neither has served a registry request.
	idle := map[string]int64{}
	for _, s := range []*server{mcr, dist} {
		rss, _, err := benchkit.Memory(s.proc.Pid())
		if err != nil {
			return fmt.Errorf("%s: %w", s.proc.Name, err)
		}
		idle[s.proc.Name] = rss
	}

	targets := []*target{
		newTarget("mcr", mcr, tlsCfg, o),
		newTarget("distribution", dist, tlsCfg, o),
	}
	defer func() {
		for _, t := range targets {
			t.tr.CloseIdleConnections()
		}
	}()
	bcryptCheck, err := timeBcrypt(o.bcryptCost)
	if err != nil {
		return err
	}

	loadBefore := benchkit.LoadAvg()
	res, err := measureAll(ctx, o, targets, big, small, layerDir)
	if err != nil {
		for _, p := range procs {
			fmt.Fprintf(os.Stderr, "--- %s log (tail)\n%s\n", p.Name, p.Tail(4000))
		}
		return err
	}

	var report strings.Builder
	writeReport(&report, o, reportInfo{
		loadBefore: loadBefore, distInfo: distInfo, fs: fsDesc, pinning: pinning, bcryptCheck: bcryptCheck,
		big: big, small: small, targets: targets, idleRSS: idle,
	}, res)
	fmt.Print(report.String())
	if o.out == "" {
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil { //nolint:gosec // results are meant to be read
		return err
	}
	path := filepath.Join(o.out, "mcr-"+time.Now().UTC().Format("20060102T150405Z")+".txt")
	if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil { //nolint:gosec // results are meant to be read
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", path)
	return nil
}

// buildBinaries builds mcr and mcias (unless given) and installs the
// distribution registry into <repo>/.bin/bench once.
func buildBinaries(ctx context.Context, o *options, dir string) error {
	build := func(out, pkg string) error {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg) //nolint:gosec // a path in our temporary directory
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		return nil
	}
	if o.mcrBin == "" {
		fmt.Fprintln(os.Stderr, "bench/mcr: building mcr and mcias")
		o.mcrBin = filepath.Join(dir, "bin", "mcr")
		if err := build(o.mcrBin, "git.metacircular.net/metacircular/mcr/cmd/mcr"); err != nil {
			return err
		}
	}
	if o.mciasBin == "" {
		o.mciasBin = filepath.Join(dir, "bin", "mcias")
		if err := build(o.mciasBin, "git.metacircular.net/metacircular/mcias/cmd/mcias"); err != nil {
			return err
		}
	}
	if o.distBin != "" {
		return nil
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gobin := filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), ".bin", "bench")
	o.distBin = filepath.Join(gobin, "registry")
	if info, err := buildinfo.ReadFile(o.distBin); err == nil && info.Main.Path == distributionModule && info.Main.Version == distributionVersion {
		return nil
	}
	fmt.Fprintf(os.Stderr, "bench/mcr: installing distribution %s into %s\n", distributionVersion, gobin)
	cmd := exec.CommandContext(ctx, "go", "install", distributionModule+"/cmd/registry@"+distributionVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go install distribution registry: %w\n%s", err, b)
	}
	return nil
}

// startMCIAS runs MCIAS with its default Argon2id cost and creates the
// bench account; it returns the server, its URL and the admin's token.
func startMCIAS(ctx context.Context, o options, dir string, ca *seedpki.CA, cert seedpki.Issued, tlsCfg *tls.Config, prefix []string) (*benchkit.Proc, string, string, error) {
	d := filepath.Join(dir, "mcias")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, "", "", err
	}
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, "", "", err
	}
	grpcAddr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, "", "", err
	}
	cfg := filepath.Join(d, "mcias.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[log]
level = "info"
`, addr, grpcAddr, cert.CertPath, cert.KeyPath, filepath.Join(d, "mcias.db")), 0o600); err != nil {
		return nil, "", "", err
	}
	pwFile := filepath.Join(d, "admin-password")
	if err := os.WriteFile(pwFile, []byte(adminPassword), 0o600); err != nil {
		return nil, "", "", err
	}
	if b, err := exec.CommandContext(ctx, o.mciasBin, "--config", cfg, "init", "--password-file", pwFile).CombinedOutput(); err != nil { //nolint:gosec // the binary just built
		return nil, "", "", fmt.Errorf("mcias init: %w\n%s", err, b)
	}
	p, err := benchkit.Start("mcias", filepath.Join(d, "mcias.log"), prefix, o.mciasBin, nil, "--config", cfg, "server")
	if err != nil {
		return nil, "", "", err
	}
	base := "https://" + addr
	if err := benchkit.WaitStatus(ctx, p, base+"/v1/health", http.StatusOK, tlsCfg); err != nil {
		return p, "", "", err
	}
	admin, err := mciasclient.New(grpcAddr, ca.CertPath(), "")
	if err != nil {
		return p, "", "", err
	}
	defer func() { _ = admin.Close() }()
	tok, err := admin.Login(ctx, mciasclient.LoginRequest{Username: "admin", Password: adminPassword})
	if err != nil {
		return p, "", "", fmt.Errorf("mcias admin login: %w", err)
	}
	if _, err := admin.CreateAccount(ctx, mciasclient.CreateAccountRequest{
		Username: benchUser, AccountType: "human", Password: benchPassword, Roles: []string{"user"},
	}); err != nil {
		return p, "", "", fmt.Errorf("create the bench account in mcias: %w", err)
	}
	return p, base, tok.Token, nil
}

// server is a registry under test.
type server struct {
	proc    *benchkit.Proc
	base    string // https://127.0.0.1:port
	storage string
	// stored is the file a blob is stored in.
	stored func(digest string) string
	auth   string // how clients authenticate, for the report
	config string // the configuration, for the report
}

// startMCR runs `mcr init` and `mcr server` against MCIAS and adds the
// rule letting the bench account pull and push bench/*.
func startMCR(ctx context.Context, o options, dir string, ca *seedpki.CA, cert seedpki.Issued, mciasURL, adminToken string, tlsCfg *tls.Config, prefix []string) (*server, error) {
	d := filepath.Join(dir, "mcr")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	grpcAddr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(d, "storage")
	base := "https://" + addr
	cfg := filepath.Join(d, "mcr.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[mcias]
server_url = %q
ca_cert = %q
service_name = "mcr"
[log]
level = "info"
format = "text"
[registry]
storage = %q
public_url = %q
token_key = %q
`, addr, grpcAddr, cert.CertPath, cert.KeyPath, filepath.Join(d, "mcr.db"), mciasURL, ca.CertPath(),
		storage, base, filepath.Join(d, "token.key")), 0o600); err != nil {
		return nil, err
	}
	if b, err := exec.CommandContext(ctx, o.mcrBin, "--config", cfg, "init").CombinedOutput(); err != nil { //nolint:gosec // the binary just built
		return nil, fmt.Errorf("mcr init: %w\n%s", err, b)
	}
	p, err := benchkit.Start("mcr", filepath.Join(d, "mcr.log"), prefix, o.mcrBin, nil, "--config", cfg, "server")
	if err != nil {
		return nil, err
	}
	s := &server{
		proc: p, base: base, storage: storage,
		stored: func(dg string) string {
			alg, h, _ := strings.Cut(dg, ":")
			return filepath.Join(storage, "blobs", alg, h[:2], h)
		},
		auth: "MCIAS token flow: GET /v2/ -> 401 Bearer challenge -> GET <realm>?service&scope with Basic credentials " +
			"(MCR logs in to MCIAS for every such request: Argon2id with MCIAS's default cost, not cached) -> registry token " +
			"(EdDSA JWT, 5 min) cached by this client per scope and sent as Bearer on every request; MCR verifies the token " +
			"(signature and claims) on every request, no cache (its 30 s MCIAS validation cache only serves MCIAS tokens given as passwords)",
		config: "the mcr binary, mcr init; [server] TLS 1.3 listener; [log] info, text (one line per request, to a file); " +
			"[registry] storage, public_url, token_key; [gc] defaults (online, every 24h); web UI off; one rule: allow bench pull,push,delete on bench/*",
	}
	if err := benchkit.WaitStatus(ctx, p, base+"/v1/health", http.StatusOK, tlsCfg); err != nil {
		return s, err
	}
	rule, err := json.Marshal(map[string]any{"priority": 10, "effect": "allow", "repository": "bench/*",
		"accounts": []string{benchUser}, "actions": []string{"pull", "push", "delete"}})
	if err != nil {
		return s, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/policies", bytes.NewReader(rule))
	if err != nil {
		return s, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req) //nolint:gosec // loopback server this program started
	if err != nil {
		return s, fmt.Errorf("add the mcr rule: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return s, fmt.Errorf("add the mcr rule: %d %s", resp.StatusCode, body)
	}
	return s, nil
}

// startDistribution runs distribution's registry with its example
// configuration, TLS and an htpasswd file for the bench account.
func startDistribution(ctx context.Context, o options, dir string, cert seedpki.Issued, tlsCfg *tls.Config, prefix []string) (*server, error) {
	d := filepath.Join(dir, "distribution")
	root := filepath.Join(d, "storage")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword), o.bcryptCost)
	if err != nil {
		return nil, err
	}
	htpasswd := filepath.Join(d, "htpasswd")
	if err := os.WriteFile(htpasswd, fmt.Appendf(nil, "%s:%s\n", benchUser, hash), 0o600); err != nil {
		return nil, err
	}
	cfg := filepath.Join(d, "config.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: %s
  tag:
    concurrencylimit: 8
http:
  addr: %s
  tls:
    certificate: %s
    key: %s
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: basic-realm
    path: %s
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`, root, addr, cert.CertPath, cert.KeyPath, htpasswd), 0o600); err != nil {
		return nil, err
	}
	p, err := benchkit.Start("distribution", filepath.Join(d, "registry.log"), prefix, o.distBin,
		[]string{"OTEL_TRACES_EXPORTER=none"}, "serve", cfg)
	if err != nil {
		return nil, err
	}
	base := "https://" + addr
	s := &server{
		proc: p, base: base, storage: root,
		stored: func(dg string) string {
			alg, h, _ := strings.Cut(dg, ":")
			return filepath.Join(root, "docker", "registry", "v2", "blobs", alg, h[:2], h, "data")
		},
		auth: fmt.Sprintf("htpasswd Basic: GET /v2/ -> 401 Basic challenge -> Basic credentials on every request; "+
			"distribution checks the bcrypt hash (cost %d) on every request, no cache", o.bcryptCost),
		config: "cmd/registry/config-example.yml (filesystem driver, blobdescriptor cache inmemory, tag concurrencylimit 8, " +
			"htpasswd, health check) + http.tls; log level info (to a file); OTEL_TRACES_EXPORTER=none",
	}
	// /v2/ without credentials: 401 once it serves.
	return s, benchkit.WaitStatus(ctx, p, base+"/v2/", http.StatusUnauthorized, tlsCfg)
}

// sameFilesystem checks the layer files and both stores are on one
// filesystem.
func sameFilesystem(paths ...string) error {
	var dev uint64
	for i, p := range paths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if i == 0 {
			dev = st.Dev
		} else if st.Dev != dev {
			return fmt.Errorf("%s is not on the same filesystem as %s", p, paths[0])
		}
	}
	return nil
}

// layerFile is random content written once; state is the SHA-256 state
// after its bytes, so a tail can be hashed on without reading it again.
type layerFile struct {
	path  string
	size  int64
	state []byte
}

// writeLayers writes the big layer and the small layers with random,
// incompressible content (ChaCha8 seeded from crypto/rand).
func writeLayers(dir string, o options) (layerFile, []layerFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return layerFile{}, nil, err
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return layerFile{}, nil, err
	}
	rng := mrand.NewChaCha8(seed)
	big, err := writeLayer(filepath.Join(dir, "big"), int64(o.bigMiB)*mib, rng)
	if err != nil {
		return layerFile{}, nil, err
	}
	sizes := mrand.New(rng) //nolint:gosec // layer sizes, not secrets (ChaCha8 seeded from crypto/rand anyway)
	small := make([]layerFile, o.layers)
	for i := range small {
		size := 64<<10 + sizes.Int64N(1<<20-64<<10+1)
		if small[i], err = writeLayer(filepath.Join(dir, fmt.Sprintf("small-%02d", i)), size, rng); err != nil {
			return layerFile{}, nil, err
		}
	}
	return big, small, nil
}

func writeLayer(path string, size int64, rng *mrand.ChaCha8) (layerFile, error) {
	f, err := os.Create(path) //nolint:gosec // in our temporary directory
	if err != nil {
		return layerFile{}, err
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), mib)
	buf := make([]byte, mib)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		_, _ = rng.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			_ = f.Close()
			return layerFile{}, err
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return layerFile{}, err
	}
	if err := f.Close(); err != nil {
		return layerFile{}, err
	}
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return layerFile{}, errors.New("sha256 state cannot be saved")
	}
	state, err := m.MarshalBinary()
	if err != nil {
		return layerFile{}, err
	}
	return layerFile{path: path, size: size, state: state}, nil
}

// blob is one blob of an image: a layer file plus a unique tail, or bytes.
type blob struct {
	path   string // "" for data
	base   int64  // bytes of path
	tail   []byte
	data   []byte
	size   int64
	digest string
}

func (b blob) open() (io.ReadCloser, error) {
	if b.path == "" {
		return io.NopCloser(bytes.NewReader(b.data)), nil
	}
	f, err := os.Open(b.path)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(f, b.base), bytes.NewReader(b.tail)), f}, nil
}

// image is an image to push: fresh repository, config, layers, manifest.
type image struct {
	repo     string
	tag      string
	config   blob
	layers   []blob
	manifest []byte
	digest   string
	bytes    int64 // config and layers
}

func (im image) blobs() []blob { return append([]blob{im.config}, im.layers...) }

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type ociManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// newImage makes an image of files, each with a fresh random tail, so its
// layers, config and manifest are new content.
func newImage(repo string, files []layerFile) (image, error) {
	im := image{repo: repo, tag: "latest"}
	diffIDs := make([]string, 0, len(files))
	for _, f := range files {
		tail := make([]byte, 32)
		if _, err := rand.Read(tail); err != nil {
			return image{}, err
		}
		h := sha256.New()
		u, ok := h.(encoding.BinaryUnmarshaler)
		if !ok {
			return image{}, errors.New("sha256 state cannot be restored")
		}
		if err := u.UnmarshalBinary(f.state); err != nil {
			return image{}, err
		}
		h.Write(tail)
		b := blob{path: f.path, base: f.size, tail: tail, size: f.size + int64(len(tail)), digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}
		im.layers = append(im.layers, b)
		diffIDs = append(diffIDs, b.digest)
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": time.Now().UTC().Format(time.RFC3339Nano),
		"config": map[string]any{"Labels": map[string]string{"bench.repository": repo}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return image{}, err
	}
	im.config = blob{data: cfg, size: int64(len(cfg)), digest: digestOf(cfg)}
	m := ociManifest{SchemaVersion: 2, MediaType: mediaManifest,
		Config: descriptor{MediaType: mediaConfig, Digest: im.config.digest, Size: im.config.size}}
	for _, l := range im.layers {
		m.Layers = append(m.Layers, descriptor{MediaType: mediaLayer, Digest: l.digest, Size: l.size})
	}
	if im.manifest, err = json.Marshal(m); err != nil {
		return image{}, err
	}
	im.digest = digestOf(im.manifest)
	for _, b := range im.blobs() {
		im.bytes += b.size
	}
	return im, nil
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// target is the client's view of one registry.
type target struct {
	name string
	srv  *server
	tr   *http.Transport
	hc   *http.Client

	mu      sync.Mutex
	scheme  string // "basic" or "bearer", from the server's challenge
	realm   string
	service string
	tokens  map[string]string // by scope

	challenges   atomic.Int64 // 401s answered
	tokenFetches []time.Duration
}

func newTarget(name string, s *server, tlsCfg *tls.Config, o options) *target {
	cfg := tlsCfg.Clone()
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		MaxIdleConnsPerHost: max(o.clients, o.parallel) + 2,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
		ForceAttemptHTTP2:   o.h2,
	}
	if !o.h2 {
		cfg.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &target{name: name, srv: s, tr: tr, hc: &http.Client{Transport: tr, Timeout: 10 * time.Minute}, tokens: map[string]string{}}
}

// send makes a request with the credentials for scope, answering one
// authentication challenge (401) and retrying. body, when set, opens the
// request body (again for the retry).
func (t *target) send(ctx context.Context, scope, method, rawURL string, hdr http.Header, body func() (io.ReadCloser, int64, error)) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
		if err != nil {
			return nil, err
		}
		if body != nil {
			rc, n, err := body()
			if err != nil {
				return nil, err
			}
			req.Body, req.ContentLength = rc, n
		}
		copyHeader(req.Header, hdr)
		t.authorize(req, scope)
		resp, err := t.hc.Do(req) //nolint:gosec // loopback server this program started
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, nil
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		drain(resp)
		t.challenges.Add(1)
		if err := t.answer(ctx, challenge, scope); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
		}
	}
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

func (t *target) authorize(req *http.Request, scope string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.scheme {
	case "basic":
		req.SetBasicAuth(benchUser, benchPassword)
	case "bearer":
		if tok := t.tokens[scope]; tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
}

// answer follows a challenge: Basic means credentials on every request;
// Bearer means a token for scope from the realm.
func (t *target) answer(ctx context.Context, challenge, scope string) error {
	scheme, params, err := parseChallenge(challenge)
	if err != nil {
		return err
	}
	switch scheme {
	case "basic":
		t.mu.Lock()
		t.scheme = "basic"
		t.mu.Unlock()
		return nil
	case "bearer":
		if params["realm"] == "" {
			return fmt.Errorf("bearer challenge without realm: %q", challenge)
		}
		start := time.Now()
		tok, err := t.fetchToken(ctx, params["realm"], params["service"], scope)
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.scheme, t.realm, t.service = "bearer", params["realm"], params["service"]
		t.tokens[scope] = tok
		t.tokenFetches = append(t.tokenFetches, time.Since(start))
		t.mu.Unlock()
		return nil
	}
	return fmt.Errorf("unsupported challenge %q", challenge)
}

// parseChallenge parses a WWW-Authenticate value with one challenge:
// scheme, then key=value or key="quoted value" pairs separated by commas.
func parseChallenge(h string) (string, map[string]string, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if scheme == "" {
		return "", nil, errors.New("401 without WWW-Authenticate")
	}
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			return "", nil, fmt.Errorf("bad challenge %q", h)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		var v strings.Builder
		if strings.HasPrefix(after, `"`) {
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				v.WriteByte(after[i])
			}
			if i >= len(after) {
				return "", nil, fmt.Errorf("unterminated quote in challenge %q", h)
			}
			after = after[i+1:]
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			v.WriteString(strings.TrimSpace(after[:end]))
			after = after[end:]
		}
		params[k] = v.String()
		rest = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(after), ","))
	}
	return strings.ToLower(scheme), params, nil
}

// fetchToken is the Docker token request: GET realm?service=&scope= with
// Basic credentials.
func (t *target) fetchToken(ctx context.Context, realm, service, scope string) (string, error) {
	u, err := url.Parse(realm)
	if err != nil {
		return "", fmt.Errorf("token realm %q: %w", realm, err)
	}
	q := u.Query()
	if service != "" {
		q.Set("service", service)
	}
	q.Set("scope", scope)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(benchUser, benchPassword)
	resp, err := t.hc.Do(req) //nolint:gosec // loopback server this program started
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("token answer: %w", err)
	}
	tok := cmp.Or(out.Token, out.AccessToken)
	if tok == "" {
		return "", errors.New("token answer without a token")
	}
	return tok, nil
}

// prepare makes the client ready for scope before a measurement: GET /v2/
// answering the challenge (for MCR: fetching the token for scope).
func (t *target) prepare(ctx context.Context, scope string) error {
	resp, err := t.send(ctx, scope, http.MethodGet, t.srv.base+"/v2/", nil, nil)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: GET /v2/ with credentials: %d", t.name, resp.StatusCode)
	}
	return nil
}

func pushScope(repo string) string { return "repository:" + repo + ":pull,push" }
func pullScope(repo string) string { return "repository:" + repo + ":pull" }

func expect(resp *http.Response, want int, what string) error {
	if resp.StatusCode == want {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	return fmt.Errorf("%s: status %d, want %d: %s", what, resp.StatusCode, want, bytes.TrimSpace(body))
}

// push uploads every blob (parallel at a time) and then the manifest.
func (t *target) push(ctx context.Context, im image, parallel int) error {
	scope := pushScope(im.repo)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, b := range im.blobs() {
		g.Go(func() error { return t.pushBlob(gctx, scope, im.repo, b) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	resp, err := t.send(ctx, scope, http.MethodPut, t.srv.base+"/v2/"+im.repo+"/manifests/"+im.tag,
		http.Header{"Content-Type": {mediaManifest}},
		func() (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(im.manifest)), int64(len(im.manifest)), nil
		})
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated, "PUT manifest"); err != nil {
		return err
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != im.digest {
		return fmt.Errorf("PUT manifest: Docker-Content-Digest %q, want %s", got, im.digest)
	}
	return nil
}

// pushBlob: HEAD (must be absent), POST for a session, PUT with the body.
func (t *target) pushBlob(ctx context.Context, scope, repo string, b blob) error {
	blobURL := t.srv.base + "/v2/" + repo + "/blobs/" + b.digest
	resp, err := t.send(ctx, scope, http.MethodHead, blobURL, nil, nil)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("HEAD %s before push: status %d, want 404 (the push would not transfer it)", b.digest, resp.StatusCode)
	}
	resp, err = t.send(ctx, scope, http.MethodPost, t.srv.base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusAccepted, "POST upload"); err != nil {
		return err
	}
	drain(resp)
	base, err := url.Parse(t.srv.base + "/v2/")
	if err != nil {
		return err
	}
	loc, err := base.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("POST upload: bad Location %q", resp.Header.Get("Location"))
	}
	q := loc.Query()
	q.Set("digest", b.digest)
	loc.RawQuery = q.Encode()
	resp, err = t.send(ctx, scope, http.MethodPut, loc.String(), http.Header{"Content-Type": {"application/octet-stream"}},
		func() (io.ReadCloser, int64, error) {
			rc, err := b.open()
			return rc, b.size, err
		})
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated, "PUT blob "+b.digest); err != nil {
		return err
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != b.digest {
		return fmt.Errorf("PUT blob: Docker-Content-Digest %q, want %s", got, b.digest)
	}
	return nil
}

// pull fetches the manifest by tag and every blob it names (parallel at
// a time), checking every digest and size; it returns the blob bytes.
func (t *target) pull(ctx context.Context, im image, parallel int) (int64, error) {
	scope := pullScope(im.repo)
	raw, err := t.getManifest(ctx, scope, im.repo, im.tag, im.digest)
	if err != nil {
		return 0, err
	}
	var m ociManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, fmt.Errorf("manifest: %w", err)
	}
	descs := append([]descriptor{m.Config}, m.Layers...)
	var total atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, d := range descs {
		g.Go(func() error {
			n, err := t.pullBlob(gctx, scope, im.repo, d)
			total.Add(n)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return total.Load(), nil
}

var accept = http.Header{"Accept": {mediaManifest + ", application/vnd.docker.distribution.manifest.v2+json"}}

// getManifest GETs a manifest by reference and checks it has digest want.
func (t *target) getManifest(ctx context.Context, scope, repo, ref, want string) ([]byte, error) {
	resp, err := t.send(ctx, scope, http.MethodGet, t.srv.base+"/v2/"+repo+"/manifests/"+ref, accept, nil)
	if err != nil {
		return nil, err
	}
	if err := expect(resp, http.StatusOK, "GET manifest"); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("GET manifest: %w", err)
	}
	if got := digestOf(body); got != want {
		return nil, fmt.Errorf("GET manifest %s:%s: content has digest %s, want %s", repo, ref, got, want)
	}
	return body, nil
}

func (t *target) pullBlob(ctx context.Context, scope, repo string, d descriptor) (int64, error) {
	resp, err := t.send(ctx, scope, http.MethodGet, t.srv.base+"/v2/"+repo+"/blobs/"+d.Digest, nil, nil)
	if err != nil {
		return 0, err
	}
	if err := expect(resp, http.StatusOK, "GET blob "+d.Digest); err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 256<<10))
	if err != nil {
		return n, fmt.Errorf("GET blob %s: %w", d.Digest, err)
	}
	if n != d.Size {
		return n, fmt.Errorf("GET blob %s: %d bytes, want %d", d.Digest, n, d.Size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest {
		return n, fmt.Errorf("GET blob %s: content has digest %s", d.Digest, got)
	}
	return n, nil
}

// warm reads files in full so they are in the page cache.
func warm(paths ...string) error {
	buf := make([]byte, mib)
	for _, p := range paths {
		f, err := os.Open(p) //nolint:gosec // files of our temporary directory
		if err != nil {
			return fmt.Errorf("warm page cache: %w", err)
		}
		_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("warm page cache: %w", err)
		}
	}
	return nil
}

// dropCache evicts files' (clean) pages from the page cache.
func dropCache(paths ...string) error {
	for _, p := range paths {
		f, err := os.Open(p) //nolint:gosec // files of our temporary directory
		if err != nil {
			return fmt.Errorf("drop page cache: %w", err)
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) //nolint:gosec // a file descriptor fits an int
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("drop page cache of %s: %w", p, err)
		}
	}
	return nil
}

// sample is one timed transfer.
type sample struct {
	secs   float64
	bytes  int64
	cpuSec float64 // the registry process's CPU time during it
	cliSec float64 // this client's
}

func (s sample) mibps() float64 { return float64(s.bytes) / mib / s.secs }

// cpuMeter reads the CPU time of the registry process and of this client.
type cpuMeter struct {
	pid      int
	srv, cli int64
}

func startCPU(pid int) (cpuMeter, error) {
	m := cpuMeter{pid: pid}
	var err1, err2 error
	m.srv, err1 = benchkit.CPUTicks(pid)
	m.cli, err2 = benchkit.CPUTicks(os.Getpid())
	return m, errors.Join(err1, err2)
}

// since returns the CPU seconds used by the server and the client since
// the meter started.
func (m cpuMeter) since() (float64, float64, error) {
	s, err1 := benchkit.CPUTicks(m.pid)
	c, err2 := benchkit.CPUTicks(os.Getpid())
	return float64(s-m.srv) / 100, float64(c-m.cli) / 100, errors.Join(err1, err2)
}

// timed runs fn and measures wall time and the server's and client's CPU
// time.
func timed(pid int, fn func() (int64, error)) (sample, error) {
	m, err := startCPU(pid)
	if err != nil {
		return sample{}, err
	}
	start := time.Now()
	n, err := fn()
	secs := time.Since(start).Seconds()
	if err != nil {
		return sample{}, err
	}
	srv, cli, err := m.since()
	if err != nil {
		return sample{}, err
	}
	return sample{secs: secs, bytes: n, cpuSec: srv, cliSec: cli}, nil
}

// getStats is the manifest GET measurement.
type getStats struct {
	requests int
	secs     float64
	p50, p99 time.Duration
	cpuSec   float64
	cliSec   float64
}

// results hold every measurement, by figure and target name.
type results struct {
	transfers map[string]map[string][]sample // figure -> target -> samples
	gets      map[string]getStats
	cp        []sample
	cpSync    []sample
	repos     int
	mem       map[string]memUse // by target, after the loads
}

// memUse is a registry process's resident set (VmRSS) and its peak
// (VmHWM), in KiB.
type memUse struct{ rss, hwm int64 }

const (
	figPushBig   = "push single-layer"
	figPullBig   = "pull single-layer"
	figPushSmall = "push many-layer"
	figPullSmall = "pull many-layer"
)

func measureAll(ctx context.Context, o options, targets []*target, big layerFile, small []layerFile, layerDir string) (results, error) {
	res := results{transfers: map[string]map[string][]sample{}, gets: map[string]getStats{}, mem: map[string]memUse{}}
	for _, f := range []string{figPushBig, figPullBig, figPushSmall, figPullSmall} {
		res.transfers[f] = map[string][]sample{}
	}
	repoSeq := 0
	newRepo := func(kind string) string {
		repoSeq++
		return fmt.Sprintf("bench/%s-%d", kind, repoSeq)
	}
	// pushPull pushes a new image of files to t in a fresh repository and
	// pulls it back; with record, both are timed and recorded.
	pushPull := func(t *target, kind string, files []layerFile, pushFig, pullFig string, record bool) (image, error) {
		im, err := newImage(newRepo(kind), files)
		if err != nil {
			return image{}, err
		}
		if err := t.prepare(ctx, pushScope(im.repo)); err != nil {
			return image{}, err
		}
		// Every push starts with no dirty pages waiting for writeback
		// (the layer files, the previous push's leftovers).
		unix.Sync()
		ch := t.challenges.Load()
		s, err := timed(t.srv.proc.Pid(), func() (int64, error) { return im.bytes, t.push(ctx, im, o.parallel) })
		if err != nil {
			return image{}, fmt.Errorf("%s: push %s: %w", t.name, im.repo, err)
		}
		if t.challenges.Load() != ch {
			return image{}, fmt.Errorf("%s: push %s: authentication challenge inside the timed push", t.name, im.repo)
		}
		stored := make([]string, 0, len(im.layers)+1)
		for _, b := range im.blobs() {
			stored = append(stored, t.srv.stored(b.digest))
		}
		if err := warm(stored...); err != nil {
			return image{}, fmt.Errorf("%s: %w", t.name, err)
		}
		if err := t.prepare(ctx, pullScope(im.repo)); err != nil {
			return image{}, err
		}
		ch = t.challenges.Load()
		p, err := timed(t.srv.proc.Pid(), func() (int64, error) { return t.pull(ctx, im, o.parallel) })
		if err != nil {
			return image{}, fmt.Errorf("%s: pull %s: %w", t.name, im.repo, err)
		}
		if p.bytes != im.bytes {
			return image{}, fmt.Errorf("%s: pull %s: %d bytes, pushed %d", t.name, im.repo, p.bytes, im.bytes)
		}
		if t.challenges.Load() != ch {
			return image{}, fmt.Errorf("%s: pull %s: authentication challenge inside the timed pull", t.name, im.repo)
		}
		// The stored copies leave the page cache, so the next push writes
		// into recycled memory rather than growing the cache (which on
		// this VM makes every later write slower, for both registries).
		if err := dropCache(stored...); err != nil {
			return image{}, fmt.Errorf("%s: %w", t.name, err)
		}
		if record {
			res.transfers[pushFig][t.name] = append(res.transfers[pushFig][t.name], s)
			res.transfers[pullFig][t.name] = append(res.transfers[pullFig][t.name], p)
			fmt.Fprintf(os.Stderr, "bench/mcr: %-12s %-18s %8.1f MiB/s (cpu s %.2f+%.2f)   %-18s %8.1f MiB/s (cpu s %.2f+%.2f)\n",
				t.name, pushFig, s.mibps(), s.cpuSec, s.cliSec, pullFig, p.mibps(), p.cpuSec, p.cliSec)
		}
		return im, nil
	}

	fmt.Fprintln(os.Stderr, "bench/mcr: warm-up (untimed push and pull of the many-layer image)")
	for _, t := range targets {
		if _, err := pushPull(t, "warmup", small, "", "", false); err != nil {
			return res, err
		}
	}
	// order alternates which registry goes first from one repetition to
	// the next.
	order := func(rep int) []*target {
		if rep%2 == 1 {
			return []*target{targets[1], targets[0]}
		}
		return targets
	}
	for rep := range o.reps {
		for _, t := range order(rep) {
			if _, err := pushPull(t, "single", []layerFile{big}, figPushBig, figPullBig, true); err != nil {
				return res, err
			}
		}
	}
	last := map[string]image{}
	for rep := range o.reps {
		for _, t := range order(rep) {
			im, err := pushPull(t, "many", small, figPushSmall, figPullSmall, true)
			if err != nil {
				return res, err
			}
			last[t.name] = im
		}
	}
	for _, t := range targets {
		st, err := manifestGets(ctx, t, last[t.name], o)
		if err != nil {
			return res, err
		}
		res.gets[t.name] = st
		fmt.Fprintf(os.Stderr, "bench/mcr: %-12s manifest GETs %8.0f /s\n", t.name, float64(st.requests)/st.secs)
	}
	// Peak memory: every load a registry serves is behind it.
	for _, t := range targets {
		rss, hwm, err := benchkit.Memory(t.srv.proc.Pid())
		if err != nil {
			return res, fmt.Errorf("%s: %w", t.name, err)
		}
		res.mem[t.name] = memUse{rss: rss, hwm: hwm}
	}
	dst := filepath.Join(layerDir, "cp-copy")
	for range o.reps {
		// cp, as the pull is compared with it; then cp followed by
		// `sync FILE` (fsync), the disk's bound on a push.
		for _, fsync := range []bool{false, true} {
			if err := warm(big.path); err != nil {
				return res, err
			}
			unix.Sync()
			start := time.Now()
			if b, err := exec.CommandContext(ctx, "cp", big.path, dst).CombinedOutput(); err != nil { //nolint:gosec // our temporary files
				return res, fmt.Errorf("cp: %w\n%s", err, b)
			}
			if fsync {
				if b, err := exec.CommandContext(ctx, "sync", dst).CombinedOutput(); err != nil { //nolint:gosec // our temporary file
					return res, fmt.Errorf("sync: %w\n%s", err, b)
				}
				res.cpSync = append(res.cpSync, sample{secs: time.Since(start).Seconds(), bytes: big.size})
			} else {
				res.cp = append(res.cp, sample{secs: time.Since(start).Seconds(), bytes: big.size})
			}
			if err := os.Remove(dst); err != nil {
				return res, err
			}
		}
	}
	res.repos = repoSeq
	return res, nil
}

// manifestGets runs o.clients goroutines GETting im's manifest by tag
// for o.duration, each answer checked against the manifest's digest.
func manifestGets(ctx context.Context, t *target, im image, o options) (getStats, error) {
	scope := pullScope(im.repo)
	if err := t.prepare(ctx, scope); err != nil {
		return getStats{}, err
	}
	// One GET per client first, concurrently, so each has its connection.
	var wg sync.WaitGroup
	errs := make([]error, o.clients)
	for i := range o.clients {
		wg.Go(func() { _, errs[i] = t.getManifest(ctx, scope, im.repo, im.tag, im.digest) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return getStats{}, fmt.Errorf("%s: manifest GET warm-up: %w", t.name, err)
	}
	ch := t.challenges.Load()
	meter, err := startCPU(t.srv.proc.Pid())
	if err != nil {
		return getStats{}, err
	}
	mctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	lats := make([][]time.Duration, o.clients)
	start := time.Now()
	for i := range o.clients {
		wg.Go(func() {
			for mctx.Err() == nil {
				t0 := time.Now()
				_, err := t.getManifest(mctx, scope, im.repo, im.tag, im.digest)
				if mctx.Err() != nil {
					return // cut off by the deadline: not a sample
				}
				if err != nil {
					errs[i] = err
					cancel()
					return
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := errors.Join(errs...); err != nil {
		return getStats{}, fmt.Errorf("%s: manifest GETs: %w", t.name, err)
	}
	if err := ctx.Err(); err != nil {
		return getStats{}, err
	}
	srvCPU, cliCPU, err := meter.since()
	if err != nil {
		return getStats{}, err
	}
	if t.challenges.Load() != ch {
		return getStats{}, fmt.Errorf("%s: authentication challenge during the manifest GETs", t.name)
	}
	all := slices.Concat(lats...)
	if len(all) == 0 {
		return getStats{}, fmt.Errorf("%s: no manifest GET completed", t.name)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	return getStats{requests: len(all), secs: secs, p50: pct(0.50), p99: pct(0.99), cpuSec: srvCPU, cliSec: cliCPU}, nil
}

// timeBcrypt is the median time of one bcrypt check at cost (what
// distribution spends on every request), on this process's CPU.
func timeBcrypt(cost int) (time.Duration, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(benchPassword), cost)
	if err != nil {
		return 0, err
	}
	var ds []time.Duration
	for range 9 {
		start := time.Now()
		if err := bcrypt.CompareHashAndPassword(hash, []byte(benchPassword)); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

type reportInfo struct {
	loadBefore  string
	distInfo    *buildinfo.BuildInfo
	fs          string
	pinning     string
	bcryptCheck time.Duration
	big         layerFile
	small       []layerFile
	targets     []*target
	idleRSS     map[string]int64 // VmRSS in KiB by target, before any load
}

func writeReport(w io.Writer, o options, in reportInfo, res results) {
	var smallBytes int64
	for _, f := range in.small {
		smallBytes += f.size
	}
	proto := "HTTP/1.1 (ALPN http/1.1; both servers also offer h2)"
	if o.h2 {
		proto = "HTTP/2 (ALPN h2)"
	}
	fmt.Fprintf(w, "# bench/mcr: MCR vs distribution %s, HTTPS on loopback, same client, certificate and disk\n", distributionVersion)
	fmt.Fprintf(w, "# command: %s\n", benchkit.Command("./bench/mcr"))
	fmt.Fprintf(w, "# commit: %s\n", benchkit.Commit("mcr", "mcias", "mcdsl", "bench"))
	fmt.Fprintf(w, "# date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "# machine: %d CPUs (%s), %s, %s/%s, %s, %s\n", runtime.NumCPU(), benchkit.CPUModel(), benchkit.MemTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version(), benchkit.Kernel())
	fmt.Fprintf(w, "# pinning: %s\n", in.pinning)
	fmt.Fprintf(w, "# storage: one temporary directory on %s: layer files, MCR's storage and database, distribution's root, cp's copy\n", in.fs)
	fmt.Fprintf(w, "# versions: mcr and mcias from this tree (%s); distribution %s (%s, built with %s, CGO_ENABLED=0)\n",
		runtime.Version(), in.distInfo.Main.Version, in.distInfo.Main.Path, in.distInfo.GoVersion)
	fmt.Fprintf(w, "# tls: one ECDSA certificate for 127.0.0.1 from a seed CA (internal/seedpki) for both; TLS 1.3; %s for every request\n", proto)
	for _, t := range in.targets {
		fmt.Fprintf(w, "# %s config: %s\n", t.name, t.srv.config)
		fmt.Fprintf(w, "# %s auth: %s\n", t.name, t.srv.auth)
	}
	var fetches []float64
	for _, t := range in.targets {
		for _, d := range t.tokenFetches {
			fetches = append(fetches, float64(d)/float64(time.Millisecond))
		}
	}
	if len(fetches) > 0 {
		fmt.Fprintf(w, "# auth cost outside the timed transfers: MCR token fetch (MCIAS login) median %.0f ms over %d fetches (one per repository and scope); "+
			"inside: distribution's bcrypt check %.2f ms per request (cost %d, measured on the client CPU), MCR's EdDSA token check per request\n",
			benchkit.Median(fetches), len(fetches), float64(in.bcryptCheck)/float64(time.Millisecond), o.bcryptCost)
	}
	fmt.Fprintf(w, "# single-layer image: 1 layer of %d MiB + 32 B (random; file written once, a unique random 32-byte tail per push) + JSON config\n", o.bigMiB)
	fmt.Fprintf(w, "# many-layer image: %d layers of 64 KiB..1 MiB (%.1f MiB in all, random, files written once, unique 32-byte tails per push) + JSON config\n",
		o.layers, float64(smallBytes)/mib)
	fmt.Fprintf(w, "# push: fresh repository each time; per blob HEAD (404 required) + POST /blobs/uploads/ + PUT ?digest= streaming the body; then manifest PUT by tag; %d blobs at a time\n", o.parallel)
	fmt.Fprintf(w, "# pull: manifest GET by tag + blob GETs streamed into SHA-256, digests and sizes checked; %d blobs at a time\n", o.parallel)
	fmt.Fprintf(w, "# transfers: %d repetitions per registry (order alternating), after an untimed push+pull each; figure = median; MiB/s = blob bytes / wall time of the whole push or pull\n", o.reps)
	fmt.Fprintf(w, "# manifest GETs: %d clients for %s, by tag, the many-layer manifest (%s), each response's digest checked\n", o.clients, o.duration, "OCI image manifest")
	fmt.Fprintf(w, "# page cache: hot; before each pull the registry's stored blob files are read in full, before each cp its source is; cp's copy is not fsynced, the pull's client writes nothing; pushes are fsynced by both registries\n")
	fmt.Fprintf(w, "# writeback: sync(2) (untimed) before every push and every cp, so each starts with no dirty pages of earlier work; after each pull the stored blobs are evicted (fadvise DONTNEED) so the page cache does not grow run after run\n")
	fmt.Fprintf(w, "# load average before / after: %s / %s (other work on the machine skews the numbers)\n", in.loadBefore, benchkit.LoadAvg())
	fmt.Fprintf(w, "# cpu s: CPU seconds the registry process (srv) and this client (cli) used during the measurement (medians; from /proc/PID/stat)\n")
	fmt.Fprintf(w, "# memory: the registry process's resident set from /proc/PID/status, MiB: idle = VmRSS once both registries answer, before any registry request (each has served only its readiness polls, MCR also the POST of its rule); "+
		"peak = VmHWM (the process's highest VmRSS) after the warm-ups, transfers and manifest GETs\n")
	fmt.Fprintln(w)

	fmt.Fprintf(w, "%-34s %12s %12s %10s   %s\n", "figure", "mcr", "distribution", "mcr/dist", "cpu s srv+cli: mcr / dist")
	for _, f := range []struct{ fig, label string }{
		{figPushBig, fmt.Sprintf("push %d MiB single-layer (MiB/s)", o.bigMiB)},
		{figPullBig, fmt.Sprintf("pull %d MiB single-layer (MiB/s)", o.bigMiB)},
		{figPushSmall, fmt.Sprintf("push %d-layer (MiB/s)", o.layers)},
		{figPullSmall, fmt.Sprintf("pull %d-layer (MiB/s)", o.layers)},
	} {
		m, d := summarize(res.transfers[f.fig]["mcr"]), summarize(res.transfers[f.fig]["distribution"])
		fmt.Fprintf(w, "%-34s %12.1f %12.1f %10.2f   %.2f+%.2f / %.2f+%.2f\n", f.label, m.mibps, d.mibps, m.mibps/d.mibps, m.cpu, m.cli, d.cpu, d.cli)
	}
	gm, gd := res.gets["mcr"], res.gets["distribution"]
	rm, rd := float64(gm.requests)/gm.secs, float64(gd.requests)/gd.secs
	fmt.Fprintf(w, "%-34s %12.0f %12.0f %10.2f   %.2f+%.2f / %.2f+%.2f\n", "manifest GETs (req/s)", rm, rd, rm/rd, gm.cpuSec, gm.cliSec, gd.cpuSec, gd.cliSec)
	fmt.Fprintf(w, "%-34s %12.2f %12.2f %10.2f   (lower is better)\n", "manifest GET p50 (ms)", benchkit.Ms(gm.p50), benchkit.Ms(gd.p50), benchkit.Ms(gm.p50)/benchkit.Ms(gd.p50))
	fmt.Fprintf(w, "%-34s %12.2f %12.2f %10.2f   (lower is better)\n", "manifest GET p99 (ms)", benchkit.Ms(gm.p99), benchkit.Ms(gd.p99), benchkit.Ms(gm.p99)/benchkit.Ms(gd.p99))
	mibOf := func(kib int64) float64 { return float64(kib) / 1024 }
	im, id := mibOf(in.idleRSS["mcr"]), mibOf(in.idleRSS["distribution"])
	hm, hd := mibOf(res.mem["mcr"].hwm), mibOf(res.mem["distribution"].hwm)
	fmt.Fprintf(w, "%-34s %12.1f %12.1f %10.2f   (lower is better)\n", "memory idle, VmRSS (MiB)", im, id, im/id)
	fmt.Fprintf(w, "%-34s %12.1f %12.1f %10.2f   (lower is better)\n", "memory peak, VmHWM (MiB)", hm, hd, hm/hd)
	rates := func(ss []sample) []float64 {
		xs := make([]float64, 0, len(ss))
		for _, s := range ss {
			xs = append(xs, s.mibps())
		}
		return xs
	}
	cps, cpSyncs := rates(res.cp), rates(res.cpSync)
	cp, cpSync := benchkit.Median(cps), benchkit.Median(cpSyncs)
	pushM, pushD := summarize(res.transfers[figPushBig]["mcr"]).mibps, summarize(res.transfers[figPushBig]["distribution"]).mibps
	pm, pd := summarize(res.transfers[figPullBig]["mcr"]).mibps, summarize(res.transfers[figPullBig]["distribution"]).mibps
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-34s %12.1f\n", fmt.Sprintf("cp %d MiB file (MiB/s)", o.bigMiB), cp)
	fmt.Fprintf(w, "%-34s %12.2f %12.2f   (target: within 2x of cp, i.e. >= 0.50)\n", "single-layer pull / cp", pm/cp, pd/cp)
	bigPullM, bigPullD := summarize(res.transfers[figPullBig]["mcr"]), summarize(res.transfers[figPullBig]["distribution"])
	bigMiB := float64(in.big.size) / mib
	fmt.Fprintf(w, "%-34s %12.1f %12.1f   (MiB per CPU second of the registry: what it could serve if the client were free)\n",
		"single-layer pull, server side", bigMiB/bigPullM.cpu, bigMiB/bigPullD.cpu)
	fmt.Fprintf(w, "%-34s %12.1f %12.1f   (MiB per CPU second of this client: TLS, HTTP, SHA-256 on one CPU)\n",
		"single-layer pull, client side", bigMiB/bigPullM.cli, bigMiB/bigPullD.cli)
	fmt.Fprintf(w, "%-34s %12.1f   (reference: the disk's bound on a push, which both registries fsync)\n", fmt.Sprintf("cp + sync FILE %d MiB (MiB/s)", o.bigMiB), cpSync)
	fmt.Fprintf(w, "%-34s %12.2f %12.2f\n", "single-layer push / (cp + sync)", pushM/cpSync, pushD/cpSync)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "# every run (MiB/s, in order)\n")
	for _, fig := range []string{figPushBig, figPullBig, figPushSmall, figPullSmall} {
		for _, name := range []string{"mcr", "distribution"} {
			var xs []string
			for _, s := range res.transfers[fig][name] {
				xs = append(xs, fmt.Sprintf("%.1f", s.mibps()))
			}
			fmt.Fprintf(w, "# %-18s %-12s %s\n", fig, name, strings.Join(xs, " "))
		}
	}
	for _, r := range []struct {
		name string
		xs   []float64
	}{{"cp", cps}, {"cp + sync FILE", cpSyncs}} {
		var xs []string
		for _, c := range r.xs {
			xs = append(xs, fmt.Sprintf("%.1f", c))
		}
		fmt.Fprintf(w, "# %-31s %s\n", r.name, strings.Join(xs, " "))
	}
	fmt.Fprintf(w, "# manifest GETs: mcr %d requests in %.1fs, distribution %d in %.1fs, no errors\n", gm.requests, gm.secs, gd.requests, gd.secs)
	fmt.Fprintf(w, "# repositories pushed: %d; authentication challenges answered: mcr %d, distribution %d (none inside a timed region)\n",
		res.repos, in.targets[0].challenges.Load(), in.targets[1].challenges.Load())
	for _, name := range []string{"mcr", "distribution"} {
		fmt.Fprintf(w, "# memory %-12s VmRSS idle %d KiB; after the manifest GETs VmRSS %d KiB, VmHWM %d KiB\n",
			name, in.idleRSS[name], res.mem[name].rss, res.mem[name].hwm)
	}
}

type summary struct{ mibps, cpu, cli float64 }

func summarize(ss []sample) summary {
	var r, c, k []float64
	for _, s := range ss {
		r = append(r, s.mibps())
		c = append(c, s.cpuSec)
		k = append(k, s.cliSec)
	}
	return summary{mibps: benchkit.Median(r), cpu: benchkit.Median(c), cli: benchkit.Median(k)}
}
