#!/bin/bash
# t/pf-instance.sh - a private, throw-away Postfix instance (tests, bench).
#
#   pf-instance.sh create DIR SMTPD_PORT [maildir|discard] [MILTERS]
#   pf-instance.sh start  DIR [TIMEOUT_S]   # returns once smtpd answers "220"
#   pf-instance.sh stop   DIR
#   pf-instance.sh pid    DIR               # the master's PID
#   pf-instance.sh drain  DIR [TIMEOUT_S]   # waits until the queue is empty
#   pf-instance.sh log    DIR               # what Postfix logged (maillog_file)
#
# Mail for any user@sluice.test is delivered by virtual(8) into the Maildir
# DIR/mail/inbox/ (mode maildir, the default) or dropped by discard(8) (mode
# discard).  MILTERS is a Postfix milter list (empty = none).  Tweak with
#   postconf -c DIR/etc -e 'name = value' && postfix -c DIR/etc reload
# Must run as root; DIR must be reachable by the "postfix" user (0755 path).
# Every wait is bounded; the instance is stopped through its own master.
set -euo pipefail

cmd=${1:?command}
D=${2:?directory}

create() {
	local port=${1:?smtpd port} mode=${2:-maildir} milters=${3:-}
	mkdir -p "$D/etc" "$D/spool" "$D/mail"
	chmod 755 "$D" "$D/etc" "$D/spool" # spool must exist before "postfix start"
	chown nobody:nogroup "$D/mail"     # virtual(8) delivers as uid/gid 65534
	cat >"$D/etc/main.cf" <<EOT
compatibility_level = 3.6
queue_directory = $D/spool
data_directory = $D/data
mail_owner = postfix
myhostname = mx.sluice.test
mydomain = sluice.test
myorigin = \$mydomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
smtpd_banner = \$myhostname ESMTP sluice-test-postfix
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtp_dns_support_level = disabled
smtp_host_lookup = native
maillog_file = $D/maillog
maillog_file_prefixes = $D
smtpd_milters = $milters
non_smtpd_milters = \$smtpd_milters
milter_protocol = 6
milter_default_action = tempfail
virtual_mailbox_domains = sluice.test
virtual_mailbox_base = $D/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
in_flow_delay = 0
smtpd_error_sleep_time = 0
default_process_limit = 150
EOT
	if [ "$mode" = discard ]; then
		echo "virtual_transport = discard:" >>"$D/etc/main.cf"
	fi
	cat >"$D/etc/master.cf" <<EOT
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
proxywrite unix - - n -    1 proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
local     unix  - n n -    - local
virtual   unix  - n n -    - virtual
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
EOT
	# Postfix re-reads a main.cf/master.cf younger than ~2 s (300 ms steps)
	touch -d '-1 min' "$D/etc/main.cf" "$D/etc/master.cf"
	echo "$port" >"$D/smtpd.port"
}

start() {
	local t=${1:-15} port i line
	port=$(cat "$D/smtpd.port")
	postfix -c "$D/etc" start 2>>"$D/postfix.stderr" || {
		cat "$D/postfix.stderr" "$D/maillog" >&2 2>/dev/null
		return 1
	}
	for ((i = 0; i < t * 50; i++)); do
		if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
			line=
			IFS= read -r -t 2 line <&3 || true
			printf 'QUIT\r\n' >&3 2>/dev/null || true
			exec 3<&- 3>&-
			[[ $line == 220* ]] && return 0
		fi
		sleep 0.02
	done
	echo "postfix on port $port not ready after ${t}s" >&2
	return 1
}

stop() {
	# "postfix stop" signals the master and waits up to 5 s (then SIGKILLs
	# its process group); the children exit with it.
	[ -f "$D/spool/pid/master.pid" ] || return 0
	postfix -c "$D/etc" stop 2>>"$D/postfix.stderr" || true
}

pid() {
	local p
	read -r p <"$D/spool/pid/master.pid"
	echo "$p"
}

drain() {
	local t=${1:-60} i
	for ((i = 0; i < t * 10; i++)); do
		[ -z "$(find "$D/spool/incoming" "$D/spool/active" "$D/spool/deferred" \
			"$D/spool/maildrop" -type f 2>/dev/null | head -n 1)" ] && return 0
		sleep 0.1
	done
	return 1
}

case $cmd in
create)
	shift 2
	create "$@"
	;;
start)
	shift 2
	start "$@"
	;;
stop) stop ;;
pid) pid ;;
drain)
	shift 2
	drain "$@"
	;;
log) cat "$D/maillog" ;;
*)
	echo "unknown command $cmd" >&2
	exit 2
	;;
esac
