#!/bin/bash
# plugin uribl: URIs in messages looked up in URI blocklists served by a
# private NSD (t/nsd.sh, zones multi.uribl.test and multi.surbl.test
# written here).  sluice-smtpd cases: a listed URI in a plain body, in a
# quoted-printable body (a soft line break splits the host), in a base64
# HTML part of a multipart/alternative, in the Subject; an IPv4 URI
# (reversed, SURBL style); a registered domain under two_level_tlds; a
# clean URI and an answer outside the zone's mask pass; our own domain and
# allow_domains are never looked up; the max_lookups and max_scan caps
# (a listed URI past the cap passes, logged); 127.0.0.1 ("refused"), a
# zone NSD does not serve (SERVFAIL) and a server that never answers,
# under dns_failure=skip and =tempfail; reject=defer (refused at the
# next RCPT); skip=relay; two messages in one session; start-up errors.
# sluice-milterd behind a private Postfix (root only): a listed URI is
# refused at the dot, a clean message delivered.
. "$SLUICE_SRC/t/lib.sh"

command -v nsd >/dev/null && command -v dig >/dev/null ||
	skip_all "nsd or dig missing (make deps installs nsd, bind9-dnsutils)"
[ -f "$SLUICE_BUILD/plugins/uribl.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/uribl.so)"

plan 53
setup_run

# ---------------------------------------------------------------- DNS
NSD_PORT=$(free_port)
"$SLUICE_SRC/t/nsd.sh" create "$RUN/nsd" "$NSD_PORT"
zone_hdr() { "$SLUICE_SRC/t/nsd.sh" hdr "$1" 30; }
{
	zone_hdr multi.uribl.test
	cat <<'Z'
listed.test       A 127.0.0.2
qplisted.test     A 127.0.0.2
htmllisted.test   A 127.0.0.4
subjlisted.test   A 127.0.0.8
spam.co.test      A 127.0.0.2
late.test         A 127.0.0.2
deferred.test     A 127.0.0.2
scanned.test      A 127.0.0.2
nomask.test       A 127.0.0.16
refused.test      A 127.0.0.1
sluice.test       A 127.0.0.2
allowed.test      A 127.0.0.2
Z
} >"$RUN/multi.uribl.test.zone"
{
	zone_hdr multi.surbl.test
	echo '55.2.0.192        A 127.0.0.64'
} >"$RUN/multi.surbl.test.zone"
"$SLUICE_SRC/t/nsd.sh" zone "$RUN/nsd" multi.uribl.test "$RUN/multi.uribl.test.zone"
"$SLUICE_SRC/t/nsd.sh" zone "$RUN/nsd" multi.surbl.test "$RUN/multi.surbl.test.zone"
nsd_start "$RUN/nsd"

ZONES=multi.uribl.test:0x0e,multi.surbl.test:0xfe
SLUICE_CONF_BASE="local_domains sluice.test
log_level debug
dns_timeout 2s
trusted_proxies 127.0.0.1/32
relay_clients 192.0.2.0/24"

# ---------------------------------------------------------------- helpers
# session [XCLIENT-ADDR] <message: one message (header, empty line, body on
# stdin, LF line ends) in a session of its own; prints the dialogue
session() {
	local msg
	msg=$(cat)
	{
		echo "EHLO client.test"
		[ -n "${1:-}" ] && echo "XCLIENT ADDR=$1" && echo "EHLO client.test"
		echo "MAIL FROM:<alice@sender.test>"
		echo "RCPT TO:<bob@sluice.test>"
		echo "DATA"
		printf '%s\n' "$msg"
		echo "."
		echo "QUIT"
	} | smtp_chat
}
# dot [XCLIENT-ADDR] <message: the reply to the message's final dot
dot() {
	session "$@" | final_reply
}
# log_after MARK: the daemon's log after line MARK (from log_mark)

# ---------------------------------------------------------------- smtpd
sluice_restart main <<EOF
dns_servers 127.0.0.1:$NSD_PORT
plugin uribl zones=$ZONES two_level_tlds=co.test allow_domains=allowed.test max_lookups=4 max_scan=4k skip=relay
plugin queue/discard
EOF

is "$(dot <<'EOF'
From: alice@sender.test
Subject: offer

Buy now at http://www.Listed.TEST/shop?id=1 while it lasts.
EOF
)" "550 5.7.1 Message contains a listed URI: listed.test (multi.uribl.test)" \
	"plain body: 550 5.7.1 naming the domain and the zone"
