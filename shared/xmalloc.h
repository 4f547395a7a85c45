/*
 * xmalloc.h - allocation that cannot fail (it logs and aborts instead),
 * small portability macros, and the monotonic clock.  Never check the
 * allocators for NULL.
 */
#ifndef SL_XMALLOC_H
#define SL_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* clang says __GNUC__ 4 but has the attribute: ask for it by name. */
#if defined(__has_attribute)
#if __has_attribute(__fallthrough__)
#define SL_FALLTHROUGH __attribute__((__fallthrough__))
#endif
#endif
#ifndef SL_FALLTHROUGH
#define SL_FALLTHROUGH ((void)0)
#endif

#define SL_NELEM(a) (sizeof(a) / sizeof((a)[0]))

void *sl_xmalloc(size_t n);
void *sl_xcalloc(size_t nmemb, size_t size);
void *sl_xrealloc(void *p, size_t n);
/* Grows an array of nmemb elements of size bytes; checks the product. */
void *sl_xreallocarray(void *p, size_t nmemb, size_t size);
char *sl_xstrdup(const char *s);
/* Milliseconds of CLOCK_MONOTONIC: for deadlines and durations. */
int64_t sl_now_ms(void);
char *sl_xstrndup(const char *s, size_t n);
char *sl_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *sl_xvasprintf(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

#endif
