/*
 * milter - host an existing milter (opendkim, clamav-milter,
 * spamass-milter, any libmilter program) as a plugin: the MTA side of the
 * milter protocol (sluice-plugins(7); the team's protocol reference,
 * sections 5, 6 and 8).  Several "plugin milter" lines form a chain in
 * config order, between the native plugins.
 *
 *	plugin milter socket=inet:127.0.0.1:8891 default_action=tempfail
 *
 * One child connection per client session, opened at the first event,
 * negotiated as Postfix does (offer version 6, every action and protocol
 * bit we implement; the child's macro lists honoured), closed with QUIT
 * when the session ends.  Envelope events go to the child at their hooks;
 * the message goes at data_post, as it stands then (edited by the plugins
 * and children before this one), and the child's modifications become
 * core edits, so later plugins see them.
 *
 * Verdicts: continue and skip pass (DECLINED); accept retires the child
 * for the rest of the message (the connection, at connect and helo)
 * without deciding for the other plugins; reject, tempfail, a reply code
 * and discard decide, with the child's text.  Anything the child gets
 * wrong (down, closed, too slow, a malformed or hostile packet, an action
 * it did not negotiate) closes its connection and gives default_action
 * for this and every later event of the session; nothing it sent for the
 * message is applied.  A child that cannot be reached is not tried again
 * for retry= (doubling up to RETRY_MAX) by any session.
 *
 * Every hook runs on the connection's loop thread and never blocks: the
 * socket is non-blocking, and a hook that must wait suspends (SL_PENDING)
 * and resumes from sl_conn_io_wait() callbacks.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sluice/plugin.h>

#include "daemon.h"
#include "log.h"
#include "milter.h"
#include "xmalloc.h"

#define RETRY_MAX_MS (5 * 60 * 1000)
#define REPLY_CAP_FACTOR 10  /* progress extends a wait this far */
#define BACKSTOP_MS 5000     /* the core's timeout, beyond ours */
#define FLUSH_AT (64 * 1024) /* unanswered packets buffered */
#define READ_CHUNK (64 * 1024)
#define BODY_RAW_CHUNK 32767      /* LF -> CRLF fits SL_MILTER_CHUNK */
#define REPLBODY_MAX (256u << 20) /* a replacement body, at most */
#define MAX_EDITS 100000          /* modifications in one reply */
#define MAX_STAGE_MACROS 64

enum { ACT_TEMPFAIL, ACT_ACCEPT, ACT_REJECT };
static const char *const action_choices[] = { "tempfail", "accept", "reject",
	NULL };

struct milter_opts {
	char *socket;
	int default_action;
	unsigned int connect_timeout, command_timeout, eom_timeout, retry;
	unsigned int version;
	struct sl_strlist actions, protocol;
	struct sl_strlist macros[SL_SMFIM_MAX];
};

#define OPT(f) offsetof(struct milter_opts, f)

static const struct sl_conf_def milter_conf[] = {
	{ .name = "socket",
	    .type = SL_CONF_STR,
	    .offset = OPT(socket),
	    .help = "inet:HOST:PORT, inet:PORT@HOST, inet6:PORT@HOST or "
	            "unix:/path" },
	{ .name = "default_action",
	    .type = SL_CONF_ENUM,
	    .def = "tempfail",
	    .offset = OPT(default_action),
	    .choices = action_choices,
	    .help = "what a failing milter gets: tempfail, accept or reject" },
	{ .name = "connect_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "10s",
	    .min = 1,
	    .max = 3600000,
	    .offset = OPT(connect_timeout),
	    .help = "time to connect to the milter" },
	{ .name = "command_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "10s",
	    .min = 1,
	    .max = 3600000,
	    .offset = OPT(command_timeout),
	    .help = "time for each write and each reply before end of "
	            "message" },
	{ .name = "eom_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "5m",
	    .min = 1,
	    .max = 3600000,
	    .offset = OPT(eom_timeout),
	    .help = "time for the reply to end of message (progress "
	            "restarts it)" },
	{ .name = "retry",
	    .type = SL_CONF_MSEC,
	    .def = "5s",
	    .min = 0,
	    .max = RETRY_MAX_MS,
	    .offset = OPT(retry),
	    .help = "after a failed connect, wait this long (doubling) "
	            "before trying again" },
	{ .name = "version",
	    .type = SL_CONF_UINT,
	    .def = "6",
	    .min = 2,
	    .max = 6,
	    .offset = OPT(version),
	    .help = "the protocol version offered, 2 to 6" },
	{ .name = "actions",
	    .type = SL_CONF_LIST,
	    .def = "all",
	    .offset = OPT(actions),
	    .help = "modifications offered: all, or add_headers, "
	            "change_headers, change_body, add_rcpt, add_rcpt_par, "
	            "delete_rcpt, change_from, quarantine, macro_lists" },
	{ .name = "protocol",
	    .type = SL_CONF_LIST,
	    .def = "all",
	    .offset = OPT(protocol),
	    .help = "protocol flags offered: all, none, or names such as "
	            "nohdrs, nr_rcpt, skip, hdr_leadspc" },
	{ .name = "macros_connect",
	    .type = SL_CONF_LIST,
	    .def = "j,{daemon_name},{daemon_addr},v,_,{client_addr}",
	    .offset = OPT(macros[SL_SMFIM_CONNECT]),
	    .help = "macros sent with CONNECT" },
	{ .name = "macros_helo",
	    .type = SL_CONF_LIST,
	    .def = "{tls_version},{cipher},{cipher_bits},{cert_subject},"
	           "{cert_issuer}",
	    .offset = OPT(macros[SL_SMFIM_HELO]),
	    .help = "macros sent with HELO" },
	{ .name = "macros_mail",
	    .type = SL_CONF_LIST,
	    .def = "i,{auth_type},{auth_authen},{auth_author},{mail_addr},"
	           "{mail_host},{mail_mailer}",
	    .offset = OPT(macros[SL_SMFIM_ENVFROM]),
	    .help = "macros sent with MAIL" },
	{ .name = "macros_rcpt",
	    .type = SL_CONF_LIST,
	    .def = "i,{rcpt_addr},{rcpt_host},{rcpt_mailer}",
	    .offset = OPT(macros[SL_SMFIM_ENVRCPT]),
	    .help = "macros sent with RCPT" },
	{ .name = "macros_data",
	    .type = SL_CONF_LIST,
	    .def = "i",
	    .offset = OPT(macros[SL_SMFIM_DATA]),
	    .help = "macros sent with DATA" },
	{ .name = "macros_eoh",
	    .type = SL_CONF_LIST,
	    .def = "i",
	    .offset = OPT(macros[SL_SMFIM_EOH]),
	    .help = "macros sent with the headers and end of headers" },
	{ .name = "macros_eom",
	    .type = SL_CONF_LIST,
	    .def = "i",
	    .offset = OPT(macros[SL_SMFIM_EOM]),
	    .help = "macros sent with the body and end of message" },
	SL_CONF_END,
};

struct flag_name {
	const char *name;
	uint32_t bit;
};

static const struct flag_name action_names[] = {
	{ "add_headers", SL_SMFIF_ADDHDRS },
	{ "change_body", SL_SMFIF_CHGBODY },
	{ "add_rcpt", SL_SMFIF_ADDRCPT },
	{ "delete_rcpt", SL_SMFIF_DELRCPT },
	{ "change_headers", SL_SMFIF_CHGHDRS },
	{ "quarantine", SL_SMFIF_QUARANTINE },
	{ "change_from", SL_SMFIF_CHGFROM },
	{ "add_rcpt_par", SL_SMFIF_ADDRCPT_PAR },
	{ "macro_lists", SL_SMFIF_SETSYMLIST },
	{ "all", SL_SMFIF_ALL },
	{ "none", 0 },
};

/* Every protocol bit we implement; RCPT_REJ and MDS_* are not offered. */
#define PROTO_SUPPORTED (SL_SMFIP_ALL & ~SL_SMFIP_RCPT_REJ)

