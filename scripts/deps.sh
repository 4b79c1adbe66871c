#!/usr/bin/env bash
# Installs what `make up` (mode: run) or `make test` (mode: test) needs on a
# Debian machine, idempotently: nothing is installed or rewritten twice.
# `deps.sh pkgs NAME...` installs just the named Debian packages (the
# benchmarks use it for their peers and load generators).
set -euo pipefail

mode=${1:-run}
repo=$(cd "$(dirname "$0")/.." && pwd)

# Debian packages per mode. Later services add theirs here. dnsutils (dig)
# is in run_pkgs because `make up` tells the operator to use it; podman and
# runc because the MCP agent `make up` starts runs containers with them.
run_pkgs=(ca-certificates openssl curl dnsutils podman runc)
# gcc and libc6-dev: the race detector (go test -race) needs cgo. nginx,
# python3, knot and knot-dnsutils (kdig): the peers and real clients the
# protocol tests run beside ours. Their daemons are never started by the
# install (see policy-rc.d below); tests start their own on loopback.
# certbot and lego: the ACME clients Metacrypt's ACME server is tested with.
test_pkgs=("${run_pkgs[@]}" protobuf-compiler libprotobuf-dev zstd chromium libnss3-tools gcc libc6-dev
	nginx python3 knot knot-dnsutils skopeo certbot lego openssh-server openssh-client)

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
# apt_get runs apt-get, waiting (up to 10 minutes) for another apt or dpkg
# to release its lock instead of failing at once, as a fresh machine's
# unattended upgrades often hold it for a while.
apt_get() {
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# no_daemons makes package installs leave services stopped (Debian's
# policy-rc.d protocol): installing nginx or knot must not start a daemon
# listening on public addresses. An existing policy-rc.d is left alone.
policy=/usr/sbin/policy-rc.d
own_policy=""
no_daemons() {
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# written by metacircular scripts/deps.sh during an install\nexit 101\n' | as_root tee "$policy" >/dev/null
		as_root chmod 0755 "$policy"
		own_policy=1
	fi
}
restore_daemons() {
	if [ -n "$own_policy" ]; then
		as_root rm -f "$policy"
	fi
}

if [ "${#missing[@]}" -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	no_daemons
	trap restore_daemons EXIT
	apt_get update -qq
	apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	restore_daemons
	trap - EXIT
fi

if [ "$mode" = test ] || [ "$mode" = run ]; then
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
		echo "deps: warning: $conf exists and does not select runc; podman may fail" >&2
	fi
fi
