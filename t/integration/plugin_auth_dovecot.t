#!/bin/bash
# plugin auth/dovecot against a real, private Dovecot (t/dovecot.sh): its
# passwd-file user (SHA512-CRYPT) authenticates with PLAIN and LOGIN; a
# wrong password and an unknown user get 535; an instance whose socket
# does not exist gets 454 with a log line; Dovecot stopped while sluice
# runs gives 454 (logged), started again 235; a relative socket= stops
# start-up.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

[ -f "$SLUICE_BUILD/plugins/auth/dovecot.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/auth/dovecot.so)"
command -v dovecot >/dev/null 2>&1 && command -v doveadm >/dev/null 2>&1 ||
	skip_all "Dovecot not installed (dovecot-core)"
[ "$(id -u)" = 0 ] || skip_all "t/dovecot.sh must run as root"
command -v swaks >/dev/null 2>&1 || skip_all "swaks not installed"

plan 13
setup_run
DV=$RUN/dovecot
DVSH=$SLUICE_SRC/t/dovecot.sh

on_exit() {
	local rc=$?
	if [ -f "$DV/run/master.pid" ]; then
		"$DVSH" stop "$DV" >/dev/null 2>&1
		[ "$rc" != 0 ] && [ -f "$DV/dovecot.log" ] &&
			diag "last lines of the Dovecot log:" &&
			diag "$(tail -n 20 "$DV/dovecot.log")"
	fi
	(exit "$rc")
	_t_cleanup
}
trap on_exit EXIT

"$DVSH" create "$DV" "$(free_port)" && "$DVSH" adduser "$DV" bob 'pw 123' ||
	{
		echo "Bail out! cannot set up Dovecot in $DV"
		exit 1
	}
"$DVSH" start "$DV" 20 >"$RUN/dovecot.start" 2>&1 || {
	diag "$(cat "$RUN/dovecot.start")"
	echo "Bail out! Dovecot did not start"
	exit 1
}

write_conf "$RUN/dv.conf" <<EOF
local_domains sluice.test
auth_require_tls no
auth_failure_delay 0
auth_ip_max_failures 0
auth_max_failures 10
plugin auth/dovecot socket=$DV/run/auth-client service=smtp timeout=5s
plugin queue/discard
EOF
sluice_start "$RUN/dv.conf"

is "$(auth_plain bob 'pw 123')" "235 2.7.0 Authentication successful" "Dovecot says OK: 235"
out=$(swaks_to --to x@sluice.test --auth LOGIN --auth-user bob --auth-password 'pw 123')
like "$out" '<- +235 ' "AUTH LOGIN, passed on to Dovecot as PLAIN: 235"
is "$(auth_plain bob wrong)" "535 5.7.8 Authentication credentials invalid" "wrong password: Dovecot FAIL, 535 5.7.8"
is "$(auth_plain nobody 'pw 123')" "535 5.7.8 Authentication credentials invalid" "unknown user: 535"
grep -q 'plugin=auth/dovecot verdict=deny reason=bad-credentials' "$RUN/smtpd.log"
ok $? "the FAIL is logged"

# --- Dovecot goes away while sluice runs, then comes back -----------------------
"$DVSH" stop "$DV"
is "$(auth_plain bob 'pw 123')" "454 4.7.0 Temporary authentication failure" "Dovecot stopped: 454 4.7.0"
grep -q "plugin=auth/dovecot verdict=denysoft socket=$DV/run/auth-client error=\"connect: " "$RUN/smtpd.log"
ok $? "... with a log line naming the socket"
"$DVSH" start "$DV" 20 >"$RUN/dovecot.start" 2>&1
ok $? "Dovecot started again"
is "$(auth_plain bob 'pw 123')" "235 2.7.0 Authentication successful" "... and authentication works again"
sluice_stop

# --- a socket that does not exist -------------------------------------------------
write_conf "$RUN/none.conf" <<EOF
local_domains sluice.test
auth_require_tls no
plugin auth/dovecot socket=$RUN/no-such-socket
plugin queue/discard
EOF
sluice_start "$RUN/none.conf"
is "$(auth_plain bob 'pw 123')" "454 4.7.0 Temporary authentication failure" "socket absent: 454 4.7.0"
grep -q "plugin=auth/dovecot verdict=denysoft socket=$RUN/no-such-socket error=\"connect: No such file or directory\"" "$RUN/smtpd.log"
ok $? "... logged: connect: No such file or directory"
sluice_stop

# --- start-up errors -------------------------------------------------------------
conf_fails "relative socket=" "7: plugin auth/dovecot: socket: needs an absolute path" <<EOF
local_domains sluice.test
plugin auth/dovecot socket=run/auth-client
EOF
