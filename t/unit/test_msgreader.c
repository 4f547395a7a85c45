/*
 * test_msgreader.c - the DATA / BDAT content reader.
 *
 * Each table entry is fed whole, split in two at every offset, and one byte
 * at a time; the output bytes, flags, size, consumed count and done must
 * be the same every time.  Each entry is its own cmocka test, so the TAP
 * output names the one that fails.
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
#include "msgreader.h"

#define IN(s) .in = (s), .in_len = sizeof(s) - 1
#define OUT(s) .out = (s), .out_len = sizeof(s) - 1

#define LF SL_MR_BARE_LF
#define CR SL_MR_BARE_CR
#define LONG SL_MR_LONG_LINE
#define BIG SL_MR_TOO_BIG

struct mr_case {
	const char *name;
	bool raw;       /* BDAT: raw mode, finish() after the last byte */
	bool normalise; /* else reject policy */
	size_t max_line, max_size;
	const char *in;
	size_t in_len;
	const char *out;
	size_t out_len;
	unsigned int flags;
	bool done;
	size_t rest;   /* bytes after the end, not consumed */
	uint64_t size; /* with BIG: sl_msgreader_size(); else out_len */
};

static struct mr_case cases[] = {
	/* Plain messages and the end of data. */
	{ "simple", IN("Subject: x\r\n\r\nbody\r\n.\r\n"),
	    OUT("Subject: x\n\nbody\n"), .done = true },
	{ "empty message", IN(".\r\n"), OUT(""), .done = true },
	{ "one empty line", IN("\r\n.\r\n"), OUT("\n"), .done = true },
	{ "empty lines", IN("\r\n\r\n\r\n.\r\n"), OUT("\n\n\n"), .done = true },
	{ "no end yet", IN("a\r\nb\r\n"), OUT("a\nb\n") },
	{ "held dot", IN("a\r\n."), OUT("a\n") },
	{ "held dot CR", IN("a\r\n.\r"), OUT("a\n") },
	{ "held CR", IN("abc\r"), OUT("abc") },
	{ "nothing", IN(""), OUT("") },
	{ "pipelined", IN("a\r\n.\r\nQUIT\r\n"), OUT("a\n"), .done = true,
	    .rest = 6 },
	{ "pipelined dot", IN(".\r\n.\r\n"), OUT(""), .done = true, .rest = 3 },
	{ "pipelined message", IN("x\r\n.\r\nMAIL FROM:<>\r\nDATA\r\n"),
	    OUT("x\n"), .done = true, .rest = 20 },

	/* Dot-stuffing (RFC 5321 4.5.2). */
	{ "dot stuffed", IN("..x\r\n..\r\n...\r\n.\r\n"), OUT(".x\n.\n..\n"),
	    .done = true },
	{ "dot unstuffed", IN(".x\r\n.\r\n"), OUT("x\n"), .done = true },
	{ "dot mid-line", IN("a.\r\na.b\r\n.\r\n"), OUT("a.\na.b\n"),
	    .done = true },
	{ "dot dot CR LF first", IN("..\r\n.\r\n"), OUT(".\n"), .done = true },
	{ "dot space", IN(". \r\n.\r\n"), OUT(" \n"), .done = true },
	{ "raw keeps dots", .raw = true, IN("..x\r\n.\r\nb\r\n"),
	    OUT("..x\n.\nb\n") },

