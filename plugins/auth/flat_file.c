/*
 * auth/flat_file - SMTP AUTH against a file of "user:hash" lines
 * (sluice-plugins(7)).
 *
 * Hook auth (sluice-smtpd only).  The hashes are crypt(3) strings as
 * mkpasswd(1), "doveadm pw" or "htpasswd -B" make them: yescrypt ($y$),
 * SHA-512-crypt ($6$), SHA-256-crypt ($5$) and bcrypt ($2a$, $2b$, $2y$);
 * a leading "{SCHEME}" (Dovecot's passwd-file) is ignored.  Anything else
 * - MD5, DES, "!" or "*" for a locked account - is refused for that user,
 * logged.  Lines are "user:hash", optionally followed by ":..." fields that
 * are ignored; '#' starts a comment line; blank lines are skipped.
 *
 * yescrypt is slow on purpose, so the check runs on the worker pool.  An
 * unknown user costs the same crypt as a known one (the first user's
 * hash, or a built-in yescrypt one, is computed and thrown away), so
 * timing does not tell which users exist.  The file is read at start-up
 * (missing, unreadable or malformed: start-up error) and read again when
 * its size, mtime or inode change, checked at most once a second; if it
 * cannot be read or parsed then, every AUTH gets 454 and a log line until
 * it can (never the old contents: a removed user stays removed).
 *
 *	plugin auth/flat_file file=/etc/sluice/users
 */
#include <sys/stat.h>

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <sluice/plugin.h>

#include "log.h"
#include "xmalloc.h"

#define FF_LINE_MAX 4096
#define FF_ERROR_MAX 512
/* A yescrypt hash of a random phrase: the work for an unknown user. */
#define FF_DUMMY_HASH                                                          \
	"$y$j9T$q6B6AHNw/5QZM04lvj6fp1$"                                       \
	"8M6gtQwMr/DovVwyAoFGZuU1iNpJgef5/skMLcOs6H2"

struct ff_user {
	char *name;
	char *hash;
};

/* One reading of the file, sorted by name. */
struct ff_table {
	struct ff_user *users;
	size_t count;
};

struct flat_file {
	char *file; /* file= */
	pthread_mutex_t mu;
	struct ff_table tab; /* valid when !broken */
	bool broken;         /* the last reading failed */
	char error[FF_ERROR_MAX];
	struct stat st;   /* of the last reading */
	time_t checked_s; /* monotonic seconds of the last stat */
};

enum ff_result {
	FF_OK,
	FF_BAD_PASSWORD,
	FF_UNKNOWN_USER,
	FF_BAD_HASH,
	FF_TEMP,
};

/* What the hook hands to the worker and the worker to done. */
struct ff_job {
	struct flat_file *ff;
	struct sl_async *async;
	char conn_id[32];
	char inst[64];
	char *user;
	char *pass;
	size_t pass_len;
	enum ff_result result;
	char why[FF_ERROR_MAX];
};

static const struct sl_conf_def ff_conf[] = {
	{ .name = "file",
	    .type = SL_CONF_STR,
	    .def = NULL,
	    .offset = offsetof(struct flat_file, file),
	    .help = "the users file: user:hash lines" },
	SL_CONF_END,
};

/* --- the file ------------------------------------------------------------ */

static void
table_free(struct ff_table *t)
{
	size_t i;

	for (i = 0; i < t->count; i++) {
		free(t->users[i].name);
		explicit_bzero(t->users[i].hash, strlen(t->users[i].hash));
		free(t->users[i].hash);
	}
	free(t->users);
	t->users = NULL;
	t->count = 0;
}

static int
user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ff_user *)a)->name,
	    ((const struct ff_user *)b)->name);
}

/* Splits "user:hash[:...]" in place; NULL on a malformed line. */
static const char *
parse_line(char *line, char **user_r, char **hash_r)
{
	char *colon, *end;

	colon = strchr(line, ':');
	if (colon == NULL)
		return "expected user:hash";
	*colon = '\0';
	if (line[0] == '\0')
		return "empty user name";
	*user_r = line;
	*hash_r = colon + 1;
	end = strchr(*hash_r, ':');
	if (end != NULL)
		*end = '\0';
	if ((*hash_r)[0] == '\0')
		return "empty hash";
	return NULL;
}

