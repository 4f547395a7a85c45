#!/bin/bash
# plugin queue/discard: every message is accepted with 250 2.0.0
# "Ok: discarded", logged, and kept nowhere.
. "$SLUICE_SRC/t/lib.sh"

plan 5
setup_run

write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
plugin queue/discard
EOF
sluice_start "$RUN/smtpd.conf"

out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
RCPT TO:<carol@sluice.test>
DATA
From: alice@example.org
Subject: into the void

hello
.
MAIL FROM:<>
RCPT TO:<bob@sluice.test>
DATA
Subject: a bounce

bounced
.
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 250 354 250 250 250 354 250 221 closed" \
	"two messages in one session, both accepted"
is "$(grep -c '^250 2\.0\.0 Ok: discarded$' <<<"$out")" 2 "each gets 250 2.0.0 Ok: discarded"

grep -q 'plugin=queue/discard verdict=ok reason=discarded id=[^ ]* sender=<alice@example.org> rcpts=2 size=[0-9]' "$RUN/smtpd.log"
ok $? "the drop is logged with id, sender, recipient count and size"
grep -q 'plugin=queue/discard verdict=ok reason=discarded id=[^ ]* sender=<> rcpts=1' "$RUN/smtpd.log"
ok $? "the null sender's message is logged too"

# nothing was written anywhere under the run directory but logs, config and
# the state store
n=$(find "$RUN" -type f ! -name '*.log' ! -name '*.conf' ! -name 'store.mdb*' -newer "$RUN/smtpd.conf" | grep -v '/var/spool/' | wc -l)
is "$n" 0 "no message file was kept"
