#!/bin/bash
# plugin milter: sluice-smtpd hosting a real libmilter filter
# (t/milter/test_milter) through "plugin milter", the MTA side of the
# milter protocol.  Every verdict at every stage as the SMTP client sees
# it, every end-of-message edit in the delivered message, a reject at end
# of message dropping the edits, a chain of two filters with a native
# plugin between them, macros (default lists, the filter's own, the
# macros_* options), protocol bits, version=, actions=, default_action for
# a filter that is down (with the retry back-off), a filter killed in the
# middle of a session and one too slow at end of message, several
# messages per session, configuration errors, and the plugin inside
# sluice-milterd driven by sluice-milter-client.
#
# Every filter listens on a UNIX socket under $RUN; its log (one line per
# callback, see the header of t/milter/test_milter.c) tells what it got.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

TM=$SLUICE_BUILD/t/milter/test_milter
SMTPD=$SLUICE_BUILD/sluice-smtpd
CLIENT=$SLUICE_BUILD/sluice-milter-client
[ -x "$TM" ] || skip_all "$TM not built"
[ -x "$SLUICE_BUILD/plugins/milter.so" ] || skip_all "plugins/milter.so not built"
[ -x "$SLUICE_BUILD/t/plugins/test_hooks.so" ] || skip_all "t/plugins/test_hooks.so not built"

setup_run
ASOCK=$RUN/a.sock
BSOCK=$RUN/b.sock
MAIL=$RUN/mail # one Maildir per recipient: $MAIL/<local part>

# ------------------------------------------------------------------ helpers
declare -A TMPID

# start_tm NAME SOCKET ARGS...: a fresh test milter NAME with an empty log
# $RUN/NAME.log, listening on SOCKET; waits until it says READY.
start_tm() {
	local n=$1 sock=$2
	shift 2
	stop_tm "$n"
	: >"$RUN/$n.log"
	: >"$RUN/$n.err"
	"$TM" -p "$sock" -l "$RUN/$n.log" "$@" 2>"$RUN/$n.err" &
	TMPID[$n]=$!
	track_pid "${TMPID[$n]}"
	if ! wait_for grep -q '^READY' "$RUN/$n.err"; then
		echo "Bail out! test_milter $n $* did not start: $(cat "$RUN/$n.err")"
		exit 1
	fi
}

# stop_tm NAME [SIGNAL]: SIGUSR1 makes the test milter exit at once.
stop_tm() {
	[ -n "${TMPID[$1]:-}" ] || return 0
	stop_pid "${TMPID[$1]}" 10 "${2:-USR1}"
	TMPID[$1]=
}

log_lines() { wc -l <"$RUN/smtpd.log"; }
# since LINES: the smtpd log after its first LINES lines
since() { tail -n +"$(($1 + 1))" "$RUN/smtpd.log"; }

# conf FILE <body: an smtpd config, the common prelude first
conf() {
	# not a pipe: write_conf picks $PORT in this shell
	write_conf "$1" < <(
		echo "local_domains sluice.test"
		echo "log_level debug"
		echo "max_errors 100"
		echo "max_unknown_commands 100"
		cat
	)
}

# chat [--timeout S]: smtp_chat, without the 250- lines of the EHLO reply
chat() {
	smtp_chat --timeout "${CHAT_TIMEOUT:-10}" "$@" | grep -v '^250-'
}

# The message used unless said otherwise.
HDRS=("Subject: test" "From: <a@example.org>")
BODY=("body line")

# msg_script FROM RCPT...: EHLO, MAIL, each RCPT, DATA, the message
# (HDRS, BODY), QUIT.  EXTRA lines (an array) go right after EHLO.
msg_script() {
	local from=$1 r
	shift
	echo "EHLO client.test"
	[ "${#EXTRA[@]}" -gt 0 ] && printf '%s\n' "${EXTRA[@]}"
	echo "MAIL FROM:<$from>"
	for r in "$@"; do
		echo "RCPT TO:<$r>"
	done
	echo "DATA"
	printf '%s\n' "${HDRS[@]}" "" "${BODY[@]}" "."
	echo "QUIT"
}
EXTRA=()

# nth N: reply line N (0 = banner) of the chat output on stdin
nth() { sed -n "$(($1 + 1))p"; }

count() { maildir_count "$MAIL/$1"; }

# events NAME: the callbacks the test milter NAME logged, space-separated,
# once it logged "close" (QUIT and ABORT get no reply: wait for them)
events() {
	WAIT_TIMEOUT=5 wait_for grep -q '^close' "$RUN/$1.log"
	cut -d' ' -f1 "$RUN/$1.log" | tr '\n' ' ' | sed 's/ $//'
}

# tm_has NAME ERE: the test milter's log gets a matching line within 5 s
tm_has() {
	WAIT_TIMEOUT=5 wait_for grep -qE -- "$2" "$RUN/$1.log"
}

# ------------------------------------------------------------------ 1. verdicts
conf "$RUN/one.conf" <<EOF
plugin milter socket=unix:$ASOCK retry=0
plugin test_hooks hook=data_post action=edit edit=add macros={mail_addr}
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/one.conf"

