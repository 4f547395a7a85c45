/*
 * smtpclient.c - the asynchronous SMTP / LMTP client of the queue plugins
 * (see smtpclient.h; the reply policy is documented in sluice-plugins(7)).
 *
 * One session per message, a state machine driven by bufferevent
 * callbacks on the loop thread of the client's connection; a STARTTLS
 * session continues on a bufferevent_openssl filter.  The session hangs
 * off the transaction (sl_txn_data_set): when the transaction goes first,
 * the session is dropped, and a message whose final dot never went out is
 * not delivered.  Only one timer runs, re-armed for each step.  Nothing a
 * next hop sends can crash us or make us accept mail it did not take:
 * every reply is parsed strictly and anything unexpected tempfails.
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
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core.h"
#include "log.h"
#include "smtpparse.h"
#include "xmalloc.h"
#include "smtpclient.h"

#define ADDRS_MAX 8            /* addresses of host= tried in turn */
#define BACKSTOP_MS 5000       /* the core's timeout, beyond ours */
#define BACKSTOP_EVERY_MS 1000 /* how often progress moves the backstop */
#define QUIT_TIMEOUT_MS 10000  /* the reply to QUIT, at most */
#define READ_HWM (64 * 1024)
#define WRITE_LOWAT (16 * 1024) /* refill the message below this */
#define FILL_TARGET (128 * 1024)
#define READ_CHUNK (64 * 1024)
#define XFORWARD_LINE_MAX 500 /* Postfix reads at least 512 */
#define CMD_MAX 2048
#define XPIECE_MAX 600 /* one " NAME=xtext" of XCLIENT / XFORWARD */
#define TEXT_MAX 512   /* the reply to our client */

const char *const sl_smtpclient_tls_choices[] = { "no", "may", "require",
	NULL };

/* XCLIENT / XFORWARD attributes, as bits of what the next hop offers. */
enum {
	XA_NAME = 1 << 0,
	XA_ADDR = 1 << 1,
	XA_PORT = 1 << 2,
	XA_PROTO = 1 << 3,
	XA_HELO = 1 << 4,
	XA_LOGIN = 1 << 5,
	XA_IDENT = 1 << 6,
	XA_SOURCE = 1 << 7,
};

static const struct {
	const char *name;
	unsigned int bit;
} xattr_names[] = {
	{ "NAME", XA_NAME },
	{ "ADDR", XA_ADDR },
	{ "PORT", XA_PORT },
	{ "PROTO", XA_PROTO },
	{ "HELO", XA_HELO },
	{ "LOGIN", XA_LOGIN },
	{ "IDENT", XA_IDENT },
	{ "SOURCE", XA_SOURCE },
};

/*
 * Reference-counted: a session may outlive its connection (and so the
 * runtime whose plugin made this), when another plugin's worker job keeps
 * the transaction alive.
 */
struct sl_smtpclient_conf {
	atomic_uint refs;
	struct sl_smtpclient_opts o; /* a copy: helo owned, no other string */
	bool lmtp;
	bool is_unix;
	char host[256]; /* host= without the port, or the socket path */
	char port[8];
	char tls_name[256]; /* the name a verified certificate must carry */
	struct sockaddr_storage addrs[ADDRS_MAX];
	socklen_t addrlens[ADDRS_MAX];
	size_t naddrs;
	SSL_CTX *tls; /* NULL with starttls=no */
};

enum state {
	ST_CONNECT,
	ST_GREETING,
	ST_EHLO,
	ST_STARTTLS,
	ST_HANDSHAKE,
	ST_XCLIENT,
	ST_XFORWARD,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_BODY, /* writing the message */
	ST_DOT,  /* waiting for the reply(s) to its end */
	ST_QUIT,
	ST_DONE,
};

static const char *const state_names[] = { "connect", "greeting", "EHLO",
	"STARTTLS", "TLS handshake", "XCLIENT", "XFORWARD", "MAIL FROM",
	"RCPT TO", "DATA", "message", "end of data", "QUIT", "done" };

/* One message's session with the next hop. */
struct sl_smtpclient {
	struct sl_smtpclient_conf *cf; /* a reference */
	struct event_base *base;
	struct sl_txn *txn;
	struct sl_async *async;
	char conn_id[32];
	char txn_id[48];
	char plugin[64];
	char *helo; /* ours */
	/* the client, for XCLIENT / XFORWARD; NULL = unavailable */
	char *c_addr, *c_name, *c_helo, *c_login;
	unsigned int c_port;
	bool c_esmtp;

	enum state st;
	struct bufferevent *bev;
	struct event *timer;
	unsigned int wait_ms; /* the step's timeout */
	int64_t t0_ms, backstop_ms;
	size_t ai;       /* the address tried */
	char relay[320]; /* host[ip]:port, for logs */
	struct sl_smtp_reply reply;

	/* what the next hop offers (from its last EHLO reply) */
	bool cap_pipelining, cap_8bitmime, cap_smtputf8, cap_size;
	bool cap_starttls;
	unsigned int cap_xclient, cap_xforward;
	bool tls_on, tls_tried, xclient_tried;
	char tls_info[128];
	const char *forward; /* "xclient", "xforward" or "none" */
	char **xf_cmds;      /* XFORWARD lines still to send */
	size_t nxf, xf_i;

	/* the transaction */
	size_t nrcpts;
	bool pipelined;
	size_t rcpt_sent, rcpt_got, end_got;
	struct sl_smtp_reply mail_reply;
	struct sl_smtp_reply *rcpt_replies;
	struct sl_smtp_reply *end_replies; /* LMTP: one per recipient */
	struct sl_txn_msgpos pos;
	struct sl_smtp_dotstuff ds;

	/* the outcome */
	enum sl_verdict v;
	int code;
	char enh[16];
	char text[TEXT_MAX];
	char nexthop[TEXT_MAX]; /* the decisive reply, for the log */
	char error[TEXT_MAX];   /* a local reason, for the log */
};

/* --- replies -------------------------------------------------------------- */

void
sl_smtp_reply_reset(struct sl_smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Digits at s (at most max), returns the count. */
static size_t
digits(const char *s, size_t n, size_t max)
{
	size_t i;

	for (i = 0; i < n && i < max && is_digit(s[i]); i++)
		continue;
	return i;
}

/*
 * An enhanced status code of class cls at the start of s (RFC 3463 2:
 * class "." 1*3digit "." 1*3digit), followed by SP or the end.  Returns
 * its length, or 0.
 */
static size_t
enh_len(const char *s, size_t n, int cls)
{
	size_t i = 2, d;

	if (n < 5 || s[0] != '0' + cls || s[1] != '.')
		return 0;
	if ((d = digits(s + i, n - i, 3)) == 0 || i + d >= n || s[i + d] != '.')
		return 0;
	i += d + 1;
	if ((d = digits(s + i, n - i, 3)) == 0)
		return 0;
	i += d;
	return i == n || s[i] == ' ' ? i : 0;
}

/* Appends one line's text to r->text: printable ASCII only. */
static void
text_append(struct sl_smtp_reply *r, const char *s, size_t n)
{
	size_t o = strlen(r->text), i;
	unsigned char c;

	if (o > 0 && n > 0 && o + 1 < sizeof(r->text))
		r->text[o++] = ' ';
	for (i = 0; i < n && o + 1 < sizeof(r->text); i++) {
		c = (unsigned char)s[i];
		r->text[o++] = c == '\t' ? ' ' : (c < 32 || c > 126) ? '?' : c;
	}
	r->text[o] = '\0';
}

int
sl_smtp_reply_line(struct sl_smtp_reply *r, const char *line, size_t len,
    const char **text_r, size_t *text_len_r, const char **error_r)
{
	const char *text;
	size_t i, tlen, e;
	int code;

	if (r->done)
		sl_smtp_reply_reset(r);
	if (len > SL_SMTP_REPLY_LINE_MAX) {
		*error_r = "reply line too long";
		return -1;
	}
	if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
	    !is_digit(line[2])) {
		*error_r = "reply without a three-digit code";
		return -1;
	}
	if (line[0] < '2' || line[0] > '5' || line[1] > '5') {
		*error_r = "reply code out of range";
		return -1;
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-') {
		*error_r = "no space or '-' after the reply code";
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code) {
		*error_r = "lines of one reply with different codes";
		return -1;
	}
	if (r->nlines >= SL_SMTP_REPLY_LINES_MAX) {
		*error_r = "too many reply lines";
		return -1;
	}
	for (i = 3; i < len; i++) {
		if (((unsigned char)line[i] < 32 && line[i] != '\t') ||
		    line[i] == 127) {
			*error_r = "control character in a reply";
			return -1;
		}
	}
	r->code = code;
	r->nlines++;
	text = len > 4 ? line + 4 : line + len;
	tlen = len > 4 ? len - 4 : 0;
	if (text_r != NULL)
		*text_r = text;
	if (text_len_r != NULL)
		*text_len_r = tlen;
	/* The enhanced code: the first line's, repeated on the others. */
	e = enh_len(text, tlen, code / 100);
	if (e > 0 && r->nlines == 1)
		snprintf(r->enh, sizeof(r->enh), "%.*s", (int)e, text);
	if (e > 0 && strlen(r->enh) == e && memcmp(r->enh, text, e) == 0) {
		text += e;
		tlen -= e;
		while (tlen > 0 && *text == ' ') {
			text++;
			tlen--;
		}
	}
	text_append(r, text, tlen);
	if (len == 3 || line[3] == ' ') {
		r->done = true;
		return 1;
	}
	return 0;
}

