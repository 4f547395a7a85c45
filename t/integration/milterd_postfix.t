#!/bin/bash
# sluice-milterd behind a real, private Postfix (t/pf-instance.sh): Postfix
# listens for SMTP, calls sluice-milterd over the milter protocol
# (smtpd_milters, milter_default_action = tempfail) and delivers to the
# Maildir DIR/mail/inbox.  Postfix starts once; between groups only
# milterd's configuration changes (milterd restarted on the same port).
# The chains use t/plugins/test_hooks.so.  Cases:
#   (a) no plugins: mail delivered, body intact
#   (b) deny at MAIL, at RCPT (the other recipient still delivered), at
#       data_post: the client sees the 5xx with the plugin's text
#   (c) denysoft at RCPT and at data_post: 4xx
#   (d) discard: 250 at the dot, nothing delivered
#   (e) every edit kind, checked in the delivered copy
#   (f) quarantine: the message sits in Postfix's hold queue
#   (h) SLOW CASE (about 5 s; SLUICE_TEST_SLOW=0 skips it): a data_post hook
#       that takes 5 s with milter_content_timeout = 3s still succeeds,
#       because milterd sends SMFIR_PROGRESS while it waits
#       (milter_progress_interval 1s)
#   (g) milterd stopped: Postfix applies its default action (451 4.7.1)
. "$SLUICE_SRC/t/lib.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root (private Postfix instance)"
{ command -v postfix && command -v postconf; } >/dev/null 2>&1 ||
	skip_all "postfix not installed"