	/* SMTP smuggling: only CRLF.CRLF ends the data. */
	{ "LF.LF", IN("a\n.\nb\r\n.\r\n"), OUT("a\n.\nb\n"), .flags = LF,
	    .done = true },
	{ "LF.LF normalised", .normalise = true, IN("a\n.\nb\r\n.\r\n"),
	    OUT("a\n.\nb\n"), .flags = LF, .done = true },
	{ "CRLF.LF", IN("a\r\n.\nMAIL FROM:<x>\r\n.\r\n"),
	    OUT("a\n\nMAIL FROM:<x>\n"), .flags = LF, .done = true },
	{ "LF.CRLF", IN("a\n.\r\nb\r\n.\r\n"), OUT("a\n.\nb\n"), .flags = LF,
	    .done = true },
	{ "LF.CRLF never ends", IN("a\r\n\n.\r\n"), OUT("a\n\n.\n"),
	    .flags = LF },
	{ "leading LF.LF", IN("\n.\n\r\n.\r\n"), OUT("\n.\n\n"), .flags = LF,
	    .done = true },
	{ "dot LF first", IN(".\n.\r\n"), OUT("\n.\n"), .flags = LF },
	{ "CR.CR", IN("a\r.\rb\r\n.\r\n"), OUT("a\r.\rb\n"), .flags = CR,
	    .done = true },
	{ "CR.CR normalised", .normalise = true, IN("a\r.\rb\r\n.\r\n"),
	    OUT("a\n.\nb\n"), .flags = CR, .done = true },
	{ "CRLF.CR", IN("a\r\n.\rb\r\n.\r\n"), OUT("a\n\rb\n"), .flags = CR,
	    .done = true },
	{ "CRLF.CR normalised", .normalise = true, IN("a\r\n.\rb\r\n.\r\n"),
	    OUT("a\n\nb\n"), .flags = CR, .done = true },
	{ "CRLF.CRCRLF", IN("a\r\n.\r\r\n.\r\n"), OUT("a\n\r\n"), .flags = CR,
	    .done = true },
	{ "CR.CRLF never ends", IN("a\r.\r\nb"), OUT("a\r.\nb"), .flags = CR },
	{ "CR.CRLF normalised", .normalise = true, IN("a\r.\r\nb"),
	    OUT("a\n.\nb"), .flags = CR },
	{ "CRCRLF.CRLF", IN("a\r\r\n.\r\nx"), OUT("a\r\n"), .flags = CR,
	    .done = true, .rest = 1 },

	/* Bare LF and bare CR in both policies. */
	{ "bare LF", IN("a\nb\r\n.\r\n"), OUT("a\nb\n"), .flags = LF,
	    .done = true },
	{ "bare LF normalised", .normalise = true, IN("a\nb\r\n.\r\n"),
	    OUT("a\nb\n"), .flags = LF, .done = true },
	{ "bare CR", IN("a\rb\r\n.\r\n"), OUT("a\rb\n"), .flags = CR,
	    .done = true },
	{ "bare CR normalised", .normalise = true, IN("a\rb\r\n.\r\n"),
	    OUT("a\nb\n"), .flags = CR, .done = true },
	{ "CR CR LF", IN("a\r\r\nb\r\n.\r\n"), OUT("a\r\nb\n"), .flags = CR,
	    .done = true },
	{ "CR CR LF normalised", .normalise = true, IN("a\r\r\n.\r\n"),
	    OUT("a\n\n"), .flags = CR, .done = true },
	{ "LF CR", IN("\n\r.\r\n"), OUT("\n\r.\n"), .flags = LF | CR },
	{ "LF CR normalised", .normalise = true, IN("\n\rx\r\n.\r\n"),
	    OUT("\n\nx\n"), .flags = LF | CR, .done = true },
	{ "CRs", IN("\r\r\r\r\n.\r\n"), OUT("\r\r\r\n"), .flags = CR,
	    .done = true },

	/* NUL bytes and 8-bit bytes pass through. */
	{ "NUL", IN("a\0b\r\n\0\r\n\0.\r\n.\r\n"), OUT("a\0b\n\0\n\0.\n"),
	    .done = true },
	{ "NUL after dot", IN(".\0\r\n.\r\n"), OUT("\0\n"), .done = true },
	{ "8-bit", IN("\xff\xfe\x80\r\n.\r\n"), OUT("\xff\xfe\x80\n"),
	    .done = true },

