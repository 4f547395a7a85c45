#!/bin/bash
# plugin milter: failure containment against a hostile filter
# (t/hostile_milter.py).  For every way the script can misbehave - a bad
# negotiation, malformed reply texts, header/recipient edits smuggling CR
# or LF, oversized and empty packets, unknown replies, edits outside end
# of message, a closed or stalled connection, endless progress, an action
# it did not negotiate - sluice-smtpd (default_action=tempfail) must:
#   - answer the stage where it happened with the default_action reply
#     (451 4.7.1; 421 greeting for a failed negotiation),
#   - deliver nothing, and none of the injected text anywhere,
#   - log exactly one warning naming the reason,
#   - send the filter nothing more of that session (no QUIT either),
#   - stay up: the next session, with a good filter, delivers.
# Then default_action=reject and =accept on hostile modes, the controls
# (a proper reply code, a multi-line one, good edits, progress that ends
# in continue), endless progress against the 10x cap, and the plugin
# inside sluice-milterd driven by sluice-milter-client.
#
# One sluice-smtpd per configuration; the filter behind its socket
# ($RUN/h.sock) is swapped between sessions (one hostile_milter.py
# process per case, with a fresh log: our session is always its session 1).
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

HM=$SLUICE_SRC/t/hostile_milter.py
SMTPD=$SLUICE_BUILD/sluice-smtpd
CLIENT=$SLUICE_BUILD/sluice-milter-client
[ -x "$SMTPD" ] || skip_all "$SMTPD not built"
[ -x "$SLUICE_BUILD/plugins/milter.so" ] || skip_all "plugins/milter.so not built"
[ -f "$HM" ] || skip_all "$HM missing"

setup_run
HSOCK=$RUN/h.sock
MAIL=$RUN/Maildir
HLOG=$RUN/hm.log
TEMPFAIL="451 4.7.1 Service unavailable - try again later"
GREET421="421 4.7.0 mx.sluice.test Service unavailable - try again later"

# ------------------------------------------------------------------ helpers
HMPID=

# start_hm MODE [ARGS...]: a fresh hostile milter in MODE on $HSOCK, its
# log emptied; waits for READY.
start_hm() {
	local mode=$1
	shift
	stop_hm
	: >"$HLOG"
	: >"$RUN/hm.err"
	"$SLUICE_PYTHON" "$HM" --listen "unix:$HSOCK" --mode "$mode" \
		--log "$HLOG" "$@" 2>"$RUN/hm.err" &
	HMPID=$!
	track_pid "$HMPID"
	if ! wait_for grep -q '^READY' "$RUN/hm.err"; then
		echo "Bail out! hostile_milter.py --mode $mode $* did not start: $(cat "$RUN/hm.err")"
		exit 1
	fi
}

stop_hm() {
	[ -n "$HMPID" ] || return 0
	stop_pid "$HMPID" 5 TERM
	HMPID=
}

log_lines() { wc -l <"$RUN/smtpd.log"; }
since() { tail -n +"$(($1 + 1))" "$RUN/smtpd.log"; }

# conf FILE DEFAULT_ACTION [EOM_TIMEOUT]: sluice-smtpd with the plugin
# first, then queue/maildir.
conf() {
	local f=$1 da=$2 eom=${3:-1s}
	write_conf "$f" <<EOF
local_domains sluice.test
log_level debug
max_errors 100
max_unknown_commands 100
plugin milter socket=unix:$HSOCK default_action=$da connect_timeout=1s command_timeout=1s eom_timeout=$eom retry=0
plugin queue/maildir path=$MAIL
EOF
}

# chat: one SMTP session, script on stdin, without the 250- lines of EHLO
chat() { smtp_chat --timeout 10 | grep -v '^250-'; }

# msg_script: the session used throughout.  Replies: 0 banner, 1 EHLO,
# 2 MAIL, 3 RCPT bob, 4 RCPT carol, 5 DATA, 6 end of data, 7 QUIT.
msg_script() {
	echo "EHLO client.test"
	echo "MAIL FROM:<alice@example.org>"
	echo "RCPT TO:<bob@sluice.test>"
	echo "RCPT TO:<carol@sluice.test>"
	echo "DATA"
	echo "Subject: test"
	echo "From: <alice@example.org>"
	echo ""
	echo "original body"
	echo "."
	echo "QUIT"
}
ms() { echo $(($(date +%s%N) / 1000000)); }
nth() { sed -n "$(($1 + 1))p"; }
count() { maildir_count "$MAIL"; }

# injected: every delivered file holding text a hostile filter tried to
# smuggle in (its headers, recipients, body)
INJECTED='Injected|evil@example\.org|replaced body|part one|X-Bad|X-Hostile-Outside|^x$'
injected() {
	[ -d "$MAIL" ] || return 0
	grep -rlE -- "$INJECTED" "$MAIL" 2>/dev/null
}

