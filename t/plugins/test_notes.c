/*
 * test_notes.c - a test-only plugin that logs connection notes (outcomes
 * included: "result.NAME") at one hook, so that tests can see what other
 * plugins recorded; never installed.
 *
 *   plugin test_notes hook=rcpt keys=result.dnsbl,dnsbl.allowed
 *   plugin test_notes hook=disconnect keys=result.earlytalker
 *   plugin test_notes set=fcrdns.name=mail.example.test
 *
 * Logs one line per key: "notes hook=H KEY=VALUE", or "KEY=(unset)".
 * set= KEY=VALUE items are set as notes at connect (standing in for a
 * plugin that sets them, e.g. fcrdns).  Always declines.
 */
#include <stddef.h>
#include <string.h>
#include <syslog.h>

#include <sluice/plugin.h>

static const char *const hook_choices[] = { "connect", "helo", "mail", "rcpt",
	"data_post", "disconnect", NULL };
static const enum sl_hook_id hook_ids[] = { SL_HOOK_CONNECT, SL_HOOK_HELO,
	SL_HOOK_MAIL, SL_HOOK_RCPT, SL_HOOK_DATA_POST, SL_HOOK_DISCONNECT };

struct notes {
	int hook;
	struct sl_strlist keys;
	struct sl_strlist set;
};

static const struct sl_conf_def notes_conf[] = {
	{ .name = "hook",
	    .type = SL_CONF_ENUM,
	    .def = "rcpt",
	    .choices = hook_choices,
	    .offset = offsetof(struct notes, hook) },
	{ .name = "keys",
	    .type = SL_CONF_LIST,
	    .offset = offsetof(struct notes, keys) },
	{ .name = "set",
	    .type = SL_CONF_LIST,
	    .offset = offsetof(struct notes, set) },
	SL_CONF_END,
};

static enum sl_verdict
notes_log(void *state, struct sl_hookctx *ctx)
{
	const struct notes *st = state;
	const char *v;
	char key[128];
	size_t i, n;

	if (sl_hook_args(ctx)->hook == SL_HOOK_CONNECT) {
		for (i = 0; i < st->set.count; i++) {
			v = strchr(st->set.items[i], '=');
			if (v == NULL)
				continue;
			n = (size_t)(v - st->set.items[i]);
			if (n >= sizeof(key))
				continue;
			memcpy(key, st->set.items[i], n);
			key[n] = '\0';
			sl_conn_note_set(sl_hook_conn(ctx), key, v + 1);
		}
	}
	if (sl_hook_args(ctx)->hook != hook_ids[st->hook])
		return SL_DECLINED;
	for (i = 0; i < st->keys.count; i++) {
		v = sl_conn_note_get(sl_hook_conn(ctx), st->keys.items[i]);
		sl_hook_log(ctx, LOG_INFO, "notes hook=%s %s=%s",
		    hook_choices[st->hook], st->keys.items[i],
		    v != NULL ? v : "(unset)");
	}
	return SL_DECLINED;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "test_notes",
	.conf = notes_conf,
	.state_size = sizeof(struct notes),
	.hooks = {
		[SL_HOOK_CONNECT] = notes_log,
		[SL_HOOK_HELO] = notes_log,
		[SL_HOOK_MAIL] = notes_log,
		[SL_HOOK_RCPT] = notes_log,
		[SL_HOOK_DATA_POST] = notes_log,
		[SL_HOOK_DISCONNECT] = notes_log,
	},
};
