#!/usr/bin/env bash
# Runs the platform's benchmarks and writes each result, with the command
# that produced it and the machine it ran on, to bench/results/.
#
#   bench/run.sh            every benchmark
#   bench/run.sh go mcias   only the named ones
#
#   go     Go micro-benchmarks of mcdsl (go test -bench)
#   mcias  a real MCIAS on loopback: token validations/s beside an empty
#          handler on the same stack (ratio), logins/s beside the raw
#          Argon2id rate, mcdsl/auth's cached validation in process, RSS,
#          CPU and allocation profiles (bench/mcias; BENCH_DURATION, default
#          10s per measurement; about 4 minutes)
#   mcns   MCNS's DNS server against knot, unbound and CoreDNS serving the
#          same zone, with dnsperf, pinned to one core and on two, the
#          servers taking turns; RSS, CPU per query, the machine's own
#          stalls (bench/stalls) and MCNS CPU/allocation profiles
#          (bench/mcns/run.sh; BENCH_DURATION, at most 15s; BENCH_ROUNDS,
#          default 3; about 3.5 minutes a round)
#   mcproxy  mc-proxy L7 and L4 against haproxy, nginx and caddy (every backend protocol, RSS, profiles; about 10 minutes) with the same
#          certificate and backend, with wrk, h2load and a TLS handshake
#          loop (bench/mcproxy/run.sh; BENCH_DURATION, at most 10s)
#   mcr    the mcr binary with a real MCIAS against distribution v3.1.2,
#          same client, certificate and disk: push/pull MiB/s of a 200 MiB
#          single-layer and a 50-layer image, manifest GETs/s, pull vs cp
#          (bench/mcr; BENCH_DURATION, default 10s, for the manifest GETs)
#   mcp    MCP deploy latency (mcp deploy → route serving, p50/p99 over 20
#          deploys) beside a bare podman run + wait-for-port of the same
#          image, and mcp-agent RSS idle and with 20 services (bench/mcp/run.sh)
#   metacrypt  the metacrypt binary with a real MCIAS against step-ca v0.30.2:
#          stored P-256 issuances/s, full ACME orders/s, transit and SSH CA
#          rates beside their raw primitives (bench/metacrypt;
#          BENCH_DURATION, default 10s per measurement)
#
# Service benchmarks against real peers (haproxy/caddy for mc-proxy,
# knot/unbound for MCNS, ...) are added beside this script by the issues
# that build those services, and report ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
export CGO_ENABLED=0

bench_go() {
	local stamp out
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	out=bench/results/go-$stamp.txt
	local cmd=(go test -run '^$' -bench . -benchmem -count 5 ./mcdsl/...)
	{
		echo "# command: ${cmd[*]}"
		echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
		echo "# machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)"
		"${cmd[@]}"
	} | tee "$out"
	echo "wrote $out"
}

bench_mcias() {
	# bench/mcias builds mcias itself, starts it and writes its own result
	# file (mcias-<stamp>.txt) with the command, commit and parameters.
	go run ./bench/mcias -duration "${BENCH_DURATION:-10s}" -out bench/results
}

bench_mcns() {
	# bench/mcns/run.sh installs dnsperf and the peers (CoreDNS into
	# .bin/bench) if missing and writes its own result file
	# (mcns-<stamp>.txt, with .cpu.pprof and .alloc.pprof beside it) with
	# commands, commit, ratios and memory.
	bench/mcns/run.sh
}

bench_mcp() {
	# bench/mcp/run.sh runs BenchmarkDeploy in mcp/e2e on the real platform
	# and writes its own result file (mcp-<stamp>.txt).
	bench/mcp/run.sh
}

bench_mcproxy() {
	# bench/mcproxy/run.sh installs wrk, h2load and the peers if missing
	# and writes its own result file (mcproxy-<stamp>.txt) with commands,
	# commit and ratios.
	bench/mcproxy/run.sh
}

bench_metacrypt() {
	# bench/metacrypt builds metacrypt and mcias, installs step-ca v0.30.2
	# into .bin/bench if missing and writes its own result file
	# (metacrypt-<stamp>.txt) with the command, commit and machine.
	go run ./bench/metacrypt -duration "${BENCH_DURATION:-10s}" -out bench/results
}

bench_mcr() {
	# bench/mcr builds mcr and mcias, installs distribution v3.1.2 into
	# .bin/bench once, runs all three and writes its own result file
	# (mcr-<stamp>.txt) with the command, commit, machine and parameters.
	go run ./bench/mcr -duration "${BENCH_DURATION:-10s}" -out bench/results
}

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
	targets=(go mcias mcns mcproxy mcr mcp metacrypt)
fi
for t in "${targets[@]}"; do
	case $t in
	go) bench_go ;;
	mcias) bench_mcias ;;
	mcns) bench_mcns ;;
	mcproxy) bench_mcproxy ;;
	mcr) bench_mcr ;;
	mcp) bench_mcp ;;
	metacrypt) bench_metacrypt ;;
	*)
		echo "bench/run.sh: unknown benchmark $t (known: go, mcias, mcns, mcproxy, mcr, mcp, metacrypt)" >&2
		exit 2
		;;
	esac
done
