/*
 * test_hdrsplit.c - the RFC 5322 header / body splitter.
 *
 * Each table entry is fed whole, split in two at every offset, and one byte
 * at a time, then finished; the header fields, eoh and body must be the
 * same every time, the callbacks must come in order (headers, one eoh,
 * body), and the headers' raw text, the blank line and the body must put
 * the input back together byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xmalloc.h"
#include "hdrsplit.h"

#define IN(s) .in = (s), .in_len = sizeof(s) - 1
#define BODY(s) .body = (s), .body_len = sizeof(s) - 1
#define MAX_HDRS 8

struct hs_hdr {
	const char *name, *value, *raw;
};

struct hs_case {
	const char *name;
	size_t max_header, max_headers;
	const char *in;
	size_t in_len;
	struct hs_hdr hdrs[MAX_HDRS]; /* up to the first with name NULL */
	bool had_blank;
	const char *body;
	size_t body_len;
};

static struct hs_case cases[] = {
	/* Header sections and what ends them. */
	{ "simple", IN("A: 1\nB:2\n\nbody\n"),
	    { { "A", "1", "A: 1" }, { "B", "2", "B:2" } }, true,
	    BODY("body\n") },
	{ "empty message", IN(""), { { 0 } }, false, BODY("") },
	{ "only blank line", IN("\n"), { { 0 } }, true, BODY("") },
	{ "blank line first", IN("\nA: 1\n"), { { 0 } }, true, BODY("A: 1\n") },
	{ "no blank line", IN("A: 1\nB: 2\n"),
	    { { "A", "1", "A: 1" }, { "B", "2", "B: 2" } }, false, BODY("") },
	{ "no body", IN("A: 1\n\n"), { { "A", "1", "A: 1" } }, true, BODY("") },
	{ "blank lines in body", IN("A: 1\n\n\n\nx\n"),
	    { { "A", "1", "A: 1" } }, true, BODY("\n\nx\n") },
	{ "body with NULs", IN("A: 1\n\n\0\0x\0"), { { "A", "1", "A: 1" } },
	    true, BODY("\0\0x\0") },

	/* Folding is kept. */
	{ "folded", IN("Subject: a\n b\n\tc\nX: y\n\nbody"),
	    { { "Subject", "a\n b\n\tc", "Subject: a\n b\n\tc" },
	        { "X", "y", "X: y" } },
	    true, BODY("body") },
	{ "folded at once", IN("S:\n x\n\n"), { { "S", "\n x", "S:\n x" } },
	    true, BODY("") },
	{ "folded last", IN("A: 1\n 2\n"), { { "A", "1\n 2", "A: 1\n 2" } },
	    false, BODY("") },
	{ "whitespace line folds", IN("A: 1\n \n\nb"),
	    { { "A", "1\n ", "A: 1\n " } }, true, BODY("b") },
	{ "value whitespace", IN("S: \t v \nE:\nF:  \n\n"),
	    { { "S", "v ", "S: \t v " }, { "E", "", "E:" },
	        { "F", "", "F:  " } },
	    true, BODY("") },
	{ "colons in value", IN("A: b: c:\n\n"),
	    { { "A", "b: c:", "A: b: c:" } }, true, BODY("") },
	{ "CR in value", IN("A: x\r\n\n"), { { "A", "x\r", "A: x\r" } }, true,
	    BODY("") },
	{ "8-bit value", IN("A: \xc3\xa9\n\n"),
	    { { "A", "\xc3\xa9", "A: \xc3\xa9" } }, true, BODY("") },
	{ "ftext name", IN("X-!#$%&'*+-.^_`{|}~: v\n\n"),
	    { { "X-!#$%&'*+-.^_`{|}~", "v", "X-!#$%&'*+-.^_`{|}~: v" } }, true,
	    BODY("") },
	{ "obs WSP before colon", IN("From : a\nTo\t: b\n\n"),
	    { { "From", "a", "From : a" }, { "To", "b", "To\t: b" } }, true,
	    BODY("") },

