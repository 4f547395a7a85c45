#!/bin/bash
# plugin queue/maildir: delivery into one shared Maildir (written once for
# all recipients), into per-recipient Maildirs from a %d/%l template
# (lower-cased, no way out of the template), and 451 4.3.0 with nothing
# left behind when a Maildir cannot be written.
. "$SLUICE_SRC/t/lib.sh"
export LC_ALL=C

plan 21
setup_run

# send RCPT...: one message to these recipients; prints the whole chat
send() {
	local r
	{
		echo "EHLO client.test"
		echo "MAIL FROM:<alice@example.org>"
		for r in "$@"; do
			echo "RCPT TO:<$r>"
		done
		echo "DATA"
		echo "From: alice@example.org"
		echo "Subject: maildir test"
		echo ""
		echo "line one"
		echo "..dot-stuffed line"
		echo "."
		echo "QUIT"
	} | smtp_chat
}

# --- one shared Maildir ------------------------------------------------------
MD=$RUN/shared/Maildir
write_conf "$RUN/shared.conf" <<EOF
local_domains sluice.test
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/shared.conf"

out=$(send bob@sluice.test carol@sluice.test)
like "$(final_reply <<<"$out")" '^250 2\.0\.0 Ok: queued as [^ ]+$' "250 2.0.0 Ok: queued as ID"
id=$(final_reply <<<"$out" | sed 's/.* queued as //')
is "$(maildir_count "$MD")" 1 "two recipients, no %: the message is written once"
for d in tmp new cur; do
	[ -d "$MD/$d" ]
	ok $? "the Maildir's $d/ was created"
done
is "$(stat -c %a "$MD")" 700 "created directories have mode 0700"
f=$(newest_file "$MD/new")
like "${f##*/}" '^[0-9]+\.M[0-9]+P[0-9]+Q[0-9]+\.[^/:]+$' "file name is SECONDS.M<usec>P<pid>Q<n>.<host>"
is "$(stat -c %a "$f")" 600 "the message file has mode 0600"
like "$(cat "$f")" $'Subject: maildir test\n\nline one\n\\.dot-stuffed line$' \
	"headers and body arrive with LF line ends, dot-stuffing undone"
is "$(ls -A "$MD/tmp" | wc -l)" 0 "nothing is left in tmp/"
grep -q "queued txn=$id " "$RUN/smtpd.log"
ok $? "the core logs the queue verdict with the id"

send bob@sluice.test >/dev/null
is "$(maildir_count "$MD")" 2 "a second message gets a second, unique file"
sluice_stop

# --- one Maildir per recipient ------------------------------------------------
unset PORT
write_conf "$RUN/per.conf" <<EOF
local_domains sluice.test other.test
plugin queue/maildir path=$RUN/mail/%d/%l
EOF
sluice_start "$RUN/per.conf"
out=$(send Bob@Sluice.TEST carol@sluice.test bob@sluice.test dave@other.test)
like "$(final_reply <<<"$out")" '^250 2\.0\.0 Ok: queued as ' "per-recipient delivery: 250"
c="$(maildir_count "$RUN/mail/sluice.test/bob") $(maildir_count "$RUN/mail/sluice.test/carol") $(maildir_count "$RUN/mail/other.test/dave")"
is "$c" "1 1 1" "one copy per Maildir; Bob@Sluice.TEST and bob@sluice.test share bob's (lower-cased)"

# a quoted local part with '/' and a leading '.' stays inside the template
out=$(send '"../../escape"@sluice.test')
like "$(final_reply <<<"$out")" '^250 ' "a recipient with ../ in its local part is delivered"
n=$(find "$RUN/mail/sluice.test" -mindepth 1 -maxdepth 1 -name '*escape*' | wc -l)
is "$n" 1 "... into a Maildir inside mail/sluice.test/"
[ ! -e "$RUN/escape" ] && [ ! -e "$RUN/mail/escape" ]
ok $? "... and nothing was created outside the template"
sluice_stop

# --- failures: 451 4.3.0, nothing delivered, nothing left in tmp/ ---------------
unset PORT
mkdir -p "$RUN/fail"
: >"$RUN/fail/broken.test" # a file where a domain directory should go
write_conf "$RUN/fail.conf" <<EOF
local_domains sluice.test broken.test
plugin queue/maildir path=$RUN/fail/%d/%l
EOF
sluice_start "$RUN/fail.conf"
out=$(send good@sluice.test)
like "$(final_reply <<<"$out")" '^250 ' "a writable recipient alone is delivered"
out=$(send good@sluice.test bad@broken.test)
is "$(final_reply <<<"$out")" "451 4.3.0 Error writing message to mailbox, try again later" \
	"one of two Maildirs cannot be made: the whole message gets 451 4.3.0"
c="$(maildir_count "$RUN/fail/sluice.test/good") $(ls -A "$RUN/fail/sluice.test/good/tmp" | wc -l)"
is "$c" "1 0" "the good Maildir got no second copy and its tmp/ is empty"
grep -q 'hook=queue plugin=queue/maildir verdict=denysoft' "$RUN/smtpd.log"
ok $? "the tempfail is logged"
