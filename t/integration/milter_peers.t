#!/bin/bash
# The test peers of t/peers.sh, proven with sluice-milter-client (the MTA
# side of our milter codec) against real third-party milters:
#   opendkim        signs (DKIM-Signature, d=sluice.test s=test), and in
#                   verify mode checks that signature against a key file
#                   (TestPublicKeys, no DNS); Perl's Mail::DKIM checks it
#                   too, as a verifier that is not libopendkim
#   clamav-milter   rejects EICAR and a marker, accepts clean mail
#   spamass-milter  rejects the reject marker, tags the tag marker, accepts
#                   clean mail
# Each peer starts once; a missing package skips its part, with the reason.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
. "$SLUICE_SRC/t/peers.sh" || exit 1

CLIENT=$SLUICE_BUILD/sluice-milter-client
[ -x "$CLIENT" ] || skip_all "$CLIENT not built"
why=()
for p in opendkim clamav spamass; do
	peer_available "$p" || why+=("$PEER_WHY")
done
[ "${#why[@]}" = 3 ] && skip_all "no third-party milter installed: ${why[*]}"

setup_run
SECONDS=0

# run_client ARGS...: OUT, ERR and RC of one bounded client run
run_client() {
	OUT=$(timeout 60 "$CLIENT" -t 20 "$@" 2>"$RUN/client.err")
	RC=$?
	ERR=$(cat "$RUN/client.err")
}

# has_line TEXT: OUT holds exactly this line
has_line() { grep -qxF -- "$1" <<<"$OUT"; }
last_line() { tail -n 1 <<<"$OUT"; }

# start_or_skip N CMD ARGS...: start a peer; on a missing package skip its
# N tests; when it does not come up, one failure and N-1 skips
start_or_skip() {
	local n=$1 rc
	shift
	"$@"
	rc=$?
	case $rc in
	0) return 0 ;;
	2) skip "$n" "$PEER_WHY" ;;
	*)
		ok 1 "$* started: $PEER_WHY"
		skip $((n - 1)) "$*: did not start"
		;;
	esac
	return 1
}

make_mail() { # make_mail FILE FROM SUBJECT BODY
	printf 'From: %s\nTo: Bob <bob@sluice.test>\nSubject: %s\nDate: Thu, 01 Jan 2026 00:00:00 +0000\nMessage-ID: <%s@sluice.test>\nMIME-Version: 1.0\nContent-Type: text/plain\n\n%s\n' \
		"$2" "$3" "${1##*/}" "$4" >"$1"
}
make_mail "$RUN/dkim.eml" 'Alice <alice@sluice.test>' 'to be signed' \
	$'first body line\n\n  indented line with trailing space \nlast line'
make_mail "$RUN/foreign.eml" 'Carol <carol@example.net>' 'not ours' 'body'
make_mail "$RUN/clean.eml" 'Alice <alice@sluice.test>' 'hello' 'nothing to see here'
make_mail "$RUN/marker.eml" 'Alice <alice@sluice.test>' 'marker' \
	'text with SLUICE-VIRUS-TEST-MARKER-7f3a inside'
make_mail "$RUN/spam.eml" 'Alice <alice@sluice.test>' 'buy now' \
	'cheap SLUICE-SPAM-TEST-MARKER offer'
make_mail "$RUN/tag.eml" 'Alice <alice@sluice.test>' 'maybe' \
	'cheapish SLUICE-SPAM-TAG-MARKER offer'
peer_eicar_mail "$RUN/eicar.eml"

