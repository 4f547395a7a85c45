#!/bin/bash
# sluice-smtpd: per-session limits - command line length, text line length,
# message size (SIZE, 552 after reading to the end, for DATA and BDAT),
# recipients per message (452), errors and unknown commands per session
# (421 and disconnect).
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

plan 18
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"

# ---------------------------------------------------------------- daemon A
write_conf "$RUN/a.conf" <<EOF
local_domains sluice.test
max_message_size 20000
max_recipients 100
max_errors 100
max_unknown_commands 100
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/a.conf"

# command lines: 512 octets with CRLF pass; longer ones get 500, the
# session goes on, even after a 20 kB line
x505=$(printf '%505s' '' | tr ' ' x)
x600=$(printf '%600s' '' | tr ' ' x)
x20k=$(printf '%20000s' '' | tr ' ' x)
out=$(smtp_chat <<EOF
EHLO client.test
NOOP $x505
NOOP $x600
NOOP
NOOP $x20k
NOOP
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 500 250 500 250 221 closed" \
	"512-octet command line ok; 600 and 20000 octets: 500; session continues"

# text lines: 998 + CRLF is fine (smtpd_basic), 1200 octets refused after
# the end of DATA, session continues
x1200=$(printf '%1200s' '' | tr ' ' y)
out=$(smtp_chat <<EOF
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
Subject: long line

$x1200
.
NOOP
QUIT
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 250 354 5[0-9][0-9] 250 221 closed$' \
	"a 1200-octet text line: 5xx at end of DATA, session continues"
is "$(maildir_count "$MD")" 0 "message with the over-long line not delivered"

# message size
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@example.org> SIZE=20001
MAIL FROM:<alice@example.org> SIZE=1000
QUIT
EOF
)
grep -q '^250[- ]SIZE 20000$' <<<"$out"
ok $? "EHLO advertises SIZE 20000"
is "$(reply_codes <<<"$out")" "220 250 552 250 221 closed" "MAIL SIZE= over the limit: 552; under: 250"
like "$out" $'\n552 5\\.3\\.4 ' "552 carries 5.3.4"

"$SLUICE_PYTHON" -c 'print("Subject: big\n"); [print("z" * 70) for _ in range(400)]' >"$RUN/big.body"
{
	printf 'EHLO client.test\nMAIL FROM:<alice@example.org>\nRCPT TO:<bob@sluice.test>\nDATA\n'
	cat "$RUN/big.body"
	printf '.\nNOOP\nQUIT\n'
} >"$RUN/big.chat"
out=$(smtp_chat <"$RUN/big.chat")
is "$(reply_codes <<<"$out")" "220 250 250 250 354 552 250 221 closed" \
	"28 kB message via DATA: one 552, only after the final dot; session continues"

out=$(
	{
		printf 'EHLO client.test\\r\\n\nMAIL FROM:<alice@example.org>\\r\\n\nRCPT TO:<bob@sluice.test>\\r\\n\n'
		printf 'BDAT 15000\\r\\n'
		head -c 15000 /dev/zero | tr '\0' b
		printf '\nBDAT 15000 LAST\\r\\n'
		head -c 15000 /dev/zero | tr '\0' b
		printf '\nNOOP\\r\\nQUIT\\r\\n\n'
	} | smtp_chat --raw --timeout 10
)
like "$(reply_codes <<<"$out")" '^220 250 250 250 (250|552) 552 250 221 closed$' \
	"30 kB message via BDAT: 552 at the latest for the LAST chunk; session continues"
is "$(maildir_count "$MD")" 0 "nothing over-size delivered"

# recipients: 100 accepted, the 101st gets 452, the message goes to 100
{
	echo "EHLO client.test"
	echo "!pipeline"
	echo "MAIL FROM:<alice@example.org>"
	for ((i = 1; i <= 101; i++)); do echo "RCPT TO:<user$i@sluice.test>"; done
	echo "!end"
	printf 'DATA\nSubject: many\n\nhello\n.\nQUIT\n'
} >"$RUN/rcpt.chat"
out=$(smtp_chat <"$RUN/rcpt.chat")
codes=$(reply_codes <<<"$out")
is "$(tr ' ' '\n' <<<"$codes" | grep -c '^250$')" $((1 + 1 + 100 + 1)) "100 recipients accepted (+EHLO, MAIL, end of DATA)"
like "$codes" ' 250 452 354 250 221 closed$' "the 101st recipient: 452, DATA still goes through"
like "$out" $'\n452 4\\.5\\.3 ' "452 carries 4.5.3"
is "$(maildir_count "$MD")" 1 "message for 100 recipients delivered"
sluice_stop

# ---------------------------------------------------------------- daemon B
unset PORT
write_conf "$RUN/b.conf" <<EOF
local_domains sluice.test
max_errors 3
max_unknown_commands 2
plugin queue/discard
EOF
sluice_start "$RUN/b.conf"

out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<
MAIL FROM:<
MAIL FROM:<
MAIL FROM:<
MAIL FROM:<
NOOP
EOF
)
codes=$(reply_codes <<<"$out")
like "$codes" '^220 250 501 501 (501 ){0,2}421 closed$' "max_errors 3: 421 and disconnect once the errors are spent"
like "$out" $'\n421 4\\.[0-9]\\.[0-9] ' "421 carries an enhanced code"

out=$(smtp_chat <<'EOF'
EHLO client.test
FOO
BAR
BAZ
QUX
NOOP
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 500 (500 ){0,2}421 closed$' \
	"max_unknown_commands 2: 421 and disconnect once they are spent"

out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<
FOO
RSET
MAIL FROM:<
MAIL FROM:<
NOOP
NOOP
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 501 500 250 (501 ){0,2}421 closed$' \
	"errors of every kind count together and RSET does not reset them"

# limits are per session: a new connection starts afresh
out=$(smtp_chat <<'EOF'
EHLO client.test
FOO
NOOP
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 500 250 221 closed" "counters are per session"
