#!/bin/bash
# t/bench/dns.sh - "make bench", part 3: the issue-6 plugins against a local
# DNS server (not a test).
#
# sluice-smtpd + queue/discard driven by Postfix's smtp-source (one message
# per connection unless BENCH_DNS_REUSE=1, so every connection runs every
# connection-level check; make bench then runs "none" and "dns" at c=100
# with connections reused, where the per-message checks weigh most), in
# three configurations:
#   none          no plugins but queue/discard (the baseline)
#   dns           dnsbl (three zones, one of them an allow list), rhsbl
#                 (sender, HELO and client name), fcrdns, helo policy=strict,
#                 resolvable_fromhost, bogus_bounce, uribl (two zones; the
#                 message carries three URLs), karma (LMDB store) and naughty,
#                 all against a private NSD (t/nsd.sh) on loopback
#   dns-nocache   the same with the resolver's cache and dnsbl's verdict
#                 cache off: every message asks NSD again (about 15 queries)
# The client is always 127.0.0.1 and nothing is listed, so every message is
# accepted: the cost measured is the checking, not the rejecting.
# earlytalker is left out: its pre-banner wait is a deliberate delay.
# Per run: messages per second (smtp-source wall time), CPU ms per message
# of sluice-smtpd and of NSD (/proc utime+stime before/after).  The issue's
# target: "dns" at most 20% fewer messages per second than "none" at c=100.
# Client and server share this machine's CPUs, so one run can be off by
# 10-20%: at each concurrency the rows run back to back (none, dns, ...),
# for BENCH_DNS_ROUNDS rounds, and the summary compares the medians.
# Knobs: BENCH_DNS_MSGS=20000 BENCH_DNS_CONC="1 10 100" BENCH_DNS_REUSE=0
#        BENCH_DNS_ROWS="none dns dns-nocache" BENCH_SIZE=1000
#        BENCH_DNS_ROUNDS=3
#        BENCH_DNS_EXTRA="directive value" (added to every row's config)
#        BENCH_DNS_PLUGINS="plugin ...<newline>plugin ..." (instead of the list
#        below, e.g. to measure one plugin alone)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
export SLUICE_SRC
. "$SLUICE_SRC/t/lib.sh" || exit 1

N=${BENCH_DNS_MSGS:-20000}
CONC=${BENCH_DNS_CONC:-1 10 100}
REUSE=${BENCH_DNS_REUSE:-0}
ROWSET=${BENCH_DNS_ROWS-none dns dns-nocache}
ROUNDS=${BENCH_DNS_ROUNDS:-3}
SIZE=${BENCH_SIZE:-1000}
PS="$SLUICE_PYTHON $SLUICE_SRC/t/bench/procstat.py"
NSD=$SLUICE_SRC/t/nsd.sh

die() {
	echo "dns bench: $*" >&2
	exit 1
}
[ -x "$SLUICE_BUILD/sluice-smtpd" ] || die "$SLUICE_BUILD/sluice-smtpd not built (make)"
command -v smtp-source >/dev/null || die "smtp-source missing (package postfix)"
command -v nsd >/dev/null || die "nsd missing (make deps)"

setup_run
NSD_UP=
dns_cleanup() {
	local rc=$?
	[ -n "$NSD_UP" ] && "$NSD" stop "$RUN/nsd" >/dev/null 2>&1
	(exit $rc)
	_t_cleanup
}
trap dns_cleanup EXIT

# ---------------------------------------------------------------- DNS
NSD_PORT=$(free_port)
"$NSD" create "$RUN/nsd" "$NSD_PORT"
zone() { # NAME: SOA + NS, then stdin
	{
		"$NSD" hdr "$1" 300 300
		cat
	} >"$RUN/nsd/$1.zone"
	"$NSD" zone "$RUN/nsd" "$1" "$RUN/nsd/$1.zone"
}
# Lists that list nothing the benchmark sends (every answer is NXDOMAIN,
# as for most clients of a real list), one entry each to be a real zone.
for z in bl1.bench.test bl2.bench.test wl.bench.test rhs.bench.test \
	uri1.bench.test uri2.bench.test; do
	printf '2.0.0.127 A 127.0.0.2\ntest A 127.0.0.2\n' | zone "$z"
done
"$NSD" start "$RUN/nsd" || die "nsd did not start"
NSD_UP=1
NSD_PID=$("$NSD" pid "$RUN/nsd")
track_pid "$NSD_PID"

# ---------------------------------------------------------------- message
{
	printf 'From: Alice <alice@sluice.test>\nTo: bob@sluice.test\n'
	printf 'Subject: offers from http://www.shop.example.test/\n'
	printf 'Message-ID: <bench@sluice.test>\n\n'
	printf 'See https://news.example.test/today and http://198.51.100.7/x\n'
	awk -v n="$SIZE" 'BEGIN { l = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
		for (s = 0; s < n; s += length(l) + 1) print l }'
} >"$RUN/msg.eml"

PLUGINS_DNS=${BENCH_DNS_PLUGINS:-'plugin dnsbl zones=bl1.bench.test*2,bl2.bench.test,wl.bench.test*-2 threshold=2
plugin rhsbl zones=rhs.bench.test
plugin fcrdns
plugin helo policy=strict
plugin resolvable_fromhost bad_networks=192.0.2.0/24
plugin bogus_bounce
plugin uribl zones=uri1.bench.test:0xfe,uri2.bench.test
plugin karma
plugin naughty'}

start_row() { # NAME
	local extra= plugins=
	case $1 in
	none) ;;
	dns) plugins=$PLUGINS_DNS ;;
	dns-nocache)
		plugins=${PLUGINS_DNS/threshold=2/threshold=2 cache_size=0}
		extra='dns_cache_size 0'
		;;
	*) die "unknown row $1" ;;
	esac
	unset PORT
	write_conf "$RUN/$1.conf" <<EOF