static const struct flag_name proto_names[] = {
	{ "noconnect", SL_SMFIP_NOCONNECT },
	{ "nohelo", SL_SMFIP_NOHELO },
	{ "nomail", SL_SMFIP_NOMAIL },
	{ "norcpt", SL_SMFIP_NORCPT },
	{ "nobody", SL_SMFIP_NOBODY },
	{ "nohdrs", SL_SMFIP_NOHDRS },
	{ "noeoh", SL_SMFIP_NOEOH },
	{ "nr_hdr", SL_SMFIP_NR_HDR },
	{ "nounknown", SL_SMFIP_NOUNKNOWN },
	{ "nodata", SL_SMFIP_NODATA },
	{ "skip", SL_SMFIP_SKIP },
	{ "nr_conn", SL_SMFIP_NR_CONN },
	{ "nr_helo", SL_SMFIP_NR_HELO },
	{ "nr_mail", SL_SMFIP_NR_MAIL },
	{ "nr_rcpt", SL_SMFIP_NR_RCPT },
	{ "nr_data", SL_SMFIP_NR_DATA },
	{ "nr_unkn", SL_SMFIP_NR_UNKN },
	{ "nr_eoh", SL_SMFIP_NR_EOH },
	{ "nr_body", SL_SMFIP_NR_BODY },
	{ "hdr_leadspc", SL_SMFIP_HDR_LEADSPC },
	{ "all", PROTO_SUPPORTED },
	{ "none", 0 },
};

/* One "plugin milter" line. */
struct milter {
	struct milter_opts *o;
	struct sockaddr_storage sa;
	socklen_t salen;
	uint32_t offer_actions, offer_proto;
	pthread_mutex_t lock; /* the back-off, shared by every loop */
	int64_t down_until;   /* ms, CLOCK_MONOTONIC; 0 = up */
	unsigned int backoff; /* ms of the last back-off */
};

/* One event for the child: C H M R T U A, or Q. */
struct ev {
	uint8_t cmd;
	char *arg;     /* H, U: the string; M, R: the address, no <> */
	char **params; /* M, R: ESMTP parameters */
	size_t nparams;
};

struct edit {
	uint8_t code;
	uint32_t index;
	char *a, *b; /* name and value, address and args, reason */
};

enum cstate {
	CS_NEW,         /* not connected yet */
	CS_CONNECTING,  /* connect() in progress */
	CS_NEGOTIATING, /* OPTNEG sent */
	CS_READY,
	CS_DONE,  /* retired for the session (accept at connect ...) */
	CS_FAILED /* default_action for the rest of the session */
};

enum content_phase { CP_NONE, CP_HEADERS, CP_EOH, CP_BODY, CP_EOM, CP_END };

/* A child milter's connection, for one client session. */
struct child {
	struct milter *m;
	struct sl_conn *conn;
	char name[64]; /* the instance's name, for logs */
	int fd;
	enum cstate state;
	uint32_t version, actions, proto;
	char *symlist[SL_SMFIM_MAX];
	struct sl_milter_buf out;
	uint8_t *in;
	size_t in_len, in_alloc;
	struct sl_io *io;
	bool io_connect; /* the wait is for connect() */
	struct sl_async *async;
	unsigned int last_wait; /* ms of the wait just armed */
	bool conn_sent;
	/* the message, as the child knows it */
	bool msg_open;    /* got MAIL and has not ended the message */
	bool msg_done;    /* ended its part in msg_txn (accept, refusal) */
	char msg_txn[64]; /* "" if MAIL came before the transaction */
	size_t rcpts_sent;
	/* the job of one hook call */
	bool busy;
	struct sl_txn *txn; /* data_post: the message, during the job */
	struct ev *evs;
	size_t nevs, next;
	enum content_phase cp;
	size_t hdr_i, body_off;
	bool body_cr;     /* the last body byte sent was CR */
	uint8_t skip_cmd; /* SKIP: no more events of this code */
	uint8_t waiting;  /* the command whose reply is awaited; 0 = none */
	int64_t wait_start, deadline;
	bool retire; /* QUIT and close when the job ends */
	enum sl_verdict verdict;
	int code;
	char enh[16];
	char text[512];
	/* end of message */
	struct edit *edits;
	size_t nedits;
	uint8_t *body;
	size_t body_len, body_alloc;
	bool body_set;
};

/* --- set-up ------------------------------------------------------------ */

static int
flags_parse(const struct sl_strlist *l, const struct flag_name *names,
    size_t nnames, uint32_t *bits_r)
{
	size_t i, j;

	*bits_r = 0;
	for (i = 0; i < l->count; i++) {
		for (j = 0; j < nnames; j++)
			if (strcasecmp(l->items[i], names[j].name) == 0)
				break;
		if (j == nnames)
			return -1;
		*bits_r |= names[j].bit;
	}
	return 0;
}

