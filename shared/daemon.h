/*
 * daemon.h - what sluice-smtpd and sluice-milterd share around their
 * sessions: the command line (-c -f -t -i), loading the configuration,
 * binding listeners before the privilege drop, the loop threads, and the
 * signals (SIGHUP reloads, SIGTERM/SIGINT drain and stop).
 *
 * A front end fills a struct sl_daemon and calls sl_daemon_main() from
 * main().  Its bind callback calls sl_listen_tcp()/sl_listen_unix() for
 * each configured address; each listener then accepts on the loop
 * threads and hands every new socket to the front end's accept function,
 * on the loop thread that will own the connection.  With -i (a front end
 * with struct sl_stdio_ops only) nothing is bound: one loop thread serves
 * one session on the descriptors tcpserver or inetd handed over, and the
 * process exits when it ends.
 */
#ifndef SL_DAEMON_H
#define SL_DAEMON_H

#include <sys/socket.h>
#include <sys/types.h>

#include <stdbool.h>

#include "core.h"

/* fd is a new non-blocking client socket; sa its peer address. */
typedef void (*sl_accept_fn)(struct sl_loop *l, int fd,
    const struct sockaddr *sa, socklen_t salen, void *arg);

/*
 * -i: one session on stdin/stdout.  prepare runs on the main thread once
 * the configuration is loaded and privileges are dropped, before any loop
 * starts; it returns 0, or -1 with *error_r (allocated) and the process
 * exits 1.  start then runs on the one loop thread and starts the
 * session; the process stops when the loop's last connection ends (or on
 * SIGTERM).  finish runs on the main thread after the loops were joined.
 */
struct sl_stdio_ops {
	int (*prepare)(const struct sl_settings *set, char **error_r);
	void (*start)(struct sl_loop *l);
	void (*finish)(void);
};

struct sl_daemon {
	const char *progname; /* "sluice-smtpd" */
	enum sl_front_end fe;
	/*
	 * Extra start-up checks (also run by -t); returns 0 or -1 with
	 * *error_r allocated.  May be NULL.
	 */
	int (*check)(const struct sl_settings *set, char **error_r);
	/* Binds the listeners (runs as root, before the privilege drop). */
	void (*bind)(const struct sl_settings *set, unsigned int nloops);
	/* Whether a reload changed what only a restart applies. */
	bool (*needs_restart)(const struct sl_settings *old,
	    const struct sl_settings *cur);
	/* See sl_loops_set_drain_cb(). */
	void (*drain)(struct sl_loop *l, bool deadline);
	/* -i; NULL: the daemon refuses -i */
	const struct sl_stdio_ops *stdio;
};

int sl_daemon_main(const struct sl_daemon *d, int argc, char **argv);

/*
 * "127.0.0.1:2525", "[::1]:2525", "*:25", ":25" into host ("" for any)
 * and port; both allocated.  Returns 0 or -1.
 */
int sl_split_hostport(const char *spec, char **host_r, char **port_r);

/*
 * A TCP listener on host:port (numeric; "" or "*" = any), one socket per
 * loop thread (SO_REUSEPORT).  label names it in logs and errors.  Fatal
 * on error.
 */
void sl_listen_tcp(const char *label, const char *host, const char *port,
    unsigned int nloops, sl_accept_fn fn, void *arg);
/*
 * A UNIX-domain listener at path (a stale socket file is replaced), with
 * the given mode, owned by the configured user; every loop thread accepts
 * on it.  Fatal on error.
 */
void sl_listen_unix(const char *label, const char *path, mode_t mode,
    const char *user, unsigned int nloops, sl_accept_fn fn, void *arg);

/* Whether two string lists hold the same items in the same order. */
bool sl_strlist_equal(const struct sl_strlist *a, const struct sl_strlist *b);

/*
 * A milter socket: libmilter's "inet:PORT@HOST", "inet6:PORT@HOST" and
 * "unix:/path" ("local:/path"), and "inet:HOST:PORT".  host is "" for
 * any address (a listener) and has no brackets.  Errors read "WHAT SPEC:
 * reason".  Returns 0 or -1 with *error_r (allocated).
 */
struct sl_milter_spec {
	bool is_unix, inet6;
	char *host, *port, *path;
};
int sl_milter_spec_parse(const char *what, const char *spec,
    struct sl_milter_spec *ms, char **error_r);
void sl_milter_spec_free(struct sl_milter_spec *ms);

#endif
