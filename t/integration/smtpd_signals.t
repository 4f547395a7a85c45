#!/bin/bash
# sluice-smtpd: SIGHUP reloads (a good config takes effect for new sessions;
# a bad one is refused with a file:line: message and the old one keeps
# serving); SIGTERM drains a session in flight, then the daemon exits 0.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 15
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"
CONF=$RUN/smtpd.conf

# conf SIZE BADRCPT: (re)writes $CONF, same port every time
conf() {
	write_conf "$CONF.new" <<EOF
local_domains sluice.test
max_message_size $1
plugin badrcptto list=$2
plugin queue/maildir path=$MD
EOF
	mv "$CONF.new" "$CONF"
}
conf 10000 bad1@sluice.test
sluice_start "$CONF"

ehlo_size() { smtp_chat <<<$'EHLO client.test\nQUIT' | sed -n 's/^250[- ]SIZE \([0-9]*\)$/\1/p'; }
rcpt_code() {
	smtp_chat <<EOF | reply_codes | cut -d' ' -f4
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<$1>
QUIT
EOF
}
is "$(ehlo_size)" 10000 "before reload: SIZE 10000"
like "$(rcpt_code bad1@sluice.test)/$(rcpt_code bad2@sluice.test)" '^5[0-9][0-9]/250$' \
	"before reload: bad1 refused by badrcptto, bad2 accepted"

# --- good reload -------------------------------------------------------------------
conf 20000 bad2@sluice.test
kill -HUP "$SLUICE_PID"
size_is() { [ "$(ehlo_size)" = "$1" ]; }
wait_for size_is 20000
ok $? "after SIGHUP: SIZE 20000"
like "$(rcpt_code bad1@sluice.test)/$(rcpt_code bad2@sluice.test)" '^250/5[0-9][0-9]$' \
	"after SIGHUP: the new badrcptto list is in force"
kill -0 "$SLUICE_PID"
ok $? "same daemon process still running"

# --- bad reload ----------------------------------------------------------------------
before=$(wc -l <"$RUN/smtpd.log")
conf 30000 bad3@sluice.test
echo "max_recipients lots" >>"$CONF"
badline=$(wc -l <"$CONF")
kill -HUP "$SLUICE_PID"
logged() { tail -n +"$((before + 1))" "$RUN/smtpd.log" | grep -q "$CONF:$badline:"; }
wait_for logged
ok $? "bad config on SIGHUP: '$CONF:$badline:' logged"
kill -0 "$SLUICE_PID"
ok $? "daemon still running after a bad reload"
is "$(ehlo_size)" 20000 "old config keeps serving (SIZE 20000)"
is "$(rcpt_code bad3@sluice.test)" 250 "old badrcptto list still in force"

# a missing plugin is as bad as a syntax error
conf 40000 bad4@sluice.test
echo "plugin no_such_plugin" >>"$CONF"
before=$(wc -l <"$RUN/smtpd.log")
kill -HUP "$SLUICE_PID"
badline=$(wc -l <"$CONF")
wait_for logged
ok $? "unloadable plugin on SIGHUP: '$CONF:$badline:' logged"
is "$(ehlo_size)" 20000 "old config still serving"

# --- SIGTERM drains a session in flight ------------------------------------------------
conf 20000 bad2@sluice.test
n=$(maildir_count "$MD")
smtp_chat --timeout 10 >"$RUN/inflight.out" <<'EOF' &
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
Subject: in flight

first half
!sleep 1.5
second half
.
QUIT
EOF
chat=$!
track_pid "$chat"
wait_for grep -q '^354' "$RUN/inflight.out"
sleep 0.3
kill -TERM "$SLUICE_PID"
sleep 0.3
out=$(smtp_chat <<<'QUIT' 2>&1)
unlike "$out" '^220' "after SIGTERM no new session is served"
WAIT_TIMEOUT=15 wait_for eval '! kill -0 $chat 2>/dev/null'
like "$(reply_codes <"$RUN/inflight.out")" '^220 250 250 250 354 250 [24]21 closed$' \
	"the session in flight completes its message after SIGTERM (then 221 or 421)"
is "$(maildir_count "$MD")" $((n + 1)) "... and the message is delivered"
WAIT_TIMEOUT=15 wait_for eval '! kill -0 $SLUICE_PID 2>/dev/null'
wait "$SLUICE_PID"
is "$?" 0 "daemon exits 0 once drained"
SLUICE_PID=
