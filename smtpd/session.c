/*
 * session.c - the ESMTP session of sluice-smtpd (RFC 5321, 1870, 2920,
 * 2034, 3030, 6152, 6531; Postfix XCLIENT; PROXY protocol v1/v2).
 *
 * One explicit state per session; every verb goes check -> hook chain ->
 * proceed, so syntax, sequence and relay errors are answered before any
 * plugin runs.  Input is parsed only in ST_CMD, ST_DATA and ST_BDAT; while
 * a chain is suspended the session sits in ST_BUSY and pipelined input
 * waits in the bufferevent (bounded by its read watermark).  Replies are
 * queued on the bufferevent and leave in one write per loop iteration.
 *
 * A line ends only at CRLF.  In a command, a bare LF or a CR not followed
 * by LF makes the line invalid: it is answered 500 5.5.2 and never run.
 * DATA content goes through the msgreader (dot-unstuffing, end only at
 * CRLF.CRLF) and the header splitter into the transaction.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core.h"
#include "hdrsplit.h"
#include "log.h"
#include "msgreader.h"
#include "smtpparse.h"
#include "tls.h"
#include "xmalloc.h"
#include "smtpd.h"

static __thread struct smtp *sessions;
static const char *const state_names[] = { "proxy", "busy", "command", "data",
	"bdat", "auth", "closing", "starttls", "tls-handshake" };

static void process_input(struct smtp *s);
static void start_tls(struct smtp *s);
static void session_close(struct smtp *s);
static void run_connect(struct smtp *s);
static void tls_established(struct smtp *s);
static const char *tls_error(struct smtp *s, char *buf, size_t size);

/* --- output ------------------------------------------------------------- */

