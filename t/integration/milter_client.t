#!/bin/bash
# sluice-milter-client against a real libmilter filter (t/milter/test_milter):
# every verdict at every stage (printed line, exit status, no event after
# the filter ended its part), every edit, progress, macros as the filter
# sees them, header and body presentation, 65535-byte chunks, protocol
# bits, a UNIX socket, timeouts, protocol errors from a raw peer, and the
# -n/-j replay summary.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

CLIENT=$SLUICE_BUILD/sluice-milter-client
TM=$SLUICE_BUILD/t/milter/test_milter
[ -x "$CLIENT" ] || skip_all "$CLIENT not built"
[ -x "$TM" ] || skip_all "$TM not built"

setup_run
MPORT=$(free_port) || {
	echo "Bail out! no free port"
	exit 1
}
SOCK=inet:$MPORT@127.0.0.1
LOG=$RUN/milter.log
MPID=

# start_milter SOCKET ARGS...: a fresh test milter (and log) listening on
# SOCKET; waits until it says READY.
start_milter() {
	local sock=$1
	shift
	[ -z "$MPID" ] || stop_milter
	: >"$LOG"
	: >"$RUN/milter.err"
	"$TM" -p "$sock" -l "$LOG" "$@" 2>"$RUN/milter.err" &
	MPID=$!
	track_pid "$MPID"
	if ! wait_for grep -q '^READY' "$RUN/milter.err"; then
		echo "Bail out! test_milter $* did not start: $(cat "$RUN/milter.err")"
		exit 1
	fi
}

# SIGUSR1: the test milter exits at once (libmilter needs up to 5 s for TERM).
stop_milter() {
	stop_pid "$MPID" 10 USR1
	MPID=
}

# run_client ARGS...: OUT, ERR and RC of one bounded client run.
run_client() {
	OUT=$(timeout 30 "$CLIENT" -t 5 "$@" 2>"$RUN/client.err")
	RC=$?
	ERR=$(cat "$RUN/client.err")
}

# log_has ERE: the milter logged a matching line (waits: ABORT and QUIT get
# no reply, so their callbacks may run after the client exited).
log_has() {
	WAIT_TIMEOUT=5 wait_for grep -qE "$1" "$LOG"
}

printf 'Subject: test\nFrom: <a@example.org>\n\nbody line\n' >"$RUN/msg"

# --- every verdict at every stage -------------------------------------------
# stage, the label the client prints for it, the label of the next event
stages=(
	"connect|connect|helo"
	"helo|helo|mail <"
	"mail|mail <sender@example.org>|rcpt <"
	"rcpt|rcpt <rcpt@example.org>|data"
	"data|data|header "
	"header|header Subject|eoh"
	"eoh|eoh|body"
	"body|body|eom"
	"eom|eom|"
)
# verdict option, what the client prints, exit status; at CONNECT and HELO
# discard is undefined and ignored (as Postfix does)
verdicts=(
	"continue|continue|0"
	"accept|accept|0"
	"reject|reject|2"
	"tempfail|tempfail|3"
	"discard|discard|4"
	"reject:550 5.7.1 no thanks|reject 550 5.7.1 no thanks|2"
	"tempfail:451 4.7.1 later|tempfail 451 4.7.1 later|3"
)
for st in "${stages[@]}"; do
	IFS='|' read -r stage label next <<<"$st"
	for vd in "${verdicts[@]}"; do
		IFS='|' read -r opt word want <<<"$vd"
		start_milter "$SOCK" -r "$stage=$opt"
		run_client -s "$SOCK" "$RUN/msg"
		last=$(tail -n 1 <<<"$OUT")
		if [ "$opt" = discard ] && [[ $stage == connect || $stage == helo ]]; then
			want=0
			grep -qxF "$label: discard" <<<"$OUT" && [ "$last" = "eom: continue" ]
			ok $? "$stage=discard: printed, ignored, message goes on" ||
				diag "$OUT"
		elif [ "$opt" = continue ]; then
			grep -qxF "$label: continue" <<<"$OUT" && [ "$last" = "eom: continue" ]
			ok $? "$stage=continue: '$label: continue', message goes on" ||
				diag "$OUT"
		else
			is "$last" "$label: $word" "$stage=$opt: '$label: $word' is the last event"
		fi
		is "$RC" "$want" "$stage=$opt: exit $want" || diag "$ERR"
	done
done

