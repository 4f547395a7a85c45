/*
 * test_uribl.c - the uribl plugin's extractor (plugins/uribl/extract.c):
 * the name looked up for a host (registered domain, two-label suffixes,
 * reversed IPv4), host normalisation, URIs in plain and HTML text and in
 * header fields (RFC 2047), quoted-printable and base64 bodies, nested
 * multiparts and enclosed messages, every message fed whole, byte by byte
 * and split at every offset, the scan cap, a stop asked by the caller,
 * inputs built to be slow or deep, and the prefiltered scan against the
 * plain one on random text.
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

#include "base64.h"
#include "xmalloc.h"

#include "../../plugins/uribl/extract.h"

/* --- the name to look up ------------------------------------------------- */

static void
test_query_name(void **state)
{
	static const struct {
		const char *host, *want;
		enum uribl_name_kind kind;
	} cases[] = {
		{ "example.com", "example.com", URIBL_NAME_DOMAIN },
		{ "www.example.com", "example.com", URIBL_NAME_DOMAIN },
		{ "a.b.c.example.com", "example.com", URIBL_NAME_DOMAIN },
		{ "example.co.uk", "example.co.uk", URIBL_NAME_DOMAIN },
		{ "www.shop.example.co.uk", "example.co.uk",
		    URIBL_NAME_DOMAIN },
		{ "x.example.com.au", "example.com.au", URIBL_NAME_DOMAIN },
		{ "mail.example.co.jp", "example.co.jp", URIBL_NAME_DOMAIN },
		{ "spam.com.br", "spam.com.br", URIBL_NAME_DOMAIN },
		/* the extra suffix from two_level_tlds */
		{ "www.spam.co.test", "spam.co.test", URIBL_NAME_DOMAIN },
		/* not a known suffix: two labels */
		{ "www.spam.example.test", "example.test", URIBL_NAME_DOMAIN },
		{ "co.uk", "", URIBL_NAME_NONE },
		{ "co.test", "", URIBL_NAME_NONE },
		{ "com", "", URIBL_NAME_NONE },
		{ "192.0.2.1", "1.2.0.192", URIBL_NAME_IP },
		{ "203.0.113.254", "254.113.0.203", URIBL_NAME_IP },
		{ "10.20.30.40", "40.30.20.10", URIBL_NAME_IP },
		{ "0.0.0.0", "0.0.0.0", URIBL_NAME_IP },
		{ "255.255.255.255", "255.255.255.255", URIBL_NAME_IP },
	};
	struct sl_strlist extra;
	char co_test[] = "CO.test.", *items[] = { co_test };
	struct uribl_suffixes *s;
	const char *bad = NULL;
	char buf[256];
	size_t i;

	(void)state;
	extra.items = items;
	extra.count = 1;
	s = uribl_suffixes_new(&extra, &bad);
	assert_non_null(s);
	for (i = 0; i < SL_NELEM(cases); i++) {
		buf[0] = '\0';
		assert_int_equal(
		    uribl_query_name(s, cases[i].host, buf, sizeof(buf)),
		    cases[i].kind);
		if (cases[i].kind != URIBL_NAME_NONE)
			assert_string_equal(buf, cases[i].want);
	}
	/* too small a buffer is no name, never a truncated one */
	assert_int_equal(uribl_query_name(s, "www.example.com", buf, 11),
	    URIBL_NAME_NONE);
	assert_int_equal(uribl_query_name(s, "192.0.2.1", buf, 9),
	    URIBL_NAME_NONE);
	assert_int_equal(uribl_query_name(s, "192.0.2.1", buf, 10),
	    URIBL_NAME_IP);
	assert_string_equal(buf, "1.2.0.192");
	uribl_suffixes_free(&s);
	assert_null(s);
}

static void
test_bad_suffixes(void **state)
{
	static char bad_items[][8] = { "uk", "a.b.c", ".uk", "co..uk", "c_o.uk",
		"" };
	struct sl_strlist extra;
	const char *bad;
	char *item;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(bad_items); i++) {
		item = bad_items[i];
		extra.items = &item;
		extra.count = 1;
		bad = NULL;
		assert_null(uribl_suffixes_new(&extra, &bad));
		assert_ptr_equal(bad, item);
	}
}

