#!/bin/bash
# sluice-smtpd: STARTTLS (RFC 3207) and implicit TLS ("listen smtps"),
# with openssl s_client, swaks and t/smtpchat.py: delivery and the
# Received: line, command injection (CVE-2011-0411), a second STARTTLS,
# the session reset, TLS 1.0/1.1 refused, SNI with two certificates,
# client certificates (ask / require), handshake failures and timeouts,
# and the start-up and reload errors for certificates that do not load.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

command -v openssl >/dev/null || skip_all "openssl not installed"
command -v swaks >/dev/null || skip_all "swaks not installed"
plan 89
setup_run
T=$RUN/tls
mkdir -p "$T"
tls_make_ca "$T"
tls_make_cert "$T" mx mx.sluice.test
tls_make_cert "$T" other other.sluice.test
tls_make_cert "$T" client client.sluice.test ca
tls_make_cert "$T" rogue rogue.sluice.test
# the chain in the certificate file: leaf then CA (as tls_cert takes it)
cat "$T/mx.crt" "$T/ca.crt" >"$T/mx-chain.crt"

MD=$RUN/Maildir
PORT2=$(free_port)
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_errors 50
listen smtps 127.0.0.1:$PORT2
tls_cert $T/mx-chain.crt
tls_key $T/mx.key
tls_cert $T/other.crt $T/client.crt
tls_key $T/other.key $T/client.key
tls_client_certs ask
tls_client_ca $T/ca.crt
tls_handshake_timeout 1s
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

# --- EHLO, STARTTLS, delivery -------------------------------------------------
out=$(smtp_chat <<'EOF'
EHLO client.test
QUIT
EOF
)
like "$out" $'\n250-STARTTLS' "EHLO advertises STARTTLS in the clear"

out=$(swaks_to --tls --to a@sluice.test --from b@client.test \
	--h-Subject tls-starttls)
