#!/bin/bash
# plugin queue/lmtp: sluice-smtpd delivering into a private Dovecot's LMTP
# server (t/dovecot.sh: users bob, carol, dave) and into t/smtpfake.py
# as an LMTP server with chosen replies.  Cases:
#   A  delivery over TCP into bob's Maildir: 250 naming Dovecot's reply;
#      the copy byte for byte after our Received: (folding, odd spacing,
#      a dot-stuffed line, bare LF / bare CR as line ends)
#   B  the same over Dovecot's unix socket (host=unix:DIR/run/lmtp)
#   C  an unknown user refused at RCPT: 550 5.1.1 naming it, and nothing
#      is delivered to the other recipient
#   D  a mixed end of data from Dovecot, each recipient's outcome logged:
#      carol's home is a file (451 4.2.0) beside bob (250): 451 for the
#      client, bob has his copy, the possible duplicate is logged; dave
#      over quota (552 5.2.2) beside bob: 554 5.2.2 naming dave
#   E  all refused at end of data (Dovecot): carol alone 451, dave alone
#      552, with Dovecot's own codes
#   F  the mapping with smtpfake's replies: 250,452,550 -> 451 (mixed),
#      452,550 -> 452, 552,550 -> 552, 250,550 -> 554, 250,250 -> 250
#   G  Dovecot down: 451 4.4.1, the session goes on
#   H  option errors stop start-up
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

