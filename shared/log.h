/*
 * log.h - one event per line: session id first, then key=value pairs.
 *
 * Three severities, as in Postfix: sl_log() for what peers, plugins and
 * back ends did; sl_fatal() for start-up and environment problems only
 * (prints and exits 1); sl_panic() and SL_ASSERT() for our own bugs
 * (abort, core dump).  Thread-safe.  Before sl_log_init() everything goes
 * to stderr.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

/* to_stderr: true with -f; otherwise syslog, facility mail. */
void sl_log_init(const char *ident, bool to_stderr);
/* Messages above this priority (e.g. LOG_DEBUG) are dropped. */
void sl_log_set_level(int max_priority);
int sl_log_level(void);
/*
 * Batching (loop threads): lines of this thread collect in a buffer that
 * is written with one write(2) when arm(arg) -- called when the buffer
 * turns non-empty -- schedules sl_log_flush() for the end of the loop
 * iteration, or when it fills.  Off: every line is written at once.
 */
void sl_log_thread_batch(void (*arm)(void *), void *arg);
void sl_log_flush(void);
/* sessid may be NULL (daemon-wide events). */
void sl_log(int priority, const char *sessid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sl_vlog(int priority, const char *sessid, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* The same with "plugin=NAME " before the text (plugin may be NULL). */
void sl_vlog_plugin(int priority, const char *sessid, const char *plugin,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
void sl_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));
void sl_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

#define SL_ASSERT(e)                                                           \
	do {                                                                   \
		if (!(e))                                                      \
			sl_panic("assertion failed: %s (%s:%d)", #e, __FILE__, \
			    __LINE__);                                         \
	} while (0)

#endif
