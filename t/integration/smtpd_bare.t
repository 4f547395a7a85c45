#!/bin/bash
# sluice-smtpd: bare LF / bare CR.  DATA ends only at CRLF.CRLF (no SMTP
# smuggling); by default a message holding a bare LF or CR is refused with a
# 5xx and the session continues; "bare_newline normalise" accepts it with
# LF line ends; a bare LF or CR never ends a command line; NUL never
# truncates a command.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 24
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"
write_conf "$RUN/reject.conf" <<EOF
local_domains sluice.test
max_errors 100
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/reject.conf"

ENV='EHLO client.test\r\n
MAIL FROM:<alice@example.org>\r\n
RCPT TO:<bob@sluice.test>\r\n
DATA\r\n'

# --- default policy: reject ---------------------------------------------------
out=$(smtp_chat --raw <<EOF
$ENV
Subject: bare lf\r\n\r\nline one\nline two\r\n.\r\n
NOOP\r\n
QUIT\r\n
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 250 354 5[0-9][0-9] 250 221 closed$' "bare LF in DATA: 5xx, session continues"
like "$out" $'\n5[0-9][0-9] 5\\.[0-9]+\\.[0-9]+ .*[Bb]are|\n5[0-9][0-9] 5\\.[0-9]+\\.[0-9]+ .*(LF|line feed|newline)' "the 5xx says why (bare LF)"

out=$(smtp_chat --raw <<EOF
$ENV
Subject: bare cr\r\n\r\nline one\rline two\r\n.\r\n
NOOP\r\n
QUIT\r\n
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 250 354 5[0-9][0-9] 250 221 closed$' "bare CR in DATA: 5xx, session continues"
is "$(maildir_count "$MD")" 0 "nothing delivered"

# smuggling: none of these ends DATA; only the final CRLF.CRLF does, so
# exactly one reply comes, and the inner "transaction" never runs
n=0
for end in '\n.\n' '\n.\r\n' '\r\n.\n' '\r.\r' '\r\n.\r' '\r\n.\r\r\n'; do
	n=$((n + 1))
	out=$(smtp_chat --raw <<EOF
$ENV
Subject: smuggle $n\r\n\r\nbody$end
MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<bob@sluice.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n
NOOP\r\n
QUIT\r\n
EOF
)
	like "$(reply_codes <<<"$out")" '^220 250 250 250 354 5[0-9][0-9] 250 221 closed$' \
		"'$end' does not end DATA: one 5xx for the whole message, no smuggled replies"
done
is "$(maildir_count "$MD")" 0 "no smuggled message delivered"

# commands: a bare LF or CR does not end a line
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
!expect 0
NOOP\n
!read 1
\r\n
NOOP\r\n
MAIL FROM:<alice@example.org>\nRCPT TO:<bob@sluice.test>\r\n
RCPT TO:<bob@sluice.test>\r\n
MAIL FROM:<alice@example.org>\rRCPT TO:<bob@sluice.test>\r\n
RCPT TO:<bob@sluice.test>\r\n
QUIT\r\n
EOF
)
codes=$(reply_codes <<<"$out")
like "$codes" '^220 250 timeout ' "\"NOOP<LF>\" gets no reply: a bare LF does not end a command"
like "$codes" '^220 250 timeout 50[01] 250 ' "... and the CRLF that follows ends a line refused with 500"
like "$codes" ' 250 50[01] 503 50[01] 503 221 closed$' \
	"MAIL with a bare LF or CR inside is refused whole (the RCPT after it gets 503)"

# NUL never truncates a command
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
MAIL FROM:<alice@example.org>\0 junk\r\n
RCPT TO:<bob@sluice.test>\r\n
MAIL FROM:<alice@example.org>\r\n
RCPT TO:<bob@sluice.test>\0\r\n
QUIT\r\n
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 5[0-9][0-9] 503 250 5[0-9][0-9] 221 closed$' "commands holding a NUL are refused, not truncated"

# BDAT content follows the same policy
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
MAIL FROM:<alice@example.org>\r\n
RCPT TO:<bob@sluice.test>\r\n
BDAT 23 LAST\r\nSubject: b\r\n\r\nbare\nlf\r\n
NOOP\r\n
QUIT\r\n
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 250 5[0-9][0-9] 250 221 closed$' "bare LF in a BDAT chunk: 5xx too"
is "$(maildir_count "$MD")" 0 "still nothing delivered"
sluice_stop

# --- bare_newline normalise -------------------------------------------------------
unset PORT
write_conf "$RUN/norm.conf" <<EOF
local_domains sluice.test
bare_newline normalise
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/norm.conf"

out=$(smtp_chat --raw <<EOF
$ENV
Subject: bare lf\r\n\r\nline one\nline two\r\nline three\n\r\n.\r\n
QUIT\r\n
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "normalise: bare LF accepted"
f=$(newest_file "$MD/new")
is "$(strip_received "$f" | od -An -c | tr -s ' \n' ' ')" \
	"$(printf 'Subject: bare lf\n\nline one\nline two\nline three\n\n' | od -An -c | tr -s ' \n' ' ')" \
	"normalise: stored with LF line ends"

out=$(smtp_chat --raw <<EOF
$ENV
Subject: bare cr\r\n\r\nline one\rline two\r\n.\r\n
QUIT\r\n
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "normalise: bare CR accepted"
f=$(newest_file "$MD/new")
[ -n "$f" ] && ! grep -q $'\r' "$f"
ok $? "normalise: no CR left in the stored message"

out=$(smtp_chat --raw <<EOF
$ENV
Subject: smuggle\r\n\r\nbody\n.\nMAIL FROM:<evil@attacker.test>\r\nRCPT TO:<bob@sluice.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n
QUIT\r\n
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "normalise: '\\n.\\n' still does not end DATA"
is "$(maildir_count "$MD")" 3 "three messages, none smuggled"
grep -lq '^MAIL FROM:<evil@attacker.test>' "$MD"/new/*
ok $? "the would-be smuggled commands are message text"
