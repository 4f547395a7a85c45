#!/bin/bash
# sluice-smtpd: connection limits (per client IP, total) and timeouts (idle,
# total deadline for DATA).  Uses 127.0.0.2 and 127.0.0.3 as other clients.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 13
setup_run

# ms: milliseconds since the epoch
ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }

# ---------------------------------------------------------------- connections
write_conf "$RUN/c.conf" <<EOF
local_domains sluice.test
max_connections 3
max_connections_per_ip 2
plugin queue/discard
EOF
sluice_start "$RUN/c.conf"

# read_banner FD: the first line the server sent on FD (2 s at most)
read_banner() {
	local line=
	IFS= read -r -t 2 line <&"$1"
	printf '%s' "${line%$'\r'}"
}

exec 3<>"/dev/tcp/127.0.0.1/$PORT"
b3=$(read_banner 3)
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
b4=$(read_banner 4)
like "$b3 / $b4" '^220 .* / 220 ' "two connections from 127.0.0.1 are served"
out=$(smtp_chat <<<'NOOP')
like "$out" '^421 ' "the 3rd connection from 127.0.0.1 gets 421 (max_connections_per_ip 2)"
like "$out" '!closed' "... and is closed"

smtp_chat --bind 127.0.0.2 >"$RUN/c5.out" <<<'!sleep 3' &
track_pid $!
wait_for grep -q '^220' "$RUN/c5.out"
ok $? "a connection from 127.0.0.2 is served (3 of max_connections 3)"
out=$(smtp_chat --bind 127.0.0.3 <<<'NOOP')
like "$out" '^421 ' "a 4th connection in total gets 421 (max_connections 3)"

exec 3<&- 3>&-
# once a slot is free, 127.0.0.1 is served again
chat_ok() {
	local o
	o=$(smtp_chat <<<'QUIT')
	[[ $o == 220* ]]
}
wait_for chat_ok
ok $? "after one connection closed, 127.0.0.1 is served again"
exec 4<&- 4>&-
sluice_stop

# ---------------------------------------------------------------- timeouts
unset PORT
write_conf "$RUN/t.conf" <<EOF
local_domains sluice.test
idle_timeout 1s
data_timeout 2s
plugin queue/maildir path=$RUN/Maildir
EOF
mkdir -p "$RUN/Maildir"
sluice_start "$RUN/t.conf"

t0=$(ms)
out=$(smtp_chat <<'EOF'
EHLO client.test
!read 5
!wait_close 3
EOF
)
t1=$(ms)
like "$out" $'\n421 ' "idle session gets 421"
like "$out" '!closed$' "... and is closed"
d=$((t1 - t0))
[ "$d" -ge 800 ] && [ "$d" -le 4000 ]
ok $? "idle_timeout 1s: closed after ${d} ms"

# DATA trickled in every 0.4 s: never idle for 1 s, but the whole DATA
# phase has a 2 s deadline
{
	printf 'EHLO client.test\nMAIL FROM:<alice@example.org>\nRCPT TO:<bob@sluice.test>\nDATA\nSubject: slow\n\n'
	for ((i = 0; i < 15; i++)); do printf 'line %d\n!sleep 0.4\n' "$i"; done
	printf '.\nQUIT\n'
} >"$RUN/slow.chat"
t0=$(ms)
out=$(smtp_chat <"$RUN/slow.chat")
t1=$(ms)
like "$(reply_codes <<<"$out")" '^220 250 250 250 354 421 closed$' "slow DATA: 421 and close"
d=$((t1 - t0))
[ "$d" -ge 1800 ] && [ "$d" -le 4500 ]
ok $? "data_timeout 2s: cut after ${d} ms although never idle for 1 s"
is "$(maildir_count "$RUN/Maildir")" 0 "nothing delivered from the timed-out DATA"

# an active session is not cut by the idle timer
out=$(smtp_chat <<'EOF'
EHLO client.test
!sleep 0.6
NOOP
!sleep 0.6
NOOP
!sleep 0.6
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 221 closed" "commands every 0.6 s keep the session alive past 1 s"
