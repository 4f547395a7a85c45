#!/bin/bash
# sluice-smtpd: PIPELINING (RFC 2920) - groups of commands in one write get
# all their replies, in order; errors inside a group stay in place.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 6
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_errors 50
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

# Two whole transactions and QUIT in three writes: the end of one message,
# the next envelope and DATA share a write, as RFC 2920 allows.
out=$(smtp_chat <<'EOF'
EHLO client.test
!pipeline
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
RCPT TO:<carol@sluice.test>
DATA
!end
!pipeline
Subject: pipelined one

first body
.
MAIL FROM:<alice@example.org>
RCPT TO:<dave@sluice.test>
DATA
!end
!pipeline
Subject: pipelined two

second body
.
QUIT
!end
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 250 354 250 250 250 354 250 221 closed" \
	"pipelined transactions: every reply, in order"
is "$(maildir_count "$MD")" 2 "both pipelined messages delivered"

# Errors inside a group are answered in place, the rest goes on.
out=$(smtp_chat <<'EOF'
EHLO client.test
!pipeline
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test
RCPT TO:<someone@elsewhere.test>
RCPT TO:<bob@sluice.test>
FROBNICATE
NOOP
RSET
NOOP
!end
QUIT
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 501 55[04] 250 500 250 250 250 221 closed$' \
	"group with a syntax error, a relay refusal and an unknown verb: replies in place"

# A large group: 200 NOOPs in one write, 200 replies.
{
	echo "EHLO client.test"
	echo "!pipeline"
	for ((i = 0; i < 200; i++)); do echo "NOOP $i"; done
	echo "!end"
	echo "QUIT"
} >"$RUN/noops"
out=$(smtp_chat <"$RUN/noops")
codes=$(reply_codes <<<"$out")
is "$(tr ' ' '\n' <<<"$codes" | grep -c '^250$')" 201 "200 pipelined NOOPs get 200 replies (+ EHLO)"
like "$codes" ' 221 closed$' "session ends cleanly after the big group"
is "$(grep -c '^!timeout' <<<"$out")" 0 "no reply missing"
