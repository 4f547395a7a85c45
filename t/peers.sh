#!/bin/bash
# t/peers.sh - third-party milters as test peers, hermetic, on loopback.
#
# Source it after t/lib.sh, once setup_run has made $RUN:
#     . "$SLUICE_SRC/t/lib.sh"; . "$SLUICE_SRC/t/peers.sh"; setup_run
#
# start:  peer_opendkim_start sign|verify  -> PEER_OPENDKIM (also
#                                             PEER_OPENDKIM_SIGN/_VERIFY)
#         peer_clamav_start                -> PEER_CLAMAV (clamav-milter
#                                             in front of a private clamd)
#         peer_spamass_start               -> PEER_SPAMASS (spamass-milter
#                                             in front of a private spamd)
# stop:   peer_stop NAME (opendkim-sign, opendkim-verify, clamav, spamass)
#         peer_stop_all                    (also run at exit)
# data:   peer_eicar FILE | peer_eicar_mail FILE | peer_dkim_keys
#         peer_dkim_verify FILE            (Mail::DKIM, a second verifier)
# misc:   peer_available opendkim|clamav|spamass   (else 2, PEER_WHY)
#         peer_milter_ready SPEC [TIMEOUT_S] [PID]
#
# Each PEER_<NAME> is a milter socket spec as Postfix and
# sluice-milter-client write it: inet:PORT@127.0.0.1 or unix:/path.
# A start function returns 0 once the milter answered an option
# negotiation; 2 when its Debian package is missing (PEER_WHY says which:
# skip the tests); 1 when it did not come up (PEER_WHY, and its log on
# diag: fail the tests).
#
# Everything a peer uses lives in $RUN/<peer>/: its own config files,
# sockets (UNIX sockets, or TCP ports from free_port on 127.0.0.1), keys,
# signature database and rules; no system service, config file or
# database is used and nothing needs the network (clamd loads only a
# signature file written here, spamd runs --local with a private rule set,
# opendkim verifies against a key file instead of DNS).
#
# Waits are bounded by PEER_WAIT seconds (30).  Processes are tracked
# with track_pid; peer_stop ends the libmilter milters with SIGKILL (after
# SIGTERM they take up to 5 s to notice) and clamd/spamd with SIGTERM.
#
# The test data (see peer_* below and t/data/peers/spamassassin.cf):
#   DKIM     domain sluice.test, selector test, key made by t/keys.sh;
#            opendkim signs mail whose From: is @sluice.test from 127.0.0.1
#   ClamAV   Sluice.Test.EICAR.* (reported with ".UNOFFICIAL" appended)
#            detects the EICAR test file, Sluice.Test.Marker the string
#            SLUICE-VIRUS-TEST-MARKER-7f3a
#   spamd    SLUICE-SPAM-TEST-MARKER scores 20 (rejected: -r 15),
#            SLUICE-SPAM-TAG-MARKER 8 (tagged: X-Spam-Flag: YES), GTUBE
#            1000, anything else 0
# PEER_OPENDKIM_CONF adds config lines to the next opendkim (e.g.
# "On-BadSignature reject").
#
# What these milters send, as seen through sluice-milter-client:
#   opendkim        "insheader [0] DKIM-Signature:  v=1; ..." (the value
#                   starts with a space, folded with \n\t); in verify mode
#                   "insheader [0] Authentication-Results: ..."
#   clamav-milter   addheader X-Virus-Scanned and X-Virus-Status, also just
#                   before its reject; no HELO, no EOH (protocol bits)
#   spamass-milter  addheader X-Spam-Status (+ X-Spam-Flag: YES on spam);
#                   on tagged spam also a replbody of the unchanged body

: "${PEER_WAIT:=30}"
PEER_DKIM_DOMAIN=sluice.test
PEER_DKIM_SELECTOR='test'
PEER_WHY=
_PEER_PROCS=() # "name pid signal", in start order

