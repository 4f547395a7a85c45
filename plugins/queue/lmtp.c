/*
 * queue/lmtp - deliver accepted mail over LMTP (RFC 2033), e.g. into
 * Dovecot's mailboxes (sluice-plugins(7)).
 *
 * Hook queue (sluice-smtpd only).  Same client and options as
 * queue/smtp-forward (shared/smtpclient.c), with LHLO, host= also
 * "unix:/path", and STARTTLS off by default.  LMTP answers the end of
 * the message once per recipient: all delivered gives 250; all refused
 * the first temporary refusal, else the first permanent one; a mixed
 * outcome 451 if a refusal was temporary (the client retries, the
 * delivered recipients may get a duplicate), else 554; each recipient's
 * outcome is logged.
 *
 *	plugin queue/lmtp host=unix:/run/dovecot/lmtp
 */
#include <stddef.h>

#include <sluice/plugin.h>

#include "smtpclient.h"

static const struct sl_conf_def lmtp_conf[] = {
	SL_SMTPCLIENT_CONF_ROWS("no"),
	SL_CONF_END,
};

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "queue/lmtp",
	.conf = lmtp_conf,
	.state_size = sizeof(struct sl_smtpclient_opts),
	.init = sl_smtpclient_init_lmtp,
	.fini = sl_smtpclient_fini,
	.hooks = { [SL_HOOK_QUEUE] = sl_smtpclient_queue },
	.front_ends = SL_FRONT_SMTPD,
};