/* "550 5.1.1 text" */
static void
reply_format(const struct sl_smtp_reply *r, char *buf, size_t size)
{
	snprintf(buf, size, "%d%s%s%s%s", r->code, r->enh[0] != '\0' ? " " : "",
	    r->enh, r->text[0] != '\0' ? " " : "", r->text);
}

/* --- the message ---------------------------------------------------------- */

void
sl_smtp_dotstuff_init(struct sl_smtp_dotstuff *d)
{
	d->bol = true;
	d->cr = false;
}

void
sl_smtp_dotstuff_add(struct sl_smtp_dotstuff *d, struct evbuffer *out,
    const uint8_t *in, size_t n)
{
	uint8_t buf[8192];
	size_t i, o = 0;
	uint8_t c;

	for (i = 0; i < n; i++) {
		/* room for the worst case of one byte: "\r\n" ".." */
		if (o + 4 > sizeof(buf)) {
			evbuffer_add(out, buf, o);
			o = 0;
		}
		c = in[i];
		if (d->cr) {
			/* CRLF, or a bare CR: either way a line end */
			d->cr = false;
			buf[o++] = '\r';
			buf[o++] = '\n';
			d->bol = true;
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			d->cr = true;
			continue;
		}
		if (c == '\n') {
			buf[o++] = '\r';
			buf[o++] = '\n';
			d->bol = true;
			continue;
		}
		if (d->bol && c == '.')
			buf[o++] = '.';
		buf[o++] = c;
		d->bol = false;
	}
	if (o > 0)
		evbuffer_add(out, buf, o);
}

void
sl_smtp_dotstuff_end(struct sl_smtp_dotstuff *d, struct evbuffer *out)
{
	if (d->cr || !d->bol)
		evbuffer_add(out, "\r\n", 2);
	d->cr = false;
	d->bol = true;
	evbuffer_add(out, ".\r\n", 3);
}

int
sl_xtext_encode(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	unsigned char c;

	for (; *in != '\0'; in++) {
		c = (unsigned char)*in;
		if (c >= '!' && c <= '~' && c != '+' && c != '=') {
			if (o + 1 >= size)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= size)
				return -1;
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= size)
		return -1;
	out[o] = '\0';
	return 0;
}

/* --- the verdict ---------------------------------------------------------- */

enum sl_verdict
sl_smtpclient_map(const struct sl_smtp_reply *replies, size_t n, bool lmtp_end,
    size_t *first_r, bool *mixed_r)
{
	size_t i, nok = 0, first_temp = n, first_perm = n;

	for (i = 0; i < n; i++) {
		if (replies[i].code / 100 == 2)
			nok++;
		else if (replies[i].code / 100 == 5) {
			if (first_perm == n)
				first_perm = i;
		} else if (first_temp == n)
			first_temp = i; /* 4xx (anything else counts as one) */
	}
	*first_r = 0;
	*mixed_r = false;
	if (nok == n)
		return SL_OK;
	*mixed_r = lmtp_end && nok > 0;
	if (first_temp < n) {
		*first_r = first_temp;
		return SL_DENYSOFT;
	}
	*first_r = first_perm;
	return SL_DENY;
}

/* --- configuration -------------------------------------------------------- */

/* init runs on the main thread only: one buffer will do. */
static char conf_error[512];

