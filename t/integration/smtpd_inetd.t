#!/bin/bash
# sluice-smtpd -i, one session on stdin/stdout:
#   (1) under tcpserver (ucspi-tcp): swaks and smtp_chat sessions delivered
#       into a Maildir with tcpserver's TCPREMOTEIP in Received:; relay
#       refused without RELAYCLIENT, accepted with RELAYCLIENT="" from a
#       tcprules cdb; RELAYCLIENT=".suffix" appended to every recipient
#       (seen in the envelope queue/qmail-queue hands over); two sessions
#       at once in two processes, and every process gone after its session
#   (2) with pipes: the replies on stdout, exit 0, TCPREMOTEIP/TCPREMOTEHOST/
#       TCPLOCALIP in Received: and the log; EOF without QUIT still gets
#       every reply; no listener bound, no pid file; a bad TCPREMOTEIP gets
#       421 and exit 1; RELAYCLIENT outlives XCLIENT (which recomputes the
#       relay state); SIGTERM: 421 4.3.2 and exit 0; started as root with
#       "user nobody", the session runs as nobody
#   (3) a broken config: exit 1, file:line on stderr, nothing on stdout
#   (4) sluice-milterd -i: refused with a usage error
#   (5) inetd-style, fds 0, 1 and 2 all the client's socket: the session
#       works and no log line reaches the client
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

command -v tcpserver >/dev/null 2>&1 && command -v tcprules >/dev/null 2>&1 ||
	skip_all "ucspi-tcp (tcpserver, tcprules) not installed"
command -v swaks >/dev/null 2>&1 || skip_all "swaks not installed"
plan 48
setup_run
BIN=$SLUICE_BUILD/sluice-smtpd
LOG=$RUN/smtpd.log
MD=$RUN/Maildir
export QQ_DIR=$RUN/qq
mkdir -p "$QQ_DIR"

write_conf "$RUN/md.conf" <<EOF
local_domains sluice.test
pid_file $RUN/smtpd.pid
plugin queue/maildir path=$MD
EOF

# ts_start CONF [RULES_CDB]: tcpserver on $PORT running "sluice-smtpd -i";
# no DNS or ident lookups (-H -R -l0); -1 prints the port once bound
ts_start() {
	local conf=$1 rules=${2:-}
	: >"$RUN/ts.port"
	tcpserver -1 -q -H -R -l0 ${rules:+-x "$rules"} 127.0.0.1 "$PORT" \
		"$BIN" -i -c "$conf" >"$RUN/ts.port" 2>>"$LOG" &
	TS_PID=$!
	track_pid "$TS_PID"
	WAIT_TIMEOUT=10 wait_for test -s "$RUN/ts.port" || {
		echo "Bail out! tcpserver did not bind 127.0.0.1:$PORT"
		exit 1
	}
}
ts_stop() {
	stop_pid "$TS_PID" 10 TERM
}
# no_children: no sluice-smtpd -i left under tcpserver
no_children() { ! pgrep -P "$TS_PID" >/dev/null; }
# children_are N: tcpserver has N children now
children_are() { [ "$(pgrep -P "$TS_PID" | wc -l)" = "$1" ]; }
# rules FILE TEXT: a tcprules cdb from TEXT
rules() {
	printf '%s\n' "$2" | tcprules "$1" "$1.tmp"
}
# chat_msg RCPT...: a whole session with one message
chat_msg() {
	local r
	{
		echo "EHLO client.test"
		echo "MAIL FROM:<alice@example.org>"
		for r in "$@"; do
			echo "RCPT TO:<$r>"
		done
		echo "DATA"
		echo "Subject: inetd"
		echo ""
		echo "body"
		echo "."
		echo "QUIT"
	}
}

# --- (1) under tcpserver ------------------------------------------------------
ts_start "$RUN/md.conf"
out=$(swaks_to --from alice@example.org --to bob@sluice.test --header "Subject: via tcpserver")
like "$out" $'<-  250 2\\.0\\.0 Ok: queued as ' "swaks through tcpserver: 250 2.0.0 queued"
is "$(maildir_count "$MD")" 1 "... delivered into the Maildir"
like "$(first_received "$(newest_file "$MD/new")")" \
	'^Received: from [^ ]+ \(unknown \[127\.0\.0\.1\]\) by mx\.sluice\.test \(sluice\) with ESMTP id ' \
	"... Received: names tcpserver's TCPREMOTEIP"
