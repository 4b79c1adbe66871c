// Command mcias measures a real MCIAS and writes the figures to stdout and
// to <out>/mcias-<UTC timestamp>.txt, with the server's CPU and allocation
// profiles under the validation load beside it (.cpu.pprof, .alloc.pprof).
//
//	go run ./bench/mcias -duration 10s -out bench/results   (or: bench/run.sh mcias)
//
// It builds the mcias binary, runs `mcias init` and `mcias server` on
// loopback with a seed-CA certificate in a temporary directory (log level
// warn, throttle limits raised so that parallel successful logins are
// never refused, and, for the profiles, the opt-in [debug] pprof_addr on
// loopback), creates an account "bench" with role user and logs it in.
// Every request goes over HTTPS (TLS 1.3, HTTP/2) from -clients
// concurrent clients, each on its own keep-alive connection, back to back
// for -duration after an untimed warm-up; the server and this program
// share the machine's CPUs (no pinning), and so does whatever else runs
// there: the load average is reported. Figures:
//
//   - token_validate: POST /v1/token/validate with the bench account's
//     token, as every service's mcdsl/auth sends it.
//   - empty_jwks, the baseline: GET /.well-known/jwks.json, which answers
//     a fixed ~150-byte JSON body (the public key set, from memory)
//     without authentication on the same listener, TLS, HTTP/2 and
//     middleware chain (HSTS, request log, request metrics, the service
//     mux, the chi router of MCIAS's HTTP). GET /v1/health is not the
//     baseline because it is not empty: it runs `select 1` in SQLite (the
//     health check pings the database); it is measured beside it.
//     token_validate and empty_jwks run -reps times each, alternating
//     which goes first, so other work on the machine falls on both; the
//     figure is the median, and the ratio validate/empty is the median of
//     the per-repetition ratios (issue #13's target: ≥ 0.7). The ratio of
//     their CPU per request (server and this client) is printed too: it
//     does not move with the machine's other load.
//   - validate_no_token: the same POST with {"token":""}, which has nothing
//     to check: what the request shape alone costs against the GET
//     baseline (a second TLS record each way and a body to read).
//   - validate_forged: the flood case, a token with MCIAS's header and
//     claims but a random signature, answered {"valid":false} after the
//     full parse and the Ed25519 check.
//   - login: POST /v1/auth/login at -login-clients concurrent clients,
//     beside argon2id_raw, golang.org/x/crypto/argon2.IDKey with the
//     parameters read from the bench account's stored hash, computed in
//     this process by as many goroutines (both cores, the server idle),
//     -login-reps times each, alternating: a login costs one Argon2id run,
//     so logins/s ≤ about that rate, and the server's CPU per login is
//     about this process's CPU per hash (the figure that other load on
//     the machine does not move).
//   - auth_cache: what every other service pays per authenticated request
//     once a token is cached: mcdsl/auth's Client.ValidateToken in this
//     process on a token it validated once against this MCIAS, from
//     GOMAXPROCS goroutines (checked: the server's CPU stays still).
//   - the server's memory from /proc/<pid>/status: VmRSS idle (started,
//     nothing asked yet), then VmRSS and VmHWM after the validation loads
//     (the peak restarted, via /proc/<pid>/clear_refs, after their first
//     repetition, by when the memory of the setup's Argon2id runs has
//     normally gone back to the system) and after the logins (restarted
//     before them; each Argon2id run holds its memory cost).
//   - srv_us/req and cli_us/req: CPU time of the server and of this
//     program per request, from /proc/<pid>/stat (10 ms ticks).
//
// With -profile (the default) one more run of the validation load, right
// after the validation repetitions, takes the server's CPU profile and an
// allocation profile (the delta over the same seconds, from
// /debug/pprof/allocs?seconds=) over the pprof listener; view them with
// `go tool pprof -http : bench/results/mcias-<stamp>.cpu.pprof`. Any
// setup error stops the run with a non-zero exit; request errors are
// counted and the first one is printed.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"
	_ "modernc.org/sqlite" // reads the password hash MCIAS actually wrote

	"git.metacircular.net/metacircular/bench/internal/benchkit"
	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcias/client"
)

