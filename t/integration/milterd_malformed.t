#!/bin/bash
# sluice-milterd against malformed, hostile and unusual MTA input, driven
# by the raw MTA side t/miltraw.py (milter-protocol.md 5.2, 5.8, 10.1 item
# 4-6, 10.2 items 1, 5-9, 12, 13, 16).
#
# (a) Malformed and out-of-order input, one connection each: zero, huge
#     and just-too-large lengths, a truncated packet, an unknown command
#     byte, a reply byte sent as a command, commands before O, a second O,
#     L after C, T after M, R after our own REJECT at M, E without N,
#     versions 0 and 1, bad CONNECTs, H without NUL, D with an odd number
#     of strings, M without strings.  Each: the session is closed (EOF)
#     and never left hanging, milterd logs "milter protocol error: WHAT",
#     and a normal session on a new connection gets its final 'c'.
# (b) Unusual but legal sequences: K then C without O, A anywhere and
#     twice, several messages, H A / A H, M after E, E carrying data, the
#     largest packet we take (1048575 data bytes).
# (c) Negotiation: with no plugins NR_CONN/HELO/MAIL/RCPT and ACCEPT at
#     DATA; a v2 offer without NR bits; SKIP only for BODY and only when
#     offered.
# (d) Time: PROGRESS while data_post works, idle close after milter_timeout.
#
# Five milterd instances, each started once; the slow groups run in the
# background while the batch of (a)/(b) runs in one miltraw process.
. "$SLUICE_SRC/t/lib.sh"

