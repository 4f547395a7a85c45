#!/bin/bash
# plugin naughty: deferred rejection.  Plugins with reject=defer mark the
# connection (hosts_allow at connect, badmailfrom at MAIL, headers at
# data_post, test_hooks for a DENYSOFT mark); naughty refuses it at
# reject_at= (connect, helo, mail, rcpt, data, data_post) and at every
# later hook, with the mark's reply; a mark made after reject_at (or
# after naughty in the chain) lands at the next hook; disconnect=yes
# closes; relay and authenticated clients are exempt.  Without naughty
# the front end still refuses each RCPT (regression).  Then
# sluice-milterd behind a private Postfix: a mark at MAIL refused at
# RCPT, and at DATA with reject_at=data.  Clients come through XCLIENT.
. "$SLUICE_SRC/t/lib.sh"
export LC_ALL=C

plan 41
setup_run

MD=$RUN/Maildir
SLUICE_CONF_BASE="local_domains sluice.test
relay_clients 192.0.2.0/24
trusted_proxies 127.0.0.1/32
auth_require_tls no
max_errors 100"
BAD="plugin badmailfrom list=bad@evil.test reject=defer"
SOFT="plugin test_hooks hook=mail action=denysoft match=soft@ text=\"try later, soft\" reject=defer"

# nth N TEXT: line N of TEXT (see xclient_session in t/lib.sh)
nth() { sed -n "$1p" <<<"$2"; }
# mail_from SENDER: EHLO, MAIL, RCPT, QUIT (lines 4..7)
mail_from() {
	printf 'EHLO client.test\nMAIL FROM:<%s>\nRCPT TO:<bob@sluice.test>\nQUIT\n' "$1"
}
# message_from SENDER [HEADER...]: EHLO, MAIL, RCPT, DATA, the message,
# QUIT (lines 4..9)
message_from() {
	local h
	printf 'EHLO client.test\nMAIL FROM:<%s>\nRCPT TO:<bob@sluice.test>\nDATA\n' "$1"
	shift
	for h in "$@"; do echo "$h"; done
	printf '\nhello\n.\nQUIT\n'
}
logged() { grep -F -q -- "$1" "$RUN/smtpd.log"; }

# --- without naughty: the front end refuses RCPT --------------------------
sluice_restart none <<EOF
$BAD
plugin queue/maildir path=$MD
EOF
out=$(mail_from bad@evil.test | xclient_session 198.51.100.1)
is "$(nth 5 "$out") / $(nth 6 "$out")" \
	"250 2.1.0 Ok / 550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"no naughty: a mark at MAIL, RCPT refused by the front end (regression)"

# --- reject_at=rcpt (default) -----------------------------------------------
sluice_restart rcpt <<EOF
plugin test_hooks hook=auth action=ok
$BAD
$SOFT
plugin headers reject=defer
plugin naughty
plugin queue/maildir path=$MD
EOF
out=$(mail_from bad@evil.test | xclient_session 198.51.100.2)
is "$(nth 5 "$out") / $(nth 6 "$out")" \
	"250 2.1.0 Ok / 550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"reject_at=rcpt: a mark at MAIL lands at RCPT with the mark's reply"
WAIT_TIMEOUT=5 wait_for logged "plugin=naughty rejecting, marked by badmailfrom at rcpt: verdict=deny code=550"
ok $? "the log says: rejecting, marked by badmailfrom at rcpt"
out=$(mail_from soft@example.org | xclient_session 198.51.100.3)
is "$(nth 6 "$out")" "451 4.7.1 try later, soft" "a DENYSOFT mark: RCPT answered 451 with its text"
out=$(message_from good@example.org "From: good@example.org" "Subject: no date" | xclient_session 198.51.100.4)
is "$(nth 8 "$out")" "554 5.6.0 Message has no Date: header" \
	"a mark made at data_post (after reject_at) lands at data_post: 554 5.6.0"
out=$({
	printf 'EHLO client.test\nMAIL FROM:<good@example.org>\nRCPT TO:<bob@sluice.test>\n'
	printf 'DATA\nFrom: good@example.org\n\nhello\n.\n'
	printf 'MAIL FROM:<good@example.org>\nRCPT TO:<bob@sluice.test>\nQUIT\n'
} | xclient_session 198.51.100.5)
is "$(nth 9 "$out") / $(nth 10 "$out")" "250 2.1.0 Ok / 554 5.6.0 Message has no Date: header" \
	"and at every later hook: the next transaction's RCPT is refused too"
is "$(maildir_count "$MD")" 0 "nothing delivered so far"

out=$(message_from bad@evil.test "From: a@example.org" "Date: $(date -u -R)" | xclient_session 192.0.2.10)
like "$(nth 6 "$out") / $(nth 8 "$out")" "^250 2\.1\.5 Ok / 250 2\.0\.0 Ok: queued" \
	"relay client (relay_clients) with a mark: RCPT and the message accepted"
