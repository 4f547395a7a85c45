#!/bin/bash
# plugin earlytalker (sluice-smtpd only): a client that sends before the
# banner gets the 554 greeting "Talked before the greeting", then 503 for
# everything but QUIT; with data_wait=, one that sends its message before
# the 354 gets 554 5.7.1 at DATA.  Patient clients (swaks) pass; BDAT is
# not judged.  The plugin answers a talker as soon as it talks.  Under the
# PROXY protocol the wait starts after the header, on the smtps port after
# the handshake.  A trusted proxy that waits for each 220 is no talker; the
# client it announces with XCLIENT is checked again.  reject=defer moves
# the refusal to RCPT, reject=no only logs (the early commands are then
# answered in order after the 220), skip=relay exempts relay clients, and
# timeout= does not cut the wait short.  The outcome (result.earlytalker)
# is read back through t/plugins/test_notes.  sluice-milterd skips the
# plugin with a file:line warning; bad durations stop start-up.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

command -v openssl >/dev/null || skip_all "openssl not installed"
command -v swaks >/dev/null || skip_all "swaks not installed"
plan 66
setup_run
T=$RUN/tls
mkdir -p "$T"
tls_make_cert "$T" mx mx.sluice.test
SPORT=$(free_port) # smtps
PPORT=$(free_port) # PROXY protocol
SLUICE_CONF_BASE="local_domains sluice.test
max_errors 50
max_unknown_commands 50
trusted_proxies 127.0.0.1/32
proxy_listen 127.0.0.1:$PPORT
listen smtps 127.0.0.1:$SPORT
tls_cert $T/mx.crt
tls_key $T/mx.key"

# et_start NAME <body: (re)start sluice-smtpd with $RUN/NAME.conf (the
# prelude, SLUICE_CONF_BASE, the body) and wait for its start line: a
# probe session as sluice_start's would itself be judged
et_start() {
	local body
	body=$(cat)
	sluice_stop
	unset PORT
	write_conf "$RUN/$1.conf" <<EOF
$SLUICE_CONF_BASE
$body
EOF
	sluice_restart_quiet "$RUN/$1.conf"
}

# mark, then logged ERE: the log lines written since the mark match
mark() { MARK=$(log_mark); }
logged() { log_after "$MARK" | grep -qE -- "$1"; }
# log_ok ERE DESC: the line shows up (bounded wait)
log_ok() {
	WAIT_TIMEOUT=5 wait_for logged "$1"
	ok $? "$2"
}
# talker [smtp_chat ARGS]: EHLO at once, before the banner, then QUIT
talker() {
	printf '!expect 2\nEHLO client.test\nQUIT\n' | smtp_chat --no-banner "$@"
}
# proxy_talker ADDR: on the PROXY listener, the header for ADDR and an
# EHLO in one write, then QUIT
proxy_talker() {
	printf 'PROXY TCP4 %s 127.0.0.1 40000 25\\r\\nEHLO client.test\\r\\n\nQUIT\\r\\n\n' \
		"$1" | smtp_chat --port "$PPORT" --raw --no-banner
}
patient() {
	swaks_to --to bob@sluice.test --from alice@example.org \
		--ehlo client.test --h-Subject patient
}
FAIL='plugin=earlytalker result=fail'
PASS='plugin=earlytalker result=pass'
NOTE='plugin=test_notes notes hook=disconnect result\.earlytalker='

et_start main <<EOF
plugin earlytalker wait=1s data_wait=1s
plugin test_notes hook=disconnect keys=result.earlytalker
plugin queue/discard
EOF