static int conf_fail(const char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
conf_fail(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(conf_error, sizeof(conf_error), fmt, ap);
	va_end(ap);
	*error_r = conf_error;
	return -1;
}

/* host=: "unix:/path", "[v6]:port", "host:port" or "host". */
static int
conf_host(struct sl_smtpclient_conf *cf, const char *spec, const char **error_r)
{
	struct sockaddr_un *sun;
	struct addrinfo hints, *res, *ai;
	const char *colon, *host, *port;
	size_t hlen;
	char *end;
	unsigned long p;
	int rc;

	if (strncmp(spec, "unix:", 5) == 0) {
		sun = (struct sockaddr_un *)&cf->addrs[0];
		if (spec[5] != '/')
			return conf_fail(error_r,
			    "host: unix: needs an absolute path");
		if (strlen(spec + 5) >= sizeof(sun->sun_path))
			return conf_fail(error_r, "host: the path is too long");
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, spec + 5, strlen(spec + 5) + 1);
		cf->addrlens[0] = sizeof(*sun);
		cf->naddrs = 1;
		cf->is_unix = true;
		snprintf(cf->host, sizeof(cf->host), "%s", spec + 5);
		return 0;
	}
	if (spec[0] == '[') {
		host = spec + 1;
		if ((end = strchr(spec, ']')) == NULL)
			return conf_fail(error_r, "host: no ']' after '['");
		hlen = (size_t)(end - host);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return conf_fail(error_r,
			    "host: expected ':PORT' after ']'");
	} else {
		host = spec;
		colon = strchr(spec, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return conf_fail(error_r,
			    "host: an IPv6 address goes in brackets: "
			    "[ADDRESS]:PORT");
		hlen = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
	}
	if (hlen == 0 || hlen >= sizeof(cf->host))
		return conf_fail(error_r, "host: no host name or address");
	snprintf(cf->host, sizeof(cf->host), "%.*s", (int)hlen, host);
	port = colon != NULL ? colon + 1 : (cf->lmtp ? "24" : "25");
	errno = 0;
	p = strtoul(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno != 0 || p == 0 || p > 65535)
		return conf_fail(error_r, "host: bad port \"%s\"", port);
	snprintf(cf->port, sizeof(cf->port), "%lu", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(cf->host, cf->port, &hints, &res);
	if (rc != 0)
		return conf_fail(error_r, "host: cannot resolve %s: %s",
		    cf->host, gai_strerror(rc));
	for (ai = res; ai != NULL && cf->naddrs < ADDRS_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(cf->addrs[0]))
			continue;
		memcpy(&cf->addrs[cf->naddrs], ai->ai_addr, ai->ai_addrlen);
		cf->addrlens[cf->naddrs++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (cf->naddrs == 0)
		return conf_fail(error_r, "host: no address for %s", cf->host);
	return 0;
}

static int
conf_tls(struct sl_smtpclient_conf *cf, const struct sl_smtpclient_opts *o,
    const char **error_r)
{
	unsigned long e;
	char ebuf[256];

	if (o->starttls == SL_SMTPCLIENT_TLS_NO) {
		if (o->tls_verify || o->tls_ca != NULL || o->tls_name != NULL)
			return conf_fail(error_r,
			    "tls_verify, tls_ca and tls_name need "
			    "starttls=may or starttls=require");
		return 0;
	}
	if (!o->tls_verify && (o->tls_ca != NULL || o->tls_name != NULL))
		return conf_fail(error_r,
		    "tls_ca and tls_name need tls_verify=yes");
	snprintf(cf->tls_name, sizeof(cf->tls_name), "%s",
	    o->tls_name != NULL ? o->tls_name : cf->host);
	if (o->tls_verify && cf->is_unix && o->tls_name == NULL)
		return conf_fail(error_r,
		    "tls_verify=yes over a unix socket needs tls_name=");
	cf->tls = SSL_CTX_new(TLS_client_method());
	if (cf->tls == NULL)
		return conf_fail(error_r, "cannot make a TLS context");
	SSL_CTX_set_mode(cf->tls, SSL_MODE_RELEASE_BUFFERS);
	if (!o->tls_verify) {
		SSL_CTX_set_verify(cf->tls, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	SSL_CTX_set_verify(cf->tls, SSL_VERIFY_PEER, NULL);
	if (o->tls_ca != NULL
	        ? SSL_CTX_load_verify_locations(cf->tls, o->tls_ca, NULL) != 1
	        : SSL_CTX_set_default_verify_paths(cf->tls) != 1) {
		e = ERR_get_error();
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		ERR_clear_error();
		return conf_fail(error_r, "tls_ca: cannot load %s: %s",
		    o->tls_ca != NULL ? o->tls_ca : "the default CA paths",
		    ebuf);
	}
	return 0;
}

struct sl_smtpclient_conf *
sl_smtpclient_conf_new(const struct sl_smtpclient_opts *o, bool lmtp,
    const char **error_r)
{
	struct sl_smtpclient_conf *cf;

	if (o->host == NULL || o->host[0] == '\0') {
		*error_r = "host= is required (HOST:PORT, [IPv6]:PORT or "
		           "unix:/path)";
		return NULL;
	}
	if (o->helo != NULL && !sl_smtp_helo_valid(o->helo)) {
		*error_r = "helo: not a domain name or address literal";
		return NULL;
	}
	cf = sl_xcalloc(1, sizeof(*cf));
	atomic_init(&cf->refs, 1);
	cf->o = *o;
	cf->o.host = cf->o.tls_ca = cf->o.tls_name = NULL;
	cf->o.helo = o->helo != NULL ? sl_xstrdup(o->helo) : NULL;
	cf->lmtp = lmtp;
	if (conf_host(cf, o->host, error_r) == -1 ||
	    conf_tls(cf, o, error_r) == -1) {
		sl_smtpclient_conf_free(&cf);
		return NULL;
	}
	return cf;
}

void
sl_smtpclient_conf_free(struct sl_smtpclient_conf **cfp)
{
	struct sl_smtpclient_conf *cf = *cfp;

	if (cf == NULL)
		return;
	*cfp = NULL;
	if (atomic_fetch_sub(&cf->refs, 1) != 1)
		return; /* a session still has it */
	SSL_CTX_free(cf->tls);
	free(cf->o.helo);
	free(cf);
}

/* --- the session: plumbing ------------------------------------------------ */

#define TEXT_UNREACHABLE "Next hop unreachable, try again later"
#define TEXT_TIMEOUT "Next hop timed out, try again later"
#define TEXT_LOST "Lost connection with the next hop, try again later"
#define TEXT_PROTOCOL "Next hop protocol error, try again later"
#define TEXT_REFUSED "Next hop refused the session, try again later"
#define TEXT_TLS "TLS with the next hop failed, try again later"

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void try_connect(struct sl_smtpclient *d);

static void __attribute__((format(printf, 3, 4)))
dlog(const struct sl_smtpclient *d, int priority, const char *fmt, ...)
{
	char buf[1536];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sl_log(priority, d->conn_id, "plugin=%s txn=%s %s", d->plugin,
	    d->txn_id, buf);
}

/* At most size-1 bytes of s[0..n) for a log line, printable ASCII only. */
static const char *
printable(const char *s, size_t n, char *buf, size_t size)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < size; i++)
		buf[o++] = (unsigned char)s[i] >= 32 &&
		        (unsigned char)s[i] < 127 && s[i] != '"'
		    ? s[i]
		    : '?';
	buf[o] = '\0';
	return buf;
}

/*
 * Arms the step's timer, and moves the core's timeout (only a backstop)
 * beyond it when it would come too soon: at most every BACKSTOP_MS / 2
 * while the message makes progress.
 */
static void
arm(struct sl_smtpclient *d, unsigned int ms)
{
	struct timeval tv = sl_timeval_ms(ms);
	int64_t need;

	d->wait_ms = ms;
	evtimer_add(d->timer, &tv);
	if (d->async == NULL)
		return;
	need = sl_now_ms() + ms + BACKSTOP_MS / 2;
	if (need <= d->backstop_ms)
		return;
	sl_async_timeout(d->async, ms + BACKSTOP_MS);
	d->backstop_ms = need + BACKSTOP_MS / 2;
}

static void
close_bev(struct sl_smtpclient *d)
{
	if (d->bev != NULL) {
		bufferevent_free(d->bev);
		d->bev = NULL;
	}
}

static void
setup_bev(struct sl_smtpclient *d)
{
	bufferevent_setcb(d->bev, read_cb, write_cb, event_cb, d);
	bufferevent_setwatermark(d->bev, EV_READ, 0, READ_HWM);
	bufferevent_setwatermark(d->bev, EV_WRITE, WRITE_LOWAT, 0);
	bufferevent_enable(d->bev, EV_READ | EV_WRITE);
}

/* The session is over: one log line, then the verdict to the session. */
static void
finish(struct sl_smtpclient *d)
{
	int priority;

	close_bev(d);
	evtimer_del(d->timer);
	d->st = ST_DONE;
	priority = d->error[0] != '\0' ? LOG_WARNING
	    : d->v == SL_OK            ? LOG_INFO
	                               : LOG_NOTICE;
	dlog(d, priority,
	    "relay=%s tls=%s forward=%s rcpts=%zu verdict=%s "
	    "reply=\"%d %s %s\"%s%s%s%s%s%s duration=%lldms",
	    d->relay, d->tls_info, d->forward, d->nrcpts, sl_verdict_name(d->v),
	    d->code, d->enh, d->text,
	    d->nexthop[0] != '\0' ? " nexthop=\"" : "", d->nexthop,
	    d->nexthop[0] != '\0' ? "\"" : "",
	    d->error[0] != '\0' ? " error=\"" : "", d->error,
	    d->error[0] != '\0' ? "\"" : "",
	    (long long)(sl_now_ms() - d->t0_ms));
	if (d->async != NULL) {
		sl_async_reply(d->async, d->code, d->enh, "%s", d->text);
		sl_async_done(&d->async, d->v);
	}
}

/*
 * The session failed on our side of the reply policy: 451 with enh and a
 * short text for the client, the details (fmt) for the log.
 */
static void fail(struct sl_smtpclient *d, const char *enh, const char *text,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
fail(struct sl_smtpclient *d, const char *enh, const char *text,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
	d->v = SL_DENYSOFT;
	d->code = 451;
	snprintf(d->enh, sizeof(d->enh), "%s", enh);
	snprintf(d->text, sizeof(d->text), "%s", text);
	finish(d);
}

/* The next hop refused the session (greeting, EHLO, XCLIENT 421). */
static void
session_refused(struct sl_smtpclient *d, const char *what)
{
	char r[TEXT_MAX];

	reply_format(&d->reply, r, sizeof(r));
	snprintf(d->nexthop, sizeof(d->nexthop), "%s", r);
	fail(d, "4.4.0", TEXT_REFUSED, "%s refused by the next hop", what);
}

static void
unexpected_reply(struct sl_smtpclient *d)
{
	char r[TEXT_MAX];

	reply_format(&d->reply, r, sizeof(r));
	fail(d, "4.4.0", TEXT_PROTOCOL, "unexpected reply to %s: '%s'",
	    state_names[d->st], r);
}

/* Queues one command line; CRLF is added. */
static int __attribute__((format(printf, 2, 3)))
send_line(struct sl_smtpclient *d, const char *fmt, ...)
{
	char line[CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		fail(d, "4.3.0", "Local error forwarding the message",
		    "command longer than %d bytes", CMD_MAX - 2);
		return -1;
	}
	memcpy(line + n, "\r\n", 2);
	evbuffer_add(bufferevent_get_output(d->bev), line, (size_t)n + 2);
	return 0;
}

static void
quit(struct sl_smtpclient *d)
{
	unsigned int ms = d->cf->o.command_timeout_ms;

	if (send_line(d, "QUIT") == -1)
		return;
	d->st = ST_QUIT;
	arm(d, ms < QUIT_TIMEOUT_MS ? ms : QUIT_TIMEOUT_MS);
}

/* --- the outcome ---------------------------------------------------------- */

/* 250 for the client, naming the next hop's reply. */
static void
result_ok(struct sl_smtpclient *d, const struct sl_smtp_reply *r)
{
	reply_format(r, d->nexthop, sizeof(d->nexthop));
	d->v = SL_OK;
	d->code = 250;
	snprintf(d->enh, sizeof(d->enh), "2.0.0");
	snprintf(d->text, sizeof(d->text), "Ok: queued as %s (next hop: %.*s)",
	    d->txn_id, (int)(sizeof(d->text) / 2), d->nexthop);
}

/*
 * The next hop refused: its code (421 as 451: our session goes on; 451
 * or 554 for LMTP's mixed outcome), its enhanced code when it fits, its
 * text, naming rcpt when it does not already.
 */
static void
result_refused(struct sl_smtpclient *d, const struct sl_smtp_reply *r,
    const char *rcpt, bool mixed)
{
	char who[SL_SMTP_PATH_MAX + 8] = "";
	int cls = r->code / 100;

	if (rcpt != NULL && strstr(r->text, rcpt) == NULL)
		snprintf(who, sizeof(who), "<%s>: ", rcpt);
	reply_format(r, d->nexthop, sizeof(d->nexthop));
	d->v = cls == 5 ? SL_DENY : SL_DENYSOFT;
	if (mixed)
		d->code = cls == 5 ? 554 : 451;
	else
		d->code = r->code == 421 ? 451 : r->code;
	snprintf(d->enh, sizeof(d->enh), "%s",
	    r->enh[0] != '\0' ? r->enh : (cls == 5 ? "5.0.0" : "4.0.0"));
	snprintf(d->text, sizeof(d->text), "%s%s%s", who,
	    r->text[0] != '\0' ? r->text : "Refused by the next hop",
	    mixed ? " (delivered to the other recipients)" : "");
}

/* --- the session: steps --------------------------------------------------- */

/*
 * EHLO (LHLO) with our name; after XCLIENT the client's own greeting
 * (as nginx's mail proxy does), so that the next hop records its HELO
 * name and protocol: HELO for a client that said HELO.
 */
static void
send_ehlo(struct sl_smtpclient *d)
{
	const char *verb = d->cf->lmtp ? "LHLO" : "EHLO", *name = d->helo;

	d->cap_pipelining = d->cap_8bitmime = d->cap_smtputf8 = false;
	d->cap_size = d->cap_starttls = false;
	d->cap_xclient = d->cap_xforward = 0;
	if (strcmp(d->forward, "xclient") == 0) {
		if (d->c_helo != NULL && sl_smtp_helo_valid(d->c_helo))
			name = d->c_helo;
		if (!d->c_esmtp && !d->cf->lmtp)
			verb = "HELO";
	}
	if (send_line(d, "%s %s", verb, name) == -1)
		return;
	d->st = ST_EHLO;
	arm(d, d->cf->o.command_timeout_ms);
}

static unsigned int
xattrs_parse(const char *s)
{
	char word[32];
	unsigned int bits = 0;
	size_t i, n;

	while (*s != '\0') {
		while (*s == ' ')
			s++;
		for (n = 0; s[n] != '\0' && s[n] != ' '; n++)
			continue;
		snprintf(word, sizeof(word), "%.*s", (int)n, s);
		for (i = 0; i < SL_NELEM(xattr_names); i++)
			if (strcasecmp(word, xattr_names[i].name) == 0)
				bits |= xattr_names[i].bit;
		s += n;
	}
	return bits;
}

/* One line of the EHLO reply after the first: a keyword and its args. */
static void
ehlo_keyword(struct sl_smtpclient *d, const char *text, size_t len)
{
	char line[512], *args;

	snprintf(line, sizeof(line), "%.*s", (int)len, text);
	args = strchr(line, ' ');
	if (args != NULL)
		*args++ = '\0';
	else
		args = line + strlen(line);
	if (strcasecmp(line, "PIPELINING") == 0)
		d->cap_pipelining = true;
	else if (strcasecmp(line, "8BITMIME") == 0)
		d->cap_8bitmime = true;
	else if (strcasecmp(line, "SMTPUTF8") == 0)
		d->cap_smtputf8 = true;
	else if (strcasecmp(line, "SIZE") == 0)
		d->cap_size = true;
	else if (strcasecmp(line, "STARTTLS") == 0)
		d->cap_starttls = true;
	else if (strcasecmp(line, "XCLIENT") == 0)
		d->cap_xclient = xattrs_parse(args);
	else if (strcasecmp(line, "XFORWARD") == 0)
		d->cap_xforward = xattrs_parse(args);
}

/* Appends " NAME=xtext(value)" to buf if it fits; returns 0 or -1. */
static int
xattr_add(char *buf, size_t size, const char *name, const char *value)
{
	char enc[CMD_MAX];
	size_t n = strlen(buf);
	int w;

	if (sl_xtext_encode(value, enc, sizeof(enc)) == -1)
		return -1;
	w = snprintf(buf + n, size - n, " %s=%s", name, enc);
	if (w < 0 || (size_t)w >= size - n) {
		buf[n] = '\0';
		return -1;
	}
	return 0;
}

/* The value of one client attribute for XCLIENT / XFORWARD, or NULL. */
static const char *
xattr_value(const struct sl_smtpclient *d, unsigned int bit, char *buf,
    size_t size)
{
	switch (bit) {
	case XA_NAME:
		return d->c_name != NULL ? d->c_name : "[UNAVAILABLE]";
	case XA_ADDR:
		if (d->c_addr == NULL)
			return "[UNAVAILABLE]";
		snprintf(buf, size, "%s%s",
		    strchr(d->c_addr, ':') != NULL ? "IPV6:" : "", d->c_addr);
		return buf;
	case XA_PORT:
		if (d->c_port == 0)
			return "[UNAVAILABLE]";
		snprintf(buf, size, "%u", d->c_port);
		return buf;
	case XA_PROTO:
		return d->c_esmtp ? "ESMTP" : "SMTP";
	case XA_HELO:
		return d->c_helo != NULL ? d->c_helo : "[UNAVAILABLE]";
	case XA_LOGIN:
		return d->c_login; /* only for an authenticated client */
	case XA_IDENT:
		return d->txn_id;
	case XA_SOURCE:
		return "REMOTE";
	default:
		return NULL;
	}
}

/*
 * " NAME=value" (xtext) for each attribute of order[] that the next hop
 * offers and we have a value for; one too long for a command line is
 * left out.  Returns the count.
 */
static size_t
xattr_pieces(const struct sl_smtpclient *d, const unsigned int *order, size_t n,
    unsigned int offered, char pieces[][XPIECE_MAX])
{
	char vbuf[80];
	const char *v;
	size_t i, j, np = 0;

	for (i = 0; i < n; i++) {
		if ((offered & order[i]) == 0 ||
		    (v = xattr_value(d, order[i], vbuf, sizeof(vbuf))) == NULL)
			continue;
		for (j = 0; xattr_names[j].bit != order[i]; j++)
			continue;
		pieces[np][0] = '\0';
		if (xattr_add(pieces[np], XPIECE_MAX, xattr_names[j].name, v) ==
		    0)
			np++;
	}
	return np;
}

/* XCLIENT with what the next hop takes (Postfix's XCLIENT_README). */
static bool
send_xclient(struct sl_smtpclient *d)
{
	static const unsigned int order[] = { XA_NAME, XA_ADDR, XA_PORT,
		XA_PROTO, XA_HELO, XA_LOGIN };
	char pieces[SL_NELEM(order)][XPIECE_MAX], cmd[CMD_MAX - 2] = "XCLIENT";
	size_t i, n, len = strlen(cmd);

	d->xclient_tried = true;
	n = xattr_pieces(d, order, SL_NELEM(order), d->cap_xclient, pieces);
	for (i = 0; i < n; i++) {
		if (len + strlen(pieces[i]) >= sizeof(cmd))
			continue;
		memcpy(cmd + len, pieces[i], strlen(pieces[i]) + 1);
		len += strlen(pieces[i]);
	}
	if (n == 0 || send_line(d, "%s", cmd) == -1)
		return false;
	d->st = ST_XCLIENT;
	arm(d, d->cf->o.command_timeout_ms);
	return true;
}

static void
xforward_push(struct sl_smtpclient *d, const char *cmd)
{
	d->xf_cmds =
	    sl_xreallocarray(d->xf_cmds, d->nxf + 1, sizeof(*d->xf_cmds));
	d->xf_cmds[d->nxf++] = sl_xstrdup(cmd);
}

/* XFORWARD lines of at most XFORWARD_LINE_MAX bytes (XFORWARD_README). */
static bool
send_xforward(struct sl_smtpclient *d)
{
	static const unsigned int order[] = { XA_NAME, XA_ADDR, XA_PORT,
		XA_PROTO, XA_HELO, XA_IDENT, XA_SOURCE };
	char pieces[SL_NELEM(order)][XPIECE_MAX];
	char cmd[XFORWARD_LINE_MAX + 1] = "XFORWARD";
	size_t i, n, len = strlen(cmd), plen;

	n = xattr_pieces(d, order, SL_NELEM(order), d->cap_xforward, pieces);
	for (i = 0; i < n; i++) {
		plen = strlen(pieces[i]);
		if (strlen("XFORWARD") + plen > XFORWARD_LINE_MAX)
			continue; /* too long for any line */
		if (len + plen > XFORWARD_LINE_MAX) {
			xforward_push(d, cmd);
			len = strlen("XFORWARD");
		}
		memcpy(cmd + len, pieces[i], plen + 1);
		len += plen;
	}
	if (len > strlen("XFORWARD"))
		xforward_push(d, cmd);
	if (d->nxf == 0 || send_line(d, "%s", d->xf_cmds[0]) == -1)
		return false;
	d->xf_i = 0;
	d->st = ST_XFORWARD;
	arm(d, d->cf->o.command_timeout_ms);
	return true;
}

/* "KEY" or "KEY=VALUE" among space-separated MAIL parameters. */
static bool
has_param(const char *params, const char *key, const char *value)
{
	size_t klen = strlen(key), n;
	const char *p = params;

	if (p == NULL)
		return false;
	for (; *p != '\0'; p += n) {
		while (*p == ' ')
			p++;
		for (n = 0; p[n] != '\0' && p[n] != ' '; n++)
			continue;
		if (n < klen || strncasecmp(p, key, klen) != 0)
			continue;
		if (value == NULL && n == klen)
			return true;
		if (value != NULL && n == klen + 1 + strlen(value) &&
		    p[klen] == '=' &&
		    strncasecmp(p + klen + 1, value, strlen(value)) == 0)
			return true;
	}
	return false;
}

/* No control characters (we write it into a command line), ASCII? */
static int
addr_check(const char *a, bool *utf8_r)
{
	for (; *a != '\0'; a++) {
		if ((unsigned char)*a < 32 || *a == 127)
			return -1;
		if ((unsigned char)*a > 127)
			*utf8_r = true;
	}
	return 0;
}

static void
send_rcpt(struct sl_smtpclient *d)
{
	if (send_line(d, "RCPT TO:<%s>", sl_txn_rcpt(d->txn, d->rcpt_sent)) ==
	    0)
		d->rcpt_sent++;
}

/* MAIL, and the RCPTs with it under PIPELINING (RFC 2920). */
static void
send_mail(struct sl_smtpclient *d)
{
	const char *sender = sl_txn_sender(d->txn);
	const char *mp = sl_txn_sender_params(d->txn);
	char params[128] = "";
	bool utf8 = false;
	size_t i;
	int rc = addr_check(sender, &utf8);

	for (i = 0; i < d->nrcpts && rc == 0; i++)
		rc = addr_check(sl_txn_rcpt(d->txn, i), &utf8);
	if (rc == -1) {
		fail(d, "4.3.0", "Local error forwarding the message",
		    "an envelope address holds control characters");
		return;
	}
	if (utf8 && !d->cap_smtputf8) {
		/* RFC 6531 3.2 (Postfix does the same) */
		d->v = SL_DENY;
		d->code = 550;
		snprintf(d->enh, sizeof(d->enh), "5.6.7");
		snprintf(d->text, sizeof(d->text),
		    "SMTPUTF8 is required, but was not offered by the next "
		    "hop");
		quit(d);
		return;
	}
	if (d->cap_size)
		snprintf(params, sizeof(params), " SIZE=%llu",
		    (unsigned long long)sl_txn_message_size(d->txn));
	if (d->cap_8bitmime && has_param(mp, "BODY", "8BITMIME"))
		snprintf(params + strlen(params),
		    sizeof(params) - strlen(params), " BODY=8BITMIME");
	if (d->cap_smtputf8 && has_param(mp, "SMTPUTF8", NULL))
		snprintf(params + strlen(params),
		    sizeof(params) - strlen(params), " SMTPUTF8");
	if (send_line(d, "MAIL FROM:<%s>%s", sender, params) == -1)
		return;
	d->pipelined = d->cap_pipelining;
	d->rcpt_sent = d->rcpt_got = 0;
	for (i = 0; d->pipelined && i < d->nrcpts; i++)
		send_rcpt(d);
	d->st = ST_MAIL;
	arm(d, d->cf->o.command_timeout_ms);
}

/* After each EHLO: STARTTLS, XCLIENT, XFORWARD, MAIL, in that order. */
static void
after_ehlo(struct sl_smtpclient *d)
{
	const struct sl_smtpclient_opts *o = &d->cf->o;

	if (!d->tls_on && !d->tls_tried &&
	    o->starttls != SL_SMTPCLIENT_TLS_NO) {
		if (d->cap_starttls) {
			if (send_line(d, "STARTTLS") == -1)
				return;
			d->st = ST_STARTTLS;
			arm(d, o->command_timeout_ms);
			return;
		}
		if (o->starttls == SL_SMTPCLIENT_TLS_REQUIRE) {
			fail(d, "4.4.0", TEXT_TLS,
			    "TLS is required, but the next hop does not "
			    "offer STARTTLS");
			return;
		}
	}
	if (o->xclient && !d->xclient_tried && d->cap_xclient != 0 &&
	    send_xclient(d))
		return;
	if (d->st == ST_DONE)
		return;
	if (o->xforward && strcmp(d->forward, "xclient") != 0 && d->nxf == 0 &&
	    d->cap_xforward != 0 && send_xforward(d))
		return;
	if (d->st == ST_DONE)
		return;
	send_mail(d);
}

static bool
is_ip_literal(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, s, &a4) == 1 ||
	    inet_pton(AF_INET6, s, &a6) == 1;
}

static void
start_tls(struct sl_smtpclient *d)
{
	const struct sl_smtpclient_conf *cf = d->cf;
	struct bufferevent *tb;
	SSL *ssl;

	/* RFC 3207 5: nothing may follow the 220 (command injection) */
	if (evbuffer_get_length(bufferevent_get_input(d->bev)) > 0) {
		fail(d, "4.4.0", TEXT_PROTOCOL,
		    "the next hop sent data after its reply to STARTTLS");
		return;
	}
	d->tls_tried = true;
	ssl = SSL_new(cf->tls);
	if (ssl == NULL) {
		fail(d, "4.4.0", TEXT_TLS, "cannot make a TLS session");
		return;
	}
	if (!cf->is_unix && !is_ip_literal(cf->tls_name))
		SSL_set_tlsext_host_name(ssl, cf->tls_name);
	if (cf->o.tls_verify) {
		if (is_ip_literal(cf->tls_name))
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			    cf->tls_name);
		else
			SSL_set1_host(ssl, cf->tls_name);
	}
	tb = bufferevent_openssl_filter_new(d->base, d->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) /* only out of memory; what it freed is unclear */
		sl_panic("bufferevent_openssl_filter_new failed");
	d->bev = tb; /* it owns the TCP one now */
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	setup_bev(d);
	d->st = ST_HANDSHAKE;
	arm(d, cf->o.command_timeout_ms);
}

static void
tls_done(struct sl_smtpclient *d)
{
	SSL *ssl = bufferevent_openssl_get_ssl(d->bev);

	d->tls_on = true;
	snprintf(d->tls_info, sizeof(d->tls_info), "%s/%s/%s",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl),
	    d->cf->o.tls_verify ? "verified" : "unverified");
	send_ehlo(d);
}

static void
tls_failed(struct sl_smtpclient *d, short what)
{
	SSL *ssl = bufferevent_openssl_get_ssl(d->bev);
	char why[256] = "";
	unsigned long e;
	long vr;

	while ((e = bufferevent_get_openssl_error(d->bev)) != 0)
		if (why[0] == '\0')
			ERR_error_string_n(e, why, sizeof(why));
	if (ssl != NULL && d->cf->o.tls_verify &&
	    (vr = SSL_get_verify_result(ssl)) != X509_V_OK)
		snprintf(why, sizeof(why), "certificate verification: %s",
		    X509_verify_cert_error_string(vr));
	if (why[0] == '\0')
		snprintf(why, sizeof(why), "%s",
		    (what & BEV_EVENT_EOF) != 0
		        ? "connection closed"
		        : strerror(EVUTIL_SOCKET_ERROR()));
	fail(d, "4.4.0", TEXT_TLS, "TLS handshake failed: %s", why);
}

static void
start_body(struct sl_smtpclient *d)
{
	memset(&d->pos, 0, sizeof(d->pos));
	sl_smtp_dotstuff_init(&d->ds);
	d->st = ST_BODY;
	arm(d, d->cf->o.data_timeout_ms);
}

/* Tops up the output with the message; ends it with the final dot. */
static void
fill(struct sl_smtpclient *d)
{
	struct evbuffer *out = bufferevent_get_output(d->bev);
	uint8_t chunk[READ_CHUNK];
	long n;

	while (d->st == ST_BODY && evbuffer_get_length(out) < FILL_TARGET) {
		n = sl_txn_message_read(d->txn, &d->pos, chunk, sizeof(chunk));
		if (n < 0) {
			fail(d, "4.3.0",
			    "Local error reading the message, try again later",
			    "cannot read the message from the spool");
			return;
		}
		if (n == 0) {
			sl_smtp_dotstuff_end(&d->ds, out);
			d->st = ST_DOT;
			arm(d, d->cf->o.data_timeout_ms);
			return;
		}
		sl_smtp_dotstuff_add(&d->ds, out, chunk, (size_t)n);
	}
}

/* --- the session: replies ------------------------------------------------- */

static void
starttls_reply(struct sl_smtpclient *d)
{
	char r[TEXT_MAX];

	if (d->reply.code == 220) {
		start_tls(d);
		return;
	}
	reply_format(&d->reply, r, sizeof(r));
	if (d->cf->o.starttls == SL_SMTPCLIENT_TLS_REQUIRE) {
		snprintf(d->nexthop, sizeof(d->nexthop), "%s", r);
		fail(d, "4.4.0", TEXT_TLS,
		    "TLS is required, but the next hop refused STARTTLS");
		return;
	}
	dlog(d, LOG_NOTICE,
	    "relay=%s STARTTLS refused: \"%s\"; going on "
	    "without TLS",
	    d->relay, r);
	d->tls_tried = true;
	after_ehlo(d);
}

static void
xclient_reply(struct sl_smtpclient *d)
{
	char r[TEXT_MAX];

	if (d->reply.code / 100 == 2) {
		/* Postfix: the session starts over, with a new EHLO */
		d->forward = "xclient";
		send_ehlo(d);
		return;
	}
	if (d->reply.code == 421) {
		session_refused(d, "XCLIENT");
		return;
	}
	reply_format(&d->reply, r, sizeof(r));
	dlog(d, LOG_WARNING,
	    "relay=%s XCLIENT refused: \"%s\"; going on "
	    "without it",
	    d->relay, r);
	after_ehlo(d);
}

static void
xforward_reply(struct sl_smtpclient *d)
{
	char r[TEXT_MAX];

	if (d->reply.code / 100 == 2) {
		if (++d->xf_i < d->nxf) {
			if (send_line(d, "%s", d->xf_cmds[d->xf_i]) == 0)
				arm(d, d->cf->o.command_timeout_ms);
			return;
		}
		d->forward = "xforward";
	} else {
		reply_format(&d->reply, r, sizeof(r));
		dlog(d, LOG_WARNING,
		    "relay=%s XFORWARD refused: \"%s\"; "
		    "going on without it",
		    d->relay, r);
	}
	send_mail(d);
}

/*
 * Replies to MAIL, RCPT and the end of data are 2xx, 4xx or 5xx.  Returns
 * false after failing the session for anything else.
 */
static bool
reply_class_ok(struct sl_smtpclient *d)
{
	int cls = d->reply.code / 100;

	if (cls == 2 || cls == 4 || cls == 5)
		return true;
	unexpected_reply(d);
	return false;
}

static void
mail_reply(struct sl_smtpclient *d)
{
	int cls = d->reply.code / 100;

	if (!reply_class_ok(d))
		return;
	d->mail_reply = d->reply;
	if (cls == 2 || d->pipelined) {
		/* under PIPELINING the RCPT replies come anyway */
		if (cls == 2 && !d->pipelined)
			send_rcpt(d);
		if (d->st == ST_DONE)
			return;
		d->st = ST_RCPT;
		arm(d, d->cf->o.command_timeout_ms);
		return;
	}
	result_refused(d, &d->mail_reply, NULL, false);
	quit(d);
}

static void
rcpt_reply(struct sl_smtpclient *d)
{
	char r[TEXT_MAX];
	size_t i;
	bool mixed;

	if (!reply_class_ok(d))
		return;
	d->rcpt_replies[d->rcpt_got++] = d->reply;
	if (d->rcpt_got < d->nrcpts) {
		if (!d->pipelined)
			send_rcpt(d);
		if (d->st != ST_DONE)
			arm(d, d->cf->o.command_timeout_ms);
		return;
	}
	if (d->mail_reply.code / 100 != 2) {
		result_refused(d, &d->mail_reply, NULL, false);
		quit(d);
		return;
	}
	for (i = 0; i < d->nrcpts; i++) {
		if (d->rcpt_replies[i].code / 100 == 2)
			continue;
		reply_format(&d->rcpt_replies[i], r, sizeof(r));
		dlog(d, LOG_INFO, "relay=%s rcpt=<%s> refused: \"%s\"",
		    d->relay, sl_txn_rcpt(d->txn, i), r);
	}
	if (sl_smtpclient_map(d->rcpt_replies, d->nrcpts, false, &i, &mixed) ==
	    SL_OK) {
		if (send_line(d, "DATA") == 0) {
			d->st = ST_DATA;
			arm(d, d->cf->o.command_timeout_ms);
		}
		return;
	}
	/* one refusal and nothing is sent: no loss and no duplicates */
	result_refused(d, &d->rcpt_replies[i], sl_txn_rcpt(d->txn, i), false);
	quit(d);
}

static void
data_reply(struct sl_smtpclient *d)
{
	int cls = d->reply.code / 100;

	if (d->reply.code == 354) {
		start_body(d);
		fill(d);
		return;
	}
	if (cls != 4 && cls != 5) {
		unexpected_reply(d);
		return;
	}
	result_refused(d, &d->reply, NULL, false);
	quit(d);
}

/* LMTP: one reply per recipient (RFC 2033 4.2). */
static void
lmtp_result(struct sl_smtpclient *d)
{
	char r[TEXT_MAX];
	size_t i, nok = 0;
	bool mixed;

	for (i = 0; i < d->nrcpts; i++) {
		reply_format(&d->end_replies[i], r, sizeof(r));
		dlog(d, LOG_INFO, "relay=%s rcpt=<%s> reply=\"%s\"", d->relay,
		    sl_txn_rcpt(d->txn, i), r);
		nok += d->end_replies[i].code / 100 == 2;
	}
	if (sl_smtpclient_map(d->end_replies, d->nrcpts, true, &i, &mixed) ==
	    SL_OK) {
		result_ok(d, &d->end_replies[0]);
		return;
	}
	result_refused(d, &d->end_replies[i], sl_txn_rcpt(d->txn, i), mixed);
	if (mixed)
		dlog(d, LOG_NOTICE,
		    "relay=%s delivered to %zu of %zu recipients, but the "
		    "client gets %d: %s",
		    d->relay, nok, d->nrcpts, d->code,
		    d->code == 451 ? "its retry may deliver a duplicate to "
		                     "them (RFC 5321 6.1)"
		                   : "the sender learns of the refused one");
}

static void
dot_reply(struct sl_smtpclient *d)
{
	int cls = d->reply.code / 100;

	if (!reply_class_ok(d))
		return;
	if (!d->cf->lmtp) {
		if (cls == 2)
			result_ok(d, &d->reply);
		else
			result_refused(d, &d->reply, NULL, false);
		quit(d);
		return;
	}
	d->end_replies[d->end_got++] = d->reply;
	if (d->end_got < d->nrcpts) {
		arm(d, d->cf->o.data_timeout_ms);
		return;
	}
	lmtp_result(d);
	quit(d);
}

/* A complete reply from the next hop. */
static void
on_reply(struct sl_smtpclient *d)
{
	switch (d->st) {
	case ST_GREETING:
		if (d->reply.code == 220)
			send_ehlo(d);
		else
			session_refused(d, "greeting");
		break;
	case ST_EHLO:
		if (d->reply.code == 250)
			after_ehlo(d);
		else
			session_refused(d, d->cf->lmtp ? "LHLO" : "EHLO");
		break;
	case ST_STARTTLS:
		starttls_reply(d);
		break;
	case ST_XCLIENT:
		xclient_reply(d);
		break;
	case ST_XFORWARD:
		xforward_reply(d);
		break;
	case ST_MAIL:
		mail_reply(d);
		break;
	case ST_RCPT:
		rcpt_reply(d);
		break;
	case ST_DATA:
		data_reply(d);
		break;
	case ST_DOT:
		dot_reply(d);
		break;
	case ST_QUIT:
		finish(d);
		break;
	default:
		/* a reply while we send the message, or before connect */
		unexpected_reply(d);
		break;
	}
}

/* --- the session: events -------------------------------------------------- */

/*
 * The next line of a reply into line (NUL-terminated, no CRLF).  Returns
 * 1, 0 if there is none yet, -1 after failing the session.
 */
static int
next_line(struct sl_smtpclient *d, struct evbuffer *in, char *line,
    size_t *len_r)
{
	struct evbuffer_ptr p;
	char show[128];
	size_t n, eol;

	p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_LF);
	if (p.pos < 0) {
		if (evbuffer_get_length(in) <= SL_SMTP_REPLY_LINE_MAX + 1)
			return 0;
		fail(d, "4.4.0", TEXT_PROTOCOL,
		    "reply line longer than %d bytes in reply to %s",
		    SL_SMTP_REPLY_LINE_MAX, state_names[d->st]);
		return -1;
	}
	n = (size_t)p.pos;
	if (n > SL_SMTP_REPLY_LINE_MAX + 1) {
		fail(d, "4.4.0", TEXT_PROTOCOL,
		    "reply line longer than %d bytes in reply to %s",
		    SL_SMTP_REPLY_LINE_MAX, state_names[d->st]);
		return -1;
	}
	evbuffer_remove(in, line, n + 1);
	if (n == 0 || line[n - 1] != '\r') {
		fail(d, "4.4.0", TEXT_PROTOCOL,
		    "reply line not ended by CRLF in reply to %s: '%s'",
		    state_names[d->st], printable(line, n, show, sizeof(show)));
		return -1;
	}
	line[n - 1] = '\0';
	*len_r = n - 1;
	return 1;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct sl_smtpclient *d = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[SL_SMTP_REPLY_LINE_MAX + 3], show[128];
	const char *err, *text;
	size_t len, tlen;
	int rc;

	while (d->st != ST_DONE && d->bev == bev) {
		if (next_line(d, in, line, &len) <= 0)
			return;
		rc = sl_smtp_reply_line(&d->reply, line, len, &text, &tlen,
		    &err);
		if (rc == -1) {
			fail(d, "4.4.0", TEXT_PROTOCOL,
			    "malformed reply to %s (%s): '%s'",
			    state_names[d->st], err,
			    printable(line, len, show, sizeof(show)));
			return;
		}
		if (d->st == ST_EHLO && d->reply.nlines > 1)
			ehlo_keyword(d, text, tlen);
		if (rc == 1)
			on_reply(d);
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct sl_smtpclient *d = arg;

	(void)bev;
	if (d->st != ST_BODY)
		return;
	arm(d, d->cf->o.data_timeout_ms); /* progress */
	fill(d);
}

/* The error of a failed connect, or of the last socket call. */
static const char *
socket_error(struct sl_smtpclient *d)
{
	socklen_t len = sizeof(int);
	int err = 0, fd;

	fd = d->bev != NULL ? bufferevent_getfd(d->bev) : -1;
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
	    err == 0)
		err = EVUTIL_SOCKET_ERROR();
	return err != 0 ? strerror(err) : "connection closed";
}

