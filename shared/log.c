/*
 * log.c - event logging to stderr (foreground) or syslog (mail facility).
 *
 * A line is "[sessid ]text"; stderr lines get a time stamp and the
 * priority name.  Each line is written with one write(2) so that lines of
 * concurrent threads never interleave.
 */
#include <sys/time.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static bool log_stderr = true;
static int log_max = LOG_INFO;
static const char *log_ident = "sluice";
/* getpid() is a system call on every line otherwise; 0 = not known (a
 * forked child forgets it); read and set atomically (loop threads log) */
static pid_t log_pid;

#define BATCH_SIZE 16384

static __thread char *batch;
static __thread size_t batch_len;
static __thread void (*batch_arm)(void *);
static __thread void *batch_arg;

static void
write_all(const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(STDERR_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to report it */
		p += w;
		n -= (size_t)w;
	}
}

void
sl_log_thread_batch(void (*arm)(void *), void *arg)
{
	if (arm == NULL) {
		sl_log_flush();
		free(batch);
		batch = NULL;
		batch_arm = NULL;
		return;
	}
	if (batch == NULL)
		batch = malloc(BATCH_SIZE);
	batch_arm = batch != NULL ? arm : NULL;
	batch_arg = arg;
}

void
sl_log_flush(void)
{
	if (batch_len > 0)
		write_all(batch, batch_len);
	batch_len = 0;
}

static void
emit(const char *line, size_t n)
{
	if (batch_arm == NULL || n > BATCH_SIZE) {
		sl_log_flush();
		write_all(line, n);
		return;
	}
	if (batch_len + n > BATCH_SIZE)
		sl_log_flush();
	if (batch_len == 0)
		batch_arm(batch_arg);
	memcpy(batch + batch_len, line, n);
	batch_len += n;
}

static const char *const prio_names[] = { "emerg", "alert", "crit", "error",
	"warning", "notice", "info", "debug" };

static void
log_forget_pid(void)
{
	__atomic_store_n(&log_pid, 0, __ATOMIC_RELAXED);
}

void
sl_log_init(const char *ident, bool to_stderr)
{
	static bool atfork;

	if (!atfork) {
		pthread_atfork(NULL, NULL, log_forget_pid);
		atfork = true;
	}
	log_ident = ident;
	log_stderr = to_stderr;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
sl_log_set_level(int max_priority)
{
	log_max = max_priority;
}

int
sl_log_level(void)
{
	return log_max;
}

/*
 * "YYYY-MM-DDTHH:MM:SS" of this thread's last line: localtime_r once a
 * second, not once a line.
 */
static __thread time_t stamp_sec = -1;
static __thread char stamp[64];

static size_t
put_str(char *p, const char *s, size_t room)
{
	size_t n = strlen(s);

	if (n > room)
		n = room;
	memcpy(p, s, n);
	return n;
}

/* n >= 0 as decimal digits; returns their count */
static size_t
put_num(char *p, long n, size_t width)
{
	char d[24];
	size_t i = 0, k;

	do {
		d[i++] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0 && i < sizeof(d));
	while (i < width && i < sizeof(d))
		d[i++] = '0';
	for (k = 0; k < i; k++)
		p[k] = d[i - 1 - k];
	return i;
}

void
sl_vlog_plugin(int priority, const char *sessid, const char *plugin,
    const char *fmt, va_list ap)
{
	/* header (~80) + session id + "plugin=NAME " + a message of up to
	 * MSG_MAX bytes + "\n" */
	enum { MSG_MAX = 2047 };
	char line[2400];
	struct timeval tv;
	struct tm tm;
	size_t n = 0, text, room, i;
	int m, saved = errno;
	pid_t pid;

	if (priority > log_max)
		return;
	if (log_stderr) {
		gettimeofday(&tv, NULL);
		if (tv.tv_sec != stamp_sec) {
			localtime_r(&tv.tv_sec, &tm);
			snprintf(stamp, sizeof(stamp),
			    "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
			    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			    tm.tm_sec);
			stamp_sec = tv.tv_sec;
		}
		pid = __atomic_load_n(&log_pid, __ATOMIC_RELAXED);
		if (pid == 0) {
			pid = getpid();
			__atomic_store_n(&log_pid, pid, __ATOMIC_RELAXED);
		}
		n += put_str(line + n, stamp, 32);
		line[n++] = '.';
		n += put_num(line + n, (long)tv.tv_usec / 1000, 3);
		line[n++] = ' ';
		n += put_str(line + n, log_ident, 64);
		line[n++] = '[';
		n += put_num(line + n, (long)pid, 1);
		line[n++] = ']';
		line[n++] = ':';
		line[n++] = ' ';
		n += put_str(line + n, prio_names[priority & 7], 8);
		line[n++] = ':';
		line[n++] = ' ';
	}
	text = n;
	if (sessid != NULL) {
		n += put_str(line + n, sessid, 64);
		line[n++] = ' ';
	}
	if (plugin != NULL) {
		n += put_str(line + n, "plugin=", 7);
		n += put_str(line + n, plugin, 64);
		line[n++] = ' ';
	}
	room = sizeof(line) - n - 1; /* the newline */
	if (room > MSG_MAX + 1)
		room = MSG_MAX + 1;
	m = vsnprintf(line + n, room, fmt, ap);
	if (m < 0) {
		errno = saved;
		return;
	}
	/* A peer's bytes may reach a log line: never let them split it. */
	for (i = n; line[i] != '\0'; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	n = i;
	if (!log_stderr) {
		syslog(priority, "%s", line + text);
		errno = saved;
		return;
	}
	line[n++] = '\n';
	emit(line, n);
	errno = saved;
}

void
sl_vlog(int priority, const char *sessid, const char *fmt, va_list ap)
{
	sl_vlog_plugin(priority, sessid, NULL, fmt, ap);
}

void
sl_log(int priority, const char *sessid, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sl_vlog(priority, sessid, fmt, ap);
	va_end(ap);
}

/* The last words of sl_fatal and sl_panic: syslog (if used) and stderr. */
static void last_words(const char *kind, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
last_words(const char *kind, const char *fmt, va_list ap)
{
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	sl_log_flush();
	if (!log_stderr)
		syslog(LOG_CRIT, "%s: %s", kind, msg);
	if (strcmp(kind, "fatal") == 0)
		fprintf(stderr, "%s: %s\n", log_ident, msg);
	else
		fprintf(stderr, "%s: %s: %s\n", log_ident, kind, msg);
}

void
sl_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	last_words("fatal", fmt, ap);
	va_end(ap);
	exit(1);
}

void
sl_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	last_words("panic", fmt, ap);
	va_end(ap);
	abort();
}
