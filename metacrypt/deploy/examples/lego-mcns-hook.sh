#!/bin/sh
# lego-mcns-hook.sh — lego's "exec" DNS provider hook: writes the dns-01 TXT
# record into MCNS with mcnsctl, and removes it afterwards (RUNBOOK.md §ACME).
#
#   EXEC_PATH=/usr/local/bin/lego-mcns-hook.sh MCNS_ZONE=svc.mcp.metacircular.net \
#   METACIRCULAR_MCNS=mcns.svc.mcp.metacircular.net:9443 METACIRCULAR_CA=/srv/ca.crt \
#   MCNSCTL_TOKEN=<token of an MCNS agent account, e.g. mcp-agent> \
#   lego --dns exec --dns.resolvers <mcns>:53 ...
#
# lego runs it as "present <fqdn> <value>" and "cleanup <fqdn> <value>".
# MCNSCTL names the mcnsctl binary (default: mcnsctl on PATH). Only MCNS
# agent accounts may write _acme-challenge records of other names.
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 present|cleanup FQDN VALUE" >&2
	exit 2
fi
action=$1
name=${2%.}
value=$3
zone=${MCNS_ZONE:?set MCNS_ZONE to the MCNS zone holding the names}
zone=${zone%.}
mcnsctl=${MCNSCTL:-mcnsctl}

case $name in
*."$zone") rel=${name%."$zone"} ;;
*)
	echo "lego-mcns-hook: $name is not in zone $zone" >&2
	exit 1
	;;
esac

case $action in
present)
	"$mcnsctl" records add "$zone" "$rel" TXT "$value" --ttl 60 >/dev/null
	;;
cleanup)
	# The table's first column is the record ID, the last the quoted value.
	ids=$("$mcnsctl" records list "$zone" --name "$rel" --type TXT |
		awk -v want="\"$value\"" 'NR > 1 && $NF == want { print $1 }')
	for id in $ids; do
		"$mcnsctl" records delete "$zone" "$id"
	done
	;;
*)
	echo "lego-mcns-hook: unknown action $action" >&2
	exit 2
	;;
esac
