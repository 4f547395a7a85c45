/*
 * main.c - sluice-smtpd: command line, listeners, privileges, signals.
 *
 *   sluice-smtpd [-c FILE] [-f] [-t]
 *
 * The listening sockets (one per address and loop thread, SO_REUSEPORT)
 * are bound before privileges are dropped.  Each loop thread accepts on its
 * own sockets, enforces the total and per-IP connection limits, and serves
 * what it accepted.  The main thread only handles signals: SIGHUP loads
 * the configuration anew and swaps it in only if it is valid; SIGTERM
 * stops accepting and drains the sessions in flight.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "core.h"
#include "log.h"
#include "xmalloc.h"
#include "smtpd.h"

#ifndef SL_SYSCONFDIR
#define SL_SYSCONFDIR "/etc/sluice"
#endif

/*
 * One listening socket per address and loop thread (SO_REUSEPORT): the
 * kernel spreads connections over the loops, and a connection is served
 * by the thread that accepted it, with no hand-off between threads.
 */
struct listener {
	struct evconnlistener *ev; /* created and freed on its loop thread */
	struct sl_loop *loop;
	int fd;
	bool proxy;
	char *spec;
};

static struct listener *listeners;
static size_t nlisteners;
static const char *conf_path = SL_SYSCONFDIR "/sluice.conf";
static struct event_base *main_base;

static void
usage(void)
{
	fprintf(stderr, "usage: sluice-smtpd [-c file] [-f] [-t]\n");
	exit(1);
}

/* "127.0.0.1:2525", "[::1]:2525", "*:25", ":25" */
static int
split_hostport(const char *spec, char **host_r, char **port_r)
{
	const char *colon;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (rb == NULL || rb[1] != ':' || rb[2] == '\0')
			return -1;
		*host_r = sl_xstrndup(spec + 1, (size_t)(rb - spec - 1));
		*port_r = sl_xstrdup(rb + 2);
		return 0;
	}
	colon = strrchr(spec, ':');
	if (colon == NULL || colon[1] == '\0')
		return -1;
	*host_r = sl_xstrndup(spec, (size_t)(colon - spec));
	*port_r = sl_xstrdup(colon + 1);
	return 0;
}

static int
bind_one(const char *spec)
{
	struct addrinfo hints, *res = NULL;
	char *host = NULL, *port = NULL;
	int fd = -1, on = 1, rc;

	if (split_hostport(spec, &host, &port) == -1)
		sl_fatal("listen %s: expected address:port", spec);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	rc =
	    getaddrinfo(host[0] == '\0' || strcmp(host, "*") == 0 ? NULL : host,
	        port, &hints, &res);
	if (rc != 0)
		sl_fatal("listen %s: %s", spec, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		sl_fatal("listen %s: socket: %s", spec, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)
		sl_fatal("listen %s: SO_REUSEPORT: %s", spec, strerror(errno));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1)
		sl_fatal("listen %s: bind: %s", spec, strerror(errno));
	if (listen(fd, 1024) == -1)
		sl_fatal("listen %s: listen: %s", spec, strerror(errno));
	freeaddrinfo(res);
	free(host);
	free(port);
	return fd;
}

static void
reject_now(int fd, const char *text)
{
	/* A fresh socket's send buffer is empty: this never blocks. */
	(void)!send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static void
accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct listener *li = arg;
	const struct sl_settings *set;
	struct sl_conn *c;
	bool over_total;
	char buf[256];

	(void)ev;
	c = sl_conn_new(li->loop, SL_FRONT_SMTPD);
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
	smtpd_session_start(c, fd, li->proxy);
}

/* Binds every address once per loop thread; runs before the privilege drop. */
static void
listeners_bind(const struct sl_settings *set, unsigned int nloops)
{
	size_t i, j, nspec = set->listen.count + set->proxy_listen.count;
	struct listener *li;
	const char *spec;

	listeners = sl_xcalloc(nspec * nloops, sizeof(*listeners));
	for (i = 0; i < nspec; i++) {
		spec = i < set->listen.count
		    ? set->listen.items[i]
		    : set->proxy_listen.items[i - set->listen.count];
		for (j = 0; j < nloops; j++) {
			li = &listeners[nlisteners++];
			li->proxy = i >= set->listen.count;
			li->spec = sl_xstrdup(spec);
			li->fd = bind_one(spec);
		}
		sl_log(LOG_INFO, NULL, "listening on %s%s", spec,
		    i >= set->listen.count ? " (PROXY protocol)" : "");
	}
}

static void
listener_enable(void *arg)
{
	struct listener *li = arg;

	li->ev = evconnlistener_new(sl_loop_base(li->loop), accept_cb, li,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, li->fd);
	if (li->ev == NULL)
		sl_fatal("listen %s: cannot create listener", li->spec);
	li->fd = -1;
}

static void
listener_disable(void *arg)
{
	struct listener *li = arg;

	if (li->ev != NULL)
		evconnlistener_free(li->ev);
	li->ev = NULL;
}

/* After the loops started: each loop thread accepts on its own sockets. */
static void
listeners_start(unsigned int nloops)
{
	size_t i;

	for (i = 0; i < nlisteners; i++) {
		listeners[i].loop = sl_loop_at((unsigned int)(i % nloops));
		sl_loop_post(listeners[i].loop, listener_enable, &listeners[i]);
	}
}

/* Stop accepting (from the main thread): each loop closes its own. */
static void
listeners_stop(void)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		sl_loop_post(listeners[i].loop, listener_disable,
		    &listeners[i]);
}