# The session: banner 0, EHLO 1, XFOO (unknown) 2, MAIL 3, RCPT 4, DATA 5,
# end of data 6, QUIT 7.  sluice-smtpd's own rules apply at connect: a
# refusal is the 554 greeting (then only QUIT is served), a tempfail the
# 421 greeting and close; a discard at connect or HELO discards every
# message of the session (Postfix would ignore it).  The verdict on an
# unknown command answers that command only.
declare -A IDX=([connect]=0 [helo]=1 [unknown]=2 [mail]=3 [rcpt]=4 [data]=5
	[header]=6 [eoh]=6 [body]=6 [eom]=6)
declare -A NORMAL=([0]='^220 mx\.sluice\.test ESMTP' [1]='^250 HELP$'
	[2]='^500 5\.5\.1 Command unrecognized$' [3]='^250 2\.1\.0 Ok$'
	[4]='^250 2\.1\.5 Ok$' [5]='^354 ' [6]='^250 2\.0\.0 Ok: queued as ')
# What the test milter logs when it accepts at a stage: nothing of the
# message (the connection, at connect and helo) after that event.
P='negotiate connect helo unknown mail rcpt data'
H='header header header'
declare -A ACCEPTED=([connect]='negotiate connect close'
	[helo]='negotiate connect helo close'
	[mail]='negotiate connect helo unknown mail close'
	[rcpt]='negotiate connect helo unknown mail rcpt close'
	[data]="$P close" [header]="$P header close" [eoh]="$P $H eoh close"
	[body]="$P $H eoh body close" [eom]="$P $H eoh body eom close"
	[unknown]="$P $H eoh body eom close")

EXTRA=("XFOO bar")
for stage in connect helo unknown mail rcpt data header eoh body eom; do
	i=${IDX[$stage]}
	for v in continue accept reject tempfail discard \
		'reject:550 5.7.1 custom' 'tempfail:451 4.7.1 later'; do
		start_tm a "unix:$ASOCK" -r "$stage=$v"
		n0=$(count bob)
		out=$(msg_script alice@example.org bob@sluice.test | chat)
		got=$(nth "$i" <<<"$out")
		delivered=$(($(count bob) - n0))
		# the reply, and whether the message was delivered
		case "$stage:$v" in
		connect:reject) want='^554 mx\.sluice\.test ESMTP Service refused$' ;;
		connect:tempfail) want='^421 4\.7\.0 mx\.sluice\.test Service temporarily unavailable$' ;;
		connect:reject:*) want='^554 mx\.sluice\.test ESMTP custom$' ;;
		connect:tempfail:*) want='^421 4\.7\.0 mx\.sluice\.test later$' ;;
		header:discard | eoh:discard | body:discard | eom:discard)
			want='^250 2\.0\.0 Ok$' ;;
		*:continue | *:accept | *:discard) want=${NORMAL[$i]} ;;
		*:reject) want='^550 5\.7\.1 Rejected by policy$' ;;
		*:tempfail) want='^451 4\.7\.1 Temporarily rejected by policy, try again later$' ;;
		*:reject:*) want='^550 5\.7\.1 custom$' ;;
		*:tempfail:*) want='^451 4\.7\.1 later$' ;;
		esac
		like "$got" "$want" "$stage=$v: reply '${want//\\/}'" || diag "$out"
		case "$v" in
		continue | accept) wantd=1 ;;
		*) wantd=0 ;;
		esac
		# an unknown command's verdict does not touch the message
		[ "$stage" = unknown ] && wantd=1
		is "$delivered" "$wantd" "$stage=$v: delivered $wantd"
		if [ "$v" = discard ] && [ "$stage" != unknown ]; then
			like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok$' \
				"$stage=discard: the end of data gets a plain 250, not 'queued'"
		fi
		if [ "$v" = accept ]; then
			is "$(events a)" "${ACCEPTED[$stage]}" \
				"$stage=accept: the filter gets nothing more of the message"
			f=$(newest_file "$MAIL/bob/new")
			grep -q '^X-Test-Added: yes$' "$f" 2>/dev/null
			ok $? "$stage=accept: the next plugin still ran (its header is delivered)"
		fi
		[ "$stage" = connect ] && [[ $v == tempfail* ]] &&
			is "$(tail -n 1 <<<"$out")" '!closed' "connect=$v: the connection is closed"
	done
done
EXTRA=()

# At RCPT a refusal concerns that recipient only.
start_tm a "unix:$ASOCK" -r 'rcpt~bad=reject'
n0=$(count good)
out=$(msg_script alice@example.org good@sluice.test bad@sluice.test | chat)
is "$(nth 3 <<<"$out")|$(nth 4 <<<"$out")" "250 2.1.5 Ok|550 5.7.1 Rejected by policy" \
	"rcpt~bad=reject: good accepted, bad refused"
like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok: queued' "the message is accepted for the good one"
is "$(($(count good) - n0)):$(count bad)" "1:0" "delivered to good only"
like "$(grep '^rcpt ' "$RUN/a.log" | cut -d' ' -f2 | tr '\n' ' ')" '^<good@sluice\.test> <bad@sluice\.test> $' \
	"the filter saw both RCPTs"
is "$(grep -c '^eom' "$RUN/a.log")" 1 "and the message, once"

# A 421 reply code closes the session.
start_tm a "unix:$ASOCK" -r 'mail=tempfail:421 4.3.2 going away'
out=$(msg_script alice@example.org good@sluice.test | chat)
is "$(nth 2 <<<"$out")|$(nth 3 <<<"$out")" "421 4.3.2 going away|!closed" \
	"mail=tempfail:421: MAIL gets the 421 and the connection is closed"

