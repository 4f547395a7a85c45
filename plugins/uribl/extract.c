/*
 * extract.c - the URI extractor of the uribl plugin; see extract.h.
 *
 * Three stages, each resumable at any byte:
 *   1. the MIME walk: body lines (a line longer than BODY_LINE_MAX goes
 *      on in pieces) are checked against a stack of multipart boundaries
 *      (RFC 2046 5.1.1); of a part's header only Content-Type and
 *      Content-Transfer-Encoding are kept;
 *   2. the decoders: quoted-printable (RFC 2045 6.7, soft line breaks
 *      joined, so a URI split across lines comes out whole), base64
 *      (6.8: characters outside the alphabet are skipped, each quantum
 *      goes through shared/base64), and in text/html the character
 *      references (&#46; &#x2e; &period; ...);
 *   3. the scanner: decoded text collects in a window of SCAN_MAX bytes
 *      that one PCRE2 pattern searches when it is full, up to its last
 *      line end (or blank, or '>'); the rest starts the next window, so
 *      a URI is cut in two only inside SCAN_MAX bytes without any of
 *      those (its truncated host is then dropped, never reported).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <sluice/conf.h>

#include "base64.h"
#include "xmalloc.h"

#include "extract.h"

#define BODY_LINE_MAX 4096 /* bytes of a body line looked at at once */
#define SCAN_MAX 16384     /* the scanner's window */
#define PHDR_MAX 2048      /* one part header field, unfolded */
#define BOUNDARY_MAX 200   /* RFC 2046 allows 70: leave room for sloppiness */
#define DEPTH_MAX 8        /* nested multiparts followed */
#define TYPE_MAX 64        /* "type/subtype" kept */
#define CHARSET_MAX 64     /* of an RFC 2047 encoded-word */
#define WORD_MAX 1024      /* an encoded-word (RFC 2047 2 says 75) */
#define LABEL_MAX 63       /* RFC 1035 2.3.4 */
/* PCRE2 limits: the pattern is linear, these only stop a pathology. */
#define MATCH_LIMIT 100000
#define DEPTH_LIMIT 1000

/* --- patterns ------------------------------------------------------------ */

/*
 * One pattern, caseless, byte mode (no UTF: any byte string is a valid
 * subject, and \s \b are ASCII).  Each alternative captures the host in
 * its own group; possessive quantifiers keep it from backtracking.
 *   1  scheme://[userinfo@]host        http, https, ftp
 *   2  www.host                        no scheme, not inside a word/URI
 *   3  href=["']//host, href=x-y://h   protocol-relative and other schemes
 *   4  local@domain                    only with email_domains
 * The host class takes '%' (percent-escapes, decoded later) and '.'; the
 * normaliser rejects what is not a host name after decoding.
 */
#define HOSTCH "[a-z0-9_%.-]++"
#define USERINFO "(?:[^\\s/?#@<>\"'\\\\]{0,256}+@)?"
static const char pattern_uri[] =
    "\\b(?:https?|ftp)://" USERINFO "(" HOSTCH ")"
    "|(?<![a-z0-9_%.@/-])(www[0-9]{0,3}+\\." HOSTCH ")"
    "|\\bhref\\s*+=\\s*+[\"']?+\\s*+"
    "(?:[a-z][a-z0-9+.-]{0,15}+:)?//" USERINFO "(" HOSTCH ")";
static const char pattern_email[] = "|(?<![a-z0-9._%+-])[a-z0-9._%+-]{1,64}+@"
                                    "([a-z0-9-]++(?:\\.[a-z0-9-]++)++)";

struct uribl_patterns {
	pcre2_code *code;
	/* the same pattern anchored, tried only where may_start() says a
	 * match can begin; NULL with email_domains (an address's local part
	 * has no such literal) */
	pcre2_code *anchored;
	bool prefilter; /* use it (uribl_patterns_prefilter) */
	pcre2_match_context *mctx;
};

struct uribl_patterns *
uribl_patterns_new(bool email_domains, const char **error_r)
{
	struct uribl_patterns *p;
	PCRE2_SIZE erroff;
	char *re;
	int errcode;

	re = sl_xasprintf("%s%s", pattern_uri,
	    email_domains ? pattern_email : "");
	p = sl_xcalloc(1, sizeof(*p));
	p->code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
	    PCRE2_CASELESS, &errcode, &erroff, NULL);
	if (p->code != NULL && !email_domains)
		p->anchored = pcre2_compile((PCRE2_SPTR)re,
		    PCRE2_ZERO_TERMINATED, PCRE2_CASELESS | PCRE2_ANCHORED,
		    &errcode, &erroff, NULL);
	free(re);
	if (p->code == NULL || (!email_domains && p->anchored == NULL)) {
		*error_r = "cannot compile the URI pattern (PCRE2)";
		goto fail;
	}
	/* Best effort: without JIT the interpreter finds the same. */
	(void)pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE);
	if (p->anchored != NULL)
		(void)pcre2_jit_compile(p->anchored, PCRE2_JIT_COMPLETE);
	p->prefilter = p->anchored != NULL;
	p->mctx = pcre2_match_context_create(NULL);
	if (p->mctx == NULL) {
		*error_r = "out of memory (PCRE2 match context)";
		goto fail;
	}
	pcre2_set_match_limit(p->mctx, MATCH_LIMIT);
	pcre2_set_depth_limit(p->mctx, DEPTH_LIMIT);
	return p;
fail:
	uribl_patterns_free(&p);
	return NULL;
}

void
uribl_patterns_prefilter(struct uribl_patterns *p, bool on)
{
	p->prefilter = on && p->anchored != NULL;
}

void
uribl_patterns_free(struct uribl_patterns **pp)
{
	struct uribl_patterns *p = *pp;

	if (p == NULL)
		return;
	pcre2_match_context_free(p->mctx);
	pcre2_code_free(p->anchored);
	pcre2_code_free(p->code);
	free(p);
	*pp = NULL;
}

