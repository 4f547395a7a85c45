/*
 * headers - basic sanity of the message header (sluice-plugins(7)), in the
 * spirit of qpsmtpd's headers / check_basicheaders and Postfix's
 * hopcount_limit.
 *
 * Hook data_post, after the whole message is in.  In order: every header
 * in required= must be there; none in singular= may appear twice (RFC
 * 5322 3.6 lists the fields that occur at most once); a Date: header must
 * parse as an RFC 5322 date-time (3.3, with the obsolete forms of 4.3) and
 * lie within future= / past= days of now; and there may be at most
 * max_received= Received: headers (a mail loop otherwise).  The first
 * failed check answers 554.  The date parser is our own, so that no
 * locale or strptime(3) leniency decides what is malformed.
 *
 *	plugin headers required=From,Date future=2 past=30 max_received=50
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <sluice/plugin.h>

#define SINGULAR_DEFAULT                                                       \
	"Date,From,Sender,Reply-To,To,Cc,Bcc,Message-ID,In-Reply-To,"          \
	"References,Subject"
#define SECONDS_PER_DAY 86400

struct headers {
	struct sl_strlist required; /* required= */
	struct sl_strlist singular; /* singular= */
	unsigned int future_days;   /* future=; 0 = no check */
	unsigned int past_days;     /* past=; 0 = no check */
	unsigned int max_received;  /* max_received=; 0 = no check */
};

static const struct sl_conf_def headers_conf[] = {
	{ .name = "required",
	    .type = SL_CONF_LIST,
	    .def = "From,Date",
	    .offset = offsetof(struct headers, required),
	    .help = "headers a message must have" },
	{ .name = "singular",
	    .type = SL_CONF_LIST,
	    .def = SINGULAR_DEFAULT,
	    .offset = offsetof(struct headers, singular),
	    .help = "headers a message may have at most once" },
	{ .name = "future",
	    .type = SL_CONF_UINT,
	    .def = "2",
	    .min = 0,
	    .max = 3650,
	    .offset = offsetof(struct headers, future_days),
	    .help = "days a Date: may lie ahead of now, 0 = any" },
	{ .name = "past",
	    .type = SL_CONF_UINT,
	    .def = "30",
	    .min = 0,
	    .max = 3650,
	    .offset = offsetof(struct headers, past_days),
	    .help = "days a Date: may lie behind now, 0 = any" },
	{ .name = "max_received",
	    .type = SL_CONF_UINT,
	    .def = "50",
	    .min = 0,
	    .max = 1000,
	    .offset = offsetof(struct headers, max_received),
	    .help = "Received: headers allowed (hops), 0 = any" },
	SL_CONF_END,
};

/* --- RFC 5322 date-time -------------------------------------------------- */

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Compares a word of n letters with a lower-case name. */
static bool
word_is(const char *w, size_t n, const char *name)
{
	size_t i;

	if (strlen(name) != n)
		return false;
	for (i = 0; i < n; i++)
		if (ascii_lower((unsigned char)w[i]) != name[i])
			return false;
	return true;
}

/*
 * Skips CFWS (RFC 5322 3.2.2): blanks, line breaks of a folded header and
 * comments, which nest and may hold quoted-pairs.  Returns the number of
 * bytes skipped, or -1 for an unterminated comment.
 */
