/*
 * earlytalker - refuse clients that talk before their turn
 * (sluice-plugins(7)): before the banner (Postfix postscreen's
 * "pregreet" test) and, optionally, before the reply to DATA.
 *
 * Hooks connect and data (sluice-smtpd only).  The hook suspends for
 * wait= (data_wait=) on sl_conn_input_wait(): input from the client ends
 * the wait at once and the client is a talker (554 5.7.1); the end of
 * the wait without input lets it pass.  sluice-smtpd reads nothing while
 * the hook is suspended, so the early bytes stay with the session, which
 * answers them afterwards, in order: after a 554 greeting with 503 until
 * QUIT.  The wait hangs off the connection (sl_conn_data_set), so a
 * client that leaves mid-wait drops it.  After the first BDAT the chunk
 * follows the command by design (no 354): nothing is checked there.
 *
 *	plugin earlytalker wait=1s data_wait=0
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sluice/plugin.h>

#include "log.h"
#include "xmalloc.h"

/* How long the core waits beyond wait= before it calls the hook failed. */
#define ET_BACKSTOP_MS 5000

struct earlytalker {
	unsigned int wait_ms;      /* wait= */
	unsigned int data_wait_ms; /* data_wait= */
};

static const struct sl_conf_def earlytalker_conf[] = {
	{ .name = "wait",
	    .type = SL_CONF_MSEC,
	    .def = "1s",
	    .min = 0,
	    .max = 60000,
	    .offset = offsetof(struct earlytalker, wait_ms),
	    .help = "silence asked for before the banner (0 = no wait)" },
	{ .name = "data_wait",
	    .type = SL_CONF_MSEC,
	    .def = "0",
	    .min = 0,
	    .max = 60000,
	    .offset = offsetof(struct earlytalker, data_wait_ms),
	    .help = "silence asked for before the DATA reply (0 = off)" },
	SL_CONF_END,
};

/* A suspended check, one per connection and instance. */
struct et_wait {
	struct sl_conn *conn;
	const char *name; /* the instance's name (lives with the runtime) */
	const char *stage;
	unsigned int wait_ms;
	struct sl_async *async;
	struct sl_io *io;
};

static void
et_wait_free(void *arg)
{
	struct et_wait *w = arg;

	sl_io_cancel(&w->io);
	sl_async_done(&w->async, SL_DECLINED);
	free(w);
}

/*
 * Decides on bytes pending at stage: logs, records the outcome, and
 * returns DENY (the caller sets the reply, see et_text) or DECLINED.  A
 * pass never hides an earlier fail of the same connection.
 */
static enum sl_verdict
et_judge(struct sl_conn *c, const char *name, const char *stage,
    unsigned int wait_ms, size_t bytes)
{
	const char *prev;
	char detail[64];

	if (bytes > 0) {
		sl_log(LOG_INFO, sl_conn_id(c),
		    "plugin=%s result=fail stage=%s bytes=%zu wait=%ums "
		    "client=[%s]",
		    name, stage, bytes, wait_ms, sl_conn_remote_ip(c));
		snprintf(detail, sizeof(detail), "%s %zu bytes", stage, bytes);
		sl_conn_outcome_set(c, name, "fail", detail);
		return SL_DENY;
	}
	sl_log(LOG_INFO, sl_conn_id(c),
	    "plugin=%s result=pass stage=%s wait=%ums client=[%s]", name, stage,
	    wait_ms, sl_conn_remote_ip(c));
	prev = sl_conn_outcome_get(c, name);
	if (prev == NULL || strncmp(prev, "fail", 4) != 0)
		sl_conn_outcome_set(c, name, "pass", NULL);
	return SL_DECLINED;
}

static const char *
et_text(const char *stage)
{
	return strcmp(stage, "banner") == 0 ? "Talked before the greeting"
	                                    : "Talked before the DATA reply";
}

/* The wait ended: input arrived (SL_IO_READ) or the time is up. */
static void
et_wait_cb(void *arg, unsigned int what)
{
	struct et_wait *w = arg;
	enum sl_verdict v;
	size_t n;

	(void)what;
	w->io = NULL; /* the core frees a fired wait */
	if (!sl_async_is_live(w->async)) {
		sl_async_done(&w->async, SL_DECLINED);
		return;
	}
	n = sl_conn_input_pending(w->conn);
	v = et_judge(w->conn, w->name, w->stage, w->wait_ms, n);
	if (v == SL_DENY)
		sl_async_reply(w->async, 554, "5.7.1", "%s", et_text(w->stage));
	sl_async_done(&w->async, v);
}

static enum sl_verdict
et_check(void *state, struct sl_hookctx *ctx, const char *stage,
    unsigned int wait_ms)
{
	struct sl_conn *c = sl_hook_conn(ctx);
	struct et_wait *w;
	enum sl_verdict v;
	size_t n;

	n = sl_conn_input_pending(c);
	if (n > 0 || wait_ms == 0) {
		v = et_judge(c, sl_hook_plugin_name(ctx), stage, wait_ms, n);
		if (v == SL_DENY)
			sl_hook_reply(ctx, 554, "5.7.1", "%s", et_text(stage));
		return v;
	}
	w = sl_conn_data_get(c, state);
	if (w == NULL) {
		w = sl_xcalloc(1, sizeof(*w));
		w->conn = c;
		w->name = sl_hook_plugin_name(ctx);
		sl_conn_data_set(c, state, w, et_wait_free);
	}
	/* One hook runs at a time: anything left is stale. */
	sl_io_cancel(&w->io);
	sl_async_done(&w->async, SL_DECLINED);
	w->stage = stage;
	w->wait_ms = wait_ms;
	w->async = sl_async_begin(ctx);
	sl_async_timeout(w->async, wait_ms + ET_BACKSTOP_MS);
	w->io = sl_conn_input_wait(c, wait_ms, et_wait_cb, w);
	return SL_PENDING;
}

static enum sl_verdict
earlytalker_connect(void *state, struct sl_hookctx *ctx)
{
	const struct earlytalker *st = state;

	return et_check(state, ctx, "banner", st->wait_ms);
}

static enum sl_verdict
earlytalker_data(void *state, struct sl_hookctx *ctx)
{
	const struct earlytalker *st = state;
	const char *cmd = sl_hook_args(ctx)->arg;

	/* BDAT's chunk comes with the command (RFC 3030 2): not early. */
	if (st->data_wait_ms == 0 || cmd == NULL || strcmp(cmd, "DATA") != 0)
		return SL_DECLINED;
	return et_check(state, ctx, "data", st->data_wait_ms);
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "earlytalker",
	.conf = earlytalker_conf,
	.state_size = sizeof(struct earlytalker),
	.hooks = {
	    [SL_HOOK_CONNECT] = earlytalker_connect,
	    [SL_HOOK_DATA] = earlytalker_data,
	},
	.front_ends = SL_FRONT_SMTPD,
};
