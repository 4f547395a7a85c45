/*
 * queue/discard - accept every message and drop it (sluice-plugins(7)).
 *
 * Hook queue (sluice-smtpd only).  Answers 250 2.0.0 and keeps nothing:
 * for benchmarks, tests and sink hosts.  Each dropped message is logged
 * with its id, sender and recipient count, so that a mistaken
 * configuration shows up in the log instead of vanishing mail silently.
 *
 *	plugin queue/discard
 */
#include <stddef.h>
#include <syslog.h>

#include <sluice/plugin.h>

/* No options of its own: only the ones every plugin gets. */
static const struct sl_conf_def discard_conf[] = {
	SL_CONF_END,
};

static enum sl_verdict
discard_queue(void *state, struct sl_hookctx *ctx)
{
	struct sl_txn *txn;
	const char *sender;

	(void)state;
	txn = sl_hook_txn(ctx);
	sender = sl_txn_sender(txn);
	sl_hook_log(ctx, LOG_INFO,
	    "verdict=ok reason=discarded id=%s sender=<%s> rcpts=%zu "
	    "size=%zu",
	    sl_txn_id(txn), sender != NULL ? sender : "",
	    sl_txn_rcpt_count(txn), sl_txn_size(txn));
	sl_hook_reply(ctx, 250, "2.0.0", "Ok: discarded");
	return SL_OK;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "queue/discard",
	.conf = discard_conf,
	.hooks = { [SL_HOOK_QUEUE] = discard_queue },
	.front_ends = SL_FRONT_SMTPD,
};