local_domains sluice.test
max_connections 20000
max_connections_per_ip 20000
idle_timeout 10m
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s
${BENCH_DNS_EXTRA:-}
$extra
$plugins
plugin queue/discard
EOF
	sluice_start "$RUN/$1.conf" || die "sluice-smtpd did not start with $RUN/$1.conf"
	SRV_PID=$SLUICE_PID
	SRV_PORT=$PORT
}

ROWS=()
declare -A RATES CPUS NCPUS
run_one() { # NAME C ROUND
	local name=$1 c=$2 round=$3 n=$N cpu0 cpu1 ncpu0 ncpu1 t0 t1 secs rate cpum ncpum status=ok dflag=
	((n < c)) && n=$c
	[ "$REUSE" = 1 ] && dflag=-d
	cpu0=$($PS cpu "$SRV_PID")
	ncpu0=$($PS cpu "$NSD_PID")
	t0=$EPOCHREALTIME
	if ! timeout 600 smtp-source $dflag -s "$c" -m "$n" -M localhost.sluice.test \
		-f alice@sluice.test -t bob@sluice.test -F "$RUN/msg.eml" \
		"127.0.0.1:$SRV_PORT" >"$RUN/source.out" 2>&1; then
		status="smtp-source failed: $(head -c 200 "$RUN/source.out" | tr '\n' ' ')"
	fi
	t1=$EPOCHREALTIME
	cpu1=$($PS cpu "$SRV_PID")
	ncpu1=$($PS cpu "$NSD_PID")
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	rate=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0) ? n / s : 0 }')
	cpum=$(awk -v n="$n" -v c="$((cpu1 - cpu0))" 'BEGIN { printf "%.3f", c / n }')
	ncpum=$(awk -v n="$n" -v c="$((ncpu1 - ncpu0))" 'BEGIN { printf "%.3f", c / n }')
	if [ "$status" = ok ]; then
		RATES[$name,$c]+=" $rate"
		CPUS[$name,$c]+=" $cpum"
		NCPUS[$name,$c]+=" $ncpum"
	fi
	ROWS+=("| $name | $c | $round | $n | $secs | $rate | $cpum | $ncpum | $status |")
	echo "dns bench: round $round: $name c=$c: $rate msgs/s, sluice $cpum ms CPU/msg, nsd $ncpum ($status)" >&2
}

median() { # numbers...: the middle one (the lower middle of an even count)
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# The rows compared run back to back at each concurrency, so that a slow
# spell of the machine hits both rather than one.
for ((round = 1; round <= ROUNDS; round++)); do
	for c in $CONC; do
		for r in $ROWSET; do
			start_row "$r"
			# one message first: warms nothing that matters, but shows
			# the configuration accepts mail (a refusal would void
			# the row)
			if ! smtp-source -m 1 -M localhost.sluice.test -f alice@sluice.test \
				-t bob@sluice.test -F "$RUN/msg.eml" "127.0.0.1:$SRV_PORT" \
				>"$RUN/check.out" 2>&1 || [ -s "$RUN/check.out" ]; then
				die "$r: the check message was not accepted: $(head -c 300 "$RUN/check.out"; tail -n 5 "$RUN/smtpd.log")"
			fi
			run_one "$r" "$c" "$round"
			sluice_stop
		done
	done
done

echo
echo "## sluice-smtpd with the issue-6 plugins against a local NSD ($(nproc 2>/dev/null || echo '?') CPUs, client on the same machine)"
echo
echo "$N messages of about $SIZE bytes per run, $([ "$REUSE" = 1 ] && echo 'several per connection' || echo 'one per connection'); CPU is ms per message."
echo
echo "| row | conc | round | msgs | secs | msgs/s | sluice CPU ms/msg | nsd CPU ms/msg | status |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Medians over the rounds that ran to the end ($ROUNDS rounds):"
echo
echo "| row | conc | runs | msgs/s | sluice CPU ms/msg | nsd CPU ms/msg |"
echo "|---|---:|---:|---:|---:|---:|"
declare -A RATE
for r in $ROWSET; do
	for c in $CONC; do
		[ -n "${RATES[$r,$c]:-}" ] || continue
		# shellcheck disable=SC2086 # word lists on purpose
		RATE[$r,$c]=$(median ${RATES[$r,$c]})
		# shellcheck disable=SC2086
		echo "| $r | $c | $(wc -w <<<"${RATES[$r,$c]}") | ${RATE[$r,$c]} | $(median ${CPUS[$r,$c]}) | $(median ${NCPUS[$r,$c]}) |"
	done
done
echo
for c in $CONC; do
	for r in $ROWSET; do
		[ "$r" = none ] && continue
		[ -n "${RATE[none,$c]:-}" ] && [ -n "${RATE[$r,$c]:-}" ] || continue
		awk -v a="${RATE[$r,$c]}" -v b="${RATE[none,$c]}" -v r="$r" -v c="$c" 'BEGIN {
			if (b <= 0) exit
			x = a / b
			printf "%s / none at c=%s (medians): %.2f of the messages per second (%.0f%% %s)%s\n", r, c, x, (x <= 1 ? 1 - x : x - 1) * 100, x <= 1 ? "fewer" : "more",
				(c == 100 && r == "dns") ? (x >= 0.8 ? " - meets the target (at most 20% fewer)" : " - MISSES the target (at most 20% fewer)") : ""
		}'
	done
done