static void out(struct smtp *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out(struct smtp *s, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	sl_log(LOG_DEBUG, s->conn->id, "reply=\"%.*s\"", n, buf);
	buf[n++] = '\r';
	buf[n++] = '\n';
	if (s->outq == NULL)
		s->outq = evbuffer_new();
	evbuffer_add(s->outq, buf, (size_t)n);
}

/*
 * Sends the queued replies: one write(2) for the group, straight to the
 * socket when nothing is pending there (no EV_WRITE round trip); what the
 * socket does not take waits in the bufferevent, in order.
 */
static void
flush_out(struct smtp *s)
{
	struct evbuffer *o;

	if (s->outq == NULL || evbuffer_get_length(s->outq) == 0)
		return;
	o = bufferevent_get_output(s->bev);
	if (!s->tls_bev && evbuffer_get_length(o) == 0)
		(void)evbuffer_write(s->outq, s->fd);
	if (evbuffer_get_length(s->outq) > 0)
		evbuffer_add_buffer(o, s->outq);
}

static void
reply(struct smtp *s, int code, const char *enh, const char *text)
{
	if (enh[0] == '\0')
		out(s, "%d %s", code, text);
	else
		out(s, "%d %s %s", code, enh, text);
}

/* A protocol error: counts toward max_errors. */
static void
reply_error(struct smtp *s, int code, const char *enh, const char *text)
{
	reply(s, code, enh, text);
	if (++s->errors >= s->set->max_errors) {
		sl_log(LOG_NOTICE, s->conn->id,
		    "disconnect reason=max_errors errors=%u", s->errors);
		out(s, "421 4.7.0 %s Too many errors, closing connection",
		    s->set->hostname);
		session_close(s);
	}
}

static void
reply_close(struct smtp *s, int code, const char *enh, const char *text)
{
	reply(s, code, enh, text);
	session_close(s);
}

/*
 * The reply for a chain's verdict (sl_verdict_reply): the plugin's code if
 * it fits the verdict's class, else the default.  Returns true if the
 * session closes.
 */
static bool
reply_verdict(struct smtp *s, enum sl_verdict v, const struct sl_reply *r,
    int def_code, const char *def_enh, const char *def_text)
{
	const char *enh, *text;
	int code;

	sl_verdict_reply(v, r, def_code, def_enh, def_text, &code, &enh, &text);
	if (v == SL_DENY_DISCONNECT || v == SL_DENYSOFT_DISCONNECT) {
		reply_close(s, code, enh, text);
		return true;
	}
	reply(s, code, enh, text);
	return false;
}

/* --- session life ------------------------------------------------------- */

static void
session_free(struct smtp *s)
{
	struct sl_loop *l = s->conn->loop;

	if (s->connect_ran)
		sl_hook_disconnect(s->conn);
	sl_timer_cancel(&s->data_timer);
	smtpd_auth_free(s);
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	sl_ipcount_release(s->conn->peer_addr);
	sl_log(LOG_INFO, s->conn->id, "disconnect client=[%s] errors=%u",
	    s->conn->remote_ip, s->errors);
	if (s->tls_bev) {
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

		/* close_notify, best effort; the bev frees ssl, closes fd */
		if (ssl != NULL && SSL_is_init_finished(ssl))
			(void)SSL_shutdown(ssl);
		ERR_clear_error();
		bufferevent_free(s->bev);
	} else {
		bufferevent_free(s->bev);
		close(s->fd);
	}
	sl_msgreader_free(&s->mr);
	sl_hdrsplit_free(&s->hs);
	free(s->line);
	if (s->outq != NULL)
		evbuffer_free(s->outq);
	free(s->params_joined);
	sl_conn_free(&s->conn);
	free(s);
	sl_loop_conn_removed(l);
}

static void
deferred_free(void *arg)
{
	session_free(arg);
}

/*
 * Never frees in place: the caller may be deep in a reply path that still
 * uses the session.  The loop frees it once the current callback is done.
 */
static void
maybe_free(struct smtp *s)
{
	if (s->free_scheduled)
		return;
	s->free_scheduled = true;
	sl_loop_post(s->conn->loop, deferred_free, s);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp *s = arg;

	(void)bev;
	if (s->state == ST_CLOSING)
		maybe_free(s);
	else if (s->state == ST_TLS_WAIT)
		start_tls(s);
}

static void
session_close(struct smtp *s)
{
	flush_out(s);
	s->state = ST_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	sl_timer_cancel(&s->data_timer);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		maybe_free(s);
	/* else write_cb frees once the output is flushed */
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp *s = arg;
	char err[512];

	(void)bev;
	if ((what & BEV_EVENT_CONNECTED) != 0 && s->state == ST_TLS) {
		tls_established(s);
		return;
	}
	if (s->state == ST_TLS) {
		if ((what & BEV_EVENT_TIMEOUT) != 0)
			sl_log(LOG_NOTICE, s->conn->id,
			    "TLS handshake timeout client=[%s]",
			    s->conn->remote_ip);
		else
			sl_log(LOG_NOTICE, s->conn->id,
			    "TLS handshake failed client=[%s]: %s",
			    s->conn->remote_ip, tls_error(s, err, sizeof(err)));
		s->state = ST_CLOSING;
		maybe_free(s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) != 0 && s->state != ST_CLOSING) {
		sl_log(LOG_NOTICE, s->conn->id, "timeout state=%s",
		    state_names[s->state]);
		bufferevent_enable(s->bev, EV_WRITE);
		out(s, "421 4.4.2 %s Error: timeout exceeded",
		    s->set->hostname);
		session_close(s);
		return;
	}
	/*
	 * The end of standard input under sluice-smtpd -i (bridged) while a
	 * chain runs: answer what came before it, then close
	 * (process_input).  On a socket, EOF may be a client that is gone:
	 * the chain is abandoned (a forward not yet complete is dropped, so
	 * the client's retry makes no duplicate).
	 */
	if ((what & BEV_EVENT_EOF) != 0 && (what & BEV_EVENT_ERROR) == 0 &&
	    s->state == ST_BUSY && s->eof_is_half_close) {
		s->peer_eof = true;
		bufferevent_disable(s->bev, EV_READ);
		return;
	}
	if (s->state != ST_CLOSING && s->state != ST_CMD)
		sl_log(LOG_NOTICE, s->conn->id, "lost connection state=%s%s%s",
		    state_names[s->state], s->tls_bev ? " tls: " : "",
		    s->tls_bev ? tls_error(s, err, sizeof(err)) : "");
	s->state = ST_CLOSING;
	maybe_free(s);
}

/* No input or no progress writing for idle_timeout: 421 and close. */
static void
set_idle_timeout(struct smtp *s)
{
	struct timeval tv = sl_timeval_ms(s->set->idle_timeout_ms);

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp *s = arg;

	process_input(s);
	/* Left unread for a suspended hook: tell sl_conn_input_wait. */
	if (s->state == ST_BUSY && s->conn->input_waits != NULL &&
	    evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		sl_conn_input_arrived(s->conn);
}

/*
 * sl_conn_input_pending: what the client sent that the session has not
 * read.  The bufferevent reads on while a hook is suspended, so its input
 * holds nearly everything; the kernel may hold the rest (past the read
 * watermark, or not read yet).  Under TLS the socket's bytes are records
 * not yet decrypted (perhaps no data at all), so only what OpenSSL
 * decrypted counts.
 */
static size_t
input_pending(struct sl_conn *c)
{
	struct smtp *s = c->fe_data;
	size_t n = evbuffer_get_length(bufferevent_get_input(s->bev));
	int avail = 0;
	SSL *ssl;

	if (s->tls_bev) {
		ssl = bufferevent_openssl_get_ssl(s->bev);
		if (ssl != NULL && SSL_is_init_finished(ssl) &&
		    SSL_pending(ssl) > 0)
			n += (size_t)SSL_pending(ssl);
	} else if (ioctl(s->fd, FIONREAD, &avail) == 0 && avail > 0)
		n += (size_t)avail;
	return n;
}

void
smtpd_session_start(struct sl_conn *conn, int fd, unsigned int flags)
{
	struct smtp *s;
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct timeval tv;
	struct sl_loop *l = conn->loop;
	int on = 1;

	s = sl_xcalloc(1, sizeof(*s));
	s->conn = conn;
	s->conn->fe_data = s;
	s->conn->fe_input_pending = input_pending;
	s->set = s->conn->rt->set;
	/* sluice-smtpd -i sets it from TCPLOCALIP */
	if (s->conn->local_ip[0] == '\0' &&
	    getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
		sl_conn_set_local(s->conn, &local, llen);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	s->fd = fd;
	s->eof_is_half_close = (flags & SMTPD_HALF_CLOSE) != 0;
	/* Not BEV_OPT_CLOSE_ON_FREE: STARTTLS swaps the bufferevent. */
	s->bev = bufferevent_socket_new(sl_loop_base(l), fd, 0);
	s->line = sl_xmalloc(s->set->max_command_line + 1);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	/* Bounded input: a flood waits in the kernel, not in our memory. */
	bufferevent_setwatermark(s->bev, EV_READ, 0, 256 * 1024);
	set_idle_timeout(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	sl_loop_conn_added(l);
	sl_log(LOG_INFO, s->conn->id, "connect client=[%s]:%u local=[%s]:%u",
	    s->conn->remote_ip, s->conn->remote_port, s->conn->local_ip,
	    s->conn->local_port);
	if ((flags & SMTPD_TLS) != 0 && s->conn->rt->tls != NULL) {
		s->implicit_tls = true;
		start_tls(s);
		return;
	}
	if ((flags & SMTPD_PROXY) != 0) {
		if (!sl_cidrlist_match(&s->set->trusted_proxies,
		        s->conn->peer_addr)) {
			sl_log(LOG_WARNING, s->conn->id,
			    "PROXY listener: client=[%s] is not in "
			    "trusted_proxies; closing",
			    s->conn->remote_ip);
			session_close(s);
			return;
		}
		tv = sl_timeval_ms(s->set->proxy_timeout_ms);
		bufferevent_set_timeouts(s->bev, &tv, NULL);
		s->state = ST_PROXY;
		return;
	}
	run_connect(s);
}

void
smtpd_sessions_drain(struct sl_loop *l, bool deadline)
{
	struct smtp *s, *next;

	(void)l;
	for (s = sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == ST_CLOSING)
			continue;
		if (!deadline && (s->state == ST_CMD || s->state == ST_PROXY) &&
		    s->conn->txn == NULL) {
			out(s, "421 4.3.2 %s Service shutting down",
			    s->set->hostname);
			session_close(s);
		} else if (!deadline)
			s->drain_after_txn = true;
		else {
			sl_log(LOG_NOTICE, s->conn->id,
			    "shutdown deadline: closing session in flight");
			out(s, "421 4.3.2 %s Service shutting down",
			    s->set->hostname);
			session_close(s);
		}
	}
}

/* --- for auth.c (smtpd.h) --------------------------------------------- */

void
smtpd_reply(struct smtp *s, int code, const char *enh, const char *text)
{
	reply(s, code, enh, text);
}

void
smtpd_reply_error(struct smtp *s, int code, const char *enh, const char *text)
{
	reply_error(s, code, enh, text);
}

void
smtpd_close(struct smtp *s)
{
	session_close(s);
}

void
smtpd_process_input(struct smtp *s)
{
	process_input(s);
}

/* --- connect and greeting ---------------------------------------------- */

static void
connect_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;
	const char *text;

	if (v == SL_DISCARD)
		c->discard = true; /* every message of the session */
	if (v == SL_DENY || v == SL_DENY_DISCONNECT) {
		text = r->text[0] != '\0' ? r->text : "Service refused";
		if (v == SL_DENY_DISCONNECT) {
			out(s, "554 5.7.1 %s", text);
			session_close(s);
			return;
		}
		/* RFC 5321 3.1: 554 greeting, then only QUIT is served. */
		out(s, "554 %s ESMTP %s", s->set->hostname, text);
		s->connect_denied = true;
	} else if (v == SL_DENYSOFT || v == SL_DENYSOFT_DISCONNECT) {
		out(s, "421 4.7.0 %s %s", s->set->hostname,
		    r->text[0] != '\0' ? r->text
		                       : "Service temporarily unavailable");
		session_close(s);
		return;
	} else if (s->set->banner != NULL)
		out(s, "220 %s ESMTP %s", s->set->hostname, s->set->banner);
	else
		out(s, "220 %s ESMTP sluice", s->set->hostname);
	s->state = ST_CMD;
	process_input(s);
}

static void
run_connect(struct smtp *s)
{
	s->state = ST_BUSY;
	s->connect_ran = true;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_CONNECT;
	sl_hook_run(s->conn, &s->args, connect_done, s);
}

static bool
read_proxy(struct smtp *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct proxy_info pi;
	size_t len = evbuffer_get_length(in);
	unsigned char *p;
	long n;

	if (len == 0)
		return false;
	p = evbuffer_pullup(in, (ssize_t)(len < 600 ? len : 600));
	n = proxy_parse(p, len < 600 ? len : 600, &pi);
	if (n == 0 && len < 600)
		return false;
	if (n <= 0) {
		sl_log(LOG_WARNING, s->conn->id,
		    "PROXY: invalid header from client=[%s]; closing",
		    s->conn->remote_ip);
		session_close(s);
		return false;
	}
	evbuffer_drain(in, (size_t)n);
	if (!pi.local) {
		if (sl_conn_set_remote_text(s->conn, pi.src_ip, pi.src_port) ==
		    -1) {
			session_close(s);
			return false;
		}
		snprintf(s->conn->local_ip, sizeof(s->conn->local_ip), "%s",
		    pi.dst_ip);
		s->conn->local_port = pi.dst_port;
	}
	sl_log(LOG_INFO, s->conn->id, "proxy client=[%s]:%u via=[%s]",
	    s->conn->remote_ip, s->conn->remote_port,
	    sl_conn_local_ip(s->conn));
	set_idle_timeout(s);
	run_connect(s);
	return s->state == ST_CMD;
}

/* --- transactions ------------------------------------------------------- */

static void
txn_reset(struct smtp *s)
{
	sl_conn_end_txn(s->conn);
	s->bdat_mode = false;
	s->bdat_fail = false;
	s->bdat_total = 0;
	s->txn_utf8 = false;
}

/* After a transaction ends (message answered). */
static void
txn_finished(struct smtp *s)
{
	txn_reset(s);
	s->state = ST_CMD;
	if (s->drain_after_txn) {
		out(s, "421 4.3.2 %s Service shutting down", s->set->hostname);
		session_close(s);
	}
}

static void
reset_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;

	(void)c;
	(void)v;
	(void)r;
	reply(s, 250, "2.0.0", "Ok");
	s->state = ST_CMD;
	process_input(s);
}

static void
cmd_rset(struct smtp *s, const char *arg)
{
	if (*arg != '\0') {
		reply_error(s, 501, "5.5.4", "Syntax: RSET");
		return;
	}
	txn_reset(s);
	s->state = ST_BUSY;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_RESET;
	sl_hook_run(s->conn, &s->args, reset_done, s);
}

/* --- TLS (RFC 3207 STARTTLS, RFC 8314 implicit TLS) ---------------------- */

/* Whether STARTTLS is offered now. */
static bool
starttls_offered(const struct smtp *s)
{
	return s->conn->rt->tls != NULL && s->set->starttls && !s->tls_bev;
}

/* The OpenSSL errors a bufferevent queued, one by one. */
static unsigned long
bev_error(void *bev)
{
	return bufferevent_get_openssl_error(bev);
}

/* Why the TLS layer failed, from OpenSSL's queue or the socket. */
static const char *
tls_error(struct smtp *s, char *buf, size_t size)
{
	int err = EVUTIL_SOCKET_ERROR();

	if (sl_tls_errors_from(bev_error, s->bev, buf, size) == 0)
		snprintf(buf, size, "%s",
		    err != 0 ? strerror(err) : "connection closed");
	return buf;
}

/*
 * Swaps the plain bufferevent for an OpenSSL one on the same socket and
 * starts the server handshake; event_cb sees it finish.  The plain one
 * must have written everything (the "220" of STARTTLS) first.
 */
static void
start_tls(struct smtp *s)
{
	struct timeval tv = sl_timeval_ms(s->set->tls_handshake_timeout_ms);
	struct bufferevent *plain = s->bev;
	char err[512];
	SSL *ssl;

	if (evbuffer_get_length(bufferevent_get_output(plain)) > 0) {
		s->state = ST_TLS_WAIT; /* write_cb calls again */
		bufferevent_disable(plain, EV_READ);
		return;
	}
	ssl = sl_tls_server_ssl(s->conn->rt->tls);
	if (ssl == NULL) {
		sl_log(LOG_ERR, s->conn->id, "TLS: cannot make a session: %s",
		    sl_tls_errors(err, sizeof(err)));
		s->state = ST_CLOSING;
		maybe_free(s);
		return;
	}
	s->bev = bufferevent_openssl_socket_new(sl_loop_base(s->conn->loop),
	    s->fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		SSL_free(ssl);
		s->bev = plain;
		sl_log(LOG_ERR, s->conn->id, "TLS: cannot make a bufferevent");
		s->state = ST_CLOSING;
		maybe_free(s);
		return;
	}
	bufferevent_free(plain); /* leaves the socket open */
	s->tls_bev = true;
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, 256 * 1024);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->state = ST_TLS;
}