static int
resolve(struct milter *m, const struct sl_milter_spec *ms, const char **error_r)
{
	struct addrinfo hints, *res;
	struct sockaddr_un *sun;

	if (ms->is_unix) {
		sun = (struct sockaddr_un *)&m->sa;
		if (strlen(ms->path) >= sizeof(sun->sun_path)) {
			*error_r = "socket: the path is too long";
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, ms->path, strlen(ms->path) + 1);
		m->salen = sizeof(*sun);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = ms->inet6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(ms->host[0] != '\0' ? ms->host
	                                    : (ms->inet6 ? "::1" : "127.0.0.1"),
	        ms->port, &hints, &res) != 0 ||
	    res == NULL) {
		*error_r = "socket: cannot resolve the host";
		return -1;
	}
	memcpy(&m->sa, res->ai_addr, res->ai_addrlen);
	m->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int
milter_init(void **state_r, const char **error_r)
{
	static char errbuf[256];
	struct milter_opts *o = *state_r;
	struct sl_milter_spec ms;
	struct milter *m;
	char *err = NULL;
	int rc;

	if (o->socket == NULL) {
		*error_r = "socket= is required";
		return -1;
	}
	if (sl_milter_spec_parse("socket", o->socket, &ms, &err) == -1) {
		/* init runs at start-up and reload, on the main thread. */
		snprintf(errbuf, sizeof(errbuf), "%s", err);
		free(err);
		*error_r = errbuf;
		return -1;
	}
	m = sl_xcalloc(1, sizeof(*m));
	m->o = o;
	rc = resolve(m, &ms, error_r);
	sl_milter_spec_free(&ms);
	if (rc == -1)
		goto fail;
	if (flags_parse(&o->actions, action_names, SL_NELEM(action_names),
	        &m->offer_actions) == -1) {
		*error_r = "actions: unknown name";
		goto fail;
	}
	if (flags_parse(&o->protocol, proto_names, SL_NELEM(proto_names),
	        &m->offer_proto) == -1) {
		*error_r = "protocol: unknown or unsupported name";
		goto fail;
	}
	pthread_mutex_init(&m->lock, NULL);
	*state_r = m;
	return 0;
fail:
	free(m);
	return -1;
}

static void
milter_fini(void *state)
{
	struct milter *m = state;

	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* --- the child's life ---------------------------------------------------- */

static void
ev_free(struct ev *e)
{
	size_t i;

	free(e->arg);
	for (i = 0; i < e->nparams; i++)
		free(e->params[i]);
	free(e->params);
}

static void
edits_clear(struct child *ch)
{
	size_t i;

	for (i = 0; i < ch->nedits; i++) {
		free(ch->edits[i].a);
		free(ch->edits[i].b);
	}
	free(ch->edits);
	ch->edits = NULL;
	ch->nedits = 0;
	free(ch->body);
	ch->body = NULL;
	ch->body_len = ch->body_alloc = 0;
	ch->body_set = false;
}

static void
job_clear(struct child *ch)
{
	size_t i;

	for (i = 0; i < ch->nevs; i++)
		ev_free(&ch->evs[i]);
	free(ch->evs);
	ch->evs = NULL;
	ch->nevs = ch->next = 0;
	ch->cp = CP_NONE;
	ch->txn = NULL;
	ch->busy = false;
	ch->waiting = 0;
	ch->skip_cmd = 0;
	edits_clear(ch);
}

/* Writes what it can without waiting; the rest is dropped. */
static void
write_last(struct child *ch)
{
	ssize_t n;

	while (ch->out.len > 0) {
		n = send(ch->fd, ch->out.data, ch->out.len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0)
			break;
		sl_milter_buf_consume(&ch->out, (size_t)n);
	}
}

static void
child_close(struct child *ch, bool quit)
{
	int i;

	sl_io_cancel(&ch->io);
	if (ch->fd >= 0) {
		if (quit) {
			if (ch->msg_open)
				sl_milter_put_empty(&ch->out, SL_SMFIC_ABORT);
			sl_milter_put_empty(&ch->out, SL_SMFIC_QUIT);
			write_last(ch);
		}
		close(ch->fd);
		ch->fd = -1;
	}
	sl_milter_buf_free(&ch->out);
	free(ch->in);
	ch->in = NULL;
	ch->in_len = ch->in_alloc = 0;
	for (i = 0; i < SL_SMFIM_MAX; i++) {
		free(ch->symlist[i]);
		ch->symlist[i] = NULL;
	}
	ch->msg_open = false;
}

static void
child_free(void *arg)
{
	struct child *ch = arg;

	child_close(ch, ch->state == CS_READY);
	job_clear(ch);
	sl_async_done(&ch->async, SL_ERROR); /* late: only frees it */
	free(ch);
}

static void
set_reply(struct child *ch, enum sl_verdict v, int code, const char *enh,
    const char *text)
{
	ch->verdict = v;
	ch->code = code;
	snprintf(ch->enh, sizeof(ch->enh), "%s", enh != NULL ? enh : "");
	snprintf(ch->text, sizeof(ch->text), "%s", text != NULL ? text : "");
}

static void
default_verdict(struct child *ch)
{
	switch (ch->m->o->default_action) {
	case ACT_ACCEPT:
		set_reply(ch, SL_DECLINED, 0, NULL, NULL);
		break;
	case ACT_REJECT:
		set_reply(ch, SL_DENY, 550, "5.5.0", "Service unavailable");
		break;
	default:
		set_reply(ch, SL_DENYSOFT, 451, "4.7.1",
		    "Service unavailable - try again later");
		break;
	}
}

/*
 * The child failed: close it, forget what it sent for the message, and
 * give default_action now and for the rest of the session.
 */
static void __attribute__((format(printf, 2, 3)))
child_fail(struct child *ch, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	sl_log(LOG_WARNING, sl_conn_id(ch->conn),
	    "plugin=%s milter=%s failed: %s; default_action=%s", ch->name,
	    ch->m->o->socket, why, action_choices[ch->m->o->default_action]);
	child_close(ch, false);
	ch->state = CS_FAILED;
	edits_clear(ch);
	default_verdict(ch);
}

static struct child *
child_get(struct milter *m, struct sl_hookctx *ctx)
{
	struct sl_conn *c = sl_hook_conn(ctx);
	struct child *ch;

	ch = sl_conn_data_get(c, m);
	if (ch != NULL)
		return ch;
	ch = sl_xcalloc(1, sizeof(*ch));
	ch->m = m;
	ch->conn = c;
	ch->fd = -1;
	snprintf(ch->name, sizeof(ch->name), "%s", sl_hook_plugin_name(ctx));
	sl_conn_data_set(c, m, ch, child_free);
	return ch;
}

/* --- waiting ------------------------------------------------------------- */

static void io_cb(void *arg, unsigned int what);

static void
wait_io(struct child *ch, unsigned int what, unsigned int ms)
{
	ch->last_wait = ms;
	ch->io = sl_conn_io_wait(ch->conn, ch->fd, what, ms, io_cb, ch);
	if (ch->async != NULL)
		sl_async_timeout(ch->async, ms + BACKSTOP_MS);
}

/* Writes the output buffer: 1 all written, 0 waiting, -1 failed. */
static int
flush_out(struct child *ch)
{
	ssize_t n;

	while (ch->out.len > 0) {
		n = send(ch->fd, ch->out.data, ch->out.len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			wait_io(ch, SL_IO_WRITE, ch->m->o->command_timeout);
			return 0;
		}
		if (n <= 0) {
			child_fail(ch, "write: %s", strerror(errno));
			return -1;
		}
		sl_milter_buf_consume(&ch->out, (size_t)n);
	}
	return 1;
}

/* --- connecting and negotiating ---------------------------------------- */

/* Returns 1 connected, 0 waiting, -1 failed. */
static int
start_connect(struct child *ch)
{
	struct milter *m = ch->m;
	int64_t now = sl_now_ms(), until;
	int fd, one = 1;

	pthread_mutex_lock(&m->lock);
	until = m->down_until;
	pthread_mutex_unlock(&m->lock);
	if (until > now) {
		child_fail(ch, "down; next try in %lld ms",
		    (long long)(until - now));
		return -1;
	}
	fd = socket(m->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		child_fail(ch, "socket: %s", strerror(errno));
		return -1;
	}
	if (m->sa.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ch->fd = fd;
	ch->out.max_data = SL_MILTER_SEND_MAX;
	if (connect(fd, (const struct sockaddr *)&m->sa, m->salen) == 0)
		return 1;
	if (errno == EINPROGRESS || errno == EAGAIN) {
		ch->state = CS_CONNECTING;
		ch->io_connect = true;
		wait_io(ch, SL_IO_WRITE, m->o->connect_timeout);
		return 0;
	}
	return -1;
}

/* A connect failed: back off for the whole instance. */
static void
connect_failed(struct child *ch, const char *why)
{
	struct milter *m = ch->m;
	unsigned int b;

	pthread_mutex_lock(&m->lock);
	b = m->backoff == 0 ? m->o->retry : m->backoff * 2;
	if (b > RETRY_MAX_MS)
		b = RETRY_MAX_MS;
	m->backoff = b;
	m->down_until = b > 0 ? sl_now_ms() + b : 0;
	pthread_mutex_unlock(&m->lock);
	child_fail(ch, "connect: %s (next try in %u ms)", why, b);
}

static void
negotiated(struct child *ch)
{
	struct milter *m = ch->m;

	pthread_mutex_lock(&m->lock);
	m->backoff = 0;
	m->down_until = 0;
	pthread_mutex_unlock(&m->lock);
	ch->state = CS_READY;
}

static int
send_optneg(struct child *ch)
{
	const struct milter_opts *o = ch->m->o;

	if (sl_milter_put_optneg(&ch->out, o->version, ch->m->offer_actions,
	        ch->m->offer_proto, NULL) < 0) {
		child_fail(ch, "cannot encode OPTNEG");
		return -1;
	}
	ch->state = CS_NEGOTIATING;
	ch->waiting = SL_SMFIC_OPTNEG;
	ch->wait_start = sl_now_ms();
	ch->deadline = ch->wait_start + o->command_timeout;
	return 0;
}

static int
optneg_reply(struct child *ch, const struct sl_milter_msg *mm)
{
	const struct milter_opts *o = ch->m->o;
	uint32_t proto, masked;
	const char *err;
	int i;

	if (mm->code != SL_SMFIR_OPTNEG) {
		child_fail(ch, "negotiation: answered %s, not OPTNEG",
		    sl_milter_reply_name(mm->code));
		return -1;
	}
	if (sl_milter_negotiate_mta(o->version, ch->m->offer_actions,
	        ch->m->offer_proto, mm, &proto, &masked, &err) < 0) {
		child_fail(ch, "negotiation: %s", err);
		return -1;
	}
	if (masked != 0)
		sl_log(LOG_NOTICE, sl_conn_id(ch->conn),
		    "plugin=%s milter=%s asked for protocol bits 0x%lx not "
		    "offered; ignored",
		    ch->name, o->socket, (unsigned long)masked);
	ch->version = mm->version;
	ch->actions = mm->actions;
	ch->proto = proto;
	for (i = 0; i < SL_SMFIM_MAX; i++)
		if (mm->symlist[i] != NULL)
			ch->symlist[i] = sl_xstrdup(mm->symlist[i]);
	sl_log(LOG_DEBUG, sl_conn_id(ch->conn),
	    "plugin=%s milter=%s negotiated version=%lu actions=0x%lx "
	    "protocol=0x%lx",
	    ch->name, o->socket, (unsigned long)ch->version,
	    (unsigned long)ch->actions, (unsigned long)ch->proto);
	negotiated(ch);
	return 0;
}

/* --- macros -------------------------------------------------------------- */

static const char *
domain_of(const char *addr)
{
	const char *at;

	if (addr == NULL || (at = strrchr(addr, '@')) == NULL)
		return NULL;
	return at + 1;
}

/* The value of macro name for event e, allocated, or NULL. */
static char *
macro_value(struct child *ch, const char *name, const struct ev *e)
{
	struct sl_conn *c = ch->conn;
	char bare[64], braced[68];
	const char *v;
	size_t n = strlen(name);

	if (n >= 2 && name[0] == '{' && name[n - 1] == '}')
		snprintf(bare, sizeof(bare), "%.*s", (int)(n - 2), name + 1);
	else
		snprintf(bare, sizeof(bare), "%s", name);
	if (e != NULL && e->cmd == SL_SMFIC_RCPT) {
		if (strcmp(bare, "rcpt_addr") == 0)
			return sl_xstrdup(e->arg);
		if (strcmp(bare, "rcpt_host") == 0)
			return (v = domain_of(e->arg)) != NULL ? sl_xstrdup(v)
			                                       : NULL;
		if (strcmp(bare, "rcpt_mailer") == 0)
			return sl_xstrdup("smtp");
	}
	/* At MAIL the core has no transaction yet. */
	if (e != NULL && e->cmd == SL_SMFIC_MAIL &&
	    strcmp(bare, "mail_addr") == 0)
		return sl_xstrdup(e->arg);
	if (strlen(bare) > 1) {
		snprintf(braced, sizeof(braced), "{%s}", bare);
		v = sl_conn_macro(c, braced);
	} else {
		v = sl_conn_macro(c, bare);
	}
	if (v != NULL)
		return sl_xstrdup(v);
	if (strcmp(bare, "v") == 0)
		return sl_xstrdup("sluice");
	if (strcmp(bare, "_") == 0)
		return sl_xasprintf("%s [%s]",
		    sl_conn_remote_host(c) != NULL ? sl_conn_remote_host(c)
		                                   : "unknown",
		    sl_conn_remote_ip(c));
	if (strcmp(bare, "mail_mailer") == 0)
		return sl_xstrdup("smtp");
	if (strcmp(bare, "mail_host") == 0 && e != NULL &&
	    e->cmd == SL_SMFIC_MAIL)
		return (v = domain_of(e->arg)) != NULL ? sl_xstrdup(v) : NULL;
	return NULL;
}

/* The 'D' packet before event e: the child's list, else ours. */
static int
put_stage_macros(struct child *ch, int stage, const struct ev *e, uint8_t cmd)
{
	const char *names[MAX_STAGE_MACROS] = { 0 };
	char *values[MAX_STAGE_MACROS] = { 0 }, *owned[MAX_STAGE_MACROS];
	const struct sl_strlist *l = &ch->m->o->macros[stage];
	const char *p, *q;
	size_t n = 0, nowned = 0, i;
	int rc;

	if (ch->symlist[stage] != NULL) {
		for (p = ch->symlist[stage]; *p != '\0' && n < MAX_STAGE_MACROS;
		     p = q) {
			while (*p == ' ' || *p == ',')
				p++;
			for (q = p; *q != '\0' && *q != ' ' && *q != ','; q++)
				continue;
			if (q == p)
				break;
			names[n] = owned[nowned++] =
			    sl_xstrndup(p, (size_t)(q - p));
			n++;
		}
	} else {
		for (i = 0; i < l->count && n < MAX_STAGE_MACROS; i++)
			names[n++] = l->items[i];
	}
	for (i = 0; i < n; i++)
		values[i] = macro_value(ch, names[i], e);
	rc = sl_milter_put_macros(&ch->out, cmd, names,
	    (const char *const *)values, n);
	for (i = 0; i < n; i++)
		free(values[i]);
	for (i = 0; i < nowned; i++)
		free(owned[i]);
	return rc;
}

/* --- events ---------------------------------------------------------- */

static struct ev *
ev_add(struct child *ch, uint8_t cmd, const char *arg)
{
	struct ev *e;

	ch->evs = sl_xreallocarray(ch->evs, ch->nevs + 1, sizeof(*ch->evs));
	e = &ch->evs[ch->nevs++];
	memset(e, 0, sizeof(*e));
	e->cmd = cmd;
	e->arg = arg != NULL ? sl_xstrdup(arg) : NULL;
	return e;
}

static void
ev_params(struct ev *e, const char *const *params, size_t n)
{
	size_t i;

	if (n == 0)
		return;
	e->params = sl_xcalloc(n, sizeof(*e->params));
	for (i = 0; i < n; i++)
		e->params[i] = sl_xstrdup(params[i]);
	e->nparams = n;
}

/* The command packet of event e. */
static int
put_command(struct child *ch, const struct ev *e)
{
	const char *strs[SL_MILTER_MAX_ARGS];
	char *addr;
	size_t i, n;
	int rc;
	struct sl_conn *c = ch->conn;
	const char *ip, *host;
	char hbuf[80];

	switch (e->cmd) {
	case SL_SMFIC_CONNECT:
		ip = sl_conn_remote_ip(c);
		if (ip == NULL || ip[0] == '\0')
			return sl_milter_put_connect(&ch->out, "localhost", 'U',
			    0, NULL);
		host = sl_conn_remote_host(c);
		if (host == NULL) {
			snprintf(hbuf, sizeof(hbuf), "[%s]", ip);
			host = hbuf;
		}
		return sl_milter_put_connect(&ch->out, host,
		    strchr(ip, ':') != NULL ? '6' : '4',
		    (uint16_t)sl_conn_remote_port(c), ip);
	case SL_SMFIC_HELO:
	case SL_SMFIC_UNKNOWN:
		strs[0] = e->arg;
		return sl_milter_put_strings(&ch->out, e->cmd, strs, 1);
	case SL_SMFIC_MAIL:
	case SL_SMFIC_RCPT:
		addr = sl_xasprintf("<%s>", e->arg);
		strs[0] = addr;
		n = 1;
		for (i = 0; i < e->nparams && n < SL_MILTER_MAX_ARGS; i++)
			strs[n++] = e->params[i];
		rc = sl_milter_put_strings(&ch->out, e->cmd, strs, n);
		free(addr);
		return rc;
	default:
		return sl_milter_put_empty(&ch->out, e->cmd);
	}
}

/*
 * Queues event e: its macros, then the command unless the child asked
 * not to get it.  Returns 1 if a reply is due, 0 if not, -1 on failure.
 */
static int
queue_event(struct child *ch, const struct ev *e)
{
	const struct sl_milter_event *d;

	if (e->cmd == SL_SMFIC_ABORT || e->cmd == SL_SMFIC_QUIT) {
		sl_milter_put_empty(&ch->out, e->cmd);
		return 0;
	}
	d = sl_milter_event_of(e->cmd);
	if (d == NULL || ch->version < d->min_version)
		return 0;
	if (d->mstage >= 0 && put_stage_macros(ch, d->mstage, e, e->cmd) < 0) {
		child_fail(ch, "the macros for %s do not fit in a packet",
		    sl_milter_command_name(e->cmd));
		return -1;
	}
	if ((ch->proto & d->no_bit) != 0 || ch->skip_cmd == e->cmd)
		return 0;
	if (put_command(ch, e) < 0) {
		child_fail(ch, "%s packet larger than %zu bytes",
		    sl_milter_command_name(e->cmd), (size_t)SL_MILTER_SEND_MAX);
		return -1;
	}
	return (ch->proto & d->nr_bit) != 0 ? 0 : 1;
}

/* State the child is in once event e went out. */
static void
event_sent(struct child *ch, const struct ev *e)
{
	switch (e->cmd) {
	case SL_SMFIC_CONNECT:
		ch->conn_sent = true;
		break;
	case SL_SMFIC_MAIL:
		ch->msg_open = true;
		ch->msg_done = false;
		ch->rcpts_sent = 0;
		snprintf(ch->msg_txn, sizeof(ch->msg_txn), "%s",
		    ch->txn != NULL ? sl_txn_id(ch->txn) : "");
		break;
	case SL_SMFIC_RCPT:
		ch->rcpts_sent++;
		break;
	case SL_SMFIC_ABORT:
		ch->msg_open = false;
		break;
	default:
		break;
	}
}

/* --- the message --------------------------------------------------------- */

/*
 * The next content event of data_post: headers as they stand now, EOH,
 * the body in CRLF chunks, EOM.  Returns 1 with the packet queued (*reply_r
 * set), 0 at the end, -1 on failure.
 */
static int
content_next(struct child *ch, bool *reply_r)
{
	uint8_t raw[BODY_RAW_CHUNK], cooked[2 * BODY_RAW_CHUNK];
	const struct sl_milter_event *d;
	const char *name, *value, *strs[2];
	struct ev e;
	char *v;
	size_t i, n;
	long got;
	int rc;

	memset(&e, 0, sizeof(e));
	for (;;) {
		switch (ch->cp) {
		case CP_HEADERS:
			if (ch->skip_cmd == SL_SMFIC_HEADER ||
			    sl_txn_header_at(ch->txn, ch->hdr_i, &name,
			        &value) < 0) {
				ch->cp = CP_EOH;
				continue;
			}
			ch->hdr_i++;
			d = sl_milter_event_of(SL_SMFIC_HEADER);
			if (put_stage_macros(ch, d->mstage, NULL,
			        SL_SMFIC_HEADER) < 0) {
				child_fail(ch, "the header macros do not fit");
				return -1;
			}
			if ((ch->proto & d->no_bit) != 0)
				continue;
			v = (ch->proto & SL_SMFIP_HDR_LEADSPC) != 0
			    ? sl_xasprintf(" %s", value)
			    : sl_xstrdup(value);
			strs[0] = name;
			strs[1] = v;
			rc = sl_milter_put_strings(&ch->out, SL_SMFIC_HEADER,
			    strs, 2);
			free(v);
			if (rc < 0) {
				child_fail(ch,
				    "header %s larger than a packet (%zu "
				    "bytes)",
				    name, (size_t)SL_MILTER_SEND_MAX);
				return -1;
			}
			*reply_r = (ch->proto & d->nr_bit) == 0;
			ch->waiting = SL_SMFIC_HEADER;
			return 1;
		case CP_EOH:
			ch->cp = CP_BODY;
			e.cmd = SL_SMFIC_EOH;
			if ((rc = queue_event(ch, &e)) < 0)
				return -1;
			*reply_r = rc == 1;
			ch->waiting = SL_SMFIC_EOH;
			return 1;
		case CP_BODY:
			if (ch->skip_cmd == SL_SMFIC_BODY ||
			    (ch->proto & SL_SMFIP_NOBODY) != 0) {
				ch->cp = CP_EOM;
				continue;
			}
			got = sl_txn_body_read(ch->txn, ch->body_off, raw,
			    sizeof(raw));
			if (got < 0) {
				child_fail(ch, "cannot read the message body");
				return -1;
			}
			if (got == 0) {
				ch->cp = CP_EOM;
				continue;
			}
			for (i = n = 0; i < (size_t)got; i++) {
				if (raw[i] == '\n' && !ch->body_cr)
					cooked[n++] = '\r';
				cooked[n++] = raw[i];
				ch->body_cr = raw[i] == '\r';
			}
			ch->body_off += (size_t)got;
			d = sl_milter_event_of(SL_SMFIC_BODY);
			if (put_stage_macros(ch, d->mstage, NULL,
			        SL_SMFIC_BODY) < 0 ||
			    sl_milter_put_body(&ch->out, SL_SMFIC_BODY, cooked,
			        n) < 0) {
				child_fail(ch, "cannot encode a body chunk");
				return -1;
			}
			*reply_r = (ch->proto & d->nr_bit) == 0;
			ch->waiting = SL_SMFIC_BODY;
			return 1;
		case CP_EOM:
			ch->cp = CP_END;
			e.cmd = SL_SMFIC_BODYEOB;
			if (queue_event(ch, &e) < 0)
				return -1;
			*reply_r = true;
			ch->waiting = SL_SMFIC_BODYEOB;
			return 1;
		default:
			return 0;
		}
	}
}

/* --- modifications ---------------------------------------------------- */

/* No CR; an LF only before the blank of a continuation line. */
static bool
value_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\n') {
			if (s[1] != ' ' && s[1] != '\t')
				return false;
		} else if (((unsigned char)*s < 32 && *s != '\t') ||
		    *s == 127) {
			return false;
		}
	}
	return true;
}

