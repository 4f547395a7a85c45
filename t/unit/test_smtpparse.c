/*
 * test_smtpparse.c - shared/smtpparse.c: tables of valid and invalid
 * MAIL/RCPT arguments with their parse or reply, boundary lengths (local
 * part 64/65, label 63/64, path 256/257, domain 255/256, 16/17 params),
 * UTF-8 edge cases, every verb, HELO and BDAT arguments.  Inputs are
 * copied into buffers of exactly their size so ASan sees any over-read.
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
#include "smtpparse.h"

#define F_NULL 0x01       /* null_path */
#define F_ROUTE 0x02      /* source_route */
#define F_QUOTED 0x04     /* quoted_local */
#define F_ROUTED 0x08     /* routed_local */
#define F_UTF8 0x10       /* utf8 */
#define F_POSTMASTER 0x20 /* postmaster */

/* Which command and whether 8-bit is allowed (allow_utf8). */
enum mode {
	M,  /* MAIL */
	MU, /* MAIL, allow_utf8 (which MAIL ignores) */
	R,  /* RCPT */
	RU, /* RCPT after MAIL ... SMTPUTF8 */
};

struct path_ok {
	const char *arg;
	enum mode mode;
	const char *addr, *local, *domain;
	unsigned int flags;
	const char *params; /* joined by one space */
};

static const struct path_ok path_ok[] = {
	{ "FROM:<user@example.com>", M, "user@example.com", "user",
	    "example.com", 0, "" },
	{ "from:<user@example.com>", M, "user@example.com", "user",
	    "example.com", 0, "" },
	{ "FrOm:<User@Example.COM>", M, "User@Example.COM", "User",
	    "Example.COM", 0, "" },
	{ "FROM: <user@example.com>", M, "user@example.com", "user",
	    "example.com", 0, "" },
	{ "FROM:<>", M, "", "", "", F_NULL, "" },
	{ "FROM:<> SIZE=0", M, "", "", "", F_NULL, "SIZE=0" },
	{ "FROM: <> BODY=8BITMIME", MU, "", "", "", F_NULL, "BODY=8BITMIME" },
	{ "FROM:<user@example.com> SIZE=1000 BODY=8BITMIME", M,
	    "user@example.com", "user", "example.com", 0,
	    "SIZE=1000 BODY=8BITMIME" },
	{ "FROM:<user@example.com>  SIZE=1   RET=HDRS  ", M, "user@example.com",
	    "user", "example.com", 0, "SIZE=1 RET=HDRS" },
	{ "FROM:<user@example.com> ", M, "user@example.com", "user",
	    "example.com", 0, "" },
	{ "FROM:<u@example.com> AUTH=<> ENVID=a+2Bb/c X-9-Y", M,
	    "u@example.com", "u", "example.com", 0,
	    "AUTH=<> ENVID=a+2Bb/c X-9-Y" },
	{ "FROM:<a.b.c@example.com>", M, "a.b.c@example.com", "a.b.c",
	    "example.com", 0, "" },
	{ "FROM:<#$&'*+-/=?^_`{|}~@example.com>", M,
	    "#$&'*+-/=?^_`{|}~@example.com", "#$&'*+-/=?^_`{|}~", "example.com",
	    0, "" },
	{ "FROM:<user%other.example@example.com>", M,
	    "user%other.example@example.com", "user%other.example",
	    "example.com", F_ROUTED, "" },
	{ "FROM:<host!user@example.com>", M, "host!user@example.com",
	    "host!user", "example.com", F_ROUTED, "" },
	{ "FROM:<\"john doe\"@example.com>", M, "\"john doe\"@example.com",
	    "\"john doe\"", "example.com", F_QUOTED, "" },
	{ "FROM:<\"a\\\"b\\\\c\"@example.com>", M,
	    "\"a\\\"b\\\\c\"@example.com", "\"a\\\"b\\\\c\"", "example.com",
	    F_QUOTED, "" },
	{ "FROM:<\"a>b\"@example.com> SIZE=1", M, "\"a>b\"@example.com",
	    "\"a>b\"", "example.com", F_QUOTED, "SIZE=1" },
	{ "FROM:<\"user@other\"@example.com>", M, "\"user@other\"@example.com",
	    "\"user@other\"", "example.com", F_QUOTED | F_ROUTED, "" },
	{ "FROM:<\"a%b\"@example.com>", M, "\"a%b\"@example.com", "\"a%b\"",
	    "example.com", F_QUOTED | F_ROUTED, "" },
	{ "FROM:<\"\"@example.com>", M, "\"\"@example.com", "\"\"",
	    "example.com", F_QUOTED, "" },
	{ "FROM:<@a.example,@b.example:user@c.example>", M, "user@c.example",
	    "user", "c.example", F_ROUTE, "" },
	{ "FROM:<@a.example:\"x:y\"@c.example>", M, "\"x:y\"@c.example",
	    "\"x:y\"", "c.example", F_ROUTE | F_QUOTED, "" },
	{ "FROM:<user@[192.0.2.1]>", M, "user@[192.0.2.1]", "user",
	    "[192.0.2.1]", 0, "" },
	{ "FROM:<user@[0.00.000.255]>", M, "user@[0.00.000.255]", "user",
	    "[0.00.000.255]", 0, "" },
	{ "FROM:<user@[IPv6:2001:db8::1]>", M, "user@[IPv6:2001:db8::1]",
	    "user", "[IPv6:2001:db8::1]", 0, "" },
	{ "FROM:<user@[ipv6:::ffff:192.0.2.1]>", M,
	    "user@[ipv6:::ffff:192.0.2.1]", "user", "[ipv6:::ffff:192.0.2.1]",
	    0, "" },
	{ "FROM:<user@_dmarc.ex_ample.com>", M, "user@_dmarc.ex_ample.com",
	    "user", "_dmarc.ex_ample.com", 0, "" },
	{ "FROM:<user@xn--bcher-kva.example>", M, "user@xn--bcher-kva.example",
	    "user", "xn--bcher-kva.example", 0, "" },
	{ "FROM:<user@localhost>", M, "user@localhost", "user", "localhost", 0,
	    "" },
	{ "FROM:<\xc3\xbcser@ex\xc3\xa4mple.com> SMTPUTF8", M,
	    "\xc3\xbcser@ex\xc3\xa4mple.com", "\xc3\xbcser",
	    "ex\xc3\xa4mple.com", F_UTF8, "SMTPUTF8" },
	{ "FROM:<\xe2\x82\xac@\xf0\x9f\x98\x80.example> BODY=8BITMIME "
	  "smtputf8",
	    M, "\xe2\x82\xac@\xf0\x9f\x98\x80.example", "\xe2\x82\xac",
	    "\xf0\x9f\x98\x80.example", F_UTF8, "BODY=8BITMIME smtputf8" },
	{ "FROM:<\"\xc3\xbc x\"@example.com> SMTPUTF8", M,
	    "\"\xc3\xbc x\"@example.com", "\"\xc3\xbc x\"", "example.com",
	    F_QUOTED | F_UTF8, "SMTPUTF8" },
	{ "FROM:<user@example.com> SMTPUTF8", M, "user@example.com", "user",
	    "example.com", 0, "SMTPUTF8" },
	{ "TO:<user@example.com>", R, "user@example.com", "user", "example.com",
	    0, "" },
	{ "to: <user@example.com>", R, "user@example.com", "user",
	    "example.com", 0, "" },
	{ "TO:<user@example.com> NOTIFY=SUCCESS,FAILURE "
	  "ORCPT=rfc822;user@example.com",
	    R, "user@example.com", "user", "example.com", 0,
	    "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@example.com" },
	{ "TO:<postmaster>", R, "postmaster", "postmaster", "", F_POSTMASTER,
	    "" },
	{ "To:<PostMaster>", R, "PostMaster", "PostMaster", "", F_POSTMASTER,
	    "" },
	{ "TO:<postmaster@example.com>", R, "postmaster@example.com",
	    "postmaster", "example.com", 0, "" },
	{ "TO:<@a.example:user@c.example>", R, "user@c.example", "user",
	    "c.example", F_ROUTE, "" },
	{ "TO:<\xc3\xbcser@example.com>", RU, "\xc3\xbcser@example.com",
	    "\xc3\xbcser", "example.com", F_UTF8, "" },
	{ "TO:<user@example.com>", RU, "user@example.com", "user",
	    "example.com", 0, "" },
};

