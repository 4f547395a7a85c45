#!/bin/bash
# plugin rhsbl against a private NSD (t/nsd.sh) serving three domain
# lists of our own, clients faked with XCLIENT (ADDR, NAME):
#   dbl.sluice.test=127.0.1.[2..99]*2  TXT for some entries; one answer
#                                      the filter drops, one outside 127/8
#   rhs.sluice.test                    weight 1 (below threshold=2 alone)
#   dwl.sluice.test*-2                 lowers a name's score
# Cases: the sender domain, the HELO name and the client's host name
# (XCLIENT NAME, and the note fcrdns.name winning over it) each refused
# at RCPT with its own text and the TXT, threshold arithmetic, the
# filter, names never looked up (null sender, address literal), checks=,
# check_at=mail, message=, the outcomes (t/plugins/test_notes.so), a zone
# NSD does not serve and a server that never answers under
# dns_failure=skip and tempfail, reject=defer, skip=relay, bad options.
# Milter mode: sluice-milterd behind a private Postfix refuses a listed
# sender and passes a clean one (needs root + Postfix).
. "$SLUICE_SRC/t/lib.sh"

command -v nsd >/dev/null && command -v dig >/dev/null ||
	skip_all "nsd or dig missing (make deps installs nsd, bind9-dnsutils)"
