#!/bin/sh
# make deps: install the Debian packages that the build and the tests need.
# Non-interactive; starts no service (policy-rc.d); a no-op when all present.
set -eu
# whois brings mkpasswd(1), which makes the crypt hashes of the auth
# tests.  The last two lines are the third-party milters of t/peers.sh
# (opendkim, clamav-milter + clamd, spamass-milter + spamd); the tests run
# them from their own config files and skip when they are missing.
PKGS="build-essential pkg-config libevent-dev libssl-dev libpcre2-dev
libcmocka-dev libc-ares-dev liblmdb-dev libhiredis-dev libmilter-dev
postfix swaks mandoc iproute2 util-linux procps perl bc openssl redis-server
dovecot-core dovecot-lmtpd ucspi-tcp whois nsd bind9-dnsutils
opendkim opendkim-tools clamav-daemon clamav-milter
spamassassin spamd spamc spamass-milter"
# one dpkg-query for all of them (unknown names just are not listed)
have=" $(dpkg-query -W -f='${Status} ${Package}\n' $PKGS 2>/dev/null |
    sed -n 's/^install ok installed //p' | tr '\n' ' ')"
missing=""
for p in $PKGS; do
	case $have in
	*" $p "*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "make deps: missing packages:$missing (run as root)" >&2
	exit 1
fi
# Keep postinst scripts from starting daemons (postfix on :25, opendkim,
# clamav-daemon, clamav-freshclam fetching from the internet, spamd ...).
# An existing policy-rc.d that does not refuse everything is set aside for
# the install and put back afterwards.
prc=/usr/sbin/policy-rc.d
saved=""
if [ -e "$prc" ] && ! grep -qx 'exit 101' "$prc"; then
	saved="$prc.sluice-deps.$$"
	mv "$prc" "$saved"
fi
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$prc"
	chmod 755 "$prc"
fi
restore() { [ -z "$saved" ] || mv -f "$saved" "$prc"; }
trap restore EXIT
echo 'postfix postfix/main_mailer_type select No configuration' |
    debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 $missing
# spamassassin's postinst imports its sa-update signing key with gpg, which
# leaves a gpg-agent running after the install: end it the way gpg does.
sakeys=/var/lib/spamassassin/sa-update-keys
if [ -d "$sakeys" ] && command -v gpgconf >/dev/null 2>&1; then
	gpgconf --homedir "$sakeys" --kill gpg-agent 2>/dev/null || true
fi