struct path_bad {
	const char *arg;
	enum mode mode;
	int code;
	const char *enh;
};

static const struct path_bad path_bad[] = {
	/* structure: 501 5.5.4 */
	{ "", M, 501, "5.5.4" },
	{ "FROM", M, 501, "5.5.4" },
	{ "FROM <a@b.example>", M, 501, "5.5.4" },
	{ "FROM :<a@b.example>", M, 501, "5.5.4" },
	{ "FROM;<a@b.example>", M, 501, "5.5.4" },
	{ "FROM:a@b.example", M, 501, "5.5.4" },
	{ "FROM:", M, 501, "5.5.4" },
	{ "FROM: ", M, 501, "5.5.4" },
	{ "FROM:<a@b.example", M, 501, "5.5.4" },
	{ "FROM:a@b.example>", M, 501, "5.5.4" },
	{ "FROM:  <a@b.example>", M, 501, "5.5.4" },
	{ "FROM:\t<a@b.example>", M, 501, "5.5.4" },
	{ "FROM:<\"a@b.example>", M, 501, "5.5.4" },
	{ "FROM:<\"a\\\"@b.example>", M, 501, "5.5.4" },
	{ "FROM:<@a.example:\"x>", M, 501, "5.5.4" },
	{ "TO:<a@b.example>", M, 501, "5.5.4" },
	{ "FROM:<a@b.example>", R, 501, "5.5.4" },
	{ "TO <a@b.example>", R, 501, "5.5.4" },
	{ "TO:a@b.example", R, 501, "5.5.4" },
	{ "RCPT TO:<a@b.example>", R, 501, "5.5.4" },
	{ "FROM:<a@b.example>SIZE=1", M, 501, "5.5.4" },
	{ "FROM:<a@b.example>>", M, 501, "5.5.4" },
	{ "FROM:<a@b.example>\tSIZE=1", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> <c@d.example>", M, 501, "5.5.4" },
	/* parameters: 501 5.5.4 */
	{ "FROM:<a@b.example> =1", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> SIZE=", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> SIZE==1", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> SIZE=1=2", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> -SIZE", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> SI_ZE", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> SIZE=1\t", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> X=\x01", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> X=\x7f", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> X=\xc3\xa9", M, 501, "5.5.4" },
	{ "FROM:<a@b.example> SMTPUTF8=\xc3\xa9", M, 501, "5.5.4" },
	{ "TO:<a@b.example> NOTIFY=NEVER x:y", R, 501, "5.5.4" },
	/* addresses: 553 5.1.7 (MAIL), 5.1.3 (RCPT) */
	{ "TO:<>", R, 553, "5.1.3" },
	{ "TO:<> NOTIFY=NEVER", RU, 553, "5.1.3" },
	{ "FROM:<postmaster>", M, 553, "5.1.7" },
	{ "TO:<\"postmaster\">", R, 553, "5.1.3" },
	{ "TO:<@a.example:postmaster>", R, 553, "5.1.3" },
	{ "TO:<postmaster.>", R, 553, "5.1.3" },
	{ "TO:<postmasterx>", R, 553, "5.1.3" },
	{ "FROM:<user>", M, 553, "5.1.7" },
	{ "FROM:<@example.com>", M, 553, "5.1.7" },
	{ "FROM:<user@>", M, 553, "5.1.7" },
	{ "FROM:<@a.example,user@b.example>", M, 553, "5.1.7" },
	{ "FROM:<@a.example:>", M, 553, "5.1.7" },
	{ "FROM:<@a.example,:u@c.example>", M, 553, "5.1.7" },
	{ "FROM:<@a.example,b.example:u@c.example>", M, 553, "5.1.7" },
	{ "FROM:<@:u@c.example>", M, 553, "5.1.7" },
	{ "FROM:<@[192.0.2.1]:u@c.example>", M, 553, "5.1.7" },
	{ "FROM:<.user@example.com>", M, 553, "5.1.7" },
	{ "FROM:<user.@example.com>", M, 553, "5.1.7" },
	{ "FROM:<us..er@example.com>", M, 553, "5.1.7" },
	{ "FROM:<us er@example.com>", M, 553, "5.1.7" },
	{ "FROM:<us(er)@example.com>", M, 553, "5.1.7" },
	{ "FROM:<us,er@example.com>", M, 553, "5.1.7" },
	{ "FROM:<a@b@example.com>", M, 553, "5.1.7" },
	{ "FROM:<\"a\x01\"@example.com>", M, 553, "5.1.7" },
	{ "FROM:<\"a\x7f\"@example.com>", M, 553, "5.1.7" },
	{ "FROM:<\"abc\"def@example.com>", M, 553, "5.1.7" },
	{ "FROM:<abc\"def\"@example.com>", M, 553, "5.1.7" },
	{ "FROM:<\"abc@example.com\">", M, 553, "5.1.7" },
	{ "FROM:<\"a\\\xc3\xa9\"@example.com> SMTPUTF8", M, 553, "5.1.7" },
	{ "FROM:<user@exa mple.com>", M, 553, "5.1.7" },
	{ "FROM:<user@example.com >", M, 553, "5.1.7" },
	{ "FROM:< user@example.com>", M, 553, "5.1.7" },
	{ "FROM:<user@-example.com>", M, 553, "5.1.7" },
	{ "FROM:<user@example-.com>", M, 553, "5.1.7" },
	{ "FROM:<user@example..com>", M, 553, "5.1.7" },
	{ "FROM:<user@example.com.>", M, 553, "5.1.7" },
	{ "FROM:<user@.example.com>", M, 553, "5.1.7" },
	{ "FROM:<user@exa!mple.com>", M, 553, "5.1.7" },
	{ "FROM:<user@example.com\x7f>", M, 553, "5.1.7" },
	{ "FROM:<user@[192.0.2.256]>", M, 553, "5.1.7" },
	{ "FROM:<user@[192.0.2]>", M, 553, "5.1.7" },
	{ "FROM:<user@[192.0.2.1.5]>", M, 553, "5.1.7" },
	{ "FROM:<user@[192.0.2.]>", M, 553, "5.1.7" },
	{ "FROM:<user@[1920.0.2.1]>", M, 553, "5.1.7" },
	{ "FROM:<user@[192.0.2.1>", M, 553, "5.1.7" },
	{ "FROM:<user@192.0.2.1]>", M, 553, "5.1.7" },
	{ "FROM:<user@[]>", M, 553, "5.1.7" },
	{ "FROM:<user@[IPv6:2001:db8::g]>", M, 553, "5.1.7" },
	{ "FROM:<user@[IPv6:192.0.2.1]>", M, 553, "5.1.7" },
	{ "FROM:<user@[IPv6:]>", M, 553, "5.1.7" },
	{ "FROM:<user@[x-tag:foo]>", M, 553, "5.1.7" },
	{ "TO:<user@[192.0.2.1].example>", R, 553, "5.1.3" },
	{ "TO:<user@exa_mple..com>", R, 553, "5.1.3" },
	/* 8-bit: 553 5.6.7 */
	{ "FROM:<\xc3\xbcser@example.com>", M, 553, "5.6.7" },
	{ "FROM:<\xc3\xbcser@example.com>", MU, 553, "5.6.7" },
	{ "FROM:<user@ex\xc3\xa4mple.com> BODY=8BITMIME", M, 553, "5.6.7" },
	{ "FROM:<@b\xc3\xa4.example:user@example.com>", M, 553, "5.6.7" },
	{ "TO:<\xc3\xbcser@example.com>", R, 553, "5.6.7" },
	{ "TO:<\xc3\xbcser@example.com> SMTPUTF8", R, 553, "5.6.7" },
	{ "FROM:<\xc3@example.com> SMTPUTF8", M, 553, "5.6.7" },
	{ "FROM:<a@example.\xe2\x82> SMTPUTF8", M, 553, "5.6.7" },
	{ "FROM:<\xc0\xafuser@example.com> SMTPUTF8", M, 553, "5.6.7" },
	{ "FROM:<\xe0\x80\xafuser@example.com> SMTPUTF8", M, 553, "5.6.7" },
	{ "FROM:<\xed\xa0\x80@example.com> SMTPUTF8", M, 553, "5.6.7" },
	{ "FROM:<\xbf@example.com> SMTPUTF8", M, 553, "5.6.7" },
	{ "FROM:<\xff@example.com> SMTPUTF8", M, 553, "5.6.7" },
	{ "TO:<\xf4\x90\x80\x80@example.com>", RU, 553, "5.6.7" },
	{ "TO:<\"\xc3\x28\"@example.com>", RU, 553, "5.6.7" },
};

static enum mode
mode_of(const char *arg)
{
	return arg[0] == 'F' || arg[0] == 'f' ? M : R;
}

static bool
mode_mail(enum mode m)
{
	return m == M || m == MU;
}

static bool
mode_utf8(enum mode m)
{
	return m == MU || m == RU;
}

static void
expect_str(const char *row, const char *what, const char *got, const char *want)
{
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("%s: %s is \"%s\", want \"%s\"", row, what,
		    got != NULL ? got : "(null)", want);
}

static void
expect_int(const char *row, const char *what, long long got, long long want)
{
	if (got != want)
		fail_msg("%s: %s is %lld, want %lld", row, what, got, want);
}

static unsigned int
flags_of(const struct sl_smtp_path *p)
{
	return (p->null_path ? F_NULL : 0) | (p->source_route ? F_ROUTE : 0) |
	    (p->quoted_local ? F_QUOTED : 0) |
	    (p->routed_local ? F_ROUTED : 0) | (p->utf8 ? F_UTF8 : 0) |
	    (p->postmaster ? F_POSTMASTER : 0);
}

/* Joins the parameters with one space; checks they point into buf. */
static void
join_params(const struct sl_smtp_path *p, const char *buf, size_t buflen,
    char *out, size_t size)
{
	size_t i, used;
	int n;

	out[0] = '\0';
	used = 0;
	for (i = 0; i < p->nparams; i++) {
		assert_true(p->params[i] >= buf && p->params[i] < buf + buflen);
		n = snprintf(out + used, size - used, "%s%s", i > 0 ? " " : "",
		    p->params[i]);
		assert_true(n >= 0 && (size_t)n < size - used);
		used += (size_t)n;
	}
}

/* Parses a private, exactly sized copy of arg (freed by the caller). */
static int
parse(const char *arg, enum mode m, char **buf_r, struct sl_smtp_path *p,
    struct sl_smtp_error *e)
{
	*buf_r = sl_xstrdup(arg);
	return sl_smtp_parse_path(*buf_r, mode_mail(m), mode_utf8(m), p, e);
}

static void
check_ok(const struct path_ok *t)
{
	struct sl_smtp_path p;
	struct sl_smtp_error e = { 0, NULL, NULL };
	char *buf, params[1024];
	size_t len;

	len = strlen(t->arg);
	if (parse(t->arg, t->mode, &buf, &p, &e) != 0)
		fail_msg("%s: failed %d %s %s", t->arg, e.code, e.enh, e.text);
	expect_str(t->arg, "addr", p.addr, t->addr);
	expect_str(t->arg, "local", p.local, t->local);
	expect_str(t->arg, "domain", p.domain, t->domain);
	expect_int(t->arg, "flags", flags_of(&p), t->flags);
	join_params(&p, buf, len + 1, params, sizeof(params));
	expect_str(t->arg, "params", params, t->params);
	free(buf);
}

static void
check_bad(const char *row, const char *arg, enum mode m, int code,
    const char *enh)
{
	struct sl_smtp_path p;
	struct sl_smtp_error e = { 0, NULL, NULL };
	char *buf;

	if (parse(arg, m, &buf, &p, &e) != -1)
		fail_msg("%s: accepted as \"%s\"", row, p.addr);
	expect_int(row, "code", e.code, code);
	expect_str(row, "enh", e.enh, enh);
	assert_non_null(e.text);
	/* No half-parsed path is left behind. */
	expect_int(row, "nparams", (long long)p.nparams, 0);
	expect_int(row, "flags", flags_of(&p), 0);
	expect_str(row, "addr", p.addr, "");
	free(buf);
}

static void
test_path_ok(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(path_ok); i++)
		check_ok(&path_ok[i]);
}

static void
test_path_bad(void **state)
{
	const struct path_bad *t;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(path_bad); i++) {
		t = &path_bad[i];
		check_bad(t->arg, t->arg, t->mode, t->code, t->enh);
	}
}