static bool
text_ok(const char *s, bool may_be_empty)
{
	if (*s == '\0' && !may_be_empty)
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return false;
	return true;
}

/* "<a@b>" -> "a@b", allocated. */
static char *
unbracket(const char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
		return sl_xstrndup(s + 1, n - 2);
	return sl_xstrdup(s);
}

/* What action bit a modification needs. */
static uint32_t
edit_action(uint8_t code)
{
	switch (code) {
	case SL_SMFIR_ADDHEADER:
	case SL_SMFIR_INSHEADER:
		return SL_SMFIF_ADDHDRS;
	case SL_SMFIR_CHGHEADER:
		return SL_SMFIF_CHGHDRS;
	case SL_SMFIR_REPLBODY:
		return SL_SMFIF_CHGBODY;
	case SL_SMFIR_ADDRCPT:
		return SL_SMFIF_ADDRCPT;
	case SL_SMFIR_ADDRCPT_PAR:
		return SL_SMFIF_ADDRCPT_PAR;
	case SL_SMFIR_DELRCPT:
		return SL_SMFIF_DELRCPT;
	case SL_SMFIR_CHGFROM:
		return SL_SMFIF_CHGFROM;
	case SL_SMFIR_QUARANTINE:
		return SL_SMFIF_QUARANTINE;
	default:
		return 0;
	}
}