# ---------------------------------------------------------------- internals
# _peer_bin CMD: its path, also from /usr/sbin when that is not in PATH
_peer_bin() {
	local p
	p=$(type -P "$1") || p=/usr/sbin/$1
	echo "$p"
}

# _peer_have PKG CMD...: every CMD is installed, else PEER_WHY names the
# package and return 2
_peer_have() {
	local pkg=$1 c
	shift
	for c in "$@"; do
		c=$(_peer_bin "$c")
		if ! [ -f "$c" ] || ! [ -x "$c" ]; then
			PEER_WHY="${c##*/} not installed (Debian package $pkg; run make deps)"
			return 2
		fi
	done
	return 0
}

# peer_available NAME: the packages of peer NAME (opendkim, clamav,
# spamass) are installed; else PEER_WHY says what is missing, return 2
peer_available() {
	PEER_WHY=
	case $1 in
	opendkim)
		_peer_have opendkim opendkim
		;;
	clamav)
		_peer_have clamav-daemon clamd &&
			_peer_have clamav-milter clamav-milter
		;;
	spamass)
		_peer_have spamd spamd && _peer_have spamc spamc &&
			_peer_have spamass-milter spamass-milter || return 2
		compgen -G '/etc/spamassassin/*.pre' >/dev/null || {
			PEER_WHY="no /etc/spamassassin/*.pre (Debian package spamassassin; run make deps)"
			return 2
		}
		if [ "$(id -u)" = 0 ] && ! getent passwd debian-spamd >/dev/null; then
			PEER_WHY="no user debian-spamd (Debian package spamassassin; run make deps)"
			return 2
		fi
		;;
	*)
		echo "Bail out! peer_available: unknown peer '$1'"
		exit 1
		;;
	esac
}


# _peer_spawn NAME SIGNAL LOG CMD...: start CMD in the background, track it
_peer_spawn() {
	local name=$1 sig=$2 log=$3
	shift 3
	"$@" >>"$log" 2>&1 </dev/null &
	_PEER_PID=$!
	track_pid "$_PEER_PID"
	_PEER_PROCS+=("$name $_PEER_PID $sig")
	_peer_trap
}

# _peer_fail NAME WHY LOG...: the peer did not come up: say why, show the
# end of its logs, stop what it started
_peer_fail() {
	local f
	PEER_WHY="$1: $2"
	diag "$PEER_WHY"
	for f in "${@:3}"; do
		[ -s "$f" ] && diag "${f##*/}:
$(tail -n 20 "$f")"
	done
	peer_stop "$1"
	return 1
}

# At exit, stop the peers (quickly) before t/lib.sh's cleanup runs.
_peer_trap() {
	[ -z "${_PEER_TRAPPED:-}" ] || return 0
	case $(trap -p EXIT) in
	*_t_cleanup*)
		trap '_peer_exit' EXIT
		_PEER_TRAPPED=1
		;;
	esac
}

_peer_exit() {
	local rc=$?
	peer_stop_all
	(exit "$rc")
	_t_cleanup
}

# _peer_untrack PID: drop PID from t/lib.sh's list once it is reaped (its
# number may be reused by then)
_peer_untrack() {
	local p keep=()
	for p in "${_T_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	_T_PIDS=("${keep[@]}")
}

