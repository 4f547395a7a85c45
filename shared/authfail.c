/*
 * authfail.c - failed authentications per client address; see authfail.h.
 *
 * A chained hash table like sl_ipcount's (loop.c), with a window start per
 * entry.  Lookups drop the expired entry they meet; a full table is swept
 * before a new address goes in.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "xmalloc.h"
#include "authfail.h"

#define AF_BUCKETS 1024

struct af {
	uint8_t addr[16];
	unsigned int n;
	uint64_t since_ms; /* the window's start: the first failure */
	struct af *next;
};

static pthread_mutex_t af_mu = PTHREAD_MUTEX_INITIALIZER;
static struct af *af_tab[AF_BUCKETS];
static size_t af_count;

static bool
af_expired(const struct af *e, unsigned int window_ms, uint64_t now_ms)
{
	return now_ms - e->since_ms >= window_ms;
}

static void
af_unlink(struct af **pp)
{
	struct af *e = *pp;

	*pp = e->next;
	free(e);
	af_count--;
}

/* The entry for a, or NULL; an expired one is dropped on the way. */
static struct af **
af_find(const uint8_t a[16], unsigned int window_ms, uint64_t now_ms)
{
	struct af **pp;

	for (pp = &af_tab[sl_addr_hash(a) % AF_BUCKETS]; *pp != NULL;
	     pp = &(*pp)->next) {
		if (memcmp((*pp)->addr, a, 16) != 0)
			continue;
		if (af_expired(*pp, window_ms, now_ms)) {
			af_unlink(pp);
			return NULL;
		}
		return pp;
	}
	return NULL;
}

/* Makes room for one more entry: expired ones first, then the oldest. */
static void
af_make_room(unsigned int window_ms, uint64_t now_ms)
{
	struct af **pp, **oldest = NULL;
	size_t i;

	for (i = 0; i < AF_BUCKETS; i++) {
		pp = &af_tab[i];
		while (*pp != NULL) {
			if (af_expired(*pp, window_ms, now_ms)) {
				af_unlink(pp);
				continue;
			}
			if (oldest == NULL ||
			    (*pp)->since_ms < (*oldest)->since_ms)
				oldest = pp;
			pp = &(*pp)->next;
		}
	}
	if (af_count >= SL_AUTHFAIL_MAX && oldest != NULL)
		af_unlink(oldest);
}

unsigned int
sl_authfail_count(const uint8_t addr[16], unsigned int window_ms,
    uint64_t now_ms)
{
	struct af **pp;
	unsigned int n;

	pthread_mutex_lock(&af_mu);
	pp = af_find(addr, window_ms, now_ms);
	n = pp != NULL ? (*pp)->n : 0;
	pthread_mutex_unlock(&af_mu);
	return n;
}

unsigned int
sl_authfail_add(const uint8_t addr[16], unsigned int window_ms, uint64_t now_ms)
{
	struct af **pp, *e;
	unsigned int n;

	pthread_mutex_lock(&af_mu);
	pp = af_find(addr, window_ms, now_ms);
	if (pp != NULL)
		e = *pp;
	else {
		if (af_count >= SL_AUTHFAIL_MAX)
			af_make_room(window_ms, now_ms);
		e = sl_xcalloc(1, sizeof(*e));
		memcpy(e->addr, addr, 16);
		e->since_ms = now_ms;
		pp = &af_tab[sl_addr_hash(addr) % AF_BUCKETS];
		e->next = *pp;
		*pp = e;
		af_count++;
	}
	if (e->n < UINT_MAX)
		e->n++;
	n = e->n;
	pthread_mutex_unlock(&af_mu);
	return n;
}

size_t
sl_authfail_size(void)
{
	size_t n;

	pthread_mutex_lock(&af_mu);
	n = af_count;
	pthread_mutex_unlock(&af_mu);
	return n;
}

void
sl_authfail_clear(void)
{
	size_t i;

	pthread_mutex_lock(&af_mu);
	for (i = 0; i < AF_BUCKETS; i++)
		while (af_tab[i] != NULL)
			af_unlink(&af_tab[i]);
	pthread_mutex_unlock(&af_mu);
}
