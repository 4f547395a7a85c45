/*
 * smtpparse.c - SMTP command-line, path and ESMTP parameter parsing
 * (RFC 5321 4.1.1, 4.1.2, 4.5.3.1; RFC 6531 SMTPUTF8; RFC 3030 BDAT).
 *
 * Whole-line parsers, called by the SMTP front end on a line it has already
 * bounded and checked for CR, LF and NUL.  A path is first delimited
 * (structure errors are 501), then checked against the grammar over
 * [pos, end) with a cursor, and only then copied into fixed buffers that
 * the 256-octet path limit keeps from overflowing.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"
#include "smtpparse.h"

#define LABEL_MAX 63 /* RFC 1035 2.3.4 */

/* A bounded view of the text between '<' and '>'. */
struct cursor {
	const char *pos, *end;
};

static const struct {
	const char *name;
	enum sl_smtp_verb verb;
} verbs[] = {
	{ "HELO", SL_VERB_HELO },
	{ "EHLO", SL_VERB_EHLO },
	{ "MAIL", SL_VERB_MAIL },
	{ "RCPT", SL_VERB_RCPT },
	{ "DATA", SL_VERB_DATA },
	{ "BDAT", SL_VERB_BDAT },
	{ "RSET", SL_VERB_RSET },
	{ "NOOP", SL_VERB_NOOP },
	{ "QUIT", SL_VERB_QUIT },
	{ "VRFY", SL_VERB_VRFY },
	{ "EXPN", SL_VERB_EXPN },
	{ "HELP", SL_VERB_HELP },
	{ "STARTTLS", SL_VERB_STARTTLS },
	{ "AUTH", SL_VERB_AUTH },
	{ "XCLIENT", SL_VERB_XCLIENT },
};

/* ASCII only: the C library's versions follow the locale. */
static int
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
	return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z');
}

/*
 * true if s starts with the n bytes of w, ignoring ASCII case.  s may be
 * shorter (it is NUL-terminated): the first mismatch stops the scan.
 */
static bool
prefix_eq(const char *s, const char *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (lower((unsigned char)s[i]) != lower((unsigned char)w[i]))
			return false;
	return true;
}

enum sl_smtp_verb
sl_smtp_parse_verb(const char *line, size_t len, const char **arg_r)
{
	const char *sp;
	size_t i, wlen;

	sp = memchr(line, ' ', len);
	wlen = sp != NULL ? (size_t)(sp - line) : len;
	*arg_r = sp != NULL ? sp + 1 : line + len;
	for (i = 0; i < SL_NELEM(verbs); i++) {
		if (strlen(verbs[i].name) == wlen &&
		    prefix_eq(line, verbs[i].name, wlen))
			return verbs[i].verb;
	}
	return SL_VERB_UNKNOWN;
}

/* RFC 3629 4: continuation count and the range of the second byte. */
static int
utf8_lead(uint8_t c, size_t *n_r, uint8_t *lo_r, uint8_t *hi_r)
{
	*lo_r = 0x80;
	*hi_r = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		*n_r = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		*n_r = 2;
		if (c == 0xe0)
			*lo_r = 0xa0; /* overlong */
		else if (c == 0xed)
			*hi_r = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		*n_r = 3;
		if (c == 0xf0)
			*lo_r = 0x90; /* overlong */
		else if (c == 0xf4)
			*hi_r = 0x8f; /* above U+10FFFF */
	} else {
		return -1; /* continuation, C0, C1 (overlong) or F5..FF */
	}
	return 0;
}

bool
sl_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i, k, n;
	uint8_t lo, hi;

	i = 0;
	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (utf8_lead(s[i], &n, &lo, &hi) == -1 || len - i <= n)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += n + 1;
	}
	return true;
}

/* RFC 5321 4.1.3: Snum 3("." Snum), Snum 1*3DIGIT up to 255. */
static bool
ipv4_valid(const char *s, size_t len)
{
	size_t i, digits, parts;
	unsigned int v;

	digits = 0;
	parts = 1;
	v = 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (digits == 0 || ++parts > 4)
				return false;
			digits = 0;
			v = 0;
		} else if (is_digit((unsigned char)s[i]) && digits < 3) {
			v = v * 10 + (unsigned int)(s[i] - '0');
			if (v > 255)
				return false;
			digits++;
		} else {
			return false;
		}
	}
	return parts == 4 && digits > 0;
}

