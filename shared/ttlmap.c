/*
 * ttlmap.c - a bounded hash table whose entries expire (ttlmap.h).
 */
#include <stdlib.h>

#include "ttlmap.h"
#include "xmalloc.h"

void
sl_ttlmap_init(struct sl_ttlmap *m, size_t max,
    void (*free_node)(struct sl_ttlnode *))
{
	m->max = max;
	m->count = 0;
	m->nbuckets = 16;
	while (m->nbuckets < max && m->nbuckets < (1u << 20))
		m->nbuckets <<= 1;
	m->buckets = sl_xcalloc(m->nbuckets, sizeof(*m->buckets));
	m->oldest = m->newest = NULL;
	m->free_node = free_node;
}

void
sl_ttlmap_remove(struct sl_ttlmap *m, struct sl_ttlnode *node)
{
	struct sl_ttlnode **pp = &m->buckets[node->hash & (m->nbuckets - 1)];

	while (*pp != node)
		pp = &(*pp)->hnext;
	*pp = node->hnext;
	if (node->older != NULL)
		node->older->newer = node->newer;
	else
		m->oldest = node->newer;
	if (node->newer != NULL)
		node->newer->older = node->older;
	else
		m->newest = node->older;
	m->count--;
	m->free_node(node);
}

void
sl_ttlmap_clear(struct sl_ttlmap *m)
{
	while (m->oldest != NULL)
		sl_ttlmap_remove(m, m->oldest);
	free(m->buckets);
	m->buckets = NULL;
}

static struct sl_ttlnode *
find(const struct sl_ttlmap *m, uint32_t hash, sl_ttlmap_match_fn match,
    const void *key)
{
	struct sl_ttlnode *n;

	for (n = m->buckets[hash & (m->nbuckets - 1)]; n != NULL; n = n->hnext)
		if (n->hash == hash && match(n, key))
			return n;
	return NULL;
}

struct sl_ttlnode *
sl_ttlmap_find(struct sl_ttlmap *m, uint32_t hash, sl_ttlmap_match_fn match,
    const void *key, uint64_t now_ms)
{
	struct sl_ttlnode *n;

	if (m->max == 0)
		return NULL;
	n = find(m, hash, match, key);
	if (n != NULL && n->expires_ms <= now_ms) {
		sl_ttlmap_remove(m, n);
		n = NULL;
	}
	return n;
}

void
sl_ttlmap_put(struct sl_ttlmap *m, struct sl_ttlnode *node,
    sl_ttlmap_match_fn match, const void *key)
{
	struct sl_ttlnode *old, **head;

	if (m->max == 0) {
		m->free_node(node);
		return;
	}
	old = find(m, node->hash, match, key);
	if (old != NULL)
		sl_ttlmap_remove(m, old);
	while (m->count >= m->max)
		sl_ttlmap_remove(m, m->oldest);
	head = &m->buckets[node->hash & (m->nbuckets - 1)];
	node->hnext = *head;
	*head = node;
	node->older = m->newest;
	node->newer = NULL;
	if (m->newest != NULL)
		m->newest->newer = node;
	else
		m->oldest = node;
	m->newest = node;
	m->count++;
}
