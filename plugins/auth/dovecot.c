/*
 * auth/dovecot - SMTP AUTH against Dovecot's authentication service,
 * through its auth-client socket (sluice-plugins(7)).
 *
 * Hook auth (sluice-smtpd only).  One connection per authentication, the
 * client side of the Dovecot authentication protocol (version 1):
 *
 *	C: VERSION 1 2, CPID pid
 *	S: VERSION 1 x, MECH ..., SPID, CUID, COOKIE ..., DONE
 *	C: AUTH 1 PLAIN service=smtp [secured] lip= rip= lport= rport=
 *	   no-penalty session=ID resp=base64("\0user\0password")
 *	S: OK 1 ... | FAIL 1 [temp | code=temp_fail] [reason=...] ...
 *
 * (fields separated by TAB, lines by LF).  OK is SL_OK; FAIL is SL_DENY,
 * or SL_DENYSOFT when Dovecot says the failure is temporary.  A socket
 * that is missing or refuses, a timeout, a closed connection or anything
 * unexpected is SL_DENYSOFT (454) with a log line.  no-penalty: sluice
 * counts and delays failures itself (auth_ip_max_failures), and Dovecot's
 * own penalty would hold sessions beyond timeout=.
 *
 * The exchange is non-blocking on the connection's loop thread
 * (sl_conn_io_wait): it is a few short lines on a local socket, and
 * Dovecot delays its FAIL replies (auth_failure_delay, 2 s by default),
 * which would tie up a worker thread per failing client for nothing.  The
 * job hangs off the connection (sl_conn_data_set), so a session that ends
 * mid-exchange closes the socket and drops the wait.
 *
 *	plugin auth/dovecot socket=/run/dovecot/auth-client service=smtp
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sluice/plugin.h>

#include "base64.h"
#include "log.h"
#include "xmalloc.h"

#define DV_DEFAULT_TIMEOUT_MS 10000
#define DV_BACKSTOP_MS 2000
/* Dovecot: "expected to fit into 16384 bytes". */
#define DV_LINE_MAX 16384

struct dovecot {
	char *socket;  /* socket= */
	char *service; /* service= */
	struct sockaddr_un sa;
};

enum dv_state {
	DV_CONNECTING,
	DV_HANDSHAKE, /* VERSION and CPID sent; reading up to DONE */
	DV_AUTH,      /* AUTH sent; waiting for OK, FAIL or CONT */
};

struct dv_job {
	const struct dovecot *dv;
	struct sl_conn *conn;
	struct sl_async *async;
	char inst[64];
	int fd;
	struct sl_io *io;
	enum dv_state state;
	char *out; /* what is still to send; holds the password */
	size_t out_len, out_off, out_size;
	char *auth; /* the AUTH line, sent after DONE */
	size_t auth_len;
	char in[DV_LINE_MAX + 1];
	size_t in_len;
	bool has_plain;
	uint64_t deadline_ms;
	char why[256]; /* the failure, for the log */
};

static const struct sl_conf_def dv_conf[] = {
	{ .name = "socket",
	    .type = SL_CONF_STR,
	    .def = NULL,
	    .offset = offsetof(struct dovecot, socket),
	    .help = "Dovecot's auth-client socket" },
	{ .name = "service",
	    .type = SL_CONF_STR,
	    .def = "smtp",
	    .offset = offsetof(struct dovecot, service),
	    .help = "the service name Dovecot sees (passdb filters)" },
	SL_CONF_END,
};

static void
wipe_free(char **p, size_t size)
{
	if (*p == NULL)
		return;
	explicit_bzero(*p, size);
	free(*p);
	*p = NULL;
}

static void
job_free(void *arg)
{
	struct dv_job *job = arg;

	sl_io_cancel(&job->io);
	if (job->fd >= 0)
		close(job->fd);
	wipe_free(&job->out, job->out_size);
	wipe_free(&job->auth, job->auth_len + 1);
	explicit_bzero(job->in, sizeof(job->in));
	sl_async_done(&job->async, SL_ERROR); /* late: only frees it */
	free(job);
}