static void
tls_established(struct smtp *s)
{
	struct sl_conn *c = s->conn;
	const char *subject;

	sl_tls_record(bufferevent_openssl_get_ssl(s->bev), c);
	subject = sl_conn_note_get(c, "tls.peer_subject");
	sl_log(LOG_INFO, c->id,
	    "TLS established version=%s cipher=%s bits=%s sni=%s "
	    "client_cert=%s verify=%s",
	    sl_conn_note_get(c, "tls.version"),
	    sl_conn_note_get(c, "tls.cipher"), sl_conn_note_get(c, "tls.bits"),
	    sl_conn_note_get(c, "tls.sni") != NULL
	        ? sl_conn_note_get(c, "tls.sni")
	        : "-",
	    subject != NULL ? subject : "-", sl_conn_note_get(c, "tls.verify"));
	set_idle_timeout(s);
	if (s->implicit_tls) {
		run_connect(s);
		return;
	}
	/*
	 * RFC 3207 4.2: forget everything the client said before, the EHLO
	 * argument and any authentication included.
	 */
	txn_reset(s);
	s->greeted = false;
	s->esmtp = false;
	free(c->helo);
	c->helo = NULL;
	if (c->auth_user != NULL) {
		explicit_bzero(c->auth_user, strlen(c->auth_user));
		free(c->auth_user);
		c->auth_user = NULL;
		sl_conn_update_relay(c);
	}
	s->state = ST_CMD;
	process_input(s);
}

