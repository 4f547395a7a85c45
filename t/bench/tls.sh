#!/bin/bash
# t/bench/tls.sh - "make bench", part 2: TLS sessions per second (not a test).
#
# Sessions of t/bench/tls_load.py (banner, EHLO, STARTTLS + handshake +
# EHLO, QUIT; a full handshake each time, RSA-2048 certificate) against
#   sluice     sluice-smtpd + queue/discard: plain, STARTTLS, and implicit
#              TLS on a "listen smtps" port
#   postfix    a private Postfix instance (t/pf-instance.sh) with the same
#              certificate: plain and STARTTLS
# at every concurrency of BENCH_TLS_CONC, BENCH_TLS_SESSIONS each.  Per run:
# sessions per second (client wall time) and the server's CPU per session
# (its whole process tree, /proc utime+stime before/after).  The client is
# Python (asyncio + OpenSSL) sharing the machine, so sessions/s is a lower
# bound; CPU ms per session is the figure to compare.
# Knobs: BENCH_TLS_SESSIONS=2000 BENCH_TLS_CONC="1 10 50"
#        BENCH_TLS_SERVERS="sluice postfix"
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
export SLUICE_SRC
. "$SLUICE_SRC/t/lib.sh" || exit 1

N=${BENCH_TLS_SESSIONS:-2000}
CONC=${BENCH_TLS_CONC:-1 10 50}
SERVERS=${BENCH_TLS_SERVERS-sluice postfix}
PS="$SLUICE_PYTHON $SLUICE_SRC/t/bench/procstat.py"
LOAD="$SLUICE_PYTHON $SLUICE_SRC/t/bench/tls_load.py"
PF=$SLUICE_SRC/t/pf-instance.sh

setup_run
PF_DIR=
tls_cleanup() {
	local rc=$?
	[ -n "$PF_DIR" ] && "$PF" stop "$PF_DIR" >/dev/null 2>&1
	(exit $rc)
	_t_cleanup
}
trap tls_cleanup EXIT
mkdir -p "$RUN/tls"
tls_make_cert "$RUN/tls" mx mx.sluice.test || {
	echo "bench: openssl could not make a certificate" >&2
	exit 1
}
ROWS=()

# run NAME MODE PORT PID C
run() {
	local name=$1 mode=$2 port=$3 pid=$4 c=$5 cpu0 cpu1 out rate ok failed cpum
	cpu0=$($PS cpu "$pid")
	out=$(timeout 600 $LOAD --port "$port" --mode "$mode" -n "$N" -c "$c")
	cpu1=$($PS cpu "$pid")
	rate=$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$out")
	ok=$(sed -n 's/^ok=\([0-9]*\).*/\1/p' <<<"$out")
	failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$out")
	cpum=$(awk -v a="$cpu0" -v b="$cpu1" -v n="${ok:-0}" \
		'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "-" }')
	ROWS+=("| $name | $mode | $c | ${ok:-0} | ${failed:-?} | ${rate:--} | $cpum |")
	echo "tls bench: $name $mode c=$c: $out cpu_ms/session=$cpum" >&2
}

for srv in $SERVERS; do
	case $srv in
	sluice)
		unset PORT
		P2=$(free_port)
		write_conf "$RUN/tls.conf" <<EOT
local_domains sluice.test
max_connections 20000
max_connections_per_ip 20000
log_level warning
listen smtps 127.0.0.1:$P2
tls_cert $RUN/tls/mx.crt
tls_key $RUN/tls/mx.key
plugin queue/discard
EOT
		sluice_start "$RUN/tls.conf"
		for c in $CONC; do
			run sluice plain "$PORT" "$SLUICE_PID" "$c"
			run sluice starttls "$PORT" "$SLUICE_PID" "$c"
			run sluice smtps "$P2" "$SLUICE_PID" "$c"
		done
		sluice_stop
		;;
	postfix)
		command -v postconf >/dev/null || {
			ROWS+=("| postfix | | | | | skipped: no postfix | |")
			continue
		}
		PF_DIR=$RUN/pf
		PFP=$(free_port)
		"$PF" create "$PF_DIR" "$PFP" discard >/dev/null || exit 1
		postconf -c "$PF_DIR/etc" -e \
			"smtpd_tls_cert_file = $RUN/tls/mx.crt" \
			"smtpd_tls_key_file = $RUN/tls/mx.key" \
			"smtpd_tls_security_level = may" \
			"smtpd_client_connection_count_limit = 0" \
			"smtpd_client_connection_rate_limit = 0" || exit 1
		touch -d '-1 min' "$PF_DIR/etc/main.cf"
		"$PF" start "$PF_DIR" >/dev/null || exit 1
		PFPID=$("$PF" pid "$PF_DIR")
		for c in $CONC; do
			run postfix plain "$PFP" "$PFPID" "$c"
			run postfix starttls "$PFP" "$PFPID" "$c"
		done
		"$PF" stop "$PF_DIR" >/dev/null 2>&1
		PF_DIR=
		;;
	*) echo "bench: unknown TLS server $srv" >&2 ;;
	esac
done

echo
echo "TLS sessions ($N per run, $(nproc) CPUs, client: t/bench/tls_load.py)"
echo
echo "| server | mode | conc | ok | failed | sessions/s | server CPU ms/session |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