	/* Long lines: flagged, output whole. */
	{ "line at max", .max_line = 4, IN("abcd\r\n.\r\n"), OUT("abcd\n"),
	    .done = true },
	{ "line over max", .max_line = 4, IN("abcd\r\nabcde\r\nx\r\n.\r\n"),
	    OUT("abcd\nabcde\nx\n"), .flags = LONG, .done = true },
	{ "stuffed line at max", .max_line = 4, IN("..bcd\r\n.\r\n"),
	    OUT(".bcd\n"), .done = true },
	{ "bare LF splits line", .max_line = 4, IN("abcd\nabcd\r\n.\r\n"),
	    OUT("abcd\nabcd\n"), .flags = LF, .done = true },
	{ "bare CR counts", .max_line = 4, IN("ab\rcd\r\n.\r\n"),
	    OUT("ab\rcd\n"), .flags = CR | LONG, .done = true },
	{ "bare CR normalised splits", .max_line = 4, .normalise = true,
	    IN("abcd\rabcd\r\n.\r\n"), OUT("abcd\nabcd\n"), .flags = CR,
	    .done = true },
	{ "raw last line over max", .raw = true, .max_line = 4, IN("abcde"),
	    OUT("abcde"), .flags = LONG },

	/* Size cap: output stops, reading goes on to the end. */
	{ "size at max", .max_size = 8, IN("abc\r\ndef\r\n.\r\n"),
	    OUT("abc\ndef\n"), .done = true },
	{ "size over max", .max_size = 5, IN("abc\r\ndef\r\n.\r\nQUIT\r\n"),
	    OUT("abc\nd"), .flags = BIG, .done = true, .rest = 6, .size = 8 },
	{ "size over max by CR", .max_size = 3, .normalise = true,
	    IN("abc\rd\r\n.\r\n"), OUT("abc"), .flags = BIG | CR, .done = true,
	    .size = 6 },
	{ "size over max raw", .raw = true, .max_size = 1, IN("ab\r"), OUT("a"),
	    .flags = BIG | CR, .size = 3 },

	/* BDAT. */
	{ "raw", .raw = true, IN("a\r\nb\r\n"), OUT("a\nb\n") },
	{ "raw empty", .raw = true, IN(""), OUT("") },
	{ "raw no final CRLF", .raw = true, IN("a\r\nb"), OUT("a\nb") },
	{ "raw final CR", .raw = true, IN("a\r\nb\r"), OUT("a\nb\r"),
	    .flags = CR },
	{ "raw final CR normalised", .raw = true, .normalise = true,
	    IN("a\r\nb\r"), OUT("a\nb\n"), .flags = CR },
	{ "raw bare LF", .raw = true, IN("a\nb\r\n"), OUT("a\nb\n"),
	    .flags = LF },
	{ "raw bare CR", .raw = true, IN("a\rb\r\r\n"), OUT("a\rb\r\n"),
	    .flags = CR },
	{ "raw bare CR normalised", .raw = true, .normalise = true,
	    IN("a\rb\r\r\n"), OUT("a\nb\n\n"), .flags = CR },
	{ "raw NUL", .raw = true, IN("\0\r\n\0"), OUT("\0\n\0") },
};

struct sink {
	uint8_t *buf;
	size_t len, cap;
	size_t calls;
};

struct mr_result {
	struct sink out;
	unsigned int flags;
	uint64_t size;
	size_t consumed;
	bool done;
};

