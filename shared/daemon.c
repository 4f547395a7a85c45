/*
 * daemon.c - the life of a sluice daemon around its sessions: command
 * line, configuration, listeners, privileges, loop threads, signals.
 *
 * The listening sockets are bound before privileges are dropped.  A TCP
 * address gets one socket per loop thread (SO_REUSEPORT): the kernel
 * spreads connections over the loops, and a connection is served by the
 * thread that accepted it, with no hand-off between threads.  A UNIX
 * socket is shared: every loop accepts on its own descriptor of it.  The
 * main thread only handles signals: SIGHUP loads the configuration anew
 * and swaps it in only if it is valid; SIGTERM stops accepting and drains
 * the sessions in flight.
 *
 * With -i (sluice-smtpd under tcpserver or inetd) nothing is bound and no
 * pid file written: one loop thread serves the one session the front end
 * starts on stdin/stdout, and the process exits when the loop's last
 * connection ends.  Logs go to stderr, tcpserver's log, unless stderr is
 * the client's socket too (inetd): syslog then.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

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

#include "daemon.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

#ifndef SL_SYSCONFDIR
#define SL_SYSCONFDIR "/etc/sluice"
#endif

struct listener {
	struct evconnlistener *ev; /* created and freed on its loop thread */
	struct sl_loop *loop;
	int fd;
	char *label;
	char *unix_path; /* removed at exit (first socket of a UNIX path) */
	sl_accept_fn fn;
	void *arg;
};

static struct listener *listeners;
static size_t nlisteners, listeners_alloc;
static const struct sl_daemon *daemon_desc;
static const char *conf_path = SL_SYSCONFDIR "/sluice.conf";
static struct event_base *main_base;
static struct event *ev_idle; /* -i: the session ended */

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-c file] [-f] [-t]%s\n",
	    daemon_desc->progname, daemon_desc->stdio != NULL ? " [-i]" : "");
	exit(1);
}

int
sl_split_hostport(const char *spec, char **host_r, char **port_r)
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

bool
sl_strlist_equal(const struct sl_strlist *a, const struct sl_strlist *b)
{
	size_t i;

	if (a->count != b->count)
		return false;
	for (i = 0; i < a->count; i++)
		if (strcmp(a->items[i], b->items[i]) != 0)
			return false;
	return true;
}

static struct listener *
listener_add(const char *label, int fd, sl_accept_fn fn, void *arg)
{
	struct listener *li;

	if (nlisteners == listeners_alloc) {
		listeners_alloc =
		    listeners_alloc == 0 ? 8 : listeners_alloc * 2;
		listeners = sl_xreallocarray(listeners, listeners_alloc,
		    sizeof(*listeners));
	}
	li = &listeners[nlisteners++];
	memset(li, 0, sizeof(*li));
	li->fd = fd;
	li->label = sl_xstrdup(label);
	li->fn = fn;
	li->arg = arg;
	return li;
}

