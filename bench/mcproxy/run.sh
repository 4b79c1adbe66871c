#!/usr/bin/env bash
# Measures mc-proxy's data plane, L7 (TLS terminated, HTTP reverse proxied)
# and L4 (SNI read, raw TLS relayed), against haproxy, caddy and nginx
# configured the same way on loopback, and writes
# bench/results/mcproxy-<UTC stamp>.txt with the commands, commit,
# versions, machine, the table, the mc-proxy/peer ratios and where each
# proxy's CPU goes per request (perf), and beside it CPU and allocation
# profiles of mc-proxy under the h1 and h2 loads
# (mcproxy-<stamp>.{h1,h2}.{cpu,allocs}.pprof; `go tool pprof FILE`).
#
#   bench/mcproxy/run.sh                    (or: bench/run.sh mcproxy)
#   BENCH_DURATION=10s  seconds per measurement (capped at 10s)
#   BENCH_ROUNDS=5      rounds of the paired measurements (below)
#
# Everything shares one certificate (ECDSA P-256 for "localhost", issued by
# `metacircular ca init/issue` into a temporary root) and one backend, the
# Go helper mcproxy/internal/benchproxy: a fixed 1 KiB body, HTTP/1.1 + h2c
# on a plain port and HTTP/1.1 + h2 over TLS on another (the TLS backends
# of the L7 proxies, and the L4 upstream, which terminates the relayed TLS
# itself).
#
# L7 backend protocols, each measured with HTTP/1.1 and HTTP/2 clients; a
# proxy speaks the same protocol to the backend whatever its client spoke:
#   http1   HTTP/1.1 over plain TCP (pooled keep-alive connections)
#   h2c     HTTP/2 with prior knowledge over plain TCP
#   tls     HTTP/1.1 over TLS (ALPN http/1.1), the backend's certificate
#           verified against the CA
#   tls-h2  TLS offering h2 and http/1.1 in ALPN; the backend picks h2
#
#   mc-proxy  benchproxy proxy: proxy.New/Serve with an "l7" listener (route
#             localhost, mode l7, backend_protocol http1 | h2c | auto with
#             backend_tls for tls-h2, http1 with backend_tls for tls) and an
#             "l4" listener (route localhost, mode l4, backend the TLS port)
#   haproxy   nbthread 1; L7: `mode http`, `bind ... ssl crt ... alpn
#             h2,http/1.1`, X-Forwarded-For/-Proto, `server ...` plain,
#             `proto h2`, `ssl verify required ... alpn http/1.1` or
#             `alpn h2,http/1.1`; L4: `mode tcp`, `use_backend ... if {
#             req.ssl_sni -i localhost }`
#   caddy     L7 only (caddy has no L4 without plugins): reverse_proxy with
#             `tls CERT KEY`, `auto_https off`, `admin off`, no ACME, h1+h2
#             only (no HTTP/3); upstream http://, h2c://, or https:// with
#             `versions 1.1` or `versions 1.1 2`
#   nginx     L7 only (the issue asks for it as an L7 peer); Debian's nginx,
#             worker_processes 1, `listen ... ssl http2`, proxy_pass to an
#             upstream with `keepalive 256`, proxy_http_version 1.1,
#             keepalive_requests raised from 1000 (client and upstream);
#             http1 and tls only: nginx's proxy module speaks HTTP/1.x to
#             backends, so it has no h2c or h2 backends (grpc_pass speaks
#             HTTP/2 to gRPC backends only)
#
# The proxies run one at a time; the proxy under test and the backend are
# pinned to CPU 0, the load generators to CPU 1. Measurements per proxy,
# mode and backend protocol (and once straight to the backend's TLS port,
# for scale):
#   h1   wrk -t1 -c64 --latency, keep-alive: requests/s and p99
#   h2   h2load -t1 -c16 -m10 (160 streams in flight): requests/s and mean
#        (h2load prints no percentiles)
#   hs   (backend http1 and L4 only) new TLS handshakes/s: benchproxy
#        handshakes -c16, each connection one full handshake (no session
#        cache) and one request with Connection: close. wrk -H
#        "Connection: close" and h2load --h1 both resume sessions from
#        tickets when they reconnect (checked: >99% resumed) and openssl
#        s_time sends no SNI, hence the helper.
# Each proxy/mode gets a 2 s wrk warm-up first (not recorded).
# CPU columns are the proxy's and the backend's share of CPU 0 during the
# measurement (from /proc/PID/stat). RSS: the proxy's VmRSS once it
# answers, before any load (idle), and its VmHWM after its L7 loads (peak;
# for mc-proxy and haproxy before their L4 loads), from /proc/PID/status,
# summed over nginx's master and worker.
#
# Paired rounds, after those: mc-proxy, haproxy and nginx (backend http1)
# run at once, each pinned as above, and are measured in turn (h1, h2 and,
# through the L4 listeners of mc-proxy and haproxy, h1 again) for
# BENCH_ROUNDS rounds of 5 s, the order reversed every other round. The
# per-round ratios compare measurements seconds apart, so the drift of a
# shared machine's CPU over minutes cancels out; their medians are the
# headline figures bench/results/SUMMARY.md shows.
#
# The profiles come from a separate run after the measurements (mc-proxy,
# backend http1, benchproxy proxy -pprof on loopback), so profiling never
# slows a measured run.
#
# Cost per request, another separate run after those: mc-proxy, haproxy
# and nginx (L7, backend http1), each started afresh with a 2 s warm-up,
# under the h1 and h2 loads for 5 s (less when BENCH_DURATION is) while
#   perf stat -e task-clock,context-switches -p PIDS
#   perf record -N -g -F 999 -p PIDS   (no build-id cache)
# run beside the load generator over the proxy's processes (nginx: master
# and worker). From the load's request count: CPU µs per request, split
# into user space and kernel by the samples' shared object (perf report
# --sort dso: [kernel.kallsyms] is the kernel; the binary, libssl,
# libcrypto, libc and the vdso are user space), the kernel's part in
# write-type syscalls (ksys_write, do_writev, __sys_sendto, __sys_sendmsg)
# and read-type ones (ksys_read, do_readv, __sys_recvfrom, __sys_recvmsg),
# and context switches per request; then, for mc-proxy alone, the
# cumulative share (perf report --children --sort sym) of a fixed list of
# functions (net/http's server connections and the handler, the backend
# transport's connection loops, scheduler, GC, allocation, stack growth,
# crypto, syscalls) in µs per request. Only text is kept (each perf.data,
# in the temporary directory, is deleted once reported). Where perf cannot
# run (not installed, no perf events in the kernel,
# kernel.perf_event_paranoid above 1 for a non-root user, attaching
# refused) the section says so and why, and the rest of the run is
# unaffected.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CGO_ENABLED=0