grep -q "stdio session io=socket relayclient=no" "$LOG"
ok $? "... the session took the socket over (io=socket)"
grep -q "connect client=\[127\.0\.0\.1\]:[1-9][0-9]* local=\[127\.0\.0\.1\]:$PORT$" "$LOG"
ok $? "... client port from TCPREMOTEPORT, local address and port from TCPLOCALIP/PORT"

out=$(chat_msg carol@sluice.test | smtp_chat | reply_codes)
like "$out" '^220 250 250 250 354 250 221' "smtp_chat through tcpserver: message queued, 221"
out=$(chat_msg someone@elsewhere.test | smtp_chat)
like "$out" $'\n550 5\\.7\\.1 Relay access denied' "no RELAYCLIENT: relay to elsewhere.test refused"

# two sessions at once: tcpserver forks one sluice-smtpd -i for each
for n in 1 2; do
	{
		echo "EHLO client$n.test"
		echo "MAIL FROM:<alice@example.org>"
		echo "!sleep 2"
		echo "RCPT TO:<both$n@sluice.test>"
		echo "DATA"
		echo "Subject: parallel $n"
		echo ""
		echo "."
		echo "QUIT"
	} | smtp_chat >"$RUN/par$n.out" &
	track_pid $!
	eval "CHAT$n=\$!"
done
WAIT_TIMEOUT=5 wait_for children_are 2
ok $? "two sessions at once run in two sluice-smtpd -i processes"
wait "$CHAT1" "$CHAT2"
grep -q '^250 2\.0\.0 Ok: queued' "$RUN/par1.out" && grep -q '^250 2\.0\.0 Ok: queued' "$RUN/par2.out"
ok $? "... both messages queued"
is "$(maildir_count "$MD")" 4 "... four messages in the Maildir so far"
WAIT_TIMEOUT=10 wait_for no_children
ok $? "every sluice-smtpd -i exited after its session"
[ ! -e "$RUN/smtpd.pid" ]
ok $? "-i writes no pid file"
ts_stop

# RELAYCLIENT="" (tcprules): a relay client
rules "$RUN/relay.cdb" '127.:allow,RELAYCLIENT=""'
ts_start "$RUN/md.conf" "$RUN/relay.cdb"
out=$(chat_msg someone@elsewhere.test | smtp_chat)
like "$out" $'\n250 2\\.1\\.5 Ok\n' "RELAYCLIENT=\"\": relay to elsewhere.test accepted"
like "$out" $'\n250 2\\.0\\.0 Ok: queued as ' "... and the message queued"
is "$(maildir_count "$MD")" 5 "... into the Maildir"
grep -q "stdio session io=socket relayclient=yes$" "$LOG"
ok $? "... logged as relayclient=yes"
ts_stop

# RELAYCLIENT=".relay.test": appended to every recipient (qmail-smtpd)
if [ -f "$SLUICE_BUILD/plugins/queue/qmail-queue.so" ]; then
	cp "$SLUICE_SRC/t/fake-qmail-queue.sh" "$RUN/qmail-queue"
	chmod 755 "$RUN/qmail-queue"
	write_conf "$RUN/qq.conf" <<EOF
local_domains sluice.test
plugin queue/qmail-queue program=$RUN/qmail-queue
EOF
	rules "$RUN/suffix.cdb" '127.:allow,RELAYCLIENT=".relay.test"'
	ts_start "$RUN/qq.conf" "$RUN/suffix.cdb"
	out=$(chat_msg someone@elsewhere.test bob@sluice.test | smtp_chat)
	like "$out" $'\n250 2\\.0\\.0 Ok: queued as [^ ]+ via qmail-queue' \
		"RELAYCLIENT=.relay.test: queued by queue/qmail-queue under tcpserver"
	printf 'Falice@example.org\0Tsomeone@elsewhere.test.relay.test\0Tbob@sluice.test.relay.test\0\0' >"$RUN/env.want"
	cmp -s "$(ls "$QQ_DIR"/envelope.* | head -n 1)" "$RUN/env.want"
	ok $? "... the suffix is appended to every recipient in the envelope"
	grep -q "rcpt to=<bob@sluice.test.relay.test>" "$LOG"
	ok $? "... and in the log"
	ts_stop
else
	skip 3 "queue/qmail-queue not built"
fi