/* Every prefix of every input parses or fails cleanly, never over-reads. */
static void
test_path_prefixes(void **state)
{
	struct sl_smtp_path p;
	struct sl_smtp_error e;
	const char *arg;
	char *buf;
	size_t i, n, len;
	int rc;

	(void)state;
	for (i = 0; i < SL_NELEM(path_ok) + SL_NELEM(path_bad); i++) {
		arg = i < SL_NELEM(path_ok)
		    ? path_ok[i].arg
		    : path_bad[i - SL_NELEM(path_ok)].arg;
		len = strlen(arg);
		for (n = 0; n <= len; n++) {
			buf = sl_xstrndup(arg, n);
			rc = sl_smtp_parse_path(buf, mode_of(arg) == M, true,
			    &p, &e);
			if (rc == -1)
				assert_true(e.code == 501 || e.code == 553);
			else
				assert_int_equal(rc, 0);
			free(buf);
		}
	}
}

/* 'a' labels of at most 63 octets, dot-separated, len octets in all. */
static void
fill_domain(char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		s[i] = i % 64 == 63 && i + 1 < len ? '.' : 'a';
	s[len] = '\0';
}

/* prefix, llen 'l's, "@", a dlen-octet domain, ">". */
static void
make_arg(char *buf, size_t size, const char *prefix, size_t llen, size_t dlen)
{
	size_t plen;

	plen = strlen(prefix);
	assert_true(plen + llen + dlen + 3 <= size);
	memcpy(buf, prefix, plen);
	memset(buf + plen, 'l', llen);
	buf[plen + llen] = '@';
	fill_domain(buf + plen + llen + 1, dlen);
	memcpy(buf + plen + llen + 1 + dlen, ">", 2);
}

