#!/bin/bash
# The core resolver (shared/resolver.c) against a real authoritative
# server (NSD via t/nsd.sh), driven by t/plugins/test_dns.c: A, AAAA
# (through a CNAME too), TXT, PTR, MX, null MX, NXDOMAIN with the SOA's
# negative TTL, NODATA, REFUSED, the cache and its TTL expiry, a lookup
# started at MAIL and collected at RCPT, and a server that never answers
# (451 timeout, no stall).
. "$SLUICE_SRC/t/lib.sh"

command -v nsd >/dev/null && command -v dig >/dev/null ||
	skip_all "nsd or dig missing (make deps installs nsd, bind9-dnsutils)"

plan 20
setup_run

NSD_PORT=$(free_port)
"$SLUICE_SRC/t/nsd.sh" create "$RUN/nsd" "$NSD_PORT"
nsd_start "$RUN/nsd"

write_conf "$RUN/smtpd.conf" <<EOF
local_domains sluice.test
log_level debug
loop_threads 1
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s
plugin test_dns
plugin queue/discard
EOF
sluice_start "$RUN/smtpd.conf"

# helo dns-TYPE.NAME: the reply to the HELO
helo() {
	printf 'HELO %s\nQUIT\n' "$1" | smtp_chat | sed -n 2p
}

like "$(helo dns-a.a-only.sluice.test)" \
	'^550 5\.7\.1 dns status=ok error=ok count=1 ttl=60 cached=no rr=192\.0\.2\.30$' "A record"
like "$(helo dns-a.a-only.sluice.test)" \
	'^550 5\.7\.1 dns status=ok error=ok count=1 ttl=[0-9]+ cached=yes rr=192\.0\.2\.30$' \
	"the same query again comes from the cache"
is "$(grep -c 'dns query name=a-only.sluice.test type=A' "$RUN/smtpd.log")" 1 \
	"only one query went to the server for it"
like "$(helo dns-aaaa.v6.sluice.test)" 'status=ok error=ok count=1 .* rr=2001:db8::30$' "AAAA record"
like "$(helo dns-a.alias.sluice.test)" 'status=ok error=ok count=1 .* rr=192\.0\.2\.30$' \
	"A through a CNAME"
like "$(helo dns-txt.txt.sluice.test)" 'status=ok error=ok count=1 .* rr=hello worldsecond string$' \
	"TXT: the strings joined"
like "$(helo dns-ptr.192.0.2.10)" '^550 5\.7\.1 dns status=ok error=ok count=1 .* rr=good\.fcrdns\.sluice\.test$' \
	"PTR from a numeric address"
like "$(helo dns-mx.sluice.test)" '^550 5\.7\.1 dns status=ok error=ok count=1 .* rr=10/mx\.sluice\.test$' \
	"MX with its preference"
like "$(helo dns-mx.nullmx.sluice.test)" 'status=ok error=ok count=1 .* rr=0/$' "null MX (RFC 7505)"
like "$(helo dns-a.10.2.0.192.dnsbl.sluice.test)" \
	'status=ok error=ok count=2 .* rr=127\.0\.0\.(2\|127\.0\.0\.4|4\|127\.0\.0\.2)$' \
	"DNSBL entry with two A records"
like "$(helo dns-a.nope.sluice.test)" '^550 5\.7\.1 dns status=nxdomain error=nxdomain count=0 ttl=5 cached=no rr=$' \
	"NXDOMAIN, negative TTL from the SOA minimum"
like "$(helo dns-a.nope.sluice.test)" '^550 5\.7\.1 dns status=nxdomain .* cached=yes' \
	"NXDOMAIN is cached"
like "$(helo dns-mx.nomx.sluice.test)" '^550 5\.7\.1 dns status=nodata error=nodata count=0 ttl=5 ' \
	"NODATA (a name with only A) is told apart from NXDOMAIN"
like "$(helo dns-a.outside.example)" '^451 4\.7\.1 dns status=servfail ' \
	"a name outside the served zones (REFUSED): 451"

like "$(helo dns-a.short.sluice.test)" 'status=ok error=ok count=1 ttl=1 cached=no rr=192\.0\.2\.40$' \
	"a record with TTL 1"
short_fresh() { helo dns-a.short.sluice.test | grep -q 'cached=no'; }
wait_for short_fresh
ok $? "after its TTL the record is asked for again"

out=$(printf 'HELO client.test\nMAIL FROM:<x@mx.sluice.test>\nRCPT TO:<bob@sluice.test>\nQUIT\n' |
	smtp_chat | sed -n 3,4p | tr '\n' ' ')
like "$out" '^250 .* 550 5\.7\.1 rcpt dns status=ok error=ok count=1 .* rr=127\.0\.0\.1 $' \
	"started at MAIL, collected at RCPT"
like "$(cat "$RUN/smtpd.log")" 'dns started name=mx\.sluice\.test at=mail' \
	"the MAIL hook started it"

# A server that never answers: the session gets a timeout result.
sluice_stop
SILENT_PORT=$(free_port)
udp_silent "$SILENT_PORT"
write_conf "$RUN/smtpd2.conf" <<EOF
dns_servers 127.0.0.1:$SILENT_PORT
dns_timeout 500ms
plugin test_dns
EOF
sluice_start "$RUN/smtpd2.conf"
like "$(helo dns-a.a-only.sluice.test)" '^451 4\.7\.1 dns status=timeout error=timeout count=0 ' \
	"no answer: 451 with the timeout result"
like "$(printf 'HELO client.test\nNOOP\nQUIT\n' | smtp_chat | sed -n 3p)" '^250' \
	"the daemon still answers"
