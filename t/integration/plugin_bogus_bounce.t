#!/bin/bash
# plugin bogus_bounce: bounces (MAIL FROM:<>) with a second recipient,
# to an address in bad_rcpt= (inline, @./file, regex), with a non-empty
# Return-Path:, and with non_local_msgid=yes whose returned Message-IDs
# are all foreign (local_domains= and its default, the host name;
# subdomains, folding, '>' quoting, scan_size); a bounce without any
# Message-ID is neutral; normal mail and relay clients are untouched;
# the outcomes (t/plugins/test_xoutcome.so); config errors.  Then
# sluice-milterd behind a private Postfix: a bounce with two recipients.
. "$SLUICE_SRC/t/lib.sh"

[ -f "$SLUICE_BUILD/t/plugins/test_xoutcome.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_xoutcome.so)"

plan 44
setup_run

SLUICE_CONF_BASE="local_domains sluice.test
relay_clients 192.0.2.0/24
trusted_proxies 127.0.0.1/32
max_errors 50
max_unknown_commands 50
plugin test_xoutcome"

cat >"$RUN/noreply.list" <<'EOF'
# addresses that send no mail
noreply@sluice.test
/^no-?reply-[0-9]+@/i
EOF

# dsn MSGID...: a DSN (RFC 3464) returning the headers of a message with
# these Message-IDs; its own Message-ID: header is always foreign
dsn() {
	local id
	cat <<'EOF'
From: MAILER-DAEMON@elsewhere.example
To: bob@sluice.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn1@elsewhere.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.elsewhere.example
Final-Recipient: rfc822; nobody@elsewhere.example
Action: failed
Status: 5.1.1

--b1
Content-Type: text/rfc822-headers

From: bob@sluice.test
To: nobody@elsewhere.example
Subject: hello
EOF
	for id in "$@"; do
		printf '%s\n' "$id"
	done
	printf '\n--b1--\n'
}
# plain [HEADER...]: a small message with these extra header lines
plain() {
	printf '%s\n' "$@"
	printf 'From: someone@elsewhere.example\nSubject: test\n\nhello\n'
}

# send SENDER RCPTS FILE [XCLIENT-ADDR]: one message (RCPTS comma-
# separated); prints the replies from MAIL on and the outcome, joined by |
send() {
	local r skip=2
	[ -n "${4:-}" ] && skip=4
	{
		echo "HELO client.test"
		if [ -n "${4:-}" ]; then
			echo "XCLIENT ADDR=$4"
			echo "HELO client.test"
		fi
		echo "MAIL FROM:<$1>"
		for r in ${2//,/ }; do
			echo "RCPT TO:<$r>"
		done
		echo "DATA"
		cat "$3"
		echo "."
		echo "XOUTCOME bogus_bounce"
		echo "QUIT"
	} | smtp_chat | grep -E '^[0-9]{3} ' | sed "1,${skip}d;\$d" |
		sed 's/^250 2\.0\.0 result\.bogus_bounce=/outcome=/;s/^250 2\.0\.0 Ok: .*/queued/' |
		paste -sd '|'
}
# rcpt_reply SENDER RCPT: the reply to RCPT TO:<RCPT>, a |, the outcome
rcpt_reply() {
	printf 'HELO client.test\nMAIL FROM:<%s>\nRCPT TO:<%s>\nXOUTCOME bogus_bounce\nQUIT\n' "$1" "$2" |
		smtp_chat | grep -E '^[0-9]{3} ' | sed -n '4,5p' |
		sed 's/^250 2\.0\.0 result\.bogus_bounce=/outcome=/' | paste -sd '|'
}

dsn >"$RUN/dsn-plain"
plain >"$RUN/plain"
plain "Return-Path: <someone@elsewhere.example>" >"$RUN/plain-rp"
plain "Return-Path:  <> " >"$RUN/plain-rp-empty"

# ---------------------------------------------------------------- defaults
sluice_restart defaults <<'EOF'
plugin bogus_bounce bad_rcpt=@./noreply.list,mailer-daemon@sluice.test
plugin queue/discard
EOF
# the replies are MAIL, RCPT..., DATA, the dot, the outcome
is "$(send '' bob@sluice.test "$RUN/dsn-plain")" "250 2.1.0 Ok|250 2.1.5 Ok|354 End data with <CR><LF>.<CR><LF>|queued|outcome=pass" \
	"a bounce to one recipient: accepted, outcome pass"
is "$(send '' bob@sluice.test,carol@sluice.test,dave@sluice.test "$RUN/dsn-plain")" \
	"250 2.1.0 Ok|250 2.1.5 Ok|550 5.7.1 Bounces have one recipient|550 5.7.1 Bounces have one recipient|354 End data with <CR><LF>.<CR><LF>|queued|outcome=fail single-recipient" \
	"a bounce's second and third RCPT: 550 5.7.1, the first recipient's copy accepted, outcome fail single-recipient"
is "$(rcpt_reply '' noreply@sluice.test)" "550 5.7.1 Address <noreply@sluice.test> sends no mail, so it gets no bounces|outcome=fail bad-rcpt" \
	"a bounce to an address of the bad_rcpt list file: 550 5.7.1, outcome fail bad-rcpt"
is "$(rcpt_reply '' No-Reply-42@sluice.test | cut -d '|' -f 1)" "550 5.7.1 Address <No-Reply-42@sluice.test> sends no mail, so it gets no bounces" \
	"bad_rcpt: a regex entry from the list file"
is "$(rcpt_reply '' MAILER-DAEMON@sluice.test | cut -d '|' -f 1)" "550 5.7.1 Address <MAILER-DAEMON@sluice.test> sends no mail, so it gets no bounces" \
	"bad_rcpt: an inline entry, any case"
is "$(rcpt_reply '' bob@sluice.test)" "250 2.1.5 Ok|outcome=(none)" \
	"a bounce to another address: 250"
is "$(send '' bob@sluice.test "$RUN/plain-rp")" "250 2.1.0 Ok|250 2.1.5 Ok|354 End data with <CR><LF>.<CR><LF>|550 5.7.1 Bounce with a non-empty Return-Path|outcome=fail return-path" \
	"a bounce with Return-Path: <someone@...>: 550 5.7.1 at the dot, outcome fail return-path"
is "$(send '' bob@sluice.test "$RUN/plain-rp-empty" | cut -d '|' -f 4,5)" "queued|outcome=pass" \
	"a bounce with Return-Path: <>: accepted"
is "$(send alice@elsewhere.example bob@sluice.test,carol@sluice.test,noreply@sluice.test "$RUN/plain-rp")" \
	"250 2.1.0 Ok|250 2.1.5 Ok|250 2.1.5 Ok|250 2.1.5 Ok|354 End data with <CR><LF>.<CR><LF>|queued|outcome=skip not-a-bounce" \
	"normal mail (three recipients, bad_rcpt address, Return-Path:): untouched, outcome skip"
is "$(send '' bob@sluice.test,carol@sluice.test "$RUN/plain-rp" 192.0.2.5)" \
	"250 2.1.0 Ok|250 2.1.5 Ok|250 2.1.5 Ok|354 End data with <CR><LF>.<CR><LF>|queued|outcome=skip relay" \
	"a relay client's bounce (XCLIENT ADDR=192.0.2.5): untouched, outcome skip relay"
is "$(send '' bob@sluice.test,carol@sluice.test "$RUN/dsn-plain" 198.51.100.7 | cut -d '|' -f 3)" \
	"550 5.7.1 Bounces have one recipient" "XCLIENT ADDR=198.51.100.7 (no relay client): checked"
out=$(printf 'HELO client.test\nMAIL FROM:<>\nRCPT TO:<bob@sluice.test>\nRCPT TO:<carol@sluice.test>\nRSET\nMAIL FROM:<alice@elsewhere.example>\nXOUTCOME bogus_bounce\nQUIT\n' |
	smtp_chat | grep result)
is "$out" "250 2.0.0 result.bogus_bounce=fail single-recipient" \
	"a fail outcome stays for the connection when later mail is not a bounce"
grep -q 'plugin=bogus_bounce verdict=deny check=single-recipient rcpt=<carol@sluice.test> accepted=1 text="Bounces have one recipient"' "$RUN/smtpd.log"
ok $? "the single-recipient denial is logged"
grep -q 'plugin=bogus_bounce verdict=deny check=bad-rcpt rcpt=<noreply@sluice.test> entry="noreply@sluice.test"' "$RUN/smtpd.log"
ok $? "the bad_rcpt denial is logged with the entry"
grep -q 'plugin=bogus_bounce verdict=deny check=return-path return_path="<someone@elsewhere.example>"' "$RUN/smtpd.log"
ok $? "the Return-Path denial is logged with the header"

sluice_restart off <<'EOF'
plugin bogus_bounce single_recipient=no empty_return_path=no
plugin queue/discard
EOF
is "$(send '' bob@sluice.test,carol@sluice.test "$RUN/plain-rp" | cut -d '|' -f 3,5,6)" "250 2.1.5 Ok|queued|outcome=pass" \
	"single_recipient=no empty_return_path=no: two recipients and a Return-Path pass"
is "$(rcpt_reply '' noreply@sluice.test)" "250 2.1.5 Ok|outcome=(none)" \
	"no bad_rcpt=: no address is refused"

# ---------------------------------------------------------------- non_local_msgid
sluice_restart msgid <<'EOF'
plugin bogus_bounce non_local_msgid=yes
plugin queue/discard
EOF
dsn 'Message-ID: <abc.1@mx.sluice.test>' >"$RUN/dsn-local"
dsn 'Message-Id: <abc.2@elsewhere.example>' >"$RUN/dsn-foreign"
dsn 'Message-ID:' '    <abc.3@mx.sluice.test>' >"$RUN/dsn-folded"
dsn '> Message-ID: <abc.4@elsewhere.example>' >"$RUN/dsn-quoted"
dsn 'Message-ID: <abc.5@elsewhere.example>' 'Message-ID: <abc.6@MX.Sluice.Test>' >"$RUN/dsn-mixed"
is "$(send '' bob@sluice.test "$RUN/dsn-local" | cut -d '|' -f 4,5)" "queued|outcome=pass" \
	"non_local_msgid: the returned Message-ID is ours (the host name, macro j): accepted"
is "$(send '' bob@sluice.test "$RUN/dsn-foreign" | cut -d '|' -f 4,5)" \
	"550 5.7.1 Bounce of a message we did not send|outcome=fail non-local-msgid" \
	"non_local_msgid: only a foreign Message-ID: 550 5.7.1, outcome fail non-local-msgid"
is "$(send '' bob@sluice.test "$RUN/dsn-plain" | cut -d '|' -f 4,5)" "queued|outcome=neutral no-msgid" \
	"non_local_msgid: no Message-ID in the body (the header's does not count): accepted, outcome neutral"
is "$(send '' bob@sluice.test "$RUN/dsn-folded" | cut -d '|' -f 4)" "queued" \
	"non_local_msgid: a folded Message-ID: line is read"
is "$(send '' bob@sluice.test "$RUN/dsn-quoted" | cut -d '|' -f 4)" "550 5.7.1 Bounce of a message we did not send" \
	"non_local_msgid: a '>'-quoted Message-ID: line is read"
is "$(send '' bob@sluice.test "$RUN/dsn-mixed" | cut -d '|' -f 4)" "queued" \
	"non_local_msgid: one of ours among foreign ones (any case): accepted"
is "$(send alice@elsewhere.example bob@sluice.test "$RUN/dsn-foreign" | cut -d '|' -f 4,5)" "queued|outcome=skip not-a-bounce" \
	"non_local_msgid: normal mail is never looked at"
grep -q 'plugin=bogus_bounce verdict=deny check=non-local-msgid msgids=1 first=<abc.2@elsewhere.example>' "$RUN/smtpd.log"
ok $? "the non-local-msgid denial is logged with the first foreign Message-ID"

sluice_restart msgid-domains <<'EOF'
plugin bogus_bounce non_local_msgid=yes local_domains=sluice.test,example.org scan_size=2k
plugin queue/discard
EOF
dsn 'Message-ID: <x.1@host.sluice.test>' >"$RUN/dsn-sub"
dsn 'Message-ID: <x.2@notsluice.test>' >"$RUN/dsn-notsub"
dsn 'Message-ID: <x.3@example.org>' >"$RUN/dsn-second"
{
	dsn
	for i in $(seq 1 40); do
		echo "filler line $i, long enough to push what follows past two kilobytes"
	done
	echo 'Message-ID: <x.4@elsewhere.example>'
} >"$RUN/dsn-late"
is "$(send '' bob@sluice.test "$RUN/dsn-sub" | cut -d '|' -f 4)" "queued" \
	"local_domains=sluice.test: a Message-ID of a subdomain is ours"
is "$(send '' bob@sluice.test "$RUN/dsn-notsub" | cut -d '|' -f 4)" "550 5.7.1 Bounce of a message we did not send" \
	"local_domains=sluice.test: notsluice.test is not a subdomain"
is "$(send '' bob@sluice.test "$RUN/dsn-second" | cut -d '|' -f 4)" "queued" \
	"local_domains: the second domain of the list"
is "$(send '' bob@sluice.test "$RUN/dsn-local" | cut -d '|' -f 4)" "queued" \
	"local_domains=sluice.test: mx.sluice.test is a subdomain"
is "$(send '' bob@sluice.test "$RUN/dsn-late" | cut -d '|' -f 4,5)" "queued|outcome=neutral no-msgid" \
	"scan_size=2k: a Message-ID after the first 2 KB is not seen"

# ---------------------------------------------------------------- reject=defer
sluice_restart defer <<'EOF'
plugin bogus_bounce reject=defer
plugin queue/discard
EOF
out=$(printf 'HELO client.test\nMAIL FROM:<>\nRCPT TO:<bob@sluice.test>\nRCPT TO:<carol@sluice.test>\nRCPT TO:<dave@sluice.test>\nQUIT\n' |
	smtp_chat | grep -E '^[0-9]{3} ' | sed -n '4,6p' | paste -sd '|')
is "$out" "250 2.1.5 Ok|250 2.1.5 Ok|550 5.7.1 Bounces have one recipient" \
	"reject=defer: the second RCPT only marks the connection, the mark refuses the next RCPT"
sluice_stop

# ---------------------------------------------------------------- config errors
conf_fails "a bare domain in bad_rcpt" '6: plugin bogus_bounce: bad_rcpt: entry "example\.com": ' <<'EOF'
plugin bogus_bounce bad_rcpt=example.com
EOF
conf_fails "a missing bad_rcpt file" '6: plugin bogus_bounce: bad_rcpt: .*/nonexistent\.list: No such file' <<'EOF'
plugin bogus_bounce bad_rcpt=@./nonexistent.list
EOF
conf_fails "scan_size=10" '6: plugin bogus_bounce: scan_size: ' <<'EOF'
plugin bogus_bounce scan_size=10
EOF
conf_fails "non_local_msgid=maybe" '6: plugin bogus_bounce: non_local_msgid: ' <<'EOF'
plugin bogus_bounce non_local_msgid=maybe
EOF

# ---------------------------------------------------------------- sluice-milterd behind Postfix
MILTER_TESTS=5
if why=$(pf_milterd_why); then
	skip $MILTER_TESTS "$why"
else
	pf_milterd_setup
	pf_milterd_chain <<<"plugin bogus_bounce"
	out=$(swaks --server 127.0.0.1 --port "$SPORT" --timeout 20 --helo client.test \
		--from '<>' --to bob@sluice.test,carol@sluice.test \
		--add-header "X-Case: m-bounce" 2>&1)
	like "$(reply_to 'RCPT TO:<bob@sluice.test>' "$out")" '^250 ' "milterd: a bounce's first RCPT passes"
	is "$(reply_to 'RCPT TO:<carol@sluice.test>' "$out")" "550 5.7.1 Bounces have one recipient" \
		"milterd: its second RCPT gets 550 5.7.1 from Postfix"
	like "$(reply_to . "$out")" '^250 ' "milterd: the bounce is accepted for the first recipient"
	delivered() {
		grep -l -x -s "X-Case: m-bounce" "$INBOX"/new/* >/dev/null 2>&1
	}
	WAIT_TIMEOUT=15 wait_for delivered
	"$PF" drain "$PFD" 15
	is "$(grep -l -x -s 'X-Case: m-bounce' "$INBOX"/new/* | xargs -r grep -h '^X-Original-To:')" \
		"X-Original-To: bob@sluice.test" "milterd: one copy delivered, to bob"
	milterd_stop
	is "$(grep -c -E 'AddressSanitizer|runtime error' "$RUN/milterd.log")" 0 \
		"no sanitizer report in milterd's log"
fi
