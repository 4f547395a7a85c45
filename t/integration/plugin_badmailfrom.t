#!/bin/bash
# plugin badmailfrom: listed senders (exact, @domain, regex, from a list
# file) get 550 5.7.1 at MAIL FROM, others and the null sender are
# declined; message= replaces the text; a bad entry stops start-up.
. "$SLUICE_SRC/t/lib.sh"

plan 14
setup_run

cat >"$RUN/bmf.list" <<'EOF'
# exact, domain and regex entries
Spammer@Example.NET
@spam.example
/^bulk-[0-9]+@/i
# would match the null sender if that were ever looked up
/^$/
EOF
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_errors 50
plugin badmailfrom list=@./bmf.list
plugin badmailfrom name=bmf-custom list=custom@example.org message="Go away, custom"
plugin queue/discard
EOF
sluice_start "$RUN/smtpd.conf"

# mail_reply SENDER: the reply to MAIL FROM:<SENDER>
mail_reply() {
	smtp_chat <<EOF | sed -n 3p
HELO client.test
MAIL FROM:<$1>
QUIT
EOF
}

out=$(mail_reply spammer@example.net)
is "$out" "550 5.7.1 Mail from <spammer@example.net> not accepted here" \
	"exact entry, other case: 550 5.7.1 with the sender"
like "$(mail_reply SPAMMER@EXAMPLE.NET)" '^550 5\.7\.1 ' "exact entry matches in upper case too"
like "$(mail_reply anyone@Spam.Example)" '^550 5\.7\.1 Mail from <anyone@Spam\.Example> ' \
	"@domain entry from the list file"
like "$(mail_reply someone@sub.spam.example)" '^250 ' "@domain does not match a subdomain"
like "$(mail_reply BULK-42@lists.example)" '^550 5\.7\.1 ' "/regex/i entry"
like "$(mail_reply bulk-x@lists.example)" '^250 ' "regex not matching: declined, 250"
like "$(mail_reply alice@example.org)" '^250 ' "unlisted sender: 250"
like "$(mail_reply '')" '^250 ' "null sender <> is never matched (even by /^\$/)"
is "$(mail_reply custom@example.org)" "550 5.7.1 Go away, custom" \
	"message= replaces the reply text (second instance)"

# after a refused MAIL the session goes on and delivers
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<spammer@example.net>
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
From: alice@example.org
Subject: after a refusal

hello
.
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 550 250 250 354 250 221 closed" \
	"after 550 at MAIL a new MAIL is accepted and the message delivered"

grep -q 'plugin=badmailfrom verdict=deny reason=listed_sender sender=<spammer@example.net> entry="Spammer@Example.NET"' "$RUN/smtpd.log"
ok $? "the denial is logged with the matching entry"
grep -q 'plugin=bmf-custom verdict=deny' "$RUN/smtpd.log"
ok $? "the second instance logs under its name="
sluice_stop

# a bare domain is refused at start-up, naming the entry
write_conf "$RUN/bad.conf" <<EOF
plugin badmailfrom list=example.com
EOF
out=$("$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/bad.conf" 2>&1)
st=$?
[ $st != 0 ]
ok $? "a bare domain entry fails the config check (exit $st)"
like "$out" 'bad\.conf:[0-9]+: plugin badmailfrom: list: entry "example\.com": .*@example\.com' \
	"the error names file, line, plugin and entry"
