#!/bin/bash
# plugin queue/smtp-forward: sluice-smtpd forwarding into a private Postfix
# (t/pf-instance.sh; one instance, a plain smtpd port and one offering
# STARTTLS) and into t/smtpfake.py, a scripted next hop.  Cases:
#   A  delivery: 250 naming the next hop's queue id, only after Postfix
#      took the message; the delivered copy byte for byte (odd header
#      spacing, folding, a dot-stuffed line, a bare LF and a bare CR that
#      bare_newline normalise turned into line ends: no CR arrives); the
#      log line (relay, tls, forward, reply, duration); XCLIENT: Postfix
#      logs and records the original client and its HELO name
#   B  the wire (smtpfake record): the DATA bytes exactly, CRLF only and
#      dot-stuffed; XCLIENT's attributes, the second EHLO with the
#      client's name, SIZE= and BODY=8BITMIME
#   C  XFORWARD (xclient=no): Postfix logs orig_client= and orig_queue_id=
#   D  refusals mapped back, nothing delivered: RCPT 550, 450 beside a
#      550 (the temporary one wins), MAIL 553 and 451, DATA 554, end of
#      data 550; the session goes on (a good message after a refusal)
#   E  STARTTLS to Postfix: starttls=require (ESMTPS), tls_verify=yes
#      with tls_ca and the right name, a wrong name -> 451; starttls=require
#      where STARTTLS is not offered -> 451
#   F  failures -> 451 4.4.x and the session goes on: next hop down, a
#      silent next hop (command_timeout), one that hangs after DATA
#      (data_timeout), malformed replies (no code, changing codes, LF
#      line end), a reply injected behind STARTTLS's 220, a connection
#      lost in the middle of the message, a refused greeting; a 421 at
#      RCPT passed on as 451; STARTTLS, XCLIENT, XFORWARD refused: logged
#      and done without (451 when STARTTLS is required); a UTF-8 address
#      for a next hop without SMTPUTF8: 550 5.6.7; a client that leaves
#      while its message is forwarded (the session is dropped, logged)
#   G  10 concurrent clients, all delivered
#   H  option errors stop start-up with "file:line: plugin NAME: reason"
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

[ -x "$SLUICE_BUILD/sluice-smtpd" ] || {
	echo "Bail out! $SLUICE_BUILD/sluice-smtpd not built"
	exit 1
}
[ -f "$SLUICE_BUILD/plugins/queue/smtp-forward.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/queue/smtp-forward.so)"
[ "$(id -u)" = 0 ] || skip_all "a private Postfix needs root"
command -v postfix >/dev/null 2>&1 || skip_all "postfix not installed"
command -v swaks >/dev/null 2>&1 || skip_all "swaks not installed"
command -v openssl >/dev/null 2>&1 || skip_all "openssl not installed"

plan 94
setup_run

PF=$SLUICE_SRC/t/pf-instance.sh
PFD=$RUN/pf
INBOX=$PFD/mail/inbox
PFPORT=$(free_port) && TLSPORT=$(free_port) && FPORT=$(free_port) &&
	DEADPORT=$(free_port) || {
	echo "Bail out! no free port"
	exit 1
}

stop_at_exit "$PFD/maillog" "$PF" stop "$PFD"

# ---------------------------------------------------------------- Postfix
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$RUN/tls.key" \
	-out "$RUN/tls.crt" -days 2 -subj /CN=mx.sluice.test \
	-addext subjectAltName=DNS:mx.sluice.test >/dev/null 2>&1 || {
	echo "Bail out! openssl req failed"
	exit 1
}
"$PF" create "$PFD" "$PFPORT" maildir || {
	echo "Bail out! pf-instance.sh create failed"
	exit 1
}
cp "$RUN/tls.key" "$RUN/tls.crt" "$PFD/etc/"
cat >"$PFD/etc/rcpt_access" <<EOF
reject550@sluice.test 550 5.1.1 no such user
defer450@sluice.test 450 4.2.1 try again later
EOF
cat >"$PFD/etc/sender_access" <<EOF
badsender@example.org 553 5.7.1 not allowed
tempsender@example.org 451 4.7.1 come back later
EOF
cat >"$PFD/etc/data_access" <<EOF
dataref@example.org 554 5.7.1 no data for you
EOF
cat >"$PFD/etc/eod_access" <<EOF
eodref@example.org 550 5.7.1 content refused
EOF
# One instance, two ports: the plain one does not offer STARTTLS.
postconf -c "$PFD/etc" -e 'smtpd_delay_reject = no' \
	"smtpd_sender_restrictions = check_sender_access texthash:$PFD/etc/sender_access" \
	"smtpd_recipient_restrictions = check_recipient_access texthash:$PFD/etc/rcpt_access, permit_mynetworks, reject" \
	"smtpd_data_restrictions = check_sender_access texthash:$PFD/etc/data_access" \
	"smtpd_end_of_data_restrictions = check_sender_access texthash:$PFD/etc/eod_access" \
	'smtpd_authorized_xforward_hosts = 127.0.0.0/8' \
	"smtpd_tls_cert_file = $PFD/etc/tls.crt" \
	"smtpd_tls_key_file = $PFD/etc/tls.key" \
	'smtpd_tls_security_level = none' 'smtpd_tls_loglevel = 1'
