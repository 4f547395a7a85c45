#!/bin/bash
# t/bench/run.sh - "make bench": throughput and memory, side by side (not a test).
#
#   sluice-smtpd + queue/discard, sluice-smtpd + queue/maildir, Postfix's
#   smtp-sink (the do-nothing limit) and a private Postfix instance
#   (t/pf-instance.sh, delivering to discard(8)), each driven by Postfix's
#   smtp-source at every concurrency of BENCH_CONC.  For each run: messages
#   per second (smtp-source wall time), CPU per message of the server's whole
#   process tree (utime+stime from /proc/PID/stat, before/after; Postfix
#   after its queue drained), peak RSS of the tree (sampled every 20 ms).
#   Then the memory per idle connection: BENCH_IDLE connections that read
#   the banner and stay idle; the daemon's RSS before and after.
#
#   Milters: the same Postfix with smtpd_milters pointing at sluice-milterd
#   (no plugins) or at t/milter/null_milter (libmilter, answers "continue"
#   to everything), same message count; their CPU is added to Postfix's
#   (the milter's own share is in the status column).  Then milter sessions
#   per second without an MTA: sluice-milter-client -n N -j CONC (one
#   Postfix-shaped session with one message each) against sluice-milterd
#   and against null_milter.
#
#   Hosting a third-party milter (issue 4; target: hosting costs under 10%
#   of the direct path), opendkim in signing mode (t/peers.sh, a fresh one
#   per row; mail From: alice@sluice.test, so that every message is signed):
#     postfix-opendkim          Postfix -> opendkim (smtpd_milters) directly
#     postfix-milterd-opendkim  Postfix -> sluice-milterd -> opendkim, with
#                               "plugin milter socket=SPEC default_action=tempfail"
#     smtpd-opendkim            sluice-smtpd with that plugin line before
#                               queue/discard
#   Forwarding (issue 5): smtpd-forward-postfix is sluice-smtpd with
#   "plugin queue/smtp-forward host=127.0.0.1:PORT" (defaults: XCLIENT,
#   pipelining) in front of the same private Postfix (discard(8)); its CPU
#   is both trees (each one's share in the status column), compared with
#   the postfix row (smtp-source -> Postfix directly) at the end.
#
#   The CPU of each row is the whole tree: Postfix and/or sluice and
#   opendkim (each part's own share in the status column); all three send
#   BENCH_PF_MSGS messages.  Before its runs each row sends one message
#   that is delivered into a Maildir (Postfix: transport_maps sends
#   dkim-check@sluice.test to virtual(8), also in discard mode; smtpd: a
#   twin sluice-smtpd with queue/maildir) and prints whether it carries
#   opendkim's DKIM-Signature (and Mail::DKIM's verdict when installed);
#   with BENCH_PF_MODE=maildir the Postfix rows also count the signed
#   copies of every run.  The hosted rows need $SLUICE_BUILD/plugins/milter.so
#   (else "skipped: plugin milter not built"); without the opendkim package
#   all three say so.  The end of the report compares each hosted row with
#   postfix-opendkim, per concurrency (msgs/s and CPU ms/msg ratios).
#
# Builds nothing (but null_milter, see below): uses $SLUICE_BUILD (default
# build/).  Knobs (environment):
#   BENCH_MSGS=10000 BENCH_PF_MSGS=2000 (Postfix and the opendkim rows are
#   slower) BENCH_SIZE=1000 BENCH_CONC="1 10 100" BENCH_IDLE=1000
#   BENCH_REUSE=1 (smtp-source -d: several messages per connection)
#   BENCH_PF_MODE=discard|maildir
#   BENCH_SERVERS="sluice-discard sluice-discard-1loop sluice-maildir smtp-sink
#                  postfix postfix-milterd postfix-null-milter
#                  postfix-opendkim postfix-milterd-opendkim smtpd-opendkim
#                  smtpd-forward-postfix"
#   (sluice-discard-1loop: loop_threads 1, like single-process smtp-sink,
#   leaving the other core to smtp-source on a 2-CPU machine)
#   BENCH_MILTER_SESSIONS=10000 BENCH_MILTER_CONC=$BENCH_CONC
#   BENCH_MILTERS="milterd null-milter" (sluice-milter-client targets; "" = none)
# null_milter is built on demand (make target $SLUICE_BUILD/t/milter/null_milter,
# needs libmilter-dev); without it its rows say so.
# Runs inside a private network namespace when root (see t/lib.sh).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
export SLUICE_SRC
. "$SLUICE_SRC/t/lib.sh" || exit 1
. "$SLUICE_SRC/t/peers.sh" || exit 1