is "$(maildir_count "$MD")" 1 "the relay client's message is delivered"
WAIT_TIMEOUT=5 wait_for logged "plugin=naughty not rejecting, marked by badmailfrom at rcpt: exempt=relay_client"
ok $? "the log says the relay client is exempt"
out=$({
	echo "EHLO client.test"
	echo "AUTH PLAIN $(sasl_plain "" alice secret)"
	echo "MAIL FROM:<bad@evil.test>"
	echo "RCPT TO:<bob@sluice.test>"
	echo "QUIT"
} | xclient_session 198.51.100.6)
is "$(nth 5 "$out") $(nth 7 "$out")" "235 2.7.0 Authentication successful 250 2.1.5 Ok" \
	"authenticated client with a mark: RCPT accepted"
WAIT_TIMEOUT=5 wait_for logged "plugin=naughty not rejecting, marked by badmailfrom at rcpt: exempt=authenticated"
ok $? "the log says the authenticated client is exempt"

# --- reject_at=connect ------------------------------------------------------
sluice_restart connect <<EOF
plugin hosts_allow deny=198.51.100.66 reject=defer
plugin naughty reject_at=connect
plugin queue/maildir path=$MD
EOF
out=$(mail_from a@example.org | xclient_session 198.51.100.66)
is "$(nth 3 "$out")" "554 mx.sluice.test ESMTP Connection from [198.51.100.66] refused" \
	"reject_at=connect: a mark at connect refuses the session at once (554 greeting)"
is "$(nth 5 "$out")" "503 5.7.0 Service refused, send QUIT" \
	"and the session serves nothing else" || diag "$out"
out=$(mail_from a@example.org | xclient_session 198.51.100.67)
is "$(nth 3 "$out") $(nth 6 "$out")" "220 mx.sluice.test ESMTP sluice 250 2.1.5 Ok" \
	"reject_at=connect: an unmarked client goes on"

sluice_restart connect-disc <<EOF
plugin hosts_allow deny=198.51.100.66 reject=defer
plugin naughty reject_at=connect disconnect=yes
EOF
out=$(mail_from a@example.org | xclient_session 198.51.100.66)
is "$(nth 3 "$out") $(nth 4 "$out")" "554 5.7.1 Connection from [198.51.100.66] refused !closed" \
	"reject_at=connect disconnect=yes: 554 5.7.1 and the connection is closed"

# --- reject_at=helo -----------------------------------------------------------
sluice_restart helo <<EOF
plugin hosts_allow deny=198.51.100.66 reject=defer
$BAD
plugin naughty reject_at=helo
plugin queue/maildir path=$MD
EOF
out=$(printf 'EHLO client.test\nHELO client.test\nQUIT\n' | xclient_session 198.51.100.66)
is "$(nth 3 "$out") / $(nth 4 "$out") / $(nth 5 "$out")" \
	"220 mx.sluice.test ESMTP sluice / 554 5.7.1 Connection from [198.51.100.66] refused / 554 5.7.1 Connection from [198.51.100.66] refused" \
	"reject_at=helo: a mark at connect lands at EHLO, and at the HELO after it"
out=$(mail_from bad@evil.test | xclient_session 198.51.100.7)
is "$(nth 4 "$out") / $(nth 5 "$out")" \
	"250 HELP / 550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"reject_at=helo: a mark made later, at MAIL, lands at MAIL (naughty after the marker)"

# --- reject_at=mail, naughty before the marker ----------------------------------
sluice_restart mail-before <<EOF
plugin naughty reject_at=mail
$BAD
plugin queue/maildir path=$MD
EOF
out=$(mail_from bad@evil.test | xclient_session 198.51.100.8)
is "$(nth 5 "$out") / $(nth 6 "$out")" \
	"250 2.1.0 Ok / 550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"reject_at=mail, naughty listed before the marker: MAIL passes, the mark lands at RCPT"

sluice_restart mail-after <<EOF
$BAD
plugin naughty reject_at=mail
plugin queue/maildir path=$MD
EOF
out=$(mail_from bad@evil.test | xclient_session 198.51.100.9)
is "$(nth 5 "$out")" "550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"reject_at=mail, naughty after the marker: refused at MAIL itself"

# --- reject_at=data, data_post ----------------------------------------------------
sluice_restart data <<EOF
$BAD
plugin naughty reject_at=data
plugin queue/maildir path=$MD
EOF
out=$(printf 'EHLO client.test\nMAIL FROM:<bad@evil.test>\nRCPT TO:<bob@sluice.test>\nDATA\nQUIT\n' |
	xclient_session 198.51.100.10)
is "$(nth 6 "$out") / $(nth 7 "$out")" \
	"250 2.1.5 Ok / 550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"reject_at=data: RCPT accepted, DATA refused with the mark's reply"

