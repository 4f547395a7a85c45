/*
 * test_notes.c - a test-only plugin that logs connection notes when the
 * session ends, so that tests can see what plugins recorded (outcomes are
 * the notes "result.NAME").  Never installed.
 *
 *   plugin test_notes keys=result.earlytalker,result.dnsbl
 *
 * Logs one line per key at the disconnect hook:
 *   plugin=test_notes note result.earlytalker="fail banner 18 bytes"
 * ("-" for a note that is not set).
 */
#include <stddef.h>
#include <syslog.h>

#include <sluice/plugin.h>

struct tn {
	struct sl_strlist keys;
};

static const struct sl_conf_def tn_conf[] = {
	{ .name = "keys",
	    .type = SL_CONF_LIST,
	    .offset = offsetof(struct tn, keys) },
	SL_CONF_END,
};

static enum sl_verdict
tn_disconnect(void *state, struct sl_hookctx *ctx)
{
	const struct tn *tn = state;
	const char *v;
	size_t i;

	for (i = 0; i < tn->keys.count; i++) {
		v = sl_conn_note_get(sl_hook_conn(ctx), tn->keys.items[i]);
		if (v != NULL)
			sl_hook_log(ctx, LOG_INFO, "note %s=\"%s\"",
			    tn->keys.items[i], v);
		else
			sl_hook_log(ctx, LOG_INFO, "note %s=-",
			    tn->keys.items[i]);
	}
	return SL_DECLINED;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "test_notes",
	.conf = tn_conf,
	.state_size = sizeof(struct tn),
	.hooks = { [SL_HOOK_DISCONNECT] = tn_disconnect },
};
