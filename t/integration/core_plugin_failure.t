#!/bin/bash
# The plugin core under failure: a hook that never resumes (PENDING forever)
# hits plugin_timeout and the configured plugin_default_action applies; a
# hook that fails likewise; the daemon keeps serving.
#
# STUB: the lead finishes this test together with the test plugin
# t/plugins/test_hooks.c (built as $SLUICE_BUILD/t/plugins/test_hooks.so),
# which takes options such as "plugin test_hooks hook=rcpt action=pending_forever".
# Until that plugin exists this test skips.
. "${SLUICE_SRC:-${0%/*}/../..}/t/lib.sh" || exit 1

[ -f "$SLUICE_BUILD/t/plugins/test_hooks.so" ] ||
	skip_all "test plugin test_hooks.so not built yet"
skip_all "stub: to be completed by the lead with t/plugins/test_hooks"

# Intended shape (for the lead):
#   write_conf "$RUN/smtpd.conf" <<EOF
#   local_domains sluice.test
#   plugin_timeout 1s
#   plugin_default_action tempfail
#   plugin test_hooks hook=rcpt action=pending_forever
#   plugin queue/discard
#   EOF
#   RCPT -> 451 4.x.x after ~1 s; NOOP and a new connection still served.
#   plugin_default_action reject -> 5xx; accept -> 250.
#   action=error (the hook fails) -> 451, daemon keeps serving.
