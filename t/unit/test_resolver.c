/*
 * test_resolver.c - the resolver's pure parts: dns_servers parsing,
 * reverse names, and the cache with injected time; and answers known at
 * once (no server is asked), which never come inside sl_resolver_lookup()
 * and come all at sl_resolver_settle().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "resolver.h"

static void
test_servers(void **state)
{
	char i0[] = "127.0.0.1:5353", i1[] = "192.0.2.1", i2[] = "[::1]:53",
	     i3[] = "::1", i4[] = "2001:db8::1";
	char *items[] = { i0, i1, i2, i3, i4 };
	struct sl_strlist l = { items, 5 };
	const char *bad[] = { "", "1.2.3", "1.2.3.4:0", "1.2.3.4:65536",
		"1.2.3.4:x", "[::1", "[::1]x", "[1.2.3.4]:53x", "host.test" };
	char *csv = NULL, *err = NULL;
	size_t i;

	(void)state;
	assert_int_equal(sl_dns_servers_csv(&l, &csv, &err), 0);
	assert_string_equal(csv,
	    "127.0.0.1:5353,192.0.2.1:53,[::1]:53,[::1]:53,[2001:db8::1]:53");
	free(csv);
	l.count = 0;
	assert_int_equal(sl_dns_servers_csv(&l, &csv, &err), 0);
	assert_string_equal(csv, "");
	free(csv);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *one[] = { strdup(bad[i]) };
		struct sl_strlist b = { one, 1 };

		err = NULL;
		assert_int_equal(sl_dns_servers_csv(&b, &csv, &err), -1);
		assert_non_null(strstr(err, "bad address"));
		free(err);
		free(one[0]);
	}
}

static void
test_reverse(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(
	    sl_dns_reverse_name("192.0.2.10", NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.2.0.192.in-addr.arpa");
	assert_int_equal(sl_dns_reverse_name("127.0.0.2", "dnsbl.sluice.test",
	                     buf, sizeof(buf)),
	    0);
	assert_string_equal(buf, "2.0.0.127.dnsbl.sluice.test");
	assert_int_equal(
	    sl_dns_reverse_name("2001:db8::1", NULL, buf, sizeof(buf)), 0);
	assert_string_equal(buf,
	    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	assert_int_equal(sl_dns_reverse_name("bad", NULL, buf, sizeof(buf)),
	    -1);
	assert_int_equal(sl_dns_reverse_name("192.0.2.10", NULL, buf, 8), -1);
}

static void
test_cache(void **state)
{
	struct sl_dns_rr rr = { .text = "192.0.2.1", .len = 9 };
	struct sl_dns_result r = { .status = SL_DNS_OK,
		.type = SL_DNS_A,
		.name = "Host.Test",
		.ttl = 2,
		.count = 1,
		.rr = &rr };
	const struct sl_dns_result *got;
	struct sl_dns_cache *c = sl_dns_cache_new(2);

	(void)state;
	sl_dns_cache_put(c, &r, 1000);
	got = sl_dns_cache_get(c, "host.test", SL_DNS_A, 1500);
	assert_non_null(got);
	assert_true(got->cached);
	assert_int_equal(got->ttl, 2); /* 1.5 s left, rounded up */
	assert_string_equal(got->rr[0].text, "192.0.2.1");
	assert_null(sl_dns_cache_get(c, "host.test", SL_DNS_AAAA, 1500));
	/* expired at 1000 + 2000 ms */
	assert_null(sl_dns_cache_get(c, "host.test", SL_DNS_A, 3000));
	assert_int_equal(sl_dns_cache_count(c), 0);

	/* negative answers are kept, failures and TTL 0 not */
	r.status = SL_DNS_NXDOMAIN;
	r.count = 0;
	sl_dns_cache_put(c, &r, 0);
	got = sl_dns_cache_get(c, "HOST.TEST", SL_DNS_A, 10);
	assert_non_null(got);
	assert_int_equal(got->status, SL_DNS_NXDOMAIN);
	r.name = "fail.test";
	r.status = SL_DNS_TIMEOUT;
	sl_dns_cache_put(c, &r, 0);
	assert_null(sl_dns_cache_get(c, "fail.test", SL_DNS_A, 10));
	r.status = SL_DNS_OK;
	r.ttl = 0;
	sl_dns_cache_put(c, &r, 0);
	assert_null(sl_dns_cache_get(c, "fail.test", SL_DNS_A, 10));

	/* full: the oldest goes */
	r.ttl = 60;
	r.name = "b.test";
	sl_dns_cache_put(c, &r, 0);
	r.name = "c.test";
	sl_dns_cache_put(c, &r, 0);
	assert_int_equal(sl_dns_cache_count(c), 2);
	assert_null(sl_dns_cache_get(c, "host.test", SL_DNS_A, 10));
	assert_non_null(sl_dns_cache_get(c, "b.test", SL_DNS_A, 10));

	/* size 0: off */
	sl_dns_cache_reset(c, 0);
	sl_dns_cache_put(c, &r, 0);
	assert_null(sl_dns_cache_get(c, "c.test", SL_DNS_A, 10));
	sl_dns_cache_free(&c);
	assert_null(c);
}