const (
	adminPassword = "bench-admin-password"
	benchUser     = "bench"
	benchPassword = "bench-user-password"
	// targetRatio is issue #13's bar for validations against the empty
	// handler.
	targetRatio = 0.7
	// maxProfileSeconds stays under the pprof listener's write timeout
	// (30 s, mcdsl/httpserver).
	maxProfileSeconds = 25
)

type options struct {
	duration     time.Duration
	reps         int
	loginReps    int
	clients      int
	loginClients int
	argon2       string
	out          string
	mciasBin     string
	profile      bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each measurement runs")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of the validate and empty-handler measurements (alternating)")
	flag.IntVar(&o.loginReps, "login-reps", 2, "repetitions of the login and raw Argon2id measurements (alternating)")
	flag.IntVar(&o.clients, "clients", 16, "concurrent clients for token validation and the baselines")
	flag.IntVar(&o.loginClients, "login-clients", runtime.NumCPU(), "concurrent clients for logins, and goroutines for the raw Argon2id rate")
	flag.StringVar(&o.argon2, "argon2", "", `Argon2id cost as "memory_kib,iterations,parallelism" (default: MCIAS's defaults)`)
	flag.StringVar(&o.out, "out", "bench/results", "directory for the result file and profiles (empty: stdout only, no profiles)")
	flag.StringVar(&o.mciasBin, "mcias", "", "prebuilt mcias binary (default: go build it)")
	flag.BoolVar(&o.profile, "profile", true, "take the server's CPU and allocation profiles under the validation load (needs -out)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/mcias: %v\n", err)
		os.Exit(1)
	}
}

// server is the running mcias and what the measurements need of it.
type server struct {
	base      string // https://127.0.0.1:port
	pprofBase string // http://127.0.0.1:port, or "" without -profile
	pid       int
	tlsCfg    *tls.Config
	caPath    string
	dbPath    string
	grpcAddr  string
}