/* --- the extractor's state ----------------------------------------------- */

enum cte {
	CTE_IDENTITY = 0, /* 7bit, 8bit, binary, unknown */
	CTE_QP,
	CTE_BASE64,
};

enum ent_state {
	ENT_SKIP = 0, /* preamble, epilogue, attachments */
	ENT_HEADERS,  /* a part's (or enclosed message's) header */
	ENT_TEXT,     /* text/plain or text/html content */
};

enum qp_state {
	QP_TEXT = 0,
	QP_EQ,  /* after '=' */
	QP_HEX, /* after '=' and one hex digit */
};

/* What an entity's header said. */
struct entity {
	char type[TYPE_MAX];             /* lower case; "" = not given */
	char boundary[BOUNDARY_MAX + 1]; /* "" = none */
	enum cte cte;
};

struct uribl_extractor {
	const struct uribl_patterns *pat;
	const struct sl_strlist *headers;
	size_t max_scan, scanned;
	uribl_host_fn fn;
	void *arg;
	pcre2_match_data *md;
	bool stopped;      /* capped, told to stop, or finished */
	bool capped;       /* max_scan reached */
	bool body_started; /* the top-level entity began */

	struct entity top;  /* from the message header */
	struct entity part; /* the part whose header is being read */
	char phdr[PHDR_MAX + 1];
	size_t phdr_len;

	char bounds[DEPTH_MAX][BOUNDARY_MAX + 1];
	size_t depth;
	enum ent_state state;
	enum cte cte; /* of the text being decoded */
	bool html;

	enum qp_state qp;
	uint8_t qp_first; /* the hex digit after '=' */
	char b64[4];      /* a base64 quantum being collected */
	size_t b64_len;
	char ref[12]; /* an HTML character reference being collected */
	size_t ref_len;

	size_t line_len;
	bool line_start; /* line[0] begins a line */
	size_t win_len;

	/* last: uribl_extractor_new zeroes everything before line */
	uint8_t line[BODY_LINE_MAX];
	uint8_t win[SCAN_MAX];
};

/* --- host names ---------------------------------------------------------- */

static int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
is_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

/* Parses a dotted-quad IPv4 address (1-3 digits per octet).  0 or -1. */
/*
 * "A.B.C.D" of four octets into buf (size bytes, 16 are always enough).
 * Returns false if it does not fit.  (snprintf did this at several times
 * the cost, for every IPv4 host found.)
 */
static bool
put_quad(char *buf, size_t size, unsigned int a, unsigned int b, unsigned int c,
    unsigned int d)
{
	const unsigned int o[4] = { a, b, c, d };
	char tmp[16];
	size_t n = 0;
	int i;

	for (i = 0; i < 4; i++) {
		if (i > 0)
			tmp[n++] = '.';
		if (o[i] >= 100)
			tmp[n++] = (char)('0' + o[i] / 100);
		if (o[i] >= 10)
			tmp[n++] = (char)('0' + o[i] / 10 % 10);
		tmp[n++] = (char)('0' + o[i] % 10);
	}
	if (n >= size)
		return false;
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	return true;
}

static int
ipv4_parse(const char *s, unsigned int oct_r[4])
{
	unsigned int i, v;
	size_t n;

	for (i = 0; i < 4; i++) {
		n = strspn(s, "0123456789");
		if (n == 0 || n > 3)
			return -1;
		for (v = 0; n > 0; n--, s++)
			v = v * 10 + (unsigned int)(*s - '0');
		if (v > 255)
			return -1;
		oct_r[i] = v;
		if (i < 3 && *s++ != '.')
			return -1;
	}
	return *s == '\0' ? 0 : -1;
}

/*
 * Normalises a host as matched: percent-escapes decoded, lower case,
 * outer dots removed.  Fails unless the result is two or more non-empty
 * labels of [a-z0-9_-] within DNS limits; a name whose last label is
 * numeric must be an IPv4 address, which is rewritten canonically
 * (no leading zeros).  Returns 0 with out (URIBL_HOST_MAX + 1 bytes).
 */
static int
host_normalise(const uint8_t *s, size_t len, char *out)
{
	char tmp[URIBL_HOST_MAX + 1];
	const char *p, *last, *dot;
	unsigned int oct[4];
	size_t i, o = 0, start, end;
	int c, hi, lo;

	for (i = 0; i < len; i++) {
		c = s[i];
		if (c == '%') {
			if (i + 2 >= len || (hi = hex_value(s[i + 1])) < 0 ||
			    (lo = hex_value(s[i + 2])) < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		}
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		        c == '-' || c == '_' || c == '.'))
			return -1;
		if (o == sizeof(tmp) - 1)
			return -1;
		tmp[o++] = (char)c;
	}
	for (start = 0; start < o && tmp[start] == '.'; start++)
		;
	for (end = o; end > start && tmp[end - 1] == '.'; end--)
		;
	if (end == start)
		return -1;
	memcpy(out, tmp + start, end - start);
	out[end - start] = '\0';
	/* labels: non-empty, at most 63 bytes, at least two */
	for (p = out, last = NULL; (dot = strchr(p, '.')) != NULL;
	     p = dot + 1) {
		if (dot == p || (size_t)(dot - p) > LABEL_MAX)
			return -1;
		last = dot + 1;
	}
	if (last == NULL || strlen(p) > LABEL_MAX)
		return -1;
	if (!is_digits(last, strlen(last)))
		return 0;
	if (ipv4_parse(out, oct) == -1)
		return -1;
	(void)put_quad(out, URIBL_HOST_MAX + 1, oct[0], oct[1], oct[2], oct[3]);
	return 0;
}

static void
report_host(struct uribl_extractor *x, const uint8_t *s, size_t len)
{
	char host[URIBL_HOST_MAX + 1];

	if (host_normalise(s, len, host) == 0 && !x->fn(x->arg, host))
		x->stopped = true;
}

/* --- the scanner --------------------------------------------------------- */

