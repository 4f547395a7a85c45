/*
 * test_addrlist.c - sl_addrlist: entry syntax, match order and case rules,
 * regex errors at load time, the backtracking limit, and matching from
 * several threads at once.  Table-driven; one group.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sluice/addrlist.h>

static const char *const list_items[] = {
	"Bad@Example.COM",
	"@spam.example",
	"@[192.0.2.1]",
	"\"odd@local\"@quoted.example",
	"/^bounce-[0-9]+@/",
	"/^SALES@/i",
	"/\\.invalid$/",
	"/^(a+)+$/",
	"/^müller@/",
};

struct match_case {
	const char *addr;
	const char *want; /* entry text, or NULL */
	bool noisy;       /* hits the match limit and logs: once is enough */
};

static const struct match_case match_cases[] = {
	/* exact, ASCII case-insensitive both ways */
	{ "bad@example.com", "Bad@Example.COM", false },
	{ "BAD@EXAMPLE.COM", "Bad@Example.COM", false },
	{ "bad@example.co", NULL, false },
	{ "xbad@example.com", NULL, false },
	{ "bad@example.com.", NULL, false },
	{ "\"odd@local\"@quoted.example", "\"odd@local\"@quoted.example",
	    false },
	/* @domain: that domain exactly, after the last '@' */
	{ "anyone@spam.example", "@spam.example", false },
	{ "Anyone@SPAM.Example", "@spam.example", false },
	{ "a@sub.spam.example", NULL, false },
	{ "a@notspam.example", NULL, false },
	{ "spam.example", NULL, false },
	{ "\"x@spam.example\"@good.example", NULL, false },
	{ "postmaster@[192.0.2.1]", "@[192.0.2.1]", false },
	/* regexes: searched, case-sensitive unless /i */
	{ "bounce-42@lists.example", "/^bounce-[0-9]+@/", false },
	{ "Bounce-42@lists.example", NULL, false },
	{ "bounce-x@lists.example", NULL, false },
	{ "sales@shop.example", "/^SALES@/i", false },
	{ "Sales@shop.example", "/^SALES@/i", false },
	{ "user@host.invalid", "/\\.invalid$/", false },
	{ "user@hostxinvalid", NULL, false },
	{ "müller@example.org", "/^müller@/", false },
	/* invalid UTF-8 is no match, not an error */
	{ "m\xc3\x28ller@example.org", NULL, false },
	/* exact beats @domain beats regex */
	{ "bounce-1@spam.example", "@spam.example", false },
	/* the backtracking bomb runs into the match limit: no match */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", NULL, true },
	{ "aaaa", "/^(a+)+$/", false },
	/* the null path and local-only paths */
	{ "", NULL, false },
	{ "postmaster", NULL, false },
	{ "good@example.net", NULL, false },
};

struct error_case {
	const char *entry;
	const char *want; /* substring of the error */
};

static const struct error_case error_cases[] = {
	{ "example.com", "for a domain write @example.com" },
	{ "@", "a domain entry is written @example.com" },
	{ "@a@b.example", "a domain entry is written" },
	{ "user@", "address without a domain" },
	{ "/", "a regex is written /pattern/" },
	{ "//", "a regex is written /pattern/" },
	{ "//i", "a regex is written /pattern/" },
	{ "/abc", "a regex is written /pattern/" },
	{ "/abc/x", "a regex is written /pattern/" },
	{ "/a(b/", "entry \"/a(b/\": regex: " },
	{ "/[z-a]/i", "entry \"/[z-a]/i\": regex: " },
	{ "/\\C/", "regex: " },
};

static struct sl_addrlist *
build(const char *const *items, size_t n, char **error_r)
{
	struct sl_strlist sl;

	sl.items = (char **)(uintptr_t)items;
	sl.count = n;
	return sl_addrlist_new(&sl, error_r);
}

static int
group_setup(void **state)
{
	struct sl_addrlist *l;
	char *error;

	l = build(list_items, sizeof(list_items) / sizeof(list_items[0]),
	    &error);
	if (l == NULL) {
		print_error("setup: %s\n", error);
		free(error);
		return -1;
	}
	*state = l;
	return 0;
}

static int
group_teardown(void **state)
{
	struct sl_addrlist *l = *state;

	sl_addrlist_free(&l);
	assert_null(l);
	return 0;
}

static void
test_match_table(void **state)
{
	const struct sl_addrlist *l = *state;
	const struct match_case *c;
	const char *got;
	size_t i;

	assert_int_equal(sl_addrlist_count(l),
	    sizeof(list_items) / sizeof(list_items[0]));
	for (i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		c = &match_cases[i];
		got = sl_addrlist_match(l, c->addr);
		if (c->want == NULL && got != NULL)
			fail_msg("\"%s\": matched \"%s\", want no match",
			    c->addr, got);
		if (c->want != NULL &&
		    (got == NULL || strcmp(got, c->want) != 0))
			fail_msg("\"%s\": matched \"%s\", want \"%s\"", c->addr,
			    got != NULL ? got : "(none)", c->want);
	}
}

static void
test_error_table(void **state)
{
	const struct error_case *c;
	const char *items[2];
	struct sl_addrlist *l;
	char *error;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		c = &error_cases[i];
		/* a good entry first: the bad one must still be found */
		items[0] = "ok@example.com";
		items[1] = c->entry;
		error = NULL;
		l = build(items, 2, &error);
		if (l != NULL)
			fail_msg("\"%s\": accepted, want an error", c->entry);
		assert_non_null(error);
		if (strstr(error, c->want) == NULL)
			fail_msg("\"%s\": error \"%s\", want \"%s\"", c->entry,
			    error, c->want);
		free(error);
	}
}

static void
test_empty_and_null(void **state)
{
	struct sl_addrlist *l;
	char *error;

	(void)state;
	l = build(NULL, 0, &error);
	assert_non_null(l);
	assert_null(error);
	assert_int_equal(sl_addrlist_count(l), 0);
	assert_null(sl_addrlist_match(l, "a@b.example"));
	assert_null(sl_addrlist_match(l, ""));
	sl_addrlist_free(&l);
	sl_addrlist_free(&l); /* NULL is fine */
	sl_addrlist_free(NULL);
	assert_null(sl_addrlist_match(NULL, "a@b.example"));
}

/* Every thread walks the whole table many times on one shared list. */
static void *
match_thread(void *arg)
{
	const struct sl_addrlist *l = arg;
	const struct match_case *c;
	const char *got;
	size_t i, round;

	for (round = 0; round < 200; round++) {
		for (i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]);
		     i++) {
			c = &match_cases[i];
			if (c->noisy)
				continue;
			got = sl_addrlist_match(l, c->addr);
			if ((got == NULL) != (c->want == NULL) ||
			    (got != NULL && strcmp(got, c->want) != 0))
				return (void *)1;
		}
	}
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t th[4];
	void *rv;
	size_t i;

	for (i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&th[i], NULL, match_thread, *state), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &rv), 0);
		assert_null(rv);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_error_table),
		cmocka_unit_test(test_empty_and_null),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests_name("addrlist", tests, group_setup,
	    group_teardown);
}