static int
bind_tcp(const char *label, const char *host, const char *port)
{
	struct addrinfo hints, *res = NULL;
	int fd, on = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	rc =
	    getaddrinfo(host[0] == '\0' || strcmp(host, "*") == 0 ? NULL : host,
	        port, &hints, &res);
	if (rc != 0)
		sl_fatal("listen %s: %s", label, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		sl_fatal("listen %s: socket: %s", label, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)
		sl_fatal("listen %s: SO_REUSEPORT: %s", label, strerror(errno));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1)
		sl_fatal("listen %s: bind: %s", label, strerror(errno));
	if (listen(fd, 1024) == -1)
		sl_fatal("listen %s: listen: %s", label, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

void
sl_listen_tcp(const char *label, const char *host, const char *port,
    unsigned int nloops, sl_accept_fn fn, void *arg)
{
	unsigned int i;

	for (i = 0; i < nloops; i++)
		listener_add(label, bind_tcp(label, host, port), fn, arg);
	sl_log(LOG_INFO, NULL, "listening on %s", label);
}

void
sl_listen_unix(const char *label, const char *path, mode_t mode,
    const char *user, unsigned int nloops, sl_accept_fn fn, void *arg)
{
	struct sockaddr_un sun;
	struct stat st;
	struct passwd *pw;
	struct listener *li;
	unsigned int i;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		sl_fatal("listen %s: path too long", label);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			sl_fatal("listen %s: %s exists and is not a socket",
			    label, path);
		if (unlink(path) == -1)
			sl_fatal("listen %s: cannot remove the stale socket: "
			         "%s",
			    label, strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		sl_fatal("listen %s: socket: %s", label, strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		sl_fatal("listen %s: bind: %s", label, strerror(errno));
	if (chmod(path, mode) == -1)
		sl_fatal("listen %s: chmod: %s", label, strerror(errno));
	if (user != NULL && geteuid() == 0) {
		pw = getpwnam(user);
		if (pw == NULL)
			sl_fatal("user %s: no such user", user);
		if (chown(path, pw->pw_uid, pw->pw_gid) == -1)
			sl_fatal("listen %s: chown: %s", label,
			    strerror(errno));
	}
	if (listen(fd, 1024) == -1)
		sl_fatal("listen %s: listen: %s", label, strerror(errno));
	for (i = 0; i < nloops; i++) {
		li = listener_add(label, i == 0 ? fd : dup(fd), fn, arg);
		if (li->fd == -1)
			sl_fatal("listen %s: dup: %s", label, strerror(errno));
		if (i == 0)
			li->unix_path = sl_xstrdup(path);
	}
	sl_log(LOG_INFO, NULL, "listening on %s", label);
}

static void
accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct listener *li = arg;

	(void)ev;
	li->fn(li->loop, fd, sa, (socklen_t)salen, li->arg);
}

static void
listener_enable(void *arg)
{
	struct listener *li = arg;

	li->ev = evconnlistener_new(sl_loop_base(li->loop), accept_cb, li,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, li->fd);
	if (li->ev == NULL)
		sl_fatal("listen %s: cannot create listener", li->label);
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
		if (listeners[i].unix_path != NULL)
			(void)unlink(listeners[i].unix_path);
		free(listeners[i].unix_path);
		free(listeners[i].label);
	}
	free(listeners);
	listeners = NULL;
	nlisteners = listeners_alloc = 0;
}

static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct sl_runtime *rt, *old;
	char *err = NULL;

	(void)sig;
	(void)what;
	(void)arg;
	rt = sl_runtime_load(conf_path, daemon_desc->fe, &err);
	if (rt != NULL && daemon_desc->check != NULL &&
	    daemon_desc->check(rt->set, &err) == -1)
		sl_runtime_unref(&rt);
	if (rt == NULL) {
		sl_log(LOG_ERR, NULL,
		    "reload failed, keeping the running configuration: %s",
		    err);
		free(err);
		return;
	}
	old = sl_runtime_current();
	if (daemon_desc->needs_restart != NULL &&
	    daemon_desc->needs_restart(old->set, rt->set))
		sl_log(LOG_WARNING, NULL,
		    "reload: listeners, loop_threads and worker_threads take "
		    "effect only after a restart");
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

/*
 * Everything that needs root happens before this.  Under -i a process
 * that is not root runs as whoever started it (tcpserver -u/-g).
 */
static void
drop_privileges(const struct sl_settings *set, bool inetd)
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
		if (getuid() != pw->pw_uid && !inetd)
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

/* Whether stderr is the client's socket, as inetd hands it over. */
static bool
stderr_is_client(void)
{
	struct stat s0, s2;

	return fstat(STDIN_FILENO, &s0) == 0 &&
	    fstat(STDERR_FILENO, &s2) == 0 && S_ISSOCK(s0.st_mode) &&
	    s0.st_dev == s2.st_dev && s0.st_ino == s2.st_ino;
}

static void
stderr_to_null(void)
{
	int fd;

	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd == -1 || dup2(fd, STDERR_FILENO) == -1)
		sl_fatal("/dev/null as stderr: %s", strerror(errno));
	close(fd);
}

static void
idle_main_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(main_base);
}

/*
 * A loop thread's last connection ended: under -i the one session is
 * over.  An activated event stays active until the main loop runs it, so
 * this works even before event_base_dispatch() begins.
 */
static void
stdio_idle(struct sl_loop *l)
{
	(void)l;
	event_active(ev_idle, EV_READ, 0);
}

static void
stdio_start(void *arg)
{
	daemon_desc->stdio->start(arg);
}

/* Daemon mode: detach, bind, drop privileges.  Returns the loop count. */
static unsigned int
setup_listeners(const struct sl_daemon *d, const struct sl_settings *set,
    bool foreground)
{
	unsigned int nloops;

	if (!foreground && daemon(1, 0) == -1)
		sl_fatal("daemon: %s", strerror(errno));
	nloops = sl_loops_count(set->loop_threads);
	d->bind(set, nloops);
	drop_privileges(set, false);
	write_pid(set->pid_file);
	return nloops;
}

/* -i: drop privileges, let the front end take over stdin/stdout. */
static int
setup_stdio(const struct sl_daemon *d, const struct sl_settings *set)
{
	char *err = NULL;

	drop_privileges(set, true);
	if (d->stdio->prepare(set, &err) == -1) {
		sl_log(LOG_ERR, NULL, "-i: %s", err);
		free(err);
		return -1;
	}
	ev_idle = event_new(main_base, -1, EV_PERSIST, idle_main_cb, NULL);
	if (ev_idle == NULL)
		sl_fatal("libevent: cannot create an event");
	event_add(ev_idle, NULL);
	sl_loops_set_idle_cb(stdio_idle);
	return 0;
}

