#!/bin/bash
# sluice-smtpd: XCLIENT and the PROXY protocol (v1, v2) are honoured from
# trusted_proxies only; the address they carry is the client everywhere
# (Received:, relay decisions).  127.0.0.2 plays an untrusted host.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 24
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"
PPORT=$(free_port)
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
relay_clients 192.0.2.0/24
trusted_proxies 127.0.0.1/32
proxy_listen 127.0.0.1:$PPORT
max_errors 100
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

TXN='EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
Subject: via proxy

hello
.
QUIT'
TXNRAW=$(sed 's/$/\\r\\n/' <<<"$TXN")
rcv() { first_received "$(newest_file "$MD/new")"; }

# --- XCLIENT ---------------------------------------------------------------
out=$(smtp_chat <<<$'EHLO proxy.test\nQUIT')
grep -q '^250[- ]XCLIENT .*ADDR' <<<"$out"
ok $? "EHLO advertises XCLIENT to a trusted proxy"
out=$(smtp_chat --bind 127.0.0.2 <<<$'EHLO proxy.test\nQUIT')
grep -q '^250[- ]XCLIENT' <<<"$out"
[ $? = 1 ]
ok $? "EHLO does not advertise XCLIENT to others"

out=$(smtp_chat <<EOF
EHLO proxy.test
XCLIENT ADDR=198.51.100.7 NAME=[UNAVAILABLE]
$TXN
EOF
)
is "$(reply_codes <<<"$out")" "220 250 220 250 250 250 354 250 221 closed" "XCLIENT from 127.0.0.1: 220, then a normal session"
like "$(rcv)" '\[198\.51\.100\.7\]' "Received: shows the XCLIENT address"
unlike "$(rcv)" '127\.0\.0\.1' "... not the proxy's"

out=$(smtp_chat <<'EOF'
EHLO proxy.test
XCLIENT ADDR=192.0.2.5
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@other.test>
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 220 250 250 250 221 closed" "XCLIENT address in relay_clients may relay"

out=$(smtp_chat <<'EOF'
EHLO proxy.test
MAIL FROM:<alice@example.org>
XCLIENT ADDR=198.51.100.8
RSET
XCLIENT FOO=bar
XCLIENT ADDR=not-an-address
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 503 250 501 501 221 closed" "XCLIENT in a transaction 503; bad attribute or value 501"

out=$(smtp_chat --bind 127.0.0.2 <<EOF
EHLO proxy.test
XCLIENT ADDR=198.51.100.9
$TXN
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 5[0-9][0-9] 250 250 250 354 250 221 closed$' "XCLIENT from an untrusted host: 5xx"
like "$(rcv)" '\[127\.0\.0\.2\]' "... and the real address is kept"
unlike "$(rcv)" '198\.51\.100\.9' "... the fake one is not used"

# --- PROXY protocol -----------------------------------------------------------
# v1, TCP4
out=$(smtp_chat --raw --no-banner --port "$PPORT" <<EOF
PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n
$TXNRAW
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "PROXY v1 TCP4 from a trusted host: banner after the header"
like "$(rcv)" '\[203\.0\.113\.9\]' "Received: shows the PROXY v1 source address"

# v1, TCP6
out=$(smtp_chat --raw --no-banner --port "$PPORT" <<EOF
PROXY TCP6 2001:db8::7 ::1 40000 25\r\n
$TXNRAW
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "PROXY v1 TCP6"
like "$(rcv)" '\[IPv6:2001:db8::7\]' "Received: shows [IPv6:2001:db8::7]"

# v2, PROXY command, TCP over IPv4: 203.0.113.10:40000 -> 127.0.0.1:25
SIG='\r\n\r\n\0\r\nQUIT\n'
out=$(smtp_chat --raw --no-banner --port "$PPORT" <<EOF
!expect 1
${SIG}\x21\x11\x00\x0c\xcb\x00\x71\x0a\x7f\x00\x00\x01\x9c\x40\x00\x19
$TXNRAW
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "PROXY v2 TCP4 from a trusted host"
like "$(rcv)" '\[203\.0\.113\.10\]' "Received: shows the PROXY v2 source address"

# v2 with a TLV after the addresses (length 12 + 7): TLVs are skipped
out=$(smtp_chat --raw --no-banner --port "$PPORT" <<EOF
!expect 1
${SIG}\x21\x11\x00\x13\xcb\x00\x71\x0b\x7f\x00\x00\x01\x9c\x40\x00\x19\x04\x00\x04test
$TXNRAW
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "PROXY v2 with a TLV"
like "$(rcv)" '\[203\.0\.113\.11\]' "Received: shows that PROXY v2 source address"

# v2 LOCAL (health check): the connection's own address is used
out=$(smtp_chat --raw --no-banner --port "$PPORT" <<EOF
!expect 1
${SIG}\x20\x00\x00\x00
$TXNRAW
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "PROXY v2 LOCAL accepted"
like "$(rcv)" '\[127\.0\.0\.1\]' "... with the proxy's own address"

# refusals
out=$(smtp_chat --raw --no-banner --bind 127.0.0.2 --port "$PPORT" <<'EOF'
PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n
!wait_close 3
EOF
)
unlike "$out" '^220' "PROXY header from an untrusted host: no banner"
like "$out" '!closed' "... connection closed"

out=$(smtp_chat --raw --no-banner --port "$PPORT" <<'EOF'
EHLO client.test\r\n
!wait_close 3
EOF
)
unlike "$out" '(^|'$'\n'')2[0-9][0-9]' "no PROXY header on a proxy port: no banner, no 250"

out=$(smtp_chat <<'EOF'
PROXY TCP4 203.0.113.9 127.0.0.1 40000 25
QUIT
EOF
)
like "$(reply_codes <<<"$out")" '^220 5[0-9][0-9] 221 closed$' "PROXY on the plain listener is just a bad command"
