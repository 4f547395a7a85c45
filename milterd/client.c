/*
 * client.c - sluice-milter-client: the MTA side of the milter protocol on
 * the command line.  It plays one SMTP session with one message against a
 * milter (a Postfix-shaped session: offer v6, macros before every event,
 * D L before each header and D B before each body chunk) and prints every
 * reply and modification, or replays the session COUNT times over
 * CONCURRENCY connections and prints a summary (make bench).
 *
 * Every byte on the wire goes through the codec (milter.h).  Each read and
 * write waits at most -t seconds; the end-of-message exchange as a whole
 * at most ten times that, however many progress packets the filter sends.
 * The filter's state is tracked as libmilter does (protocol reference
 * 5.2, 8.1): nothing is sent that libmilter would silently drop.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "milter.h"
#include "xmalloc.h"

#define PROG "sluice-milter-client"
#define OFFER_ACTIONS SL_SMFIF_ALL
#define OFFER_PROTO SL_SMFIP_ALL
#define MAX_STAGE_MACROS 64
#define EOB_TIMEOUT_FACTOR 10
#define FLUSH_AT (256 * 1024)
#define MAX_ERRORS_SHOWN 20

/* Exit statuses, and the outcome of one session. */
enum outcome {
	OUT_ACCEPT = 0,
	OUT_ERROR = 1,
	OUT_REJECT = 2,
	OUT_TEMPFAIL = 3,
	OUT_DISCARD = 4,
	OUT_NONE = -1 /* go on */
};

/* What one event's final reply said. */
enum verdict {
	V_CONTINUE,
	V_SKIP,
	V_ACCEPT,
	V_REJECT,
	V_TEMPFAIL,
	V_DISCARD,
	V_SHUTDOWN,
	V_ERROR
};

struct header {
	char *name, *value;
};

struct envaddr {
	const char *argv[SL_MILTER_MAX_ARGS]; /* argv[0] = "<addr>" */
	size_t argc;
	char *bare; /* address without brackets, for {mail_addr} etc. */
	char *host; /* its domain, or NULL */
	char *buf;  /* owns the argv strings */
};

struct macro {
	char *name, *value;
};

struct config {
	bool verbose, abort_twice;
	const char *sock_spec;
	struct sockaddr_storage sa;
	socklen_t salen;
	/* the SMTP client presented in CONNECT */
	char client_ip[INET6_ADDRSTRLEN];
	uint8_t client_family;
	uint16_t client_port;
	char *client_host;     /* "[ip]" */
	char *client_addr_mac; /* {client_addr}: IPv6 with "IPv6:" */
	char *client_port_mac;
	char *underscore; /* "_": "unknown [ip]" */
	char hostname[256];
	const char *helo;
	struct envaddr sender;
	struct envaddr *rcpts;
	size_t nrcpts;
	struct macro *macros; /* -m, names normalised */
	size_t nmacros;
	int timeout_ms;
	long count, conc;
	/* the message */
	struct header *hdrs;
	size_t nhdrs;
	uint8_t *body;
	size_t body_len;
};

struct session {
	const struct config *cf;
	int fd;
	bool print;
	uint32_t version, actions, proto;
	char *symlist[SL_SMFIM_MAX];
	struct sl_milter_buf out;
	uint8_t *in;
	size_t in_len, in_alloc;
	bool txn_open; /* the filter is inside a message it did not end */
	const struct envaddr *rcpt;
	char qid[32];
	struct timespec eob_deadline;
	bool in_eob;
	size_t replbody_len; /* a run of REPLBODY packets being printed */
	bool in_replbody;
	struct sl_milter_buf replbody; /* its text, with -v */
};

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static long next_session, n_ok, n_rejected, n_tempfailed, n_errors;
static long errors_shown;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: " PROG " [-Av] [-c IP[:PORT]] [-f SENDER] [-H HELO] "
	    "[-j CONCURRENCY]\n"
	    "\t[-m NAME=VALUE]... [-n COUNT] [-r RCPT]... [-s SOCKET] "
	    "[-t TIMEOUT_S]\n"
	    "\t[FILE]\n");
	exit(OUT_ERROR);
}

static void __attribute__((format(printf, 1, 2), noreturn))
fatal(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(OUT_ERROR);
}

/* A session's error: shown on stderr (only the first few under -n). */
static void __attribute__((format(printf, 2, 3)))
sess_error(struct session *s, const char *fmt, ...)
{
	va_list ap;
	bool show;

	pthread_mutex_lock(&stats_lock);
	show = s->print || errors_shown < MAX_ERRORS_SHOWN;
	errors_shown++;
	if (show) {
		fputs(PROG ": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	} else if (errors_shown == MAX_ERRORS_SHOWN + 1) {
		fputs(PROG ": further errors not shown\n", stderr);
	}
	pthread_mutex_unlock(&stats_lock);
}

static long
parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		fatal("-%s %s: not a number from %ld to %ld", opt, s, min, max);
	return v;
}

/* ---------------------------------------------------------------- output */

/* Prints s[0..len) with control bytes and backslash escaped. */
static void
print_escaped(const char *s, size_t len)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '\r')
			fputs("\\r", stdout);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c == '\\')
			fputs("\\\\", stdout);
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static void
print_str(const char *s)
{
	print_escaped(s, strlen(s));
}

/* ---------------------------------------------------------------- time */

/* Milliseconds a wait that began now may take: -t, or less at EOB. */
static int
wait_ms(const struct session *s, int64_t start)
{
	int64_t left, eob;

	left = s->cf->timeout_ms;
	if (s->in_eob) {
		eob = (int64_t)s->eob_deadline.tv_sec * 1000 +
		    s->eob_deadline.tv_nsec / 1000000;
		if (eob - start < left)
			left = eob - start;
	}
	return left < 0 ? 0 : (int)left;
}

/* ---------------------------------------------------------------- I/O */

