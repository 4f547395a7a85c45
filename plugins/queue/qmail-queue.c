/*
 * queue/qmail-queue - hand accepted mail to a program with the interface
 * of qmail-queue(8) (sluice-plugins(7)): the message on its fd 0, the
 * envelope on its fd 1, and its exit code decides the reply.
 *
 * Hook queue (sluice-smtpd only).  The hook builds the envelope ("F"
 * sender NUL, "T" recipient NUL for each, a final NUL); the rest runs on
 * the worker pool.  The message as it stands (our Received: first, edits
 * applied, LF line ends) is written to a memfd, then fed to the program
 * through a pipe, the envelope through a second one, and its stderr is
 * collected for the log.  The program starts with fds 0-2 only, default
 * SIGPIPE and an empty signal mask, in a process group of its own.  Our
 * ends are non-blocking and its exit is watched with a pidfd (or WNOHANG
 * polls), so one poll() loop bounds the run by the instance's timeout=:
 * then the group gets SIGKILL and the client 451.  The core's timer is
 * set QQ_BACKSTOP_MS beyond ours.  Exit codes are mapped as qmail-smtpd
 * does: 11-40 permanent (554), everything else temporary (451); 0 counts
 * only if the program read the whole message and envelope.
 *
 *	plugin queue/qmail-queue program=/var/qmail/bin/qmail-queue
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sluice/plugin.h>

#include "core.h"
#include "log.h"

#define QQ_BACKSTOP_MS 5000 /* the core's timer, beyond ours */
#define QQ_CHUNK 65536      /* message bytes per write */
#define QQ_STDERR_MAX 400   /* stderr bytes kept for the log */
#define QQ_ERROR_MAX 256
#define QQ_DRAIN_READS 16 /* stderr reads after the exit, at most */

extern char **environ;

struct qq {
	char *program;         /* program= */
	struct sl_strlist env; /* env=: NAME=value items */
	/* set by init */
	char **envp; /* the program's environment */
};

static const struct sl_conf_def qq_conf[] = {
	{ .name = "program",
	    .type = SL_CONF_STR,
	    .def = "/var/qmail/bin/qmail-queue",
	    .offset = offsetof(struct qq, program),
	    .help = "absolute path of a qmail-queue compatible program" },
	{ .name = "env",
	    .type = SL_CONF_LIST,
	    .def = NULL,
	    .offset = offsetof(struct qq, env),
	    .help = "NAME=value pairs added to the program's environment" },
	SL_CONF_END,
};

/* qmail-queue(8), EXIT CODES; texts as the man page has them. */
struct qq_code {
	int code;
	int reply;
	const char *enh;
	const char *text;
};

static const struct qq_code qq_codes[] = {
	{ 11, 554, "5.1.3", "Address too long" },
	{ 31, 554, "5.3.0", "Mail server permanently rejected the message" },
	{ 51, 451, "4.3.0", "Out of memory" },
	{ 52, 451, "4.3.0", "Timeout" },
	{ 53, 451, "4.3.0", "Write error, e.g. disk full" },
	{ 54, 451, "4.3.0", "Unable to read the message or envelope" },
	{ 55, 451, "4.3.0", "Unable to read a configuration file" },
	{ 56, 451, "4.3.0", "Problem making a network connection" },
	{ 61, 451, "4.3.0", "Problem with the qmail home directory" },
	{ 62, 451, "4.3.0", "Problem with the queue directory" },
	{ 63, 451, "4.3.0", "Problem with queue/pid" },
	{ 64, 451, "4.3.0", "Problem with queue/mess" },
	{ 65, 451, "4.3.0", "Problem with queue/intd" },
	{ 66, 451, "4.3.0", "Problem with queue/todo" },
	{ 71, 451, "4.3.0", "Mail server temporarily rejected the message" },
	{ 72, 451, "4.4.1", "Connection to mail server timed out" },
	{ 73, 451, "4.4.1", "Connection to mail server rejected" },
	{ 74, 451, "4.4.2", "Communication with mail server failed" },
	{ 81, 451, "4.3.0", "Internal bug" },
	/* temporary, as in the man page and qmail-smtpd: our envelope */
	{ 91, 451, "4.3.0", "Envelope format error" },
};