/* Reports the host a match (rc from pcre2_match) captured. */
static void
report_match(struct uribl_extractor *x, const uint8_t *s, size_t len,
    bool drop_at_end, int rc)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(x->md);
	int g;

	for (g = 1; g < rc; g++) {
		if (ov[2 * g] == PCRE2_UNSET)
			continue;
		if (!(drop_at_end && ov[2 * g + 1] == len))
			report_host(x, s + ov[2 * g],
			    ov[2 * g + 1] - ov[2 * g]);
		return;
	}
}

/* A letter of ASCII c, either case (c | 0x20 folds only letters there). */
#define IS_CI(c, lower) (((c) | 0x20) == (lower))

/*
 * Whether a URI alternative of the pattern can begin at p[0..n): each
 * needs its literal there, "http://", "https://", "ftp://", "www" or
 * "href" in any case.  Necessary, not sufficient: the anchored pattern
 * decides.
 */
static bool
may_start(const uint8_t *p, size_t n)
{
	size_t k;

	switch (p[0] | 0x20) {
	case 'h':
		if (n >= 4 && IS_CI(p[1], 'r') && IS_CI(p[2], 'e') &&
		    IS_CI(p[3], 'f'))
			return true;
		if (n < 7 || !IS_CI(p[1], 't') || !IS_CI(p[2], 't') ||
		    !IS_CI(p[3], 'p'))
			return false;
		k = IS_CI(p[4], 's') ? 5 : 4;
		return n >= k + 3 && p[k] == ':' && p[k + 1] == '/' &&
		    p[k + 2] == '/';
	case 'f':
		return n >= 6 && IS_CI(p[1], 't') && IS_CI(p[2], 'p') &&
		    p[3] == ':' && p[4] == '/' && p[5] == '/';
	case 'w':
		return n >= 3 && IS_CI(p[1], 'w') && IS_CI(p[2], 'w');
	default:
		return false;
	}
}

#define STARTS_MAX 256 /* match starts gathered per region */

