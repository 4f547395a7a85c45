/*
 * test_outcome.c - a test-only plugin that records an outcome for the
 * connection (sl_conn_outcome_set) under its instance name, standing in
 * for the judging plugins (dnsbl, fcrdns ...) that karma scores.  Used by
 * t/integration/plugin_karma.t; never installed.
 *
 *   plugin test_outcome name=dnsbl hook=helo match=listed outcome=fail \
 *       detail="zen.sluice.test 127.0.0.2"
 *
 * hook=     connect helo mail rcpt data data_post (default connect)
 * outcome=  pass fail neutral skip error (default fail)
 * detail=   free text after the outcome
 * match=    act only when the hook's argument (the client address at
 *           connect, the HELO name, the address at mail and rcpt)
 *           contains this text
 * Always DECLINED.
 */
#include <stddef.h>
#include <string.h>
#include <syslog.h>

#include <sluice/plugin.h>

static const char *const hook_choices[] = { "connect", "helo", "mail", "rcpt",
	"data", "data_post", NULL };
static const char *const outcome_choices[] = { "pass", "fail", "neutral",
	"skip", "error", NULL };

struct to {
	int hook;
	int outcome;
	char *detail;
	char *match;
};

static const struct sl_conf_def to_conf[] = {
	{ .name = "hook",
	    .type = SL_CONF_ENUM,
	    .def = "connect",
	    .choices = hook_choices,
	    .offset = offsetof(struct to, hook) },
	{ .name = "outcome",
	    .type = SL_CONF_ENUM,
	    .def = "fail",
	    .choices = outcome_choices,
	    .offset = offsetof(struct to, outcome) },
	{ .name = "detail",
	    .type = SL_CONF_STR,
	    .offset = offsetof(struct to, detail) },
	{ .name = "match",
	    .type = SL_CONF_STR,
	    .offset = offsetof(struct to, match) },
	SL_CONF_END,
};

static enum sl_verdict
to_hook(void *state, struct sl_hookctx *ctx)
{
	static const enum sl_hook_id ids[] = { SL_HOOK_CONNECT, SL_HOOK_HELO,
		SL_HOOK_MAIL, SL_HOOK_RCPT, SL_HOOK_DATA, SL_HOOK_DATA_POST };
	const struct to *t = state;
	const struct sl_hookargs *args = sl_hook_args(ctx);
	struct sl_conn *conn = sl_hook_conn(ctx);
	const char *what;

	if (args->hook != ids[t->hook])
		return SL_DECLINED;
	what =
	    args->hook == SL_HOOK_CONNECT ? sl_conn_remote_ip(conn) : args->arg;
	if (t->match != NULL &&
	    (what == NULL || strstr(what, t->match) == NULL))
		return SL_DECLINED;
	sl_conn_outcome_set(conn, sl_hook_plugin_name(ctx),
	    outcome_choices[t->outcome], t->detail);
	sl_hook_log(ctx, LOG_INFO, "outcome=%s detail=\"%s\"",
	    outcome_choices[t->outcome], t->detail != NULL ? t->detail : "");
	return SL_DECLINED;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "test_outcome",
	.conf = to_conf,
	.state_size = sizeof(struct to),
	.hooks = {
	    [SL_HOOK_CONNECT] = to_hook,
	    [SL_HOOK_HELO] = to_hook,
	    [SL_HOOK_MAIL] = to_hook,
	    [SL_HOOK_RCPT] = to_hook,
	    [SL_HOOK_DATA] = to_hook,
	    [SL_HOOK_DATA_POST] = to_hook,
	},
};