like "$out" '<~  250 ' "swaks --tls: the message is accepted under TLS"
like "$out" 'TLS started with cipher TLSv1\.[23]' "swaks --tls: TLS 1.2 or newer negotiated"
WAIT_TIMEOUT=5 wait_for eval '[ "$(maildir_count "$MD")" -ge 1 ]'
f=$(grep -l 'Subject: tls-starttls' "$MD"/new/* 2>/dev/null | head -n 1)
rcv=$(first_received "$f")
like "$rcv" 'with ESMTPS id' "Received: says ESMTPS"
like "$rcv" '\(using TLSv1\.3 with cipher TLS_[A-Z0-9_]+ \([0-9]+/[0-9]+ bits\)\)' \
	"Received: records the TLS version and cipher"
like "$(cat "$RUN/smtpd.log")" 'TLS established version=TLSv1\.3 cipher=' \
	"the log records the handshake"

out=$(swaks --server 127.0.0.1 --port "$PORT2" --tlsc --timeout 10 \
	--to a@sluice.test --from b@client.test --h-Subject tls-implicit 2>&1)
like "$out" '<~  250 ' "swaks --tlsc: implicit TLS on the smtps listener"
WAIT_TIMEOUT=5 wait_for eval '[ "$(maildir_count "$MD")" -ge 2 ]'
f=$(grep -l 'Subject: tls-implicit' "$MD"/new/* 2>/dev/null | head -n 1)
like "$(first_received "$f")" 'using TLSv1\.3 .* with ESMTPS id' \
	"implicit TLS: Received: says ESMTPS with the cipher"
like "$out" '<~  220 mx\.sluice\.test ESMTP' "implicit TLS: the banner comes over TLS"

out=$(printf 'EHLO x\r\nQUIT\r\n' | timeout 10 openssl s_client -quiet \
	-starttls smtp -connect "127.0.0.1:$PORT" 2>&1)
like "$out" 'CN ?= ?mx\.sluice\.test' "openssl s_client -starttls smtp: our certificate"
like "$out" $'250 HELP' "openssl s_client -starttls smtp: EHLO answered over TLS"
unlike "$out" '250-STARTTLS' "after STARTTLS, EHLO no longer offers STARTTLS"
out=$(printf 'QUIT\r\n' | timeout 10 openssl s_client -showcerts \
	-starttls smtp -connect "127.0.0.1:$PORT" 2>&1)
like "$out" ' 1 s:.*CN ?= ?sluice test CA' "the chain in tls_cert is sent"
out=$(printf 'QUIT\r\n' | timeout 10 openssl s_client -quiet \
	-connect "127.0.0.1:$PORT2" 2>&1)
like "$out" '220 mx\.sluice\.test' "openssl s_client on the smtps port: banner"

# --- command injection, second STARTTLS, reset ---------------------------------
: >"$RUN/mark"
out=$(smtp_chat <<'EOF'
EHLO client.test
!expect 1
!pipeline
STARTTLS
MAIL FROM:<injected@client.test>
!end
!starttls
MAIL FROM:<after@client.test>
EHLO client.test
MAIL FROM:<after@client.test>
RSET
STARTTLS
QUIT
EOF
)
like "$out" $'220 2.0.0 Ready to start TLS\n!tls TLSv1' "STARTTLS: 220, then the handshake"
unlike "$out" 'plaintext-after-220' "nothing was answered in the clear after the 220"
like "$out" $'!tls [^\n]*\n503 5.5.1 Send HELO/EHLO first' \
	"the command pipelined behind STARTTLS never ran; the session was reset (MAIL needs EHLO)"
like "$out" $'\n250 2.1.0 Ok' "after EHLO over TLS, MAIL is accepted"
like "$out" $'\n503 5.5.1 TLS already active' "a second STARTTLS is refused"
like "$out" '221 2.0.0' "the session goes on after the refusal"
like "$(cat "$RUN/smtpd.log")" 'STARTTLS: discarded [0-9]+ bytes sent before the handshake' \
	"the discarded injection is logged"
unlike "$(cat "$RUN/smtpd.log")" 'injected@client' "the injected MAIL never reached the session"

out=$(smtp_chat --port "$PORT2" --tls <<'EOF'
EHLO client.test
STARTTLS
QUIT
EOF
)
unlike "$out" '250-STARTTLS' "implicit TLS: STARTTLS not advertised"
like "$out" '503 5.5.1 TLS already active' "implicit TLS: STARTTLS refused"

out=$(smtp_chat <<'EOF'
EHLO client.test
STARTTLS now
MAIL FROM:<a@client.test>
STARTTLS
RSET
QUIT
EOF
)
like "$out" '501 5.5.4 Syntax: STARTTLS' "STARTTLS with an argument: 501"
like "$out" '503 5.5.1 STARTTLS inside a transaction' "STARTTLS inside a transaction: 503"
like "$out" '221 2.0.0' "the session goes on after both"

# a helo given before STARTTLS is forgotten: the Received: shows the new one
out=$(smtp_chat <<'EOF'
EHLO before.client.test
STARTTLS
!starttls
EHLO after.client.test
MAIL FROM:<b@client.test>
RCPT TO:<a@sluice.test>
DATA
Subject: tls-reset

body
.
QUIT
EOF
)
like "$out" $'\n250 2.0.0 Ok: queued' "message over STARTTLS accepted"
WAIT_TIMEOUT=5 wait_for eval '[ -n "$(grep -l "Subject: tls-reset" "$MD"/new/* 2>/dev/null)" ]'
f=$(grep -l 'Subject: tls-reset' "$MD"/new/* 2>/dev/null | head -n 1)
like "$(first_received "$f")" '^Received: from after\.client\.test ' \
	"Received: has the EHLO given after STARTTLS"

# --- protocol versions ------------------------------------------------------
for v in tls1 tls1_1; do
	out=$(echo | timeout 10 openssl s_client -$v -cipher 'DEFAULT@SECLEVEL=0' \
		-connect "127.0.0.1:$PORT2" 2>&1)
	like "$out" 'alert protocol version|no protocols available|unsupported protocol' \
		"-$v is refused by the server"
	unlike "$out" '220 mx\.sluice\.test' "-$v: no banner"
done
like "$(cat "$RUN/smtpd.log")" 'TLS handshake failed client=\[127\.0\.0\.1\]: .*unsupported protocol' \
	"the refused version is logged with the reason"
out=$(printf 'QUIT\r\n' | timeout 10 openssl s_client -quiet -tls1_2 \
	-connect "127.0.0.1:$PORT2" 2>&1)
like "$out" '220 mx\.sluice\.test' "TLS 1.2 is accepted"
out=$(smtp_chat --port "$PORT2" --tls <<'EOF'
QUIT
EOF
)
like "$out" '^!tls TLSv1\.3 ' "TLS 1.3 is the default choice"

# --- SNI ------------------------------------------------------------------------
out=$(printf 'QUIT\r\n' | timeout 10 openssl s_client -servername other.sluice.test \
	-connect "127.0.0.1:$PORT2" 2>&1)
like "$out" 'subject=CN ?= ?other\.sluice\.test' "SNI other.sluice.test: its certificate"
out=$(printf 'QUIT\r\n' | timeout 10 openssl s_client -servername unknown.example \
	-connect "127.0.0.1:$PORT2" 2>&1)
like "$out" 'subject=CN ?= ?mx\.sluice\.test' "SNI of no certificate: the first (default) one"
out=$(printf 'QUIT\r\n' | timeout 10 openssl s_client -noservername \
	-connect "127.0.0.1:$PORT2" 2>&1)
like "$out" 'subject=CN ?= ?mx\.sluice\.test' "no SNI: the default certificate"
out=$(printf 'QUIT\r\n' | timeout 10 openssl s_client -starttls smtp \
	-servername client.sluice.test -connect "127.0.0.1:$PORT" 2>&1)
like "$out" 'subject=CN ?= ?client\.sluice\.test' "SNI picks the third certificate under STARTTLS too"
like "$(cat "$RUN/smtpd.log")" 'sni=other\.sluice\.test' "the SNI name is logged"

# --- client certificates (tls_client_certs ask) ---------------------------------
out=$(smtp_chat --port "$PORT2" --tls --cert "$T/client.crt" --key "$T/client.key" <<'EOF'
QUIT
EOF
)
like "$out" '221 ' "ask: a client with a CA-signed certificate is served"
like "$(cat "$RUN/smtpd.log")" 'client_cert=/CN=client\.sluice\.test verify=OK' \
	"ask: the signed certificate is verified OK and logged"
out=$(smtp_chat --port "$PORT2" --tls --cert "$T/rogue.crt" --key "$T/rogue.key" <<'EOF'
QUIT
EOF
)
like "$out" '221 ' "ask: a self-signed client certificate is still served"
like "$(cat "$RUN/smtpd.log")" 'client_cert=/CN=rogue\.sluice\.test verify=FAIL' \
	"ask: the unverifiable certificate is logged as FAIL"
out=$(smtp_chat --port "$PORT2" --tls <<'EOF'
QUIT
EOF
)
like "$out" '221 ' "ask: a client without a certificate is served"
like "$(grep 'TLS established' "$RUN/smtpd.log" | tail -n 1)" 'client_cert=- verify=NO' \
	"ask: no certificate is logged as NO"

# --- handshake failures never hurt the daemon ---------------------------------
out=$(smtp_chat --port "$PORT2" --no-banner <<'EOF'
EHLO plaintext.client.test
!wait_close 5
EOF
)
like "$out" '!closed' "plaintext on the smtps port: closed"
like "$(cat "$RUN/smtpd.log")" 'TLS handshake failed client=\[127\.0\.0\.1\]: .*(wrong version|http request|record)' \
	"plaintext on the smtps port: logged"
out=$(smtp_chat --port "$PORT2" --no-banner <<'EOF'
!wait_close 5
EOF
)
like "$out" '!closed' "a silent client on the smtps port is closed after tls_handshake_timeout"
like "$(cat "$RUN/smtpd.log")" 'TLS handshake timeout client=\[127\.0\.0\.1\]' "the handshake timeout is logged"
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
STARTTLS\r\n
this is not a TLS ClientHello\r\n
!wait_close 5
EOF
)
like "$out" '220 2.0.0 Ready to start TLS' "garbage after STARTTLS: 220 first"
like "$out" '!closed' "garbage instead of a handshake: closed"
kill -0 "$SLUICE_PID" 2>/dev/null
ok $? "the daemon is still running after the failed handshakes"
out=$(swaks_to --tls --to a@sluice.test --from b@client.test --h-Subject tls-after)
like "$out" '<~  250 ' "and still serves TLS"

# --- configuration errors --------------------------------------------------------
check_conf() { # sluice-smtpd -t on $RUN/bad.conf, then exit=N
	"$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/bad.conf" 2>&1
	echo "exit=$?"
}
{ echo "tls_cert $T/missing.crt"; } | write_conf "$RUN/bad.conf"
out=$(check_conf)
like "$out" "bad\\.conf:6: tls_cert $T/missing\\.crt: No such file or directory" \
	"a missing certificate: file:line: tls_cert PATH: reason"
like "$out" 'exit=1' "a missing certificate stops start-up"
{ echo "tls_cert $RUN/smtpd.conf"; } | write_conf "$RUN/bad.conf"
like "$(check_conf)" 'bad\.conf:6: tls_cert .*smtpd\.conf: not a PEM certificate chain' \
	"a file that is no certificate: named"
chmod 000 "$T/other.key"
{
	echo "tls_cert $T/other.crt"
	echo "tls_key $T/other.key"
} | write_conf "$RUN/bad.conf"
if [ "$(id -u)" = 0 ]; then
	skip 1 "root reads a mode-000 key"
else
	like "$(check_conf)" 'bad\.conf:7: tls_key .*other\.key: Permission denied' \
		"an unreadable key: named"
fi
chmod 600 "$T/other.key"
{
	echo "tls_cert $T/other.crt"
	echo "tls_key $T/mx.key"
} | write_conf "$RUN/bad.conf"
like "$(check_conf)" 'bad\.conf:7: tls_key .*mx\.key: the key does not match the certificate' \
	"a key of another certificate: refused"
{ echo "listen smtps 127.0.0.1:1"; } | write_conf "$RUN/bad.conf"
like "$(check_conf)" 'bad\.conf:6: listen smtps: tls_cert is not set' \
	"listen smtps without a certificate: refused"
{
	echo "tls_cert $T/mx.crt"
	echo "tls_key $T/mx.key"
	echo "tls_protocols TLSv1.1 TLSv1.3"
} | write_conf "$RUN/bad.conf"
like "$(check_conf)" 'bad\.conf:8: TLS: tls_protocols: TLSv1\.2 is missing between' \
	"tls_protocols with a gap: refused"
{
	echo "tls_cert $T/mx.crt"
	echo "tls_protocols SSLv3"
} | write_conf "$RUN/bad.conf"
like "$(check_conf)" "bad\\.conf:7: TLS: tls_protocols: unknown version 'SSLv3'" \
	"an unknown protocol: refused"
{
	echo "tls_cert $T/mx.crt"
	echo "tls_key $T/mx.key"
	echo "tls_ciphers NOSUCHCIPHER"
} | write_conf "$RUN/bad.conf"
like "$(check_conf)" "bad\\.conf:8: tls_ciphers: 'NOSUCHCIPHER': no usable cipher" \
	"an unusable cipher list: refused"
{
	echo "tls_cert $T/mx.crt"
	echo "tls_key $T/mx.key"
	echo "tls_client_certs require"
} | write_conf "$RUN/bad.conf"
like "$(check_conf)" 'bad\.conf:8: tls_client_certs require: tls_client_ca is not set' \
	"tls_client_certs require without a CA: refused"
{
	echo "tls_cert $T/mx.crt"
	echo "tls_key $T/mx.key $T/other.key"
} | write_conf "$RUN/bad.conf"
like "$(check_conf)" 'bad\.conf:7: tls_key: 2 keys for 1 certificates' \
	"more keys than certificates: refused"
{ echo "listen smtp 127.0.0.1:$PORT"; } | write_conf "$RUN/bad.conf"
like "$(check_conf)" 'exit=0' "'listen smtp ADDR' is the plain listen"
{
	echo "tls_cert $T/mx.crt"
	echo "tls_key $T/mx.key"
} | write_conf "$RUN/bad.conf"
like "$(check_conf)" 'exit=0' "a certificate with its key: accepted"

# --- reload with a broken certificate keeps the running one --------------------
cp "$RUN/smtpd.conf" "$RUN/smtpd.conf.good"
sed -i "s|^tls_cert $T/mx-chain.crt|tls_cert $T/gone.crt|" "$RUN/smtpd.conf"
kill -HUP "$SLUICE_PID"
WAIT_TIMEOUT=5 wait_for eval 'grep -q "reload failed" "$RUN/smtpd.log"'
like "$(cat "$RUN/smtpd.log")" "reload failed, keeping the running configuration: .*tls_cert $T/gone\\.crt: No such file" \
	"reload with a missing certificate: refused with the reason"
out=$(swaks_to --tls --to a@sluice.test --from b@client.test)
like "$out" '<~  250 ' "STARTTLS still works with the old certificate"
cp "$RUN/smtpd.conf.good" "$RUN/smtpd.conf"
sluice_stop

# --- tls_client_certs require; starttls no; no certificate at all -----------------
PORT=
write_conf "$RUN/req.conf" <<EOF
local_domains sluice.test
listen smtps 127.0.0.1:$PORT2
tls_cert $T/mx.crt
tls_key $T/mx.key
tls_client_certs require
tls_client_ca $T/ca.crt
starttls no
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/req.conf"
out=$(smtp_chat --port "$PORT2" --tls <<'EOF'
QUIT
EOF
)
unlike "$out" '220 mx' "require: no certificate, no session"
like "$(cat "$RUN/smtpd.log")" 'TLS handshake failed client=\[127\.0\.0\.1\]: .*peer did not return a certificate' \
	"require: the missing certificate is logged"
out=$(smtp_chat --port "$PORT2" --tls --cert "$T/rogue.crt" --key "$T/rogue.key" <<'EOF'
QUIT
EOF
)
unlike "$out" '220 mx' "require: an unverifiable certificate, no session"
out=$(smtp_chat --port "$PORT2" --tls --cert "$T/client.crt" --key "$T/client.key" <<'EOF'
QUIT
EOF
)
like "$out" $'\n220 mx' "require: a CA-signed certificate is served"
out=$(smtp_chat <<'EOF'
EHLO client.test
STARTTLS
QUIT
EOF
)
unlike "$out" '250-STARTTLS' "starttls no: not advertised"
like "$out" '502 5.5.1 STARTTLS not available' "starttls no: STARTTLS gets 502"
sluice_stop

PORT=
write_conf "$RUN/plain.conf" <<EOF
local_domains sluice.test
EOF
sluice_start "$RUN/plain.conf"
out=$(smtp_chat <<'EOF'
EHLO client.test
STARTTLS
QUIT
EOF
)
unlike "$out" '250-STARTTLS' "no tls_cert: STARTTLS not advertised"
like "$out" '502 5.5.1 STARTTLS not available' "no tls_cert: STARTTLS gets 502"
sluice_stop

# --- AUTH and TLS (auth_require_tls yes, the default) --------------------------
printf 'alice:%s\n' "$(openssl passwd -6 secret)" >"$RUN/users"
PORT=
write_conf "$RUN/auth.conf" <<EOF
local_domains sluice.test
max_errors 50
auth_failure_delay 0
listen smtps 127.0.0.1:$PORT2
tls_cert $T/mx.crt
tls_key $T/mx.key
plugin auth/flat_file file=$RUN/users
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/auth.conf"
out=$(smtp_chat <<'EOF'
EHLO client.test
AUTH PLAIN AGFsaWNlAHNlY3JldA==
QUIT
EOF
)
unlike "$out" '250-AUTH' "AUTH is not offered before STARTTLS"
like "$out" '530 5.7.0 Must issue a STARTTLS command first' "AUTH before TLS: 530"
unlike "$(cat "$RUN/smtpd.log")" 'auth user=alice' "AUTH before TLS: the credentials were not checked"
out=$(swaks_to --tls --auth PLAIN --auth-user alice --auth-password secret \
	--to someone@elsewhere.test --from alice@client.test --h-Subject tls-auth)
like "$out" '250-AUTH PLAIN LOGIN' "after STARTTLS, AUTH PLAIN LOGIN is offered"
like "$out" '<~  235 2.7.0 Authentication successful' "AUTH PLAIN over STARTTLS: 235"
like "$out" '<~  250 2.1.5 Ok' "authenticated: relaying to another domain is allowed"
WAIT_TIMEOUT=5 wait_for eval '[ -n "$(grep -l "Subject: tls-auth" "$MD"/new/* 2>/dev/null)" ]'
f=$(grep -l 'Subject: tls-auth' "$MD"/new/* 2>/dev/null | head -n 1)
like "$(first_received "$f")" 'with ESMTPSA id' "Received: says ESMTPSA"
out=$(swaks --server 127.0.0.1 --port "$PORT2" --tlsc --timeout 10 --auth LOGIN \
	--auth-user alice --auth-password wrong --to a@sluice.test --from alice@client.test 2>&1)
like "$out" '<~\* 535 5.7.8' "AUTH LOGIN with a wrong password over implicit TLS: 535"
out=$(swaks --server 127.0.0.1 --port "$PORT2" --tlsc --timeout 10 --auth LOGIN \
	--auth-user alice --auth-password secret --to a@sluice.test --from alice@client.test 2>&1)
like "$out" '<~  235 2.7.0' "AUTH LOGIN over implicit TLS: 235"
sluice_stop

# authenticated in the clear (auth_require_tls no), then STARTTLS: forgotten
sed -i 's/^auth_failure_delay 0$/auth_failure_delay 0\nauth_require_tls no/' "$RUN/auth.conf"
sluice_start "$RUN/auth.conf"
out=$(smtp_chat <<'EOF'
EHLO client.test
AUTH PLAIN AGFsaWNlAHNlY3JldA==
STARTTLS
!starttls
EHLO client.test
MAIL FROM:<alice@client.test>
RCPT TO:<someone@elsewhere.test>
QUIT
EOF
)
like "$out" '235 2.7.0' "auth_require_tls no: AUTH in the clear succeeds"
like "$out" '550 5.7.1 Relay access denied' "after STARTTLS the authentication is forgotten (RFC 3207 4.2)"
sluice_stop