static int
flush_out(struct session *s, const char *what)
{
	struct pollfd pfd;
	ssize_t n;
	int64_t start;
	int r;

	while (s->out.len > 0) {
		n = send(s->fd, s->out.data, s->out.len, MSG_NOSIGNAL);
		if (n > 0) {
			sl_milter_buf_consume(&s->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			sess_error(s, "write %s: %s", what, strerror(errno));
			return -1;
		}
		start = sl_now_ms();
		pfd.fd = s->fd;
		pfd.events = POLLOUT;
		r = poll(&pfd, 1, wait_ms(s, start));
		if (r == 0) {
			sess_error(s, "write %s: timed out", what);
			return -1;
		}
		if (r < 0 && errno != EINTR) {
			sess_error(s, "write %s: poll: %s", what,
			    strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * Reads until one whole packet is buffered; returns 0 with *pkt and
 * *used_r set (the packet's bytes stay in s->in until consume_in), or -1
 * after reporting what failed.
 */
static int
read_packet(struct session *s, const char *what, struct sl_milter_packet *pkt,
    size_t *used_r)
{
	struct pollfd pfd;
	const char *err;
	int64_t start;
	ssize_t n;
	int r;

	for (;;) {
		r = sl_milter_frame(s->in, s->in_len, 0, pkt, used_r, &err);
		if (r == 1)
			return 0;
		if (r < 0) {
			sess_error(s, "protocol error in %s: %s", what, err);
			return -1;
		}
		if (s->in_alloc - s->in_len < 16384) {
			s->in_alloc =
			    s->in_alloc == 0 ? 65536 : s->in_alloc * 2;
			s->in = sl_xrealloc(s->in, s->in_alloc);
		}
		start = sl_now_ms();
		pfd.fd = s->fd;
		pfd.events = POLLIN;
		r = poll(&pfd, 1, wait_ms(s, start));
		if (r == 0) {
			sess_error(s, "%s: timed out%s", what,
			    s->in_eob ? " (end of message)" : "");
			return -1;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			sess_error(s, "%s: poll: %s", what, strerror(errno));
			return -1;
		}
		n = recv(s->fd, s->in + s->in_len, s->in_alloc - s->in_len, 0);
		if (n == 0) {
			sess_error(s, "%s: the filter closed the connection",
			    what);
			return -1;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			sess_error(s, "%s: %s", what, strerror(errno));
			return -1;
		}
		s->in_len += (size_t)n;
	}
}

static void
consume_in(struct session *s, size_t used)
{
	memmove(s->in, s->in + used, s->in_len - used);
	s->in_len -= used;
}

static int
connect_filter(struct session *s)
{
	const struct config *cf = s->cf;
	struct pollfd pfd;
	socklen_t len;
	int fd, one, err, r;

	fd = socket(cf->sa.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sess_error(s, "socket: %s", strerror(errno));
		return -1;
	}
	if (cf->sa.ss_family != AF_UNIX) {
		/* Protocol reference, appendix: Nagle meets delayed ACKs. */
		one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	}
	if (connect(fd, (const struct sockaddr *)&cf->sa, cf->salen) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			err = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do
			r = poll(&pfd, 1, cf->timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			err = r == 0 ? ETIMEDOUT : errno;
			goto fail;
		}
		len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0)
			goto fail;
	}
	s->fd = fd;
	return 0;
fail:
	sess_error(s, "connect to %s: %s", cf->sock_spec, strerror(err));
	close(fd);
	return -1;
}

/* ---------------------------------------------------------------- macros */

static const char *
override(const struct config *cf, const char *name)
{
	size_t i;

	for (i = 0; i < cf->nmacros; i++)
		if (strcmp(cf->macros[i].name, name) == 0)
			return cf->macros[i].value;
	return NULL;
}

/* "{i}" -> "i", "mail_addr" -> "{mail_addr}"; the result is allocated. */
static char *
macro_norm(const char *name, size_t len)
{
	if (len == 3 && name[0] == '{' && name[2] == '}')
		return sl_xstrndup(name + 1, 1);
	if (len > 1 && name[0] != '{')
		return sl_xasprintf("{%.*s}", (int)len, name);
	return sl_xstrndup(name, len);
}

/* The value of macro name (normalised) now, or NULL if it has none. */
static const char *
macro_value(const struct session *s, const char *name)
{
	const struct config *cf = s->cf;
	const char *v;

	if ((v = override(cf, name)) != NULL)
		return v;
	if (strcmp(name, "j") == 0 || strcmp(name, "{daemon_name}") == 0)
		return cf->hostname;
	if (strcmp(name, "v") == 0)
		return PROG;
	if (strcmp(name, "_") == 0)
		return cf->underscore;
	if (strcmp(name, "{client_addr}") == 0)
		return cf->client_addr_mac;
	if (strcmp(name, "{client_port}") == 0)
		return cf->client_port_mac;
	if (strcmp(name, "{client_name}") == 0)
		return "unknown";
	if (strcmp(name, "i") == 0)
		return s->qid[0] != '\0' ? s->qid : NULL;
	if (strcmp(name, "{mail_addr}") == 0)
		return cf->sender.bare;
	if (strcmp(name, "{mail_host}") == 0)
		return cf->sender.host != NULL ? cf->sender.host : cf->hostname;
	if (strcmp(name, "{mail_mailer}") == 0 ||
	    strcmp(name, "{rcpt_mailer}") == 0)
		return "smtp";
	if (s->rcpt != NULL && strcmp(name, "{rcpt_addr}") == 0)
		return s->rcpt->bare;
	if (s->rcpt != NULL && strcmp(name, "{rcpt_host}") == 0)
		return s->rcpt->host;
	return NULL;
}

static bool
in_default_lists(const char *name)
{
	size_t st, i;

	for (st = 0; st < SL_SMFIM_MAX; st++)
		for (i = 0; sl_milter_default_macros[st][i] != NULL; i++)
			if (strcmp(sl_milter_default_macros[st][i], name) == 0)
				return true;
	return false;
}

/*
 * Appends the D packet of command cmd: the filter's list for the stage if
 * it sent one, else ours (plus, at CONNECT, -m names no list has).
 */
static int
put_macros(struct session *s, uint8_t cmd, int mstage)
{
	const char *names[MAX_STAGE_MACROS], *values[MAX_STAGE_MACROS];
	char *owned[2 * MAX_STAGE_MACROS];
	const char *p, *q;
	size_t n, nowned, i;
	char *norm;
	int rc;

	n = nowned = 0;
	if (s->symlist[mstage] != NULL) {
		/* The filter's list: names sent as it spelt them. */
		for (p = s->symlist[mstage]; *p != '\0' && n < MAX_STAGE_MACROS;
		     p = q) {
			while (*p == ' ' || *p == ',')
				p++;
			for (q = p; *q != '\0' && *q != ' ' && *q != ','; q++)
				continue;
			if (q == p)
				break;
			norm = owned[nowned++] = macro_norm(p, (size_t)(q - p));
			names[n] = owned[nowned++] =
			    sl_xstrndup(p, (size_t)(q - p));
			values[n++] = macro_value(s, norm);
		}
	} else {
		for (i = 0; sl_milter_default_macros[mstage][i] != NULL; i++) {
			names[n] = sl_milter_default_macros[mstage][i];
			values[n] = macro_value(s, names[n]);
			n++;
		}
		for (i = 0; mstage == SL_SMFIM_CONNECT && i < s->cf->nmacros &&
		     n < MAX_STAGE_MACROS;
		     i++) {
			if (in_default_lists(s->cf->macros[i].name))
				continue;
			names[n] = s->cf->macros[i].name;
			values[n++] = s->cf->macros[i].value;
		}
	}
	rc = sl_milter_put_macros(&s->out, cmd, names, values, n);
	for (i = 0; i < nowned; i++)
		free(owned[i]);
	if (rc < 0)
		sess_error(s, "macros for %s do not fit in a packet",
		    sl_milter_command_name(cmd));
	return rc;
}

/* ---------------------------------------------------------------- replies */

static void
end_replbody(struct session *s)
{
	if (!s->in_replbody)
		return;
	s->in_replbody = false;
	if (s->print) {
		printf("eom: replbody %zu bytes", s->replbody_len);
		if (s->cf->verbose) {
			fputs(": ", stdout);
			print_escaped((const char *)s->replbody.data,
			    s->replbody.len);
		}
		putchar('\n');
	}
	s->replbody_len = 0;
	s->replbody.len = 0;
}

/* Prints a modification, quarantine or progress received at EOB. */
static void
print_edit(struct session *s, const struct sl_milter_msg *m)
{
	if (m->code == SL_SMFIR_REPLBODY) {
		s->in_replbody = true;
		s->replbody_len += m->len;
		if (s->print && s->cf->verbose && m->len > 0) {
			if (s->replbody.alloc - s->replbody.len < m->len) {
				s->replbody.alloc = s->replbody.len + m->len;
				s->replbody.data = sl_xrealloc(s->replbody.data,
				    s->replbody.alloc);
			}
			memcpy(s->replbody.data + s->replbody.len, m->data,
			    m->len);
			s->replbody.len += m->len;
		}
		return;
	}
	end_replbody(s);
	if (!s->print)
		return;
	fputs("eom: ", stdout);
	switch (m->code) {
	case SL_SMFIR_ADDHEADER:
		fputs("addheader ", stdout);
		print_str(m->name);
		fputs(": ", stdout);
		print_str(m->value);
		break;
	case SL_SMFIR_INSHEADER:
		printf("insheader [%lu] ", (unsigned long)m->index);
		print_str(m->name);
		fputs(": ", stdout);
		print_str(m->value);
		break;
	case SL_SMFIR_CHGHEADER:
		fputs("chgheader ", stdout);
		print_str(m->name);
		printf("[%lu]", (unsigned long)m->index);
		if (m->value[0] == '\0') {
			fputs(" (delete)", stdout);
		} else {
			fputs(": ", stdout);
			print_str(m->value);
		}
		break;
	case SL_SMFIR_ADDRCPT:
	case SL_SMFIR_ADDRCPT_PAR:
	case SL_SMFIR_CHGFROM:
		fputs(m->code == SL_SMFIR_CHGFROM ? "chgfrom " : "addrcpt ",
		    stdout);
		print_str(m->str);
		if (m->args != NULL && m->args[0] != '\0') {
			putchar(' ');
			print_str(m->args);
		}
		break;
	case SL_SMFIR_DELRCPT:
		fputs("delrcpt ", stdout);
		print_str(m->str);
		break;
	case SL_SMFIR_QUARANTINE:
		fputs("quarantine ", stdout);
		print_str(m->str);
		break;
	}
	putchar('\n');
}

static bool
is_edit(uint8_t code)
{
	switch (code) {
	case SL_SMFIR_ADDHEADER:
	case SL_SMFIR_INSHEADER:
	case SL_SMFIR_CHGHEADER:
	case SL_SMFIR_ADDRCPT:
	case SL_SMFIR_ADDRCPT_PAR:
	case SL_SMFIR_DELRCPT:
	case SL_SMFIR_CHGFROM:
	case SL_SMFIR_REPLBODY:
	case SL_SMFIR_QUARANTINE:
		return true;
	}
	return false;
}

static void
print_verdict(const struct session *s, const char *label, const char *word,
    const char *text)
{
	if (!s->print)
		return;
	printf("%s: %s", label, word);
	if (text != NULL) {
		putchar(' ');
		print_str(text);
	}
	putchar('\n');
}

/* A final reply's verdict and its word; -1 if code is not final. */
static int
final_reply(uint8_t code, enum verdict *v_r, const char **word_r)
{
	static const struct {
		uint8_t code;
		enum verdict v;
		const char *word;
	} finals[] = {
		{ SL_SMFIR_CONTINUE, V_CONTINUE, "continue" },
		{ SL_SMFIR_SKIP, V_SKIP, "skip" },
		{ SL_SMFIR_ACCEPT, V_ACCEPT, "accept" },
		{ SL_SMFIR_REJECT, V_REJECT, "reject" },
		{ SL_SMFIR_TEMPFAIL, V_TEMPFAIL, "tempfail" },
		{ SL_SMFIR_DISCARD, V_DISCARD, "discard" },
		{ SL_SMFIR_REPLYCODE, V_REJECT, "reject" },
		{ SL_SMFIR_SHUTDOWN, V_SHUTDOWN, "shutdown" },
	};
	size_t i;

	for (i = 0; i < sizeof(finals) / sizeof(finals[0]); i++)
		if (finals[i].code == code) {
			*v_r = finals[i].v;
			*word_r = finals[i].word;
			return 0;
		}
	return -1;
}

/*
 * Reads replies to command cmd until a final one.  Progress is accepted
 * anywhere (each packet restarts the read timer); modifications and
 * quarantine only at end of message.
 */
static enum verdict
read_reply(struct session *s, uint8_t cmd, const char *label)
{
	struct sl_milter_packet pkt;
	struct sl_milter_msg m;
	enum verdict v;
	const char *err, *word;
	char what[64];
	size_t used;

	snprintf(what, sizeof(what), "reply to %s",
	    sl_milter_command_name(cmd));
	if (flush_out(s, sl_milter_command_name(cmd)) < 0)
		return V_ERROR;
	for (;;) {
		if (read_packet(s, what, &pkt, &used) < 0)
			return V_ERROR;
		memset(&m, 0, sizeof(m));
		if (sl_milter_decode_reply(&pkt, &m, &err) < 0) {
			sess_error(s, "protocol error in %s: 0x%02x (%s): %s",
			    what, pkt.cmd, sl_milter_reply_name(pkt.cmd), err);
			return V_ERROR;
		}
		if (m.code == SL_SMFIR_PROGRESS) {
			end_replbody(s);
			if (s->print)
				printf("%s: progress\n", label);
			consume_in(s, used);
			continue;
		}
		if (is_edit(m.code)) {
			if (cmd != SL_SMFIC_BODYEOB) {
				sess_error(s,
				    "protocol error in %s: %s outside end "
				    "of message",
				    what, sl_milter_reply_name(m.code));
				return V_ERROR;
			}
			print_edit(s, &m);
			consume_in(s, used);
			continue;
		}
		end_replbody(s);
		if (final_reply(m.code, &v, &word) == -1) {
			sess_error(s,
			    "protocol error in %s: unexpected 0x%02x (%s)",
			    what, m.code, sl_milter_reply_name(m.code));
			return V_ERROR;
		}
		if (m.code == SL_SMFIR_REPLYCODE) {
			v = m.str[0] == '5' ? V_REJECT : V_TEMPFAIL;
			word = v == V_REJECT ? "reject" : "tempfail";
		}
		print_verdict(s, label, word,
		    m.code == SL_SMFIR_REPLYCODE ? m.str : NULL);
		consume_in(s, used);
		return v;
	}
}

/* ---------------------------------------------------------------- events */

struct chunk {
	const uint8_t *p;
	size_t len;
};

static int
put_command(struct session *s, uint8_t cmd, const void *arg)
{
	const struct config *cf = s->cf;
	const struct envaddr *ea;
	const struct header *h;
	const struct chunk *ch;
	const char *strs[2];

	switch (cmd) {
	case SL_SMFIC_CONNECT:
		return sl_milter_put_connect(&s->out, cf->client_host,
		    cf->client_family, cf->client_port, cf->client_ip);
	case SL_SMFIC_HELO:
		strs[0] = cf->helo;
		return sl_milter_put_strings(&s->out, cmd, strs, 1);
	case SL_SMFIC_MAIL:
	case SL_SMFIC_RCPT:
		ea = arg;
		return sl_milter_put_strings(&s->out, cmd, ea->argv, ea->argc);
	case SL_SMFIC_HEADER:
		h = arg;
		strs[0] = h->name;
		strs[1] = h->value;
		return sl_milter_put_strings(&s->out, cmd, strs, 2);
	case SL_SMFIC_BODY:
		ch = arg;
		return sl_milter_put_body(&s->out, cmd, ch->p, ch->len);
	default:
		return sl_milter_put_empty(&s->out, cmd);
	}
}

/*
 * One event: its D packet (always, even when the event is suppressed),
 * then the command unless the filter set its NO* bit, then its reply
 * unless the filter set its NR_* bit.  Packets that get no reply stay
 * buffered and leave with the next write.
 */
static enum verdict
event(struct session *s, uint8_t cmd, const char *label, const void *arg)
{
	const struct sl_milter_event *ev = sl_milter_event_of(cmd);

	if (put_macros(s, cmd, ev->mstage) < 0)
		return V_ERROR;
	if ((s->proto & ev->no_bit) != 0) {
		if (s->print && s->cf->verbose)
			printf("%s: (not sent)\n", label);
		return V_CONTINUE;
	}
	if (put_command(s, cmd, arg) < 0) {
		sess_error(s, "%s: %s packet larger than %zu bytes", label,
		    sl_milter_command_name(cmd), (size_t)SL_MILTER_SEND_MAX);
		return V_ERROR;
	}
	if ((s->proto & ev->nr_bit) != 0) {
		if (s->print && s->cf->verbose)
			printf("%s: (no reply)\n", label);
		if (s->out.len >= FLUSH_AT &&
		    flush_out(s, sl_milter_command_name(cmd)) < 0)
			return V_ERROR;
		return V_CONTINUE;
	}
	return read_reply(s, cmd, label);
}

/* The session outcome of a verdict at CONNECT or HELO, or OUT_NONE. */
static enum outcome
conn_outcome(enum verdict v)
{
	switch (v) {
	case V_CONTINUE:
	case V_SKIP:
	case V_DISCARD: /* undefined here; Postfix ignores it */
		return OUT_NONE;
	case V_ACCEPT:
		return OUT_ACCEPT;
	case V_REJECT:
		return OUT_REJECT;
	case V_TEMPFAIL:
	case V_SHUTDOWN:
		return OUT_TEMPFAIL;
	case V_ERROR:
		break;
	}
	return OUT_ERROR;
}

/*
 * The outcome of a verdict at MAIL, DATA or content, or OUT_NONE.  Any
 * final verdict but continue ends the filter's part in the message: it
 * is back in HELO state and must get nothing more of it (5.2).
 */
static enum outcome
msg_outcome(struct session *s, enum verdict v)
{
	switch (v) {
	case V_CONTINUE:
	case V_SKIP:
		return OUT_NONE;
	case V_ACCEPT:
		s->txn_open = false;
		return OUT_ACCEPT;
	case V_REJECT:
		s->txn_open = false;
		return OUT_REJECT;
	case V_TEMPFAIL:
		s->txn_open = false;
		return OUT_TEMPFAIL;
	case V_DISCARD:
		s->txn_open = false;
		return OUT_DISCARD;
	case V_SHUTDOWN:
		return OUT_TEMPFAIL;
	case V_ERROR:
		break;
	}
	return OUT_ERROR;
}

static enum outcome
run_rcpts(struct session *s)
{
	const struct config *cf = s->cf;
	size_t i, nok, ntemp;
	enum verdict v;
	char *label;

	nok = ntemp = 0;
	for (i = 0; i < cf->nrcpts; i++) {
		s->rcpt = &cf->rcpts[i];
		label = sl_xasprintf("rcpt %s", s->rcpt->argv[0]);
		v = event(s, SL_SMFIC_RCPT, label, s->rcpt);
		free(label);
		switch (v) {
		case V_CONTINUE:
		case V_SKIP:
			nok++;
			break;
		case V_REJECT:
			/* That recipient only: libmilter stays in RCPT. */
			break;
		case V_TEMPFAIL:
			ntemp++;
			break;
		case V_ACCEPT:
			s->txn_open = false;
			return OUT_ACCEPT;
		case V_DISCARD:
			return OUT_DISCARD; /* the whole message; still open */
		case V_SHUTDOWN:
			return OUT_TEMPFAIL;
		case V_ERROR:
			return OUT_ERROR;
		}
	}
	if (nok == 0)
		return ntemp > 0 ? OUT_TEMPFAIL : OUT_REJECT;
	return OUT_NONE;
}

static enum outcome
run_content(struct session *s)
{
	const struct config *cf = s->cf;
	struct chunk ch;
	enum outcome o;
	enum verdict v;
	size_t i, off;
	char *label;
	int64_t t;

	for (i = 0; i < cf->nhdrs; i++) {
		label = sl_xasprintf("header %s", cf->hdrs[i].name);
		v = event(s, SL_SMFIC_HEADER, label, &cf->hdrs[i]);
		free(label);
		if ((o = msg_outcome(s, v)) != OUT_NONE)
			return o;
		if (v == V_SKIP)
			break;
	}
	v = event(s, SL_SMFIC_EOH, "eoh", NULL);
	if ((o = msg_outcome(s, v)) != OUT_NONE)
		return o;
	for (off = 0; off < cf->body_len; off += ch.len) {
		ch.p = cf->body + off;
		ch.len = cf->body_len - off;
		if (ch.len > SL_MILTER_CHUNK)
			ch.len = SL_MILTER_CHUNK;
		v = event(s, SL_SMFIC_BODY, "body", &ch);
		if ((o = msg_outcome(s, v)) != OUT_NONE)
			return o;
		if (v == V_SKIP)
			break;
	}
	t = sl_now_ms() + (int64_t)cf->timeout_ms * EOB_TIMEOUT_FACTOR;
	s->eob_deadline.tv_sec = t / 1000;
	s->eob_deadline.tv_nsec = (long)(t % 1000) * 1000000;
	s->in_eob = true;
	v = event(s, SL_SMFIC_BODYEOB, "eom", NULL);
	s->in_eob = false;
	o = msg_outcome(s, v);
	s->txn_open = false; /* every final reply to EOB ends the message */
	return o == OUT_NONE ? OUT_ACCEPT : o;
}

static enum outcome
run_events(struct session *s)
{
	const struct config *cf = s->cf;
	enum outcome o;
	enum verdict v;
	char *label;

	if ((o = conn_outcome(event(s, SL_SMFIC_CONNECT, "connect", NULL))) !=
	    OUT_NONE)
		return o;
	if ((o = conn_outcome(event(s, SL_SMFIC_HELO, "helo", NULL))) !=
	    OUT_NONE)
		return o;
	s->txn_open = true;
	label = sl_xasprintf("mail %s", cf->sender.argv[0]);
	v = event(s, SL_SMFIC_MAIL, label, &cf->sender);
	free(label);
	if ((o = msg_outcome(s, v)) != OUT_NONE)
		return o;
	if ((o = run_rcpts(s)) != OUT_NONE)
		return o;
	/* Postfix sends neither DATA nor its macros to a v2/v3 filter. */
	if (s->version >= 4) {
		v = event(s, SL_SMFIC_DATA, "data", NULL);
		if ((o = msg_outcome(s, v)) != OUT_NONE)
			return o;
	}
	return run_content(s);
}

static int
negotiate(struct session *s)
{
	struct sl_milter_packet pkt;
	struct sl_milter_msg m;
	uint32_t masked;
	const char *err;
	size_t used;
	int i;

	if (sl_milter_put_optneg(&s->out, SL_MILTER_VERSION, OFFER_ACTIONS,
	        OFFER_PROTO, NULL) < 0 ||
	    flush_out(s, "OPTNEG") < 0)
		return -1;
	if (read_packet(s, "reply to OPTNEG", &pkt, &used) < 0)
		return -1;
	if (pkt.cmd != SL_SMFIR_OPTNEG) {
		sess_error(s,
		    "negotiation: the filter answered 0x%02x (%s), not OPTNEG",
		    pkt.cmd, sl_milter_reply_name(pkt.cmd));
		return -1;
	}
	memset(&m, 0, sizeof(m));
	if (sl_milter_decode_reply(&pkt, &m, &err) < 0 ||
	    sl_milter_negotiate_mta(SL_MILTER_VERSION, OFFER_ACTIONS,
	        OFFER_PROTO, &m, &s->proto, &masked, &err) < 0) {
		sess_error(s, "negotiation: %s", err);
		return -1;
	}
	if (masked != 0)
		sess_error(s,
		    "negotiation: protocol bits 0x%lx were not offered; "
		    "ignored",
		    (unsigned long)masked);
	s->version = m.version;
	s->actions = m.actions;
	for (i = 0; i < SL_SMFIM_MAX; i++)
		if (m.symlist[i] != NULL)
			s->symlist[i] = sl_xstrdup(m.symlist[i]);
	if (s->print && s->cf->verbose) {
		printf("negotiate: version %lu actions 0x%lx protocol 0x%lx\n",
		    (unsigned long)s->version, (unsigned long)s->actions,
		    (unsigned long)s->proto);
		for (i = 0; i < SL_SMFIM_MAX; i++)
			if (s->symlist[i] != NULL)
				printf("negotiate: macros for stage %d: %s\n",
				    i, s->symlist[i]);
	}
	consume_in(s, used);
	return 0;
}

/*
 * After QUIT: wait (bounded) for the filter to close, so that it, not we,
 * keeps the TIME_WAIT state of a TCP connection.
 */
static void
wait_close(struct session *s)
{
	struct pollfd pfd;
	char buf[512];
	int64_t end;
	int left;

	end = sl_now_ms() + s->cf->timeout_ms;
	while ((left = (int)(end - sl_now_ms())) > 0) {
		pfd.fd = s->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) <= 0)
			return;
		if (recv(s->fd, buf, sizeof(buf), 0) <= 0)
			return;
	}
}

/* One milter connection with one message: returns its outcome. */
static enum outcome
run_session(const struct config *cf, bool print, long id)
{
	struct session s;
	enum outcome o;
	int i;

	memset(&s, 0, sizeof(s));
	s.cf = cf;
	s.fd = -1;
	s.print = print;
	snprintf(s.qid, sizeof(s.qid), "%05lX%06lX",
	    (unsigned long)getpid() & 0xfffff, (unsigned long)id & 0xffffff);
	o = OUT_ERROR;
	if (connect_filter(&s) < 0 || negotiate(&s) < 0)
		goto done;
	o = run_events(&s);
	if (o == OUT_ERROR)
		goto done; /* out of sync: close at once (8.1.8) */
	if (s.txn_open && sl_milter_put_empty(&s.out, SL_SMFIC_ABORT) < 0)
		o = OUT_ERROR;
	if (cf->abort_twice &&
	    (sl_milter_put_empty(&s.out, SL_SMFIC_ABORT) < 0 ||
	        sl_milter_put_empty(&s.out, SL_SMFIC_ABORT) < 0))
		o = OUT_ERROR;
	if (sl_milter_put_empty(&s.out, SL_SMFIC_QUIT) < 0 ||
	    flush_out(&s, "QUIT") < 0)
		o = OUT_ERROR;
	else
		wait_close(&s);
done:
	if (s.fd >= 0)
		close(s.fd);
	sl_milter_buf_free(&s.out);
	sl_milter_buf_free(&s.replbody);
	free(s.in);
	for (i = 0; i < SL_SMFIM_MAX; i++)
		free(s.symlist[i]);
	if (print)
		fflush(stdout);
	return o;
}

/* ---------------------------------------------------------------- replay */

static void *
replay_thread(void *arg)
{
	const struct config *cf = arg;
	enum outcome o;
	long id;

	for (;;) {
		pthread_mutex_lock(&stats_lock);
		id = next_session < cf->count ? next_session++ : -1;
		pthread_mutex_unlock(&stats_lock);
		if (id < 0)
			return NULL;
		o = run_session(cf, false, id);
		pthread_mutex_lock(&stats_lock);
		switch (o) {
		case OUT_ACCEPT:
		case OUT_DISCARD:
			n_ok++;
			break;
		case OUT_REJECT:
			n_rejected++;
			break;
		case OUT_TEMPFAIL:
			n_tempfailed++;
			break;
		default:
			n_errors++;
			break;
		}
		pthread_mutex_unlock(&stats_lock);
	}
}

static int
replay(const struct config *cf)
{
	pthread_t *tids;
	int64_t start;
	double secs;
	long i;
	int err;

	tids = sl_xcalloc((size_t)cf->conc, sizeof(*tids));
	start = sl_now_ms();
	for (i = 0; i < cf->conc; i++)
		if ((err = pthread_create(&tids[i], NULL, replay_thread,
		         (void *)(uintptr_t)cf)) != 0)
			fatal("pthread_create: %s", strerror(err));
	for (i = 0; i < cf->conc; i++)
		pthread_join(tids[i], NULL);
	secs = (double)(sl_now_ms() - start) / 1000.0;
	free(tids);
	printf("sessions=%ld ok=%ld rejected=%ld tempfailed=%ld errors=%ld "
	       "seconds=%.3f sessions_per_second=%.1f\n",
	    cf->count, n_ok, n_rejected, n_tempfailed, n_errors, secs,
	    secs > 0 ? (double)cf->count / secs : 0.0);
	fflush(stdout);
	return n_errors == 0 ? 0 : OUT_ERROR;
}

/* ---------------------------------------------------------------- setup */

/*
 * SOCKET: inet:PORT@HOST, inet6:PORT@HOST, unix:/path (local:/path, or a
 * bare absolute path), inet:HOST:PORT, HOST:PORT, [ADDR]:PORT.
 */
static void
resolve_socket(struct config *cf, const char *spec)
{
	struct addrinfo hints, *res;
	struct sockaddr_un *sun;
	char *host, *port, *at, *copy, *end;
	int family, err;

	cf->sock_spec = spec;
	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0 ||
	    spec[0] == '/') {
		spec = spec[0] == '/' ? spec : strchr(spec, ':') + 1;
		sun = (struct sockaddr_un *)&cf->sa;
		if (strlen(spec) >= sizeof(sun->sun_path) || spec[0] == '\0')
			fatal("-s %s: bad socket path", cf->sock_spec);
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, spec, strlen(spec) + 1);
		cf->salen = sizeof(*sun);
		return;
	}
	family = AF_UNSPEC;
	if (strncmp(spec, "inet:", 5) == 0) {
		family = AF_INET;
		spec += 5;
	} else if (strncmp(spec, "inet6:", 6) == 0) {
		family = AF_INET6;
		spec += 6;
	}
	if (strchr(spec, '@') == NULL && strchr(spec, ':') == NULL)
		copy = sl_xasprintf("%s@%s", spec,
		    family == AF_INET6 ? "::1" : "127.0.0.1");
	else
		copy = sl_xstrdup(spec);
	if ((at = strchr(copy, '@')) != NULL) {
		*at = '\0';
		port = copy;
		host = at + 1;
	} else {
		at = strrchr(copy, ':');
		*at = '\0';
		host = copy;
		port = at + 1;
	}
	end = host + strlen(host);
	if (host[0] == '[' && end > host + 1 && end[-1] == ']') {
		end[-1] = '\0';
		host++;
	}
	if (*host == '\0' || *port == '\0')
		fatal("-s %s: expected inet:PORT@HOST, inet6:PORT@HOST, "
		      "unix:/path or HOST:PORT",
		    cf->sock_spec);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	if ((err = getaddrinfo(host, port, &hints, &res)) != 0)
		fatal("-s %s: %s", cf->sock_spec, gai_strerror(err));
	memcpy(&cf->sa, res->ai_addr, res->ai_addrlen);
	cf->salen = res->ai_addrlen;
	freeaddrinfo(res);
	free(copy);
}

/* -c IP[:PORT]: IPv4, bare or bracketed IPv6, an optional IPv6: prefix. */
static void
parse_client(struct config *cf, const char *spec)
{
	struct in6_addr a6;
	struct in_addr a4;
	char *copy, *ip, *port, *p;

	copy = sl_xstrdup(spec);
	ip = copy;
	port = NULL;
	if (strncasecmp(ip, "IPv6:", 5) == 0)
		ip += 5;
	if (ip[0] == '[' && (p = strchr(ip, ']')) != NULL) {
		*p = '\0';
		ip++;
		if (p[1] == ':')
			port = p + 2;
		else if (p[1] != '\0')
			fatal("-c %s: expected IP[:PORT]", spec);
		if (strncasecmp(ip, "IPv6:", 5) == 0)
			ip += 5;
	} else if ((p = strchr(ip, ':')) != NULL &&
	    strchr(p + 1, ':') == NULL) {
		*p = '\0';
		port = p + 1;
	}
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		cf->client_family = '4';
		inet_ntop(AF_INET, &a4, cf->client_ip, sizeof(cf->client_ip));
	} else if (inet_pton(AF_INET6, ip, &a6) == 1) {
		cf->client_family = '6';
		inet_ntop(AF_INET6, &a6, cf->client_ip, sizeof(cf->client_ip));
	} else {
		fatal("-c %s: not an IP address", spec);
	}
	cf->client_port =
	    port == NULL ? 0 : (uint16_t)parse_long("c", port, 0, 65535);
	free(copy);
}

