#!/bin/bash
# plugin hosts_allow: allow= wins over everything (OK), deny= gets 554
# 5.7.1 and the close, more than max_per_ip= connections get 421 4.7.0
# and the close, anything else is declined.  Clients use 127.0.0.x
# source addresses (all of 127/8 is on lo).
. "$SLUICE_SRC/t/lib.sh"

plan 12
setup_run

# 127.0.0.2-3 are denied, but 127.0.0.3 is also allowed: allow wins
cat >"$RUN/deny.cidrs" <<'EOF'
# refused clients
127.0.0.2/31
192.0.2.0/24
EOF
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_connections_per_ip 100
plugin hosts_allow allow=127.0.0.3 deny=@deny.cidrs max_per_ip=2
plugin queue/discard
EOF
sluice_start "$RUN/smtpd.conf"

out=$(smtp_chat --bind 127.0.0.2 <<<'NOOP')
like "$out" '^554 5\.7\.1 Connection from \[127\.0\.0\.2\] refused' \
	"a client in deny= gets 554 5.7.1 instead of the banner"
like "$out" '!closed' "... and is disconnected"

out=$(smtp_chat --bind 127.0.0.3 <<<'QUIT')
is "$(reply_codes <<<"$out")" "220 221 closed" "a client in both allow= and deny=: allow wins"

out=$(smtp_chat --bind 127.0.0.4 <<'EOF'
HELO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 221 closed" "a client in neither list is declined: normal session"

# max_per_ip=2: hold two connections from 127.0.0.4, the third is refused
smtp_chat --bind 127.0.0.4 --timeout 10 >"$RUN/h1.out" <<<'!sleep 4' &
track_pid $!
smtp_chat --bind 127.0.0.4 --timeout 10 >"$RUN/h2.out" <<<'!sleep 4' &
track_pid $!
wait_for grep -q '^220' "$RUN/h1.out"
ok $? "first connection from 127.0.0.4 is served"
wait_for grep -q '^220' "$RUN/h2.out"
ok $? "second connection from 127.0.0.4 is served"
out=$(smtp_chat --bind 127.0.0.4 <<<'NOOP')
# (the front end may put its host name first in a 421, RFC 5321 4.2)
like "$out" '^421 4\.7\.0 (mx\.sluice\.test )?Too many connections from \[127\.0\.0\.4\]' \
	"the third connection from 127.0.0.4 gets 421 4.7.0"
like "$out" '!closed' "... and is disconnected"
out=$(smtp_chat --bind 127.0.0.5 <<<'QUIT')
is "$(reply_codes <<<"$out")" "220 221 closed" "meanwhile another address is served"

# allow= also skips max_per_ip
smtp_chat --bind 127.0.0.3 --timeout 10 >"$RUN/a1.out" <<<'!sleep 4' &
track_pid $!
smtp_chat --bind 127.0.0.3 --timeout 10 >"$RUN/a2.out" <<<'!sleep 4' &
track_pid $!
wait_for grep -q '^220' "$RUN/a1.out" && wait_for grep -q '^220' "$RUN/a2.out"
out=$(smtp_chat --bind 127.0.0.3 <<<'QUIT')
is "$(reply_codes <<<"$out")" "220 221 closed" "an allowed address is not limited by max_per_ip"

grep -q 'plugin=hosts_allow verdict=deny_disconnect reason=deny ip=127.0.0.2' "$RUN/smtpd.log"
ok $? "the deny is logged"
grep -q 'plugin=hosts_allow verdict=denysoft_disconnect reason=max_per_ip ip=127.0.0.4 connections=3 max=2' "$RUN/smtpd.log"
ok $? "the connection limit is logged with the count"
