#!/usr/bin/env bash
# bench/mcp/run.sh — MCP deploy latency and agent memory on the real
# platform (MCIAS, Metacrypt, MCNS, mc-proxy, MCR, podman), beside a bare
# "podman run" of the same image in the same run:
#
#   - "mcp deploy" → mc-proxy serving the new revision, p50/p99 over 20
#     redeploys of a cached image (the pull step's registry round trip is
#     reported apart);
#   - podman run + waiting for the port to answer HTTP, p50/p99, and the
#     ratios;
#   - mcp-agent RSS idle and with 20 services deployed.
#
# Targets (issue 12): deploy p99 ≤ 2 s, RSS < 40 MB (the k3s agent needs
# ~275 MB). The code is BenchmarkDeploy in mcp/e2e/bench_test.go.
#
#   bench/mcp/run.sh [OUTDIR]     (default bench/results)
set -euo pipefail
cd "$(dirname "$0")/../.."
out_dir=${1:-bench/results}
mkdir -p "$out_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$out_dir/mcp-$stamp.txt
cmd=(go test -count=1 -run '^$' -bench BenchmarkDeploy -benchtime 1x -timeout 30m ./mcp/e2e/)
{
	echo "# command: ${cmd[*]}"
	echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) (plus the working tree)"
	echo "# machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr), podman $(podman --version | awk '{print $3}')"
	CGO_ENABLED=0 "${cmd[@]}" 2>&1 | grep -v '^        time='
} | tee "$out"
echo "wrote $out"
