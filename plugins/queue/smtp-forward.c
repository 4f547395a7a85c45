/*
 * queue/smtp-forward - hand accepted mail to the next hop over SMTP
 * (sluice-plugins(7)), e.g. a Postfix on the same host.
 *
 * Hook queue (sluice-smtpd only).  The client gets 250 only after the
 * next hop answered 250 to the message; a refusal comes back with the
 * next hop's code, and any failure on the way (unreachable, timeout,
 * protocol error, TLS required but missing) as 451 4.4.x.  The SMTP
 * client itself, and the option table it shares with queue/lmtp, live
 * in the core (shared/smtpclient.c); STARTTLS defaults to "may".
 *
 *	plugin queue/smtp-forward host=127.0.0.1:10025
 */
#include <stddef.h>

#include <sluice/plugin.h>

#include "smtpclient.h"

static const struct sl_conf_def forward_conf[] = {
	SL_SMTPCLIENT_CONF_ROWS("may"),
	SL_CONF_END,
};

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "queue/smtp-forward",
	.conf = forward_conf,
	.state_size = sizeof(struct sl_smtpclient_opts),
	.init = sl_smtpclient_init_smtp,
	.fini = sl_smtpclient_fini,
	.hooks = { [SL_HOOK_QUEUE] = sl_smtpclient_queue },
	.front_ends = SL_FRONT_SMTPD,
};
