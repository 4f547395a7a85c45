#!/bin/bash
# plugin milter hosting real third-party milters (t/peers.sh): opendkim
# (sign and verify), clamav-milter (+ clamd) and spamass-milter (+ spamd),
# alone and chained, under sluice-smtpd and under sluice-milterd behind a
# private Postfix.  Cases:
#   A1  opendkim sign: From: @sluice.test is delivered with a DKIM-Signature
#       that Mail::DKIM verifies; another domain is not signed
#   A2  opendkim verify (a second smtpd, client 127.0.0.2, not an internal
#       host): the signed copy of A1 gets Authentication-Results dkim=pass,
#       a copy with a changed body dkim=fail
#   A3  clamav-milter: EICAR and the private marker refused at the dot with
#       its 550 text; clean mail delivered with X-Virus-Scanned/-Status
#   A4  spamass-milter: reject marker refused (550); tag marker delivered
#       with X-Spam-Flag: YES and its body intact (spamass-milter sends it
#       back as a replacement body); ham with X-Spam-Status: No
#   A5  the chain clamav -> spamass -> opendkim sign: the signature covers
#       (opendkim SignHeaders adds them) the headers the two children before
#       it added, and verifies: later children see earlier edits, and edits
#       compose (also with spamass' replacement body); EICAR refused by
#       clamav, and neither spamd nor opendkim saw that message
#   A6  clamav-milter killed with SIGKILL after MAIL: RCPT/DATA get
#       default_action=tempfail (451); while it is down a new session gets
#       the tempfail at connect (sluice-smtpd: a 421 greeting) and the
#       plugin backs off (retry=1s); restarted, a new session passes
#   B   the same chain in sluice-milterd behind a private Postfix
#       (smtpd_milters): clean mail delivered by virtual(8) with the spamass
#       headers and a DKIM signature that verifies; EICAR refused by Postfix
#       with clamav-milter's text
# Each peer starts once (clamd and spamd are the slow part) and is shared
# by the cases; a missing peer skips its cases, with the reason.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
. "$SLUICE_SRC/t/peers.sh" || exit 1
export LC_ALL=C