/*
 * Checks and keeps one modification received at end of message.  Returns
 * 0, or -1 after failing the child.
 */
static int
edit_collect(struct child *ch, const struct sl_milter_msg *mm)
{
	uint32_t need = edit_action(mm->code);
	const char *what = sl_milter_reply_name(mm->code);
	struct edit *ed;
	size_t i, n;

	if ((ch->actions & need) == 0) {
		child_fail(ch, "%s without negotiating it", what);
		return -1;
	}
	if (ch->nedits >= MAX_EDITS) {
		child_fail(ch, "more than %d modifications", MAX_EDITS);
		return -1;
	}
	switch (mm->code) {
	case SL_SMFIR_REPLBODY:
		if (ch->body_len + mm->len > REPLBODY_MAX) {
			child_fail(ch, "replacement body over %u bytes",
			    REPLBODY_MAX);
			return -1;
		}
		if (ch->body_alloc - ch->body_len < mm->len) {
			ch->body_alloc = (ch->body_len + mm->len) * 2;
			ch->body = sl_xrealloc(ch->body, ch->body_alloc);
		}
		/* CRLF -> LF: the core keeps LF line ends. */
		for (i = 0, n = ch->body_len; i < mm->len; i++) {
			if (mm->data[i] == '\n' && n > 0 &&
			    ch->body[n - 1] == '\r')
				n--;
			ch->body[n++] = mm->data[i];
		}
		ch->body_len = n;
		ch->body_set = true;
		return 0;
	case SL_SMFIR_ADDHEADER:
	case SL_SMFIR_INSHEADER:
	case SL_SMFIR_CHGHEADER:
		if (!sl_header_name_valid(mm->name) || !value_ok(mm->value)) {
			child_fail(ch,
			    "%s with a malformed header name or "
			    "value (CR, LF or control characters)",
			    what);
			return -1;
		}
		break;
	case SL_SMFIR_ADDRCPT:
	case SL_SMFIR_ADDRCPT_PAR:
	case SL_SMFIR_DELRCPT:
	case SL_SMFIR_CHGFROM:
		if (!text_ok(mm->str, mm->code == SL_SMFIR_CHGFROM) ||
		    (mm->args != NULL && !text_ok(mm->args, true))) {
			child_fail(ch,
			    "%s with a malformed address or "
			    "parameters",
			    what);
			return -1;
		}
		break;
	case SL_SMFIR_QUARANTINE:
		if (!text_ok(mm->str, false)) {
			child_fail(ch, "QUARANTINE with a malformed reason");
			return -1;
		}
		break;
	default:
		break;
	}
	ch->edits =
	    sl_xreallocarray(ch->edits, ch->nedits + 1, sizeof(*ch->edits));
	ed = &ch->edits[ch->nedits++];
	memset(ed, 0, sizeof(*ed));
	ed->code = mm->code;
	ed->index = mm->index;
	switch (mm->code) {
	case SL_SMFIR_ADDHEADER:
	case SL_SMFIR_INSHEADER:
	case SL_SMFIR_CHGHEADER:
		ed->a = sl_xstrdup(mm->name);
		ed->b = sl_xstrdup(mm->value);
		break;
	default:
		ed->a = sl_xstrdup(mm->str);
		ed->b = mm->args != NULL && mm->args[0] != '\0'
		    ? sl_xstrdup(mm->args)
		    : NULL;
		break;
	}
	return 0;
}

/* A header value without the blanks the writer puts after the colon. */
static const char *
skip_blanks(const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	return v;
}

/*
 * Applies what the child asked for, in order, with Postfix's rules
 * (protocol reference 6.2): CHGHEADER counts from 1 (0 means 1) among the
 * headers of that name, an empty value deletes, a missing one is added;
 * INSHEADER counts every header, and behind an MTA (sluice-milterd) that
 * MTA's hidden Received: is position 0.
 */