sluice_restart data_post <<EOF
$BAD
plugin naughty reject_at=data_post
plugin queue/maildir path=$MD
EOF
n0=$(maildir_count "$MD")
out=$(message_from bad@evil.test "From: a@example.org" "Date: $(date -u -R)" | xclient_session 198.51.100.11)
is "$(nth 6 "$out") / $(nth 7 "$out" | cut -c1-3) / $(nth 8 "$out")" \
	"250 2.1.5 Ok / 354 / 550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"reject_at=data_post: RCPT and DATA accepted, the message refused at the dot"
is "$(maildir_count "$MD")" "$n0" "reject_at=data_post: nothing delivered"
WAIT_TIMEOUT=5 wait_for logged "plugin=naughty rejecting, marked by badmailfrom at data_post: verdict=deny code=550"
ok $? "the log says: rejecting, marked by badmailfrom at data_post"

# --- disconnect=yes ---------------------------------------------------------------
sluice_restart disc <<EOF
$BAD
$SOFT
plugin naughty disconnect=yes
EOF
out=$(mail_from bad@evil.test | xclient_session 198.51.100.12)
is "$(nth 6 "$out") $(nth 7 "$out")" "550 5.7.1 Mail from <bad@evil.test> not accepted here !closed" \
	"disconnect=yes: RCPT refused, then the connection is closed"
out=$(mail_from soft@example.org | xclient_session 198.51.100.13)
is "$(nth 6 "$out") $(nth 7 "$out")" "421 4.7.1 try later, soft !closed" \
	"disconnect=yes with a DENYSOFT mark: 421, then closed"
WAIT_TIMEOUT=5 wait_for logged "plugin=naughty rejecting, marked by test_hooks at rcpt: verdict=denysoft_disconnect code=421"
ok $? "the log says denysoft_disconnect code=421"

# --- configuration errors ----------------------------------------------------------
conf_fails "reject_at=queue" "6: plugin naughty: reject_at: " <<EOF
plugin naughty reject_at=queue
EOF
conf_fails "disconnect=maybe" "6: plugin naughty: disconnect: " <<EOF
plugin naughty disconnect=maybe
EOF
conf_fails "unknown option" "6: plugin naughty: " <<EOF
plugin naughty reject=defer at=rcpt
EOF
sluice_stop

# --- sluice-milterd behind Postfix ---------------------------------------------------
pf_milter_start || {
	skip 8 "milterd part needs root, postfix and swaks"
	exit 0
}
milterd_with() {
	milterd_stop
	unset PORT
	{
		echo "$SLUICE_CONF_BASE"
		echo "milter_listen inet:$MPORT@127.0.0.1"
		cat
	} | write_conf "$RUN/milterd.conf"
	milterd_start "$RUN/milterd.conf"
}
# send ADDR FROM SWAKS-ARGS...: one message through Postfix as client ADDR
send() {
	local addr=$1 from=$2
	shift 2
	swaks --server 127.0.0.1 --port "$SPORT" --timeout 20 --helo client.test \
		--xclient-addr "$addr" --from "$from" --to bob@sluice.test "$@" 2>&1
}
milterd_with <<EOF
$BAD
plugin naughty
EOF
out=$(send 198.51.100.20 bad@evil.test)
is "$(reply_to 'MAIL FROM:<bad@evil.test>' "$out")" "250 2.1.0 Ok" \
	"milterd: a mark at MAIL, MAIL accepted"
is "$(reply_to 'RCPT TO:<bob@sluice.test>' "$out")" \
	"550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"milterd: the mark lands at RCPT with the mark's reply"
out=$(send 192.0.2.20 bad@evil.test)
like "$(reply_to . "$out")" '^250 ' "milterd: a relay client with a mark gets its message through"
WAIT_TIMEOUT=5 wait_for grep -F -q "plugin=naughty not rejecting, marked by badmailfrom at rcpt: exempt=relay_client" "$RUN/milterd.log"
ok $? "milterd: the log says the relay client is exempt"

milterd_with <<EOF
$BAD
plugin naughty reject_at=data
EOF
out=$(send 198.51.100.21 bad@evil.test)
like "$(reply_to 'RCPT TO:<bob@sluice.test>' "$out")" '^250 ' \
	"milterd reject_at=data: RCPT accepted"
is "$(reply_to DATA "$out")" "550 5.7.1 Mail from <bad@evil.test> not accepted here" \
	"milterd reject_at=data: DATA refused with the mark's reply"
WAIT_TIMEOUT=5 wait_for grep -F -q "plugin=naughty rejecting, marked by badmailfrom at data: verdict=deny code=550" "$RUN/milterd.log"
ok $? "milterd: the log says: rejecting, marked by badmailfrom at data"
milterd_stop
san=$(grep -c -E 'AddressSanitizer|runtime error' "$RUN/milterd.log")
is "$san" 0 "no sanitizer report in milterd's log"