# ACCEPT at the first RCPT: no more RCPT, no content; both delivered.
start_tm a "unix:$ASOCK" -r 'rcpt=accept'
n0="$(count good):$(count other)"
out=$(msg_script alice@example.org good@sluice.test other@sluice.test | chat)
like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok: queued' "rcpt=accept with two recipients: accepted"
is "$(events a)" "negotiate connect helo mail rcpt close" \
	"rcpt=accept: the filter gets neither the second RCPT nor the message"
is "$(count good):$(count other)" "$((${n0%%:*} + 1)):$((${n0#*:} + 1))" "rcpt=accept: both delivered"

# DISCARD at one RCPT drops the whole message.
start_tm a "unix:$ASOCK" -r 'rcpt~bad=discard'
n0=$(count good)
out=$(msg_script alice@example.org good@sluice.test bad@sluice.test | chat)
is "$(nth 4 <<<"$out")|$(nth 6 <<<"$out")" "250 2.1.5 Ok|250 2.0.0 Ok" \
	"rcpt~bad=discard: RCPT and the message get 250"
is "$(count good):$(count bad)" "$n0:0" "rcpt~bad=discard: nobody gets the message"
is "$(events a)" "negotiate connect helo mail rcpt rcpt abort close" \
	"rcpt~bad=discard: no content for the filter, ABORT"

# A plugin before the filter answers OK at RCPT (the chain stops there):
# the filter gets the recipients it missed before DATA.
conf "$RUN/okrcpt.conf" <<EOF
plugin test_hooks hook=rcpt action=ok
plugin milter socket=unix:$ASOCK retry=0
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/okrcpt.conf"
start_tm a "unix:$ASOCK"
BODY=("..starts with a dot" "line")
out=$(msg_script alice@example.org bob@sluice.test carol@sluice.test | chat)
like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok: queued' "OK at RCPT from an earlier plugin: accepted"
is "$(events a)" "negotiate connect helo mail rcpt rcpt data header header header eoh body eom close" \
	"the filter gets both RCPTs (late, before DATA) and the message"
grep '^body ' "$RUN/a.log" | grep -qF ' .starts with a dot\r\nline\r\n |'
ok $? "the body goes dot-unstuffed, with CRLF" || diag "$(grep '^body' "$RUN/a.log")"
BODY=("body line")
sluice_restart_quiet "$RUN/one.conf"

# ------------------------------------------------------------------ 2. edits
HDRS=("Subject: test" "From: <a@example.org>" "X-Old: old" "X-Multi: one" "X-Multi: two")
start_tm a "unix:$ASOCK" -e 'addheader X-Added:added' -e 'insheader 0:X-Top:top' \
	-e 'chgheader 1:Subject:changed subject' -e 'chgheader 1:X-Old:' \
	-e 'chgheader 2:X-Multi:second' -e 'chgheader 3:X-Multi:third' \
	-e 'addrcpt <carol@sluice.test>' -e 'delrcpt <dave@sluice.test>' \
	-e 'chgfrom <new@example.net>' -e 'replbody new body\r\nline 2\r\n' \
	-e 'quarantine held for review'
b0=$(count bob)
c0=$(count carol)
n0="$b0:$c0:$(count dave)"
from=$(log_lines)
out=$(msg_script alice@example.org bob@sluice.test dave@sluice.test | chat)
like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok: queued as ' "all edits: message accepted"
is "$(count bob):$(count carol):$(count dave)" "$((b0 + 1)):$((c0 + 1)):0" \
	"addrcpt: carol got a copy; delrcpt: dave none; bob one"
f=$(newest_file "$MAIL/bob/new")
hdr=$(sed '/^$/q' "$f")
is "$(head -n 1 "$f")" "X-Top: top" "insheader 0: the new header is the first line"
like "$hdr" $'\nSubject: changed subject\n' "chgheader: Subject changed"
unlike "$hdr" 'X-Old' "chgheader with an empty value: X-Old deleted"
like "$hdr" $'\nX-Multi: one\nX-Multi: second\n' "chgheader 2: the second X-Multi changed, the first kept"
like "$hdr" $'\nX-Multi: third\n' "chgheader past the count: added"
like "$hdr" $'\nX-Added: added\n' "addheader: added"
like "$hdr" $'\nX-Multi: second\nX-Added: added\nX-Multi: third\nX-Test-Added: yes$' \
	"edits in the filter's order: addheader, then the added X-Multi; the next plugin's header last"
is "$(sed '1,/^$/d' "$f")" $'new body\nline 2' "replbody: the new body is delivered"
cmp -s "$f" "$(newest_file "$MAIL/carol/new")"
ok $? "the added recipient got the same message"
since "$from" | grep -q 'macro {mail_addr}=new@example\.net'
ok $? "chgfrom: the next plugin sees the new sender"
since "$from" | grep -q "queued txn=.* rcpts=2"
ok $? "the queue got two recipients"
since "$from" | grep -q 'plugin=milter milter=unix:[^ ]* modifications=10 body=replaced'
ok $? "the plugin logs ten modifications and the new body (quarantine included)" ||
	diag "$(since "$from" | grep modifications)"