command -v swaks >/dev/null 2>&1 || skip_all "swaks not installed"
[ -x "$SLUICE_BUILD/sluice-milterd" ] || {
	echo "Bail out! $SLUICE_BUILD/sluice-milterd not built"
	exit 1
}
[ -f "$SLUICE_BUILD/t/plugins/test_hooks.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_hooks.so)"

SLOW=${SLUICE_TEST_SLOW:-1}
plan 50
setup_run

PF=$SLUICE_SRC/t/pf-instance.sh
PFD=$RUN/pf
INBOX=$PFD/mail/inbox
SPORT=$(free_port) || {
	echo "Bail out! no free port"
	exit 1
}
MPORT=$(free_port) || {
	echo "Bail out! no free port"
	exit 1
}
MILTERD_PID=

stop_at_exit "$PFD/maillog" "$PF" stop "$PFD"

"$PF" create "$PFD" "$SPORT" maildir "inet:127.0.0.1:$MPORT" || {
	echo "Bail out! pf-instance.sh create failed"
	exit 1
}
# A short content timeout for the progress case (h); every other event
# of a healthy milterd takes milliseconds.
postconf -c "$PFD/etc" -e 'milter_content_timeout = 3s' \
	'milter_command_timeout = 10s' 'milter_connect_timeout = 5s'
touch -d '-1 min' "$PFD/etc/main.cf"
t0=$EPOCHREALTIME
"$PF" start "$PFD" 20 || {
	echo "Bail out! private Postfix did not start"
	exit 1
}
note "Postfix up on 127.0.0.1:$SPORT in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s; milter on 127.0.0.1:$MPORT"

# ---------------------------------------------------------------- helpers
# milterd_with: (re)start sluice-milterd on $MPORT, chain on stdin
milterd_with() {
	milterd_stop
	{
		echo "milter_listen inet:$MPORT@127.0.0.1"
		cat
	} | write_conf "$RUN/milterd.conf"
	milterd_start "$RUN/milterd.conf"
}

# send CASE SWAKS-ARGS...: one message through Postfix; prints swaks' dialogue.
# Header X-Case: CASE marks the delivered copies.
send() {
	local c=$1
	shift
	swaks --server 127.0.0.1 --port "$SPORT" --timeout 20 --helo client.test \
		--from alice@sender.test --to bob@sluice.test \
		--header "Subject: original subject" --add-header "X-Case: $c" \
		--add-header "X-Delete-Me: gone" "$@" 2>&1
}

# copies CASE: the delivered files with header X-Case: CASE
copies() {
	grep -l -x -s "X-Case: $1" "$INBOX"/new/* 2>/dev/null
}
ncopies() {
	local f n=0
	for f in $(copies "$1"); do n=$((n + 1)); done
	echo "$n"
}
# wait_copies CASE N: bounded wait for N delivered copies
wait_copies() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(ncopies "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
# settled: the queue is empty (accepted mail was delivered or dropped)
settled() {
	"$PF" drain "$PFD" 15
}
# header NAME FILE: values of header NAME (unfolded), one per line
header() {
	awk -v n="$1" 'BEGIN { n = tolower(n) ":" }
	/^$/ { exit }
	/^[ \t]/ { if (on) v = v " " $0; next }
	{ if (on) print v; on = (tolower(substr($0, 1, length(n))) == n)
	  if (on) { v = substr($0, length(n) + 1); sub(/^[ \t]+/, "", v) } }
	END { if (on) print v }' "$2"
}
# body FILE: the body (after the first empty line)
body() {
	sed '1,/^$/d' "$1"
}
pflog() {
	cat "$PFD/maillog" 2>/dev/null
}
wait_log() { # ERE: bounded wait for a Postfix log line
	local i
	for ((i = 0; i < 100; i++)); do
		pflog | grep -E -q -- "$1" && return 0
		sleep 0.05
	done
	return 1
}

# ---------------------------------------------------------------- (a) no plugins
milterd_with </dev/null
BODY=$'first line of the test body\n.a line that starts with a dot\n\tindented line, trailing space \nlast line'
out=$(send a --body "$BODY")
like "$(reply_to . "$out")" '^250 2\.0\.0 Ok: queued as ' \
	"(a) no plugins: the dot is answered 250 2.0.0 Ok: queued as ..."
wait_copies a 1
ok $? "(a) the message is delivered to the Maildir"
f=$(copies a | head -n 1)
is "$(body "$f")" "$BODY" "(a) body arrives byte for byte (dot line, tab, trailing space)"
is "$(header Subject "$f")" "original subject" "(a) Subject: original subject unchanged"

# ---------------------------------------------------------------- (b)(c) MAIL, RCPT
milterd_with <<'EOF'
plugin test_hooks hook=mail action=deny match=deny-mail text="mail refused by test"
plugin test_hooks hook=rcpt action=deny match=deny-rcpt text="rcpt refused by test"
plugin test_hooks hook=rcpt action=deny match=plain-deny
plugin test_hooks hook=rcpt action=denysoft match=soft-rcpt text="rcpt deferred by test"
plugin test_hooks hook=rcpt action=denysoft match=plain-soft
EOF
out=$(send b-mail --from deny-mail@sender.test)
is "$(reply_to 'MAIL FROM:<deny-mail@sender.test>' "$out")" "550 5.7.1 mail refused by test" \
	"(b) deny at MAIL: MAIL FROM answered 550 5.7.1 mail refused by test"

out=$(send b-rcpt --to deny-rcpt@sluice.test,bob@sluice.test)
is "$(reply_to 'RCPT TO:<deny-rcpt@sluice.test>' "$out")" "550 5.7.1 rcpt refused by test" \
	"(b) deny at RCPT: RCPT TO:<deny-rcpt@...> answered 550 5.7.1 rcpt refused by test"
like "$(reply_to 'RCPT TO:<bob@sluice.test>' "$out")" '^250 ' "(b) the other RCPT TO:<bob@...> answered 250"
like "$(reply_to . "$out")" '^250 ' "(b) the dot answered 250 (one recipient left)"
wait_copies b-rcpt 1
settled
is "$(ncopies b-rcpt)" 1 "(b) exactly one copy delivered"
is "$(header X-Original-To "$(copies b-rcpt)")" "bob@sluice.test" "(b) the copy is for X-Original-To: bob@sluice.test"

out=$(send b-plain --to plain-deny@sluice.test)
like "$(reply_to 'RCPT TO:<plain-deny@sluice.test>' "$out")" '^550 5\.7\.1 ' \
	"(b) deny at RCPT without text: default 550 5.7.1 ..."

out=$(send c-rcpt --to soft-rcpt@sluice.test)
is "$(reply_to 'RCPT TO:<soft-rcpt@sluice.test>' "$out")" "451 4.7.1 rcpt deferred by test" \
	"(c) denysoft at RCPT: 451 4.7.1 rcpt deferred by test"
out=$(send c-plain --to plain-soft@sluice.test)
like "$(reply_to 'RCPT TO:<plain-soft@sluice.test>' "$out")" '^451 4\.7\.1 ' \
	"(c) denysoft at RCPT without text: default 451 4.7.1 ..."

# ---------------------------------------------------------------- (b)(c) data_post
milterd_with <<'EOF'
plugin test_hooks hook=data_post action=deny text="message refused by test"
EOF
out=$(send b-eom)
is "$(reply_to . "$out")" "550 5.7.1 message refused by test" \
	"(b) deny at data_post: the dot answered 550 5.7.1 message refused by test"

milterd_with <<'EOF'
plugin test_hooks hook=data_post action=deny
EOF
out=$(send b-eom-plain)
is "$(reply_to . "$out")" "550 5.7.1 Rejected by policy" \
	"(b) deny at data_post without text: 550 5.7.1 Rejected by policy, as in sluice-smtpd"

milterd_with <<'EOF'
plugin test_hooks hook=data_post action=denysoft text="message deferred by test"
EOF
out=$(send c-eom)
is "$(reply_to . "$out")" "451 4.7.1 message deferred by test" \
	"(c) denysoft at data_post: the dot answered 451 4.7.1 message deferred by test"
wait_log 'milter-reject: END-OF-MESSAGE from [^:]*: 4\.7\.1 message deferred by test'
ok $? "(c) Postfix logged milter-reject: END-OF-MESSAGE ... 4.7.1 message deferred by test"

# ---------------------------------------------------------------- (d) discard
milterd_with <<'EOF'
plugin test_hooks hook=data_post action=discard
EOF
out=$(send d)
like "$(reply_to . "$out")" '^250 ' "(d) discard: the client sees 250 at the dot"
wait_log 'milter-discard: END-OF-MESSAGE'
ok $? "(d) Postfix logged milter-discard: END-OF-MESSAGE"
settled
is "$(ncopies d)" 0 "(d) nothing delivered"
# nothing delivered so far for the refused cases either
is "$(ncopies b-mail)$(ncopies b-eom)$(ncopies b-eom-plain)$(ncopies c-eom)$(ncopies c-rcpt)" 00000 \
	"(b)(c) no copy of any refused message"

# ---------------------------------------------------------------- (e) header and body edits
milterd_with <<'EOF'
plugin test_hooks hook=data_post action=edit edit=add,insert,change,delete,body
EOF
out=$(send e1 --body "original body")
like "$(reply_to . "$out")" '^250 ' "(e) header/body edits: 250 at the dot"
wait_copies e1 1
ok $? "(e) edited message delivered"
f=$(copies e1 | head -n 1)
msg=$(cat "$f" 2>/dev/null)
is "$(header X-Test-Added "$f")" "yes" "(e) add: header X-Test-Added: yes"
like "$msg" $'\nX-Test-Added: yes\n\n' "(e) add: X-Test-Added: yes is the last header"
# Postfix's own Received: is hidden from milters but counts for INSHEADER:
# index 0 puts the header above it (milter-protocol.md 6.2), as sluice-smtpd
# puts it above its own Received:.  Above it only virtual(8)'s headers.
like "$msg" $'^Return-Path: <alice@sender\\.test>\nX-Original-To: bob@sluice\\.test\nDelivered-To: bob@sluice\\.test\nX-Test-Inserted: first\nReceived: from client\\.test \\(unknown \\[127\\.0\\.0\\.1\\]\\)\n\tby mx\\.sluice\\.test \\(Postfix\\)' \
	"(e) insert: X-Test-Inserted: first sits directly above Postfix's Received:, below virtual(8)'s Return-Path/X-Original-To/Delivered-To"
is "$(header Subject "$f")" "changed by test_hooks" "(e) change: Subject: changed by test_hooks"
is "$(header X-Delete-Me "$f")" "" "(e) delete: no X-Delete-Me header left"
is "$(body "$f")" "This body was replaced by test_hooks." \
	"(e) body: the body is exactly 'This body was replaced by test_hooks.'"

# ---------------------------------------------------------------- (e) envelope edits
milterd_with <<'EOF'
plugin test_hooks hook=data_post action=edit edit=addrcpt,delrcpt,chgfrom
EOF
out=$(send e2 --to bob@sluice.test,removed@sluice.test)
like "$(reply_to . "$out")" '^250 ' "(e) envelope edits: 250 at the dot"
wait_copies e2 2
settled
is "$(ncopies e2)" 2 "(e) two copies: sent to bob+removed, removed dropped, added@ added"
rcpts=$(for f in $(copies e2); do header X-Original-To "$f"; done | sort | tr '\n' ' ')
is "$rcpts" "added@sluice.test bob@sluice.test " \
	"(e) addrcpt/delrcpt: X-Original-To added@sluice.test and bob@sluice.test, not removed@sluice.test"
dto=$(for f in $(copies e2); do header Delivered-To "$f"; done | sort | tr '\n' ' ')
is "$dto" "added@sluice.test bob@sluice.test " "(e) Delivered-To: added@sluice.test and bob@sluice.test"
rp=$(for f in $(copies e2); do header Return-Path "$f"; done | sort -u | tr '\n' ' ')
is "$rp" "<changed@sluice.test> " "(e) chgfrom: both copies have Return-Path: <changed@sluice.test>"
is "$(header From "$(copies e2 | head -n 1)")" "alice@sender.test" \
	"(e) chgfrom changes the envelope only: From: alice@sender.test"
unlike "$(pflog)" 'to=<removed@sluice\.test>' "(e) delrcpt: Postfix never delivered to removed@sluice.test"

# ---------------------------------------------------------------- (f) quarantine
milterd_with <<'EOF'
plugin test_hooks hook=data_post action=edit edit=quarantine
EOF
out=$(send f)
like "$(reply_to . "$out")" '^250 ' "(f) quarantine: 250 at the dot"
# (Postfix 3.7 logs its own words, not the milter's reason)
wait_log 'milter-hold: END-OF-MESSAGE from [^:]*: milter triggers HOLD action'
ok $? "(f) Postfix logged milter-hold: END-OF-MESSAGE ...: milter triggers HOLD action"
held=$(find "$PFD/spool/hold" -type f 2>/dev/null | wc -l)
is "$held" 1 "(f) one message in the hold queue ($PFD/spool/hold)"
like "$(postqueue -c "$PFD/etc" -j 2>/dev/null)" '"queue_name": *"hold"' \
	"(f) postqueue -j lists it with queue_name hold"
settled
sleep 0.3
is "$(ncopies f)" 0 "(f) the held message is not delivered"
postsuper -c "$PFD/etc" -d ALL hold >/dev/null 2>&1

# ---------------------------------------------------------------- (h) slow hook, SMFIR_PROGRESS
if [ "$SLOW" = 1 ]; then
	# milterd's default period (milter_progress_interval 5s) suits the
	# MTAs' default timeouts (Postfix 300 s, sendmail 10 s); here it must
	# beat Postfix's 3 s.
	milterd_with <<'EOF'
milter_progress_interval 1s
plugin test_hooks hook=data_post action=pending delay=5s verdict=ok
EOF
	t0=$EPOCHREALTIME
	out=$(send h)
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	dot=$(reply_to . "$out")
	like "$dot" '^250 ' \
		"(h) SLOW: 5 s data_post hook, milter_content_timeout 3s, progress every 1s: 250 at the dot after $secs s"
	ok "$(awk -v s="$secs" 'BEGIN { print (s >= 4.5) ? 0 : 1 }')" \
		"(h) SLOW: the hook really took its 5 s (took $secs s)"
	if [[ $dot == 250* ]]; then
		wait_copies h 1
		ok $? "(h) SLOW: the message is delivered"
	else
		ok 1 "(h) SLOW: the message is delivered (it was not accepted)"
	fi
	unlike "$(pflog)" 'milter inet:[^ ]+: .*(timed out|timeout)' \
		"(h) SLOW: no milter timeout in the Postfix log"
else
	skip 4 "(h) slow progress case off (SLUICE_TEST_SLOW=0)"
fi

# ---------------------------------------------------------------- (g) milterd stopped
kill -TERM "$MILTERD_PID"
for ((i = 0; i < 250; i++)); do
	kill -0 "$MILTERD_PID" 2>/dev/null || break
	sleep 0.02
done
kill -0 "$MILTERD_PID" 2>/dev/null
ok $((!$?)) "(g) sluice-milterd exits within 5 s of SIGTERM"
milterd_stop
out=$(send g)
is "$(reply_to 'MAIL FROM:<alice@sender.test>' "$out")" "451 4.7.1 Service unavailable - try again later" \
	"(g) milterd down, milter_default_action tempfail: MAIL FROM answered 451 4.7.1 Service unavailable - try again later"
settled
is "$(ncopies g)" 0 "(g) nothing delivered while milterd is down"

# ---------------------------------------------------------------- logs
san=$(grep -c -E 'AddressSanitizer|runtime error' "$RUN/milterd.log")
is "$san" 0 "no sanitizer report in milterd's log"
# (the only expected warnings are "connect to Milter service ...: Connection
# refused": Postfix's readiness probe before milterd ran, and case g)
unlike "$(pflog)" 'warning: milter inet:' \
	"Postfix logged no warning about the milter session (protocol errors, timeouts)"