[ -f "$SLUICE_BUILD/t/plugins/test_notes.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_notes.so)"

plan 49
setup_run

# ---------------------------------------------------------------- DNS
NSD=$RUN/nsd
NSD_PORT=$(free_port)
"$SLUICE_SRC/t/nsd.sh" create "$NSD" "$NSD_PORT"
hdr() { "$SLUICE_SRC/t/nsd.sh" hdr "$1" 30; } # negative answers cached 30 s
{
	hdr dbl.sluice.test
	cat <<'EOF'
bad-sender.test     A 127.0.1.2
bad-sender.test     TXT "dbl: bad-sender.test sends spam"
bad-helo.test       A 127.0.1.2
mail.bad-rdns.test  A 127.0.1.3
mail.bad-rdns.test  TXT "dbl: a spam host"
filtered.test       A 127.0.1.255
outside.test        A 192.0.2.1
both.test           A 127.0.1.2
good.test           A 127.0.1.2
EOF
} >"$RUN/dbl.zone"
{
	hdr rhs.sluice.test
	cat <<'EOF'
half.test  A 127.0.0.2
both.test  A 127.0.0.2
EOF
} >"$RUN/rhs.zone"
{
	hdr dwl.sluice.test
	printf 'good.test A 127.0.2.1\n'
} >"$RUN/dwl.zone"
for z in dbl rhs dwl; do
	"$SLUICE_SRC/t/nsd.sh" zone "$NSD" "$z.sluice.test" "$RUN/$z.zone"
done
nsd_start "$NSD"

ZONES='dbl.sluice.test=127.0.1.[2..99]*2,rhs.sluice.test,dwl.sluice.test*-2'
SLUICE_CONF_BASE="local_domains sluice.test
relay_clients 198.51.100.0/24
trusted_proxies 127.0.0.1/32
max_errors 100
log_level debug
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s"

# ---------------------------------------------------------------- helpers
# sess HELO FROM [XCLIENT-ATTRS]: EHLO, XCLIENT ADDR=192.0.2.50 ATTRS,
# EHLO HELO, MAIL FROM:<FROM>, two RCPTs, QUIT; prints the complete
# replies: 1 banner, 2 EHLO, 3 XCLIENT, 4 EHLO, 5 MAIL, 6 and 7 RCPT.
# The second RCPT lets test_notes (first in the rcpt chain) show the
# outcome of the first.  CHAT_PORT: another server than ours (Postfix).
sess() {
	printf '%s\n' "EHLO proxy.test" "XCLIENT ADDR=192.0.2.50${3:+ $3}" \
		"EHLO $1" "MAIL FROM:<$2>" "RCPT TO:<bob@sluice.test>" \
		"RCPT TO:<carol@sluice.test>" QUIT |
		smtp_chat --port "${CHAT_PORT:-$PORT}" | grep -E '^[0-9]{3}( |$)'
}
rcpt() { sess "$@" | sed -n 6p; }

# ---------------------------------------------------------------- A
sluice_restart a <<EOF
plugin test_notes hook=rcpt keys=result.rhsbl
plugin rhsbl zones=$ZONES threshold=2
plugin queue/discard
EOF

m=$(log_mark)
is "$(rcpt client.test alice@bad-sender.test)" \
	"550 5.7.1 Sender address rejected: bad-sender.test listed by dbl.sluice.test; dbl: bad-sender.test sends spam" \
	"sender domain listed: 550 5.7.1 at RCPT with the zone and its TXT"
log=$(log_after "$m")
log_has "$log" 'plugin=rhsbl verdict=deny sender=bad-sender\.test score=2 threshold=2 zone=dbl\.sluice\.test listed="dbl\.sluice\.test=127\.0\.1\.2\*2"' \
	"... one decision line with the name, score, zone and answer"
log_has "$log" 'notes hook=rcpt result\.rhsbl=fail sender=bad-sender\.test dbl\.sluice\.test=127\.0\.1\.2\*2 score=2' \
	"... outcome fail"
is "$(sess client.test alice@bad-sender.test | sed -n 5p)" "250 2.1.0 Ok" \
	"... MAIL itself was accepted (check_at=rcpt)"

is "$(rcpt bad-helo.test alice@sender.test)" \
	"550 5.7.1 HELO name rejected: bad-helo.test listed by dbl.sluice.test" \
	"HELO name listed: 550 5.7.1, no TXT there"
is "$(rcpt client.test alice@sender.test NAME=mail.bad-rdns.test)" \
	"550 5.7.1 Client host name rejected: mail.bad-rdns.test listed by dbl.sluice.test; dbl: a spam host" \
	"client host name (XCLIENT NAME) listed: 550 5.7.1 with the TXT"

m=$(log_mark)
is "$(rcpt client.test alice@filtered.test)" "250 2.1.5 Ok" \
	"an answer outside the zone's filter (127.0.1.255): accepted"
is "$(rcpt client.test alice@outside.test)" "250 2.1.5 Ok" \
	"an answer outside 127/8: accepted"
log_has "$(log_after "$m")" 'sender=outside\.test zone=dbl\.sluice\.test query=outside\.test\.dbl\.sluice\.test answer=192\.0\.2\.1 action=ignored' \
	"... and the ignored answer log_has"
is "$(rcpt client.test alice@half.test)" "250 2.1.5 Ok" "rhs alone (score 1 < threshold 2): accepted"
is "$(rcpt client.test alice@both.test)" \
	"550 5.7.1 Sender address rejected: both.test listed by dbl.sluice.test" \
	"dbl*2 + rhs*1: refused, naming the heavier zone"
m=$(log_mark)
is "$(rcpt client.test alice@good.test)" "250 2.1.5 Ok" "dbl*2 + dwl*-2 = 0: accepted"
log=$(log_after "$m")
log_has "$log" 'verdict=pass sender=good\.test helo=client\.test' "... log_has as a pass with the names looked up"
log_has "$log" 'notes hook=rcpt result\.rhsbl=pass sender=good\.test helo=client\.test' "... outcome pass"

m=$(log_mark)
is "$(rcpt '[192.0.2.50]' '')" "250 2.1.5 Ok" "null sender and an address literal HELO: accepted"
log=$(log_after "$m")
log_lacks "$log" 'dns query name=[^ ]*(\[|192\.0\.2\.50|sluice\.test\.dbl)' "... neither was looked up"
log_has "$log" 'notes hook=rcpt result\.rhsbl=skip nothing to look up' "... outcome skip"

# the note fcrdns.name (set by the fcrdns plugin) wins over the front end's name
sluice_restart a2 <<EOF
plugin test_notes hook=rcpt set=fcrdns.name=mail.bad-rdns.test
plugin rhsbl zones=$ZONES threshold=2
plugin queue/discard
EOF
like "$(rcpt client.test alice@sender.test NAME=clean-host.test)" \
	'^550 5\.7\.1 Client host name rejected: mail\.bad-rdns\.test listed by dbl\.sluice\.test' \
	"the note fcrdns.name is looked up rather than XCLIENT NAME"

# ---------------------------------------------------------------- B: options
sluice_restart b <<EOF
plugin rhsbl zones=$ZONES threshold=2 checks=sender check_at=mail
plugin queue/discard
EOF
is "$(sess client.test alice@bad-sender.test | sed -n 5p)" \
	"550 5.7.1 Sender address rejected: bad-sender.test listed by dbl.sluice.test; dbl: bad-sender.test sends spam" \
	"check_at=mail: MAIL refused"
is "$(sess bad-helo.test alice@sender.test | sed -n 5,6p | tr '\n' ' ')" "250 2.1.0 Ok 250 2.1.5 Ok " \
	"checks=sender: a listed HELO name is not looked at"
like "$(sess client.test alice@sender.test NAME=mail.bad-rdns.test | sed -n 6p)" '^250 ' \
	"checks=sender: nor a listed client name"

sluice_restart b2 <<EOF
plugin rhsbl zones=$ZONES threshold=2 txt=no message="%check% %domain% is on %zone% (%txt%) 50%"
plugin queue/discard
EOF
is "$(rcpt client.test alice@bad-sender.test)" \
	"550 5.7.1 sender bad-sender.test is on dbl.sluice.test () 50%" \
	"message= with %check% %domain% %zone%; txt=no leaves %txt% empty"

# ---------------------------------------------------------------- C: failures
sluice_restart c <<EOF
plugin test_notes hook=rcpt keys=result.rhsbl
plugin rhsbl zones=$ZONES,unserved.test*2 threshold=2
plugin queue/discard
EOF
m=$(log_mark)
is "$(rcpt client.test alice@sender.test)" "250 2.1.5 Ok" "servfail, dns_failure=skip: accepted"
log=$(log_after "$m")
log_has "$log" 'sender=sender\.test zone=unserved\.test query=sender\.test\.unserved\.test status=servfail .*action=error' \
	"... the failed zone log_has"
log_has "$log" 'verdict=pass sender=sender\.test failed="unserved\.test:servfail" dns_failure=skip' \
	"... the decision names it"
log_has "$log" 'notes hook=rcpt result\.rhsbl=error sender=sender\.test failed=unserved\.test:servfail' \
	"... outcome error"
like "$(rcpt client.test alice@bad-sender.test)" '^550 5\.7\.1 Sender address rejected: bad-sender\.test listed by dbl' \
	"servfail: a name listed past the threshold anyway is refused"

sluice_restart c2 <<EOF
plugin rhsbl zones=$ZONES,unserved.test*2 threshold=2 dns_failure=tempfail
plugin queue/discard
EOF
is "$(rcpt client.test alice@sender.test)" \
	"451 4.4.3 Sender address rejected: DNS list lookup for sender.test failed, try again later" \
	"servfail, dns_failure=tempfail: 451 4.4.3"
is "$(rcpt client.test '')" \
	"451 4.4.3 HELO name rejected: DNS list lookup for client.test failed, try again later" \
	"... with the null sender, the HELO name's lookup is the one that failed"

SILENT_PORT=$(free_port)
udp_silent "$SILENT_PORT"
SAVED_BASE=$SLUICE_CONF_BASE
SLUICE_CONF_BASE=${SLUICE_CONF_BASE/dns_servers 127.0.0.1:$NSD_PORT/dns_servers 127.0.0.1:$SILENT_PORT}
SLUICE_CONF_BASE=${SLUICE_CONF_BASE/dns_timeout 2s/dns_timeout 500ms}
sluice_restart d <<EOF
plugin rhsbl zones=$ZONES threshold=2 checks=sender dns_failure=tempfail
plugin queue/discard
EOF
is "$(rcpt client.test alice@sender.test)" \
	"451 4.4.3 Sender address rejected: DNS list lookup for sender.test failed, try again later" \
	"timeout, dns_failure=tempfail: 451 4.4.3"
log_has "$(cat "$RUN/smtpd.log")" 'sender=sender\.test zone=dbl\.sluice\.test query=sender\.test\.dbl\.sluice\.test status=timeout' \
	"... the timeout log_has per zone"
sluice_restart d2 <<EOF
plugin rhsbl zones=$ZONES threshold=2 checks=sender
plugin queue/discard
EOF
is "$(rcpt client.test alice@sender.test)" "250 2.1.5 Ok" "timeout, dns_failure=skip: accepted"
SLUICE_CONF_BASE=${SLUICE_CONF_BASE/dns_timeout 500ms/dns_timeout 20s}
sluice_restart d3 <<EOF
plugin rhsbl zones=$ZONES threshold=2 checks=sender dns_failure=tempfail timeout=700ms
plugin queue/discard
EOF
is "$(rcpt client.test alice@sender.test)" \
	"451 4.4.3 Sender address rejected: DNS list lookup for sender.test failed, try again later" \
	"timeout=700ms before dns_timeout: the plugin decides itself"
SLUICE_CONF_BASE=$SAVED_BASE

# ---------------------------------------------------------------- E: defer, relay
sluice_restart e <<EOF
plugin rhsbl zones=$ZONES threshold=2 check_at=mail reject=defer
plugin queue/discard
EOF
out=$(sess client.test alice@bad-sender.test)
is "$(sed -n 5p <<<"$out")" "250 2.1.0 Ok" "reject=defer at MAIL: MAIL 250"
is "$(sed -n 6p <<<"$out")" \
	"550 5.7.1 Sender address rejected: bad-sender.test listed by dbl.sluice.test; dbl: bad-sender.test sends spam" \
	"reject=defer: the refusal lands at RCPT"

sluice_restart e2 <<EOF
plugin rhsbl zones=$ZONES threshold=2 skip=relay
plugin queue/discard
EOF
m=$(log_mark)
is "$(printf '%s\n' "EHLO proxy.test" "XCLIENT ADDR=198.51.100.7" "EHLO bad-helo.test" \
	"MAIL FROM:<alice@bad-sender.test>" "RCPT TO:<bob@elsewhere.test>" QUIT |
	smtp_chat | grep -E '^[0-9]{3}( |$)' | sed -n 6p)" "250 2.1.5 Ok" \
	"skip=relay: a relay client with a listed sender and HELO may relay"
