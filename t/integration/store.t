#!/bin/bash
# The state store through the daemon, with t/plugins/test_store (a session
# count per client address in the MAIL reply): store lmdb keeps the count
# across a restart and refuses an unusable store_path; store redis against
# a redis-server started here shares the count between two sluice-smtpd
# (two MX hosts), expires it, and while Redis is stopped (SIGSTOP: no
# answer; killed: refused) answers at once or after redis_timeout -
# store_failure open goes on, tempfail gives 451 - then reconnects.
. "$SLUICE_SRC/t/lib.sh"
export LC_ALL=C

plan 25
setup_run

# mail_reply [PORT]: the reply to MAIL FROM in one session
mail_reply() {
	printf 'EHLO client.test\nMAIL FROM:<a@example.org>\nQUIT\n' |
	    smtp_chat --port "${1:-$PORT}" --timeout 20 |
	    awk '/^[245][0-9][0-9] / && m { print; exit }
	         /^250 / && !m { m = 1 }'
}

# --- lmdb ------------------------------------------------------------------
write_conf "$RUN/lmdb.conf" <<EOF
plugin test_store
EOF
sluice_start "$RUN/lmdb.conf"
is "$(mail_reply)" "250 2.1.0 count=1" "lmdb: the first session counts 1"
is "$(mail_reply)" "250 2.1.0 count=2" "lmdb: the second counts 2"
[ -f "$RUN/var/store.mdb" ]
ok $? "lmdb: the store is state_dir/store.mdb by default"
sluice_stop
sluice_start "$RUN/lmdb.conf"
is "$(mail_reply)" "250 2.1.0 count=3" "lmdb: the count survives a restart"
sluice_stop

err=$(sluice_conf_error <<EOF
store_path $RUN/no/such/dir/store.mdb
EOF
)
like "$err" "^$RUN/conf-error.conf:[0-9]+: store_path: cannot open the LMDB store $RUN/no/such/dir/store.mdb: " \
	"lmdb: an unusable store_path stops start-up with file:line"
# start-up (not only -t) stops too, and -t creates nothing
err=$(timeout 20 "$SLUICE_BUILD/sluice-smtpd" -f -c "$RUN/conf-error.conf" 2>&1 >/dev/null)
like "$err" "^$RUN/conf-error.conf:[0-9]+: store_path: cannot open the LMDB store " \
	"lmdb: and so does start-up itself"
mkdir -p "$RUN/fresh"
printf 'state_dir %s\n' "$RUN/fresh/var" >>"$RUN/lmdb.conf"
"$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/lmdb.conf" 2>/dev/null
is "$?:$(ls -A "$RUN/fresh")" "0:" "lmdb: -t accepts a state_dir still to be made, and makes nothing"
err=$(sluice_conf_error <<EOF
store redis
redis_server 127.0.0.1
EOF
)
like "$err" "^$RUN/conf-error.conf:[0-9]+: redis_server: 127.0.0.1: expected HOST:PORT or unix:/path" \
	"redis: a bad redis_server stops start-up with file:line"

# --- redis -----------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1 ||
    ! command -v redis-cli >/dev/null 2>&1; then
	skip 17 "redis-server or redis-cli is not installed"
	exit 0