# _peer_probe MODE TARGET TIMEOUT_S PID: a real exchange, retried until it
# succeeds, the timeout passes or PID is gone.  MODE milter: TARGET is a
# socket spec, OPTNEG must be answered by OPTNEG; clamd: TARGET a UNIX
# socket, zPING -> PONG; spamd: TARGET a UNIX socket, PING -> PONG.
# Status 1 on timeout, 3 when PID exited.
_peer_probe() {
	"$SLUICE_PYTHON" - "$@" <<'EOF'
import socket, struct, sys, time
mode, target, limit, pid = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
end = time.time() + limit

def alive():
    if not pid:
        return True
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False

def connect():
    if mode != "milter":
        kind, addr = "unix", target
    else:
        kind, _, addr = target.partition(":")
    if kind in ("unix", "local"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(addr)
    else:
        port, _, host = addr.partition("@")
        s = socket.socket(socket.AF_INET6 if kind == "inet6" else socket.AF_INET)
        s.settimeout(2)
        s.connect((host, int(port)))
    return s

def recv_all(s, n):
    d = b""
    while len(d) < n:
        c = s.recv(n - len(d))
        if not c:
            raise OSError("closed")
        d += c
    return d

def probe():
    s = connect()
    try:
        if mode == "milter":
            s.sendall(struct.pack(">Ic", 13, b"O") + struct.pack(">III", 6, 0x1FF, 0x1FFFFF))
            n, cmd = struct.unpack(">Ic", recv_all(s, 5))
            ok = cmd == b"O"
            s.sendall(struct.pack(">Ic", 1, b"Q"))
            return ok
        if mode == "clamd":
            s.sendall(b"zPING\0")
            return recv_all(s, 5) == b"PONG\0"
        s.sendall(b"PING SPAMC/1.5\r\n\r\n")
        d = b""
        while b"\n" not in d:
            c = s.recv(256)
            if not c:
                break
            d += c
        return b"PONG" in d
    finally:
        s.close()

while True:
    try:
        if probe():
            sys.exit(0)
    except (OSError, ValueError, struct.error):
        pass
    if not alive():
        sys.exit(3)
    if time.time() > end:
        sys.exit(1)
    time.sleep(0.05)
EOF
}

# _peer_wait PEER WHAT MODE TARGET LOG...: _peer_probe for the process
# just spawned; on failure _peer_fail with what happened
_peer_wait() {
	local rc
	_peer_probe "$3" "$4" "$PEER_WAIT" "$_PEER_PID"
	rc=$?
	case $rc in
	0) return 0 ;;
	3) _peer_fail "$1" "$2 exited before answering on $4" "${@:5}" ;;
	*) _peer_fail "$1" "$2 did not answer on $4 within $PEER_WAIT s" "${@:5}" ;;
	esac
}

# peer_milter_ready SPEC [TIMEOUT_S] [PID]: the milter on SPEC answers OPTNEG
peer_milter_ready() {
	_peer_probe milter "$1" "${2:-$PEER_WAIT}" "${3:-}"
}

_peer_hex() {
	printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'
}

_peer_port() {
	free_port || {
		echo "Bail out! no free port"
		exit 1
	}
}

