#!/bin/bash
# sluice-smtpd -t: checks a configuration and exits 0 or 1; every error
# reads "file:line: ..." on stderr and nothing is started.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

shopt -s nullglob
examples=("$SLUICE_SRC"/conf/sluice.conf "$SLUICE_SRC"/conf/examples/*.conf "$SLUICE_SRC"/conf/examples/*/*.conf)
plan $((18 + ${#examples[@]}))
setup_run
BIN=$SLUICE_BUILD/sluice-smtpd
C=$RUN/t.conf

# check [FILE]: runs -t; sets $rc and $err
check() {
	err=$("$BIN" -t -c "${1:-$C}" 2>&1 >/dev/null)
	rc=$?
}

write_conf "$C" <<EOF
local_domains sluice.test, example.test
relay_clients 192.0.2.0/24 2001:db8::/32
trusted_proxies 127.0.0.1
max_message_size 10M
idle_timeout 5m
bare_newline normalise
plugin badrcptto list=nobody@sluice.test
plugin queue/maildir path=$RUN/Maildir
plugin queue/discard
EOF
check
is "$rc" 0 "-t on a good config exits 0"
# -t binds nothing: the listen port stays free
"$SLUICE_PYTHON" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', $PORT))"
ok $? "-t did not keep the listen port"

# bad_conf LINE_TEXT DESC [REGEX]: the prelude, a good line, then LINE_TEXT
bad_conf() {
	local text=$1 desc=$2 re=${3:-}
	write_conf "$C" <<EOF
local_domains sluice.test
$text
plugin queue/discard
EOF
	check
	is "$rc" 1 "-t: $desc: exit 1"
	like "$err" "^$C:7: $re" "-t: $desc: '$C:7: ...'"
}
bad_conf "no_such_directive 1" "unknown directive" "(no_such_directive: )?"
bad_conf "max_recipients banana" "not a number" "max_recipients: "
bad_conf "bare_newline sometimes" "bad enum value" "bare_newline: "
bad_conf "relay_clients 300.1.2.3/8" "bad network" "relay_clients: "
bad_conf "plugin no_such_plugin" "plugin that does not exist" ""
bad_conf "plugin queue/maildir no_such_option=1" "unknown plugin option" ""
bad_conf "include $RUN/missing.conf" "include of a missing file" ""

# an error inside an included file names that file and its line
printf 'local_domains x.test\n\nmax_errors many\n' >"$RUN/inc.conf"
write_conf "$C" <<EOF
include $RUN/inc.conf
plugin queue/discard
EOF
check
like "$err" "^$RUN/inc.conf:3: max_errors: " "-t: error in an included file reported as inc.conf:3"

check "$RUN/nonexistent.conf"
is "$rc" 1 "-t on a missing file exits 1"

# the shipped configurations all pass (plugins found next to the binary)
# The TLS example names files under /etc/sluice/tls/: made here instead.
mkdir -p "$RUN/tls"
tls_make_ca "$RUN/tls" && cp "$RUN/tls/ca.crt" "$RUN/tls/clients-ca.pem"
for n in mx.example.test mail.example.net; do
	tls_make_cert "$RUN/tls" "$n" "$n" && mv "$RUN/tls/$n.crt" "$RUN/tls/$n.pem"
done
for f in "${examples[@]}"; do
	g=$f
	if grep -q '/etc/sluice/tls/' "$f"; then
		g=$RUN/${f##*/}
		sed "s|/etc/sluice/tls/|$RUN/tls/|g" "$f" >"$g"
	fi
	(cd "$SLUICE_SRC" && "$BIN" -t -c "$g" >/dev/null 2>"$RUN/err")
	ok $? "-t accepts ${f#"$SLUICE_SRC"/}" || diag "$(cat "$RUN/err")"
done