[ -x "$SLUICE_BUILD/sluice-milterd" ] || skip_all "sluice-milterd not built"
[ -f "$SLUICE_BUILD/t/plugins/test_hooks.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_hooks.so)"
setup_run


# mstart NAME CONF-BODY: start a milterd on a fresh port with this body
# after the write_conf prelude; sets PORT_<NAME>, PID_<NAME>; logs to
# $RUN/NAME.log.
mstart() {
	local name=$1 port i
	port=$(free_port) || {
		echo "Bail out! no free port"
		exit 1
	}
	{
		echo "milter_listen inet:$port@127.0.0.1"
		echo "loop_threads 1"
		echo "log_level debug"
		cat
	} | write_conf "$RUN/$name.conf"
	: >"$RUN/$name.log"
	"$SLUICE_BUILD/sluice-milterd" -f -c "$RUN/$name.conf" 2>>"$RUN/$name.log" &
	track_pid $!
	printf -v "PID_$name" %s $!
	printf -v "PORT_$name" %s "$port"
	for ((i = 0; i < 500; i++)); do
		grep -q 'sluice-milterd started' "$RUN/$name.log" && return 0
		kill -0 "$!" 2>/dev/null || break
		sleep 0.02
	done
	diag "sluice-milterd $name did not start within 10 s"
	diag "$(tail -n 20 "$RUN/$name.log")"
	exit 1
}

# block FILE LABEL: the output of the session "== LABEL" of a miltraw run
block() {
	awk -v l="== $2" '$0 == l { on = 1; next } /^== / { on = 0 } on' "$1"
}

# replies TEXT: the lines after the 'O' answer, on one line
replies() {
	sed 1d <<<"$1" | tr '\n' ' ' | sed 's/ $//'
}

# session_ids LOG: the milter session ids of LOG, in the order of accept
session_ids() {
	sed -n 's/.* \([0-9A-F]\{12\}\) milter session mta=.*/\1/p' "$1"
}

NEG=$'O 6 0x1ff 0x1fffff\nREADO'
CONN=$'D C j=mx.example\nC client.example 4 4321 192.0.2.7\nREAD'
# a whole message, every event answered (the "full" instance)
MSG=$'M <sender@example.org>\nREAD\nR <rcpt@example.org>\nREAD\nT\nREAD
L Subject normal\nREAD\nL From sender@example.org\nREAD\nN\nREAD
B a body line\\r\\n\nREAD\nE\nREADALL'
MSG_REPLIES="c c c c c c c c"

# --- the instances --------------------------------------------------------------
PORT_full='' PORT_body='' PORT_none='' PORT_prog='' PORT_slow='' # set by mstart
# full: test_hooks hooks every event, so every event is answered
mstart full <<'EOF'
plugin test_hooks hook=mail action=deny match=reject-me text="sender refused"
EOF
# body: a plugin that refuses any body it sees
mstart body <<'EOF'
plugin test_hooks hook=body action=deny text="body seen"
EOF
# none: no plugins at all
mstart none <<'EOF'
EOF
# prog: data_post takes 2.5 s; PROGRESS every 500 ms
mstart prog <<'EOF'
milter_progress_interval 500ms
plugin test_hooks hook=data_post action=pending delay=2500ms verdict=declined
EOF
# slow: as prog, with the MTA's idle time cut to 1 s
mstart slow <<'EOF'
milter_timeout 1s
milter_progress_interval 500ms
plugin test_hooks hook=data_post action=pending delay=2500ms verdict=declined
EOF

# --- (d) the slow sessions, in the background ------------------------------------
miltraw --timeout=5 "127.0.0.1:$PORT_prog" >"$RUN/prog.out" <<EOF &
$NEG
$CONN
$MSG
Q
EOF
BG_PROG=$!
track_pid $BG_PROG
miltraw --timeout=5 "127.0.0.1:$PORT_slow" >"$RUN/slow.out" <<EOF &
NEW idle
$NEG
READ
NEW busy
$NEG
$CONN
$MSG
Q
EOF
BG_SLOW=$!
track_pid $BG_SLOW
# a length alone, without its command byte: refused at once, or left hanging?
miltraw --timeout=1.5 "127.0.0.1:$PORT_body" >"$RUN/len4.out" <<EOF &
$NEG
$CONN
RAW 00 00 00 00
READ
EOF
BG_LEN4=$!
track_pid $BG_LEN4

# --- (a) malformed and out-of-order input ---------------------------------------
CASES=()
declare -A SCRIPT WANTLOG
# c NAME LOG-ERE <script: a case; its script runs on its own connection
c() {
	CASES+=("$1")
	WANTLOG[$1]=$2
	SCRIPT[$1]=$(cat)
}

c zero-length 'packet length 0' <<EOF
$NEG
$CONN
RAW 00 00 00 00 4f
READ
EOF
c length-7fffffff 'packet too large' <<EOF
$NEG
$CONN
RAW 7f ff ff ff 42
READ
EOF
c length-80000000 'packet too large' <<EOF
$NEG
$CONN
RAW 80 00 00 00 42
READ
EOF
c length-ffffffff 'packet too large' <<EOF
$NEG
$CONN
RAW ff ff ff ff 42
READ
EOF
c length-1048577 'packet too large' <<EOF
$NEG
$CONN
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
N
READ
RAW 00 10 00 01 42 61 62 63
READ
EOF
c unknown-command 'unknown command' <<EOF
$NEG
$CONN
RAW 00 00 00 01 5a
READ
EOF
c reply-byte-c 'unknown command' <<EOF
$NEG
$CONN
RAW 00 00 00 01 63
READ
EOF
c connect-before-O 'CONNECT out of order \(state=init\)' <<EOF
C client.example 4 4321 192.0.2.7
READ
EOF
c helo-before-O 'HELO out of order \(state=init\)' <<EOF
H helo.example
READ
EOF
c second-O-after-C 'OPTNEG out of order \(state=connect\)' <<EOF
$NEG
$CONN
O 6 0x1ff 0x1fffff
READ
EOF
c second-O-at-once 'OPTNEG out of order \(state=optneg\)' <<EOF
$NEG
O 6 0x1ff 0x1fffff
READ
EOF
c L-after-C 'HEADER out of order \(state=connect\)' <<EOF
$NEG
$CONN
L Subject early
READ
EOF
c T-after-M 'DATA out of order \(state=mail\)' <<EOF
$NEG
$CONN
M <a@example.org>
READ
T
READ
EOF
c R-after-our-reject 'RCPT out of order' <<EOF
$NEG
$CONN
M <reject-me@example.org>
READ
R <b@example.org>
READ
EOF
c E-without-N 'BODYEOB out of order \(state=header\)' <<EOF
$NEG
$CONN
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
L Subject x
READ
E
READ
EOF
c E-right-after-T 'BODYEOB out of order \(state=data\)' <<EOF
$NEG
$CONN
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
E
READ
EOF
c version-1 'MTA offers protocol version below 2' <<EOF
O 1 0x0f 0x3f
READ
EOF
c version-0 'MTA offers protocol version below 2' <<EOF
O 0 0x1ff 0x1fffff
READ
EOF
c connect-unparseable-v4 'CONNECT with an unparseable address' <<EOF
$NEG
C client.example 4 25 999.0.2.7
READ
EOF
c connect-v4-no-port 'truncated packet' <<EOF
$NEG
PKT C client.example\x004
READ
EOF
c connect-v4-no-address 'string without NUL' <<EOF
$NEG
PKT C client.example\x004\x00\x19
READ
EOF
c connect-family-X 'unknown address family' <<EOF
$NEG
PKT C client.example\x00X\x00\x19192.0.2.7\x00
READ
EOF
c connect-missing-NUL 'string without NUL' <<EOF
$NEG
PKT C client.example\x004\x00\x19192.0.2.7
READ
EOF
c helo-without-NUL 'string without NUL' <<EOF
$NEG
$CONN
PKT H helo.example
READ
EOF
c macro-odd-strings 'macro name without a value' <<EOF
$NEG
$CONN
PKT D Mi\x00ABC123\x00lonely\x00
READ
EOF
c mail-no-strings 'no address' <<EOF
$NEG
$CONN
M
READ
EOF
c data-with-bytes 'data in a command that takes none' <<EOF
$NEG
$CONN
M <a@example.org>
READ
R <b@example.org>
READ
PKT T x
READ
EOF
# then the MTA closes: EOF inside the packet
c truncated-then-close '(truncat|EOF|closed|incomplete)' <<EOF
$NEG
$CONN
RAW 00 00 00 64 42 61 62
SHUT
READ
EOF

batch=
for name in "${CASES[@]}"; do
	batch+="NEW case $name
${SCRIPT[$name]}
NEW after $name
$NEG
$CONN
$MSG
Q
"
done

# --- (b) unusual but legal sequences, same instance -----------------------------
batch+="NEW quit_nc
$NEG
$CONN
H helo.example
READ
$MSG
K
C second.example 4 1234 192.0.2.8
READ
H second.example
READ
$MSG
Q
NEW aborts
$NEG
$CONN
A
A
H helo.example
READ
A
A
M <a@example.org>
READ
A
A
M <a@example.org>
READ
R <b@example.org>
READ
A
A
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
A
A
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
L Subject x
READ
A
A
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
L Subject x
READ
N
READ
A
A
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
L Subject x
READ
N
READ
B body\\r\\n
READ
A
A
$MSG
A
A
M <reject-me@example.org>
READ
A
A
$MSG
A
A
Q
NEW abort-early
$NEG
A
A
$CONN
K
A
C again.example 4 1234 192.0.2.8
READ
$MSG
Q
NEW helo-mid-message
$NEG
$CONN
M <a@example.org>
READ
R <b@example.org>
READ
H helo-then-abort.example
READ
A
$MSG
M <a@example.org>
READ
R <b@example.org>
READ
A
H abort-then-helo.example
READ
$MSG
Q
NEW messages
$NEG
$CONN
H helo.example
READ
$MSG
$MSG
$MSG
Q
NEW skip-offered
$NEG
$CONN
$MSG
Q
"
miltraw --timeout=3 "127.0.0.1:$PORT_full" >"$RUN/full.out" <<<"$batch"
mapfile -t ids < <(session_ids "$RUN/full.log")
is "${#ids[@]}" "$((2 * ${#CASES[@]} + 6))" \
	"one milter session per connection of the batch (the log is read per session)"

i=0
for name in "${CASES[@]}"; do
	out=$(block "$RUN/full.out" "case $name")
	id=${ids[$((2 * i))]:-none}
	log=$(grep " $id " "$RUN/full.log" | grep 'milter protocol error')
	ok "$([[ $(tail -n 1 <<<"$out") == EOF && $out != *TIMEOUT* ]]; echo $?)" \
		"$name: the session is closed, not left hanging"
	[ $? = 0 ] || diag "$out"
	like "$log" "milter protocol error: .*${WANTLOG[$name]}" "$name: the log names the error"
	out=$(block "$RUN/full.out" "after $name")
	is "$(replies "$out")" "c $MSG_REPLIES" "$name: then a new connection gets a whole message through"
	i=$((i + 1))
done

out=$(block "$RUN/full.out" quit_nc)
is "$(replies "$out")" "c c $MSG_REPLIES c c $MSG_REPLIES" \
	"K then C on the same socket, without a new O: a second session"
like "$(grep -c 'connect client=second.example\[192.0.2.8\]:1234' "$RUN/full.log")" '^1$' \
	"the session after K has the new client"
out=$(block "$RUN/full.out" aborts)
is "$(replies "$out")" "c c c c c c c c c c c c c c c c c c c c c c c $MSG_REPLIES y 550 5.7.1 sender refused\\0 $MSG_REPLIES" \
	"A twice in every state from CONNECT to after EOM and after our REJECT: never answered, harmless"
out=$(block "$RUN/full.out" abort-early)
like "$(replies "$out")" "^c c $MSG_REPLIES\$" \
	"A right after O and right after K is harmless too (5.8 item 3)"
out=$(block "$RUN/full.out" helo-mid-message)
is "$(replies "$out")" "c c c c $MSG_REPLIES c c c $MSG_REPLIES" \
	"HELO in a message: H then A (Postfix) and A then H (sendmail)"
out=$(block "$RUN/full.out" messages)
is "$(replies "$out")" "c c $MSG_REPLIES $MSG_REPLIES $MSG_REPLIES" \
	"three messages on one connection, M right after E without A"
out=$(block "$RUN/full.out" skip-offered)
like "$(head -n 1 <<<"$out")" '^O version=6 actions=0x1ff protocol=0x400 ' \
	"every event hooked: SKIP is the only protocol bit asked for"
is "$(replies "$out")" "c $MSG_REPLIES" "SKIP offered, but a plugin reads the body: BODY gets 'c'"
grep -qx s "$RUN/full.out"
is "$?" 1 "no SKIP anywhere in the batch"

# --- (b) E carrying data, the largest packet ------------------------------------
out=$(miltraw --timeout=3 "127.0.0.1:$PORT_body" <<EOF
NEW eob-data
$NEG
$CONN
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
L Subject x
READ
N
READ
E data in EOB\\r\\n
READALL
Q
NEW eob-empty
$NEG
$CONN
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
L Subject x
READ
N
READ
E
READALL
Q
NEW biggest
$NEG
$CONN
M <a@example.org>
READ
R <b@example.org>
READ
T
READ
N
READ
FILL B 1048575 0a
READ
Q
EOF
)
is "$(replies "$(block /dev/stdin eob-data <<<"$out")")" 'c c c c c c y 550 5.7.1 body seen\0' \
	"E carrying data: the data reaches the body hook as a last chunk"
is "$(replies "$(block /dev/stdin eob-empty <<<"$out")")" 'c c c c c c c' \
	"E without data: no body, the message is accepted"
is "$(replies "$(block /dev/stdin biggest <<<"$out")")" 'c c c c c y 550 5.7.1 body seen\0' \
	"a BODY of 1048575 bytes (our receive cap) is taken"

# --- (c) negotiation with no plugins ----------------------------------------------
out=$(miltraw --timeout=3 "127.0.0.1:$PORT_none" <<EOF
NEW nr
$NEG
D C j=mx.example
C client.example 4 4321 192.0.2.7
D H
H helo.example
M <a@example.org>
R <b@example.org>
R <c@example.org>
T
READ
A
M <a@example.org>
R <b@example.org>
T
READ
K
C again.example 4 4321 192.0.2.8
H helo.example
M <a@example.org>
R <b@example.org>
T
READ
A
A
Q
NEW v2
O 2 0x1ff 0x3f
READO
C client.example 4 4321 192.0.2.7
READ
H helo.example
READ
M <a@example.org>
READ
R <b@example.org>
READ
N
READ
B body\\r\\n
READ
E
READALL
Q
NEW skip
O 6 0x1ff 0x400
READO
C client.example 4 4321 192.0.2.7
READ
H helo.example
READ
M <a@example.org>
READ
R <b@example.org>
READ
B first chunk\\r\\n
READ
E
READALL
Q
NEW no-skip
O 6 0x1ff 0x800
READO
C client.example 4 4321 192.0.2.7
READ
H helo.example
READ
M <a@example.org>
READ
R <b@example.org>
READ
B first chunk\\r\\n
READ
E
READALL
Q
EOF
)
nr=$(block /dev/stdin nr <<<"$out")
proto=$(sed -n '1s/.* protocol=\(0x[0-9a-f]*\).*/\1/p' <<<"$nr")
is "$(((proto & 0xf000) == 0xf000))" 1 \
	"no plugins: the answer asks for NR_CONN, NR_HELO, NR_MAIL and NR_RCPT ($proto)"
is "$(((proto & 0x30) == 0x30))" 1 "... and NOHDRS, NOBODY: nobody reads content"
is "$(replies "$nr")" "a a a" \
	"no reply to CONNECT, HELO, MAIL, RCPT; ACCEPT at DATA; still so after K"
v2=$(block /dev/stdin v2 <<<"$out")
like "$(head -n 1 <<<"$v2")" '^O version=2 actions=0x100 protocol=0x30 ' \
	"a v2 offer without NR bits: a v2 answer, no NR bits"
is "$(replies "$v2")" "c c c c c c c" "... and every event is answered (EOH, BODY, EOB with 'c')"
sk=$(block /dev/stdin skip <<<"$out")
like "$(head -n 1 <<<"$sk")" '^O version=6 actions=0x100 protocol=0x400 ' "SKIP offered alone: asked for"
is "$(replies "$sk")" "c c c c s c" "SKIP negotiated, nobody needs the body: BODY gets 's', then EOB 'c'"
nsk=$(block /dev/stdin no-skip <<<"$out")
like "$(head -n 1 <<<"$nsk")" '^O version=6 actions=0x100 protocol=0x0 ' "offer without SKIP: not asked for"
is "$(replies "$nsk")" "c c c c c c" "SKIP not negotiated: BODY gets 'c', never 's'"

# --- (d) progress, idle timeout, a plugin slower than milter_timeout ----------------
wait "$BG_PROG"
out=$(cat "$RUN/prog.out")
like "$(replies "$out")" "^c c c c c c c c p p( p)* c\$" \
	"data_post takes 2.5 s: several PROGRESS after EOB (none before), then 'c'"
wait "$BG_SLOW"
out=$(block "$RUN/slow.out" idle)
is "$(replies "$out")" "EOF" "an idle MTA is disconnected after milter_timeout (1 s)"
like "$(cat "$RUN/slow.log")" 'milter timeout state=optneg: no command from the MTA' "... and that is logged"
out=$(block "$RUN/slow.out" busy)
like "$(replies "$out")" "^c c c c c c c c p( p)* c\$" \
	"milter_timeout does not cut a session while a plugin works (PROGRESS goes out)"
wait "$BG_LEN4"
out=$(cat "$RUN/len4.out")
like "$(replies "$out")" '^c EOF$' \
	"a zero length is refused as soon as the 4 length bytes are in"

# --- the daemons --------------------------------------------------------------------
alive=0
for name in full body none prog slow; do
	pid=PID_$name
	kill -0 "${!pid}" 2>/dev/null || {
		alive=1
		diag "milterd $name (pid ${!pid}) died"
	}
done
ok "$alive" "every milterd instance is still running"
san=$(cat "$RUN"/{full,body,none,prog,slow}.log | grep -E -m 5 'Sanitizer|runtime error:|assert')
is "$san" "" "no sanitizer report or assertion in the milterd logs"
done_testing