/* "a@b SIZE=1" -> argv { "<a@b>", "SIZE=1" }, bare "a@b", host "b". */
static void
parse_envaddr(struct envaddr *ea, const char *opt, const char *spec)
{
	char *p, *word, *addr, *at;
	size_t len;

	memset(ea, 0, sizeof(*ea));
	ea->buf = sl_xstrdup(spec);
	p = ea->buf;
	while (*p == ' ')
		p++;
	addr = p;
	while (*p != '\0' && *p != ' ')
		p++;
	if (*p != '\0')
		*p++ = '\0';
	len = strlen(addr);
	if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
		ea->bare = sl_xstrndup(addr + 1, len - 2);
		ea->argv[0] = sl_xstrdup(addr);
	} else {
		ea->bare = sl_xstrdup(addr);
		ea->argv[0] = sl_xasprintf("<%s>", addr);
	}
	ea->argc = 1;
	if ((at = strrchr(ea->bare, '@')) != NULL && at[1] != '\0')
		ea->host = sl_xstrdup(at + 1);
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		word = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if (*p != '\0')
			*p++ = '\0';
		if (ea->argc == SL_MILTER_MAX_ARGS)
			fatal("-%s %s: too many parameters", opt, spec);
		ea->argv[ea->argc++] = word;
	}
}