# sluice-smtpd has no quarantine: the reason is kept on the transaction
# (sl_txn_quarantine_reason) and the message is delivered as usual.
is "$(($(count bob) - b0))" 1 "quarantine: sluice-smtpd delivers the message as usual"

# A new body of 1100 lines of 64 bytes (CRLF) comes in two REPLBODY
# packets split between a CR and its LF: delivered with LF line ends.
line=$(printf 'y%.0s' {1..62})
rb=
for ((i = 0; i < 1100; i++)); do rb+="$line\\r\\n"; done
start_tm a "unix:$ASOCK" -e "replbody $rb"
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "70400-byte replbody: accepted"
f=$(newest_file "$MAIL/bob/new")
is "$(sed '1,/^$/d' "$f" | sort | uniq -c | sed 's/^ *//')" "1100 $line" \
	"70400-byte replbody: 1100 lines, LF line ends, nothing lost at the packet boundary"
! grep -q $'\r' "$f"
ok $? "70400-byte replbody: no CR left"

# ------------------------------------------------------------------ 3. reject drops edits; delay, progress
start_tm a "unix:$ASOCK" -e 'addheader X-Added:added' -e 'addrcpt <carol@sluice.test>' \
	-e 'replbody gone\r\n' -r 'eom=reject:554 5.7.1 not this one'
n0="$(count bob):$(count carol)"
out=$(msg_script alice@example.org bob@sluice.test | chat)
is "$(nth 5 <<<"$out")" "554 5.7.1 not this one" "edits then reject at eom: the reply"
is "$(count bob):$(count carol)" "$n0" "nothing delivered, not even to the added recipient"

start_tm a "unix:$ASOCK" -d 500 -e 'progress 2' -e 'sleep 300' -e 'addheader X-Slow:yes' \
	-e 'progress 1' -e 'chgheader 1:Subject:slow'
n0=$(count bob)
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "-d 500 with progress: accepted"
f=$(newest_file "$MAIL/bob/new")
grep -q '^X-Slow: yes$' "$f" && grep -q '^Subject: slow$' "$f"
ok $? "edits made after a delay and progress are delivered"

# progress keeps a slow filter alive past eom_timeout
conf "$RUN/prog.conf" <<EOF
plugin milter socket=unix:$ASOCK retry=0 eom_timeout=1s
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/prog.conf"
start_tm a "unix:$ASOCK" -e 'sleep 600' -e 'progress 1' -e 'sleep 600' -e 'progress 1' \
	-e 'sleep 600' -e 'addheader X-Progress:yes'
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "1.8 s at eom with eom_timeout=1s and progress: accepted"
grep -q '^X-Progress: yes$' "$(newest_file "$MAIL/bob/new")"
ok $? "and its edit is delivered"

# ------------------------------------------------------------------ 4. chain
HDRS=("Subject: test" "From: <a@example.org>")
conf "$RUN/chain.conf" <<EOF
plugin milter name=A socket=unix:$ASOCK retry=0
plugin test_hooks hook=data_post action=edit edit=add
plugin milter name=B socket=unix:$BSOCK retry=0
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/chain.conf"
start_tm a "unix:$ASOCK" -r 'rcpt~bad=reject' -e 'addheader X-From-A:yes'
start_tm b "unix:$BSOCK" -e 'addheader X-From-B:yes'
n0=$(count good)
out=$(msg_script alice@example.org good@sluice.test bad@sluice.test | chat)
is "$(nth 4 <<<"$out")" "550 5.7.1 Rejected by policy" "chain: A refuses bad"
like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok: queued' "chain: the message is accepted"
events b >/dev/null
is "$(grep '^rcpt ' "$RUN/b.log" | cut -d' ' -f2 | tr '\n' ' ')" "<good@sluice.test> " \
	"chain: B never sees the RCPT that A refused"
grep -q '^header X-From-A:yes ' "$RUN/b.log"
ok $? "chain: B sees the header A added" || diag "$(grep '^header' "$RUN/b.log")"
grep -q '^header X-Test-Added:yes ' "$RUN/b.log"
ok $? "chain: B sees the header the native plugin between them added"
! grep -q '^header X-From-B' "$RUN/a.log"
ok $? "chain: A does not see B's header"
f=$(newest_file "$MAIL/good/new")
like "$(sed '/^$/q' "$f" | grep '^X-' | tr '\n' ' ')" '^X-From-A: yes X-Test-Added: yes X-From-B: yes $' \
	"chain: the edits of A, the plugin and B, in chain order"