dur=${BENCH_DURATION:-10s}
dur=${dur%s}
if ! [[ $dur =~ ^[0-9]+$ ]] || ((dur < 1)); then
	echo "bench/mcproxy: BENCH_DURATION must be whole seconds, like 10s" >&2
	exit 2
fi
if ((dur > 10)); then
	echo "bench/mcproxy: measuring 10s each (BENCH_DURATION=${dur}s is over this benchmark's cap)" >&2
	dur=10
fi

# The load generators, the peers, curl (readiness), taskset, ss and perf.
scripts/deps.sh pkgs wrk nghttp2-client haproxy caddy nginx curl util-linux iproute2 linux-perf
# The Debian packages start their own services; ours are separate
# processes on other ports, so those may keep running.

if [ "$(nproc)" -ge 2 ]; then
	server_cpu=(taskset -c 0)
	client_cpu=(taskset -c 1)
	pinning="proxy and backend on CPU 0, load generators on CPU 1"
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

# free_port prints a free loopback TCP port from $1 on.
free_port() {
	local p
	for p in $(seq "$1" $(($1 + 200))); do
		if [ -z "$(ss -Hlnt "sport = :$p")" ]; then
			echo "$p"
			return
		fi
	done
	echo "bench/mcproxy: no free port from $1" >&2
	exit 1
}

# wait_ready URL NAME: waits (at most 10 s) for a 200 from URL.
wait_ready() {
	local i
	for i in $(seq 50); do
		if [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$1" 2>/dev/null)" = 200 ]; then
			return
		fi
		sleep 0.2
	done
	echo "bench/mcproxy: $2 did not answer 200 on $1; its log:" >&2
	cat "$tmp/$2.log" >&2 || true
	exit 1
}

stop_server() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# family PID: PID and its children (nginx's workers).
family() { echo "$1" $(pgrep -P "$1" || true); }
# ticks PID: user+system CPU clock ticks used so far by PID's family.
ticks() {
	local p t=0
	for p in $(family "$1"); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
# rss PID FIELD: FIELD (VmRSS, VmHWM) of PID's family, in MiB.
rss() {
	local p kb=0
	for p in $(family "$1"); do
		kb=$((kb + $(awk -v f="$2:" '$1 == f {print $2}' "/proc/$p/status")))
	done
	awk -v kb="$kb" 'BEGIN { printf "%.1f", kb / 1024 }'
}
hz=$(getconf CLK_TCK)

# measure NAME PORT PROXY_PID KINDS: KINDS (of h1 h2 hs) through
# https://localhost:PORT/, outputs in $tmp/NAME.KIND, CPU shares in
# $tmp/NAME.KIND.cpu.
measure() {
	local name=$1 port=$2 ppid=$3 kinds=$4 kind p0 b0 t0 t1
	local url="https://localhost:$port/"
	# Warm-up, not recorded: connections to the backend, caches, GC pacing.
	"${client_cpu[@]}" wrk -t1 -c64 -d2s "$url" >/dev/null 2>&1
	for kind in $kinds; do
		p0=$(ticks "$ppid")
		b0=$(ticks "$backend_pid")
		t0=$(date +%s.%N)
		case $kind in
		h1) "${client_cpu[@]}" wrk -t1 -c64 -d"${dur}s" --latency "$url" >"$tmp/$name.h1" 2>&1 ;;
		h2) "${client_cpu[@]}" h2load -t1 -c16 -m10 -D "$dur" "$url" >"$tmp/$name.h2" 2>&1 ;;
		hs) "${client_cpu[@]}" "$tmp/benchproxy" handshakes -addr "127.0.0.1:$port" -sni localhost -c 16 -d "${dur}s" >"$tmp/$name.hs" 2>&1 ;;
		esac
		t1=$(date +%s.%N)
		awk -v p="$(($(ticks "$ppid") - p0))" -v b="$(($(ticks "$backend_pid") - b0))" -v hz="$hz" -v t="$(echo "$t1 - $t0" | bc -l)" \
			-v same="$([ "$ppid" = "$backend_pid" ] && echo 1 || echo 0)" \
			'BEGIN { if (same) printf "-/%.0f%%", 100 * b / hz / t; else printf "%.0f%%/%.0f%%", 100 * p / hz / t, 100 * b / hz / t }' >"$tmp/$name.$kind.cpu"
	done
}

# Numbers from the outputs ("-" when not measured); latencies in ms.
to_ms() { awk '{ v = $1; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
	if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
	printf "%.2f", v }'; }
