/*
 * auth/checkpassword - SMTP AUTH through a program with D. J. Bernstein's
 * checkpassword interface (cr.yp.to/checkpwd/interface.html); see
 * sluice-plugins(7).
 *
 * Hook auth (sluice-smtpd only), on the worker pool.  For each AUTH the
 * program runs as "PROGRAM [ARGS] /bin/true" (the subprogram it runs when
 * the password is good) with "user\0password\0timestamp\0" - at most 512
 * bytes, as the interface says - on descriptor 3 (a pipe), /dev/null on
 * 0, 1 and 2, no other descriptor, an empty signal mask, its own process
 * group and an environment of PATH, TCPREMOTEIP and TCPLOCALIP only.  The
 * timestamp is "<unixtime.session-id@hostname>".  Exit 0: OK; 1: DENY;
 * 111: DENYSOFT; anything else, a signal, or no exit within timeout= (the
 * group is then killed): DENYSOFT with a log line.
 *
 *	plugin auth/checkpassword program="/usr/local/bin/checkvpw -s"
 *timeout=5s
 */
#include <sys/pidfd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sluice/plugin.h>

#include "log.h"
#include "xmalloc.h"

#define CP_DEFAULT_TIMEOUT_MS 10000
/* The core waits this much longer: the plugin's own deadline decides. */
#define CP_BACKSTOP_MS 2000
/* The interface: "at most 512 bytes of data before end of file". */
#define CP_DATA_MAX 512
#define CP_ARGS_MAX 32

struct checkpassword {
	char *program; /* program=: "PATH [ARGS]" */
	char *argv[CP_ARGS_MAX + 2];
	size_t argc;
};

/* What the hook hands to the worker and the worker to done. */
struct cp_job {
	const struct checkpassword *cp;
	struct sl_async *async;
	char conn_id[32];
	char inst[64];
	char remote_ip[64];
	char local_ip[64];
	uint8_t data[CP_DATA_MAX];
	size_t len;
	unsigned int timeout_ms;
	enum sl_verdict verdict;
	char why[256]; /* for a log line; "" when the exit said it all */
};

static const struct sl_conf_def cp_conf[] = {
	{ .name = "program",
	    .type = SL_CONF_STR,
	    .def = NULL,
	    .offset = offsetof(struct checkpassword, program),
	    .help = "the checkpassword program and its arguments" },
	SL_CONF_END,
};

/* --- running the program ------------------------------------------------- */

/* The child's descriptors, signals and process group. */
static int
spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int rfd)
{
	sigset_t none, all;

	sigemptyset(&none);
	sigfillset(&all);
	if (posix_spawn_file_actions_init(fa) != 0)
		return -1;
	if (posix_spawnattr_init(at) != 0) {
		posix_spawn_file_actions_destroy(fa);
		return -1;
	}
	if (posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0) !=
	        0 ||
	    posix_spawn_file_actions_addopen(fa, 1, "/dev/null", O_WRONLY, 0) !=
	        0 ||
	    posix_spawn_file_actions_adddup2(fa, 1, 2) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, rfd, 3) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(fa, 4) != 0 ||
	    posix_spawnattr_setflags(at,
	        POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	            POSIX_SPAWN_SETSIGDEF) != 0 ||
	    posix_spawnattr_setpgroup(at, 0) != 0 ||
	    posix_spawnattr_setsigmask(at, &none) != 0 ||
	    posix_spawnattr_setsigdefault(at, &all) != 0) {
		posix_spawn_file_actions_destroy(fa);
		posix_spawnattr_destroy(at);
		return -1;
	}
	return 0;
}

/*
 * Waits for pid up to timeout_ms; kills its process group after that.
 * Returns 0 with *status_r, 1 if it was killed, -1 on an error.
 */
