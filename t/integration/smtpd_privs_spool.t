#!/bin/bash
# sluice-smtpd drops privileges to "user" after binding (the daemon runs as
# that uid, delivered files belong to it), and large messages go through
# the file-backed spool byte for byte, leaving nothing behind.
. "$SLUICE_SRC/t/lib.sh"

plan 8
setup_run
MD=$RUN/md

# --- a large message through the file spool (spool_memory_max 0) ------------
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
spool_memory_max 0
max_message_size 20M
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"
"$SLUICE_PYTHON" - "$RUN/body" <<'PY'
import random, sys
random.seed(7)
lines = ["Subject: big spooled message", "From: a@sender.test", ""]
for i in range(40000):
    n = random.randrange(0, 200)
    s = "".join(random.choice("abcdefghijklmnopqrstuvwxyz .,-") for _ in range(n))
    if i % 97 == 0:
        s = "." + s          # needs dot-stuffing on the wire
    lines.append(s)
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
{
	echo "EHLO client.test"
	echo "MAIL FROM:<a@sender.test>"
	echo "RCPT TO:<bob@sluice.test>"
	echo "DATA"
	sed 's/^\./../' "$RUN/body"
	echo "."
	echo "QUIT"
} >"$RUN/chat"
out=$(smtp_chat --timeout 30 <"$RUN/chat")
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "a 4 MB message through the file spool is accepted"
f=$(newest_file "$MD/new")
strip_received "$f" >"$RUN/got"
cmp -s "$RUN/got" "$RUN/body"
ok $? "delivered copy is byte-exact (dot-unstuffed, LF line ends)"
n=$(find "$RUN/var/spool" -type f | wc -l)
is "$n" 0 "no spool file left behind"
sluice_stop

# --- privilege drop ------------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! id nobody >/dev/null 2>&1; then
	skip 5 "needs root and a nobody user"
	exit 0
fi
PORT=
rm -rf "$MD"
mkdir -p "$MD"
chown nobody "$MD"
write_conf "$RUN/smtpd2.conf" <<EOF
local_domains sluice.test
user nobody
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd2.conf"
uid=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$SLUICE_PID/status")
is "$uid" "65534 65534 65534 65534" "daemon runs as nobody (real, effective, saved, fs uid)"
gids=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$SLUICE_PID/status" | tr -d ' ')
unlike "$gids" '(^|,)0(,|$)' "no root supplementary group kept"
out=$(swaks_to --from a@sender.test --to bob@sluice.test --body 'privdrop')
like "$out" '250 2\.0\.0 Ok: queued as' "message accepted after the privilege drop"
f=$(newest_file "$MD/new")
is "$(stat -c %U "$f")" nobody "delivered file belongs to nobody"
like "$(cat "$RUN/smtpd.log")" 'running as user nobody' "privilege drop logged"