static void
check_len_ok(const char *arg, enum mode m, size_t llen, size_t dlen)
{
	struct sl_smtp_path p;
	struct sl_smtp_error e;
	char *buf;

	if (parse(arg, m, &buf, &p, &e) != 0)
		fail_msg("local %zu, domain %zu: failed %d %s", llen, dlen,
		    e.code, e.enh);
	expect_int(arg, "local length", (long long)strlen(p.local),
	    (long long)llen);
	expect_int(arg, "domain length", (long long)strlen(p.domain),
	    (long long)dlen);
	expect_int(arg, "addr length", (long long)strlen(p.addr),
	    (long long)(llen + 1 + dlen));
	free(buf);
}

static void
test_local_length(void **state)
{
	char arg[512];

	(void)state;
	make_arg(arg, sizeof(arg), "FROM:<", SL_SMTP_LOCAL_MAX, 11);
	check_len_ok(arg, M, SL_SMTP_LOCAL_MAX, 11);
	make_arg(arg, sizeof(arg), "FROM:<", SL_SMTP_LOCAL_MAX + 1, 11);
	check_bad("MAIL local 65", arg, M, 553, "5.1.7");
	make_arg(arg, sizeof(arg), "TO:<", SL_SMTP_LOCAL_MAX, 11);
	check_len_ok(arg, R, SL_SMTP_LOCAL_MAX, 11);
	make_arg(arg, sizeof(arg), "TO:<", SL_SMTP_LOCAL_MAX + 1, 11);
	check_bad("RCPT local 65", arg, R, 553, "5.1.3");
	/* The quotes count. */
	make_arg(arg, sizeof(arg), "FROM:<", SL_SMTP_LOCAL_MAX, 11);
	arg[6] = '"';
	arg[6 + SL_SMTP_LOCAL_MAX - 1] = '"';
	check_len_ok(arg, M, SL_SMTP_LOCAL_MAX, 11);
	make_arg(arg, sizeof(arg), "FROM:<", SL_SMTP_LOCAL_MAX + 1, 11);
	arg[6] = '"';
	arg[6 + SL_SMTP_LOCAL_MAX] = '"';
	check_bad("MAIL quoted local 65", arg, M, 553, "5.1.7");
}

