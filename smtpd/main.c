/*
 * main.c - sluice-smtpd: its listeners and what happens to an accepted
 * connection; the rest of a daemon's life is shared/daemon.c.
 *
 *   sluice-smtpd [-c FILE] [-f] [-t] [-i]
 *
 * Each loop thread accepts on its own sockets, enforces the total and
 * per-IP connection limits, and serves what it accepted.  -i serves one
 * session on stdin/stdout instead (inetd.c).
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "daemon.h"
#include "log.h"
#include "xmalloc.h"
#include "smtpd.h"

/* What a listener's sockets start with: SMTPD_PROXY, SMTPD_TLS. */
static const unsigned int plain = 0, proxied = SMTPD_PROXY,
                          implicit_tls = SMTPD_TLS;

static void
reject_now(int fd, const char *text)
{
	/* A fresh socket's send buffer is empty: this never blocks. */
	(void)!send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static void
accept_smtp(struct sl_loop *l, int fd, const struct sockaddr *sa,
    socklen_t salen, void *arg)
{
	const unsigned int *flags = arg;
	const struct sl_settings *set;
	struct sl_conn *c;
	bool over_total;
	char buf[256];

	c = sl_conn_new(l, SL_FRONT_SMTPD);
	sl_conn_set_remote(c, sa, (size_t)salen);
	set = c->rt->set;
	if (sl_ipcount_acquire(c->peer_addr, set->max_connections,
	        set->max_connections_per_ip, &over_total) == 0) {
		sl_log(LOG_NOTICE, c->id,
		    "connect refused client=[%s] reason=%s", c->remote_ip,
		    over_total ? "max_connections" : "max_connections_per_ip");
		snprintf(buf, sizeof(buf), "421 4.7.0 %s %s\r\n", set->hostname,
		    over_total ? "Too many connections, try again later"
		               : "Too many connections from your address");
		reject_now(fd, buf);
		sl_conn_free(&c);
		return;
	}
	smtpd_session_start(c, fd, *flags);
}

static void
bind_list(const struct sl_strlist *specs, const unsigned int *flags,
    unsigned int nloops)
{
	char *host, *port, *label;
	size_t i;

	for (i = 0; i < specs->count; i++) {
		if (sl_split_hostport(specs->items[i], &host, &port) == -1)
			sl_fatal("listen %s: expected address:port",
			    specs->items[i]);
		label = sl_xasprintf("%s%s", specs->items[i],
		    (*flags & SMTPD_PROXY) != 0     ? " (PROXY protocol)"
		        : (*flags & SMTPD_TLS) != 0 ? " (smtps)"
		                                    : "");
		sl_listen_tcp(label, host, port, nloops, accept_smtp,
		    (void *)(uintptr_t)flags);
		free(label);
		free(host);
		free(port);
	}
}

static void
smtpd_bind(const struct sl_settings *set, unsigned int nloops)
{
	bind_list(&set->listen, &plain, nloops);
	bind_list(&set->proxy_listen, &proxied, nloops);
	bind_list(&set->smtps_listen, &implicit_tls, nloops);
}

static bool
smtpd_needs_restart(const struct sl_settings *old,
    const struct sl_settings *cur)
{
	return !sl_strlist_equal(&old->listen, &cur->listen) ||
	    !sl_strlist_equal(&old->proxy_listen, &cur->proxy_listen) ||
	    !sl_strlist_equal(&old->smtps_listen, &cur->smtps_listen) ||
	    old->loop_threads != cur->loop_threads ||
	    old->worker_threads != cur->worker_threads;
}

int
main(int argc, char **argv)
{
	static const struct sl_stdio_ops stdio = {
		.prepare = smtpd_stdio_prepare,
		.start = smtpd_stdio_start,
		.finish = smtpd_stdio_finish,
	};
	static const struct sl_daemon d = {
		.progname = "sluice-smtpd",
		.fe = SL_FRONT_SMTPD,
		.bind = smtpd_bind,
		.needs_restart = smtpd_needs_restart,
		.drain = smtpd_sessions_drain,
		.stdio = &stdio,
	};

	return sl_daemon_main(&d, argc, argv);
}
