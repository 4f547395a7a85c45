#!/bin/bash
# sluice-smtpd: CHUNKING / BDAT (RFC 3030) - one chunk, several chunks, a
# chunk boundary inside CRLF, BDAT 0 LAST, BDAT fully pipelined, BDAT mixed
# with DATA, BDAT out of sequence, BDAT syntax errors.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 16
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_errors 50
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

# bdat_script NAME CHUNKSPEC...: writes $RUN/NAME.raw (a --raw smtp_chat
# script: EHLO, MAIL, RCPT, one BDAT per chunk, QUIT) and $RUN/NAME.lf
# (what must be delivered).  A CHUNKSPEC is a Python bytes literal; the
# last chunk is sent LAST.  With PIPE=1 everything goes in one write.
bdat_script() {
	"$SLUICE_PYTHON" - "$RUN" "$@" <<'EOF'
import ast, sys
run, name, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
import os
chunks = [ast.literal_eval(s) for s in specs]
def esc(b):
    return "".join(chr(c) if 0x20 <= c < 0x7f and c != 0x5c else "\\x%02x" % c
                   for c in b)
cmds = [b"EHLO client.test\r\n", b"MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n",
        b"RCPT TO:<bob@sluice.test>\r\n"]
for i, c in enumerate(chunks):
    last = b" LAST" if i == len(chunks) - 1 else b""
    cmds.append(b"BDAT %d%s\r\n" % (len(c), last) + c)
cmds.append(b"QUIT\r\n")
with open(os.path.join(run, name + ".raw"), "w") as f:
    if os.environ.get("PIPE") == "1":
        f.write(esc(cmds[0]) + "\n!pipeline\n")
        f.write("".join(esc(c) for c in cmds[1:]) + "\n!end\n")
    else:
        for c in cmds:
            f.write(esc(c) + "\n")
open(os.path.join(run, name + ".lf"), "wb").write(b"".join(chunks).replace(b"\r\n", b"\n"))
EOF
}

# deliver_check NAME DESC: the newest Maildir file, minus Received:, equals NAME.lf
deliver_check() {
	local f
	f=$(newest_file "$MD/new")
	[ -n "$f" ] && strip_received "$f" | cmp -s - "$RUN/$1.lf"
	ok $? "$2" || diag "$(diff <(od -c "$RUN/$1.lf") <(strip_received "$f" | od -c) | head -20)"
}

# 1. one chunk, LAST; dots are NOT unstuffed in BDAT, NUL and 8-bit kept
bdat_script one "b'From: a@example.org\r\nSubject: bdat one\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nNUL\x00 8bit \xc3\xa9\r\n'"
out=$(smtp_chat --raw <"$RUN/one.raw")
is "$(reply_codes <<<"$out")" "220 250 250 250 250 221 closed" "BDAT n LAST: 250"
is "$(maildir_count "$MD")" 1 "BDAT message delivered"
deliver_check one "BDAT content byte-exact (no dot-unstuffing, NUL and 8-bit kept)"

# 2. several chunks, one boundary between CR and LF, one inside a header
bdat_script three "b'Subject: bdat thr'" "b'ee\r\n\r\nline one\r'" "b'\nline two\r\n'"
out=$(smtp_chat --raw <"$RUN/three.raw")
is "$(reply_codes <<<"$out")" "220 250 250 250 250 250 250 221 closed" "three chunks: 250 each"
is "$(maildir_count "$MD")" 2 "chunked message delivered"
deliver_check three "chunks joined byte-exact; CR|LF split across chunks is one CRLF"

# 3. chunks then BDAT 0 LAST
bdat_script zero "b'Subject: bdat zero\r\n\r\n'" "b'body\r\n'" "b''"
out=$(smtp_chat --raw <"$RUN/zero.raw")
is "$(reply_codes <<<"$out")" "220 250 250 250 250 250 250 221 closed" "BDAT 0 LAST ends the message"
deliver_check zero "message ended by BDAT 0 LAST delivered byte-exact"

# 4. the whole transaction in one write (RFC 3030 allows BDAT pipelined)
PIPE=1 bdat_script pipe "b'Subject: bdat pipelined\r\n\r\n'" "b'all in one write\r\n'"
out=$(smtp_chat --raw <"$RUN/pipe.raw")
is "$(reply_codes <<<"$out")" "220 250 250 250 250 250 221 closed" "MAIL RCPT BDAT BDAT-LAST QUIT in one write"
deliver_check pipe "pipelined BDAT message delivered byte-exact"

# 5. BDAT mixed with DATA is refused, and no message results
n=$(maildir_count "$MD")
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
MAIL FROM:<alice@example.org>\r\n
RCPT TO:<bob@sluice.test>\r\n
BDAT 12\r\nSubject: x\r\n
DATA\r\n
RSET\r\n
NOOP\r\n
QUIT\r\n
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 250 503 250 250 221 closed" "DATA after BDAT: 503"
is "$(maildir_count "$MD")" "$n" "nothing delivered from the mixed transaction"

# 6. BDAT before MAIL: refused, but the chunk is still consumed
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
BDAT 12 LAST\r\nNOOP\r\nNOOP\r\n
NOOP\r\n
QUIT\r\n
EOF
)
is "$(reply_codes <<<"$out")" "220 250 503 250 221 closed" \
	"BDAT without a transaction: 503, its chunk is skipped (not run as commands)"

# 7. BDAT syntax errors
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
MAIL FROM:<alice@example.org>\r\n
RCPT TO:<bob@sluice.test>\r\n
BDAT\r\n
BDAT abc\r\n
BDAT -1\r\n
BDAT 0 FIRST\r\n
RSET\r\n
QUIT\r\n
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 501 501 501 501 250 221 closed" "malformed BDAT commands: 501"

# 8. a message sent with BDAT after a DATA message in the same session
out=$(smtp_chat --raw <<'EOF'
EHLO client.test\r\n
MAIL FROM:<alice@example.org>\r\n
RCPT TO:<bob@sluice.test>\r\n
DATA\r\n
Subject: by data\r\n\r\nbody\r\n.\r\n
MAIL FROM:<alice@example.org>\r\n
RCPT TO:<bob@sluice.test>\r\n
BDAT 24 LAST\r\nSubject: by bdat\r\n\r\nok\r\n
QUIT\r\n
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 250 250 250 221 closed" "DATA message then BDAT message in one session"
is "$(maildir_count "$MD")" "$((n + 2))" "both delivered"