[ -x "$SLUICE_BUILD/sluice-smtpd" ] || {
	echo "Bail out! $SLUICE_BUILD/sluice-smtpd not built"
	exit 1
}
[ -f "$SLUICE_BUILD/plugins/milter.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/milter.so)"
command -v swaks >/dev/null 2>&1 || skip_all "swaks not installed"
why=()
for p in opendkim clamav spamass; do
	peer_available "$p" || why+=("$PEER_WHY")
done
[ "${#why[@]}" = 3 ] && skip_all "no third-party milter installed: ${why[*]}"

setup_run
SECONDS=0

# Postfix (case B) and the peers are stopped first, quickly, then t/lib.sh
# cleans up (this trap replaces the one peers.sh would install)
PF=$SLUICE_SRC/t/pf-instance.sh
PFD=$RUN/pf
on_exit() {
	local rc=$?
	if [ -f "$PFD/spool/pid/master.pid" ]; then
		"$PF" stop "$PFD" >/dev/null 2>&1
		if [ "$rc" != 0 ] && [ -f "$PFD/maillog" ]; then
			diag "last lines of the Postfix log:"
			diag "$(tail -n 30 "$PFD/maillog")"
		fi
	fi
	if [ "$rc" != 0 ] && [ -s "$RUN/milterd.log" ]; then
		diag "last lines of $RUN/milterd.log:"
		diag "$(tail -n 30 "$RUN/milterd.log")"
	fi
	peer_stop_all
	(exit "$rc")
	_t_cleanup
}
trap on_exit EXIT

# ---------------------------------------------------------------- messages
make_mail() { # make_mail FILE FROM SUBJECT BODY
	printf 'From: %s\nTo: Bob <bob@sluice.test>\nSubject: %s\nDate: Thu, 01 Jan 2026 00:00:00 +0000\nMessage-ID: <%s@sluice.test>\nMIME-Version: 1.0\nContent-Type: text/plain\n\n%s\n' \
		"$2" "$3" "${1##*/}" "$4" >"$1"
}
M=$RUN/msg
mkdir -p "$M"
make_mail "$M/a1-sign" 'Alice <alice@sluice.test>' 'to be signed' \
	$'first body line\n\n  indented line with trailing space \nlast line'
make_mail "$M/a1-foreign" 'Carol <carol@example.net>' 'not ours' 'body'
make_mail "$M/a3-clean" 'Alice <alice@sluice.test>' 'hello' 'nothing to see here'
make_mail "$M/a3-marker" 'Alice <alice@sluice.test>' 'marker' \
	'text with SLUICE-VIRUS-TEST-MARKER-7f3a inside'
make_mail "$M/a4-spam" 'Alice <alice@sluice.test>' 'buy now' \
	'cheap SLUICE-SPAM-TEST-MARKER offer'
make_mail "$M/a4-tag" 'Alice <alice@sluice.test>' 'maybe' \
	$'cheapish SLUICE-SPAM-TAG-MARKER offer\nsecond line'
make_mail "$M/a4-ham" 'Alice <alice@sluice.test>' 'ham' 'just a note'
make_mail "$M/a5-clean" 'Alice <alice@sluice.test>' 'chained' \
	$'through three milters\nand signed last'
make_mail "$M/a5-tag" 'Alice <alice@sluice.test>' 'chained tag' \
	$'cheapish SLUICE-SPAM-TAG-MARKER offer\nthen signed'
make_mail "$M/a6-clean" 'Alice <alice@sluice.test>' 'after restart' 'clean again'
make_mail "$M/b-clean" 'Alice <alice@sluice.test>' 'via postfix' \
	$'through Postfix and milterd\nthree children'
peer_eicar_mail "$M/eicar"

# eicar_as FILE ID: the EICAR mail with its own Message-ID
eicar_as() {
	sed "s/^Message-ID: .*/Message-ID: <$2@sluice.test>/" "$M/eicar" >"$1"
}

# ---------------------------------------------------------------- peers
# PEER_STATE[name]: ok, or the reason its cases are skipped; a peer that
# failed to start is one failure here.
declare -A PEER_STATE
start_peer() { # start_peer NAME CMD ARGS...
	local name=$1 rc
	shift
	"$@"
	rc=$?
	case $rc in
	0)
		PEER_STATE[$name]=ok
		ok 0 "peer $name started"
		;;
	2)
		PEER_STATE[$name]="$PEER_WHY"
		skip 1 "peer $name: $PEER_WHY"
		;;
	*)
		PEER_STATE[$name]="$name did not start: $PEER_WHY"
		ok 1 "peer $name started: $PEER_WHY"
		;;
	esac
}

# opendkim signs the headers the children before it add, too (a delta to
# the RFC 6376 default list): then its signature proves it saw them.
PEER_OPENDKIM_CONF="SignHeaders *,+X-Spam-Status,+X-Spam-Flag,+X-Virus-Scanned,+X-Virus-Status" \
	start_peer opendkim-sign peer_opendkim_start sign
start_peer opendkim-verify peer_opendkim_start verify
start_peer clamav peer_clamav_start
start_peer spamass peer_spamass_start
note "peers up after ${SECONDS}s: sign=${PEER_OPENDKIM_SIGN:-} verify=${PEER_OPENDKIM_VERIFY:-} clamav=${PEER_CLAMAV:-} spamass=${PEER_SPAMASS:-}"

# need N PEER...: true if every PEER is up, else skip N tests with the reason
need() {
	local n=$1 p
	shift
	for p in "$@"; do
		if [ "${PEER_STATE[$p]:-}" != ok ]; then
			skip "$n" "peer $p: ${PEER_STATE[$p]:-not started}"
			return 1
		fi
	done
	return 0
}

# Mail::DKIM is the verifier of DKIM-Signature (not libopendkim)
HAVE_DKIM_VERIFY=1
perl -MMail::DKIM::Verifier -e 1 2>/dev/null || {
	HAVE_DKIM_VERIFY=
	DKIM_WHY="Mail::DKIM not installed (Debian package libmail-dkim-perl)"
}

# dkim_pass FILE DESC: Mail::DKIM verifies FILE's one signature: pass
dkim_pass() {
	local dv
	if [ -z "$HAVE_DKIM_VERIFY" ]; then
		skip 1 "$2: $DKIM_WHY"
		return 0
	fi
	dv=$(peer_dkim_verify "$1" 2>&1)
	like "$dv" $'^pass d=sluice\\.test s=test a=rsa-sha256\nresult: pass$' "$2"
}

