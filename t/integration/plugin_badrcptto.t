#!/bin/bash
# plugin badrcptto: listed recipients (exact, @domain, regex) get 550
# 5.7.1 at RCPT TO and the transaction goes on with the others; unlisted
# ones are declined; message= replaces the text.
. "$SLUICE_SRC/t/lib.sh"

plan 10
setup_run
MD=$RUN/Maildir

cat >"$RUN/brt.list" <<'EOF'
Info@Sluice.TEST
@old.sluice.test
/^abuse-[a-z]+@/
EOF
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test old.sluice.test
max_errors 50
plugin badrcptto list=@./brt.list
plugin badrcptto name=brt-custom list=retired@sluice.test message="This address is retired"
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

# rcpt_reply RCPT: the reply to RCPT TO:<RCPT>
rcpt_reply() {
	smtp_chat <<EOF | sed -n 4p
HELO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<$1>
QUIT
EOF
}

is "$(rcpt_reply info@sluice.test)" "550 5.7.1 Mail to <info@sluice.test> not accepted here" \
	"exact entry, other case: 550 5.7.1 with the recipient"
like "$(rcpt_reply anyone@OLD.sluice.test)" '^550 5\.7\.1 Mail to <anyone@OLD\.sluice\.test> ' \
	"@domain entry"
like "$(rcpt_reply abuse-desk@sluice.test)" '^550 5\.7\.1 ' "/regex/ entry"
like "$(rcpt_reply Abuse-desk@sluice.test)" '^250 ' "regex without /i is case-sensitive: 250"
like "$(rcpt_reply bob@sluice.test)" '^250 ' "unlisted recipient: 250"
is "$(rcpt_reply retired@sluice.test)" "550 5.7.1 This address is retired" \
	"message= replaces the reply text"

# a refused recipient does not stop the others
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<info@sluice.test>
RCPT TO:<bob@sluice.test>
RCPT TO:<x@old.sluice.test>
DATA
From: alice@example.org
Subject: partly refused

hello
.
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 550 250 550 354 250 221 closed" \
	"550 for listed recipients, 250 for the other, message accepted"
is "$(maildir_count "$MD")" 1 "the message was delivered once"

# all recipients refused: DATA has nobody to deliver to
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<info@sluice.test>
DATA
QUIT
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 550 5[0-9][0-9] 221 closed$' \
	"every recipient refused: DATA is refused too"

grep -q 'plugin=badrcptto verdict=deny reason=listed_rcpt rcpt=<x@old.sluice.test> entry="@old.sluice.test"' "$RUN/smtpd.log"
ok $? "the denial is logged with the matching entry"
