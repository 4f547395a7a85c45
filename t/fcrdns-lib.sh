#!/bin/bash
# t/fcrdns-lib.sh - what t/integration/plugin_fcrdns.t and plugin_helo.t
# share; sourced after t/lib.sh and setup_run.
#
#   fc_dns_start        a private NSD (t/nsd.sh) with the standard zones and
#                       the ones below; sets NSD_PORT, and SLUICE_CONF_BASE
#                       (sluice_restart) to use it, with 127.0.0.1 a trusted
#                       proxy and 192.0.2.0/24 relay clients
#   fc_silent_dns       a UDP port where nobody answers; sets SILENT_PORT
#                       and points SLUICE_CONF_BASE there (dns_timeout 500ms)
#   fc_session ADDR HELO [RCPT...]
#                       XCLIENT ADDR=ADDR from the trusted proxy, EHLO HELO,
#                       MAIL, one RCPT each (default bob@sluice.test), QUIT;
#                       prints the dialogue
#   fc_reply N DIALOGUE the N-th complete reply line (1 = the banner)
#   fc_pf_start         sluice-milterd (its plugin lines on stdin) behind a
#                       private Postfix (t/pf-instance.sh, discard mode);
#                       false, with FC_PF_WHY set, when that cannot run here
#   fc_pf_send ADDR HELO  one message through that Postfix, the client
#                       address (IPv4: the instance has inet_protocols ipv4)
#                       and HELO faked with XCLIENT; prints swaks' dialogue
#
# Zones (TTL 60; negative answers cached 30 s):
#   fc.test                  good A 198.51.100.1; mism A 203.0.113.2;
#                            first A 203.0.113.4; second A 198.51.100.4;
#                            n1, n2 A 203.0.113.9; n3 A 198.51.100.9;
#                            noaddr TXT only; good6 AAAA 2001:db8::1
#   100.51.198.in-addr.arpa  1 good (matches); 2 mism (mismatch); 3 gone
#                            (NXDOMAIN: dangling); 4 first + second (the
#                            second matches); 5 nothing (NXDOMAIN); 6 TXT
#                            only (NODATA); 7 host.unserved.example
#                            (REFUSED: SERVFAIL); 8 "bad name" (no host
#                            name); 9 n1 n2 n3 (the third matches);
#                            10 noaddr (no A)
#   8.b.d.0.1.0.0.2.ip6.arpa 2001:db8::1 good6 (matches); 2001:db8::2 good
#                            (A only); the rest NXDOMAIN
# 203.0.113.0/24 has no reverse zone here: its PTR queries are REFUSED.

fc_zone_hdr() { "$SLUICE_SRC/t/nsd.sh" hdr "$1" 30; }

fc_dns_start() {
	local nsd=$RUN/nsd r6=0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0
	NSD_PORT=$(free_port)
	"$SLUICE_SRC/t/nsd.sh" create "$nsd" "$NSD_PORT"
	{
		fc_zone_hdr fc.test
		cat <<'Z'
good     A 198.51.100.1
mism     A 203.0.113.2
first    A 203.0.113.4
second   A 198.51.100.4
n1       A 203.0.113.9
n2       A 203.0.113.9
n3       A 198.51.100.9
noaddr   TXT "no address here"
good6    AAAA 2001:db8::1
Z
	} >"$RUN/fc.test.zone"
	{
		fc_zone_hdr 100.51.198.in-addr.arpa
		cat <<'Z'
1   PTR good.fc.test.
2   PTR mism.fc.test.
3   PTR gone.fc.test.
4   PTR first.fc.test.
4   PTR second.fc.test.
6   TXT "a name without PTR"
7   PTR host.unserved.example.
8   PTR bad\032name.fc.test.
9   PTR n1.fc.test.
9   PTR n2.fc.test.
9   PTR n3.fc.test.
10  PTR noaddr.fc.test.
Z
	} >"$RUN/rev4.zone"
	{
		fc_zone_hdr 8.b.d.0.1.0.0.2.ip6.arpa
		echo "1.$r6 PTR good6.fc.test."
		echo "2.$r6 PTR good.fc.test."
	} >"$RUN/rev6.zone"
	"$SLUICE_SRC/t/nsd.sh" zone "$nsd" fc.test "$RUN/fc.test.zone"
	"$SLUICE_SRC/t/nsd.sh" zone "$nsd" 100.51.198.in-addr.arpa "$RUN/rev4.zone"
	"$SLUICE_SRC/t/nsd.sh" zone "$nsd" 8.b.d.0.1.0.0.2.ip6.arpa "$RUN/rev6.zone"
	nsd_start "$nsd"
	SLUICE_CONF_BASE="local_domains sluice.test
trusted_proxies 127.0.0.1/32
relay_clients 192.0.2.0/24
max_errors 100
dns_servers 127.0.0.1:$NSD_PORT
dns_timeout 2s"
}

fc_silent_dns() {
	SILENT_PORT=$(free_port)
	udp_silent "$SILENT_PORT" || {
		echo "Bail out! no silent DNS port"
		exit 1
	}
	SLUICE_CONF_BASE=${SLUICE_CONF_BASE/127.0.0.1:$NSD_PORT/127.0.0.1:$SILENT_PORT}
	SLUICE_CONF_BASE=${SLUICE_CONF_BASE/dns_timeout 2s/dns_timeout 500ms}
}

fc_session() {
	local addr=$1 helo=$2 r
	shift 2
	[ $# -gt 0 ] || set -- bob@sluice.test
	{
		echo "EHLO proxy.test"
		echo "XCLIENT ADDR=$addr"
		echo "EHLO $helo"
		echo "MAIL FROM:<alice@example.org>"
		for r in "$@"; do
			echo "RCPT TO:<$r>"
		done
		echo "QUIT"
	} | smtp_chat
}

fc_reply() {
	grep -E '^[0-9]{3}( |$)' <<<"$2" | sed -n "$1p"
}

fc_pf_start() {
	local pf=$SLUICE_SRC/t/pf-instance.sh mport
	FC_PF_WHY=
	if [ "$(id -u)" != 0 ]; then
		FC_PF_WHY="needs root (private Postfix instance)"
	elif ! command -v postfix >/dev/null 2>&1; then
		FC_PF_WHY="postfix not installed"
	elif ! command -v swaks >/dev/null 2>&1; then
		FC_PF_WHY="swaks not installed"
	fi
	[ -z "$FC_PF_WHY" ] || return 1
	FC_PFD=$RUN/pf
	SPORT=$(free_port)
	mport=$(free_port)
	stop_at_exit "$FC_PFD/maillog" "$pf" stop "$FC_PFD"
	"$pf" create "$FC_PFD" "$SPORT" discard "inet:127.0.0.1:$mport" || {
		echo "Bail out! pf-instance.sh create failed"
		exit 1
	}
	unset PORT
	{
		echo "milter_listen inet:$mport@127.0.0.1"
		cat
	} | write_conf "$RUN/milterd.conf"
	milterd_start "$RUN/milterd.conf"
	"$pf" start "$FC_PFD" 20 || {
		echo "Bail out! private Postfix did not start"
		exit 1
	}
}

fc_pf_send() {
	swaks --server 127.0.0.1 --port "$SPORT" --timeout 20 --helo "$2" \
		--xclient-addr "$1" --xclient-helo "$2" \
		--from alice@example.org --to bob@sluice.test 2>&1
}
