#!/bin/bash
# The hook runner through sluice-smtpd, driven by the test plugin
# t/plugins/test_hooks.so: every verdict, asynchronous resume (timer and
# worker pool), a plugin that times out, fails, returns garbage or resumes
# twice, plugin_default_action, reject=no / reject=defer, skip=relay, a
# wrong plugin ABI refused at start, and the edit API seen in the Maildir.
. "$SLUICE_SRC/t/lib.sh"

[ -f "$SLUICE_BUILD/t/plugins/test_hooks.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_hooks.so)"
plan 43
setup_run
MD=$RUN/Maildir

# start CONF-BODY: (re)start the daemon on a fresh port with this chain
start() {
	sluice_stop
	PORT=
	write_conf "$RUN/smtpd.conf"
	sluice_start "$RUN/smtpd.conf"
}

# send RCPT [SUBJECT]: one message, prints the reply codes
send() {
	smtp_chat <<EOF | reply_codes
EHLO client.test
MAIL FROM:<alice@sender.test>
RCPT TO:<$1>
DATA
Subject: ${2:-hello}
From: alice@sender.test
X-Delete-Me: gone

body
.
QUIT
EOF
}

# --- synchronous verdicts at RCPT ------------------------------------------
start <<EOF
local_domains sluice.test
plugin test_hooks hook=rcpt action=deny match=deny text="denied by test"
plugin test_hooks hook=rcpt action=denysoft match=soft
plugin test_hooks hook=rcpt action=deny_disconnect match=hangup
plugin test_hooks hook=rcpt action=ok match=okay
plugin test_hooks hook=rcpt action=error match=broken
plugin test_hooks hook=rcpt action=invalid match=garbage
plugin queue/maildir path=$MD
EOF
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@sender.test>
RCPT TO:<deny@sluice.test>
RCPT TO:<soft@sluice.test>
RCPT TO:<okay@sluice.test>
RCPT TO:<broken@sluice.test>
RCPT TO:<garbage@sluice.test>
RCPT TO:<hangup@sluice.test>
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 550 451 250 451 451 554 closed" \
	"deny 550, denysoft 451, ok 250, error and invalid verdict tempfail, deny_disconnect 554 + close"
like "$out" '550 5\.7\.1 denied by test' "plugin reply text is used"
like "$out" '451 4\.3\.0 Temporary local problem' "failure reply names no plugin internals"
log=$(cat "$RUN/smtpd.log")
like "$log" 'plugin=test_hooks failure="plugin error" action=tempfail' "plugin error logged with the action"
like "$log" 'failure="invalid verdict" action=tempfail' "invalid verdict logged"

# --- relay is checked before any plugin ------------------------------------
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@sender.test>
RCPT TO:<okay@elsewhere.test>
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 550 221 closed" "relay denied even though a plugin would say OK"

# --- async: resume after a timer, on the worker pool, twice ----------------
start <<EOF
local_domains sluice.test
plugin_timeout 1s
plugin test_hooks hook=mail action=pending delay=200ms verdict=ok match=timer
plugin test_hooks hook=mail action=worker delay=200ms verdict=deny match=worker
plugin test_hooks hook=mail action=pending_twice delay=50ms verdict=declined match=twice
plugin test_hooks hook=mail action=pending_forever match=hang
plugin test_hooks hook=rcpt action=pending delay=3s verdict=ok match=late timeout=300ms
plugin queue/maildir path=$MD
EOF
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<timer@sender.test>
RSET
MAIL FROM:<worker@sender.test>
MAIL FROM:<twice@sender.test>
RSET
MAIL FROM:<hang@sender.test>
MAIL FROM:<x@sender.test>
RCPT TO:<late@sluice.test>
NOOP
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 550 250 250 451 250 451 250 221 closed" \
	"timer resume 250, worker deny 550, double resume harmless, hang -> timeout 451, late resume 451 then session goes on"
log=$(cat "$RUN/smtpd.log")
like "$log" 'failure="timed out after 1000 ms" action=tempfail' "plugin_timeout applied"
like "$log" 'failure="timed out after 300 ms"' "per-plugin timeout= applied"
sleep 3.2
out=$(smtp_chat <<'EOF'
EHLO client.test
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 221 closed" "daemon still serves after a late resume"
kill -0 "$SLUICE_PID"
ok $? "daemon alive after timeouts and late resumes"

# --- plugin_default_action accept / reject ---------------------------------
start <<EOF
local_domains sluice.test
plugin_default_action accept
plugin test_hooks hook=rcpt action=error
plugin queue/maildir path=$MD
EOF
is "$(send ok@sluice.test)" "220 250 250 250 354 250 221 closed" "default action accept: failure lets mail through"
start <<EOF
local_domains sluice.test
plugin_default_action reject
plugin test_hooks hook=rcpt action=error
plugin queue/maildir path=$MD
EOF
is "$(send ok@sluice.test)" "220 250 250 550 554 500 500 500 500 500 421 closed" \
	"default action reject: failure rejects"

# --- reject=no and reject=defer, skip=relay ----------------------------------
start <<EOF
local_domains sluice.test
relay_clients 127.0.0.2
plugin test_hooks hook=helo action=deny reject=no
plugin test_hooks hook=mail action=deny reject=defer text="deferred denial"
plugin test_hooks hook=data action=deny skip=relay
plugin queue/maildir path=$MD
EOF
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@sender.test>
RCPT TO:<bob@sluice.test>
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 550 221 closed" "reject=no logs only; reject=defer denies at RCPT"
like "$out" '550 5\.7\.1 deferred denial' "deferred reply text kept"
like "$(cat "$RUN/smtpd.log")" 'action=log-only' "reject=no logged"
out=$(smtp_chat --bind 127.0.0.2 <<'EOF'
EHLO client.test
MAIL FROM:<alice@sender.test>
RCPT TO:<bob@elsewhere.test>
DATA
Subject: relay

x
.
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "relay client: defer exempt, skip=relay skips the data deny"

# --- other hooks -------------------------------------------------------------
start <<EOF
local_domains sluice.test
plugin test_hooks hook=connect action=deny match=127.0.0.3
EOF
out=$(smtp_chat --bind 127.0.0.3 <<'EOF'
EHLO client.test
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "554 503 221 closed" "connect deny: 554 greeting, only QUIT served"
start <<EOF
local_domains sluice.test
plugin test_hooks hook=header action=deny match=X-Delete-Me text="bad header"
plugin queue/maildir path=$MD
EOF
out=$(send bob@sluice.test)
is "$out" "220 250 250 250 354 550 221 closed" "header hook deny rejects the message after DATA"
start <<EOF
local_domains sluice.test
plugin test_hooks hook=header action=pending_forever
plugin queue/maildir path=$MD
EOF
is "$(send bob@sluice.test)" "220 250 250 250 354 451 221 closed" "PENDING in a synchronous hook is a failure (tempfail)"
start <<EOF
local_domains sluice.test
plugin test_hooks hook=data_post action=discard
plugin queue/maildir path=$MD
EOF
before=$(maildir_count "$MD")
is "$(send bob@sluice.test)" "220 250 250 250 354 250 221 closed" "discard at data_post answers 250"
is "$(maildir_count "$MD")" "$before" "discarded message not delivered"
start <<EOF
local_domains sluice.test
plugin test_hooks hook=queue action=declined
EOF
is "$(send bob@sluice.test)" "220 250 250 250 354 451 221 closed" "no queue plugin accepting: 451, never a silent accept"
start <<EOF
local_domains sluice.test
plugin test_hooks hook=unrecognized action=deny_disconnect match=EVIL
EOF
out=$(smtp_chat <<'EOF'
EHLO client.test
FOO
EVIL thing
NOOP
EOF
)
is "$(reply_codes <<<"$out")" "220 250 500 554 closed" "unrecognized hook: decline 500, deny_disconnect closes"

# --- edits --------------------------------------------------------------------
start <<EOF
local_domains sluice.test
plugin test_hooks hook=data_post action=edit edit=all,body
plugin queue/maildir path=$MD
EOF
rm -rf "$MD"
is "$(send bob@sluice.test "original subject")" "220 250 250 250 354 250 221 closed" "message with edits accepted"
f=$(newest_file "$MD/new")
msg=$(cat "$f")
like "$msg" $'^X-Test-Inserted: first\nReceived: ' "inserted header is first, before Received"
like "$msg" $'\nX-Test-Added: yes\n' "added header present"
like "$msg" $'\nSubject: changed by test_hooks\n' "Subject changed"
unlike "$msg" 'X-Delete-Me' "header deleted"
like "$msg" $'\n\nThis body was replaced by test_hooks\\.$' "body replaced"
start <<EOF
local_domains sluice.test
plugin test_hooks hook=data_post action=edit edit=smuggle
plugin queue/maildir path=$MD
EOF
rm -rf "$MD"
send bob@sluice.test >/dev/null
f=$(newest_file "$MD/new")
unlike "$(cat "$f")" 'Injected: yes' "a header edit with CR/LF injection is refused"

# --- milter macro names in smtpd (sl_conn_macro) ----------------------------------
start <<EOF
local_domains sluice.test
plugin test_hooks hook=rcpt action=declined macros="j,{client_addr},{mail_addr},i,{auth_authen}"
plugin queue/discard
EOF
send bob@sluice.test >/dev/null
log=$(cat "$RUN/smtpd.log")
like "$log" 'macro j=mx\.sluice\.test' "smtpd: j is the hostname"
like "$log" 'macro \{client_addr\}=127\.0\.0\.1' "smtpd: {client_addr}"
like "$log" 'macro \{mail_addr\}=alice@sender\.test' "smtpd: {mail_addr}"
like "$log" 'macro i=[0-9A-F]+\.1' "smtpd: i is the transaction id"
like "$log" 'macro \{auth_authen\}=\(none\)' "smtpd: no {auth_authen} without AUTH"

# --- sl_conn_io_wait: socket readiness for plugins ------------------------------
start <<EOF
local_domains sluice.test
plugin test_hooks name=io hook=rcpt action=io verdict=deny match=io
plugin test_hooks name=iot hook=rcpt action=io_timeout delay=200ms verdict=denysoft match=slow
plugin queue/discard
EOF
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@sender.test>
RCPT TO:<io@sluice.test>
RCPT TO:<slow@sluice.test>
QUIT
EOF
)
like "$out" '550 5\.7\.1 io read' "io wait: writable, then readable, then the verdict"
like "$out" '451 4\.7\.1 io timeout' "io wait on a silent socket: times out, then the verdict"

# --- start-up errors ----------------------------------------------------------
sluice_stop
PORT=
write_conf "$RUN/bad.conf" <<EOF
plugin test_hooks hook=nosuchhook
EOF
out=$("$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/bad.conf" 2>&1)
rc=$?
is "$rc" 1 "bad plugin option: -t exits 1"
like "$out" 'bad\.conf:6: plugin test_hooks: hook' "error names file:line and plugin"
write_conf "$RUN/bad2.conf" <<EOF
plugin no_such_plugin
EOF
out=$("$SLUICE_BUILD/sluice-smtpd" -f -c "$RUN/bad2.conf" 2>&1)
like "$out" 'bad2\.conf:6: plugin no_such_plugin: no_such_plugin\.so not found' "missing plugin stops start-up with file:line"
write_conf "$RUN/bad3.conf" <<EOF2
plugin test_badabi
EOF2
out=$("$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/bad3.conf" 2>&1)
rc=$?
is "$rc" 1 "plugin with a wrong ABI: -t exits 1"
like "$out" 'bad3\.conf:6: plugin test_badabi: .*has plugin ABI 1002, this sluice needs 2' "wrong ABI refused with a clear error"