log_lacks "$(log_after "$m")" 'plugin=rhsbl' "skip=relay: ... nothing looked up"

# ---------------------------------------------------------------- F: config errors
P="6: plugin rhsbl"
conf_fails "no zones" "$P: zones: no zone given" <<<"plugin rhsbl"
conf_fails "bad zone" "$P: zones: 'dbl\.sluice\.test=127\.0\.1': bad answer filter" \
	<<<"plugin rhsbl zones=dbl.sluice.test=127.0.1"
conf_fails "unknown check" "$P: checks: " <<<"plugin rhsbl zones=dbl.sluice.test checks=sender,body"
conf_fails "check_at=connect" "$P: check_at: " <<<"plugin rhsbl zones=dbl.sluice.test check_at=connect"

# ---------------------------------------------------------------- G: milter mode
if [ "$(id -u)" != 0 ] || ! command -v postfix >/dev/null 2>&1; then
	skip 4 "milter mode needs root and Postfix"
else
	sluice_stop
	PF=$SLUICE_SRC/t/pf-instance.sh
	PFD=$RUN/pf
	SPORT=$(free_port)
	MPORT=$(free_port)
	stop_at_exit "$PFD/maillog" "$PF" stop "$PFD"
	"$PF" create "$PFD" "$SPORT" discard "inet:127.0.0.1:$MPORT" &&
		"$PF" start "$PFD" 20
	ok $? "milter: private Postfix up"
	{
		echo "$SLUICE_CONF_BASE"
		echo "milter_listen inet:$MPORT@127.0.0.1"
		echo "plugin rhsbl zones=$ZONES threshold=2"
	} | write_conf "$RUN/milterd.conf"
	milterd_start "$RUN/milterd.conf"
	CHAT_PORT=$SPORT
	is "$(rcpt client.test alice@bad-sender.test)" \
		"550 5.7.1 Sender address rejected: bad-sender.test listed by dbl.sluice.test; dbl: bad-sender.test sends spam" \
		"milter: Postfix refuses the RCPT of a listed sender with our reply"
	is "$(rcpt bad-helo.test alice@sender.test | cut -c1-4)" "550 " \
		"milter: ... and of a listed HELO name"
	like "$(rcpt client.test alice@sender.test)" '^250 ' "milter: a clean sender is accepted"
	CHAT_PORT=
fi
