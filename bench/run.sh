#!/usr/bin/env bash
# Runs the platform's benchmarks and writes each result, with the command
# that produced it and the machine it ran on, to bench/results/.
#
# Go micro-benchmarks run here today. Service benchmarks against real peers
# (haproxy/caddy for mc-proxy, knot/unbound for MCNS, ...) are added beside
# this script by the issues that build those services, and report ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/go-$stamp.txt
cmd=(go test -run '^$' -bench . -benchmem -count 5 ./mcdsl/...)
{
	echo "# command: ${cmd[*]}"
	echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "# machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)"
	CGO_ENABLED=0 "${cmd[@]}"
} | tee "$out"
echo "wrote $out"
