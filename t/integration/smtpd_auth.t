#!/bin/bash
# sluice-smtpd: SMTP AUTH (RFC 4954) with the auth/flat_file back end and
# auth_require_tls no (TLS comes with STARTTLS).  Covers: the EHLO keyword;
# PLAIN and LOGIN with swaks and by hand (initial response, "=", 334
# challenges, cancel, bad base64, an over-long SASL line, authzid, CR in a
# field); the sequence rules (before EHLO, after HELO, twice, inside a
# transaction, unknown mechanism); every verdict of the auth chain (OK 235,
# DENY 535, DENYSOFT 454, DENY_DISCONNECT, DENYSOFT_DISCONNECT); relaying,
# {auth_authen}, "with ESMTPA" and MAIL AUTH=; the growing delay and the
# per-session cut-off (421); the per-address cut-off across sessions, where
# no back end is asked; AUTH neither offered nor checked without TLS when
# TLS is required (the checkpassword program is never run); no AUTH
# without an auth plugin; and no password in the log at log_level debug.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

command -v swaks >/dev/null 2>&1 || skip_all "swaks not installed"
[ -f "$SLUICE_BUILD/plugins/auth/flat_file.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/auth/flat_file.so)"
command -v mkpasswd >/dev/null 2>&1 ||
	skip_all "mkpasswd (Debian package whois) not installed"

plan 56
setup_run

MD=$RUN/Maildir
PW=s3cret
printf 'alice:%s\n' "$(mkpasswd -m sha-512 "$PW")" >"$RUN/users"
printf 'bob:%s\n' "$(mkpasswd -m sha-512 hunter2)" >>"$RUN/users"

b64() { printf '%s' "$1" | base64 -w0; }
codes() { reply_codes; }
# chat_codes: the script on stdin, the reply codes of the session
chat_codes() { smtp_chat "$@" | codes; }
# last_session_log TEXT: the log lines of the session whose log has TEXT
session_of() { grep -F -- "$1" "$RUN/smtpd.log" | tail -n 1 | awk '{ print $4 }'; }

write_conf "$RUN/auth.conf" <<EOF
local_domains sluice.test
log_level debug
auth_require_tls no
auth_failure_delay 100ms
auth_ip_max_failures 0
max_errors 50
plugin test_hooks hook=auth action=denysoft match=tempuser
plugin test_hooks hook=auth action=deny_disconnect match=kickuser
plugin test_hooks hook=auth action=denysoft_disconnect match=dropuser
plugin auth/flat_file file=$RUN/users
plugin test_hooks hook=rcpt action=declined macros={auth_authen}
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/auth.conf"

# --- the keyword, swaks, relaying ---------------------------------------
out=$(printf 'EHLO client.test\nQUIT\n' | smtp_chat)
grep -qx '250-AUTH PLAIN LOGIN' <<<"$out"
ok $? "EHLO offers 250-AUTH PLAIN LOGIN"

out=$(swaks_to --from alice@example.org --to carol@elsewhere.test)
like "$out" '<\*\* +550 5\.7\.1 Relay access denied' "no AUTH: a non-local recipient is refused"

out=$(swaks_to --from alice@example.org --to carol@elsewhere.test \
	--auth PLAIN --auth-user alice --auth-password "$PW")
like "$out" '<- +235 2\.7\.0 Authentication successful' "swaks AUTH PLAIN: 235 2.7.0"
like "$out" '<- +250 2\.0\.0 Ok: queued as ' "authenticated: a non-local recipient is relayed and queued"
f=$(newest_file "$MD/new")
rcv=$(first_received "$f")
like "$rcv" ' with ESMTPA id ' "Received: says ESMTPA (RFC 3848)"
unlike "$rcv" 'alice' "... and does not name the user"

out=$(swaks_to --from alice@example.org --to dave@sluice.test \
	--auth LOGIN --auth-user bob --auth-password hunter2)
like "$out" '<- +235 2\.7\.0 Authentication successful' "swaks AUTH LOGIN: 235 2.7.0"

out=$(swaks_to --from alice@example.org --to dave@sluice.test \
	--auth PLAIN --auth-user alice --auth-password wrong)
like "$out" '<\*\* +535 5\.7\.8 Authentication credentials invalid' "swaks, wrong password: 535 5.7.8"

grep -q "auth user=alice mechanism=PLAIN" "$RUN/smtpd.log"
ok $? "success is logged: auth user=alice mechanism=PLAIN"
id=$(session_of "auth user=alice mechanism=PLAIN")
grep "^.* $id " "$RUN/smtpd.log" | grep -q 'macro {auth_authen}=alice'
ok $? "{auth_authen} is the authenticated user"

# --- by hand ---------------------------------------------------------------
is "$(chat_codes <<EOF
AUTH PLAIN $(sasl_plain "" alice "$PW")
HELO client.test
AUTH PLAIN $(sasl_plain "" alice "$PW")
QUIT
EOF
)" "220 503 250 503 221 closed" "AUTH before EHLO and after HELO: 503"