/* Reads path into t; -1 with error (a "path:line: reason" message). */
static int
table_read(const char *path, struct ff_table *t, struct stat *st_r, char *error,
    size_t size)
{
	char line[FF_LINE_MAX + 2], *user, *hash;
	const char *why = NULL;
	unsigned int lineno = 0;
	size_t len, i;
	FILE *fp;

	memset(t, 0, sizeof(*t));
	fp = fopen(path, "re");
	if (fp == NULL || fstat(fileno(fp), st_r) == -1) {
		snprintf(error, size, "%s: %s", path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	while (why == NULL && fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		len = strlen(line);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(fp)) {
			why = "line too long";
			break;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (line[strspn(line, " \t")] == '\0' ||
		    line[strspn(line, " \t")] == '#')
			continue;
		if ((why = parse_line(line, &user, &hash)) != NULL)
			break;
		t->users =
		    sl_xreallocarray(t->users, t->count + 1, sizeof(*t->users));
		t->users[t->count].name = sl_xstrdup(user);
		t->users[t->count].hash = sl_xstrdup(hash);
		t->count++;
	}
	explicit_bzero(line, sizeof(line));
	if (why == NULL && ferror(fp))
		why = strerror(errno);
	fclose(fp);
	if (why == NULL) {
		qsort(t->users, t->count, sizeof(*t->users), user_cmp);
		for (i = 1; i < t->count && why == NULL; i++)
			if (strcmp(t->users[i - 1].name, t->users[i].name) == 0)
				why = "duplicate user";
		lineno = 0;
	}
	if (why == NULL)
		return 0;
	if (lineno > 0)
		snprintf(error, size, "%s:%u: %s", path, lineno, why);
	else
		snprintf(error, size, "%s: %s", path, why);
	table_free(t);
	return -1;
}

static time_t
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Worker, under ff->mu: reads the file again if it changed. */
static void
maybe_reload(struct flat_file *ff)
{
	struct ff_table t;
	struct stat st;
	time_t now = now_s();

	if (ff->checked_s != 0 && now - ff->checked_s < 1)
		return;
	ff->checked_s = now;
	if (stat(ff->file, &st) == 0 && !ff->broken &&
	    st.st_size == ff->st.st_size && st.st_ino == ff->st.st_ino &&
	    st.st_mtim.tv_sec == ff->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == ff->st.st_mtim.tv_nsec)
		return;
	table_free(&ff->tab);
	if (table_read(ff->file, &t, &st, ff->error, sizeof(ff->error)) == -1) {
		ff->broken = true;
		return;
	}
	ff->tab = t;
	ff->st = st;
	ff->broken = false;
}

/* --- checking ------------------------------------------------------------ */

static bool
hash_supported(const char *h)
{
	static const char *const prefixes[] = { "$y$", "$6$", "$5$", "$2a$",
		"$2b$", "$2y$" };
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(h, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/* Drops Dovecot's "{SCHEME}" in front of a crypt string, in place. */
static void
strip_scheme(char *h)
{
	const char *end;

	if (h == NULL || h[0] != '{' || (end = strchr(h, '}')) == NULL)
		return;
	memmove(h, end + 1, strlen(end));
}

/* Compares without stopping at the first difference. */
static bool
same_string(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = la != lb;

	for (i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* crypt(pass, hash) == hash; false if crypt fails. */
static bool
crypt_check(const char *pass, const char *hash, struct crypt_data *cd)
{
	const char *out;

	memset(cd, 0, sizeof(*cd));
	out = crypt_rn(pass, hash, cd, (int)sizeof(*cd));
	return out != NULL && out[0] != '*' && same_string(out, hash);
}

static void
ff_work(void *arg)
{
	struct ff_job *job = arg;
	struct flat_file *ff = job->ff;
	struct ff_user key, *u;
	struct crypt_data *cd;
	char *hash = NULL, *dummy = NULL;

	pthread_mutex_lock(&ff->mu);
	maybe_reload(ff);
	if (ff->broken) {
		job->result = FF_TEMP;
		snprintf(job->why, sizeof(job->why), "%s", ff->error);
		pthread_mutex_unlock(&ff->mu);
		return;
	}
	key.name = job->user;
	u = bsearch(&key, ff->tab.users, ff->tab.count, sizeof(key), user_cmp);
	if (u != NULL)
		hash = sl_xstrdup(u->hash);
	else if (ff->tab.count > 0)
		dummy = sl_xstrdup(ff->tab.users[0].hash);
	pthread_mutex_unlock(&ff->mu);

	cd = sl_xcalloc(1, sizeof(*cd));
	strip_scheme(hash);
	strip_scheme(dummy);
	if (hash == NULL) {
		/* The same work as for a user who exists. */
		(void)crypt_check(job->pass,
		    dummy != NULL && hash_supported(dummy) ? dummy
		                                           : FF_DUMMY_HASH,
		    cd);
		job->result = FF_UNKNOWN_USER;
	} else if (!hash_supported(hash)) {
		(void)crypt_check(job->pass, FF_DUMMY_HASH, cd);
		job->result = FF_BAD_HASH;
		snprintf(job->why, sizeof(job->why),
		    "unsupported hash format \"%.4s...\" (use yescrypt, "
		    "SHA-512-crypt or bcrypt)",
		    hash);
	} else if (crypt_check(job->pass, hash, cd))
		job->result = FF_OK;
	else
		job->result = FF_BAD_PASSWORD;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	if (hash != NULL) {
		explicit_bzero(hash, strlen(hash));
		free(hash);
	}
	if (dummy != NULL) {
		explicit_bzero(dummy, strlen(dummy));
		free(dummy);
	}
}

static void
job_free(struct ff_job *job)
{
	explicit_bzero(job->pass, job->pass_len);
	free(job->pass);
	explicit_bzero(job->user, strlen(job->user));
	free(job->user);
	free(job);
}

/* Loop thread, after ff_work. */
static void
ff_done(void *arg)
{
	struct ff_job *job = arg;
	enum sl_verdict v;

	switch (job->result) {
	case FF_OK:
		sl_log(LOG_DEBUG, job->conn_id, "plugin=%s verdict=ok",
		    job->inst);
		v = SL_OK;
		break;
	case FF_BAD_PASSWORD:
		sl_log(LOG_INFO, job->conn_id,
		    "plugin=%s verdict=deny reason=bad-password", job->inst);
		v = SL_DENY;
		break;
	case FF_UNKNOWN_USER:
		sl_log(LOG_INFO, job->conn_id,
		    "plugin=%s verdict=deny reason=unknown-user", job->inst);
		v = SL_DENY;
		break;
	case FF_BAD_HASH:
		/* The name is one of the file's: the admin's to fix. */
		sl_log(LOG_WARNING, job->conn_id,
		    "plugin=%s verdict=deny reason=bad-hash user=%s "
		    "error=\"%s\"",
		    job->inst, job->user, job->why);
		v = SL_DENY;
		break;
	default:
		sl_log(LOG_ERR, job->conn_id,
		    "plugin=%s verdict=denysoft error=\"%s\"", job->inst,
		    job->why);
		sl_async_reply(job->async, 454, "4.7.0",
		    "Temporary authentication failure");
		v = SL_DENYSOFT;
		break;
	}
	sl_async_done(&job->async, v);
	job_free(job);
}

static enum sl_verdict
ff_auth(void *state, struct sl_hookctx *ctx)
{
	struct flat_file *ff = state;
	const struct sl_hookargs *a = sl_hook_args(ctx);
	struct ff_job *job;

	if (a->name == NULL || a->value == NULL)
		return SL_DECLINED;
	job = sl_xcalloc(1, sizeof(*job));
	job->ff = ff;
	snprintf(job->conn_id, sizeof(job->conn_id), "%s",
	    sl_conn_id(sl_hook_conn(ctx)));
	snprintf(job->inst, sizeof(job->inst), "%s", sl_hook_plugin_name(ctx));
	job->user = sl_xstrdup(a->name);
	job->pass_len = strlen(a->value);
	job->pass = sl_xstrdup(a->value);
	job->async = sl_async_begin(ctx);
	sl_hook_run_worker(ctx, ff_work, ff_done, job);
	return SL_PENDING;
}

/* --- life ---------------------------------------------------------------- */

/* init runs on the configuring thread only: one buffer will do. */
static char ff_init_error[FF_ERROR_MAX + 16];

static int
ff_init(void **state_r, const char **error_r)
{
	struct flat_file *ff = *state_r;

	if (ff->file == NULL) {
		*error_r = "file= is required";
		return -1;
	}
	if (table_read(ff->file, &ff->tab, &ff->st, ff->error,
	        sizeof(ff->error)) == -1) {
		snprintf(ff_init_error, sizeof(ff_init_error), "file %s",
		    ff->error);
		*error_r = ff_init_error;
		return -1;
	}
	pthread_mutex_init(&ff->mu, NULL);
	ff->checked_s = now_s();
	return 0;
}

static void
ff_fini(void *state)
{
	struct flat_file *ff = state;

	table_free(&ff->tab);
	pthread_mutex_destroy(&ff->mu);
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "auth/flat_file",
	.conf = ff_conf,
	.state_size = sizeof(struct flat_file),
	.init = ff_init,
	.fini = ff_fini,
	.hooks = { [SL_HOOK_AUTH] = ff_auth },
	.front_ends = SL_FRONT_SMTPD,
};