have() { [ -s "$1" ] || { echo "-"; return 1; }; }
h1_rps() { have "$1" && awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$1"; }
h1_p99() { have "$1" && awk '$1 == "99%" {print $2}' "$1" | to_ms; }
h1_errs() {
	local e
	have "$1" >/dev/null || { echo "-"; return; }
	e=$(sed -n 's/^ *Socket errors: *//p; s/^ *Non-2xx or 3xx responses: */non-2xx /p' "$1" | paste -sd';' -)
	echo "${e:-none}"
}
h2_rps() { have "$1" && awk '/^finished in/ {gsub(/,/, "", $4); printf "%.0f", $4}' "$1"; }
h2_mean() { have "$1" && awk '/^time for request:/ {print $6}' "$1" | to_ms; }
h2_errs() { have "$1" >/dev/null || { echo "-"; return; }; awk '/^requests:/ {r = $10 " failed, " $12 " errored"} /^Application protocol:/ {p = " (" $3 ")"} END {print r p}' "$1"; }
hs_field() { have "$1" && awk -v f="$2" '{for (i = 1; i < NF; i++) if ($i == f) print $(i + 1)}' "$1"; }
cpu_of() { if [ -s "$1" ]; then cat "$1"; else echo "-"; fi; }

echo "bench/mcproxy: building benchproxy and metacircular; issuing the certificate"
go build -o "$tmp/benchproxy" ./mcproxy/internal/benchproxy
go build -o "$tmp/metacircular" ./cmd/metacircular
"$tmp/metacircular" ca init --root "$tmp/root" >/dev/null
"$tmp/metacircular" ca issue bench --root "$tmp/root" --dns localhost --validity 1d >/dev/null
cert=$tmp/root/ca/issued/bench.crt
key=$tmp/root/ca/issued/bench.key
ca=$tmp/root/ca/ca.crt
cat "$cert" "$key" >"$tmp/haproxy.pem"

# The backend, shared by everything.
be_http=$(free_port 18080)
be_tls=$(free_port 18443)
"${server_cpu[@]}" "$tmp/benchproxy" backend -http "127.0.0.1:$be_http" -tls "127.0.0.1:$be_tls" -cert "$cert" -key "$key" >"$tmp/backend.log" 2>&1 &
pids+=($!)
backend_pid=$!
wait_ready "http://127.0.0.1:$be_http/" backend
wait_ready "https://localhost:$be_tls/" backend

rows=()
# started NAME PID PORT: waits for the proxy, records its idle RSS.
started() {
	wait_ready "https://localhost:$3/" "$1"
	rss "$2" VmRSS >"$tmp/$1.rss_idle"
}
# peaked NAME PID: records the proxy's peak RSS so far.
peaked() { rss "$2" VmHWM >"$tmp/$1.rss_peak"; }

echo "bench/mcproxy: backend direct (TLS port $be_tls); ${dur}s per measurement"
measure direct "$be_tls" "$backend_pid" "h1 h2 hs"
rows+=("direct:backend TLS, no proxy")

protos=(http1 h2c tls tls-h2)
# kinds_for PROTO: handshakes are measured with the http1 backend only.
kinds_for() { if [ "$1" = http1 ]; then echo "h1 h2 hs"; else echo "h1 h2"; fi; }

# measure_proxy ID NAME PID PROTO L7PORT [L4PORT]: the L7 measurements of
# a started proxy (ID as in mcproxy, NAME as in the rows: "mc-proxy"), its
# RSS, and for backend http1 with an L4 port the L4 ones too.
measure_proxy() {
	local id=$1 name=$2 pid=$3 proto=$4 l7=$5 l4=${6:-}
	started "$id-l7-$proto" "$pid" "$l7"
	echo "bench/mcproxy: $name L7 :$l7 (backend $proto)"
	measure "$id-l7-$proto" "$l7" "$pid" "$(kinds_for "$proto")"
	peaked "$id-l7-$proto" "$pid"
	rows+=("$id-l7-$proto:$name L7, backend $proto")
	if [ "$proto" = http1 ] && [ -n "$l4" ]; then
		wait_ready "https://localhost:$l4/" "$id"
		echo "bench/mcproxy: $name L4 :$l4"
		measure "$id-l4" "$l4" "$pid" "h1 h2 hs"
		rows+=("$id-l4:$name L4")
	fi
}

# start_mcproxy L7PORT L4PORT ARGS...: starts benchproxy proxy on CPU 0 (L4
# to the backend's TLS port; ARGS name the L7 backend) and sets mc_pid.
start_mcproxy() {
	local l7=$1 l4=$2
	shift 2
	"${server_cpu[@]}" "$tmp/benchproxy" proxy -l7 "127.0.0.1:$l7" -l4 "127.0.0.1:$l4" -host localhost \
		-cert "$cert" -key "$key" -tls-backend "127.0.0.1:$be_tls" "$@" >>"$tmp/mcproxy.log" 2>&1 &
	pids+=($!)
	mc_pid=$!
}

# mc-proxy.
for proto in "${protos[@]}"; do
	mc7=$(free_port 19443)
	mc4=$(free_port $((mc7 + 1)))
	case $proto in
	http1) be=(-backend "127.0.0.1:$be_http" -backend-protocol http1) ;;
	h2c) be=(-backend "127.0.0.1:$be_http" -backend-protocol h2c) ;;
	tls) be=(-backend "127.0.0.1:$be_tls" -backend-protocol http1 -backend-tls -backend-ca "$ca" -backend-server-name localhost) ;;
	tls-h2) be=(-backend "127.0.0.1:$be_tls" -backend-protocol auto -backend-tls -backend-ca "$ca" -backend-server-name localhost) ;;
	esac
	start_mcproxy "$mc7" "$mc4" "${be[@]}"
	measure_proxy mcproxy mc-proxy "$mc_pid" "$proto" "$mc7" "$mc4"
	stop_server "$mc_pid"
done

# haproxy.
# haproxy_cfg PROTO L7PORT L4PORT: writes $tmp/haproxy.cfg.
haproxy_cfg() {
	local server ha7=$2 ha4=$3
	local verify="ssl verify required ca-file $ca verifyhost localhost sni str(localhost)"
	case $1 in
	http1) server="127.0.0.1:$be_http" ;;
	h2c) server="127.0.0.1:$be_http proto h2" ;;
	tls) server="127.0.0.1:$be_tls $verify alpn http/1.1" ;;
	tls-h2) server="127.0.0.1:$be_tls $verify alpn h2,http/1.1" ;;
	esac
	cat >"$tmp/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
defaults
    timeout connect 5s
    timeout client 5m
    timeout server 5m
frontend l7
    mode http
    bind 127.0.0.1:$ha7 ssl crt $tmp/haproxy.pem alpn h2,http/1.1
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    default_backend be_l7
backend be_l7
    mode http
    server backend $server
frontend l4
    mode tcp
    bind 127.0.0.1:$ha4
    tcp-request inspect-delay 10s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend be_tls if { req.ssl_sni -i localhost }
backend be_tls
    mode tcp
    server backend 127.0.0.1:$be_tls
CFG
}
# start_haproxy PROTO L7PORT L4PORT: writes the configuration for PROTO
# and starts haproxy on CPU 0; sets $ha_pid.
start_haproxy() {
	haproxy_cfg "$@"
	"${server_cpu[@]}" haproxy -db -f "$tmp/haproxy.cfg" >>"$tmp/haproxy.log" 2>&1 &
	pids+=($!)
	ha_pid=$!
}
for proto in "${protos[@]}"; do
	ha7=$(free_port 20443)
	ha4=$(free_port $((ha7 + 1)))
	start_haproxy "$proto" "$ha7" "$ha4"
	measure_proxy haproxy haproxy "$ha_pid" "$proto" "$ha7" "$ha4"
	stop_server "$ha_pid"
done

# caddy (L7 only).
for proto in "${protos[@]}"; do
	ca7=$(free_port 21443)
	case $proto in
	http1) upstream="reverse_proxy 127.0.0.1:$be_http" ;;
	h2c) upstream="reverse_proxy h2c://127.0.0.1:$be_http" ;;
	tls | tls-h2)
		versions="1.1"
		[ "$proto" = tls-h2 ] && versions="1.1 2"
		upstream="reverse_proxy https://127.0.0.1:$be_tls {
        transport http {
            tls_trusted_ca_certs $ca
            tls_server_name localhost
            versions $versions
        }
    }"
		;;
	esac
	cat >"$tmp/Caddyfile" <<CFG
{
    admin off
    auto_https off
    storage file_system $tmp/caddy-data
    servers {
        protocols h1 h2
    }
}
https://localhost:$ca7 {
    bind 127.0.0.1
    tls $cert $key
    $upstream
}
CFG
	XDG_DATA_HOME=$tmp/caddy-data XDG_CONFIG_HOME=$tmp/caddy-config HOME=$tmp \
		"${server_cpu[@]}" caddy run --adapter caddyfile --config "$tmp/Caddyfile" >>"$tmp/caddy.log" 2>&1 &
	pids+=($!)
	ca_pid=$!
	measure_proxy caddy caddy "$ca_pid" "$proto" "$ca7"
	stop_server "$ca_pid"
