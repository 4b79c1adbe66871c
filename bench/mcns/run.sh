#!/usr/bin/env bash
# Measures MCNS's DNS server against knot, unbound and CoreDNS serving the
# same zone (bench.test, ~1200 records: A, AAAA, TXT, CNAME, NS, MX) on
# loopback, with dnsperf, and writes bench/results/mcns-<UTC stamp>.txt with
# the commands, commit, machine, the MCNS/peer ratios and each server's
# memory, plus CPU and allocation profiles of MCNS under the throughput
# load (mcns-<stamp>.cpu.pprof, mcns-<stamp>.alloc.pprof).
#
#   bench/mcns/run.sh                       (or: bench/run.sh mcns)
#   BENCH_DURATION=10s  seconds per measurement (capped at 15s)
#   BENCH_RATE=10000    queries/s of the fixed-load latency measurement
#   BENCH_ROUNDS=3      rounds; the report gives each figure's median
#
# Two configurations, each measured BENCH_ROUNDS times:
#   pinned  every server on CPU 0 with one worker thread (MCNS and
#           CoreDNS: GOMAXPROCS=1); dnsperf on CPU 1
#   2-core  every server on both cores with two workers (MCNS and CoreDNS:
#           GOMAXPROCS=2; knot udp-workers 2; unbound num-threads 2);
#           dnsperf unpinned
# In a round all four servers run at once and take turns in 2-second
# slices (the order reversed every other slice), each being queried while
# the others sit idle. This machine is a VM whose host now and then slows
# both CPUs for seconds at a time; measured in turns, such a spell falls on
# every server's slices alike instead of on whichever server had the
# machine then (a p99 taken of one server alone moved by a factor of ten
# from one 8-second run to the next). Two loads per server and round, each
# BENCH_DURATION long in all:
#   throughput  dnsperf as fast as it can, 4 sockets, 200 queries in flight
#   latency     dnsperf at BENCH_RATE queries/s with -v; the percentiles
#               come from the per-query latencies it prints (dnsperf 2.10
#               has no histogram option), pooled over every round
# Memory: VmRSS from /proc/<pid>/status once the server answers (idle),
# the largest VmRSS sampled during the measurements (load), and VmHWM at
# the end (the peak over the server's life, loading the zone included).
# The query file (same for every server) asks each host's A, AAAA and TXT
# or alias (CNAME followed to the A), and one query in ten is for a missing
# name (NXDOMAIN).
#
# CoreDNS is built from source: go install github.com/coredns/coredns at
# $coredns_version into .bin/bench (CGO_ENABLED=0), kept while `go version
# -m` shows that version; if the module proxy refuses the version, the
# nearest v1.1x it offers is used and the report says which.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
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
rounds=${BENCH_ROUNDS:-3}
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
	echo "bench/mcns: BENCH_ROUNDS must be a positive number" >&2
	exit 2
fi

# Each round gives each server its time in slices (see measure_round).
slice=2
if ((dur < 2)); then
	slice=1
fi
slices=$((dur / slice))

# dnsperf, the peers, dig (readiness checks), taskset and ss.
scripts/deps.sh pkgs dnsperf knot unbound dnsutils util-linux iproute2

# CoreDNS from source, at the version the report names.
coredns_version=v1.15.0
coredns_module=github.com/coredns/coredns
gobin=$repo/.bin/bench
coredns=$gobin/coredns
coredns_note=""
installed_coredns() {
	go version -m "$coredns" 2>/dev/null | awk -v m="$coredns_module" '$1 == "mod" && $2 == m {print $3}'
}
if [ "$(installed_coredns)" != "$coredns_version" ]; then
	echo "bench/mcns: installing CoreDNS $coredns_version into $gobin"
	if ! GOBIN=$gobin GOFLAGS= go install "$coredns_module@$coredns_version"; then
		# The nearest v1.1x the proxy offers: the highest below the
		# version asked for, else the lowest above it.
		versions=$(GOFLAGS= go list -m -versions "$coredns_module" | tr ' ' '\n' | grep -E '^v1\.1[0-9]+\.[0-9]+$' || true)
		nearest=$(printf '%s\n%s\n' "$versions" "$coredns_version" | sort -V | grep -B1 -x "$coredns_version" | head -1)
		if [ -z "$nearest" ] || [ "$nearest" = "$coredns_version" ]; then
			nearest=$(printf '%s\n' "$versions" | sort -V | head -1)
		fi
		if [ -z "$nearest" ]; then
			echo "bench/mcns: the module proxy offers no CoreDNS v1.1x" >&2
			exit 1
		fi
		coredns_note="the module proxy refused CoreDNS $coredns_version; using $nearest"
		echo "bench/mcns: $coredns_note" >&2
		GOBIN=$gobin GOFLAGS= go install "$coredns_module@$nearest"
		coredns_version=$nearest
	fi
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