# After the filter ended its part nothing more is sent (libmilter would not
# answer it), and an ABORT only where the filter is still in the message.
start_milter "$SOCK" -r "rcpt=accept"
run_client -s "$SOCK" -r one@example.org -r two@example.org "$RUN/msg"
is "$RC" 0 "accept at the first RCPT: exit 0"
! grep -q 'rcpt <two@' "$LOG" && ! grep -qE '^(data|header|eom)' "$LOG"
ok $? "accept at RCPT: no second RCPT, no DATA, no content sent"
log_has '^close'
! grep -q '^abort' "$LOG"
ok $? "accept at RCPT: no ABORT (the filter ended the message itself)"

start_milter "$SOCK" -r "rcpt=reject:550 5.1.1 unknown user"
run_client -s "$SOCK" -r one@example.org -r two@example.org "$RUN/msg"
grep -qxF 'rcpt <one@example.org>: reject 550 5.1.1 unknown user' <<<"$OUT" &&
	grep -qxF 'rcpt <two@example.org>: reject 550 5.1.1 unknown user' <<<"$OUT"
ok $? "reject at RCPT: the next RCPT still follows"
is "$RC" 2 "every recipient rejected: exit 2"
log_has '^abort'
ok $? "every recipient rejected: ABORT sent, the filter was still in the message"
! grep -qE '^(data|header|eom)' "$LOG"
ok $? "every recipient rejected: no DATA or content sent"

start_milter "$SOCK" -r "rcpt~bad=reject:550 5.1.1 no such user" \
	-r "rcpt~slow=tempfail"
run_client -s "$SOCK" -r good@example.org -r bad@example.org \
	-r slow@example.org "$RUN/msg"
grep -qxF 'rcpt <good@example.org>: continue' <<<"$OUT" &&
	grep -qxF 'rcpt <bad@example.org>: reject 550 5.1.1 no such user' <<<"$OUT" &&
	grep -qxF 'rcpt <slow@example.org>: tempfail' <<<"$OUT"
ok $? "one recipient of three accepted, one rejected, one tempfailed"
is "$(tail -n 1 <<<"$OUT"):$RC" "eom: continue:0" "the message goes on for the accepted one: exit 0"

start_milter "$SOCK" -r "rcpt~bad=reject" -r "rcpt~slow=tempfail"
run_client -s "$SOCK" -r bad@example.org -r slow@example.org "$RUN/msg"
is "$RC" 3 "recipients all refused, one with 4xx: exit 3"

start_milter "$SOCK" -r "mail=reject"
run_client -s "$SOCK" -A "$RUN/msg"
is "$RC" 2 "reject at MAIL with -A: exit 2"
! grep -qE '^rcpt' "$LOG"
ok $? "reject at MAIL: no RCPT sent"

# --- edits, progress -----------------------------------------------------------
start_milter "$SOCK" -e 'addheader X-Foo:bar' -e 'chgheader 1:Subject:new subject' \
	-e 'chgheader 2:X-Old:' -e 'insheader 0:X-Ins:v' -e 'addrcpt <x@example.net>' \
	-e 'addrcpt_par <y@example.net>:NOTIFY=NEVER' -e 'delrcpt <rcpt@example.org>' \
	-e 'chgfrom <s@example.net>:RET=HDRS' -e 'replbody new body\r\n' \
	-e 'quarantine held for review' -e 'progress 3' -r 'eom=accept'
run_client -s "$SOCK" "$RUN/msg"
is "$RC" 0 "edits then accept: exit 0"
for line in 'eom: addheader X-Foo: bar' 'eom: chgheader Subject[1]: new subject' \
	'eom: chgheader X-Old[2] (delete)' 'eom: insheader [0] X-Ins: v' \
	'eom: addrcpt <x@example.net>' 'eom: addrcpt <y@example.net> NOTIFY=NEVER' \
	'eom: delrcpt <rcpt@example.org>' 'eom: chgfrom <s@example.net> RET=HDRS' \
	'eom: replbody 10 bytes' 'eom: quarantine held for review'; do
	grep -qxF "$line" <<<"$OUT"
	ok $? "printed: $line" || diag "$OUT"
