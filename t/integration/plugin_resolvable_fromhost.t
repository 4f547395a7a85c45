#!/bin/bash
# plugin resolvable_fromhost against a private NSD (t/nsd.sh) serving the
# zone rfh.test: MX with a usable exchanger, null MX (RFC 7505), an MX to
# a name that does not exist, an MX to an address in bad_networks, no MX
# but A, AAAA only, no MX and no address, a CNAME, NXDOMAIN; address
# literals; the null sender; relay clients (XCLIENT).  Every verdict at
# check_at=mail and at check_at=rcpt (RSET and a new MAIL in between, a
# lookup cancelled by RSET and by the end of the session), check_mx_hosts,
# the default bad_networks, dns_failure=tempfail|skip for SERVFAIL (a zone
# NSD does not serve) and a timeout (a silent server), reject=defer, the
# outcomes (t/plugins/test_xoutcome.so), config errors.  Then sluice-milterd
# behind a private Postfix: null MX and NXDOMAIN senders refused, a good
# one delivered, check_at=rcpt.
. "$SLUICE_SRC/t/lib.sh"

command -v nsd >/dev/null && command -v dig >/dev/null ||
	skip_all "nsd or dig missing (make deps installs nsd, bind9-dnsutils)"
[ -f "$SLUICE_BUILD/t/plugins/test_xoutcome.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_xoutcome.so)"

plan 86
setup_run

NSD_PORT=$(free_port)
"$SLUICE_SRC/t/nsd.sh" create "$RUN/nsd" "$NSD_PORT"
cat >"$RUN/rfh.test.zone" <<'EOF'
$ORIGIN rfh.test.
$TTL 60
@ SOA ns.sluice.test. hostmaster.sluice.test. 1 3600 600 86400 5
@ NS ns.sluice.test.
good      MX 10 mx.good
mx.good   A 192.0.2.25
nullmx    MX 0 .
dangling  MX 10 nowhere
badmx     MX 10 mx.badmx
mx.badmx  A 10.1.2.3
mixed     MX 10 mx.badmx
mixed     MX 20 mx.good
aonly     A 192.0.2.31
v6only    AAAA 2001:db8::31
empty     TXT "no mail here"
alias     CNAME aonly
badaonly  A 127.0.0.5
mxv6      MX 10 mx6
mx6       AAAA 2001:db8::25
lame      MX 10 mx.unserved.test.
EOF
"$SLUICE_SRC/t/nsd.sh" zone "$RUN/nsd" rfh.test "$RUN/rfh.test.zone"
nsd_start "$RUN/nsd"

SLUICE_CONF_BASE="local_domains sluice.test
relay_clients 192.0.2.0/24
trusted_proxies 127.0.0.1/32
loop_threads 1
max_errors 50
max_unknown_commands 50
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s
plugin test_xoutcome"
BAD=bad_networks=10.0.0.0/8,127.0.0.0/8,::1

# probe SENDER [XCLIENT-ADDR]: the reply to MAIL FROM:<SENDER>, a "|",
# and the plugin's outcome after it
probe() {
	{
		echo "HELO client.test"
		if [ -n "${2:-}" ]; then
			echo "XCLIENT ADDR=$2"
			echo "HELO client.test"
		fi
		echo "MAIL FROM:<$1>"
		echo "XOUTCOME resolvable_fromhost"
		echo "QUIT"
	} | smtp_chat | grep -E '^[0-9]{3} ' | tail -n 3 | head -n 2 |
		sed 's/^250 2\.0\.0 result\.resolvable_fromhost=//' | paste -sd '|'
}
# mail_reply SENDER: the reply to MAIL FROM:<SENDER>
mail_reply() {
	probe "$1" | cut -d '|' -f 1
}
# codes: the reply codes of a chat on stdin, for a script on stdin
chat_codes() {
	smtp_chat | reply_codes | sed 's/ closed$//'
}

# ---------------------------------------------------------------- check_at=mail
sluice_restart mail <<EOF
log_level debug
plugin resolvable_fromhost $BAD
plugin queue/discard
EOF

is "$(probe a@good.rfh.test)" "250 2.1.0 Ok|pass mx mx.good.rfh.test 192.0.2.25" \
	"MX whose exchanger has a usable address: 250, outcome pass"
is "$(probe a@nullmx.rfh.test)" "550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX|fail null-mx" \
	"null MX (RFC 7505): 550 5.7.27, outcome fail null-mx"
is "$(probe a@dangling.rfh.test)" "550 5.1.8 Sender address rejected: no usable MX for dangling.rfh.test|fail no-mx-host" \
	"MX to a name that does not exist: 550 5.1.8 no usable MX"
is "$(mail_reply a@badmx.rfh.test)" "550 5.1.8 Sender address rejected: no usable MX for badmx.rfh.test" \
	"MX to an address in bad_networks: 550 5.1.8"
is "$(probe a@mixed.rfh.test)" "250 2.1.0 Ok|pass mx mx.good.rfh.test 192.0.2.25" \
	"two MX, the first in bad_networks, the second usable: 250"
is "$(probe a@aonly.rfh.test)" "250 2.1.0 Ok|pass a aonly.rfh.test 192.0.2.31" \
	"no MX but A (implicit MX, RFC 5321 5.1): 250, outcome pass a"
is "$(probe a@v6only.rfh.test)" "250 2.1.0 Ok|pass a v6only.rfh.test 2001:db8::31" \
	"no MX, AAAA only: 250"
is "$(mail_reply a@alias.rfh.test)" "250 2.1.0 Ok" "a CNAME to a name with an A record: 250"
is "$(probe a@mxv6.rfh.test)" "250 2.1.0 Ok|pass mx mx6.rfh.test 2001:db8::25" \
	"MX whose exchanger has only AAAA: 250"
is "$(probe a@empty.rfh.test)" "550 5.1.8 Sender address rejected: Domain empty.rfh.test has no MX and no address|fail no-address" \
	"no MX, no A, no AAAA: 550 5.1.8, outcome fail no-address"
is "$(mail_reply a@badaonly.rfh.test)" "550 5.1.8 Sender address rejected: no usable MX for badaonly.rfh.test" \
	"no MX, A in bad_networks: 550 5.1.8"
is "$(probe a@nope.rfh.test)" "550 5.1.8 Sender address rejected: Domain nope.rfh.test not found|fail nxdomain" \
	"NXDOMAIN: 550 5.1.8 not found, outcome fail nxdomain"
is "$(mail_reply a@sluice.test)" "550 5.1.8 Sender address rejected: no usable MX for sluice.test" \
	"sluice.test, MX at 127.0.0.1 and ::1: 550 (both in bad_networks)"
is "$(probe '')" "250 2.1.0 Ok|skip null-sender" "the null sender: 250, outcome skip"
is "$(probe 'a@[192.0.2.1]')" "250 2.1.0 Ok|pass literal 192.0.2.1" \
	"a public address literal: 250, outcome pass literal"
is "$(probe 'a@[127.0.0.1]')" "550 5.1.8 Sender address rejected: [127.0.0.1] is not a public address|fail private-literal" \
	"an address literal in bad_networks: 550 5.1.8"
is "$(mail_reply 'a@[IPv6:2001:db8::1]')" "250 2.1.0 Ok" "a public IPv6 address literal: 250"
out=$(probe a@unserved.test)
is "${out%%|*}" "451 4.4.3 Sender address rejected: cannot resolve unserved.test, try again later" \
	"a zone the server refuses (SERVFAIL): 451 4.4.3"
like "${out#*|}" '^error unserved\.test MX ' "... outcome error"
out=$(probe a@lame.rfh.test)
is "${out%%|*}" "451 4.4.3 Sender address rejected: cannot resolve lame.rfh.test, try again later" \
	"the exchanger's lookups fail (SERVFAIL): 451 4.4.3, not a denial"
like "${out#*|}" '^error mx\.unserved\.test (A|AAAA) ' "... outcome error names the exchanger"
is "$(probe a@nullmx.rfh.test 192.0.2.5)" "250 2.1.0 Ok|skip relay" \
	"a relay client (XCLIENT ADDR=192.0.2.5): not checked, outcome skip relay"
is "$(mail_reply a@nullmx.rfh.test 198.51.100.7)" "550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX" \
	"XCLIENT ADDR=198.51.100.7 (no relay client): checked"

out=$(chat_codes <<'EOF'
HELO client.test
MAIL FROM:<a@nullmx.rfh.test>
MAIL FROM:<a@good.rfh.test>
RCPT TO:<bob@sluice.test>
DATA
Subject: t

hello
.
XOUTCOME resolvable_fromhost
QUIT
EOF
)
is "$out" "220 250 550 250 250 354 250 250 221" \
	"after a refused MAIL, a good sender's message is accepted"
out=$(smtp_chat <<'EOF' | grep result
HELO client.test
MAIL FROM:<a@nullmx.rfh.test>
MAIL FROM:<a@good.rfh.test>
XOUTCOME resolvable_fromhost
QUIT
EOF
)
is "$out" "250 2.0.0 result.resolvable_fromhost=fail null-mx" \
	"a fail outcome stays for the connection when a later sender passes"
grep -q 'plugin=resolvable_fromhost verdict=deny sender=<a@nullmx.rfh.test> domain=nullmx.rfh.test reason=null-mx code=550' "$RUN/smtpd.log"
ok $? "the denial is logged with sender, domain and reason"
grep -q 'debug: [0-9A-F]* plugin=resolvable_fromhost verdict=pass sender=<a@good.rfh.test> domain=good.rfh.test reason=mx mx.good.rfh.test 192.0.2.25' "$RUN/smtpd.log"
ok $? "a pass is logged at debug with the exchanger and its address"

# ---------------------------------------------------------------- defaults, check_mx_hosts=no
sluice_restart defaults <<EOF
plugin resolvable_fromhost
EOF
is "$(mail_reply a@sluice.test)" "550 5.1.8 Sender address rejected: no usable MX for sluice.test" \
	"default bad_networks: an exchanger at 127.0.0.1 and ::1 is not usable"
is "$(mail_reply a@badmx.rfh.test)" "550 5.1.8 Sender address rejected: no usable MX for badmx.rfh.test" \
	"default bad_networks: 10.1.2.3 is not usable"
is "$(mail_reply a@good.rfh.test)" "250 2.1.0 Ok" "defaults: a good sender passes"
is "$(mail_reply a@nullmx.rfh.test)" "550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX" \
	"defaults: null MX refused"

sluice_restart nohosts <<EOF
plugin resolvable_fromhost check_mx_hosts=no
EOF
is "$(probe a@dangling.rfh.test)" "250 2.1.0 Ok|pass mx nowhere.rfh.test" \
	"check_mx_hosts=no: an MX to a missing name is enough"
is "$(mail_reply a@badmx.rfh.test)" "250 2.1.0 Ok" "check_mx_hosts=no: an MX in bad_networks is enough"
is "$(mail_reply a@badaonly.rfh.test)" "250 2.1.0 Ok" "check_mx_hosts=no: any A of the domain is enough"
is "$(mail_reply a@nullmx.rfh.test)" "550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX" \
	"check_mx_hosts=no: null MX still refused"
is "$(mail_reply a@empty.rfh.test)" "550 5.1.8 Sender address rejected: Domain empty.rfh.test has no MX and no address" \
	"check_mx_hosts=no: no MX and no address still refused"
is "$(mail_reply a@nope.rfh.test)" "550 5.1.8 Sender address rejected: Domain nope.rfh.test not found" \
	"check_mx_hosts=no: NXDOMAIN still refused"

# ---------------------------------------------------------------- check_at=rcpt
sluice_restart rcpt <<EOF
plugin resolvable_fromhost check_at=rcpt $BAD
plugin queue/discard
EOF
# rcpt_chat SENDER: MAIL, two RCPTs, RSET; prints the replies after HELO
rcpt_chat() {
	smtp_chat <<EOF | grep -E '^[0-9]{3} ' | sed -n '3,6p' | paste -sd '|'
HELO client.test
MAIL FROM:<$1>
RCPT TO:<bob@sluice.test>
RCPT TO:<carol@sluice.test>
XOUTCOME resolvable_fromhost
QUIT
EOF
}
is "$(rcpt_chat a@good.rfh.test)" "250 2.1.0 Ok|250 2.1.5 Ok|250 2.1.5 Ok|250 2.0.0 result.resolvable_fromhost=pass mx mx.good.rfh.test 192.0.2.25" \
	"check_at=rcpt, good sender: MAIL and both RCPTs 250"
is "$(rcpt_chat a@nullmx.rfh.test)" "250 2.1.0 Ok|550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX|550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX|250 2.0.0 result.resolvable_fromhost=fail null-mx" \
	"check_at=rcpt, null MX: MAIL 250, every RCPT 550 5.7.27"
is "$(rcpt_chat a@nope.rfh.test | cut -d '|' -f 1,2)" "250 2.1.0 Ok|550 5.1.8 Sender address rejected: Domain nope.rfh.test not found" \
	"check_at=rcpt, NXDOMAIN: RCPT 550 5.1.8"
is "$(rcpt_chat a@dangling.rfh.test | cut -d '|' -f 2)" "550 5.1.8 Sender address rejected: no usable MX for dangling.rfh.test" \
	"check_at=rcpt, no usable MX: RCPT 550 5.1.8"
is "$(rcpt_chat a@empty.rfh.test | cut -d '|' -f 2)" "550 5.1.8 Sender address rejected: Domain empty.rfh.test has no MX and no address" \
	"check_at=rcpt, no MX and no address: RCPT 550 5.1.8"
is "$(rcpt_chat a@aonly.rfh.test | cut -d '|' -f 2)" "250 2.1.5 Ok" "check_at=rcpt, A only: RCPT 250"
is "$(rcpt_chat a@unserved.test | cut -d '|' -f 1,2)" "250 2.1.0 Ok|451 4.4.3 Sender address rejected: cannot resolve unserved.test, try again later" \
	"check_at=rcpt, SERVFAIL: RCPT 451 4.4.3"
is "$(rcpt_chat 'a@[127.0.0.1]' | cut -d '|' -f 1,2)" "250 2.1.0 Ok|550 5.1.8 Sender address rejected: [127.0.0.1] is not a public address" \
	"check_at=rcpt, a private address literal: RCPT 550"
is "$(rcpt_chat '' | cut -d '|' -f 2,4)" "250 2.1.5 Ok|250 2.0.0 result.resolvable_fromhost=skip null-sender" \
	"check_at=rcpt, the null sender: RCPT 250"

out=$(chat_codes <<'EOF'
HELO client.test
MAIL FROM:<a@nullmx.rfh.test>
RSET
MAIL FROM:<a@good.rfh.test>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$out" "220 250 250 250 250 250 221" \
	"check_at=rcpt: RSET between MAIL and RCPT forgets the null-MX sender"
out=$(chat_codes <<'EOF'
HELO client.test
MAIL FROM:<a@good.rfh.test>
RSET
MAIL FROM:<a@nullmx.rfh.test>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$out" "220 250 250 250 250 550 221" \
	"check_at=rcpt: after RSET the new sender's verdict applies"
out=$(chat_codes <<'EOF'
HELO client.test
MAIL FROM:<a@nullmx.rfh.test>
RCPT TO:<bob@sluice.test>
RSET
RCPT TO:<bob@sluice.test>
MAIL FROM:<a@good.rfh.test>
RCPT TO:<bob@sluice.test>
DATA
Subject: t

hello
.
MAIL FROM:<a@nope.rfh.test>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$out" "220 250 250 550 250 503 250 250 354 250 250 550 221" \
	"check_at=rcpt: refused, RSET, RCPT without MAIL 503, a good message, then a new MAIL's own verdict"

# reject=defer: the denial at MAIL becomes a mark that lands at RCPT
sluice_restart defer <<EOF
plugin resolvable_fromhost reject=defer $BAD
plugin queue/discard
EOF
out=$(smtp_chat <<'EOF' | grep -E '^[0-9]{3} ' | sed -n '3,5p' | paste -sd '|'
HELO client.test
MAIL FROM:<a@nullmx.rfh.test>
RCPT TO:<bob@sluice.test>
XOUTCOME
QUIT
EOF
)
is "$out" "250 2.1.0 Ok|550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX|250 2.0.0 deferred=resolvable_fromhost" \
	"reject=defer: MAIL 250, the null-MX reply lands at RCPT, the mark names the plugin"
grep -q 'hook=mail plugin=resolvable_fromhost verdict=deny action=defer' "$RUN/smtpd.log"
ok $? "reject=defer: the core logs action=defer"

# dns_failure=skip on SERVFAIL
sluice_restart skip <<EOF
plugin resolvable_fromhost dns_failure=skip $BAD
EOF
out=$(probe a@unserved.test)
is "${out%%|*}" "250 2.1.0 Ok" "dns_failure=skip, SERVFAIL: MAIL 250"
like "${out#*|}" '^error unserved\.test MX ' "dns_failure=skip: outcome error"
grep -q 'plugin=resolvable_fromhost verdict=skip sender=<a@unserved.test> domain=unserved.test reason=dns-failure' "$RUN/smtpd.log"
ok $? "dns_failure=skip: the skip is logged with its reason"
is "$(mail_reply a@nullmx.rfh.test)" "550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX" \
	"dns_failure=skip: answers still decide"

# ---------------------------------------------------------------- timeouts
SILENT_PORT=$(free_port)
udp_silent "$SILENT_PORT"
SLUICE_CONF_BASE=${SLUICE_CONF_BASE/127.0.0.1:$NSD_PORT/127.0.0.1:$SILENT_PORT}
SLUICE_CONF_BASE=${SLUICE_CONF_BASE/dns_timeout 2s/dns_timeout 500ms}

sluice_restart timeout <<EOF
plugin resolvable_fromhost
EOF
# a client that hangs up while its MAIL waits for DNS (sluice-smtpd
# notices once the hook has answered; the sanitizer build checks the rest)
out=$(printf 'HELO client.test\nMAIL FROM:<a@gone.test>\n' | smtp_chat --timeout 0.2)
like "$out" '!timeout' "check_at=mail: the client hangs up while MAIL waits for DNS"
is "$(mail_reply a@slow.test)" "451 4.4.3 Sender address rejected: cannot resolve slow.test, try again later" \
	"DNS timeout, dns_failure=tempfail: MAIL 451 4.4.3"
is "$(printf 'HELO client.test\nNOOP\nQUIT\n' | chat_codes)" "220 250 250 221" "the daemon still answers"

# the plugin's timeout= below dns_timeout: the core gives up first
# (plugin_default_action), the late answer finds the hook gone
sluice_restart timeout-core <<EOF
plugin resolvable_fromhost timeout=200ms
EOF
out=$(smtp_chat <<'EOF' | grep -E '^[0-9]{3} ' | sed -n '3,4p' | paste -sd '|'
HELO client.test
MAIL FROM:<a@late.test>
!sleep 0.6
NOOP
QUIT
EOF
)
is "$out" "451 4.3.0 Temporary local problem, please try again later|250 2.0.0 Ok" \
	"timeout=200ms, DNS silent: MAIL gets the core's 451 4.3.0, the session goes on"
wait_for grep -q 'plugin=resolvable_fromhost verdict=tempfail sender=<a@late.test> domain=late.test reason=dns-failure' "$RUN/smtpd.log"
ok $? "the late DNS answer is still logged, and harmless"

sluice_restart timeout-skip <<EOF
plugin resolvable_fromhost dns_failure=skip
EOF
is "$(probe a@slow.test)" "250 2.1.0 Ok|error slow.test MX timeout" \
	"DNS timeout, dns_failure=skip: MAIL 250, outcome error"

sluice_restart timeout-rcpt <<EOF
log_level debug
plugin resolvable_fromhost check_at=rcpt
EOF
out=$(chat_codes <<'EOF'
HELO client.test
MAIL FROM:<a@cancel-rset.test>
RSET
MAIL FROM:<a@kept.test>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$out" "220 250 250 250 250 451 221" \
	"check_at=rcpt, DNS timeout: MAIL 250 at once, RCPT waits and gets 451"
out=$(chat_codes <<'EOF'
HELO client.test
MAIL FROM:<a@cancel-quit.test>
QUIT
EOF
)
is "$out" "220 250 250 221" "check_at=rcpt: a session may end with its lookup in flight"
out=$(chat_codes <<'EOF'
HELO client.test
MAIL FROM:<a@last.test>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$out" "220 250 250 451 221" "check_at=rcpt: a later lookup times out as usual"
# The resolver logs every result it hands to a plugin ("dns result").
# last.test was asked after cancel-quit.test, with the same timeout: had
# the earlier lookups not been cancelled, their results would come first.
wait_for grep -q 'dns result name=last.test type=MX status=timeout' "$RUN/smtpd.log"
ok $? "the later lookup's timeout is handed to the plugin"
grep -q 'dns result name=kept.test type=MX status=timeout' "$RUN/smtpd.log"
ok $? "the lookup after RSET ran to its timeout"
grep -q 'dns query name=cancel-rset.test type=MX' "$RUN/smtpd.log" &&
	! grep -q 'dns result name=cancel-rset.test' "$RUN/smtpd.log"
ok $? "RSET cancelled the lookup in flight (sent, never handed back)"
grep -q 'dns query name=cancel-quit.test type=MX' "$RUN/smtpd.log" &&
	! grep -q 'dns result name=cancel-quit.test' "$RUN/smtpd.log"
ok $? "the session's end cancelled the lookup in flight (sent, never handed back)"
sluice_stop

# ---------------------------------------------------------------- config errors
conf_fails "check_at=data" '6: plugin resolvable_fromhost: check_at: invalid value .data. \(expected one of: mail, rcpt\)$' <<'EOF'
plugin resolvable_fromhost check_at=data
EOF
conf_fails "dns_failure=maybe" '6: plugin resolvable_fromhost: dns_failure: invalid value .maybe. \(expected one of: tempfail, skip\)$' <<'EOF'
plugin resolvable_fromhost dns_failure=maybe
EOF
conf_fails "bad_networks=foo" "6: plugin resolvable_fromhost: bad_networks: invalid address or network 'foo'$" <<'EOF'
plugin resolvable_fromhost bad_networks=10.0.0.0/8,foo
EOF
conf_fails "check_mx_hosts=perhaps" '6: plugin resolvable_fromhost: check_mx_hosts: ' <<'EOF'
plugin resolvable_fromhost check_mx_hosts=perhaps
EOF

# ---------------------------------------------------------------- sluice-milterd behind Postfix
MILTER_TESTS=10
if why=$(pf_milterd_why); then
	skip $MILTER_TESTS "$why"
else
	pf_milterd_setup
	# milterd_with: sluice-milterd with our DNS server and the chain on
	# stdin (not in a pipe: milterd's PID must reach this shell)
	milterd_with() {
		local body
		body=$(cat)
		pf_milterd_chain <<EOF
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s
$body
EOF
	}
	# send CASE FROM: one message through Postfix; swaks' dialogue
	send() {
		swaks --server 127.0.0.1 --port "$SPORT" --timeout 20 \
			--helo client.test --from "$2" --to bob@sluice.test \
			--add-header "X-Case: $1" 2>&1
	}
	ncopies() {
		grep -l -x -s "X-Case: $1" "$INBOX"/new/* 2>/dev/null | wc -l
	}
	has_copies() { # CASE N
		[ "$(ncopies "$1")" = "$2" ]
	}

	milterd_with <<EOF
plugin resolvable_fromhost $BAD
EOF
	out=$(send m-null a@nullmx.rfh.test)
	is "$(reply_to 'MAIL FROM:<a@nullmx.rfh.test>' "$out")" \
		"550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX" \
		"milterd: a null-MX sender gets 550 5.7.27 from Postfix at MAIL FROM"
	out=$(send m-nx a@nope.rfh.test)
	is "$(reply_to 'MAIL FROM:<a@nope.rfh.test>' "$out")" \
		"550 5.1.8 Sender address rejected: Domain nope.rfh.test not found" \
		"milterd: an NXDOMAIN sender gets 550 5.1.8"
	out=$(send m-lame a@unserved.test)
	is "$(reply_to 'MAIL FROM:<a@unserved.test>' "$out")" \
		"451 4.4.3 Sender address rejected: cannot resolve unserved.test, try again later" \
		"milterd: SERVFAIL gets 451 4.4.3"
	out=$(send m-good a@good.rfh.test)
	like "$(reply_to . "$out")" '^250 ' "milterd: a good sender's message is accepted"
	WAIT_TIMEOUT=15 wait_for has_copies m-good 1
	ok $? "milterd: ... and delivered"

	milterd_with <<EOF
plugin resolvable_fromhost check_at=rcpt $BAD
EOF
	out=$(send m-rcpt a@nullmx.rfh.test)
	like "$(reply_to 'MAIL FROM:<a@nullmx.rfh.test>' "$out")" '^250 ' \
		"milterd, check_at=rcpt: MAIL FROM passes"
	is "$(reply_to 'RCPT TO:<bob@sluice.test>' "$out")" \
		"550 5.7.27 Sender address <a@nullmx.rfh.test> has null MX" \
		"milterd, check_at=rcpt: RCPT TO gets 550 5.7.27"
	out=$(send m-rcpt-good a@mixed.rfh.test)
	like "$(reply_to . "$out")" '^250 ' "milterd, check_at=rcpt: a good sender's message is accepted"
	"$PF" drain "$PFD" 15
	is "$(ncopies m-null)$(ncopies m-nx)$(ncopies m-lame)$(ncopies m-rcpt)" 0000 \
		"milterd: nothing delivered for the refused senders"
	milterd_stop
	is "$(grep -c -E 'AddressSanitizer|runtime error' "$RUN/milterd.log")" 0 \
		"no sanitizer report in milterd's log"
fi