	/* Lines that are not header fields start the body. */
	{ "non-header line", IN("A: 1\nnot a header\nB: 2\n\nx"),
	    { { "A", "1", "A: 1" } }, false, BODY("not a header\nB: 2\n\nx") },
	{ "non-header first", IN("hello\nA: 1\n\n"), { { 0 } }, false,
	    BODY("hello\nA: 1\n\n") },
	{ "mbox From line", IN("From a@b Mon\nA: 1\n\n"), { { 0 } }, false,
	    BODY("From a@b Mon\nA: 1\n\n") },
	{ "continuation first", IN(" A: 1\n\n"), { { 0 } }, false,
	    BODY(" A: 1\n\n") },
	{ "empty name", IN("A: 1\n: x\n\n"), { { "A", "1", "A: 1" } }, false,
	    BODY(": x\n\n") },
	{ "space in name", IN("Sub ject: x\n\n"), { { 0 } }, false,
	    BODY("Sub ject: x\n\n") },
	{ "no colon at LF", IN("A: 1\nB\n\n"), { { "A", "1", "A: 1" } }, false,
	    BODY("B\n\n") },
	{ "CR in name", IN("A\r: x\n\n"), { { 0 } }, false,
	    BODY("A\r: x\n\n") },
	{ "CRLF line", IN("A: 1\n\r\nb"), { { "A", "1", "A: 1" } }, false,
	    BODY("\r\nb") },
	{ "8-bit name", IN("\xc3\xa9: x\n\n"), { { 0 } }, false,
	    BODY("\xc3\xa9: x\n\n") },
	{ "DEL in name", IN("A\x7f: x\n\n"), { { 0 } }, false,
	    BODY("A\x7f: x\n\n") },
	{ "NUL in value", IN("A: 1\nB: x\0y\nC: 3\n\nbody"),
	    { { "A", "1", "A: 1" } }, false, BODY("B: x\0y\nC: 3\n\nbody") },
	{ "NUL in continuation", IN("A: 1\nB: x\n \0\nC: 3\n\n"),
	    { { "A", "1", "A: 1" } }, false, BODY("B: x\n \0\nC: 3\n\n") },
	{ "NUL in name", IN("A\0: 1\n\n"), { { 0 } }, false,
	    BODY("A\0: 1\n\n") },
	{ "NUL line", IN("A: 1\n\0\n"), { { "A", "1", "A: 1" } }, false,
	    BODY("\0\n") },

	/* A field cut short by the end of the message is body. */
	{ "unterminated field", IN("A: 1"), { { 0 } }, false, BODY("A: 1") },
	{ "unterminated second", IN("A: 1\nB: 2"), { { "A", "1", "A: 1" } },
	    false, BODY("B: 2") },
	{ "unterminated fold", IN("A: 1\n 2"), { { 0 } }, false,
	    BODY("A: 1\n 2") },
	{ "unterminated name", IN("A: 1\nB"), { { "A", "1", "A: 1" } }, false,
	    BODY("B") },
	{ "unterminated WSP", IN("A \t"), { { 0 } }, false, BODY("A \t") },

	/* Limits: max_header (the raw field, inner LFs included). */
	{ "field at max", .max_header = 10, IN("A: 123456\nB: 1234567\n\nb"),
	    { { "A", "123456", "A: 123456" },
	        { "B", "1234567", "B: 1234567" } },
	    true, BODY("b") },
	{ "field over max", .max_header = 10,
	    IN("A: 1\nC: 12345678\nD: 1\n\nb"), { { "A", "1", "A: 1" } }, false,
	    BODY("C: 12345678\nD: 1\n\nb") },
	{ "folded at max", .max_header = 10, IN("D: 1234\n 6\n\n"),
	    { { "D", "1234\n 6", "D: 1234\n 6" } }, true, BODY("") },
	{ "folded over max", .max_header = 10, IN("D: 1234\n 67\n\n"),
	    { { 0 } }, false, BODY("D: 1234\n 67\n\n") },
	{ "line at max then fold", .max_header = 10, IN("D: 1234567\n 8\n"),
	    { { 0 } }, false, BODY("D: 1234567\n 8\n") },
	{ "name over max", .max_header = 4, IN("ABCDE: 1\n\n"), { { 0 } },
	    false, BODY("ABCDE: 1\n\n") },
	{ "WSP over max", .max_header = 4, IN("ABC  : 1\n\n"), { { 0 } }, false,
	    BODY("ABC  : 1\n\n") },