done
is "$(grep -cxF 'eom: progress' <<<"$OUT")" 3 "three PROGRESS packets printed"
is "$(tail -n 1 <<<"$OUT")" "eom: accept" "the final reply comes last"
run_client -v -s "$SOCK" "$RUN/msg"
grep -qxF 'eom: replbody 10 bytes: new body\r\n' <<<"$OUT"
ok $? "-v prints the new body" || diag "$OUT"
like "$OUT" $'^negotiate: version 6 actions 0x1ff protocol 0x[0-9a-f]+\n' \
	"-v prints the negotiated options first"

# Slow end of message: each read is bounded by -t.
start_milter "$SOCK" -d 3000
SECONDS=0
OUT=$(timeout 30 "$CLIENT" -t 1 -s "$SOCK" "$RUN/msg" 2>"$RUN/client.err")
RC=$?
is "$RC" 1 "a filter slower than -t 1 at EOM: exit 1"
like "$(cat "$RUN/client.err")" 'BODYEOB.*timed out' "the timeout is reported on stderr"
ok $((SECONDS > 5)) "gave up within a few seconds"

# PROGRESS starts each read wait again: 3 s of work, no gap of 2 s.
start_milter "$SOCK" -e 'sleep 1000' -e 'progress 1' -e 'sleep 1000' \
	-e 'progress 1' -e 'sleep 1000'
OUT=$(timeout 30 "$CLIENT" -t 2 -s "$SOCK" "$RUN/msg" 2>"$RUN/client.err")
RC=$?
is "$(grep -c '^eom: progress$' <<<"$OUT"):$(tail -n 1 <<<"$OUT"):$RC" \
	"2:eom: continue:0" "3 s at EOM with -t 2 and PROGRESS every second: accepted" ||
	diag "$(cat "$RUN/client.err")"

# --- macros, as the filter's smfi_getsymval sees them --------------------------
start_milter "$SOCK" -x '{daemon_name}' -x '{client_name}' -x '_' -x '{mail_host}' \
	-x '{rcpt_host}'
run_client -s "$SOCK" -c 192.0.2.7:4567 -H helo.example.net \
	-f 'alice@example.com SIZE=1000 BODY=8BITMIME' -r 'bob@example.net NOTIFY=NEVER' \
	-m j=mta.example.test -m client_name=client.example.com "$RUN/msg"
is "$RC" 0 "macro session: exit 0"
c=$(grep '^connect ' "$LOG")
like "$c" '^connect \[192\.0\.2\.7\] inet 192\.0\.2\.7 4567 \|' "CONNECT: [ip] as host, family 4, address and port"
like "$c" ' j=mta\.example\.test( |$)' "-m j=... overrides j at CONNECT"
like "$c" ' \{client_addr\}=192\.0\.2\.7( |$)' "{client_addr} at CONNECT"
like "$c" ' _=unknown \[192\.0\.2\.7\]( |$)' "_ at CONNECT"
like "$c" ' \{daemon_name\}=[^ ]+' "{daemon_name} at CONNECT"
like "$c" ' \{client_name\}=client\.example\.com( |$)' "-m of a macro in no list goes to CONNECT"
like "$(grep '^helo ' "$LOG")" '^helo helo\.example\.net \|' "HELO name"
m=$(grep '^mail ' "$LOG")
like "$m" '^mail <alice@example\.com> SIZE=1000 BODY=8BITMIME \|' "MAIL argv: <sender> and ESMTP parameters"
like "$m" ' i=[0-9A-F]+( |$)' "i at MAIL"
like "$m" ' \{mail_addr\}=alice@example\.com( |$)' "{mail_addr} without brackets"
like "$m" ' \{mail_host\}=example\.com( |$)' "{mail_host}"
r=$(grep '^rcpt ' "$LOG")
like "$r" '^rcpt <bob@example\.net> NOTIFY=NEVER \|' "RCPT argv: <rcpt> and ESMTP parameters"
like "$r" ' \{rcpt_addr\}=bob@example\.net( |$)' "{rcpt_addr} without brackets"
like "$r" ' \{rcpt_host\}=example\.net( |$)' "{rcpt_host}"
like "$(grep '^eom ' "$LOG")" ' i=[0-9A-F]+( |$)' "i at EOM"

run_client -s "$SOCK" -c '[::1]:2525' -m i=QUEUEID1 -f '<>' "$RUN/msg"
c=$(grep '^connect ' "$LOG" | tail -n 1)
like "$c" '^connect \[::1\] inet6 ::1 2525 \|' "CONNECT for IPv6: family 6, bare address"
like "$c" ' \{client_addr\}=IPv6:::1( |$)' "{client_addr} for IPv6 has the IPv6: prefix"
like "$(grep '^mail ' "$LOG" | tail -n 1)" '^mail <> \|.* i=QUEUEID1 .*\{mail_addr\}= ' \
	"null sender: <>, empty {mail_addr}; -m i= overrides i at every stage"