/* --- extraction ---------------------------------------------------------- */

struct collect {
	char out[8192]; /* hosts, each followed by a space */
	size_t len;
	unsigned int count;
	unsigned int stop_after; /* 0 = never */
};

static bool
collect_host(void *arg, const char *host)
{
	struct collect *c = arg;
	int n;

	c->count++;
	if (c->len < sizeof(c->out)) {
		n = snprintf(c->out + c->len, sizeof(c->out) - c->len, "%s ",
		    host);
		if (n > 0)
			c->len += (size_t)n;
	}
	return c->stop_after == 0 || c->count < c->stop_after;
}

static char h_subject[] = "Subject", h_from[] = "From", h_to[] = "To";
static char *scan_headers_items[] = { h_subject, h_from, h_to };
static const struct sl_strlist scan_headers = { scan_headers_items, 3 };

struct run {
	const char *const *headers; /* name, value, ..., NULL */
	const uint8_t *body;
	size_t body_len;
	size_t chunk;    /* feed the body in pieces of this size; 0 = whole */
	size_t split;    /* or in two pieces at this offset (chunk 0) */
	size_t max_scan; /* 0 = none */
	bool email;
	unsigned int stop_after;
};

static struct uribl_patterns *pat_uri, *pat_email;

static int
setup(void **state)
{
	const char *error = NULL;

	(void)state;
	pat_uri = uribl_patterns_new(false, &error);
	pat_email = uribl_patterns_new(true, &error);
	return pat_uri != NULL && pat_email != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	uribl_patterns_free(&pat_uri);
	uribl_patterns_free(&pat_email);
	return 0;
}

/* Runs one message through a new extractor; returns what was found. */
static void
run_extract(const struct run *r, struct collect *c, bool *capped_r,
    size_t *scanned_r)
{
	struct uribl_extractor *x;
	size_t i, n;

	memset(c, 0, sizeof(*c));
	c->stop_after = r->stop_after;
	x = uribl_extractor_new(r->email ? pat_email : pat_uri, &scan_headers,
	    r->max_scan, collect_host, c);
	for (i = 0; r->headers != NULL && r->headers[i] != NULL; i += 2)
		uribl_extract_header(x, r->headers[i], r->headers[i + 1]);
	if (r->chunk > 0) {
		for (i = 0; i < r->body_len; i += n) {
			n = r->body_len - i < r->chunk ? r->body_len - i
			                               : r->chunk;
			uribl_extract_body(x, r->body + i, n);
		}
	} else if (r->split > 0) {
		uribl_extract_body(x, r->body, r->split);
		uribl_extract_body(x, r->body + r->split,
		    r->body_len - r->split);
	} else if (r->body != NULL) {
		uribl_extract_body(x, r->body, r->body_len);
	}
	uribl_extract_finish(x);
	if (capped_r != NULL)
		*capped_r = uribl_extract_scan_capped(x);
	if (scanned_r != NULL)
		*scanned_r = uribl_extract_scanned(x);
	uribl_extractor_free(&x);
	assert_null(x);
}

/*
 * Extracts from headers and body, whole, byte by byte and split at every
 * offset: each must find exactly want.
 */
static void
check(const char *const *headers, const char *body, bool email,
    const char *want)
{
	struct run r;
	struct collect c;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.headers = headers;
	r.body = (const uint8_t *)body;
	r.body_len = body != NULL ? strlen(body) : 0;
	r.email = email;
	run_extract(&r, &c, NULL, NULL);
	if (strcmp(c.out, want) != 0)
		fail_msg("whole: found \"%s\", want \"%s\"\nbody: %s", c.out,
		    want, body);
	r.chunk = 1;
	run_extract(&r, &c, NULL, NULL);
	if (strcmp(c.out, want) != 0)
		fail_msg("byte by byte: found \"%s\", want \"%s\"\nbody: %s",
		    c.out, want, body);
	r.chunk = 0;
	for (i = 1; i < r.body_len; i++) {
		r.split = i;
		run_extract(&r, &c, NULL, NULL);
		if (strcmp(c.out, want) != 0)
			fail_msg("split at %zu: found \"%s\", want \"%s\"\n"
			         "body: %s",
			    i, c.out, want, body);
	}
}