echo "127.0.0.1:$TLSPORT inet n - n - - smtpd -o smtpd_tls_security_level=may" \
	>>"$PFD/etc/master.cf"
touch -d '-1 min' "$PFD/etc/main.cf" "$PFD/etc/master.cf"
"$PF" start "$PFD" 20 || {
	echo "Bail out! private Postfix did not start"
	exit 1
}

# ---------------------------------------------------------------- helpers
SLUICE_CONF_BASE=$'local_domains sluice.test\nbare_newline normalise'
SMTP_CHAT_ARGS=(--bind 127.0.0.10 --timeout 20)

# after_ours FILE: FILE after our Received: header
after_ours() {
	after_received_by "$1" "mx.sluice.test (sluice)"
}

# fake MODE [CODES]: (re)start t/smtpfake.py on $FPORT in $RUN/fake
fake() {
	smtpfake "$FPORT" "$1" "$RUN/fake" "${@:2}"
}

# inbox_has N: true once Postfix's Maildir holds N messages or more
inbox_has() {
	[ "$(maildir_count "$INBOX")" -ge "$1" ]
}

# delivered_count: messages in Postfix's Maildir (its queue drained first)
delivered_count() {
	"$PF" drain "$PFD" 30 >/dev/null
	maildir_count "$INBOX"
}

# ---------------------------------------------------------------- A delivery
sluice_restart plain <<EOF
plugin queue/smtp-forward host=127.0.0.1:$PFPORT
EOF
out=$(swaks_to --local-interface 127.0.0.10 --helo client.example \
	--from alice@example.org --to bob@sluice.test --header 'Subject: A1')
like "$(grep '^<-  250 2.0.0 Ok: queued' <<<"$out")" \
	'^<-  250 2\.0\.0 Ok: queued as [0-9A-F]+\.1 \(next hop: 250 2\.0\.0 Ok: queued as [0-9A-Z]+\)$' \
	"A1: 250 2.0.0 naming our id and the next hop's reply"
WAIT_TIMEOUT=30 wait_for inbox_has 1
ok $? "A1: Postfix delivered the message"
f=$(newest_file "$INBOX/new")
pfid=$(sed -n 's/.*next hop: 250 2.0.0 Ok: queued as \([0-9A-Z]*\).*/\1/p' <<<"$out")
grep -q "^[[:space:]]*by mx.sluice.test (Postfix) with ESMTP id $pfid" "$f"
ok $? "A1: the copy is the one Postfix queued as $pfid"
like "$(grep -m1 '^Received: ' "$f")" '^Received: from client\.example \(unknown \[127\.0\.0\.10\]\)$' \
	"A1: XCLIENT: Postfix's Received: names the original client and its HELO"