static void
edits_apply(struct child *ch, struct sl_txn *t)
{
	const char *id = sl_conn_id(ch->conn);
	bool behind_mta = sl_conn_front_end(ch->conn) == SL_FRONT_MILTERD;
	struct edit *ed;
	size_t i, idx, nth;
	char *addr;

	for (i = 0; i < ch->nedits; i++) {
		ed = &ch->edits[i];
		switch (ed->code) {
		case SL_SMFIR_ADDHEADER:
			sl_edit_header_add(t, ed->a, skip_blanks(ed->b));
			break;
		case SL_SMFIR_INSHEADER:
			idx = ed->index;
			if (behind_mta && idx > 0)
				idx--;
			if (idx > sl_txn_header_count(t))
				idx = sl_txn_header_count(t);
			sl_edit_header_insert(t, idx, ed->a,
			    skip_blanks(ed->b));
			break;
		case SL_SMFIR_CHGHEADER:
			nth = ed->index == 0 ? 0 : ed->index - 1;
			if (ed->b[0] == '\0') {
				if (sl_edit_header_delete(t, ed->a, nth) < 0)
					sl_log(LOG_DEBUG, id,
					    "plugin=%s delete of absent header "
					    "%s[%lu] ignored",
					    ch->name, ed->a,
					    (unsigned long)ed->index);
			} else if (sl_edit_header_change(t, ed->a, nth,
			               skip_blanks(ed->b)) < 0) {
				sl_edit_header_add(t, ed->a,
				    skip_blanks(ed->b));
			}
			break;
		case SL_SMFIR_ADDRCPT:
		case SL_SMFIR_ADDRCPT_PAR:
			addr = unbracket(ed->a);
			sl_edit_rcpt_add(t, addr, ed->b);
			free(addr);
			break;
		case SL_SMFIR_DELRCPT:
			addr = unbracket(ed->a);
			if (sl_edit_rcpt_delete(t, addr) < 0)
				sl_log(LOG_NOTICE, id,
				    "plugin=%s milter asked to delete "
				    "recipient <%s>, which the message does "
				    "not have",
				    ch->name, addr);
			free(addr);
			break;
		case SL_SMFIR_CHGFROM:
			addr = unbracket(ed->a);
			sl_edit_sender_change(t, addr, ed->b);
			free(addr);
			break;
		case SL_SMFIR_QUARANTINE:
			sl_edit_quarantine(t, ed->a);
			break;
		default:
			break;
		}
	}
	if (ch->body_set && sl_edit_body_replace(t, ch->body, ch->body_len) < 0)
		sl_log(LOG_ERR, id, "plugin=%s cannot store the new body",
		    ch->name);
	if (ch->nedits > 0 || ch->body_set)
		sl_log(LOG_INFO, id, "plugin=%s milter=%s modifications=%zu%s",
		    ch->name, ch->m->o->socket, ch->nedits,
		    ch->body_set ? " body=replaced" : "");
}

/* --- replies ------------------------------------------------------------ */

/*
 * An SMFIR_REPLYCODE text (checked by the codec) into code, enhanced code
 * and one line of text: the lines' texts joined by a space, "%%" undone.
 */
static void
reply_parse(struct child *ch, const char *s)
{
	const char *p, *end, *q;
	size_t n = 0;
	bool first = true;

	ch->code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	ch->enh[0] = '\0';
	for (p = s; *p != '\0'; p = *end != '\0' ? end + 2 : end) {
		if ((end = strstr(p, "\r\n")) == NULL)
			end = p + strlen(p);
		q = p + 3;
		if (q < end && (*q == ' ' || *q == '-'))
			q++;
		/* an enhanced code: digit.digits.digits then a blank */
		if (q < end && q[0] == s[0] && q + 1 < end && q[1] == '.') {
			const char *r = q + 2;

			while (
			    r < end && ((*r >= '0' && *r <= '9') || *r == '.'))
				r++;
			if (r == end || *r == ' ') {
				if (first)
					snprintf(ch->enh, sizeof(ch->enh),
					    "%.*s", (int)(r - q), q);
				q = r < end ? r + 1 : r;
			}
		}
		if (!first && n + 1 < sizeof(ch->text))
			ch->text[n++] = ' ';
		for (; q < end && n + 1 < sizeof(ch->text); q++) {
			if (q[0] == '%' && q + 1 < end && q[1] == '%')
				q++;
			ch->text[n++] = *q;
		}
		first = false;
	}
	ch->text[n] = '\0';
}

static bool
is_content(uint8_t cmd)
{
	return cmd == SL_SMFIC_HEADER || cmd == SL_SMFIC_EOH ||
	    cmd == SL_SMFIC_BODY || cmd == SL_SMFIC_BODYEOB;
}

/* The child ended its part in the message. */
static void
msg_ended(struct child *ch, bool still_open)
{
	ch->msg_done = true;
	ch->msg_open = still_open;
}

/*
 * A final reply to command cmd.  Returns 1 if it ends the job (verdict
 * set), 0 to go on.
 */
static int
final_reply(struct child *ch, uint8_t cmd, const struct sl_milter_msg *mm)
{
	bool conn_stage = cmd == SL_SMFIC_CONNECT || cmd == SL_SMFIC_HELO;

	switch (mm->code) {
	case SL_SMFIR_CONTINUE:
		if (cmd != SL_SMFIC_BODYEOB)
			return 0;
		edits_apply(ch, ch->txn);
		msg_ended(ch, false);
		set_reply(ch, SL_DECLINED, 0, NULL, NULL);
		return 1;
	case SL_SMFIR_SKIP:
		ch->skip_cmd = cmd;
		if (cmd == SL_SMFIC_BODYEOB) {
			edits_apply(ch, ch->txn);
			msg_ended(ch, false);
			set_reply(ch, SL_DECLINED, 0, NULL, NULL);
			return 1;
		}
		return 0;
	case SL_SMFIR_ACCEPT:
		set_reply(ch, SL_DECLINED, 0, NULL, NULL);
		if (conn_stage) {
			ch->retire = true;
		} else if (cmd == SL_SMFIC_BODYEOB) {
			edits_apply(ch, ch->txn);
			msg_ended(ch, false);
		} else if (cmd != SL_SMFIC_UNKNOWN) {
			msg_ended(ch, false);
		} else {
			return 0;
		}
		return 1;
	case SL_SMFIR_REJECT:
		set_reply(ch, SL_DENY, 0, NULL, NULL);
		break;
	case SL_SMFIR_TEMPFAIL:
		set_reply(ch, SL_DENYSOFT, 0, NULL, NULL);
		break;
	case SL_SMFIR_REPLYCODE:
		reply_parse(ch, mm->str);
		ch->verdict = ch->code == 421 ? SL_DENYSOFT_DISCONNECT
		    : ch->code >= 500         ? SL_DENY
		                              : SL_DENYSOFT;
		break;
	case SL_SMFIR_DISCARD:
		set_reply(ch, SL_DISCARD, 0, NULL, NULL);
		break;
	case SL_SMFIR_SHUTDOWN:
		set_reply(ch, SL_DENYSOFT_DISCONNECT, 421, "4.7.0",
		    "Server closing connection");
		ch->retire = true;
		break;
	default:
		child_fail(ch, "unexpected %s in reply to %s",
		    sl_milter_reply_name(mm->code),
		    sl_milter_command_name(cmd));
		return 1;
	}
	/*
	 * A refusal or discard: at RCPT it concerns that recipient (a discard
	 * the whole message, which stays open until ABORT); at MAIL, DATA and
	 * content it ends the message.
	 */
	if (cmd == SL_SMFIC_CONNECT)
		ch->retire = true;
	else if (cmd == SL_SMFIC_RCPT && ch->verdict == SL_DISCARD)
		msg_ended(ch, true);
	else if (cmd == SL_SMFIC_MAIL || cmd == SL_SMFIC_DATA ||
	    is_content(cmd))
		msg_ended(ch, false);
	sl_log(LOG_INFO, sl_conn_id(ch->conn),
	    "plugin=%s milter=%s event=%s reply=%s%s%s%s", ch->name,
	    ch->m->o->socket, sl_milter_command_name(cmd),
	    sl_milter_reply_name(mm->code),
	    ch->text[0] != '\0' ? " text=\"" : "", ch->text,
	    ch->text[0] != '\0' ? "\"" : "");
	edits_clear(ch);
	return 1;
}

/*
 * Takes the packets read so far.  Returns 1 when the awaited reply came
 * (and the job may go on or has ended: ch->waiting is 0), 0 if more input
 * is needed, -1 after a failure.
 */
