#!/bin/bash
# t/keys.sh - throw-away DKIM keys for the tests (never use them elsewhere).
#
#   t/keys.sh OUTDIR [DOMAIN [SELECTOR [rsa|ed25519]]]
#
# Defaults: domain sluice.test, selector test, RSA 2048.  Writes into OUTDIR
# (created 0700):
#   SELECTOR.private  the private key, PKCS#8 PEM, mode 0600 (opendkim's
#                     KeyFile, opendkim-testmsg -k)
#   SELECTOR.dns      the TXT record value, one line ("v=DKIM1; k=rsa; p=...")
#   keys.txt          one line per key made in OUTDIR,
#                     "SELECTOR._domainkey.DOMAIN TXT-VALUE": the key file of
#                     opendkim's TestPublicKeys (libopendkim DKIM_QUERY_FILE),
#                     so a verifier needs no DNS at all
# Only openssl is needed.  Ed25519 keys are published as the raw 32-byte
# public key (RFC 8463).
set -euo pipefail
out=${1:?usage: keys.sh OUTDIR [DOMAIN [SELECTOR [rsa|ed25519]]]}
dom=${2:-sluice.test}
sel=${3:-test}
alg=${4:-rsa}
mkdir -p "$out"
chmod 700 "$out"
umask 077
case $alg in
rsa)
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$out/$sel.private" 2>/dev/null
	p=$(openssl pkey -in "$out/$sel.private" -pubout -outform DER | base64 -w0)
	;;
ed25519)
	openssl genpkey -algorithm ed25519 -out "$out/$sel.private" 2>/dev/null
	p=$(openssl pkey -in "$out/$sel.private" -pubout -outform DER |
		tail -c 32 | base64 -w0)
	;;
*)
	echo "keys.sh: unknown key type '$alg' (rsa or ed25519)" >&2
	exit 1
	;;
esac
[ -n "$p" ] || {
	echo "keys.sh: no public key from $out/$sel.private" >&2
	exit 1
}
chmod 600 "$out/$sel.private"
printf 'v=DKIM1; k=%s; p=%s\n' "$alg" "$p" >"$out/$sel.dns"
touch "$out/keys.txt"
grep -v "^$sel\._domainkey\.$dom " "$out/keys.txt" >"$out/keys.txt.new" || true
printf '%s._domainkey.%s v=DKIM1; k=%s; p=%s\n' "$sel" "$dom" "$alg" "$p" \
	>>"$out/keys.txt.new"
mv "$out/keys.txt.new" "$out/keys.txt"
chmod 644 "$out/keys.txt" "$out/$sel.dns"
