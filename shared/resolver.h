/*
 * resolver.h - the asynchronous DNS resolver of libsluice: one per loop
 * thread, on c-ares, driven by the loop's libevent base.  Plugins use it
 * through sl_dns_lookup() (sluice/plugin.h); this header is the core's
 * side: creating and reconfiguring a loop's resolver, and the pure parts
 * (server list, cache) the unit tests call directly.
 *
 * Lifetimes: a query is owned by the resolver.  The plugin's side ends
 * when fn has run or sl_dns_cancel() was called; c-ares's side when its
 * callback ran (answer, c-ares timeout, or destruction).  The record is
 * freed when both are over, so a cancel before the answer is safe and a
 * late answer is only cached.  dns_timeout is enforced by a per-query
 * timer of ours (c-ares gets the same timeout, one try per server).
 *
 * Cache: keyed by (lower-cased name, type); an entry lives for the
 * answer's least TTL, a negative answer (NXDOMAIN, NODATA) for the SOA's
 * min(TTL, MINIMUM) (RFC 2308) or SL_DNS_NEG_TTL seconds when the answer
 * had no SOA.  Timeouts and failures are never cached.  When full, the
 * oldest entry goes.  dns_cache_size 0 turns it off.
 */
#ifndef SL_RESOLVER_H
#define SL_RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include <sluice/plugin.h>

#include "config.h"

struct event_base;
struct sl_resolver;

/* Negative-answer lifetime when the answer carries no SOA. */
#define SL_DNS_NEG_TTL 30

/*
 * A resolver on base with s's dns_* settings.  Returns NULL with
 * *error_r (allocated) if c-ares cannot start.
 */
struct sl_resolver *sl_resolver_new(struct event_base *base,
    const struct sl_settings *s, char **error_r);
/* Applies changed dns_* settings (after a reload); queries in flight stay. */
int sl_resolver_configure(struct sl_resolver *r, const struct sl_settings *s,
    char **error_r);
/* Ends every query without calling its fn, then frees. */
void sl_resolver_free(struct sl_resolver **rp);
/*
 * Delivers the answers r already has (cache hits and the like, which
 * sl_resolver_lookup() never delivers inside its own call), a few rounds
 * deep for callbacks that look up again.  Loop thread, outside any lookup.
 */
void sl_resolver_settle(struct sl_resolver *r);
/* sl_dns_lookup() for a given resolver; sessid prefixes the debug log. */
struct sl_dns_query *sl_resolver_lookup(struct sl_resolver *r,
    const char *sessid, const char *name, enum sl_dns_type type, sl_dns_fn fn,
    void *arg);

/*
 * dns_servers items (ADDRESS, ADDRESS:PORT, [IPV6]:PORT, IPV6) as the
 * comma-separated list ares_set_servers_ports_csv() takes.  Returns 0 with
 * *csv_r allocated ("" for an empty list), or -1 with *error_r allocated
 * ("bad address X").
 */
int sl_dns_servers_csv(const struct sl_strlist *l, char **csv_r,
    char **error_r);

/* --- the cache, with the time passed in (ms, monotonic) -------------- */

struct sl_dns_cache;
struct sl_dns_cache *sl_dns_cache_new(size_t max_entries);
void sl_dns_cache_free(struct sl_dns_cache **cp);
/* Drops every entry; max_entries becomes the new bound. */
void sl_dns_cache_reset(struct sl_dns_cache *c, size_t max_entries);
/* A copy of res (status OK, NXDOMAIN or NODATA) kept for res->ttl s. */
void sl_dns_cache_put(struct sl_dns_cache *c, const struct sl_dns_result *res,
    uint64_t now_ms);
/*
 * The entry for (name, type) if it has not expired, with ttl the seconds
 * left and cached set; borrowed until the next put or reset.  NULL if
 * none.
 */
const struct sl_dns_result *sl_dns_cache_get(struct sl_dns_cache *c,
    const char *name, enum sl_dns_type type, uint64_t now_ms);
size_t sl_dns_cache_count(const struct sl_dns_cache *c);

#endif