# hm_end: wait until the filter logged the end of session 1
hm_end() { WAIT_TIMEOUT=5 wait_for grep -q '^1 - END ' "$HLOG"; }

# after_misbehave: what the filter logged of session 1 after MISBEHAVE
after_misbehave() {
	awk '/^1 - MISBEHAVE /{ f = 1; next } f && /^1 /' "$HLOG"
}

# good_session LABEL: with the good filter behind the socket, a session
# delivers (the daemon survived and the next session connects again).
good_session() {
	local label=$1 n0 out
	kill -0 "$SLUICE_PID" 2>/dev/null
	ok $? "$label: sluice-smtpd is still running"
	start_hm good
	n0=$(count)
	out=$(msg_script | chat)
	like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok: queued as ' \
		"$label: the next session (good filter) is accepted" || diag "$out"
	is "$(($(count) - n0))" 1 "$label: ... and delivered"
}

# hostile MODE STAGE REASON_ERE [END] [WANT]: one hostile session under
# the running sluice-smtpd; STAGE is where the script misbehaves (optneg
# for the negotiate-* modes), END what it logs as the session's end (eof:
# we closed; hostile: it closed), WANT the reply at that stage.
hostile() {
	local mode=$1 stage=$2 re=$3 end=${4:-eof} want=${5:-} idx n0 from out warn da t0
	da=${DA:-tempfail}
	start_hm "$mode" --stage "$stage"
	n0=$(count)
	from=$(log_lines)
	t0=$(ms)
	out=$(msg_script | chat)
	HT=$(($(ms) - t0))
	case $stage in
	optneg) idx=0 ;;
	rcpt) idx=3 ;;
	eom) idx=6 ;;
	esac
	[ -n "$want" ] || case $stage in
	optneg) want=$GREET421 ;;
	*) want=$TEMPFAIL ;;
	esac
	is "$(nth "$idx" <<<"$out")" "$want" "$mode ($stage): '$want'" || diag "$out"
	case $stage in
	optneg)
		is "$(nth 1 <<<"$out")" '!closed' "$mode: the connection is closed after the 421"
		;;
	rcpt)
		is "$(nth 4 <<<"$out")" "$want" "$mode: the next RCPT gets default_action too (no child left)"
		;;
	esac
	is "$(($(count) - n0))" 0 "$mode: nothing delivered"
	is "$(injected)" "" "$mode: nothing injected anywhere in the Maildir"
	hm_end
	ok $? "$mode: the filter's session ended" || diag "$(cat "$HLOG")"
	warn=$(since "$from" | grep 'plugin=milter .*failed: ')
	is "$(grep -c . <<<"$warn")" 1 "$mode: one warning logged" || diag "$warn"
	like "$warn" "failed: .*($re).*; default_action=$da\$" "$mode: the warning names the reason" ||
		diag "$warn"
	grep -qE "^1 - MISBEHAVE $mode $stage\$" "$HLOG"
	ok $? "$mode: the filter did misbehave at $stage" || diag "$(cat "$HLOG")"
	is "$(after_misbehave)" "1 - END $end" \
		"$mode: nothing more of the session reached the filter (no QUIT)" ||
		diag "$(cat "$HLOG")"
	[ "${NO_GOOD:-0}" = 1 ] || good_session "$mode"
}

# ------------------------------------------------------------------ 1. every hostile mode, default_action=tempfail
conf "$RUN/t.conf" tempfail
sluice_restart_quiet "$RUN/t.conf"

hostile negotiate-version-0 optneg 'negotiation: filter answers a protocol version not offered'
hostile negotiate-version-1 optneg 'negotiation: filter answers a protocol version not offered'
hostile negotiate-version-7 optneg 'negotiation: filter answers a protocol version not offered'
hostile negotiate-actions optneg 'negotiation: filter asks for actions not offered'
hostile negotiate-short optneg 'in reply to OPTNEG: .*truncated'
hostile negotiate-continue optneg 'negotiation: answered CONTINUE, not OPTNEG'
hostile negotiate-close optneg 'closed by the milter.*OPTNEG' hostile
hostile negotiate-stall optneg 'no reply to OPTNEG within [0-9]+ ms'

hostile reply-crlf eom "REPLYCODE\\): reply line without '-' before the next"
hostile reply-lf eom 'REPLYCODE\): bare CR or LF in reply text'
hostile reply-class eom 'REPLYCODE\): enhanced status code of another class'
hostile reply-2xx eom 'REPLYCODE\): reply line without a 4xx or 5xx code'
hostile reply-mixed eom 'REPLYCODE\): reply lines with different codes'
hostile reply-nonul eom 'REPLYCODE\): string without NUL'