# --- opendkim: sign ---------------------------------------------------------------
if start_or_skip 9 peer_opendkim_start sign; then
	ok 0 "opendkim (sign) answers on $PEER_OPENDKIM"
	run_client -s "$PEER_OPENDKIM" -f alice@sluice.test "$RUN/dkim.eml"
	is "$RC" 0 "sign: exit 0" || diag "$ERR"
	sig=$(sed -n 's/^eom: \(insheader \[[0-9]*\]\|addheader\) DKIM-Signature: //p' <<<"$OUT")
	[ "$(grep -c '^eom: .* DKIM-Signature: ' <<<"$OUT")" = 1 ] && [ -n "$sig" ]
	ok $? "sign: one DKIM-Signature insheader/addheader printed" || diag "$OUT"
	like "$sig" '(^|[; ])d=sluice\.test;' "sign: d=sluice.test"
	like "$sig" '(^|[; ])s=test;' "sign: s=test"
	like "$sig" '(^|[; ])a=rsa-sha256;.*(^|[; ])bh=[A-Za-z0-9+/=]+;' "sign: a=rsa-sha256, body hash"
	is "$(last_line)" "eom: accept" "sign: the final reply is accept"
	# the signed message: the header as printed (C escapes undone) on top
	printf 'DKIM-Signature: %b\n' "$sig" >"$RUN/signed.eml"
	cat "$RUN/dkim.eml" >>"$RUN/signed.eml"
	sed 's/^last line$/last line, changed/' "$RUN/signed.eml" >"$RUN/tampered.eml"
	run_client -s "$PEER_OPENDKIM" "$RUN/foreign.eml"
	[ "$RC" = 0 ] && ! grep -q 'DKIM-Signature' <<<"$OUT"
	ok $? "sign: From: outside sluice.test is not signed" || diag "$OUT"
	if dv=$(peer_dkim_verify "$RUN/signed.eml"); then
		like "$dv" $'(^|\n)pass d=sluice\\.test s=test a=rsa-sha256\n' \
			"Mail::DKIM verifies opendkim's signature (key from t/keys.sh, no DNS)"
	else
		skip 1 "${PEER_WHY:-Mail::DKIM failed: $dv}"
	fi
	peer_stop opendkim-sign
fi

# --- opendkim: verify ---------------------------------------------------------------
# On-BadSignature reject: a bad signature is a verdict the client can see
if ! peer_available opendkim; then
	skip 8 "$PEER_WHY"
elif [ ! -s "$RUN/signed.eml" ]; then
	skip 8 "opendkim signed nothing: no message to verify"
else
	PEER_OPENDKIM_CONF="On-BadSignature reject" \
		start_or_skip 8 peer_opendkim_start verify && vstarted=1
fi
if [ -n "${vstarted:-}" ]; then
	ok 0 "opendkim (verify, key file) answers on $PEER_OPENDKIM"
	run_client -s "$PEER_OPENDKIM" -c 198.51.100.7 "$RUN/signed.eml"
	is "$RC:$(last_line)" "0:eom: accept" "verify signed: accepted" || diag "$OUT"
	ar=$(grep '^eom: .* Authentication-Results: ' <<<"$OUT")
	like "$ar" 'Authentication-Results: +mx\.sluice\.test;.*dkim=pass .*header\.d=sluice\.test .*header\.s=test' \
		"verify signed: Authentication-Results dkim=pass header.d=sluice.test header.s=test" ||
		diag "$OUT"
	run_client -s "$PEER_OPENDKIM" -c 198.51.100.7 "$RUN/tampered.eml"
	is "$RC" 2 "verify tampered body: exit 2 (On-BadSignature reject)" || diag "$OUT"
	like "$(last_line)" '^eom: reject 5[0-9][0-9] ' "verify tampered body: a 5xx reply at end of message"
	if dv=$(peer_dkim_verify "$RUN/tampered.eml"); then
		like "$dv" 'result: fail' "Mail::DKIM agrees: the tampered signature fails"
	else
		skip 1 "${PEER_WHY:-Mail::DKIM failed: $dv}"
	fi
	run_client -s "$PEER_OPENDKIM" -c 198.51.100.7 "$RUN/clean.eml"
	is "$RC:$(last_line)" "0:eom: accept" "verify unsigned: accepted"
	like "$(grep 'Authentication-Results' <<<"$OUT")" 'dkim=none' \
		"verify unsigned: Authentication-Results dkim=none"
	peer_stop opendkim-verify
fi