/*
 * "[1.2.3.4]" or "[IPv6:...]" (RFC 5321 4.1.3).  General-address-literal
 * is refused: no other tag is registered.
 */
static bool
literal_valid(const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr a6;

	if (len < 2 || s[0] != '[' || s[len - 1] != ']')
		return false;
	s++;
	len -= 2;
	if (len < 5 || !prefix_eq(s, "IPv6:", 5))
		return ipv4_valid(s, len);
	s += 5;
	len -= 5;
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, &a6) == 1;
}

/*
 * Let-dig, hyphen, and underscore (lenient: _dmarc-style names show up in
 * HELO); 8-bit bytes for U-labels (RFC 6531 3.3) when utf8.
 */
static bool
is_label_char(unsigned char c, bool utf8)
{
	if (c >= 0x80)
		return utf8;
	return is_alnum(c) || c == '-' || c == '_';
}

/* Dot-separated labels, none empty, longer than 63 or hyphen-edged. */
static bool
name_valid(const char *s, size_t len, bool utf8)
{
	size_t i, label;

	if (len == 0 || len > SL_SMTP_DOMAIN_MAX)
		return false;
	label = 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (!is_label_char((unsigned char)s[i], utf8) ||
		    (s[i] == '-' && label == 0) || ++label > LABEL_MAX) {
			return false;
		}
	}
	return label != 0 && s[len - 1] != '-';
}

static bool
domain_valid(const char *s, size_t len, bool utf8)
{
	if (len > 0 && s[0] == '[')
		return len <= SL_SMTP_DOMAIN_MAX && literal_valid(s, len);
	return name_valid(s, len, utf8);
}

bool
sl_smtp_helo_valid(const char *arg)
{
	size_t len;

	len = strnlen(arg, SL_SMTP_DOMAIN_MAX + 1);
	return domain_valid(arg, len, false);
}

int
sl_smtp_parse_bdat(const char *arg, uint64_t *size_r, bool *last_r)
{
	unsigned long long v;
	char *end;
	bool last;

	/* strtoull would skip spaces and take a sign. */
	if (!is_digit((unsigned char)arg[0]))
		return -1;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || v > INT64_MAX)
		return -1;
	if (*end == '\0')
		last = false;
	else if (end[0] == ' ' && prefix_eq(end + 1, "LAST", 4) &&
	    end[5] == '\0')
		last = true;
	else
		return -1;
	*size_r = v;
	*last_r = last;
	return 0;
}

const char *
sl_smtp_param(const struct sl_smtp_path *path, const char *key)
{
	const char *p;
	size_t i, klen;

	klen = strlen(key);
	for (i = 0; i < path->nparams; i++) {
		p = path->params[i];
		if (!prefix_eq(p, key, klen))
			continue;
		if (p[klen] == '\0')
			return p + klen;
		if (p[klen] == '=')
			return p + klen + 1;
	}
	return NULL;
}

static int
fail(struct sl_smtp_error *err_r, int code, const char *enh, const char *text)
{
	err_r->code = code;
	err_r->enh = enh;
	err_r->text = text;
	return -1;
}

static int
fail_syntax(struct sl_smtp_error *err_r, bool is_mail)
{
	return fail(err_r, 501, "5.5.4",
	    is_mail ? "Syntax: MAIL FROM:<address> [parameters]"
	            : "Syntax: RCPT TO:<address> [parameters]");
}

static int
fail_addr(struct sl_smtp_error *err_r, bool is_mail)
{
	return is_mail
	    ? fail(err_r, 553, "5.1.7", "Bad sender address syntax")
	    : fail(err_r, 553, "5.1.3", "Bad recipient address syntax");
}

/*
 * Returns the '>' closing a path whose text starts at p, or NULL.  A '>'
 * inside a quoted local part does not count; the local part starts at p
 * or, after a source route, past its ':' (route domains hold no ':').
 */
static char *
path_end(char *p)
{
	if (*p == '@') {
		p += strcspn(p, ":>");
		if (*p != ':')
			return *p == '>' ? p : NULL;
		p++;
	}
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\0')
				return NULL;
			if (*p == '\\' && p[1] != '\0')
				p++;
		}
		p++;
	}
	return strchr(p, '>');
}