like "$(grep '^eom ' "$LOG" | tail -n 1)" ' i=QUEUEID1( |$)' "-m i= at EOM too"

# A filter's own list replaces ours for that stage.
start_milter "$SOCK" -M 'connect={client_addr}' -M 'mail=i'
run_client -s "$SOCK" "$RUN/msg"
c=$(grep '^connect ' "$LOG")
like "$c" ' \{client_addr\}=127\.0\.0\.1' "own CONNECT list: {client_addr} sent"
unlike "$c" ' j=' "own CONNECT list: j not sent"
unlike "$(grep '^mail ' "$LOG")" '\{mail_addr\}' "own MAIL list: {mail_addr} not sent"

# --- header and body presentation ------------------------------------------------
printf 'Subject:  two spaces\nX-Folded: first line\n\tsecond line\n  third\nX-Tab:\tx\nX-Empty:\n\nline one\nline two\r\nlast line without LF' >"$RUN/folded"
start_milter "$SOCK"
run_client -s "$SOCK" "$RUN/folded"
is "$RC" 0 "folded headers and an LF body: exit 0"
grep -qxF 'header Subject: two spaces |' <(sed 's/ | .*/ |/' "$LOG")
ok $? "one leading space removed, the second kept"
grep -qF 'header X-Folded:first line\n\tsecond line\n  third |' "$LOG"
ok $? "folded header: lines joined with LF, leading whitespace kept" ||
	diag "$(grep X-Folded "$LOG")"
grep -qF 'header X-Tab:\tx |' "$LOG"
ok $? "a tab after the colon is kept"
grep -qE '^header X-Empty: \|' "$LOG"
ok $? "empty header value"
grep -qF 'body 42 line one\r\nline two\r\nlast line without LF\r\n |' "$LOG"
ok $? "body: LF and CRLF line ends sent as CRLF, last line terminated" ||
	diag "$(grep '^body' "$LOG")"
is "$(grep -c '^header ' "$LOG")" 4 "four headers sent"

# 70000 bytes of body (after CRLF) in two chunks: 65535 + 4465.
{
	printf 'Subject: big\n\n'
	for i in 1 2 3 4 5 6 7; do
		printf "%09998d\n" 0
	done
} >"$RUN/big"
run_client -s "$SOCK" "$RUN/big"
is "$RC" 0 "70000-byte body: exit 0"
is "$(grep '^body ' "$LOG" | tail -n 2 | cut -d' ' -f2 | tr '\n' ' ')" "65535 4465 " \
	"70000-byte body arrives in chunks of 65535 and 4465"
is "$(grep -c '^body: continue$' <<<"$OUT")" 2 "two BODY replies printed"

# SKIP at the first body chunk: no more chunks, then EOM.
start_milter "$SOCK" -r body=skip
run_client -s "$SOCK" "$RUN/big"
is "$(grep -c '^body ' "$LOG"):$(tail -n 1 <<<"$OUT"):$RC" "1:eom: continue:0" \
	"SKIP at BODY: one chunk sent, then EOM"

# --- protocol bits: NO* events are not sent, NR_* events not awaited -------------
# 0x2 NOHELO, 0x80 NR_HDR, 0x8000 NR_RCPT, 0x80000 NR_BODY
start_milter "$SOCK" -P $((0x2 | 0x80 | 0x8000 | 0x80000))
run_client -v -s "$SOCK" -r one@example.org -r two@example.org "$RUN/big"
is "$RC" 0 "NOHELO + NR_HDR/NR_RCPT/NR_BODY: exit 0"
unlike "$OUT" $'\nhelo: (continue|accept)' "no HELO reply printed"
grep -qxF 'helo: (not sent)' <<<"$OUT"
ok $? "-v: helo not sent"
! grep -q '^helo ' "$LOG"
ok $? "the filter got no HELO"
is "$(grep -c '^rcpt ' "$LOG"):$(grep -c '^header ' "$LOG"):$(grep -c '^body ' "$LOG")" "2:1:2" \
	"RCPT, HEADER and BODY still sent"
grep -qxF 'rcpt <one@example.org>: (no reply)' <<<"$OUT" &&
	! grep -qE '^(rcpt|header|body)[^:]*: continue' <<<"$OUT"
