/*
 * queue/maildir - deliver accepted mail into Maildirs (sluice-plugins(7)).
 *
 * Hook queue (sluice-smtpd only).  path= names one Maildir, or a template
 * with %l (local part), %d (domain) or %u (whole address) that gives each
 * recipient its own; substituted text is lower-cased and cannot climb out
 * of the template ('/' and a leading '.' become '_').  Delivery follows
 * the Maildir protocol (https://cr.yp.to/proto/maildir.html) and
 * DESIGN.md "Durability and safety": the message goes to tmp/UNIQUE, is
 * fsync'ed, renamed into new/, and new/ is fsync'ed; only then does the
 * client get 250.  All of it runs on the worker pool; every failure
 * tempfails the whole message (451 4.3.0), never a silent accept.
 *
 * Copies to several Maildirs are all written and synced in tmp/ before
 * the first rename, so a failed write leaves no copy behind; only a
 * failing rename or directory sync after a successful one can leave a
 * delivered copy that the client's retry then duplicates.
 *
 *	plugin queue/maildir path=/var/mail/%d/%l
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#define MAILDIR_HOST_MAX 128 /* escaped host name, bytes */
#define MAILDIR_NAME_MAX 256 /* a unique file name, bytes */
#define MAILDIR_ERROR_MAX 512
#define MAILDIR_MODE 0700
#define MAILDIR_FILE_MODE 0600

struct maildir {
	char *path; /* path= */
	/* set by init */
	bool per_rcpt;               /* path has a %l, %d or %u */
	char host[MAILDIR_HOST_MAX]; /* for unique names, escaped */
};

static const struct sl_conf_def maildir_conf[] = {
	{ .name = "path",
	    .type = SL_CONF_STR,
	    .def = "var/Maildir",
	    .offset = offsetof(struct maildir, path),
	    .help = "the Maildir; %l, %d, %u: per recipient" },
	SL_CONF_END,
};

/* One copy of the message: a Maildir and the file's state in it. */
struct maildir_copy {
	char *dir;
	char name[MAILDIR_NAME_MAX];
	bool in_tmp; /* tmp/name exists and is ours */
};

/* What the hook hands to the worker and the worker to done. */
struct maildir_job {
	const struct maildir *st;
	struct sl_async *async;
	struct sl_txn *txn;
	char id[64];
	char conn_id[64];
	struct maildir_copy *copies;
	size_t ncopies;
	bool failed;
	bool delivered_some; /* a copy reached new/ before the failure */
	char error[MAILDIR_ERROR_MAX];
};

/* Deliveries by this process, for unique names ("Q" in the spec). */
static atomic_ulong maildir_deliveries;

/* --- init ---------------------------------------------------------------- */

/*
 * The Maildir spec's host part: '/' and ':' would break the name (the
 * second separates the info part), so they become \057 and \072.
 */
static void
escape_host(const char *in, char *out, size_t size)
{
	size_t o = 0;
	const char *rep;
	char one[2];

	for (; *in != '\0'; in++) {
		if (*in == '/')
			rep = "\\057";
		else if (*in == ':')
			rep = "\\072";
		else {
			one[0] = *in;
			one[1] = '\0';
			rep = one;
		}
		if (strlen(rep) >= size - o)
			break;
		memcpy(out + o, rep, strlen(rep));
		o += strlen(rep);
	}
	out[o] = '\0';
}

static char maildir_init_error[256];

static int
maildir_init(void **state_r, const char **error_r)
{
	struct maildir *st = *state_r;
	char host[256];
	const char *p;

	if (st->path == NULL || st->path[0] == '\0') {
		*error_r = "path: must not be empty";
		return -1;
	}
	for (p = st->path; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == 'l' || *p == 'd' || *p == 'u')
			st->per_rcpt = true;
		else if (*p != '%') {
			snprintf(maildir_init_error, sizeof(maildir_init_error),
			    "path: unknown escape '%%%.1s' (use %%l, %%d, %%u "
			    "or %%%%)",
			    p);
			*error_r = maildir_init_error;
			return -1;
		}
	}
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	escape_host(host, st->host, sizeof(st->host));
	return 0;
}

/* --- paths --------------------------------------------------------------- */

