#!/bin/bash
# sluice-milterd: configuration checks (-t, file:line errors, milter_listen
# forms), a UNIX socket with its mode and clean-up, one message end to
# end, SIGHUP reload (bad config refused), SIGTERM stop, macros seen by
# plugins, sluice-milter-client driving it.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
[ -x "$SLUICE_BUILD/sluice-milterd" ] || skip_all "sluice-milterd not built"
setup_run
plan 31

M="$SLUICE_BUILD/sluice-milterd"

# --- configuration checks -----------------------------------------------------
out=$(cd "$SLUICE_SRC/conf" && "$M" -t -c milterd.conf 2>&1)
is "$?" 0 "conf/milterd.conf is valid"
write_conf "$RUN/none.conf" </dev/null
out=$("$M" -t -c "$RUN/none.conf" 2>&1)
is "$?" 1 "no milter_listen: -t exits 1"
like "$out" 'milter_listen: not set' "and says milter_listen is missing"
write_conf "$RUN/bad.conf" <<EOF
milter_listen tcp:8891
EOF
out=$("$M" -t -c "$RUN/bad.conf" 2>&1)
like "$out" 'milter_listen tcp:8891: expected inet:PORT@HOST' "bad milter_listen form is named"
write_conf "$RUN/bad2.conf" <<EOF
milter_listen unix:relative/path
EOF
like "$("$M" -t -c "$RUN/bad2.conf" 2>&1)" 'must be absolute' "relative UNIX path refused"
write_conf "$RUN/bad3.conf" <<EOF
milter_listen inet:8891@127.0.0.1
milter_socket_mode 0777
EOF
like "$("$M" -t -c "$RUN/bad3.conf" 2>&1)" 'bad3\.conf:7: milter_socket_mode' "bad socket mode: file:line"
write_conf "$RUN/skip.conf" <<EOF
milter_listen inet:8891@127.0.0.1
plugin queue/maildir path=$RUN/md
EOF
out=$("$M" -t -c "$RUN/skip.conf" 2>&1)
rc=$?
is "$rc" 0 "an smtpd-only plugin does not stop milterd"
like "$out" 'skip\.conf:7: plugin queue/maildir: not available in sluice-milterd; skipped' "but is named in a warning"

# --- a UNIX socket, one message ---------------------------------------------------
SOCK="$RUN/milter.sock"
write_conf "$RUN/m.conf" <<EOF
milter_listen unix:$SOCK
milter_socket_mode 0666
plugin badrcptto list=bad@example.org message="no bad"
EOF
milterd_start "$RUN/m.conf"
is "$(stat -c %a "$SOCK")" 666 "socket has milter_socket_mode"
# With only a rcpt hook, CONNECT, HELO and MAIL get no reply (NR_*).
out=$(miltraw --timeout=5 "$SOCK" <<EOF
O 6 0x1ff 0x1fffff
READ
D C j=mx.sluice.test
C client.example 4 4321 192.0.2.7
H helo.example
M <s@example.org>
R <bad@example.org>
READ
R <good@example.org>
READ
T
READ
A
A
Q
EOF
)
like "$out" $'\ny 550 5\\.7\\.1 no bad\\\\0\nc\na$' "rcpt refused with the plugin's text, the next accepted, ACCEPT at DATA"
like "$(head -n1 <<<"$out")" '^O \\0\\0\\0\\x06\\0\\0\\x01\\0\\0\\x02up\\0' "version 6, only SETSYMLIST; NR for connect, helo, mail; no content, no unknown"
like "$(cat "$RUN/milterd.log")" 'connect client=client\.example\[192\.0\.2\.7\]:4321' "connect facts logged"

# --- SIGHUP: a good config is taken, a bad one refused ---------------------------
# test_hooks has every hook: every event is answered.
session() {
	miltraw --timeout=5 "$SOCK" <<EOF
O 6 0x1ff 0x1fffff
READ
C client.example 4 4321 192.0.2.7
READ
M <s@example.org>
READ
R <bad@example.org>
READ
Q
EOF
}
write_conf "$RUN/m.conf" <<EOF
milter_listen unix:$SOCK
milter_socket_mode 0666
plugin test_hooks hook=rcpt action=denysoft match=bad text="later"
EOF
kill -HUP "$MILTERD_PID"
wait_for grep -q 'reloaded configuration' "$RUN/milterd.log"
like "$(session)" 'y 451 4\.7\.1 later' "after SIGHUP the new plugin line answers"
echo "plugin no_such_plugin" >>"$RUN/m.conf"
kill -HUP "$MILTERD_PID"
wait_for grep -q 'reload failed' "$RUN/milterd.log"
like "$(grep 'reload failed' "$RUN/milterd.log")" 'm\.conf:9: plugin no_such_plugin' "a bad reload is refused with file:line"
like "$(session)" 'y 451 4\.7\.1 later' "and the running configuration stays"

