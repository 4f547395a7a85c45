/*
 * test_store.c - a test-only plugin for the state store: at MAIL it
 * counts the client's sessions with sl_store_incr and says the count in
 * the MAIL reply ("250 2.1.0 count=N").  Used by t/integration/store.t;
 * never installed.
 *
 *   plugin test_store expire=2
 *
 * expire=  lifetime of the count in seconds (0 = none)
 * When the store is unavailable it logs so and goes on (store_failure
 * open) or answers 451 4.3.0 (store_failure tempfail).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include <sluice/plugin.h>

struct ts {
	unsigned int expire_s;
};

struct pending {
	struct sl_async *a;
	struct sl_conn *conn;
};

static const struct sl_conf_def ts_conf[] = {
	{ .name = "expire",
	    .type = SL_CONF_UINT,
	    .def = "0",
	    .min = 0,
	    .max = 86400,
	    .offset = offsetof(struct ts, expire_s) },
	SL_CONF_END,
};

static void
counted(void *arg, enum sl_store_result res, const char *value, size_t len,
    long long num)
{
	struct pending *p = arg;

	(void)value;
	(void)len;
	if (!sl_async_is_live(p->a)) {
		sl_async_done(&p->a, SL_DECLINED);
		free(p);
		return;
	}
	if (res == SL_STORE_OK) {
		sl_async_reply(p->a, 250, "2.1.0", "count=%lld", num);
		sl_async_done(&p->a, SL_OK);
	} else if (sl_store_failure_tempfails(p->conn)) {
		sl_async_reply(p->a, 451, "4.3.0", "state store unavailable");
		sl_async_done(&p->a, SL_DENYSOFT);
	} else {
		sl_async_reply(p->a, 250, "2.1.0", "store unavailable");
		sl_async_done(&p->a, SL_OK);
	}
	free(p);
}

static enum sl_verdict
ts_mail(void *state, struct sl_hookctx *ctx)
{
	const struct ts *ts = state;
	struct pending *p;
	char key[128];

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return SL_ERROR;
	p->conn = sl_hook_conn(ctx);
	snprintf(key, sizeof(key), "test_store:%s", sl_conn_remote_ip(p->conn));
	p->a = sl_async_begin(ctx);
	sl_store_incr(p->conn, key, 1, ts->expire_s, counted, p);
	return SL_PENDING;
}

static int
ts_init(void **state_r, const char **error_r)
{
	(void)state_r;
	(void)error_r;
	return 0;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "test_store",
	.conf = ts_conf,
	.state_size = sizeof(struct ts),
	.init = ts_init,
	.hooks = {
	    [SL_HOOK_MAIL] = ts_mail,
	},
};