/* \s of PCRE2 in byte mode: space, \t \n \v \f \r */
static bool
is_pcre_space(uint8_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Adds start to the list if a literal begins there; false if it is full. */
static bool
start_add(size_t *starts, size_t *n, const uint8_t *s, size_t len, size_t start)
{
	if (!may_start(s + start, len - start))
		return true;
	if (*n == STARTS_MAX)
		return false;
	starts[(*n)++] = start;
	return true;
}

/*
 * Every offset of s[0..len) where a match can begin, ascending.  Each
 * alternative has a pivot a few bytes after its start, which memchr finds
 * fast: "://" after the scheme, '.' after "www" and up to 3 digits, '='
 * after "href" and blanks.  Returns how many, or -1 if more than
 * STARTS_MAX (the caller then looks at every byte).
 */
static long
gather_starts(const uint8_t *s, size_t len, size_t *starts)
{
	const uint8_t *p, *end = s + len;
	size_t n = 0, i, j, k, t;

	for (p = s; (p = memchr(p, ':', (size_t)(end - p))) != NULL; p++) {
		i = (size_t)(p - s);
		if (len - i < 3 || p[1] != '/' || p[2] != '/')
			continue;
		for (k = 5; k >= 3; k--) /* https, http, ftp */
			if (i >= k && !start_add(starts, &n, s, len, i - k))
				return -1;
	}
	for (p = s; (p = memchr(p, '.', (size_t)(end - p))) != NULL; p++) {
		i = (size_t)(p - s);
		for (j = i;
		     j > 0 && i - j < 4 && s[j - 1] >= '0' && s[j - 1] <= '9';
		     j--)
			;
		if (i - j <= 3 && j >= 3 &&
		    !start_add(starts, &n, s, len, j - 3))
			return -1;
	}
	for (p = s; (p = memchr(p, '=', (size_t)(end - p))) != NULL; p++) {
		for (j = (size_t)(p - s); j > 0 && is_pcre_space(s[j - 1]); j--)
			;
		if (j >= 4 && !start_add(starts, &n, s, len, j - 4))
			return -1;
	}
	/* three ascending runs: an insertion sort is about linear */
	for (i = 1; i < n; i++) {
		t = starts[i];
		for (j = i; j > 0 && starts[j - 1] > t; j--)
			starts[j] = starts[j - 1];
		starts[j] = t;
	}
	return (long)n;
}

/*
 * Reports the hosts in s[0..len).  drop_at_end: s was cut off, so a host
 * that reaches its end may be truncated and is not reported.
 */
static void
scan_region(struct uribl_extractor *x, const uint8_t *s, size_t len,
    bool drop_at_end)
{
	const struct uribl_patterns *pat = x->pat;
	PCRE2_SIZE off = 0, *ov;
	size_t starts[STARTS_MAX];
	long i, n;
	int rc;

	/* a host has a dot, maybe %-escaped: without either, nothing here */
	if (memchr(s, '.', len) == NULL && memchr(s, '%', len) == NULL)
		return;
	n = pat->prefilter ? gather_starts(s, len, starts) : -1;
	/*
	 * The unanchored search is an anchored attempt at each offset in
	 * turn: make only those where a match can begin.  Same matches,
	 * without the regex engine stepping over every byte.
	 */
	for (i = 0; i < n && !x->stopped; i++) {
		if (starts[i] < off || (i > 0 && starts[i] == starts[i - 1]))
			continue;
		rc = pcre2_match(pat->anchored, (PCRE2_SPTR)s, len, starts[i],
		    0, x->md, pat->mctx);
		if (rc == PCRE2_ERROR_NOMATCH)
			continue;
		if (rc <= 0)
			return; /* a limit: the rest is lost */
		report_match(x, s, len, drop_at_end, rc);
		ov = pcre2_get_ovector_pointer(x->md);
		off = ov[1] > starts[i] ? ov[1] : starts[i] + 1;
	}
	if (n >= 0)
		return;
	while (off < len && !x->stopped) {
		rc = pcre2_match(pat->code, (PCRE2_SPTR)s, len, off, 0, x->md,
		    pat->mctx);
		if (rc <= 0)
			break; /* no match, or a limit: the rest is lost */
		report_match(x, s, len, drop_at_end, rc);
		ov = pcre2_get_ovector_pointer(x->md);
		off = ov[1] > off ? ov[1] : off + 1;
	}
}

/* Where to cut a full window: after it nothing may continue a URI. */
static size_t
window_cut(const uint8_t *w, size_t n)
{
	const uint8_t *nl;
	size_t i;

	/* w[0] may be the delimiter the window was last cut at */
	nl = memrchr(w + 1, '\n', n - 1);
	if (nl != NULL)
		return (size_t)(nl - w);
	for (i = n; i-- > 1;)
		if (w[i] == ' ' || w[i] == '\t' || w[i] == '\r')
			return i;
	for (i = n; i-- > 1;)
		if (w[i] == '>')
			return i;
	return 0;
}

enum scan_mode {
	SCAN_FULL,   /* the window is full: scan up to its cut */
	SCAN_FINAL,  /* the text ended: scan it all */
	SCAN_CAPPED, /* max_scan: scan it all, the end may be cut off */
};

static void
scan_window(struct uribl_extractor *x, enum scan_mode mode)
{
	size_t cut;

	cut = mode == SCAN_FULL ? window_cut(x->win, x->win_len) : 0;
	if (cut == 0) {
		scan_region(x, x->win, x->win_len, mode != SCAN_FINAL);
		x->win_len = 0;
		return;
	}
	/* The delimiter at cut starts the next window (for lookbehinds). */
	scan_region(x, x->win, cut, false);
	memmove(x->win, x->win + cut, x->win_len - cut);
	x->win_len -= cut;
}

/* Whether max_scan allows n more bytes; else marks the extractor capped. */
static bool
scan_allows(struct uribl_extractor *x, size_t n)
{
	if (x->max_scan == 0 || n <= x->max_scan - x->scanned)
		return true;
	x->capped = true;
	return false;
}

/* Decoded body text p[0..n), a block at a time, into the window. */
static void
scan_put_run(struct uribl_extractor *x, const uint8_t *p, size_t n)
{
	size_t take;

	while (n > 0 && !x->stopped) {
		take = SCAN_MAX - x->win_len;
		if (take > n)
			take = n;
		if (x->max_scan != 0 && take > x->max_scan - x->scanned)
			take = x->max_scan - x->scanned;
		if (take == 0) { /* max_scan reached: what is in is scanned */
			x->capped = true;
			scan_window(x, SCAN_CAPPED);
			x->stopped = true;
			return;
		}
		memcpy(x->win + x->win_len, p, take);
		x->win_len += take;
		x->scanned += take;
		p += take;
		n -= take;
		if (x->win_len == SCAN_MAX)
			scan_window(x, SCAN_FULL);
	}
}

/* One decoded byte of body text. */
static void
scan_put(struct uribl_extractor *x, uint8_t c)
{
	scan_put_run(x, &c, 1);
}

/* --- decoders ------------------------------------------------------------ */

/*
 * The value of an HTML character reference (name without '&' and ';'),
 * if it is ASCII; 0 otherwise (the text then stays as it was).  Numeric
 * references count without the ';' too, as browsers read them.
 */
static int
html_ref_value(const char *r, size_t n, bool semicolon)
{
	static const struct {
		const char *name;
		char c;
	} names[] = { { "amp", '&' }, { "lt", '<' }, { "gt", '>' },
		{ "quot", '"' }, { "apos", '\'' }, { "nbsp", ' ' },
		{ "period", '.' }, { "sol", '/' }, { "colon", ':' },
		{ "commat", '@' }, { "lowbar", '_' }, { "percnt", '%' },
		{ "quest", '?' }, { "num", '#' }, { "equals", '=' } };
	unsigned long v = 0;
	size_t i;
	int d;

	if (n >= 2 && r[0] == '#') {
		if (r[1] == 'x' || r[1] == 'X') {
			for (i = 2; i < n && (d = hex_value(r[i])) >= 0; i++)
				v = v * 16 + (unsigned long)d;
			if (i == 2)
				return 0;
		} else {
			for (i = 1; i < n && r[i] >= '0' && r[i] <= '9'; i++)
				v = v * 10 + (unsigned long)(r[i] - '0');
		}
		return i == n && v > 0 && v < 128 ? (int)v : 0;
	}
	if (!semicolon)
		return 0;
	for (i = 0; i < SL_NELEM(names); i++)
		if (strlen(names[i].name) == n &&
		    memcmp(names[i].name, r, n) == 0)
			return names[i].c;
	return 0;
}

/* Ends a character reference: its value, or its text as it was. */
static void
html_ref_end(struct uribl_extractor *x, bool semicolon)
{
	size_t i;
	int v;

	v = html_ref_value(x->ref + 1, x->ref_len - 1, semicolon);
	if (v > 0) {
		scan_put(x, (uint8_t)v);
	} else {
		for (i = 0; i < x->ref_len; i++)
			scan_put(x, (uint8_t)x->ref[i]);
		if (semicolon)
			scan_put(x, ';');
	}
	x->ref_len = 0;
}

static bool
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* One decoded byte of a text part, through the HTML stage if any. */
static void
text_byte(struct uribl_extractor *x, uint8_t c)
{
	if (!x->html) {
		scan_put(x, c);
		return;
	}
	if (x->ref_len == 0) {
		if (c == '&')
			x->ref[x->ref_len++] = '&';
		else
			scan_put(x, c);
		return;
	}
	if (c == ';') {
		html_ref_end(x, true);
		return;
	}
	if (x->ref_len < sizeof(x->ref) &&
	    (is_alnum(c) || (c == '#' && x->ref_len == 1))) {
		x->ref[x->ref_len++] = (char)c;
		return;
	}
	html_ref_end(x, false);
	text_byte(x, c);
}

static void
qp_byte(struct uribl_extractor *x, uint8_t c)
{
	int h;

	switch (x->qp) {
	case QP_TEXT:
		if (c == '=')
			x->qp = QP_EQ;
		else
			text_byte(x, c);
		return;
	case QP_EQ:
		if (hex_value(c) >= 0) {
			x->qp_first = c;
			x->qp = QP_HEX;
			return;
		}
		/* "=" at the end of a line is a soft line break; blanks
		 * may sit between it and the line end (RFC 2045 6.7 (3)) */
		if (c == ' ' || c == '\t' || c == '\r')
			return;
		x->qp = QP_TEXT;
		if (c == '\n')
			return;
		text_byte(x, '=');
		qp_byte(x, c);
		return;
	case QP_HEX:
		x->qp = QP_TEXT;
		if ((h = hex_value(c)) >= 0) {
			text_byte(x,
			    (uint8_t)(hex_value(x->qp_first) << 4 | h));
			return;
		}
		text_byte(x, '=');
		text_byte(x, x->qp_first);
		qp_byte(x, c);
		return;
	}
}

static bool
is_base64_char(int c)
{
	return is_alnum(c) || c == '+' || c == '/' || c == '=';
}

/*
 * Base64 for MIME: line breaks and other characters outside the alphabet
 * are skipped (RFC 2045 6.8); each quantum of four goes through the
 * strict decoder, so one that is not valid base64 is dropped alone.
 */
static void
b64_byte(struct uribl_extractor *x, uint8_t c)
{
	uint8_t out[3];
	long n, i;

	if (!is_base64_char(c))
		return;
	x->b64[x->b64_len++] = (char)c;
	if (x->b64_len < sizeof(x->b64))
		return;
	x->b64_len = 0;
	n = sl_base64_decode(x->b64, sizeof(x->b64), out, sizeof(out));
	for (i = 0; i < n; i++)
		text_byte(x, out[i]);
}

/*
 * How many bytes at p go to the scanner as they are: none inside a
 * quoted-printable escape, an HTML reference or base64; else up to the
 * next '=' (quoted-printable) or '&' (HTML).
 */
static size_t
plain_run(const struct uribl_extractor *x, const uint8_t *p, size_t n)
{
	bool qp = x->cte == CTE_QP;
	size_t i;

	if (x->cte == CTE_BASE64 || (qp && x->qp != QP_TEXT) ||
	    (x->html && x->ref_len > 0))
		return 0;
	if (!qp && !x->html)
		return n;
	for (i = 0; i < n; i++)
		if ((qp && p[i] == '=') || (x->html && p[i] == '&'))
			break;
	return i;
}

static void
decode(struct uribl_extractor *x, const uint8_t *p, size_t n)
{
	size_t i = 0, run;

	while (i < n && !x->stopped) {
		if ((run = plain_run(x, p + i, n - i)) > 0) {
			scan_put_run(x, p + i, run);
			i += run;
			continue;
		}
		switch (x->cte) {
		case CTE_QP:
			qp_byte(x, p[i]);
			break;
		case CTE_BASE64:
			b64_byte(x, p[i]);
			break;
		default:
			text_byte(x, p[i]);
			break;
		}
		i++;
	}
}

/* The text of a part ended: flush what the decoders hold. */
static void
text_end(struct uribl_extractor *x)
{
	if (x->state != ENT_TEXT)
		return;
	if (x->qp == QP_EQ)
		text_byte(x, '=');
	else if (x->qp == QP_HEX) {
		text_byte(x, '=');
		text_byte(x, x->qp_first);
	}
	if (x->ref_len > 0)
		html_ref_end(x, false);
	/* a line end, so that two parts' texts never run together */
	scan_put(x, '\n');
	x->state = ENT_SKIP;
}

/* --- MIME ---------------------------------------------------------------- */

static bool
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copies value[0..n) lower-cased into out (size bytes), truncating. */
static void
lower_copy(char *out, size_t size, const char *value, size_t n)
{
	size_t i;

	if (n >= size)
		n = size - 1;
	for (i = 0; i < n; i++)
		out[i] = (value[i] >= 'A' && value[i] <= 'Z')
		    ? (char)(value[i] + 'a' - 'A')
		    : value[i];
	out[n] = '\0';
}

/*
 * Content-Type: type/subtype *(";" param=value) (RFC 2045 5.1).  Keeps
 * the type and the boundary parameter (a quoted-string or a token);
 * a boundary longer than BOUNDARY_MAX is ignored.
 */
static void
parse_content_type(const char *v, struct entity *e)
{
	const char *name, *val;
	size_t n, nlen, vlen;
	char quoted[BOUNDARY_MAX + 1];

	while (is_blank(*v))
		v++;
	n = strcspn(v, " \t\r\n;(");
	lower_copy(e->type, sizeof(e->type), v, n);
	v += n;
	while ((v = strchr(v, ';')) != NULL) {
		v++;
		while (is_blank(*v))
			v++;
		name = v;
		nlen = strcspn(v, " \t\r\n=;");
		v += nlen;
		while (is_blank(*v))
			v++;
		if (*v != '=')
			continue;
		v++;
		while (is_blank(*v))
			v++;
		vlen = 0;
		if (*v == '"') {
			for (v++; *v != '\0' && *v != '"'; v++) {
				if (*v == '\\' && v[1] != '\0')
					v++;
				if (vlen < sizeof(quoted) - 1)
					quoted[vlen] = *v;
				vlen++;
			}
			if (*v == '"')
				v++;
			val = quoted;
		} else {
			val = v;
			vlen = strcspn(v, " \t\r\n;");
			v += vlen;
		}
		if (nlen == 8 && strncasecmp(name, "boundary", 8) == 0 &&
		    vlen > 0 && vlen <= BOUNDARY_MAX) {
			memcpy(e->boundary, val, vlen);
			e->boundary[vlen] = '\0';
		}
	}
}

static enum cte
parse_cte(const char *v)
{
	size_t n;

	while (is_blank(*v))
		v++;
	n = strcspn(v, " \t\r\n(");
	if (n == 16 && strncasecmp(v, "quoted-printable", n) == 0)
		return CTE_QP;
	if (n == 6 && strncasecmp(v, "base64", n) == 0)
		return CTE_BASE64;
	return CTE_IDENTITY;
}

static void
part_begin(struct uribl_extractor *x)
{
	memset(&x->part, 0, sizeof(x->part));
	x->phdr_len = 0;
	x->state = ENT_HEADERS;
}

/* An entity's header ended: what follows is its content. */
static void
entity_begin(struct uribl_extractor *x, const struct entity *e)
{
	if (strncmp(e->type, "multipart/", 10) == 0 && e->boundary[0] != '\0' &&
	    x->depth < DEPTH_MAX) {
		memcpy(x->bounds[x->depth++], e->boundary, sizeof(e->boundary));
		x->state = ENT_SKIP; /* the preamble */
		return;
	}
	if (strcmp(e->type, "message/rfc822") == 0) {
		part_begin(x); /* the enclosed message's header */
		return;
	}
	/*
	 * Text: text/plain, text/html, no type (RFC 2045 5.2: text/plain),
	 * and a multipart we cannot follow (no boundary, too deep) read as
	 * it stands.  Anything else is skipped.
	 */
	if (e->type[0] != '\0' && strcmp(e->type, "text/plain") != 0 &&
	    strcmp(e->type, "text/html") != 0 &&
	    strncmp(e->type, "multipart/", 10) != 0) {
		x->state = ENT_SKIP;
		return;
	}
	x->state = ENT_TEXT;
	x->cte = e->cte;
	x->html = strcmp(e->type, "text/html") == 0;
	x->qp = QP_TEXT;
	x->b64_len = 0;
	x->ref_len = 0;
}

/* A part's header field is complete in phdr. */
static void
part_header_field(struct uribl_extractor *x)
{
	char *colon, *name;
	size_t n;

	x->phdr[x->phdr_len] = '\0';
	x->phdr_len = 0;
	if ((colon = strchr(x->phdr, ':')) == NULL)
		return;
	for (name = x->phdr, n = (size_t)(colon - name);
	     n > 0 && is_blank(name[n - 1]); n--)
		;
	if (n == 12 && strncasecmp(name, "content-type", n) == 0)
		parse_content_type(colon + 1, &x->part);
	else if (n == 25 &&
	    strncasecmp(name, "content-transfer-encoding", n) == 0)
		x->part.cte = parse_cte(colon + 1);
}

static void
part_header_append(struct uribl_extractor *x, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && x->phdr_len < PHDR_MAX; i++)
		x->phdr[x->phdr_len++] =
		    p[i] == '\r' || p[i] == '\n' ? ' ' : (char)p[i];
}