static int
take_packets(struct child *ch, int *ended_r)
{
	struct sl_milter_packet pkt;
	struct sl_milter_msg mm;
	const char *err;
	uint8_t cmd = ch->waiting;
	size_t used, off = 0;
	int rc, r = 0;
	int64_t now, cap;
	unsigned int t;

	*ended_r = 0;
	while (ch->waiting != 0) {
		rc = sl_milter_frame(ch->in + off, ch->in_len - off,
		    SL_MILTER_RECV_MAX, &pkt, &used, &err);
		if (rc == 0)
			break;
		if (rc < 0) {
			child_fail(ch, "in reply to %s: %s",
			    sl_milter_command_name(cmd), err);
			return -1;
		}
		memset(&mm, 0, sizeof(mm));
		if (sl_milter_decode_reply(&pkt, &mm, &err) < 0) {
			child_fail(ch, "in reply to %s: 0x%02x (%s): %s",
			    sl_milter_command_name(cmd), pkt.cmd,
			    sl_milter_reply_name(pkt.cmd), err);
			return -1;
		}
		off += used;
		if (cmd == SL_SMFIC_OPTNEG) {
			ch->waiting = 0;
			if (optneg_reply(ch, &mm) < 0)
				return -1;
			r = 1;
			break;
		}
		if (mm.code == SL_SMFIR_PROGRESS) {
			now = sl_now_ms();
			t = cmd == SL_SMFIC_BODYEOB ? ch->m->o->eom_timeout
			                            : ch->m->o->command_timeout;
			cap = ch->wait_start + (int64_t)t * REPLY_CAP_FACTOR;
			ch->deadline = now + t < cap ? now + t : cap;
			continue;
		}
		if (edit_action(mm.code) != 0) {
			if (cmd != SL_SMFIC_BODYEOB) {
				child_fail(ch,
				    "%s in reply to %s (only end "
				    "of message may modify)",
				    sl_milter_reply_name(mm.code),
				    sl_milter_command_name(cmd));
				return -1;
			}
			if (edit_collect(ch, &mm) < 0)
				return -1;
			continue;
		}
		ch->waiting = 0;
		*ended_r = final_reply(ch, cmd, &mm);
		if (ch->state == CS_FAILED)
			return -1;
		r = 1;
	}
	if (off > 0 && ch->in != NULL) {
		memmove(ch->in, ch->in + off, ch->in_len - off);
		ch->in_len -= off;
	}
	return r;
}