# dkim_fail FILE DESC: Mail::DKIM says the signature fails
dkim_fail() {
	local dv
	if [ -z "$HAVE_DKIM_VERIFY" ]; then
		skip 1 "$2: $DKIM_WHY"
		return 0
	fi
	dv=$(peer_dkim_verify "$1" 2>&1)
	like "$dv" $'\nresult: fail' "$2"
}

# ---------------------------------------------------------------- helpers
# smtpd_with NAME: (re)start sluice-smtpd with the chain on stdin, queue
# into $RUN/NAME/Maildir ($MD)
smtpd_with() {
	sluice_stop
	unset PORT
	MD=$RUN/$1/Maildir
	write_conf "$RUN/$1.conf" < <(
		echo "local_domains sluice.test"
		echo "log_level debug"
		cat
		echo "plugin queue/maildir path=$MD"
	)
	sluice_start "$RUN/$1.conf"
}

# send FILE [SWAKS-ARGS...]: FILE as the message, from alice@sluice.test to
# bob@sluice.test; prints swaks' dialogue
send() {
	local f=$1
	shift
	# swaks ends the data with CRLF "." CRLF itself: without the file's
	# last newline the message arrives exactly as in the file
	printf '%s' "$(cat "$f")" >"$RUN/send.eml"
	swaks --server 127.0.0.1 --port "${SEND_PORT:-$PORT}" --timeout 30 \
		--helo client.test --from alice@sluice.test --to bob@sluice.test \
		--data "$RUN/send.eml" "$@" 2>&1
}

