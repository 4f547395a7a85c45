#!/bin/bash
# plugin helo: the HELO/EHLO name under each policy, against a private NSD
# serving the zones of t/fcrdns-lib.sh, clients faked with XCLIENT from a
# trusted proxy (127.0.0.1, which is also the server's own address).
# Cases:
#   L  policy=lenient: "_" (501 5.5.2), a bare address (501 5.5.2, also
#      before the plugin's own check: sluice-smtpd's syntax check), our
#      hostname and our address from a remote client (550 5.7.1), the same
#      from a relay client and from ourselves (passes); what rfc refuses
#      passes; a refused EHLO may be followed by a good one
#   R  policy=rfc (the default): no dot, localhost from a remote client,
#      an address literal of another address refused; the client's own
#      literal (IPv4, IPv6) and localhost from ourselves pass; outcomes
#      (t/plugins/test_notes_rcpt.so) with reject=defer, the refusal landing at
#      RCPT
#   K  check_at=mail and check_at=rcpt: EHLO accepted, the refusal later
#   S  policy=strict: the name's A/AAAA holds the client (pass), does not
#      (mismatch), NXDOMAIN, NODATA, REFUSED (451 4.4.3 by default, skipped
#      with dns_failure=skip); with fcrdns check_at=connect before it, a
#      HELO equal to the verified name (note fcrdns.name) passes through
#      the note
#   T  a DNS server that never answers: tempfail at HELO, skip beside it
#   G  option errors
#   M  sluice-milterd behind a private Postfix (root only; the proxy's own
#      EHLO is skipped as a relay client): a non-FQDN and names Postfix
#      lets through (trailing dot, bare IPv6) refused with the plugin's
#      reply, which Postfix gives at MAIL FROM; a strict pass
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

command -v nsd >/dev/null && command -v dig >/dev/null ||
	skip_all "nsd or dig missing (make deps installs nsd, bind9-dnsutils)"