/* Reads what is there: 1 read some, 0 nothing yet, -1 failed. */
static int
read_in(struct child *ch)
{
	ssize_t n;

	if (ch->in_alloc - ch->in_len < READ_CHUNK) {
		ch->in_alloc = ch->in_len + READ_CHUNK;
		ch->in = sl_xrealloc(ch->in, ch->in_alloc);
	}
	for (;;) {
		n = recv(ch->fd, ch->in + ch->in_len, ch->in_alloc - ch->in_len,
		    MSG_DONTWAIT);
		if (n > 0) {
			ch->in_len += (size_t)n;
			return 1;
		}
		if (n == 0) {
			child_fail(ch, "connection closed by the milter%s%s",
			    ch->waiting != 0 ? " waiting for the reply to "
			                     : "",
			    ch->waiting != 0
			        ? sl_milter_command_name(ch->waiting)
			        : "");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		child_fail(ch, "read: %s", strerror(errno));
		return -1;
	}
}

/* --- the engine -------------------------------------------------------- */

/* The next event of the job: 1 queued (*reply_r), 0 none left, -1 failed. */
static int
next_event(struct child *ch, bool *reply_r)
{
	struct ev e;
	int rc;

	*reply_r = false;
	if (!ch->conn_sent) {
		memset(&e, 0, sizeof(e));
		e.cmd = SL_SMFIC_CONNECT;
		if ((rc = queue_event(ch, &e)) < 0)
			return -1;
		event_sent(ch, &e);
		*reply_r = rc == 1;
		ch->waiting = SL_SMFIC_CONNECT;
		return 1;
	}
	while (ch->next < ch->nevs) {
		struct ev *ep = &ch->evs[ch->next++];

		/* After accept or a refusal, nothing more of the message. */
		if (ch->msg_done &&
		    (ep->cmd == SL_SMFIC_RCPT || ep->cmd == SL_SMFIC_DATA))
			continue;
		if ((rc = queue_event(ch, ep)) < 0)
			return -1;
		event_sent(ch, ep);
		*reply_r = rc == 1;
		ch->waiting = ep->cmd;
		return 1;
	}
	if (ch->cp != CP_NONE && !ch->msg_done)
		return content_next(ch, reply_r);
	return 0;
}

/* How long a reply to the awaited command may take (progress aside). */
static unsigned int
reply_timeout(const struct child *ch)
{
	return ch->waiting == SL_SMFIC_BODYEOB ? ch->m->o->eom_timeout
	                                       : ch->m->o->command_timeout;
}

static void
arm_read(struct child *ch)
{
	int64_t left = ch->deadline - sl_now_ms();

	if (left < 1)
		left = 1;
	wait_io(ch, SL_IO_READ, (unsigned int)left);
}

/*
 * Runs the job as far as it goes without waiting.  Returns 1 when it
 * ended (ch->verdict and reply set), 0 when it waits for the socket.
 */
static int
advance(struct child *ch)
{
	bool reply;
	int rc, ended;

	for (;;) {
		if (ch->state == CS_FAILED)
			return 1;
		if (ch->io != NULL)
			return 0;
		if (ch->state == CS_NEW) {
			rc = start_connect(ch);
			if (rc < 0) {
				if (ch->state != CS_FAILED)
					connect_failed(ch, strerror(errno));
				return 1;
			}
			if (rc == 0)
				return 0;
			if (send_optneg(ch) < 0)
				return 1;
			continue;
		}
		if (ch->waiting != 0) {
			/* Everything before the reply must be out first. */
			if ((rc = flush_out(ch)) <= 0)
				return rc < 0 ? 1 : 0;
			rc = take_packets(ch, &ended);
			if (rc < 0)
				return 1;
			if (rc == 0) {
				if (read_in(ch) < 0)
					return 1;
				if (ch->in_len > 0 &&
				    take_packets(ch, &ended) != 0) {
					if (ch->state == CS_FAILED || ended)
						return 1;
					continue;
				}
				if (sl_now_ms() >= ch->deadline) {
					child_fail(ch,
					    "no reply to %s within %u ms",
					    sl_milter_command_name(ch->waiting),
					    reply_timeout(ch));
					return 1;
				}
				arm_read(ch);
				return 0;
			}
			if (ended)
				return 1;
			continue;
		}
		rc = next_event(ch, &reply);
		if (rc < 0)
			return 1;
		if (rc == 0) {
			if ((rc = flush_out(ch)) <= 0)
				return rc < 0 ? 1 : 0;
			return 1; /* the job is done: DECLINED */
		}
		if (!reply) {
			ch->waiting = 0;
			if (ch->out.len >= FLUSH_AT &&
			    (rc = flush_out(ch)) <= 0)
				return rc < 0 ? 1 : 0;
			continue;
		}
		ch->wait_start = sl_now_ms();
		ch->deadline = ch->wait_start + reply_timeout(ch);
	}
}

/* The job ended: leave the child ready for the next one. */
static void
job_end(struct child *ch)
{
	if (ch->retire && ch->state == CS_READY) {
		child_close(ch, true);
		ch->state = CS_DONE;
		sl_log(LOG_DEBUG, sl_conn_id(ch->conn),
		    "plugin=%s milter=%s done for this session", ch->name,
		    ch->m->o->socket);
	}
	ch->retire = false;
	job_clear(ch);
}

static void
io_cb(void *arg, unsigned int what)
{
	struct child *ch = arg;
	enum sl_verdict v;
	socklen_t len;
	int err = 0;

	ch->io = NULL;
	if (ch->io_connect) {
		ch->io_connect = false;
		len = sizeof(err);
		if ((what & SL_IO_TIMEOUT) != 0)
			connect_failed(ch, "timed out");
		else if (getsockopt(ch->fd, SOL_SOCKET, SO_ERROR, &err, &len) <
		        0 ||
		    err != 0)
			connect_failed(ch, strerror(err != 0 ? err : errno));
		else
			send_optneg(ch);
	} else if ((what & SL_IO_TIMEOUT) != 0) {
		if (ch->waiting != 0)
			child_fail(ch, "no reply to %s within %u ms",
			    sl_milter_command_name(ch->waiting),
			    reply_timeout(ch));
		else
			child_fail(ch, "write timed out after %u ms",
			    ch->last_wait);
	}
	if (!advance(ch))
		return;
	v = ch->verdict;
	if (ch->verdict != SL_DECLINED || ch->code != 0 || ch->text[0] != '\0')
		sl_async_reply(ch->async, ch->code,
		    ch->enh[0] != '\0' ? ch->enh : NULL, "%s", ch->text);
	job_end(ch);
	sl_async_done(&ch->async, v);
}

/*
 * Starts the job queued in ch: returns its verdict, or SL_PENDING after
 * suspending the hook.
 */
static enum sl_verdict
job_run(struct child *ch, struct sl_hookctx *ctx)
{
	enum sl_verdict v;

	ch->busy = true;
	set_reply(ch, SL_DECLINED, 0, NULL, NULL);
	if (!advance(ch)) {
		ch->async = sl_async_begin(ctx);
		sl_async_timeout(ch->async, ch->last_wait + BACKSTOP_MS);
		return SL_PENDING;
	}
	v = ch->verdict;
	if (v != SL_DECLINED || ch->code != 0 || ch->text[0] != '\0')
		sl_hook_reply(ctx, ch->code,
		    ch->enh[0] != '\0' ? ch->enh : NULL, "%s", ch->text);
	job_end(ch);
	return v;
}

/*
 * What every hook does first.  Returns NULL with *v_r set when the child
 * has nothing to do with this event.
 */
static struct child *
hook_start(void *state, struct sl_hookctx *ctx, enum sl_verdict *v_r)
{
	struct milter *m = state;
	struct child *ch = child_get(m, ctx);

	*v_r = SL_DECLINED;
	if (ch->busy) {
		/* The core gave up waiting: the stream is out of step. */
		child_fail(ch, "still busy with the previous event");
		job_clear(ch);
		sl_async_done(&ch->async, SL_ERROR);
	}
	switch (ch->state) {
	case CS_DONE:
		return NULL;
	case CS_FAILED:
		default_verdict(ch);
		*v_r = ch->verdict;
		if (*v_r != SL_DECLINED)
			sl_hook_reply(ctx, ch->code, ch->enh, "%s", ch->text);
		return NULL;
	default:
		break;
	}
	return ch;
}

/*
 * Before an event of transaction t: what the child missed of it (a
 * plugin before this one answered OK at MAIL or RCPT, so the chain
 * stopped there) is sent first, and a message of an older transaction is
 * aborted.  Nothing, if the child already finished with t.
 */
static void
need_message(struct child *ch, struct sl_txn *t, bool with_rcpts)
{
	bool same;
	size_t i;

	/* MAIL went out before the core made the transaction: adopt it. */
	if ((ch->msg_open || ch->msg_done) && ch->msg_txn[0] == '\0')
		snprintf(ch->msg_txn, sizeof(ch->msg_txn), "%s", sl_txn_id(t));
	same = strcmp(ch->msg_txn, sl_txn_id(t)) == 0;

	if (same && ch->msg_done)
		return;
	if (same && ch->msg_open) {
		if (with_rcpts && ch->rcpts_sent == 0)
			for (i = 0; i < sl_txn_rcpt_count(t); i++)
				ev_add(ch, SL_SMFIC_RCPT, sl_txn_rcpt(t, i));
		return;
	}
	if (ch->msg_open)
		ev_add(ch, SL_SMFIC_ABORT, NULL);
	if (sl_txn_sender(t) == NULL)
		return;
	ch->msg_done = false;
	ev_add(ch, SL_SMFIC_MAIL, sl_txn_sender(t));
	if (with_rcpts)
		for (i = 0; i < sl_txn_rcpt_count(t); i++)
			ev_add(ch, SL_SMFIC_RCPT, sl_txn_rcpt(t, i));
}

/* --- hooks ------------------------------------------------------------- */

static enum sl_verdict
hook_connect(void *state, struct sl_hookctx *ctx)
{
	enum sl_verdict v;
	struct child *ch = hook_start(state, ctx, &v);

	if (ch == NULL)
		return v;
	return job_run(ch, ctx);
}

static enum sl_verdict
hook_helo(void *state, struct sl_hookctx *ctx)
{
	enum sl_verdict v;
	struct child *ch = hook_start(state, ctx, &v);

	if (ch == NULL)
		return v;
	if (ch->msg_open)
		ev_add(ch, SL_SMFIC_ABORT, NULL);
	ev_add(ch, SL_SMFIC_HELO, sl_hook_args(ctx)->arg);
	return job_run(ch, ctx);
}

static enum sl_verdict
hook_mail(void *state, struct sl_hookctx *ctx)
{
	const struct sl_hookargs *a = sl_hook_args(ctx);
	enum sl_verdict v;
	struct child *ch = hook_start(state, ctx, &v);
	struct ev *e;

	if (ch == NULL)
		return v;
	if (ch->msg_open)
		ev_add(ch, SL_SMFIC_ABORT, NULL);
	ch->msg_done = false;
	e = ev_add(ch, SL_SMFIC_MAIL, a->arg);
	ev_params(e, a->params, a->nparams);
	ch->txn = sl_hook_txn(ctx);
	return job_run(ch, ctx);
}

/*
 * rcpt, data and data_post: the child, with what it missed of the message
 * queued; NULL with *v_r set when it has nothing to do with this event.
 */
static struct child *
msg_hook_start(void *state, struct sl_hookctx *ctx, bool with_rcpts,
    enum sl_verdict *v_r)
{
	struct sl_txn *t = sl_hook_txn(ctx);
	struct child *ch = hook_start(state, ctx, v_r);

	if (ch == NULL || t == NULL)
		return NULL;
	ch->txn = t;
	need_message(ch, t, with_rcpts);
	if (ch->msg_done && ch->nevs == 0)
		return NULL; /* the child ended its part in this message */
	return ch;
}

static enum sl_verdict
hook_rcpt(void *state, struct sl_hookctx *ctx)
{
	const struct sl_hookargs *a = sl_hook_args(ctx);
	enum sl_verdict v;
	struct child *ch = msg_hook_start(state, ctx, false, &v);
	struct ev *e;

	if (ch == NULL)
		return v;
	e = ev_add(ch, SL_SMFIC_RCPT, a->arg);
	ev_params(e, a->params, a->nparams);
	return job_run(ch, ctx);
}

static enum sl_verdict
hook_data(void *state, struct sl_hookctx *ctx)
{
	enum sl_verdict v;
	struct child *ch = msg_hook_start(state, ctx, true, &v);

	if (ch == NULL)
		return v;
	ev_add(ch, SL_SMFIC_DATA, NULL);
	return job_run(ch, ctx);
}

static enum sl_verdict
hook_data_post(void *state, struct sl_hookctx *ctx)
{
	enum sl_verdict v;
	struct child *ch = msg_hook_start(state, ctx, true, &v);

	if (ch == NULL)
		return v;
	ch->cp = CP_HEADERS;
	ch->hdr_i = ch->body_off = 0;
	ch->body_cr = false;
	return job_run(ch, ctx);
}

static enum sl_verdict
hook_unrecognized(void *state, struct sl_hookctx *ctx)
{
	enum sl_verdict v;
	struct child *ch = hook_start(state, ctx, &v);

	if (ch == NULL)
		return v;
	ev_add(ch, SL_SMFIC_UNKNOWN, sl_hook_args(ctx)->arg);
	return job_run(ch, ctx);
}

/* RSET (or ABORT from the MTA): the child's message ends unfinished. */
static enum sl_verdict
hook_reset(void *state, struct sl_hookctx *ctx)
{
	struct child *ch = sl_conn_data_get(sl_hook_conn(ctx), state);

	if (ch == NULL || ch->state != CS_READY || ch->busy || !ch->msg_open)
		return SL_DECLINED;
	sl_milter_put_empty(&ch->out, SL_SMFIC_ABORT);
	ch->msg_open = false;
	ch->msg_done = false;
	write_last(ch); /* the rest leaves with the next event */
	return SL_DECLINED;
}

static enum sl_verdict
hook_disconnect(void *state, struct sl_hookctx *ctx)
{
	struct child *ch = sl_conn_data_get(sl_hook_conn(ctx), state);

	if (ch != NULL && ch->state == CS_READY && !ch->busy) {
		child_close(ch, true);
		ch->state = CS_DONE;
	}
	return SL_DECLINED;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "milter",
	.conf = milter_conf,
	.state_size = sizeof(struct milter_opts),
	.init = milter_init,
	.fini = milter_fini,
	.hooks = {
		[SL_HOOK_CONNECT] = hook_connect,
		[SL_HOOK_HELO] = hook_helo,
		[SL_HOOK_MAIL] = hook_mail,
		[SL_HOOK_RCPT] = hook_rcpt,
		[SL_HOOK_DATA] = hook_data,
		[SL_HOOK_DATA_POST] = hook_data_post,
		[SL_HOOK_UNRECOGNIZED] = hook_unrecognized,
		[SL_HOOK_RESET] = hook_reset,
		[SL_HOOK_DISCONNECT] = hook_disconnect,
	},
	.edits = SL_EDIT_ALL,
};