static void
part_header_line(struct uribl_extractor *x, const uint8_t *p, size_t n,
    bool at_start)
{
	size_t k = n;

	if (!at_start) {
		part_header_append(x, p, n); /* a long line goes on */
		return;
	}
	while (k > 0 && (p[k - 1] == '\n' || p[k - 1] == '\r'))
		k--;
	if (k == 0) {
		if (x->phdr_len > 0)
			part_header_field(x);
		entity_begin(x, &x->part);
		return;
	}
	if (p[0] != ' ' && p[0] != '\t' && x->phdr_len > 0)
		part_header_field(x);
	part_header_append(x, p, n);
}

/*
 * A line that may be a boundary delimiter of an enclosing multipart
 * (RFC 2046 5.1.1: "--" boundary ["--"], then optional blanks): ends the
 * parts below it.  Returns true if it was one.
 */
static bool
boundary_line(struct uribl_extractor *x, const uint8_t *p, size_t n)
{
	const char *b;
	size_t i, bl;

	while (n > 0 && is_blank(p[n - 1]))
		n--;
	if (n < 3 || p[0] != '-' || p[1] != '-')
		return false;
	for (i = x->depth; i-- > 0;) {
		b = x->bounds[i];
		bl = strlen(b);
		if (n < 2 + bl || memcmp(p + 2, b, bl) != 0)
			continue;
		if (n == 2 + bl) {
			text_end(x);
			x->depth = i + 1;
			part_begin(x);
			return true;
		}
		if (n == 4 + bl && p[2 + bl] == '-' && p[3 + bl] == '-') {
			text_end(x);
			x->depth = i;
			x->state = ENT_SKIP; /* the epilogue */
			return true;
		}
	}
	return false;
}

