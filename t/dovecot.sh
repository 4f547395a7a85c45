#!/bin/bash
# t/dovecot.sh - a private, throw-away Dovecot instance (tests, bench):
# an LMTP server on loopback and the authentication service's client socket.
#
#   dovecot.sh create DIR LMTP_PORT
#   dovecot.sh adduser DIR USER PASSWORD   # SHA512-CRYPT in DIR/users
#   dovecot.sh start  DIR [TIMEOUT_S]      # returns once LMTP answers "220"
#   dovecot.sh stop   DIR
#   dovecot.sh pid    DIR                  # the master's PID
#
# Users are those of DIR/users (passwd-file: user:{SCHEME}hash::::: lines);
# LMTP delivers for them only ("550 5.1.1 ... User doesn't exist" for the
# rest) into the Maildir DIR/mail/USER/Maildir, as uid/gid 65534.  The
# authentication client socket (auth/dovecot) is DIR/run/auth-client,
# mechanisms PLAIN and LOGIN, plaintext allowed; the log is DIR/dovecot.log.
# Must run as root (Dovecot drops to its own users).  Every wait is bounded.
set -euo pipefail

cmd=${1:?command}
D=${2:?directory}

create() {
	local port=${1:?lmtp port}
	mkdir -p "$D/run" "$D/mail"
	chmod 755 "$D"
	chown nobody:nogroup "$D/mail"
	: >"$D/users"
	chmod 644 "$D/users"
	cat >"$D/dovecot.conf" <<EOT
protocols = lmtp
base_dir = $D/run
instance_name = sluice-test-$$
listen = 127.0.0.1
log_path = $D/dovecot.log
info_log_path = $D/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 65534
last_valid_uid = 65534
first_valid_gid = 65534
mail_location = maildir:$D/mail/%n/Maildir
passdb {
  driver = passwd-file
  args = scheme=CRYPT username_format=%n $D/users
}
userdb {
  driver = passwd-file
  args = username_format=%n $D/users
  default_fields = uid=65534 gid=65534 home=$D/mail/%n
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $port
  }
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
EOT
	echo "$port" >"$D/lmtp_port"
}

adduser() {
	local user=${1:?user} pass=${2:?password} hash
	hash=$(doveadm pw -s SHA512-CRYPT -p "$pass")
	echo "$user:$hash::::::" >>"$D/users"
}

start() {
	local timeout=${1:-20} port i
	port=$(cat "$D/lmtp_port")
	dovecot -c "$D/dovecot.conf"
	for ((i = 0; i < timeout * 10; i++)); do
		if [ -S "$D/run/auth-client" ] &&
		    exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
			local greet=""
			read -r -t 2 greet <&3 || true
			exec 3<&-
			case $greet in 220*) return 0 ;; esac
		fi
		sleep 0.1
	done
	echo "dovecot.sh: $D did not answer on 127.0.0.1:$port" >&2
	cat "$D/dovecot.log" >&2 2>/dev/null || true
	return 1
}

pid() { cat "$D/run/master.pid" 2>/dev/null; }

stop() {
	local p i
	p=$(pid || true)
	[ -n "$p" ] || return 0
	dovecot -c "$D/dovecot.conf" stop 2>/dev/null || kill "$p" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$p" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$p" 2>/dev/null || true
}

case $cmd in
create) create "${@:3}" ;;
adduser) adduser "${@:3}" ;;
start) start "${@:3}" ;;
stop) stop ;;
pid) pid ;;
*)
	echo "dovecot.sh: unknown command $cmd" >&2
	exit 2
	;;
esac
