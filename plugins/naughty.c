/*
 * naughty - deferred rejection (sluice-plugins(7)); qpsmtpd's naughty.
 *
 * A plugin with reject=defer (or one calling sl_conn_defer) marks the
 * connection instead of refusing it.  Without this plugin the front end
 * refuses each RCPT of a marked connection; with it loaded the front end
 * leaves the mark alone (rt->naughty) and naughty refuses the connection
 * at reject_at= and at every later hook it has, with the mark's reply.
 * Relay clients, listed or authenticated, are never refused.  A marker
 * must come before naughty in the chain of the hook where it marks for
 * the refusal to land at that hook.
 *
 *	plugin badmailfrom list=@badmailfrom.list reject=defer
 *	plugin naughty reject_at=data disconnect=yes
 */
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include <sluice/plugin.h>

/* reject_at= choices, in session order, and their hooks */
static const char *const reject_at_names[] = { "connect", "helo", "mail",
	"rcpt", "data", "data_post", NULL };
static const enum sl_hook_id reject_at_hooks[] = { SL_HOOK_CONNECT,
	SL_HOOK_HELO, SL_HOOK_MAIL, SL_HOOK_RCPT, SL_HOOK_DATA,
	SL_HOOK_DATA_POST };

struct naughty {
	int reject_at;   /* reject_at=: index into reject_at_names */
	bool disconnect; /* disconnect=: the _DISCONNECT verdicts */
};

static const struct sl_conf_def naughty_conf[] = {
	{ .name = "reject_at",
	    .type = SL_CONF_ENUM,
	    .def = "rcpt",
	    .choices = reject_at_names,
	    .offset = offsetof(struct naughty, reject_at),
	    .help = "the hook where a marked connection is refused" },
	{ .name = "disconnect",
	    .type = SL_CONF_BOOL,
	    .def = "no",
	    .offset = offsetof(struct naughty, disconnect),
	    .help = "close the connection after the refusal" },
	SL_CONF_END,
};

static bool
verdict_is_soft(enum sl_verdict v)
{
	return v == SL_DENYSOFT || v == SL_DENYSOFT_DISCONNECT;
}

static const char *
verdict_name(enum sl_verdict v)
{
	switch (v) {
	case SL_DENY:
		return "deny";
	case SL_DENYSOFT:
		return "denysoft";
	case SL_DENY_DISCONNECT:
		return "deny_disconnect";
	default:
		return "denysoft_disconnect";
	}
}

static enum sl_verdict
naughty_hook(void *state, struct sl_hookctx *ctx)
{
	const struct naughty *st = state;
	struct sl_conn *conn = sl_hook_conn(ctx);
	enum sl_hook_id h = sl_hook_args(ctx)->hook;
	const char *hook_name = reject_at_names[0], *enh, *text, *by;
	enum sl_verdict mark, v;
	size_t i;
	int code;

	if (h < reject_at_hooks[st->reject_at])
		return SL_DECLINED;
	if (!sl_conn_deferred(conn, &mark, &code, &enh, &text, &by))
		return SL_DECLINED;
	for (i = 0; i < sizeof(reject_at_hooks) / sizeof(reject_at_hooks[0]);
	     i++)
		if (reject_at_hooks[i] == h)
			hook_name = reject_at_names[i];
	if (sl_conn_is_relay_client(conn)) {
		sl_hook_log(ctx, LOG_INFO,
		    "not rejecting, marked by %s at %s: exempt=%s", by,
		    hook_name,
		    sl_conn_auth_user(conn) != NULL ? "authenticated"
		                                    : "relay_client");
		return SL_DECLINED;
	}
	if (verdict_is_soft(mark))
		v = st->disconnect ? SL_DENYSOFT_DISCONNECT : SL_DENYSOFT;
	else
		v = st->disconnect ? SL_DENY_DISCONNECT : SL_DENY;
	/*
	 * 421 means "closing" (RFC 5321 3.8): only with the disconnect, and
	 * then always, whatever 4xx the marker chose.
	 */
	if (v == SL_DENYSOFT_DISCONNECT)
		code = 421;
	else if (code == 421)
		code = 451;
	sl_hook_log(ctx, LOG_INFO,
	    "rejecting, marked by %s at %s: verdict=%s code=%d", by, hook_name,
	    verdict_name(v), code);
	sl_conn_outcome_set(conn, sl_hook_plugin_name(ctx), "fail", by);
	sl_hook_reply(ctx, code, enh[0] != '\0' ? enh : NULL, "%s", text);
	return v;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "naughty",
	.conf = naughty_conf,
	.state_size = sizeof(struct naughty),
	.hooks = {
	    [SL_HOOK_CONNECT] = naughty_hook,
	    [SL_HOOK_HELO] = naughty_hook,
	    [SL_HOOK_MAIL] = naughty_hook,
	    [SL_HOOK_RCPT] = naughty_hook,
	    [SL_HOOK_DATA] = naughty_hook,
	    [SL_HOOK_DATA_POST] = naughty_hook,
	},
};