MSGS=${BENCH_MSGS:-10000}
PF_MSGS=${BENCH_PF_MSGS:-2000}
SIZE=${BENCH_SIZE:-1000}
CONC=${BENCH_CONC:-1 10 100}
IDLE=${BENCH_IDLE:-1000}
REUSE=${BENCH_REUSE:-1}
PF_MODE=${BENCH_PF_MODE:-discard}
SERVERS=${BENCH_SERVERS-sluice-discard sluice-discard-1loop sluice-maildir smtp-sink postfix postfix-milterd postfix-null-milter postfix-opendkim postfix-milterd-opendkim smtpd-opendkim smtpd-forward-postfix}
MILTER_N=${BENCH_MILTER_SESSIONS:-10000}
MILTER_CONC=${BENCH_MILTER_CONC:-$CONC}
MILTERS=${BENCH_MILTERS-milterd null-milter}
PS="$SLUICE_PYTHON $SLUICE_SRC/t/bench/procstat.py"
PF=$SLUICE_SRC/t/pf-instance.sh

die() {
	echo "bench: $*" >&2
	exit 1
}
[ -x "$SLUICE_BUILD/sluice-smtpd" ] || die "$SLUICE_BUILD/sluice-smtpd not built (make)"
command -v smtp-source >/dev/null || die "smtp-source missing (package postfix)"
command -v smtp-sink >/dev/null || die "smtp-sink missing (package postfix)"
MILTERD=$SLUICE_BUILD/sluice-milterd
MCLIENT=$SLUICE_BUILD/sluice-milter-client
NULLM=$SLUICE_BUILD/t/milter/null_milter
MILTER_SO=$SLUICE_BUILD/plugins/milter.so
[ -x "$MILTERD" ] || die "$MILTERD not built (make)"
[ -x "$MCLIENT" ] || die "$MCLIENT not built (make)"
if [ ! -x "$NULLM" ] && [ -f "$SLUICE_SRC/t/milter/null_milter.c" ]; then
	# a test program, not part of "make all": build just this one
	make -s -C "$SLUICE_SRC" --no-print-directory BUILD="$SLUICE_BUILD" \
		"$NULLM" >&2 || echo "bench: could not build $NULLM (libmilter-dev?)" >&2
fi

setup_run
PF_DIR=
MIL_PID=
bench_cleanup() {
	local rc=$?
	[ -n "$PF_DIR" ] && "$PF" stop "$PF_DIR" >/dev/null 2>&1
	[ -n "$MIL_PID" ] && stop_milter
	peer_stop_all # opendkim (SIGKILL: libmilter is slow to leave on TERM)
	(exit $rc)
	_t_cleanup
}
trap bench_cleanup EXIT

# many connections: raise the descriptor limit for us and the servers
hard=$(ulimit -Hn)
want=$((IDLE * 2 + 1024))
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
	ulimit -Hn "$want" 2>/dev/null || want=$hard
fi
ulimit -n "$want" 2>/dev/null || ulimit -n "$hard"

NCPU=$(nproc 2>/dev/null || echo '?')
ROWS=()
HWM=()
declare -A RATE CPUMS
MROWS=()
declare -A MRATE

# ---------------------------------------------------------------- servers
SRV_PID=
SRV_PORT=

start_sluice() { # QUEUE_PLUGIN_LINE [EXTRA_DIRECTIVE]
	unset PORT
	write_conf "$RUN/bench.conf" <<EOF
local_domains sluice.test
max_connections 20000
max_connections_per_ip 20000
idle_timeout 10m
${2:-}
$1
EOF
	sluice_start "$RUN/bench.conf"
	SRV_PID=$SLUICE_PID
	SRV_PORT=$PORT
}

# start_milter milterd|null-milter [CONF_LINE]: a milter on a fresh port ->
# MIL_PID, MIL_PORT (1 on failure, with MIL_ERR set); CONF_LINE is added to
# sluice-milterd's config (e.g. a plugin line)
start_milter() {
	local i log
	MIL_PORT=$(free_port) || die "no free port"
	MIL_ERR=
	case $1 in
	milterd)
		unset PORT
		write_conf "$RUN/milterd.conf" <<EOF
max_connections 20000
max_connections_per_ip 20000
milter_listen inet:$MIL_PORT@127.0.0.1
${2:-}
EOF
		log=$RUN/milterd.log
		: >"$log"
		"$MILTERD" -f -c "$RUN/milterd.conf" 2>>"$log" &
		;;
	null-milter)
		[ -x "$NULLM" ] || {
			MIL_ERR="$NULLM not built"
			return 1
		}
		log=$RUN/null_milter.log
		: >"$log"
		"$NULLM" -p "inet:$MIL_PORT@127.0.0.1" 2>>"$log" &
		;;
	*) die "unknown milter $1" ;;
	esac
	MIL_PID=$!
	MIL_NAME=$1
	track_pid "$MIL_PID"
	for ((i = 0; i < 500; i++)); do
		if { exec 3<>"/dev/tcp/127.0.0.1/$MIL_PORT"; } 2>/dev/null; then
			exec 3<&- 3>&-
			return 0
		fi
		kill -0 "$MIL_PID" 2>/dev/null || break
		sleep 0.02
	done
	MIL_ERR="$1 did not listen on $MIL_PORT: $(tail -n 3 "$log" | tr '\n' ' ')"
	stop_milter
	return 1
}