[ -x "$SLUICE_BUILD/sluice-smtpd" ] || {
	echo "Bail out! $SLUICE_BUILD/sluice-smtpd not built"
	exit 1
}
[ -f "$SLUICE_BUILD/plugins/queue/lmtp.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/queue/lmtp.so)"
[ "$(id -u)" = 0 ] || skip_all "a private Dovecot needs root"
command -v dovecot >/dev/null 2>&1 || skip_all "dovecot not installed"
command -v doveadm >/dev/null 2>&1 || skip_all "doveadm not installed"

plan 34
setup_run

DV=$SLUICE_SRC/t/dovecot.sh
DVD=$RUN/dv
LPORT=$(free_port) && FPORT=$(free_port) && DEADPORT=$(free_port) || {
	echo "Bail out! no free port"
	exit 1
}
SMTP_CHAT_ARGS=(--timeout 20)
SLUICE_CONF_BASE=$'local_domains sluice.test\nbare_newline normalise'

stop_at_exit "$DVD/dovecot.log" "$DV" stop "$DVD"

"$DV" create "$DVD" "$LPORT" || {
	echo "Bail out! dovecot.sh create failed"
	exit 1
}
for u in bob carol dave; do
	"$DV" adduser "$DVD" "$u" secret || {
		echo "Bail out! dovecot.sh adduser failed"
		exit 1
	}
done
# dave: a quota no message fits in; LMTP refuses it for good (552)
sed -i 's/^\(dave:.*\)$/\1userdb_quota_rule=*:storage=100B/' "$DVD/users"
cat >>"$DVD/dovecot.conf" <<EOF
mail_plugins = \$mail_plugins quota
plugin {
  quota = maildir:User quota
}
protocol lmtp {
  quota_full_tempfail = no
}
EOF
"$DV" start "$DVD" 20 || {
	echo "Bail out! private Dovecot did not start"
	exit 1
}
BOB=$DVD/mail/bob/Maildir

# bob_has N: true once bob's Maildir holds N messages or more
bob_has() {
	[ "$(maildir_count "$BOB")" -ge "$1" ]
}

# ---------------------------------------------------------------- A TCP
sluice_restart tcp <<EOF
plugin queue/lmtp host=127.0.0.1:$LPORT
EOF
out=$(smtp_chat --raw --timeout 20 <<'EOF'
EHLO client.example\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@sluice.test>\r\nDATA\r\n
From: alice@example.org\r\nSubject:   spaced\r\nX-Folded: a\r\n\tb\r\n\r\nline one\nbare lf\rbare cr\r\n..dotted\r\n.\r\n
QUIT\r\n
EOF
)
like "$(final_reply <<<"$out")" \
	'^250 2\.0\.0 Ok: queued as [0-9A-F]+\.1 \(next hop: 250 2\.0\.0 <bob@sluice\.test> [^ ]+ Saved\)$' \
	"A: 250 naming Dovecot's reply"
WAIT_TIMEOUT=10 wait_for bob_has 1
ok $? "A: delivered into bob's Maildir"
f=$(newest_file "$BOB/new")
is "$(after_received_by "$f" "mx.sluice.test (sluice)")" \
	$'From: alice@example.org\nSubject:   spaced\nX-Folded: a\n\tb\n\nline one\nbare lf\nbare cr\n.dotted' \
	"A: the copy byte for byte, bare LF and CR as line ends"
like "$(grep 'plugin=queue/lmtp txn=.*verdict=ok' "$RUN/smtpd.log" | tail -n 1)" \
	"relay=127\.0\.0\.1\[127\.0\.0\.1\]:$LPORT tls=none forward=none rcpts=1 verdict=ok .* duration=[0-9]+ms" \
	"A: the delivery's log line"
grep -q 'plugin=queue/lmtp txn=.* rcpt=<bob@sluice.test> reply="250 2.0.0 <bob@sluice.test> ' "$RUN/smtpd.log"
ok $? "A: the recipient's outcome is logged"

# ---------------------------------------------------------------- B unix
if [ -S "$DVD/run/lmtp" ]; then
	sluice_restart unix <<EOF
plugin queue/lmtp host=unix:$DVD/run/lmtp
EOF
	out=$(smtp_message alice@example.org bob@sluice.test)
	like "$(final_reply <<<"$out")" '^250 2\.0\.0 Ok: queued as .*Saved\)$' "B: LMTP over the unix socket: 250"
	WAIT_TIMEOUT=10 wait_for bob_has 2
	ok $? "B: delivered"
	grep -q "relay=unix:$DVD/run/lmtp tls=none .*verdict=ok" "$RUN/smtpd.log"
	ok $? "B: logged with relay=unix:PATH"
else
	skip 3 "Dovecot made no LMTP unix socket ($DVD/run/lmtp)"
fi

# ---------------------------------------------------------------- C RCPT
sluice_restart tcp <<EOF
plugin queue/lmtp host=127.0.0.1:$LPORT
EOF
before=$(maildir_count "$BOB")
out=$(smtp_message alice@example.org bob@sluice.test nobody@sluice.test)
is "$(final_reply <<<"$out")" "550 5.1.1 <nobody@sluice.test> User doesn't exist: nobody@sluice.test" \
	"C: an unknown user: 550 5.1.1 naming it"
is "$(maildir_count "$BOB")" "$before" "C: nothing sent: bob got no copy"
grep -q 'rcpt=<nobody@sluice.test> refused: "550 5.1.1' "$RUN/smtpd.log"
ok $? "C: logged"

# ---------------------------------------------------------------- D mixed
mkdir -p "$DVD/mail"
: >"$DVD/mail/carol" # a file where carol's home should be: 4xx at the end
out=$(smtp_message alice@example.org bob@sluice.test carol@sluice.test)
like "$(final_reply <<<"$out")" \
	'^451 4\.2\.0 <carol@sluice\.test> .* \(delivered to the other recipients\)$' \
	"D1: bob 250, carol 451: the client gets 451 naming carol"
is "$(maildir_count "$BOB")" "$((before + 1))" "D1: bob has his copy"
grep -q 'rcpt=<carol@sluice.test> reply="451 4.2.0 ' "$RUN/smtpd.log"
ok $? "D1: carol's outcome is logged"
grep -q 'notice: .* plugin=queue/lmtp .*delivered to 1 of 2 recipients, but the client gets 451: its retry may deliver a duplicate to them' "$RUN/smtpd.log"
ok $? "D1: the possible duplicate is logged at notice"
out=$(smtp_message alice@example.org bob@sluice.test dave@sluice.test)
is "$(final_reply <<<"$out")" \
	"554 5.2.2 <dave@sluice.test> Quota exceeded (mailbox for user is full) (delivered to the other recipients)" \
	"D2: bob 250, dave 552: the client gets 554 5.2.2 naming dave"
is "$(maildir_count "$BOB")" "$((before + 2))" "D2: bob has his copy"
grep -q 'delivered to 1 of 2 recipients, but the client gets 554: the sender learns of the refused one' "$RUN/smtpd.log"
ok $? "D2: logged"

# ---------------------------------------------------------------- E all refused
out=$(smtp_message alice@example.org carol@sluice.test)
like "$(final_reply <<<"$out")" '^451 4\.2\.0 <carol@sluice\.test> ' "E: carol alone: Dovecot's 451"
unlike "$(final_reply <<<"$out")" 'delivered to the other' "E: ... with no word of other recipients"
out=$(smtp_message alice@example.org dave@sluice.test)
is "$(final_reply <<<"$out")" "552 5.2.2 <dave@sluice.test> Quota exceeded (mailbox for user is full)" \
	"E: dave alone: Dovecot's 552"
is "$(find "$DVD/mail/dave" -path '*/new/*' -type f 2>/dev/null | wc -l)" 0 "E: nothing in dave's Maildir"

# ---------------------------------------------------------------- F mapping
sluice_restart fake <<EOF
plugin queue/lmtp host=127.0.0.1:$FPORT
EOF
# map CODES WANT DESC: three recipients, the fake answers CODES
map() {
	smtpfake "$FPORT" lmtp "$RUN/fake" "$1"
	out=$(smtp_message alice@example.org r0@sluice.test r1@sluice.test r2@sluice.test)
	like "$(final_reply <<<"$out")" "$2" "F: $1: $3"
}
map 250,452,550 '^451 4\.2\.2 <r1@sluice\.test>: Over quota \(rcpt 1\) \(delivered to the other recipients\)$' \
	"mixed, a temporary refusal: 451 with the first temporary one"
map 452,550,550 '^452 4\.2\.2 <r0@sluice\.test>: Over quota \(rcpt 0\)$' \
	"all refused, one temporarily: that one's 452"
map 552,550,550 '^552 5\.2\.2 <r0@sluice\.test>: Mailbox full \(rcpt 0\)$' \
	"all refused for good: the first 5xx"
map 250,250,550 '^554 5\.1\.1 <r2@sluice\.test>: No such user \(rcpt 2\) \(delivered to the other recipients\)$' \
	"mixed, refusals for good: 554 with the refusal"
map 250,250,250 '^250 2\.0\.0 Ok: queued as .*\(next hop: 250 2\.0\.0 Ok \(rcpt 0\)\)$' \
	"all delivered: 250"
grep -q '^LHLO mx.sluice.test$' "$RUN/fake/commands"
ok $? "F: LHLO with our name"

# ---------------------------------------------------------------- G down
sluice_restart down <<EOF
plugin queue/lmtp host=127.0.0.1:$DEADPORT
EOF
out=$(smtp_message alice@example.org bob@sluice.test)
is "$(final_reply <<<"$out")" "451 4.4.1 Next hop unreachable, try again later" "G: LMTP server down: 451 4.4.1"
like "$(reply_codes <<<"$out")" '^220 250 250 250 354 451 250 221' "G: the session goes on"

# ---------------------------------------------------------------- H options
sluice_stop
like "$(sluice_conf_error <<<'plugin queue/lmtp host=unix:run/lmtp')" \
	'conf-error\.conf:[0-9]+: plugin queue/lmtp: host: unix: needs an absolute path' "H: a relative socket path"
like "$(sluice_conf_error <<<'plugin queue/lmtp host=127.0.0.1:24 tls_verify=yes')" \
	'plugin queue/lmtp: tls_verify, tls_ca and tls_name need starttls=may or starttls=require' \
	"H: STARTTLS is off by default for LMTP"
like "$(sluice_conf_error <<<'plugin queue/lmtp host=[::1')" 'plugin queue/lmtp: host: no .\]. after .\[.' "H: a broken IPv6 literal"
"$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/tcp.conf" >/dev/null 2>&1
ok $? "H: a good configuration passes -t"