/* RFC 5321 4.1.2: esmtp-keyword ["=" esmtp-value], on a NUL-ended word. */
static bool
param_valid(const char *p)
{
	if (!is_alnum((unsigned char)*p))
		return false;
	for (p++; is_alnum((unsigned char)*p) || *p == '-'; p++)
		continue;
	if (*p == '\0')
		return true;
	if (*p != '=' || p[1] == '\0')
		return false;
	for (p++; *p != '\0'; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126 ||
		    *p == '=')
			return false;
	return true;
}

/* Splits what follows '>' into path_r->params, NUL-ending each one. */
static int
parse_params(char *p, struct sl_smtp_path *path_r, bool is_mail,
    struct sl_smtp_error *err_r)
{
	char *sp;

	if (*p != '\0' && *p != ' ')
		return fail_syntax(err_r, is_mail);
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		if (path_r->nparams == SL_SMTP_MAX_PARAMS)
			return fail(err_r, 501, "5.5.4", "Too many parameters");
		sp = strchr(p, ' ');
		if (sp != NULL)
			*sp = '\0';
		if (!param_valid(p))
			return fail(err_r, 501, "5.5.4", "Malformed parameter");
		path_r->params[path_r->nparams++] = p;
		if (sp == NULL)
			return 0;
		p = sp + 1;
	}
}

/* RFC 6531 3.3: 8-bit bytes only with SMTPUTF8, and only as UTF-8. */
static int
check_8bit(const char *s, size_t len, bool allowed, struct sl_smtp_path *path_r,
    struct sl_smtp_error *err_r)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			break;
	if (i == len)
		return 0;
	if (!allowed)
		return fail(err_r, 553, "5.6.7",
		    "Non-ASCII address requires SMTPUTF8");
	if (!sl_utf8_valid((const uint8_t *)s, len))
		return fail(err_r, 553, "5.6.7", "Invalid UTF-8 in address");
	path_r->utf8 = true;
	return 0;
}

/* RFC 5321 4.1.2: A-d-l ":" with At-domain = "@" Domain (no literals). */
static int
parse_route(struct cursor *c, struct sl_smtp_path *path_r)
{
	const char *sep;

	if (c->pos == c->end || *c->pos != '@')
		return 0;
	do {
		c->pos++; /* '@' */
		sep = c->pos;
		while (sep < c->end && *sep != ',' && *sep != ':')
			sep++;
		if (sep == c->end ||
		    !name_valid(c->pos, (size_t)(sep - c->pos), path_r->utf8))
			return -1;
		c->pos = sep + 1;
	} while (*sep == ',' && c->pos < c->end && *c->pos == '@');
	if (*sep != ':')
		return -1;
	path_r->source_route = true;
	return 0;
}

