/*
 * smtpd.h - internals of sluice-smtpd shared by main.c (listeners,
 * signals, privileges) and session.c (the ESMTP state machine).
 */
#ifndef SMTPD_H
#define SMTPD_H

#include <sys/socket.h>

#include <stdbool.h>

struct sl_conn;
struct sl_loop;

/* How a session starts (smtpd_session_start flags). */
#define SMTPD_PROXY 0x1 /* a PROXY protocol header comes first */
#define SMTPD_TLS 0x2   /* implicit TLS: the handshake comes first */
/* EOF is a half-close: replies to what came before still go out (-i) */
#define SMTPD_HALF_CLOSE 0x4

/*
 * Starts a session on socket fd for conn, which holds an sl_ipcount slot
 * for its peer address; the session owns both from here on.  flags:
 * SMTPD_*.  On conn's loop thread.
 */
void smtpd_session_start(struct sl_conn *conn, int fd, unsigned int flags);
/* Loop-thread callback for SIGTERM draining (see sl_loops_set_drain_cb). */
void smtpd_sessions_drain(struct sl_loop *l, bool deadline);

/*
 * sluice-smtpd -i (inetd.c), the struct sl_stdio_ops of shared/daemon.h:
 * prepare reads the environment and takes over fds 0 and 1 (main thread),
 * start starts the session (the loop thread), finish waits for the stdio
 * thread (main thread, after the loops stopped).
 */
struct sl_settings;
int smtpd_stdio_prepare(const struct sl_settings *set, char **error_r);
void smtpd_stdio_start(struct sl_loop *l);
void smtpd_stdio_finish(void);

/* Parses a PROXY v1/v2 header at the start of buf; see proxy.c. */
struct proxy_info {
	bool local; /* v2 LOCAL / v1 UNKNOWN: keep the real peer */
	char src_ip[64];
	unsigned int src_port;
	char dst_ip[64];
	unsigned int dst_port;
};
/* Returns bytes consumed (>0), 0 if more input is needed, -1 if invalid. */
long proxy_parse(const unsigned char *buf, size_t len,
    struct proxy_info *info_r);

#endif
