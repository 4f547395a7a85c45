#!/bin/bash
# plugin fcrdns: forward-confirmed reverse DNS against a private NSD
# serving the zones of t/fcrdns-lib.sh, clients faked with XCLIENT from a
# trusted proxy.  Cases:
#   A  defaults (check_at=rcpt, reject_no_ptr=yes, reject_mismatch=no,
#      dns_failure=skip): a matching PTR, the second of two PTRs matching,
#      the third of three, IPv6; outcomes and the note fcrdns.name (shown by
#      t/plugins/test_notes_rcpt.so); no PTR (NXDOMAIN, NODATA) refused 550
#      5.7.25; mismatch, dangling PTR, an invalid PTR name, a name without
#      A recorded as fail but accepted; REFUSED (SERVFAIL) for the PTR or
#      the forward name: error, skipped; a relay client is judged too;
#      XCLIENT again in one session starts over
#   B  reject_mismatch=yes dns_failure=tempfail max_names=2 check_at=mail
#      skip_networks= skip=relay: mismatches refused at MAIL with the name,
#      SERVFAIL 451 4.4.3, max_names cuts the third PTR off, skipped
#      network and relay client
#   C  check_at=connect: the 554 greeting; D check_at=helo: EHLO refused,
#      the client may try again; E check_at=helo reject=defer: the refusal
#      lands at RCPT
#   F  a DNS server that never answers (dns_timeout 500ms): skip and
#      tempfail side by side
#   G  option errors stop start-up with file:line: plugin fcrdns: ...
#   H  sluice-milterd behind a private Postfix (root only): a refused
#      client, a mismatch refused with reject_mismatch=yes, and a pass
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

command -v nsd >/dev/null && command -v dig >/dev/null ||
	skip_all "nsd or dig missing (make deps installs nsd, bind9-dnsutils)"
