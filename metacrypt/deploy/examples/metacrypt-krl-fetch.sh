#!/bin/sh
# metacrypt-krl-fetch keeps sshd's RevokedKeys file current from Metacrypt's
# public KRL endpoint (no token needed; it answers while Metacrypt is
# sealed). deploy/systemd/metacrypt-krl.timer runs it every 5 minutes
# (RUNBOOK.md, "SSH CA").
#
# Settings, from the environment (the unit file sets them):
#   METACRYPT_KRL_URL  the KRL, https://<metacrypt>/v1/ssh/<mount>/krl
#   METACRYPT_CA_CERT  the CA that signed Metacrypt's TLS certificate
#   KRL_FILE           sshd's RevokedKeys file (default /etc/ssh/revoked.krl)
#   KRL_ETAG_FILE      where the last KRL's ETag is kept
#                      (default /var/lib/metacrypt-krl/etag)
#
# It asks with the last ETag (304: nothing to do), checks the answer is a
# KRL ssh-keygen reads, and replaces KRL_FILE atomically. sshd reads
# RevokedKeys at every authentication, so no reload is needed. On any
# failure the old file stays and the exit status is non-zero. A missing or
# unreadable RevokedKeys file makes sshd refuse every key, so install the
# first KRL before pointing sshd at it.
set -eu

url=${METACRYPT_KRL_URL:?set METACRYPT_KRL_URL to https://<metacrypt>/v1/ssh/<mount>/krl}
ca=${METACRYPT_CA_CERT:?set METACRYPT_CA_CERT to the CA certificate that signed the Metacrypt TLS certificate}
dst=${KRL_FILE:-/etc/ssh/revoked.krl}
etag=${KRL_ETAG_FILE:-/var/lib/metacrypt-krl/etag}

mkdir -p "$(dirname "$etag")"
# Without the file, the ETag must not make the server answer 304.
[ -s "$dst" ] || rm -f "$etag"

tmp=$(mktemp "$dst.XXXXXX")
trap 'rm -f "$tmp" "$etag.new"' EXIT
code=$(curl -sS --fail --max-time 30 --cacert "$ca" --etag-compare "$etag" --etag-save "$etag.new" \
	-o "$tmp" -w '%{http_code}' "$url")
case $code in
304)
	echo "metacrypt-krl-fetch: $dst is current"
	exit 0
	;;
200) ;;
*)
	echo "metacrypt-krl-fetch: unexpected HTTP status $code from $url" >&2
	exit 1
	;;
esac
if ! ssh-keygen -Q -l -f "$tmp" >/dev/null 2>&1; then
	echo "metacrypt-krl-fetch: $url did not answer a KRL ssh-keygen can read; $dst left as it was" >&2
	exit 1
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$dst"
mv -f "$etag.new" "$etag"
echo "metacrypt-krl-fetch: $dst updated ($(wc -c <"$dst") bytes)"