static void
free_envaddr(struct envaddr *ea)
{
	free((void *)(uintptr_t)ea->argv[0]);
	free(ea->bare);
	free(ea->host);
	free(ea->buf);
}

static void
add_macro(struct config *cf, const char *spec)
{
	const char *eq;
	size_t i;
	char *name;

	if ((eq = strchr(spec, '=')) == NULL || eq == spec)
		fatal("-m %s: expected NAME=VALUE", spec);
	name = macro_norm(spec, (size_t)(eq - spec));
	for (i = 0; i < cf->nmacros; i++) {
		if (strcmp(cf->macros[i].name, name) == 0) {
			free(name);
			free(cf->macros[i].value);
			cf->macros[i].value = sl_xstrdup(eq + 1);
			return;
		}
	}
	cf->macros =
	    sl_xreallocarray(cf->macros, cf->nmacros + 1, sizeof(*cf->macros));
	cf->macros[cf->nmacros].name = name;
	cf->macros[cf->nmacros].value = sl_xstrdup(eq + 1);
	cf->nmacros++;
}

static uint8_t *
read_all(const char *path, size_t *len_r)
{
	uint8_t *buf;
	size_t len, alloc;
	ssize_t n;
	int fd;

	fd = path == NULL ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fatal("%s: %s", path, strerror(errno));
	alloc = 65536;
	len = 0;
	buf = sl_xmalloc(alloc);
	for (;;) {
		if (len == alloc) {
			if (alloc > SIZE_MAX / 2)
				fatal("message too large");
			alloc *= 2;
			buf = sl_xrealloc(buf, alloc);
		}
		n = read(fd, buf + len, alloc - len);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("%s: %s", path == NULL ? "stdin" : path,
			    strerror(errno));
		}
		len += (size_t)n;
	}
	if (path != NULL)
		close(fd);
	*len_r = len;
	return buf;
}