[ -f "$SLUICE_BUILD/plugins/fcrdns.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/fcrdns.so)"
[ -f "$SLUICE_BUILD/t/plugins/test_notes_rcpt.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_notes_rcpt.so)"

plan 74
setup_run

# ---------------------------------------------------------------- DNS
. "$SLUICE_SRC/t/fcrdns-lib.sh" || exit 1
fc_dns_start

session() { # session ADDR [RCPT...]: with EHLO client.test
	local addr=$1
	shift
	fc_session "$addr" client.test "$@"
}
reply() { fc_reply "$@"; }
# notes ADDR: the test_notes_rcpt line after a session from ADDR
notes() {
	reply 6 "$(session "$1" notes@sluice.test)"
}
log() { cat "$RUN/smtpd.log"; }

# ---------------------------------------------------------------- A defaults
sluice_restart a <<'EOF'
plugin fcrdns
plugin test_notes_rcpt keys=result.fcrdns,fcrdns.name
plugin queue/discard
EOF

out=$(session 198.51.100.1)
is "$(reply_codes <<<"$out")" "220 250 220 250 250 250 221 closed" \
	"A: 198.51.100.1 (PTR good.fc.test, A matches): RCPT accepted"
is "$(notes 198.51.100.1)" "550 5.7.1 notes result.fcrdns=pass good.fc.test fcrdns.name=good.fc.test" \
	"A: outcome pass with the verified name, note fcrdns.name set"
like "$(log)" 'plugin=fcrdns result=pass name=good\.fc\.test ip=198\.51\.100\.1' \
	"A: the pass is logged with the name"
is "$(notes 198.51.100.4)" "550 5.7.1 notes result.fcrdns=pass second.fc.test fcrdns.name=second.fc.test" \
	"A: two PTRs, the second matches: pass second.fc.test"
is "$(notes 198.51.100.9)" "550 5.7.1 notes result.fcrdns=pass n3.fc.test fcrdns.name=n3.fc.test" \
	"A: three PTRs, the third matches (max_names=10): pass n3.fc.test"
is "$(notes 2001:db8::1)" "550 5.7.1 notes result.fcrdns=pass good6.fc.test fcrdns.name=good6.fc.test" \
	"A: IPv6 client 2001:db8::1 (ip6.arpa PTR, AAAA matches): pass"

out=$(session 198.51.100.5)
is "$(reply 6 "$out")" "550 5.7.25 Client host [198.51.100.5] has no reverse DNS" \
	"A: no PTR (NXDOMAIN): RCPT 550 5.7.25"
is "$(reply_codes <<<"$out")" "220 250 220 250 250 550 221 closed" \
	"A: ... MAIL was accepted, the session goes on"
like "$(log)" 'plugin=fcrdns result=fail reason=ptr-nxdomain ip=198\.51\.100\.5' \
	"A: outcome fail ptr-nxdomain logged"
like "$(log)" 'plugin=fcrdns verdict=deny reason=ptr-nxdomain ip=198\.51\.100\.5 at=rcpt' \
	"A: the decision is logged"
is "$(reply 6 "$(session 198.51.100.6)")" "550 5.7.25 Client host [198.51.100.6] has no reverse DNS" \
	"A: a reverse name without PTR (NODATA): 550 5.7.25"
like "$(log)" 'result=fail reason=no-ptr ip=198\.51\.100\.6' "A: outcome fail no-ptr"
is "$(reply 6 "$(session 2001:db8::3)")" "550 5.7.25 Client host [2001:db8::3] has no reverse DNS" \
	"A: IPv6 client without PTR: 550 5.7.25"

out=$(session 198.51.100.2 bob@sluice.test notes@sluice.test)
is "$(reply 6 "$out")" "250 2.1.5 Ok" "A: mismatch (PTR mism.fc.test -> 203.0.113.2): accepted (reject_mismatch=no)"
is "$(reply 7 "$out")" "550 5.7.1 notes result.fcrdns=fail no-match fcrdns.name=-" \
	"A: ... outcome fail no-match recorded for karma, no fcrdns.name"
like "$(log)" 'verdict=declined reason=no-match ip=198\.51\.100\.2 at=rcpt reject_mismatch=no' \
	"A: ... and the let-through is logged"
is "$(notes 198.51.100.3)" "550 5.7.1 notes result.fcrdns=fail forward-nxdomain fcrdns.name=-" \
	"A: dangling PTR (gone.fc.test NXDOMAIN): fail forward-nxdomain"
is "$(notes 198.51.100.8)" "550 5.7.1 notes result.fcrdns=fail no-match fcrdns.name=-" \
	"A: a PTR name that is no host name: fail no-match, not looked up"
is "$(notes 198.51.100.10)" "550 5.7.1 notes result.fcrdns=fail no-match fcrdns.name=-" \
	"A: a PTR name without A (NODATA): fail no-match"
is "$(notes 2001:db8::2)" "550 5.7.1 notes result.fcrdns=fail no-match fcrdns.name=-" \
	"A: IPv6 client whose name has only an A record: fail no-match"

out=$(session 198.51.100.7 bob@sluice.test notes@sluice.test)
is "$(reply 6 "$out")" "250 2.1.5 Ok" "A: the forward name's zone refuses (SERVFAIL): accepted (dns_failure=skip)"
is "$(reply 7 "$out")" "550 5.7.1 notes result.fcrdns=error a-servfail fcrdns.name=-" \
	"A: ... outcome error a-servfail"
out=$(session 203.0.113.9 bob@sluice.test notes@sluice.test)
is "$(reply 6 "$out")" "250 2.1.5 Ok" "A: the reverse zone refuses (SERVFAIL): accepted"
is "$(reply 7 "$out")" "550 5.7.1 notes result.fcrdns=error ptr-servfail fcrdns.name=-" \
	"A: ... outcome error ptr-servfail"
like "$(log)" 'verdict=declined reason=ptr-servfail ip=203\.0\.113\.9 at=rcpt dns_failure=skip' \
	"A: ... logged as skipped"
is "$(reply 6 "$(session 192.0.2.55)")" "550 5.7.25 Client host [192.0.2.55] has no reverse DNS" \
	"A: a relay client is judged too without skip=relay"

out=$(smtp_chat <<'EOF'
EHLO proxy.test
XCLIENT ADDR=198.51.100.1
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<notes@sluice.test>
RSET
XCLIENT ADDR=198.51.100.5
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
RSET
XCLIENT ADDR=198.51.100.2
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<notes@sluice.test>
QUIT
EOF
)
is "$(reply 6 "$out")" "550 5.7.1 notes result.fcrdns=pass good.fc.test fcrdns.name=good.fc.test" \
	"A: XCLIENT then a second XCLIENT in one session: first identity passes"
is "$(reply 11 "$out")" "550 5.7.25 Client host [198.51.100.5] has no reverse DNS" \
	"A: ... the second is looked up anew and refused"
is "$(reply 16 "$out")" "550 5.7.1 notes result.fcrdns=fail no-match fcrdns.name=-" \
	"A: ... a third: the earlier verified name is gone"

# ---------------------------------------------------------------- B options
sluice_restart b <<'EOF'
plugin fcrdns reject_mismatch=yes dns_failure=tempfail max_names=2 check_at=mail skip_networks=198.51.100.6/32,2001:db8::3 skip=relay
plugin test_notes_rcpt keys=result.fcrdns
plugin queue/discard
EOF
out=$(session 198.51.100.2)
is "$(reply 5 "$out")" "550 5.7.25 Client host [198.51.100.2] reverse DNS name mism.fc.test does not resolve to [198.51.100.2]" \
	"B: reject_mismatch=yes check_at=mail: MAIL 550 5.7.25 naming the PTR"
like "$(log)" 'verdict=deny reason=no-match ip=198\.51\.100\.2 at=mail' "B: ... logged at=mail"
is "$(reply 5 "$(session 198.51.100.3)")" "550 5.7.25 Client host [198.51.100.3] reverse DNS name gone.fc.test does not resolve to [198.51.100.3]" \
	"B: dangling PTR refused"
is "$(reply 5 "$(session 198.51.100.9)")" "550 5.7.25 Client host [198.51.100.9] reverse DNS name n1.fc.test does not resolve to [198.51.100.9]" \
	"B: max_names=2: the matching third PTR is not looked up"
is "$(reply 5 "$(session 198.51.100.5)")" "550 5.7.25 Client host [198.51.100.5] has no reverse DNS" \
	"B: no PTR refused at MAIL"
is "$(reply 5 "$(session 203.0.113.9)")" "451 4.4.3 Client host [203.0.113.9]: reverse DNS lookup failed, try again later" \
	"B: dns_failure=tempfail: SERVFAIL gets 451 4.4.3"
like "$(log)" 'verdict=denysoft reason=ptr-servfail ip=203\.0\.113\.9 at=mail' "B: ... logged"
is "$(reply 5 "$(session 198.51.100.7)")" "451 4.4.3 Client host [198.51.100.7]: reverse DNS lookup failed, try again later" \
	"B: a forward lookup SERVFAIL without a match: 451 too"
out=$(session 198.51.100.4)
is "$(reply_codes <<<"$out")" "220 250 220 250 250 250 221 closed" "B: a pass is accepted"
out=$(session 198.51.100.6 notes@sluice.test)
is "$(reply 5 "$out")" "250 2.1.0 Ok" "B: skip_networks: a client without PTR is not looked up"
is "$(reply 6 "$out")" "550 5.7.1 notes result.fcrdns=skip skip_networks" "B: ... outcome skip skip_networks"
is "$(reply 5 "$(session 2001:db8::3)")" "250 2.1.0 Ok" "B: skip_networks with an IPv6 address"
out=$(session 192.0.2.55 notes@sluice.test)
is "$(reply 5 "$out")" "250 2.1.0 Ok" "B: skip=relay: a relay client without PTR is not asked"
is "$(reply 6 "$out")" "550 5.7.1 notes result.fcrdns=-" "B: ... and no outcome is recorded"
unlike "$(log)" 'ip=192\.0\.2\.55 at=mail' "B: ... nor any verdict"

# ---------------------------------------------------------------- C connect
sluice_restart c <<'EOF'
plugin fcrdns check_at=connect
plugin queue/discard
EOF
out=$(session 198.51.100.5)
is "$(reply 3 "$out")" "554 mx.sluice.test ESMTP Client host [198.51.100.5] has no reverse DNS" \
	"C: check_at=connect: the new greeting after XCLIENT is 554 with the reason"
is "$(reply_codes <<<"$out")" "220 250 554 503 503 503 221 closed" "C: ... then only QUIT is served (503)" ||
	diag "$out"
is "$(reply_codes <<<"$(session 198.51.100.1)")" "220 250 220 250 250 250 221 closed" \
	"C: a pass gets 220"
out=$(printf 'EHLO proxy.test\nXCLIENT ADDR=203.0.113.9\nQUIT\n' | smtp_chat)
is "$(reply 3 "$out")" "220 mx.sluice.test ESMTP sluice" "C: SERVFAIL with dns_failure=skip: 220"

# ---------------------------------------------------------------- D helo
sluice_restart d <<'EOF'
plugin fcrdns check_at=helo reject_mismatch=yes
plugin queue/discard
EOF
out=$(smtp_chat <<'EOF'
EHLO proxy.test
XCLIENT ADDR=198.51.100.2
EHLO client.test
HELO client.test
MAIL FROM:<alice@example.org>
QUIT
EOF
)
is "$(reply 4 "$out")" "550 5.7.25 Client host [198.51.100.2] reverse DNS name mism.fc.test does not resolve to [198.51.100.2]" \
	"D: check_at=helo: EHLO refused"
is "$(reply_codes <<<"$out")" "220 250 220 550 550 503 221 closed" \
	"D: ... the client may try again (refused again), MAIL without a greeting 503"
is "$(reply_codes <<<"$(session 198.51.100.4)")" "220 250 220 250 250 250 221 closed" \
	"D: a pass greets"

# ---------------------------------------------------------------- E defer
sluice_restart e <<'EOF'
plugin fcrdns check_at=helo reject=defer
plugin queue/discard
EOF
out=$(session 198.51.100.5)
is "$(reply_codes <<<"$out")" "220 250 220 250 250 550 221 closed" \
	"E: reject=defer: EHLO and MAIL accepted, RCPT refused"
is "$(reply 6 "$out")" "550 5.7.25 Client host [198.51.100.5] has no reverse DNS" \
	"E: ... with fcrdns's reply"
like "$(log)" 'hook=helo plugin=fcrdns verdict=deny action=defer' "E: ... the mark is logged at HELO"

# ---------------------------------------------------------------- F timeout
fc_silent_dns
sluice_restart f <<EOF
plugin fcrdns name=fc_skip check_at=mail
plugin fcrdns name=fc_temp check_at=rcpt dns_failure=tempfail
plugin queue/discard
EOF
out=$(session 198.51.100.1)
is "$(reply 5 "$out")" "250 2.1.0 Ok" "F: no DNS answer, dns_failure=skip: MAIL accepted"
is "$(reply 6 "$out")" "451 4.4.3 Client host [198.51.100.1]: reverse DNS lookup failed, try again later" \
	"F: dns_failure=tempfail: RCPT 451 4.4.3"
like "$(log)" 'plugin=fc_skip verdict=declined reason=ptr-timeout ip=198\.51\.100\.1 at=mail dns_failure=skip' \
	"F: the skip is logged with the timeout"
like "$(log)" 'plugin=fc_temp result=error reason=ptr-timeout' "F: outcome error ptr-timeout"
sluice_stop

# ---------------------------------------------------------------- G errors
conf_fails "check_at=data" "6: plugin fcrdns: check_at: invalid value 'data'" <<'EOF'
plugin fcrdns check_at=data
EOF
conf_fails "max_names=0" "6: plugin fcrdns: max_names: value 0 out of range 1\.\.100" <<'EOF'
plugin fcrdns max_names=0
EOF
conf_fails "dns_failure=maybe" "6: plugin fcrdns: dns_failure: invalid value 'maybe'" <<'EOF'
plugin fcrdns dns_failure=maybe
EOF
conf_fails "reject_mismatch=perhaps" "6: plugin fcrdns: reject_mismatch: invalid boolean 'perhaps'" <<'EOF'
plugin fcrdns reject_mismatch=perhaps
EOF
conf_fails "skip_networks=nonsense" "6: plugin fcrdns: skip_networks: invalid address or network 'nonsense'" <<'EOF'
plugin fcrdns skip_networks=nonsense
EOF

# ---------------------------------------------------------------- H milterd
fc_pf_start <<EOF || {
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s
plugin fcrdns reject_mismatch=yes
EOF
	skip 6 "H: $FC_PF_WHY"
	exit 0
}
pf_send() { fc_pf_send "$1" client.test; }
rcpt_reply() { reply_to "RCPT TO:<bob@sluice.test>" "$1"; }
out=$(pf_send 198.51.100.5)
is "$(rcpt_reply "$out")" "550 5.7.25 Client host [198.51.100.5] has no reverse DNS" \
	"H: milterd behind Postfix: a client without PTR refused at RCPT"
out=$(pf_send 198.51.100.2)
is "$(rcpt_reply "$out")" "550 5.7.25 Client host [198.51.100.2] reverse DNS name mism.fc.test does not resolve to [198.51.100.2]" \
	"H: a mismatch refused with reject_mismatch=yes"
out=$(pf_send 198.51.100.4)
like "$(rcpt_reply "$out")" '^250 ' "H: a client whose second PTR matches passes"
like "$out" '<- +250 2\.0\.0 Ok: queued as' "H: ... and its message is queued"
like "$(cat "$RUN/milterd.log")" 'plugin=fcrdns result=pass name=second\.fc\.test ip=198\.51\.100\.4' \
	"H: milterd logged the pass for the XCLIENT address"
milterd_stop
unlike "$(cat "$RUN/milterd.log")" 'AddressSanitizer|LeakSanitizer|runtime error' \
	"H: no sanitizer report in milterd's log"