	/* Limits: max_headers. */
	{ "fields at max", .max_headers = 2, IN("A: 1\nB: 2\n\nbody"),
	    { { "A", "1", "A: 1" }, { "B", "2", "B: 2" } }, true,
	    BODY("body") },
	{ "fields over max", .max_headers = 2, IN("A: 1\nB: 2\nC: 3\n\nbody"),
	    { { "A", "1", "A: 1" }, { "B", "2", "B: 2" } }, false,
	    BODY("C: 3\n\nbody") },
	{ "fields at max no body", .max_headers = 2, IN("A: 1\nB: 2\n"),
	    { { "A", "1", "A: 1" }, { "B", "2", "B: 2" } }, false, BODY("") },
};

/* What the callbacks saw. */
struct hs_log {
	struct {
		char *name, *value, *raw;
		size_t raw_len;
	} hdrs[MAX_HDRS];
	size_t nhdrs;
	int neoh;
	bool had_blank;
	uint8_t *body;
	size_t body_len;
};

static void
log_header(void *arg, const char *name, const char *value, const char *raw,
    size_t raw_len)
{
	struct hs_log *l = arg;

	assert_int_equal(l->neoh, 0);
	assert_true(l->nhdrs < MAX_HDRS);
	/* value is a NUL-terminated suffix of raw; raw has no NUL. */
	assert_int_equal(strlen(raw), raw_len);
	assert_true(value >= raw && value <= raw + raw_len);
	l->hdrs[l->nhdrs].name = sl_xstrdup(name);
	l->hdrs[l->nhdrs].value = sl_xstrdup(value);
	l->hdrs[l->nhdrs].raw = sl_xstrndup(raw, raw_len);
	l->hdrs[l->nhdrs].raw_len = raw_len;
	l->nhdrs++;
}

static void
log_eoh(void *arg, bool had_blank)
{
	struct hs_log *l = arg;

	l->neoh++;
	l->had_blank = had_blank;
}

static void
log_body(void *arg, const uint8_t *p, size_t n)
{
	struct hs_log *l = arg;

	assert_int_equal(l->neoh, 1);
	assert_true(n > 0);
	l->body = sl_xrealloc(l->body, l->body_len + n);
	memcpy(l->body + l->body_len, p, n);
	l->body_len += n;
}

static void
log_free(struct hs_log *l)
{
	size_t i;

	for (i = 0; i < l->nhdrs; i++) {
		free(l->hdrs[i].name);
		free(l->hdrs[i].value);
		free(l->hdrs[i].raw);
	}
	free(l->body);
	memset(l, 0, sizeof(*l));
}

/* Feeds in[0, cut) and then the rest in pieces of at most step bytes. */
static void
hs_run(const struct hs_case *c, size_t cut, size_t step, struct hs_log *l)
{
	struct sl_hdrsplit_limits lim = { .max_header = c->max_header,
		.max_headers = c->max_headers };
	struct sl_hdrsplit_cb cb = { log_header, log_eoh, log_body, l };
	const uint8_t *in = (const uint8_t *)c->in;
	struct sl_hdrsplit *h;
	size_t off, n;

	memset(l, 0, sizeof(*l));
	h = sl_hdrsplit_new(&lim, &cb);
	sl_hdrsplit_feed(h, in, 0);
	for (off = 0; off < c->in_len; off += n) {
		n = off < cut ? cut - off : c->in_len - off;
		if (off >= cut && n > step)
			n = step;
		sl_hdrsplit_feed(h, in + off, n);
	}
	sl_hdrsplit_finish(h);
	/* Input after finish() is ignored. */
	sl_hdrsplit_feed(h, in, c->in_len);
	sl_hdrsplit_finish(h);
	sl_hdrsplit_free(&h);
	assert_null(h);
}

/* headers + blank line + body must be the input. */
static void
hs_check_reassembly(const struct hs_case *c, const struct hs_log *l)
{
	uint8_t *buf;
	size_t i, len;

	buf = sl_xmalloc(c->in_len + 1);
	len = 0;
	for (i = 0; i < l->nhdrs; i++) {
		assert_true(l->hdrs[i].raw_len + 1 <= c->in_len - len);
		memcpy(buf + len, l->hdrs[i].raw, l->hdrs[i].raw_len);
		len += l->hdrs[i].raw_len;
		buf[len++] = '\n';
	}
	if (l->had_blank) {
		assert_true(len < c->in_len);
		buf[len++] = '\n';
	}
	assert_int_equal(len + l->body_len, c->in_len);
	if (l->body_len > 0)
		memcpy(buf + len, l->body, l->body_len);
	assert_memory_equal(buf, c->in, c->in_len);
	free(buf);
}