done

# nginx (L7 only; HTTP/1.1 backends only).
# nginx_cfg PROTO DIR PORT: writes DIR/nginx.conf, its files all in DIR.
nginx_cfg() {
	local pass upstream nd=$2 ng7=$3
	mkdir -p "$nd"
	case $1 in
	http1) pass="proxy_pass http://be;" upstream="server 127.0.0.1:$be_http;" ;;
	tls)
		pass="proxy_pass https://be;
            proxy_ssl_trusted_certificate $ca;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;"
		upstream="server 127.0.0.1:$be_tls;"
		;;
	esac
	cat >"$nd/nginx.conf" <<CFG
daemon off;
master_process on;
worker_processes 1;
user root;
pid $nd/nginx.pid;
error_log $nd/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $nd/client_body;
    proxy_temp_path $nd/proxy;
    fastcgi_temp_path $nd/fastcgi;
    uwsgi_temp_path $nd/uwsgi;
    scgi_temp_path $nd/scgi;
    # nginx closes a client connection (HTTP/2: GOAWAY) and an upstream
    # connection after 1000 requests by default; the other proxies do not.
    keepalive_requests 1000000;
    upstream be {
        $upstream
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$ng7 ssl http2;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            $pass
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto https;
        }
    }
}
CFG
}
# start_nginx PROTO DIR L7PORT: writes the configuration for PROTO into
# DIR and starts nginx on CPU 0; sets $ng_pid.
start_nginx() {
	nginx_cfg "$@"
	"${server_cpu[@]}" nginx -p "$2" -c "$2/nginx.conf" -e "$2/error.log" >>"$tmp/nginx.log" 2>&1 &
	pids+=($!)
	ng_pid=$!
}
for proto in http1 tls; do
	ng7=$(free_port 22443)
	nd=$tmp/nginx-$proto
	start_nginx "$proto" "$nd" "$ng7"
	measure_proxy nginx nginx "$ng_pid" "$proto" "$ng7"
	cat "$nd/error.log" >>"$tmp/nginx.log" 2>/dev/null || true
	stop_server "$ng_pid"
done

# Paired rounds: the headline figures (backend http1: L7 h1 and h2, L4 h1)
# measured again with mc-proxy, haproxy and nginx all running at once
# (each pinned to CPU 0 as before, idle while the others are measured)
# and taken in turn, round after round, the order reversed every other
# round. On a shared virtual machine the CPU a process gets drifts by
# tens of percent over minutes (steal time); one pass per proxy, minutes
# apart, measures that drift as much as the proxies. A ratio per round
# compares measurements seconds apart, and the median over the rounds is
# what the summary reports.
rounds=${BENCH_ROUNDS:-5}
rdur=$((dur < 5 ? dur : 5))
echo "bench/mcproxy: paired rounds: mc-proxy, haproxy, nginx (backend http1), $rounds rounds of ${rdur}s per load"
mc7=$(free_port 19443)
mc4=$(free_port $((mc7 + 1)))
start_mcproxy "$mc7" "$mc4" -backend "127.0.0.1:$be_http"
pmc=$mc_pid
ha7=$(free_port 20443)
ha4=$(free_port $((ha7 + 1)))
start_haproxy http1 "$ha7" "$ha4"
pha=$ha_pid
ng7=$(free_port 22443)
start_nginx http1 "$tmp/nginx-paired" "$ng7"
png=$ng_pid
for p in "$mc7" "$ha7" "$ng7" "$mc4" "$ha4"; do
	wait_ready "https://localhost:$p/" paired
	"${client_cpu[@]}" wrk -t1 -c64 -d2s "https://localhost:$p/" >/dev/null 2>&1
done
# paired_port PROXY LOAD: the port a load reaches a proxy on ("" for none).
paired_port() {
	case $1:$2 in
	mcproxy:l4) echo "$mc4" ;;
	haproxy:l4) echo "$ha4" ;;
	nginx:l4) echo "" ;;
	mcproxy:*) echo "$mc7" ;;
	haproxy:*) echo "$ha7" ;;
	nginx:*) echo "$ng7" ;;
	esac
}
for r in $(seq "$rounds"); do
	order="mcproxy haproxy nginx"
	((r % 2 == 0)) && order="nginx haproxy mcproxy"
	for load in h1 h2 l4; do
		for px in $order; do
			port=$(paired_port "$px" "$load")
			[ -n "$port" ] || continue
			f=$tmp/paired.$r.$load.$px
			case $load in
			h1 | l4) "${client_cpu[@]}" wrk -t1 -c64 -d"${rdur}s" --latency "https://localhost:$port/" >"$f" 2>&1 ;;
			h2) "${client_cpu[@]}" h2load -t1 -c16 -m10 -D "$rdur" "https://localhost:$port/" >"$f" 2>&1 ;;
			esac
		done
	done
done
cat "$tmp/nginx-paired/error.log" >>"$tmp/nginx.log" 2>/dev/null || true
stop_server "$pmc"
stop_server "$pha"
stop_server "$png"

backend_stats=$(curl -s "http://127.0.0.1:$be_http/stats")

# Profiles of mc-proxy (backend http1) under the h1 and h2 loads, in a run
# of their own.
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/mcproxy-$stamp.txt
mc7=$(free_port 19443)
mc4=$(free_port $((mc7 + 1)))
pp=$(free_port 19060)
start_mcproxy "$mc7" "$mc4" -backend "127.0.0.1:$be_http" -pprof "127.0.0.1:$pp"
wait_ready "https://localhost:$mc7/" mcproxy
echo "bench/mcproxy: profiling mc-proxy (backend http1) under h1 and h2 load"
url="https://localhost:$mc7/"
"${client_cpu[@]}" wrk -t1 -c64 -d2s "$url" >/dev/null 2>&1
profiles=()
for kind in h1 h2; do
	pdur=$((dur > 2 ? dur - 1 : dur))
	curl -s -o "bench/results/mcproxy-$stamp.$kind.cpu.pprof" "http://127.0.0.1:$pp/debug/pprof/profile?seconds=$pdur" &
	cpu_pid=$!
	curl -s -o "bench/results/mcproxy-$stamp.$kind.allocs.pprof" "http://127.0.0.1:$pp/debug/pprof/allocs?seconds=$pdur" &
	allocs_pid=$!
	case $kind in
	h1) "${client_cpu[@]}" wrk -t1 -c64 -d"${dur}s" "$url" >/dev/null 2>&1 ;;
	h2) "${client_cpu[@]}" h2load -t1 -c16 -m10 -D "$dur" "$url" >/dev/null 2>&1 ;;
	esac
	wait "$cpu_pid" "$allocs_pid"
	profiles+=("mcproxy-$stamp.$kind.cpu.pprof" "mcproxy-$stamp.$kind.allocs.pprof")
