/*
 * test_dnslist.c - shared/dnslist.c without DNS: the zone-list syntax of
 * postscreen_dnsbl_sites (good and bad items, the error text naming the
 * item), the answer filter's ranges, the TXT cleaner and the %KEY%
 * expander.  Table-driven.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dnslist.h"
#include "xmalloc.h"

static const struct {
	const char *item;
	const char *name;
	long long weight;
	bool filter;
} good[] = {
	{ "zen.example", "zen.example", 1, false },
	{ "ZEN.Example.", "zen.example", 1, false },
	{ "zen.example*3", "zen.example", 3, false },
	{ "wl.example*-2", "wl.example", -2, false },
	{ "wl.example*+2", "wl.example", 2, false },
	{ "bl.example=127.0.0.2", "bl.example", 1, true },
	{ "bl.example=127.0.0.[2..4]*2", "bl.example", 2, true },
	{ "bl.example=127.0.[0;1].[2;4..6;9]", "bl.example", 1, true },
	{ "under_score.example*0", "under_score.example", 0, false },
	{ "single", "single", 1, false },
};

static const struct {
	const char *item;
	const char *why; /* a part of the error */
} bad[] = {
	{ "", "bad zone name" },
	{ ".example", "bad zone name" },
	{ "a..example", "bad zone name" },
	{ "sp ace.example", "bad zone name" },
	{ "*3", "bad zone name" },
	{ "=127.0.0.2", "bad zone name" },
	{ "zen.example*", "bad weight" },
	{ "zen.example*x", "bad weight" },
	{ "zen.example*3x", "bad weight" },
	{ "zen.example*--3", "bad weight" },
	{ "zen.example*100001", "bad weight" },
	{ "zen.example*3=127.0.0.2", "must come last" },
	{ "bl.example=", "bad answer filter" },
	{ "bl.example=127.0.0", "bad answer filter" },
	{ "bl.example=127.0.0.2.1", "bad answer filter" },
	{ "bl.example=127.0.0.256", "bad answer filter" },
	{ "bl.example=127.0.0.[4..2]", "bad answer filter" },
	{ "bl.example=127.0.0.[2", "bad answer filter" },
	{ "bl.example=127.0.0.[]", "bad answer filter" },
	{ "bl.example=127.0.0.[2;]", "bad answer filter" },
	{ "bl.example=127.0.0.-1", "bad answer filter" },
	{ "bl.example=127.0.0.[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17]",
	    "bad answer filter" },
};

static void
parse_one(const char *item, struct sl_dnslist *zl, int *rc_r, char *err,
    size_t errsize)
{
	char *items[1];
	struct sl_strlist l = { items, 1 };

	items[0] = sl_xstrdup(item);
	memset(zl, 0, sizeof(*zl));
	*rc_r = sl_dnslist_parse(zl, &l, err, errsize);
	free(items[0]);
}

static void
test_good(void **state)
{
	struct sl_dnslist zl;
	char err[256];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < SL_NELEM(good); i++) {
		parse_one(good[i].item, &zl, &rc, err, sizeof(err));
		if (rc != 0)
			fail_msg("'%s': %s", good[i].item, err);
		assert_int_equal(zl.count, 1);
		assert_string_equal(zl.zones[0].name, good[i].name);
		assert_true(zl.zones[0].weight == good[i].weight);
		assert_true(zl.zones[0].has_filter == good[i].filter);
		assert_true(zl.threshold == 1);
		assert_true(zl.allow_threshold == LLONG_MIN);
		sl_dnslist_clear(&zl);
	}
}

static void
test_bad(void **state)
{
	struct sl_dnslist zl;
	char err[256], want[300];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < SL_NELEM(bad); i++) {
		parse_one(bad[i].item, &zl, &rc, err, sizeof(err));
		if (rc != -1)
			fail_msg("'%s' was accepted", bad[i].item);
		snprintf(want, sizeof(want), "zones: '%s': ", bad[i].item);
		if (strncmp(err, want, strlen(want)) != 0 ||
		    strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': error '%s'", bad[i].item, err);
		assert_null(zl.zones);
		assert_int_equal(zl.count, 0);
	}
}