static void
test_plain(void **state)
{
	static const struct {
		const char *body, *want;
	} cases[] = {
		{ "see http://www.Example.TEST/path?x=1 now\n",
		    "www.example.test " },
		{ "HTTPS://user:pw@evil.test:8080/x\n", "evil.test " },
		{ "ftp://files.example.test/pub\n", "files.example.test " },
		{ "visit www.spam.test. today\n", "www.spam.test " },
		{ "(www2.paren.test)\n", "www2.paren.test " },
		{ "http://%77%77%77.pct.test/\n", "www.pct.test " },
		{ "http://192.0.2.55/x and http://010.0.2.1/\n",
		    "192.0.2.55 10.0.2.1 " },
		{ "trailing dots http://dots.test../\n", "dots.test " },
		/* not hosts */
		{ "http://localhost/ http://300.1.1.1/ http://1.2.3/\n", "" },
		{ "http://a..b.test/ http://%zz.test/ http://%2f.test/\n", "" },
		{ "mailto:bob@mail.test and bob@mail.test\n", "" },
		{ "awww.word.test xwww.no.test\n", "" },
		{ "text/http://inside.test no: nohttp://x.test\n",
		    "inside.test " },
		/* CRLF line ends and no final line end */
		{ "a\r\nhttp://crlf.test/\r\nb", "crlf.test " },
		{ "http://last.test", "last.test " },
	};
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(cases); i++)
		check(NULL, cases[i].body, false, cases[i].want);
}

static void
test_email_domains(void **state)
{
	(void)state;
	check(NULL, "write to Bob.Smith+x@Mail.Example.TEST or a@b\n", true,
	    "mail.example.test ");
	check(NULL, "write to Bob.Smith+x@Mail.Example.TEST\n", false, "");
	/* a URL with user info is still the URL's host */
	check(NULL, "http://user@host.test/\n", true, "host.test ");
}

static void
test_headers(void **state)
{
	static const char *const h1[] = { "Subject",
		"buy at http://subj.test/ now", "X-Other",
		"http://ignored.test/", "To", "<user@to.test>", NULL };
	/* RFC 2047: Q and B, a URI split across two encoded-words */
	static const char *const h2[] = { "Subject",
		"=?utf-8?Q?see_http=3A//www=2Eq.test/?=", "From",
		"=?utf-8?B?aHR0cDovL2Jhc2U2?=\n =?utf-8?B?NC50ZXN0Lw==?= "
		"<a@b.test>",
		NULL };
	static const char *const h3[] = { "subject",
		"=?bad?X?http://notdecoded.test/?= www.plain.test", NULL };

	(void)state;
	check(h1, NULL, false, "subj.test ");
	check(h1, "", true, "subj.test to.test ");
	check(h2, NULL, false, "www.q.test base64.test ");
	check(h3, NULL, false, "notdecoded.test www.plain.test ");
}

static void
test_quoted_printable(void **state)
{
	static const char *const qp[] = { "Content-Transfer-Encoding",
		"Quoted-Printable", NULL };

	(void)state;
	/* a soft line break splits the host; =2E is a dot */
	check(qp,
	    "click http://www.sp=\nlit.test/ or http://www=2Eqp=2Etest/\n",
	    false, "www.split.test www.qp.test ");
	/* blanks and CR before the soft break; a lone '=' stays */
	check(qp, "http://soft=  \r\nbreak.test/ a=b =zz\n", false,
	    "softbreak.test ");
	check(qp, "http://end.test=", false, "end.test ");
}