stop_milter() {
	case $MIL_NAME in
	null-milter) stop_pid "$MIL_PID" 10 USR1 ;; # libmilter needs ~5 s for TERM
	*) stop_pid "$MIL_PID" 10 TERM ;;
	esac
	MIL_PID=
}

# ---------------------------------------------------------------- opendkim rows
# The bench message's From: is the envelope sender (smtp-source writes
# "From: <SENDER>"): @sluice.test is what the test opendkim signs.
DKIM_FROM=alice@sluice.test
DKIM_RCPT=dkim-check@sluice.test # the sanity message's recipient
DKIM_CHECKS=()                   # one line per row, for the report
declare -A DKIM_OK               # row -> 1 when its signing check passed
DKIM_PID=

# start_opendkim: opendkim in signing mode (t/peers.sh) -> DKIM_SPEC (its
# socket spec as peers.sh gives it, inet:PORT@127.0.0.1), DKIM_PID; else 1
# with SRV_SKIP set
start_opendkim() {
	local rc
	peer_opendkim_start sign
	rc=$?
	case $rc in
	0)
		DKIM_SPEC=$PEER_OPENDKIM
		DKIM_PID=$PEER_OPENDKIM_PID
		return 0
		;;
	2) SRV_SKIP=$PEER_WHY ;;
	*) SRV_SKIP="opendkim did not start: $PEER_WHY" ;;
	esac
	return 1
}

stop_opendkim() {
	[ -n "${DKIM_PID:-}" ] && peer_stop opendkim-sign
	DKIM_PID=
}

# pf_milter_spec SPEC: a sendmail-style milter spec in Postfix's syntax
# (inet:PORT@HOST -> inet:HOST:PORT; unix:/path is the same in both)
pf_milter_spec() {
	local a
	case $1 in
	inet:*@*)
		a=${1#inet:}
		echo "inet:${a#*@}:${a%%@*}"
		;;
	inet6:*@*)
		a=${1#inet6:}
		echo "inet:[${a#*@}]:${a%%@*}"
		;;
	*) echo "$1" ;;
	esac
}

# start_postfix MILTERS [dkim]: the private Postfix on a fresh port ->
# PF_DIR, PF_PID, SRV_PORT.  With "dkim", mail to $DKIM_RCPT goes to
# virtual(8) (the Maildir $PF_DIR/mail/inbox/) even in discard mode.
start_postfix() {
	SRV_PORT=$(free_port) || die "no free port"
	PF_DIR=$RUN/pf
	rm -rf "$PF_DIR"
	"$PF" create "$PF_DIR" "$SRV_PORT" "$PF_MODE" "$1" || die "postfix create failed"
	if [ "${2:-}" = dkim ]; then
		postconf -c "$PF_DIR/etc" -e "transport_maps = inline:{$DKIM_RCPT=virtual:}" ||
			die "postconf failed"
		touch -d '-1 min' "$PF_DIR/etc/main.cf" # see t/pf-instance.sh
	fi
	"$PF" start "$PF_DIR" || die "postfix start failed"
	PF_PID=$("$PF" pid "$PF_DIR")
}

# dkim_check NAME MAILDIR: send one message From: $DKIM_FROM to the running
# server, wait (bounded) for it in MAILDIR/new, check opendkim's signature;
# one line on stderr and in DKIM_CHECKS; a failure also goes into SRV_NOTE
# (appended to the status of the row's runs)
dkim_check() {
	local name=$1 md=$2 f='' i sig tags res
	rm -f "$md/new/"* 2>/dev/null
	if ! timeout 60 smtp-source -s 1 -m 1 -l "$SIZE" -M bench.test \
		-f "$DKIM_FROM" -t "$DKIM_RCPT" "127.0.0.1:$SRV_PORT" >"$RUN/check.out" 2>&1; then
		res="FAILED: smtp-source: $(head -c 200 "$RUN/check.out" | tr '\n' ' ')"
	else
		for ((i = 0; i < 600; i++)); do
			f=$(find "$md/new" -type f 2>/dev/null | head -n 1)
			[ -n "$f" ] && break
			sleep 0.05
		done
		if [ -z "$f" ]; then
			res="FAILED: no copy in $md/new within 30 s"
		else
			# the signature header, unfolded
			sig=$(tr -d '\r' <"$f" | awk '/^$/ { exit }
				tolower($0) ~ /^dkim-signature:/ { on = 1; printf "%s", substr($0, 16); next }
				on && /^[ \t]/ { printf "%s", $0; next } { on = 0 }')
			# its tags a=, d=, s=
			tags=$(tr ';' '\n' <<<"$sig" | sed -n 's/^[[:space:]]*\([ads]=\)/\1/p' | tr '\n' ' ')
			if [[ " $tags" == *" d=sluice.test "* ]]; then
				res="signed (${tags% }"
				peer_dkim_verify "$f" >"$RUN/verify.out" 2>&1
				case $? in
				0) res="$res; Mail::DKIM: $(sed -n 's/^result: //p' "$RUN/verify.out" | head -n 1))" ;;
				2) res="$res; not verified: $PEER_WHY)" ;;
				*) res="$res; Mail::DKIM failed: $(head -c 120 "$RUN/verify.out" | tr '\n' ' '))" ;;
				esac
				[[ $res == *"Mail::DKIM: pass"* || $res == *"not verified:"* ]] ||
					res="FAILED: $res"
			else
				res="FAILED: no DKIM-Signature d=sluice.test in the delivered copy"
			fi
		fi
	fi
	rm -f "$md/new/"* 2>/dev/null
	DKIM_OK[$name]=1
	if [[ $res == FAILED* ]]; then
		SRV_NOTE="signing check $res"
		DKIM_OK[$name]=0
	fi
	DKIM_CHECKS+=("$name: $res")
	echo "bench: $name: signing check: $res" >&2
}

