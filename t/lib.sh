#!/bin/bash
# t/lib.sh - the TAP harness of the sluice integration tests.
#
# A test is a bash script (#!/bin/bash) that does
#     . "$SLUICE_SRC/t/lib.sh"
# with SLUICE_SRC (source tree) and SLUICE_BUILD (build tree) in the
# environment, as "make check" sets them.
#
# TAP:      plan N | ok STATUS DESC | is GOT WANT DESC | like GOT ERE DESC
#           unlike GOT ERE DESC | skip_all REASON | diag TEXT | done_testing
# run dir:  setup_run         -> $RUN (0755), removed at exit unless KEEP=1
# daemon:   free_port | write_conf FILE <body | sluice_start CONF | sluice_stop
#           milterd_start CONF | milterd_stop | miltraw TARGET <script
# clients:  swaks_to ARGS... | reply_to CMD DIALOGUE (swaks')
#           smtp_chat [--port P] [--raw] ... <script
#           smtp_message FROM RCPT... | final_reply <chat
#           reply_to CMD SWAKS-DIALOGUE | xclient_session ADDR <script
#           sluice_restart NAME <body | sluice_conf_error <body
# peers:    smtpfake LISTEN MODE DIR [CODES] (t/smtpfake.py, a next hop)
#           pf_milter_start (a private Postfix calling a milter)
#           sasl_plain AUTHZID USER PASSWORD | auth_plain USER PASSWORD
# config:   conf_fails DESC REGEX <body
# postfix:  pf_milterd_why | pf_milterd_setup | pf_milterd_chain <body
# misc:     maildir_count DIR | wait_for CMD... | track_pid PID
#           log_mark | log_after MARK | log_has TEXT ERE DESC
#           log_lacks TEXT ERE DESC | udp_silent PORT
#           reply_codes | final_reply (smtp_chat output on stdin)
#           after_received_by FILE HOST | stop_at_exit LOG CMD...
# TLS:      tls_make_ca DIR | tls_make_cert DIR NAME CN [ca]
#
# Hermetic by default: when run as root and unshare(1) works, every test
# re-executes itself in a private network namespace whose only interface is
# loopback (SLUICE_NETNS=0 turns that off).  Every loop is bounded in time;
# processes are stopped by the PID we started, never by name.

# ---------------------------------------------------------------- netns
if [ "${SLUICE_IN_NETNS:-}" != 1 ] && [ "${SLUICE_NETNS:-1}" != 0 ] &&
	[ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 &&
	command -v ip >/dev/null 2>&1 &&
	unshare --net true >/dev/null 2>&1; then
	export SLUICE_IN_NETNS=1
	exec unshare --net "$BASH" "$0" "$@"
fi
if [ "${SLUICE_IN_NETNS:-}" = 1 ]; then
	ip link set lo up 2>/dev/null
fi

: "${SLUICE_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${SLUICE_BUILD:=$SLUICE_SRC/build}"
export SLUICE_SRC SLUICE_BUILD

if [ -x /usr/bin/python3 ]; then
	SLUICE_PYTHON=/usr/bin/python3
else
	SLUICE_PYTHON=python3
fi

_T_NUM=0
_T_FAILED=0
_T_PLAN=
_T_PIDS=()
RUN=${RUN:-}

# ---------------------------------------------------------------- TAP
plan() {
	_T_PLAN=$1
	echo "1..$1"
}

# done_testing: print the plan at the end when no "plan N" was given
done_testing() {
	if [ -z "$_T_PLAN" ]; then
		_T_PLAN=$_T_NUM
		echo "1..$_T_NUM"
	fi
}

diag() {
	local line
	while IFS= read -r line; do
		echo "# $line" >&2
	done <<<"$*"
}

# note: like diag, on stdout (shown by prove -v only)
note() {
	local line
	while IFS= read -r line; do
		echo "# $line"
	done <<<"$*"
}

skip_all() {
	echo "1..0 # SKIP $*"
	_T_PLAN=0
	exit 0
}

# skip N REASON: N passing "skip" results (for conditional blocks)
skip() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		_T_NUM=$((_T_NUM + 1))
		echo "ok $_T_NUM # skip $*"
	done
}

# _t_where: "file line N" of the test line that called the assertion
_t_where() {
	local i=1
	while [ "${BASH_SOURCE[$i]:-}" = "${BASH_SOURCE[0]}" ]; do
		i=$((i + 1))
	done
	echo "${BASH_SOURCE[$i]:-?} line ${BASH_LINENO[$((i - 1))]:-?}"
}