static void
test_label_length(void **state)
{
	char arg[512];

	(void)state;
	/* "l@" + 63 or 64 'a' + ".example" */
	make_arg(arg, sizeof(arg), "TO:<", 1, 63);
	memcpy(arg + strlen(arg) - 1, ".example>", 10);
	check_len_ok(arg, R, 1, 71);
	make_arg(arg, sizeof(arg), "TO:<", 1, 64);
	memcpy(arg + strlen(arg) - 1, ".example>", 10);
	check_bad("label 64", arg, R, 553, "5.1.3");
}

static void
test_path_length(void **state)
{
	char arg[512];
	size_t dlen;

	(void)state;
	/* '<' + 64 + '@' + dlen + '>' */
	dlen = SL_SMTP_PATH_MAX - SL_SMTP_LOCAL_MAX - 3;
	make_arg(arg, sizeof(arg), "FROM:<", SL_SMTP_LOCAL_MAX, dlen);
	assert_int_equal(strlen(arg), 5 + SL_SMTP_PATH_MAX);
	check_len_ok(arg, M, SL_SMTP_LOCAL_MAX, dlen);
	make_arg(arg, sizeof(arg), "FROM:<", SL_SMTP_LOCAL_MAX, dlen + 1);
	check_bad("MAIL path 257", arg, M, 501, "5.5.4");
	make_arg(arg, sizeof(arg), "TO:<", 1, SL_SMTP_PATH_MAX - 4);
	check_len_ok(arg, R, 1, SL_SMTP_PATH_MAX - 4);
	make_arg(arg, sizeof(arg), "TO:<", 1, SL_SMTP_PATH_MAX - 3);
	check_bad("RCPT path 257", arg, R, 501, "5.5.4");
	/* The source route counts too: '<' + 11 + 1 + '@' + dlen + '>'. */
	dlen = SL_SMTP_PATH_MAX - 15;
	make_arg(arg, sizeof(arg), "TO:<@a.example:", 1, dlen);
	assert_int_equal(strlen(arg), 3 + SL_SMTP_PATH_MAX);
	check_len_ok(arg, R, 1, dlen);
	make_arg(arg, sizeof(arg), "TO:<@a.example:", 1, dlen + 1);
	check_bad("RCPT routed path 257", arg, R, 501, "5.5.4");
}

