/*
 * smtpd.h - internals of sluice-smtpd shared by main.c (listeners,
 * signals, privileges), session.c (the ESMTP state machine) and auth.c
 * (SMTP AUTH).
 */
#ifndef SMTPD_H
#define SMTPD_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "smtpparse.h"

struct bufferevent;
struct evbuffer;
struct sl_hdrsplit;
struct sl_loop;
struct sl_msgreader;
struct smtpd_auth;

/* One ESMTP session (session.c), on its connection's loop thread. */
enum st {
	ST_PROXY,    /* waiting for the PROXY header */
	ST_BUSY,     /* a hook chain runs; input waits */
	ST_CMD,      /* reading commands */
	ST_DATA,     /* reading DATA content */
	ST_BDAT,     /* reading a BDAT chunk */
	ST_AUTH,     /* reading a SASL response line (auth.c) */
	ST_CLOSING,  /* final reply queued; closing once flushed */
	ST_TLS_WAIT, /* STARTTLS: "220" not yet all written */
	ST_TLS,      /* the TLS handshake runs */
};

struct smtp {
	struct sl_conn *conn;
	const struct sl_settings *set;
	struct bufferevent *bev;
	int fd;
	bool tls_bev;      /* bev is an OpenSSL one; it owns fd */
	bool implicit_tls; /* an smtps listener: TLS from the start */
	enum st state;
	bool esmtp;
	bool greeted;        /* HELO/EHLO accepted */
	bool connect_denied; /* 554 greeting: only QUIT is served */
	bool in_process;
	bool free_scheduled;
	bool drain_after_txn; /* SIGTERM: close after this transaction */
	bool skipping;        /* discarding an invalid line through LF */
	bool connect_ran;
	bool peer_eof;          /* the client half-closed while a chain ran */
	bool eof_is_half_close; /* SMTPD_HALF_CLOSE */
	unsigned int errors, unknown;
	char *line;            /* max_command_line + 1 */
	struct evbuffer *outq; /* replies not yet written */
	/* the current command, for its hook's done callback */
	struct sl_smtp_path path;
	struct sl_hookargs args;
	const char *params[SL_SMTP_MAX_PARAMS];
	char *params_joined;
	bool txn_utf8;
	/* message content */
	struct sl_msgreader *mr;
	struct sl_hdrsplit *hs;
	bool content_deny;
	enum sl_verdict content_v;
	struct sl_reply content_reply;
	bool io_error;
	struct sl_timer *data_timer;
	/* BDAT */
	bool bdat_mode; /* this transaction uses BDAT */
	bool bdat_last;
	bool bdat_fail; /* discard this chunk, answer bdat_reply */
	uint64_t bdat_left;
	uint64_t bdat_total; /* octets received in this transaction's chunks */
	struct sl_reply bdat_reply;
	struct smtpd_auth *auth;  /* the AUTH exchange's state, or NULL */
	struct smtp *next, *prev; /* the loop thread's sessions */
};

/* session.c, for auth.c: replies go out with the next flush. */
void smtpd_reply(struct smtp *s, int code, const char *enh, const char *text);
/* A reply that counts toward max_errors (and may close the session). */
void smtpd_reply_error(struct smtp *s, int code, const char *enh,
    const char *text);
/* Closes once the queued replies are written. */
void smtpd_close(struct smtp *s);
/* Reads what waits in the input, as the session's state says. */
void smtpd_process_input(struct smtp *s);

/*
 * auth.c - SMTP AUTH (RFC 4954).  The EHLO keyword's value ("PLAIN
 * LOGIN"), or NULL when AUTH is not offered to this session.
 */
const char *smtpd_auth_ehlo(struct smtp *s, char *buf, size_t size);
/* The AUTH command; arg (in the session's line buffer) is wiped. */
void smtpd_auth_cmd(struct smtp *s, char *arg);
/* ST_AUTH: reads a SASL response line; false if more input is needed. */
bool smtpd_auth_read(struct smtp *s);
/* At the end of the session: wipes and frees what AUTH held. */
void smtpd_auth_free(struct smtp *s);

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