/* base64 of s with a line break every 76 characters; caller frees. */
static char *
b64_lines(const char *s)
{
	size_t n = strlen(s), elen = SL_BASE64_ENCODED_LEN(n), i, o = 0;
	char *enc = sl_xmalloc(elen + 1), *out;

	assert_int_equal(sl_base64_encode((const uint8_t *)s, n, enc, elen + 1),
	    (long)elen);
	out = sl_xmalloc(elen + elen / 76 + 2);
	for (i = 0; i < elen; i++) {
		out[o++] = enc[i];
		if (i % 76 == 75)
			out[o++] = '\n';
	}
	out[o++] = '\n';
	out[o] = '\0';
	free(enc);
	return out;
}

static void
test_multipart(void **state)
{
	static const char *const mp[] = { "Content-Type",
		"multipart/mixed;\n\tboundary=\"outer b\"", NULL };
	char *html64, *body;

	(void)state;
	html64 = b64_lines("<html><body><p>Hello, click <a "
	                   "href=\"http://www.b64html.test/offer\">here</a> or "
	                   "<a href='//proto.test/x'>there</a>; "
	                   "www&#46;ent&#x2E;test &amp; "
	                   "http://www&period;named&period;test/"
	                   "</p></body></html>");
	body =
	    sl_xasprintf("preamble http://preamble.test/\n"
	                 "--outer b\n"
	                 "Content-Type: multipart/alternative; boundary=inner\n"
	                 "\n"
	                 "inner preamble\n"
	                 "--inner\n"
	                 "Content-Type: text/plain; charset=us-ascii\n"
	                 "Content-Transfer-Encoding: quoted-printable\n"
	                 "\n"
	                 "plain http://www.alt=\n"
	                 "plain.test/\n"
	                 "--inner\n"
	                 "Content-Type: text/html;\n"
	                 " charset=utf-8\n"
	                 "Content-Transfer-Encoding: BASE64\n"
	                 "\n"
	                 "%s"
	                 "--inner--\n"
	                 "inner epilogue http://epilogue.test/\n"
	                 "--outer b\n"
	                 "Content-Type: application/octet-stream\n"
	                 "Content-Transfer-Encoding: base64\n"
	                 "\n"
	                 "aHR0cDovL2F0dGFjaG1lbnQudGVzdC8K\n"
	                 "--outer b\n"
	                 "Content-Type: message/rfc822\n"
	                 "\n"
	                 "Subject: enclosed\n"
	                 "Content-Type: text/plain\n"
	                 "\n"
	                 "enclosed http://enclosed.test/\n"
	                 "--outer b\n"
	                 "\n"
	                 "no header: text/plain http://default.test/\n"
	                 "--outer b--  \n"
	                 "epilogue http://outer-epilogue.test/\n",
	        html64);
	check(mp, body, false,
	    "www.altplain.test www.b64html.test proto.test www.ent.test "
	    "www.named.test enclosed.test default.test ");
	free(body);
	free(html64);
}

static void
test_html_only_in_html(void **state)
{
	static const char *const html[] = { "Content-Type", "text/html", NULL };
	static const char *const plain[] = { "Content-Type",
		"text/plain; charset=utf-8", NULL };
	static const char *const other[] = { "Content-Type",
		"image/png; name=\"http://name.test/\"", NULL };

	(void)state;
	check(html, "www&#46;ent&#46;test &#104;ttp://num.test/ &#x;\n", false,
	    "www.ent.test num.test ");
	check(plain, "www&#46;ent&#46;test\n", false, "");
	check(other, "http://image.test/\n", false, "");
	/* a multipart without a boundary is read as text */
	check((const char *const[]){ "Content-Type", "multipart/mixed", NULL },
	    "--x\nhttp://nobound.test/\n", false, "nobound.test ");
}