struct got {
	struct sl_resolver *r;
	int calls;
	enum sl_dns_status status;
	bool again; /* fn looks up once more */
};

static void
got_answer(void *arg, const struct sl_dns_result *res)
{
	struct got *g = arg;

	g->calls++;
	g->status = res->status;
	if (g->again) {
		g->again = false;
		assert_non_null(sl_resolver_lookup(g->r, "T1", "", SL_DNS_A,
		    got_answer, g));
		assert_int_equal(g->calls, 1); /* not inside the lookup */
	}
}

static void
test_settle(void **state)
{
	struct event_base *base = event_base_new();
	struct sl_settings set;
	struct sl_resolver *r;
	struct sl_dns_query *q;
	struct got g = { 0 }, cancelled = { 0 };
	char *error = NULL;

	(void)state;
	assert_non_null(base);
	memset(&set, 0, sizeof(set));
	set.dns_timeout_ms = 1000;
	set.dns_cache_size = 16;
	r = sl_resolver_new(base, &set, &error);
	assert_non_null(r);
	g.r = r;

	/* a bad query is answered at once, but not inside the call */
	g.again = true;
	assert_non_null(
	    sl_resolver_lookup(r, "T1", "", SL_DNS_A, got_answer, &g));
	q = sl_resolver_lookup(r, "T1", "", SL_DNS_A, got_answer, &cancelled);
	assert_non_null(q);
	assert_int_equal(g.calls, 0);
	sl_dns_cancel(&q);
	assert_null(q);
	/* settle delivers it, and what its callback asked next */
	sl_resolver_settle(r);
	assert_int_equal(g.calls, 2);
	assert_int_equal(g.status, SL_DNS_ERROR);
	assert_int_equal(cancelled.calls, 0);
	/* nothing is left for the loop */
	sl_resolver_settle(r);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(g.calls, 2);
	assert_int_equal(cancelled.calls, 0);

	sl_resolver_free(&r);
	assert_null(r);
	event_base_free(base);
}

/* sl_dns_has_addr: A for a (v4-mapped) IPv4 address, AAAA otherwise */
static void
test_has_addr(void **state)
{
	static const uint8_t
	    v4[16] = { [10] = 0xff, [11] = 0xff, 192, 0, 2, 1 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct sl_dns_rr rr[2] = { { .addr = { 192, 0, 2, 9 } },
		{ .addr = { 192, 0, 2, 1 } } };
	struct sl_dns_result r = { .status = SL_DNS_OK,
		.type = SL_DNS_A,
		.count = 2,
		.rr = rr };

	(void)state;
	assert_true(sl_dns_has_addr(&r, v4));  /* the second record */
	assert_false(sl_dns_has_addr(&r, v6)); /* an A answer, IPv6 client */
	r.count = 1;
	assert_false(sl_dns_has_addr(&r, v4));
	memcpy(rr[0].addr, v6, 16);
	r.type = SL_DNS_AAAA;
	assert_true(sl_dns_has_addr(&r, v6));
	assert_false(sl_dns_has_addr(&r, v4)); /* an AAAA answer, IPv4 client */
	rr[0].addr[15] = 2;
	assert_false(sl_dns_has_addr(&r, v6));
	r.count = 0;
	assert_false(sl_dns_has_addr(&r, v6));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_servers),
		cmocka_unit_test(test_reverse),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_settle),
		cmocka_unit_test(test_has_addr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