static void
test_list_limits(void **state)
{
	char *items[SL_DNSLIST_ZONES_MAX + 1], buf[32], err[256];
	struct sl_strlist l = { items, 0 };
	struct sl_dnslist zl;
	size_t i;

	(void)state;
	memset(&zl, 0, sizeof(zl));
	assert_int_equal(sl_dnslist_parse(&zl, &l, err, sizeof(err)), -1);
	assert_string_equal(err, "zones: no zone given");
	for (i = 0; i < SL_NELEM(items); i++) {
		snprintf(buf, sizeof(buf), "z%zu.example", i);
		items[i] = sl_xstrdup(buf);
	}
	l.count = SL_DNSLIST_ZONES_MAX;
	assert_int_equal(sl_dnslist_parse(&zl, &l, err, sizeof(err)), 0);
	assert_int_equal(zl.count, SL_DNSLIST_ZONES_MAX);
	sl_dnslist_clear(&zl);
	l.count = SL_DNSLIST_ZONES_MAX + 1;
	assert_int_equal(sl_dnslist_parse(&zl, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than"));
	for (i = 0; i < SL_NELEM(items); i++)
		free(items[i]);
}

static void
test_filter(void **state)
{
	static const struct {
		uint8_t a[4];
		bool want;
	} cases[] = {
		{ { 127, 0, 0, 2 }, true },
		{ { 127, 0, 1, 4 }, true },
		{ { 127, 0, 1, 5 }, true },
		{ { 127, 0, 0, 6 }, true },
		{ { 127, 0, 0, 9 }, true },
		{ { 127, 0, 0, 3 }, false },
		{ { 127, 0, 0, 7 }, false },
		{ { 127, 0, 2, 2 }, false },
		{ { 127, 1, 0, 2 }, false },
		{ { 126, 0, 0, 2 }, false },
	};
	struct sl_dnslist zl;
	char err[256];
	size_t i;
	int rc;

	(void)state;
	parse_one("bl.example=127.0.[0;1].[2;4..6;9]", &zl, &rc, err,
	    sizeof(err));
	assert_int_equal(rc, 0);
	for (i = 0; i < SL_NELEM(cases); i++)
		if (sl_dnslist_filter_match(&zl.zones[0], cases[i].a) !=
		    cases[i].want)
			fail_msg("case %zu", i);
	sl_dnslist_clear(&zl);
	parse_one("bl.example", &zl, &rc, err, sizeof(err));
	assert_true(sl_dnslist_filter_match(&zl.zones[0], cases[9].a));
	sl_dnslist_clear(&zl);
}

static void
test_txt_clean(void **state)
{
	char out[16];

	(void)state;
	sl_dnslist_txt_clean("ok text", 7, out, sizeof(out));
	assert_string_equal(out, "ok text");
	sl_dnslist_txt_clean("a\r\nb\0c\x7f\xc3\xa9", 9, out, sizeof(out));
	assert_string_equal(out, "a  b c ??");
	sl_dnslist_txt_clean("trailing \t", 10, out, sizeof(out));
	assert_string_equal(out, "trailing");
	sl_dnslist_txt_clean("0123456789abcdefghij", 20, out, sizeof(out));
	assert_string_equal(out, "0123456789abcde");
}

static void
test_expand(void **state)
{
	const char *kv[] = { "ip", "192.0.2.1", "zone", "bl.example", "txt", "",
		NULL };
	char out[64];

	(void)state;
	sl_dnslist_expand(out, sizeof(out), "%ip% on %zone%%txt%: 100%", kv);
	assert_string_equal(out, "192.0.2.1 on bl.example: 100%");
	sl_dnslist_expand(out, sizeof(out), "%nokey% %ip", kv);
	assert_string_equal(out, "%nokey% %ip");
	sl_dnslist_expand(out, 8, "%zone%", kv);
	assert_string_equal(out, "bl.exam");
	sl_dnslist_expand(out, sizeof(out), "%%ip%%", kv);
	assert_string_equal(out, "%192.0.2.1%");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_list_limits),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_txt_clean),
		cmocka_unit_test(test_expand),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
