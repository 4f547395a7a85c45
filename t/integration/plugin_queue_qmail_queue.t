#!/bin/bash
# plugin queue/qmail-queue under sluice-smtpd, with t/fake-qmail-queue.sh as
# the program: the message (our Received: first, LF line ends, dot-stuffing
# undone) and the envelope (F sender NUL, T rcpt NUL ..., NUL) arrive
# byte-exact, also for the null sender; every class of exit code gets its
# reply (0 -> 250, 11/31/unlisted 11..40 -> 554, 51/71/81/91/unlisted ->
# 451); exit 0 without reading the message, death by a signal, a hang past
# timeout= (killed), and a program that cannot be run all get 451 with a log
# line; env= reaches the program; a missing, relative or non-executable
# program, or a bad env= item, stops start-up with file:line.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

[ -f "$SLUICE_BUILD/plugins/queue/qmail-queue.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/queue/qmail-queue.so)"
plan 52
setup_run
BIN=$SLUICE_BUILD/sluice-smtpd
export QQ_DIR=$RUN/qq
mkdir -p "$QQ_DIR"
# a copy we may chmod
QQ=$RUN/qmail-queue
cp "$SLUICE_SRC/t/fake-qmail-queue.sh" "$QQ"
chmod 755 "$QQ"
LOG=$RUN/smtpd.log

# send FROM RCPT...: one message; prints the whole chat
send() {
	local from=$1 r
	shift
	{
		echo "EHLO client.test"
		echo "MAIL FROM:<$from>"
		for r in "$@"; do
			echo "RCPT TO:<$r>"
		done
		echo "DATA"
		echo "From: alice@example.org"
		echo "Subject: qmail-queue test"
		echo ""
		echo "line one"
		echo "..dot-stuffed line"
		echo "."
		echo "QUIT"
	} | smtp_chat
}

# act ACTION: what the fake does next; clears what it saved
act() {
	rm -f "$QQ_DIR"/message.* "$QQ_DIR"/envelope.* "$QQ_DIR"/env.*
	echo "$1" >"$QQ_DIR/action"
}

# reply_for ACTION: the final reply when the fake does ACTION
reply_for() {
	act "$1"
	send alice@example.org bob@sluice.test | final_reply
}

write_conf "$RUN/qq.conf" <<EOF
local_domains sluice.test
plugin queue/qmail-queue program=$QQ timeout=2s env=QQ_EXTRA=hello,QQ_DIR=$QQ_DIR
EOF
sluice_start "$RUN/qq.conf"

# --- message and envelope, byte-exact -------------------------------------------
act "exit 0"
out=$(send alice@example.org bob@sluice.test carol@sluice.test dave@sluice.test)
like "$(final_reply <<<"$out")" '^250 2\.0\.0 Ok: queued as [^ ]+ via qmail-queue$' \
	"exit 0: 250 2.0.0 Ok: queued as ID via qmail-queue"
id=$(final_reply <<<"$out" | sed 's/.* queued as \([^ ]*\) .*/\1/')
msg=$(ls "$QQ_DIR"/message.* 2>/dev/null)
env=$(ls "$QQ_DIR"/envelope.* 2>/dev/null)
printf 'Falice@example.org\0Tbob@sluice.test\0Tcarol@sluice.test\0Tdave@sluice.test\0\0' >"$RUN/env.want"
cmp -s "$env" "$RUN/env.want"
ok $? "the envelope on fd 1: F sender NUL, T rcpt NUL for three recipients, a final NUL"
printf 'From: alice@example.org\nSubject: qmail-queue test\n\nline one\n.dot-stuffed line\n' >"$RUN/msg.want"
strip_received "$msg" >"$RUN/msg.got"
cmp -s "$RUN/msg.got" "$RUN/msg.want"
ok $? "the message on fd 0: LF line ends, dot-stuffing undone"
rcv=$(first_received "$msg")
like "$rcv" "^Received: from client\.test \(unknown \[127\.0\.0\.1\]\) by mx\.sluice\.test \(sluice\) with ESMTP id $id;" \
	"... after our Received: header, first"
grep -q "plugin=queue/qmail-queue verdict=ok txn=$id exit=0 pid=[0-9]" "$LOG"
ok $? "exit 0 is logged with the txn id and the pid"

act "exit 0"
out=$(send "" bob@sluice.test)
like "$(final_reply <<<"$out")" '^250 ' "the null sender: 250"
printf 'F\0Tbob@sluice.test\0\0' >"$RUN/env.want"
cmp -s "$(ls "$QQ_DIR"/envelope.*)" "$RUN/env.want"
ok $? "... its envelope is F NUL, then the recipient"

act "env QQ_EXTRA"
reply_for "env QQ_EXTRA" >/dev/null
is "$(cat "$QQ_DIR"/env.* 2>/dev/null)" hello "env= reaches the program's environment"

# --- exit codes ---------------------------------------------------------------------
check_exit() {
	local code=$1 want=$2 meaning=$3 verdict=$4
	is "$(reply_for "exit $code")" "$want" "exit $code: $want"
	grep -qF "verdict=$verdict txn=" "$LOG" &&
		grep -q "exit=$code pid=[0-9]* meaning=\"$meaning\"" "$LOG"
	ok $? "exit $code is logged with its meaning (verdict=$verdict)"
}
check_exit 11 "554 5.1.3 Address too long" "Address too long" deny
check_exit 31 "554 5.3.0 Mail server permanently rejected the message" \
	"Mail server permanently rejected the message" deny
check_exit 51 "451 4.3.0 Out of memory" "Out of memory" denysoft
check_exit 53 "451 4.3.0 Write error, e.g. disk full" "Write error, e.g. disk full" denysoft
check_exit 71 "451 4.3.0 Mail server temporarily rejected the message" \
	"Mail server temporarily rejected the message" denysoft
check_exit 74 "451 4.4.2 Communication with mail server failed" \
	"Communication with mail server failed" denysoft
check_exit 81 "451 4.3.0 Internal bug" "Internal bug" denysoft
check_exit 91 "451 4.3.0 Envelope format error" "Envelope format error" denysoft
check_exit 20 "554 5.3.0 Permanent queue error" "Permanent queue error" deny
check_exit 100 "451 4.3.0 Temporary queue error" "Temporary queue error" denysoft

act "stderr 71 cannot reach the \"hub\""
send alice@example.org bob@sluice.test >/dev/null
grep -q "exit=71 .* stderr=\"cannot reach the 'hub'\"" "$LOG"
ok $? "what the program says on stderr is logged with its exit code"

# --- the program misbehaves -----------------------------------------------------------
# exit 0 without reading: only certain when the message outgrows the pipe
act "noread 0"
{
	echo "EHLO client.test"
	echo "MAIL FROM:<alice@example.org>"
	echo "RCPT TO:<bob@sluice.test>"
	echo "DATA"
	echo "Subject: big"
	echo ""
	for ((i = 0; i < 4000; i++)); do
		echo "a body line of about eighty characters, to fill the pipe to the program ....."
	done
	echo "."
	echo "QUIT"
} >"$RUN/big.chat"
is "$(smtp_chat <"$RUN/big.chat" | final_reply)" \
	"451 4.3.0 Queue program exited 0 without reading the whole message" \
	"exit 0 without reading a 300 KB message: 451 4.3.0"
grep -q 'verdict=denysoft txn=[^ ]* exit=0 pid=[0-9]* meaning="Queue program exited 0 without reading the whole message" unread=yes' "$LOG"
ok $? "... logged with unread=yes"

is "$(reply_for "signal TERM")" "451 4.3.0 Queue program crashed, try again later" \
	"killed by a signal: 451 4.3.0"
grep -q 'verdict=denysoft txn=[^ ]* reason=signal signal=SIGTERM pid=' "$LOG"
ok $? "... the log line names the signal"

is "$(reply_for hang)" "451 4.3.0 Queue program timed out, try again later" \
	"a program that hangs past timeout=2s: 451 4.3.0"
line=$(grep 'reason=timeout timeout_ms=2000 pid=' "$LOG" | tail -n 1)
like "$line" 'signal=SIGKILL' "... logged, killed with SIGKILL"
pid=$(sed -n 's/.* pid=\([0-9]*\).*/\1/p' <<<"$line")
[ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null
ok $? "... and the program (pid $pid) is gone"

chmod 644 "$QQ"
is "$(reply_for "exit 0")" "451 4.3.0 Queue program unavailable, try again later" \
	"a program that cannot be run any more: 451 4.3.0"
grep -q "verdict=denysoft txn=[^ ]* error=\"cannot run $QQ: Permission denied\"" "$LOG"
ok $? "... logged with the errno"
chmod 755 "$QQ"
like "$(reply_for "exit 0")" '^250 ' "runnable again: 250"

# the session goes on after a refusal, and a second message in it is queued
act "exit 0"
out=$(
	{
		echo "EHLO client.test"
		for r in one two; do
			echo "MAIL FROM:<alice@example.org>"
			echo "RCPT TO:<$r@sluice.test>"
			echo "DATA"
			echo "Subject: $r"
			echo ""
			echo "."
		done
		echo "QUIT"
	} | smtp_chat | reply_codes
)
like "$out" '^220 250 250 250 354 250 250 250 354 250 221( closed)?$' "two messages in one session: both queued"
is "$(ls "$QQ_DIR"/envelope.* | wc -l)" 2 "... one program run each"
sluice_stop

# --- start-up errors: file:line -------------------------------------------------
# bad_start OPTIONS DESC REGEX: -t and a real start both refuse the line
bad_start() {
	local opts=$1 desc=$2 re=$3 err rc
	write_conf "$RUN/bad.conf" <<EOF
local_domains sluice.test
plugin queue/qmail-queue $opts
EOF
	err=$("$BIN" -t -c "$RUN/bad.conf" 2>&1 >/dev/null)
	rc=$?
	is "$rc" 1 "-t: $desc: exit 1"
	like "$err" "^$RUN/bad.conf:7: plugin queue/qmail-queue: $re" "-t: $desc: file:line"
}
bad_start "program=$RUN/missing" "a missing program" \
	"program: $RUN/missing: No such file or directory$"
bad_start "program=qmail-queue" "a relative program path" \
	"program: qmail-queue: not an absolute path$"
bad_start "program=$RUN/qq.conf" "a program that is not executable" \
	"program: $RUN/qq.conf: not an executable file$"
bad_start "program=$QQ env=NOEQUALS" "an env= item without =" \
	"env: NOEQUALS: not NAME=value$"

# the real start-up (not only -t) stops at the same line
write_conf "$RUN/bad.conf" <<EOF
local_domains sluice.test
plugin queue/qmail-queue
EOF
if [ -e /var/qmail/bin/qmail-queue ]; then
	skip 2 "/var/qmail/bin/qmail-queue exists here"
else
	err=$(timeout 10 "$BIN" -f -c "$RUN/bad.conf" 2>&1 >/dev/null)
	is "$?" 1 "start-up with the default program missing: exit 1"
	like "$err" "^$RUN/bad.conf:7: plugin queue/qmail-queue: program: /var/qmail/bin/qmail-queue: No such file or directory" \
		"... with file:line: plugin queue/qmail-queue: program: ..."
fi

# the example's lines parse once program= names a program that exists
n=0
while IFS= read -r line; do
	write_conf "$RUN/ex.conf" <<EOF
local_domains sluice.test
${line/program=\/var\/qmail\/bin\/[a-z-]*/program=$QQ}
EOF
	"$BIN" -t -c "$RUN/ex.conf" >/dev/null 2>"$RUN/ex.err" || diag "$(cat "$RUN/ex.err")"
	n=$((n + $?))
done < <(sed -n 's/^#\(plugin queue\/qmail-queue .*\)/\1/p' "$SLUICE_SRC/conf/examples/queue/qmail-queue.conf")
is "$n" 0 "conf/examples/queue/qmail-queue.conf: its commented lines pass -t"