# ok STATUS DESC: STATUS 0 passes
ok() {
	local st=$1
	shift
	_T_NUM=$((_T_NUM + 1))
	if [ "$st" = 0 ]; then
		echo "ok $_T_NUM - $*"
		return 0
	fi
	echo "not ok $_T_NUM - $*"
	_T_FAILED=$((_T_FAILED + 1))
	diag "  Failed test '$*'"
	diag "  at $(_t_where)"
	return 1
}

is() {
	local got=$1 want=$2
	shift 2
	if [ "$got" = "$want" ]; then
		ok 0 "$@"
		return 0
	fi
	ok 1 "$@"
	diag "         got: '$got'
    expected: '$want'"
	return 1
}

like() {
	local got=$1 re=$2
	shift 2
	if [[ $got =~ $re ]]; then
		ok 0 "$@"
		return 0
	fi
	ok 1 "$@"
	diag "                  '$got'
    doesn't match '$re'"
	return 1
}

unlike() {
	local got=$1 re=$2
	shift 2
	if ! [[ $got =~ $re ]]; then
		ok 0 "$@"
		return 0
	fi
	ok 1 "$@"
	diag "                  '$got'
          matches '$re'"
	return 1
}

# ---------------------------------------------------------------- processes
track_pid() { _T_PIDS+=("$1"); }

# stop_pid PID [TIMEOUT_S] [SIGNAL]: signal a process we started, wait for
# it, SIGKILL it (and its direct children) after TIMEOUT_S.
stop_pid() {
	local pid=$1 t=${2:-10} sig=${3:-TERM} i
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || {
		wait "$pid" 2>/dev/null
		return 0
	}
	{
		kill -"$sig" "$pid"
		for ((i = 0; i < t * 50; i++)); do
			kill -0 "$pid" || break
			sleep 0.02
		done
		if kill -0 "$pid"; then
			pkill -KILL -P "$pid"
			kill -KILL "$pid"
		fi
		wait "$pid"
	} 2>/dev/null
	return 0
}