# --- before the banner -----------------------------------------------------
mark
out=$(smtp_chat --no-banner <<'EOF'
!expect 2
EHLO client.test
MAIL FROM:<alice@example.org>
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "554 503 503 221 closed" \
	"a talker gets the 554 greeting, 503 for EHLO and MAIL; QUIT still works"
like "$out" '^554 mx\.sluice\.test ESMTP Talked before the greeting' \
	"the 554 greeting says why"
like "$out" $'\n503 5\\.7\\.0 Service refused, send QUIT' \
	"after it, commands get 503 5.7.0"
log_ok "$FAIL stage=banner bytes=18 wait=1000ms client=\[127\.0\.0\.1\]" \
	"the talker is logged: stage, bytes seen, wait, client"
log_ok 'hook=connect plugin=earlytalker verdict=deny text="Talked before the greeting"' \
	"the core logs the connect denial"
log_ok "${NOTE}fail banner 18 bytes$" "outcome: fail, with stage and bytes"

# a talker that leaves at once is still judged; the daemon goes on
mark
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'EHLO client.test\r\n' >&3
exec 3<&- 3>&-
log_ok "$FAIL stage=banner bytes=18" "a talker that hangs up at once is logged"
# and one that leaves in silence is just gone
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
exec 3<&- 3>&-

mark
out=$(patient)
like "$out" '<-  220 mx\.sluice\.test ESMTP sluice' "a patient client gets the 220"
like "$out" '<-  250 2\.0\.0 Ok' "... and its message is accepted"
log_ok "$PASS stage=banner wait=1000ms client=\[127\.0\.0\.1\]" "the pass is logged"
log_ok "$PASS stage=data wait=1000ms" "data_wait: the DATA check passes too"
log_ok "${NOTE}pass$" "outcome: pass"

# --- before the DATA reply -------------------------------------------------
mark
out=$(smtp_chat <<'EOF'
EHLO client.test
!pipeline
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
Subject: too early

hello
.
!end
QUIT
EOF
)
like "$out" $'\n250 2\\.1\\.5 Ok\n554 5\\.7\\.1 Talked before the DATA reply' \
	"message data before the 354: 554 5.7.1 at DATA"
unlike "$out" $'\n354 ' "no 354 is sent"
like "$out" '221 2\.0\.0' "the session goes on (the early lines are read as commands)"
log_ok "$FAIL stage=data bytes=32 wait=1000ms" "the DATA talker is logged with the bytes"
log_ok 'hook=data plugin=earlytalker verdict=deny' "the core logs the DATA denial"
log_ok "${NOTE}fail data 32 bytes$" "outcome: fail, data stage"
unlike "$(tail -n +"$((MARK + 1))" "$RUN/smtpd.log")" 'queued txn=' \
	"the message was not taken"

# BDAT: the chunk follows the command by design (no 354), never judged
mark
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
!pipeline
BDAT 24 LAST
Subject: chunked

hi
!end
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 250 221 closed" \
	"BDAT with its chunk in the same write is accepted"
log_ok 'queued txn=' "... and the message taken"
logged 'stage=data'
is "$?" 1 "... without a DATA check"

# --- a trusted proxy and XCLIENT ----------------------------------------------
mark
out=$(smtp_chat <<'EOF'
EHLO proxy.test
XCLIENT ADDR=198.51.100.7 NAME=[UNAVAILABLE]
EHLO client.test
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 220 250 221 closed" \
	"a proxy that waits for each 220 passes, before and after XCLIENT"
log_ok "$PASS stage=banner wait=1000ms client=\[127\.0\.0\.1\]" "the proxy's own connect passes"
log_ok "$PASS stage=banner wait=1000ms client=\[198\.51\.100\.7\]" \
	"after XCLIENT the announced client is checked again, and passes"

mark
out=$(smtp_chat <<'EOF'
EHLO proxy.test
!pipeline
XCLIENT ADDR=198.51.100.8
EHLO client.test
!end
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 554 503 221 closed" \
	"a command right behind XCLIENT, before the new 220: a talker"
log_ok "$FAIL stage=banner bytes=18 wait=1000ms client=\[198\.51\.100\.8\]" \
	"... logged for the XCLIENT address"
log_ok "${NOTE}fail banner 18 bytes$" "... with its outcome"

# --- PROXY protocol: the wait starts after the header --------------------------
mark
out=$(proxy_talker 192.0.2.10)
is "$(reply_codes <<<"$out")" "554 503 221 closed" \
	"PROXY header and EHLO in one write: a talker"
log_ok "$FAIL stage=banner bytes=18 wait=1000ms client=\[192\.0\.2\.10\]" \
	"only the bytes after the header count, for the proxied address"
mark
out=$(smtp_chat --port "$PPORT" --raw --no-banner <<'EOF'
PROXY TCP4 192.0.2.11 127.0.0.1 40000 25\r\n
EHLO client.test\r\n
QUIT\r\n
EOF
)
is "$(reply_codes <<<"$out")" "220 250 221 closed" \
	"PROXY header, then silence until the 220: passes"
log_ok "$PASS stage=banner wait=1000ms client=\[192\.0\.2\.11\]" "... logged as a pass"

# --- implicit TLS: the wait starts after the handshake ---------------------------
mark
out=$(talker --port "$SPORT" --tls)
like "$out" '^!tls TLSv1' "smtps: the handshake completes"
is "$(reply_codes <<<"$out")" "554 503 221 closed" \
	"smtps: EHLO right after the handshake, before the banner: a talker"
log_ok "$FAIL stage=banner bytes=18 " "smtps: the decrypted bytes are counted"
mark
out=$(smtp_chat --port "$SPORT" --tls <<'EOF'
EHLO client.test
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 221 closed" "smtps: a patient client passes"
log_ok "$PASS stage=banner" "smtps: the pass is logged"

# --- a talker is answered at once, not at the end of the wait --------------------
et_start at_once <<EOF
plugin earlytalker wait=30s
EOF
out=$(talker --timeout 10)
is "$(reply_codes <<<"$out")" "554 503 221 closed" \
	"wait=30s: the talker gets its 554 well before the wait is over"

# --- reject=defer --------------------------------------------------------------
et_start defer <<EOF
plugin earlytalker wait=1s reject=defer
plugin test_notes hook=disconnect keys=result.earlytalker
plugin queue/discard
EOF
mark
out=$(smtp_chat --no-banner <<'EOF'
!expect 2
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 554 221 closed" \
	"reject=defer: the talker gets the 220, and 554 at RCPT"
like "$out" $'\n554 5\\.7\\.1 Talked before the greeting' "... with the plugin's reply"
log_ok 'hook=connect plugin=earlytalker verdict=deny action=defer' "the mark is logged"
log_ok 'rcpt to=<bob@sluice\.test> refused reason=deferred' "the RCPT refusal is logged as deferred"
log_ok "${NOTE}fail banner 18 bytes$" "reject=defer: outcome fail"
mark
out=$(patient)
like "$out" '<-  250 2\.0\.0 Ok' "reject=defer: a patient client's message is accepted"

# --- reject=no, and timeout= below wait= -------------------------------------------
et_start log_only <<EOF
plugin earlytalker wait=1500ms timeout=500ms reject=no
plugin test_notes hook=disconnect keys=result.earlytalker
plugin queue/discard
EOF
mark
out=$(smtp_chat --no-banner <<'EOF'
!expect 7
!pipeline
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
Subject: early

hi
.
QUIT
!end
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" \
	"reject=no: a whole transaction sent early is answered in order after the 220"
log_ok 'hook=connect plugin=earlytalker verdict=deny action=log-only' "reject=no: logged only"
log_ok "${NOTE}fail banner [0-9]+ bytes$" "reject=no: outcome fail all the same"
mark
out=$(patient)
like "$out" '<-  220 mx\.sluice\.test ESMTP sluice' \
	"timeout=500ms with wait=1500ms: the patient client still gets the 220"
log_ok "$PASS stage=banner wait=1500ms" "... after the whole wait"
logged 'failure='
is "$?" 1 "... and the core did not call the plugin failed"

# --- skip=relay ------------------------------------------------------------------
# 127.0.0.1, the XCLIENT proxy, is a relay client too: not delayed itself
et_start relay <<EOF
relay_clients 127.0.0.1/32 192.0.2.0/24
plugin earlytalker wait=1s skip=relay
EOF
mark
out=$(proxy_talker 192.0.2.13)
is "$(reply_codes <<<"$out")" "220 250 221 closed" "skip=relay: a relay client may talk early"
logged 'plugin=earlytalker'
is "$?" 1 "... the plugin is not asked"
mark
out=$(smtp_chat <<'EOF'
!pipeline
XCLIENT ADDR=198.51.100.9
EHLO client.test
!end
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 554 503 221 closed" \
	"skip=relay: the relay proxy is not delayed; the client it announces is checked"
log_ok "$FAIL stage=banner bytes=18 wait=1000ms client=\[198\.51\.100\.9\]" "... and logged"

# --- wait=0 ---------------------------------------------------------------------
et_start nowait <<EOF
plugin earlytalker wait=0
plugin queue/discard
EOF
mark
out=$(patient)
like "$out" '<-  250 2\.0\.0 Ok' "wait=0: a client is served without delay"
log_ok "$PASS stage=banner wait=0ms" "wait=0: the pass is logged"
mark
out=$(proxy_talker 192.0.2.12)
is "$(reply_codes <<<"$out")" "554 503 221 closed" \
	"wait=0: input already there at connect (behind a PROXY header) still counts"
log_ok "$FAIL stage=banner bytes=18 wait=0ms client=\[192\.0\.2\.12\]" "... and is logged"
sluice_stop

# --- sluice-milterd --------------------------------------------------------------
unset PORT
write_conf "$RUN/milterd.conf" <<EOF
milter_listen inet:$(free_port)@127.0.0.1
plugin earlytalker wait=1s
EOF
out=$("$SLUICE_BUILD/sluice-milterd" -t -c "$RUN/milterd.conf" 2>&1)
is "$?" 0 "sluice-milterd: the plugin does not stop start-up"
like "$out" "milterd\\.conf:7: plugin earlytalker: not available in sluice-milterd; skipped" \
	"... it is skipped with a file:line warning"

# --- configuration errors -----------------------------------------------------------
conf_fails "wait=2m" '6: plugin earlytalker: wait: value 2m out of range 0\.\.1m' <<EOF
plugin earlytalker wait=2m
EOF
conf_fails "wait=soon" "6: plugin earlytalker: wait: invalid duration 'soon'" <<EOF
plugin earlytalker wait=soon
EOF
conf_fails "data_wait=61s" '6: plugin earlytalker: data_wait: value 61s out of range 0\.\.1m' <<EOF
plugin earlytalker data_wait=61s
EOF