/* The line (or piece of a long line) collected in x->line. */
static void
body_line(struct uribl_extractor *x, bool complete)
{
	size_t n = x->line_len;
	bool at_start = x->line_start;

	x->line_len = 0;
	x->line_start = complete;
	if (at_start && complete && x->depth > 0 &&
	    boundary_line(x, x->line, n))
		return;
	switch (x->state) {
	case ENT_HEADERS:
		part_header_line(x, x->line, n, at_start);
		break;
	case ENT_TEXT:
		decode(x, x->line, n);
		break;
	case ENT_SKIP:
		break;
	}
}

static void
body_begin(struct uribl_extractor *x)
{
	x->body_started = true;
	x->line_start = true;
	entity_begin(x, &x->top);
}

/* --- RFC 2047 ------------------------------------------------------------ */

/*
 * Length of the encoded-word "=?charset?B|Q?text?=" at s (RFC 2047 2),
 * or 0.  Sets *enc_r and the text's span.  RFC 2047 allows 75 bytes per
 * word; looking no further than WORD_MAX keeps a header of many broken
 * "=?" openings linear.
 */
static size_t
encoded_word(const char *s, char *enc_r, const char **text_r,
    size_t *text_len_r)
{
	const char *p, *end;
	size_t n;

	if (s[0] != '=' || s[1] != '?')
		return 0;
	for (n = 0; n <= CHARSET_MAX && s[2 + n] != '\0' && s[2 + n] != '?' &&
	     !is_blank(s[2 + n]);
	     n++)
		;
	p = s + 2 + n;
	if (n == 0 || n > CHARSET_MAX || p[0] != '?' || p[1] == '\0' ||
	    p[2] != '?')
		return 0;
	*enc_r = p[1];
	if (*enc_r != 'B' && *enc_r != 'b' && *enc_r != 'Q' && *enc_r != 'q')
		return 0;
	*text_r = p + 3;
	for (end = p + 3;
	     *end != '\0' && !is_blank(*end) && (size_t)(end - s) < WORD_MAX;
	     end++)
		if (end[0] == '?' && end[1] == '=')
			break;
	if (end[0] != '?' || end[1] != '=')
		return 0;
	*text_len_r = (size_t)(end - *text_r);
	return (size_t)(end + 2 - s);
}

