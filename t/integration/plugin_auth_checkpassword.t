#!/bin/bash
# plugin auth/checkpassword with t/checkpassword.py as the program (the
# DJB interface): a good password (exit 0 through the /bin/true
# subprogram) gets 235, a bad one (exit 1) 535, exit 111 454, another exit
# 454 with a log line, a program that hangs is killed after timeout= (its
# process group too) and gets 454; the program got "user\0password\0
# timestamp\0" on descriptor 3, /bin/true as its subprogram, descriptors
# 0-3 only and an environment of PATH, TCPLOCALIP and TCPREMOTEIP;
# credentials over the interface's 512 bytes are refused without running
# it; a missing or relative program= stops start-up.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

[ -f "$SLUICE_BUILD/plugins/auth/checkpassword.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/auth/checkpassword.so)"
[ -x /usr/bin/python3 ] || skip_all "t/checkpassword.py needs /usr/bin/python3"

plan 21
setup_run
CP=$RUN/cp
mkdir -p "$CP"
PROG=$SLUICE_SRC/t/checkpassword.py

mode() { echo "$1" >"$CP/mode"; }
calls() { [ -f "$CP/got" ] && wc -l <"$CP/got" || echo 0; }

write_conf "$RUN/cp.conf" <<EOF
local_domains sluice.test
auth_require_tls no
auth_failure_delay 0
auth_ip_max_failures 0
auth_max_failures 10
plugin auth/checkpassword program="$PROG $CP" timeout=1500ms
plugin queue/discard
EOF
sluice_start "$RUN/cp.conf"

mode check
is "$(auth_plain alice s3cret)" "235 2.7.0 Authentication successful" "exit 0 (the subprogram ran): 235"
got=$(tail -n 1 "$CP/got")
like "$got" '^user=alice pass=s3cret ts=<[0-9]+\.[0-9A-F]+@mx\.sluice\.test> ' \
	"descriptor 3: user\\0password\\0timestamp\\0, the timestamp <time.id@host>"
like "$got" ' sub=/bin/true ' "the subprogram argument is /bin/true"
like "$got" ' fds=0,1,2,3 ' "descriptors 0-3 only"
like "$got" ' env=PATH,TCPLOCALIP,TCPREMOTEIP$' "a clean environment: PATH, TCPLOCALIP, TCPREMOTEIP"

is "$(auth_plain alice wrong)" "535 5.7.8 Authentication credentials invalid" "exit 1: 535 5.7.8"
is "$(calls)" 2 "the program ran for the wrong password too"

mode tempfail
is "$(auth_plain alice s3cret)" "454 4.7.0 Temporary authentication failure" "exit 111: 454 4.7.0"
grep -q 'plugin=auth/checkpassword verdict=denysoft (exit 111)' "$RUN/smtpd.log"
ok $? "... logged"

mode crash
is "$(auth_plain alice s3cret)" "454 4.7.0 Temporary authentication failure" "exit 42: 454"
grep -q "plugin=auth/checkpassword verdict=denysoft error=\"$PROG exited 42\"" "$RUN/smtpd.log"
ok $? "... with a log line giving the exit status"

mode hang
is "$(auth_plain alice s3cret)" "454 4.7.0 Temporary authentication failure" "a hanging program: 454 after timeout="
grep -q "plugin=auth/checkpassword verdict=denysoft error=\"$PROG timed out after 1500 ms; killed\"" "$RUN/smtpd.log"
ok $? "... logged: timed out, killed"
gone() { ! pgrep -f "$PROG $CP" >/dev/null; }
wait_for gone
ok $? "... and no checkpassword process is left"

mode check
long=$(head -c 600 /dev/zero | tr '\0' x)
before=$(calls)
r=$(smtp_chat <<EOF | grep -E '^[0-9]{3} ' | sed -n 4p
EHLO client.test
AUTH PLAIN
$(sasl_plain "" alice "$long")
QUIT
EOF
)
is "$r" "535 5.7.8 Authentication credentials invalid" \
	"credentials over 512 bytes (sent after a 334): 535"
grep -q 'plugin=auth/checkpassword verdict=deny reason=too-long' "$RUN/smtpd.log"
ok $? "... logged as too long"
is "$(calls)" "$before" "... without running the program"
sluice_stop

# --- start-up errors -----------------------------------------------------------
P="7: plugin auth/checkpassword"
conf_fails "missing program" "$P: program: $RUN/nonexistent: No such file or directory" <<EOF
local_domains sluice.test
plugin auth/checkpassword program=$RUN/nonexistent
EOF
conf_fails "relative program" "$P: program: needs an absolute path" <<EOF
local_domains sluice.test
plugin auth/checkpassword program=checkpassword
EOF