/*
 * Splits the message into header fields (name without the colon, value
 * without one leading space, folded lines joined with LF, CR dropped) and
 * the body, with every line end made CRLF and a last line terminated.
 * The header section ends at an empty line or at the first line that is
 * not a header field (that line starts the body).
 */
static void
parse_message(struct config *cf, const uint8_t *p, size_t n)
{
	const uint8_t *line, *nl, *colon;
	struct header *h;
	size_t pos, len, next, nlen, i, o;
	char *v;

	pos = 0;
	while (pos < n) {
		line = p + pos;
		nl = memchr(line, '\n', n - pos);
		len = nl != NULL ? (size_t)(nl - line) : n - pos;
		next = pos + len + (nl != NULL ? 1 : 0);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0) {
			pos = next;
			break;
		}
		if (memchr(line, '\0', len) != NULL)
			break;
		if (line[0] == ' ' || line[0] == '\t') {
			if (cf->nhdrs == 0)
				break;
			h = &cf->hdrs[cf->nhdrs - 1];
			v = sl_xasprintf("%s\n%.*s", h->value, (int)len,
			    (const char *)line);
			free(h->value);
			h->value = v;
			pos = next;
			continue;
		}
		colon = memchr(line, ':', len);
		if (colon == NULL || colon == line)
			break;
		nlen = (size_t)(colon - line);
		while (nlen > 0 &&
		    (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
			nlen--;
		cf->hdrs = sl_xreallocarray(cf->hdrs, cf->nhdrs + 1,
		    sizeof(*cf->hdrs));
		h = &cf->hdrs[cf->nhdrs++];
		h->name = sl_xstrndup((const char *)line, nlen);
		colon++;
		if (colon < line + len && *colon == ' ')
			colon++;
		h->value = sl_xstrndup((const char *)colon,
		    (size_t)(line + len - colon));
		pos = next;
	}
	/* The body: LF -> CRLF; at worst twice as long, plus a last CRLF. */
	len = n - pos;
	if (len > (SIZE_MAX - 2) / 2)
		fatal("message too large");
	cf->body = sl_xmalloc(2 * len + 2);
	o = 0;
	for (i = pos; i < n; i++) {
		if (p[i] == '\n' && (i == pos || p[i - 1] != '\r'))
			cf->body[o++] = '\r';
		cf->body[o++] = p[i];
	}
	if (o > 0 && cf->body[o - 1] != '\n') {
		cf->body[o++] = '\r';
		cf->body[o++] = '\n';
	}
	cf->body_len = o;
}

static void
free_config(struct config *cf)
{
	size_t i;

	for (i = 0; i < cf->nhdrs; i++) {
		free(cf->hdrs[i].name);
		free(cf->hdrs[i].value);
	}
	free(cf->hdrs);
	free(cf->body);
	for (i = 0; i < cf->nrcpts; i++)
		free_envaddr(&cf->rcpts[i]);
	free(cf->rcpts);
	free_envaddr(&cf->sender);
	for (i = 0; i < cf->nmacros; i++) {
		free(cf->macros[i].name);
		free(cf->macros[i].value);
	}
	free(cf->macros);
	free(cf->client_host);
	free(cf->client_addr_mac);
	free(cf->client_port_mac);
	free(cf->underscore);
}

int
main(int argc, char **argv)
{
	struct config cf;
	const char *sock = "inet:8891@127.0.0.1";
	const char *client = "127.0.0.1";
	const char *sender = "sender@example.org";
	uint8_t *msg;
	size_t msg_len;
	bool replay_mode = false;
	int c, rc;

	memset(&cf, 0, sizeof(cf));
	cf.helo = "client.example.org";
	cf.timeout_ms = 30000;
	cf.count = 1;
	cf.conc = 1;
	while ((c = getopt(argc, argv, "Ac:f:H:j:m:n:r:s:t:v")) != -1) {
		switch (c) {
		case 'A':
			cf.abort_twice = true;
			break;
		case 'c':
			client = optarg;
			break;
		case 'f':
			sender = optarg;
			break;
		case 'H':
			cf.helo = optarg;
			break;
		case 'j':
			cf.conc = parse_long("j", optarg, 1, 1024);
			break;
		case 'm':
			add_macro(&cf, optarg);
			break;
		case 'n':
			cf.count = parse_long("n", optarg, 1, LONG_MAX / 2);
			replay_mode = true;
			break;
		case 'r':
			cf.rcpts = sl_xreallocarray(cf.rcpts, cf.nrcpts + 1,
			    sizeof(*cf.rcpts));
			parse_envaddr(&cf.rcpts[cf.nrcpts++], "r", optarg);
			break;
		case 's':
			sock = optarg;
			break;
		case 't':
			cf.timeout_ms =
			    (int)parse_long("t", optarg, 1, 3600) * 1000;
			break;
		case 'v':
			cf.verbose = true;
			break;
		default:
			usage();
		}
	}
	if (argc - optind > 1)
		usage();
	if (cf.conc > cf.count)
		cf.conc = cf.count;
	resolve_socket(&cf, sock);
	parse_client(&cf, client);
	parse_envaddr(&cf.sender, "f", sender);
	if (cf.nrcpts == 0) {
		cf.rcpts = sl_xcalloc(1, sizeof(*cf.rcpts));
		parse_envaddr(&cf.rcpts[cf.nrcpts++], "r", "rcpt@example.org");
	}
	if (gethostname(cf.hostname, sizeof(cf.hostname)) < 0 ||
	    cf.hostname[0] == '\0')
		snprintf(cf.hostname, sizeof(cf.hostname), "localhost");
	cf.hostname[sizeof(cf.hostname) - 1] = '\0';
	cf.client_host = sl_xasprintf("[%s]", cf.client_ip);
	cf.client_addr_mac = sl_xasprintf("%s%s",
	    cf.client_family == '6' ? "IPv6:" : "", cf.client_ip);
	cf.client_port_mac = sl_xasprintf("%u", (unsigned)cf.client_port);
	cf.underscore = sl_xasprintf("unknown [%s]", cf.client_addr_mac);

	msg = read_all(optind < argc ? argv[optind] : NULL, &msg_len);
	parse_message(&cf, msg, msg_len);
	free(msg);

	if (replay_mode)
		rc = replay(&cf);
	else
		rc = (int)run_session(&cf, true, 0);
	free_config(&cf);
	return rc;
}