out=$(smtp_chat <<EOF
EHLO client.test
AUTH PLAIN
$(sasl_plain "" alice "$PW")
AUTH PLAIN $(sasl_plain "" alice "$PW")
MAIL FROM:<alice@example.org>
AUTH LOGIN
QUIT
EOF
)
grep -qx '334 ' <<<"$out"
ok $? "PLAIN without an initial response: the challenge is '334 '"
is "$(codes <<<"$out")" "220 250 334 235 503 250 503 221 closed" \
	"PLAIN in two steps: 235; AUTH again and inside a transaction: 503"
grep -qx '503 5.5.1 Already authenticated' <<<"$out"
ok $? "AUTH twice: 503 5.5.1 Already authenticated"

out=$(smtp_chat <<EOF
EHLO client.test
AUTH LOGIN
$(b64 alice)
$(b64 "$PW")
QUIT
EOF
)
grep -qx '334 VXNlcm5hbWU6' <<<"$out" && grep -qx '334 UGFzc3dvcmQ6' <<<"$out"
ok $? "LOGIN: 334 VXNlcm5hbWU6 (Username:), 334 UGFzc3dvcmQ6 (Password:)"
is "$(codes <<<"$out")" "220 250 334 334 235 221 closed" "LOGIN in three steps: 235"

is "$(chat_codes <<EOF
EHLO client.test
AUTH LOGIN $(b64 alice)
$(b64 "$PW")
QUIT
EOF
)" "220 250 334 235 221 closed" "LOGIN with the user name as initial response"

out=$(smtp_chat <<EOF
EHLO client.test
AUTH CRAM-MD5
AUTH
AUTH PLAIN *
AUTH PLAIN abc
AUTH PLAIN
*
AUTH LOGIN
$(b64 alice)
*
AUTH PLAIN
@@@@
NOOP
QUIT
EOF
)
is "$(codes <<<"$out")" "220 250 504 501 501 501 334 501 334 334 501 334 501 250 221 closed" \
	"unknown mechanism, no mechanism, bad base64, cancel: 504 501 ..."
grep -qx '504 5.5.4 Unrecognized authentication type' <<<"$out"
ok $? "unknown mechanism: 504 5.5.4"
is "$(grep -c '^501 5.0.0 Authentication aborted$' <<<"$out")" 2 "'*' cancels (PLAIN and LOGIN): 501 5.0.0"
is "$(grep -c '^501 5.5.2 Invalid base64 data$' <<<"$out")" 3 "bad base64 (initial and continued): 501 5.5.2"

long=$(head -c 13000 /dev/zero | tr '\0' A)
out=$(smtp_chat <<EOF
EHLO client.test
AUTH PLAIN
$long
NOOP
AUTH PLAIN $(sasl_plain "" alice "$PW")
QUIT
EOF
)
grep -qx '500 5.5.6 Authentication Exchange line is too long' <<<"$out"
ok $? "a SASL line over 12288 octets: 500 5.5.6"
is "$(codes <<<"$out")" "220 250 334 500 250 235 221 closed" "... and the session goes on"

is "$(chat_codes <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain alice alice "$PW")
QUIT
EOF
)" "220 250 235 221 closed" "PLAIN with authzid = authcid: 235"

