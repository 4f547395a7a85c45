#!/bin/bash
# plugin count_unrecognized_commands: below max= unknown commands get the
# core's 500 5.5.1 (the plugin declines); the max-th gets 521 5.5.1 and
# the connection is closed.  The count is per connection.
. "$SLUICE_SRC/t/lib.sh"

plan 9
setup_run

write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_errors 50
max_unknown_commands 50
plugin count_unrecognized_commands max=3
plugin queue/discard
EOF
sluice_start "$RUN/smtpd.conf"

out=$(smtp_chat <<'EOF'
EHLO client.test
FROB 1
NOOP
FROB 2
FROB 3
NOOP
EOF
)
is "$(reply_codes <<<"$out")" "220 250 500 250 500 521 closed" \
	"max=3: two unknown commands get 500, the third 521 and the close"
like "$out" $'\n500 5\\.5\\.1 ' "below the limit the core answers 500 5.5.1"
like "$out" $'\n521 5\\.5\\.1 Closing connection: too many unrecognized commands' \
	"at the limit: 521 5.5.1 with the reason"

# a new connection starts counting from zero
out=$(smtp_chat <<'EOF'
FROB 1
FROB 2
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 500 500 221 closed" \
	"a second connection has its own count"

# known commands, even refused ones, do not count
out=$(smtp_chat <<'EOF'
FROB 1
RCPT TO:<bob@sluice.test>
DATA
FROB 2
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 500 503 503 500 221 closed" \
	"out-of-sequence known commands (503) are not counted"

grep -q 'plugin=count_unrecognized_commands verdict=deny_disconnect reason=unrecognized_commands count=3 max=3' "$RUN/smtpd.log"
ok $? "the disconnect is logged with count and max"
sluice_stop

# the default max is 4
unset PORT
write_conf "$RUN/default.conf" <<EOF
local_domains sluice.test
max_errors 50
max_unknown_commands 50
plugin count_unrecognized_commands
plugin queue/discard
EOF
sluice_start "$RUN/default.conf"
out=$(smtp_chat <<'EOF'
A
B
C
D
NOOP
EOF
)
is "$(reply_codes <<<"$out")" "220 500 500 500 521 closed" "default max=4"

# max=1: the first unknown command already closes
sluice_stop
unset PORT
write_conf "$RUN/one.conf" <<EOF
plugin count_unrecognized_commands max=1
EOF
sluice_start "$RUN/one.conf"
is "$(reply_codes <<<"$(smtp_chat <<<'XYZZY')")" "220 521 closed" "max=1: the first unknown command gets 521"

write_conf "$RUN/bad.conf" <<EOF
plugin count_unrecognized_commands max=0
EOF
"$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/bad.conf" >/dev/null 2>&1
[ $? != 0 ]
ok $? "max=0 is out of range and refused at start-up"
