#!/bin/bash
# sluice-smtpd: EHLO keywords, the simple verbs, sequence and syntax errors,
# byte-exact delivery into a Maildir through DATA, the Received: header.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 36
setup_run
MD=$RUN/Maildir
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_message_size 10000000
max_errors 50
max_unknown_commands 50
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

# --- EHLO ------------------------------------------------------------------
out=$(smtp_chat <<'EOF'
EHLO client.test
QUIT
EOF
)
like "$out" $'^220 mx\\.sluice\\.test' "banner 220 names the configured hostname"
like "$out" $'\n250-mx\\.sluice\\.test' "EHLO reply starts with the hostname"
for kw in PIPELINING 'SIZE 10000000' 8BITMIME ENHANCEDSTATUSCODES SMTPUTF8 CHUNKING; do
	grep -qE "^250[- ]$kw\$" <<<"$out"
	ok $? "EHLO advertises $kw"
done
is "$(reply_codes <<<"$out")" "220 250 221 closed" "EHLO then QUIT: 250, 221, closed"

out=$(smtp_chat <<'EOF'
HELO client.test
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 221 closed" "HELO is answered 250"
unlike "$out" '250-' "HELO reply is a single line"

# --- simple verbs ------------------------------------------------------------
out=$(smtp_chat <<'EOF'
EHLO client.test
NOOP
NOOP some text
RSET
VRFY postmaster
HELP
FROBNICATE x
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 250 252 214 500 221 closed" \
	"NOOP 250, RSET 250, VRFY 252, HELP 214, unknown 500, QUIT 221"
like "$out" $'\n500 5\\.5\\.[12] ' "unknown command has enhanced code 5.5.1/5.5.2"
like "$out" $'\n252 2\\.' "VRFY 252 with enhanced code 2.x.x"

# --- sequence errors -----------------------------------------------------------
out=$(smtp_chat <<'EOF'
EHLO client.test
RCPT TO:<bob@sluice.test>
DATA
BDAT 0 LAST
MAIL FROM:<alice@example.org>
DATA
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
MAIL FROM:<alice@example.org>
RSET
MAIL FROM:<alice@example.org>
NOOP
QUIT
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 503 503 503 250 (503|554) 503 250 503 250 250 250 221 closed$' \
	"RCPT/DATA/BDAT before MAIL 503, DATA before RCPT 503/554 (RFC 5321 3.3), MAIL twice 503, RSET clears"
like "$out" $'\n503 5\\.5\\.1 ' "503 carries 5.5.1"

# --- syntax errors ---------------------------------------------------------------
out=$(smtp_chat <<'EOF'
EHLO
HELO
EHLO client.test
MAIL FROM:<alice@example.org
MAIL TO:<alice@example.org>
MAIL
MAIL FROM:alice@example.org@
MAIL FROM:<alice@example.org> BOGUS=1
MAIL FROM:<alice@example.org> SIZE=abc
MAIL FROM:<alice@example.org>
RCPT TO:
RCPT TO:<bob@sluice.test
RCPT TO:<bob@sluice.test> BOGUS=1
RCPT TO:<>
RCPT TO:<bob@sluice.test>
RSET now
QUIT
EOF
)
codes=$(reply_codes <<<"$out")
is "$(cut -d' ' -f1-5 <<<"$codes")" "220 501 501 250 501" "EHLO/HELO without a domain 501; bad MAIL path 501"
like "$(cut -d' ' -f6-8 <<<"$codes")" '^50[01] 501 50[01]$' "MAIL TO:, bare MAIL, malformed path: 501 (or 500)"
like "$(cut -d' ' -f9 <<<"$codes")" '^555$' "unknown MAIL parameter 555"
like "$(cut -d' ' -f10 <<<"$codes")" '^5(01|55)$' "SIZE=abc refused"
is "$(cut -d' ' -f11-14 <<<"$codes")" "250 501 501 555" "after good MAIL: empty/unterminated RCPT 501, unknown RCPT parameter 555"
like "$(cut -d' ' -f15 <<<"$codes")" '^5[05][0-9]$' "RCPT TO:<> refused"
is "$(cut -d' ' -f16-19 <<<"$codes")" "250 501 221 closed" "session continues after syntax errors; RSET with an argument 501"

# --- byte-exact delivery -------------------------------------------------------------
# msg.lf is what must arrive (after the Received: header); msg.wire is the
# CRLF, dot-stuffed form sent after DATA, ending in CRLF.CRLF.
"$SLUICE_PYTHON" - "$RUN" <<'EOF'
import sys
run = sys.argv[1]
lines = [
    b"From: Alice <alice@example.org>",
    b"To: Bob <bob@sluice.test>",
    b"Subject: byte exact =?utf-8?q?t=C3=A9st?=",
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000",
    b"Message-ID: <byte-exact@example.org>",
    b"MIME-Version: 1.0",
    b"Content-Type: text/plain; charset=utf-8",
    b"Content-Transfer-Encoding: 8bit",
    b"X-Folded: first part",
    b"\tsecond part",
    b"",
    b"plain line",
    b".leading dot",
    b"..two leading dots",
    b".",
    b"...",
    b" leading and trailing space ",
    b"\ttab\tseparated\t",
    "8-bit UTF-8: grüße, 日本語, emoji \U0001F600".encode(),
    b"8-bit latin-1: \xe9\xe8\xff\xfe",
    b"NUL here:\x00:after the NUL\x00\x00",
    b"",
    b"",
    b"x" * 998,
    b"From the start of a line (no mbox quoting please)",
    b"last line",
]
open(run + "/msg.lf", "wb").write(b"\n".join(lines) + b"\n")
wire = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)
open(run + "/msg.wire", "wb").write(wire + b".\r\n")
EOF
mkdir -p "$MD"
{
	printf 'EHLO client.test\\r\\n\n'
	printf 'MAIL FROM:<alice@example.org> BODY=8BITMIME\\r\\n\n'
	printf 'RCPT TO:<bob@sluice.test>\\r\\n\n'
	printf 'DATA\\r\\n\n'
	raw_escape <"$RUN/msg.wire"
	printf '\nQUIT\\r\\n\n'
} >"$RUN/chat.raw"
out=$(smtp_chat --raw <"$RUN/chat.raw")
is "$(reply_codes <<<"$out")" "220 250 250 250 354 250 221 closed" "message with dots, 8-bit and NUL accepted"
like "$out" $'\n250 2\\.0\\.0 ' "end of DATA answered 250 2.0.0"
is "$(maildir_count "$MD")" 1 "one file in Maildir/new"
f=$(newest_file "$MD/new")
strip_received "$f" >"$RUN/got.lf"
cmp -s "$RUN/got.lf" "$RUN/msg.lf"
ok $? "delivered message is byte-exact (dot-unstuffed, LF, 8-bit and NUL kept)" ||
	diag "$(diff <(od -c "$RUN/msg.lf") <(od -c "$RUN/got.lf") | head -20)"
rcv=$(first_received "$f")
like "$rcv" '^Received: from client\.test' "Received: names the HELO"
like "$rcv" '\[127\.0\.0\.1\]' "Received: has the client address"
like "$rcv" 'by mx\.sluice\.test' "Received: by the configured hostname"
like "$rcv" 'with E?SMTP' "Received: with ESMTP"
like "$rcv" ';.*[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [-+][0-9]{4}' "Received: ends with an RFC 5322 date"
[ "$(grep -c '^Received:' "$f")" = 1 ]
ok $? "exactly one Received: header added"

# --- several transactions in one session; RSET drops a transaction ------------
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
RSET
MAIL FROM:<>
RCPT TO:<bob@sluice.test>
RCPT TO:<carol@sluice.test>
DATA
Subject: second

bounce-like message with null sender
.
MAIL FROM:<alice@example.org>
RCPT TO:<bob@sluice.test>
DATA
Subject: third

third
.
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 250 250 250 250 354 250 250 250 354 250 221 closed" \
	"two messages in one session, null sender accepted"
is "$(maildir_count "$MD")" 3 "both delivered, the RSET one was not"
grep -lq '^Subject: second' "$MD"/new/* && grep -lq '^Subject: third' "$MD"/new/*
ok $? "both messages found by Subject"