done
stop_server "$mc_pid"

# Cost per request: mc-proxy, haproxy and nginx (backend http1) started
# afresh, under shorter h1 and h2 loads while perf counts and samples the
# proxy's processes; after every measurement, so perf never slows one.
cdur=$((dur < 5 ? dur : 5))
perf_hz=999
# perf_check prints why perf cannot break the cost down here (nothing
# when it can), trying it on the backend for 0.2 s.
perf_check() {
	local par
	if ! command -v perf >/dev/null 2>&1; then
		echo "perf is not installed (Debian package linux-perf)"
		return 0
	fi
	if ! perf version >"$tmp/perf-check.log" 2>&1; then
		echo "perf does not run: $(tail -n 1 "$tmp/perf-check.log")"
		return 0
	fi
	if [ ! -r /proc/sys/kernel/perf_event_paranoid ]; then
		echo "the kernel has no perf events (no /proc/sys/kernel/perf_event_paranoid)"
		return 0
	fi
	par=$(cat /proc/sys/kernel/perf_event_paranoid)
	if [ "$(id -u)" -ne 0 ] && [ "$par" -gt 1 ]; then
		echo "kernel.perf_event_paranoid is $par and this is not root: kernel samples need it at 1 or lower"
		return 0
	fi
	if ! perf stat -x, -e task-clock,context-switches -p "$backend_pid" -o "$tmp/perf-check.stat" -- sleep 0.2 >>"$tmp/perf-check.log" 2>&1 ||
		! perf record -N -g -F "$perf_hz" -p "$backend_pid" -o "$tmp/perf-check.data" -- sleep 0.2 >>"$tmp/perf-check.log" 2>&1; then
		echo "perf cannot attach to a process here: $(grep -v '^\[ perf record' "$tmp/perf-check.log" | grep . | tail -n 1)"
		return 0
	fi
	rm -f "$tmp/perf-check.data"
}
# cost NAME PORT PROXY_PID: the h1 and h2 loads through
# https://localhost:PORT/ for $cdur s each, perf watching PROXY_PID's
# family; outputs in $tmp/cost.NAME.KIND, counts in .stat, the samples'
# split by shared object in .dso and by symbol (children, self, [k] or
# [.], symbol; tab-separated) in .syms.
cost() {
	local name=$1 port=$2 kind f stat_pid rec_pid
	local url="https://localhost:$port/" family_pids
	"${client_cpu[@]}" wrk -t1 -c64 -d2s "$url" >/dev/null 2>&1
	family_pids=$(family "$3" | tr ' ' ,)
	for kind in h1 h2; do
		f=$tmp/cost.$name.$kind
		"${client_cpu[@]}" perf stat -x, -e task-clock,context-switches -p "$family_pids" -o "$f.stat" >>"$tmp/perf.log" 2>&1 &
		pids+=($!)
		stat_pid=$!
		"${client_cpu[@]}" perf record -N -g -F "$perf_hz" -p "$family_pids" -o "$f.data" >>"$tmp/perf.log" 2>&1 &
		pids+=($!)
		rec_pid=$!
		sleep 0.5 # perf attaching
		case $kind in
		h1) "${client_cpu[@]}" wrk -t1 -c64 -d"${cdur}s" --latency "$url" >"$f" 2>&1 ;;
		h2) "${client_cpu[@]}" h2load -t1 -c16 -m10 -D "$cdur" "$url" >"$f" 2>&1 ;;
		esac
		kill -INT "$stat_pid" "$rec_pid" 2>/dev/null || true
		wait "$stat_pid" 2>/dev/null || true
		wait "$rec_pid" 2>/dev/null || true
		if [ -s "$f.data" ]; then
			perf report -i "$f.data" --stdio --no-children --sort dso -n -g none 2>>"$tmp/perf.log" |
				awk '$1 ~ /%$/ {print}' >"$f.dso" || true
			perf report -i "$f.data" --stdio --children --sort sym -g none 2>>"$tmp/perf.log" |
				awk '/^ *[0-9.]+% +[0-9.]+% +\[.\] / {
					c = $1; s = $2; m = $3
					sub(/^ *[0-9.]+% +[0-9.]+% +\[.\] /, ""); sub(/ +$/, ""); sub(/%/, "", c); sub(/%/, "", s)
					print c "\t" s "\t" m "\t" $0 }' >"$f.syms" || true
		fi
		rm -f "$f.data"
	done
}

perf_skip=$(perf_check)
if [ -n "$perf_skip" ]; then
	echo "bench/mcproxy: cost per request (perf) skipped: $perf_skip"
else
	echo "bench/mcproxy: cost per request (perf): mc-proxy, haproxy, nginx (backend http1), ${cdur}s per load"
	mc7=$(free_port 19443)
	mc4=$(free_port $((mc7 + 1)))
	start_mcproxy "$mc7" "$mc4" -backend "127.0.0.1:$be_http"
	wait_ready "https://localhost:$mc7/" mcproxy
	cost mcproxy "$mc7" "$mc_pid"
	stop_server "$mc_pid"

	ha7=$(free_port 20443)
	ha4=$(free_port $((ha7 + 1)))
	start_haproxy http1 "$ha7" "$ha4"
	wait_ready "https://localhost:$ha7/" haproxy
	cost haproxy "$ha7" "$ha_pid"
	stop_server "$ha_pid"

	ng7=$(free_port 22443)
	nd=$tmp/nginx-cost
	start_nginx http1 "$nd" "$ng7"
	wait_ready "https://localhost:$ng7/" nginx
	cost nginx "$ng7" "$ng_pid"
	cat "$nd/error.log" >>"$tmp/nginx.log" 2>/dev/null || true
	stop_server "$ng_pid"
fi

