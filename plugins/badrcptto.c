/*
 * badrcptto - refuse RCPT TO recipients listed in list= (sluice-plugins(7)).
 *
 * Hook rcpt.  Entries are matched by sl_addrlist (sluice/addrlist.h):
 * "user@example.com", "@example.com" or "/regex/[i]".  A listed recipient
 * gets 550 5.7.1 and the transaction goes on with the other recipients.
 * The list is built once per config line and only read afterwards, so
 * every loop thread matches against it without locks.
 *
 *	plugin badrcptto list=@badrcptto.list
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include <sluice/addrlist.h>
#include <sluice/plugin.h>

struct badrcptto {
	struct sl_strlist list; /* list= */
	char *message;          /* message=: replaces the reply text */
	struct sl_addrlist *al; /* built from list by init */
};

static const struct sl_conf_def badrcptto_conf[] = {
	{ .name = "list",
	    .type = SL_CONF_LIST,
	    .flags = SL_CONF_F_AT_LITERAL,
	    .def = NULL,
	    .offset = offsetof(struct badrcptto, list),
	    .help = "recipients to refuse: user@dom, @dom, /regex/[i], @file" },
	{ .name = "message",
	    .type = SL_CONF_STR,
	    .def = NULL,
	    .offset = offsetof(struct badrcptto, message),
	    .help = "reply text instead of \"Mail to <x> not accepted "
	            "here\"" },
	SL_CONF_END,
};

/* init runs on the configuring thread only: one buffer will do. */
static char badrcptto_error[512];

static int
badrcptto_init(void **state_r, const char **error_r)
{
	struct badrcptto *st = *state_r;
	char *error;

	st->al = sl_addrlist_new(&st->list, &error);
	if (st->al == NULL) {
		snprintf(badrcptto_error, sizeof(badrcptto_error), "list: %s",
		    error);
		free(error);
		*error_r = badrcptto_error;
		return -1;
	}
	return 0;
}

static void
badrcptto_fini(void *state)
{
	struct badrcptto *st = state;

	sl_addrlist_free(&st->al);
}

static enum sl_verdict
badrcptto_rcpt(void *state, struct sl_hookctx *ctx)
{
	const struct badrcptto *st = state;
	const char *rcpt, *entry;

	rcpt = sl_hook_args(ctx)->arg;
	if (rcpt == NULL || rcpt[0] == '\0')
		return SL_DECLINED;
	entry = sl_addrlist_match(st->al, rcpt);
	if (entry == NULL)
		return SL_DECLINED;
	sl_hook_log(ctx, LOG_INFO,
	    "verdict=deny reason=listed_rcpt rcpt=<%s> entry=\"%s\"", rcpt,
	    entry);
	if (st->message != NULL)
		sl_hook_reply(ctx, 550, "5.7.1", "%s", st->message);
	else
		sl_hook_reply(ctx, 550, "5.7.1",
		    "Mail to <%s> not accepted here", rcpt);
	return SL_DENY;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "badrcptto",
	.conf = badrcptto_conf,
	.state_size = sizeof(struct badrcptto),
	.init = badrcptto_init,
	.fini = badrcptto_fini,
	.hooks = { [SL_HOOK_RCPT] = badrcptto_rcpt },
};
