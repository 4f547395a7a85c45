/*
 * test_store.c - shared/store.c, the LMDB back end: get, set, incr and
 * delete, expiry with an injected clock (set, incr and delete of expired
 * entries; the purge), values that are not numbers, persistence across a
 * reopen, a full map, and an unusable path.  Each test has its own fresh
 * directory.
 */
#include <sys/stat.h>

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "xmalloc.h"

#define T0 ((time_t)1800000000)
#define MAP (1024 * 1024)

struct fx {
	char dir[64];
	char path[96];
	struct sl_store *st;
};

static int
setup(void **state)
{
	struct fx *fx;
	char *err = NULL;

	fx = sl_xcalloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_store.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/store.mdb", fx->dir);
	fx->st = sl_store_lmdb_open(fx->path, MAP, &err);
	if (fx->st == NULL) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char lock[128];

	sl_store_free(&fx->st);
	snprintf(lock, sizeof(lock), "%s-lock", fx->path);
	unlink(fx->path);
	unlink(lock);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
check_value(struct sl_store *st, const char *key, time_t now, const char *want)
{
	char *val;
	size_t len;
	int rc;

	rc = sl_store_lmdb_get(st, key, now, &val, &len);
	if (want == NULL) {
		assert_int_equal(rc, SL_STORE_ABSENT);
		assert_null(val);
		return;
	}
	assert_int_equal(rc, SL_STORE_OK);
	assert_int_equal(len, strlen(want));
	assert_string_equal(val, want);
	free(val);
}

static void
test_set_get_delete(void **state)
{
	struct fx *fx = *state;
	static const char bin[] = { 'a', '\0', 'b' };
	char *val;
	size_t len;

	check_value(fx->st, "t:a", T0, NULL);
	assert_int_equal(sl_store_lmdb_set(fx->st, "t:a", "one", 3, 0, T0),
	    SL_STORE_OK);
	check_value(fx->st, "t:a", T0, "one");
	assert_int_equal(sl_store_lmdb_set(fx->st, "t:a", "two!", 4, 0, T0),
	    SL_STORE_OK);
	check_value(fx->st, "t:a", T0 + 1000000, "two!");
	/* binary values and the empty value */
	assert_int_equal(sl_store_lmdb_set(fx->st, "t:bin", bin, 3, 0, T0),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_get(fx->st, "t:bin", T0, &val, &len),
	    SL_STORE_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(val, bin, 3);
	free(val);
	assert_int_equal(sl_store_lmdb_set(fx->st, "t:e", "", 0, 0, T0),
	    SL_STORE_OK);
	check_value(fx->st, "t:e", T0, "");
	assert_int_equal(sl_store_lmdb_delete(fx->st, "t:a", T0), SL_STORE_OK);
	check_value(fx->st, "t:a", T0, NULL);
	assert_int_equal(sl_store_lmdb_delete(fx->st, "t:a", T0),
	    SL_STORE_ABSENT);
	/* keys LMDB cannot hold */
	assert_int_equal(sl_store_lmdb_set(fx->st, "", "x", 1, 0, T0),
	    SL_STORE_UNAVAILABLE);
}

static void
test_incr(void **state)
{
	struct fx *fx = *state;
	long long n;

	assert_int_equal(sl_store_lmdb_incr(fx->st, "c", 1, 0, T0, &n),
	    SL_STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(sl_store_lmdb_incr(fx->st, "c", 5, 0, T0, &n),
	    SL_STORE_OK);
	assert_int_equal(n, 6);
	assert_int_equal(sl_store_lmdb_incr(fx->st, "c", -10, 0, T0, &n),
	    SL_STORE_OK);
	assert_int_equal(n, -4);
	check_value(fx->st, "c", T0, "-4");
	/* a set number counts on */
	assert_int_equal(sl_store_lmdb_set(fx->st, "c", "41", 2, 0, T0),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_incr(fx->st, "c", 1, 0, T0, &n),
	    SL_STORE_OK);
	assert_int_equal(n, 42);
	/* not a number, overflow: refused, value kept */
	assert_int_equal(sl_store_lmdb_set(fx->st, "s", "abc", 3, 0, T0),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_incr(fx->st, "s", 1, 0, T0, &n),
	    SL_STORE_UNAVAILABLE);
	check_value(fx->st, "s", T0, "abc");
	assert_int_equal(
	    sl_store_lmdb_incr(fx->st, "big", LLONG_MAX, 0, T0, &n),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_incr(fx->st, "big", 1, 0, T0, &n),
	    SL_STORE_UNAVAILABLE);
}

static void
test_expiry(void **state)
{
	struct fx *fx = *state;
	long long n;

	assert_int_equal(sl_store_lmdb_set(fx->st, "x", "v", 1, 10, T0),
	    SL_STORE_OK);
	check_value(fx->st, "x", T0 + 9, "v");
	check_value(fx->st, "x", T0 + 10, NULL);
	assert_int_equal(sl_store_lmdb_delete(fx->st, "x", T0 + 10),
	    SL_STORE_ABSENT);
	/* incr restarts the lifetime; an expired count starts again */
	assert_int_equal(sl_store_lmdb_incr(fx->st, "k", 1, 5, T0, &n),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_incr(fx->st, "k", 1, 5, T0 + 4, &n),
	    SL_STORE_OK);
	assert_int_equal(n, 2);
	check_value(fx->st, "k", T0 + 8, "2");
	assert_int_equal(sl_store_lmdb_incr(fx->st, "k", 1, 5, T0 + 9, &n),
	    SL_STORE_OK);
	assert_int_equal(n, 1);
	/* an expired value that is not a number does not block incr */
	assert_int_equal(sl_store_lmdb_set(fx->st, "s", "abc", 3, 1, T0),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_incr(fx->st, "s", 3, 0, T0 + 1, &n),
	    SL_STORE_OK);
	assert_int_equal(n, 3);
	/* set without expiry makes a key permanent */
	assert_int_equal(sl_store_lmdb_set(fx->st, "k", "7", 1, 0, T0 + 9),
	    SL_STORE_OK);
	check_value(fx->st, "k", T0 + 100000, "7");
}

static void
test_purge_and_reopen(void **state)
{
	struct fx *fx = *state;
	char *err = NULL;

	assert_int_equal(sl_store_lmdb_set(fx->st, "a", "1", 1, 10, T0),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_set(fx->st, "b", "2", 1, 20, T0),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_set(fx->st, "c", "3", 1, 0, T0),
	    SL_STORE_OK);
	assert_int_equal(sl_store_lmdb_purge(fx->st, T0 + 5), 0);
	assert_int_equal(sl_store_lmdb_purge(fx->st, T0 + 15), 1);
	check_value(fx->st, "b", T0 + 15, "2");
	/* what is stored survives a close and reopen */
	sl_store_free(&fx->st);
	fx->st = sl_store_lmdb_open(fx->path, MAP, &err);
	assert_non_null(fx->st);
	check_value(fx->st, "c", T0, "3");
	check_value(fx->st, "a", T0, NULL);
}

/* A full map: expired entries make room; live ones do not go. */
static void
test_map_full(void **state)
{
	struct fx *fx = *state;
	char key[32], val[1024], *got;
	size_t len;
	int i, rc = SL_STORE_OK;

	memset(val, 'v', sizeof(val));
	for (i = 0; i < 10000 && rc == SL_STORE_OK; i++) {
		snprintf(key, sizeof(key), "old:%d", i);
		rc = sl_store_lmdb_set(fx->st, key, val, sizeof(val), 1, T0);
	}
	assert_int_equal(rc, SL_STORE_UNAVAILABLE);
	assert_true(i > 10);
	/* a second later they have expired: the write purges and succeeds */
	assert_int_equal(
	    sl_store_lmdb_set(fx->st, "n", val, sizeof(val), 0, T0 + 1),
	    SL_STORE_OK);
	check_value(fx->st, "old:0", T0 + 1, NULL);
	/* full of live entries: writes fail, what is there stays */
	rc = SL_STORE_OK;
	for (i = 0; i < 10000 && rc == SL_STORE_OK; i++) {
		snprintf(key, sizeof(key), "new:%d", i);
		rc =
		    sl_store_lmdb_set(fx->st, key, val, sizeof(val), 0, T0 + 1);
	}
	assert_int_equal(rc, SL_STORE_UNAVAILABLE);
	rc = sl_store_lmdb_get(fx->st, "n", T0 + 100, &got, &len);
	assert_int_equal(rc, SL_STORE_OK);
	assert_int_equal(len, sizeof(val));
	free(got);
}

static void
test_bad_path(void **state)
{
	struct sl_store *st;
	char *err = NULL;

	(void)state;
	st = sl_store_lmdb_open("/nonexistent/dir/store.mdb", MAP, &err);
	assert_null(st);
	assert_non_null(err);
	assert_non_null(strstr(err, "/nonexistent/dir/store.mdb"));
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_set_get_delete, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_incr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_and_reopen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
		cmocka_unit_test(test_bad_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