static void
test_param_count(void **state)
{
	struct sl_smtp_path p;
	struct sl_smtp_error e;
	char arg[512], *buf;
	size_t i, used;
	int n;

	(void)state;
	used = (size_t)snprintf(arg, sizeof(arg), "FROM:<a@b.example>");
	for (i = 1; i <= SL_SMTP_MAX_PARAMS; i++) {
		n = snprintf(arg + used, sizeof(arg) - used, " X%zu=%zu", i, i);
		assert_true(n > 0 && (size_t)n < sizeof(arg) - used);
		used += (size_t)n;
	}
	assert_int_equal(parse(arg, M, &buf, &p, &e), 0);
	assert_int_equal(p.nparams, SL_SMTP_MAX_PARAMS);
	assert_string_equal(sl_smtp_param(&p, "x16"), "16");
	free(buf);
	n = snprintf(arg + used, sizeof(arg) - used, " X17");
	assert_true(n > 0 && (size_t)n < sizeof(arg) - used);
	check_bad("17 params", arg, M, 501, "5.5.4");
}

static void
test_param_lookup(void **state)
{
	struct sl_smtp_path p;
	struct sl_smtp_error e;
	char *buf;

	(void)state;
	assert_int_equal(parse("FROM:<a@b.example> SIZE=100 smtputf8 "
	                       "BODY=8BITMIME x-y=z SIZE=5",
	                     M, &buf, &p, &e),
	    0);
	assert_int_equal(p.nparams, 5);
	assert_string_equal(sl_smtp_param(&p, "size"), "100");
	assert_string_equal(sl_smtp_param(&p, "SMTPUTF8"), "");
	assert_string_equal(sl_smtp_param(&p, "Body"), "8BITMIME");
	assert_string_equal(sl_smtp_param(&p, "X-Y"), "z");
	assert_null(sl_smtp_param(&p, "SIZ"));
	assert_null(sl_smtp_param(&p, "SIZE="));
	assert_null(sl_smtp_param(&p, "SMTPUTF"));
	assert_null(sl_smtp_param(&p, "RET"));
	assert_null(sl_smtp_param(&p, ""));
	free(buf);
	assert_int_equal(parse("TO:<a@b.example>", R, &buf, &p, &e), 0);
	assert_int_equal(p.nparams, 0);
	assert_null(sl_smtp_param(&p, "NOTIFY"));
	free(buf);
}

struct utf8_case {
	const char *s;
	size_t len;
	bool ok;
};
#define U(s, ok)                                                               \
	{                                                                      \
		s, sizeof(s) - 1, ok                                           \
	}

static const struct utf8_case utf8_cases[] = {
	U("", true),
	U("plain ASCII", true),
	U("\x00\x7f", true),
	U("\xc2\x80", true),         /* U+0080 */
	U("\xc3\xa9", true),         /* U+00E9 */
	U("\xdf\xbf", true),         /* U+07FF */
	U("\xe0\xa0\x80", true),     /* U+0800 */
	U("\xe2\x82\xac", true),     /* U+20AC */
	U("\xed\x9f\xbf", true),     /* U+D7FF */
	U("\xee\x80\x80", true),     /* U+E000 */
	U("\xef\xbf\xbd", true),     /* U+FFFD */
	U("\xef\xbf\xbf", true),     /* U+FFFF, a noncharacter */
	U("\xf0\x90\x80\x80", true), /* U+10000 */
	U("\xf0\x9f\x98\x80", true), /* U+1F600 */
	U("\xf4\x8f\xbf\xbf", true), /* U+10FFFF */
	U("a\xc3\xa9z\xe2\x82\xac", true),
	U("\x80", false), /* lone continuation */
	U("\xbf", false),
	U("a\x80z", false),
	U("\xc0\x80", false),                 /* overlong NUL */
	U("\xc0\xaf", false),                 /* overlong '/' */
	U("\xc1\xbf", false),                 /* overlong U+007F */
	U("\xe0\x80\x80", false),             /* overlong */
	U("\xe0\x9f\xbf", false),             /* overlong U+07FF */
	U("\xf0\x80\x80\x80", false),         /* overlong */
	U("\xf0\x8f\xbf\xbf", false),         /* overlong U+FFFF */
	U("\xed\xa0\x80", false),             /* U+D800 */
	U("\xed\xbf\xbf", false),             /* U+DFFF */
	U("\xed\xa0\xbd\xed\xb8\x80", false), /* CESU-8 pair */
	U("\xf4\x90\x80\x80", false),         /* U+110000 */
	U("\xf5\x80\x80\x80", false),
	U("\xf7\xbf\xbf\xbf", false),
	U("\xf8\x88\x80\x80\x80", false), /* 5 bytes */
	U("\xfc\x84\x80\x80\x80\x80", false),
	U("\xfe", false),
	U("\xff", false),
	U("\xc3", false), /* truncated */
	U("\xe2\x82", false),
	U("\xf0\x9f\x98", false),
	U("a\xc3", false),
	U("\xc3\x28", false), /* bad continuation */
	U("\xe2\x28\xac", false),
	U("\xe2\x82\x28", false),
	U("\xf0\x9f\x28\x80", false),
	U("\xf0\x9f\x98\x28", false),
	U("\xc3\xc3\xa9", false),
};