# --- (2) pipes --------------------------------------------------------------------
# pipe_session ENV... : the chat (CRLF) on stdin of "sluice-smtpd -i"
crlf() { sed 's/$/\r/'; }
chat_msg bob@sluice.test | crlf >"$RUN/chat.in"
n0=$(maildir_count "$MD")
env TCPREMOTEIP=192.0.2.7 TCPREMOTEPORT=4711 TCPREMOTEHOST=client.example.net \
	TCPLOCALIP=192.0.2.25 TCPLOCALPORT=25 \
	timeout 30 "$BIN" -i -c "$RUN/md.conf" <"$RUN/chat.in" >"$RUN/pipe.out" 2>>"$LOG"
is "$?" 0 "pipes: sluice-smtpd -i exits 0 after QUIT"
is "$(tr -d '\r' <"$RUN/pipe.out" | reply_codes)" "220 250 250 250 354 250 221" \
	"... every reply on stdout"
is "$(maildir_count "$MD")" $((n0 + 1)) "... the message delivered"
like "$(first_received "$(newest_file "$MD/new")")" \
	'^Received: from client\.test \(client\.example\.net \[192\.0\.2\.7\]\) by mx\.sluice\.test' \
	"... Received: shows TCPREMOTEIP and TCPREMOTEHOST"
grep -q "connect client=\[192\.0\.2\.7\]:4711 local=\[192\.0\.2\.25\]:25$" "$LOG"
ok $? "... client and local address and port from the environment"
grep -q "stdio session io=bridged relayclient=no" "$LOG"
ok $? "... stdin and stdout are bridged to the session (io=bridged)"

# EOF instead of QUIT, right after the dot: the reply to it still comes
chat_msg bob@sluice.test | grep -v '^QUIT$' | crlf >"$RUN/noquit.in"
timeout 30 "$BIN" -i -c "$RUN/md.conf" <"$RUN/noquit.in" >"$RUN/noquit.out" 2>>"$LOG"
is "$?" 0 "pipes, EOF without QUIT: exit 0"
is "$(tr -d '\r' <"$RUN/noquit.out" | reply_codes)" "220 250 250 250 354 250" \
	"... the message is answered before the session ends"
is "$(maildir_count "$MD")" $((n0 + 2)) "... and delivered"
grep -q "no TCPREMOTEIP and stdin is not a socket: client address 127.0.0.1" "$LOG"
ok $? "... without TCPREMOTEIP the client is 127.0.0.1, logged"

out=$(TCPREMOTEIP=192.0.2.300 timeout 30 "$BIN" -i -c "$RUN/md.conf" </dev/null 2>>"$LOG")
rc=$?
is "$rc/$out" $'1/421 4.3.0 mx.sluice.test Service not available: bad client environment\r' \
	"a bad TCPREMOTEIP: 421 4.3.0 and exit 1"
grep -q -- "-i: TCPREMOTEIP=192.0.2.300: not a numeric IP address" "$LOG"
ok $? "... the reason is logged"

# XCLIENT recomputes who may relay: RELAYCLIENT still counts afterwards
write_conf "$RUN/xc.conf" <<EOF
local_domains sluice.test
trusted_proxies 127.0.0.1
plugin queue/maildir path=$MD
EOF
printf '%s\n' "EHLO proxy.test" "XCLIENT ADDR=192.0.2.50" "EHLO client.test" \
	"MAIL FROM:<alice@example.org>" "RCPT TO:<someone@elsewhere.test>" QUIT |
	crlf >"$RUN/xc.in"
xc_rcpt() {
	env "$@" TCPREMOTEIP=127.0.0.1 timeout 30 "$BIN" -i -c "$RUN/xc.conf" \
		<"$RUN/xc.in" 2>>"$LOG" | tr -d '\r' | reply_codes | cut -d' ' -f5-
}
is "$(xc_rcpt RELAYCLIENT=)" "250 250 221" "RELAYCLIENT set: relaying still allowed after XCLIENT"
is "$(xc_rcpt -u RELAYCLIENT)" "250 550 221" "... without it: refused after XCLIENT"

# SIGTERM: stdin held open through a FIFO
mkfifo "$RUN/fifo"
"$BIN" -i -c "$RUN/md.conf" <"$RUN/fifo" >"$RUN/term.out" 2>>"$LOG" &
I_PID=$!
track_pid "$I_PID"
exec 7>"$RUN/fifo"
WAIT_TIMEOUT=10 wait_for grep -q '^220 ' "$RUN/term.out"
ok $? "a session on a FIFO: banner"
"$SLUICE_PYTHON" -c "import socket; s=socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener
s.bind(('127.0.0.1', $PORT)); s.listen()"
ok $? "... -i binds no listener (the configured port is free)"
kill -TERM "$I_PID"
WAIT_TIMEOUT=10 wait_for sh -c "! kill -0 $I_PID 2>/dev/null"
ok $? "SIGTERM: the process ends"
wait "$I_PID"
is "$?" 0 "... with exit 0"
like "$(tr -d '\r' <"$RUN/term.out")" $'\n421 4\\.3\\.2 mx\\.sluice\\.test Service shutting down$' \
	"... after 421 4.3.2"
