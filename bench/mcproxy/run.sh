#!/usr/bin/env bash
# Measures mc-proxy's data plane, L7 (TLS terminated, HTTP reverse proxied)
# and L4 (SNI read, raw TLS relayed), against haproxy and caddy configured
# the same way on loopback, and writes bench/results/mcproxy-<UTC stamp>.txt
# with the commands, commit, versions, machine, the table and the
# mc-proxy/peer ratios.
#
#   bench/mcproxy/run.sh                    (or: bench/run.sh mcproxy)
#   BENCH_DURATION=10s  seconds per measurement (capped at 10s)
#
# Everything shares one certificate (ECDSA P-256 for "localhost", issued by
# `metacircular ca init/issue` into a temporary root) and one backend, the
# Go helper mcproxy/internal/benchproxy: a fixed 1 KiB body, HTTP/1.1 + h2c
# on a plain port (the L7 upstream) and HTTP/1.1 + h2 over TLS on another
# (the L4 upstream, which terminates the relayed TLS itself).
#
#   mc-proxy  benchproxy proxy: proxy.New/Serve with an "l7" listener (route
#             localhost, mode l7, backend the plain port with the route's
#             backend_protocol, -backend-protocol, default http1 for every
#             client: mc-proxy never picks it from the client's protocol,
#             unlike the peers below) and an "l4" listener (route
#             localhost, mode l4, backend the TLS port)
#   haproxy   one thread; L7: `mode http`, `bind ... ssl crt ... alpn
#             h2,http/1.1`, HTTP/2 clients to the backend with `proto h2`
#             (h2c), HTTP/1.1 clients over HTTP/1.1, X-Forwarded-For/-Proto;
#             L4: `mode tcp`, `use_backend ... if { req.ssl_sni -i localhost }`
#   caddy     L7 only (caddy has no L4 without plugins): reverse_proxy with
#             `tls CERT KEY`, `auto_https off`, `admin off`, no ACME, h1+h2
#             only (no HTTP/3), HTTP/2 clients to h2c:// and HTTP/1.1
#             clients over HTTP/1.1
#
# The proxies run one at a time; the proxy under test and the backend are
# pinned to CPU 0, the load generators to CPU 1. Three measurements per
# proxy and mode (and once straight to the backend's TLS port, for scale):
#   h1   wrk -t1 -c64 --latency, keep-alive: requests/s and p99
#   h2   h2load -t1 -c16 -m10 (160 streams in flight): requests/s and mean
#        (h2load prints no percentiles)
#   hs   new TLS handshakes/s: benchproxy handshakes -c16, each connection
#        one full handshake (no session cache) and one request with
#        Connection: close. wrk -H "Connection: close" and h2load --h1
#        both resume sessions from tickets when they reconnect (checked:
#        >99% resumed) and openssl s_time sends no SNI, hence the helper.
# Each proxy/mode gets a 2 s wrk warm-up first (not recorded).
# CPU columns are the proxy's and the backend's share of CPU 0 during the
# measurement (from /proc/PID/stat).
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

# The load generators, the peers, curl (readiness), taskset and ss.
scripts/deps.sh pkgs wrk nghttp2-client haproxy caddy curl util-linux iproute2
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