/* After the loops were joined. */
static void
listeners_free(void)
{
	size_t i;

	for (i = 0; i < nlisteners; i++) {
		if (listeners[i].fd != -1)
			close(listeners[i].fd);
		free(listeners[i].spec);
	}
	free(listeners);
	listeners = NULL;
	nlisteners = 0;
}

static bool
strlist_equal(const struct sl_strlist *a, const struct sl_strlist *b)
{
	size_t i;

	if (a->count != b->count)
		return false;
	for (i = 0; i < a->count; i++)
		if (strcmp(a->items[i], b->items[i]) != 0)
			return false;
	return true;
}

static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct sl_runtime *rt, *old;
	char *err = NULL;

	(void)sig;
	(void)what;
	(void)arg;
	rt = sl_runtime_load(conf_path, SL_FRONT_SMTPD, &err);
	if (rt == NULL) {
		sl_log(LOG_ERR, NULL,
		    "reload failed, keeping the running configuration: %s",
		    err);
		free(err);
		return;
	}
	old = sl_runtime_current();
	if (!strlist_equal(&old->set->listen, &rt->set->listen) ||
	    !strlist_equal(&old->set->proxy_listen, &rt->set->proxy_listen) ||
	    old->set->loop_threads != rt->set->loop_threads ||
	    old->set->worker_threads != rt->set->worker_threads)
		sl_log(LOG_WARNING, NULL,
		    "reload: listen, proxy_listen, loop_threads and "
		    "worker_threads take effect only after a restart");
	sl_runtime_unref(&old);
	sl_log_set_level(rt->set->log_level);
	sl_runtime_set_current(rt);
	sl_runtime_unref(&rt);
	sl_log(LOG_INFO, NULL, "reloaded configuration from %s", conf_path);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	sl_log(LOG_INFO, NULL, "signal %d: no longer accepting; draining",
	    (int)sig);
	listeners_stop();
	event_base_loopbreak(main_base);
}

static void
make_dir(const char *path, uid_t uid, gid_t gid, bool chown_it)
{
	if (mkdir(path, 0750) == -1 && errno != EEXIST)
		sl_fatal("cannot create %s: %s", path, strerror(errno));
	if (chown_it && chown(path, uid, gid) == -1)
		sl_fatal("cannot chown %s: %s", path, strerror(errno));
}

/* Everything that needs root happens before this. */
static void
drop_privileges(const struct sl_settings *set)
{
	struct passwd *pw = NULL;
	bool root = geteuid() == 0;

	if (set->user != NULL) {
		pw = getpwnam(set->user);
		if (pw == NULL)
			sl_fatal("user %s: no such user", set->user);
	}
	make_dir(set->state_dir, pw != NULL ? pw->pw_uid : 0,
	    pw != NULL ? pw->pw_gid : 0, pw != NULL && root);
	make_dir(set->spool_dir, pw != NULL ? pw->pw_uid : 0,
	    pw != NULL ? pw->pw_gid : 0, pw != NULL && root);
	if (pw == NULL)
		return;
	if (!root) {
		if (getuid() != pw->pw_uid)
			sl_fatal("user %s: not running as root, cannot switch",
			    set->user);
		return;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		sl_fatal("cannot drop privileges to %s: %s", set->user,
		    strerror(errno));
	if (setuid(0) == 0)
		sl_fatal("privileges could be regained after dropping them");
	sl_log(LOG_INFO, NULL, "running as user %s", set->user);
}

static void
write_pid(const char *path)
{
	FILE *f;

	if (path == NULL)
		return;
	f = fopen(path, "w");
	if (f == NULL)
		sl_fatal("pid_file %s: %s", path, strerror(errno));
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

int
main(int argc, char **argv)
{
	struct sl_runtime *rt;
	struct event *ev_hup, *ev_term, *ev_int;
	bool foreground = false, check = false;
	unsigned int nloops;
	char *err = NULL;
	int ch;

	while ((ch = getopt(argc, argv, "c:fth")) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			check = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	sl_log_init("sluice-smtpd", foreground || check);
	rt = sl_runtime_load(conf_path, SL_FRONT_SMTPD, &err);
	if (rt == NULL) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	if (check) {
		fprintf(stderr, "%s: configuration ok\n", conf_path);
		sl_runtime_unref(&rt);
		return 0;
	}
	sl_log_set_level(rt->set->log_level);
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0)
		sl_fatal("libevent: no thread support");
	main_base = event_base_new();
	if (main_base == NULL)
		sl_fatal("libevent: cannot create the event base");
	if (!foreground && daemon(1, 0) == -1)
		sl_fatal("daemon: %s", strerror(errno));
	nloops = sl_loops_count(rt->set->loop_threads);
	listeners_bind(rt->set, nloops);
	drop_privileges(rt->set);
	write_pid(rt->set->pid_file);
	sl_runtime_set_current(rt);
	sl_loops_set_drain_cb(smtpd_sessions_drain);
	sl_loops_start(nloops, rt->set->worker_threads);
	listeners_start(nloops);
	ev_hup = evsignal_new(main_base, SIGHUP, reload_cb, NULL);
	ev_term = evsignal_new(main_base, SIGTERM, stop_cb, NULL);
	ev_int = evsignal_new(main_base, SIGINT, stop_cb, NULL);
	evsignal_add(ev_hup, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	sl_log(LOG_INFO, NULL, "sluice-smtpd started, %zu plugin(s)",
	    rt->ninst);
	event_base_dispatch(main_base);
	sl_loops_drain_and_join(rt->set->shutdown_timeout_ms);
	event_free(ev_hup);
	event_free(ev_term);
	event_free(ev_int);
	listeners_free();
	sl_runtime_unref(&rt);
	sl_runtime_set_current(NULL);
	event_base_free(main_base);
	sl_log(LOG_INFO, NULL, "stopped");
	return 0;
}