# wait_ready PORT NAME PID: waits (at most 20 s) until the server answers.
wait_ready() {
	local i
	for i in $(seq 100); do
		if dig +time=1 +tries=1 @127.0.0.1 -p "$1" host-0000.bench.test A 2>/dev/null | grep -q 'status: NOERROR'; then
			return
		fi
		if ! kill -0 "$3" 2>/dev/null; then
			break
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

# status_kb PID FIELD: a VmRSS/VmHWM figure of the process, in kB.
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# proc_cpu PID: "TICKS SWITCHES", the process's CPU time so far in clock
# ticks (user and system) and its threads' context switches.
proc_cpu() {
	echo "$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat") $(cat /proc/"$1"/task/*/status | awk '/ctxt_switches:/ {n += $2} END {print n}')"
}

# sample_rss PID:FILE...: writes into each FILE the largest VmRSS of its
# process seen until killed (or until every process has ended). Shell
# builtins only, so that sampling four servers costs one sleep per tick.
sample_rss() {
	local -A most=()
	local pf k v alive
	while :; do
		alive=0
		for pf in "$@"; do
			while read -r k v _; do
				if [ "$k" = VmRSS: ]; then
					alive=1
					if ((v > ${most[$pf]:-0})); then
						most[$pf]=$v
						echo "$v" >"${pf#*:}"
					fi
				fi
			done <"/proc/${pf%%:*}/status" 2>/dev/null || true
		done
		((alive)) || return 0
		sleep 0.25
	done
}

echo "bench/mcns: building the MCNS bench server"
go build -o "$tmp/benchserver" ./mcns/internal/dnsserver/benchserver
go build -o "$tmp/stalls" ./bench/stalls

# The zone, its copies for the peers and the queries: written by the bench
# server into $tmp/data (every MCNS run writes its own store again).
mkdir -p "$tmp/data" "$tmp/res"
port=$(free_port 15300)
"$tmp/benchserver" -dir "$tmp/data" -listen "127.0.0.1:$port" >"$tmp/mcns.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_ready "$port" mcns "$server_pid"
stop_server "$server_pid"
records=$(($(grep -c $'\tIN\t' "$tmp/data/bench.test.zone") - 1)) # less the SOA

# start_server CONFIG NAME PORT: starts NAME for CONFIG (pinned or 2core),
# sets $server_pid.
start_server() {
	local config=$1 name=$2 port=$3 procs=1 cpu=()
	if [ "$config" = 2core ]; then
		procs=2
	elif [ "$(nproc)" -ge 2 ]; then
		cpu=(taskset -c 0)
	fi
	case $name in
	mcns)
		local dir=$tmp/mcns-run
		rm -rf "$dir"
		mkdir -p "$dir"
		GOMAXPROCS=$procs "${cpu[@]}" "$tmp/benchserver" -dir "$dir" -listen "127.0.0.1:$port" "${mcns_args[@]}" >"$tmp/mcns.log" 2>&1 &
		;;
	knot)
		rm -rf "$tmp/knot-run" "$tmp/knot-db"
		mkdir -p "$tmp/knot-run" "$tmp/knot-db"
		cat >"$tmp/knot.conf" <<EOF
server:
    rundir: "$tmp/knot-run"
    listen: 127.0.0.1@$port
    udp-workers: $procs
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$tmp/knot-db"
log:
  - target: stderr
    any: warning
zone:
  - domain: bench.test.
    file: "$tmp/data/bench.test.zone"
    storage: "$tmp/data"
    zonefile-sync: -1
    journal-content: none
EOF
		"${cpu[@]}" knotd -c "$tmp/knot.conf" >"$tmp/knot.log" 2>&1 &
		;;
	unbound)
		cat >"$tmp/unbound.conf" <<EOF
server:
    interface: 127.0.0.1
    port: $port
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$tmp"
    pidfile: "$tmp/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: $procs
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    do-not-query-localhost: yes
    include: "$tmp/data/unbound-local.conf"
remote-control:
    control-enable: no
EOF
		"${cpu[@]}" unbound -d -c "$tmp/unbound.conf" >"$tmp/unbound.log" 2>&1 &
		;;
	coredns)
		cat >"$tmp/Corefile" <<EOF
bench.test.:$port {
    bind 127.0.0.1
    file $tmp/data/bench.test.zone
}
EOF
		GOMAXPROCS=$procs "${cpu[@]}" "$coredns" -conf "$tmp/Corefile" >"$tmp/coredns.log" 2>&1 &
		;;
	esac
	server_pid=$!
	pids+=("$server_pid")
	wait_ready "$port" "$name" "$server_pid"
}

# measure_round CONFIG ROUND: one round of CONFIG. Every server is started
# at once (pinned: all on CPU 0; a server not being queried is idle), then
# they take turns in slices of $slice seconds: each gets a throughput slice,
# then each a latency slice, $slices times, the order reversed every other
# time. A busy moment of this shared machine (a neighbour on the host can
# slow both CPUs for seconds) so falls on every server's slices alike,
# rather than on whichever server was being measured. Writes
# $tmp/res/CONFIG.NAME.ROUND.{tput,lat}: the slices' dnsperf outputs one
# after another; .latcpu: the server's CPU and context switches before and
# after each latency slice (proc_cpu); .rss: the memory figures.
measure_round() {
	local config=$1 round=$2 s i out sampler before order=() client=() watch=()
	local -A sport spid
	if [ "$config" = pinned ] && [ "$(nproc)" -ge 2 ]; then
		client=(taskset -c 1)
	fi
	for s in "${servers[@]}"; do
		sport[$s]=$(free_port 15500)
		start_server "$config" "$s" "${sport[$s]}"
		spid[$s]=$server_pid
	done
	# Let the servers finish starting up (loading, first collections).
	sleep 1
	for s in "${servers[@]}"; do
		out=$tmp/res/$config.$s.$round
		: >"$out.tput"
		: >"$out.lat"
		: >"$out.latcpu"
		status_kb "${spid[$s]}" VmRSS >"$out.idle"
		cp "$out.idle" "$out.load"
		watch+=("${spid[$s]}:$out.load")
	done
	sample_rss "${watch[@]}" &
	sampler=$!
	for i in $(seq "$slices"); do
		order=("${servers[@]}")
		if ((i % 2 == 0)); then
			mapfile -t order < <(printf '%s\n' "${servers[@]}" | tac)
		fi
		for s in "${order[@]}"; do
			"${client[@]}" dnsperf -s 127.0.0.1 -p "${sport[$s]}" -d "$tmp/data/queries.txt" -l "$slice" -c 4 -q 200 >>"$tmp/res/$config.$s.$round.tput" 2>&1
		done
		for s in "${order[@]}"; do
			before=$(proc_cpu "${spid[$s]}")
			"${client[@]}" dnsperf -s 127.0.0.1 -p "${sport[$s]}" -d "$tmp/data/queries.txt" -l "$slice" -Q "$rate" -v >>"$tmp/res/$config.$s.$round.lat" 2>&1
			echo "$before $(proc_cpu "${spid[$s]}")" >>"$tmp/res/$config.$s.$round.latcpu"
		done
	done
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	for s in "${servers[@]}"; do
		out=$tmp/res/$config.$s.$round
		echo "$(cat "$out.idle") $(cat "$out.load") $(status_kb "${spid[$s]}" VmHWM)" >"$out.rss"
		stop_server "${spid[$s]}"
	done
}

servers=(mcns knot unbound coredns)
configs=(pinned 2core)
mcns_args=()
# The stalls the machine itself causes (see bench/stalls): a thread
# spinning on the servers' CPU, before the rounds and after.
stall_cpu=()
if [ "$(nproc)" -ge 2 ]; then
	stall_cpu=(taskset -c 0)
fi
stalls_before=$("${stall_cpu[@]}" "$tmp/stalls" -d 5s)
for round in $(seq "$rounds"); do
	for config in "${configs[@]}"; do
		echo "bench/mcns: round $round/$rounds, $config: ${servers[*]} in turns, $slices slices of ${slice}s each (throughput, then latency)"
		measure_round "$config" "$round"
	done
done

stalls_after=$("${stall_cpu[@]}" "$tmp/stalls" -d 5s)

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/mcns-$stamp.txt
mkdir -p bench/results

# Profiles: one more pinned MCNS run under the throughput load, writing a
# CPU profile of the serving and an allocation profile of everything
# allocated while serving.
echo "bench/mcns: profiling MCNS under the throughput load (${dur}s)"
mcns_args=(-cpuprofile "$tmp/mcns.cpu.pprof" -allocprofile "$tmp/mcns.alloc.pprof")
port=$(free_port 15500)
start_server pinned mcns "$port"
client=()
if [ "$(nproc)" -ge 2 ]; then
	client=(taskset -c 1)
fi
"${client[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/data/queries.txt" -l "$dur" -c 4 -q 200 >"$tmp/res/profile.tput" 2>&1
stop_server "$server_pid"
cp "$tmp/mcns.cpu.pprof" "bench/results/mcns-$stamp.cpu.pprof"
cp "$tmp/mcns.alloc.pprof" "bench/results/mcns-$stamp.alloc.pprof"

# dnsperf statistics, summed over the slices of a file (one dnsperf
# output after another), and percentiles of the per-query latencies.
qps() {
	awk '/Queries completed:/ {n += $3} /Run time \(s\):/ {t += $4} END {if (t > 0) printf "%.0f", n / t; else print "n/a"}' "$@"
}
# avg_ms FILE: the average latency, each slice weighted by its queries.
avg_ms() {
	awk '/Queries completed:/ {n = $3} /Average Latency \(s\):/ {s += $4 * n; c += n} END {if (c > 0) printf "%.3f", s / c * 1000; else print "n/a"}' "$@"
}
lost() {
	awk '/Queries sent:/ {s += $3} /Queries lost:/ {l += $3} END {if (s > 0) printf "%d (%.2f%%)", l, 100 * l / s}' "$@"
}
rcodes() {
	sed -n 's/^ *Response codes: *//p' "$@" | tr ',' '\n' | awk '$1 != "" {n[$1] += $2; t += $2} END {
		for (c in n) printf "%s %d (%.2f%%)\n", c, n[c], 100 * n[c] / t }' | sort | paste -sd, - | sed 's/,/, /g'
}
# latencies FILE...: the per-query latencies in the files, in ms, sorted.
latencies() { awk '/^> / {print $NF * 1000}' "$@" | sort -g; }
# pct P: the P-th percentile of the sorted numbers on stdin.
pct() {
	awk -v p="$1" '{v[NR] = $1} END {
		if (NR == 0) { print "n/a"; exit }
		i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
		printf "%.3f", v[i] }'
}
mean() { awk '{s += $1} END {if (NR > 0) printf "%.3f", s / NR; else print "n/a"}'; }
# median: the median of the numbers on stdin, one per line.
median() {
	sort -g | awk '{v[NR] = $1} END { if (NR == 0) { print "n/a"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# across CONFIG NAME CMD...: CMD's figure for every round, one per line.
across() {
	local config=$1 name=$2 r
	shift 2
	for r in $(seq "$rounds"); do
		"$@" "$tmp/res/$config.$name.$r"
		echo
	done
}
# all CONFIG NAME EXT: every round's file of that kind.
all() {
	local r
	for r in $(seq "$rounds"); do
		echo "$tmp/res/$1.$2.$r.$3"
	done
}
f_qps() { qps "$1.tput"; }
f_avg_max() { avg_ms "$1.tput"; }
f_p99() { latencies "$1.lat" | pct 99; }
f_rss() { awk -v i="$2" '{printf "%.1f", $i / 1024}' "$1.rss"; }
f_rss_idle() { f_rss "$1" 1; }
f_rss_load() { f_rss "$1" 2; }
f_rss_hwm() { f_rss "$1" 3; }
med() { across "$@" | median; }
# pooled CONFIG NAME: the latency figures over every query of every round
# at the fixed rate: "avg p50 p99 p99.9", in ms.
pooled() {
	local f files
	f=$(mktemp -p "$tmp")
	mapfile -t files < <(all "$1" "$2" lat)
	latencies "${files[@]}" >"$f"
	echo "$(mean <"$f") $(pct 50 <"$f") $(pct 99 <"$f") $(pct 99.9 <"$f")"
	rm -f "$f"
}
# paired CONFIG NAME: the median over the rounds of MCNS's queries/s
# divided by NAME's in the same round.
paired() {
	local r
	for r in $(seq "$rounds"); do
		awk -v a="$(qps "$tmp/res/$1.mcns.$r.tput")" -v b="$(qps "$tmp/res/$1.$2.$r.tput")" 'BEGIN {printf "%.4f\n", a / b}'
	done | median
}
# latcpu CONFIG NAME: "CPU_US SWITCHES", the server's CPU time in µs and
# its context switches per query answered at the fixed rate, over every
# round.
latcpu() {
	local lats cpus
	mapfile -t lats < <(all "$1" "$2" lat)
	mapfile -t cpus < <(all "$1" "$2" latcpu)
	awk -v q="$(awk '/Queries completed:/ {n += $3} END {print n}' "${lats[@]}")" -v hz="$(getconf CLK_TCK)" \
		'{t += $3 - $1; c += $4 - $2} END {if (q > 0) printf "%.1f %.2f", t * 1e6 / hz / q, c / q; else print "n/a n/a"}' "${cpus[@]}"
}
# totals CONFIG NAME: dnsperf's counts over every round's throughput slices.
totals() {
	local files
	mapfile -t files < <(all "$1" "$2" tput)
	awk '/Queries sent:/ {s += $3} /Queries completed:/ {c += $3} /Run time \(s\):/ {t += $4} END {
		printf "  queries sent %d, completed %d, in %.1f s of slices: %.0f queries/s\n", s, c, t, c / t }' "${files[@]}"
	printf '  lost: %s\n  response codes: %s\n  average latency: %s ms\n' "$(lost "${files[@]}")" "$(rcodes "${files[@]}")" "$(avg_ms "${files[@]}")"
}

