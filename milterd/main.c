/*
 * main.c - sluice-milterd: its listeners; the rest of a daemon's life is
 * shared/daemon.c.
 *
 *   sluice-milterd [-c FILE] [-f] [-t]
 *
 * milter_listen takes the libmilter forms "inet:PORT@HOST",
 * "inet6:PORT@HOST" and "unix:/path" ("local:/path"); "inet:HOST:PORT"
 * works too.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "daemon.h"
#include "log.h"
#include "xmalloc.h"
#include "milterd.h"

static int
milterd_check(const struct sl_settings *set, char **error_r)
{
	struct sl_milter_spec ms;
	size_t i;

	if (set->milter_listen.count == 0) {
		*error_r =
		    sl_xasprintf("milter_listen: not set (sluice-milterd "
		                 "needs at least one milter socket)");
		return -1;
	}
	for (i = 0; i < set->milter_listen.count; i++) {
		if (sl_milter_spec_parse("milter_listen",
		        set->milter_listen.items[i], &ms, error_r) == -1)
			return -1;
		sl_milter_spec_free(&ms);
	}
	return 0;
}

static void
accept_milter(struct sl_loop *l, int fd, const struct sockaddr *sa,
    socklen_t salen, void *arg)
{
	(void)arg;
	milterd_session_start(l, fd, sa, salen);
}

static void
milterd_bind(const struct sl_settings *set, unsigned int nloops)
{
	static const mode_t modes[] = { 0660, 0600, 0666 };
	struct sl_milter_spec ms;
	char *err = NULL;
	size_t i;

	for (i = 0; i < set->milter_listen.count; i++) {
		if (sl_milter_spec_parse("milter_listen",
		        set->milter_listen.items[i], &ms, &err) == -1)
			sl_fatal("%s", err);
		if (ms.is_unix)
			sl_listen_unix(set->milter_listen.items[i], ms.path,
			    modes[set->milter_socket_mode], set->user, nloops,
			    accept_milter, NULL);
		else
			sl_listen_tcp(set->milter_listen.items[i], ms.host,
			    ms.port, nloops, accept_milter, NULL);
		sl_milter_spec_free(&ms);
	}
}

static bool
milterd_needs_restart(const struct sl_settings *old,
    const struct sl_settings *cur)
{
	return !sl_strlist_equal(&old->milter_listen, &cur->milter_listen) ||
	    old->milter_socket_mode != cur->milter_socket_mode ||
	    old->loop_threads != cur->loop_threads ||
	    old->worker_threads != cur->worker_threads;
}

int
main(int argc, char **argv)
{
	static const struct sl_daemon d = {
		.progname = "sluice-milterd",
		.fe = SL_FRONT_MILTERD,
		.check = milterd_check,
		.bind = milterd_bind,
		.needs_restart = milterd_needs_restart,
		.drain = milterd_sessions_drain,
	};

	return sl_daemon_main(&d, argc, argv);
}
