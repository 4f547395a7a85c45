/*
 * test_ttlmap.c - the bounded, expiring hash table under the resolver's
 * cache and dnsbl's verdict cache: lookup by hash and key, expiry at the
 * deadline, replacement of a key, eviction of the oldest insert, max 0,
 * and every entry freed exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ttlmap.h"
#include "xmalloc.h"

struct item {
	struct sl_ttlnode node;
	int key, value;
};

static int freed;

static void
item_free(struct sl_ttlnode *n)
{
	freed++;
	free(n);
}

static bool
item_match(const struct sl_ttlnode *n, const void *key)
{
	return ((const struct item *)n)->key == *(const int *)key;
}

/* key % 4 as the hash: keys 0, 4, 8 ... share a chain */
static void
put(struct sl_ttlmap *m, int key, int value, uint64_t expires_ms)
{
	struct item *it = sl_xcalloc(1, sizeof(*it));

	it->key = key;
	it->value = value;
	it->node.hash = (uint32_t)key % 4;
	it->node.expires_ms = expires_ms;
	sl_ttlmap_put(m, &it->node, item_match, &it->key);
}

/* key's value at now_ms, or -1 */
static int
get(struct sl_ttlmap *m, int key, uint64_t now_ms)
{
	struct sl_ttlnode *n;

	n = sl_ttlmap_find(m, (uint32_t)key % 4, item_match, &key, now_ms);
	return n != NULL ? ((struct item *)n)->value : -1;
}

static void
test_find_expire(void **state)
{
	struct sl_ttlmap m;

	(void)state;
	freed = 0;
	sl_ttlmap_init(&m, 8, item_free);
	put(&m, 1, 10, 1000);
	put(&m, 5, 50, 2000); /* same chain as 1 */
	put(&m, 9, 90, 3000); /* and again */
	assert_int_equal(get(&m, 1, 0), 10);
	assert_int_equal(get(&m, 5, 999), 50);
	assert_int_equal(get(&m, 9, 999), 90);
	assert_int_equal(get(&m, 13, 0), -1); /* hash matches, key does not */
	assert_int_equal(get(&m, 2, 0), -1);
	/* due at expires_ms exactly: dropped when looked up */
	assert_int_equal(get(&m, 1, 1000), -1);
	assert_int_equal(m.count, 2);
	assert_int_equal(freed, 1);
	assert_int_equal(get(&m, 5, 1999), 50);
	assert_int_equal(get(&m, 9, 2500), 90);
	sl_ttlmap_clear(&m);
	assert_int_equal(freed, 3);
}

static void
test_replace_evict(void **state)
{
	struct sl_ttlmap m;

	(void)state;
	freed = 0;
	sl_ttlmap_init(&m, 3, item_free);
	put(&m, 1, 10, 100);
	put(&m, 2, 20, 100);
	put(&m, 1, 11, 100); /* replaces, and becomes the newest */
	assert_int_equal(m.count, 2);
	assert_int_equal(freed, 1);
	assert_int_equal(get(&m, 1, 0), 11);
	put(&m, 3, 30, 100);
	put(&m, 4, 40, 100); /* full: 2, the oldest insert, goes */
	assert_int_equal(m.count, 3);
	assert_int_equal(get(&m, 2, 0), -1);
	assert_int_equal(get(&m, 1, 0), 11);
	assert_int_equal(get(&m, 3, 0), 30);
	assert_int_equal(get(&m, 4, 0), 40);
	put(&m, 5, 50, 100); /* then 1 */
	assert_int_equal(get(&m, 1, 0), -1);
	assert_int_equal(get(&m, 5, 0), 50);
	assert_int_equal(freed, 3);
	/* remove from the middle of the order keeps both ends linked */
	sl_ttlmap_remove(&m, sl_ttlmap_find(&m, 0, item_match, &(int){ 4 }, 0));
	assert_int_equal(m.count, 2);
	assert_ptr_equal(m.oldest->newer, m.newest);
	assert_ptr_equal(m.newest->older, m.oldest);
	sl_ttlmap_clear(&m);
	assert_int_equal(freed, 6);
	assert_null(m.oldest);
}

static void
test_max_zero(void **state)
{
	struct sl_ttlmap m;

	(void)state;
	freed = 0;
	sl_ttlmap_init(&m, 0, item_free);
	put(&m, 1, 10, 100); /* freed at once */
	assert_int_equal(freed, 1);
	assert_int_equal(m.count, 0);
	assert_int_equal(get(&m, 1, 0), -1);
	sl_ttlmap_clear(&m);
	assert_int_equal(freed, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_expire),
		cmocka_unit_test(test_replace_evict),
		cmocka_unit_test(test_max_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