static void
cmd_starttls(struct smtp *s, const char *arg)
{
	struct evbuffer *in;
	size_t n;

	if (*arg != '\0') {
		reply_error(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if (s->tls_bev) {
		reply_error(s, 503, "5.5.1", "TLS already active");
		return;
	}
	if (!starttls_offered(s)) {
		reply_error(s, 502, "5.5.1", "STARTTLS not available");
		return;
	}
	if (s->conn->txn != NULL) {
		reply_error(s, 503, "5.5.1", "STARTTLS inside a transaction");
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	/*
	 * CVE-2011-0411: what the client sent behind STARTTLS came before
	 * the handshake, in the clear; it must not run as if protected.
	 */
	in = bufferevent_get_input(s->bev);
	n = evbuffer_get_length(in);
	if (n > 0) {
		sl_log(LOG_NOTICE, s->conn->id,
		    "STARTTLS: discarded %zu bytes sent before the handshake "
		    "(command injection, CVE-2011-0411)",
		    n);
		evbuffer_drain(in, n);
	}
	flush_out(s);
	start_tls(s);
}

/* --- HELO / EHLO -------------------------------------------------------- */

static void
ehlo_reply(struct smtp *s)
{
	bool trusted =
	    sl_cidrlist_match(&s->set->trusted_proxies, s->conn->peer_addr);
	char mechs[64];
	const char *auth = smtpd_auth_ehlo(s, mechs, sizeof(mechs));

	out(s, "250-%s Hello %s [%s]", s->set->hostname, s->conn->helo,
	    s->conn->remote_ip);
	if (s->set->pipelining)
		out(s, "250-PIPELINING");
	out(s, "250-SIZE %zu", s->set->max_message_size);
	out(s, "250-8BITMIME");
	out(s, "250-ENHANCEDSTATUSCODES");
	if (s->set->smtputf8)
		out(s, "250-SMTPUTF8");
	if (trusted)
		out(s,
		    "250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR "
		    "DESTPORT");
	if (s->set->chunking)
		out(s, "250-CHUNKING");
	if (starttls_offered(s))
		out(s, "250-STARTTLS");
	if (auth != NULL)
		out(s, "250-AUTH %s", auth);
	out(s, "250 HELP");
}

static void
helo_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;
	char *helo = (char *)(uintptr_t)s->args.arg;

	s->state = ST_CMD;
	s->args.arg = NULL;
	if (sl_verdict_is_deny(v)) {
		free(helo);
		if (reply_verdict(s, v, r, 550, "5.7.1", "HELO rejected"))
			return;
	} else {
		if (v == SL_DISCARD)
			c->discard = true;
		free(c->helo);
		c->helo = helo;
		c->esmtp = s->esmtp;
		s->greeted = true;
		if (s->esmtp)
			ehlo_reply(s);
		else
			out(s, "250 %s", s->set->hostname);
	}
	process_input(s);
}

static void
cmd_helo(struct smtp *s, const char *arg, bool esmtp)
{
	if (!sl_smtp_helo_valid(arg)) {
		reply_error(s, 501, "5.5.4",
		    esmtp ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
		return;
	}
	txn_reset(s);
	s->esmtp = esmtp;
	s->state = ST_BUSY;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_HELO;
	s->args.arg = sl_xstrdup(arg);
	sl_hook_run(s->conn, &s->args, helo_done, s);
}

/* --- MAIL / RCPT -------------------------------------------------------- */

/* The parsed path's parameters, for the hook and for the transaction. */
static void
path_to_args(struct smtp *s, enum sl_hook_id h)
{
	size_t i, len = 0;
	char *p;

	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = h;
	s->args.arg = s->path.addr;
	for (i = 0; i < s->path.nparams; i++) {
		s->params[i] = s->path.params[i];
		len += strlen(s->path.params[i]) + 1;
	}
	s->args.params = s->params;
	s->args.nparams = s->path.nparams;
	free(s->params_joined);
	s->params_joined = NULL;
	if (s->path.nparams == 0)
		return;
	p = s->params_joined = sl_xmalloc(len);
	for (i = 0; i < s->path.nparams; i++) {
		size_t n = strlen(s->path.params[i]);

		memcpy(p, s->path.params[i], n);
		p += n;
		*p++ = i + 1 < s->path.nparams ? ' ' : '\0';
	}
}

static bool xtext_decode(char *s);

/*
 * MAIL AUTH=mailbox (RFC 4954 5): xtext (RFC 3461 4) of "<>" or an
 * address.  Only an authenticated client's assertion is kept; anyone
 * else's becomes AUTH=<> for the hooks and the queue.
 */
static bool
mail_auth_param(struct smtp *s, size_t i)
{
	static char null_auth[] = "AUTH=<>";
	const char *raw = s->path.params[i] + 5;
	char *v = NULL;
	size_t j;
	bool ok = raw[0] != '\0';

	for (j = 0; ok && raw[j] != '\0'; j++) {
		/* xchar: "!" to "~" but "+" and "="; a "+XX" no control */
		ok = raw[j] > ' ' && raw[j] < 0x7f && raw[j] != '=' &&
		    (raw[j] != '+' || (raw[j + 1] >= '2' && raw[j + 1] <= 'F'));
	}
	if (ok) {
		v = sl_xstrdup(raw);
		ok = xtext_decode(v) &&
		    (strcmp(v, "<>") == 0 || strchr(v, '@') != NULL);
		free(v);
	}
	if (!ok) {
		reply_error(s, 501, "5.5.4", "Bad AUTH parameter");
		return false;
	}
	if (s->conn->auth_user == NULL)
		s->path.params[i] = null_auth;
	return true;
}

static bool
mail_params_ok(struct smtp *s)
{
	size_t i;
	const char *p, *v;
	char *end;
	unsigned long long size;

	for (i = 0; i < s->path.nparams; i++) {
		p = s->path.params[i];
		v = strchr(p, '=');
		v = v != NULL ? v + 1 : "";
		if (!s->esmtp) {
			reply_error(s, 555, "5.5.4",
			    "ESMTP parameters need EHLO");
			return false;
		}
		if (strncasecmp(p, "SIZE=", 5) == 0) {
			errno = 0;
			size = strtoull(v, &end, 10);
			if (*v < '0' || *v > '9' || *end != '\0' ||
			    errno != 0) {
				reply_error(s, 501, "5.5.4",
				    "Bad SIZE parameter");
				return false;
			}
			if (size > s->set->max_message_size) {
				reply(s, 552, "5.3.4",
				    "Message size exceeds fixed maximum "
				    "message size");
				return false;
			}
		} else if (strncasecmp(p, "BODY=", 5) == 0) {
			if (strcasecmp(v, "7BIT") != 0 &&
			    strcasecmp(v, "8BITMIME") != 0) {
				reply_error(s, 501, "5.5.4",
				    "BODY must be 7BIT or 8BITMIME");
				return false;
			}
		} else if (strcasecmp(p, "SMTPUTF8") == 0) {
			if (!s->set->smtputf8) {
				reply_error(s, 555, "5.5.4",
				    "SMTPUTF8 not supported");
				return false;
			}
			s->txn_utf8 = true;
		} else if (strncasecmp(p, "AUTH=", 5) == 0) {
			if (!mail_auth_param(s, i))
				return false;
		} else {
			reply_error(s, 555, "5.5.4",
			    "Unsupported MAIL parameter");
			return false;
		}
	}
	return true;
}

static void
mail_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;
	struct sl_txn *t;
	bool utf8 = s->txn_utf8;

	s->state = ST_CMD;
	if (sl_verdict_is_deny(v)) {
		s->txn_utf8 = false;
		if (reply_verdict(s, v, r, 550, "5.7.1", "Sender rejected"))
			return;
	} else {
		txn_reset(s);
		s->txn_utf8 = utf8;
		t = sl_conn_begin_txn(c);
		sl_txn_set_sender(t, s->path.addr, s->params_joined);
		if (v == SL_DISCARD || c->discard)
			t->discard = true;
		sl_log(LOG_INFO, c->id, "mail from=<%s> txn=%s", s->path.addr,
		    t->id);
		reply_verdict(s, SL_OK, r, 250, "2.1.0", "Ok");
	}
	process_input(s);
}

static void
cmd_mail(struct smtp *s, char *arg)
{
	struct sl_smtp_error err;

	if (!s->greeted) {
		reply_error(s, 503, "5.5.1", "Send HELO/EHLO first");
		return;
	}
	if (s->conn->txn != NULL) {
		reply_error(s, 503, "5.5.1", "Nested MAIL command");
		return;
	}
	s->txn_utf8 = false;
	if (sl_smtp_parse_path(arg, true, false, &s->path, &err) == -1) {
		reply_error(s, err.code, err.enh, err.text);
		return;
	}
	if (!mail_params_ok(s))
		return;
	path_to_args(s, SL_HOOK_MAIL);
	s->state = ST_BUSY;
	sl_hook_run(s->conn, &s->args, mail_done, s);
}

static bool
domain_is_local(const struct sl_settings *set, const char *domain)
{
	return domain[0] != '\0' && domain[0] != '[' &&
	    sl_strlist_has(&set->local_domains, domain);
}

static void
rcpt_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;

	s->state = ST_CMD;
	if (sl_verdict_is_deny(v)) {
		if (reply_verdict(s, v, r, 550, "5.7.1", "Recipient rejected"))
			return;
	} else {
		sl_txn_add_rcpt(c->txn, s->path.addr, s->params_joined);
		if (v == SL_DISCARD)
			c->txn->discard = true;
		sl_log(LOG_INFO, c->id, "rcpt to=<%s>", s->path.addr);
		reply_verdict(s, SL_OK, r, 250, "2.1.5", "Ok");
	}
	process_input(s);
}

static void
cmd_rcpt(struct smtp *s, char *arg)
{
	struct sl_smtp_error err;
	struct sl_conn *c = s->conn;
	const struct sl_reply *dr;
	enum sl_verdict mv;

	if (c->txn == NULL) {
		reply_error(s, 503, "5.5.1", "Need MAIL before RCPT");
		return;
	}
	if (s->bdat_mode) {
		reply_error(s, 503, "5.5.1", "RCPT after BDAT");
		return;
	}
	if (sl_smtp_parse_path(arg, false, s->txn_utf8, &s->path, &err) == -1) {
		reply_error(s, err.code, err.enh, err.text);
		return;
	}
	if (s->path.nparams > 0) {
		reply_error(s, 555, "5.5.4", "Unsupported RCPT parameter");
		return;
	}
	if (c->txn->nrcpts >= s->set->max_recipients) {
		reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	/* Relay control, in one place. */
	if (!c->relay_client && !s->path.postmaster) {
		if (s->path.source_route || s->path.routed_local) {
			sl_log(LOG_NOTICE, c->id,
			    "rcpt to=<%s> refused reason=routed-address",
			    s->path.addr);
			reply(s, 550, "5.7.1",
			    "Relay access denied: routed address");
			return;
		}
		if (!domain_is_local(s->set, s->path.domain)) {
			sl_log(LOG_NOTICE, c->id,
			    "rcpt to=<%s> refused reason=relay", s->path.addr);
			reply(s, 550, "5.7.1", "Relay access denied");
			return;
		}
	}
	if ((mv = sl_conn_mark_at_rcpt(c)) != SL_DECLINED) {
		dr = &c->deferred_reply;
		sl_log(LOG_INFO, c->id, "rcpt to=<%s> refused reason=deferred",
		    s->path.addr);
		reply_verdict(s, mv, dr, 550, "5.7.1", "Rejected");
		return;
	}
	/* qmail-smtpd's RELAYCLIENT=suffix (sluice-smtpd -i, inetd.c) */
	if (c->rcpt_suffix != NULL) {
		size_t alen = strlen(s->path.addr);
		size_t slen = strlen(c->rcpt_suffix);

		if (slen >= sizeof(s->path.addr) - alen) {
			reply(s, 553, "5.1.3", "Recipient address too long");
			return;
		}
		memcpy(s->path.addr + alen, c->rcpt_suffix, slen + 1);
	}
	path_to_args(s, SL_HOOK_RCPT);
	s->state = ST_BUSY;
	sl_hook_run(c, &s->args, rcpt_done, s);
}

/* --- message content ---------------------------------------------------- */

static void
content_hook_done(struct sl_conn *c, enum sl_verdict v,
    const struct sl_reply *r, void *arg)
{
	struct smtp *s = arg;

	(void)c;
	if ((sl_verdict_is_deny(v) || v == SL_DONE) && !s->content_deny) {
		s->content_deny = true;
		s->content_v = v == SL_DONE ? SL_DENY : v;
		s->content_reply = *r;
	} else if (v == SL_DISCARD && s->conn->txn != NULL)
		s->conn->txn->discard = true;
}

static void
hs_header(void *arg, const char *name, const char *value, const char *raw,
    size_t raw_len)
{
	struct smtp *s = arg;
	struct sl_hookargs a;

	sl_txn_add_raw_header(s->conn->txn, name, value, raw, raw_len);
	if (!sl_hook_wanted(s->conn->rt, SL_HOOK_HEADER))
		return;
	memset(&a, 0, sizeof(a));
	a.hook = SL_HOOK_HEADER;
	a.name = name;
	a.value = value;
	sl_hook_run(s->conn, &a, content_hook_done, s);
}

static void
hs_eoh(void *arg, bool had_blank)
{
	struct smtp *s = arg;
	struct sl_hookargs a;

	s->conn->txn->had_blank = had_blank;
	memset(&a, 0, sizeof(a));
	a.hook = SL_HOOK_EOH;
	sl_hook_run(s->conn, &a, content_hook_done, s);
}

static void
hs_body(void *arg, const uint8_t *p, size_t n)
{
	struct smtp *s = arg;
	struct sl_hookargs a;

	if (!s->io_error && sl_txn_body_append(s->conn->txn, p, n) == -1)
		s->io_error = true;
	if (!sl_hook_wanted(s->conn->rt, SL_HOOK_BODY))
		return;
	memset(&a, 0, sizeof(a));
	a.hook = SL_HOOK_BODY;
	a.data = p;
	a.len = n;
	sl_hook_run(s->conn, &a, content_hook_done, s);
}

static void
mr_out(void *arg, const uint8_t *p, size_t n)
{
	struct smtp *s = arg;

	if (s->conn->txn == NULL)
		return; /* BDAT chunk being discarded */
	s->conn->txn->size += n;
	sl_hdrsplit_feed(s->hs, p, n);
}

static void
content_begin(struct smtp *s, bool dot_mode)
{
	struct sl_msgreader_limits ml;
	struct sl_hdrsplit_limits hl;
	struct sl_hdrsplit_cb cb;

	if (s->mr == NULL) {
		memset(&ml, 0, sizeof(ml));
		/* max_line_length counts the CRLF (RFC 5321 4.5.3.1.6). */
		ml.max_line = s->set->max_line_length - 2;
		ml.max_size = s->set->max_message_size;
		ml.normalise = s->set->bare_newline == SL_BARE_NORMALISE;
		s->mr = sl_msgreader_new(&ml, mr_out, s);
		memset(&hl, 0, sizeof(hl));
		hl.max_header = s->set->max_header_size;
		memset(&cb, 0, sizeof(cb));
		cb.header = hs_header;
		cb.eoh = hs_eoh;
		cb.body = hs_body;
		cb.arg = s;
		s->hs = sl_hdrsplit_new(&hl, &cb);
	}
	sl_msgreader_reset(s->mr, dot_mode);
	sl_hdrsplit_reset(s->hs);
	s->content_deny = false;
	s->io_error = false;
}

static void
add_received(struct smtp *s)
{
	struct sl_conn *c = s->conn;
	struct sl_txn *t = c->txn;
	char date[64], tls[256] = "", *v;
	const char *proto;

	sl_rfc5322_date(date, sizeof(date));
	if (s->txn_utf8 && c->auth_user != NULL) /* RFC 6531 3.7.3 */
		proto = c->tls ? "UTF8SMTPSA" : "UTF8SMTPA";
	else if (s->txn_utf8)
		proto = c->tls ? "UTF8SMTPS" : "UTF8SMTP";
	else if (!s->esmtp)
		proto = "SMTP";
	else if (c->auth_user != NULL)
		proto = c->tls ? "ESMTPSA" : "ESMTPA";
	else
		proto = c->tls ? "ESMTPS" : "ESMTP";
	if (c->tls)
		snprintf(tls, sizeof(tls),
		    "\n\t(using %s with cipher %s (%s/%s bits))",
		    sl_conn_note_get(c, "tls.version"),
		    sl_conn_note_get(c, "tls.cipher"),
		    sl_conn_note_get(c, "tls.bits"),
		    sl_conn_note_get(c, "tls.alg_bits"));
	v = sl_xasprintf("from %s (%s [%s%s])%s\n\tby %s (sluice) with %s id "
	                 "%s%s%s%s;\n\t%s",
	    c->helo != NULL ? c->helo : "unknown",
	    c->remote_host != NULL ? c->remote_host : "unknown",
	    /* RFC 5321 4.1.3 address literal */
	    c->remote_family == AF_INET6 ? "IPv6:" : "", c->remote_ip, tls,
	    s->set->hostname, proto, t->id, t->nrcpts == 1 ? "\n\tfor <" : "",
	    t->nrcpts == 1 ? t->rcpts[0].addr : "", t->nrcpts == 1 ? ">" : "",
	    date);
	sl_edit_header_insert(t, 0, "Received", v);
	free(v);
}

static void
queue_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;
	char text[128];

	if (v == SL_OK || v == SL_DONE || v == SL_DISCARD) {
		snprintf(text, sizeof(text), "Ok: queued as %s", c->txn->id);
		sl_conn_log_accepted(c, "queued");
		reply_verdict(s, SL_OK, r, 250, "2.0.0", text);
	} else if (v == SL_DECLINED) {
		sl_log(LOG_WARNING, c->id,
		    "txn=%s no queue plugin accepted the message", c->txn->id);
		reply(s, 451, "4.3.0",
		    "Queuing declined or disabled, try again later");
	} else if (reply_verdict(s, v, r, 451, "4.3.0", "Queuing failed"))
		return;
	txn_finished(s);
	process_input(s);
}

static void
data_post_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;

	if (sl_verdict_is_deny(v)) {
		if (reply_verdict(s, v, r, 550, "5.7.1", "Message rejected"))
			return;
		txn_finished(s);
		process_input(s);
		return;
	}
	if (v == SL_DISCARD || c->txn->discard) {
		sl_log(LOG_INFO, c->id, "discarded txn=%s", c->txn->id);
		reply(s, 250, "2.0.0", "Ok");
		txn_finished(s);
		process_input(s);
		return;
	}
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_QUEUE;
	sl_hook_run(c, &s->args, queue_done, s);
}

