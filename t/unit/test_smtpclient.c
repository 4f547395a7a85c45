/*
 * test_smtpclient.c - the pure parts of the SMTP / LMTP client: the
 * strict reply parser, the DATA writer (CRLF, dot-stuffing), xtext and
 * the verdict for the recipients' replies.
 *
 * Reply cases are tables of lines with the expected outcome.  DATA cases
 * are fed whole, split in two at every offset, and one byte at a time;
 * the output must be the same every time.  Every string of up to seven
 * bytes over { a . CR LF } then goes through the writer and back through
 * the server's own DATA reader (msgreader, normalise): nothing but CRLF
 * may end a line on the wire, and what comes back is the input with each
 * line end (LF, CRLF, bare CR) as one LF.
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
#include <event2/buffer.h>

#include "msgreader.h"
#include "smtpclient.h"
#include "xmalloc.h"

#define MAX_LINES 4

/* --- replies -------------------------------------------------------------- */

struct reply_case {
	const char *name;
	const char *lines[MAX_LINES]; /* up to the first NULL */
	int rc;                       /* of the last line */
	int code;
	const char *enh, *text;
	const char *error; /* with rc -1 */
};

static const struct reply_case reply_cases[] = {
	{ "one line", { "250 Ok" }, .rc = 1, .code = 250, .enh = "",
	    .text = "Ok" },
	{ "code alone", { "250" }, .rc = 1, .code = 250, .enh = "",
	    .text = "" },
	{ "code and space", { "221 " }, .rc = 1, .code = 221, .enh = "",
	    .text = "" },
	{ "greeting", { "220 mx.example ESMTP Postfix" }, .rc = 1, .code = 220,
	    .enh = "", .text = "mx.example ESMTP Postfix" },
	{ "multi-line", { "250-mx.example", "250-PIPELINING", "250 8BITMIME" },
	    .rc = 1, .code = 250, .enh = "",
	    .text = "mx.example PIPELINING 8BITMIME" },
	{ "continued", { "250-first" }, .rc = 0, .code = 250, .enh = "",
	    .text = "first" },
	{ "enhanced", { "550 5.1.1 <bob@x>: unknown" }, .rc = 1, .code = 550,
	    .enh = "5.1.1", .text = "<bob@x>: unknown" },
	{ "enhanced only", { "250 2.0.0" }, .rc = 1, .code = 250,
	    .enh = "2.0.0", .text = "" },
	{ "enhanced repeated", { "550-5.7.1 one", "550 5.7.1 two" }, .rc = 1,
	    .code = 550, .enh = "5.7.1", .text = "one two" },
	{ "enhanced long parts", { "452 4.123.456 full" }, .rc = 1, .code = 452,
	    .enh = "4.123.456", .text = "full" },
	{ "enhanced of another class", { "550 4.1.1 odd" }, .rc = 1,
	    .code = 550, .enh = "", .text = "4.1.1 odd" },
	{ "enhanced too long", { "550 5.1234.1 x" }, .rc = 1, .code = 550,
	    .enh = "", .text = "5.1234.1 x" },
	{ "enhanced glued", { "550 5.1.1x" }, .rc = 1, .code = 550, .enh = "",
	    .text = "5.1.1x" },
	{ "8-bit and tab", { "250 caf\xc3\xa9\tok" }, .rc = 1, .code = 250,
	    .enh = "", .text = "caf?? ok" },
	{ "LMTP per recipient", { "250 2.0.0 <a@b> Saved" }, .rc = 1,
	    .code = 250, .enh = "2.0.0", .text = "<a@b> Saved" },

	{ "too short", { "25" }, .rc = -1,
	    .error = "reply without a three-digit code" },
	{ "not digits", { "2x0 ok" }, .rc = -1,
	    .error = "reply without a three-digit code" },
	{ "1xx", { "150 x" }, .rc = -1, .error = "reply code out of range" },
	{ "6xx", { "600 x" }, .rc = -1, .error = "reply code out of range" },
	{ "second digit", { "260 x" }, .rc = -1,
	    .error = "reply code out of range" },
	{ "no separator", { "250x" }, .rc = -1,
	    .error = "no space or '-' after the reply code" },
	{ "codes differ", { "250-a", "251 b" }, .rc = -1,
	    .error = "lines of one reply with different codes" },
	{ "CR inside", { "250 a\rb" }, .rc = -1,
	    .error = "control character in a reply" },
	{ "escape", { "250 a\x1b[0m" }, .rc = -1,
	    .error = "control character in a reply" },
	{ "DEL", { "250 a\x7f" }, .rc = -1,
	    .error = "control character in a reply" },
};