start_tm a "unix:$ASOCK" -r 'mail=accept'
start_tm b "unix:$BSOCK" -e 'addheader X-From-B:yes'
out=$(msg_script alice@example.org good@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "chain: A accepts at MAIL: message accepted"
is "$(events b)" "negotiate connect helo mail rcpt data header header header header eoh body eom close" \
	"chain: A's accept does not stop B"
grep -q '^X-From-B: yes$' "$(newest_file "$MAIL/good/new")"
ok $? "chain: B's edit is delivered after A's accept"

start_tm a "unix:$ASOCK" -r 'eom=reject'
start_tm b "unix:$BSOCK"
out=$(msg_script alice@example.org good@sluice.test | chat)
is "$(nth 5 <<<"$out")" "550 5.7.1 Rejected by policy" "chain: A rejects at eom"
is "$(events b)" "negotiate connect helo mail rcpt data abort close" \
	"chain: B gets no content of a message A refused, only ABORT"

# ------------------------------------------------------------------ 5. macros
conf "$RUN/mac.conf" <<EOF
plugin milter socket=unix:$ASOCK retry=0
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/mac.conf"
start_tm a "unix:$ASOCK" -x '{daemon_name}' -x _ -x v -x '{mail_host}' -x '{rcpt_host}'
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "macros: message accepted"
events a >/dev/null
c=$(grep '^connect ' "$RUN/a.log")
like "$c" '^connect \[127\.0\.0\.1\] inet 127\.0\.0\.1 [0-9]+ \|' "CONNECT: [ip], family, address, port"
like "$c" ' j=mx\.sluice\.test( |$)' "j at CONNECT"
like "$c" ' _=unknown \[127\.0\.0\.1\]( |$)' "_ at CONNECT"
like "$c" ' v=sluice( |$)' "v at CONNECT"
like "$c" ' \{client_addr\}=127\.0\.0\.1( |$)' "{client_addr} at CONNECT"
like "$c" ' \{daemon_name\}=mx\.sluice\.test( |$)' "{daemon_name} at CONNECT"
m=$(grep '^mail ' "$RUN/a.log")
like "$m" ' \{mail_addr\}=alice@example\.org( |$)' "{mail_addr} at MAIL"
like "$m" ' \{mail_host\}=example\.org( |$)' "{mail_host} at MAIL"
r=$(grep '^rcpt ' "$RUN/a.log")
like "$r" ' i=[0-9A-F]+\.1( |$)' "i at RCPT"
like "$r" ' \{rcpt_addr\}=bob@sluice\.test( |$)' "{rcpt_addr} at RCPT"
like "$r" ' \{rcpt_host\}=sluice\.test( |$)' "{rcpt_host} at RCPT"
like "$(grep '^eom ' "$RUN/a.log")" ' i=[0-9A-F]+\.1( |$)' "i at EOM"
like "$(grep '^data ' "$RUN/a.log")" ' i=[0-9A-F]+\.1( |$)' "i at DATA"

# the filter's own list replaces ours for that stage
start_tm a "unix:$ASOCK" -M 'connect=_' -M 'rcpt={rcpt_host}' -x _ -x '{rcpt_host}'
out=$(msg_script alice@example.org bob@sluice.test | chat)
events a >/dev/null
c=$(grep '^connect ' "$RUN/a.log")
like "$c" ' _=unknown \[127\.0\.0\.1\]' "own CONNECT list: _ sent"
unlike "$c" ' j=' "own CONNECT list: j not sent"
r=$(grep '^rcpt ' "$RUN/a.log")
like "$r" ' \{rcpt_host\}=sluice\.test' "own RCPT list: {rcpt_host} sent"
unlike "$r" '\{rcpt_addr\}|i=' "own RCPT list: {rcpt_addr} and i not sent"

# macros_rcpt= changes what RCPT carries
conf "$RUN/mac2.conf" <<EOF
plugin milter socket=unix:$ASOCK retry=0 macros_rcpt={rcpt_host},{rcpt_mailer} macros_connect=j
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/mac2.conf"
start_tm a "unix:$ASOCK" -x '{rcpt_host}' -x '{rcpt_mailer}' -x v
out=$(msg_script alice@example.org bob@sluice.test | chat)
events a >/dev/null
r=$(grep '^rcpt ' "$RUN/a.log")
like "$r" ' \{rcpt_host\}=sluice\.test \{rcpt_mailer\}=smtp$' "macros_rcpt=: {rcpt_host} and {rcpt_mailer} sent" ||
	diag "$r"
unlike "$r" '\{rcpt_addr\}|i=' "macros_rcpt=: {rcpt_addr} and i no longer sent"
unlike "$(grep '^connect ' "$RUN/a.log")" ' v=' "macros_connect=j: v not sent"

# ------------------------------------------------------------------ 6. protocol bits, version, actions
sluice_restart_quiet "$RUN/mac.conf"
# 0x20 NOHDRS, 0x8000 NR_RCPT
start_tm a "unix:$ASOCK" -P $((0x20 | 0x8000)) -e 'addheader X-Nohdrs:yes'
n0=$(count bob)
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "NOHDRS + NR_RCPT: accepted"
is "$(events a)" "negotiate connect helo mail rcpt data eoh body eom close" \
	"NOHDRS: no header callbacks; the rest as usual"
is "$(($(count bob) - n0))" 1 "NOHDRS + NR_RCPT: delivered"
grep -q '^X-Nohdrs: yes$' "$(newest_file "$MAIL/bob/new")"
ok $? "NOHDRS: its edit still applies"

# SKIP at the first body chunk: no more chunks, then EOM
BODY=()
line=$(printf '%0998d' 0)
for ((i = 0; i < 70; i++)); do BODY+=("$line"); done
start_tm a "unix:$ASOCK" -r body=skip -e 'addheader X-Skipped:yes'
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "SKIP at body: accepted"
is "$(events a | grep -o 'body.*')" "body eom close" "SKIP at body: one chunk, then eom"
grep -q '^X-Skipped: yes$' "$(newest_file "$MAIL/bob/new")"
ok $? "SKIP at body: the eom edit is delivered"
start_tm a "unix:$ASOCK"
out=$(msg_script alice@example.org bob@sluice.test | chat)
is "$(events a | grep -o 'body.*')" "body body body eom close" "without SKIP: 70000 bytes (CRLF) in three chunks"
BODY=("body line")

conf "$RUN/v2.conf" <<EOF
plugin milter socket=unix:$ASOCK retry=0 version=2 actions=add_headers protocol=none
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/v2.conf"
start_tm a "unix:$ASOCK" -e 'addheader X-V2:yes' -e 'chgheader 1:Subject:no' -P $((0x20 | 0x1))
EXTRA=("XFOO bar")
from=$(log_lines)
out=$(msg_script alice@example.org bob@sluice.test | chat)
EXTRA=()
like "$(nth 6 <<<"$out")" '^250 2\.0\.0 Ok: queued' "version=2 actions=add_headers: accepted"
is "$(events a | sed 's/ edit / /')" "negotiate connect helo mail rcpt header header header eoh body eom close" \
	"version=2: no DATA and no UNKNOWN sent; protocol=none: NOCONNECT, NOHDRS not granted"
grep -qx 'edit 2 failed' "$RUN/a.log"
ok $? "actions=add_headers: the filter cannot change a header (smfi_chgheader fails)"
like "$(head -n 1 "$RUN/a.log")" '^negotiate actions=0x1 ' "actions=add_headers: only ADDHDRS offered"
# (libmilter shows a filter its defaults when the MTA offers no protocol bit)
since "$from" | grep -q 'negotiated version=2 actions=0x1 protocol=0x0$'
ok $? "version=2 actions=add_headers protocol=none: negotiated as offered"
since "$from" | grep -q 'asked for protocol bits 0x21 not offered; ignored'
ok $? "protocol=none: the bits the filter asked for are ignored, with a notice"
f=$(newest_file "$MAIL/bob/new")
grep -q '^X-V2: yes$' "$f" && grep -q '^Subject: test$' "$f"
ok $? "actions=add_headers: the header added, the Subject not changed"

# ------------------------------------------------------------------ 7. default_action, back-off
stop_tm a
stop_tm b
rm -f "$ASOCK"
for da in tempfail accept reject; do
	conf "$RUN/da-$da.conf" <<EOF
plugin milter socket=unix:$ASOCK default_action=$da retry=0
plugin queue/maildir path=$MAIL/%l
EOF
	sluice_restart_quiet "$RUN/da-$da.conf"
	n0=$(count bob)
	from=$(log_lines)
	out=$(msg_script alice@example.org bob@sluice.test | chat)
	case $da in
	tempfail)
		is "$(nth 0 <<<"$out")" "421 4.7.0 mx.sluice.test Service unavailable - try again later" \
			"down, default_action=tempfail: 421 at connect"
		is "$(tail -n 1 <<<"$out")" '!closed' "down, default_action=tempfail: connection closed"
		;;
	accept)
		like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "down, default_action=accept: accepted"
		;;
	reject)
		like "$(nth 0 <<<"$out")" '^554 mx\.sluice\.test ESMTP Service unavailable$' \
			"down, default_action=reject: 554 greeting"
		like "$(nth 2 <<<"$out")" '^5[0-9][0-9] ' "down, default_action=reject: MAIL refused"
		;;
	esac
	wantd=0
	[ $da = accept ] && wantd=1
	is "$(($(count bob) - n0))" "$wantd" "down, default_action=$da: delivered $wantd"
	since "$from" | grep -q "plugin=milter milter=unix:$ASOCK failed: connect: .*; default_action=$da"
	ok $? "down, default_action=$da: the failure is logged"
