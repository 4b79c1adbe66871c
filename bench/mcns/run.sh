#!/usr/bin/env bash
# Measures MCNS's DNS server against knot and unbound serving the same zone
# (bench.test, ~1200 records: A, AAAA, TXT, CNAME, NS, MX) on loopback, with
# dnsperf, and writes bench/results/mcns-<UTC stamp>.txt with the commands,
# commit, machine and the MCNS/peer ratios.
#
#   bench/mcns/run.sh                       (or: bench/run.sh mcns)
#   BENCH_DURATION=10s  seconds per measurement (capped at 15s)
#   BENCH_RATE=10000    queries/s of the fixed-load latency measurement
#
# Each server runs alone, pinned to CPU 0 with one worker thread; dnsperf
# is pinned to CPU 1. Two measurements per server:
#   throughput  dnsperf as fast as it can, 4 sockets, 200 queries in flight
#   latency     dnsperf at BENCH_RATE queries/s with -v; p50/p99 come from
#               the per-query latencies it prints (dnsperf 2.10 has no
#               histogram option)
# The query file (same for every server) asks each host's A, AAAA and TXT
# or alias (CNAME followed to the A), and one query in ten is for a missing
# name (NXDOMAIN).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CGO_ENABLED=0

dur=${BENCH_DURATION:-10s}
dur=${dur%s}
if ! [[ $dur =~ ^[0-9]+$ ]] || ((dur < 1)); then
	echo "bench/mcns: BENCH_DURATION must be whole seconds, like 10s" >&2
	exit 2
fi
if ((dur > 15)); then
	echo "bench/mcns: measuring 15s each (BENCH_DURATION=${dur}s is over this benchmark's cap)" >&2
	dur=15
fi
rate=${BENCH_RATE:-10000}

# dnsperf, the peers, dig (readiness checks), taskset and ss.
scripts/deps.sh pkgs dnsperf knot unbound dnsutils util-linux iproute2

if [ "$(nproc)" -ge 2 ]; then
	server_cpu=(taskset -c 0)
	client_cpu=(taskset -c 1)
	pinning="servers on CPU 0, dnsperf on CPU 1"
else
	server_cpu=()
	client_cpu=()
	pinning="one CPU: no pinning"
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# free_port prints a loopback port free on both UDP and TCP.
free_port() {
	local p
	for p in $(seq "$1" $(($1 + 200))); do
		if [ -z "$(ss -Hlnu "sport = :$p")" ] && [ -z "$(ss -Hlnt "sport = :$p")" ]; then
			echo "$p"
			return
		fi
	done
	echo "bench/mcns: no free port from $1" >&2
	exit 1
}

# wait_ready waits (at most 10 s) until a server answers on port.
wait_ready() {
	local i
	for i in $(seq 50); do
		if dig +time=1 +tries=1 @127.0.0.1 -p "$1" host-0000.bench.test A 2>/dev/null | grep -q 'status: NOERROR'; then
			return
		fi
		sleep 0.2
	done
	echo "bench/mcns: $2 did not answer on port $1; its log:" >&2
	cat "$tmp/$2.log" >&2 || true
	exit 1
}

stop_server() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# measure NAME PORT: both dnsperf runs, results in $tmp/NAME.{tput,lat}.
measure() {
	local name=$1 port=$2
	"${client_cpu[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries.txt" -l "$dur" -c 4 -q 200 >"$tmp/$name.tput" 2>&1
	"${client_cpu[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries.txt" -l "$dur" -Q "$rate" -v >"$tmp/$name.lat" 2>&1
}

# stat FILE FIELD: a number from dnsperf's statistics.
qps() { awk '/Queries per second:/ {print $4}' "$1"; }
avg_ms() { awk '/Average Latency \(s\):/ {printf "%.3f", $4 * 1000}' "$1"; }
lost() { awk '/Queries lost:/ {print $3, $4}' "$1"; }
rcodes() { sed -n 's/^ *Response codes: *//p' "$1"; }
# pct FILE P: the P-th percentile of the per-query latencies, in ms.
pct() {
	awk '/^> / {print $NF}' "$1" | sort -g | awk -v p="$2" '{v[NR] = $1} END {
		if (NR == 0) { print "n/a"; exit }
		i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
		printf "%.3f", v[i] * 1000 }'
}

echo "bench/mcns: building the MCNS bench server"
go build -o "$tmp/benchserver" ./mcns/internal/dnsserver/benchserver

servers=()

# MCNS (it also writes the zone file, unbound data and queries).
mcns_port=$(free_port 15300)
"${server_cpu[@]}" "$tmp/benchserver" -dir "$tmp" -listen "127.0.0.1:$mcns_port" >"$tmp/mcns.log" 2>&1 &
pids+=($!)
mcns_pid=$!
wait_ready "$mcns_port" mcns
records=$(($(grep -c $'\tIN\t' "$tmp/bench.test.zone") - 1)) # less the SOA
echo "bench/mcns: MCNS on port $mcns_port ($records records); measuring ${dur}s + ${dur}s"
measure mcns "$mcns_port"
stop_server "$mcns_pid"
servers+=(mcns)

