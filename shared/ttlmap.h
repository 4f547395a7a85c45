/*
 * ttlmap.h - a bounded hash table whose entries expire: the shape of the
 * resolver's answer cache and of dnsbl's per-client verdict cache.
 *
 * Intrusive: the caller's entry embeds a struct sl_ttlnode and carries
 * its own key; the table keeps the hash chains, the insertion order and
 * the count.  When full, an insert drops the oldest entry first.  An
 * entry is looked up by its hash with a caller's comparison; an expired
 * one found that way is dropped.  Entries are freed by the table's
 * free_node callback (on replace, eviction, expiry and clear).
 *
 * Not locked: the owner serialises (the resolver cache belongs to one
 * loop thread; dnsbl holds its own mutex).  Internal to libsluice; the
 * dnsbl plugin reaches it through -rdynamic like dnslist.h.
 */
#ifndef SL_TTLMAP_H
#define SL_TTLMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_ttlnode {
	struct sl_ttlnode *hnext;         /* hash chain */
	struct sl_ttlnode *older, *newer; /* insertion order */
	uint64_t expires_ms;              /* dropped once now >= this */
	uint32_t hash;
};

struct sl_ttlmap {
	size_t max, count, nbuckets; /* nbuckets: a power of two */
	struct sl_ttlnode **buckets;
	struct sl_ttlnode *oldest, *newest;
	void (*free_node)(struct sl_ttlnode *);
};

/* Whether node (whose hash matched) holds key. */
typedef bool (
    *sl_ttlmap_match_fn)(const struct sl_ttlnode *node, const void *key);

/* An empty table of at most max entries (0: it keeps nothing). */
void sl_ttlmap_init(struct sl_ttlmap *m, size_t max,
    void (*free_node)(struct sl_ttlnode *));
/* Frees every entry and the buckets; the table is then uninitialised. */
void sl_ttlmap_clear(struct sl_ttlmap *m);

/*
 * The entry with this hash that match() says holds key, if it has not
 * expired at now_ms; an expired one is dropped.  NULL if none.
 */
struct sl_ttlnode *sl_ttlmap_find(struct sl_ttlmap *m, uint32_t hash,
    sl_ttlmap_match_fn match, const void *key, uint64_t now_ms);

/*
 * Adds node (hash and expires_ms set by the caller) as the newest entry,
 * after dropping an entry match() says holds the same key, then the
 * oldest ones while the table is full.  With max 0, node is freed.
 */
void sl_ttlmap_put(struct sl_ttlmap *m, struct sl_ttlnode *node,
    sl_ttlmap_match_fn match, const void *key);

/* Unlinks node and frees it. */
void sl_ttlmap_remove(struct sl_ttlmap *m, struct sl_ttlnode *node);

#endif