done

conf "$RUN/retry.conf" <<EOF
plugin milter socket=unix:$ASOCK default_action=accept retry=2s
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/retry.conf"
from=$(log_lines)
out=$(msg_script alice@example.org bob@sluice.test | chat)
since "$from" | grep -q 'failed: connect: .*(next try in 2000 ms)'
ok $? "retry=2s: a failed connect backs off 2000 ms"
SECONDS=0
start_tm a "unix:$ASOCK"
from=$(log_lines)
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "within the back-off: accepted (default_action=accept)"
since "$from" | grep -q 'failed: down; next try in [0-9]* ms'
ok $? "within the back-off: 'down; next try' logged"
[ ! -s "$RUN/a.log" ]
ok $? "within the back-off: no connect attempt (the filter, up, saw nothing)"
[ "$SECONDS" -lt 2 ] || diag "the back-off window may have passed: $SECONDS s"
sleep 2.1
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "after the back-off: accepted"
like "$(events a)" '^negotiate connect .* eom close$' "after the back-off: the filter is used again"

# the back-off doubles while connects keep failing, and starts again from
# retry= after a success
conf "$RUN/retry2.conf" <<EOF
plugin milter socket=unix:$ASOCK default_action=accept retry=500ms
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/retry2.conf"
stop_tm a
rm -f "$ASOCK"
backoffs=
for pause in 0.6 1.1; do
	from=$(log_lines)
	out=$(msg_script alice@example.org bob@sluice.test | chat)
	backoffs+="$(since "$from" | grep -o 'failed: connect: .*(next try in [0-9]* ms)' | grep -o '[0-9]* ms') "
	sleep "$pause"
