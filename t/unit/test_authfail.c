/*
 * test_authfail.c - shared/authfail.c: counting per address inside the
 * window, expiry (the count starts again), addresses kept apart, and the
 * bound on the table: expired entries go first, then the oldest window.
 * Times are given explicitly, so nothing here waits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "authfail.h"

#define WINDOW 1000

static void
addr_n(uint8_t a[16], unsigned int n)
{
	memset(a, 0, 16);
	a[10] = 0xff;
	a[11] = 0xff;
	a[12] = 10;
	a[13] = (uint8_t)(n >> 16);
	a[14] = (uint8_t)(n >> 8);
	a[15] = (uint8_t)n;
}

static int
setup(void **state)
{
	(void)state;
	sl_authfail_clear();
	return 0;
}

static void
test_count_and_expire(void **state)
{
	uint8_t a[16], b[16];

	(void)state;
	addr_n(a, 1);
	addr_n(b, 2);
	assert_int_equal(sl_authfail_count(a, WINDOW, 100), 0);
	assert_int_equal(sl_authfail_add(a, WINDOW, 100), 1);
	assert_int_equal(sl_authfail_add(a, WINDOW, 500), 2);
	assert_int_equal(sl_authfail_add(b, WINDOW, 500), 1);
	assert_int_equal(sl_authfail_count(a, WINDOW, 1099), 2);
	/* The window runs from the first failure. */
	assert_int_equal(sl_authfail_count(a, WINDOW, 1100), 0);
	assert_int_equal(sl_authfail_count(b, WINDOW, 1100), 1);
	assert_int_equal(sl_authfail_add(a, WINDOW, 1100), 1);
	assert_int_equal(sl_authfail_size(), 2);
}

static void
test_bounded(void **state)
{
	uint8_t a[16];
	unsigned int i;

	(void)state;
	for (i = 0; i < SL_AUTHFAIL_MAX; i++) {
		addr_n(a, i);
		sl_authfail_add(a, WINDOW, 10 + i / 100);
	}
	assert_int_equal(sl_authfail_size(), SL_AUTHFAIL_MAX);
	/* Full: a new address pushes out one with the oldest window. */
	addr_n(a, SL_AUTHFAIL_MAX);
	assert_int_equal(sl_authfail_add(a, WINDOW, 200), 1);
	assert_int_equal(sl_authfail_size(), SL_AUTHFAIL_MAX);
	addr_n(a, SL_AUTHFAIL_MAX - 1); /* among the newest: still there */
	assert_int_equal(sl_authfail_count(a, WINDOW, 200), 1);
	/* Later, every old window has expired: they all go at once. */
	addr_n(a, SL_AUTHFAIL_MAX + 1);
	assert_int_equal(sl_authfail_add(a, WINDOW, 1150), 1);
	assert_int_equal(sl_authfail_size(), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_count_and_expire, setup),
		cmocka_unit_test_setup(test_bounded, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
