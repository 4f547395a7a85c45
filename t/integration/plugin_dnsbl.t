#!/bin/bash
# plugin dnsbl against a private NSD (t/nsd.sh) serving four lists of our
# own, clients faked with XCLIENT:
#   zen.sluice.test*3                 TXT present, an IPv6 entry (nibbles),
#                                     an answer outside 127/8 and a
#                                     127.255.255.254 "refused" answer
#   bl.sluice.test=127.0.0.[2..4]*2   no TXT; one answer the filter drops
#   low.sluice.test                   weight 1 (below threshold=3 alone)
#   wl.sluice.test*-5                 an allow list
# Cases: the verdict at each check_at (554 at connect, 550 at helo, mail,
# rcpt), the threshold arithmetic, the allow list winning over a listing
# (outcome pass, note dnsbl.allowed), TXT in the reply, message=, the
# outcomes (via t/plugins/test_notes.so), the verdict cache (a second
# connection logs cached=yes and is refused with NSD stopped), a zone NSD
# does not serve (REFUSED = servfail) and a server that never answers,
# each under dns_failure=skip and tempfail, the plugin's own timeout=,
# reject=defer landing at RCPT, skip=relay, and bad options at start-up.
# Milter mode: sluice-milterd behind a private Postfix refuses a listed
# client faked with XCLIENT and passes a clean one (needs root + Postfix).
. "$SLUICE_SRC/t/lib.sh"

command -v nsd >/dev/null && command -v dig >/dev/null ||
	skip_all "nsd or dig missing (make deps installs nsd, bind9-dnsutils)"