fi
RPORT=$(free_port)
mkdir -p "$RUN/redis"
redis_ping() {
	[ "$(timeout 5 redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ]
}
redis_start() {
	redis-server --port "$RPORT" --bind 127.0.0.1 --save '' \
	    --appendonly no --daemonize no --dir "$RUN/redis" \
	    --logfile "$RUN/redis/redis.log" &
	REDIS_PID=$!
	track_pid "$REDIS_PID"
	WAIT_TIMEOUT=10 wait_for redis_ping || {
		echo "Bail out! redis-server did not answer on port $RPORT"
		exit 1
	}
}
rcli() {
	timeout 10 redis-cli -p "$RPORT" "$@"
}
redis_start

# two MX hosts: A fails open, B tempfails.  A runs one loop thread, so that
# the link that saw Redis go is the one that logs its return (a second
# loop's link may first connect after the outage, with nothing to report).
unset PORT
write_conf "$RUN/a.conf" <<EOF
loop_threads 1
store redis
redis_server 127.0.0.1:$RPORT
redis_timeout 500ms
plugin test_store
EOF
sluice_start "$RUN/a.conf"
PA=$PORT PIDA=$SLUICE_PID
unset PORT
: >"$RUN/b.log"
write_conf "$RUN/b.conf" <<EOF
store redis
redis_server 127.0.0.1:$RPORT
redis_timeout 500ms
store_failure tempfail
plugin test_store expire=3600
EOF
"$SLUICE_BUILD/sluice-smtpd" -f -c "$RUN/b.conf" 2>>"$RUN/b.log" &
PIDB=$!
track_pid "$PIDB"
PB=$PORT
wait_smtp "$PB" 10 || {
	echo "Bail out! the second sluice-smtpd did not start"
	exit 1
}

is "$(mail_reply "$PA")" "250 2.1.0 count=1" "redis: host A counts 1"
is "$(mail_reply "$PB")" "250 2.1.0 count=2" "redis: host B sees A's count: 2"
is "$(mail_reply "$PA")" "250 2.1.0 count=3" "redis: and A sees B's: 3"
is "$(rcli get test_store:127.0.0.1)" 3 "redis: the key is the plugin's, namespaced"
ttl=$(rcli ttl test_store:127.0.0.1)
[ "$ttl" -gt 0 ] && [ "$ttl" -le 3600 ]
ok $? "redis: B's incr set the expiry (ttl=$ttl)"

# expiry: A restarted with expire=1
stop_pid "$PIDA"
unset PORT
write_conf "$RUN/a.conf" <<EOF
loop_threads 1
store redis
redis_server 127.0.0.1:$RPORT
redis_timeout 500ms
plugin test_store expire=1
EOF
sluice_start "$RUN/a.conf"
PA=$PORT PIDA=$SLUICE_PID
is "$(mail_reply "$PA")" "250 2.1.0 count=4" "redis: A counts on after its restart"
key_gone() { [ "$(rcli exists test_store:127.0.0.1)" = 0 ]; }
WAIT_TIMEOUT=10 wait_for key_gone
ok $? "redis: the count expires after expire=1"
is "$(mail_reply "$PA")" "250 2.1.0 count=1" "redis: an expired count starts again"

# Redis stopped but its socket open: answers come after redis_timeout
kill -STOP "$REDIS_PID"
is "$(mail_reply "$PA")" "250 2.1.0 store unavailable" \
	"redis frozen: store_failure open goes on"
is "$(mail_reply "$PB")" "451 4.3.0 state store unavailable" \
	"redis frozen: store_failure tempfail answers 451"
kill -CONT "$REDIS_PID"
WAIT_TIMEOUT=10 wait_for grep -q 'store: redis unavailable: timed out' "$RUN/smtpd.log"
ok $? "redis frozen: the log says the store timed out"

# Redis gone: refused at once
stop_pid "$REDIS_PID"
is "$(mail_reply "$PA")" "250 2.1.0 store unavailable" \
	"redis down: store_failure open goes on"
is "$(mail_reply "$PB")" "451 4.3.0 state store unavailable" \
	"redis down: store_failure tempfail answers 451"
WAIT_TIMEOUT=10 wait_for grep -q 'store: redis unavailable' "$RUN/b.log"
ok $? "redis down: the log says the store is unavailable"

# back again: the links reconnect after their back-off
redis_start
rcli set test_store:127.0.0.1 10 >/dev/null
counts_more() { [[ "$(mail_reply "$1")" =~ ^"250 2.1.0 count="1[1-9]$ ]]; }
WAIT_TIMEOUT=60 wait_for counts_more "$PA"
ok $? "redis back: A reconnects and counts again"
WAIT_TIMEOUT=60 wait_for counts_more "$PB"
ok $? "redis back: B reconnects and counts again"
# log lines are written at the end of a loop turn, after the reply: wait
WAIT_TIMEOUT=10 wait_for grep -q 'store: redis connected again' "$RUN/smtpd.log"
ok $? "redis back: the log says the link is up again"

stop_pid "$PIDA"
stop_pid "$PIDB"
stop_pid "$REDIS_PID"
# so that lib.sh's check for sanitizer reports sees B's too
cat "$RUN/b.log" >>"$RUN/smtpd.log"
