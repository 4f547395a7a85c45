/*
 * test_xoutcome.c - a test-only plugin that shows what other plugins
 * recorded for the connection: the outcome notes (sl_conn_outcome_get)
 * and the deferred-rejection mark.  Never installed; sluice-smtpd only.
 *
 *   plugin test_xoutcome
 *
 * The unknown command "XOUTCOME NAME" answers
 * "250 2.0.0 result.NAME=VALUE" ("(none)" when nothing was recorded),
 * "XOUTCOME" alone "250 2.0.0 deferred=PLUGIN" or "deferred=(none)".
 * Other unknown commands are left to the rest of the chain.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sluice/plugin.h>

static enum sl_verdict
outcome_unrecognized(void *state, struct sl_hookctx *ctx)
{
	const char *line = sl_hook_args(ctx)->arg, *v, *by = NULL;
	struct sl_conn *c = sl_hook_conn(ctx);

	(void)state;
	if (strncasecmp(line, "XOUTCOME", 8) != 0 ||
	    (line[8] != '\0' && line[8] != ' '))
		return SL_DECLINED;
	if (line[8] == '\0') {
		if (!sl_conn_deferred(c, NULL, NULL, NULL, NULL, &by))
			by = NULL;
		sl_hook_reply(ctx, 250, "2.0.0", "deferred=%s",
		    by != NULL ? by : "(none)");
		return SL_DONE;
	}
	v = sl_conn_outcome_get(c, line + 9);
	sl_hook_reply(ctx, 250, "2.0.0", "result.%s=%s", line + 9,
	    v != NULL ? v : "(none)");
	return SL_DONE;
}

static int
outcome_init(void **state_r, const char **error_r)
{
	(void)state_r;
	(void)error_r;
	return 0;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "test_xoutcome",
	.state_size = 1,
	.init = outcome_init,
	.hooks = { [SL_HOOK_UNRECOGNIZED] = outcome_unrecognized },
	.front_ends = SL_FRONT_SMTPD,
};