# paired_rps R LOAD PROXY and paired_p99: one paired measurement's req/s
# and p99 ms ("-" when there is none).
paired_rps() {
	local f=$tmp/paired.$1.$2.$3
	if [ "$2" = h2 ]; then h2_rps "$f"; else h1_rps "$f"; fi
}
paired_p99() {
	local f=$tmp/paired.$1.$2.$3
	if [ "$2" = h2 ]; then echo "-"; else h1_p99 "$f"; fi
}
paired_cell() {
	local rps
	rps=$(paired_rps "$@")
	if [ "$2" = h2 ] || [ "$rps" = "-" ]; then echo "$rps"; else echo "$rps/$(paired_p99 "$@")ms"; fi
}
# paired_ratio R LOAD PEER: mc-proxy's req/s over PEER's in round R.
paired_ratio() {
	awk -v a="$(paired_rps "$1" "$2" mcproxy)" -v b="$(paired_rps "$1" "$2" "$3")" \
		'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'
}
# paired_median LOAD PEER rps|p99: the median over the rounds of
# mc-proxy's req/s (or p99) over PEER's.
paired_median() {
	local r a b
	for r in $(seq "$rounds"); do
		a=$("paired_$3" "$r" "$1" mcproxy)
		b=$("paired_$3" "$r" "$1" "$2")
		awk -v a="$a" -v b="$b" 'BEGIN { if (a != "-" && b != "-" && b > 0) printf "%.4f\n", a / b }'
	done | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# label_of NAME: the row label of a measurement name.
label_of() {
	local r
	for r in "${rows[@]}"; do
		if [ "${r%%:*}" = "$1" ]; then
			echo "${r#*:}"
			return
		fi
	done
}
# ratios A B LABEL: the mc-proxy/peer line of one pair of rows.
ratios() {
	awk -v label="$3" \
		-v a1="$(h1_rps "$tmp/$1.h1")" -v b1="$(h1_rps "$tmp/$2.h1")" \
		-v ap="$(h1_p99 "$tmp/$1.h1")" -v bp="$(h1_p99 "$tmp/$2.h1")" \
		-v a2="$(h2_rps "$tmp/$1.h2")" -v b2="$(h2_rps "$tmp/$2.h2")" \
		-v am="$(h2_mean "$tmp/$1.h2")" -v bm="$(h2_mean "$tmp/$2.h2")" \
		-v ah="$(hs_field "$tmp/$1.hs" per_second)" -v bh="$(hs_field "$tmp/$2.hs" per_second)" \
		-v ah99="$(hs_field "$tmp/$1.hs" p99_ms)" -v bh99="$(hs_field "$tmp/$2.hs" p99_ms)" \
		-v ar="$(cat "$tmp/$1.rss_peak" 2>/dev/null || echo -)" -v br="$(cat "$tmp/$2.rss_peak" 2>/dev/null || echo -)" '
		function r(x, y) { return (x != "-" && y != "-" && y > 0) ? sprintf("%.2f", x / y) : "-" }
		BEGIN { printf "mc-proxy %-28s h1 req/s %s  h1 p99 %s  h2 req/s %s  h2 mean %s  handshakes/s %s  handshake p99 %s  peak rss %s\n",
			label, r(a1, b1), r(ap, bp), r(a2, b2), r(am, bm), r(ah, bh), r(ah99, bh99), r(ar, br) }'
}

# stat_count FILE EVENT: EVENT's count in a perf stat -x, file ("-" when
# it was not counted).
stat_count() {
	if [ -s "$1" ]; then
		awk -F, -v e="$2" '$3 == e && $1 ~ /^[0-9.]+$/ {v = $1} END {print v == "" ? "-" : v}' "$1"
	else
		echo "-"
	fi
}
# share FILE OP PATTERN: a share (%) of the samples in a .syms file. OP
# sum: the children of the symbols named in PATTERN (space-separated,
# exact); max: the largest children of the symbols matching the ERE
# PATTERN; self: the self of the symbols matching it, added.
share() {
	if [ ! -s "$1" ]; then
		echo "-"
		return
	fi
	pattern=$3 awk -F'\t' -v op="$2" '
		BEGIN { pat = ENVIRON["pattern"]; if (op == "sum") { n = split(pat, w, " "); for (i = 1; i <= n; i++) want[w[i]] = 1 } }
		op == "sum" && ($4 in want) { v += $1 }
		op == "max" && $4 ~ pat && $1 + 0 > v { v = $1 + 0 }
		op == "self" && $4 ~ pat { v += $2 }
		END { printf "%.2f", v }' "$1"
}
# minus A B: share A less share B ("-" when A is).
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-") print "-"; else printf "%.2f", a - b }'; }
# cost_requests NAME KIND: the requests the cost run's load completed.
cost_requests() {
	local f=$tmp/cost.$1.$2
	case $2 in
	h1) awk '/ requests in / {print $1}' "$f" 2>/dev/null ;;
	h2) awk '/^requests:/ {print $6}' "$f" 2>/dev/null ;;
	esac
}
# cpu_us NAME KIND: the proxy's CPU time per request (µs) in a cost run.
cpu_us() {
	awk -v ms="$(stat_count "$tmp/cost.$1.$2.stat" task-clock)" -v n="$(cost_requests "$1" "$2")" \
		'BEGIN { if (ms != "-" && n > 0) printf "%.1f", ms * 1000 / n; else print "-" }'
}
# cost_row NAME KIND LABEL: one row of the cost table.
cost_row() {
	local f=$tmp/cost.$1.$2 syscalls=0
	grep -q $'\tdo_syscall_64$' "$f.syms" 2>/dev/null && syscalls=1
	[ -s "$f.dso" ] || : >"$f.dso"
	awk -v label="$3" -v n="$(cost_requests "$1" "$2")" -v cpu="$(cpu_us "$1" "$2")" \
		-v rps="$(if [ "$2" = h1 ]; then h1_rps "$f"; else h2_rps "$f"; fi)" \
		-v cs="$(stat_count "$f.stat" context-switches)" -v syscalls="$syscalls" \
		-v kern="$(awk '$3 == "[kernel.kallsyms]" {sub(/%/, "", $1); k = $1} END {print k + 0}' "$f.dso" 2>/dev/null)" \
		-v samples="$(awk '{s += $2} END {print s + 0}' "$f.dso" 2>/dev/null)" \
		-v wr="$(share "$f.syms" sum "ksys_write do_writev __sys_sendto __sys_sendmsg")" \
		-v rd="$(share "$f.syms" sum "ksys_read do_readv __sys_recvfrom __sys_recvmsg")" '
		function us(pct) { return (cpu != "-" && pct != "-" && samples > 0) ? sprintf("%.1f", cpu * pct / 100) : "-" }
		BEGIN {
			if (!syscalls) { wr = "-"; rd = "-" }
			printf "%-22s %8s %10s %8s %8s %9s %8s %8s %8s\n", label, rps == "" ? "-" : rps, cpu,
				us(100 - kern), us(kern), us(wr), us(rd), (cs != "-" && n > 0) ? sprintf("%.2f", cs / n) : "-", samples
		}'
}
# go_line OP PATTERN LABEL: a line of mc-proxy's list, its share under
# the h1 and h2 loads and the µs per request that share is; lines whose
# symbols were in neither profile are left out.
go_line() {
	local h1 h2
	h1=$(share "$tmp/cost.mcproxy.h1.syms" "$1" "$2")
	h2=$(share "$tmp/cost.mcproxy.h2.syms" "$1" "$2")
	go_print "$3" "$h1" "$h2"
}
go_print() {
	awk -v label="$1" -v a="$2" -v b="$3" -v ca="$(cpu_us mcproxy h1)" -v cb="$(cpu_us mcproxy h2)" '
		function us(pct, cpu) { return (pct != "-" && cpu != "-") ? sprintf("%.1f", cpu * pct / 100) : "-" }
		function pc(pct) { return pct == "-" ? "-" : pct "%" }
		BEGIN { if (a + 0 > 0 || b + 0 > 0) printf "  %-66s %7s %7s   %7s %7s\n", label, pc(a), us(a, ca), pc(b), us(b, cb) }'
}
# cost_report: the cost section of the report.
cost_report() {
	local h1 h2
	# The net/http server's goroutines (disjoint: each the root of its
	# own) and the handler, which runs inside one of them.
	local server="net/http.(*conn).serve net/http.(*http2serverConn).runHandler net/http.(*http2serverConn).readFrames net/http.(*http2serverConn).writeFrameAsync"
	local handler='mcproxy/internal/proxy\.\(\*[A-Za-z0-9_]+\)\.ServeHTTP$'
	echo "# cost per request (perf, separate run)"
	if [ -n "$perf_skip" ]; then
		echo "skipped: $perf_skip"
		return
	fi
	echo "# after the measurements, mc-proxy, haproxy and nginx (L7, backend http1) each once more, started afresh, 2 s wrk warm-up, then the h1 and"
	echo "# h2 loads above for ${cdur}s each while $(perf version) (pinned as the load generators) watched the proxy's processes (nginx: master + worker):"
	echo "#   perf stat -x, -e task-clock,context-switches -p PIDS   and   perf record -N -g -F $perf_hz -p PIDS   (then perf report --sort dso, --children --sort sym)"
	echo "# req/s: the load's requests / its duration (perf slows the proxy: compare with the table above only roughly); cpu: task-clock / requests"
	echo "# (the load's TLS handshakes included); user, kernel: cpu split by the samples' shared object, [kernel.kallsyms] kernel, everything else"
	echo "# (the binary, libssl, libcrypto, libc, vdso) user space; k write, k read: the kernel's share in ksys_write, do_writev, __sys_sendto,"
	echo "# __sys_sendmsg and in ksys_read, do_readv, __sys_recvfrom, __sys_recvmsg (on loopback a write carries the receiver's TCP and IP"
	echo "# processing too); cs: context switches per request; samples: perf record's, at $perf_hz Hz. Times in µs per request."
	printf '%-22s %8s %10s %8s %8s %9s %8s %8s %8s\n' "" "req/s" "cpu" "user" "kernel" "k write" "k read" "cs" "samples"
	cost_row mcproxy h1 "mc-proxy h1"
	cost_row mcproxy h2 "mc-proxy h2"
	cost_row haproxy h1 "haproxy h1"
	cost_row haproxy h2 "haproxy h2"
	cost_row nginx h1 "nginx h1"
	cost_row nginx h2 "nginx h2"
	echo "# mc-proxy: shares of its samples under a function (children: overlapping; the handler is inside the server lines, RoundTrip inside"
	echo "# the handler, crypto and allocation inside most) and the µs per request that is; symbols in neither profile left out"
	printf '  %-66s %7s %7s   %7s %7s\n' "" "h1" "us/req" "h2" "us/req"
	go_line sum "${server%% *}" "net/http.(*conn).serve: net/http's connections (h2: frame loop)"
	go_line sum "${server#* }" "net/http.(*http2serverConn).runHandler+readFrames+writeFrameAsync"
	go_line max 'mcproxy/internal/proxy\.\(\*fastConn\)\.serve$' "proxy.(*fastConn).serve: mc-proxy's own HTTP/1.1 path"
	go_line max 'mcproxy/internal/proxy\.\(\*fastConn\)\.roundTrip$' "proxy.(*fastConn).roundTrip: its backend request"
	go_line max "$handler" "proxy.(*l7Front).ServeHTTP: the handler"
	h1=$(minus "$(share "$tmp/cost.mcproxy.h1.syms" sum "$server")" "$(share "$tmp/cost.mcproxy.h1.syms" max "$handler")")
	h2=$(minus "$(share "$tmp/cost.mcproxy.h2.syms" sum "$server")" "$(share "$tmp/cost.mcproxy.h2.syms" max "$handler")")
	go_print "  = the net/http server lines above minus the handler" "$h1" "$h2"
	go_line sum "net/http.(*Transport).RoundTrip" "net/http.(*Transport).RoundTrip: backend request (in the handler)"
	go_line sum "net/http.(*persistConn).writeLoop net/http.(*persistConn).readLoop" "net/http.(*persistConn).writeLoop+readLoop: backend connections"
	go_line sum "runtime.mcall" "runtime.mcall: scheduler (park_m, schedule, findRunnable)"
	go_line sum "runtime.gcBgMarkWorker runtime.gcAssistAlloc" "runtime.gcBgMarkWorker+gcAssistAlloc: garbage collection"
	go_line sum "runtime.mallocgc" "runtime.mallocgc: allocation (its GC assists included)"
	go_line max '^runtime\.morestack' "runtime.morestack: goroutine stack growth"
	go_line self '^(crypto|vendor/golang\.org/x/crypto)/' "crypto/... self time: ciphers, hashes, signatures"
	go_line max '^(internal/runtime/syscall(/linux)?|runtime/internal/syscall)\.Syscall6$' "linux.Syscall6: Go's syscalls (read, write, epoll; with kernel)"
	go_line max '^runtime\.futex(\.abi0)?$' "runtime.futex: threads sleeping and waking (with kernel)"
}

