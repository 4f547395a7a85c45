#!/bin/bash
# plugin headers: missing required headers, repeated singular ones, a
# malformed Date:, a Date: too far ahead or behind, and too many
# Received: headers each get their 554 at the end of DATA; good messages
# (obsolete but valid date forms included) are declined and delivered.
. "$SLUICE_SRC/t/lib.sh"
export LC_ALL=C

plan 24
setup_run

write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
max_errors 100
plugin headers
plugin queue/discard
EOF
sluice_start "$RUN/smtpd.conf"

NOW=$(date -u -R)

# msg_reply HEADER-LINE...: sends a message with these header lines and
# prints the reply to its final dot
msg_reply() {
	{
		echo "HELO client.test"
		echo "MAIL FROM:<alice@example.org>"
		echo "RCPT TO:<bob@sluice.test>"
		echo "DATA"
		printf '%s\n' "$@"
		echo ""
		echo "body"
		echo "."
		echo "QUIT"
	} | smtp_chat | awk 'f && /^[0-9][0-9][0-9] / { print; exit } /^354 / { f = 1 }'
}

# --- declined ------------------------------------------------------------
like "$(msg_reply "From: a@example.org" "Date: $NOW" "Subject: ok")" '^250 ' \
	"From and a current Date: declined, 250"
like "$(msg_reply "from: a@example.org" "DATE: $NOW")" '^250 ' \
	"header names match without regard to case"
like "$(msg_reply "From: a@example.org" "Date: $(date -u '+%-d %b %Y %H:%M GMT')")" '^250 ' \
	"no day name, no seconds, obsolete zone GMT: accepted"
like "$(msg_reply "From: a@example.org" "Date: $(date -u '+%a, %d %b %Y %H:%M:%S +0000') (UTC)")" '^250 ' \
	"a trailing comment after the zone is accepted"
like "$(msg_reply "From: a@example.org" "Date: $(date -u '+%a,')" "	$(date -u '+%d %b %Y %T -0000')")" '^250 ' \
	"a folded Date: header is accepted"
like "$(msg_reply "From: a@example.org" "Date: $(date -u '+%a, %d %b %y %T Z')")" '^250 ' \
	"2-digit obsolete year and military zone: accepted"
like "$(msg_reply "From: a@example.org" "Date: $NOW" "Comments: one" "Comments: two")" '^250 ' \
	"repeating a header that is not singular is fine"

# --- required ---------------------------------------------------------------
is "$(msg_reply "From: a@example.org" "Subject: no date")" \
	"554 5.6.0 Message has no Date: header" "missing Date: 554 5.6.0"
is "$(msg_reply "Date: $NOW" "Subject: no from")" \
	"554 5.6.0 Message has no From: header" "missing From: 554 5.6.0"

# --- singular -----------------------------------------------------------------
is "$(msg_reply "From: a@example.org" "Date: $NOW" "Subject: one" "Subject: two")" \
	"554 5.6.0 Message has 2 Subject: headers" "two Subject: headers: 554 5.6.0"
is "$(msg_reply "From: a@example.org" "Date: $NOW" "Message-ID: <1@x>" "message-id: <2@x>" "Message-Id: <3@x>")" \
	"554 5.6.0 Message has 3 Message-ID: headers" "three Message-ID: headers (any case): 554 5.6.0"

# --- Date ------------------------------------------------------------------------
for bad in "2024-01-01T00:00:00Z" "$(date -u '+%a, %d %b %Y %T')" \
	"$(date -u '+%a, %d %b %Y %T CEST')" "Mon, 31 Jun 2025 10:00:00 +0000"; do
	is "$(msg_reply "From: a@example.org" "Date: $bad")" \
		"554 5.6.0 Malformed Date header" "malformed Date '$bad': 554 5.6.0"
done
is "$(msg_reply "From: a@example.org" "Date: $(date -u -R -d '+5 days')")" \
	"554 5.6.0 Date header too far in the future" "Date 5 days ahead (future=2): 554 5.6.0"
like "$(msg_reply "From: a@example.org" "Date: $(date -u -R -d '+1 day')")" '^250 ' \
	"Date 1 day ahead: accepted"
is "$(msg_reply "From: a@example.org" "Date: $(date -u -R -d '-40 days')")" \
	"554 5.6.0 Date header too far in the past" "Date 40 days back (past=30): 554 5.6.0"

# --- hops -----------------------------------------------------------------------------
rcvd() {
	local i
	for ((i = 0; i < $1; i++)); do
		echo "Received: from hop$i.example by hop$((i + 1)).example; $NOW"
	done
}
mapfile -t r49 < <(rcvd 49)
mapfile -t r51 < <(rcvd 51)
like "$(msg_reply "${r49[@]}" "From: a@example.org" "Date: $NOW")" '^250 ' \
	"49 Received: headers: accepted"
is "$(msg_reply "${r51[@]}" "From: a@example.org" "Date: $NOW")" \
	"554 5.4.6 Too many hops (mail loop?)" "51 Received: headers (max_received=50): 554 5.4.6"

grep -q 'plugin=headers verdict=deny reason=repeated header=Subject' "$RUN/smtpd.log"
ok $? "a denial is logged with reason and header"
sluice_stop

# --- options: other required, checks off -------------------------------------------
unset PORT
write_conf "$RUN/opts.conf" <<EOF
local_domains sluice.test
max_errors 100
plugin headers required=Message-ID singular= future=0 past=0 max_received=2
plugin queue/discard
EOF
sluice_start "$RUN/opts.conf"
out="$(msg_reply "Subject: a" "Subject: b" "Date: Thu, 1 Jan 1998 00:00:00 +0000" "Message-ID: <x@y>")"
like "$out" '^250 ' "required=Message-ID, singular= empty, past=0: old date and two Subjects accepted"
is "$(msg_reply "From: a@example.org")" "554 5.6.0 Message has no Message-ID: header" \
	"required=Message-ID: missing Message-ID refused"
mapfile -t r3 < <(rcvd 3)
is "$(msg_reply "${r3[@]}" "Message-ID: <x@y>")" "554 5.4.6 Too many hops (mail loop?)" \
	"max_received=2: three Received: headers refused"