/* A connect failed: the next address, or the end. */
static void
connect_failed(struct sl_smtpclient *d, const char *why)
{
	dlog(d, LOG_NOTICE, "relay=%s connect failed: %s", d->relay, why);
	snprintf(d->error, sizeof(d->error), "connect: %s", why);
	close_bev(d);
	evtimer_del(d->timer);
	d->ai++;
	try_connect(d);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sl_smtpclient *d = arg;

	if (d->bev != bev || d->st == ST_DONE)
		return;
	if ((what & BEV_EVENT_CONNECTED) != 0) {
		if (d->st == ST_CONNECT) {
			d->st = ST_GREETING;
			arm(d, d->cf->o.command_timeout_ms);
		} else if (d->st == ST_HANDSHAKE)
			tls_done(d);
		return;
	}
	switch (d->st) {
	case ST_CONNECT:
		connect_failed(d, socket_error(d));
		break;
	case ST_HANDSHAKE:
		tls_failed(d, what);
		break;
	case ST_QUIT:
		finish(d); /* closed after QUIT: fine */
		break;
	default:
		if ((what & BEV_EVENT_EOF) != 0)
			fail(d, "4.4.2", TEXT_LOST,
			    "connection closed by the next hop waiting for "
			    "%s",
			    state_names[d->st]);
		else
			fail(d, "4.4.2", TEXT_LOST, "%s error at %s: %s",
			    (what & BEV_EVENT_READING) != 0 ? "read" : "write",
			    state_names[d->st], socket_error(d));
		break;
	}
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_smtpclient *d = arg;
	char why[64];

	(void)fd;
	(void)what;
	switch (d->st) {
	case ST_CONNECT:
		snprintf(why, sizeof(why), "timed out after %u ms", d->wait_ms);
		connect_failed(d, why);
		break;
	case ST_QUIT:
		finish(d); /* the outcome is known already */
		break;
	case ST_BODY:
		fail(d, "4.4.2", TEXT_TIMEOUT,
		    "no progress sending the message for %u ms", d->wait_ms);
		break;
	default:
		fail(d, "4.4.2", TEXT_TIMEOUT, "no reply to %s within %u ms",
		    state_names[d->st], d->wait_ms);
		break;
	}
}