is "$(chat_codes <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain bob alice "$PW")
AUTH PLAIN =
QUIT
EOF
)" "220 250 535 535 221 closed" "authzid other than authcid: 535; '=' (empty response): 535"
grep -q 'auth failed .*reason=authzid-mismatch' "$RUN/smtpd.log"
ok $? "the authzid mismatch is logged"

is "$(chat_codes <<EOF
EHLO client.test
AUTH LOGIN $(printf 'ali\rce' | base64 -w0)
AUTH PLAIN $(printf '\0alice\0s3c\ncret' | base64 -w0)
QUIT
EOF
)" "220 250 535 535 221 closed" "CR or LF inside a decoded field: 535"
like "$(grep -c 'reason=malformed-response' "$RUN/smtpd.log")" '^[2-9]' "... logged as malformed"

# pipelining after an AUTH with an initial response (RFC 4954 4)
out=$(smtp_chat <<EOF
EHLO client.test
!pipeline
AUTH PLAIN $(sasl_plain "" alice "$PW")
MAIL FROM:<alice@example.org> AUTH=alice@example.org
RCPT TO:<carol@elsewhere.test>
RSET
!end
QUIT
EOF
)
is "$(codes <<<"$out")" "220 250 235 250 250 250 221 closed" \
	"AUTH PLAIN pipelined with MAIL/RCPT: the relayed RCPT is accepted"

is "$(chat_codes <<EOF
EHLO client.test
MAIL FROM:<a@example.org> AUTH=<>
RSET
MAIL FROM:<a@example.org> AUTH=someone+40example.org
RSET
MAIL FROM:<a@example.org> AUTH=bad+zz
MAIL FROM:<a@example.org> AUTH=
QUIT
EOF
)" "220 250 250 250 250 250 501 501 221 closed" "MAIL AUTH=: <> and xtext accepted, bad xtext 501"

# --- the chain's verdicts -----------------------------------------------
out=$(smtp_chat <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" tempuser x)
NOOP
QUIT
EOF
)
grep -qx '454 4.7.0 Temporary authentication failure' <<<"$out"
ok $? "DENYSOFT: 454 4.7.0 Temporary authentication failure"
is "$(codes <<<"$out")" "220 250 454 250 221 closed" "... and the session goes on"

# user, then the codes of "EHLO, AUTH PLAIN, NOOP", then what it shows
while IFS=$'\t' read -r user want desc; do
	is "$(chat_codes <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" "$user" x)
NOOP
EOF
)" "$want" "$desc"
done <<'EOT'
kickuser	220 250 535 closed	DENY_DISCONNECT: 535, then closed
dropuser	220 250 421 closed	DENYSOFT_DISCONNECT: 421, then closed
nosuchuser	220 250 535 250	unknown user (flat_file DENY): 535, the session goes on
EOT

# --- the growing delay, the per-session cut-off -------------------------------
before=$(wc -l <"$RUN/smtpd.log")
out=$(smtp_chat <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" alice bad1)
AUTH PLAIN $(sasl_plain "" alice bad2)
AUTH PLAIN $(sasl_plain "" alice bad3)
NOOP
EOF
)
is "$(codes <<<"$out")" "220 250 535 535 421 closed" \
	"auth_max_failures 3: 535, 535, then 421 and closed"
grep -qx '421 4.7.0 mx.sluice.test Too many authentication failures' <<<"$out"
ok $? "the cut-off: 421 4.7.0 ... Too many authentication failures"
log=$(tail -n +"$((before + 1))" "$RUN/smtpd.log" | grep 'auth failed')
delays=$(grep -o 'failures=[0-9] ip_failures=[0-9]* delay=[0-9]*ms' <<<"$log" |
	sed 's/ ip_failures=[0-9]*//' | tr '\n' ' ')
is "$delays" "failures=1 delay=100ms failures=2 delay=200ms failures=3 delay=400ms " \
	"the reply to the n-th failure waits auth_failure_delay * 2^(n-1)"
grep -q 'failures=3 .*action=disconnect' <<<"$log"
ok $? "the cut-off is logged with action=disconnect"

