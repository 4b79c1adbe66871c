// Command metacrypt measures Metacrypt, the platform's CA and
// cryptographic service, against step-ca (v0.30.2) on the same machine,
// seed root and client, and writes the figures with the ratios
// Metacrypt/step-ca to stdout and <out>/metacrypt-<UTC timestamp>.txt.
//
//	go run ./bench/metacrypt -duration 10s -out bench/results   (or: bench/run.sh metacrypt)
//
// Both run as they run in production. Metacrypt is the real metacrypt
// binary (go build ./metacrypt/cmd/metacrypt) with a real MCIAS (the mcias
// binary), set up as the launcher sets them up (internal/launcher):
// `mcias init`, `mcias system-account mcp-agent` for the agent's token,
// `metacrypt bootstrap` with the seed root from internal/seedpki (the CA
// mount "pki", the infra, services and clients issuers, the agent's rule
// and its limit to *.svc.<D>), `metacrypt server`, then the unseal over the
// API. step-ca is the step-ca binary installed with `go install
// github.com/smallstep/certificates/cmd/step-ca@v0.30.2` (CGO_ENABLED=0,
// same Go toolchain) into <repo>/.bin/bench and reused, with a ca.json
// written here as `step ca init` writes it: the same seed root, a P-256
// intermediate signed by it (as Metacrypt's services issuer is), its
// default badger v2 database, a JWK provisioner and an ACME provisioner.
//
// Figures, each measured -reps times per server (alternating which goes
// first) for -duration after an untimed warm-up, median reported:
//
//   - stored P-256 issuances per second at -clients concurrent requests
//     over HTTPS (HTTP/1.1, keep-alive): Metacrypt's POST
//     /v1/pki/pki/issue/services (the key generated server-side) and POST
//     /v1/pki/pki/sign/services (a CSR), both as the mcp-agent system
//     account (its MCIAS token; the rule and the *.svc.<D> limit checked on
//     every request); step-ca's POST /1.0/sign with a CSR and a one-time
//     token (an ES256 JWT for the JWK provisioner) this program signs per
//     request. CSRs (keys generated, CSRs signed) are made before the timed
//     region for both, from one pool cycled through; the one-time tokens
//     are signed inside it, on the client's CPU. Every answer's
//     certificate is parsed and its name checked.
//   - full ACME orders per second at -orders concurrent orders, with one
//     client (golang.org/x/crypto/acme) for both: new-order for the IP
//     identifier 127.0.0.1 (RFC 8738; both servers support it), the
//     authorization fetched, http-01 answered by a challenge server in this
//     program on 127.0.0.1 (Metacrypt: [acme] http01_port; step-ca:
//     --insecure --acme-http-port, its documented test option), polled
//     until valid, the order polled until ready, finalized with a CSR
//     (keys and CSRs pregenerated as above), the chain downloaded. One
//     account per concurrent order, registered before the timed region
//     (Metacrypt's with EAB credentials bound to mcp-agent; step-ca's ACME
//     provisioner needs none). Polling runs two ways: every -poll, and as
//     x/crypto/acme's WaitAuthorization/WaitOrder do (honouring
//     Retry-After, 1 s when absent).
//   - Metacrypt's transit engine: encrypt then decrypt of a -payload byte
//     random payload (aes256-gcm96 key, plaintext checked), one pair per
//     request over REST and over gRPC, and -batch pairs per
//     EncryptBatch/DecryptBatch over gRPC (a batch of 100 KiB does not fit
//     the REST gateway's 64 KiB request bound), -clients at a time, beside
//     the raw AES-256-GCM rate of crypto/aes on one CPU of this machine.
//   - Metacrypt's SSH CA: user certificate signings per second (REST,
//     ed25519 CA, -clients at a time), beside the raw rate of
//     x/crypto/ssh's SignCert with an ed25519 key on one CPU.
//
// With two or more CPUs the servers (Metacrypt, MCIAS, step-ca) run on CPU
// 0 (taskset; Go sizes GOMAXPROCS to it), this client on CPU 1 (-pin=false
// turns that off). Any error stops the run with a non-zero exit and no
// figures; the processes and the temporary directory are removed.
package main

import (
	"context"
	"crypto/tls"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
	"git.metacircular.net/metacircular/internal/seedpki"
)

const (
	stepCAModule  = "github.com/smallstep/certificates"
	stepCAVersion = "v0.30.2"

	// domain is the platform domain D: the agent issues names under svc.D.
	domain = "bench.test"
	agent  = "mcp-agent"
)