/* Many URIs over several windows, a long line and a run without blanks. */
static void
test_long_text(void **state)
{
	struct collect c;
	struct run r;
	char *body, *p;
	size_t i, size = 64 * 1024;

	(void)state;
	body = sl_xmalloc(size);
	p = body;
	/* 2000 URIs on one line: the window is cut between them */
	for (i = 0; i < 2000; i++)
		p += snprintf(p, 32, "http://h%zu.test/ ", i);
	*p++ = '\n';
	*p = '\0';
	memset(&r, 0, sizeof(r));
	r.body = (const uint8_t *)body;
	r.body_len = strlen(body);
	run_extract(&r, &c, NULL, NULL);
	assert_int_equal(c.count, 2000);
	r.chunk = 1000;
	run_extract(&r, &c, NULL, NULL);
	assert_int_equal(c.count, 2000);

	/* a URI that straddles the 4096-byte line pieces */
	memset(body, 'a', 4090);
	snprintf(body + 4090, 64, " http://straddle.test/ x\n");
	r.body_len = strlen(body);
	r.chunk = 0;
	run_extract(&r, &c, NULL, NULL);
	assert_string_equal(c.out, "straddle.test ");

	/* 20000 bytes without a delimiter: the window is cut hard, the
	 * host it cuts is dropped rather than reported truncated */
	memset(body, 'a', 20000);
	memcpy(body + 16370, "/http://cutcutcut.test/", 23);
	snprintf(body + 20000, 64, " http://after.test/\n");
	r.body_len = strlen(body);
	run_extract(&r, &c, NULL, NULL);
	assert_string_equal(c.out, "after.test ");
	free(body);
}

static void
test_caps(void **state)
{
	static const char *const subj[] = { "Subject", "http://subj.test/",
		NULL };
	struct collect c;
	struct run r;
	char body[4096];
	bool capped;
	size_t scanned;

	(void)state;
	memset(body, 'x', 2000);
	snprintf(body + 2000, sizeof(body) - 2000,
	    "\nhttp://late.test/\nhttp://later.test/\n");
	memset(&r, 0, sizeof(r));
	r.headers = subj;
	r.body = (const uint8_t *)body;
	r.body_len = strlen(body);
	/* within the cap: everything */
	r.max_scan = 4096;
	run_extract(&r, &c, &capped, &scanned);
	assert_string_equal(c.out, "subj.test late.test later.test ");
	assert_false(capped);
	/* the cap falls inside the body: what comes after is not seen */
	r.max_scan = 1024;
	run_extract(&r, &c, &capped, &scanned);
	assert_string_equal(c.out, "subj.test ");
	assert_true(capped);
	assert_int_equal(scanned, 1024);
	/* the cap cuts a URI ("http://late.t"): its host is not reported
	 * truncated */
	r.max_scan = 17 + 2001 + 13;
	r.chunk = 7;
	run_extract(&r, &c, &capped, &scanned);
	assert_string_equal(c.out, "subj.test ");
	assert_true(capped);
	/* inside a header */
	r.max_scan = 10;
	r.chunk = 0;
	run_extract(&r, &c, &capped, &scanned);
	assert_string_equal(c.out, "");
	assert_true(capped);
	assert_int_equal(scanned, 10);
	/* the caller stops it */
	r.max_scan = 0;
	r.stop_after = 2;
	run_extract(&r, &c, &capped, &scanned);
	assert_string_equal(c.out, "subj.test late.test ");
	assert_false(capped);
}

