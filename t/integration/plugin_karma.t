#!/bin/bash
# plugin karma: a score per connection from the client's history in the
# state store and from other plugins' outcomes (recorded here by
# t/plugins/test_outcome as "dnsbl" and "fcrdns").  Covers: the history
# across connections in LMDB (good history raises the score, bad history
# refuses a later connection), awards once per connection, deny points,
# the negative/positive thresholds, reject_at=connect, the relay
# exemption, the adaptive delay (asserted through its log lines, not the
# clock), reject=defer with naughty, X-Sluice-Karma:, config errors; the
# history in a real Redis (keys, expiry) and Redis stopped under
# store_failure open and tempfail; sluice-milterd behind a private
# Postfix refusing a client for its bad history.  Clients come through
# XCLIENT from a trusted proxy.
. "$SLUICE_SRC/t/lib.sh"
export LC_ALL=C

plan 64
setup_run

MD=$RUN/Maildir
SLUICE_CONF_BASE="local_domains sluice.test
relay_clients 192.0.2.0/24
trusted_proxies 127.0.0.1/32
max_errors 100
log_level info"
OUTCOMES='plugin test_outcome name=dnsbl hook=helo match=listed outcome=fail detail="zen.sluice.test 127.0.0.2"
plugin test_outcome name=fcrdns hook=helo match=fcrdns-ok outcome=pass'

