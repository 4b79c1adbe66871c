#!/usr/bin/env bash
# Installs what `make up` (mode: run) or `make test` (mode: test) needs on a
# Debian machine, idempotently: nothing is installed or rewritten twice.
# `deps.sh pkgs NAME...` installs just the named Debian packages (the
# benchmarks use it for their peers and load generators).
set -euo pipefail

mode=${1:-run}
repo=$(cd "$(dirname "$0")/.." && pwd)

# Debian packages per mode. Later services add theirs here.
run_pkgs=(ca-certificates openssl curl)
# gcc and libc6-dev: the race detector (go test -race) needs cgo.
test_pkgs=("${run_pkgs[@]}" podman runc dnsutils protobuf-compiler libprotobuf-dev zstd chromium libnss3-tools gcc libc6-dev)

case "$mode" in
run) pkgs=("${run_pkgs[@]}") ;;
test) pkgs=("${test_pkgs[@]}") ;;
pkgs) pkgs=("${@:2}") ;;
*)
	echo "usage: $0 run|test|pkgs NAME..." >&2
	exit 2
	;;
esac

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "deps: need root (or sudo) to run: $*" >&2
		exit 1
	fi
}

# Go: Debian's golang package is older than go.mod asks for, so it cannot be
# installed from here; say so plainly instead of failing later.
if [ "$mode" != pkgs ]; then
	want_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$repo/go.mod")
	if ! command -v go >/dev/null 2>&1; then
		echo "deps: Go $want_go or newer is required (https://go.dev/dl); put it on PATH" >&2
		exit 1
	fi
	have_go=$(go env GOVERSION | sed 's/^go//')
	if [ "$(printf '%s\n%s\n' "$want_go" "$have_go" | sort -V | head -n1)" != "$want_go" ]; then
		echo "deps: Go $want_go or newer is required, found $have_go" >&2
		exit 1
	fi
fi

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = test ]; then
	# Podman here runs containers with runc (crun fails in this kind of
	# sandbox) and needs explicit ulimits. Only a file we wrote is replaced;
	# an operator's own containers.conf is left alone with a warning.
	conf=/etc/containers/containers.conf
	marker="# managed by metacircular scripts/deps.sh"
	want=$(printf '%s\n[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n\n[engine]\nruntime = "runc"\n' "$marker")
	if [ ! -e "$conf" ] || { head -n1 "$conf" | grep -qxF "$marker" && [ "$(cat "$conf")" != "$want" ]; }; then
		as_root mkdir -p /etc/containers
		printf '%s\n' "$want" | as_root tee "$conf" >/dev/null
		echo "deps: wrote $conf"
	elif ! grep -q 'runtime *= *"runc"' "$conf"; then
		echo "deps: warning: $conf exists and does not select runc; podman tests may fail" >&2
	fi
fi
