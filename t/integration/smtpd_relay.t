#!/bin/bash
# sluice-smtpd: relay control.  Local domains from anyone; other domains
# only from relay_clients; routed forms (%-hack, bang path, quoted local part
# holding @ or %, source route) never relayed for a non-relay client.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

plan 19
setup_run
MD=$RUN/Maildir
mkdir -p "$MD"
write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test example.test
relay_clients 127.0.0.2/32 192.0.2.0/24
max_errors 100
plugin queue/maildir path=$MD
EOF
sluice_start "$RUN/smtpd.conf"

# rcpt_reply [--bind ADDR] ADDRESS: the reply (last line) to RCPT TO:ADDRESS
rcpt_reply() {
	local bind=()
	if [ "$1" = --bind ]; then
		bind=(--bind "$2")
		shift 2
	fi
	smtp_chat "${bind[@]}" <<EOF | grep -E '^[0-9]{3}( |$)' | sed -n 4p
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:$1
QUIT
EOF
}

for a in '<bob@sluice.test>' '<bob@SLUICE.Test>' '<bob@example.test>' '<postmaster>' '<Postmaster@sluice.test>'; do
	like "$(rcpt_reply "$a")" '^250 ' "non-relay client: local $a accepted"
done

r=$(rcpt_reply '<bob@other.test>')
like "$r" '^55[04] 5\.7\.1 ' "non-relay client: <bob@other.test> refused 550/554 5.7.1"
like "$(rcpt_reply '<bob@sub.sluice.test>')" '^5[0-9][0-9] ' "a subdomain of a local domain is not local"

for a in '<bob%other.test@sluice.test>' '<other.test!bob@sluice.test>' \
	'<"bob@other.test"@sluice.test>' '<"bob%other.test"@sluice.test>' \
	'<@sluice.test:bob@other.test>' '<@sluice.test,@example.test:bob@other.test>' \
	'<bob%other.test%sluice.test@sluice.test>' '<"other.test!bob"@sluice.test>'; do
	like "$(rcpt_reply "$a")" '^5[0-9][0-9] ' "non-relay client: routed $a refused"
done

like "$(rcpt_reply --bind 127.0.0.2 '<bob@other.test>')" '^250 ' "relay client 127.0.0.2: <bob@other.test> accepted"
like "$(rcpt_reply --bind 127.0.0.3 '<bob@other.test>')" '^55[04] 5\.7\.1 ' "127.0.0.3 is not a relay client"

# a whole relayed transaction from the relay client, and a refused
# recipient leaves the good one in place
out=$(smtp_chat --bind 127.0.0.2 <<'EOF'
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@other.test>
RCPT TO:<carol@sluice.test>
DATA
Subject: relayed

hello
.
QUIT
EOF
)
is "$(reply_codes <<<"$out")" "220 250 250 250 250 354 250 221 closed" "relay client: message for a remote and a local recipient accepted"
out=$(smtp_chat <<'EOF'
EHLO client.test
MAIL FROM:<alice@example.org>
RCPT TO:<bob@other.test>
RCPT TO:<carol@sluice.test>
DATA
Subject: partly refused

hello
.
QUIT
EOF
)
like "$(reply_codes <<<"$out")" '^220 250 250 55[04] 250 354 250 221 closed$' "non-relay client: remote refused, local one still delivered"