/* Decodes one encoded-word's text into out; returns the bytes written. */
static size_t
encoded_text(char enc, const char *t, size_t n, char *out)
{
	uint8_t q[3];
	char quantum[4];
	size_t i, o = 0, k = 0;
	long m;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (enc == 'B' || enc == 'b') {
			if (!is_base64_char(t[i]))
				continue;
			quantum[k++] = t[i];
			if (k < sizeof(quantum))
				continue;
			k = 0;
			m = sl_base64_decode(quantum, sizeof(quantum), q,
			    sizeof(q));
			if (m > 0) {
				memcpy(out + o, q, (size_t)m);
				o += (size_t)m;
			}
		} else if (t[i] == '_') {
			out[o++] = ' ';
		} else if (t[i] == '=' && i + 2 < n &&
		    (hi = hex_value(t[i + 1])) >= 0 &&
		    (lo = hex_value(t[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = t[i];
		}
	}
	return o;
}

/*
 * Decodes the encoded-words of a header value into out (strlen(s) + 1
 * bytes is enough: decoding never lengthens), dropping the blanks
 * between two adjacent ones (RFC 2047 6.2), so a URI split across
 * encoded-words comes out whole.  The charset is not converted: host
 * names are ASCII.  Returns the length.
 */
static size_t
decode_rfc2047(const char *s, char *out)
{
	const char *text, *p;
	size_t o = 0, n, tlen;
	char enc;
	bool after_word = false;

	while (*s != '\0') {
		if ((n = encoded_word(s, &enc, &text, &tlen)) > 0) {
			o += encoded_text(enc, text, tlen, out + o);
			s += n;
			after_word = true;
			continue;
		}
		if (after_word && is_blank(*s)) {
			for (p = s; is_blank(*p); p++)
				;
			if (encoded_word(p, &enc, &text, &tlen) > 0) {
				s = p;
				continue;
			}
		}
		after_word = false;
		out[o++] = *s++;
	}
	out[o] = '\0';
	return o;
}

/* --- the API ------------------------------------------------------------- */

struct uribl_extractor *
uribl_extractor_new(const struct uribl_patterns *pat,
    const struct sl_strlist *headers, size_t max_scan, uribl_host_fn fn,
    void *arg)
{
	struct uribl_extractor *x;

	/* the buffers at the end need no zeroing: 20 kB a message */
	x = sl_xmalloc(sizeof(*x));
	memset(x, 0, offsetof(struct uribl_extractor, line));
	x->pat = pat;
	x->headers = headers;
	x->max_scan = max_scan;
	x->fn = fn;
	x->arg = arg;
	x->md = pcre2_match_data_create_from_pattern(pat->code, NULL);
	if (x->md == NULL) {
		/* PCRE2's allocation; as for sl_xmalloc, there is no
		 * going on without memory */
		fprintf(stderr, "uribl: out of memory (PCRE2 match data)\n");
		abort();
	}
	return x;
}

void
uribl_extractor_free(struct uribl_extractor **xp)
{
	struct uribl_extractor *x = *xp;

	if (x == NULL)
		return;
	pcre2_match_data_free(x->md);
	free(x);
	*xp = NULL;
}

void
uribl_extract_header(struct uribl_extractor *x, const char *name,
    const char *value)
{
	char sbuf[1024], *buf = sbuf;
	size_t n;
	bool cut;

	if (x->stopped || x->body_started)
		return;
	if (strcasecmp(name, "Content-Type") == 0)
		parse_content_type(value, &x->top);
	else if (strcasecmp(name, "Content-Transfer-Encoding") == 0)
		x->top.cte = parse_cte(value);
	if (!sl_strlist_has(x->headers, name))
		return;
	/* decoding never grows the text */
	if ((n = strlen(value)) >= sizeof(sbuf))
		buf = sl_xmalloc(n + 1);
	n = decode_rfc2047(value, buf);
	cut = !scan_allows(x, n);
	if (cut)
		n = x->max_scan - x->scanned;
	x->scanned += n;
	scan_region(x, (const uint8_t *)buf, n, cut);
	if (buf != sbuf)
		free(buf);
	if (cut)
		x->stopped = true;
}

void
uribl_extract_body(struct uribl_extractor *x, const uint8_t *p, size_t n)
{
	const uint8_t *nl;
	size_t k;

	if (x->stopped)
		return;
	if (!x->body_started)
		body_begin(x);
	while (n > 0 && !x->stopped) {
		nl = memchr(p, '\n', n);
		k = nl != NULL ? (size_t)(nl - p) + 1 : n;
		if (k > BODY_LINE_MAX - x->line_len)
			k = BODY_LINE_MAX - x->line_len;
		memcpy(x->line + x->line_len, p, k);
		x->line_len += k;
		p += k;
		n -= k;
		if (x->line[x->line_len - 1] == '\n')
			body_line(x, true);
		else if (x->line_len == BODY_LINE_MAX)
			body_line(x, false);
	}
}

void
uribl_extract_finish(struct uribl_extractor *x)
{
	if (x->stopped)
		return;
	if (x->body_started) {
		if (x->line_len > 0)
			body_line(x, true);
		text_end(x);
	}
	if (!x->stopped)
		scan_window(x, SCAN_FINAL);
	x->stopped = true;
}

bool
uribl_extract_scan_capped(const struct uribl_extractor *x)
{
	return x->capped;
}

size_t
uribl_extract_scanned(const struct uribl_extractor *x)
{
	return x->scanned;
}

/* --- the name to look up ------------------------------------------------- */

/*
 * Country-code second levels under which names are registered at the
 * third level.  A small list on purpose: the Public Suffix List has
 * thousands of entries and changes monthly; two_level_tlds= adds more.
 */
static const char *const builtin_suffixes[] = { "ac.il", "ac.in", "ac.jp",
	"ac.kr", "ac.nz", "ac.th", "ac.uk", "ac.za", "co.at", "co.id", "co.il",
	"co.in", "co.jp", "co.ke", "co.kr", "co.nz", "co.th", "co.uk", "co.za",
	"com.ar", "com.au", "com.br", "com.cn", "com.co", "com.cy", "com.ec",
	"com.eg", "com.es", "com.gr", "com.hk", "com.mt", "com.mx", "com.my",
	"com.ng", "com.pe", "com.ph", "com.pk", "com.pl", "com.ru", "com.sa",
	"com.sg", "com.tr", "com.tw", "com.ua", "com.uy", "com.ve", "com.vn",
	"edu.au", "edu.cn", "edu.hk", "edu.in", "edu.mx", "edu.sg", "edu.tw",
	"firm.in", "gen.in", "gob.mx", "go.id", "go.jp", "go.kr", "go.th",
	"gov.au", "gov.br", "gov.cn", "gov.hk", "gov.il", "gov.in", "gov.sg",
	"gov.tw", "gov.uk", "gov.za", "govt.nz", "idv.tw", "ind.in", "ltd.uk",
	"me.uk", "ne.jp", "ne.kr", "net.ar", "net.au", "net.br", "net.cn",
	"net.co", "net.hk", "net.il", "net.in", "net.mx", "net.my", "net.nz",
	"net.ph", "net.pk", "net.pl", "net.ru", "net.sa", "net.sg", "net.tr",
	"net.tw", "net.ua", "net.uk", "net.vn", "net.za", "nhs.uk", "or.at",
	"or.id", "or.jp", "or.kr", "or.th", "org.ar", "org.au", "org.br",
	"org.cn", "org.es", "org.hk", "org.il", "org.in", "org.mx", "org.my",
	"org.nz", "org.ph", "org.pk", "org.pl", "org.ru", "org.sa", "org.sg",
	"org.tr", "org.tw", "org.ua", "org.uk", "org.vn", "org.za", "plc.uk",
	"sch.uk", "web.id", "web.za" };

struct uribl_suffixes {
	char **items; /* lower case, sorted */
	size_t count;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "label.label" of [a-z0-9-] (any case); a final dot is allowed. */
static bool
is_two_labels(const char *s)
{
	size_t i, dots = 0, label = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return false;
			dots++;
			label = 0;
			continue;
		}
		if (!is_alnum(s[i]) && s[i] != '-')
			return false;
		if (++label > LABEL_MAX)
			return false;
	}
	return dots == 2 ? label == 0 : dots == 1 && label > 0;
}

struct uribl_suffixes *
uribl_suffixes_new(const struct sl_strlist *extra, const char **bad_r)
{
	struct uribl_suffixes *s;
	size_t i, n, len, nextra = extra != NULL ? extra->count : 0;
	char *item;

	for (i = 0; i < nextra; i++) {
		if (!is_two_labels(extra->items[i])) {
			*bad_r = extra->items[i];
			return NULL;
		}
	}
	n = SL_NELEM(builtin_suffixes);
	s = sl_xcalloc(1, sizeof(*s));
	s->items = sl_xcalloc(n + nextra, sizeof(*s->items));
	for (i = 0; i < n; i++)
		s->items[s->count++] = sl_xstrdup(builtin_suffixes[i]);
	for (i = 0; i < nextra; i++) {
		len = strlen(extra->items[i]);
		if (extra->items[i][len - 1] == '.')
			len--;
		item = sl_xmalloc(len + 1);
		lower_copy(item, len + 1, extra->items[i], len);
		s->items[s->count++] = item;
	}
	qsort(s->items, s->count, sizeof(*s->items), cmp_str);
	return s;
}

void
uribl_suffixes_free(struct uribl_suffixes **sp)
{
	struct uribl_suffixes *s = *sp;
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->count; i++)
		free(s->items[i]);
	free(s->items);
	free(s);
	*sp = NULL;
}