/* RFC 5321 4.1.2 atext, plus UTF8-non-ascii (RFC 6531 3.3). */
static bool
is_atext(unsigned char c, bool utf8)
{
	if (c >= 0x80)
		return utf8;
	return is_alnum(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * Quoted-string: qtextSMTP (8-bit too, RFC 6531 3.3) or quoted-pairSMTP
 * (ASCII only) up to the closing '"'.
 */
static int
parse_quoted(struct cursor *c, struct sl_smtp_path *path_r)
{
	unsigned char ch;
	bool pair;

	for (c->pos++; c->pos < c->end && *c->pos != '"'; c->pos++) {
		pair = *c->pos == '\\';
		if (pair && ++c->pos == c->end)
			return -1;
		ch = (unsigned char)*c->pos;
		if (ch >= 0x80 ? (pair || !path_r->utf8)
		               : (ch < 32 || ch > 126))
			return -1;
		if (ch == '@' || ch == '%' || ch == '!')
			path_r->routed_local = true;
	}
	if (c->pos == c->end)
		return -1;
	c->pos++;
	path_r->quoted_local = true;
	return 0;
}

/* Dot-string = Atom *("." Atom). */
static int
parse_dot_string(struct cursor *c, struct sl_smtp_path *path_r)
{
	const char *atom;

	for (;;) {
		atom = c->pos;
		while (c->pos < c->end &&
		    is_atext((unsigned char)*c->pos, path_r->utf8)) {
			if (*c->pos == '%' || *c->pos == '!')
				path_r->routed_local = true;
			c->pos++;
		}
		if (c->pos == atom)
			return -1;
		if (c->pos == c->end || *c->pos != '.')
			return 0;
		c->pos++;
	}
}

static int
copy_str(char *dst, size_t size, const char *s, size_t len)
{
	if (len >= size)
		return -1;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

static int
parse_local(struct cursor *c, struct sl_smtp_path *path_r)
{
	const char *start;
	int rc;

	start = c->pos;
	if (c->pos < c->end && *c->pos == '"')
		rc = parse_quoted(c, path_r);
	else
		rc = parse_dot_string(c, path_r);
	if (rc == -1 || (size_t)(c->pos - start) > SL_SMTP_LOCAL_MAX)
		return -1;
	return copy_str(path_r->local, sizeof(path_r->local), start,
	    (size_t)(c->pos - start));
}

/* RFC 5321 4.1.1.3: RCPT TO:<Postmaster>, any case, no route, no domain. */
static bool
is_postmaster(const struct sl_smtp_path *path_r)
{
	return !path_r->source_route && !path_r->quoted_local &&
	    strlen(path_r->local) == 10 &&
	    prefix_eq(path_r->local, "postmaster", 10);
}

/* Joins local "@" domain into addr ("@" domain left out when empty). */
static int
make_addr(struct sl_smtp_path *path_r)
{
	size_t llen, dlen;

	llen = strlen(path_r->local);
	dlen = strlen(path_r->domain);
	if (llen + dlen + 2 > sizeof(path_r->addr))
		return -1;
	memcpy(path_r->addr, path_r->local, llen);
	if (dlen > 0) {
		path_r->addr[llen++] = '@';
		memcpy(path_r->addr + llen, path_r->domain, dlen);
	}
	path_r->addr[llen + dlen] = '\0';
	return 0;
}

/* The text between '<' and '>': "", or [A-d-l ":"] Mailbox. */
static int
parse_mailbox(const char *s, const char *end, bool is_mail,
    struct sl_smtp_path *path_r)
{
	struct cursor c = { s, end };

	if (c.pos == c.end) {
		path_r->null_path = true;
		return is_mail ? 0 : -1;
	}
	if (parse_route(&c, path_r) == -1 || parse_local(&c, path_r) == -1)
		return -1;
	if (c.pos == c.end) {
		path_r->postmaster = !is_mail && is_postmaster(path_r);
		return path_r->postmaster ? make_addr(path_r) : -1;
	}
	if (*c.pos != '@')
		return -1;
	c.pos++;
	if (!domain_valid(c.pos, (size_t)(c.end - c.pos), path_r->utf8) ||
	    copy_str(path_r->domain, sizeof(path_r->domain), c.pos,
	        (size_t)(c.end - c.pos)) == -1)
		return -1;
	return make_addr(path_r);
}

static int
parse_path(char *arg, bool is_mail, bool allow_utf8,
    struct sl_smtp_path *path_r, struct sl_smtp_error *err_r)
{
	const char *kw;
	char *lt, *gt;
	size_t kwlen;
	bool utf8_ok;

	kw = is_mail ? "FROM:" : "TO:";
	kwlen = strlen(kw);
	if (!prefix_eq(arg, kw, kwlen))
		return fail_syntax(err_r, is_mail);
	lt = arg + kwlen;
	if (*lt == ' ')
		lt++;
	if (*lt != '<' || (gt = path_end(lt + 1)) == NULL)
		return fail_syntax(err_r, is_mail);
	if ((size_t)(gt - lt) + 1 > SL_SMTP_PATH_MAX)
		return fail(err_r, 501, "5.5.4", "Path too long");
	if (parse_params(gt + 1, path_r, is_mail, err_r) == -1)
		return -1;
	utf8_ok =
	    is_mail ? sl_smtp_param(path_r, "SMTPUTF8") != NULL : allow_utf8;
	if (check_8bit(lt + 1, (size_t)(gt - lt - 1), utf8_ok, path_r, err_r) ==
	    -1)
		return -1;
	if (parse_mailbox(lt + 1, gt, is_mail, path_r) == -1)
		return fail_addr(err_r, is_mail);
	return 0;
}

int
sl_smtp_parse_path(char *arg, bool is_mail, bool allow_utf8,
    struct sl_smtp_path *path_r, struct sl_smtp_error *err_r)
{
	memset(path_r, 0, sizeof(*path_r));
	if (parse_path(arg, is_mail, allow_utf8, path_r, err_r) == -1) {
		memset(path_r, 0, sizeof(*path_r));
		return -1;
	}
	return 0;
}