ok $? "no reply awaited for RCPT, HEADER, BODY"
is "$(tail -n 1 <<<"$OUT")" "eom: continue" "EOM answered"

# --- UNIX socket, replay -------------------------------------------------------------
USOCK=unix:$RUN/milter.sock
start_milter "$USOCK" -e 'addheader X-Unix:yes'
run_client -s "$USOCK" "$RUN/msg"
is "$RC" 0 "UNIX socket: exit 0"
grep -qxF 'eom: addheader X-Unix: yes' <<<"$OUT" && [ "$(tail -n 1 <<<"$OUT")" = "eom: continue" ]
ok $? "UNIX socket: edit and final reply printed"
like "$(grep '^connect ' "$LOG")" '^connect \[127\.0\.0\.1\] inet 127\.0\.0\.1 0 \|' \
	"UNIX socket: CONNECT as sent"

run_client -s "$USOCK" -n 50 -j 5 "$RUN/msg"
is "$RC" 0 "-n 50 -j 5 over a UNIX socket: exit 0"
like "$OUT" '^sessions=50 ok=50 rejected=0 tempfailed=0 errors=0 seconds=[0-9.]+ sessions_per_second=[0-9.]+$' \
	"-n 50 -j 5: summary line"
is "$(grep -c '^eom ' "$LOG")" 51 "the filter saw 50 more messages"

start_milter "$SOCK" -r 'mail~rej=reject'
run_client -s "$SOCK" -n 50 -j 5 "$RUN/msg"
like "$OUT" '^sessions=50 ok=50 rejected=0 tempfailed=0 errors=0 ' "-n 50 -j 5 over TCP: summary"
run_client -s "$SOCK" -n 20 -j 3 -f rej@example.org "$RUN/msg"
like "$OUT" '^sessions=20 ok=0 rejected=20 tempfailed=0 errors=0 ' "-n 20: rejections counted"

# --- errors ----------------------------------------------------------------------
stop_milter
run_client -s "$SOCK" "$RUN/msg"
is "$RC" 1 "nothing listening: exit 1"
like "$ERR" "connect to $SOCK: Connection refused" "the failed connect is named on stderr"
run_client -s "$SOCK" -n 10 -j 2 "$RUN/msg"
like "$OUT:$RC" '^sessions=10 ok=0 rejected=0 tempfailed=0 errors=10 .*:1$' \
	"-n with nothing listening: errors=10, exit 1"

# A raw peer that breaks the protocol: 'c' instead of the 'O' answer, or a
# modification outside end of message.
fake_peer() {
	: >"$RUN/fake.out" # before the job starts: no stale READY to see
	"$SLUICE_PYTHON" - "$MPORT" "$1" >"$RUN/fake.out" 2>&1 <<'EOF' &
import socket, struct, sys
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(1)
s.settimeout(20)
print("READY", flush=True)
c, _ = s.accept()
c.settimeout(10)
def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data
c.recv(65536)
if mode == "optneg":
    c.sendall(pkt(b"c"))
else:
    c.sendall(pkt(b"O", struct.pack(">III", 6, 0x1ff, 0)))
    c.recv(65536)
    c.sendall(pkt(b"h", b"X-Early\0value\0"))
try:
    c.recv(65536)
except OSError:
    pass
EOF
	FPID=$!
	track_pid "$FPID"
	wait_for grep -q READY "$RUN/fake.out" || {
		echo "Bail out! fake peer did not start"
		exit 1
	}
}
fake_peer optneg
run_client -s "$SOCK" "$RUN/msg"
is "$RC" 1 "'c' in answer to OPTNEG: exit 1"
like "$ERR" 'negotiation: .*CONTINUE' "the negotiation failure is named on stderr"
stop_pid "$FPID" 5
fake_peer early
run_client -s "$SOCK" "$RUN/msg"
is "$RC" 1 "ADDHEADER in answer to CONNECT: exit 1"
like "$ERR" 'protocol error in reply to CONNECT: ADDHEADER outside end of message' \
	"the protocol error is named on stderr"
stop_pid "$FPID" 5

run_client -x "$RUN/msg"
is "$RC" 1 "unknown option: exit 1"
like "$ERR" "usage: " "usage on stderr"
run_client -s bogus "$RUN/msg"
is "$RC" 1 "bad -s: exit 1"

done_testing