type options struct {
	duration time.Duration
	reps     int
	clients  int
	orders   int
	poll     time.Duration
	batch    int
	payload  int
	csrs     int
	figures  map[string]bool
	engines  bool
	pin      bool
	dir      string
	out      string

	metacryptBin string
	mciasBin     string
	stepCABin    string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each measurement runs")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of each measurement per server (the median is reported)")
	flag.IntVar(&o.clients, "clients", 16, "concurrent requests for issuance, transit and SSH")
	flag.IntVar(&o.orders, "orders", 8, "concurrent ACME orders (one account each)")
	flag.DurationVar(&o.poll, "poll", 25*time.Millisecond, "ACME poll interval of the fixed-interval client")
	flag.IntVar(&o.batch, "batch", 100, "items per transit batch request")
	flag.IntVar(&o.payload, "payload", 1024, "transit plaintext size, bytes")
	flag.IntVar(&o.csrs, "csrs", 2048, "P-256 keys and CSRs made before the timed region (cycled through)")
	figures := flag.String("figures", "issue,acme,transit,ssh", "the figures to measure: issue, acme, transit, ssh (comma-separated)")
	flag.BoolVar(&o.pin, "pin", true, "with 2+ CPUs: servers on CPU 0, this client on CPU 1")
	flag.StringVar(&o.dir, "dir", "", "parent of the temporary directory (default: the system temp dir)")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the result file (empty: stdout only)")
	flag.StringVar(&o.metacryptBin, "metacrypt", "", "prebuilt metacrypt binary (default: go build it)")
	flag.StringVar(&o.mciasBin, "mcias", "", "prebuilt mcias binary (default: go build it)")
	flag.StringVar(&o.stepCABin, "step-ca", "", "step-ca binary (default: <repo>/.bin/bench/step-ca, installed if missing)")
	flag.Parse()
	o.figures = map[string]bool{}
	for f := range strings.SplitSeq(*figures, ",") {
		if f = strings.TrimSpace(f); f != "" {
			o.figures[f] = true
		}
	}
	o.engines = o.figures["transit"] || o.figures["ssh"]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/metacrypt: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/metacrypt: "+format+"\n", args...)
}

func run(ctx context.Context, o options) error {
	for f := range o.figures {
		if f != "issue" && f != "acme" && f != "transit" && f != "ssh" {
			return fmt.Errorf("-figures: unknown figure %q (issue, acme, transit, ssh)", f)
		}
	}
	if len(o.figures) == 0 {
		return errors.New("-figures: name at least one of issue, acme, transit, ssh")
	}
	if o.duration <= 0 || o.reps < 1 || o.clients < 1 || o.orders < 1 || o.poll <= 0 || o.batch < 1 || o.payload < 1 || o.csrs < 1 {
		return errors.New("-duration, -reps, -clients, -orders, -poll, -batch, -payload and -csrs must be positive")
	}
	dir, err := os.MkdirTemp(o.dir, "metacrypt-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := buildBinaries(ctx, &o, dir); err != nil {
		return err
	}
	stepInfo, err := buildinfo.ReadFile(o.stepCABin)
	if err != nil {
		return fmt.Errorf("read build info of %s: %w", o.stepCABin, err)
	}

	// Client-side material first, with both CPUs.
	logf("making %d P-256 keys and CSRs", o.csrs)
	pool, err := newCSRPool(o.csrs)
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
		pinning = "metacrypt, mcias and step-ca on CPU 0 (taskset; GOMAXPROCS follows the affinity: 1); this client on CPU 1 (sched_setaffinity, GOMAXPROCS 1)"
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
	mcCert, err := ca.Issue("metacrypt", loopback)
	if err != nil {
		return err
	}
	tlsCfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}

	chal, err := startChallengeServer()
	if err != nil {
		return err
	}
	defer chal.close()

	var procs []*benchkit.Proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop()
		}
	}()
	logf("starting mcias, metacrypt and step-ca")
	mcias, err := startMCIAS(ctx, o, dir, ca, mciasCert, tlsCfg, serverCPU)
	if mcias != nil && mcias.proc != nil {
		procs = append(procs, mcias.proc)
	}
	if err != nil {
		return err
	}
	mc, err := startMetacrypt(ctx, o, dir, ca, mcCert, mcias, chal.port, tlsCfg, serverCPU)
	if mc != nil && mc.proc != nil {
		procs = append(procs, mc.proc)
	}
	if err != nil {
		return err
	}
	step, err := startStepCA(ctx, o, dir, ca, chal.port, tlsCfg, serverCPU)
	if step != nil && step.proc != nil {
		procs = append(procs, step.proc)
	}
	if err != nil {
		return err
	}
	fsync, err := fsyncLatency(dir)
	if err != nil {
		return err
	}

	loadBefore := benchkit.LoadAvg()
	res, err := measureAll(ctx, o, mc, mcias, step, pool, chal)
	if err != nil {
		for _, p := range procs {
			fmt.Fprintf(os.Stderr, "--- %s log (tail)\n%s\n", p.Name, p.Tail(4000))
		}
		return err
	}

	var report strings.Builder
	writeReport(&report, o, reportInfo{
		loadBefore: loadBefore, stepInfo: stepInfo, pinning: pinning, fsync: fsync, fs: benchkit.Filesystem(dir),
		mc: mc, step: step,
	}, res)
	fmt.Print(report.String())
	if o.out == "" {
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil { //nolint:gosec // results are meant to be read
		return err
	}
	path := filepath.Join(o.out, "metacrypt-"+time.Now().UTC().Format("20060102T150405Z")+".txt")
	if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil { //nolint:gosec // results are meant to be read
		return err
	}
	logf("wrote %s", path)
	return nil
}