static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * Appends part (n bytes) of an address to out, made safe as (part of) a
 * path component: lower-cased, '/' and control characters as '_', and a
 * leading '.' as '_' so that "." and ".." (and hidden names) cannot occur.
 * An empty part becomes "_".  Returns 0, or -1 if out is too small.
 */
static int
append_part(char *out, size_t size, size_t *o, const char *part, size_t n)
{
	size_t i;
	int c;

	if (n == 0) {
		part = "_";
		n = 1;
	}
	if (n >= size - *o)
		return -1;
	for (i = 0; i < n; i++) {
		c = ascii_lower((unsigned char)part[i]);
		if (c == '/' || c < 0x20 || c == 0x7f || (i == 0 && c == '.'))
			c = '_';
		out[(*o)++] = (char)c;
	}
	out[*o] = '\0';
	return 0;
}

/* Expands the path template for rcpt.  Returns 0, or -1 if too long. */
static int
expand_path(const char *tmpl, const char *rcpt, char *out, size_t size)
{
	const char *p, *at;
	size_t o = 0, llen;
	int rc;

	at = strrchr(rcpt, '@');
	llen = at != NULL ? (size_t)(at - rcpt) : strlen(rcpt);
	out[0] = '\0';
	/* init checked the template: a '%' is followed by l, d, u or '%' */
	for (p = tmpl; *p != '\0'; p++) {
		if (*p != '%' || *++p == '%') {
			if (o + 1 >= size)
				return -1;
			out[o++] = *p;
			out[o] = '\0';
			continue;
		}
		if (*p == 'l')
			rc = append_part(out, size, &o, rcpt, llen);
		else if (*p == 'd' && at != NULL)
			rc = append_part(out, size, &o, at + 1, strlen(at + 1));
		else if (*p == 'd')
			rc = append_part(out, size, &o, "", 0);
		else
			rc = append_part(out, size, &o, rcpt, strlen(rcpt));
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* --- the worker ---------------------------------------------------------- */

static void __attribute__((format(printf, 2, 3)))
job_fail(struct maildir_job *job, const char *fmt, ...)
{
	char ebuf[128];
	const char *es;
	va_list ap;
	size_t n;
	int saved = errno;

	if (job->failed)
		return; /* keep the first cause */
	job->failed = true;
	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
	es = strerror_r(saved, ebuf, sizeof(ebuf));
	n = strlen(job->error);
	snprintf(job->error + n, sizeof(job->error) - n, ": %s", es);
	errno = saved;
}

/* Makes a directory entry durable: fsync(2) of the directory itself. */
static int
fsync_dir(const char *dir)
{
	int fd, rc;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	rc = fsync(fd);
	if (close(fd) == -1)
		rc = -1;
	return rc;
}

/*
 * mkdir -p path: creates each missing component with MAILDIR_MODE and
 * syncs its parent, so that a new Maildir survives a crash like the
 * message in it.  Returns 0 or -1 (errno set).
 */
static int
mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t len, i;

	len = strlen(path);
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, MAILDIR_MODE) == 0) {
			char *slash = strrchr(buf, '/');

			if (slash == NULL) {
				if (fsync_dir(".") == -1)
					return -1;
			} else if (slash == buf) {
				if (fsync_dir("/") == -1)
					return -1;
			} else {
				*slash = '\0';
				if (fsync_dir(buf) == -1)
					return -1;
				*slash = '/';
			}
		} else if (errno != EEXIST)
			return -1;
		if (i < len)
			buf[i] = '/';
	}
	return 0;
}

/* Creates dir and its tmp/, new/ and cur/ as needed. */
static int
maildir_make(const char *dir)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char path[PATH_MAX];
	size_t i;
	int n;

	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		n = snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (mkdir_p(path) == -1)
			return -1;
	}
	return 0;
}