static void
hs_check(const struct hs_case *c, const struct hs_log *l, const char *how,
    size_t cut)
{
	const struct hs_hdr *want;
	size_t i;

	for (i = 0; i < MAX_HDRS && c->hdrs[i].name != NULL; i++) {
		want = &c->hdrs[i];
		if (i >= l->nhdrs || strcmp(l->hdrs[i].name, want->name) != 0 ||
		    strcmp(l->hdrs[i].value, want->value) != 0 ||
		    strcmp(l->hdrs[i].raw, want->raw) != 0)
			fail_msg("%s: %s %zu: header %zu differs", c->name, how,
			    cut, i);
	}
	if (l->nhdrs != i || l->neoh != 1 || l->had_blank != c->had_blank)
		fail_msg("%s: %s %zu: %zu headers, %d eoh, had_blank %d",
		    c->name, how, cut, l->nhdrs, l->neoh, l->had_blank);
	if (l->body_len != c->body_len ||
	    (c->body_len > 0 && memcmp(l->body, c->body, c->body_len) != 0))
		fail_msg("%s: %s %zu: body differs (%zu bytes, want %zu)",
		    c->name, how, cut, l->body_len, c->body_len);
	hs_check_reassembly(c, l);
}

static void
test_case(void **state)
{
	const struct hs_case *c = *state;
	struct hs_log l;
	size_t cut;

	hs_run(c, c->in_len, SIZE_MAX, &l);
	hs_check(c, &l, "whole", 0);
	log_free(&l);
	for (cut = 1; cut < c->in_len; cut++) {
		hs_run(c, cut, SIZE_MAX, &l);
		hs_check(c, &l, "split at", cut);
		log_free(&l);
	}
	hs_run(c, 0, 1, &l);
	hs_check(c, &l, "bytewise", 0);
	log_free(&l);
}

/* reset() starts over, NULL callbacks are skipped, the default limits. */
static void
test_reset_defaults(void **state)
{
	static const uint8_t m1[] = "A: 1\nB: 2\n";
	static const uint8_t m2[] = "C: 3\n\nx";
	struct sl_hdrsplit_cb cb = { log_header, log_eoh, NULL, NULL };
	struct sl_hdrsplit *h;
	struct hs_log l;
	uint8_t *big;
	size_t i;

	(void)state;
	memset(&l, 0, sizeof(l));
	cb.arg = &l;
	h = sl_hdrsplit_new(NULL, &cb);
	sl_hdrsplit_feed(h, m1, sizeof(m1) - 1);
	assert_int_equal(l.nhdrs, 1);
	sl_hdrsplit_reset(h);
	log_free(&l);
	sl_hdrsplit_feed(h, m2, sizeof(m2) - 1);
	sl_hdrsplit_finish(h);
	assert_int_equal(l.nhdrs, 1);
	assert_string_equal(l.hdrs[0].name, "C");
	assert_true(l.had_blank);
	log_free(&l);
	/* 64 KiB fields: one at the default limit passes, one over not. */
	big = sl_xmalloc(64 * 1024 + 2);
	memcpy(big, "A:", 2);
	for (i = 2; i < 64 * 1024 + 2; i++)
		big[i] = 'x';
	for (i = 0; i < 2; i++) {
		sl_hdrsplit_reset(h);
		sl_hdrsplit_feed(h, big, 64 * 1024 + i);
		sl_hdrsplit_feed(h, (const uint8_t *)"\n\n", 2);
		sl_hdrsplit_finish(h);
		assert_int_equal(l.nhdrs, i == 0 ? 1 : 0);
		assert_int_equal(l.had_blank, i == 0);
		log_free(&l);
	}
	free(big);
	sl_hdrsplit_free(&h);
	sl_hdrsplit_free(&h);
}

int
main(void)
{
	struct CMUnitTest tests[SL_NELEM(cases) + 1];
	size_t i;

	for (i = 0; i < SL_NELEM(cases); i++) {
		tests[i] = (struct CMUnitTest){ .name = cases[i].name,
			.test_func = test_case,
			.initial_state = &cases[i] };
	}
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_reset_defaults);
	/* The macro cmocka_run_group_tests() wants an array of known size. */
	return _cmocka_run_group_tests("hdrsplit", tests, i, NULL, NULL);
}