/* Ends the job; the caller must not touch it afterwards. */
static void
job_drop(struct dv_job *job)
{
	sl_conn_data_set(job->conn, job->dv, NULL, NULL);
}

static enum sl_verdict __attribute__((format(printf, 2, 3)))
job_fail(struct dv_job *job, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(job->why, sizeof(job->why), fmt, ap);
	va_end(ap);
	return SL_DENYSOFT;
}

/* --- the protocol -------------------------------------------------------- */

/* Queues s for sending (the password is wiped with the buffer). */
static void
out_add(struct dv_job *job, const char *s, size_t n)
{
	char *nb;

	if (job->out_len + n > job->out_size) {
		nb = sl_xmalloc(job->out_len + n);
		if (job->out != NULL)
			memcpy(nb, job->out, job->out_len);
		wipe_free(&job->out, job->out_size);
		job->out = nb;
		job->out_size = job->out_len + n;
	}
	memcpy(job->out + job->out_len, s, n);
	job->out_len += n;
}

/* A FAIL's reason=, for the log: printable only, cut. */
static void
fail_reason(char *params, char *dst, size_t size)
{
	char *p, *save = NULL;
	size_t i;

	dst[0] = '\0';
	for (p = strtok_r(params, "\t", &save); p != NULL;
	     p = strtok_r(NULL, "\t", &save))
		if (strncmp(p, "reason=", 7) == 0)
			snprintf(dst, size, "%s", p + 7);
	for (i = 0; dst[i] != '\0'; i++)
		if ((unsigned char)dst[i] < ' ' || dst[i] == '"')
			dst[i] = '?';
}

static bool
has_param(const char *params, const char *name)
{
	size_t n = strlen(name);
	const char *p = params;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, n) == 0 && (p[n] == '\t' || p[n] == '\0'))
			return true;
		p = strchr(p, '\t');
		if (p != NULL)
			p++;
	}
	return false;
}

/* "CMD\t1" or "CMD\t1\t...": a reply to our request (id 1). */
static bool
is_reply(const char *line, const char *cmd)
{
	size_t n = strlen(cmd);

	return strncmp(line, cmd, n) == 0 && strncmp(line + n, "\t1", 2) == 0 &&
	    (line[n + 2] == '\t' || line[n + 2] == '\0');
}

/* One line from Dovecot; SL_PENDING while the exchange goes on. */
static enum sl_verdict
handle_line(struct dv_job *job, char *line)
{
	char reason[128];
	char *rest;

	if (job->state == DV_HANDSHAKE) {
		if (strncmp(line, "VERSION\t", 8) == 0 &&
		    strncmp(line + 8, "1\t", 2) != 0)
			return job_fail(job, "unsupported protocol %.40s",
			    line + 8);
		if (strncmp(line, "MECH\tPLAIN", 10) == 0 &&
		    (line[10] == '\t' || line[10] == '\0'))
			job->has_plain = true;
		if (strcmp(line, "DONE") != 0)
			return SL_PENDING;
		if (!job->has_plain)
			return job_fail(job, "Dovecot does not offer PLAIN");
		out_add(job, job->auth, job->auth_len);
		wipe_free(&job->auth, job->auth_len + 1);
		job->state = DV_AUTH;
		return SL_PENDING;
	}
	if (is_reply(line, "OK"))
		return SL_OK;
	if (is_reply(line, "CONT"))
		return job_fail(job, "unexpected CONT for PLAIN");
	if (!is_reply(line, "FAIL"))
		return SL_PENDING; /* a notice, or not ours */
	rest = line + strlen("FAIL\t1");
	rest += rest[0] == '\t';
	if (has_param(rest, "temp") || has_param(rest, "code=temp_fail")) {
		fail_reason(rest, reason, sizeof(reason));
		return job_fail(job, "temporary failure reason=\"%s\"", reason);
	}
	fail_reason(rest, reason, sizeof(reason));
	sl_log(LOG_INFO, sl_conn_id(job->conn),
	    "plugin=%s verdict=deny reason=bad-credentials dovecot=\"%s\"",
	    job->inst, reason);
	return SL_DENY;
}

