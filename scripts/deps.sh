#!/bin/sh
# make deps: install the Debian packages that the build and the tests need.
# Non-interactive; starts no service (policy-rc.d); a no-op when all present.
set -eu
PKGS="build-essential pkg-config libevent-dev libssl-dev libpcre2-dev
libcmocka-dev libc-ares-dev liblmdb-dev libhiredis-dev libmilter-dev
postfix swaks mandoc iproute2 util-linux procps perl bc"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "make deps: missing packages:$missing (run as root)" >&2
	exit 1
fi
# Keep postinst scripts from starting daemons (postfix on :25 ...).
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
fi
echo 'postfix postfix/main_mailer_type select No configuration' |
    debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
