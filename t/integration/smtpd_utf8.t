#!/bin/bash
# sluice-smtpd: SMTPUTF8 (RFC 6531) - 8-bit addresses only with SMTPUTF8 on
# MAIL; invalid UTF-8 refused even then; "smtputf8 no" turns it all off.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 12
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_errors 100
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<jösé@example.org>
MAIL FROM:<jose@exämple.org>
MAIL FROM:<alice@example.org>
RCPT TO:<bøb@sluice.test>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 5[0-9][0-9] 5[0-9][0-9] 250 5[0-9][0-9] 250 221 closed$' \
	"without SMTPUTF8: 8-bit sender, 8-bit domain, 8-bit recipient refused"
like "$out" $'\n553 5\\.6\\.7 ' "the refusal is 553 5.6.7 (RFC 6531)"

out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<jösé@exämple.org> SMTPUTF8
RCPT TO:<bøb@sluice.test>
RCPT TO:<日本@sluice.test>
DATA
From: José <jösé@exämple.org>
To: <bøb@sluice.test>
Subject: Grüße

UTF-8 all the way: ☃
.
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 250 354 250 221 closed" "with SMTPUTF8: UTF-8 sender and recipients accepted, message delivered"
is "$(maildir_count "$MD")" 1 "UTF-8 message in the Maildir"
f=$(newest_file "$MD/new")
like "$(first_received "$f")" 'with UTF8SMTPS?A?' "Received: says UTF8SMTP"
grep -q '^Subject: Grüße$' "$f"
ok $? "UTF-8 header stored unchanged"

# invalid UTF-8, even with SMTPUTF8
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
MAIL FROM:<\xff\xfe@example.org> SMTPUTF8\r\n
MAIL FROM:<a\xc0\xafb@example.org> SMTPUTF8\r\n
MAIL FROM:<a\xed\xa0\x80b@example.org> SMTPUTF8\r\n
MAIL FROM:<ab\xc3@example.org> SMTPUTF8\r\n
MAIL FROM:<alice@example.org> SMTPUTF8\r\n
RCPT TO:<b\xe9b@sluice.test>\r\n
RCPT TO:<bob@sluice.test>\r\n
QUIT\r\n
EOF
)
codes=$(reply_codes <<<"$out")
like "$codes" '^220 250 5[0-9][0-9] 5[0-9][0-9] 5[0-9][0-9] 5[0-9][0-9] 250 ' \
	"invalid UTF-8 in MAIL (0xff, overlong, surrogate, truncated): refused"
like "$codes" ' 250 5[0-9][0-9] 250 221 closed$' "latin-1 byte in RCPT: refused; the session goes on"
is "$(maildir_count "$MD")" 1 "nothing more delivered"
sluice_stop

# smtputf8 no
unset PORT
write_conf "$RUN/no.conf" <<EOF
local_domains sluice.test
smtputf8 no
plugin queue/discard
EOF
sluice_start "$RUN/no.conf"
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<jösé@example.org> SMTPUTF8
MAIL FROM:<alice@example.org> SMTPUTF8
MAIL FROM:<alice@example.org>
QUIT
EOF
)
grep -q '^250[- ]SMTPUTF8' <<<"$out"
[ $? = 1 ]
ok $? "smtputf8 no: SMTPUTF8 not advertised"
like "$(reply_codes <<<"$out")" '^220 250 5[0-9][0-9] 5[0-9][0-9] 250 221 closed$' "smtputf8 no: the SMTPUTF8 parameter is refused"
like "$out" $'\n555 ' "... with 555 (parameter not recognised)"