/* The whole message was read (DATA end or BDAT LAST): answer it. */
static void
content_end(struct smtp *s)
{
	unsigned int fl = sl_msgreader_flags(s->mr);
	char text[128];

	sl_timer_cancel(&s->data_timer);
	s->state = ST_BUSY;
	sl_hdrsplit_finish(s->hs);
	if ((fl & SL_MR_TOO_BIG) != 0) {
		reply(s, 552, "5.3.4",
		    "Message size exceeds fixed maximum message size");
	} else if ((fl & (SL_MR_BARE_LF | SL_MR_BARE_CR)) != 0 &&
	    s->set->bare_newline == SL_BARE_REJECT) {
		sl_log(LOG_NOTICE, s->conn->id, "message refused reason=%s",
		    (fl & SL_MR_BARE_LF) != 0 ? "bare-LF" : "bare-CR");
		reply(s, 554, "5.6.0",
		    "Message contains bare CR or LF characters; lines must "
		    "end with CRLF (RFC 5321 2.3.8)");
	} else if ((fl & SL_MR_LONG_LINE) != 0) {
		snprintf(text, sizeof(text),
		    "Message has a line longer than %zu bytes",
		    s->set->max_line_length);
		reply(s, 554, "5.6.0", text);
	} else if (s->io_error) {
		reply(s, 451, "4.3.0", "Local error storing message");
	} else if (s->content_deny) {
		if (reply_verdict(s, s->content_v, &s->content_reply, 550,
		        "5.7.1", "Message rejected"))
			return;
	} else {
		add_received(s);
		memset(&s->args, 0, sizeof(s->args));
		s->args.hook = SL_HOOK_DATA_POST;
		sl_hook_run(s->conn, &s->args, data_post_done, s);
		return;
	}
	txn_finished(s);
}

