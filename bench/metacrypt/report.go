package main

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
)

type reportInfo struct {
	loadBefore string
	stepInfo   *buildinfo.BuildInfo
	pinning    string
	fsync      time.Duration
	fs         string
	mc         *metacryptServer
	step       *stepServer
}

func writeReport(w io.Writer, o options, in reportInfo, res *results) {
	fmt.Fprintf(w, "# bench/metacrypt: Metacrypt vs step-ca %s, HTTPS on loopback, same client, seed root and disk\n", stepCAVersion)
	fmt.Fprintf(w, "# command: %s\n", benchkit.Command("./bench/metacrypt"))
	fmt.Fprintf(w, "# commit: %s\n", benchkit.Commit("metacrypt", "mcias", "mcdsl", "bench"))
	fmt.Fprintf(w, "# date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "# machine: %d CPUs (%s), %s, %s/%s, %s, %s\n", runtime.NumCPU(), benchkit.CPUModel(), benchkit.MemTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version(), benchkit.Kernel())
	fmt.Fprintf(w, "# pinning: %s\n", in.pinning)
	fmt.Fprintf(w, "# storage: one temporary directory on %s; fdatasync of a 4 KiB write there: median %.2f ms\n", in.fs, benchkit.Ms(in.fsync))
	fmt.Fprintf(w, "# versions: metacrypt and mcias from this tree (%s); step-ca %s (%s, built with %s, CGO_ENABLED=0)\n",
		runtime.Version(), in.stepInfo.Main.Version, in.stepInfo.Main.Path, in.stepInfo.GoVersion)
	fmt.Fprintf(w, "# metacrypt config: %s\n", in.mc.config)
	fmt.Fprintf(w, "# step-ca config: %s\n", in.step.config)
	fmt.Fprintf(w, "# durability: metacrypt stores through mcdsl/db (SQLite WAL, synchronous=NORMAL): a commit is not fsynced, the WAL is at checkpoints "+
		"(survives a crash of the process, the last commits may be lost on power loss); step-ca's badger v2 has SyncWrites=true: each write batch "+
		"is fsynced (concurrent writes share one fsync)\n")
	fmt.Fprintf(w, "# what is stored per issuance: metacrypt one transaction (certificates row with DER + certificate_names rows); step-ca the token's "+
		"jti (used_ott, one write) and one transaction (x509_certs DER + x509_certs_data)\n")
	fmt.Fprintf(w, "# auth per issuance: metacrypt MCIAS bearer token of mcp-agent (validated by MCIAS, cached 30 s under its SHA-256) + ACL rule + "+
		"*.svc.%s limit read from the barrier per request; step-ca a one-time token (ES256 JWT, signed by this client per request, "+
		"verified, its jti stored against reuse)\n", domain)
	fmt.Fprintf(w, "# tls: TLS 1.3, HTTP/1.1 keep-alive, %d connections; metacrypt's certificate from the seed CA, step-ca's from its intermediate; "+
		"certificates issued: P-256, one DNS name under svc.%s\n", max(o.clients, o.orders), domain)
	fmt.Fprintf(w, "# client-side crypto: %d P-256 keys + CSRs made before the timed regions (cycled through) for metacrypt sign and step-ca; "+
		"step-ca's one-time tokens signed inside them (client CPU below); every answer's certificate parsed and its name checked\n", o.csrs)
	fmt.Fprintf(w, "# acme: golang.org/x/crypto/acme for both, %d concurrent orders, one account each (registered before timing; metacrypt's with EAB "+
		"bound to mcp-agent, step-ca's ACME provisioner has no EAB); order = new-order for IP 127.0.0.1 + authz + http-01 "+
		"(challenge server in this client) + poll + finalize (pregenerated P-256 CSR) + chain download; \"poll %s\": GET every %s; "+
		"\"Retry-After\": x/crypto/acme's WaitAuthorization/WaitOrder (Retry-After, 1 s when absent); metacrypt validates from a queue "+
		"(nudged at once), the challenge answer waiting up to 2 s for the first attempt (Retry-After: 1 only while still pending); "+
		"step-ca validates inside the challenge request\n",
		o.orders, o.poll, o.poll)
	if o.figures["transit"] {
		fmt.Fprintf(w, "# transit: aes256-gcm96 key, %d-byte random payloads, encrypt then decrypt (plaintext checked) = 1 pair; single: one pair per "+
			"2 requests; batch: %d pairs per EncryptBatch+DecryptBatch over gRPC (REST bodies are bounded at 64 KiB by mcdsl/gateway); "+
			"%d at a time, as mcp-agent (rule encrypt,decrypt on key/bench)\n", o.payload, o.batch, o.clients)
	}
	if o.figures["ssh"] {
		fmt.Fprintf(w, "# ssh: ed25519 CA, profile users (user certificates), %d ed25519 user keys cycled through, principal bench, REST, %d at a time, as mcp-agent\n",
			res.sshKeys, o.clients)
	}
	fmt.Fprintf(w, "# runs: %d repetitions of %s per figure and server (order alternating), after an untimed warm-up; figure = median; "+
		"raw rates: 2 s on this client's CPU, once per repetition\n", o.reps, o.duration)
	fmt.Fprintf(w, "# load average before / after: %s / %s (other work on the machine skews the numbers)\n", in.loadBefore, benchkit.LoadAvg())
	fmt.Fprintf(w, "# cpu ms/op: CPU the server processes (metacrypt+mcias; step-ca) and this client used per operation (medians; /proc/PID/stat)\n")
	fmt.Fprintln(w)

	sum := func(fig, server string) summary { return summarize(res.get(fig, server)) }
	row := func(label string, m, s summary) {
		fmt.Fprintf(w, "%-46s %10.1f %10.1f %8.2f   %6.3f / %6.3f   %7.2f / %7.2f   %6.3f / %6.3f\n", label, m.rate, s.rate, m.rate/s.rate,
			m.srvPerOp, s.srvPerOp, benchkit.Ms(m.p50), benchkit.Ms(s.p50), m.cliPerOp, s.cliPerOp)
	}
	if o.figures["issue"] || o.figures["acme"] {
		fmt.Fprintf(w, "%-46s %10s %10s %8s   %s\n", "figure (per second)", "metacrypt", "step-ca", "mc/step",
			"srv cpu ms/op mc / step   p50 ms mc / step   cli cpu ms/op mc / step")
	}
	if o.figures["issue"] {
		stepCSR := sum(figIssueCSR, "step-ca")
		key, csr := sum(figIssueKey, "metacrypt"), sum(figIssueCSR, "metacrypt")
		row("stored P-256 issuances, metacrypt server key", key, stepCSR)
		row("stored P-256 issuances, metacrypt CSR", csr, stepCSR)
		rawS, rawK := sum(rawSign, "local"), sum(rawKeySign, "local")
		fmt.Fprintf(w, "%-46s %10.1f   (CSR check + x509.CreateCertificate, P-256 issuer, on one CPU: the signing bound of a 1-CPU server)\n", "raw leaf signing, one CPU", rawS.rate)
		fmt.Fprintf(w, "%-46s %10.1f   (P-256 key generation + x509.CreateCertificate)\n", "raw key + leaf, one CPU", rawK.rate)
		fmt.Fprintf(w, "%-46s %10.2f %10.2f   (issuances/s over the raw rate: metacrypt server key / CSR)\n", "share of the raw rate", key.rate/rawK.rate, csr.rate/rawS.rate)
		fmt.Fprintf(w, "%-46s %10.2f %10.2f   (CPU seconds per second on CPU 0; 1.00 = saturated)\n", "server CPU use: metacrypt CSR / step-ca", csr.srvUtil, stepCSR.srvUtil)
		verdict := func(ok bool) string {
			if ok {
				return "met"
			}
			return "NOT met"
		}
		fmt.Fprintf(w, "target: >= 2000 stored issuances/s: %s (server key %.0f, CSR %.0f)\n", verdict(max(key.rate, csr.rate) >= 2000), key.rate, csr.rate)
		fmt.Fprintf(w, "target: >= 1.0x step-ca: %s (server key %.2fx, CSR %.2fx)\n", verdict(key.rate >= stepCSR.rate && csr.rate >= stepCSR.rate),
			key.rate/stepCSR.rate, csr.rate/stepCSR.rate)
	}
	if o.figures["acme"] {
		if o.figures["issue"] {
			fmt.Fprintln(w)
		}
		mp, sp := sum(figACMEPoll, "metacrypt"), sum(figACMEPoll, "step-ca")
		row(fmt.Sprintf("ACME orders, poll %s", o.poll), mp, sp)
		row("ACME orders, Retry-After (x/crypto/acme)", sum(figACMEStd, "metacrypt"), sum(figACMEStd, "step-ca"))
		fmt.Fprintf(w, "ACME polls per order (fixed interval): metacrypt %.1f, step-ca %.1f; p99 order ms: metacrypt %.1f, step-ca %.1f\n",
			mp.pollsOp, sp.pollsOp, benchkit.Ms(mp.p99), benchkit.Ms(sp.p99))
	}
	if o.engines {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%-46s %10s %10s %8s   %s\n", "metacrypt engines (per second)", "metacrypt", "raw", "mc/raw", "srv cpu ms/op   p50 ms   p99 ms")
		eng := func(label string, m, raw summary) {
			fmt.Fprintf(w, "%-46s %10.1f %10.1f %8.4f   %13.3f   %6.2f   %6.2f\n", label, m.rate, raw.rate, m.rate/raw.rate, m.srvPerOp, benchkit.Ms(m.p50), benchkit.Ms(m.p99))
		}
		if o.figures["transit"] {
			aes := sum(rawAES, "local")
			eng(fmt.Sprintf("transit %d B encrypt+decrypt pairs, REST", o.payload), sum(figTransitREST, "metacrypt"), aes)
			eng(fmt.Sprintf("transit %d B encrypt+decrypt pairs, gRPC", o.payload), sum(figTransitGRPC, "metacrypt"), aes)
			eng(fmt.Sprintf("transit %d B pairs, gRPC batches of %d", o.payload, o.batch), sum(figTransitBatch, "metacrypt"), aes)
		}
		if o.figures["ssh"] {
			eng("SSH user certificates signed, REST", sum(figSSH, "metacrypt"), sum(rawSSH, "local"))
		}
		fmt.Fprintf(w, "raw: AES-256-GCM seal+open of %d B with a crypto/rand nonce (crypto/aes) and x/crypto/ssh SignCert (ed25519 CA), each on one CPU (this client's)\n", o.payload)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "# every run (per second, in order)\n")
	figs := []struct{ fig, server string }{
		{figIssueKey, "metacrypt"}, {figIssueCSR, "metacrypt"}, {figIssueCSR, "step-ca"}, {rawSign, "local"}, {rawKeySign, "local"},
		{figACMEPoll, "metacrypt"}, {figACMEPoll, "step-ca"}, {figACMEStd, "metacrypt"}, {figACMEStd, "step-ca"},
		{figTransitREST, "metacrypt"}, {figTransitGRPC, "metacrypt"}, {figTransitBatch, "metacrypt"}, {rawAES, "local"},
		{figSSH, "metacrypt"}, {rawSSH, "local"},
	}
	total := 0
	for _, f := range figs {
		if len(res.get(f.fig, f.server)) == 0 {
			continue
		}
		s := sum(f.fig, f.server)
		xs := make([]string, 0, len(s.rates))
		for _, r := range s.rates {
			xs = append(xs, fmt.Sprintf("%.1f", r))
		}
		fmt.Fprintf(w, "# %-14s %-9s %s\n", f.fig, f.server, strings.Join(xs, " "))
		if f.server != "local" {
			total += s.units
		}
	}
	fmt.Fprintf(w, "# operations completed in timed regions: %d, no errors; http-01 challenges answered: %d\n", total, res.acmeChallenges)
}
