#!/bin/bash
# plugin auth/flat_file: users whose hashes were made here by mkpasswd
# (yescrypt, SHA-512-crypt, bcrypt $2b$) and by "doveadm pw" (bcrypt $2y$
# behind a {BLF-CRYPT} prefix) authenticate, with PLAIN and LOGIN; a wrong
# password, an unknown user and an unsupported hash (MD5-crypt, a locked
# "!") get 535, the last with a log line naming the user; the file is
# read again when it changes (a user added, a user removed), and a file
# that disappears gives 454 with a log line until it is back; at start-up
# a missing file, a malformed line, a duplicate user and a missing file=
# are errors reading "conf:line: plugin auth/flat_file: ...".
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1
export LC_ALL=C

[ -f "$SLUICE_BUILD/plugins/auth/flat_file.so" ] ||
	skip_all "plugin not built ($SLUICE_BUILD/plugins/auth/flat_file.so)"
command -v mkpasswd >/dev/null 2>&1 ||
	skip_all "mkpasswd (Debian package whois) not installed"
command -v swaks >/dev/null 2>&1 || skip_all "swaks not installed"

plan 25
setup_run
U=$RUN/users

auth_code() { auth_plain "$@" | cut -c1-3; }
# until_code USER PASSWORD CODE: retries for up to 10 s until AUTH gets CODE
# (the file is checked at most once a second)
until_code() {
	local i
	for ((i = 0; i < 50; i++)); do
		[ "$(auth_code "$1" "$2")" = "$3" ] && return 0
		sleep 0.2
	done
	return 1
}

{
	echo "# made by the test"
	echo "yes:$(mkpasswd -m yescrypt pw-yes)"
	echo ""
	echo "sha:$(mkpasswd -m sha512crypt pw-sha)"
	echo "bcr:$(mkpasswd -m bcrypt pw-bcr)"
	echo "md5:$(mkpasswd -m md5crypt pw-md5)"
	echo "locked:!"
} >"$U"
if command -v doveadm >/dev/null 2>&1; then
	echo "dove:$(doveadm pw -s BLF-CRYPT -p pw-dove)::::::" >>"$U"
fi

write_conf "$RUN/ff.conf" <<EOF
local_domains sluice.test
auth_require_tls no
auth_failure_delay 0
auth_ip_max_failures 0
auth_max_failures 10
plugin auth/flat_file file=$U
plugin queue/discard
EOF
sluice_start "$RUN/ff.conf"

like "$(grep '^yes:' "$U")" '^yes:\$y\$' "mkpasswd made a yescrypt hash"
is "$(auth_plain yes pw-yes)" "235 2.7.0 Authentication successful" "yescrypt: 235"
is "$(auth_code sha pw-sha)" 235 "SHA-512-crypt: 235"
is "$(auth_code bcr pw-bcr)" 235 "bcrypt \$2b\$: 235"
if command -v doveadm >/dev/null 2>&1; then
	is "$(auth_code dove pw-dove)" 235 "{BLF-CRYPT}\$2y\$ from doveadm pw: 235"
else
	skip 1 "doveadm not installed"
fi
out=$(swaks_to --to x@sluice.test --auth LOGIN --auth-user yes --auth-password pw-yes)
like "$out" '<- +235 ' "AUTH LOGIN: 235"

is "$(auth_plain yes pw-sha)" "535 5.7.8 Authentication credentials invalid" "wrong password: 535 5.7.8"
is "$(auth_code nobody pw-yes)" 535 "unknown user: 535"
grep -q 'plugin=auth/flat_file verdict=deny reason=unknown-user' "$RUN/smtpd.log"
ok $? "... logged as reason=unknown-user"
is "$(auth_code md5 pw-md5)" 535 "an MD5-crypt hash (unsupported), right password: 535"
grep -q 'plugin=auth/flat_file verdict=deny reason=bad-hash user=md5 error="unsupported hash format' "$RUN/smtpd.log"
ok $? "... logged with the user and the problem"
is "$(auth_code locked '!')" 535 "a locked account (\"!\"): 535"

# --- the file changes while the daemon runs ---------------------------------
echo "new:$(mkpasswd -m sha512crypt pw-new)" >>"$U"
until_code new pw-new 235
is "$(auth_code new pw-new)" 235 "a user added to the file can authenticate (re-read within seconds)"
grep -v '^sha:' "$U" >"$U.tmp" && mv "$U.tmp" "$U"
until_code sha pw-sha 535
is "$(auth_code sha pw-sha)" 535 "a user removed from the file no longer can"

mv "$U" "$U.away"
until_code yes pw-yes 454
is "$(auth_plain yes pw-yes)" "454 4.7.0 Temporary authentication failure" "the file removed: 454 4.7.0"
grep -q "plugin=auth/flat_file verdict=denysoft error=\"$U: No such file or directory\"" "$RUN/smtpd.log"
ok $? "... with a log line naming the file"
mv "$U.away" "$U"
until_code yes pw-yes 235
is "$(auth_code yes pw-yes)" 235 "the file back: 235 again"
sluice_stop

# --- start-up errors -----------------------------------------------------------
P="7: plugin auth/flat_file"
conf_fails "missing file" "$P: file $RUN/nonexistent: No such file or directory" <<EOF
local_domains sluice.test
plugin auth/flat_file file=$RUN/nonexistent
EOF
printf 'ok:%s\nbroken line\n' "$(mkpasswd -m sha512crypt x)" >"$RUN/broken"
conf_fails "malformed line" "$P: file $RUN/broken:2: expected user:hash" <<EOF
local_domains sluice.test
plugin auth/flat_file file=$RUN/broken
EOF
printf 'a:%s\na:%s\n' "$(mkpasswd -m sha512crypt x)" "$(mkpasswd -m sha512crypt y)" >"$RUN/dup"
conf_fails "duplicate user" "$P: file $RUN/dup: duplicate user" <<EOF
local_domains sluice.test
plugin auth/flat_file file=$RUN/dup
EOF
conf_fails "no file=" "$P: file= is required" <<EOF
local_domains sluice.test
plugin auth/flat_file
EOF