static int
build_path(char *buf, size_t size, const char *dir, const char *sub,
    const char *name)
{
	int n;

	n = snprintf(buf, size, "%s/%s/%s", dir, sub, name);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* "SECONDS.M<usec>P<pid>Q<n>.<host>", unique per the Maildir spec. */
static void
unique_name(const struct maildir *st, char *buf, size_t size)
{
	struct timespec ts;
	unsigned long q;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	q = atomic_fetch_add(&maildir_deliveries, 1) + 1;
	snprintf(buf, size, "%lld.M%ldP%ldQ%lu.%s", (long long)ts.tv_sec,
	    ts.tv_nsec / 1000, (long)getpid(), q, st->host);
}

/* Writes one copy to tmp/ and syncs it.  Returns 0 or -1 (job failed). */
static int
copy_write(struct maildir_job *job, struct maildir_copy *cp)
{
	char path[PATH_MAX];
	int fd, tries;

	fd = -1;
	for (tries = 0; tries < 3 && fd == -1; tries++) {
		unique_name(job->st, cp->name, sizeof(cp->name));
		if (build_path(path, sizeof(path), cp->dir, "tmp", cp->name) ==
		    -1) {
			job_fail(job, "path %s/tmp/%s", cp->dir, cp->name);
			return -1;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    MAILDIR_FILE_MODE);
		if (fd == -1 && errno == ENOENT) {
			/* first delivery: make the Maildir, try again */
			if (maildir_make(cp->dir) == -1) {
				job_fail(job, "create Maildir %s", cp->dir);
				return -1;
			}
			fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			    MAILDIR_FILE_MODE);
		}
		if (fd == -1 && errno != EEXIST) {
			job_fail(job, "open %s", path);
			return -1;
		}
	}
	if (fd == -1) {
		job_fail(job, "open %s", path);
		return -1;
	}
	cp->in_tmp = true;
	if (sl_txn_write_message(job->txn, fd) == -1) {
		job_fail(job, "write %s", path);
		(void)close(fd);
		return -1;
	}
	if (fsync(fd) == -1) {
		job_fail(job, "fsync %s", path);
		(void)close(fd);
		return -1;
	}
	/* close can report a deferred write error (NFS) */
	if (close(fd) == -1) {
		job_fail(job, "close %s", path);
		return -1;
	}
	return 0;
}

/* Moves one copy from tmp/ to new/.  Returns 0 or -1 (job failed). */
static int
copy_publish(struct maildir_job *job, struct maildir_copy *cp)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (build_path(from, sizeof(from), cp->dir, "tmp", cp->name) == -1 ||
	    build_path(to, sizeof(to), cp->dir, "new", cp->name) == -1) {
		job_fail(job, "path %s/new/%s", cp->dir, cp->name);
		return -1;
	}
	if (rename(from, to) == -1 &&
	    (errno != ENOENT || maildir_make(cp->dir) == -1 ||
	        rename(from, to) == -1)) {
		job_fail(job, "rename %s to %s", from, to);
		return -1;
	}
	cp->in_tmp = false;
	job->delivered_some = true;
	return 0;
}

/* Removes what a failed delivery left in tmp/. */
static void
job_cleanup(struct maildir_job *job)
{
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < job->ncopies; i++) {
		if (!job->copies[i].in_tmp)
			continue;
		if (build_path(path, sizeof(path), job->copies[i].dir, "tmp",
		        job->copies[i].name) == 0)
			(void)unlink(path);
		job->copies[i].in_tmp = false;
	}
}

/* Worker thread: everything that touches the disk. */
static void
maildir_work(void *arg)
{
	struct maildir_job *job = arg;
	char newdir[PATH_MAX];
	size_t i;
	int n;

	for (i = 0; i < job->ncopies; i++)
		if (copy_write(job, &job->copies[i]) == -1)
			goto fail;
	for (i = 0; i < job->ncopies; i++)
		if (copy_publish(job, &job->copies[i]) == -1)
			goto fail;
	for (i = 0; i < job->ncopies; i++) {
		n = snprintf(newdir, sizeof(newdir), "%s/new",
		    job->copies[i].dir);
		if (n < 0 || (size_t)n >= sizeof(newdir)) {
			errno = ENAMETOOLONG;
			job_fail(job, "path %s/new", job->copies[i].dir);
			goto fail;
		}
		if (fsync_dir(newdir) == -1) {
			job_fail(job, "fsync %s", newdir);
			goto fail;
		}
	}
	return;
fail:
	job_cleanup(job);
}

/* --- the hook ------------------------------------------------------------ */

static void
job_free(struct maildir_job *job)
{
	size_t i;

	if (job == NULL)
		return;
	for (i = 0; i < job->ncopies; i++)
		free(job->copies[i].dir);
	free(job->copies);
	free(job);
}