grep -q "$pfid: client=unknown\[127.0.0.10\]" "$PFD/maillog"
ok $? "A1: XCLIENT: Postfix logs client=unknown[127.0.0.10]"
like "$(grep 'plugin=queue/smtp-forward' "$RUN/smtpd.log" | grep verdict=ok | tail -n 1)" \
	"relay=127\.0\.0\.1\[127\.0\.0\.1\]:$PFPORT tls=none forward=xclient rcpts=1 verdict=ok reply=\"250 2\.0\.0 Ok: queued as .*nexthop=\"250 2\.0\.0 Ok: queued as $pfid\" duration=[0-9]+ms" \
	"A1: one log line: relay, tls, forward, verdict, the next hop's reply, duration"

# exact bytes: header spacing and folding kept, bare LF / bare CR as line
# ends (bare_newline normalise), dot-stuffing undone then redone
HDRS='From: alice@example.org\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-Id: <raw@example.org>\r\n'
RAWMSG=$HDRS'X-Test: raw\r\nSubject:   spaced  out\r\nX-Folded: a\r\n\tb\r\n\r\nline one\nbare lf\rbare cr\r\n..dotted\r\n..\r\ntail  \r\n'
WANT=$'From: alice@example.org\nDate: Thu, 01 Jan 2026 00:00:00 +0000\nMessage-Id: <raw@example.org>\nX-Test: raw\nSubject:   spaced  out\nX-Folded: a\n\tb\n\nline one\nbare lf\nbare cr\n.dotted\n.\ntail  \n'
# what goes on the wire: CRLF, dot-stuffed, the final dot
WIRE=${WANT//$'\n'/$'\r\n'}
WIRE=${WIRE//$'\r\n.'/$'\r\n..'}.$'\r\n'
before=$(maildir_count "$INBOX")
out=$(smtp_chat --raw --bind 127.0.0.10 --timeout 20 <<EOF
EHLO client.example\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@sluice.test>\r\nDATA\r\n
$RAWMSG.\r\n
QUIT\r\n
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 250 354 250 221' "A2: a message with a bare LF and a bare CR is forwarded"
WAIT_TIMEOUT=30 wait_for inbox_has $((before + 1))
f=$(newest_file "$INBOX/new")
is "$(after_ours "$f")" "${WANT%$'\n'}" "A2: the delivered copy is byte for byte the message (after the Received: headers)"
if grep -q $'\r' "$f"; then r=1; else r=0; fi
is "$r" 0 "A2: no CR reached the mailbox: Postfix got CRLF line ends only"
like "$(grep -A1 '^X-Folded' "$f" | tail -n 1)" $'^\tb$' "A2: folding kept"

# ---------------------------------------------------------------- B wire
fake record
sluice_restart wire <<EOF
plugin queue/smtp-forward host=127.0.0.1:$FPORT
EOF
out=$(smtp_chat --raw --bind 127.0.0.10 --timeout 20 <<EOF
EHLO client.example\r\nMAIL FROM:<alice@example.org> BODY=8BITMIME\r\nRCPT TO:<bob@sluice.test>\r\nRCPT TO:<carol@sluice.test>\r\nDATA\r\n
$RAWMSG.\r\n
QUIT\r\n
EOF
)
is "$(final_reply <<<"$out" | sed 's/as [^ ]* (/as ID (/')" \
	"250 2.0.0 Ok: queued as ID (next hop: 250 2.0.0 Ok: queued as FAKE1)" "B1: 250 from the fake next hop"
is "$(after_ours "$RUN/fake/data.1" | od -An -c | tr -s ' \n' ' ')" \
	"$(printf '%s' "$WIRE" | od -An -c | tr -s ' \n' ' ')" \
	"B1: on the wire: CRLF line ends, dot-stuffed, the final dot"
"$SLUICE_PYTHON" -c 'import re, sys
d = open(sys.argv[1], "rb").read()
sys.exit(1 if re.search(rb"\r(?!\n)|(?<!\r)\n", d) else 0)' "$RUN/fake/data.1"
ok $? "B1: not one bare CR or LF in the DATA stream"
cmds=$(cat "$RUN/fake/commands")
like "$(grep '^XCLIENT' <<<"$cmds")" \
	'^XCLIENT NAME=\[UNAVAILABLE\] ADDR=127\.0\.0\.10 PORT=[0-9]+ PROTO=ESMTP HELO=client\.example$' \
	"B2: XCLIENT carries the client's address, port, name, protocol and HELO"
is "$(grep '^EHLO' <<<"$cmds" | tr '\n' ' ')" "EHLO mx.sluice.test EHLO client.example " \
	"B2: EHLO with our name, then (after XCLIENT) with the client's"
like "$(grep '^MAIL' <<<"$cmds")" '^MAIL FROM:<alice@example\.org> SIZE=[0-9]+ BODY=8BITMIME$' \
	"B2: MAIL with SIZE= and BODY=8BITMIME (offered, and the client's)"
is "$(grep -c '^RCPT' <<<"$cmds") $(tail -n 1 <<<"$cmds")" "2 QUIT" "B2: both recipients, then QUIT"

# ---------------------------------------------------------------- C XFORWARD
sluice_restart xforward <<EOF
plugin queue/smtp-forward host=127.0.0.1:$PFPORT xclient=no
EOF
out=$(smtp_message alice@example.org bob@sluice.test)
like "$(final_reply <<<"$out")" '^250 2\.0\.0 ' "C: forwarded with xclient=no"
id=$(final_reply <<<"$out" | sed -n 's/.*queued as \([^ ]*\) (.*/\1/p')
grep -q "orig_queue_id=$id, orig_client=unknown\[127.0.0.10\]" "$PFD/maillog"
ok $? "C: XFORWARD: Postfix logs orig_queue_id=$id and orig_client=unknown[127.0.0.10]"
grep -q "txn=$id .*forward=xforward .*verdict=ok" "$RUN/smtpd.log"
ok $? "C: the log line says forward=xforward"

# ---------------------------------------------------------------- D refusals
sluice_restart plain <<EOF
plugin queue/smtp-forward host=127.0.0.1:$PFPORT
EOF
before=$(delivered_count)
out=$(smtp_message alice@example.org bob@sluice.test reject550@sluice.test)
is "$(final_reply <<<"$out")" "550 5.1.1 <reject550@sluice.test>: Recipient address rejected: no such user" \
	"D1: a recipient refused with 550: the client gets that reply"
out=$(smtp_message alice@example.org bob@sluice.test reject550@sluice.test defer450@sluice.test)
is "$(final_reply <<<"$out")" "450 4.2.1 <defer450@sluice.test>: Recipient address rejected: try again later" \
	"D2: 550 and 450 for two recipients: the temporary refusal wins"
out=$(smtp_message badsender@example.org bob@sluice.test)
is "$(final_reply <<<"$out")" "553 5.7.1 <badsender@example.org>: Sender address rejected: not allowed" \
	"D3: MAIL refused with 553: 553"
out=$(smtp_message tempsender@example.org bob@sluice.test)
is "$(final_reply <<<"$out")" "451 4.7.1 <tempsender@example.org>: Sender address rejected: come back later" \
	"D4: MAIL refused with 451: 451"
out=$(smtp_message dataref@example.org bob@sluice.test)
like "$(final_reply <<<"$out")" '^554 5\.7\.1 .*no data for you$' "D5: DATA refused with 554: 554"
out=$(smtp_message eodref@example.org bob@sluice.test)
like "$(final_reply <<<"$out")" '^550 5\.7\.1 .*content refused$' "D6: end of data refused with 550: 550"
is "$(delivered_count)" "$before" "D: nothing of the refused messages was delivered"
grep -q 'rcpt=<reject550@sluice.test> refused: "550 5.1.1' "$RUN/smtpd.log"
ok $? "D: each refused recipient is logged"
out=$(smtp_chat --bind 127.0.0.10 --timeout 20 <<EOF
EHLO client.example
MAIL FROM:<alice@example.org>
RCPT TO:<reject550@sluice.test>
DATA
Subject: refused

x
.
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
Subject: accepted

y
.
QUIT
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 250 354 550 250 250 354 250 221' \
	"D7: after a refusal the session goes on and the next message is forwarded"
is "$(delivered_count)" "$((before + 1))" "D7: exactly that one was delivered"

# ---------------------------------------------------------------- E STARTTLS
sluice_restart tls <<EOF
plugin queue/smtp-forward host=127.0.0.1:$TLSPORT starttls=require
EOF
out=$(smtp_message alice@example.org bob@sluice.test)
like "$(final_reply <<<"$out")" '^250 2\.0\.0 Ok: queued' "E1: starttls=require against a Postfix offering STARTTLS: 250"
like "$(grep 'verdict=ok' "$RUN/smtpd.log" | tail -n 1)" ' tls=TLSv1\.[23]/[A-Z0-9_-]+/unverified forward=xclient ' \
	"E1: the log line names the TLS version and cipher"
pfid=$(final_reply <<<"$out" | sed -n 's/.*next hop: 250 2.0.0 Ok: queued as \([0-9A-Z]*\)).*/\1/p')
WAIT_TIMEOUT=30 wait_for grep -q -l "with ESMTPS id $pfid" -r "$INBOX/new"
ok $? "E1: Postfix received it over TLS (ESMTPS)"
grep -q 'Anonymous TLS connection established from unknown\[127.0.0.1\]' "$PFD/maillog"
ok $? "E1: Postfix logs the TLS connection"

sluice_restart verify <<EOF
plugin queue/smtp-forward host=127.0.0.1:$TLSPORT starttls=require tls_verify=yes tls_ca=$RUN/tls.crt tls_name=mx.sluice.test
EOF
out=$(smtp_message alice@example.org bob@sluice.test)
like "$(final_reply <<<"$out")" '^250 2\.0\.0 Ok: queued' "E2: tls_verify=yes with tls_ca and the certificate's name: 250"
like "$(grep 'verdict=ok' "$RUN/smtpd.log" | tail -n 1)" ' tls=TLSv1\.[23]/[A-Z0-9_-]+/verified ' \
	"E2: logged as verified"

before=$(delivered_count)
sluice_restart badname <<EOF
plugin queue/smtp-forward host=127.0.0.1:$TLSPORT starttls=may tls_verify=yes tls_ca=$RUN/tls.crt tls_name=other.example
EOF
out=$(smtp_message alice@example.org bob@sluice.test)
is "$(final_reply <<<"$out")" "451 4.4.0 TLS with the next hop failed, try again later" \
	"E3: a certificate for another name: 451 4.4.0"
grep -q 'error="TLS handshake failed: certificate verification: ' "$RUN/smtpd.log"
ok $? "E3: the log says the verification failed"

sluice_restart require <<EOF
plugin queue/smtp-forward host=127.0.0.1:$PFPORT starttls=require
EOF
out=$(smtp_message alice@example.org bob@sluice.test)
is "$(final_reply <<<"$out")" "451 4.4.0 TLS with the next hop failed, try again later" \
	"E4: starttls=require and the next hop does not offer STARTTLS: 451"
grep -q 'error="TLS is required, but the next hop does not offer STARTTLS"' "$RUN/smtpd.log"
ok $? "E4: logged with the reason"
is "$(delivered_count)" "$before" "E: nothing delivered without the TLS asked for"

# ---------------------------------------------------------------- F failures
# fail_case NAME WANT_REPLY LOG_ERE: one message; the session must go on
fail_case() {
	local name=$1 want=$2 ere=$3
	out=$(smtp_message alice@example.org bob@sluice.test)
	is "$(final_reply <<<"$out")" "$want" "F: $name: $want"
	like "$(reply_codes <<<"$out")" '^220 250 250 250 354 451 250 221' "F: $name: the session goes on"
	like "$(grep 'plugin=queue/smtp-forward txn=.* verdict=denysoft' "$RUN/smtpd.log" | tail -n 1)" "$ere" \
		"F: $name: logged"
}

sluice_restart down <<EOF
plugin queue/smtp-forward host=127.0.0.1:$DEADPORT
EOF
fail_case "next hop down" "451 4.4.1 Next hop unreachable, try again later" \
	"relay=127\.0\.0\.1\[127\.0\.0\.1\]:$DEADPORT .*error=\"connect: Connection refused\""

fake silent
sluice_restart silent <<EOF
plugin queue/smtp-forward host=127.0.0.1:$FPORT command_timeout=1s
EOF
fail_case "silent next hop" "451 4.4.2 Next hop timed out, try again later" \
	'error="no reply to greeting within 1000 ms"'

fake hang-data
sluice_restart hang <<EOF
plugin queue/smtp-forward host=127.0.0.1:$FPORT data_timeout=1s
EOF
fail_case "hangs after DATA" "451 4.4.2 Next hop timed out, try again later" \
	'error="no reply to end of data within 1000 ms"'
[ -f "$RUN/fake/data.1" ]
ok $? "F: hangs after DATA: the whole message had gone out"

fake malformed
sluice_restart malformed <<EOF
plugin queue/smtp-forward host=127.0.0.1:$FPORT
EOF
fail_case "malformed greeting" "451 4.4.0 Next hop protocol error, try again later" \
	'error="malformed reply to greeting \(reply without a three-digit code\): .hello there.'

fake bad-ehlo
fail_case "EHLO lines with two codes" "451 4.4.0 Next hop protocol error, try again later" \
	'error="malformed reply to EHLO \(lines of one reply with different codes\)'

fake bare-lf
fail_case "reply ended by a bare LF" "451 4.4.0 Next hop protocol error, try again later" \
	'error="reply line not ended by CRLF in reply to greeting'

fake starttls-inject
fail_case "reply injected behind STARTTLS" "451 4.4.0 Next hop protocol error, try again later" \
	'error="the next hop sent data after its reply to STARTTLS"'

fake drop-data
fail_case "connection lost in the message" "451 4.4.2 Lost connection with the next hop, try again later" \
	'error="(connection closed by the next hop waiting for (message|end of data)|(read|write) error at (message|end of data): [A-Za-z ]+)"'

fake refuse-greeting
fail_case "greeting refused" "451 4.4.0 Next hop refused the session, try again later" \
	'nexthop="554 5\.3\.2 fake\.test closed for maintenance" error="greeting refused by the next hop"'

# a 421 is passed on as 451: the client's session goes on
fake rcpt-421
fail_case "RCPT answered 421" "451 4.3.2 <bob@sluice.test>: Service shutting down" \
	'verdict=denysoft reply="451 4\.3\.2 <bob@sluice\.test>: Service shutting down" nexthop="421 4\.3\.2 '

# refused extensions: without them when allowed to, 451 when required
fake refuse-ext
out=$(smtp_message alice@example.org bob@sluice.test)
like "$(final_reply <<<"$out")" '^250 2\.0\.0 Ok: queued as .*FAKE1\)$' \
	"F: STARTTLS, XCLIENT and XFORWARD refused: delivered without them"
log=$(grep 'plugin=queue/smtp-forward txn=' "$RUN/smtpd.log" | tail -n 4)
like "$log" 'STARTTLS refused: "454 4\.7\.0 TLS not available"; going on without TLS' "F: ... the refused STARTTLS is logged"
like "$log" 'XCLIENT refused: "550 5\.7\.0 .*going on without it' "F: ... the refused XCLIENT is logged"
like "$log" 'XFORWARD refused: "550 5\.7\.0 .*going on without it.*tls=none forward=none rcpts=1 verdict=ok' \
	"F: ... the refused XFORWARD is logged; forward=none"
sluice_restart refuse-tls <<EOF
plugin queue/smtp-forward host=127.0.0.1:$FPORT starttls=require
EOF
fail_case "STARTTLS required and refused" "451 4.4.0 TLS with the next hop failed, try again later" \
	'nexthop="454 4\.7\.0 TLS not available" error="TLS is required, but the next hop refused STARTTLS"'

# an internationalised address for a next hop without SMTPUTF8
fake plain
sluice_restart plain <<EOF
plugin queue/smtp-forward host=127.0.0.1:$FPORT
EOF
out=$(printf 'EHLO client.example\nMAIL FROM:<j\303\266rg@example.org> SMTPUTF8\nRCPT TO:<bob@sluice.test>\nDATA\nSubject: utf8\n\nx\n.\nQUIT\n' |
	smtp_chat --timeout 20)
is "$(final_reply <<<"$out")" "550 5.6.7 SMTPUTF8 is required, but was not offered by the next hop" \
	"F: a UTF-8 sender, a next hop without SMTPUTF8: 550 5.6.7"
if grep -q '^MAIL' "$RUN/fake/commands"; then r=1; else r=0; fi
is "$r" 0 "F: ... and no MAIL went out"

# the client leaves while its message is forwarded
fake hang-data
sluice_restart gone <<EOF
plugin queue/smtp-forward host=127.0.0.1:$FPORT data_timeout=1m
EOF
smtp_chat --bind 127.0.0.10 --timeout 1 >/dev/null <<EOF
EHLO client.example
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
Subject: gone

x
.
EOF
WAIT_TIMEOUT=15 wait_for grep -q 'abandoned at end of data: the transaction ended first (the next hop may have the message)' "$RUN/smtpd.log"
ok $? "F: the client left mid-forward: the session is dropped, and logged"
out=$(smtp_chat --timeout 5 <<<'QUIT')
like "$(reply_codes <<<"$out")" '^220 221' "F: the daemon keeps serving"

# ---------------------------------------------------------------- G concurrency
sluice_restart plain <<EOF
plugin queue/smtp-forward host=127.0.0.1:$PFPORT
EOF
before=$(delivered_count)
pids=()
for i in 1 2 3 4 5 6 7 8 9 10; do
	swaks_to --from alice@example.org --to "bob@sluice.test" \
		--header "Subject: G$i" >"$RUN/g.$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
n=$(cat "$RUN"/g.* | grep -c '^<-  250 2.0.0 Ok: queued as .*(next hop: 250 ')
is "$n" 10 "G: 10 concurrent clients: ten 250s"
is "$(delivered_count)" "$((before + 10))" "G: and ten copies in the mailbox"

# ---------------------------------------------------------------- H option errors
sluice_stop
like "$(sluice_conf_error <<<'plugin queue/smtp-forward')" \
	"conf-error\.conf:[0-9]+: plugin queue/smtp-forward: host= is required" "H: host= missing"
like "$(sluice_conf_error <<<'plugin queue/smtp-forward host=127.0.0.1:99999')" \
	'conf-error\.conf:[0-9]+: plugin queue/smtp-forward: host: bad port "99999"' "H: a bad port"
like "$(sluice_conf_error <<<'plugin queue/smtp-forward host=2001:db8::1:25')" \
	'plugin queue/smtp-forward: host: an IPv6 address goes in brackets' "H: IPv6 without brackets"
like "$(sluice_conf_error <<<'plugin queue/smtp-forward host=no-such-host.invalid:25')" \
	'plugin queue/smtp-forward: host: cannot resolve no-such-host\.invalid' "H: a name that does not resolve"
like "$(sluice_conf_error <<<'plugin queue/smtp-forward host=127.0.0.1:25 tls_ca=/x.pem')" \
	'plugin queue/smtp-forward: tls_ca and tls_name need tls_verify=yes' "H: tls_ca without tls_verify"
like "$(sluice_conf_error <<<'plugin queue/smtp-forward host=127.0.0.1:25 tls_verify=yes tls_ca=/nonexistent.pem')" \
	'plugin queue/smtp-forward: tls_ca: cannot load /nonexistent\.pem' "H: a CA file that cannot be read"
like "$(sluice_conf_error <<<'plugin queue/smtp-forward host=127.0.0.1:25 starttls=no tls_verify=yes')" \
	'plugin queue/smtp-forward: tls_verify, tls_ca and tls_name need starttls=may or starttls=require' "H: tls_verify with starttls=no"
like "$(sluice_conf_error <<<'plugin queue/smtp-forward host=127.0.0.1:25 starttls=maybe')" \
	'plugin queue/smtp-forward: starttls' "H: an unknown starttls= value"
"$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/plain.conf" >/dev/null 2>&1
ok $? "H: a good configuration passes -t"