[ -f "$SLUICE_BUILD/plugins/helo.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/helo.so)"
[ -f "$SLUICE_BUILD/t/plugins/test_notes_rcpt.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_notes_rcpt.so)"

plan 70
setup_run
. "$SLUICE_SRC/t/fcrdns-lib.sh" || exit 1
fc_dns_start

# ehlo ADDR NAME: the reply to "EHLO NAME" after XCLIENT ADDR=ADDR
ehlo() {
	fc_reply 4 "$(fc_session "$1" "$2")"
}
# direct NAME: the reply to "EHLO NAME" from 127.0.0.1 itself
direct() {
	fc_reply 2 "$(printf 'EHLO %s\nQUIT\n' "$1" | smtp_chat)"
}
log() { cat "$RUN/smtpd.log"; }

# ---------------------------------------------------------------- L lenient
sluice_restart l <<'EOF'
plugin helo policy=lenient
plugin queue/discard
EOF
is "$(ehlo 198.51.100.1 foo_bar.fc.test)" \
	"501 5.5.2 HELO name foo_bar.fc.test is neither a domain name nor an address literal" \
	"L: an underscore: 501 5.5.2"
like "$(log)" 'plugin=helo result=fail reason=syntax helo=foo_bar\.fc\.test ip=198\.51\.100\.1' \
	"L: outcome fail syntax logged"
like "$(log)" 'plugin=helo verdict=deny reason=syntax helo=foo_bar\.fc\.test ip=198\.51\.100\.1 at=helo' \
	"L: the decision is logged"
is "$(ehlo 198.51.100.1 198.51.100.1)" \
	"501 5.5.2 HELO name 198.51.100.1 is an address: use an address literal [198.51.100.1]" \
	"L: a bare address: 501 5.5.2"
is "$(ehlo 198.51.100.1 2001:db8::1)" "501 5.5.4 Syntax: EHLO hostname" \
	"L: a bare IPv6 address never gets here in sluice-smtpd (501 5.5.4)"
is "$(ehlo 198.51.100.1 mx.sluice.test)" "550 5.7.1 Client host [198.51.100.1] is not us (HELO mx.sluice.test)" \
	"L: our hostname from a remote client: 550 5.7.1"
is "$(ehlo 198.51.100.1 MX.Sluice.Test)" "550 5.7.1 Client host [198.51.100.1] is not us (HELO MX.Sluice.Test)" \
	"L: ... in any case"
is "$(ehlo 198.51.100.1 '[127.0.0.1]')" "550 5.7.1 Client host [198.51.100.1] is not us (HELO [127.0.0.1])" \
	"L: our address ({daemon_addr}) as a literal: 550 5.7.1"
like "$(log)" 'result=fail reason=our-address helo=\[127\.0\.0\.1\]' "L: outcome fail our-address"
like "$(ehlo 192.0.2.5 mx.sluice.test)" '^250 ' "L: our hostname from a relay client passes"
like "$(direct mx.sluice.test)" '^250 ' "L: our hostname from our own address passes"
like "$(ehlo 198.51.100.1 nodot)" '^250 ' "L: no dot passes"
like "$(ehlo 198.51.100.1 localhost)" '^250 ' "L: localhost passes"
like "$(ehlo 198.51.100.1 '[198.51.100.99]')" '^250 ' "L: another address's literal passes"
out=$(smtp_chat <<'EOF'
EHLO proxy.test
XCLIENT ADDR=198.51.100.1
EHLO bad_name.fc.test
EHLO good.fc.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 220 501 250 250 250 221 closed" \
	"L: a refused EHLO, then a good one: the session goes on"

# ---------------------------------------------------------------- R rfc
sluice_restart r <<'EOF'
plugin helo
plugin queue/discard
EOF
is "$(ehlo 198.51.100.1 nodot)" "550 5.7.1 HELO name nodot is not a fully-qualified domain name" \
	"R: no dot: 550 5.7.1"
is "$(ehlo 198.51.100.1 localhost)" "550 5.7.1 HELO name localhost is for local clients, not [198.51.100.1]" \
	"R: localhost from a remote client: 550 5.7.1"
is "$(ehlo 198.51.100.1 mail.localhost)" "550 5.7.1 HELO name mail.localhost is for local clients, not [198.51.100.1]" \
	"R: a name under localhost (RFC 6761) too"
like "$(direct localhost)" '^250 ' "R: localhost from a loopback client passes"
is "$(ehlo 198.51.100.1 '[198.51.100.99]')" "550 5.7.1 HELO address literal [198.51.100.99] is not the client's address [198.51.100.1]" \
	"R: another address's literal: 550 5.7.1"
like "$(ehlo 198.51.100.1 '[198.51.100.1]')" '^250 ' "R: the client's own literal passes"
like "$(ehlo 2001:db8::1 '[IPv6:2001:db8::1]')" '^250 ' "R: the client's own IPv6 literal passes"
is "$(ehlo 2001:db8::1 '[IPv6:2001:db8::2]')" "550 5.7.1 HELO address literal [IPv6:2001:db8::2] is not the client's address [2001:db8::1]" \
	"R: another IPv6 literal: 550 5.7.1"
like "$(ehlo 198.51.100.1 anything.example)" '^250 ' "R: any FQDN passes (no DNS)"
is "$(ehlo 198.51.100.1 mx.sluice.test)" "550 5.7.1 Client host [198.51.100.1] is not us (HELO mx.sluice.test)" \
	"R: includes lenient's checks"

sluice_restart r2 <<'EOF'
plugin test_notes_rcpt keys=result.helo
plugin helo reject=defer
plugin queue/discard
EOF
out=$(fc_session 198.51.100.1 nodot bob@sluice.test)
is "$(reply_codes <<<"$out")" "220 250 220 250 250 550 221 closed" \
	"R: reject=defer: EHLO and MAIL accepted, RCPT refused"
is "$(fc_reply 6 "$out")" "550 5.7.1 HELO name nodot is not a fully-qualified domain name" \
	"R: ... with helo's reply"
sluice_restart r3 <<'EOF'
plugin test_notes_rcpt keys=result.helo
plugin helo reject=no
plugin queue/discard
EOF
is "$(fc_reply 6 "$(fc_session 198.51.100.1 nodot notes@sluice.test)")" "550 5.7.1 notes result.helo=fail not-fqdn" \
	"R: outcome fail not-fqdn"
is "$(fc_reply 6 "$(fc_session 198.51.100.1 localhost notes@sluice.test)")" "550 5.7.1 notes result.helo=fail localhost" \
	"R: outcome fail localhost"
is "$(fc_reply 6 "$(fc_session 198.51.100.1 '[198.51.100.2]' notes@sluice.test)")" "550 5.7.1 notes result.helo=fail literal-mismatch" \
	"R: outcome fail literal-mismatch"
is "$(fc_reply 6 "$(fc_session 198.51.100.1 good.fc.test notes@sluice.test)")" "550 5.7.1 notes result.helo=pass rfc" \
	"R: outcome pass rfc"

# ---------------------------------------------------------------- K check_at
sluice_restart k <<'EOF'
plugin helo check_at=mail
plugin queue/discard
EOF
out=$(fc_session 198.51.100.1 nodot)
is "$(reply_codes <<<"$out")" "220 250 220 250 550 503 221 closed" "K: check_at=mail: EHLO accepted, MAIL refused"
is "$(fc_reply 5 "$out")" "550 5.7.1 HELO name nodot is not a fully-qualified domain name" "K: ... with the reason"
like "$(log)" 'verdict=deny reason=not-fqdn helo=nodot ip=198\.51\.100\.1 at=mail' "K: ... logged at=mail"
sluice_restart k2 <<'EOF'
plugin helo check_at=rcpt policy=strict
plugin queue/discard
EOF
out=$(fc_session 198.51.100.1 mism.fc.test)
is "$(reply_codes <<<"$out")" "220 250 220 250 250 550 221 closed" "K: check_at=rcpt: EHLO and MAIL accepted, RCPT refused"
is "$(fc_reply 6 "$out")" "550 5.7.1 HELO name mism.fc.test does not resolve to [198.51.100.1]" \
	"K: ... strict's lookup collected at RCPT"

# ---------------------------------------------------------------- S strict
sluice_restart s <<'EOF'
plugin test_notes_rcpt keys=result.helo
plugin helo policy=strict
plugin queue/discard
EOF
out=$(fc_session 198.51.100.1 good.fc.test notes@sluice.test)
is "$(fc_reply 4 "$out")" "250 HELP" "S: good.fc.test has A 198.51.100.1: EHLO accepted"
is "$(fc_reply 6 "$out")" "550 5.7.1 notes result.helo=pass dns" "S: ... outcome pass dns"
like "$(fc_reply 4 "$(fc_session 2001:db8::1 good6.fc.test)")" '^250 ' "S: IPv6 client, AAAA matches"
is "$(ehlo 198.51.100.1 mism.fc.test)" "550 5.7.1 HELO name mism.fc.test does not resolve to [198.51.100.1]" \
	"S: a name that resolves elsewhere: 550 5.7.1"
is "$(ehlo 198.51.100.1 gone.fc.test)" "550 5.7.1 HELO name gone.fc.test does not exist in DNS" \
	"S: NXDOMAIN: 550 5.7.1"
like "$(log)" 'result=fail reason=nxdomain helo=gone\.fc\.test' "S: outcome fail nxdomain"
is "$(ehlo 198.51.100.1 noaddr.fc.test)" "550 5.7.1 HELO name noaddr.fc.test does not resolve to [198.51.100.1]" \
	"S: a name without A (NODATA): 550 5.7.1"
is "$(ehlo 2001:db8::1 good.fc.test)" "550 5.7.1 HELO name good.fc.test does not resolve to [2001:db8::1]" \
	"S: IPv6 client, the name has only A: 550 5.7.1"
is "$(ehlo 198.51.100.1 host.unserved.example)" "451 4.4.3 HELO name host.unserved.example: DNS lookup failed, try again later" \
	"S: REFUSED (SERVFAIL), dns_failure=tempfail (the default): 451 4.4.3"
like "$(log)" 'result=error reason=dns-failure helo=host\.unserved\.example ip=198\.51\.100\.1 dns=a-servfail' \
	"S: outcome error logged with the DNS status"
like "$(ehlo 198.51.100.1 '[198.51.100.1]')" '^250 ' "S: the client's literal passes without DNS"
is "$(ehlo 198.51.100.1 nodot)" "550 5.7.1 HELO name nodot is not a fully-qualified domain name" "S: includes rfc's checks"

sluice_restart s2 <<'EOF'
plugin test_notes_rcpt keys=result.helo,fcrdns.name
plugin fcrdns check_at=connect
plugin helo policy=strict dns_failure=skip
plugin queue/discard
EOF
out=$(fc_session 198.51.100.4 second.fc.test notes@sluice.test)
is "$(fc_reply 6 "$out")" "550 5.7.1 notes result.helo=pass fcrdns fcrdns.name=second.fc.test" \
	"S: HELO equal to the name fcrdns verified: pass through the note"
like "$(log)" 'plugin=helo result=pass helo=second\.fc\.test ip=198\.51\.100\.4 policy=strict via=fcrdns' \
	"S: ... logged via=fcrdns"
unlike "$(grep 'plugin=helo verdict=' "$RUN/smtpd.log")" 'helo=second\.fc\.test' "S: ... no refusal"
out=$(fc_session 198.51.100.7 host.unserved.example notes@sluice.test)
is "$(fc_reply 4 "$out")" "250 HELP" "S: dns_failure=skip: SERVFAIL accepted"
is "$(fc_reply 6 "$out")" "550 5.7.1 notes result.helo=error a-servfail fcrdns.name=-" "S: ... outcome error a-servfail"
like "$(log)" 'plugin=helo verdict=declined reason=dns-failure/a-servfail helo=host\.unserved\.example ip=198\.51\.100\.7 at=helo dns_failure=skip' \
	"S: ... the skip is logged"

# ---------------------------------------------------------------- T timeout
fc_silent_dns
sluice_restart t <<'EOF'
plugin helo name=h_skip policy=strict dns_failure=skip
plugin helo name=h_temp policy=strict check_at=mail
plugin queue/discard
EOF
out=$(fc_session 198.51.100.1 good.fc.test)
is "$(fc_reply 4 "$out")" "250 HELP" "T: no DNS answer, dns_failure=skip: EHLO accepted"
is "$(fc_reply 5 "$out")" "451 4.4.3 HELO name good.fc.test: DNS lookup failed, try again later" \
	"T: dns_failure=tempfail: MAIL 451 4.4.3"
like "$(log)" 'plugin=h_temp result=error reason=dns-failure helo=good\.fc\.test ip=198\.51\.100\.1 dns=a-timeout' \
	"T: outcome error a-timeout"
sluice_stop

# ---------------------------------------------------------------- G errors
conf_fails "policy=paranoid" "6: plugin helo: policy: invalid value 'paranoid'" <<'EOF'
plugin helo policy=paranoid
EOF
conf_fails "check_at=connect" "6: plugin helo: check_at: invalid value 'connect'" <<'EOF'
plugin helo check_at=connect
EOF
conf_fails "dns_failure=ignore" "6: plugin helo: dns_failure: invalid value 'ignore'" <<'EOF'
plugin helo dns_failure=ignore
EOF

# ---------------------------------------------------------------- M milterd
fc_pf_start <<EOF || {
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s
relay_clients 127.0.0.0/8
plugin helo policy=strict skip=relay
EOF
	skip 7 "M: $FC_PF_WHY"
	exit 0
}
# helo_reply ADDR NAME: Postfix's reply to MAIL FROM after XCLIENT and EHLO
# NAME.  Postfix answers a milter's refusal of HELO at the next command.
helo_reply() {
	reply_to "MAIL FROM:<alice@example.org>" "$(fc_pf_send "$1" "$2")"
}
out=$(fc_pf_send 198.51.100.1 nodot)
is "$(reply_to "MAIL FROM:<alice@example.org>" "$out")" \
	"550 5.7.1 HELO name nodot is not a fully-qualified domain name" \
	"M: milterd behind Postfix: a non-FQDN refused (Postfix says it at MAIL FROM)"
like "$(cat "$FC_PFD/maillog")" 'milter-reject: EHLO from unknown\[198\.51\.100\.1\]: 550 5\.7\.1 HELO name nodot' \
	"M: ... Postfix logged the refusal of the EHLO"
is "$(helo_reply 198.51.100.1 good.fc.test.)" \
	"501 5.5.2 HELO name good.fc.test. is neither a domain name nor an address literal" \
	"M: a trailing dot (Postfix lets it through) refused 501 5.5.2"
is "$(helo_reply 198.51.100.1 2001:db8::1)" \
	"501 5.5.2 HELO name 2001:db8::1 is an address: use an address literal [IPv6:2001:db8::1]" \
	"M: a bare IPv6 address refused 501 5.5.2"
out=$(fc_pf_send 198.51.100.1 good.fc.test)
like "$out" '<- +250 2\.0\.0 Ok: queued as' "M: a name that resolves to the client: the message is queued"
like "$(cat "$RUN/milterd.log")" 'plugin=helo result=pass helo=good\.fc\.test ip=198\.51\.100\.1 policy=strict via=dns' \
	"M: milterd logged the pass"
milterd_stop
unlike "$(cat "$RUN/milterd.log")" 'AddressSanitizer|LeakSanitizer|runtime error' \
	"M: no sanitizer report in milterd's log"
