#!/usr/bin/env bash
# proto.sh — generate or verify the platform's protobuf Go code.
#
#   scripts/proto.sh gen     regenerate <svc>/gen from <svc>/proto for every service
#   scripts/proto.sh check   fail if the committed <svc>/gen differs from a fresh generation
#
# Every directory <svc>/proto at the top of the repository is a protoc include
# root; its .proto files are compiled into <svc>/gen with paths=source_relative,
# so <svc>/proto/<svc>/v1/x.proto becomes <svc>/gen/<svc>/v1/x.pb.go.
# A service's REST API is declared beside its protos in one
# grpc_api_configuration file, <svc>/proto/<svc>/v1/http.yaml (HTTP rules per
# RPC); when it exists, protoc-gen-grpc-gateway writes x.pb.gw.go handlers for
# the RPCs it names, and only those (an RPC without a rule has no REST face).
# protoc comes from Debian (protobuf-compiler, with the well-known types from
# libprotobuf-dev); the Go plugins are installed into .bin/ at the versions
# pinned below, so every machine generates byte-identical code.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_GEN_GRPC_GATEWAY_VERSION=v2.33.0

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$REPO/.bin

die() {
	echo "proto.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: scripts/proto.sh gen|check" >&2
	exit 2
}

# ensure_protoc makes sure protoc and the well-known types
# (google/protobuf/*.proto) are available, installing them from Debian when
# running as root.
ensure_protoc() {
	if command -v protoc >/dev/null 2>&1 && [[ -f /usr/include/google/protobuf/timestamp.proto ]]; then
		return
	fi
	if [[ $(id -u) -ne 0 ]]; then
		die "protoc or the protobuf well-known types are missing: install the Debian packages protobuf-compiler and libprotobuf-dev (sudo apt-get install protobuf-compiler libprotobuf-dev)"
	fi
	command -v apt-get >/dev/null 2>&1 || die "protoc is missing and apt-get is not available: install protobuf-compiler and libprotobuf-dev"
	echo "proto.sh: installing protobuf-compiler and libprotobuf-dev with apt-get" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null
	command -v protoc >/dev/null 2>&1 || die "protoc still missing after apt-get install protobuf-compiler"
}

# plugin_version TOOL prints the version a plugin reports: protoc-gen-go
# prints "protoc-gen-go v1.36.12", protoc-gen-go-grpc "protoc-gen-go-grpc
# 1.6.2", protoc-gen-grpc-gateway "Version v2.33.0, commit ...".
plugin_version() {
	"$1" --version 2>/dev/null | awk '$1 == "Version" { sub(/,$/, "", $2); print $2; exit } { print $NF; exit }'
}

# ensure_plugin TOOL PACKAGE VERSION installs PACKAGE@VERSION into .bin unless
# .bin/TOOL --version already reports VERSION.
ensure_plugin() {
	local tool=$1 pkg=$2 want=$3 have=""
	if [[ -x $BIN/$tool ]]; then
		have=$(plugin_version "$BIN/$tool") || have=""
	fi
	if [[ ${have#v} == "${want#v}" ]]; then
		return
	fi
	echo "proto.sh: installing $pkg@$want into .bin" >&2
	GOBIN=$BIN go install "$pkg@$want"
	have=$(plugin_version "$BIN/$tool")
	[[ ${have#v} == "${want#v}" ]] || die "$tool reports version $have after installing $want"
}

# generate SVC OUT compiles every .proto file under REPO/SVC/proto into OUT.
generate() {
	local svc=$1 out=$2
	local -a files
	mapfile -t files < <(cd "$REPO" && find "$svc/proto" -type f -name '*.proto' | LC_ALL=C sort)
	if [[ ${#files[@]} -eq 0 ]]; then
		return
	fi
	local -a gateway=()
	local rules
	rules=$(cd "$REPO" && find "$svc/proto" -type f -name 'http.yaml' | LC_ALL=C sort)
	if [[ -n $rules ]]; then
		[[ $(wc -l <<<"$rules") -eq 1 ]] || die "$svc/proto has more than one http.yaml"
		# allow_delete_body: some platform DELETEs carry a JSON body (MCIAS's
		# DELETE /v1/accounts/{id}/totp takes {"code"}).
		gateway=(--grpc-gateway_out="$out" --grpc-gateway_opt=paths=source_relative,allow_delete_body=true,grpc_api_configuration="$rules")
	fi
	mkdir -p "$out"
	(
		cd "$REPO"
		PATH=$BIN:$PATH protoc \
			-I "$svc/proto" \
			--go_out="$out" --go_opt=paths=source_relative \
			--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
			"${gateway[@]}" \
			"${files[@]}"
	)
}

# services lists the top-level directories that have a proto/ directory.
services() {
	local d
	for d in "$REPO"/*/proto; do
		[[ -d $d ]] || continue
		d=${d%/proto}
		echo "${d##*/}"
	done
}

cmd_gen() {
	local svc
	for svc in $(services); do
		if [[ -d $REPO/$svc/gen ]]; then
			# Remove what an earlier run generated so a deleted .proto leaves
			# no stale code behind; anything else in gen/ is left alone.
			find "$REPO/$svc/gen" -type f \( -name '*.pb.go' -o -name '*.pb.gw.go' \) -delete
			find "$REPO/$svc/gen" -mindepth 1 -type d -empty -delete
		fi
		generate "$svc" "$REPO/$svc/gen"
		echo "proto.sh: generated $svc/gen"
	done
}

CHECK_TMP=""

cmd_check() {
	local tmp svc failed=0
	CHECK_TMP=$(mktemp -d)
	trap 'rm -rf "$CHECK_TMP"' EXIT
	tmp=$CHECK_TMP
	for svc in $(services); do
		generate "$svc" "$tmp/$svc/gen"
		if [[ ! -d $tmp/$svc/gen && ! -d $REPO/$svc/gen ]]; then
			continue
		fi
		mkdir -p "$tmp/$svc/gen"
		# The protoc version line in the file headers is ignored: it is
		# whatever the Debian release ships, while the plugins that
		# produce the code itself are pinned.
		if ! diff -ru -I '^//.*protoc  *v[0-9]' "$REPO/$svc/gen" "$tmp/$svc/gen" >&2; then
			echo "proto.sh: $svc/gen differs from $svc/proto" >&2
			failed=1
		fi
	done
	if [[ $failed -ne 0 ]]; then
		die "generated protobuf code is out of date: run make proto"
	fi
	echo "proto.sh: generated protobuf code is up to date"
}

[[ $# -eq 1 ]] || usage
case $1 in
gen | check) ;;
*) usage ;;
esac

ensure_protoc
ensure_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
ensure_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
ensure_plugin protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway "$PROTOC_GEN_GRPC_GATEWAY_VERSION"

case $1 in
gen) cmd_gen ;;
check) cmd_check ;;
esac