# Every server sets SRV_PID (the PIDs whose process trees are measured,
# comma-separated) and PARTS ("PID label" per component whose own CPU share
# goes into the status column); SRV_SKIP says why it did not start.
start_server() { # NAME
	SRV_SKIP=
	SRV_NOTE=
	SRV_LOG=
	PARTS=()
	case $1 in
	sluice-discard) start_sluice "plugin queue/discard" ;;
	sluice-discard-1loop) start_sluice "plugin queue/discard" "loop_threads 1" ;;
	sluice-maildir)
		rm -rf "$RUN/Maildir"
		mkdir -p "$RUN/Maildir"
		start_sluice "plugin queue/maildir path=$RUN/Maildir"
		;;
	smtp-sink)
		SRV_PORT=$(free_port)
		smtp-sink -u nobody -h mx.sluice.test "127.0.0.1:$SRV_PORT" 1024 2>>"$RUN/sink.log" &
		SRV_PID=$!
		track_pid "$SRV_PID"
		wait_smtp "$SRV_PORT" 10 || die "smtp-sink did not start"
		;;
	postfix | postfix-milterd | postfix-null-milter)
		local milters=
		if [ "$1" != postfix ]; then
			start_milter "${1#postfix-}" || {
				SRV_SKIP=$MIL_ERR
				return 0
			}
			milters="inet:127.0.0.1:$MIL_PORT"
			PARTS=("$MIL_PID milter alone")
		fi
		start_postfix "$milters"
		SRV_PID=$PF_PID
		[ -n "$milters" ] && SRV_PID="$PF_PID,$MIL_PID"
		;;
	postfix-opendkim)
		start_opendkim || return 0
		start_postfix "$(pf_milter_spec "$DKIM_SPEC")" dkim
		SRV_PID="$PF_PID,$DKIM_PID"
		PARTS=("$DKIM_PID opendkim")
		dkim_check "$1" "$PF_DIR/mail/inbox"
		;;
	postfix-milterd-opendkim)
		[ -f "$MILTER_SO" ] || {
			SRV_SKIP="plugin milter not built"
			return 0
		}
		start_opendkim || return 0
		start_milter milterd "plugin milter socket=$DKIM_SPEC default_action=tempfail" || {
			SRV_SKIP=$MIL_ERR
			stop_opendkim
			return 0
		}
		start_postfix "inet:127.0.0.1:$MIL_PORT" dkim
		SRV_PID="$PF_PID,$MIL_PID,$DKIM_PID"
		SRV_LOG=$RUN/milterd.log
		PARTS=("$MIL_PID sluice-milterd" "$DKIM_PID opendkim")
		dkim_check "$1" "$PF_DIR/mail/inbox"
		;;
	smtpd-opendkim)
		[ -f "$MILTER_SO" ] || {
			SRV_SKIP="plugin milter not built"
			return 0
		}
		start_opendkim || return 0
		local line="plugin milter socket=$DKIM_SPEC default_action=tempfail"
		# the signing check on a twin with queue/maildir (queue/discard
		# keeps nothing to look at), then the measured one
		rm -rf "$RUN/dkim-check"
		start_sluice "plugin queue/maildir path=$RUN/dkim-check" "$line"
		dkim_check "$1" "$RUN/dkim-check"
		sluice_stop
		start_sluice "plugin queue/discard" "$line"
		SRV_PID="$SLUICE_PID,$DKIM_PID"
		PARTS=("$SLUICE_PID sluice-smtpd" "$DKIM_PID opendkim")
		SRV_LOG=$RUN/smtpd.log
		;;
	smtpd-forward-postfix)
		start_postfix ""
		start_sluice "plugin queue/smtp-forward host=127.0.0.1:$SRV_PORT"
		SRV_PID="$SLUICE_PID,$PF_PID"
		SRV_PORT=$PORT
		PARTS=("$SLUICE_PID sluice-smtpd" "$PF_PID postfix")
		SRV_LOG=$RUN/smtpd.log
		;;
	*) die "unknown server $1" ;;
	esac
}

