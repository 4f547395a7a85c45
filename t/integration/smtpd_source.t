#!/bin/bash
# sluice-smtpd driven by Postfix's smtp-source: 20 messages over 5
# concurrent sessions (several messages per connection); all arrive.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

command -v smtp-source >/dev/null 2>&1 || skip_all "smtp-source (package postfix) not installed"
plan 5
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

timeout 60 smtp-source -d -s 5 -m 20 -l 2000 -M client.test -f alice@example.org \
	-t bob@sluice.test -S "from smtp-source" "127.0.0.1:$PORT" >"$RUN/source.out" 2>&1
ok $? "smtp-source -d -s 5 -m 20 exits 0" || diag "$(cat "$RUN/source.out")"
WAIT_TIMEOUT=5 wait_for eval '[ "$(maildir_count "$MD")" -ge 20 ]'
is "$(maildir_count "$MD")" 20 "20 messages in the Maildir"
is "$(grep -l '^Subject: from smtp-source' "$MD"/new/* | wc -l)" 20 "all of them are smtp-source's"
is "$(grep -c '^Received: from client\.test ' "$MD"/new/* | grep -c ':1$')" 20 "each has one Received: from client.test"

# the same without -d: one message per connection, 10 at a time
timeout 60 smtp-source -s 10 -m 30 -l 500 -M client.test -f alice@example.org \
	-t bob@sluice.test "127.0.0.1:$PORT" >"$RUN/source2.out" 2>&1
WAIT_TIMEOUT=5 wait_for eval '[ "$(maildir_count "$MD")" -ge 50 ]'
is "$(maildir_count "$MD")" 50 "30 more, one per connection, 10 connections at a time"