static bool
suffix_has(const struct uribl_suffixes *s, const char *name)
{
	return bsearch(&name, s->items, s->count, sizeof(*s->items), cmp_str) !=
	    NULL;
}

/* The label before p (which follows a '.' in host), or host itself. */
static const char *
label_before(const char *host, const char *p)
{
	p--; /* the dot */
	while (p > host && p[-1] != '.')
		p--;
	return p;
}

enum uribl_name_kind
uribl_query_name(const struct uribl_suffixes *s, const char *host, char *buf,
    size_t size)
{
	unsigned int oct[4];
	const char *last, *name;

	if (ipv4_parse(host, oct) == 0) {
		if (!put_quad(buf, size, oct[3], oct[2], oct[1], oct[0]))
			return URIBL_NAME_NONE;
		return URIBL_NAME_IP;
	}
	last = strrchr(host, '.');
	if (last == NULL || last == host || last[1] == '\0')
		return URIBL_NAME_NONE;
	name = label_before(host, last + 1);
	if (suffix_has(s, name)) {
		if (name == host)
			return URIBL_NAME_NONE; /* the suffix itself */
		name = label_before(host, name);
	}
	if (strlen(name) >= size)
		return URIBL_NAME_NONE;
	memcpy(buf, name, strlen(name) + 1);
	return URIBL_NAME_DOMAIN;
}