static long
skip_cfws(const char **pp)
{
	const char *p = *pp, *start = *pp;
	unsigned int depth = 0;

	for (; *p != '\0'; p++) {
		if (depth == 0 &&
		    (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
			continue;
		if (*p == '(') {
			depth++;
		} else if (depth > 0 && *p == ')') {
			depth--;
		} else if (depth > 0 && *p == '\\') {
			if (p[1] == '\0')
				return -1;
			p++;
		} else if (depth == 0)
			break;
	}
	if (depth > 0)
		return -1;
	*pp = p;
	return (long)(p - start);
}

/* Reads 1..max digits as a number.  Returns the digit count, 0 if none. */
static size_t
read_num(const char **pp, size_t max, int *v_r)
{
	const char *p = *pp;
	size_t n = 0;
	int v = 0;

	while (n < max && is_digit((unsigned char)p[n])) {
		v = v * 10 + (p[n] - '0');
		n++;
	}
	if (is_digit((unsigned char)p[n]))
		return 0; /* more digits than allowed */
	*pp = p + n;
	*v_r = v;
	return n;
}

static size_t
read_word(const char **pp)
{
	size_t n = 0;

	while (is_alpha((unsigned char)(*pp)[n]))
		n++;
	return n;
}

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
		31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The zone as seconds east of UTC.  Returns 0, or -1 if malformed. */
static int
parse_zone(const char **pp, long *off_r)
{
	static const struct {
		const char *name;
		int hours;
	} names[] = { { "ut", 0 }, { "gmt", 0 }, { "est", -5 }, { "edt", -4 },
		{ "cst", -6 }, { "cdt", -5 }, { "mst", -7 }, { "mdt", -6 },
		{ "pst", -8 }, { "pdt", -7 } };
	const char *p = *pp;
	size_t i, n;
	int hhmm;

	if (*p == '+' || *p == '-') {
		p++;
		if (read_num(&p, 4, &hhmm) != 4 || hhmm / 100 > 23 ||
		    hhmm % 100 > 59)
			return -1;
		*off_r = (long)(hhmm / 100 * 3600 + hhmm % 100 * 60);
		if ((*pp)[0] == '-')
			*off_r = -*off_r;
		*pp = p;
		return 0;
	}
	n = read_word(&p);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (word_is(p, n, names[i].name)) {
			*off_r = names[i].hours * 3600L;
			*pp = p + n;
			return 0;
		}
	}
	/*
	 * RFC 5322 4.3: military zones were defined with the wrong sign in
	 * RFC 822; treat them (all but J) as -0000, i.e. unknown.
	 */
	if (n == 1 && ascii_lower((unsigned char)*p) != 'j') {
		*off_r = 0;
		*pp = p + 1;
		return 0;
	}
	return -1;
}

/*
 * Parses an RFC 5322 date-time:
 *   [ day-name "," ] day month year hh ":" mm [ ":" ss ] zone
 * with CFWS between the tokens, 2- and 3-digit obsolete years (4.3:
 * 00-49 -> 20xx, 50-999 -> +1900) and the obsolete zone names.  The day
 * name is checked for spelling, not against the date.  Returns 0 with
 * *t_r (seconds since the epoch, UTC), or -1 if malformed.
 */
static int
parse_date(const char *s, int64_t *t_r)
{
	static const char *const days[] = { "mon", "tue", "wed", "thu", "fri",
		"sat", "sun" };
	static const char *const months[] = { "jan", "feb", "mar", "apr", "may",
		"jun", "jul", "aug", "sep", "oct", "nov", "dec" };
	const char *p = s;
	int day, mon = 0, year, hh, mm, ss = 0;
	size_t i, n;
	long off;

	if (skip_cfws(&p) < 0)
		return -1;
	if (is_alpha((unsigned char)*p)) {
		n = read_word(&p);
		for (i = 0; i < 7 && !word_is(p, n, days[i]); i++)
			;
		if (i == 7)
			return -1;
		p += n;
		if (skip_cfws(&p) < 0 || *p++ != ',' || skip_cfws(&p) < 0)
			return -1;
	}
	if (read_num(&p, 2, &day) == 0 || skip_cfws(&p) <= 0)
		return -1;
	n = read_word(&p);
	for (i = 0; i < 12; i++)
		if (word_is(p, n, months[i]))
			mon = (int)i + 1;
	if (mon == 0)
		return -1;
	p += n;
	if (skip_cfws(&p) <= 0)
		return -1;
	n = read_num(&p, 4, &year);
	if (n < 2)
		return -1;
	if (n == 2)
		year += year < 50 ? 2000 : 1900;
	else if (n == 3)
		year += 1900;
	if (year < 1900 || day < 1 || day > month_days(year, mon))
		return -1;
	if (skip_cfws(&p) <= 0)
		return -1;
	if (read_num(&p, 2, &hh) != 2 || *p++ != ':' ||
	    read_num(&p, 2, &mm) != 2)
		return -1;
	if (*p == ':') {
		p++;
		if (read_num(&p, 2, &ss) != 2)
			return -1;
	}
	/* ss may be 60: a leap second */
	if (hh > 23 || mm > 59 || ss > 60)
		return -1;
	if (skip_cfws(&p) <= 0 || parse_zone(&p, &off) == -1)
		return -1;
	if (skip_cfws(&p) < 0 || *p != '\0')
		return -1;
	*t_r = days_from_civil(year, mon, day) * SECONDS_PER_DAY + hh * 3600 +
	    mm * 60 + ss - off;
	return 0;
}

/* --- the plugin ---------------------------------------------------------- */

static char headers_init_error[256];

static int
check_names(const struct sl_strlist *l, const char *opt, const char **error_r)
{
	size_t i;

	for (i = 0; i < l->count; i++) {
		if (!sl_header_name_valid(l->items[i])) {
			snprintf(headers_init_error, sizeof(headers_init_error),
			    "%s: invalid header name '%s'", opt, l->items[i]);
			*error_r = headers_init_error;
			return -1;
		}
	}
	return 0;
}

static int
headers_init(void **state_r, const char **error_r)
{
	const struct headers *st = *state_r;

	if (check_names(&st->required, "required", error_r) == -1 ||
	    check_names(&st->singular, "singular", error_r) == -1)
		return -1;
	return 0;
}

/* Logs a denial about one header; the caller has set the reply. */
static enum sl_verdict
deny_header(struct sl_hookctx *ctx, const char *reason, const char *name)
{
	sl_hook_log(ctx, LOG_INFO, "verdict=deny reason=%s header=%s", reason,
	    name);
	return SL_DENY;
}

/* Checks the Date: header.  Returns SL_DECLINED or SL_DENY. */
static enum sl_verdict
check_date(const struct headers *st, struct sl_hookctx *ctx, const char *value)
{
	int64_t t, now;

	if (parse_date(value, &t) == -1) {
		sl_hook_log(ctx, LOG_INFO,
		    "verdict=deny reason=malformed_date date=\"%.80s\"", value);
		sl_hook_reply(ctx, 554, "5.6.0", "Malformed Date header");
		return SL_DENY;
	}
	now = (int64_t)time(NULL);
	if (st->future_days > 0 &&
	    t > now + (int64_t)st->future_days * SECONDS_PER_DAY) {
		sl_hook_log(ctx, LOG_INFO,
		    "verdict=deny reason=date_future ahead_s=%lld max_days=%u",
		    (long long)(t - now), st->future_days);
		sl_hook_reply(ctx, 554, "5.6.0",
		    "Date header too far in the future");
		return SL_DENY;
	}
	if (st->past_days > 0 &&
	    t < now - (int64_t)st->past_days * SECONDS_PER_DAY) {
		sl_hook_log(ctx, LOG_INFO,
		    "verdict=deny reason=date_past behind_s=%lld max_days=%u",
		    (long long)(now - t), st->past_days);
		sl_hook_reply(ctx, 554, "5.6.0",
		    "Date header too far in the past");
		return SL_DENY;
	}
	return SL_DECLINED;
}

static enum sl_verdict
headers_data_post(void *state, struct sl_hookctx *ctx)
{
	const struct headers *st = state;
	const struct sl_txn *txn;
	const char *date;
	size_t i, n;

	txn = sl_hook_txn(ctx);
	for (i = 0; i < st->required.count; i++) {
		if (sl_txn_header_count_name(txn, st->required.items[i]) > 0)
			continue;
		sl_hook_reply(ctx, 554, "5.6.0", "Message has no %s: header",
		    st->required.items[i]);
		return deny_header(ctx, "missing", st->required.items[i]);
	}
	for (i = 0; i < st->singular.count; i++) {
		n = sl_txn_header_count_name(txn, st->singular.items[i]);
		if (n <= 1)
			continue;
		sl_hook_reply(ctx, 554, "5.6.0", "Message has %zu %s: headers",
		    n, st->singular.items[i]);
		return deny_header(ctx, "repeated", st->singular.items[i]);
	}
	date = sl_txn_header_get(txn, "Date", 0);
	if (date != NULL && check_date(st, ctx, date) == SL_DENY)
		return SL_DENY;
	if (st->max_received > 0) {
		n = sl_txn_header_count_name(txn, "Received");
		/* A milter is not shown the MTA's own Received: (smtpd's
		 * is in the list): count it, so both front ends agree. */
		if (sl_conn_front_end(sl_hook_conn(ctx)) == SL_FRONT_MILTERD)
			n++;
		if (n > st->max_received) {
			sl_hook_log(ctx, LOG_INFO,
			    "verdict=deny reason=hops received=%zu max=%u", n,
			    st->max_received);
			sl_hook_reply(ctx, 554, "5.4.6",
			    "Too many hops (mail loop?)");
			return SL_DENY;
		}
	}
	return SL_DECLINED;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "headers",
	.conf = headers_conf,
	.state_size = sizeof(struct headers),
	.init = headers_init,
	.hooks = { [SL_HOOK_DATA_POST] = headers_data_post },
};