config_title() {
	case $1 in
	pinned)
		if [ "$(nproc)" -ge 2 ]; then
			echo "pinned: every server on CPU 0 with one worker thread (MCNS, CoreDNS: GOMAXPROCS=1), taking turns; dnsperf on CPU 1"
		else
			echo "pinned: one CPU, so no pinning; one worker thread per server, taking turns"
		fi
		;;
	2core) echo "2-core: every server on both cores with two workers (MCNS, CoreDNS: GOMAXPROCS=2; knot udp-workers 2; unbound num-threads 2), taking turns; dnsperf unpinned" ;;
	esac
}

{
	echo "# bench/mcns: MCNS DNS server vs knot, unbound and CoreDNS, authoritative answers on loopback"
	echo "# command: bench/mcns/run.sh (BENCH_DURATION=${dur}s BENCH_RATE=$rate BENCH_ROUNDS=$rounds)"
	echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- mcns bench ':!bench/results' 2>/dev/null || echo ' (with uncommitted changes in mcns/ or bench/)')"
	echo "# machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)"
	echo "# load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
	echo "# versions: $(go env GOVERSION), $(knotd -V 2>&1 | head -1), unbound $(unbound -V 2>&1 | awk '/^Version/ {print $2}'), CoreDNS $coredns_version ($(go version -m "$coredns" | head -1 | awk '{print $2}')), dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}')"
	if [ -n "$coredns_note" ]; then
		echo "# note: $coredns_note"
	fi
	echo "# zone: bench.test, $records records; queries: $(wc -l <"$tmp/data/queries.txt") lines, replayed in a loop"
	echo "# throughput: dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l $slice -c 4 -q 200"
	echo "# latency:    dnsperf -s 127.0.0.1 -p PORT -d queries.txt -l $slice -Q $rate -v  (percentiles of the per-query latencies)"
	echo "# rounds: $rounds; in each, all four servers run at once and take turns: each is queried for $slices × ${slice}s of each load"
	echo "# queries/s: the median over the rounds; ratios: the median of the per-round ratios (paired), and the ratio of the medians"
	echo "# latency @rate: over every query of every round (pooled); p99 by round below"
	echo "# CPU and switches @rate: the server's CPU time (all threads, user and system) and context switches during the latency slices, per query"
	echo "# machine stalls (bench/stalls, a thread spinning $(if [ ${#stall_cpu[@]} -gt 0 ]; then echo "on CPU 0"; else echo unpinned; fi) for 5 s with no server busy): before the rounds $stalls_before; after $stalls_after"
	echo "# memory: RSS idle = VmRSS once answering; load = largest VmRSS sampled during the round; peak = VmHWM at the end"
	echo "# profiles: bench/results/mcns-$stamp.cpu.pprof and .alloc.pprof, one more pinned MCNS run, alone, under the throughput load for ${dur}s ($(qps "$tmp/res/profile.tput") queries/s while profiled)"
	for config in "${configs[@]}"; do
		echo
		echo "## $(config_title "$config")"
		echo
		printf '%-8s %10s %12s %13s %13s %13s %15s %16s %17s %9s %9s %9s\n' server "queries/s" "avg ms @max" "avg ms @rate" "p50 ms @rate" "p99 ms @rate" "p99.9 ms @rate" "CPU µs/q @rate" "switches/q @rate" "RSS idle" "RSS load" "RSS peak"
		declare -A slat=() scpu=()
		for s in "${servers[@]}"; do
			slat[$s]=$(pooled "$config" "$s")
			scpu[$s]=$(latcpu "$config" "$s")
			read -r l_avg l_p50 l_p99 l_p999 <<<"${slat[$s]}"
			read -r c_us c_sw <<<"${scpu[$s]}"
			printf '%-8s %10.0f %12s %13s %13s %13s %15s %15s %17s %8.1fM %8.1fM %8.1fM\n' "$s" "$(med "$config" "$s" f_qps)" "$(med "$config" "$s" f_avg_max)" \
				"$l_avg" "$l_p50" "$l_p99" "$l_p999" "$c_us" "$c_sw" \
				"$(med "$config" "$s" f_rss_idle)" "$(med "$config" "$s" f_rss_load)" "$(med "$config" "$s" f_rss_hwm)"
		done
		echo
		for s in "${servers[@]}"; do
			printf 'queries/s by round, %-8s %s\n' "$s:" "$(across "$config" "$s" f_qps | tr '\n' ' ')"
		done
		for s in "${servers[@]}"; do
			printf 'p99 ms @rate by round, %-8s %s\n' "$s:" "$(across "$config" "$s" f_p99 | tr '\n' ' ')"
		done
		echo
		read -r ma _ la _ <<<"${slat[mcns]}"
		read -r ca _ <<<"${scpu[mcns]}"
		for s in knot unbound coredns; do
			read -r mb _ lb _ <<<"${slat[$s]}"
			read -r cb _ <<<"${scpu[$s]}"
			awk -v peer="$s" -v p="$(paired "$config" "$s")" -v a="$(med "$config" mcns f_qps)" -v b="$(med "$config" "$s" f_qps)" \
				-v la="$la" -v lb="$lb" -v ma="$ma" -v mb="$mb" -v ca="$ca" -v cb="$cb" \
				-v ra="$(med "$config" mcns f_rss_load)" -v rb="$(med "$config" "$s" f_rss_load)" 'BEGIN {
				printf "MCNS/%s: queries/s %.2f (paired; ratio of the medians %.2f); avg latency @rate %.2f; p99 latency @rate %.2f; CPU per query @rate %.2f; RSS under load %.2f (latency, CPU, RSS: lower is better)\n",
					peer, p, a / b, (mb > 0 ? ma / mb : 0), (lb > 0 ? la / lb : 0), (cb > 0 ? ca / cb : 0), (rb > 0 ? ra / rb : 0) }'
		done
	done
	for config in "${configs[@]}"; do
		for s in "${servers[@]}"; do
			echo
			echo "## $config, $s: dnsperf at maximum load, summed over every round's slices"
			totals "$config" "$s"
		done
	done
} | tee "$out"
echo "wrote $out and its profiles"