grep -q 'plugin=uribl verdict=deny reason=listed domain=listed.test zone=multi.uribl.test answer=127.0.0.2 bits=0x02 mask=0x0e names=1 outcome=fail' "$RUN/smtpd.log"
ok $? "the hit is logged with answer, bits, mask and outcome=fail"

is "$(dot <<'EOF'
Subject: qp
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

A long line that the encoder folded: http://www.qplis=
ted.test/x=3D1 and more text
EOF
)" "550 5.7.1 Message contains a listed URI: qplisted.test (multi.uribl.test)" \
	"quoted-printable body, host split by a soft line break: 550"

HTML64=$(printf '%s' '<html><body><p>Hello</p><p><a href="https://click.htmllisted.test/t?u=1">offer</a></p></body></html>' |
	base64 -w 60)
is "$(dot <<EOF
Subject: html
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-b"

--alt-b
Content-Type: text/plain; charset=us-ascii

Hello (no links in the plain part)
--alt-b
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

$HTML64
--alt-b--
EOF
)" "550 5.7.1 Message contains a listed URI: htmllisted.test (multi.uribl.test)" \
	"base64 text/html part inside multipart/alternative: 550 (answer 127.0.0.4 & 0x0e)"

is "$(dot <<'EOF'
Subject: =?utf-8?Q?see_http://subjlisted.test/_now?=

clean body
EOF
)" "550 5.7.1 Message contains a listed URI: subjlisted.test (multi.uribl.test)" \
	"URI in an RFC 2047 encoded Subject: 550"

is "$(dot <<'EOF'
Subject: ip

http://192.0.2.55/login.php
EOF
)" "550 5.7.1 Message contains a listed URI: 192.0.2.55 (multi.surbl.test)" \
	"IPv4 URI, looked up reversed in the SURBL-style zone: 550"
grep -q 'lookup name=192.0.2.55 zone=multi.surbl.test status=ok answer=127.0.0.64 bits=0x40 listed=yes' "$RUN/smtpd.log"
ok $? "the IPv4 lookup is logged (55.2.0.192.multi.surbl.test, bits 0x40)"

is "$(dot <<'EOF'
Subject: two levels

see www.shop.spam.co.test today
EOF
)" "550 5.7.1 Message contains a listed URI: spam.co.test (multi.uribl.test)" \
	"www. without a scheme, under two_level_tlds=co.test: the third level is looked up"

m=$(log_mark)
like "$(dot <<'EOF'
Subject: clean

see http://www.clean.test/ and https://other-clean.test/
EOF
)" '^250 ' "clean URIs: 250"
like "$(log_after "$m")" 'debug: [0-9A-F]+ plugin=uribl verdict=pass names=2 outcome=pass' \
	"a pass is logged at debug with the number of names and outcome=pass"
like "$(log_after "$m")" 'info: [0-9A-F]+ queued txn=[0-9A-F.]+ size=[0-9]+ rcpts=1 results=([a-z_]+:[a-z]+,)*uribl:pass(,|[[:space:]]|$)' \
	"... and at info in the queued line's results="

m=$(log_mark)
like "$(dot <<'EOF'
Subject: grey

http://nomask.test/
EOF
)" '^250 ' "an answer outside the zone's mask (127.0.0.16 & 0x0e): 250"
like "$(log_after "$m")" 'lookup name=nomask\.test zone=multi\.uribl\.test status=ok answer=127\.0\.0\.16 bits=0x10' \
	"the answer and its bits are logged"

m=$(log_mark)
like "$(dot <<'EOF'
Subject: own

http://www.sluice.test/ http://mail.allowed.test/ mailto:x@listed.test
EOF
)" '^250 ' "our own domain (hostname mx.sluice.test), allow_domains, a mail address: 250"
like "$(log_after "$m")" 'plugin=uribl verdict=pass names=0 ' "none of them was looked up"

m=$(log_mark)
like "$(dot <<'EOF'
Subject: many

http://a1.test/ http://a2.test/ http://a3.test/ http://a1.test/x
http://a4.test/ http://a5.test/ http://late.test/
EOF
)" '^250 ' "max_lookups=4: a listed domain after four others passes"
log=$(log_after "$m")
like "$log" 'plugin=uribl cap=max_lookups max_lookups=4 next=a5\.test action=stop extracting' \
	"the cap is logged with the first name left out"
like "$log" 'verdict=pass names=4 capped=max_lookups outcome=pass' "the pass says it was capped"
unlike "$log" 'name=late\.test' "late.test was never looked up"

like "$(dot <<'EOF'
Subject: few

http://a1.test/ http://a2.test/ http://late.test/
EOF
)" '^550 5\.7\.1 Message contains a listed URI: late\.test ' \
	"the same listed domain within the cap: 550"

