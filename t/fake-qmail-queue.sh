#!/bin/sh
# t/fake-qmail-queue.sh - a qmail-queue(8) stand-in for the queue/qmail-queue
# tests.  It reads the message on fd 0 into $QQ_DIR/message.PID and the
# envelope on fd 1 into $QQ_DIR/envelope.PID, then does what the first line
# of $QQ_DIR/action says (no file: "exit 0"):
#   exit N           exit with N
#   noread N         exit with N at once, reading nothing
#   hang             never exit (exec sleep: the plugin's timeout kills it)
#   signal SIG       kill itself with SIG
#   stderr N TEXT    print TEXT on stderr, exit with N
#   env NAME         write $NAME into $QQ_DIR/env.PID, exit 0
#   uid              write its user id into $QQ_DIR/uid.PID, exit 0
set -u
d=${QQ_DIR:?QQ_DIR is not set}
action="exit 0"
[ -f "$d/action" ] && action=$(head -n 1 "$d/action")
# shellcheck disable=SC2086 # the words of the action
set -- $action
case $1 in
noread) exit "$2" ;;
hang) exec sleep 300 ;;
esac
cat >"$d/message.$$" || exit 54
# fd 1 is where the envelope comes from: read it as input
cat <&1 >"$d/envelope.$$" || exit 54
case $1 in
exit) exit "$2" ;;
signal)
	kill -"$2" $$
	exit 99
	;;
stderr)
	code=$2
	shift 2
	echo "$*" >&2
	exit "$code"
	;;
env)
	printenv "$2" >"$d/env.$$"
	exit 0
	;;
uid)
	id -u >"$d/uid.$$"
	exit 0
	;;
esac
exit 81