stop_server() { # NAME
	case $1 in
	sluice-*) sluice_stop ;;
	smtpd-opendkim)
		sluice_stop
		stop_opendkim
		;;
	smtp-sink) stop_pid "$SRV_PID" 5 ;;
	smtpd-forward-postfix)
		sluice_stop
		[ -n "$PF_DIR" ] && "$PF" stop "$PF_DIR" >/dev/null 2>&1
		PF_DIR=
		;;
	postfix*)
		[ -n "$PF_DIR" ] && "$PF" stop "$PF_DIR" >/dev/null 2>&1
		PF_DIR=
		[ -n "$MIL_PID" ] && stop_milter
		stop_opendkim
		;;
	esac
	SRV_PID=
}

# run_one NAME CONC: one smtp-source run against the running server
run_one() {
	local name=$1 c=$2 n=$MSGS cpu0 cpu1 t0 t1 peak secs rate cpum status=ok dflag=
	local warn0=0 warn1 from=alice@example.org p i shares='' signs='' slog0=0 slog1
	local -a pcpu0=()
	case $name in postfix* | smtpd-opendkim | smtpd-forward-*) n=$PF_MSGS ;; esac
	case $name in *-opendkim) from=$DKIM_FROM ;; esac
	((n < c)) && n=$c
	if [ -n "${SRV_SKIP:-}" ]; then
		ROWS+=("| $name | $c | $n | | | | | skipped: $SRV_SKIP |")
		return
	fi
	[ "$REUSE" = 1 ] && dflag=-d
	rm -f "$RUN/stop"
	$PS peak "$SRV_PID" "$RUN/stop" >"$RUN/peak" &
	local sampler=$!
	cpu0=$($PS cpu "$SRV_PID")
	for p in "${PARTS[@]}"; do pcpu0+=("$($PS cpu "${p%% *}")"); done
	case $name in postfix-*)
		warn0=$(grep -c -i 'warning: .*milter' "$PF_DIR/maillog" 2>/dev/null)
		;;
	esac
	# sluice's own complaints (error or worse, warning) during the run
	[ -n "${SRV_LOG:-}" ] && slog0=$(grep -c -E '\]: (emerg|alert|crit|error|warning): ' "$SRV_LOG")
	t0=$EPOCHREALTIME
	if ! timeout 600 smtp-source $dflag -s "$c" -m "$n" -l "$SIZE" -M bench.test \
		-f "$from" -t bob@sluice.test "127.0.0.1:$SRV_PORT" \
		>"$RUN/source.out" 2>&1; then
		status="smtp-source failed: $(head -c 200 "$RUN/source.out" | tr '\n' ' ')"
	fi
	t1=$EPOCHREALTIME
	case $name in postfix* | smtpd-forward-postfix)
		"$PF" drain "$PF_DIR" 120 || status="postfix queue did not drain"
		;;
	esac
	if [ "$name" = sluice-maildir ] && [ "$status" = ok ]; then
		# every accepted message is durable before the 250: count them
		local got
		got=$(find "$RUN/Maildir/new" -type f | wc -l)
		[ "$got" -ge "$n" ] || status="only $got of $n in the Maildir"
		rm -f "$RUN/Maildir/new/"*
	fi
	if [ "$PF_MODE" = maildir ] && [[ $name == postfix-*opendkim ]]; then
		# every delivered copy should carry opendkim's signature
		local got signed
		if [ "$status" = ok ]; then
			got=$(find "$PF_DIR/mail/inbox/new" -type f 2>/dev/null | wc -l)
			signed=$(find "$PF_DIR/mail/inbox/new" -type f -print0 2>/dev/null |
				xargs -0 -r grep -l -i '^DKIM-Signature:.*d=sluice\.test' | wc -l)
			signs="$signed of $got delivered copies signed"
			[ "$signed" -ge "$n" ] || status="only $signed of $n delivered copies signed ($got delivered)"
		fi
		find "$PF_DIR/mail/inbox/new" -type f -delete 2>/dev/null
	fi
	cpu1=$($PS cpu "$SRV_PID")
	i=0
	for p in "${PARTS[@]}"; do
		shares="$shares${shares:+, }${p#* } $(awk -v n="$n" -v c="$(($($PS cpu "${p%% *}") - pcpu0[i]))" 'BEGIN { printf "%.3f", c / n }') ms/msg"
		i=$((i + 1))
	done
	case $name in postfix-*)
		warn1=$(grep -c -i 'warning: .*milter' "$PF_DIR/maillog" 2>/dev/null)
		# a milter failure would tempfail mail (milter_default_action)
		if ((warn1 > warn0)); then
			status="$((warn1 - warn0)) milter warnings in the Postfix log: $(grep -i -m 1 'warning: .*milter' "$PF_DIR/maillog" | cut -c 1-160)"
		fi
		;;
	esac
	if [ -n "${SRV_LOG:-}" ]; then
		slog1=$(grep -c -E '\]: (emerg|alert|crit|error|warning): ' "$SRV_LOG")
		((slog1 > slog0)) && status="$((slog1 - slog0)) warnings/errors in ${SRV_LOG##*/}: $(grep -E '\]: (emerg|alert|crit|error|warning): ' "$SRV_LOG" | tail -n 1 | cut -c 1-160)"
	fi
	shares=$shares${signs:+${shares:+, }$signs}
	[ "$status" = ok ] && [ -n "$shares" ] && status="ok ($shares)"
	[ -n "${SRV_NOTE:-}" ] && status="$SRV_NOTE; $status"
	touch "$RUN/stop"
	wait "$sampler"
	peak=$(cat "$RUN/peak")
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	rate=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0) ? n / s : 0 }')
	cpum=$(awk -v n="$n" -v c="$((cpu1 - cpu0))" 'BEGIN { printf "%.3f", c / n }')
	RATE[$name,$c]=$rate
	CPUMS[$name,$c]=$cpum
	ROWS+=("| $name | $c | $n | $secs | $rate | $cpum | $peak | $status |")
	echo "bench: $name c=$c: $rate msgs/s, $cpum ms CPU/msg, peak RSS $peak KiB ($status)" >&2
}