# ---------------------------------------------------------------- stop
# peer_stop NAME: stop the processes of one peer (last started first)
peer_stop() {
	local i name pid sig keep=()
	for ((i = ${#_PEER_PROCS[@]} - 1; i >= 0; i--)); do
		read -r name pid sig <<<"${_PEER_PROCS[$i]}"
		if [ "$name" = "$1" ]; then
			stop_pid "$pid" 10 "$sig"
			_peer_untrack "$pid"
		else
			keep=("${_PEER_PROCS[$i]}" "${keep[@]}")
		fi
	done
	_PEER_PROCS=("${keep[@]}")
	return 0
}

peer_stop_all() {
	local i name pid sig
	for ((i = ${#_PEER_PROCS[@]} - 1; i >= 0; i--)); do
		read -r name pid sig <<<"${_PEER_PROCS[$i]}"
		stop_pid "$pid" 10 "$sig"
		_peer_untrack "$pid"
	done
	_PEER_PROCS=()
	return 0
}

# ---------------------------------------------------------------- data
# peer_eicar FILE: the 68-byte EICAR anti-virus test file (assembled from
# two halves, so that no file of the tree is itself "infected")
peer_eicar() {
	printf '%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR' \
		'-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$1"
}

# peer_eicar_mail FILE: a MIME message with EICAR as a base64 attachment
peer_eicar_mail() {
	local b
	b=$(peer_eicar /dev/stdout | base64 -w0)
	cat >"$1" <<EOF
From: Alice <alice@sluice.test>
To: bob@sluice.test
Subject: eicar attached
Date: Thu, 01 Jan 2026 00:00:00 +0000
Message-ID: <eicar@sluice.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

see attachment
--b1
Content-Type: application/octet-stream; name="eicar.com"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="eicar.com"

$b
--b1--
EOF
}

# peer_dkim_keys: make the DKIM test key once per run (t/keys.sh) ->
# PEER_DKIM_KEYS, the directory with test.private, test.dns, keys.txt
peer_dkim_keys() {
	PEER_DKIM_KEYS=$RUN/dkim-keys
	[ -s "$PEER_DKIM_KEYS/keys.txt" ] && return 0
	bash "$SLUICE_SRC/t/keys.sh" "$PEER_DKIM_KEYS" "$PEER_DKIM_DOMAIN" \
		"$PEER_DKIM_SELECTOR" >"$RUN/keys.log" 2>&1 || {
		diag "t/keys.sh failed: $(cat "$RUN/keys.log")"
		return 1
	}
}

# peer_dkim_verify FILE: verify the DKIM signatures of a message with Perl's
# Mail::DKIM (not libopendkim), the key taken from keys.txt instead of DNS.
# Prints one line per signature ("pass d=sluice.test s=test a=rsa-sha256")
# and "result: pass|fail (...)|none"; returns 2 (PEER_WHY) without Mail::DKIM.
peer_dkim_verify() {
	perl -MMail::DKIM::Verifier -e 1 2>/dev/null || {
		PEER_WHY="Mail::DKIM not installed (Debian package libmail-dkim-perl, pulled in by spamassassin)"
		return 2
	}
	peer_dkim_keys || return 1
	perl - "$PEER_DKIM_KEYS/keys.txt" "$1" <<'EOF'
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS;
my ($keys, $file) = @ARGV;
my %txt;
open my $k, '<', $keys or die "$keys: $!\n";
while (<$k>) {
	chomp;
	my ($n, $v) = split /\s+/, $_, 2;
	$txt{lc $n} = $v if defined $v;
}
# every key lookup answered from the file: no resolver, no network
no warnings 'redefine';
*Mail::DKIM::DNS::query = sub {
	my ($name, $type) = @_;
	my $v = $txt{lc $name};
	if (!defined $v || uc $type ne 'TXT') {
		$@ = 'NXDOMAIN';
		return;
	}
	$@ = 'NOERROR';
	return Net::DNS::RR->new(name => $name, type => 'TXT',
	    txtdata => [unpack '(A255)*', $v]);
};
my $dkim = Mail::DKIM::Verifier->new;
open my $m, '<', $file or die "$file: $!\n";
while (<$m>) {
	s/\r?\n\z/\r\n/;
	$dkim->PRINT($_);
}
$dkim->CLOSE;
printf "%s d=%s s=%s a=%s\n", $_->result_detail, $_->domain, $_->selector,
    $_->algorithm for $dkim->signatures;
print "result: ", $dkim->result_detail, "\n";
EOF
}

# ---------------------------------------------------------------- opendkim
# peer_opendkim_start sign|verify: opendkim on inet:PORT@127.0.0.1.
#   sign    Mode s: signs (rsa-sha256, relaxed/relaxed, d=sluice.test
#           s=test) mail from 127.0.0.1 (InternalHosts) whose From: is in
#           sluice.test, with insheader at index 0
#   verify  Mode v: verifies every signature against the key file
#           ($PEER_DKIM_KEYS/keys.txt, opendkim's TestPublicKeys: no DNS)
#           and inserts Authentication-Results (authserv-id mx.sluice.test),
#           also for unsigned mail (dkim=none)
# PEER_OPENDKIM_CONF: more config lines (e.g. "On-BadSignature reject").
# The config sits in $RUN/opendkim-MODE/, which must not be below a
# world-writable directory (opendkim refuses to start then).
peer_opendkim_start() {
	local mode=$1 m d port sock
	case $mode in
	sign) m=s ;;
	verify) m=v ;;
	*)
		echo "Bail out! peer_opendkim_start: mode sign or verify, not '$mode'"
		exit 1
		;;
	esac
	peer_available opendkim || return 2
	peer_dkim_keys || {
		PEER_WHY="opendkim-$mode: no DKIM key"
		return 1
	}
	d=$RUN/opendkim-$mode
	mkdir -p "$d"
	chmod 755 "$d"
	port=$(_peer_port)
	sock=inet:$port@127.0.0.1
	{
		echo "Background              no"
		echo "Syslog                  no"
		echo "Mode                    $m"
		echo "Socket                  $sock"
		echo "PidFile                 $d/opendkim.pid"
		echo "Canonicalization        relaxed/relaxed"
		echo "SignatureAlgorithm      rsa-sha256"
		echo "InternalHosts           127.0.0.1"
		echo "AuthservID              mx.sluice.test"
		echo "DNSTimeout              3"
		if [ "$m" = s ]; then
			install -m 600 "$PEER_DKIM_KEYS/$PEER_DKIM_SELECTOR.private" \
				"$d/signing.key"
			echo "Domain                  $PEER_DKIM_DOMAIN"
			echo "Selector                $PEER_DKIM_SELECTOR"
			echo "KeyFile                 $d/signing.key"
		else
			install -m 644 "$PEER_DKIM_KEYS/keys.txt" "$d/keys.txt"
			echo "TestPublicKeys          $d/keys.txt"
			echo "AlwaysAddARHeader       yes"
		fi
		[ -z "${PEER_OPENDKIM_CONF:-}" ] || printf '%s\n' "$PEER_OPENDKIM_CONF"
	} >"$d/opendkim.conf"
	_peer_spawn "opendkim-$mode" KILL "$d/opendkim.log" \
		"$(_peer_bin opendkim)" -f -x "$d/opendkim.conf"
	_peer_wait "opendkim-$mode" opendkim milter "$sock" "$d/opendkim.log" ||
		return 1
	PEER_OPENDKIM=$sock
	PEER_OPENDKIM_PID=$_PEER_PID
	if [ "$m" = s ]; then PEER_OPENDKIM_SIGN=$sock; else PEER_OPENDKIM_VERIFY=$sock; fi
	return 0
}

# ---------------------------------------------------------------- clamav
# peer_clamav_start: clamd on a UNIX socket with only a private signature
# database ($RUN/clamav/db: EICAR by MD5 and by body string, plus the
# marker), and clamav-milter on unix:$RUN/clamav/milter.sock in front of
# it: OnInfected Reject ("550 5.7.1 Rejected: virus NAME found"), OnFail
# Defer, X-Virus-Scanned/X-Virus-Status headers on clean mail.
# -> PEER_CLAMAV, PEER_CLAMD (clamd's socket path), PEER_CLAMAV_DIR
peer_clamav_start() {
	local d
	peer_available clamav || return 2
	d=$RUN/clamav
	mkdir -p "$d/db" "$d/tmp"
	chmod 755 "$d"
	# libclamav knows no EICAR by itself: the database must say it
	peer_eicar "$d/eicar.com"
	printf '%s:%s:Sluice.Test.EICAR.MD5\n' \
		"$(md5sum <"$d/eicar.com" | cut -d' ' -f1)" \
		"$(stat -c %s "$d/eicar.com")" >"$d/db/sluice-test.hdb"
	{
		printf 'Sluice.Test.EICAR.Body:0:*:%s\n' \
			"$(_peer_hex 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE')"
		printf 'Sluice.Test.Marker:0:*:%s\n' \
			"$(_peer_hex 'SLUICE-VIRUS-TEST-MARKER-7f3a')"
	} >"$d/db/sluice-test.ndb"
	rm -f "$d/eicar.com"
	cat >"$d/clamd.conf" <<EOF
Foreground yes
DatabaseDirectory $d/db
LocalSocket $d/clamd.sock
FixStaleSocket yes
PidFile $d/clamd.pid
LogFile $d/clamd.log
LogTime yes
LogSyslog no
TemporaryDirectory $d/tmp
SelfCheck 0
User root
EOF
	cat >"$d/clamav-milter.conf" <<EOF
Foreground yes
MilterSocket unix:$d/milter.sock
FixStaleSocket yes
ClamdSocket unix:$d/clamd.sock
PidFile $d/clamav-milter.pid
LogFile $d/clamav-milter.log
LogTime yes
LogSyslog no
LogInfected Basic
LogClean Basic
User root
OnInfected Reject
OnFail Defer
AddHeader Replace
ReportHostname mx.sluice.test
RejectMsg Rejected: virus %v found
TemporaryDirectory $d/tmp
EOF
	_peer_spawn clamav TERM "$d/clamd.out" "$(_peer_bin clamd)" -c "$d/clamd.conf"
	_peer_wait clamav clamd clamd "$d/clamd.sock" "$d/clamd.out" || return 1
	_peer_spawn clamav KILL "$d/clamav-milter.out" \
		"$(_peer_bin clamav-milter)" -c "$d/clamav-milter.conf"
	_peer_wait clamav clamav-milter milter "unix:$d/milter.sock" \
		"$d/clamav-milter.out" || return 1
	PEER_CLAMAV=unix:$d/milter.sock
	PEER_CLAMD=$d/clamd.sock
	PEER_CLAMAV_DIR=$d
	return 0
}

# ---------------------------------------------------------------- spamass
# peer_spamass_start: spamd --local on a UNIX socket with only the rules of
# t/data/peers/spamassassin.cf (next to copies of the package's *.pre files,
# which load the plugins), and spamass-milter -r 15 on inet:PORT@127.0.0.1
# in front of it: a score >= 15 is rejected ("550 5.7.1 Blocked by
# SpamAssassin"), >= 5 tagged (X-Spam-Flag: YES), every message gets
# X-Spam-Status.  Started as root, spamd's children run as debian-spamd.
# spamd needs a second or three to load its rules.
# -> PEER_SPAMASS, PEER_SPAMD (spamd's socket path), PEER_SPAMASS_DIR
peer_spamass_start() {
	local d port sock u=()
	peer_available spamass || return 2
	d=$RUN/spamass
	mkdir -p "$d/rules" "$d/site" "$d/home"
	chmod 755 "$d" "$d/rules" "$d/site"
	cp /etc/spamassassin/*.pre "$d/rules/"
	cp "$SLUICE_SRC/t/data/peers/spamassassin.cf" "$d/rules/50_sluice.cf"
	chmod 644 "$d/rules"/*
	if [ "$(id -u)" = 0 ]; then
		chown debian-spamd: "$d/home"
		u=(-u debian-spamd)
	fi
	_peer_spawn spamass TERM "$d/spamd.out" "$(_peer_bin spamd)" \
		--socketpath="$d/spamd.sock" --socketmode=0666 \
		--min-children=1 --max-children=2 --local \
		--configpath="$d/rules" --siteconfigpath="$d/site" --nouser-config \
		"${u[@]}" -H "$d/home" --pidfile="$d/spamd.pid" --syslog="$d/spamd.log"
	_peer_wait spamass spamd spamd "$d/spamd.sock" "$d/spamd.out" \
		"$d/spamd.log" || return 1
	port=$(_peer_port)
	sock=inet:$port@127.0.0.1
	_peer_spawn spamass KILL "$d/spamass-milter.out" \
		"$(_peer_bin spamass-milter)" -p "$sock" -r 15 -P "$d/spamass-milter.pid" \
		-- -U "$d/spamd.sock"
	_peer_wait spamass spamass-milter milter "$sock" "$d/spamass-milter.out" ||
		return 1
	PEER_SPAMASS=$sock
	PEER_SPAMD=$d/spamd.sock
	PEER_SPAMASS_DIR=$d
	return 0
}