int
sl_daemon_main(const struct sl_daemon *d, int argc, char **argv)
{
	struct sl_runtime *rt;
	struct event *ev_hup, *ev_term, *ev_int;
	bool foreground = false, check = false, inetd = false, to_syslog;
	unsigned int nloops = 1;
	char *err = NULL;
	int ch;

	daemon_desc = d;
	while ((ch = getopt(argc, argv, "c:fthi")) != -1) {
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
		case 'i':
			inetd = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (inetd && d->stdio == NULL) {
		fprintf(stderr, "%s: -i: not supported (sluice-smtpd only)\n",
		    d->progname);
		usage();
	}
	/* inetd: stderr is the client, whom our log lines must not reach */
	to_syslog = inetd && !check && stderr_is_client();
	sl_log_init(d->progname, (foreground || check || inetd) && !to_syslog);
	if (to_syslog)
		stderr_to_null();
	rt = sl_runtime_load(conf_path, d->fe, &err);
	if (rt != NULL && d->check != NULL && d->check(rt->set, &err) == -1)
		sl_runtime_unref(&rt);
	/* -t checks the store's settings without creating anything */
	if (rt != NULL && sl_store_setup(rt->cfg, check, &err) == -1)
		sl_runtime_unref(&rt);
	if (rt == NULL) {
		if (to_syslog)
			sl_log(LOG_ERR, NULL, "%s", err);
		else
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
	if (!inetd)
		nloops = setup_listeners(d, rt->set, foreground);
	else if (setup_stdio(d, rt->set) == -1) {
		sl_runtime_unref(&rt);
		event_base_free(main_base);
		return 1;
	}
	sl_runtime_set_current(rt);
	sl_loops_set_drain_cb(d->drain);
	sl_loops_start(nloops, rt->set->worker_threads);
	if (inetd)
		sl_loop_post(sl_loop_at(0), stdio_start, sl_loop_at(0));
	else
		listeners_start(nloops);
	ev_hup = evsignal_new(main_base, SIGHUP, reload_cb, NULL);
	ev_term = evsignal_new(main_base, SIGTERM, stop_cb, NULL);
	ev_int = evsignal_new(main_base, SIGINT, stop_cb, NULL);
	evsignal_add(ev_hup, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	sl_log(inetd ? LOG_DEBUG : LOG_INFO, NULL, "%s started, %zu plugin(s)",
	    d->progname, rt->ninst);
	event_base_dispatch(main_base);
	sl_loops_drain_and_join(rt->set->shutdown_timeout_ms);
	if (inetd) {
		d->stdio->finish();
		event_free(ev_idle);
		ev_idle = NULL;
	}
	event_free(ev_hup);
	event_free(ev_term);
	event_free(ev_int);
	listeners_free();
	sl_runtime_unref(&rt);
	sl_runtime_set_current(NULL);
	event_base_free(main_base);
	sl_log(inetd ? LOG_DEBUG : LOG_INFO, NULL, "stopped");
	return 0;
}

/* --- milter socket specs ----------------------------------------------- */

int
sl_milter_spec_parse(const char *what, const char *spec,
    struct sl_milter_spec *ms, char **error_r)
{
	const char *rest, *at;

	memset(ms, 0, sizeof(*ms));
	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		rest = strchr(spec, ':') + 1;
		if (rest[0] != '/') {
			*error_r = sl_xasprintf(
			    "%s %s: the socket path must be absolute", what,
			    spec);
			return -1;
		}
		ms->is_unix = true;
		ms->path = sl_xstrdup(rest);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0)
		rest = spec + 5;
	else if (strncmp(spec, "inet6:", 6) == 0) {
		rest = spec + 6;
		ms->inet6 = true;
	} else {
		*error_r = sl_xasprintf("%s %s: expected inet:PORT@HOST, "
		                        "inet:HOST:PORT, inet6:PORT@HOST or "
		                        "unix:/path",
		    what, spec);
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
	if (ms->port[0] == '\0' || strlen(ms->port) > 5 ||
	    strspn(ms->port, "0123456789") != strlen(ms->port) ||
	    strtoul(ms->port, NULL, 10) > 65535)
		goto bad;
	return 0;
bad:
	free(ms->host);
	free(ms->port);
	*error_r = sl_xasprintf("%s %s: bad port or address", what, spec);
	return -1;
}

void
sl_milter_spec_free(struct sl_milter_spec *ms)
{
	free(ms->host);
	free(ms->port);
	free(ms->path);
}