# knot: the same zone from the exported zone file, as the current user.
knot_port=$(free_port 15500)
mkdir -p "$tmp/knot-run" "$tmp/knot-db"
cat >"$tmp/knot.conf" <<EOF
server:
    rundir: "$tmp/knot-run"
    listen: 127.0.0.1@$knot_port
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$tmp/knot-db"
log:
  - target: stderr
    any: warning
zone:
  - domain: bench.test.
    file: "$tmp/bench.test.zone"
    storage: "$tmp"
    zonefile-sync: -1
    journal-content: none
EOF
"${server_cpu[@]}" knotd -c "$tmp/knot.conf" >"$tmp/knot.log" 2>&1 &
pids+=($!)
knot_pid=$!
wait_ready "$knot_port" knot
echo "bench/mcns: knot on port $knot_port; measuring"
measure knot "$knot_port"
stop_server "$knot_pid"
servers+=(knot)

# unbound: local-zone/local-data for the same records, no recursion.
unbound_port=$(free_port 15700)
cat >"$tmp/unbound.conf" <<EOF
server:
    interface: 127.0.0.1
    port: $unbound_port
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$tmp"
    pidfile: "$tmp/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    do-not-query-localhost: yes
    include: "$tmp/unbound-local.conf"
remote-control:
    control-enable: no
EOF
"${server_cpu[@]}" unbound -d -c "$tmp/unbound.conf" >"$tmp/unbound.log" 2>&1 &
pids+=($!)
unbound_pid=$!
wait_ready "$unbound_port" unbound
echo "bench/mcns: unbound on port $unbound_port; measuring"
measure unbound "$unbound_port"
stop_server "$unbound_pid"
servers+=(unbound)

# The report.
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/mcns-$stamp.txt
{
	echo "# bench/mcns: MCNS DNS server vs knot and unbound, authoritative answers on loopback"
	echo "# command: bench/mcns/run.sh (BENCH_DURATION=${dur}s BENCH_RATE=$rate)"
	echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- mcns bench 2>/dev/null || echo ' (with uncommitted changes in mcns/ or bench/)')"
	echo "# machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)"
	echo "# load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
	echo "# pinning: $pinning; one worker thread per server (MCNS: GOMAXPROCS follows the pinned CPU)"
	echo "# versions: $(go env GOVERSION), $(knotd -V 2>&1 | head -1), unbound $(unbound -V 2>&1 | awk '/^Version/ {print $2}'), dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}')"
	echo "# zone: bench.test, $records records; queries: $(wc -l <"$tmp/queries.txt") lines, replayed in a loop"
	echo "# throughput: ${client_cpu[*]} dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l $dur -c 4 -q 200"
	echo "# latency:    ${client_cpu[*]} dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l $dur -Q $rate -v  (percentiles of the per-query latencies)"
	echo
	printf '%-8s %12s %14s %14s %14s %14s  %s\n' server "queries/s" "avg ms @max" "avg ms @rate" "p50 ms @rate" "p99 ms @rate" "lost (max load); response codes"
	for s in "${servers[@]}"; do
		printf '%-8s %12.0f %14s %14s %14s %14s  %s; %s\n' "$s" "$(qps "$tmp/$s.tput")" "$(avg_ms "$tmp/$s.tput")" \
			"$(avg_ms "$tmp/$s.lat")" "$(pct "$tmp/$s.lat" 50)" "$(pct "$tmp/$s.lat" 99)" "$(lost "$tmp/$s.tput")" "$(rcodes "$tmp/$s.tput")"
	done
	echo
	for s in knot unbound; do
		awk -v peer="$s" -v a="$(qps "$tmp/mcns.tput")" -v b="$(qps "$tmp/$s.tput")" \
			-v la="$(pct "$tmp/mcns.lat" 99)" -v lb="$(pct "$tmp/$s.lat" 99)" \
			-v ma="$(avg_ms "$tmp/mcns.lat")" -v mb="$(avg_ms "$tmp/$s.lat")" 'BEGIN {
			printf "MCNS/%s: queries/s %.2f; avg latency @rate %.2f; p99 latency @rate %.2f (latency: lower is better)\n",
				peer, a / b, (mb > 0 ? ma / mb : 0), (lb > 0 ? la / lb : 0) }'
	done
	for s in "${servers[@]}"; do
		echo
		echo "## $s: dnsperf statistics, maximum load"
		sed -n '/^Statistics:/,$p' "$tmp/$s.tput"
	done
} | tee "$out"
echo "wrote $out"