static void
sink_out(void *arg, const uint8_t *p, size_t n)
{
	struct sink *s = arg;

	assert_true(n > 0);
	if (n > s->cap - s->len) {
		s->cap = 2 * (s->len + n);
		s->buf = sl_xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->calls++;
}

/* Feeds one piece; before the end every byte must be consumed. */
static void
mr_feed_piece(struct sl_msgreader *r, const uint8_t *p, size_t n,
    struct mr_result *res)
{
	size_t used;

	used = sl_msgreader_feed(r, p, n, &res->done);
	assert_true(used <= n);
	if (!res->done)
		assert_int_equal(used, n);
	res->consumed += used;
}

/*
 * Feeds in[0, cut) and then the rest in pieces of at most step bytes.
 * After the end, one more feed must consume nothing.
 */
static void
mr_run(const struct mr_case *c, size_t cut, size_t step, struct mr_result *res)
{
	struct sl_msgreader_limits lim = { .max_line = c->max_line,
		.max_size = c->max_size,
		.normalise = c->normalise };
	const uint8_t *in = (const uint8_t *)c->in;
	struct sl_msgreader *r;
	size_t off, n;

	memset(res, 0, sizeof(*res));
	r = sl_msgreader_new(&lim, sink_out, &res->out);
	sl_msgreader_reset(r, !c->raw);
	mr_feed_piece(r, in, 0, res);
	for (off = 0; off < c->in_len && !res->done; off += n) {
		n = off < cut ? cut - off : c->in_len - off;
		if (off >= cut && n > step)
			n = step;
		mr_feed_piece(r, in + off, n, res);
	}
	if (res->done) {
		assert_int_equal(
		    sl_msgreader_feed(r, in, c->in_len, &res->done), 0);
		assert_true(res->done);
	}
	if (c->raw)
		sl_msgreader_finish(r);
	res->flags = sl_msgreader_flags(r);
	res->size = sl_msgreader_size(r);
	sl_msgreader_free(&r);
	assert_null(r);
}

static void
mr_check(const struct mr_case *c, const struct mr_result *res, const char *how,
    size_t cut)
{
	uint64_t size;

	if (res->out.len != c->out_len ||
	    (c->out_len > 0 && memcmp(res->out.buf, c->out, c->out_len) != 0))
		fail_msg("%s: %s %zu: output differs (%zu bytes, want %zu)",
		    c->name, how, cut, res->out.len, c->out_len);
	size = (c->flags & BIG) != 0 ? c->size : c->out_len;
	if (res->flags != c->flags || res->done != c->done ||
	    res->consumed != c->in_len - c->rest || res->size != size)
		fail_msg("%s: %s %zu: flags %#x done %d consumed %zu size %llu",
		    c->name, how, cut, res->flags, res->done, res->consumed,
		    (unsigned long long)res->size);
}

static void
test_case(void **state)
{
	const struct mr_case *c = *state;
	struct mr_result res;
	size_t cut;

	mr_run(c, c->in_len, SIZE_MAX, &res);
	mr_check(c, &res, "whole", 0);
	/* Output is batched: one out() call for a short message. */
	assert_true(res.out.calls <= (c->raw ? 2 : 1));
	free(res.out.buf);
	for (cut = 1; cut < c->in_len; cut++) {
		mr_run(c, cut, SIZE_MAX, &res);
		mr_check(c, &res, "split at", cut);
		free(res.out.buf);
	}
	mr_run(c, 0, 1, &res);
	mr_check(c, &res, "bytewise", 0);
	free(res.out.buf);
}

static uint8_t *
make_lines(size_t nlines, const char *line, size_t *len_r)
{
	size_t n, i;
	uint8_t *p;

	n = strlen(line);
	p = sl_xmalloc(nlines * n + 3);
	for (i = 0; i < nlines; i++)
		memcpy(p + i * n, line, n);
	memcpy(p + nlines * n, ".\r\n", 3);
	*len_r = nlines * n + 3;
	return p;
}

/* A big message: batched output, long lines, every split near buffer ends. */
static void
test_big(void **state)
{
	struct mr_case c = { "big", .done = true };
	struct mr_result res;
	uint8_t *in, *out;
	size_t len, i, cut;

	(void)state;
	in = make_lines(3000, "0123456789\r\n", &len);
	out = make_lines(3000, "0123456789\n", &c.out_len);
	c.in = (const char *)in;
	c.in_len = len;
	c.out = (const char *)out;
	c.out_len -= 3;
	mr_run(&c, len, SIZE_MAX, &res);
	mr_check(&c, &res, "whole", 0);
	assert_true(res.out.calls <= c.out_len / 8192 + 1);
	free(res.out.buf);
	mr_run(&c, 0, 1, &res);
	mr_check(&c, &res, "bytewise", 0);
	free(res.out.buf);
	for (i = 1; i < 5; i++) {
		for (cut = i * 8192 - 3; cut < i * 8192 + 3; cut++) {
			mr_run(&c, cut, SIZE_MAX, &res);
			mr_check(&c, &res, "split at", cut);
			free(res.out.buf);
		}
	}
	free(in);
	free(out);
}

/* One 20000-byte line: passed on without a copy, flagged long. */
static void
test_long_line(void **state)
{
	struct mr_case c = { "long line", .done = true, .flags = LONG };
	struct mr_result res;
	uint8_t *in, *out;
	size_t cut;

	(void)state;
	in = sl_xmalloc(20000 + 5);
	memset(in, 'x', 20000);
	memcpy(in + 20000, "\r\n.\r\n", 5);
	out = sl_xmalloc(20000 + 1);
	memset(out, 'x', 20000);
	out[20000] = '\n';
	c.in = (const char *)in;
	c.in_len = 20005;
	c.out = (const char *)out;
	c.out_len = 20001;
	mr_run(&c, 20005, SIZE_MAX, &res);
	mr_check(&c, &res, "whole", 0);
	assert_int_equal(res.out.calls, 2);
	free(res.out.buf);
	mr_run(&c, 0, 1, &res);
	mr_check(&c, &res, "bytewise", 0);
	free(res.out.buf);
	for (cut = 1; cut < c.in_len; cut += 997) {
		mr_run(&c, cut, 4096, &res);
		mr_check(&c, &res, "split at", cut);
		free(res.out.buf);
	}
	free(in);
	free(out);
}

/* reset() starts a new message: flags, size and mode start over. */
static void
test_reset(void **state)
{
	static const uint8_t m1[] = "a\nb\r\n.\r\n";
	static const uint8_t m2[] = "c\r\n.\r\n";
	struct sl_msgreader *r;
	struct sink s = { 0 };
	bool done;

	(void)state;
	r = sl_msgreader_new(NULL, sink_out, &s);
	assert_int_equal(sl_msgreader_feed(r, m1, sizeof(m1) - 1, &done), 8);
	assert_true(done);
	assert_int_equal(sl_msgreader_flags(r), LF);
	sl_msgreader_finish(r); /* no-op in dot mode */
	sl_msgreader_reset(r, true);
	assert_int_equal(sl_msgreader_flags(r), 0);
	assert_int_equal(sl_msgreader_size(r), 0);
	assert_int_equal(sl_msgreader_feed(r, m2, sizeof(m2) - 1, NULL), 6);
	sl_msgreader_reset(r, false);
	assert_int_equal(sl_msgreader_feed(r, m2, sizeof(m2) - 1, &done), 6);
	assert_false(done);
	sl_msgreader_finish(r);
	assert_int_equal(sl_msgreader_feed(r, m2, sizeof(m2) - 1, &done), 0);
	assert_int_equal(s.len, 4 + 2 + 4);
	assert_memory_equal(s.buf, "a\nb\nc\nc\n.\n", s.len);
	sl_msgreader_free(&r);
	sl_msgreader_free(&r);
	free(s.buf);
}

int
main(void)
{
	struct CMUnitTest tests[SL_NELEM(cases) + 3];
	size_t i;

	for (i = 0; i < SL_NELEM(cases); i++) {
		tests[i] = (struct CMUnitTest){ .name = cases[i].name,
			.test_func = test_case,
			.initial_state = &cases[i] };
	}
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_big);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_long_line);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_reset);
	/* The macro cmocka_run_group_tests() wants an array of known size. */
	return _cmocka_run_group_tests("msgreader", tests, i, NULL, NULL);
}