[ -f "$SLUICE_BUILD/t/plugins/test_notes.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_notes.so)"

plan 78
setup_run

# ---------------------------------------------------------------- DNS
NSD=$RUN/nsd
NSD_PORT=$(free_port)
"$SLUICE_SRC/t/nsd.sh" create "$NSD" "$NSD_PORT"
hdr() { "$SLUICE_SRC/t/nsd.sh" hdr "$1" 30; } # negative answers cached 30 s
# 2001:db8::10 as RFC 5782 nibbles
V6=0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2
{
	hdr zen.sluice.test
	cat <<EOF
10.2.0.192    A 127.0.0.2
10.2.0.192    TXT "zen: 192.0.2.10 is listed" ", see https://zen.sluice.test/?192.0.2.10"
14.2.0.192    A 127.0.0.2
16.2.0.192    A 192.0.2.99
17.2.0.192    A 127.255.255.254
18.2.0.192    A 127.0.0.2
18.2.0.192    TXT "bad bytes: \007\200 end"
10.100.51.198 A 127.0.0.2
$V6           A 127.0.0.3
$V6           TXT "zen: IPv6 listing"
EOF
} >"$RUN/zen.zone"
{
	hdr bl.sluice.test
	cat <<'EOF'
12.2.0.192 A 127.0.0.3
13.2.0.192 A 127.0.0.9
EOF
} >"$RUN/bl.zone"
{
	hdr low.sluice.test
	cat <<'EOF'
11.2.0.192 A 127.0.0.2
11.2.0.192 TXT "low: minor listing"
12.2.0.192 A 127.0.0.2
13.2.0.192 A 127.0.0.2
EOF
} >"$RUN/low.zone"
{
	hdr wl.sluice.test
	cat <<'EOF'
14.2.0.192 A 127.0.10.1
15.2.0.192 A 127.0.10.1
EOF
} >"$RUN/wl.zone"
for z in zen bl low wl; do
	"$SLUICE_SRC/t/nsd.sh" zone "$NSD" "$z.sluice.test" "$RUN/$z.zone"
done
nsd_start "$NSD"

ZONES='zen.sluice.test*3,bl.sluice.test=127.0.0.[2..4]*2,low.sluice.test,wl.sluice.test*-5'
SLUICE_CONF_BASE="local_domains sluice.test
relay_clients 198.51.100.0/24
trusted_proxies 127.0.0.1/32
max_errors 100
log_level debug
loop_threads 1
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s"

# ---------------------------------------------------------------- helpers
# as ADDR [CMDS...]: a session through XCLIENT ADDR=ADDR, then CMDS
# (default: EHLO, MAIL, two RCPTs), then QUIT; prints the complete
# replies, one per line: 1 banner, 2 EHLO, 3 the XCLIENT greeting, 4...
# the CMDS.  The second RCPT lets test_notes (first in the rcpt chain)
# show the outcome once the first one waited for the lists.  CHAT_PORT:
# another server than ours (Postfix).
as() {
	local addr=$1
	shift
	[ $# -gt 0 ] || set -- "EHLO client.test" "MAIL FROM:<alice@sender.test>" \
		"RCPT TO:<bob@sluice.test>" "RCPT TO:<carol@sluice.test>"
	{
		echo "EHLO proxy.test"
		echo "XCLIENT ADDR=$addr"
		printf '%s\n' "$@"
		echo "QUIT"
	} | smtp_chat --port "${CHAT_PORT:-$PORT}" | grep -E '^[0-9]{3}( |$)'
}
# reply N ADDR [CMDS...]: the N-th complete reply of "as"
reply() {
	local n=$1
	shift
	as "$@" | sed -n "${n}p"
}
rcpt() { reply 6 "$1"; }

# ---------------------------------------------------------------- A: rcpt
sluice_restart a <<EOF
plugin test_notes hook=rcpt keys=result.dnsbl,dnsbl.allowed
plugin dnsbl zones=$ZONES threshold=3
plugin queue/discard
EOF

m=$(log_mark)
is "$(rcpt 192.0.2.10)" \
	"550 5.7.1 Service unavailable; client [192.0.2.10] blocked using zen.sluice.test; zen: 192.0.2.10 is listed, see https://zen.sluice.test/?192.0.2.10" \
	"A: zen (weight 3) lists: 550 5.7.1 at RCPT with the zone and its TXT (strings joined)"
log=$(log_after "$m")
log_has "$log" 'plugin=dnsbl verdict=deny client=\[192\.0\.2\.10\] score=3 threshold=3 zone=zen\.sluice\.test listed="zen\.sluice\.test=127\.0\.0\.2\*3" cached=no' \
	"A: one decision line: client, score, zone, answer, cached=no"
log_has "$log" 'notes hook=rcpt result\.dnsbl=fail zen\.sluice\.test=127\.0\.0\.2\*3 score=3' \
	"A: outcome fail with the zones, answers and score"
like "$(as 192.0.2.10 'EHLO client.test' 'MAIL FROM:<a@sender.test>' \
	'RCPT TO:<bob@sluice.test>' 'RCPT TO:<carol@sluice.test>' | sed -n 5,7p | tr '\n' ' ')" \
	'^250 .*550 5\.7\.1 Service unavailable.* 550 5\.7\.1 Service unavailable' \
	"A: MAIL 250, then every RCPT refused"

m=$(log_mark)
is "$(rcpt 192.0.2.11)" "250 2.1.5 Ok" "A: low alone (score 1 < threshold 3): accepted"
log=$(log_after "$m")
log_has "$log" 'verdict=pass client=\[192\.0\.2\.11\] score=1 listed="low\.sluice\.test=127\.0\.0\.2\*1" cached=no' \
	"A: ... log_has as a pass with the listing below the threshold"
log_has "$log" 'result\.dnsbl=pass score=1' "A: ... outcome pass with the score"

is "$(rcpt 192.0.2.12)" \
	"550 5.7.1 Service unavailable; client [192.0.2.12] blocked using bl.sluice.test" \
	"A: bl*2 + low*1 = 3: refused, naming the heavier zone; no TXT there, no '; '"
m=$(log_mark)
is "$(rcpt 192.0.2.13)" "250 2.1.5 Ok" \
	"A: bl answers 127.0.0.9, outside its filter [2..4]: only low counts, accepted"
log_has "$(log_after "$m")" 'verdict=pass client=\[192\.0\.2\.13\] score=1 ' \
	"A: ... score 1"

m=$(log_mark)
is "$(rcpt 192.0.2.14)" "250 2.1.5 Ok" "A: zen*3 and wl*-5 = -2: allow-listed, accepted"
log=$(log_after "$m")
log_has "$log" 'verdict=allow client=\[192\.0\.2\.14\] score=-2 allow_threshold=-1 listed="zen\.sluice\.test=127\.0\.0\.2\*3 wl\.sluice\.test=127\.0\.10\.1\*-5" note=dnsbl\.allowed' \
	"A: ... log_has as verdict=allow with both listings"
log_has "$log" 'result\.dnsbl=pass allowed zen.* score=-2' "A: ... outcome pass (allowed)"
log_has "$log" 'notes hook=rcpt dnsbl\.allowed=yes' "A: ... note dnsbl.allowed=yes"
m=$(log_mark)
is "$(rcpt 192.0.2.15)" "250 2.1.5 Ok" "A: wl only: accepted"
log_has "$(log_after "$m")" 'verdict=allow client=\[192\.0\.2\.15\] score=-5 ' "A: ... allow-listed"

m=$(log_mark)
is "$(rcpt 192.0.2.16)" "250 2.1.5 Ok" "A: zen answers 192.0.2.99 (outside 127/8): ignored, accepted"
log=$(log_after "$m")
log_has "$log" 'zone=zen\.sluice\.test query=16\.2\.0\.192\.zen\.sluice\.test answer=192\.0\.2\.99 action=ignored reason="outside 127\.0\.0\.0/8"' \
	"A: ... the ignored answer is log_has"
log_lacks "$log" 'dnsbl\.allowed=yes' "A: ... the earlier client's note is gone after XCLIENT"

m=$(log_mark)
is "$(rcpt 192.0.2.17)" "250 2.1.5 Ok" \
	"A: zen answers 127.255.255.254 (query refused): an error; dns_failure=skip accepts"
log=$(log_after "$m")
log_has "$log" 'zone=zen\.sluice\.test query=17\.2\.0\.192\.zen\.sluice\.test answer=127\.255\.255\.254 action=error reason="the list refused the query"' \
	"A: ... the refusal code is log_has as an error"
log_has "$log" 'verdict=pass client=\[192\.0\.2\.17\] score=0 failed="zen\.sluice\.test:refused" dns_failure=skip' \
	"A: ... decision log_has with the failed zone"
log_has "$log" 'result\.dnsbl=error failed=zen\.sluice\.test:refused score=0' "A: ... outcome error"

is "$(rcpt 192.0.2.18)" \
	"550 5.7.1 Service unavailable; client [192.0.2.18] blocked using zen.sluice.test; bad bytes:  ? end" \
	"A: a TXT with control and 8-bit bytes is cleaned to printable ASCII"
is "$(rcpt 'IPV6:2001:db8::10')" \
	"550 5.7.1 Service unavailable; client [2001:db8::10] blocked using zen.sluice.test; zen: IPv6 listing" \
	"A: an IPv6 client listed by its nibbles"
is "$(rcpt 'IPV6:::ffff:192.0.2.12')" \
	"550 5.7.1 Service unavailable; client [192.0.2.12] blocked using bl.sluice.test" \
	"A: an IPv4-mapped IPv6 client is looked up as its IPv4 address"
m=$(log_mark)
is "$(rcpt 192.0.2.20)" "250 2.1.5 Ok" "A: listed nowhere: accepted"
log=$(log_after "$m")
log_has "$log" 'verdict=pass client=\[192\.0\.2\.20\] score=0 cached=no' "A: ... score 0"
log_lacks "$log" 'type=TXT' "A: ... and no TXT was asked for"

# the verdict cache: the same client again, then with NSD stopped
m=$(log_mark)
like "$(rcpt 192.0.2.10)" '^550 5\.7\.1 Service unavailable; client \[192\.0\.2\.10\] blocked using zen\.sluice\.test; zen: ' \
	"cache: the second connection of a listed client gets the same reply"
log=$(log_after "$m")
log_has "$log" 'verdict=deny client=\[192\.0\.2\.10\] score=3 .* cached=yes' "cache: ... log_has cached=yes"
log_lacks "$log" 'dns query name=[^ ]*10\.2\.0\.192' "cache: ... and no DNS query was sent"
stop_pid "$NSD_PID"
m=$(log_mark)
like "$(rcpt 192.0.2.12)" '^550 5\.7\.1 .* blocked using bl\.sluice\.test$' \
	"cache: with NSD stopped, a cached refusal still refuses"
log_has "$(log_after "$m")" 'verdict=deny client=\[192\.0\.2\.12\] .* cached=yes' "cache: ... from the cache"
m=$(log_mark)
is "$(rcpt 192.0.2.11)" "250 2.1.5 Ok" "cache: with NSD stopped, a cached pass still passes"
log_has "$(log_after "$m")" 'verdict=pass client=\[192\.0\.2\.11\] score=1 .*cached=yes' "cache: ... cached=yes"
m=$(log_mark)
is "$(rcpt 192.0.2.17)" "250 2.1.5 Ok" "cache: a verdict that rested on a failure was not cached"
log_has "$(log_after "$m")" 'verdict=pass client=\[192\.0\.2\.17\] .*failed=' \
	"cache: ... it was looked up again (and failed: NSD is down)"
nsd_start "$NSD"

# ---------------------------------------------------------------- B: check_at
sluice_restart b <<EOF
plugin dnsbl zones=$ZONES threshold=3 check_at=connect
plugin queue/discard
EOF
is "$(reply 3 192.0.2.10)" \
	"554 mx.sluice.test ESMTP Service unavailable; client [192.0.2.10] blocked using zen.sluice.test; zen: 192.0.2.10 is listed, see https://zen.sluice.test/?192.0.2.10" \
	"check_at=connect: the greeting after XCLIENT is 554 with the text"
like "$(reply 3 192.0.2.20)" '^220 ' "check_at=connect: a clean client gets 220"
is "$(reply 3 192.0.2.14)" "220 mx.sluice.test ESMTP sluice" \
	"check_at=connect: an allow-listed client gets 220"

sluice_restart b2 <<EOF
plugin dnsbl zones=$ZONES threshold=3 check_at=helo
plugin queue/discard
EOF
is "$(reply 4 192.0.2.10)" \
	"550 5.7.1 Service unavailable; client [192.0.2.10] blocked using zen.sluice.test; zen: 192.0.2.10 is listed, see https://zen.sluice.test/?192.0.2.10" \
	"check_at=helo: EHLO refused 550 5.7.1"
like "$(reply 4 192.0.2.20)" '^250 ' "check_at=helo: a clean client's EHLO 250"

sluice_restart b3 <<EOF
plugin dnsbl zones=$ZONES threshold=3 check_at=mail txt=no
plugin queue/discard
EOF
is "$(reply 5 192.0.2.10)" \
	"550 5.7.1 Service unavailable; client [192.0.2.10] blocked using zen.sluice.test" \
	"check_at=mail, txt=no: MAIL refused, without the TXT"
m=$(log_mark)
like "$(reply 5 192.0.2.20)" '^250 ' "check_at=mail: a clean client's MAIL 250"

# threshold=1 and message=
sluice_restart b4 <<EOF
plugin dnsbl zones=$ZONES message="%ip% is on %zone% (score %score%): %txt% 100%"
plugin queue/discard
EOF
is "$(rcpt 192.0.2.11)" "550 5.7.1 192.0.2.11 is on low.sluice.test (score 1): low: minor listing 100%" \
	"threshold=1 (default): low alone refuses; message= with %ip% %zone% %score% %txt%"

# ---------------------------------------------------------------- C: failures
# a zone NSD does not serve: REFUSED, which the resolver reports as servfail
sluice_restart c <<EOF
plugin dnsbl zones=zen.sluice.test*3,unserved.test*3 threshold=3
plugin queue/discard
EOF
m=$(log_mark)
is "$(rcpt 192.0.2.20)" "250 2.1.5 Ok" "servfail, dns_failure=skip: accepted"
log=$(log_after "$m")
log_has "$log" 'zone=unserved\.test query=20\.2\.0\.192\.unserved\.test status=servfail .*action=error' \
	"servfail: the failed zone is log_has"
log_has "$log" 'verdict=pass client=\[192\.0\.2\.20\] score=0 failed="unserved\.test:servfail" dns_failure=skip' \
	"servfail, skip: the decision names the failed zone"
like "$(rcpt 192.0.2.10)" '^550 5\.7\.1 .*blocked using zen\.sluice\.test' \
	"servfail: a client another zone lists past the threshold is still refused"

sluice_restart c2 <<EOF
plugin test_notes hook=rcpt keys=result.dnsbl
plugin dnsbl zones=zen.sluice.test*3,unserved.test*3 threshold=3 dns_failure=tempfail
plugin queue/discard
EOF
is "$(rcpt 192.0.2.20)" \
	"451 4.4.3 Service temporarily unavailable; DNS list lookup for client [192.0.2.20] failed, try again later" \
	"servfail, dns_failure=tempfail: 451 4.4.3"
like "$(rcpt 192.0.2.10)" '^550 5\.7\.1 ' "servfail, tempfail: the decided listing is still 550"
is "$(rcpt 192.0.2.17)" \
	"451 4.4.3 Service temporarily unavailable; DNS list lookup for client [192.0.2.17] failed, try again later" \
	"a 127.255.255.254 answer with dns_failure=tempfail: 451 4.4.3"
log_has "$(cat "$RUN/smtpd.log")" 'notes hook=rcpt result\.dnsbl=error failed=zen\.sluice\.test:refused score=0' \
	"... outcome error"

# a server that never answers
SILENT_PORT=$(free_port)
udp_silent "$SILENT_PORT"
SAVED_BASE=$SLUICE_CONF_BASE
SLUICE_CONF_BASE=${SLUICE_CONF_BASE/dns_servers 127.0.0.1:$NSD_PORT/dns_servers 127.0.0.1:$SILENT_PORT}
SLUICE_CONF_BASE=${SLUICE_CONF_BASE/dns_timeout 2s/dns_timeout 500ms}
sluice_restart d <<EOF
plugin dnsbl zones=$ZONES dns_failure=tempfail
plugin queue/discard
EOF
is "$(rcpt 192.0.2.30)" \
	"451 4.4.3 Service temporarily unavailable; DNS list lookup for client [192.0.2.30] failed, try again later" \
	"timeout, dns_failure=tempfail: 451 4.4.3 at RCPT"
log_has "$(cat "$RUN/smtpd.log")" 'zone=zen\.sluice\.test query=30\.2\.0\.192\.zen\.sluice\.test status=timeout ' \
	"timeout: log_has per zone"
sluice_restart d2 <<EOF
plugin dnsbl zones=$ZONES
plugin queue/discard
EOF
is "$(rcpt 192.0.2.31)" "250 2.1.5 Ok" "timeout, dns_failure=skip: accepted"
SLUICE_CONF_BASE=${SLUICE_CONF_BASE/dns_timeout 500ms/dns_timeout 20s}
sluice_restart d3 <<EOF
plugin dnsbl zones=$ZONES dns_failure=tempfail timeout=700ms
plugin queue/discard
EOF
is "$(rcpt 192.0.2.32)" \
	"451 4.4.3 Service temporarily unavailable; DNS list lookup for client [192.0.2.32] failed, try again later" \
	"timeout=700ms before dns_timeout: the plugin decides itself (4.4.3, not the core's 4.3.0)"
log_has "$(cat "$RUN/smtpd.log")" 'zone=wl\.sluice\.test status=timeout action=error reason="no answer within the plugin.s timeout"' \
	"... log_has as the plugin's timeout"
SLUICE_CONF_BASE=$SAVED_BASE

# ---------------------------------------------------------------- E: defer, relay
sluice_restart e <<EOF
plugin dnsbl zones=$ZONES threshold=3 check_at=connect reject=defer
plugin queue/discard
EOF
out=$(as 192.0.2.10)
is "$(sed -n 3p <<<"$out")" "220 mx.sluice.test ESMTP sluice" "reject=defer: the greeting is 220"
like "$(sed -n 5p <<<"$out")" '^250 ' "reject=defer: MAIL 250"
like "$(sed -n 6p <<<"$out")" '^554 5\.7\.1 Service unavailable; client \[192\.0\.2\.10\] blocked using zen\.sluice\.test' \
	"reject=defer: the refusal made at connect (554) lands at RCPT with the plugin's text"

sluice_restart e2 <<EOF
plugin dnsbl zones=$ZONES skip=relay
plugin queue/discard
EOF
m=$(log_mark)
is "$(rcpt 198.51.100.10)" "250 2.1.5 Ok" "skip=relay: a listed relay client is accepted"
log_lacks "$(log_after "$m")" 'plugin=dnsbl.*198\.51\.100\.10' "skip=relay: ... and never looked up"

# ---------------------------------------------------------------- F: config errors
P="6: plugin dnsbl"
conf_fails "no zones" "$P: zones: no zone given" <<<"plugin dnsbl"
conf_fails "bad weight" "$P: zones: 'zen\.sluice\.test\*x': bad weight" \
	<<<"plugin dnsbl zones=zen.sluice.test*x"
conf_fails "bad filter" "$P: zones: 'bl\.sluice\.test=127\.0\.0\.\[4\.\.2\]': bad answer filter" \
	<<<"plugin dnsbl zones=bl.sluice.test=127.0.0.[4..2]"
conf_fails "bad zone name" "$P: zones: 'bad\.\.zone': bad zone name" \
	<<<"plugin dnsbl zones=bad..zone"

# ---------------------------------------------------------------- G: milter mode
milter_cases() {
	[ "$(id -u)" = 0 ] || return 1
	command -v postfix >/dev/null 2>&1 && command -v postconf >/dev/null 2>&1
}
if ! milter_cases; then
	skip 6 "milter mode needs root and Postfix"
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
	milterd_with() {
		milterd_stop
		{
			echo "$SLUICE_CONF_BASE"
			echo "milter_listen inet:$MPORT@127.0.0.1"
			cat
		} | write_conf "$RUN/milterd.conf"
		milterd_start "$RUN/milterd.conf"
	}
	milterd_with <<<"plugin dnsbl zones=$ZONES threshold=3"
	CHAT_PORT=$SPORT
	is "$(reply 6 192.0.2.10)" \
		"550 5.7.1 Service unavailable; client [192.0.2.10] blocked using zen.sluice.test; zen: 192.0.2.10 is listed, see https://zen.sluice.test/?192.0.2.10" \
		"milter: Postfix refuses the RCPT of a listed client (XCLIENT to Postfix) with our reply"
	like "$(reply 6 192.0.2.20)" '^250 ' "milter: a clean client's RCPT is accepted"
	log_has "$(cat "$RUN/milterd.log")" 'plugin=dnsbl verdict=deny client=\[192\.0\.2\.10\] score=3 threshold=3 zone=zen\.sluice\.test' \
		"milter: sluice-milterd log_has the decision for the client Postfix reported"
	milterd_with <<<"plugin dnsbl zones=$ZONES threshold=3 check_at=connect"
	# Postfix greets with its own 554 and answers MAIL with ours
	is "$(reply 5 192.0.2.12)" \
		"554 5.7.1 Service unavailable; client [192.0.2.12] blocked using bl.sluice.test" \
		"milter: check_at=connect: Postfix refuses the session with our 554 (at MAIL)"
	like "$(reply 6 192.0.2.20)" '^250 ' "milter: check_at=connect: a clean client is accepted"
	CHAT_PORT=
fi
