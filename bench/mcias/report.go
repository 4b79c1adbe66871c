package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
)

// row is one HTTP figure of the report.
type row struct {
	w       workload
	clients int
	s       summary
}

// report is everything a run measured.
type report struct {
	o                     options
	stamp                 time.Time
	params                argonParams
	loadBefore, loadAfter string
	rows                  []row
	ratios                []float64 // validate/empty per repetition
	cached                localRate
	raws                  []localRate // per repetition
	idle                  memory
	afterValidate         memory
	afterLogin            memory
	profileSeconds        int
}

func (r report) find(name string) summary {
	for _, x := range r.rows {
		if x.w.name == name {
			return x.s
		}
	}
	return summary{}
}

func (r report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# bench/mcias: token validations against an empty handler on the same server stack; logins against raw Argon2id; mcdsl/auth's cache; server memory\n")
	fmt.Fprintf(&b, "# command: %s\n", benchkit.Command("./bench/mcias"))
	fmt.Fprintf(&b, "# commit: %s\n", benchkit.Commit("mcias", "mcdsl", "bench/mcias"))
	fmt.Fprintf(&b, "# date: %s\n", r.stamp.Format(time.RFC3339))
	fmt.Fprintf(&b, "# machine: %d CPUs (%s), linux/%s, %s; load average before / after: %s / %s (other work on the machine skews the numbers)\n",
		runtime.NumCPU(), benchkit.CPUModel(), runtime.GOARCH, runtime.Version(), r.loadBefore, r.loadAfter)
	fmt.Fprintf(&b, "# setup: the mcias binary on loopback (log level warn) and this load generator share the machine (no pinning); HTTPS (TLS 1.3, HTTP/2), one keep-alive connection per client\n")
	fmt.Fprintf(&b, "# argon2id: %s (%s)\n", r.params, argon2Source(r.o.argon2))
	fmt.Fprintf(&b, "# duration per measurement: %s; token_validate and empty_jwks %d times each, alternating, login and raw Argon2id %d times each, alternating; figure = median rate\n", r.o.duration, r.o.reps, r.o.loginReps)
	fmt.Fprintf(&b, "# empty_jwks (the baseline): GET /.well-known/jwks.json, a fixed JSON body from memory, no auth, same listener, TLS, HTTP/2 and middleware (HSTS, request log, request metrics, service mux, chi); health runs `select 1` in SQLite, so it is not empty\n")
	fmt.Fprintf(&b, "# validate_no_token: POST /v1/token/validate {\"token\":\"\"}, the same request shape and path with nothing to check (answered {\"valid\":false}): what the POST itself costs\n")
	fmt.Fprintf(&b, "# validate_forged: MCIAS's header and claims with a random signature (full parse + Ed25519 check, answered {\"valid\":false}), the flood case\n")
	fmt.Fprintf(&b, "# srv_us/req, cli_us/req: CPU time of the mcias process and of this program per request (/proc/<pid>/stat, 10 ms ticks)\n\n")
	fmt.Fprintf(&b, "%-16s %7s %9s %9s %8s %8s %8s %8s %6s %10s %10s\n", "benchmark", "clients", "requests", "per_sec", "mean_ms", "p50_ms", "p99_ms", "max_ms", "errors", "srv_us/req", "cli_us/req")
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, x := range r.rows {
		s := x.s
		fmt.Fprintf(&b, "%-16s %7d %9d %9.1f %8.2f %8.2f %8.2f %8.2f %6d %10.0f %10.0f\n", x.w.name, x.clients, s.requests,
			s.rate, ms(s.mean), ms(s.p50), ms(s.p99), ms(s.max), s.errors, us(s.srvPerReq), us(s.cliPerReq))
	}
	for _, x := range r.rows {
		if x.s.firstErr != nil {
			fmt.Fprintf(&b, "# %s: first error: %v\n", x.w.name, x.s.firstErr)
		}
	}

	v, e, nt := r.find("token_validate"), r.find("empty_jwks"), r.find("validate_no_token")
	ratio := benchkit.Median(r.ratios)
	verdict := "met"
	if ratio < targetRatio {
		verdict = "NOT met"
	}
	fmt.Fprintf(&b, "\nvalidate/empty: %.2f (median of per-repetition ratios %s; rates validate %s, empty %s) — target ≥ %.2f %s\n",
		ratio, floats(r.ratios, "%.2f"), floats(v.rates, "%.0f"), floats(e.rates, "%.0f"), targetRatio, verdict)
	cpu := func(s summary) time.Duration { return s.srvPerReq + s.cliPerReq }
	if cpu(v) > 0 && cpu(nt) > 0 {
		fmt.Fprintf(&b, "CPU per request (server + this client), empty / validate: %.0f / %.0f us (%.2f); server alone %.0f / %.0f us (%.2f)\n",
			us(cpu(e)), us(cpu(v)), float64(cpu(e))/float64(cpu(v)), us(e.srvPerReq), us(v.srvPerReq), float64(e.srvPerReq)/float64(v.srvPerReq))
		fmt.Fprintf(&b, "the POST itself: validate_no_token (same route and fast path, no token to check) / empty: %.2f by rate, %.2f by CPU; validate / validate_no_token: %.2f by rate\n",
			nt.rate/e.rate, float64(cpu(e))/float64(cpu(nt)), v.rate/nt.rate)
	}
	l := r.find("login")
	var rawRates, rawCPU []float64
	rawCalls := 0
	for _, x := range r.raws {
		rawRates = append(rawRates, x.rate)
		rawCPU = append(rawCPU, ms(x.cpu))
		rawCalls += x.calls
	}
	raw := benchkit.Median(rawRates)
	workers := 0
	if len(r.raws) > 0 {
		workers = r.raws[0].workers
	}
	fmt.Fprintf(&b, "logins: %.1f/s at %d clients (%s); raw Argon2id (x/crypto/argon2.IDKey, same parameters, %d goroutines in this process, server idle): %.1f/s (%s, %d hashes) — logins/raw %.2f\n",
		l.rate, r.o.loginClients, floats(l.rates, "%.1f"), workers, raw, floats(rawRates, "%.1f"), rawCalls, l.rate/raw)
	fmt.Fprintf(&b, "  CPU per login (server) / per raw Argon2id hash (this process): %.0f / %.0f ms (%.2f): a login is its Argon2id run\n",
		ms(l.srvPerReq), benchkit.Median(rawCPU), ms(l.srvPerReq)/benchkit.Median(rawCPU))
	fmt.Fprintf(&b, "auth_cache: mcdsl/auth Client.ValidateToken on a cached token, in process, %d goroutines: %.0f/s (%d calls, %.0f ns of CPU per call)\n",
		r.cached.workers, r.cached.rate, r.cached.calls, float64(r.cached.cpu))
	fmt.Fprintf(&b, "mcias memory (/proc/<pid>/status): idle, started and nothing asked yet (its one Argon2id run at start, the unknown-user equalizer, still resident): %s\n", r.idle)
	fmt.Fprintf(&b, "  after the validation loads (VmHWM restarted after the first repetition): %s; after the logins (VmHWM restarted before them): %s\n",
		r.afterValidate, r.afterLogin)
	if r.profileSeconds > 0 {
		stem := "mcias-" + r.stamp.Format("20060102T150405Z")
		fmt.Fprintf(&b, "profiles: %s.cpu.pprof and %s.alloc.pprof (the server under the token_validate load, %d s, %d clients)\n",
			stem, stem, r.profileSeconds, r.o.clients)
	}
	return b.String()
}

func floats(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func argon2Source(flagValue string) string {
	if flagValue == "" {
		return "MCIAS defaults: no [argon2] section"
	}
	return "-argon2 " + flagValue
}
