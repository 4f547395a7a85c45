#!/bin/bash
# t/nsd.sh - a private, throw-away NSD (authoritative DNS server) for tests.
#
#   nsd.sh create DIR PORT           # config + the standard test zones
#   nsd.sh zone   DIR NAME FILE      # serve one more zone (before start)
#   nsd.sh start  DIR [TIMEOUT_S]    # returns once sluice.test SOA answers
#   nsd.sh stop   DIR
#   nsd.sh pid    DIR                # the main NSD process's PID
#   nsd.sh hdr    NAME [MIN] [TTL]   # print a zone's head: $ORIGIN, $TTL
#                                    # (60), SOA with minimum MIN (30), NS
#
# NSD listens on 127.0.0.1:PORT (UDP and TCP), runs in the foreground
# (nsd -d, started in the background by "start"), and logs to DIR/nsd.log
# at verbosity 2.  Only reserved names are used (RFC 6761 .test, RFC 5737
# 192.0.2.0/24); a name outside the served zones gets REFUSED.  The
# standard zones (TTL 60 unless said):
#
#   sluice.test           MX 10 mx; mx A 127.0.0.1 + AAAA ::1;
#                         a-only A 192.0.2.30; v6 AAAA 2001:db8::30;
#                         alias CNAME a-only; nullmx MX 0 . (RFC 7505);
#                         nomx A 192.0.2.31 (no MX: nodata);
#                         txt TXT "hello world" + "second string";
#                         short A 192.0.2.40 TTL 1; shorttxt TXT TTL 2
#   dnsbl.sluice.test     2.0.0.127 A 127.0.0.2 + TXT; 10.2.0.192 A
#                         127.0.0.2, 127.0.0.4 + TXT; the rest NXDOMAIN
#   fcrdns.sluice.test    good A 192.0.2.10 (PTR matches); other A
#                         192.0.2.99 (PTR of 192.0.2.11 points here: no match)
#   2.0.192.in-addr.arpa  10 -> good.fcrdns.sluice.test; 11 ->
#                         other.fcrdns.sluice.test; 12 -> gone.fcrdns.sluice.test
#                         (NXDOMAIN); the rest NXDOMAIN
#   127.in-addr.arpa      1 -> localhost.sluice.test
#
# Negative answers are cached for the SOA minimum: 30 s (5 s in sluice.test).
# Every wait is bounded; "stop" ends only the PID recorded by "start".
set -euo pipefail

cmd=${1:?command}

hdr() { # zone header: origin, default TTL ($3, 60), SOA (minimum = $2), NS
	printf '$ORIGIN %s.\n$TTL %s\n' "$1" "${3:-60}"
	printf '@ SOA ns.sluice.test. hostmaster.sluice.test. 1 3600 600 86400 %s\n' "$2"
	printf '@ NS ns.sluice.test.\n'
}

add_zone() { # NAME FILE
	cat >>"$D/nsd.conf" <<EOT
zone:
    name: "$1"
    zonefile: "$2"
EOT
}

create() {
	local port=${1:?port} z
	mkdir -p "$D/zones"
	cat >"$D/nsd.conf" <<EOT
server:
    ip-address: 127.0.0.1@$port
    do-ip4: yes
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$D/zones"
    database: ""
    zonelistfile: "$D/zone.list"
    xfrdfile: "$D/xfrd.state"
    xfrdir: "$D"
    pidfile: "$D/nsd.pid"
    logfile: "$D/nsd.log"
    server-count: 1
    verbosity: 2
    # no response rate limiting (on by default: 200 answers/s per /24,
    # then drops and truncation), which loaded runs and benchmarks exceed
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    log-time-ascii: yes
remote-control:
    control-enable: no
EOT
	echo "$port" >"$D/port"
	{
		hdr sluice.test 5
		cat <<'Z'
@        MX 10 mx
@        A 127.0.0.1
ns       A 127.0.0.1
mx       A 127.0.0.1
mx       AAAA ::1
localhost A 127.0.0.1
a-only   A 192.0.2.30
v6       AAAA 2001:db8::30
alias    CNAME a-only
nullmx   MX 0 .
nomx     A 192.0.2.31
txt      TXT "hello world" "second string"
short 1  A 192.0.2.40
shorttxt 2 TXT "short lived"
Z
	} >"$D/zones/sluice.test.zone"
	{
		hdr dnsbl.sluice.test 30
		cat <<'Z'
2.0.0.127   A 127.0.0.2
2.0.0.127   TXT "listed: test entry 127.0.0.2"
10.2.0.192  A 127.0.0.2
10.2.0.192  A 127.0.0.4
10.2.0.192  TXT "listed: 192.0.2.10 see https://dnsbl.sluice.test/"
Z
	} >"$D/zones/dnsbl.sluice.test.zone"
	{
		hdr fcrdns.sluice.test 30
		cat <<'Z'
good   A 192.0.2.10
other  A 192.0.2.99
Z
	} >"$D/zones/fcrdns.sluice.test.zone"
	{
		hdr 2.0.192.in-addr.arpa 30
		cat <<'Z'
10  PTR good.fcrdns.sluice.test.
11  PTR other.fcrdns.sluice.test.
12  PTR gone.fcrdns.sluice.test.
Z
	} >"$D/zones/2.0.192.in-addr.arpa.zone"
	{
		hdr 127.in-addr.arpa 30
		printf '1.0.0 PTR localhost.sluice.test.\n'
	} >"$D/zones/127.in-addr.arpa.zone"
	for z in sluice.test dnsbl.sluice.test fcrdns.sluice.test \
	    2.0.192.in-addr.arpa 127.in-addr.arpa; do
		add_zone "$z" "$z.zone"
	done
}

zone() {
	local name=${1:?zone name} file=${2:?zone file}
	cp "$file" "$D/zones/$name.zone"
	add_zone "$name" "$name.zone"
}

pid() {
	cat "$D/nsd.main.pid"
}

start() {
	local t=${1:-10} i port p
	port=$(cat "$D/port")
	nsd-checkconf "$D/nsd.conf"
	nsd -d -c "$D/nsd.conf" </dev/null >>"$D/nsd.out" 2>&1 &
	p=$!
	echo "$p" >"$D/nsd.main.pid"
	for ((i = 0; i < t * 10; i++)); do
		if ! kill -0 "$p" 2>/dev/null; then
			echo "nsd.sh: nsd exited; see $D/nsd.log" >&2
			return 1
		fi
		if [ -n "$(dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 \
		    sluice.test SOA 2>/dev/null)" ]; then
			return 0
		fi
		sleep 0.1
	done
	echo "nsd.sh: no answer on 127.0.0.1:$port after ${t}s" >&2
	kill "$p" 2>/dev/null || true
	return 1
}

stop() {
	local p i
	[ -f "$D/nsd.main.pid" ] || return 0
	p=$(cat "$D/nsd.main.pid")
	kill "$p" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$p" 2>/dev/null || true
	rm -f "$D/nsd.main.pid"
}

if [ "$cmd" = hdr ]; then
	hdr "${2:?zone name}" "${3:-30}" "${4:-60}"
	exit 0
fi
D=${2:?directory}

case $cmd in
create) create "${3:-}" ;;
zone) zone "${3:-}" "${4:-}" ;;
start) start "${3:-10}" ;;
stop) stop ;;
pid) pid ;;
*)
	echo "nsd.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