_t_cleanup() {
	local rc=$? pid san
	trap - EXIT
	for pid in "${_T_PIDS[@]}"; do
		stop_pid "$pid" 10
	done
	if [ -n "$RUN" ] && [ -f "$RUN/smtpd.log" ]; then
		# sanitizer reports from any daemon we ran fail the test
		san=$(grep -E -m 20 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$RUN/smtpd.log" 2>/dev/null)
		if [ -n "$san" ]; then
			diag "sanitizer report in $RUN/smtpd.log:"
			diag "$san"
			[ "$rc" = 0 ] && rc=99
		fi
	fi
	if [ -n "$_T_PLAN" ] && [ "$_T_PLAN" != 0 ] && [ "$_T_NUM" != "$_T_PLAN" ]; then
		diag "Looks like you planned $_T_PLAN tests but ran $_T_NUM."
		[ "$rc" = 0 ] && rc=255
	fi
	if [ "$_T_FAILED" != 0 ] && [ "$rc" = 0 ]; then
		rc=$((_T_FAILED > 254 ? 254 : _T_FAILED))
	fi
	if [ "$rc" != 0 ] && [ -n "$RUN" ] && [ -s "$RUN/smtpd.log" ]; then
		diag "last lines of $RUN/smtpd.log:"
		diag "$(tail -n 40 "$RUN/smtpd.log")"
	fi
	if [ -n "$RUN" ] && [ -f "$RUN/ports" ]; then
		# release our port reservations
		while IFS= read -r pid; do
			rm -f "$pid"
		done <"$RUN/ports"
	fi
	if [ -n "$RUN" ] && [ -d "$RUN" ]; then
		if [ "${KEEP:-0}" = 1 ]; then
			diag "KEEP=1: run directory kept in $RUN"
		else
			rm -rf "$RUN"
		fi
	fi
	exit "$rc"
}

# setup_run: private 0755 run directory $RUN (under /run when writable,
# else $TMPDIR), with $RUN/var as the state directory.  Installs the exit
# handler that stops every tracked process and removes $RUN.
setup_run() {
	local parent
	for parent in "${SLUICE_TEST_TMP:-}" /run "${TMPDIR:-/tmp}"; do
		[ -n "$parent" ] && [ -d "$parent" ] && [ -w "$parent" ] || continue
		RUN=$(mktemp -d -p "$parent" sluice-test.XXXXXX 2>/dev/null) && break
	done
	[ -n "$RUN" ] && [ -d "$RUN" ] || {
		echo "Bail out! cannot create a run directory"
		exit 1
	}
	chmod 755 "$RUN"
	mkdir -p "$RUN/var/spool"
	: >"$RUN/smtpd.log"
	export RUN
	trap _t_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# ---------------------------------------------------------------- daemon
# free_port: a free TCP port on 127.0.0.1.  Chosen below the kernel's
# ephemeral range (so no client connection can take it meanwhile), checked
# with bind(), and reserved with an O_EXCL file so that parallel tests
# never get the same one.
free_port() {
	"$SLUICE_PYTHON" - "${SLUICE_PORT_DIR:-/tmp/sluice-test-ports}" "${RUN:-}" <<'EOF'
import os, random, socket, sys, time
d, run = sys.argv[1], sys.argv[2]
try:
    os.makedirs(d, mode=0o1777, exist_ok=True)
except OSError:
    d = None
try:
    lo = int(open('/proc/sys/net/ipv4/ip_local_port_range').read().split()[0])
except Exception:
    lo = 32768
lo = max(lo, 12000)
for _ in range(500):
    p = random.randrange(10000, lo)
    if d:
        f = os.path.join(d, str(p))
        try:
            if time.time() - os.stat(f).st_mtime > 3600:
                os.unlink(f)  # stale reservation of a killed run
        except OSError:
            pass
        try:
            os.close(os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except OSError:
            continue
    s = socket.socket()
    try:
        s.bind(('127.0.0.1', p))
    except OSError:
        continue
    finally:
        s.close()
    if d and run and os.path.isdir(run):
        with open(os.path.join(run, "ports"), "a") as f:
            f.write("%s\n" % os.path.join(d, str(p)))
    print(p)
    sys.exit(0)
sys.exit(1)
EOF
}

# write_conf FILE: the config body from stdin, after the common prelude
write_conf() {
	local f=$1
	if [ -z "${PORT:-}" ]; then
		PORT=$(free_port) || {
			echo "Bail out! no free port"
			exit 1
		}
	fi
	export PORT
	{
		echo "# written by t/lib.sh write_conf"
		echo "hostname mx.sluice.test"
		echo "state_dir $RUN/var"
		echo "plugin_dir $SLUICE_BUILD/plugins $SLUICE_BUILD/t/plugins"
		echo "listen 127.0.0.1:$PORT"
		cat
	} >"$f"
}

# wait_smtp PORT [TIMEOUT_S] [HOST]: true once a server sends "220 ..."
# (after QUIT, and the server's close, of that probe session)
wait_smtp() {
	local port=$1 t=${2:-10} host=${3:-127.0.0.1} i line
	for ((i = 0; i < t * 50; i++)); do
		if { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then
			line=
			IFS= read -r -t 2 line <&3
			printf 'QUIT\r\n' >&3 2>/dev/null
			# read up to the server's close (1 s a line at most): it
			# releases the probe's connection slot before closing, so
			# the caller's own connections never race the probe's
			# (max_connections_per_ip)
			while IFS= read -r -t 1 _ <&3; do :; done
			exec 3<&- 3>&-
			[[ $line == 220* ]] && return 0
		fi
		[ -n "${SLUICE_PID:-}" ] && ! kill -0 "$SLUICE_PID" 2>/dev/null &&
			return 1
		sleep 0.02
	done
	return 1
}

# sluice_start CONF: start the daemon in the foreground (background job),
# wait for its banner on $PORT; on failure show its log and exit 1.
sluice_start() {
	local conf=$1
	[ -x "$SLUICE_BUILD/sluice-smtpd" ] || {
		echo "Bail out! $SLUICE_BUILD/sluice-smtpd not built"
		exit 1
	}
	"$SLUICE_BUILD/sluice-smtpd" -f -c "$conf" 2>>"$RUN/smtpd.log" &
	SLUICE_PID=$!
	track_pid "$SLUICE_PID"
	if ! wait_smtp "$PORT" 10; then
		diag "sluice-smtpd (pid $SLUICE_PID, port $PORT) did not answer with 220 within 10 s"
		diag "$(tail -n 40 "$RUN/smtpd.log")"
		exit 1
	fi
	return 0
}

# _daemon_start NAME CONF: start NAME (sluice-smtpd or sluice-milterd) in
# the foreground (background job), logging to $RUN/smtpd.log or
# milterd.log, and wait until it logs "NAME started"; sets _DAEMON_PID.  On
# failure show its log and exit 1.
_daemon_start() {
	local name=$1 conf=$2 log=$RUN/${1#sluice-}.log from i
	: >>"$log"
	from=$(wc -l <"$log")
	"$SLUICE_BUILD/$name" -f -c "$conf" 2>>"$log" &
	_DAEMON_PID=$!
	track_pid "$_DAEMON_PID"
	for ((i = 0; i < 500; i++)); do
		tail -n +"$((from + 1))" "$log" |
			grep -q "$name started" && return 0
		kill -0 "$_DAEMON_PID" 2>/dev/null || break
		sleep 0.02
	done
	diag "$name (pid $_DAEMON_PID) did not start with $conf within 10 s"
	diag "$(tail -n 40 "$log")"
	exit 1
}

# milterd_start CONF: start sluice-milterd and wait until it logs that it
# started.
milterd_start() {
	_daemon_start sluice-milterd "$1"
	MILTERD_PID=$_DAEMON_PID
}

# sluice_restart_quiet CONF: (re)start sluice-smtpd and wait for its
# "started" line rather than a probe session like sluice_start's, which
# would reach hosted milters (and their back-off) too.
sluice_restart_quiet() {
	sluice_stop
	_daemon_start sluice-smtpd "$1"
	SLUICE_PID=$_DAEMON_PID
}

milterd_stop() {
	[ -n "${MILTERD_PID:-}" ] || return 0
	stop_pid "$MILTERD_PID" 10 TERM
	MILTERD_PID=
}

# miltraw [--timeout=S] TARGET <script: t/miltraw.py, the raw MTA side.
miltraw() {
	"$SLUICE_PYTHON" "$SLUICE_SRC/t/miltraw.py" "$@"
}

# sluice_stop: SIGTERM, bounded wait, SIGKILL after 10 s.
sluice_stop() {
	[ -n "${SLUICE_PID:-}" ] || return 0
	stop_pid "$SLUICE_PID" 10 TERM
	SLUICE_PID=
}

# ---------------------------------------------------------------- clients
swaks_to() {
	swaks --server 127.0.0.1 --port "$PORT" --timeout 10 "$@" 2>&1
}

# smtp_chat [--port P] [--raw] [--timeout S] [--bind ADDR] [--no-banner]:
# the script on stdin, see t/smtpchat.py.
smtp_chat() {
	local port=${PORT:-}
	local args=()
	while [ $# -gt 0 ]; do
		case $1 in
		--port)
			port=$2
			shift 2
			;;
		*)
			args+=("$1")
			shift
			;;
		esac
	done
	"$SLUICE_PYTHON" "$SLUICE_SRC/t/smtpchat.py" --port "$port" "${args[@]}"
}

# sasl_plain AUTHZID USER PASSWORD: a SASL PLAIN response (RFC 4616),
# base64, for "AUTH PLAIN" lines
sasl_plain() {
	printf '%s\0%s\0%s' "$1" "$2" "$3" | base64 -w0
}

# auth_plain USER PASSWORD: the reply to "AUTH PLAIN <response>" after EHLO
auth_plain() {
	smtp_chat <<EOF | grep -E '^[0-9]{3} ' | sed -n 3p
EHLO client.test
AUTH PLAIN $(sasl_plain "" "$1" "$2")
QUIT
EOF
}

# conf_fails DESC REGEX <body: "sluice-smtpd -t" on a config of the
# write_conf prelude (5 lines) and the body must exit 1, with an error
# reading "CONF:REGEX"; two test results
conf_fails() {
	local desc=$1 re=$2 conf=$RUN/conf_fails.conf err rc
	write_conf "$conf"
	err=$("$SLUICE_BUILD/sluice-smtpd" -t -c "$conf" 2>&1 >/dev/null)
	rc=$?
	is "$rc" 1 "$desc: -t exits 1"
	like "$err" "^$conf:$re" "$desc: the error reads CONF:$re"
}

# ---------------------------------------------------------------- postfix
# sluice-milterd behind a private Postfix (t/pf-instance.sh), for the
# milter-mode cases of a plugin's test:
#     if why=$(pf_milterd_why); then skip N "$why"; else
#         pf_milterd_setup; pf_milterd_chain <<<"plugin NAME ..."; ...; fi

# pf_milterd_why: prints why Postfix cannot run here and succeeds, or fails
pf_milterd_why() {
	if [ "$(id -u)" != 0 ]; then
		echo "sluice-milterd behind Postfix needs root"
	elif ! { command -v postfix && command -v postconf && command -v swaks; } >/dev/null 2>&1; then
		echo "postfix or swaks not installed"
	else
		return 1
	fi
}

# pf_milterd_setup: create and start a private Postfix in $RUN/pf whose
# smtpd_milters is sluice-milterd on a free port; sets PF (the script), PFD
# (its directory), INBOX (the Maildir it delivers user@sluice.test to),
# SPORT (its SMTP port) and MPORT (the milter port).  Stopped at exit
# (stop_at_exit: the test's only one).
pf_milterd_setup() {
	PF=$SLUICE_SRC/t/pf-instance.sh
	PFD=$RUN/pf
	INBOX=$PFD/mail/inbox
	SPORT=$(free_port) && MPORT=$(free_port) || {
		echo "Bail out! no free port"
		exit 1
	}
	stop_at_exit "$PFD/maillog" "$PF" stop "$PFD"
	"$PF" create "$PFD" "$SPORT" maildir "inet:127.0.0.1:$MPORT" || {
		echo "Bail out! pf-instance.sh create failed"
		exit 1
	}
	"$PF" start "$PFD" 20 || {
		echo "Bail out! private Postfix did not start"
		exit 1
	}
}

# pf_milterd_chain: (re)start sluice-milterd on $MPORT with the write_conf
# prelude, milter_listen and the lines on stdin.  Sets MILTERD_PID: never
# call it in a pipe or $(...).
pf_milterd_chain() {
	milterd_stop
	{
		echo "milter_listen inet:$MPORT@127.0.0.1"
		cat
	} | write_conf "$RUN/milterd.conf"
	milterd_start "$RUN/milterd.conf"
}

# ---------------------------------------------------------------- misc
maildir_count() {
	local d=$1/new n=0 f
	[ -d "$d" ] || {
		echo 0
		return 0
	}
	for f in "$d"/*; do
		[ -e "$f" ] && n=$((n + 1))
	done
	echo "$n"
}

# log_mark: the line count of $RUN/smtpd.log now; log_after MARK: the
# lines logged after it
log_mark() { wc -l <"$RUN/smtpd.log"; }
log_after() { tail -n +"$(($1 + 1))" "$RUN/smtpd.log"; }

# log_has TEXT ERE DESC: one test result, passing when a line of TEXT (a
# log) matches ERE; log_lacks: when no line does
log_has() {
	grep -Eq -- "$2" <<<"$1"
	ok $? "$3" || diag "no line matches '$2'"
}
log_lacks() {
	! grep -Eq -- "$2" <<<"$1"
	ok $? "$3" || diag "$(grep -E -- "$2" <<<"$1")"
}

# nsd_start DIR: start the private NSD that "t/nsd.sh create DIR PORT"
# made, stopped at exit; sets NSD_PID.  Bails out if it does not start.
nsd_start() {
	"$SLUICE_SRC/t/nsd.sh" start "$1" || {
		echo "Bail out! nsd did not start"
		exit 1
	}
	NSD_PID=$("$SLUICE_SRC/t/nsd.sh" pid "$1")
	track_pid "$NSD_PID"
}

# udp_silent PORT: a UDP socket on 127.0.0.1:PORT that never answers (a
# DNS server that times out), in the background, tracked; 300 s at most.
# Returns once the socket is bound (before, a query would be refused by
# the kernel at once: an error, not a timeout), or 1 after 10 s.
udp_silent() {
	local flag=$RUN/udp_silent.$1 i
	rm -f "$flag"
	"$SLUICE_PYTHON" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
open(sys.argv[2], "w").close()
time.sleep(300)' "$1" "$flag" &
	track_pid $!
	for ((i = 0; i < 200; i++)); do
		[ -e "$flag" ] && return 0
		sleep 0.05
	done
	diag "udp_silent: port $1 not bound within 10 s"
	return 1
}

# wait_for CMD...: retry CMD until it succeeds, for WAIT_TIMEOUT s (10)
wait_for() {
	local t=${WAIT_TIMEOUT:-10} i
	for ((i = 0; i < t * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# raw_escape: stdin bytes -> one line for "smtp_chat --raw" (\xHH escapes)
raw_escape() {
	"$SLUICE_PYTHON" -c 'import sys
d = sys.stdin.buffer.read()
sys.stdout.write("".join(chr(b) if 0x20 <= b < 0x7f and b != 0x5c
                         else "\\x%02x" % b for b in d))'
}

# strip_received FILE: the file without its first header when that is the
# Received: header our daemon prepends (with its continuation lines)
strip_received() {
	"$SLUICE_PYTHON" -c 'import sys
d = open(sys.argv[1], "rb").read()
if d[:9].lower() == b"received:":
    i = 0
    while True:
        j = d.find(b"\n", i)
        if j < 0:
            i = len(d)
            break
        i = j + 1
        if d[i:i + 1] not in (b" ", b"\t"):
            break
    d = d[i:]
sys.stdout.buffer.write(d)' "$1"
}

# first_received FILE: the first Received: header, unfolded, on one line
first_received() {
	"$SLUICE_PYTHON" -c 'import re, sys
d = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
m = re.match(r"(?i)(received:.*(?:\n[ \t].*)*)", d)
print(re.sub(r"\s*\n[ \t]+", " ", m.group(1)) if m else "")' "$1"
}

# newest_file DIR: the most recent file of DIR (e.g. a Maildir's new/)
newest_file() {
	ls -1t "$1" 2>/dev/null | head -n 1 | sed "s|^|$1/|"
}

# final_reply: smtp_chat output on stdin -> the reply to the message's
# final dot (the first complete reply after 354)
final_reply() {
	awk 'f && /^[0-9][0-9][0-9] / { print; exit } /^354 / { f = 1 }'
}

# reply_codes: smtp_chat output on stdin -> the code of every complete
# reply, space-separated ("!closed"/"!timeout" become closed/timeout)
reply_codes() {
	awk '/^[0-9][0-9][0-9]( |$)/ { printf "%s%s", sep, substr($0, 1, 3); sep = " " }
	     /^!(closed|timeout)$/ { printf "%s%s", sep, substr($0, 2); sep = " " }
	     END { print "" }'
}

# ---------------------------------------------------------------- TLS
# tls_make_ca DIR: a test CA, DIR/ca.crt + DIR/ca.key
tls_make_ca() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sluice test CA" \
		-keyout "$1/ca.key" -out "$1/ca.crt" 2>/dev/null
}

# tls_make_cert DIR NAME CN [SIGNED_BY_CA=no]: DIR/NAME.crt + DIR/NAME.key
# for CN (also its DNS subjectAltName); self-signed, or signed by DIR/ca.*
tls_make_cert() {
	local d=$1 n=$2 cn=$3 ca=${4:-no}
	if [ "$ca" = no ]; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$cn" \
			-addext "subjectAltName=DNS:$cn" \
			-keyout "$d/$n.key" -out "$d/$n.crt" 2>/dev/null
	else
		openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" \
			-addext "subjectAltName=DNS:$cn" \
			-keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null &&
			openssl x509 -req -in "$d/$n.csr" -days 2 -CA "$d/ca.crt" \
				-CAkey "$d/ca.key" -CAcreateserial -copy_extensions copy \
				-out "$d/$n.crt" 2>/dev/null
	fi
}

# xclient_session ADDR <script: a session whose client is ADDR (EHLO and
# XCLIENT ADDR=ADDR from a trusted_proxies address, then the script);
# prints one line per reply (the last line of a multi-line one) and
# !closed: line 1 the banner, 2 EHLO, 3 XCLIENT's, 4 the script's first
# command's
xclient_session() {
	{
		echo "EHLO proxy.test"
		echo "XCLIENT ADDR=$1"
		cat
	} | smtp_chat --timeout 20 | awk '/^[0-9][0-9][0-9]( |$)/ || /^!closed/'
}

# reply_to CMD DIALOGUE: in swaks' output DIALOGUE, the server's reply
# (its last line) to the client line CMD ("MAIL FROM:<a@b>", "DATA", ".")
reply_to() {
	awk -v c="$1" '
	found && /^ *<(-|\*\*) / {
		sub(/^ *<(-|\*\*) +/, "")
		if (substr($0, 4, 1) != "-") { print; exit }
		next
	}
	/^ *-> / { l = $0; sub(/^ *-> /, "", l); if (l == c) found = 1 }' <<<"$2"
}

# pf_milter_start: pf_milterd_setup when it can run here (root, postfix,
# swaks); returns 1, starting nothing, otherwise.
pf_milter_start() {
	pf_milterd_why >/dev/null && return 1
	pf_milterd_setup
}

# smtp_message FROM RCPT...: one message ("Subject: test", one body line)
# through smtp_chat, then NOOP (the session goes on?) and QUIT; prints the
# dialogue.  SMTP_CHAT_ARGS (an array) adds smtp_chat options, e.g.
# (--bind 127.0.0.10).
smtp_message() {
	local from=$1 r
	shift
	{
		echo "EHLO client.example"
		echo "MAIL FROM:<$from>"
		for r in "$@"; do
			echo "RCPT TO:<$r>"
		done
		echo "DATA"
		echo "Subject: test"
		echo ""
		echo "hello"
		echo "."
		echo "NOOP"
		echo "QUIT"
	} | smtp_chat "${SMTP_CHAT_ARGS[@]}"
}

# smtpfake LISTEN MODE DIR [CODES]: start t/smtpfake.py (a scripted next
# hop: see there) in the background, tracked, and wait until it listens;
# sets SMTPFAKE_PID.  A running one is stopped first.
smtpfake() {
	local dir=$3
	[ -n "${SMTPFAKE_PID:-}" ] && stop_pid "$SMTPFAKE_PID" 5
	rm -rf "$dir"
	mkdir -p "$dir"
	"$SLUICE_PYTHON" "$SLUICE_SRC/t/smtpfake.py" "$@" 2>>"$dir.log" &
	SMTPFAKE_PID=$!
	track_pid "$SMTPFAKE_PID"
	WAIT_TIMEOUT=10 wait_for test -f "$dir/ready" || {
		echo "Bail out! t/smtpfake.py $2 did not start"
		exit 1
	}
}

# after_received_by FILE HOST: FILE after the Received: header (with its
# continuation lines) that says "by HOST", e.g. "mx.sluice.test (sluice)"
# for ours, whatever next hops added before it
after_received_by() {
	"$SLUICE_PYTHON" - "$1" "$2" <<'EOF'
import re, sys
d = open(sys.argv[1], "rb").read()
m = re.search(rb"(?m)^Received: [^\n]*\n(?:[ \t][^\n]*\n)*?[ \t]by "
              + re.escape(sys.argv[2].encode()) + rb"[^\n]*\n(?:[ \t][^\n]*\n)*", d)
sys.stdout.buffer.write(d[m.end():] if m else b"NO SUCH RECEIVED HEADER\n")
EOF
}

# sluice_restart NAME: (re)start sluice-smtpd with $RUN/NAME.conf: the
# write_conf prelude, $SLUICE_CONF_BASE (lines every config of the test
# shares), then stdin
sluice_restart() {
	local body
	body=$(cat)
	sluice_stop
	unset PORT
	write_conf "$RUN/$1.conf" <<EOF
${SLUICE_CONF_BASE:-}
$body
EOF
	sluice_start "$RUN/$1.conf"
}

# sluice_conf_error <body: what "sluice-smtpd -t" says (stderr) about a
# config of the write_conf prelude, $SLUICE_CONF_BASE and stdin
sluice_conf_error() {
	local body
	body=$(cat)
	unset PORT
	write_conf "$RUN/conf-error.conf" <<EOF
${SLUICE_CONF_BASE:-}
$body
EOF
	"$SLUICE_BUILD/sluice-smtpd" -t -c "$RUN/conf-error.conf" 2>&1 >/dev/null
}

# stop_at_exit LOG CMD...: at exit, run CMD (it stops a peer the test
# started, e.g. "$SLUICE_SRC/t/pf-instance.sh" stop DIR) and, when the
# test failed, show the last lines of the peer's LOG; then the usual
# cleanup.  After setup_run; one per test.
stop_at_exit() {
	_T_EXIT_LOG=$1
	shift
	_T_EXIT_CMD=("$@")
	trap _t_stop_cleanup EXIT
}

_t_stop_cleanup() {
	local rc=$?
	"${_T_EXIT_CMD[@]}" >/dev/null 2>&1
	if [ "$rc" != 0 ] && [ -f "$_T_EXIT_LOG" ]; then
		diag "last lines of $_T_EXIT_LOG:"
		diag "$(tail -n 30 "$_T_EXIT_LOG")"
	fi
	(exit "$rc")
	_t_cleanup
}