/* Feeds a case's lines; returns the last rc. */
static int
reply_feed(const struct reply_case *c, struct sl_smtp_reply *r,
    const char **err)
{
	const char *text;
	size_t i, tlen;
	int rc = 0;

	sl_smtp_reply_reset(r);
	for (i = 0; i < MAX_LINES && c->lines[i] != NULL; i++) {
		rc = sl_smtp_reply_line(r, c->lines[i], strlen(c->lines[i]),
		    &text, &tlen, err);
		if (rc == -1)
			break;
		assert_true(tlen <= strlen(c->lines[i]));
		if (i + 1 < MAX_LINES && c->lines[i + 1] != NULL)
			assert_int_equal(rc, 0);
	}
	return rc;
}

static void
test_reply_case(void **state)
{
	const struct reply_case *c = *state;
	struct sl_smtp_reply r;
	const char *err = NULL;
	int rc;

	rc = reply_feed(c, &r, &err);
	assert_int_equal(rc, c->rc);
	if (rc == -1) {
		assert_string_equal(err, c->error);
		return;
	}
	assert_int_equal(r.code, c->code);
	assert_string_equal(r.enh, c->enh);
	assert_string_equal(r.text, c->text);
	assert_int_equal(r.done, rc == 1);
}

/* A NUL byte, a very long line, too many lines; a new reply after one. */
static void
test_reply_limits(void **state)
{
	struct sl_smtp_reply r;
	const char *err = NULL, *text;
	char line[SL_SMTP_REPLY_LINE_MAX + 2];
	size_t tlen;
	int i;

	(void)state;
	sl_smtp_reply_reset(&r);
	assert_int_equal(
	    sl_smtp_reply_line(&r, "250 a\0b", 7, NULL, NULL, &err), -1);
	assert_string_equal(err, "control character in a reply");

	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	sl_smtp_reply_reset(&r);
	assert_int_equal(sl_smtp_reply_line(&r, line, SL_SMTP_REPLY_LINE_MAX,
	                     &text, &tlen, &err),
	    1);
	assert_int_equal(strlen(r.text), SL_SMTP_REPLY_TEXT_MAX - 1);
	assert_int_equal(tlen, SL_SMTP_REPLY_LINE_MAX - 4);
	sl_smtp_reply_reset(&r);
	assert_int_equal(sl_smtp_reply_line(&r, line,
	                     SL_SMTP_REPLY_LINE_MAX + 1, NULL, NULL, &err),
	    -1);
	assert_string_equal(err, "reply line too long");

	sl_smtp_reply_reset(&r);
	for (i = 0; i < SL_SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(
		    sl_smtp_reply_line(&r, "250-x", 5, NULL, NULL, &err), 0);
	assert_int_equal(sl_smtp_reply_line(&r, "250 x", 5, NULL, NULL, &err),
	    -1);
	assert_string_equal(err, "too many reply lines");

	/* once done, the next line begins the next reply */
	sl_smtp_reply_reset(&r);
	assert_int_equal(
	    sl_smtp_reply_line(&r, "250 2.1.0 a", 11, NULL, NULL, &err), 1);
	assert_int_equal(sl_smtp_reply_line(&r, "354 go", 6, NULL, NULL, &err),
	    1);
	assert_int_equal(r.code, 354);
	assert_string_equal(r.enh, "");
	assert_string_equal(r.text, "go");
	assert_int_equal(r.nlines, 1);
}

/* --- the DATA writer --------------------------------------------------------
 */

#define IN(s) .in = (s), .in_len = sizeof(s) - 1
#define OUT(s) .out = (s), .out_len = sizeof(s) - 1

struct ds_case {
	const char *name;
	const char *in;
	size_t in_len;
	const char *out;
	size_t out_len;
};

static const struct ds_case ds_cases[] = {
	{ "empty", IN(""), OUT(".\r\n") },
	{ "no line end", IN("a"), OUT("a\r\n.\r\n") },
	{ "LF", IN("a\nb\n"), OUT("a\r\nb\r\n.\r\n") },
	{ "CRLF kept", IN("a\r\nb\r\n"), OUT("a\r\nb\r\n.\r\n") },
	{ "bare CR ends a line", IN("a\rb"), OUT("a\r\nb\r\n.\r\n") },
	{ "CR at the end", IN("a\r"), OUT("a\r\n.\r\n") },
	{ "CR CR LF", IN("a\r\r\n"), OUT("a\r\n\r\n.\r\n") },
	{ "LF CR", IN("a\n\rb"), OUT("a\r\n\r\nb\r\n.\r\n") },
	{ "empty lines", IN("\n\n"), OUT("\r\n\r\n.\r\n") },
	{ "leading dot", IN(".a\n"), OUT("..a\r\n.\r\n") },
	{ "dot alone", IN("a\n.\nb\n"), OUT("a\r\n..\r\nb\r\n.\r\n") },
	{ "dot at the end", IN("."), OUT("..\r\n.\r\n") },
	{ "dots", IN("..\n...\n"), OUT("...\r\n....\r\n.\r\n") },
	{ "dot after bare CR", IN("\r.x"), OUT("\r\n..x\r\n.\r\n") },
	{ "dot after CRLF", IN("x\r\n.y"), OUT("x\r\n..y\r\n.\r\n") },
	{ "inner dot", IN("x.\n a.b\n"), OUT("x.\r\n a.b\r\n.\r\n") },
	{ "smuggling", IN("a\n.\r\nMAIL FROM:<x>\n"),
	    OUT("a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n") },
	{ "NUL passes", IN("a\0b\n"), OUT("a\0b\r\n.\r\n") },
};

/* Runs the writer over in, in pieces of at most step bytes (cut first). */
static char *
ds_run(const char *in, size_t len, size_t cut, size_t step, size_t *len_r)
{
	struct sl_smtp_dotstuff d;
	struct evbuffer *out = evbuffer_new();
	size_t off = 0, n;
	char *buf;

	assert_non_null(out);
	sl_smtp_dotstuff_init(&d);
	if (cut > 0 && cut < len) {
		sl_smtp_dotstuff_add(&d, out, (const uint8_t *)in, cut);
		off = cut;
	}
	while (off < len) {
		n = len - off < step ? len - off : step;
		sl_smtp_dotstuff_add(&d, out, (const uint8_t *)in + off, n);
		off += n;
	}
	sl_smtp_dotstuff_end(&d, out);
	*len_r = evbuffer_get_length(out);
	buf = sl_xmalloc(*len_r + 1);
	evbuffer_remove(out, buf, *len_r);
	evbuffer_free(out);
	return buf;
}

static void
ds_check(const struct ds_case *c, const char *got, size_t len, const char *how,
    size_t at)
{
	if (len != c->out_len || memcmp(got, c->out, len) != 0)
		fail_msg("%s: %s %zu: got %zu bytes, want %zu", c->name, how,
		    at, len, c->out_len);
}

static void
test_ds_case(void **state)
{
	const struct ds_case *c = *state;
	size_t cut, len;
	char *got;

	got = ds_run(c->in, c->in_len, 0, SIZE_MAX, &len);
	ds_check(c, got, len, "whole", 0);
	free(got);
	got = ds_run(c->in, c->in_len, 0, 1, &len);
	ds_check(c, got, len, "bytewise", 0);
	free(got);
	for (cut = 1; cut < c->in_len; cut++) {
		got = ds_run(c->in, c->in_len, cut, SIZE_MAX, &len);
		ds_check(c, got, len, "split at", cut);
		free(got);
	}
}

/* A big body goes through the writer's internal buffer several times. */
static void
test_ds_big(void **state)
{
	size_t n = 100000, len, i, lines = 0;
	char *in, *got;

	(void)state;
	in = sl_xmalloc(n);
	for (i = 0; i < n; i++)
		in[i] = i % 7 == 0 ? '\n' : i % 7 == 1 ? '.' : 'x';
	for (i = 0; i < n; i++)
		lines += in[i] == '\n';
	got = ds_run(in, n, 0, SIZE_MAX, &len);
	/*
	 * each LF gets a CR, each line's leading dot another; the last line
	 * (no LF) is ended, then ".\r\n"
	 */
	assert_int_equal(in[n - 1], 'x');
	assert_int_equal(len, n + lines + lines + 2 + 3);
	free(got);
	free(in);
}

struct sink {
	char *buf;
	size_t len, alloc;
};

static void
sink_out(void *arg, const uint8_t *p, size_t n)
{
	struct sink *s = arg;

	if (s->len + n > s->alloc) {
		s->alloc = (s->len + n) * 2;
		s->buf = sl_xrealloc(s->buf, s->alloc);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

/* in with every line end (CRLF, LF, bare CR) as LF. */
static size_t
normalised(const char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
			continue;
		out[o++] = in[i] == '\r' ? '\n' : in[i];
	}
	return o;
}

/*
 * Every string over { a . CR LF } up to 7 bytes: on the wire no bare CR
 * or LF, and the server's DATA reader gives the input back (line ends as
 * LF, a final line end added when the input had none).
 */
static void
test_ds_round_trip(void **state)
{
	static const char alpha[] = { 'a', '.', '\r', '\n' };
	struct sl_msgreader_limits lim = { .normalise = true };
	struct sl_msgreader *mr;
	struct sink s = { 0 };
	char in[8], want[16], *wire;
	size_t len, n, wlen, i, k;
	unsigned long v, count;
	bool done;

	(void)state;
	mr = sl_msgreader_new(&lim, sink_out, &s);
	for (n = 0; n <= 7; n++) {
		for (count = 1, i = 0; i < n; i++)
			count *= 4;
		for (v = 0; v < count; v++) {
			for (i = 0, k = v; i < n; i++, k /= 4)
				in[i] = alpha[k % 4];
			wire = ds_run(in, n, 0, SIZE_MAX, &len);
			for (i = 0; i < len; i++) {
				if (wire[i] == '\r')
					assert_true(
					    i + 1 < len && wire[i + 1] == '\n');
				if (wire[i] == '\n')
					assert_true(
					    i > 0 && wire[i - 1] == '\r');
			}
			sl_msgreader_reset(mr, true);
			s.len = 0;
			assert_int_equal(sl_msgreader_feed(mr,
			                     (const uint8_t *)wire, len, &done),
			    len);
			assert_true(done);
			assert_int_equal(sl_msgreader_flags(mr), 0);
			wlen = normalised(in, n, want);
			if (wlen > 0 && want[wlen - 1] != '\n')
				want[wlen++] = '\n';
			assert_int_equal(s.len, wlen);
			assert_memory_equal(s.buf, want, wlen);
			free(wire);
		}
	}
	sl_msgreader_free(&mr);
	free(s.buf);
}

/* --- xtext ---------------------------------------------------------------- */

static void
test_xtext(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(sl_xtext_encode("mail.example", out, sizeof(out)), 0);
	assert_string_equal(out, "mail.example");
	assert_int_equal(sl_xtext_encode("a+b=c d", out, sizeof(out)), 0);
	assert_string_equal(out, "a+2Bb+3Dc+20d");
	assert_int_equal(sl_xtext_encode("[UNAVAILABLE]", out, sizeof(out)), 0);
	assert_string_equal(out, "[UNAVAILABLE]");
	assert_int_equal(sl_xtext_encode("\x7f\xc3\xa9~!", out, sizeof(out)),
	    0);
	assert_string_equal(out, "+7F+C3+A9~!");
	assert_int_equal(sl_xtext_encode("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(sl_xtext_encode("abcd", out, 5), 0);
	assert_int_equal(sl_xtext_encode("abcde", out, 5), -1);
	assert_int_equal(sl_xtext_encode("abc=", out, 6), -1);
	assert_int_equal(sl_xtext_encode("ab=", out, 6), 0);
	assert_string_equal(out, "ab+3D");
}

/* --- the verdict ------------------------------------------------------------
 */

struct map_case {
	const char *name;
	int codes[4]; /* up to the first 0 */
	bool lmtp_end;
	enum sl_verdict v;
	size_t first;
	bool mixed;
};

static const struct map_case map_cases[] = {
	{ "all delivered", { 250, 251, 250 }, false, SL_OK, 0, false },
	{ "lmtp all delivered", { 250, 250 }, true, SL_OK, 0, false },
	{ "one permanent at RCPT", { 250, 550, 250 }, false, SL_DENY, 1,
	    false },
	{ "temporary wins", { 550, 250, 450, 452 }, false, SL_DENYSOFT, 2,
	    false },
	{ "first permanent", { 553, 550 }, false, SL_DENY, 0, false },
	{ "lmtp mixed temporary", { 250, 452, 550 }, true, SL_DENYSOFT, 1,
	    true },
	{ "lmtp mixed permanent", { 550, 250 }, true, SL_DENY, 0, true },
	{ "lmtp all refused", { 550, 451 }, true, SL_DENYSOFT, 1, false },
	{ "lmtp all permanent", { 552, 550 }, true, SL_DENY, 0, false },
};

static void
test_map_case(void **state)
{
	const struct map_case *c = *state;
	struct sl_smtp_reply r[4];
	size_t n, first = 99;
	bool mixed = true;

	memset(r, 0, sizeof(r));
	for (n = 0; n < 4 && c->codes[n] != 0; n++)
		r[n].code = c->codes[n];
	assert_int_equal(sl_smtpclient_map(r, n, c->lmtp_end, &first, &mixed),
	    c->v);
	assert_int_equal(first, c->first);
	assert_int_equal(mixed, c->mixed);
}

int
main(void)
{
	struct CMUnitTest tests[SL_NELEM(reply_cases) + SL_NELEM(ds_cases) +
	    SL_NELEM(map_cases) + 5];
	size_t i, n = 0;
	char names[SL_NELEM(map_cases)][64];

	for (i = 0; i < SL_NELEM(reply_cases); i++)
		tests[n++] = (struct CMUnitTest){ .name = reply_cases[i].name,
			.test_func = test_reply_case,
			.initial_state = (void *)(uintptr_t)&reply_cases[i] };
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_reply_limits);
	for (i = 0; i < SL_NELEM(ds_cases); i++)
		tests[n++] = (struct CMUnitTest){ .name = ds_cases[i].name,
			.test_func = test_ds_case,
			.initial_state = (void *)(uintptr_t)&ds_cases[i] };
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_ds_big);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_ds_round_trip);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_xtext);
	for (i = 0; i < SL_NELEM(map_cases); i++) {
		snprintf(names[i], sizeof(names[i]), "map: %s",
		    map_cases[i].name);
		tests[n++] = (struct CMUnitTest){ .name = names[i],
			.test_func = test_map_case,
			.initial_state = (void *)(uintptr_t)&map_cases[i] };
	}
	/* The macro cmocka_run_group_tests() wants an array of known size. */
	return _cmocka_run_group_tests("smtpclient", tests, n, NULL, NULL);
}