static int
wait_child(pid_t pid, unsigned int timeout_ms, int *status_r)
{
	struct pollfd pfd;
	int pidfd, rc = 0, n;

	pidfd = pidfd_open(pid, 0);
	if (pidfd >= 0) {
		pfd.fd = pidfd;
		pfd.events = POLLIN;
		do
			n = poll(&pfd, 1, (int)timeout_ms);
		while (n < 0 && errno == EINTR);
		close(pidfd);
		if (n == 0)
			rc = 1;
	} else {
		/* No pidfd (old kernel): poll waitpid every 10 ms. */
		struct timespec ten = { 0, 10 * 1000 * 1000 };
		unsigned int waited = 0;

		while ((n = waitpid(pid, status_r, WNOHANG)) == 0 &&
		    waited < timeout_ms) {
			nanosleep(&ten, NULL);
			waited += 10;
		}
		if (n == pid)
			return 0;
		rc = 1;
	}
	if (rc == 1) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, status_r, 0) < 0)
		if (errno != EINTR)
			return -1;
	return rc;
}

static void
cp_work(void *arg)
{
	struct cp_job *job = arg;
	const struct checkpassword *cp = job->cp;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char *env[4], e_path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
	char e_remote[96], e_local[96];
	int p[2], fd, status = 0, rc;
	pid_t pid;
	ssize_t w;

	job->verdict = SL_DENYSOFT;
	snprintf(e_remote, sizeof(e_remote), "TCPREMOTEIP=%s", job->remote_ip);
	snprintf(e_local, sizeof(e_local), "TCPLOCALIP=%s", job->local_ip);
	env[0] = e_path;
	env[1] = e_remote;
	env[2] = e_local;
	env[3] = NULL;
	if (pipe2(p, O_CLOEXEC) == -1) {
		snprintf(job->why, sizeof(job->why), "pipe: %s",
		    strerror(errno));
		return;
	}
	/* Never dup2(3, 3): that would keep close-on-exec. */
	if (p[0] <= 3) {
		fd = fcntl(p[0], F_DUPFD_CLOEXEC, 10);
		close(p[0]);
		p[0] = fd;
	}
	/* The pipe holds far more than 512 bytes: this never blocks. */
	w = p[0] >= 0 ? write(p[1], job->data, job->len) : -1;
	close(p[1]);
	explicit_bzero(job->data, sizeof(job->data));
	if (w != (ssize_t)job->len) {
		snprintf(job->why, sizeof(job->why), "pipe: %s",
		    strerror(errno));
		if (p[0] >= 0)
			close(p[0]);
		return;
	}
	if (spawn_setup(&fa, &at, p[0]) == -1) {
		close(p[0]);
		snprintf(job->why, sizeof(job->why),
		    "posix_spawn setup failed");
		return;
	}
	rc = posix_spawn(&pid, cp->argv[0], &fa, &at, cp->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[0]);
	if (rc != 0) {
		snprintf(job->why, sizeof(job->why), "cannot run %s: %s",
		    cp->argv[0], strerror(rc));
		return;
	}
	rc = wait_child(pid, job->timeout_ms, &status);
	if (rc == 1)
		snprintf(job->why, sizeof(job->why),
		    "%s timed out after %u ms; killed", cp->argv[0],
		    job->timeout_ms);
	else if (rc == -1)
		snprintf(job->why, sizeof(job->why), "waitpid: %s",
		    strerror(errno));
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		job->verdict = SL_OK;
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
		job->verdict = SL_DENY;
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 111)
		job->verdict = SL_DENYSOFT;
	else if (WIFEXITED(status))
		snprintf(job->why, sizeof(job->why), "%s exited %d%s",
		    cp->argv[0], WEXITSTATUS(status),
		    WEXITSTATUS(status) == 2 ? " (misused)" : "");
	else
		snprintf(job->why, sizeof(job->why), "%s killed by signal %d",
		    cp->argv[0], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Loop thread, after cp_work. */
static void
cp_done(void *arg)
{
	struct cp_job *job = arg;

	if (job->why[0] != '\0')
		sl_log(LOG_ERR, job->conn_id,
		    "plugin=%s verdict=denysoft error=\"%s\"", job->inst,
		    job->why);
	else
		sl_log(job->verdict == SL_OK ? LOG_DEBUG : LOG_INFO,
		    job->conn_id, "plugin=%s verdict=%s", job->inst,
		    job->verdict == SL_OK         ? "ok"
		        : job->verdict == SL_DENY ? "deny"
		                                  : "denysoft (exit 111)");
	sl_async_done(&job->async, job->verdict);
	explicit_bzero(job, sizeof(*job));
	free(job);
}

/* "user\0password\0timestamp\0" into job->data; -1 if over 512 bytes. */
static int
put_data(struct cp_job *job, struct sl_hookctx *ctx)
{
	const struct sl_hookargs *a = sl_hook_args(ctx);
	struct sl_conn *c = sl_hook_conn(ctx);
	const char *host = sl_conn_macro(c, "j");
	char ts[160];
	size_t lu = strlen(a->name), lp = strlen(a->value), lt;

	snprintf(ts, sizeof(ts), "<%lld.%s@%s>", (long long)time(NULL),
	    sl_conn_id(c), host != NULL ? host : "localhost");
	lt = strlen(ts);
	if (lu + lp + lt + 3 > sizeof(job->data))
		return -1;
	memcpy(job->data, a->name, lu + 1);
	memcpy(job->data + lu + 1, a->value, lp + 1);
	memcpy(job->data + lu + lp + 2, ts, lt + 1);
	job->len = lu + lp + lt + 3;
	return 0;
}

static enum sl_verdict
cp_auth(void *state, struct sl_hookctx *ctx)
{
	const struct checkpassword *cp = state;
	const struct sl_hookargs *a = sl_hook_args(ctx);
	struct sl_conn *c = sl_hook_conn(ctx);
	struct cp_job *job;

	if (a->name == NULL || a->value == NULL)
		return SL_DECLINED;
	job = sl_xcalloc(1, sizeof(*job));
	if (put_data(job, ctx) == -1) {
		sl_hook_log(ctx, LOG_NOTICE,
		    "verdict=deny reason=too-long (the checkpassword interface "
		    "takes at most %d bytes)",
		    CP_DATA_MAX);
		free(job);
		return SL_DENY;
	}
	job->cp = cp;
	job->timeout_ms = sl_hook_timeout(ctx);
	if (job->timeout_ms == 0)
		job->timeout_ms = CP_DEFAULT_TIMEOUT_MS;
	snprintf(job->conn_id, sizeof(job->conn_id), "%s", sl_conn_id(c));
	snprintf(job->inst, sizeof(job->inst), "%s", sl_hook_plugin_name(ctx));
	snprintf(job->remote_ip, sizeof(job->remote_ip), "%s",
	    sl_conn_remote_ip(c));
	snprintf(job->local_ip, sizeof(job->local_ip), "%s",
	    sl_conn_local_ip(c));
	job->async = sl_async_begin(ctx);
	sl_async_timeout(job->async, job->timeout_ms + CP_BACKSTOP_MS);
	sl_hook_run_worker(ctx, cp_work, cp_done, job);
	return SL_PENDING;
}

/* --- life ---------------------------------------------------------------- */

static char cp_init_error[512];
/* What a good password runs: nothing. */
static char cp_subprogram[] = "/bin/true";

static int
cp_init(void **state_r, const char **error_r)
{
	struct checkpassword *cp = *state_r;
	char *p, *save = NULL;

	if (cp->program == NULL) {
		*error_r = "program= is required";
		return -1;
	}
	for (p = strtok_r(cp->program, " \t", &save); p != NULL;
	     p = strtok_r(NULL, " \t", &save)) {
		if (cp->argc == CP_ARGS_MAX) {
			*error_r = "program: too many arguments";
			return -1;
		}
		cp->argv[cp->argc++] = p;
	}
	if (cp->argc == 0 || cp->argv[0][0] != '/') {
		*error_r = "program: needs an absolute path";
		return -1;
	}
	if (access(cp->argv[0], X_OK) == -1) {
		snprintf(cp_init_error, sizeof(cp_init_error),
		    "program: %s: %s", cp->argv[0], strerror(errno));
		*error_r = cp_init_error;
		return -1;
	}
	cp->argv[cp->argc] = cp_subprogram;
	cp->argv[cp->argc + 1] = NULL;
	return 0;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "auth/checkpassword",
	.conf = cp_conf,
	.state_size = sizeof(struct checkpassword),
	.init = cp_init,
	.hooks = { [SL_HOOK_AUTH] = cp_auth },
	.front_ends = SL_FRONT_SMTPD,
};