/*
 * XXX: plugin.h offers no way to log from a worker's done callback (the
 * hook context is gone by then), so the outcome goes to syslog(3) with
 * the session id until the core grows one (e.g. sl_async_log()).
 */
static void __attribute__((format(printf, 3, 4)))
job_log(const struct maildir_job *job, int priority, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	syslog(LOG_MAIL | priority, "%s plugin=queue/maildir %s", job->conn_id,
	    line);
}

/* Loop thread, after maildir_work. */
static void
maildir_done(void *arg)
{
	struct maildir_job *job = arg;
	bool live;

	live = sl_async_is_live(job->async);
	if (job->failed) {
		job_log(job, LOG_ERR, "verdict=denysoft id=%s error=\"%s\"%s",
		    job->id, job->error,
		    job->delivered_some ? " partial=yes" : "");
		sl_async_reply(job->async, 451, "4.3.0",
		    "Error writing message to mailbox, try again later");
		sl_async_done(&job->async, SL_DENYSOFT);
	} else {
		job_log(job, LOG_INFO, "verdict=ok id=%s copies=%zu%s", job->id,
		    job->ncopies, live ? "" : " session=gone");
		sl_async_reply(job->async, 250, "2.0.0", "Ok: queued as %s",
		    job->id);
		sl_async_done(&job->async, SL_OK);
	}
	job_free(job);
}

/* Adds dir to the job unless it is there already (one copy per Maildir). */
static int
job_add_dir(struct maildir_job *job, const char *dir)
{
	size_t i;

	for (i = 0; i < job->ncopies; i++)
		if (strcmp(job->copies[i].dir, dir) == 0)
			return 0;
	job->copies[job->ncopies].dir = strdup(dir);
	if (job->copies[job->ncopies].dir == NULL)
		return -1;
	job->ncopies++;
	return 0;
}

/* Builds the job on the loop thread: no I/O here.  NULL on failure. */
static struct maildir_job *
job_new(const struct maildir *st, struct sl_hookctx *ctx, const char **err_r)
{
	struct maildir_job *job;
	struct sl_txn *txn;
	char dir[PATH_MAX];
	size_t i, n;

	txn = sl_hook_txn(ctx);
	n = st->per_rcpt ? sl_txn_rcpt_count(txn) : 1;
	*err_r = "out of memory";
	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return NULL;
	job->copies = calloc(n > 0 ? n : 1, sizeof(*job->copies));
	if (job->copies == NULL)
		goto fail;
	job->st = st;
	job->txn = txn;
	snprintf(job->id, sizeof(job->id), "%s", sl_txn_id(txn));
	snprintf(job->conn_id, sizeof(job->conn_id), "%s",
	    sl_conn_id(sl_hook_conn(ctx)));
	for (i = 0; i < n && !st->per_rcpt; i++)
		if (job_add_dir(job, st->path) == -1)
			goto fail;
	for (i = 0; i < n && st->per_rcpt; i++) {
		if (expand_path(st->path, sl_txn_rcpt(txn, i), dir,
		        sizeof(dir) - MAILDIR_NAME_MAX - 8) == -1) {
			*err_r = "Maildir path too long";
			goto fail;
		}
		if (job_add_dir(job, dir) == -1)
			goto fail;
	}
	if (job->ncopies == 0) {
		*err_r = "no recipients";
		goto fail;
	}
	return job;
fail:
	job_free(job);
	return NULL;
}

static enum sl_verdict
maildir_queue(void *state, struct sl_hookctx *ctx)
{
	const struct maildir *st = state;
	struct maildir_job *job;
	const char *err;

	job = job_new(st, ctx, &err);
	if (job == NULL) {
		sl_hook_log(ctx, LOG_ERR, "verdict=denysoft error=\"%s\"", err);
		sl_hook_reply(ctx, 451, "4.3.0",
		    "Error writing message to mailbox, try again later");
		return SL_DENYSOFT;
	}
	job->async = sl_async_begin(ctx);
	sl_hook_run_worker(ctx, maildir_work, maildir_done, job);
	return SL_PENDING;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "queue/maildir",
	.conf = maildir_conf,
	.state_size = sizeof(struct maildir),
	.init = maildir_init,
	.hooks = { [SL_HOOK_QUEUE] = maildir_queue },
	.front_ends = SL_FRONT_SMTPD,
};