# --- clamav-milter + clamd ---------------------------------------------------------
if start_or_skip 10 peer_clamav_start; then
	ok 0 "clamav-milter answers on $PEER_CLAMAV (clamd on $PEER_CLAMD)"
	run_client -s "$PEER_CLAMAV" "$RUN/eicar.eml"
	is "$RC" 2 "EICAR attachment: exit 2" || diag "$OUT$ERR"
	like "$(last_line)" '^eom: reject 550 5\.7\.1 Rejected: virus Sluice\.Test\.EICAR\.[A-Za-z0-9.]+ found$' \
		"EICAR: the reply names the virus"
	has_line "eom: addheader X-Virus-Status: Infected (Sluice.Test.EICAR.Body.UNOFFICIAL)"
	ok $? "EICAR: X-Virus-Status: Infected header printed" || diag "$OUT"
	run_client -s "$PEER_CLAMAV" "$RUN/marker.eml"
	like "$RC:$(last_line)" '^2:eom: reject 550 5\.7\.1 Rejected: virus Sluice\.Test\.Marker' \
		"the private marker signature: rejected"
	run_client -s "$PEER_CLAMAV" "$RUN/clean.eml"
	is "$RC:$(last_line)" "0:eom: accept" "clean mail: accepted" || diag "$OUT$ERR"
	has_line "eom: addheader X-Virus-Status: Clean"
	ok $? "clean mail: X-Virus-Status: Clean header printed"
	like "$OUT" $'\neom: addheader X-Virus-Scanned: clamav-milter [0-9.]+ at mx\\.sluice\\.test\n' \
		"clean mail: X-Virus-Scanned header printed"
	run_client -s "$PEER_CLAMAV" -n 20 -j 4 "$RUN/clean.eml"
	like "$OUT" '^sessions=20 ok=20 rejected=0 tempfailed=0 errors=0 ' \
		"clean mail, 20 sessions 4 at a time: all accepted" || diag "$ERR"
	run_client -s "$PEER_CLAMAV" -n 10 -j 4 "$RUN/eicar.eml"
	like "$OUT" '^sessions=10 ok=0 rejected=10 tempfailed=0 errors=0 ' \
		"EICAR, 10 sessions 4 at a time: all rejected" || diag "$ERR"
	peer_stop clamav
fi

# --- spamass-milter + spamd -------------------------------------------------------
if start_or_skip 10 peer_spamass_start; then
	ok 0 "spamass-milter answers on $PEER_SPAMASS (spamd on $PEER_SPAMD)"
	run_client -s "$PEER_SPAMASS" "$RUN/spam.eml"
	is "$RC" 2 "reject marker (score 20 >= -r 15): exit 2" || diag "$OUT$ERR"
	like "$(last_line)" '^eom: reject 5[0-9][0-9] .*SpamAssassin' \
		"reject marker: the reply names SpamAssassin"
	run_client -v -s "$PEER_SPAMASS" "$RUN/tag.eml"
	is "$RC:$(last_line)" "0:eom: continue" "tag marker (score 8): not rejected" || diag "$OUT$ERR"
	grep -qE '^eom: replbody [0-9]+ bytes: cheapish SLUICE-SPAM-TAG-MARKER offer\\r\\n$' <<<"$OUT"
	ok $? "tag marker: spamass-milter sends the body back unchanged (replbody)" ||
		diag "$(grep replbody <<<"$OUT")"
	has_line "eom: addheader X-Spam-Flag: YES"
	ok $? "tag marker: X-Spam-Flag: YES added" || diag "$OUT"
	like "$(grep 'X-Spam-Status:' <<<"$OUT")" 'X-Spam-Status: Yes, score=8\.0 required=5\.0 tests=SLUICE_SPAM_TAG' \
		"tag marker: X-Spam-Status: Yes, score=8.0, the rule named"
	run_client -s "$PEER_SPAMASS" "$RUN/clean.eml"
	is "$RC" 0 "clean mail: exit 0" || diag "$OUT$ERR"
	grep -q 'X-Spam-Status: No, score=0\.0 ' <<<"$OUT" && ! grep -q 'X-Spam-Flag' <<<"$OUT"
	ok $? "clean mail: X-Spam-Status: No, score=0.0, no X-Spam-Flag" || diag "$OUT"
	run_client -s "$PEER_SPAMASS" -n 10 -j 2 "$RUN/spam.eml"
	like "$OUT" '^sessions=10 ok=0 rejected=10 tempfailed=0 errors=0 ' \
		"reject marker, 10 sessions 2 at a time: all rejected" || diag "$ERR"
	peer_stop spamass
fi

# --- everything stopped -------------------------------------------------------------
peer_stop_all
left=
for p in "${_T_PIDS[@]}"; do
	kill -0 "$p" 2>/dev/null && left="$left $p"
done
is "${left:-none}" none "every peer process stopped"
note "runtime ${SECONDS}s"
done_testing