# --- SIGTERM ------------------------------------------------------------------------
kill -TERM "$MILTERD_PID"
for ((i = 0; i < 250; i++)); do
	kill -0 "$MILTERD_PID" 2>/dev/null || break
	sleep 0.02
done
wait "$MILTERD_PID"
is "$?" 0 "SIGTERM: exit status 0"
ok "$([ ! -e "$SOCK" ]; echo $?)" "the UNIX socket is removed at exit"
like "$(tail -n 3 "$RUN/milterd.log")" 'stopped' "stop logged"
MILTERD_PID=

# --- the inet:host:port form, a version 2 offer ------------------------------------
P=$(free_port)
write_conf "$RUN/i.conf" <<EOF
milter_listen inet:127.0.0.1:$P
EOF
milterd_start "$RUN/i.conf"
out=$(miltraw --timeout=5 "127.0.0.1:$P" <<EOF
O 2 0x3f 0x7f
READ
Q
EOF
)
like "$out" '^O \\0\\0\\0\\x02' "inet:HOST:PORT works; a v2 offer gets a v2 answer"
milterd_stop
# --- macros reach the plugins (sl_conn_macro) --------------------------------------
P=$(free_port)
write_conf "$RUN/mac.conf" <<EOF
milter_listen inet:$P@127.0.0.1
plugin test_hooks hook=mail action=declined macros="i,{auth_authen},j,{daemon_port},{client_port},{nosuch}"
EOF
milterd_start "$RUN/mac.conf"
miltraw --timeout=5 "127.0.0.1:$P" >/dev/null <<EOF
O 6 0x1ff 0x1fffff
READ
D C j=mta.example {daemon_port}=25
C client.example 4 4321 192.0.2.7
READ
D M i=QID123 {auth_authen}=alice
M <s@example.org>
READ
Q
EOF
log=$(cat "$RUN/milterd.log")
like "$log" 'macro i=QID123' "MAIL-stage macro i from the MTA"
like "$log" 'macro \{auth_authen\}=alice' "{auth_authen} from the MTA"
like "$log" 'macro j=mta\.example' "a CONNECT-stage macro is still seen at MAIL"
like "$log" 'macro \{daemon_port\}=25' "{daemon_port}"
like "$log" 'macro \{client_port\}=4321' "made up from the CONNECT event when not sent"
like "$log" 'macro \{nosuch\}=\(none\)' "unknown macro: NULL"
milterd_stop
# --- sluice-milter-client (the MTA side) against sluice-milterd -------------------
P=$(free_port)
write_conf "$RUN/cl.conf" <<EOF
milter_listen inet:$P@127.0.0.1
plugin test_hooks name=edit hook=data_post action=edit edit=add,insert,change,delete,body,addrcpt,delrcpt,chgfrom,quarantine
plugin test_hooks name=no hook=rcpt action=deny match=bad text="no bad"
EOF
milterd_start "$RUN/cl.conf"
printf 'Subject: hi\nX-Delete-Me: x\n\nbody\n' >"$RUN/msg"
out=$("$SLUICE_BUILD/sluice-milter-client" -s "inet:$P@127.0.0.1" -c 192.0.2.1 \
	-H c.test -f a@b.test -r bad@sluice.test -r removed@sluice.test "$RUN/msg")
rc=$?
is "$rc" 0 "client: message accepted (exit 0)"
like "$out" 'rcpt <bad@sluice\.test>: reject 550 5\.7\.1 no bad' "client: the refused recipient"
like "$out" $'eom: chgheader Subject\\[1\\]: changed by test_hooks\neom: chgheader X-Delete-Me\\[1\\] \\(delete\\)\neom: insheader \\[0\\] X-Test-Inserted: first\neom: addheader X-Test-Added: yes\neom: chgfrom <changed@sluice\\.test>\neom: delrcpt <removed@sluice\\.test>\neom: addrcpt <added@sluice\\.test>\neom: replbody [0-9]+ bytes\neom: quarantine test_hooks quarantine\neom: continue' "client: every edit, in milterd's order, then continue"
out=$("$SLUICE_BUILD/sluice-milter-client" -s "inet:$P@127.0.0.1" -r bad@sluice.test "$RUN/msg")
is "$?" 2 "client: every recipient refused: exit 2"
out=$("$SLUICE_BUILD/sluice-milter-client" -s "inet:$P@127.0.0.1" -n 200 -j 4 "$RUN/msg")
like "$out" '^sessions=200 ok=200 rejected=0 tempfailed=0 errors=0 ' "client: 200 concurrent sessions all accepted"
milterd_stop
# --- inet6: ------------------------------------------------------------------------
P=$(free_port)
write_conf "$RUN/v6.conf" <<EOF
milter_listen inet6:$P@::1
EOF
milterd_start "$RUN/v6.conf"
out=$(miltraw --timeout=5 "::1:$P" <<EOF
O 6 0x1ff 0x1fffff
READ
Q
EOF
)
like "$out" '^O \\0\\0\\0\\x06' "inet6:PORT@::1 listens and negotiates"
milterd_stop
done_testing