hostile header-crlf-name eom 'ADDHEADER with a malformed header name or value'
hostile header-crlf-value eom 'ADDHEADER with a malformed header name or value'
hostile header-lf-value eom 'ADDHEADER with a malformed header name or value'
hostile header-empty-name eom 'ADDHEADER\): empty header name'
hostile chgheader-crlf eom 'CHGHEADER with a malformed header name or value'
hostile rcpt-crlf eom 'ADDRCPT with a malformed address'
hostile replbody-not-negotiated eom 'REPLBODY without negotiating it'
hostile edit-outside-eom rcpt 'ADDHEADER in reply to RCPT \(only end of message may modify\)'

hostile oversized eom 'in reply to BODYEOB: packet too large'
hostile length-zero eom 'in reply to BODYEOB: packet length 0'
hostile unknown-reply eom 'in reply to BODYEOB: 0x5a .*unknown reply'
hostile data-on-continue eom 'CONTINUE.*data in a reply that takes none'

hostile close rcpt 'connection closed by the milter waiting for the reply to RCPT' hostile
hostile close eom 'connection closed by the milter waiting for the reply to BODYEOB' hostile
hostile close-in-replbody eom 'connection closed by the milter waiting for the reply to BODYEOB' hostile
hostile stall eom 'no reply to BODYEOB within [0-9]+ ms'
ok $((HT >= 1000 && HT <= 2500 ? 0 : 1)) "stall: given up after eom_timeout=1s ($HT ms)"
hostile quarantine-only eom 'no reply to BODYEOB within [0-9]+ ms'

# ------------------------------------------------------------------ 2. the controls (no failure)
# control MODE [ARGS...]: a well-behaved (if unusual) filter at eom; sets
# OUT, WARN (the plugin's warnings) and N (messages delivered)
control() {
	local mode=$1 n0 from t0
	shift
	start_hm "$mode" "$@"
	n0=$(count)
	from=$(log_lines)
	t0=$(ms)
	OUT=$(msg_script | chat)
	T=$(($(ms) - t0))
	N=$(($(count) - n0))
	hm_end
	WARN=$(since "$from" | grep 'plugin=milter .*failed: ')
	LOGNEW=$(since "$from")
}

control reply-good
is "$(nth 6 <<<"$OUT")" "550 5.7.1 hostile says no" "reply-good: the filter's own reply at end of data"
is "$N:$WARN" "0:" "reply-good: nothing delivered, no failure logged"
is "$(after_misbehave)" $'1 Q\n1 - END quit' "reply-good: an orderly QUIT at the end of the session"

control reply-multi
is "$(nth 6 <<<"$OUT")" "451 4.7.1 first line second line" \
	"reply-multi: the two lines joined with a space, one enhanced code"
is "$N:$WARN" "0:" "reply-multi: nothing delivered, no failure logged"

control edits-good
like "$(nth 6 <<<"$OUT")" '^250 2\.0\.0 Ok: queued as ' "edits-good: accepted"
is "$N:$WARN" "1:" "edits-good: delivered, no failure logged"
f=$(newest_file "$MAIL/new")
hdr=$(sed '/^$/q' "$f" 2>/dev/null)
grep -qx 'X-Hostile-Test: ok' <<<"$hdr"
ok $? "edits-good: the added header is delivered"
grep -qx 'Subject: changed by hostile' <<<"$hdr"
ok $? "edits-good: Subject changed"
unlike "$hdr" 'Subject: test' "edits-good: the old Subject is gone"
is "$(sed '1,/^$/d' "$f" 2>/dev/null)" "replaced body" "edits-good: the body is replaced"
grep -qE 'queued txn=.* rcpts=3' <<<"$LOGNEW"
ok $? "edits-good: the added recipient is in the transaction (rcpts=3)" ||
	diag "$(grep queued <<<"$LOGNEW")"
rm -f "$f" # its "replaced body" would trip the injected-text checks below

control progress-then-continue --delay 2
like "$(nth 6 <<<"$OUT")" '^250 2\.0\.0 Ok: queued as ' \
	"progress-then-continue (2 s, eom_timeout=1s): accepted, progress restarts the timer"
is "$N:$WARN" "1:" "progress-then-continue: delivered, no failure logged"
ok $((T >= 2000 ? 0 : 1)) "progress-then-continue: the reply waited for the filter ($T ms)"

# ------------------------------------------------------------------ 3. default_action=reject
conf "$RUN/r.conf" reject
sluice_restart_quiet "$RUN/r.conf"
DA=reject NO_GOOD=1 hostile reply-crlf eom "REPLYCODE\\): reply line without '-'" eof "550 5.5.0 Service unavailable"
DA=reject hostile close rcpt 'connection closed by the milter waiting for the reply to RCPT' hostile \
	"550 5.5.0 Service unavailable"