# copy DIR ID: the delivered file in Maildir DIR whose Message-ID is <ID@...>
copy() {
	grep -l -i -s "^Message-ID: <$2@sluice\.test>" "$1"/new/* 2>/dev/null | head -n 1
}
ncopies() {
	grep -l -i -s "^Message-ID: <$2@sluice\.test>" "$1"/new/* 2>/dev/null | wc -l
}

# header NAME FILE: values of header NAME (unfolded), one per line
header() {
	awk -v n="$1" 'BEGIN { n = tolower(n) ":" }
	/^$/ { exit }
	/^[ \t]/ { if (on) v = v " " $0; next }
	{ if (on) print v; on = (tolower(substr($0, 1, length(n))) == n)
	  if (on) { v = substr($0, length(n) + 1); sub(/^[ \t]+/, "", v) } }
	END { if (on) print v }' "$2"
}
body() { sed '1,/^$/d' "$1"; }

# log_since MARK: the lines smtpd logged since mark_log
mark_log() { LOG_MARK=$(wc -l <"$RUN/smtpd.log"); }
log_since() { tail -n +"$((LOG_MARK + 1))" "$RUN/smtpd.log"; }

# ================================================================ A1 sign
if need 8 opendkim-sign; then
	smtpd_with a1 <<EOF
plugin milter name=opendkim socket=$PEER_OPENDKIM_SIGN default_action=tempfail
EOF
	mark_log
	out=$(send "$M/a1-sign")
	like "$(reply_to . "$out")" '^250 ' "A1 sign: From: @sluice.test accepted, 250 at the dot" ||
		diag "$out"
	f=$(copy "$MD" a1-sign)
	[ -n "$f" ]
	ok $? "A1 sign: delivered" || diag "$(log_since)"
	sig=$(header DKIM-Signature "$f")
	like "$sig" '(^|[; ])d=sluice\.test;.*(^|[; ])s=test;' \
		"A1 sign: one DKIM-Signature d=sluice.test s=test" || diag "$(cat "$f")"
	dkim_pass "$f" "A1 sign: Mail::DKIM verifies the delivered copy"
	[ -n "$f" ] && cp "$f" "$RUN/signed.eml"
	log_since | grep -q -E "info: [^ ]+ plugin=opendkim milter=$PEER_OPENDKIM_SIGN modifications=1\$"
	ok $? "A1 sign: the log shows opendkim's one modification" || diag "$(log_since)"
	is "$(body "$f")" "$(body "$M/a1-sign")" "A1 sign: body delivered unchanged"

	out=$(send "$M/a1-foreign")
	like "$(reply_to . "$out")" '^250 ' "A1 foreign: From: @example.net accepted"
	f=$(copy "$MD" a1-foreign)
	[ -n "$f" ] && [ -z "$(header DKIM-Signature "$f")" ]
	ok $? "A1 foreign: delivered without a DKIM-Signature" || diag "$(cat "$f" 2>/dev/null)"
fi

# ================================================================ A2 verify
if [ ! -s "$RUN/signed.eml" ]; then
	skip 5 "A2: no signed message from A1"
elif need 5 opendkim-verify; then
	# the copy delivered in A1 (with our Received: on top), and one with a
	# changed body
	sed 's/^last line$/last line, changed/' "$RUN/signed.eml" >"$RUN/tampered.eml"
	smtpd_with a2 <<EOF
plugin milter name=opendkim-verify socket=$PEER_OPENDKIM_VERIFY default_action=tempfail
EOF
	# from 127.0.0.2: not an InternalHost, so opendkim verifies
	out=$(send "$RUN/signed.eml" --local-interface 127.0.0.2)
	like "$(reply_to . "$out")" '^250 ' "A2 verify: the signed message accepted" || diag "$out"
	f=$(copy "$MD" a1-sign)
	ar=$(header Authentication-Results "$f")
	like "$ar" '^mx\.sluice\.test;.*dkim=pass .*header\.d=sluice\.test.*header\.s=test' \
		"A2 verify: Authentication-Results: mx.sluice.test; dkim=pass header.d=sluice.test header.s=test" ||
		diag "$(cat "$f" 2>/dev/null)"
	rm -f "$MD"/new/*
	out=$(send "$RUN/tampered.eml" --local-interface 127.0.0.2)
	like "$(reply_to . "$out")" '^250 ' "A2 verify: the tampered message accepted (On-BadSignature accept, the default)" ||
		diag "$out"
	f=$(copy "$MD" a1-sign)
	ar=$(header Authentication-Results "$f")
	like "$ar" '^mx\.sluice\.test;.*dkim=fail .*header\.d=sluice\.test' \
		"A2 verify: tampered body: Authentication-Results dkim=fail" ||
		diag "$(cat "$f" 2>/dev/null)"
	dkim_fail "$RUN/tampered.eml" "A2 verify: Mail::DKIM agrees the tampered copy fails"
fi

# ================================================================ A3 clamav
if need 8 clamav; then
	smtpd_with a3 <<EOF
plugin milter name=clamav socket=$PEER_CLAMAV default_action=tempfail
EOF
	mark_log
	eicar_as "$M/a3-eicar" a3-eicar
	out=$(send "$M/a3-eicar")
	dot=$(reply_to . "$out")
	like "$dot" '^550 5\.7\.1 Rejected: virus Sluice\.Test\.EICAR\.[A-Za-z0-9.]+ found$' \
		"A3 clamav: EICAR refused at the dot with clamav-milter's text" || diag "$out"
	like "$(log_since)" "plugin=clamav milter=$PEER_CLAMAV event=BODYEOB reply=REPLYCODE text=\"Rejected: virus Sluice" \
		"A3 clamav: the log shows clamav's reply to end of message" || diag "$(log_since)"
	is "$(ncopies "$MD" a3-eicar)" 0 "A3 clamav: EICAR not delivered"
	out=$(send "$M/a3-marker")
	like "$(reply_to . "$out")" '^550 5\.7\.1 Rejected: virus Sluice\.Test\.Marker' \
		"A3 clamav: the private marker signature refused too"
	out=$(send "$M/a3-clean")
	like "$(reply_to . "$out")" '^250 ' "A3 clamav: clean mail accepted" || diag "$out"
	f=$(copy "$MD" a3-clean)
	is "$(header X-Virus-Status "$f")" "Clean" "A3 clamav: delivered with X-Virus-Status: Clean" ||
		diag "$(cat "$f" 2>/dev/null)"
	like "$(header X-Virus-Scanned "$f")" '^clamav-milter [0-9.]+ at mx\.sluice\.test$' \
		"A3 clamav: and X-Virus-Scanned: clamav-milter VERSION at mx.sluice.test"
	is "$(body "$f")" "$(body "$M/a3-clean")" "A3 clamav: body unchanged"
fi

# ================================================================ A4 spamass
if need 9 spamass; then
	smtpd_with a4 <<EOF
plugin milter name=spamass socket=$PEER_SPAMASS default_action=tempfail
EOF
	out=$(send "$M/a4-spam")
	is "$(reply_to . "$out")" "550 5.7.1 Blocked by SpamAssassin" \
		"A4 spamass: reject marker (score 20 >= -r 15) refused, 550 5.7.1 Blocked by SpamAssassin" ||
		diag "$out"
	is "$(ncopies "$MD" a4-spam)" 0 "A4 spamass: the refused message is not delivered"
	out=$(send "$M/a4-tag")
	like "$(reply_to . "$out")" '^250 ' "A4 spamass: tag marker (score 8) accepted" || diag "$out"
	f=$(copy "$MD" a4-tag)
	is "$(header X-Spam-Flag "$f")" "YES" "A4 spamass: tagged: X-Spam-Flag: YES" ||
		diag "$(cat "$f" 2>/dev/null)"
	like "$(header X-Spam-Status "$f")" '^Yes, score=8\.0 required=5\.0 tests=SLUICE_SPAM_TAG' \
		"A4 spamass: tagged: X-Spam-Status: Yes, score=8.0 ... SLUICE_SPAM_TAG"
	is "$(body "$f")" "$(body "$M/a4-tag")" \
		"A4 spamass: tagged: the body (sent back as a replacement) arrives intact"
	out=$(send "$M/a4-ham")
	like "$(reply_to . "$out")" '^250 ' "A4 spamass: ham accepted"
	f=$(copy "$MD" a4-ham)
	like "$(header X-Spam-Status "$f")" '^No, score=0\.0 ' "A4 spamass: ham: X-Spam-Status: No, score=0.0" ||
		diag "$(cat "$f" 2>/dev/null)"
	is "$(header X-Spam-Flag "$f")" "" "A4 spamass: ham: no X-Spam-Flag"
fi

# ================================================================ A5 chain
# clamav first (a virus ends it), spamass next, opendkim last so that its
# signature covers what the two before it added
CHAIN="plugin milter name=clamav socket=${PEER_CLAMAV:-} default_action=tempfail
plugin milter name=spamass socket=${PEER_SPAMASS:-} default_action=tempfail
plugin milter name=opendkim socket=${PEER_OPENDKIM_SIGN:-} default_action=tempfail"

# signed_names FILE: the h= tag of FILE's DKIM-Signature, lower case,
# one name per line
signed_names() {
	header DKIM-Signature "$1" | tr -d ' \t' | tr ';' '\n' |
		sed -n 's/^h=//p' | tr ':' '\n' | tr '[:upper:]' '[:lower:]'
}

if need 18 clamav spamass opendkim-sign; then
	smtpd_with a5 <<<"$CHAIN"
	mark_log
	out=$(send "$M/a5-clean")
	like "$(reply_to . "$out")" '^250 ' "A5 chain: clean mail from sluice.test accepted" ||
		diag "$out"
	f=$(copy "$MD" a5-clean)
	[ -n "$f" ]
	ok $? "A5 chain: delivered" || diag "$(log_since)"
	hv="$(header X-Virus-Status "$f") / $(header X-Spam-Status "$f")"
	like "$hv" '^Clean / No, score=0\.0 ' \
		"A5 chain: X-Virus-Status: Clean (clamav) and X-Spam-Status: No (spamass)" ||
		diag "$(cat "$f" 2>/dev/null)"
	names=$(signed_names "$f" | sort -u | tr '\n' ' ')
	like "$names" '(^| )x-spam-status .*x-virus-scanned x-virus-status ' \
		"A5 chain: opendkim signed X-Spam-Status, X-Virus-Scanned, X-Virus-Status (it saw them): h= $names" ||
		diag "$(header DKIM-Signature "$f")"
	dkim_pass "$f" "A5 chain: Mail::DKIM verifies the delivered copy (edits composed)"
	if [ -n "$f" ]; then
		sed 's/^X-Spam-Status: No,/X-Spam-Status: Yes,/' "$f" >"$RUN/a5-forged.eml"
		dkim_fail "$RUN/a5-forged.eml" "A5 chain: X-Spam-Status changed after delivery: the signature fails (it covers spamass' header)"
	else
		skip 1 "A5 chain: nothing delivered"
	fi
	id=$(log_since | awk '$5 ~ /^plugin=/ && /modifications=/ { print $4; exit }')
	order=$(log_since | awk -v id="$id" '$4 == id && /modifications=/ { sub(/^plugin=/, "", $5); printf "%s ", $5 }')
	is "$order" "clamav spamass opendkim " \
		"A5 chain: the log shows modifications by clamav, spamass, opendkim, in that order" ||
		diag "$(log_since)"

	# tagged spam: spamass adds headers and sends the body back; opendkim
	# signs the message as spamass left it
	out=$(send "$M/a5-tag")
	like "$(reply_to . "$out")" '^250 ' "A5 chain: tag marker accepted" || diag "$out"
	f=$(copy "$MD" a5-tag)
	is "$(header X-Spam-Flag "$f")" "YES" "A5 chain: tagged: X-Spam-Flag: YES" ||
		diag "$(cat "$f" 2>/dev/null)"
	is "$(body "$f")" "$(body "$M/a5-tag")" "A5 chain: tagged: body intact after spamass' replacement"
	signed_names "$f" | grep -qx x-spam-flag
	ok $? "A5 chain: tagged: X-Spam-Flag is signed" || diag "$(header DKIM-Signature "$f")"
	dkim_pass "$f" "A5 chain: tagged: Mail::DKIM verifies (header adds + body replacement + signature)"

	# EICAR: clamav refuses; the message goes no further down the chain
	eicar_as "$M/a5-eicar" a5-eicar
	mark_log
	out=$(send "$M/a5-eicar")
	like "$(reply_to . "$out")" '^550 5\.7\.1 Rejected: virus Sluice\.Test\.EICAR\.[A-Za-z0-9.]+ found$' \
		"A5 chain: EICAR refused at the dot with clamav-milter's text" || diag "$out"
	is "$(ncopies "$MD" a5-eicar)" 0 "A5 chain: EICAR not delivered"
	lg=$(log_since)
	id=$(awk '/ plugin=clamav milter=.* event=BODYEOB reply=REPLYCODE / { print $4; exit }' <<<"$lg")
	[ -n "$id" ] && grep -q -E "^[^ ]+ [^ ]+ info: $id hook=data_post plugin=clamav verdict=deny text=\"Rejected: virus " <<<"$lg"
	ok $? "A5 chain: the log shows clamav's BODYEOB reply and its deny at data_post (session $id)" ||
		diag "$lg"
	sess=$(awk -v id="$id" '$4 == id' <<<"$lg")
	unlike "$sess" 'plugin=(spamass|opendkim) [^'$'\n'']*(modifications=|event=BODYEOB)' \
		"A5 chain: no spamass or opendkim result for that message in the log" || diag "$sess"
	sd=$(cat "$PEER_SPAMASS_DIR/spamd.log" 2>/dev/null)
	[[ $sd == *'<a5-clean@sluice.test>'* ]] && [[ $sd != *'<a5-eicar@sluice.test>'* ]]
	ok $? "A5 chain: spamd scanned a5-clean but never saw the EICAR message" ||
		diag "$(grep -E 'processing message' <<<"$sd")"
	# (opendkim logs nothing (Syslog no): its absence shows in our log)
	is "$(grep -c -E " $id plugin=opendkim .*modifications=" <<<"$lg")" 0 \
		"A5 chain: opendkim made no modification to the EICAR message"
fi

# ================================================================ A6 kill
# a6_session PID: EHLO, MAIL, then SIGKILL to PID (clamav-milter) and,
# once it is gone, RCPT, DATA and a message; prints "CMD CODE TEXT"
a6_session() {
	timeout 60 "$SLUICE_PYTHON" - "$PORT" "$1" <<'PYEOF'
import os, signal, smtplib, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])

def gone():
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True

def show(cmd, r):
    print("%s %d %s" % (cmd, r[0], r[1].decode(errors="replace").replace("\n", " ")))
    sys.stdout.flush()
    return r[0]

s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.ehlo("client.test")
show("MAIL", s.mail("alice@sluice.test"))
os.kill(pid, signal.SIGKILL)
end = time.time() + 10
while not gone() and time.time() < end:
    time.sleep(0.02)
print("KILLED %s" % gone())
if show("RCPT", s.rcpt("bob@sluice.test")) == 250:
    if show("DATA", s.docmd("DATA")) == 354:
        s.send(b"From: alice@sluice.test\r\nSubject: killed\r\n"
               b"Message-ID: <a6-killed@sluice.test>\r\n\r\nbody\r\n.\r\n")
        show("DOT", s.getreply())
s.quit()
PYEOF
}

if need 11 clamav; then
	smtpd_with a6 <<EOF
plugin milter name=clamav socket=$PEER_CLAMAV default_action=tempfail retry=1s
EOF
	# clamav-milter is the clamav process peers.sh stops with SIGKILL
	mpid=
	for e in "${_PEER_PROCS[@]}"; do
		read -r n p sig <<<"$e"
		[ "$n $sig" = "clamav KILL" ] && mpid=$p
	done
	mark_log
	out=$(a6_session "$mpid")
	note "$out"
	like "$out" $'^MAIL 250 [^\n]*\nKILLED True\n' \
		"A6 kill: MAIL accepted (session open with clamav-milter), then clamav-milter (pid $mpid) killed"
	first=$(grep -E '^(RCPT|DATA|DOT) ' <<<"$out" | grep -v -E '^(RCPT 250|DATA 354) ' | head -n 1)
	like "$first" '^(RCPT|DATA) 451 4\.7\.1 ' \
		"A6 kill: the next command after the kill (RCPT or DATA) gets default_action tempfail, 451 4.7.1" ||
		diag "$out"
	log_since | grep -q -E "plugin=clamav milter=$PEER_CLAMAV failed: .*; default_action=tempfail\$"
	ok $? "A6 kill: the log says clamav failed, default_action=tempfail" || diag "$(log_since)"
	is "$(ncopies "$MD" a6-killed)" 0 "A6 kill: nothing delivered"
	# while it is down a new session cannot connect to it: tempfail at
	# connect, which sluice-smtpd answers with a 421 greeting
	mark_log
	out=$(send "$M/a6-clean")
	like "$(grep -m 1 -E '^ *(<-|<\*\*) ' <<<"$out")" '^ *<\*\* +421 4\.7\.0 mx\.sluice\.test Service unavailable - try again later$' \
		"A6 down: a new session is refused with a 421 greeting (tempfail at connect)" || diag "$out"
	log_since | grep -q -E "plugin=clamav milter=$PEER_CLAMAV failed: connect: .*\(next try in 1000 ms\); default_action=tempfail\$"
	ok $? "A6 down: the log says the connect failed, next try in 1000 ms (retry=1s)" || diag "$(log_since)"

	peer_stop clamav
	peer_clamav_start
	ok $? "A6 kill: clamd and clamav-milter restarted (peer_stop + peer_clamav_start)" || {
		PEER_STATE[clamav]="clamav did not restart: $PEER_WHY"
		diag "${PEER_STATE[clamav]}"
	}
	if [ "${PEER_STATE[clamav]}" = ok ]; then
		sleep 1.1 # retry=1s
		out=$(send "$M/a6-clean")
		like "$(reply_to . "$out")" '^250 ' "A6 restarted: a new session's clean mail accepted" ||
			diag "$out$(log_since)"
		f=$(copy "$MD" a6-clean)
		is "$(header X-Virus-Status "$f")" "Clean" "A6 restarted: and scanned (X-Virus-Status: Clean)"
		eicar_as "$M/a6-eicar" a6-eicar
		out=$(send "$M/a6-eicar")
		like "$(reply_to . "$out")" '^550 5\.7\.1 Rejected: virus ' "A6 restarted: EICAR refused again" ||
			diag "$out"
		like "$(reply_to 'MAIL FROM:<alice@sluice.test>' "$out")" '^250 ' \
			"A6 restarted: MAIL accepted again" || diag "$out"
	else
		skip 4 "${PEER_STATE[clamav]}"
	fi
fi

# ================================================================ B Postfix
# The chain of A5 in sluice-milterd; Postfix (smtpd_milters) in front of it.
b_why=
if [ "$(id -u)" != 0 ]; then
	b_why="needs root (private Postfix instance)"
elif ! { command -v postfix && command -v postconf; } >/dev/null 2>&1; then
	b_why="postfix not installed"
elif ! [ -x "$SLUICE_BUILD/sluice-milterd" ]; then
	b_why="$SLUICE_BUILD/sluice-milterd not built"
fi
if [ -n "$b_why" ]; then
	skip 12 "B: $b_why"
elif need 12 clamav spamass opendkim-sign; then
	sluice_stop
	if ! SPORT=$(free_port) || ! MPORT=$(free_port); then
		echo "Bail out! no free port"
		exit 1
	fi
	INBOX=$PFD/mail/inbox
	"$PF" create "$PFD" "$SPORT" maildir "inet:127.0.0.1:$MPORT" || {
		echo "Bail out! pf-instance.sh create failed"
		exit 1
	}
	postconf -c "$PFD/etc" -e 'milter_command_timeout = 30s' \
		'milter_content_timeout = 60s' 'milter_connect_timeout = 10s'
	touch -d '-1 min' "$PFD/etc/main.cf"
	unset PORT
	write_conf "$RUN/milterd.conf" < <(
		echo "milter_listen inet:$MPORT@127.0.0.1"
		echo "log_level debug"
		echo "$CHAIN"
	)
	milterd_start "$RUN/milterd.conf"
	"$PF" start "$PFD" 20
	ok $? "B: private Postfix up on 127.0.0.1:$SPORT, smtpd_milters = inet:127.0.0.1:$MPORT (sluice-milterd)"

	out=$(SEND_PORT=$SPORT send "$M/b-clean")
	like "$(reply_to . "$out")" '^250 2\.0\.0 Ok: queued as ' "B: clean mail from sluice.test: 250 from Postfix" ||
		diag "$out"
	for ((i = 0; i < 300; i++)); do
		[ -n "$(copy "$INBOX" b-clean)" ] && break
		sleep 0.05
	done
	f=$(copy "$INBOX" b-clean)
	[ -n "$f" ]
	ok $? "B: delivered by virtual(8) into $INBOX" || diag "$(cat "$PFD/maillog")"
	hv="$(header X-Virus-Status "$f") / $(header X-Spam-Status "$f")"
	like "$hv" '^Clean / No, score=0\.0 ' "B: X-Virus-Status: Clean and X-Spam-Status: No" ||
		diag "$(cat "$f" 2>/dev/null)"
	names=$(signed_names "$f" | sort -u | tr '\n' ' ')
	like "$names" '(^| )x-spam-status .*x-virus-status ' \
		"B: the DKIM-Signature covers X-Spam-Status and X-Virus-Status: h= $names" ||
		diag "$(cat "$f" 2>/dev/null)"
	dkim_pass "$f" "B: Mail::DKIM verifies the copy Postfix delivered"
	id=$(awk '$5 ~ /^plugin=/ && /modifications=/ { print $4; exit }' "$RUN/milterd.log")
	order=$(awk -v id="$id" '$4 == id && /modifications=/ { sub(/^plugin=/, "", $5); printf "%s ", $5 }' "$RUN/milterd.log")
	is "$order" "clamav spamass opendkim " \
		"B: milterd's log shows modifications by clamav, spamass, opendkim, in that order" ||
		diag "$(cat "$RUN/milterd.log")"
	is "$(body "$f")" "$(body "$M/b-clean")" "B: body intact"

	eicar_as "$M/b-eicar" b-eicar
	out=$(SEND_PORT=$SPORT send "$M/b-eicar")
	like "$(reply_to . "$out")" '^550 5\.7\.1 Rejected: virus Sluice\.Test\.EICAR\.[A-Za-z0-9.]+ found$' \
		"B: EICAR refused by Postfix at the dot with clamav-milter's text" || diag "$out"
	grep -q -E 'milter-reject: END-OF-MESSAGE from [^:]*: 5\.7\.1 Rejected: virus Sluice\.Test\.EICAR' "$PFD/maillog"
	ok $? "B: Postfix logged milter-reject: END-OF-MESSAGE ... 5.7.1 Rejected: virus ..." ||
		diag "$(tail -n 20 "$PFD/maillog")"
	"$PF" drain "$PFD" 15
	is "$(ncopies "$INBOX" b-eicar)" 0 "B: EICAR not delivered"
	id=$(awk '/ plugin=clamav milter=.* event=BODYEOB reply=REPLYCODE / { i = $4 } END { print i }' "$RUN/milterd.log")
	sess=$(awk -v id="$id" '$4 == id' "$RUN/milterd.log")
	[ -n "$id" ] && ! grep -q -E 'plugin=(spamass|opendkim) .*(modifications=|event=BODYEOB)' <<<"$sess"
	ok $? "B: milterd's log: clamav refused the EICAR message (session $id), spamass and opendkim made nothing of it" ||
		diag "$sess"
	"$PF" stop "$PFD"
	milterd_stop
fi

# ================================================================ end
san=$(grep -h -E -m 20 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$RUN/milterd.log" 2>/dev/null)
is "$san" "" "no sanitizer report in sluice-milterd's log"
sluice_stop
peer_stop_all
left=
for p in "${_T_PIDS[@]}"; do
	kill -0 "$p" 2>/dev/null && left="$left $p"
done
is "${left:-none}" none "every peer and daemon stopped"
note "runtime ${SECONDS}s"
done_testing