m=$(log_mark)
filler=$(for i in {1..100}; do printf 'x%.0s' {1..49}; echo; done)
like "$(dot <<EOF
Subject: big

$filler
http://scanned.test/
EOF
)" '^250 ' "max_scan=4k: a listed URI after 5000 bytes passes"
like "$(log_after "$m")" 'plugin=uribl cap=max_scan max_scan=4096 scanned=4096 action=stop extracting' \
	"the max_scan cap is logged"

m=$(log_mark)
like "$(dot <<'EOF'
Subject: refused

http://refused.test/
EOF
)" '^250 ' "answer 127.0.0.1 (query refused), dns_failure=skip: 250"
like "$(log_after "$m")" 'verdict=pass reason=dns_failure action=skip domain=refused\.test zone=multi\.uribl\.test error=refused names=1 outcome=error' \
	"logged as a DNS failure, outcome=error"

out=$(session 192.0.2.5 <<'EOF'
Subject: relay

http://www.listed.test/
EOF
)
like "$(final_reply <<<"$out")" '^250 ' "skip=relay: a relay client (XCLIENT ADDR=192.0.2.5) is not checked"

out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@sender.test>
RCPT TO:<bob@sluice.test>
DATA
Subject: first

http://listed.test/
.
MAIL FROM:<alice@sender.test>
RCPT TO:<bob@sluice.test>
DATA
Subject: second

http://www.clean.test/
.
RSET
MAIL FROM:<alice@sender.test>
RCPT TO:<bob@sluice.test>
DATA
Subject: third

http://qplisted.test/
.
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 550 250 250 354 250 250 250 250 354 550 221 closed" \
	"one session: listed 550, clean 250, after RSET listed 550 (state per message)"

# ---------------------------------------------------------------- reject=defer
sluice_restart defer <<EOF
dns_servers 127.0.0.1:$NSD_PORT
plugin uribl zones=$ZONES reject=defer
plugin queue/discard
EOF
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@sender.test>
RCPT TO:<bob@sluice.test>
DATA
Subject: deferred

http://deferred.test/
.
MAIL FROM:<alice@sender.test>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 250 550 221 closed" \
	"reject=defer: the message is accepted, the next RCPT refused"
like "$(grep -E '^550 ' <<<"$out")" '^550 5\.7\.1 Message contains a listed URI: deferred\.test \(multi\.uribl\.test\)$' \
	"the RCPT gets the plugin's reply"
grep -q 'hook=data_post plugin=uribl verdict=deny action=defer' "$RUN/smtpd.log"
ok $? "the core logged the mark (action=defer)"

# ---------------------------------------------------------------- DNS failures
sluice_restart servfail-skip <<EOF
dns_servers 127.0.0.1:$NSD_PORT
plugin uribl zones=multi.uribl.test:0x0e,unserved.test dns_failure=skip
plugin queue/discard
EOF
m=$(log_mark)
like "$(dot <<'EOF'
Subject: servfail

http://www.clean.test/
EOF
)" '^250 ' "a zone NSD refuses (SERVFAIL), dns_failure=skip: 250"
like "$(log_after "$m")" 'verdict=pass reason=dns_failure action=skip domain=clean\.test zone=unserved\.test error=servfail names=1 outcome=error' \
	"the skipped failure is logged"
like "$(dot <<'EOF'
Subject: servfail but listed

http://www.listed.test/
EOF
)" '^550 5\.7\.1 Message contains a listed URI: listed\.test \(multi\.uribl\.test\)' \
	"a hit in the other zone still refuses"

sluice_restart servfail-tempfail <<EOF
dns_servers 127.0.0.1:$NSD_PORT
plugin uribl zones=multi.uribl.test:0x0e,unserved.test dns_failure=tempfail
plugin queue/discard
EOF
m=$(log_mark)
is "$(dot <<'EOF'
Subject: servfail

http://www.clean.test/
EOF
)" "451 4.4.3 URI blocklist lookup failed, try again later" \
	"SERVFAIL, dns_failure=tempfail: 451 4.4.3"
like "$(log_after "$m")" 'verdict=denysoft reason=dns_failure action=tempfail domain=clean\.test zone=unserved\.test error=servfail names=1 outcome=error' \
	"the tempfail is logged"
like "$(dot <<'EOF'
Subject: refused

http://refused.test/
EOF
)" '^451 4\.4\.3 ' "answer 127.0.0.1, dns_failure=tempfail: 451 4.4.3"