# ticks PID: user+system CPU clock ticks used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# measure NAME PORT PROXY_PID: h1, h2 and handshakes through https://localhost:PORT/,
# outputs in $tmp/NAME.{h1,h2,hs}, CPU shares in $tmp/NAME.{h1,h2,hs}.cpu.
measure() {
	local name=$1 port=$2 ppid=$3 kind p0 b0 t0 t1
	local url="https://localhost:$port/"
	# Warm-up, not recorded: connections to the backend, caches, GC pacing.
	"${client_cpu[@]}" wrk -t1 -c64 -d2s "$url" >/dev/null 2>&1
	for kind in h1 h2 hs; do
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

# Numbers from the outputs; latencies in ms.
to_ms() { awk '{ v = $1; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
	if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
	printf "%.2f", v }'; }
h1_rps() { awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$1"; }
h1_p99() { awk '$1 == "99%" {print $2}' "$1" | to_ms; }
h1_errs() {
	local e
	e=$(sed -n 's/^ *Socket errors: *//p; s/^ *Non-2xx or 3xx responses: */non-2xx /p' "$1" | paste -sd';' -)
	echo "${e:-none}"
}
h2_rps() { awk '/^finished in/ {gsub(/,/, "", $4); printf "%.0f", $4}' "$1"; }
h2_mean() { awk '/^time for request:/ {print $6}' "$1" | to_ms; }
h2_errs() { awk '/^requests:/ {print $10, "failed,", $12, "errored"}' "$1"; }
h2_proto() { awk '/^Application protocol:/ {print $3}' "$1"; }
hs_field() { awk -v f="$2" '{for (i = 1; i < NF; i++) if ($i == f) print $(i + 1)}' "$1"; }

echo "bench/mcproxy: building benchproxy and metacircular; issuing the certificate"
go build -o "$tmp/benchproxy" ./mcproxy/internal/benchproxy
go build -o "$tmp/metacircular" ./cmd/metacircular
"$tmp/metacircular" ca init --root "$tmp/root" >/dev/null
"$tmp/metacircular" ca issue bench --root "$tmp/root" --dns localhost --validity 1d >/dev/null
cert=$tmp/root/ca/issued/bench.crt
key=$tmp/root/ca/issued/bench.key
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
echo "bench/mcproxy: backend direct (TLS port $be_tls); ${dur}s per measurement, 3 per row"
measure direct "$be_tls" "$backend_pid"
rows+=("direct:backend TLS, no proxy")

# mc-proxy.
mc7=$(free_port 19443)
mc4=$(free_port $((mc7 + 1)))
"${server_cpu[@]}" "$tmp/benchproxy" proxy -l7 "127.0.0.1:$mc7" -l4 "127.0.0.1:$mc4" -host localhost \
	-cert "$cert" -key "$key" -backend "127.0.0.1:$be_http" -tls-backend "127.0.0.1:$be_tls" >"$tmp/mcproxy.log" 2>&1 &
pids+=($!)
mc_pid=$!
wait_ready "https://localhost:$mc7/" mcproxy
wait_ready "https://localhost:$mc4/" mcproxy
echo "bench/mcproxy: mc-proxy L7 :$mc7, L4 :$mc4"
measure mcproxy-l7 "$mc7" "$mc_pid"
measure mcproxy-l4 "$mc4" "$mc_pid"
stop_server "$mc_pid"
rows+=("mcproxy-l7:mc-proxy L7" "mcproxy-l4:mc-proxy L4")

# haproxy.
ha7=$(free_port 20443)
ha4=$(free_port $((ha7 + 1)))
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
    use_backend be_h2c if { ssl_fc_alpn -i h2 }
    default_backend be_h1
backend be_h1
    mode http
    server backend 127.0.0.1:$be_http
backend be_h2c
    mode http
    server backend 127.0.0.1:$be_http proto h2
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
"${server_cpu[@]}" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
pids+=($!)
ha_pid=$!
wait_ready "https://localhost:$ha7/" haproxy
wait_ready "https://localhost:$ha4/" haproxy
echo "bench/mcproxy: haproxy L7 :$ha7, L4 :$ha4"
measure haproxy-l7 "$ha7" "$ha_pid"
measure haproxy-l4 "$ha4" "$ha_pid"
stop_server "$ha_pid"
rows+=("haproxy-l7:haproxy L7" "haproxy-l4:haproxy L4")

# caddy (L7 only).
ca7=$(free_port 21443)
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
    @h2 protocol http/2
    reverse_proxy @h2 h2c://127.0.0.1:$be_http
    reverse_proxy 127.0.0.1:$be_http
}
CFG
XDG_DATA_HOME=$tmp/caddy-data XDG_CONFIG_HOME=$tmp/caddy-config HOME=$tmp \
	"${server_cpu[@]}" caddy run --adapter caddyfile --config "$tmp/Caddyfile" >"$tmp/caddy.log" 2>&1 &
pids+=($!)
ca_pid=$!
wait_ready "https://localhost:$ca7/" caddy
echo "bench/mcproxy: caddy L7 :$ca7"
measure caddy-l7 "$ca7" "$ca_pid"
stop_server "$ca_pid"
rows+=("caddy-l7:caddy L7")

backend_stats=$(curl -s "http://127.0.0.1:$be_http/stats")

# The report.
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/mcproxy-$stamp.txt
{
	echo "# bench/mcproxy: mc-proxy L7 and L4 vs haproxy and caddy, HTTPS on loopback, 1 KiB responses"
	echo "# command: bench/mcproxy/run.sh (BENCH_DURATION=${dur}s)"
	echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- mcproxy bench 2>/dev/null && [ -z "$(git ls-files --others --exclude-standard mcproxy bench 2>/dev/null)" ] || echo ' (with uncommitted changes in mcproxy/ or bench/)')"
	echo "# machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)"
	echo "# load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
	echo "# pinning: $pinning; every server single-threaded (Go: GOMAXPROCS follows the pinned CPU; haproxy: nbthread 1)"
	echo "# versions: $(go env GOVERSION), $(haproxy -v | head -1 | awk '{print "haproxy", $3}') ($(haproxy -vv 2>/dev/null | sed -n 's/^Running on OpenSSL version : //p')), caddy $(caddy version | awk '{print $1}'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'), $(h2load --version | awk '{print $2}')"
	echo "# certificate: ECDSA P-256 leaf + root chain for localhost (metacircular ca init/issue); TLS 1.3 negotiated by every client"
	echo "# h1: ${client_cpu[*]} wrk -t1 -c64 -d${dur}s --latency https://localhost:PORT/"
	echo "# h2: ${client_cpu[*]} h2load -t1 -c16 -m10 -D $dur https://localhost:PORT/"
	echo "# hs: ${client_cpu[*]} benchproxy handshakes -addr 127.0.0.1:PORT -sni localhost -c 16 -d ${dur}s   (full TLS handshake + 1 request per connection)"
	echo "# not measured: caddy L4 (needs the caddy-l4 plugin, not in Debian's caddy); HTTP/3"
	echo "# backend totals: $backend_stats  (tls_resumed counts hs-L4 and direct requests over resumed sessions: should be ~0)"
	echo
	printf '%-28s %9s %9s %6s %9s %9s %6s %9s %9s %9s %9s  %s\n' "" "h1 req/s" "h1 p99ms" "h1 cpu" "h2 req/s" "h2 meanms" "h2 cpu" "hs /s" "hs p50ms" "hs p99ms" "hs cpu" "errors (h1; h2; hs)"
	for r in "${rows[@]}"; do
		n=${r%%:*}
		label=${r#*:}
		printf '%-28s %9s %9s %6s %9s %9s %6s %9s %9s %9s %9s  %s\n' "$label" \
			"$(h1_rps "$tmp/$n.h1")" "$(h1_p99 "$tmp/$n.h1")" "$(cat "$tmp/$n.h1.cpu")" \
			"$(h2_rps "$tmp/$n.h2")" "$(h2_mean "$tmp/$n.h2")" "$(cat "$tmp/$n.h2.cpu")" \
			"$(hs_field "$tmp/$n.hs" per_second)" "$(hs_field "$tmp/$n.hs" p50_ms)" "$(hs_field "$tmp/$n.hs" p99_ms)" "$(cat "$tmp/$n.hs.cpu")" \
			"$(h1_errs "$tmp/$n.h1"); $(h2_errs "$tmp/$n.h2") ($(h2_proto "$tmp/$n.h2")); $(hs_field "$tmp/$n.hs" errors) errors"
	done
	echo "# cpu: proxy/backend share of one CPU during the measurement"
	echo
	echo "# ratios mc-proxy/peer (req/s and handshakes/s: higher is better; latency: lower is better)"
	for pair in "mcproxy-l7 haproxy-l7 L7/haproxy" "mcproxy-l7 caddy-l7 L7/caddy" "mcproxy-l4 haproxy-l4 L4/haproxy"; do
		read -r a b label <<<"$pair"
		awk -v label="$label" \
			-v a1="$(h1_rps "$tmp/$a.h1")" -v b1="$(h1_rps "$tmp/$b.h1")" \
			-v ap="$(h1_p99 "$tmp/$a.h1")" -v bp="$(h1_p99 "$tmp/$b.h1")" \
			-v a2="$(h2_rps "$tmp/$a.h2")" -v b2="$(h2_rps "$tmp/$b.h2")" \
			-v am="$(h2_mean "$tmp/$a.h2")" -v bm="$(h2_mean "$tmp/$b.h2")" \
			-v ah="$(hs_field "$tmp/$a.hs" per_second)" -v bh="$(hs_field "$tmp/$b.hs" per_second)" \
			-v ah99="$(hs_field "$tmp/$a.hs" p99_ms)" -v bh99="$(hs_field "$tmp/$b.hs" p99_ms)" 'function r(x, y) { return y > 0 ? sprintf("%.2f", x / y) : "n/a" }
			BEGIN { printf "mc-proxy %-12s h1 req/s %s  h1 p99 %s  h2 req/s %s  h2 mean %s  handshakes/s %s  handshake p99 %s\n",
				label, r(a1, b1), r(ap, bp), r(a2, b2), r(am, bm), r(ah, bh), r(ah99, bh99) }'
	done
	echo "mc-proxy caddy L4: not measured (caddy has no L4 proxy without the caddy-l4 plugin)"
	for r in "${rows[@]}"; do
		n=${r%%:*}
		echo
		echo "## ${r#*:}: wrk (h1)"
		sed -n '/Thread Stats/,$p' "$tmp/$n.h1"
		echo "## ${r#*:}: h2load (h2)"
		sed -n '/^finished in/,$p' "$tmp/$n.h2"
		echo "## ${r#*:}: handshakes"
		cat "$tmp/$n.hs"
	done
	for s in mcproxy haproxy caddy; do
		if [ -s "$tmp/$s.log" ]; then
			echo
			echo "## $s log (last 10 lines)"
			tail -n 10 "$tmp/$s.log"
		fi
	done
} | tee "$out"
echo "wrote $out"
