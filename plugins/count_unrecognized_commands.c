/*
 * count_unrecognized_commands - drop clients that keep sending commands
 * the server does not know (sluice-plugins(7)); qpsmtpd's plugin of the
 * same name.
 *
 * Hook unrecognized (sluice-smtpd only).  The count lives on the
 * connection, keyed by this instance's state; it is stored in the data
 * pointer itself, so counting allocates nothing.  Below max= the plugin
 * declines and the core answers 500 5.5.1 as usual; the max-th
 * unrecognized command gets 521 5.5.1 and the connection is closed.
 *
 *	plugin count_unrecognized_commands max=4
 */
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include <sluice/plugin.h>

struct count_unrec {
	unsigned int max; /* max= */
};

static const struct sl_conf_def count_unrec_conf[] = {
	{ .name = "max",
	    .type = SL_CONF_UINT,
	    .def = "4",
	    .min = 1,
	    .max = 1000,
	    .offset = offsetof(struct count_unrec, max),
	    .help = "unrecognized commands that close the connection" },
	SL_CONF_END,
};

static enum sl_verdict
count_unrec_unrecognized(void *state, struct sl_hookctx *ctx)
{
	const struct count_unrec *st = state;
	struct sl_conn *conn;
	uintptr_t count;

	conn = sl_hook_conn(ctx);
	/* Unset data reads as NULL, i.e. a count of 0. */
	count = (uintptr_t)sl_conn_data_get(conn, st) + 1;
	sl_conn_data_set(conn, st, (void *)count, NULL);
	if (count < st->max) {
		sl_hook_log(ctx, LOG_DEBUG, "unrecognized=%ju max=%u",
		    (uintmax_t)count, st->max);
		return SL_DECLINED;
	}
	sl_hook_log(ctx, LOG_INFO,
	    "verdict=deny_disconnect reason=unrecognized_commands count=%ju "
	    "max=%u",
	    (uintmax_t)count, st->max);
	sl_hook_reply(ctx, 521, "5.5.1",
	    "Closing connection: too many unrecognized commands");
	return SL_DENY_DISCONNECT;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "count_unrecognized_commands",
	.conf = count_unrec_conf,
	.state_size = sizeof(struct count_unrec),
	.hooks = { [SL_HOOK_UNRECOGNIZED] = count_unrec_unrecognized },
	.front_ends = SL_FRONT_SMTPD,
};