done
is "$backoffs" "500 ms 1000 ms " "retry=500ms: two failed connects back off 500 ms, then 1000 ms"
start_tm a "unix:$ASOCK"
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(events a)" '^negotiate connect .* eom close$' "the filter is back: used"
stop_tm a
rm -f "$ASOCK"
from=$(log_lines)
out=$(msg_script alice@example.org bob@sluice.test | chat)
since "$from" | grep -q 'failed: connect: .*(next try in 500 ms)'
ok $? "after a success the back-off starts again from 500 ms"

# ------------------------------------------------------------------ 8. killed mid-session
sluice_restart_quiet "$RUN/one.conf"
start_tm a "unix:$ASOCK"
KPID=${TMPID[a]}
disown "$KPID" # no "Killed" notice from bash
(
	WAIT_TIMEOUT=5 wait_for grep -q '^mail ' "$RUN/a.log" && kill -KILL "$KPID"
) &
killer=$!
out=$({
	echo "EHLO client.test"
	echo "MAIL FROM:<alice@example.org>"
	echo "!sleep 1"
	echo "RCPT TO:<bob@sluice.test>"
	echo "RCPT TO:<carol@sluice.test>"
	echo "QUIT"
} | chat)
wait "$killer"
is "$(nth 3 <<<"$out")" "451 4.7.1 Service unavailable - try again later" \
	"filter killed after MAIL: RCPT gets default_action (tempfail)"
is "$(nth 4 <<<"$out")" "451 4.7.1 Service unavailable - try again later" \
	"and so does every later RCPT of the session"
grep -q "plugin=milter milter=unix:$ASOCK failed: .*default_action=tempfail" "$RUN/smtpd.log"
ok $? "the failure is logged"
TMPID[a]=
start_tm a "unix:$ASOCK"
n0=$(count bob)
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "restarted filter: the next session works"
is "$(($(count bob) - n0))" 1 "and delivers"

# ------------------------------------------------------------------ 9. stall at eom
conf "$RUN/stall.conf" <<EOF
plugin milter socket=unix:$ASOCK retry=0 eom_timeout=1s
plugin queue/maildir path=$MAIL/%l
EOF
sluice_restart_quiet "$RUN/stall.conf"
start_tm a "unix:$ASOCK" -d 3000 -e 'addheader X-Stalled:yes'
n0=$(count bob)
from=$(log_lines)
SECONDS=0
out=$(msg_script alice@example.org bob@sluice.test | chat)
t=$SECONDS
is "$(nth 5 <<<"$out")" "451 4.7.1 Service unavailable - try again later" \
	"3 s at eom with eom_timeout=1s: 451 at end of data"
ok $((t >= 3)) "given up before the filter answered ($t s)"
is "$(($(count bob) - n0))" 0 "nothing delivered"
since "$from" | grep -q 'failed: no reply to BODYEOB'
ok $? "'no reply to BODYEOB' logged" || diag "$(since "$from" | grep milter)"

# The client leaves while the filter works at eom: nothing breaks.
start_tm a "unix:$ASOCK" -d 2000
n0=$(count bob)
out=$(msg_script alice@example.org bob@sluice.test | sed '$d' | CHAT_TIMEOUT=0.5 chat)
like "$out" '!timeout' "a client that gives up at the end of data"
sleep 2
kill -0 "$SLUICE_PID"
ok $? "sluice-smtpd survives a client gone while the filter worked"
start_tm a "unix:$ASOCK"
out=$(msg_script alice@example.org bob@sluice.test | chat)
like "$(nth 5 <<<"$out")" '^250 2\.0\.0 Ok: queued' "and the next session works"
is "$(($(count bob) - n0))" 1 "only the message of the second session is delivered"
stop_tm a

# ------------------------------------------------------------------ 10. several messages per session
sluice_restart_quiet "$RUN/one.conf"
start_tm a "unix:$ASOCK" -e 'addheader X-Each:yes'
n0=$(count bob)
out=$({
	echo "EHLO client.test"
	for s in first second; do
		echo "MAIL FROM:<$s@example.org>"
		echo "RCPT TO:<bob@sluice.test>"
		echo "DATA"
		echo "Subject: $s"
		echo ""
		echo "$s body"
		echo "."
	done
	echo "MAIL FROM:<third@example.org>"
	echo "RCPT TO:<bob@sluice.test>"
	echo "RSET"
	echo "MAIL FROM:<fourth@example.org>"
	echo "RCPT TO:<bob@sluice.test>"
	echo "DATA"
	echo "Subject: fourth"
	echo ""
	echo "."
	echo "QUIT"
} | chat)
is "$(printf '%s\n' "$out" | reply_codes)" "220 250 250 250 354 250 250 250 354 250 250 250 250 250 250 354 250 221 closed" \
	"three messages and an RSET in one session: every reply as expected"
is "$(($(count bob) - n0))" 3 "three messages delivered"
ev=$(events a)
is "$ev" "negotiate connect helo mail rcpt data header header eoh body eom mail rcpt data header header eoh body eom mail rcpt abort mail rcpt data header header eoh eom close" \
	"the filter sees each message, and ABORT for the RSET"
like "$(grep '^mail ' "$RUN/a.log" | cut -d' ' -f2 | tr '\n' ' ')" '^<first@example\.org> <second@example\.org> <third@example\.org> <fourth@example\.org> $' \
	"each MAIL once, in order"
n=0
for f in $(ls -1tr "$MAIL/bob/new" | tail -n 3); do
	grep -q '^X-Each: yes$' "$MAIL/bob/new/$f" && n=$((n + 1))
