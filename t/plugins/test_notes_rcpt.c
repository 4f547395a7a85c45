/*
 * test_notes_rcpt.c - a test-only plugin that shows connection notes (and so
 * the outcomes other plugins recorded, "result.NAME") in a reply; never
 * installed.
 *
 *   plugin test_notes_rcpt keys=result.fcrdns,fcrdns.name
 *
 * RCPT TO:<notes@...> is refused with "550 5.7.1 notes KEY=VALUE ..."
 * (VALUE "-" for a note that is not set); other recipients are left alone.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sluice/plugin.h>

struct test_notes {
	struct sl_strlist keys;
};

static const struct sl_conf_def test_notes_conf[] = {
	{ .name = "keys",
	    .type = SL_CONF_LIST,
	    .offset = offsetof(struct test_notes, keys),
	    .help = "the connection notes to show" },
	SL_CONF_END,
};

static enum sl_verdict
test_notes_rcpt(void *state, struct sl_hookctx *ctx)
{
	const struct test_notes *st = state;
	const char *rcpt = sl_hook_args(ctx)->arg, *v;
	char text[800];
	size_t i, off;
	int n;

	if (strncasecmp(rcpt, "notes@", 6) != 0)
		return SL_DECLINED;
	off = 0;
	n = snprintf(text, sizeof(text), "notes");
	if (n > 0)
		off = (size_t)n;
	for (i = 0; i < st->keys.count && off < sizeof(text); i++) {
		v = sl_conn_note_get(sl_hook_conn(ctx), st->keys.items[i]);
		n = snprintf(text + off, sizeof(text) - off, " %s=%s",
		    st->keys.items[i], v != NULL ? v : "-");
		if (n < 0)
			break;
		off += (size_t)n;
	}
	sl_hook_reply(ctx, 550, "5.7.1", "%s", text);
	return SL_DENY;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "test_notes_rcpt",
	.conf = test_notes_conf,
	.state_size = sizeof(struct test_notes),
	.hooks = { [SL_HOOK_RCPT] = test_notes_rcpt },
	.front_ends = SL_FRONT_SMTPD,
};