for s in $SERVERS; do
	start_server "$s"
	for c in $CONC; do
		run_one "$s" "$c"
	done
	case $s in
	sluice-*) HWM[${#HWM[@]}]="$s VmHWM $($PS hwm "$SRV_PID") KiB" ;;
	postfix-milterd) [ -n "$MIL_PID" ] &&
		HWM[${#HWM[@]}]="sluice-milterd (behind Postfix) VmHWM $($PS hwm "$MIL_PID") KiB" ;;
	postfix-milterd-opendkim) [ -n "$MIL_PID" ] &&
		HWM[${#HWM[@]}]="sluice-milterd (behind Postfix, hosting opendkim) VmHWM $($PS hwm "$MIL_PID") KiB" ;;
	smtpd-forward-postfix) [ -n "${SLUICE_PID:-}" ] &&
		HWM[${#HWM[@]}]="sluice-smtpd (forwarding to Postfix) VmHWM $($PS hwm "$SLUICE_PID") KiB" ;;
	smtpd-opendkim) [ -n "${SLUICE_PID:-}" ] &&
		HWM[${#HWM[@]}]="sluice-smtpd (hosting opendkim) VmHWM $($PS hwm "$SLUICE_PID") KiB" ;;
	esac
	case $s in *-opendkim) [ -n "$DKIM_PID" ] &&
		HWM[${#HWM[@]}]="opendkim ($s) VmHWM $($PS hwm "$DKIM_PID") KiB" ;;
	esac
	stop_server "$s"
done

# ---------------------------------------------------------------- milter sessions
# sluice-milter-client replays one Postfix-shaped session (connect, helo,
# mail, rcpt, data, headers, body, end of message) per connection.
printf 'From: alice@example.org\r\nTo: bob@sluice.test\r\nSubject: bench\r\nMessage-Id: <bench@example.org>\r\n\r\n' >"$RUN/milter.eml"
awk -v n="$SIZE" 'BEGIN { l = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
	for (s = 0; s < n; s += length(l) + 2) printf "%s\r\n", l }' >>"$RUN/milter.eml"

run_milter_one() { # NAME CONC
	local name=$1 c=$2 n=$MILTER_N cpu0 cpu1 out rate secs cpum peak status=ok
	((n < c)) && n=$c
	rm -f "$RUN/stop"
	$PS peak "$MIL_PID" "$RUN/stop" >"$RUN/peak" &
	local sampler=$!
	cpu0=$($PS cpu "$MIL_PID")
	out=$(timeout 600 "$MCLIENT" -s "inet:$MIL_PORT@127.0.0.1" -n "$n" -j "$c" \
		"$RUN/milter.eml" 2>"$RUN/mclient.err" | tail -n 1)
	cpu1=$($PS cpu "$MIL_PID")
	touch "$RUN/stop"
	wait "$sampler"
	peak=$(cat "$RUN/peak")
	rate=$(sed -n 's/.*sessions_per_second=\([0-9.]*\).*/\1/p' <<<"$out")
	secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$out")
	[[ $out == *" ok=$n "* ]] && [[ $out == *" errors=0 "* ]] ||
		status="not all sessions ok: ${out:-no summary} $(head -c 200 "$RUN/mclient.err" | tr '\n' ' ')"
	rate=$(awk -v r="${rate:-0}" 'BEGIN { printf "%.0f", r }')
	cpum=$(awk -v n="$n" -v c="$((cpu1 - cpu0))" 'BEGIN { printf "%.3f", c / n }')
	MRATE[$name,$c]=$rate
	MROWS+=("| $name | $c | $n | ${secs:-} | $rate | $cpum | $peak | $status |")
	echo "bench: milter-client -> $name c=$c: $rate sessions/s, $cpum ms CPU/session, peak RSS $peak KiB ($status)" >&2
}

for m in $MILTERS; do
	if ! start_milter "$m"; then
		for c in $MILTER_CONC; do
			MROWS+=("| $m | $c | $MILTER_N | | | | | skipped: $MIL_ERR |")
		done
		continue
	fi
	for c in $MILTER_CONC; do
		run_milter_one "$m" "$c"
	done
	stop_milter
done

# ---------------------------------------------------------------- idle connections
idle_test() { # NAME -> sets IDLE_KIB, IDLE_OK
	local name=$1 before after i
	start_server "$name"
	# one session first, so that lazily created state is not counted
	smtp_chat --port "$SRV_PORT" <<<'QUIT' >/dev/null
	sleep 0.2
	before=$($PS rss "$SRV_PID")
	rm -f "$RUN/idle.ready" "$RUN/idle.stop"
	$PS idle "$SRV_PORT" "$IDLE" "$RUN/idle.ready" "$RUN/idle.stop" &
	local holder=$!
	for ((i = 0; i < 1200; i++)); do
		[ -f "$RUN/idle.ready" ] && break
		sleep 0.05
	done
	sleep 0.5
	after=$($PS rss "$SRV_PID")
	IDLE_OK=$(cat "$RUN/idle.ready" 2>/dev/null || echo 0)
	touch "$RUN/idle.stop"
	stop_pid "$holder" 10
	IDLE_KIB=$(awk -v a="$after" -v b="$before" -v n="$IDLE_OK" \
		'BEGIN { printf "%.2f", (n > 0) ? (a - b) / n : 0 }')
	IDLE_ROWS+=("| $name | $IDLE_OK of $IDLE | $before | $after | $IDLE_KIB |")
	echo "bench: $name: $IDLE_OK idle connections, RSS $before -> $after KiB, $IDLE_KIB KiB each" >&2
	stop_server "$name"
}
IDLE_ROWS=()
idle_test sluice-discard
SLUICE_IDLE_KIB=$IDLE_KIB
# (smtp-sink is left out here: it does not greet hundreds of simultaneous
# connections within seconds, so there is nothing sensible to compare.)

# ---------------------------------------------------------------- report
ratio() { # NAME_A NAME_B C
	local a=${RATE[$1,$3]:-} b=${RATE[$2,$3]:-}
	[ -n "$a" ] && [ -n "$b" ] && [ "$b" != 0 ] || {
		echo "n/a"
		return
	}
	awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
}
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
	if (v == "n/a") { print "n/a"; exit }
	ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 < t + 0)
	print ok ? "met" : "MISSED" }'; }

cat <<EOF

## sluice-smtpd benchmark

$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $NCPU CPU(s); $SLUICE_BUILD/sluice-smtpd.
smtp-source $( [ "$REUSE" = 1 ] && echo "-d (messages reuse the connection)" || echo "(one message per connection)"), $MSGS messages ($PF_MSGS for Postfix and the opendkim rows) of $SIZE bytes per run; client and server share the machine.
msgs/s is smtp-source's wall time; CPU is the server's whole process tree (Postfix: until its queue drained; with a milter, the milter's tree too, and opendkim's in the *-opendkim rows); peak RSS is sampled and summed over the tree (shared pages count once per process, which inflates multi-process Postfix).

| server | concurrency | messages | seconds | msgs/s | CPU ms/msg | peak RSS KiB | status |
|---|---:|---:|---:|---:|---:|---:|---|
EOF
printf '%s\n' "${ROWS[@]}"
echo
for h in "${HWM[@]}"; do echo "- $h"; done
for h in "${DKIM_CHECKS[@]}"; do echo "- signing check, $h"; done
cat <<EOF

Memory per idle connection ($IDLE connections that read the banner and stay idle):

| server | connections | RSS before KiB | RSS after KiB | KiB per connection |
|---|---:|---:|---:|---:|
EOF
printf '%s\n' "${IDLE_ROWS[@]}"

if [ ${#MROWS[@]} -gt 0 ]; then
	cat <<EOF

Milter sessions without an MTA: $MCLIENT -n N -j CONCURRENCY, one
Postfix-shaped session (connect ... end of message, one message of about $SIZE
bytes) per connection, against sluice-milterd (no plugins) and
t/milter/null_milter (libmilter, "continue" to everything).  CPU and peak RSS
are the milter's.

| milter | concurrency | sessions | seconds | sessions/s | CPU ms/session | peak RSS KiB | status |
|---|---:|---:|---:|---:|---:|---:|---|
EOF
	printf '%s\n' "${MROWS[@]}"
fi

mratio() { # C: milterd / null-milter sessions per second
	local a=${MRATE[milterd,$1]:-} b=${MRATE[null-milter,$1]:-}
	[ -n "$a" ] && [ -n "$b" ] && [ "$b" != 0 ] || {
		echo "n/a"
		return
	}
	awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
}
r10=$(ratio sluice-discard smtp-sink 10)
r100=$(ratio sluice-discard smtp-sink 100)
q10=$(ratio sluice-discard-1loop smtp-sink 10)
q100=$(ratio sluice-discard-1loop smtp-sink 100)
cpu_budget=$(awk -v a="${CPUMS[sluice-discard,10]:-}" 'BEGIN { print (a == "") ? "n/a" : a }')
cat <<EOF

Targets (issue 2, for information):

| target | measured | |
|---|---:|---|
| sluice discard >= 0.8x smtp-sink msgs/s at c=10 | ${r10}x | $(verdict "$r10" 0.8 ">=") |
| sluice discard >= 0.8x smtp-sink msgs/s at c=100 | ${r100}x | $(verdict "$r100" 0.8 ">=") |
| same, sluice with loop_threads 1, c=10 | ${q10}x | $(verdict "$q10" 0.8 ">=") |
| same, sluice with loop_threads 1, c=100 | ${q100}x | $(verdict "$q100" 0.8 ">=") |
| < 8 KiB per idle connection | $SLUICE_IDLE_KIB KiB | $(verdict "$SLUICE_IDLE_KIB" 8 "<") |
| CPU per message with no plugin work < 0.35 ms (DESIGN.md), c=10 | $cpu_budget ms | $(verdict "$cpu_budget" 0.35 "<") |

For information (no target): Postfix msgs/s with a milter relative to Postfix
alone, and sluice-milterd's sessions/s relative to the libmilter null milter.

| ratio | c=1 | c=10 | c=100 |
|---|---:|---:|---:|
| Postfix+sluice-milterd / Postfix | $(ratio postfix-milterd postfix 1) | $(ratio postfix-milterd postfix 10) | $(ratio postfix-milterd postfix 100) |
| Postfix+null_milter / Postfix | $(ratio postfix-null-milter postfix 1) | $(ratio postfix-null-milter postfix 10) | $(ratio postfix-null-milter postfix 100) |
| Postfix+sluice-milterd / Postfix+null_milter | $(ratio postfix-milterd postfix-null-milter 1) | $(ratio postfix-milterd postfix-null-milter 10) | $(ratio postfix-milterd postfix-null-milter 100) |
| milter-client: sluice-milterd / null_milter | $(mratio 1) | $(mratio 10) | $(mratio 100) |
EOF

# ---------------------------------------------------------------- hosting opendkim
cratio() { # NAME_A NAME_B C: CPU ms/msg of A / of B
	local a=${CPUMS[$1,$3]:-} b=${CPUMS[$2,$3]:-}
	[ -n "$a" ] && [ -n "$b" ] && awk -v b="$b" 'BEGIN { exit !(b > 0) }' || {
		echo "n/a"
		return
	}
	awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
}
# hosting_verdict RATE_RATIO CPU_RATIO: costs under 10%: >= 0.90x the
# direct path's msgs/s and < 1.10x its CPU per message
hosting_verdict() {
	[ "$1" = n/a ] || [ "$2" = n/a ] && {
		echo "n/a"
		return
	}
	awk -v r="$1" -v c="$2" 'BEGIN { print (r + 0 >= 0.9 && c + 0 < 1.1) ? "met" : "MISSED" }'
}
case " $SERVERS " in
*" postfix-opendkim "*)
	cat <<EOF

Hosting opendkim (issue 4; target: hosting costs under 10% of the direct
path, i.e. >= 0.90x its msgs/s and < 1.10x its CPU ms/msg, opendkim's CPU
included on both sides).  Each hosted row relative to postfix-opendkim
(Postfix -> opendkim directly):

| hosted row / postfix-opendkim | concurrency | msgs/s ratio | CPU ms/msg ratio | |
|---|---:|---:|---:|---|
EOF
	for h in postfix-milterd-opendkim smtpd-opendkim; do
		case " $SERVERS " in *" $h "*) ;; *) continue ;; esac
		for c in $CONC; do
			r=$(ratio "$h" postfix-opendkim "$c")
			q=$(cratio "$h" postfix-opendkim "$c")
			v=$(hosting_verdict "$r" "$q")
			[ "${DKIM_OK[$h]:-}" = 0 ] || [ "${DKIM_OK[postfix-opendkim]:-}" = 0 ] &&
				v="not comparable: a signing check failed"
			echo "| $h | $c | $r | $q | $v |"
			echo "bench: hosting c=$c: $h / postfix-opendkim: msgs/s ${r}x, CPU ms/msg ${q}x" >&2
		done
	done
	;;
esac
case " $SERVERS " in
*" smtpd-forward-postfix "*)
	cat <<EOF

Forwarding (issue 5, for information): smtp-source -> sluice-smtpd with
queue/smtp-forward -> Postfix (discard), relative to smtp-source ->
Postfix directly (the postfix row); CPU is both daemons' trees.

| smtpd-forward-postfix / postfix | concurrency | msgs/s ratio | CPU ms/msg ratio |
|---|---:|---:|---:|
EOF
	for c in $CONC; do
		echo "| | $c | $(ratio smtpd-forward-postfix postfix "$c") | $(cratio smtpd-forward-postfix postfix "$c") |"
	done
	;;
esac
exit 0