# The report.
{
	echo "# bench/mcproxy: mc-proxy L7 and L4 vs haproxy, caddy and nginx, HTTPS on loopback, 1 KiB responses"
	echo "# command: bench/mcproxy/run.sh (BENCH_DURATION=${dur}s)"
	echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- mcproxy bench ':!bench/results' 2>/dev/null && [ -z "$(git ls-files --others --exclude-standard mcproxy bench ':!bench/results' 2>/dev/null)" ] || echo ' (with uncommitted changes in mcproxy/ or bench/)')"
	echo "# machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)"
	echo "# load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
	echo "# pinning: $pinning; every server single-threaded (Go: GOMAXPROCS follows the pinned CPU; haproxy: nbthread 1; nginx: worker_processes 1)"
	echo "# versions: $(go env GOVERSION), $(haproxy -v | head -1 | awk '{print "haproxy", $3}') ($(haproxy -vv 2>/dev/null | sed -n 's/^Running on OpenSSL version : //p')), caddy $(caddy version | awk '{print $1}'), $(nginx -v 2>&1 | awk '{print $3}' | tr / ' '), $(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'), $(h2load --version | awk '{print $2}')"
	echo "# certificate: ECDSA P-256 leaf + root chain for localhost (metacircular ca init/issue); TLS 1.3 negotiated by every client"
	echo "# h1: ${client_cpu[*]} wrk -t1 -c64 -d${dur}s --latency https://localhost:PORT/"
	echo "# h2: ${client_cpu[*]} h2load -t1 -c16 -m10 -D $dur https://localhost:PORT/"
	echo "# hs: ${client_cpu[*]} benchproxy handshakes -addr 127.0.0.1:PORT -sni localhost -c 16 -d ${dur}s   (full TLS handshake + 1 request per connection; backend http1 only)"
	echo "# backend protocols: http1 = HTTP/1.1 plain, h2c = HTTP/2 prior knowledge plain, tls = HTTP/1.1 over TLS, tls-h2 = TLS with ALPN h2,http/1.1 (h2 picked)"
	echo "# not measured: nginx with h2c or tls-h2 backends (its proxy module speaks HTTP/1.x only), caddy L4 (needs the caddy-l4 plugin, not in Debian's caddy), nginx L4 (nginx is measured as an L7 peer only), HTTP/3"
	echo "# backend totals: $backend_stats  (tls_resumed counts requests over resumed TLS sessions: hs-L4 and direct should be ~0; L7 tls rows resume on purpose)"
	echo "# profiles (mc-proxy, backend http1, separate run): ${profiles[*]}"
	echo
	printf '%-30s %9s %9s %7s %9s %9s %7s %8s %8s %8s %7s %6s %6s  %s\n' "" "h1 req/s" "h1 p99ms" "h1 cpu" "h2 req/s" "h2 meanms" "h2 cpu" "hs /s" "hs p50ms" "hs p99ms" "hs cpu" "rss" "rss" "errors (h1; h2; hs)"
	printf '%-30s %9s %9s %7s %9s %9s %7s %8s %8s %8s %7s %6s %6s\n' "" "" "" "" "" "" "" "" "" "" "" "idle" "peak"
	for r in "${rows[@]}"; do
		n=${r%%:*}
		label=${r#*:}
		printf '%-30s %9s %9s %7s %9s %9s %7s %8s %8s %8s %7s %6s %6s  %s\n' "$label" \
			"$(h1_rps "$tmp/$n.h1")" "$(h1_p99 "$tmp/$n.h1")" "$(cpu_of "$tmp/$n.h1.cpu")" \
			"$(h2_rps "$tmp/$n.h2")" "$(h2_mean "$tmp/$n.h2")" "$(cpu_of "$tmp/$n.h2.cpu")" \
			"$(hs_field "$tmp/$n.hs" per_second)" "$(hs_field "$tmp/$n.hs" p50_ms)" "$(hs_field "$tmp/$n.hs" p99_ms)" "$(cpu_of "$tmp/$n.hs.cpu")" \
			"$(cat "$tmp/$n.rss_idle" 2>/dev/null || echo -)" "$(cat "$tmp/$n.rss_peak" 2>/dev/null || echo -)" \
			"$(h1_errs "$tmp/$n.h1"); $(h2_errs "$tmp/$n.h2"); $(hs_field "$tmp/$n.hs" errors) errors"
	done
	echo "# cpu: proxy/backend share of one CPU during the measurement; rss: MiB (VmRSS before any load, VmHWM after the L7 loads)"
	echo
	echo "# ratios mc-proxy/peer, same backend protocol on both sides (req/s and handshakes/s: higher is better; latency and rss: lower is better)"
	for peer in haproxy caddy nginx; do
		for proto in "${protos[@]}"; do
			if [ -n "$(label_of "$peer-l7-$proto")" ]; then
				ratios "mcproxy-l7-$proto" "$peer-l7-$proto" "L7/$peer backend $proto"
			else
				echo "mc-proxy L7/$peer backend $proto: not measured ($peer cannot speak $proto to a backend)"
			fi
		done
	done
	ratios mcproxy-l4 haproxy-l4 "L4/haproxy"
	echo "mc-proxy L4/caddy, L4/nginx: not measured (caddy has no L4 proxy without the caddy-l4 plugin; nginx is an L7 peer here)"
	echo
	echo "# paired rounds (backend http1): mc-proxy, haproxy and nginx running at once, measured in turn, ${rounds} rounds of ${rdur}s per load,"
	echo "# the order reversed every other round; same commands as h1 and h2 above (l4: wrk through the L4 listeners). Per round: req/s"
	echo "# (h1, l4: and p99 ms) of each proxy and mc-proxy's ratios; then the median ratio over the rounds, which SUMMARY.md reports."
	printf '%-6s %-5s %16s %16s %16s %12s %12s\n' round load mc-proxy haproxy nginx "mc/haproxy" "mc/nginx"
	for r in $(seq "$rounds"); do
		for load in h1 h2 l4; do
			printf '%-6s %-5s %16s %16s %16s %12s %12s\n' "$r" "$load" \
				"$(paired_cell "$r" "$load" mcproxy)" "$(paired_cell "$r" "$load" haproxy)" "$(paired_cell "$r" "$load" nginx)" \
				"$(paired_ratio "$r" "$load" haproxy)" "$(paired_ratio "$r" "$load" nginx)"
		done
	done
	printf 'mc-proxy L7/haproxy paired (median of %s)  h1 req/s %s  h1 p99 %s  h2 req/s %s\n' "$rounds" \
		"$(paired_median h1 haproxy rps)" "$(paired_median h1 haproxy p99)" "$(paired_median h2 haproxy rps)"
	printf 'mc-proxy L4/haproxy paired (median of %s)  h1 req/s %s  h1 p99 %s\n' "$rounds" \
		"$(paired_median l4 haproxy rps)" "$(paired_median l4 haproxy p99)"
	printf 'mc-proxy L7/nginx paired (median of %s)    h1 req/s %s  h1 p99 %s  h2 req/s %s\n' "$rounds" \
		"$(paired_median h1 nginx rps)" "$(paired_median h1 nginx p99)" "$(paired_median h2 nginx rps)"
	echo
	cost_report
	for r in "${rows[@]}"; do
		n=${r%%:*}
		echo
		echo "## ${r#*:}: wrk (h1)"
		sed -n '/Thread Stats/,$p' "$tmp/$n.h1"
		echo "## ${r#*:}: h2load (h2)"
		sed -n '/^finished in/,$p' "$tmp/$n.h2"
		if [ -s "$tmp/$n.hs" ]; then
			echo "## ${r#*:}: handshakes"
			cat "$tmp/$n.hs"
		fi
	done
	for s in mcproxy haproxy caddy nginx; do
		if [ -s "$tmp/$s.log" ]; then
			echo
			echo "## $s log (last 10 lines)"
			tail -n 10 "$tmp/$s.log"
		fi
	done
} | tee "$out"
echo "wrote $out"