enum qq_end {
	QQ_END_EXIT,    /* exited with code */
	QQ_END_SIGNAL,  /* killed by signal code */
	QQ_END_TIMEOUT, /* we killed it at the deadline */
	QQ_END_EXEC,    /* could not be started: error says why */
	QQ_END_ERROR,   /* our side failed: error says why */
};

/* What the hook hands to the worker and the worker to done. */
struct qq_job {
	const struct qq *st;
	struct sl_async *async;
	struct sl_txn *txn;
	char name[64];
	char conn_id[64];
	char txn_id[64];
	struct timespec deadline; /* CLOCK_MONOTONIC */
	unsigned int timeout_ms;
	char *env; /* the envelope */
	size_t env_len;
	/* the outcome */
	enum qq_end end;
	int code;
	long pid;
	bool short_write; /* the program did not take everything */
	char error[QQ_ERROR_MAX];
	char errout[QQ_STDERR_MAX + 1]; /* its stderr, as read */
	size_t errout_len;
};

/* The worker's descriptors for one run; -1 when closed. */
struct qq_run {
	int msg;      /* the memfd holding the message */
	int in, envw; /* our ends of the program's fds 0 and 1 */
	int err;      /* our end of its stderr */
	int pidfd;
	pid_t pid;
	char buf[QQ_CHUNK];
	size_t boff, blen;
	off_t msg_left; /* message bytes not yet written */
	size_t env_off;
};

/* --- init ---------------------------------------------------------------- */

static char qq_init_error[512];

/* "OPTION: ARG: WHY" for the core's "file:line: plugin NAME: ..." */
static int
init_fail(const char **error_r, const char *opt, const char *arg,
    const char *why)
{
	snprintf(qq_init_error, sizeof(qq_init_error), "%s: %s: %s", opt, arg,
	    why);
	*error_r = qq_init_error;
	return -1;
}

/* environ with env= on top (env= wins for a name in both). */
static int
build_env(struct qq *st, const char **error_r)
{
	size_t n, i, j, k = 0, len;
	const char *eq;
	bool shadowed;

	for (i = 0; i < st->env.count; i++) {
		eq = strchr(st->env.items[i], '=');
		if (eq == NULL || eq == st->env.items[i])
			return init_fail(error_r, "env", st->env.items[i],
			    "not NAME=value");
	}
	for (n = 0; environ != NULL && environ[n] != NULL; n++)
		continue;
	st->envp = calloc(n + st->env.count + 1, sizeof(*st->envp));
	if (st->envp == NULL)
		return init_fail(error_r, "env", "environment",
		    "out of memory");
	for (i = 0; i < st->env.count; i++)
		if ((st->envp[k++] = strdup(st->env.items[i])) == NULL)
			return init_fail(error_r, "env", "environment",
			    "out of memory");
	for (j = 0; j < n; j++) {
		eq = strchr(environ[j], '=');
		len = eq != NULL ? (size_t)(eq - environ[j]) + 1 : 0;
		shadowed = false;
		for (i = 0; i < st->env.count && len > 0; i++)
			if (strncmp(st->env.items[i], environ[j], len) == 0)
				shadowed = true;
		if (shadowed)
			continue;
		if ((st->envp[k++] = strdup(environ[j])) == NULL)
			return init_fail(error_r, "env", "environment",
			    "out of memory");
	}
	return 0;
}

static void
qq_fini(void *state)
{
	struct qq *st = state;
	size_t i;

	for (i = 0; st->envp != NULL && st->envp[i] != NULL; i++)
		free(st->envp[i]);
	free(st->envp);
	st->envp = NULL;
}

