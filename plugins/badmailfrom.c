/*
 * badmailfrom - refuse MAIL FROM senders listed in list= (sluice-plugins(7)).
 *
 * Hook mail.  Entries are matched by sl_addrlist (sluice/addrlist.h):
 * "user@example.com", "@example.com" or "/regex/[i]".  A listed sender
 * gets 550 5.7.1; the null sender (bounces, RFC 5321 4.5.5) never
 * matches, so delivery status notifications always get through.  The list
 * is built once per config line and only read afterwards, so every loop
 * thread matches against it without locks.
 *
 *	plugin badmailfrom list=@badmailfrom.list
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include <sluice/addrlist.h>
#include <sluice/plugin.h>

struct badmailfrom {
	struct sl_strlist list; /* list= */
	char *message;          /* message=: replaces the reply text */
	struct sl_addrlist *al; /* built from list by init */
};

static const struct sl_conf_def badmailfrom_conf[] = {
	{ .name = "list",
	    .type = SL_CONF_LIST,
	    .flags = SL_CONF_F_AT_LITERAL,
	    .def = NULL,
	    .offset = offsetof(struct badmailfrom, list),
	    .help = "senders to refuse: user@dom, @dom, /regex/[i], @file" },
	{ .name = "message",
	    .type = SL_CONF_STR,
	    .def = NULL,
	    .offset = offsetof(struct badmailfrom, message),
	    .help = "reply text instead of \"Mail from <x> not accepted "
	            "here\"" },
	SL_CONF_END,
};

/* init runs on the configuring thread only: one buffer will do. */
static char badmailfrom_error[512];

static int
badmailfrom_init(void **state_r, const char **error_r)
{
	struct badmailfrom *st = *state_r;
	char *error;

	st->al = sl_addrlist_new(&st->list, &error);
	if (st->al == NULL) {
		snprintf(badmailfrom_error, sizeof(badmailfrom_error),
		    "list: %s", error);
		free(error);
		*error_r = badmailfrom_error;
		return -1;
	}
	return 0;
}

static void
badmailfrom_fini(void *state)
{
	struct badmailfrom *st = state;

	sl_addrlist_free(&st->al);
}

static enum sl_verdict
badmailfrom_mail(void *state, struct sl_hookctx *ctx)
{
	const struct badmailfrom *st = state;
	const char *sender, *entry;

	sender = sl_hook_args(ctx)->arg;
	if (sender == NULL || sender[0] == '\0')
		return SL_DECLINED;
	entry = sl_addrlist_match(st->al, sender);
	if (entry == NULL)
		return SL_DECLINED;
	sl_hook_log(ctx, LOG_INFO,
	    "verdict=deny reason=listed_sender sender=<%s> entry=\"%s\"",
	    sender, entry);
	if (st->message != NULL)
		sl_hook_reply(ctx, 550, "5.7.1", "%s", st->message);
	else
		sl_hook_reply(ctx, 550, "5.7.1",
		    "Mail from <%s> not accepted here", sender);
	return SL_DENY;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "badmailfrom",
	.conf = badmailfrom_conf,
	.state_size = sizeof(struct badmailfrom),
	.init = badmailfrom_init,
	.fini = badmailfrom_fini,
	.hooks = { [SL_HOOK_MAIL] = badmailfrom_mail },
};
