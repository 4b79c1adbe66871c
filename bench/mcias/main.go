// Command mcias measures a real MCIAS: it builds the mcias binary, runs it
// on loopback with a seed-CA certificate in a temporary directory, and
// drives it with concurrent HTTPS keep-alive clients for a bounded time
// each: token validations per second (POST /v1/token/validate) and logins
// per second (POST /v1/auth/login) with MCIAS's default Argon2id cost (or
// the one given), reporting mean and percentile latencies. The report,
// with the exact command, commit, CPU count and parameters, goes to
// stdout and to <out>/mcias-<UTC timestamp>.txt.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // reads the password hash MCIAS actually wrote

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcias/client"
)

const (
	adminPassword = "bench-admin-password"
	benchUser     = "bench"
	benchPassword = "bench-user-password"
)

type options struct {
	duration     time.Duration
	clients      int
	loginClients int
	argon2       string
	out          string
	mciasBin     string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each measurement runs")
	flag.IntVar(&o.clients, "clients", 16, "concurrent clients for token validation")
	flag.IntVar(&o.loginClients, "login-clients", runtime.NumCPU(), "concurrent clients for logins (each Argon2id run holds its memory cost)")
	flag.StringVar(&o.argon2, "argon2", "", `Argon2id cost as "memory_kib,iterations,parallelism" (default: MCIAS's defaults)`)
	flag.StringVar(&o.out, "out", "bench/results", "directory for the result file (empty: stdout only)")
	flag.StringVar(&o.mciasBin, "mcias", "", "prebuilt mcias binary (default: go build it)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/mcias: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.clients < 1 || o.loginClients < 1 || o.duration <= 0 {
		return errors.New("-clients, -login-clients and -duration must be positive")
	}
	argon2TOML := ""
	if o.argon2 != "" {
		var m, t, p int
		if _, err := fmt.Sscanf(o.argon2, "%d,%d,%d", &m, &t, &p); err != nil {
			return fmt.Errorf("-argon2 %q: expected memory_kib,iterations,parallelism", o.argon2)
		}
		argon2TOML = fmt.Sprintf("[argon2]\nmemory_kib = %d\niterations = %d\nparallelism = %d\n", m, t, p)
	}
	dir, err := os.MkdirTemp("", "mcias-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()

	bin := o.mciasBin
	if bin == "" {
		bin = filepath.Join(dir, "mcias")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "git.metacircular.net/metacircular/mcias/cmd/mcias") //nolint:gosec // a path in our temporary directory
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("go build mcias: %w\n%s", err, out)
		}
	}
	ca, err := seedpki.Init(filepath.Join(dir, "ca"))
	if err != nil {
		return err
	}
	cert, err := ca.Issue("mcias", seedpki.IssueRequest{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return err
	}
	dbPath := filepath.Join(dir, "mcias.db")
	cfgPath := filepath.Join(dir, "mcias.toml")
	// The throttle limits are raised so that concurrent successful logins
	// (which count as in flight) are never refused; log level warn keeps
	// the per-request log lines out of the measurement.
	cfg := fmt.Sprintf(`[server]
listen_addr = %q
grpc_addr = %q
tls_cert = %q
tls_key = %q
[database]
path = %q
[log]
level = "warn"
[throttle]
account_failures = 1000000
ip_failures = 1000000
%s`, addr, grpcAddr, cert.CertPath, cert.KeyPath, dbPath, argon2TOML)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	pwFile := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte(adminPassword), 0o600); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, bin, "--config", cfgPath, "init", "--password-file", pwFile).CombinedOutput(); err != nil { //nolint:gosec // the binary just built
		return fmt.Errorf("mcias init: %w\n%s", err, out)
	}
	var serverOut bytes.Buffer
	srv := exec.Command(bin, "--config", cfgPath, "server") //nolint:gosec // the binary just built
	srv.Stdout, srv.Stderr = &serverOut, &serverOut
	if err := srv.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = srv.Process.Kill()
			<-exited
		}
	}()

	base := "https://" + addr
	tlsCfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}
	if err := waitHealthy(ctx, base, tlsCfg, exited); err != nil {
		return fmt.Errorf("%w\n%s", err, serverOut.String())
	}
	admin, err := client.New(grpcAddr, ca.CertPath(), "")
	if err != nil {
		return err
	}
	if _, err := admin.Login(ctx, client.LoginRequest{Username: "admin", Password: adminPassword}); err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	if _, err := admin.CreateAccount(ctx, client.CreateAccountRequest{
		Username: benchUser, AccountType: "human", Password: benchPassword, Roles: []string{"user"},
	}); err != nil {
		return fmt.Errorf("create bench account: %w", err)
	}
	tok, err := admin.Login(ctx, client.LoginRequest{Username: benchUser, Password: benchPassword})
	if err != nil {
		return fmt.Errorf("bench login: %w", err)
	}
	params, err := argon2Params(dbPath)
	if err != nil {
		return err
	}

	validateBody, err := json.Marshal(map[string]string{"token": tok.Token})
	if err != nil {
		return err
	}
	loginBody, err := json.Marshal(map[string]string{"username": benchUser, "password": benchPassword})
	if err != nil {
		return err
	}
	validations, err := measure(ctx, tlsCfg, o.clients, o.duration, base+"/v1/token/validate", validateBody, func(b []byte) bool {
		var v struct {
			Valid bool `json:"valid"`
		}
		return json.Unmarshal(b, &v) == nil && v.Valid
	})
	if err != nil {
		return err
	}
	logins, err := measure(ctx, tlsCfg, o.loginClients, o.duration, base+"/v1/auth/login", loginBody, func(b []byte) bool {
		var v struct {
			Token string `json:"token"`
		}
		return json.Unmarshal(b, &v) == nil && v.Token != ""
	})
	if err != nil {
		return err
	}

	var report strings.Builder
	fmt.Fprintf(&report, "# command: %s\n", command())
	fmt.Fprintf(&report, "# commit: %s\n", commit())
	fmt.Fprintf(&report, "# date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&report, "# machine: %d CPUs (%s), %s/%s, %s\n", runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(&report, "# setup: mcias server and this load generator share the machine; HTTPS (TLS 1.3, HTTP/2), one keep-alive connection per client\n")
	fmt.Fprintf(&report, "# argon2id: %s (%s)\n", params, argon2Source(o.argon2))
	fmt.Fprintf(&report, "# duration per measurement: %s\n", o.duration)
	fmt.Fprintf(&report, "%-22s %8s %10s %10s %10s %10s %10s %10s %7s\n", "benchmark", "clients", "requests", "per_sec", "mean_ms", "p50_ms", "p99_ms", "max_ms", "errors")
	validations.write(&report, "token_validate", o.clients)
	logins.write(&report, "login", o.loginClients)

	fmt.Print(report.String())
	if o.out == "" {
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil { //nolint:gosec // results are meant to be read
		return err
	}
	path := filepath.Join(o.out, "mcias-"+time.Now().UTC().Format("20060102T150405Z")+".txt")
	if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil { //nolint:gosec // results are meant to be read
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", path)
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func waitHealthy(ctx context.Context, base string, tlsCfg *tls.Config, exited <-chan struct{}) error {
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("mcias exited before it was healthy")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get(base + "/v1/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("mcias not healthy after 30s")
}

// result is one measurement.
type result struct {
	latencies []time.Duration
	errors    int
	elapsed   time.Duration
}

// measure runs n clients, each with its own keep-alive connection,
// posting body to url back to back for d, and records every latency.
func measure(ctx context.Context, tlsCfg *tls.Config, n int, d time.Duration, url string, body []byte, ok func([]byte) bool) (result, error) {
	type worker struct {
		lat  []time.Duration
		errs int
	}
	workers := make([]worker, n)
	clients := make([]*http.Client, n)
	for i := range clients {
		tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 1}
		defer tr.CloseIdleConnections()
		clients[i] = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		// Warm the connection (TLS handshake) outside the measurement.
		if _, err := post(ctx, clients[i], url, body); err != nil {
			return result{}, fmt.Errorf("warm-up %s: %w", url, err)
		}
	}
	mctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		wg.Go(func() {
			w := &workers[i]
			for mctx.Err() == nil {
				t0 := time.Now()
				data, err := post(mctx, clients[i], url, body)
				if mctx.Err() != nil {
					return // cut off by the deadline: not a sample
				}
				w.lat = append(w.lat, time.Since(t0))
				if err != nil || !ok(data) {
					w.errs++
				}
			}
		})
	}
	wg.Wait()
	r := result{elapsed: time.Since(start)}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	for _, w := range workers {
		r.latencies = append(r.latencies, w.lat...)
		r.errors += w.errs
	}
	return r, nil
}

func post(ctx context.Context, c *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req) //nolint:gosec // loopback server this program started
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	return data, nil
}

func (r result) write(w io.Writer, name string, clients int) {
	n := len(r.latencies)
	if n == 0 {
		fmt.Fprintf(w, "%-22s %8d %10d %10s %10s %10s %10s %10s %7d\n", name, clients, 0, "-", "-", "-", "-", "-", r.errors)
		return
	}
	slices.Sort(r.latencies)
	var sum time.Duration
	for _, l := range r.latencies {
		sum += l
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	pct := func(p float64) time.Duration { return r.latencies[min(n-1, int(p*float64(n)))] }
	fmt.Fprintf(w, "%-22s %8d %10d %10.1f %10.2f %10.2f %10.2f %10.2f %7d\n", name, clients, n,
		float64(n)/r.elapsed.Seconds(), ms(sum/time.Duration(n)), ms(pct(0.50)), ms(pct(0.99)), ms(r.latencies[n-1]), r.errors)
}

var phcParams = regexp.MustCompile(`\$m=(\d+),t=(\d+),p=(\d+)\$`)

// argon2Params reads the cost MCIAS really used from the bench account's
// PHC hash, rather than trusting what the config was meant to say.
func argon2Params(dbPath string) (string, error) {
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		return "", err
	}
	defer func() { _ = db.Close() }()
	var hash string
	if err := db.QueryRow(`SELECT password_hash FROM accounts WHERE username = ?`, benchUser).Scan(&hash); err != nil {
		return "", fmt.Errorf("read bench password hash: %w", err)
	}
	m := phcParams.FindStringSubmatch(hash)
	if m == nil {
		return "", errors.New("bench password hash is not an Argon2id PHC string")
	}
	return fmt.Sprintf("memory %s KiB, iterations %s, parallelism %s", m[1], m[2], m[3]), nil
}

func argon2Source(flagValue string) string {
	if flagValue == "" {
		return "MCIAS defaults: no [argon2] section"
	}
	return "-argon2 " + flagValue
}

// command is how this program was invoked; under go run, os.Args[0] is a
// temporary build, so the go run form is reported instead.
func command() string {
	args := strings.Join(os.Args[1:], " ")
	if strings.Contains(os.Args[0], "go-build") {
		return strings.TrimSpace("go run ./bench/mcias " + args)
	}
	return strings.TrimSpace(os.Args[0] + " " + args)
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if err := exec.Command("git", "diff", "--quiet", "HEAD").Run(); err != nil {
		c += " (with uncommitted changes)"
	}
	return c
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "model unknown"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "model unknown"
}