/* "host[ip]:port" for the address tried (or "unix:/path"). */
static void
set_relay(struct sl_smtpclient *d, const struct sockaddr *sa, socklen_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (d->cf->is_unix) {
		snprintf(d->relay, sizeof(d->relay), "unix:%s", d->cf->host);
		return;
	}
	if (getnameinfo(sa, len, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(ip, sizeof(ip), "?");
	snprintf(d->relay, sizeof(d->relay), "%s[%s]:%s", d->cf->host, ip,
	    d->cf->port);
}

/* Connects to the address d->ai, or the next ones that work. */
static void
try_connect(struct sl_smtpclient *d)
{
	const struct sl_smtpclient_conf *cf = d->cf;
	const struct sockaddr *sa;
	int fd, one = 1;

	for (; d->ai < cf->naddrs; d->ai++) {
		sa = (const struct sockaddr *)&cf->addrs[d->ai];
		set_relay(d, sa, cf->addrlens[d->ai]);
		fd = socket(sa->sa_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(d->error, sizeof(d->error), "socket: %s",
			    strerror(errno));
			continue;
		}
		/* commands go out whole: no Nagle wait (DESIGN.md) */
		if (sa->sa_family != AF_UNIX)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
		d->bev =
		    bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (d->bev == NULL) {
			close(fd);
			snprintf(d->error, sizeof(d->error),
			    "cannot make a bufferevent");
			continue;
		}
		setup_bev(d);
		/* errors, even immediate ones, come through event_cb */
		if (bufferevent_socket_connect(d->bev, sa,
		        cf->addrlens[d->ai]) == 0) {
			d->st = ST_CONNECT;
			arm(d, cf->o.connect_timeout_ms);
			return;
		}
		snprintf(d->error, sizeof(d->error), "connect: %s",
		    socket_error(d));
		close_bev(d);
	}
	/* d->error says why the last one failed */
	d->v = SL_DENYSOFT;
	d->code = 451;
	snprintf(d->enh, sizeof(d->enh), "4.4.1");
	snprintf(d->text, sizeof(d->text), "%s", TEXT_UNREACHABLE);
	finish(d);
}

/* --- the hook ------------------------------------------------------------- */

static char *
dup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? sl_xstrdup(s) : NULL;
}

/* Frees the session (the transaction's data free callback). */
static void
session_free(void *arg)
{
	struct sl_smtpclient *d = arg;
	size_t i;

	if (d->st == ST_QUIT)
		dlog(d, LOG_NOTICE,
		    "relay=%s abandoned at QUIT: the transaction ended first "
		    "(the next hop's answer was: %s)",
		    d->relay, sl_verdict_name(d->v));
	else if (d->st != ST_DONE)
		dlog(d, LOG_NOTICE,
		    "relay=%s abandoned at %s: the transaction ended first%s",
		    d->relay, state_names[d->st],
		    d->st == ST_DOT ? " (the next hop may have the message)"
		                    : " (the message was not delivered)");
	close_bev(d);
	event_free(d->timer);
	sl_async_done(&d->async, SL_DENYSOFT); /* late: only frees it */
	for (i = 0; i < d->nxf; i++)
		free(d->xf_cmds[i]);
	free(d->xf_cmds);
	free(d->rcpt_replies);
	free(d->end_replies);
	free(d->helo);
	free(d->c_addr);
	free(d->c_name);
	free(d->c_helo);
	free(d->c_login);
	sl_smtpclient_conf_free(&d->cf);
	free(d);
}

static struct sl_smtpclient *
session_new(struct sl_smtpclient_conf *cf, struct sl_hookctx *ctx)
{
	struct sl_conn *c = sl_hook_conn(ctx);
	struct sl_txn *t = sl_hook_txn(ctx);
	struct sl_smtpclient *d;

	d = sl_xcalloc(1, sizeof(*d));
	atomic_fetch_add(&cf->refs, 1);
	d->cf = cf;
	d->txn = t;
	d->base = sl_loop_base(c->loop);
	snprintf(d->conn_id, sizeof(d->conn_id), "%s", sl_conn_id(c));
	snprintf(d->txn_id, sizeof(d->txn_id), "%s", sl_txn_id(t));
	snprintf(d->plugin, sizeof(d->plugin), "%s", sl_hook_plugin_name(ctx));
	d->helo =
	    sl_xstrdup(cf->o.helo != NULL ? cf->o.helo : c->rt->set->hostname);
	d->c_addr = dup_or_null(sl_conn_remote_ip(c));
	d->c_port = sl_conn_remote_port(c);
	d->c_name = dup_or_null(sl_conn_remote_host(c));
	d->c_helo = dup_or_null(sl_conn_helo(c));
	d->c_login = dup_or_null(sl_conn_auth_user(c));
	d->c_esmtp = c->esmtp;
	d->nrcpts = sl_txn_rcpt_count(t);
	d->rcpt_replies = sl_xcalloc(d->nrcpts, sizeof(*d->rcpt_replies));
	d->end_replies =
	    sl_xcalloc(cf->lmtp ? d->nrcpts : 1, sizeof(*d->end_replies));
	d->forward = "none";
	snprintf(d->tls_info, sizeof(d->tls_info), "none");
	d->t0_ms = sl_now_ms();
	d->timer = evtimer_new(d->base, timer_cb, d);
	if (d->timer == NULL)
		sl_panic("evtimer_new failed");
	return d;
}

static int
plugin_init(void **state_r, bool lmtp, const char **error_r)
{
	struct sl_smtpclient_conf *cf;

	cf = sl_smtpclient_conf_new(*state_r, lmtp, error_r);
	if (cf == NULL)
		return -1;
	*state_r = cf;
	return 0;
}

int
sl_smtpclient_init_smtp(void **state_r, const char **error_r)
{
	return plugin_init(state_r, false, error_r);
}

int
sl_smtpclient_init_lmtp(void **state_r, const char **error_r)
{
	return plugin_init(state_r, true, error_r);
}

void
sl_smtpclient_fini(void *state)
{
	struct sl_smtpclient_conf *cf = state;

	sl_smtpclient_conf_free(&cf);
}

enum sl_verdict
sl_smtpclient_queue(void *state, struct sl_hookctx *ctx)
{
	struct sl_smtpclient_conf *cf = state;
	struct sl_txn *t = sl_hook_txn(ctx);
	struct sl_smtpclient *d;

	if (t == NULL || sl_txn_sender(t) == NULL ||
	    sl_txn_rcpt_count(t) == 0) {
		sl_hook_log(ctx, LOG_ERR, "verdict=denysoft error=\"%s\"",
		    "no recipients");
		sl_hook_reply(ctx, 451, "4.3.0",
		    "No recipients to forward to, try again later");
		return SL_DENYSOFT;
	}
	d = session_new(cf, ctx);
	sl_txn_data_set(t, cf, d, session_free);
	try_connect(d);
	if (d->st == ST_DONE) {
		sl_hook_reply(ctx, d->code, d->enh, "%s", d->text);
		return d->v;
	}
	d->async = sl_async_begin(ctx);
	sl_async_timeout(d->async, d->wait_ms + BACKSTOP_MS);
	d->backstop_ms = sl_now_ms() + d->wait_ms + BACKSTOP_MS;
	return SL_PENDING;
}