static void
data_timeout_cb(void *arg)
{
	struct smtp *s = arg;

	s->data_timer = NULL;
	sl_log(LOG_NOTICE, s->conn->id, "timeout reason=data_timeout");
	out(s, "421 4.4.2 %s Error: timeout exceeded", s->set->hostname);
	session_close(s);
}

static void
data_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;

	if (sl_verdict_is_deny(v)) {
		s->state = ST_CMD;
		if (reply_verdict(s, v, r, 554, "5.7.1", "Data rejected"))
			return;
		process_input(s);
		return;
	}
	if (v == SL_DISCARD)
		c->txn->discard = true;
	content_begin(s, true);
	reply(s, 354, "", "End data with <CR><LF>.<CR><LF>");
	s->data_timer =
	    sl_timer_add(c->loop, s->set->data_timeout_ms, data_timeout_cb, s);
	s->state = ST_DATA;
	process_input(s);
}

static void
cmd_data(struct smtp *s, const char *arg)
{
	struct sl_conn *c = s->conn;

	if (*arg != '\0') {
		reply_error(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (c->txn == NULL) {
		reply_error(s, 503, "5.5.1", "Need MAIL command");
		return;
	}
	if (s->bdat_mode) {
		reply_error(s, 503, "5.5.1", "DATA after BDAT");
		return;
	}
	if (c->txn->nrcpts == 0) {
		reply_error(s, 554, "5.5.1", "No valid recipients");
		return;
	}
	s->state = ST_BUSY;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_DATA;
	s->args.arg = "DATA";
	sl_hook_run(c, &s->args, data_done, s);
}

static bool
read_data(struct smtp *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v[8];
	int i, n;
	size_t used, total = 0;
	bool done = false;

	n = evbuffer_peek(in, -1, NULL, v, 8);
	if (n > 8)
		n = 8;
	for (i = 0; i < n && !done; i++) {
		used = sl_msgreader_feed(s->mr, v[i].iov_base, v[i].iov_len,
		    &done);
		total += used;
	}
	evbuffer_drain(in, total);
	if (done) {
		content_end(s);
		return true;
	}
	return total > 0 && evbuffer_get_length(in) > 0;
}

/* --- BDAT (RFC 3030) ----------------------------------------------------- */

static void
bdat_start_chunk(struct smtp *s)
{
	s->state = ST_BDAT;
}

static void
bdat_data_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;

	(void)c;
	if (sl_verdict_is_deny(v)) {
		s->bdat_fail = true;
		s->bdat_reply = *r;
		if (s->bdat_reply.code == 0) {
			s->bdat_reply.code = v == SL_DENY ? 554 : 451;
			snprintf(s->bdat_reply.enh, sizeof(s->bdat_reply.enh),
			    v == SL_DENY ? "5.7.1" : "4.7.1");
		}
		if (s->bdat_reply.text[0] == '\0')
			snprintf(s->bdat_reply.text, sizeof(s->bdat_reply.text),
			    "Data rejected");
	} else {
		content_begin(s, false);
		s->data_timer = sl_timer_add(c->loop, s->set->data_timeout_ms,
		    data_timeout_cb, s);
	}
	bdat_start_chunk(s);
	process_input(s);
}

static void
cmd_bdat(struct smtp *s, const char *arg)
{
	struct sl_conn *c = s->conn;
	uint64_t size;
	bool last;

	if (!s->set->chunking) {
		reply_error(s, 502, "5.5.1", "BDAT not supported");
		return;
	}
	if (sl_smtp_parse_bdat(arg, &size, &last) == -1) {
		/* The chunk length is unknown: nothing to skip. */
		reply_error(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		return;
	}
	s->bdat_left = size;
	s->bdat_last = last;
	if (c->txn == NULL || c->txn->nrcpts == 0) {
		/* RFC 3030 2: the chunk is read, then refused. */
		s->bdat_fail = true;
		s->bdat_reply.code = 503;
		snprintf(s->bdat_reply.enh, sizeof(s->bdat_reply.enh), "5.5.1");
		snprintf(s->bdat_reply.text, sizeof(s->bdat_reply.text), "%s",
		    c->txn == NULL ? "Need MAIL command"
		                   : "No valid recipients");
		bdat_start_chunk(s);
		return;
	}
	if (s->bdat_fail) {
		bdat_start_chunk(s);
		return;
	}
	if (!s->bdat_mode) {
		s->bdat_mode = true;
		s->state = ST_BUSY;
		memset(&s->args, 0, sizeof(s->args));
		s->args.hook = SL_HOOK_DATA;
		s->args.arg = "BDAT";
		sl_hook_run(c, &s->args, bdat_data_done, s);
		return;
	}
	bdat_start_chunk(s);
}

static void
bdat_chunk_end(struct smtp *s)
{
	struct sl_reply r;
	char text[64];

	if (s->bdat_fail) {
		r = s->bdat_reply;
		s->state = ST_CMD;
		if (s->conn->txn != NULL) {
			/* RFC 3030 2: a failed chunk fails the transaction. */
			txn_reset(s);
		}
		s->bdat_fail = false;
		reply_error(s, r.code, r.enh, r.text);
		return;
	}
	if (!s->bdat_last) {
		snprintf(text, sizeof(text), "%llu octets received",
		    (unsigned long long)s->bdat_total);
		reply(s, 250, "2.0.0", text);
		s->state = ST_CMD;
		return;
	}
	sl_msgreader_finish(s->mr);
	content_end(s);
}

static bool
read_bdat(struct smtp *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v[8];
	size_t want, total = 0, n;
	bool done;
	int i, nv;

	if (s->bdat_left > 0) {
		want = evbuffer_get_length(in);
		if (want > s->bdat_left)
			want = (size_t)s->bdat_left;
		if (want == 0)
			return false;
		nv = evbuffer_peek(in, (ssize_t)want, NULL, v, 8);
		if (nv > 8)
			nv = 8;
		for (i = 0; i < nv && total < want; i++) {
			n = v[i].iov_len;
			if (n > want - total)
				n = want - total;
			if (!s->bdat_fail)
				sl_msgreader_feed(s->mr, v[i].iov_base, n,
				    &done);
			total += n;
		}
		evbuffer_drain(in, total);
		s->bdat_left -= total;
		s->bdat_total += total;
	}
	if (s->bdat_left == 0) {
		bdat_chunk_end(s);
		return true;
	}
	return false;
}

/* --- XCLIENT (Postfix) --------------------------------------------------- */

static bool
xtext_decode(char *s)
{
	char *r = s, *w = s;
	int hi, lo;

	while (*r != '\0') {
		if (*r != '+') {
			*w++ = *r++;
			continue;
		}
		hi = r[1] >= '0' && r[1] <= '9'  ? r[1] - '0'
		    : r[1] >= 'A' && r[1] <= 'F' ? r[1] - 'A' + 10
		                                 : -1;
		lo = hi < 0                      ? -1
		    : r[2] >= '0' && r[2] <= '9' ? r[2] - '0'
		    : r[2] >= 'A' && r[2] <= 'F' ? r[2] - 'A' + 10
		                                 : -1;
		if (hi < 0 || lo < 0)
			return false;
		*w++ = (char)(hi * 16 + lo);
		r += 3;
	}
	*w = '\0';
	return true;
}

static void
cmd_xclient(struct smtp *s, char *arg)
{
	struct sl_conn *c = s->conn;
	char *tok, *save = NULL, *val;
	char addr[64] = "";
	unsigned long port = 0;
	char *name = NULL, *helo = NULL;

	if (!sl_cidrlist_match(&s->set->trusted_proxies, c->peer_addr)) {
		reply_error(s, 550, "5.7.0",
		    "Error: insufficient authorization");
		return;
	}
	if (c->txn != NULL) {
		reply_error(s, 503, "5.5.1", "XCLIENT inside a transaction");
		return;
	}
	for (tok = strtok_r(arg, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		val = strchr(tok, '=');
		if (val == NULL || !xtext_decode(val + 1))
			goto syntax;
		*val++ = '\0';
		if (strcasecmp(val, "[UNAVAILABLE]") == 0 ||
		    strcasecmp(val, "[TEMPUNAVAIL]") == 0)
			continue;
		if (strcasecmp(tok, "ADDR") == 0) {
			if (strncasecmp(val, "IPV6:", 5) == 0)
				val += 5;
			if (strlen(val) >= sizeof(addr))
				goto syntax;
			snprintf(addr, sizeof(addr), "%s", val);
		} else if (strcasecmp(tok, "PORT") == 0) {
			char *end;

			errno = 0;
			port = strtoul(val, &end, 10);
			if (*end != '\0' || errno != 0 || port > 65535)
				goto syntax;
		} else if (strcasecmp(tok, "NAME") == 0)
			name = val;
		else if (strcasecmp(tok, "HELO") == 0)
			helo = val;
		else if (strcasecmp(tok, "PROTO") == 0 ||
		    strcasecmp(tok, "LOGIN") == 0 ||
		    strcasecmp(tok, "DESTADDR") == 0 ||
		    strcasecmp(tok, "DESTPORT") == 0)
			continue;
		else
			goto syntax;
	}
	if (addr[0] != '\0' &&
	    sl_conn_set_remote_text(c, addr, (unsigned int)port) == -1)
		goto syntax;
	free(c->remote_host);
	c->remote_host =
	    name != NULL && sl_smtp_helo_valid(name) ? sl_xstrdup(name) : NULL;
	free(c->helo);
	c->helo =
	    helo != NULL && sl_smtp_helo_valid(helo) ? sl_xstrdup(helo) : NULL;
	s->greeted = false;
	s->esmtp = false;
	sl_conn_identity_reset(c);
	sl_log(LOG_INFO, c->id, "xclient client=[%s]:%u name=%s", c->remote_ip,
	    c->remote_port,
	    c->remote_host != NULL ? c->remote_host : "unknown");
	/* Postfix semantics: the session starts over with a new greeting. */
	run_connect(s);
	return;
syntax:
	reply_error(s, 501, "5.5.4", "Bad XCLIENT attribute");
}

/* --- unknown commands --------------------------------------------------- */

static void
unrecognized_done(struct sl_conn *c, enum sl_verdict v,
    const struct sl_reply *r, void *arg)
{
	struct smtp *s = arg;

	(void)c;
	s->state = ST_CMD;
	if (sl_verdict_is_deny(v) || v == SL_DONE) {
		if (reply_verdict(s, v, r, 500, "5.5.1",
		        "Command unrecognized"))
			return;
	} else
		reply(s, 500, "5.5.1", "Command unrecognized");
	if (++s->unknown >= s->set->max_unknown_commands) {
		sl_log(LOG_NOTICE, s->conn->id,
		    "disconnect reason=max_unknown_commands");
		out(s, "421 4.7.0 %s Too many unrecognized commands",
		    s->set->hostname);
		session_close(s);
		return;
	}
	process_input(s);
}

static void
cmd_unknown(struct smtp *s, const char *line)
{
	s->state = ST_BUSY;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_UNRECOGNIZED;
	s->args.arg = line;
	sl_hook_run(s->conn, &s->args, unrecognized_done, s);
}

/* --- the command dispatcher --------------------------------------------- */

static void
dispatch(struct smtp *s, char *line, size_t len)
{
	const char *arg;
	enum sl_smtp_verb verb;

	verb = sl_smtp_parse_verb(line, len, &arg);
	sl_log(LOG_DEBUG, s->conn->id, "command=\"%s\"",
	    verb == SL_VERB_UNKNOWN || verb == SL_VERB_AUTH ? "?" : line);
	if (s->connect_denied && verb != SL_VERB_QUIT) {
		reply_error(s, 503, "5.7.0", "Service refused, send QUIT");
		return;
	}
	switch (verb) {
	case SL_VERB_HELO:
		cmd_helo(s, arg, false);
		break;
	case SL_VERB_EHLO:
		cmd_helo(s, arg, true);
		break;
	case SL_VERB_MAIL:
		cmd_mail(s, line + (arg - line));
		break;
	case SL_VERB_RCPT:
		cmd_rcpt(s, line + (arg - line));
		break;
	case SL_VERB_DATA:
		cmd_data(s, arg);
		break;
	case SL_VERB_BDAT:
		cmd_bdat(s, arg);
		break;
	case SL_VERB_RSET:
		cmd_rset(s, arg);
		break;
	case SL_VERB_NOOP:
		reply(s, 250, "2.0.0", "Ok");
		break;
	case SL_VERB_QUIT:
		out(s, "221 2.0.0 %s Bye", s->set->hostname);
		session_close(s);
		break;
	case SL_VERB_VRFY:
		reply(s, 252, "2.5.2",
		    "Cannot VRFY user, but will accept message and attempt "
		    "delivery");
		break;
	case SL_VERB_EXPN:
		reply(s, 502, "5.5.1", "EXPN not supported");
		break;
	case SL_VERB_HELP:
		reply(s, 214, "2.0.0",
		    "Commands: HELO EHLO STARTTLS MAIL RCPT DATA BDAT RSET "
		    "NOOP QUIT VRFY HELP");
		break;
	case SL_VERB_STARTTLS:
		cmd_starttls(s, arg);
		break;
		reply_error(s, 502, "5.5.1", "Command not implemented");
		break;
	case SL_VERB_AUTH:
		smtpd_auth_cmd(s, line + (arg - line));
		break;
	case SL_VERB_XCLIENT:
		cmd_xclient(s, line + (arg - line));
		break;
	default:
		cmd_unknown(s, line);
		break;
	}
}

/*
 * Reads one command line.  Returns true if the caller should go on
 * (something was consumed), false if more input is needed.  A line ends
 * only at CRLF; one holding a bare CR, bare LF or NUL is refused whole
 * (500 5.5.2) and never run.  A line over max_command_line is answered at
 * once and skipped through its CRLF.
 */
static bool
read_command(struct smtp *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t len = evbuffer_get_length(in), max = s->set->max_command_line;
	struct evbuffer_ptr ep;
	const char *bad;
	size_t n;

	if (len == 0)
		return false;
	ep = evbuffer_search(in, "\r\n", 2, NULL);
	if (s->skipping) {
		if (ep.pos < 0) {
			/* Keep a final CR: its LF may be next. */
			if (len > 1)
				evbuffer_drain(in, len - 1);
			return false;
		}
		evbuffer_drain(in, (size_t)ep.pos + 2);
		s->skipping = false;
		return true;
	}
	if (ep.pos < 0) {
		if (len < max)
			return false;
		s->skipping = true;
		reply_error(s, 500, "5.5.2", "Line too long");
		return true;
	}
	n = (size_t)ep.pos;
	if (n + 2 > max) {
		evbuffer_drain(in, n + 2);
		reply_error(s, 500, "5.5.2", "Line too long");
		return true;
	}
	evbuffer_remove(in, s->line, n);
	evbuffer_drain(in, 2);
	s->line[n] = '\0';
	bad = memchr(s->line, '\n', n) != NULL ? "bare-LF"
	    : memchr(s->line, '\r', n) != NULL ? "bare-CR"
	    : strlen(s->line) != n             ? "NUL"
	                                       : NULL;
	if (bad != NULL) {
		sl_log(LOG_NOTICE, s->conn->id,
		    "invalid command line reason=%s", bad);
		reply_error(s, 500, "5.5.2",
		    strcmp(bad, "NUL") == 0
		        ? "NUL character in command"
		        : "Bare CR or LF in command; lines end with CRLF");
		return true;
	}
	dispatch(s, s->line, n);
	return true;
}

static void
process_input(struct smtp *s)
{
	bool more = true;

	if (s->in_process)
		return;
	s->in_process = true;
	while (more) {
		switch (s->state) {
		case ST_PROXY:
			more = read_proxy(s);
			break;
		case ST_CMD:
			more = read_command(s);
			break;
		case ST_DATA:
			more = read_data(s);
			break;
		case ST_BDAT:
			more = read_bdat(s);
			break;
		case ST_AUTH:
			more = smtpd_auth_read(s);
			break;
		default:
			more = false;
			break;
		}
	}
	s->in_process = false;
	flush_out(s);
	if (s->peer_eof && s->state != ST_BUSY && s->state != ST_CLOSING) {
		/* what came before the client's EOF is answered: close */
		if (s->state != ST_CMD)
			sl_log(LOG_NOTICE, s->conn->id,
			    "lost connection state=%s", state_names[s->state]);
		session_close(s);
	}
}