func run(ctx context.Context, o options) error {
	if o.clients < 1 || o.loginClients < 1 || o.reps < 1 || o.loginReps < 1 || o.duration <= 0 {
		return errors.New("-clients, -login-clients, -reps, -login-reps and -duration must be positive")
	}
	if o.out == "" {
		o.profile = false
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
	loadBefore := benchkit.LoadAvg()

	srv, stopServer, err := startServer(ctx, o, dir, argon2TOML)
	if err != nil {
		return err
	}
	defer stopServer()
	// Idle: started, healthy, nothing asked of it yet (the setup's
	// Argon2id runs would be in the figure otherwise).
	idle, err := readMemory(srv.pid)
	if err != nil {
		return err
	}

	admin, err := client.New(srv.grpcAddr, srv.caPath, "")
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
	params, err := argon2Params(srv.dbPath)
	if err != nil {
		return err
	}
	forged, err := forge(tok.Token)
	if err != nil {
		return err
	}

	validate := workload{name: "token_validate", method: http.MethodPost, path: "/v1/token/validate",
		body: mustJSON(map[string]string{"token": tok.Token}), ok: func(b []byte) bool {
			var v struct {
				Valid    bool   `json:"valid"`
				Username string `json:"username"`
			}
			return json.Unmarshal(b, &v) == nil && v.Valid && v.Username == benchUser
		}}
	empty := workload{name: "empty_jwks", method: http.MethodGet, path: "/.well-known/jwks.json", ok: func(b []byte) bool {
		var v struct {
			Keys []json.RawMessage `json:"keys"`
		}
		return json.Unmarshal(b, &v) == nil && len(v.Keys) > 0
	}}
	health := workload{name: "health", method: http.MethodGet, path: "/v1/health", ok: func(b []byte) bool {
		return bytes.Equal(bytes.TrimSpace(b), []byte(`{"status":"ok"}`))
	}}
	notValid := func(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte(`{"valid":false}`)) }
	noToken := workload{name: "validate_no_token", method: http.MethodPost, path: "/v1/token/validate",
		body: mustJSON(map[string]string{"token": ""}), ok: notValid}
	invalid := workload{name: "validate_forged", method: http.MethodPost, path: "/v1/token/validate",
		body: mustJSON(map[string]string{"token": forged}), ok: notValid}
	login := workload{name: "login", method: http.MethodPost, path: "/v1/auth/login",
		body: mustJSON(map[string]string{"username": benchUser, "password": benchPassword}), ok: func(b []byte) bool {
			var v struct {
				Token string `json:"token"`
			}
			return json.Unmarshal(b, &v) == nil && v.Token != ""
		}}

	samples := map[string][]sample{}
	var ratios []float64
	for rep := range o.reps {
		// The peak of the validation loads: VmHWM restarts after the first
		// repetition (with one, before it), when the Argon2id memory of the
		// setup's logins has had time to go back to the system.
		if rep == min(1, o.reps-1) {
			if err := resetPeak(srv.pid); err != nil {
				return err
			}
		}
		pair := []workload{validate, empty}
		if rep%2 == 1 {
			pair = []workload{empty, validate}
		}
		rates := map[string]float64{}
		for _, w := range pair {
			s, err := measure(ctx, srv.tlsCfg, srv.base, o.clients, o.duration, srv.pid, w)
			if err != nil {
				return err
			}
			samples[w.name] = append(samples[w.name], s)
			rates[w.name] = s.rate()
		}
		ratios = append(ratios, rates[validate.name]/rates[empty.name])
	}
	// The profiles come right after the validation runs, before anything
	// else (a login's Argon2id finishing late) can land in them.
	var prof profiles
	if o.profile {
		if prof, err = profileValidation(ctx, srv, o, validate); err != nil {
			return err
		}
	}
	for _, w := range []workload{health, noToken, invalid} {
		s, err := measure(ctx, srv.tlsCfg, srv.base, o.clients, o.duration, srv.pid, w)
		if err != nil {
			return err
		}
		samples[w.name] = []sample{s}
	}
	afterValidate, err := readMemory(srv.pid)
	if err != nil {
		return err
	}
	cached, err := cachedValidations(ctx, srv, tok.Token, o.duration)
	if err != nil {
		return err
	}
	// Logins and the raw Argon2id rate, alternating like the pair above;
	// VmHWM restarts for the logins' own peak.
	if err := resetPeak(srv.pid); err != nil {
		return err
	}
	var raws []localRate
	for rep := range o.loginReps {
		runLogin := func() error {
			s, err := measure(ctx, srv.tlsCfg, srv.base, o.loginClients, o.duration, srv.pid, login)
			samples[login.name] = append(samples[login.name], s)
			return err
		}
		runRaw := func() error {
			r, err := argon2Raw(params, o.loginClients, o.duration)
			raws = append(raws, r)
			return err
		}
		steps := []func() error{runRaw, runLogin}
		if rep%2 == 1 {
			steps = []func() error{runLogin, runRaw}
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
	}
	afterLogin, err := readMemory(srv.pid)
	if err != nil {
		return err
	}

	stamp := time.Now().UTC()
	r := report{
		o: o, stamp: stamp, params: params, loadBefore: loadBefore, loadAfter: benchkit.LoadAvg(),
		rows: []row{
			{validate, o.clients, summarize(samples[validate.name])},
			{empty, o.clients, summarize(samples[empty.name])},
			{health, o.clients, summarize(samples[health.name])},
			{noToken, o.clients, summarize(samples[noToken.name])},
			{invalid, o.clients, summarize(samples[invalid.name])},
			{login, o.loginClients, summarize(samples[login.name])},
		},
		ratios: ratios, cached: cached, raws: raws,
		idle: idle, afterValidate: afterValidate, afterLogin: afterLogin,
		profileSeconds: prof.seconds,
	}
	text := r.String()
	fmt.Print(text)
	if o.out == "" {
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil { //nolint:gosec // results are meant to be read
		return err
	}
	name := filepath.Join(o.out, "mcias-"+stamp.Format("20060102T150405Z"))
	files := map[string][]byte{name + ".txt": []byte(text)}
	if o.profile {
		files[name+".cpu.pprof"] = prof.cpu
		files[name+".alloc.pprof"] = prof.alloc
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o644); err != nil { //nolint:gosec // results are meant to be read
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", path)
	}
	return nil
}

// startServer builds (unless -mcias names a binary), initializes and
// starts mcias in dir and waits until it answers; stop ends it.
func startServer(ctx context.Context, o options, dir, argon2TOML string) (*server, func(), error) {
	bin := o.mciasBin
	if bin == "" {
		bin = filepath.Join(dir, "mcias")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "git.metacircular.net/metacircular/mcias/cmd/mcias") //nolint:gosec // a path in our temporary directory
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("go build mcias: %w\n%s", err, out)
		}
	}
	ca, err := seedpki.Init(filepath.Join(dir, "ca"))
	if err != nil {
		return nil, nil, err
	}
	cert, err := ca.Issue("mcias", seedpki.IssueRequest{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return nil, nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	debugTOML, pprofBase := "", ""
	if o.profile {
		pprofAddr, err := freeAddr()
		if err != nil {
			return nil, nil, err
		}
		debugTOML = fmt.Sprintf("[debug]\npprof_addr = %q\n", pprofAddr)
		pprofBase = "http://" + pprofAddr
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
%s%s`, addr, grpcAddr, cert.CertPath, cert.KeyPath, dbPath, argon2TOML, debugTOML)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, nil, err
	}
	pwFile := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte(adminPassword), 0o600); err != nil {
		return nil, nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "--config", cfgPath, "init", "--password-file", pwFile).CombinedOutput(); err != nil { //nolint:gosec // the binary just built
		return nil, nil, fmt.Errorf("mcias init: %w\n%s", err, out)
	}
	var serverOut bytes.Buffer
	cmd := exec.Command(bin, "--config", cfgPath, "server") //nolint:gosec // the binary just built
	cmd.Stdout, cmd.Stderr = &serverOut, &serverOut
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	s := &server{
		base: "https://" + addr, pprofBase: pprofBase, pid: cmd.Process.Pid,
		tlsCfg: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13},
		caPath: ca.CertPath(), dbPath: dbPath, grpcAddr: grpcAddr,
	}
	if err := waitHealthy(ctx, s.base, s.tlsCfg, exited); err != nil {
		stop()
		return nil, nil, fmt.Errorf("%w\n%s", err, serverOut.String())
	}
	return s, stop, nil
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

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// forge keeps tok's header and claims and replaces its signature with
// random bytes: a token that parses in full and fails the Ed25519 check.
func forge(tok string) (string, error) {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return "", errors.New("forge: token has no signature segment")
	}
	sig := make([]byte, 64)
	if _, err := rand.Read(sig); err != nil {
		return "", err
	}
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig), nil
}

// cachedValidations validates token once against MCIAS with mcdsl/auth's
// client, as a service does, then measures the cached answer from
// GOMAXPROCS goroutines for d; the server must not be asked again.
func cachedValidations(ctx context.Context, srv *server, token string, d time.Duration) (localRate, error) {
	c, err := auth.New(config.MCIAS{ServerURL: srv.base, CACert: srv.caPath, ServiceName: "bench"}, auth.Options{})
	if err != nil {
		return localRate{}, err
	}
	id, err := c.ValidateToken(ctx, token)
	if err != nil {
		return localRate{}, fmt.Errorf("auth_cache: first validation: %w", err)
	}
	if id.Username != benchUser {
		return localRate{}, fmt.Errorf("auth_cache: validated as %q, want %q", id.Username, benchUser)
	}
	before, err := cpuTicks(srv.pid)
	if err != nil {
		return localRate{}, err
	}
	r, err := local(d, runtime.GOMAXPROCS(0), func() error {
		id, err := c.ValidateToken(ctx, token)
		if err == nil && id.Username != benchUser {
			err = fmt.Errorf("auth_cache: validated as %q", id.Username)
		}
		return err
	})
	if err != nil {
		return localRate{}, err
	}
	// A cached validation never reaches MCIAS: its CPU stays (nearly)
	// still. One 10 ms tick per second of housekeeping is allowed.
	after, err := cpuTicks(srv.pid)
	if err != nil {
		return localRate{}, err
	}
	if used := time.Duration(after-before) * 10 * time.Millisecond; used > d/50+20*time.Millisecond {
		return localRate{}, fmt.Errorf("auth_cache: the server used %s of CPU during %s of cached validations: answers were not cached", used, d)
	}
	return r, nil
}

// argonParams are the Argon2id parameters of a stored PHC hash.
type argonParams struct {
	memoryKiB, iterations uint32
	parallelism           uint8
	saltLen, keyLen       int
}

func (p argonParams) String() string {
	return fmt.Sprintf("memory %d KiB, iterations %d, parallelism %d, salt %d B, key %d B", p.memoryKiB, p.iterations, p.parallelism, p.saltLen, p.keyLen)
}

var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

// argon2Params reads the cost MCIAS really used from the bench account's
// PHC hash, rather than trusting what the config was meant to say.
func argon2Params(dbPath string) (argonParams, error) {
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		return argonParams{}, err
	}
	defer func() { _ = db.Close() }()
	var hash string
	if err := db.QueryRow(`SELECT password_hash FROM accounts WHERE username = ?`, benchUser).Scan(&hash); err != nil {
		return argonParams{}, fmt.Errorf("read bench password hash: %w", err)
	}
	m := phc.FindStringSubmatch(hash)
	if m == nil {
		return argonParams{}, errors.New("bench password hash is not an Argon2id (v=19) PHC string")
	}
	mem, err1 := strconv.ParseUint(m[1], 10, 32)
	it, err2 := strconv.ParseUint(m[2], 10, 32)
	par, err3 := strconv.ParseUint(m[3], 10, 8)
	salt, err4 := base64.RawStdEncoding.DecodeString(m[4])
	key, err5 := base64.RawStdEncoding.DecodeString(m[5])
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return argonParams{}, fmt.Errorf("bench password hash: %w", err)
	}
	return argonParams{memoryKiB: uint32(mem), iterations: uint32(it), parallelism: uint8(par), saltLen: len(salt), keyLen: len(key)}, nil
}

// argon2Raw computes Argon2id with p from workers goroutines for d: what
// the machine's CPUs can do, and so the bound on logins per second.
func argon2Raw(p argonParams, workers int, d time.Duration) (localRate, error) {
	salt := make([]byte, p.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return localRate{}, err
	}
	pw := []byte(benchPassword)
	// Untimed, as the logins' warm-up requests: the first runs fault the
	// memory in (the server, busy with logins, keeps its own resident).
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { argon2.IDKey(pw, salt, p.iterations, p.memoryKiB, p.parallelism, uint32(p.keyLen)) }) //nolint:gosec // keyLen ≤ 64, from the hash
	}
	wg.Wait()
	return local(d, workers, func() error {
		if k := argon2.IDKey(pw, salt, p.iterations, p.memoryKiB, p.parallelism, uint32(p.keyLen)); len(k) != p.keyLen { //nolint:gosec // keyLen ≤ 64, from the hash
			return errors.New("argon2id: short key")
		}
		return nil
	})
}

// profiles are the server's profiles under the validation load.
type profiles struct {
	seconds    int
	cpu, alloc []byte
}

// profileValidation runs the validation load again while it takes the
// server's CPU profile and an allocation profile (the delta over the same
// seconds) from the pprof listener.
func profileValidation(ctx context.Context, srv *server, o options, w workload) (profiles, error) {
	secs := min(max(int(o.duration.Seconds()), 1), maxProfileSeconds)
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan error, 1)
	go func() {
		// Longer than the profiles; cancelled when they are in.
		_, err := measure(lctx, srv.tlsCfg, srv.base, o.clients, time.Duration(secs+30)*time.Second, srv.pid, w)
		loadDone <- err
	}()
	// Let the clients connect and warm up before the profiles start.
	select {
	case <-time.After(time.Second):
	case err := <-loadDone:
		return profiles{}, fmt.Errorf("profile load: %w", err)
	}
	type got struct {
		data []byte
		err  error
	}
	cpuc, allocc := make(chan got, 1), make(chan got, 1)
	fetch := func(path string, out chan<- got) {
		data, err := pprofGet(ctx, srv.pprofBase+path)
		out <- got{data, err}
	}
	go fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), cpuc)
	go fetch(fmt.Sprintf("/debug/pprof/allocs?seconds=%d", secs), allocc)
	cpu, alloc := <-cpuc, <-allocc
	stopLoad()
	if err := <-loadDone; err != nil && !errors.Is(err, context.Canceled) {
		return profiles{}, fmt.Errorf("profile load: %w", err)
	}
	if err := errors.Join(cpu.err, alloc.err); err != nil {
		return profiles{}, err
	}
	return profiles{seconds: secs, cpu: cpu.data, alloc: alloc.data}, nil
}

func pprofGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req) //nolint:gosec // the loopback pprof listener of the server this program started
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("profile %s: status %d: %.200s", url, resp.StatusCode, data)
	}
	return data, nil
}