done
is "$n" 3 "each message got its edit"

# ------------------------------------------------------------------ 11. configuration errors
cfg_err() {
	conf "$RUN/bad.conf" <<EOF
plugin milter $1
plugin queue/maildir path=$MAIL/%l
EOF
	"$SMTPD" -t -c "$RUN/bad.conf" 2>&1
}
for c in "|socket= is required" \
	"socket=bogus|socket bogus: expected inet:" \
	"socket=unix:$ASOCK actions=nonsense|actions: unknown name" \
	"socket=unix:$ASOCK protocol=nonsense|protocol: unknown or unsupported name" \
	"socket=unix:$ASOCK version=7|version: value 7 out of range 2\\.\\.6" \
	"socket=unix:$ASOCK version=1|version: value 1 out of range" \
	"socket=unix:$ASOCK default_action=maybe|default_action: invalid value 'maybe'" \
	"socket=unix:$ASOCK eom_timeout=soon|eom_timeout: invalid duration" \
	"socket=unix:$ASOCK protocol=rcpt_rej|protocol: unknown or unsupported" \
	"socket=inet:127.0.0.1:99999|socket"; do
	args=${c%%|*}
	want=${c#*|}
	out=$(cfg_err "$args")
	rc=$?
	line=$(grep -n '^plugin milter' "$RUN/bad.conf" | cut -d: -f1)
	is "$rc" 1 "-t with 'plugin milter $args': exit 1" || {
		diag "$out"
	}
	like "$out" "bad\\.conf:$line: plugin milter: ${want}" "... names bad.conf:$line and '$want'"
done
conf "$RUN/good.conf" <<EOF
plugin milter socket=inet:127.0.0.1:8891 default_action=reject connect_timeout=2s command_timeout=3s eom_timeout=1m retry=0 version=4 actions=add_headers,change_headers protocol=nohdrs,skip macros_connect=j,{client_addr}
plugin milter name=second socket=inet:8892@127.0.0.1
plugin queue/maildir path=$MAIL/%l
EOF
out=$("$SMTPD" -t -c "$RUN/good.conf" 2>&1)
is "$?" 0 "-t with every option set: exit 0" || diag "$out"

# ------------------------------------------------------------------ 12. behind sluice-milterd
sluice_stop
if [ -x "$SLUICE_BUILD/sluice-milterd" ] && [ -x "$CLIENT" ]; then
	MDSOCK=$RUN/milterd.sock
	write_conf "$RUN/milterd.conf" <<EOF
log_level debug
milter_listen unix:$MDSOCK
plugin milter socket=unix:$ASOCK retry=0
EOF
	start_tm a "unix:$ASOCK" -r 'rcpt~bad=reject:550 5.1.1 no such user' \
		-e 'addheader X-Behind:milterd' -e 'quarantine held'
	milterd_start "$RUN/milterd.conf"
	printf 'Subject: hi\nFrom: <a@example.org>\n\nbody\n' >"$RUN/msg"
	OUT=$(timeout 30 "$CLIENT" -t 10 -s "unix:$MDSOCK" -r good@example.org \
		-r bad@example.org "$RUN/msg" 2>"$RUN/client.err")
	RC=$?
	grep -qxF 'rcpt <bad@example.org>: reject 550 5.1.1 no such user' <<<"$OUT"
	ok $? "milterd: the hosted filter's RCPT reject reaches the client" || diag "$OUT"
	grep -qxF 'rcpt <good@example.org>: continue' <<<"$OUT"
	ok $? "milterd: the other recipient continues"
	grep -qxF 'eom: addheader X-Behind: milterd' <<<"$OUT"
	ok $? "milterd: the hosted filter's addheader reaches the client"
	grep -qxF 'eom: quarantine held' <<<"$OUT"
	ok $? "milterd: the hosted filter's quarantine reaches the client"
	is "$(tail -n 1 <<<"$OUT"):$RC" "eom: continue:0" "milterd: the message is accepted"
	events a >/dev/null
	is "$(grep '^rcpt ' "$RUN/a.log" | cut -d' ' -f2 | tr '\n' ' ')" "<good@example.org> <bad@example.org> " \
		"milterd: the hosted filter saw both recipients"
	like "$(grep '^connect ' "$RUN/a.log")" ' \{client_addr\}=127\.0\.0\.1( |$)' \
		"milterd: {client_addr} reaches the hosted filter"
	like "$(grep '^mail ' "$RUN/a.log")" ' \{mail_addr\}=sender@example\.org( |$)' \
		"milterd: {mail_addr} reaches the hosted filter"

	start_tm a "unix:$ASOCK" -r 'eom=reject:554 5.7.1 no' -e 'addheader X-Dropped:yes'
	OUT=$(timeout 30 "$CLIENT" -t 10 -s "unix:$MDSOCK" "$RUN/msg" 2>"$RUN/client.err")
	RC=$?
	is "$(tail -n 1 <<<"$OUT"):$RC" "eom: reject 554 5.7.1 no:2" "milterd: a reject at eom reaches the client"
	! grep -q 'X-Dropped' <<<"$OUT"
	ok $? "milterd: the rejected message's edit is not reported"
	milterd_stop
else
	skip 10 "sluice-milterd or sluice-milter-client not built"
fi

done_testing