# ------------------------------------------------------------------ 4. default_action=accept
conf "$RUN/a.conf" accept
sluice_restart_quiet "$RUN/a.conf"
for mode in header-crlf-value rcpt-crlf chgheader-crlf close-in-replbody; do
	start_hm "$mode"
	n0=$(count)
	from=$(log_lines)
	out=$(msg_script | chat)
	like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok: queued as ' \
		"default_action=accept, $mode: the message is accepted" || diag "$out"
	is "$(($(count) - n0))" 1 "default_action=accept, $mode: delivered"
	is "$(injected)" "" "default_action=accept, $mode: without any of the hostile edits"
	f=$(newest_file "$MAIL/new")
	grep -q '^Subject: test$' "$f" && grep -qx 'original body' "$f"
	ok $? "default_action=accept, $mode: Subject and body as sent"
	grep -qE 'queued txn=.* rcpts=2' <<<"$(since "$from")"
	ok $? "default_action=accept, $mode: only the two real recipients"
	since "$from" | grep -q 'plugin=milter .*failed: .*; default_action=accept$'
	ok $? "default_action=accept, $mode: the failure is logged"
	hm_end
	is "$(after_misbehave)" "1 - END $([ "$mode" = close-in-replbody ] && echo hostile || echo eof)" \
		"default_action=accept, $mode: nothing more reached the filter"
done

# ------------------------------------------------------------------ 5. progress forever: the 10x cap
conf "$RUN/p.conf" tempfail 300ms
sluice_restart_quiet "$RUN/p.conf"
hostile progress-forever eom 'no reply to BODYEOB'
# the cap: 10 x 300 ms after the wait started, not before, not much later
ok $((HT >= 2900 && HT <= 4500 ? 0 : 1)) "progress-forever: given up at the 10x cap, 3 s ($HT ms)"
is "$(grep -c '^1 E' "$HLOG")" 1 "progress-forever: end of message was sent once"

# ------------------------------------------------------------------ 6. behind sluice-milterd
sluice_stop
stop_hm
if [ -x "$SLUICE_BUILD/sluice-milterd" ] && [ -x "$CLIENT" ]; then
	MDSOCK=$RUN/milterd.sock
	write_conf "$RUN/milterd.conf" <<EOF
log_level debug
milter_listen unix:$MDSOCK
plugin milter socket=unix:$HSOCK default_action=tempfail connect_timeout=1s command_timeout=1s eom_timeout=1s retry=0
EOF
	milterd_start "$RUN/milterd.conf"
	printf 'Subject: test\nFrom: <a@example.org>\n\noriginal body\n' >"$RUN/msg"
	for c in "header-crlf-value eom" "reply-crlf eom" "close rcpt"; do
		set -- $c
		mode=$1 stage=$2
		start_hm "$mode" --stage "$stage"
		from=$(wc -l <"$RUN/milterd.log")
		OUT=$(timeout 30 "$CLIENT" -t 10 -s "unix:$MDSOCK" "$RUN/msg" 2>"$RUN/client.err")
		RC=$?
		note "$OUT"
		is "$RC" 3 "milterd, $mode ($stage): the client sees tempfail (exit 3)" ||
			diag "$OUT$(cat "$RUN/client.err")"
		case $stage in
		rcpt) ev='rcpt <rcpt@example\.org>' ;;
		eom) ev='eom' ;;
		esac
		grep -qE "^$ev: tempfail 451 4\.7\.1( |\$)" <<<"$OUT"
		ok $? "milterd, $mode: '$ev: tempfail 451 4.7.1'" || diag "$OUT"
		unlike "$OUT" 'addheader|chgheader|insheader|addrcpt|delrcpt|chgfrom|replbody|quarantine|Injected|evil@' \
			"milterd, $mode: no injected modification reaches the MTA"
		hm_end
		is "$(after_misbehave)" "1 - END $([ "$mode" = close ] && echo hostile || echo eof)" \
			"milterd, $mode: nothing more reached the filter"
		tail -n +"$((from + 1))" "$RUN/milterd.log" | grep -q 'plugin=milter .*failed: .*default_action=tempfail'
		ok $? "milterd, $mode: the failure is logged"
	done
	start_hm good
	OUT=$(timeout 30 "$CLIENT" -t 10 -s "unix:$MDSOCK" "$RUN/msg" 2>"$RUN/client.err")
	is "$?:$(tail -n 1 <<<"$OUT")" "0:eom: continue" "milterd: still serving; a good filter's session is accepted" ||
		diag "$OUT"
	milterd_stop
	stop_hm
	san=$(grep -E -m 5 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$RUN/milterd.log")
	is "$san" "" "milterd: no sanitizer report"
else
	skip 22 "sluice-milterd or sluice-milter-client not built"
fi

done_testing