# --- the log holds no password ---------------------------------------------
grep -q "$PW" "$RUN/smtpd.log"
is "$?" 1 "log_level debug: the password is nowhere in the log"
grep -qF -e "$(sasl_plain "" alice "$PW")" -e "$(b64 "$PW")" "$RUN/smtpd.log"
is "$?" 1 "... nor the base64 responses"
grep -q 'command="AUTH' "$RUN/smtpd.log"
is "$?" 1 "... and AUTH commands are logged as '?'"
sluice_stop

# --- the per-address cut-off --------------------------------------------------
write_conf "$RUN/ip.conf" <<EOF
local_domains sluice.test
log_level debug
auth_require_tls no
auth_failure_delay 0
auth_max_failures 3
auth_ip_max_failures 4
auth_ip_window 1h
plugin auth/flat_file file=$RUN/users
plugin queue/discard
EOF
sluice_start "$RUN/ip.conf"
is "$(chat_codes <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" alice bad1)
AUTH PLAIN $(sasl_plain "" alice bad2)
AUTH PLAIN $(sasl_plain "" alice bad3)
EOF
)" "220 250 535 535 421 closed" "auth_failure_delay 0: three failures, 421"
is "$(chat_codes <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" alice bad4)
EOF
)" "220 250 421 closed" "a new session from the address: its 4th failure (auth_ip_max_failures) gets 421"
out=$(smtp_chat <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" alice "$PW")
EOF
)
is "$(codes <<<"$out")" "220 250 421 closed" "over the limit: even a good password gets 421 at AUTH"
grep -qx '421 4.7.0 mx.sluice.test Too many authentication failures' <<<"$out"
ok $? "... 421 4.7.0 Too many authentication failures"
id=$(session_of "auth refused client=[127.0.0.1] reason=ip_failures")
[ -n "$id" ]
ok $? "the refusal is logged with reason=ip_failures"
n=$(grep " $id " "$RUN/smtpd.log" | grep -c 'plugin=auth/flat_file')
is "$n" 0 "... and no back end was asked"
is "$(chat_codes --bind 127.0.0.2 <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" alice "$PW")
QUIT
EOF
)" "220 250 235 221 closed" "another client address still authenticates"
sluice_stop

# --- TLS required (the default), no TLS: not offered, nothing checked -----------
CP=$RUN/cp
mkdir -p "$CP"
write_conf "$RUN/tls.conf" <<EOF
local_domains sluice.test
log_level debug
plugin auth/checkpassword program="$SLUICE_SRC/t/checkpassword.py $CP"
plugin queue/discard
EOF
sluice_start "$RUN/tls.conf"
out=$(smtp_chat <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" alice "$PW")
AUTH LOGIN
AUTH PLAIN
QUIT
EOF
)
grep -q '^250-AUTH' <<<"$out"
is "$?" 1 "auth_require_tls yes without TLS: EHLO does not offer AUTH"
is "$(codes <<<"$out")" "220 250 530 530 530 221 closed" "every AUTH gets 530"
grep -qx '530 5.7.0 Must issue a STARTTLS command first' <<<"$out"
ok $? "... 530 5.7.0 Must issue a STARTTLS command first"
[ ! -e "$CP/got" ]
ok $? "... and the back end (the checkpassword program) was never run"
grep -q 'auth refused client=\[127.0.0.1\] reason=no-tls' "$RUN/smtpd.log"
ok $? "... logged as reason=no-tls"
sluice_stop

# --- no auth plugin: no AUTH ----------------------------------------------------
write_conf "$RUN/none.conf" <<EOF
local_domains sluice.test
auth_require_tls no
plugin queue/discard
EOF
sluice_start "$RUN/none.conf"
out=$(smtp_chat <<EOF
EHLO client.test
AUTH PLAIN $(sasl_plain "" alice "$PW")
QUIT
EOF
)
grep -q '^250-AUTH' <<<"$out"
is "$?" 1 "no auth plugin: EHLO does not offer AUTH"
grep -qx '502 5.5.1 Command not implemented' <<<"$out"
ok $? "... and AUTH gets 502 5.5.1"
