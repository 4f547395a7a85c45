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

struct mspec {
	bool is_unix;
	char *host, *port, *path;
};

/* Parses one milter_listen item; returns 0 or -1 with *error_r. */
static int
parse_spec(const char *spec, struct mspec *ms, char **error_r)
{
	const char *rest, *at;

	memset(ms, 0, sizeof(*ms));
	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		rest = strchr(spec, ':') + 1;
		if (rest[0] != '/') {
			*error_r = sl_xasprintf("milter_listen %s: the socket "
			                        "path must be absolute",
			    spec);
			return -1;
		}
		ms->is_unix = true;
		ms->path = sl_xstrdup(rest);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0)
		rest = spec + 5;
	else if (strncmp(spec, "inet6:", 6) == 0)
		rest = spec + 6;
	else {
		*error_r = sl_xasprintf("milter_listen %s: expected "
		                        "inet:PORT@HOST, inet6:PORT@HOST or "
		                        "unix:/path",
		    spec);
		return -1;
	}
	at = strchr(rest, '@');
	if (at != NULL) {
		ms->port = sl_xstrndup(rest, (size_t)(at - rest));
		ms->host = sl_xstrdup(at + 1);
		if (ms->host[0] == '[' &&
		    ms->host[strlen(ms->host) - 1] == ']') {
			memmove(ms->host, ms->host + 1, strlen(ms->host));
			ms->host[strlen(ms->host) - 1] = '\0';
		}
	} else if (strchr(rest, ':') != NULL) {
		if (sl_split_hostport(rest, &ms->host, &ms->port) == -1)
			goto bad;
	} else {
		ms->port = sl_xstrdup(rest);
		ms->host = sl_xstrdup("");
	}
	if (ms->port[0] == '\0' ||
	    strspn(ms->port, "0123456789") != strlen(ms->port))
		goto bad;
	return 0;
bad:
	free(ms->host);
	free(ms->port);
	*error_r = sl_xasprintf("milter_listen %s: bad port or address", spec);
	return -1;
}

static void
mspec_free(struct mspec *ms)
{
	free(ms->host);
	free(ms->port);
	free(ms->path);
}

static int
milterd_check(const struct sl_settings *set, char **error_r)
{
	struct mspec ms;
	size_t i;

	if (set->milter_listen.count == 0) {
		*error_r =
		    sl_xasprintf("milter_listen: not set (sluice-milterd "
		                 "needs at least one milter socket)");
		return -1;
	}
	for (i = 0; i < set->milter_listen.count; i++) {
		if (parse_spec(set->milter_listen.items[i], &ms, error_r) == -1)
			return -1;
		mspec_free(&ms);
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
	struct mspec ms;
	char *err = NULL;
	size_t i;

	for (i = 0; i < set->milter_listen.count; i++) {
		if (parse_spec(set->milter_listen.items[i], &ms, &err) == -1)
			sl_fatal("%s", err);
		if (ms.is_unix)
			sl_listen_unix(set->milter_listen.items[i], ms.path,
			    modes[set->milter_socket_mode], set->user, nloops,
			    accept_milter, NULL);
		else
			sl_listen_tcp(set->milter_listen.items[i], ms.host,
			    ms.port, nloops, accept_milter, NULL);
		mspec_free(&ms);
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