static void
test_utf8(void **state)
{
	const struct utf8_case *t;
	uint8_t *buf;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(utf8_cases); i++) {
		t = &utf8_cases[i];
		buf = sl_xmalloc(t->len);
		memcpy(buf, t->s, t->len);
		if (sl_utf8_valid(buf, t->len) != t->ok)
			fail_msg("utf8 case %zu: want %s", i,
			    t->ok ? "valid" : "invalid");
		free(buf);
	}
}

struct verb_case {
	const char *line;
	enum sl_smtp_verb verb;
	const char *arg;
};

static const struct verb_case verb_cases[] = {
	{ "HELO example.com", SL_VERB_HELO, "example.com" },
	{ "helo example.com", SL_VERB_HELO, "example.com" },
	{ "HELO", SL_VERB_HELO, "" },
	{ "EHLO example.com", SL_VERB_EHLO, "example.com" },
	{ "eHlO [192.0.2.1]", SL_VERB_EHLO, "[192.0.2.1]" },
	{ "MAIL FROM:<a@b.example>", SL_VERB_MAIL, "FROM:<a@b.example>" },
	{ "mail from:<>", SL_VERB_MAIL, "from:<>" },
	{ "MAIL  FROM:<>", SL_VERB_MAIL, " FROM:<>" },
	{ "RCPT TO:<a@b.example>", SL_VERB_RCPT, "TO:<a@b.example>" },
	{ "rcpt to:<postmaster>", SL_VERB_RCPT, "to:<postmaster>" },
	{ "DATA", SL_VERB_DATA, "" },
	{ "data", SL_VERB_DATA, "" },
	{ "DATA ", SL_VERB_DATA, "" },
	{ "BDAT 100 LAST", SL_VERB_BDAT, "100 LAST" },
	{ "bdat 0", SL_VERB_BDAT, "0" },
	{ "RSET", SL_VERB_RSET, "" },
	{ "rset", SL_VERB_RSET, "" },
	{ "NOOP", SL_VERB_NOOP, "" },
	{ "NOOP hello there", SL_VERB_NOOP, "hello there" },
	{ "QUIT", SL_VERB_QUIT, "" },
	{ "Quit", SL_VERB_QUIT, "" },
	{ "VRFY user", SL_VERB_VRFY, "user" },
	{ "EXPN list", SL_VERB_EXPN, "list" },
	{ "HELP", SL_VERB_HELP, "" },
	{ "help MAIL", SL_VERB_HELP, "MAIL" },
	{ "STARTTLS", SL_VERB_STARTTLS, "" },
	{ "starttls", SL_VERB_STARTTLS, "" },
	{ "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", SL_VERB_AUTH,
	    "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },
	{ "XCLIENT ADDR=192.0.2.1 NAME=[UNAVAILABLE]", SL_VERB_XCLIENT,
	    "ADDR=192.0.2.1 NAME=[UNAVAILABLE]" },
	{ "xclient", SL_VERB_XCLIENT, "" },
	{ "", SL_VERB_UNKNOWN, "" },
	{ " ", SL_VERB_UNKNOWN, "" },
	{ " MAIL FROM:<>", SL_VERB_UNKNOWN, "MAIL FROM:<>" },
	{ "MAILFROM:<a@b.example>", SL_VERB_UNKNOWN, "" },
	{ "MAIL:", SL_VERB_UNKNOWN, "" },
	{ "MAI FROM:<>", SL_VERB_UNKNOWN, "FROM:<>" },
	{ "MAILX FROM:<>", SL_VERB_UNKNOWN, "FROM:<>" },
	{ "MAIL\tFROM:<>", SL_VERB_UNKNOWN, "" },
	{ "STARTTLSX", SL_VERB_UNKNOWN, "" },
	{ "START TLS", SL_VERB_UNKNOWN, "TLS" },
	{ "XCLIEN", SL_VERB_UNKNOWN, "" },
	{ "D", SL_VERB_UNKNOWN, "" },
	{ "QUIT\xc3\xa9", SL_VERB_UNKNOWN, "" },
	{ "GET / HTTP/1.0", SL_VERB_UNKNOWN, "/ HTTP/1.0" },
};

static void
test_verbs(void **state)
{
	const struct verb_case *t;
	const char *arg;
	char *line;
	size_t i, len;

	(void)state;
	for (i = 0; i < SL_NELEM(verb_cases); i++) {
		t = &verb_cases[i];
		len = strlen(t->line);
		line = sl_xstrdup(t->line);
		arg = NULL;
		expect_int(t->line, "verb", sl_smtp_parse_verb(line, len, &arg),
		    t->verb);
		assert_true(arg >= line && arg <= line + len);
		expect_str(t->line, "arg", arg, t->arg);
		free(line);
	}
}

struct helo_case {
	const char *arg;
	bool ok;
};

static const struct helo_case helo_cases[] = {
	{ "example.com", true },
	{ "mail.Example.COM", true },
	{ "localhost", true },
	{ "a", true },
	{ "_spf.ex_ample.com", true },
	{ "xn--bcher-kva.example", true },
	{ "0-9.example", true },
	{ "[192.0.2.1]", true },
	{ "[IPv6:2001:db8::1]", true },
	{ "[IPv6:::1]", true },
	/* 45 octets, the longest text form (INET6_ADDRSTRLEN - 1) */
	{ "[IPv6:0000:0000:0000:0000:0000:0000:255.255.255.255]", true },
	{ "", false },
	{ " ", false },
	{ "example.com ", false },
	{ " example.com", false },
	{ "exa mple.com", false },
	{ "exa\tmple.com", false },
	{ "exa\x01mple.com", false },
	{ "exa\x7fmple.com", false },
	{ "b\xc3\xbc"
	  "cher.example",
	    false },
	{ "example..com", false },
	{ ".example.com", false },
	{ "example.com.", false },
	{ "-example.com", false },
	{ "example-.com", false },
	{ "ex@mple.com", false },
	{ "example.com:25", false },
	{ "[192.0.2.1", false },
	{ "192.0.2.1]", false },
	{ "[300.0.2.1]", false },
	{ "[192.0.2.1]x", false },
	{ "[IPv6:zz::1]", false },
	{ "[IPv6:2001:db8::1%eth0]", false },
	{ "[IPv6:00000:0000:0000:0000:0000:0000:255.255.255.255]", false },
	{ "[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:"
	  "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]",
	    false },
	{ "[]", false },
};

static void
check_helo(const char *arg, bool ok)
{
	char *buf;

	buf = sl_xstrdup(arg);
	if (sl_smtp_helo_valid(buf) != ok)
		fail_msg("HELO \"%s\": want %s", arg, ok ? "valid" : "invalid");
	free(buf);
}

static void
test_helo(void **state)
{
	char name[300];
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(helo_cases); i++)
		check_helo(helo_cases[i].arg, helo_cases[i].ok);
	fill_domain(name, SL_SMTP_DOMAIN_MAX);
	check_helo(name, true);
	/* 256 octets, labels 63 63 63 62 1 */
	fill_domain(name, SL_SMTP_DOMAIN_MAX + 1);
	name[SL_SMTP_DOMAIN_MAX - 1] = '.';
	check_helo(name, false);
	fill_domain(name, 63);
	check_helo(name, true);
	fill_domain(name, 64); /* one 64-octet label */
	check_helo(name, false);
}