/* Inputs built to be slow or deep: still linear, still bounded. */
static void
test_adversarial(void **state)
{
	const char *hdrs[3] = { "Subject", NULL, NULL };
	struct collect c;
	struct run r;
	char *v, *body, *p;
	size_t i, size = 64 * 1024;

	(void)state;
	/* many "=?" openings that never close, then a URI */
	v = sl_xmalloc(size);
	for (p = v, i = 0; i < 8000; i++)
		p += snprintf(p, 16, "=?a?B?x");
	snprintf(p, 32, " http://end.test/");
	hdrs[1] = v;
	check(hdrs, NULL, false, "end.test ");
	free(v);

	/* multiparts nested deeper than followed: read on as text */
	body = sl_xmalloc(size);
	p = body;
	for (i = 1; i < 12; i++)
		p += snprintf(p, 128,
		    "--b%zu\nContent-Type: multipart/mixed; boundary=b%zu\n\n",
		    i - 1, i);
	snprintf(p, 64, "--b11\n\nhttp://deep.test/\n--b11--\n");
	memset(&r, 0, sizeof(r));
	hdrs[1] = NULL;
	r.headers = (const char *const[]){ "Content-Type",
		"multipart/mixed; boundary=b0", NULL };
	r.body = (const uint8_t *)body;
	r.body_len = strlen(body);
	run_extract(&r, &c, NULL, NULL);
	assert_string_equal(c.out, "deep.test ");

	/* a part header far longer than kept, a boundary far too long */
	p = body;
	p += snprintf(p, 64, "--b0\nContent-Type: multipart/mixed; boundary=");
	memset(p, 'z', 10000);
	p += 10000;
	snprintf(p, 64, "\n\nhttp://long.test/\n--b0--\n");
	r.body_len = strlen(body);
	run_extract(&r, &c, NULL, NULL);
	assert_string_equal(c.out, "long.test ");
	free(body);
}

/*
 * The prefilter (regex only where a URI's literal begins) finds what the
 * plain search finds: random text from pieces that start, break and
 * nearly make URIs, as a header and as a body fed whole and in pieces.
 */
static void
test_prefilter_same(void **state)
{
	static const char *const pieces[] = { "http", "https", "HTTP", "ftp",
		"://", ":/", "/", "www", "WwW", "www1.", "www1234.", "href",
		"HREF", "=", " = ", "\"", "'", "//", ".", "..", "%2e", "%2E",
		"%", "@", "a", "x", "Ex", "-", "_", "0", "9", "192.0.2.1", " ",
		"\n", "\t", "<", ">", "<a ", "h", "f", "w", "ttp", "tp", "s",
		"example", "test", ".com", ".test", "user:pw@", "?q=1", "#",
		"http://x.test", "www.y.test", "href='//z.test",
		"ftp://q.test/", "\v", "\f", "\r", "\xa0", "\x85",
		"href \t\n=", "www123.", "1", "12", "https://", "=\"",
		"x-y:", "WWW.", "Href\f=" };
	const char *hdrs[3] = { "Subject", NULL, NULL };
	struct collect plain, pre;
	struct run r;
	char text[600];
	unsigned int seed = 12345, iter, k, n, found = 0;
	size_t len;

	(void)state;
	for (iter = 0; iter < 3000; iter++) {
		len = 0;
		n = 1 + (seed = seed * 1103515245u + 12345u) % 60;
		for (k = 0; k < n; k++) {
			const char *pc;

			seed = seed * 1103515245u + 12345u;
			pc = pieces[(seed >> 8) % SL_NELEM(pieces)];
			if (len + strlen(pc) >= sizeof(text))
				break;
			memcpy(text + len, pc, strlen(pc));
			len += strlen(pc);
		}
		text[len] = '\0';
		memset(&r, 0, sizeof(r));
		hdrs[1] = text;
		r.headers = hdrs;
		r.body = (const uint8_t *)text;
		r.body_len = len;
		r.chunk = iter % 7 == 0 ? 1 + iter % 13 : 0;
		uribl_patterns_prefilter(pat_uri, false);
		run_extract(&r, &plain, NULL, NULL);
		uribl_patterns_prefilter(pat_uri, true);
		run_extract(&r, &pre, NULL, NULL);
		if (strcmp(plain.out, pre.out) != 0)
			fail_msg("text \"%s\": plain \"%s\", prefilter \"%s\"",
			    text, plain.out, pre.out);
		found += plain.len > 0;
	}
	print_message("# %u of 3000 texts held hosts\n", found);
	assert_true(found > 1000); /* not a comparison of empty lists */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_name),
		cmocka_unit_test(test_bad_suffixes),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_email_domains),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_quoted_printable),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_html_only_in_html),
		cmocka_unit_test(test_long_text),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_adversarial),
		cmocka_unit_test(test_prefilter_same),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