# nth N TEXT: line N of TEXT (see xclient_session in t/lib.sh)
nth() { sed -n "$1p" <<<"$2"; }
# message HELO [RCPT...]: EHLO HELO, MAIL, the RCPTs (default bob@),
# DATA, a message, QUIT; lines 4 EHLO, 5 MAIL, 6.. RCPTs, then DATA, dot
message() {
	local helo=$1 r
	shift
	[ $# -gt 0 ] || set -- bob@sluice.test
	printf 'EHLO %s\nMAIL FROM:<a@example.org>\n' "$helo"
	for r in "$@"; do printf 'RCPT TO:<%s>\n' "$r"; done
	printf 'DATA\nFrom: a@example.org\nSubject: karma\n\nhello\n.\nQUIT\n'
}
# rcpt_reply ADDR HELO: the reply to RCPT in a session that stops there
rcpt_reply() {
	printf 'EHLO %s\nMAIL FROM:<a@example.org>\nRCPT TO:<bob@sluice.test>\nQUIT\n' "$2" |
		xclient_session "$1" | sed -n 6p
}
# dot_reply ADDR HELO: the reply to the final dot of one message
dot_reply() {
	message "$2" | xclient_session "$1" | sed -n 8p
}
# karma_header: X-Sluice-Karma: of the newest delivered message
karma_header() {
	sed -n 's/^X-Sluice-Karma: //p' "$(newest_file "$MD/new")"
}
# wait_log TEXT: a bounded wait for a log line with TEXT (log lines are
# written at the end of a loop turn, after the reply)
wait_log() { WAIT_TIMEOUT=5 wait_for grep -F -q -- "$1" "${2:-$RUN/smtpd.log}"; }
count_log() { grep -F -c -- "$1" "${2:-$RUN/smtpd.log}"; }

# --- history, awards, deny points, thresholds (LMDB) --------------------------
KARMA="plugin karma awards=dnsbl:fail:-3,fcrdns:pass:1 negative=-3 delay=no header=yes"
sluice_restart lmdb <<EOF
$OUTCOMES
plugin test_hooks hook=rcpt action=deny match=nobody@ text="no such user"
$KARMA
plugin queue/maildir path=$MD
EOF
like "$(dot_reply 198.51.100.10 clean.test)" '^250 ' "a new client's message is accepted"
is "$(karma_header)" "score=0 history=0/0/0" "X-Sluice-Karma: score=0, no history yet"
wait_log "plugin=karma session ip=198.51.100.10 score=0 outcome=neutral result=good denials=0 delivered=yes"
ok $? "the session counts good: the log says result=good"
like "$(dot_reply 198.51.100.10 fcrdns-ok.test)" '^250 ' "the same client again"
is "$(karma_header)" "score=2 history=1/0/1" \
	"good history (+1) and the award fcrdns:pass:1: score=2, history good/bad/conn 1/0/1"
wait_log "plugin=karma award name=fcrdns outcome=pass points=1 score=2"
ok $? "the log names the award"
wait_log "plugin=karma session ip=198.51.100.10 score=2 outcome=pass result=good"
ok $? "score=2 reaches positive=2: outcome pass"
out=$({
	echo "EHLO fcrdns-ok.test"
	message fcrdns-ok.test
} | xclient_session 198.51.100.10)
is "$(karma_header)" "score=3 history=2/0/2" \
	"an award counts once per connection: two EHLOs with fcrdns pass give +1, score=3"

is "$(rcpt_reply 198.51.100.20 listed.test)" "550 5.7.1 Your karma is too low (-3)" \
	"award dnsbl:fail:-3 reaches negative=-3: RCPT refused 550 5.7.1"
wait_log "plugin=karma verdict=deny hook=rcpt score=-3 negative=-3"
ok $? "the log says verdict=deny hook=rcpt score=-3"
wait_log "plugin=karma session ip=198.51.100.20 score=-4 outcome=fail result=bad denials=1"
ok $? "its own refusal counts a denial too (-1) and the session counts bad"

out=$(message clean.test nobody@sluice.test bob@sluice.test | xclient_session 198.51.100.30)
is "$(nth 6 "$out") / $(nth 7 "$out")" "550 5.7.1 no such user / 250 2.1.5 Ok" \
	"another plugin refuses one recipient"
is "$(karma_header)" "score=-1 history=0/0/0" "deny_points=-1 for the refusal: score=-1"
wait_log "plugin=karma denied hook=rcpt points=-1 score=-1"
ok $? "the log says denied hook=rcpt points=-1"
wait_log "plugin=karma session ip=198.51.100.30 score=-1 outcome=neutral result=bad denials=1 delivered=yes"
ok $? "a session with a denial counts bad even though a message got through"

for i in 1 2 3; do
	rcpt_reply 198.51.100.40 listed.test >/dev/null
done
wait_log "plugin=karma history ip=198.51.100.40 good=0 bad=2 conn=2 points=-2"
ok $? "three bad sessions: the third starts with history bad=2"
is "$(rcpt_reply 198.51.100.40 clean.test)" "550 5.7.1 Your karma is too low (-3)" \
	"bad history alone (3 bad sessions, within history_cap=3) refuses a later connection"
wait_log "plugin=karma history ip=198.51.100.40 good=0 bad=3 conn=3 points=-3"
ok $? "the log shows the history it read: bad=3 conn=3 points=-3"

is "$(rcpt_reply 192.0.2.10 listed.test)" "250 2.1.5 Ok" \
	"a relay client with a bad score is not refused"
wait_log "plugin=karma exempt=relay_client hook=rcpt score=-3"
ok $? "the log says exempt=relay_client"

is "$(count_log "plugin=karma delay=")" 0 "delay=no: clients below 0 were never delayed"

# --- reject_at=connect ------------------------------------------------------
sluice_restart connect <<EOF
plugin karma negative=-3 reject_at=connect delay=no
EOF
out=$(printf 'EHLO client.test\nQUIT\n' | xclient_session 198.51.100.40)
is "$(nth 3 "$out")" "554 mx.sluice.test ESMTP Your karma is too low (-3)" \
	"reject_at=connect: a client with bad history gets a 554 greeting"
out=$(printf 'EHLO client.test\nQUIT\n' | xclient_session 198.51.100.10)
is "$(nth 3 "$out")" "220 mx.sluice.test ESMTP sluice" "reject_at=connect: a good client is greeted"

# --- the delay ------------------------------------------------------------
sluice_restart delay <<EOF
$OUTCOMES
plugin karma awards=dnsbl:fail:-3,fcrdns:pass:1 negative=-5 delay=yes delay_step=100ms delay_max=250ms
plugin queue/maildir path=$MD
EOF
like "$(dot_reply 198.51.100.50 listed.test)" '^250 ' \
	"delay: a client at -3 (above negative=-5) still gets its message through"
wait_log "plugin=karma delay=250ms hook=data_post score=-3"
ok $? "delay: 3 x delay_step=100ms capped at delay_max=250ms, at data_post"
for h in helo mail rcpt data; do
	grep -F -q "plugin=karma delay=250ms hook=$h score=-3" "$RUN/smtpd.log"
	ok $? "delay: the $h reply is delayed too"
done
out=$(printf 'EHLO client.test\nQUIT\n' | xclient_session 198.51.100.30)
is "$(nth 3 "$out")" "220 mx.sluice.test ESMTP sluice" "delay: a client with bad history is greeted"
wait_log "plugin=karma delay=100ms hook=connect score=-1"
ok $? "delay: its greeting waited 1 x delay_step (history -1)"
n=$(count_log "plugin=karma delay=")
like "$(dot_reply 198.51.100.10 fcrdns-ok.test)" '^250 ' "delay: a good client"
wait_log "plugin=karma session ip=198.51.100.10 score=4"
is "$(count_log "plugin=karma delay=")" "$n" "delay: a good client never waits (no delay logged)"

# --- reject=defer with naughty ------------------------------------------------
sluice_restart defer <<EOF
$OUTCOMES
plugin karma awards=dnsbl:fail:-3,naughty:fail:-2 negative=-3 reject_at=helo reject=defer delay=no
plugin naughty reject_at=data_post
plugin queue/maildir path=$MD
EOF
out=$(message listed.test | xclient_session 198.51.100.60)
is "$(nth 5 "$out") / $(nth 6 "$out") / $(nth 8 "$out")" \
	"250 2.1.0 Ok / 250 2.1.5 Ok / 550 5.7.1 Your karma is too low (-3)" \
	"reject=defer: karma marks at HELO, naughty refuses at the dot with karma's reply"
wait_log "plugin=naughty rejecting, marked by karma at data_post: verdict=deny code=550"
ok $? "the log says naughty rejected for karma"
wait_log "plugin=karma session ip=198.51.100.60 score=-6 outcome=fail result=bad"
ok $? "the marked session counts bad, with naughty's outcome fail (-2) and its refusal (-1)"

# --- configuration errors ----------------------------------------------------
conf_fails "award without points" "6: plugin karma: awards: 'dnsbl:fail': expected NAME:OUTCOME:POINTS" <<EOF
plugin karma awards=dnsbl:fail
EOF
conf_fails "unknown outcome" "6: plugin karma: awards: 'dnsbl:listed:-5': expected" <<EOF
plugin karma awards=dnsbl:listed:-5
EOF
conf_fails "negative not below positive" "6: plugin karma: negative=2 must be below positive=2" <<EOF
plugin karma negative=2
EOF
conf_fails "bad delay" "6: plugin karma: delay: " <<EOF
plugin karma delay=sometimes
EOF
sluice_stop

# --- Redis ---------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
	skip 13 "redis-server or redis-cli is not installed"
else
	RPORT=$(free_port)
	mkdir -p "$RUN/redis"
	redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no --dir "$RUN/redis" --logfile "$RUN/redis/redis.log" &
	REDIS_PID=$!
	track_pid "$REDIS_PID"
	rcli() { timeout 10 redis-cli -p "$RPORT" "$@"; }
	redis_ping() { [ "$(rcli ping 2>/dev/null)" = PONG ]; }
	WAIT_TIMEOUT=10 wait_for redis_ping || {
		echo "Bail out! redis-server did not answer on port $RPORT"
		exit 1
	}
	REDIS="store redis
redis_server 127.0.0.1:$RPORT
redis_timeout 300ms"
	sluice_restart redis <<EOF
$REDIS
plugin karma negative=-3 history_expire=600 delay=no header=yes
plugin queue/maildir path=$MD
EOF
	like "$(dot_reply 198.51.100.70 clean.test)" '^250 ' "redis: a message accepted"
	counted() { [ "$(rcli get karma:198.51.100.70:conn)" = 1 ]; }
	WAIT_TIMEOUT=10 wait_for counted
	is "$(rcli get karma:198.51.100.70:good)/$(rcli get karma:198.51.100.70:conn)" "1/1" \
		"redis: karma:IP:good and karma:IP:conn counted"
	ttl=$(rcli ttl karma:198.51.100.70:good)
	[ "$ttl" -gt 0 ] && [ "$ttl" -le 600 ]
	ok $? "redis: the keys expire after history_expire=600 (ttl=$ttl)"
	like "$(dot_reply 198.51.100.70 clean.test)" '^250 ' "redis: the client again"
	is "$(karma_header)" "score=1 history=1/0/1" "redis: the history read back from Redis"
	rcli set karma:198.51.100.71:bad 5 >/dev/null
	is "$(rcpt_reply 198.51.100.71 clean.test)" "550 5.7.1 Your karma is too low (-3)" \
		"redis: bad history set by another host refuses the client"

	# Redis frozen (no answer): connect waits redis_timeout, then goes on
	kill -STOP "$REDIS_PID"
	like "$(dot_reply 198.51.100.74 clean.test)" '^250 ' \
		"redis frozen, store_failure open: the message is accepted after redis_timeout"
	wait_log "plugin=karma history ip=198.51.100.74 unavailable action=continue"
	ok $? "redis frozen: the log says the history is unavailable"
	kill -CONT "$REDIS_PID"

	# Redis stopped: store_failure open goes on without history
	stop_pid "$REDIS_PID"
	like "$(dot_reply 198.51.100.72 clean.test)" '^250 ' \
		"redis down, store_failure open: the message is accepted"
	is "$(karma_header)" "score=0 history=unknown" "redis down: X-Sluice-Karma says history=unknown"
	wait_log "plugin=karma history ip=198.51.100.72 unavailable action=continue"
	ok $? "redis down: the log says the history is unavailable, action=continue"
	# (a probe session would get the 421 too: wait for the start instead)
	unset PORT
	write_conf "$RUN/redis-tempfail.conf" <<EOF
$SLUICE_CONF_BASE
$REDIS
store_failure tempfail
plugin karma delay=no
EOF
	sluice_restart_quiet "$RUN/redis-tempfail.conf"
	out=$(printf 'EHLO client.test\nQUIT\n' | smtp_chat --timeout 20 | awk '/^[0-9][0-9][0-9]( |$)/ || /^!closed/')
	is "$(nth 1 "$out") $(nth 2 "$out")" \
		"421 4.7.0 mx.sluice.test Karma history unavailable, try again later !closed" \
		"redis down, store_failure tempfail: 421 and the connection closed"
	wait_log "plugin=karma history ip=127.0.0.1 unavailable action=tempfail"
	ok $? "redis down: the log says action=tempfail"
	sluice_stop
fi

# --- sluice-milterd behind Postfix ------------------------------------------------
pf_milter_start || {
	skip 7 "milterd part needs root, postfix and swaks"
	exit 0
}
unset PORT
{
	echo "$SLUICE_CONF_BASE"
	echo "state_dir $RUN/mvar"
	echo "milter_listen inet:$MPORT@127.0.0.1"
	echo "$OUTCOMES"
	echo "plugin karma awards=dnsbl:fail:-3 negative=-1 header=yes"
} | write_conf "$RUN/milterd.conf"
mkdir -p "$RUN/mvar"
milterd_start "$RUN/milterd.conf"
MLOG=$RUN/milterd.log
# send ADDR HELO: one message through Postfix as client ADDR
send() {
	swaks --server 127.0.0.1 --port "$SPORT" --timeout 20 --helo "$2" \
		--xclient-addr "$1" --from a@example.org --to bob@sluice.test \
		--header "X-Case: $1-$2" 2>&1
}
out=$(send 198.51.100.80 clean.test)
like "$(reply_to . "$out")" '^250 ' "milterd: a new client's message is accepted"
copy() { grep -l -x -s "X-Case: $1" "$PFD"/mail/inbox/new/* | head -n 1; }
delivered() { [ -n "$(copy "$1")" ]; }
WAIT_TIMEOUT=15 wait_for delivered 198.51.100.80-clean.test
is "$(sed -n 's/^X-Sluice-Karma: //p' "$(copy 198.51.100.80-clean.test)")" "score=0 history=0/0/0" \
	"milterd: the delivered copy carries X-Sluice-Karma:"
out=$(send 198.51.100.81 listed.test)
is "$(reply_to 'RCPT TO:<bob@sluice.test>' "$out")" "550 5.7.1 Your karma is too low (-3)" \
	"milterd: a client with a dnsbl fail is refused at RCPT"
wait_log "plugin=karma session ip=198.51.100.81 score=" "$MLOG"
ok $? "milterd: the session was counted"
out=$(send 198.51.100.81 clean.test)
is "$(reply_to 'RCPT TO:<bob@sluice.test>' "$out")" "550 5.7.1 Your karma is too low (-1)" \
	"milterd: on its next connection its bad history alone refuses it"
is "$(count_log "plugin=karma delay=" "$MLOG")" 0 \
	"milterd: delay=smtpd (the default) never holds the MTA"
milterd_stop
is "$(grep -c -E 'AddressSanitizer|runtime error' "$MLOG")" 0 "no sanitizer report in milterd's log"