SILENT_PORT=$(free_port)
udp_silent "$SILENT_PORT"
sluice_restart timeout-skip <<EOF
dns_servers 127.0.0.1:$SILENT_PORT
dns_timeout 500ms
plugin uribl zones=$ZONES
plugin queue/discard
EOF
m=$(log_mark)
like "$(dot <<'EOF'
Subject: timeout

http://www.listed.test/
EOF
)" '^250 ' "no DNS answer (timeout), dns_failure=skip (the default): 250, no stall"
like "$(log_after "$m")" 'verdict=pass reason=dns_failure action=skip domain=listed\.test zone=multi\.uribl\.test error=timeout' \
	"the timeout is logged"

sluice_restart timeout-tempfail <<EOF
dns_servers 127.0.0.1:$SILENT_PORT
dns_timeout 500ms
plugin uribl zones=$ZONES dns_failure=tempfail
plugin queue/discard
EOF
is "$(dot <<'EOF'
Subject: timeout

http://www.listed.test/
EOF
)" "451 4.4.3 URI blocklist lookup failed, try again later" \
	"timeout, dns_failure=tempfail: 451 4.4.3"
like "$(printf 'EHLO client.test\nNOOP\nQUIT\n' | smtp_chat | reply_codes)" '^220 250 250 221' \
	"the daemon still answers"
sluice_stop

# ---------------------------------------------------------------- start-up errors
conf_fails "no zones" "[0-9]+: plugin uribl: zones: at least one ZONE\[:MASK\] is required" <<EOF
plugin uribl
EOF
conf_fails "bad mask" "[0-9]+: plugin uribl: zones: bad mask in 'multi\.uribl\.test:0x100' \(1 to 255, e\.g\. 0x0e\)" <<EOF
plugin uribl zones=multi.uribl.test:0x100
EOF
conf_fails "bad zone" "[0-9]+: plugin uribl: zones: bad zone name in 'multi\.\.uribl\.test'" <<EOF
plugin uribl zones=multi..uribl.test
EOF
conf_fails "bad two_level_tlds" "[0-9]+: plugin uribl: two_level_tlds: 'uk' is not a two-label suffix such as co\.uk" <<EOF
plugin uribl zones=multi.uribl.test two_level_tlds=co.test,uk
EOF

# ---------------------------------------------------------------- milterd + Postfix
if why=$(pf_milterd_why); then
	skip 5 "$why"
else
	pf_milterd_setup
	write_conf "$RUN/milterd.conf" <<EOF
milter_listen inet:$MPORT@127.0.0.1
log_level debug
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s
plugin uribl zones=$ZONES
EOF
	milterd_start "$RUN/milterd.conf"
	# send CASE BODY: one message through Postfix; prints swaks' dialogue
	send() {
		swaks --server 127.0.0.1 --port "$SPORT" --timeout 20 \
			--helo client.test --from alice@sender.test \
			--to bob@sluice.test --header "Subject: uribl $1" \
			--add-header "X-Case: $1" --body "$2" 2>&1
	}
	# the reply to the final dot, from swaks' dialogue
	dot_reply() {
		awk '/^ *-> \.$/ { f = 1; next }
		     f && /^ *<(-|\*\*) / { sub(/^ *<(-|\*\*) +/, ""); print; exit }'
	}
	out=$(send listed 'see http://www.listed.test/ now')
	is "$(dot_reply <<<"$out")" "550 5.7.1 Message contains a listed URI: listed.test (multi.uribl.test)" \
		"milterd: a listed URI is refused at the dot with the plugin's reply"
	out=$(send clean 'see http://www.clean.test/ now')
	like "$(dot_reply <<<"$out")" '^250 ' "milterd: a clean message is accepted"
	grep -qE 'info: [0-9A-F]+ accepted txn=[0-9A-F.]+ size=[0-9]+ rcpts=1 results=uribl:pass$' "$RUN/milterd.log"
	ok $? "milterd: the accepted line lists the outcome (results=uribl:pass)"
	delivered() { grep -l -x -s "X-Case: clean" "$PFD"/mail/inbox/new/* >/dev/null 2>&1; }
	wait_for delivered
	ok $? "milterd: the clean message is delivered"
	"$PF" drain "$PFD" 15 >/dev/null 2>&1
	n=$(grep -l -x -s "X-Case: listed" "$PFD"/mail/inbox/new/* 2>/dev/null | wc -l)
	is "$n" 0 "milterd: the listed message is not delivered"
	milterd_stop
fi

# ---------------------------------------------------------------- logs
san=$(cat "$RUN"/*.log 2>/dev/null | grep -c -E 'AddressSanitizer|runtime error|LeakSanitizer')
is "$san" 0 "no sanitizer report in the daemons' logs"
