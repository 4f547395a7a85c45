/*
 * xmalloc.c - allocation that logs and aborts on out-of-memory, as Postfix's
 * mymalloc and OpenSMTPD's xmalloc do.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "xmalloc.h"

void *
sl_xmalloc(size_t n)
{
	void *p;

	p = malloc(n == 0 ? 1 : n);
	if (p == NULL)
		sl_panic("out of memory allocating %zu bytes", n);
	return p;
}

void *
sl_xcalloc(size_t nmemb, size_t size)
{
	void *p;

	p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
	if (p == NULL)
		sl_panic("out of memory allocating %zu x %zu bytes", nmemb,
		    size);
	return p;
}

void *
sl_xrealloc(void *p, size_t n)
{
	void *q;

	q = realloc(p, n == 0 ? 1 : n);
	if (q == NULL)
		sl_panic("out of memory reallocating %zu bytes", n);
	return q;
}

void *
sl_xreallocarray(void *p, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		sl_panic("array size overflow: %zu x %zu", nmemb, size);
	return sl_xrealloc(p, nmemb * size);
}

char *
sl_xstrdup(const char *s)
{
	return sl_xstrndup(s, strlen(s));
}

char *
sl_xstrndup(const char *s, size_t n)
{
	char *p;

	p = sl_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
sl_xvasprintf(const char *fmt, va_list ap)
{
	char *p;

	if (vasprintf(&p, fmt, ap) < 0)
		sl_panic("out of memory formatting a string");
	return p;
}

char *
sl_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = sl_xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

int64_t
sl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