struct bdat_case {
	const char *arg;
	int rc;
	uint64_t size;
	bool last;
};

static const struct bdat_case bdat_cases[] = {
	{ "0", 0, 0, false }, { "0 LAST", 0, 0, true },
	{ "100", 0, 100, false }, { "100 LAST", 0, 100, true },
	{ "100 last", 0, 100, true }, { "100 LaSt", 0, 100, true },
	{ "007 LAST", 0, 7, true },
	{ "9223372036854775807", 0, INT64_MAX, false },
	{ "9223372036854775807 LAST", 0, INT64_MAX, true },
	{ "9223372036854775808", -1, 0, false },
	{ "18446744073709551615", -1, 0, false },
	{ "18446744073709551616", -1, 0, false },
	{ "99999999999999999999999999", -1, 0, false }, { "", -1, 0, false },
	{ " ", -1, 0, false }, { " 100", -1, 0, false },
	{ "+100", -1, 0, false }, { "-1", -1, 0, false },
	{ "100 ", -1, 0, false }, { "100  LAST", -1, 0, false },
	{ "100 LAST ", -1, 0, false }, { "100 LASTX", -1, 0, false },
	{ "100 LAS", -1, 0, false }, { "100 FIRST", -1, 0, false },
	{ "100LAST", -1, 0, false }, { "100\tLAST", -1, 0, false },
	{ "100 LAST 5", -1, 0, false }, { "1e3", -1, 0, false },
	{ "0x10", -1, 0, false }, { "LAST", -1, 0, false },
	{ "LAST 100", -1, 0, false },
	{ "\xd9\xa1", -1, 0, false }, /* ARABIC-INDIC DIGIT ONE */
};

static void
test_bdat(void **state)
{
	const struct bdat_case *t;
	uint64_t size;
	char *buf;
	size_t i;
	bool last;

	(void)state;
	for (i = 0; i < SL_NELEM(bdat_cases); i++) {
		t = &bdat_cases[i];
		size = 12345;
		last = true;
		buf = sl_xstrdup(t->arg);
		expect_int(t->arg, "rc", sl_smtp_parse_bdat(buf, &size, &last),
		    t->rc);
		/* On failure the outputs are left alone. */
		expect_int(t->arg, "size", (long long)size,
		    t->rc == 0 ? (long long)t->size : 12345);
		expect_int(t->arg, "last", last, t->rc == 0 ? t->last : true);
		free(buf);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_ok),
		cmocka_unit_test(test_path_bad),
		cmocka_unit_test(test_path_prefixes),
		cmocka_unit_test(test_local_length),
		cmocka_unit_test(test_label_length),
		cmocka_unit_test(test_path_length),
		cmocka_unit_test(test_param_count),
		cmocka_unit_test(test_param_lookup),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_verbs),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_bdat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