/* Reads what is there; SL_PENDING to wait for more. */
static enum sl_verdict
read_lines(struct dv_job *job)
{
	enum sl_verdict v;
	char *lf;
	size_t used;
	ssize_t n;

	for (;;) {
		n = recv(job->fd, job->in + job->in_len,
		    DV_LINE_MAX - job->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return SL_PENDING;
		if (n < 0)
			return job_fail(job, "read: %s", strerror(errno));
		if (n == 0)
			return job_fail(job, "Dovecot closed the connection");
		job->in_len += (size_t)n;
		job->in[job->in_len] = '\0';
		while ((lf = memchr(job->in, '\n', job->in_len)) != NULL) {
			*lf = '\0';
			v = handle_line(job, job->in);
			used = (size_t)(lf + 1 - job->in);
			memmove(job->in, lf + 1, job->in_len - used);
			job->in_len -= used;
			if (v != SL_PENDING)
				return v;
		}
		if (job->in_len == DV_LINE_MAX)
			return job_fail(job, "line longer than %d bytes",
			    DV_LINE_MAX);
	}
}

static void io_cb(void *arg, unsigned int what);

/* Writes, then reads; SL_PENDING after arming a wait. */
static enum sl_verdict
advance(struct dv_job *job)
{
	enum sl_verdict v;
	uint64_t now = sl_now_ms();
	unsigned int left;
	ssize_t n;

	if (now >= job->deadline_ms)
		return job_fail(job, "timed out");
	left = (unsigned int)(job->deadline_ms - now);
	while (job->out_off < job->out_len) {
		n = send(job->fd, job->out + job->out_off,
		    job->out_len - job->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			job->io = sl_conn_io_wait(job->conn, job->fd,
			    SL_IO_WRITE, left, io_cb, job);
			return SL_PENDING;
		}
		if (n < 0)
			return job_fail(job, "write: %s", strerror(errno));
		job->out_off += (size_t)n;
	}
	if (job->out != NULL)
		explicit_bzero(job->out, job->out_size);
	job->out_len = job->out_off = 0;
	v = read_lines(job);
	if (v == SL_PENDING && job->out_len > 0)
		return advance(job); /* DONE came: send AUTH */
	if (v == SL_PENDING)
		job->io = sl_conn_io_wait(job->conn, job->fd, SL_IO_READ, left,
		    io_cb, job);
	return v;
}

static void
finish(struct dv_job *job, enum sl_verdict v)
{
	if (v == SL_DENYSOFT)
		sl_log(LOG_ERR, sl_conn_id(job->conn),
		    "plugin=%s verdict=denysoft socket=%s error=\"%s\"",
		    job->inst, job->dv->socket, job->why);
	else if (v == SL_OK)
		sl_log(LOG_DEBUG, sl_conn_id(job->conn), "plugin=%s verdict=ok",
		    job->inst);
}

static void
io_cb(void *arg, unsigned int what)
{
	struct dv_job *job = arg;
	enum sl_verdict v;
	socklen_t len = sizeof(int);
	int err = 0;

	job->io = NULL;
	if ((what & SL_IO_TIMEOUT) != 0)
		v = job_fail(job, "timed out");
	else if (job->state == DV_CONNECTING &&
	    (getsockopt(job->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
	        err != 0))
		v = job_fail(job, "connect: %s",
		    strerror(err != 0 ? err : errno));
	else {
		if (job->state == DV_CONNECTING)
			job->state = DV_HANDSHAKE;
		v = advance(job);
	}
	if (v == SL_PENDING)
		return;
	finish(job, v);
	sl_async_done(&job->async, v);
	job_drop(job);
}

/* --- the hook ------------------------------------------------------------ */

/* The AUTH line, with the credentials. */
static void
make_auth(struct dv_job *job, struct sl_hookctx *ctx)
{
	const struct sl_hookargs *a = sl_hook_args(ctx);
	struct sl_conn *c = sl_hook_conn(ctx);
	size_t lu = strlen(a->name), lp = strlen(a->value), n, size;
	uint8_t *plain;
	char *b64;

	n = lu + lp + 2;
	plain = sl_xmalloc(n);
	plain[0] = '\0';
	memcpy(plain + 1, a->name, lu + 1);
	memcpy(plain + lu + 2, a->value, lp);
	size = SL_BASE64_ENCODED_LEN(n) + 1;
	b64 = sl_xmalloc(size);
	(void)sl_base64_encode(plain, n, b64, size);
	explicit_bzero(plain, n);
	free(plain);
	job->auth = sl_xasprintf("AUTH\t1\tPLAIN\tservice=%s\t%slip=%s\trip=%s"
	                         "\tlport=%u\trport=%u\tno-penalty\tsession=%s"
	                         "\tresp=%s\n",
	    job->dv->service, sl_conn_is_tls(c) ? "secured\t" : "",
	    sl_conn_local_ip(c), sl_conn_remote_ip(c), sl_conn_local_port(c),
	    sl_conn_remote_port(c), sl_conn_id(c), b64);
	job->auth_len = strlen(job->auth);
	explicit_bzero(b64, size);
	free(b64);
}

static enum sl_verdict
dv_auth(void *state, struct sl_hookctx *ctx)
{
	const struct dovecot *dv = state;
	const struct sl_hookargs *a = sl_hook_args(ctx);
	struct sl_conn *c = sl_hook_conn(ctx);
	unsigned int timeout = sl_hook_timeout(ctx);
	struct dv_job *job;
	enum sl_verdict v;
	char hello[64];

	if (a->name == NULL || a->value == NULL)
		return SL_DECLINED;
	if (timeout == 0)
		timeout = DV_DEFAULT_TIMEOUT_MS;
	job = sl_xcalloc(1, sizeof(*job));
	job->dv = dv;
	job->conn = c;
	job->fd = -1;
	job->deadline_ms = sl_now_ms() + timeout;
	snprintf(job->inst, sizeof(job->inst), "%s", sl_hook_plugin_name(ctx));
	sl_conn_data_set(c, dv, job, job_free);
	make_auth(job, ctx);
	snprintf(hello, sizeof(hello), "VERSION\t1\t2\nCPID\t%ld\n",
	    (long)getpid());
	out_add(job, hello, strlen(hello));
	job->fd =
	    socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (job->fd < 0)
		v = job_fail(job, "socket: %s", strerror(errno));
	else if (connect(job->fd, (const struct sockaddr *)&dv->sa,
	             sizeof(dv->sa)) == 0) {
		job->state = DV_HANDSHAKE;
		v = advance(job);
	} else if (errno == EINPROGRESS || errno == EAGAIN) {
		job->state = DV_CONNECTING;
		job->io = sl_conn_io_wait(c, job->fd, SL_IO_WRITE, timeout,
		    io_cb, job);
		v = SL_PENDING;
	} else
		v = job_fail(job, "connect: %s", strerror(errno));
	if (v != SL_PENDING) {
		finish(job, v);
		job_drop(job);
		return v;
	}
	job->async = sl_async_begin(ctx);
	sl_async_timeout(job->async, timeout + DV_BACKSTOP_MS);
	return SL_PENDING;
}

/* --- life ---------------------------------------------------------------- */

static int
dv_init(void **state_r, const char **error_r)
{
	struct dovecot *dv = *state_r;

	if (dv->socket == NULL) {
		*error_r = "socket= is required";
		return -1;
	}
	if (dv->socket[0] != '/') {
		*error_r = "socket: needs an absolute path";
		return -1;
	}
	if (strlen(dv->socket) >= sizeof(dv->sa.sun_path)) {
		*error_r = "socket: path too long";
		return -1;
	}
	if (dv->service[0] == '\0' ||
	    strcspn(dv->service, "\t\n\r\001") != strlen(dv->service)) {
		*error_r = "service: must be a non-empty word";
		return -1;
	}
	dv->sa.sun_family = AF_UNIX;
	memcpy(dv->sa.sun_path, dv->socket, strlen(dv->socket) + 1);
	return 0;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "auth/dovecot",
	.conf = dv_conf,
	.state_size = sizeof(struct dovecot),
	.init = dv_init,
	.hooks = { [SL_HOOK_AUTH] = dv_auth },
	.front_ends = SL_FRONT_SMTPD,
};