static int
qq_init(void **state_r, const char **error_r)
{
	struct qq *st = *state_r;
	struct stat sb;

	if (st->program == NULL || st->program[0] != '/')
		return init_fail(error_r, "program",
		    st->program != NULL ? st->program : "",
		    "not an absolute path");
	if (stat(st->program, &sb) == -1)
		return init_fail(error_r, "program", st->program,
		    strerror(errno));
	if (!S_ISREG(sb.st_mode) || access(st->program, X_OK) == -1)
		return init_fail(error_r, "program", st->program,
		    "not an executable file");
	if (build_env(st, error_r) == -1) {
		qq_fini(st);
		return -1;
	}
	return 0;
}

/* --- the worker ---------------------------------------------------------- */

static void __attribute__((format(printf, 2, 3)))
job_fail(struct qq_job *job, const char *fmt, ...)
{
	va_list ap;

	job->end = QQ_END_ERROR;
	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
}

static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static void
close_fd(int *fdp)
{
	if (*fdp != -1)
		close(*fdp);
	*fdp = -1;
}

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The message into a memfd, rewound.  0 or -1 (job failed). */
static int
spool_message(struct qq_job *job, struct qq_run *r)
{
	r->msg = memfd_create("sluice-qmail-queue", MFD_CLOEXEC);
	if (r->msg == -1) {
		job_fail(job, "memfd_create: %s", strerror(errno));
		return -1;
	}
	if (sl_txn_write_message(job->txn, r->msg) == -1 ||
	    (r->msg_left = lseek(r->msg, 0, SEEK_CUR)) == -1 ||
	    lseek(r->msg, 0, SEEK_SET) == -1) {
		job_fail(job, "cannot buffer the message: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Starts the program on three new pipes.  0 or -1 (job failed). */
static int
spawn(struct qq_job *job, struct qq_run *r)
{
	int in[2] = { -1, -1 }, env[2] = { -1, -1 }, err[2] = { -1, -1 };
	char *argv[] = { job->st->program, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	int rc;

	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(env, O_CLOEXEC) == -1 ||
	    pipe2(err, O_CLOEXEC) == -1) {
		job_fail(job, "pipe: %s", strerror(errno));
		rc = -1;
		goto out;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE); /* the daemon ignores it; exec keeps that */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, env[0], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr,
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	        POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setpgroup(&attr, 0);
	rc = posix_spawn(&r->pid, job->st->program, &fa, &attr, argv,
	    job->st->envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		job_fail(job, "cannot run %s: %s", job->st->program,
		    strerror(rc));
		job->end = QQ_END_EXEC;
		r->pid = -1;
		rc = -1;
		goto out;
	}
	job->pid = (long)r->pid;
	r->in = in[1];
	r->envw = env[1];
	r->err = err[0];
	in[1] = env[1] = err[0] = -1;
	if (set_nonblock(r->in) == -1 || set_nonblock(r->envw) == -1 ||
	    set_nonblock(r->err) == -1) {
		job_fail(job, "fcntl: %s", strerror(errno));
		rc = -1;
		goto out;
	}
#ifdef SYS_pidfd_open
	r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
#endif
out:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&env[0]);
	close_fd(&env[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	return rc;
}

/*
 * Feeds the message; closes r->in once it is all written (the program
 * sees EOF) or refused (EPIPE: it quit reading).
 */
static void
feed_message(struct qq_job *job, struct qq_run *r)
{
	ssize_t n;

	if (r->blen == 0) {
		n = read(r->msg, r->buf, sizeof(r->buf));
		if (n <= 0) {
			job_fail(job, "reading back the message: %s",
			    n < 0 ? strerror(errno) : "short");
			close_fd(&r->in);
			return;
		}
		r->boff = 0;
		r->blen = (size_t)n;
	}
	n = write(r->in, r->buf + r->boff, r->blen);
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		close_fd(&r->in);
	else if (n > 0) {
		r->boff += (size_t)n;
		r->blen -= (size_t)n;
		if ((r->msg_left -= n) == 0)
			close_fd(&r->in);
	}
}

static void
feed_envelope(struct qq_job *job, struct qq_run *r)
{
	ssize_t n;

	n = write(r->envw, job->env + r->env_off, job->env_len - r->env_off);
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		close_fd(&r->envw);
	else if (n > 0 && (r->env_off += (size_t)n) == job->env_len)
		close_fd(&r->envw);
}

/*
 * Keeps the first QQ_STDERR_MAX bytes of the program's stderr.  Returns
 * what read(2) did.
 */
static ssize_t
read_stderr(struct qq_job *job, struct qq_run *r)
{
	char scratch[4096];
	size_t room = QQ_STDERR_MAX - job->errout_len;
	ssize_t n;

	n = room > 0 ? read(r->err, job->errout + job->errout_len, room)
	             : read(r->err, scratch, sizeof(scratch));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		close_fd(&r->err);
	else if (n > 0 && room > 0)
		job->errout_len += (size_t)n;
	return n;
}

/* Kills the program's process group, then reaps the program. */
static void
kill_and_reap(struct qq_run *r)
{
	int st;

	(void)kill(-r->pid, SIGKILL);
	(void)kill(r->pid, SIGKILL);
	while (waitpid(r->pid, &st, 0) == -1 && errno == EINTR)
		continue;
	r->pid = -1;
}

static void
poll_add(struct pollfd *fds, int *n, int fd, short events)
{
	if (fd != -1)
		fds[(*n)++] = (struct pollfd){ .fd = fd, .events = events };
}

/*
 * The exchange: everything the program reads and writes, and its exit,
 * in one poll() loop bounded by the deadline.
 */
static void
exchange(struct qq_job *job, struct qq_run *r)
{
	struct pollfd fds[4];
	int n, i, st;
	long left;

	for (;;) {
		if (waitpid(r->pid, &st, WNOHANG) == r->pid)
			break;
		left = ms_left(&job->deadline);
		if (left <= 0) {
			kill_and_reap(r);
			job->end = QQ_END_TIMEOUT;
			return;
		}
		if (r->pidfd == -1 && left > 20)
			left = 20; /* no pidfd: poll for the exit */
		n = 0;
		poll_add(fds, &n, r->in, POLLOUT);
		poll_add(fds, &n, r->envw, POLLOUT);
		poll_add(fds, &n, r->err, POLLIN);
		poll_add(fds, &n, r->pidfd, POLLIN);
		if (poll(fds, (nfds_t)n, (int)left) == -1 && errno != EINTR) {
			job_fail(job, "poll: %s", strerror(errno));
			kill_and_reap(r);
			return;
		}
		for (i = 0; i < n; i++) {
			if (fds[i].revents == 0)
				continue;
			if (fds[i].fd == r->in)
				feed_message(job, r);
			else if (fds[i].fd == r->envw)
				feed_envelope(job, r);
			else if (fds[i].fd == r->err)
				(void)read_stderr(job, r);
		}
		if (job->end == QQ_END_ERROR) {
			kill_and_reap(r);
			return;
		}
	}
	r->pid = -1;
	/* what it said just before it exited (a child of its may go on) */
	for (i = 0; i < QQ_DRAIN_READS && r->err != -1; i++)
		if (read_stderr(job, r) <= 0)
			break;
	job->short_write = r->msg_left > 0 || r->env_off < job->env_len;
	if (WIFSIGNALED(st)) {
		job->end = QQ_END_SIGNAL;
		job->code = WTERMSIG(st);
	} else {
		job->end = QQ_END_EXIT;
		job->code = WEXITSTATUS(st);
	}
}

/* Worker thread. */
static void
qq_work(void *arg)
{
	struct qq_job *job = arg;
	struct qq_run *r;

	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		job_fail(job, "out of memory");
		return;
	}
	r->msg = r->in = r->envw = r->err = r->pidfd = -1;
	r->pid = -1;
	if (ms_left(&job->deadline) <= 0)
		job_fail(job, "the timeout passed before a worker was free");
	else if (spool_message(job, r) == 0 && spawn(job, r) == 0)
		exchange(job, r);
	if (r->pid != -1)
		kill_and_reap(r); /* spawned, but our side failed */
	close_fd(&r->msg);
	close_fd(&r->in);
	close_fd(&r->envw);
	close_fd(&r->err);
	close_fd(&r->pidfd);
	free(r);
}

/* --- the outcome --------------------------------------------------------- */

static void
job_free(struct qq_job *job)
{
	if (job == NULL)
		return;
	free(job->env);
	free(job);
}

/* The program's stderr made fit for one log line. */
static void
errout_clean(struct qq_job *job)
{
	size_t i;

	for (i = 0; i < job->errout_len; i++)
		if ((unsigned char)job->errout[i] < ' ' ||
		    job->errout[i] == '"' || job->errout[i] == 0x7f)
			job->errout[i] = job->errout[i] == '"' ? '\'' : ' ';
	while (job->errout_len > 0 && job->errout[job->errout_len - 1] == ' ')
		job->errout_len--;
	job->errout[job->errout_len] = '\0';
}

/* Exit code -> verdict and reply; the log line names it. */
static enum sl_verdict
exit_reply(struct qq_job *job, int *reply_r, const char **enh_r,
    const char **text_r)
{
	size_t i;

	if (job->code == 0 && job->short_write) {
		/* as qmail-smtpd: "qq read error" */
		*reply_r = 451;
		*enh_r = "4.3.0";
		*text_r = "Queue program exited 0 without reading the whole "
		          "message";
		return SL_DENYSOFT;
	}
	for (i = 0; i < sizeof(qq_codes) / sizeof(qq_codes[0]); i++)
		if (qq_codes[i].code == job->code) {
			*reply_r = qq_codes[i].reply;
			*enh_r = qq_codes[i].enh;
			*text_r = qq_codes[i].text;
			return *reply_r / 100 == 5 ? SL_DENY : SL_DENYSOFT;
		}
	if (job->code >= 11 && job->code <= 40) {
		*reply_r = 554;
		*enh_r = "5.3.0";
		*text_r = "Permanent queue error";
		return SL_DENY;
	}
	*reply_r = 451;
	*enh_r = "4.3.0";
	*text_r = "Temporary queue error";
	return SL_DENYSOFT;
}

/*
 * The session's loop thread, after qq_work.  XXX: no hook context here,
 * so the line goes through sl_log with the plugin= prefix sl_hook_log
 * would give it (as plugins/milter.c does).
 */
static void
qq_done(void *arg)
{
	struct qq_job *job = arg;
	enum sl_verdict v;
	const char *enh, *text, *sig;
	char what[QQ_ERROR_MAX + 64];
	int reply;

	errout_clean(job);
	if (job->end == QQ_END_EXIT && job->code == 0 && !job->short_write) {
		v = SL_OK;
		reply = 250;
		enh = "2.0.0";
		text = "";
		snprintf(what, sizeof(what), "exit=0 pid=%ld", job->pid);
	} else if (job->end == QQ_END_EXIT) {
		v = exit_reply(job, &reply, &enh, &text);
		snprintf(what, sizeof(what), "exit=%d pid=%ld meaning=\"%s\"%s",
		    job->code, job->pid, text,
		    job->short_write ? " unread=yes" : "");
	} else {
		v = SL_DENYSOFT;
		reply = 451;
		enh = "4.3.0";
		sig =
		    job->end == QQ_END_SIGNAL ? sigabbrev_np(job->code) : NULL;
		if (job->end == QQ_END_TIMEOUT) {
			text = "Queue program timed out, try again later";
			snprintf(what, sizeof(what),
			    "reason=timeout timeout_ms=%u pid=%ld "
			    "signal=SIGKILL",
			    job->timeout_ms, job->pid);
		} else if (job->end == QQ_END_SIGNAL) {
			text = "Queue program crashed, try again later";
			snprintf(what, sizeof(what),
			    "reason=signal signal=SIG%s pid=%ld",
			    sig != NULL ? sig : "?", job->pid);
		} else {
			text = job->end == QQ_END_EXEC
			    ? "Queue program unavailable, try again later"
			    : "Local error queuing message, try again later";
			snprintf(what, sizeof(what), "error=\"%s\"",
			    job->error);
		}
	}
	sl_log(v == SL_OK ? LOG_INFO : LOG_ERR, job->conn_id,
	    "plugin=%s verdict=%s txn=%s %s%s%s%s%s", job->name,
	    v == SL_OK         ? "ok"
	        : v == SL_DENY ? "deny"
	                       : "denysoft",
	    job->txn_id, what, job->errout_len > 0 ? " stderr=\"" : "",
	    job->errout, job->errout_len > 0 ? "\"" : "",
	    sl_async_is_live(job->async) ? "" : " session=gone");
	if (v == SL_OK)
		sl_async_reply(job->async, 250, "2.0.0",
		    "Ok: queued as %s via qmail-queue", job->txn_id);
	else
		sl_async_reply(job->async, reply, enh, "%s", text);
	sl_async_done(&job->async, v);
	job_free(job);
}

/* --- the hook ------------------------------------------------------------ */

/* "F" sender NUL, then "T" rcpt NUL for each, then NUL (qmail-queue(8)). */
static char *
envelope_new(struct sl_txn *txn, size_t *len_r)
{
	size_t i, n, len;
	const char *sender = sl_txn_sender(txn);
	char *env, *p;

	if (sender == NULL)
		sender = "";
	len = strlen(sender) + 3;
	n = sl_txn_rcpt_count(txn);
	for (i = 0; i < n; i++)
		len += strlen(sl_txn_rcpt(txn, i)) + 2;
	env = malloc(len);
	if (env == NULL)
		return NULL;
	p = env;
	*p++ = 'F';
	memcpy(p, sender, strlen(sender) + 1);
	p += strlen(sender) + 1;
	for (i = 0; i < n; i++) {
		*p++ = 'T';
		memcpy(p, sl_txn_rcpt(txn, i), strlen(sl_txn_rcpt(txn, i)) + 1);
		p += strlen(sl_txn_rcpt(txn, i)) + 1;
	}
	*p++ = '\0';
	*len_r = (size_t)(p - env);
	return env;
}

static enum sl_verdict
qq_queue(void *state, struct sl_hookctx *ctx)
{
	const struct qq *st = state;
	struct qq_job *job;
	struct sl_txn *txn = sl_hook_txn(ctx);
	unsigned int ms;

	job = calloc(1, sizeof(*job));
	if (job == NULL ||
	    (job->env = envelope_new(txn, &job->env_len)) == NULL) {
		job_free(job);
		sl_hook_log(ctx, LOG_ERR,
		    "verdict=denysoft error=\"out of memory\"");
		sl_hook_reply(ctx, 451, "4.3.0",
		    "Local error queuing message, try again later");
		return SL_DENYSOFT;
	}
	job->st = st;
	job->txn = txn;
	job->pid = -1;
	snprintf(job->name, sizeof(job->name), "%s", sl_hook_plugin_name(ctx));
	snprintf(job->conn_id, sizeof(job->conn_id), "%s",
	    sl_conn_id(sl_hook_conn(ctx)));
	snprintf(job->txn_id, sizeof(job->txn_id), "%s", sl_txn_id(txn));
	/* the deadline counts from now, time waiting for a worker included */
	ms = sl_hook_timeout_ms(ctx);
	job->timeout_ms = ms;
	clock_gettime(CLOCK_MONOTONIC, &job->deadline);
	job->deadline.tv_sec += ms / 1000;
	job->deadline.tv_nsec += (long)(ms % 1000) * 1000000;
	if (job->deadline.tv_nsec >= 1000000000) {
		job->deadline.tv_sec++;
		job->deadline.tv_nsec -= 1000000000;
	}
	job->async = sl_async_begin(ctx);
	sl_async_timeout(job->async, ms + QQ_BACKSTOP_MS);
	sl_hook_run_worker(ctx, qq_work, qq_done, job);
	return SL_PENDING;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "queue/qmail-queue",
	.conf = qq_conf,
	.state_size = sizeof(struct qq),
	.init = qq_init,
	.fini = qq_fini,
	.hooks = { [SL_HOOK_QUEUE] = qq_queue },
	.front_ends = SL_FRONT_SMTPD,
};