exec 7>&-

# root with "user nobody": privileges are dropped (the queue program's uid)
nobody=$(id -u nobody 2>/dev/null)
if [ "$(id -u)" = 0 ] && [ -n "$nobody" ] && [ -f "$RUN/qmail-queue" ]; then
	chmod 777 "$QQ_DIR"
	rm -f "$QQ_DIR"/uid.*
	echo uid >"$QQ_DIR/action"
	write_conf "$RUN/user.conf" <<EOF
local_domains sluice.test
user nobody
plugin queue/qmail-queue program=$RUN/qmail-queue
EOF
	chat_msg bob@sluice.test | crlf |
		timeout 30 "$BIN" -i -c "$RUN/user.conf" >/dev/null 2>>"$LOG"
	is "$(cat "$QQ_DIR"/uid.* 2>/dev/null)" "$nobody" \
		"root with user nobody: the session runs as nobody"
	rm -f "$QQ_DIR/action"
else
	skip 1 "not root, no user nobody, or queue/qmail-queue not built"
fi

# --- (3) a broken config ------------------------------------------------------------
write_conf "$RUN/bad.conf" <<EOF
local_domains sluice.test
max_recipients lots
EOF
out=$("$BIN" -i -c "$RUN/bad.conf" </dev/null 2>"$RUN/bad.err")
is "$?" 1 "a broken config under -i: exit 1"
like "$(cat "$RUN/bad.err")" "^$RUN/bad.conf:7: max_recipients: " "... file:line on stderr"
is "$out" "" "... nothing on stdout"

# --- (4) sluice-milterd -i ----------------------------------------------------------
err=$("$SLUICE_BUILD/sluice-milterd" -i -c "$RUN/md.conf" 2>&1 </dev/null)
is "$?" 1 "sluice-milterd -i: exit 1"
like "$err" $'-i: not supported.*\nusage: sluice-milterd ' "... with a usage error"

# --- (5) inetd: stderr is the client's socket too ---------------------------------
out=$("$SLUICE_PYTHON" - "$BIN" "$RUN/md.conf" <<'EOF'
import os, socket, subprocess, sys
a, b = socket.socketpair()
env = dict(os.environ, TCPREMOTEIP="192.0.2.9")
p = subprocess.Popen([sys.argv[1], "-i", "-c", sys.argv[2]], stdin=b,
                     stdout=b, stderr=b, env=env)
b.close()
a.sendall(b"EHLO client.test\r\nQUIT\r\n")
a.settimeout(10)
data = b""
while True:
    d = a.recv(4096)
    if not d:
        break
    data += d
sys.stdout.write(data.decode("utf-8", "replace").replace("\r", ""))
print("exit=%d" % p.wait(10))
EOF
)
is "$(reply_codes <<<"$out") ${out##*$'\n'}" "220 250 221 exit=0" \
	"inetd-style (fds 0-2 one socket): the session runs, exit 0"
is "$(grep -cvE '^([0-9]{3}[ -]|exit=)' <<<"$out")" 0 "... and no log line reaches the client"

# --- STARTTLS under tcpserver: the session's socket is fd 0 ---------------------
mkdir -p "$RUN/tls"
tls_make_cert "$RUN/tls" mx mx.sluice.test
cp "$RUN/md.conf" "$RUN/tls.conf"
printf 'tls_cert %s\ntls_key %s\n' "$RUN/tls/mx.crt" "$RUN/tls/mx.key" >>"$RUN/tls.conf"
ts_start "$RUN/tls.conf"
out=$(swaks_to --tls --from alice@example.org --to bob@sluice.test --header "Subject: tls via tcpserver")
like "$out" 'TLS started with cipher TLSv1\.3' "-i under tcpserver: STARTTLS negotiates TLS 1.3"
like "$out" $'<~  250 2\\.0\\.0 Ok: queued as ' "-i under tcpserver: the message is queued over TLS"
ts_stop
