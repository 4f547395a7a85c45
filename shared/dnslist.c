/*
 * dnslist.c - DNS lists for the dnsbl and rhsbl plugins: the zone-list
 * parser (Postfix postscreen_dnsbl_sites syntax) and the check of one
 * name in every zone at once (dnslist.h).
 *
 * A check sends one A query per zone at once.  An answer outside
 * 127.0.0.0/8 is ignored (RFC 5782 2.1 reserves 127/8 for list entries),
 * 127.255.255.0/24 is a list's "query refused" code (Spamhaus: public
 * resolver, typing error, over quota) and counts as a failure, an answer
 * the zone's filter does not pass counts as not listed.  A zone whose
 * answer lists the name, with a positive weight, gets its TXT query at
 * once, so that the reply text is ready by the time every A answer is in
 * and a name nobody lists never waits for a TXT.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "dnslist.h"
#include "log.h"
#include "xmalloc.h"

/* --- the zone list ---------------------------------------------------- */

/* Longest zone: an IPv6 nibble name (64 bytes and a dot) must fit in 253. */
#define ZONE_NAME_MAX 188

static bool
zone_name_ok(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > ZONE_NAME_MAX || s[0] == '.')
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		        (s[i] >= 'A' && s[i] <= 'Z') ||
		        (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		        s[i] == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* Parses 0..255 (1 to 3 digits) at *pp and advances.  0 or -1. */
static int
parse_u8(const char **pp, uint8_t *v_r)
{
	const char *p = *pp;
	unsigned int v = 0;
	size_t n = 0;

	while (*p >= '0' && *p <= '9' && n < 4) {
		v = v * 10 + (unsigned int)(*p - '0');
		p++;
		n++;
	}
	if (n == 0 || n > 3 || v > 255)
		return -1;
	*v_r = (uint8_t)v;
	*pp = p;
	return 0;
}

/* One octet: N or [N;N..M;...].  Advances *pp.  0 or -1. */
static int
parse_octet(const char **pp, struct sl_dnslist_octet *o)
{
	const char *p = *pp;
	struct sl_dnslist_range *r;

	o->count = 0;
	if (*p != '[') {
		if (parse_u8(&p, &o->r[0].lo) != 0)
			return -1;
		o->r[0].hi = o->r[0].lo;
		o->count = 1;
		*pp = p;
		return 0;
	}
	p++;
	for (;;) {
		if (o->count == SL_DNSLIST_RANGES_MAX)
			return -1;
		r = &o->r[o->count++];
		if (parse_u8(&p, &r->lo) != 0)
			return -1;
		r->hi = r->lo;
		if (p[0] == '.' && p[1] == '.') {
			p += 2;
			if (parse_u8(&p, &r->hi) != 0 || r->hi < r->lo)
				return -1;
		}
		if (*p == ']')
			break;
		if (*p != ';')
			return -1;
		p++;
	}
	*pp = p + 1;
	return 0;
}

static int
parse_filter(const char *s, size_t len, struct sl_dnslist_zone *z)
{
	char buf[256];
	const char *p = buf;
	int i;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	for (i = 0; i < 4; i++) {
		if (parse_octet(&p, &z->filter[i]) != 0)
			return -1;
		if (i < 3 && *p++ != '.')
			return -1;
	}
	if (*p != '\0')
		return -1;
	z->has_filter = true;
	return 0;
}

static int
parse_weight(const char *s, long long *w_r)
{
	char *end;
	long long w;

	if (!((s[0] >= '0' && s[0] <= '9') ||
	        ((s[0] == '-' || s[0] == '+') && s[1] >= '0' && s[1] <= '9')))
		return -1;
	errno = 0;
	w = strtoll(s, &end, 10);
	if (*end != '\0' || errno != 0 || w < -SL_DNSLIST_WEIGHT_MAX ||
	    w > SL_DNSLIST_WEIGHT_MAX)
		return -1;
	*w_r = w;
	return 0;
}

static int
parse_item(const char *item, struct sl_dnslist_zone *z, const char **why_r)
{
	const char *star, *eq, *end;
	size_t nlen, i;

	memset(z, 0, sizeof(*z));
	z->weight = 1;
	star = strrchr(item, '*');
	eq = strchr(item, '=');
	if (star != NULL && eq != NULL && star < eq) {
		*why_r = "the weight (*N) must come last";
		return -1;
	}
	end = eq != NULL ? eq : star != NULL ? star : item + strlen(item);
	nlen = (size_t)(end - item);
	if (nlen > 1 && item[nlen - 1] == '.')
		nlen--; /* a final dot */
	if (!zone_name_ok(item, nlen)) {
		*why_r = "bad zone name";
		return -1;
	}
	if (eq != NULL &&
	    parse_filter(eq + 1,
	        (size_t)((star != NULL ? star : item + strlen(item)) - eq - 1),
	        z) != 0) {
		*why_r = "bad answer filter (want d.d.d.d, an octet may be "
		         "[a..b] or [a;b;...])";
		return -1;
	}
	if (star != NULL && parse_weight(star + 1, &z->weight) != 0) {
		*why_r = "bad weight (want *N, N an integer from -100000 to "
		         "100000)";
		return -1;
	}
	z->name = sl_xstrndup(item, nlen);
	for (i = 0; i < nlen; i++)
		if (z->name[i] >= 'A' && z->name[i] <= 'Z')
			z->name[i] = (char)(z->name[i] - 'A' + 'a');
	return 0;
}

int
sl_dnslist_parse(struct sl_dnslist *zl, const struct sl_strlist *items,
    char *err, size_t errsize)
{
	const char *why;
	size_t i;

	zl->threshold = 1;
	zl->allow_threshold = LLONG_MIN;
	if (items->count == 0) {
		snprintf(err, errsize, "zones: no zone given");
		return -1;
	}
	if (items->count > SL_DNSLIST_ZONES_MAX) {
		snprintf(err, errsize, "zones: more than %d zones",
		    SL_DNSLIST_ZONES_MAX);
		return -1;
	}
	zl->zones = sl_xcalloc(items->count, sizeof(*zl->zones));
	for (i = 0; i < items->count; i++) {
		if (parse_item(items->items[i], &zl->zones[i], &why) != 0) {
			snprintf(err, errsize, "zones: '%s': %s",
			    items->items[i], why);
			sl_dnslist_clear(zl);
			return -1;
		}
		zl->count++;
	}
	return 0;
}

void
sl_dnslist_clear(struct sl_dnslist *zl)
{
	size_t i;

	for (i = 0; i < zl->count; i++)
		free(zl->zones[i].name);
	free(zl->zones);
	zl->zones = NULL;
	zl->count = 0;
}

bool
sl_dnslist_filter_match(const struct sl_dnslist_zone *z, const uint8_t a[4])
{
	size_t i, j;
	bool hit;

	if (!z->has_filter)
		return true;
	for (i = 0; i < 4; i++) {
		hit = false;
		for (j = 0; j < z->filter[i].count && !hit; j++)
			hit = a[i] >= z->filter[i].r[j].lo &&
			    a[i] <= z->filter[i].r[j].hi;
		if (!hit)
			return false;
	}
	return true;
}

/* --- the plugins' shared options ---------------------------------------- */

const char *const sl_dnslist_failure_choices[] = { "skip", "tempfail", NULL };

int
sl_dnslist_init(struct sl_dnslist *zl, const struct sl_dnslist_opts *o,
    char *err, size_t errsize)
{
	if (sl_dnslist_parse(zl, &o->zones, err, errsize) != 0)
		return -1;
	zl->threshold = o->threshold;
	zl->txt = o->txt;
	return 0;
}

/* --- helpers ----------------------------------------------------------- */

void
sl_dnslist_txt_clean(const char *in, size_t len, char *out, size_t size)
{
	size_t i, o = 0;
	unsigned char ch;

	if (size == 0)
		return;
	for (i = 0; i < len && o + 1 < size; i++) {
		ch = (unsigned char)in[i];
		if (ch >= 0x20 && ch < 0x7f)
			out[o++] = (char)ch;
		else if (ch < 0x20 || ch == 0x7f)
			out[o++] = ' ';
		else
			out[o++] = '?';
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* Appends s (n bytes) to out[*o], within size - 1. */
static void
append(char *out, size_t size, size_t *o, const char *s, size_t n)
{
	if (*o + 1 >= size)
		return;
	if (n > size - 1 - *o)
		n = size - 1 - *o;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
}

void
sl_dnslist_expand(char *out, size_t size, const char *tmpl,
    const char *const *kv)
{
	const char *p = tmpl, *close;
	size_t o = 0, i, klen;
	bool done;

	if (size == 0)
		return;
	out[0] = '\0';
	while (*p != '\0') {
		done = false;
		close = p[0] == '%' ? strchr(p + 1, '%') : NULL;
		if (close != NULL) {
			klen = (size_t)(close - p - 1);
			for (i = 0; kv[i] != NULL && kv[i + 1] != NULL;
			     i += 2) {
				if (strlen(kv[i]) == klen &&
				    strncmp(kv[i], p + 1, klen) == 0) {
					append(out, size, &o, kv[i + 1],
					    strlen(kv[i + 1]));
					p = close + 1;
					done = true;
					break;
				}
			}
		}
		if (!done)
			append(out, size, &o, p++, 1);
	}
}

void
sl_dnslist_reply_text(char *out, size_t size, const struct sl_dnslist_opts *o,
    const char *const *kv, const char *head, const char *txt)
{
	size_t n;

	if (size == 0)
		return;
	if (o->message != NULL) {
		sl_dnslist_expand(out, size, o->message, kv);
		return;
	}
	out[0] = '\0';
	n = 0;
	append(out, size, &n, head, strlen(head));
	if (o->txt && txt[0] != '\0') {
		append(out, size, &n, "; ", 2);
		append(out, size, &n, txt, strlen(txt));
	}
}

struct sl_async *
sl_dnslist_suspend(struct sl_hookctx *ctx, struct sl_timer **timer_r,
    sl_work_fn give_up, void *arg)
{
	struct sl_async *a = sl_async_begin(ctx);
	unsigned int t = sl_hook_timeout(ctx);

	if (t > 0) {
		*timer_r = sl_hook_timer(ctx, t, give_up, arg);
		sl_async_timeout(a, t + 1000);
	}
	return a;
}

/* --- checks ------------------------------------------------------------ */

enum zq_state {
	ZQ_PENDING = 0,
	ZQ_CLEAN,
	ZQ_LISTED,
	ZQ_FAILED,
};

struct zq {
	struct sl_dnslist_check *chk;
	const struct sl_dnslist_zone *z;
	struct sl_dns_query *a, *txt;
	enum zq_state state;
	const char *why;  /* ZQ_FAILED: for logs and the result */
	char answers[64]; /* ZQ_LISTED: the answers that list, "a,b" */
	char txtbuf[SL_DNSLIST_TXT_MAX + 1];
};

struct sl_dnslist_check {
	const struct sl_dnslist *zl;
	struct sl_conn *conn;
	const char *plugin;
	char what[300];
	char name[256]; /* what is looked up under each zone */
	size_t pending; /* A queries outstanding */
	bool done;
	bool have_ttl;
	sl_dnslist_fn fn;
	void *arg;
	struct sl_dnslist_result res;
	struct zq zq[]; /* one per zone */
};

static void check_log(struct sl_dnslist_check *chk, int prio, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
check_log(struct sl_dnslist_check *chk, int prio, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	if (prio > sl_log_level())
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sl_conn_log(chk->conn, chk->plugin, prio, "%s %s", chk->what, buf);
}

static void
qname(const struct sl_dnslist_check *chk, const struct zq *q, char *buf,
    size_t size)
{
	snprintf(buf, size, "%s.%s", chk->name, q->z->name);
}

/* Appends "word" to a space-separated list in buf (truncating). */
static void
list_add(char *buf, size_t size, const char *word)
{
	size_t o = strlen(buf);

	if (o > 0)
		append(buf, size, &o, " ", 1);
	append(buf, size, &o, word, strlen(word));
}

/* The score and status over the zones that answered; fills chk->res. */
static void
evaluate(struct sl_dnslist_check *chk)
{
	const struct sl_dnslist *zl = chk->zl;
	struct sl_dnslist_result *res = &chk->res;
	const struct zq *q, *best = NULL;
	long long lo = 0, hi = 0;
	char word[400];
	size_t i;
	bool decided;

	res->score = 0;
	res->nfailed = 0;
	res->listed[0] = res->failed[0] = res->zone[0] = res->txt[0] = '\0';
	for (i = 0; i < zl->count; i++) {
		q = &chk->zq[i];
		if (q->state == ZQ_LISTED) {
			res->score += q->z->weight;
			snprintf(word, sizeof(word), "%s=%s*%lld", q->z->name,
			    q->answers, q->z->weight);
			list_add(res->listed, sizeof(res->listed), word);
			if (q->z->weight > 0 &&
			    (best == NULL || q->z->weight > best->z->weight))
				best = q;
		} else if (q->state == ZQ_FAILED) {
			res->nfailed++;
			if (q->z->weight < 0)
				lo += q->z->weight;
			else
				hi += q->z->weight;
			snprintf(word, sizeof(word), "%s:%s", q->z->name,
			    q->why);
			list_add(res->failed, sizeof(res->failed), word);
		}
	}
	if (res->score >= zl->threshold && best != NULL)
		res->status = SL_DNSLIST_LISTED;
	else if (res->score <= zl->allow_threshold)
		res->status = SL_DNSLIST_ALLOWED;
	else
		res->status = SL_DNSLIST_CLEAN;
	/* Could the failed zones have moved the score across a threshold? */
	lo += res->score;
	hi += res->score;
	decided = lo >= zl->threshold || hi <= zl->allow_threshold ||
	    (hi < zl->threshold && lo > zl->allow_threshold);
	res->undecided = res->nfailed > 0 && !decided;
	if (res->status == SL_DNSLIST_LISTED) {
		snprintf(res->zone, sizeof(res->zone), "%s", best->z->name);
		snprintf(res->txt, sizeof(res->txt), "%s", best->txtbuf);
	}
	if (!chk->have_ttl)
		res->ttl = 0;
}

/* The TXT the result will name, if it is still outstanding. */
static bool
waiting_for_txt(const struct sl_dnslist_check *chk)
{
	const struct zq *q, *best = NULL;
	size_t i;

	if (!chk->zl->txt || chk->res.status != SL_DNSLIST_LISTED)
		return false;
	for (i = 0; i < chk->zl->count; i++) {
		q = &chk->zq[i];
		if (q->state == ZQ_LISTED && q->z->weight > 0 &&
		    (best == NULL || q->z->weight > best->z->weight))
			best = q;
	}
	return best != NULL && best->txt != NULL;
}

static void
finish(struct sl_dnslist_check *chk)
{
	size_t i;

	for (i = 0; i < chk->zl->count; i++)
		sl_dns_cancel(&chk->zq[i].txt);
	evaluate(chk);
	chk->done = true;
}

/* Called after each answer; the last thing a callback does. */
static void
maybe_finish(struct sl_dnslist_check *chk)
{
	if (chk->done || chk->pending > 0)
		return;
	evaluate(chk);
	if (waiting_for_txt(chk))
		return;
	finish(chk);
	chk->fn(chk->arg); /* may free chk */
}

static void
txt_answer(void *arg, const struct sl_dns_result *r)
{
	struct zq *q = arg;
	size_t i, o = 0;
	char buf[SL_DNSLIST_TXT_MAX + 1];

	q->txt = NULL;
	buf[0] = '\0';
	/* Several TXT records: joined with "; " (some lists give a few). */
	for (i = 0; r->status == SL_DNS_OK && i < r->count; i++) {
		if (i > 0)
			append(buf, sizeof(buf), &o, "; ", 2);
		append(buf, sizeof(buf), &o, r->rr[i].text, r->rr[i].len);
	}
	sl_dnslist_txt_clean(buf, o, q->txtbuf, sizeof(q->txtbuf));
	if (r->status != SL_DNS_OK && r->status != SL_DNS_NXDOMAIN &&
	    r->status != SL_DNS_NODATA)
		check_log(q->chk, LOG_INFO, "zone=%s txt=%s", q->z->name,
		    sl_dns_status_name(r->status));
	maybe_finish(q->chk);
}

/* Classifies the A records of a positive answer. */
static void
classify(struct zq *q, const struct sl_dns_result *r)
{
	struct sl_dnslist_check *chk = q->chk;
	const uint8_t *a;
	char name[300];
	size_t i, o = 0;
	bool refused = false;

	q->state = ZQ_CLEAN;
	for (i = 0; i < r->count; i++) {
		a = r->rr[i].addr;
		if (a[0] != 127) {
			qname(chk, q, name, sizeof(name));
			check_log(chk, LOG_NOTICE,
			    "zone=%s query=%s answer=%s action=ignored "
			    "reason=\"outside 127.0.0.0/8\"",
			    q->z->name, name, r->rr[i].text);
			continue;
		}
		if (a[1] == 255 && a[2] == 255) {
			qname(chk, q, name, sizeof(name));
			check_log(chk, LOG_WARNING,
			    "zone=%s query=%s answer=%s action=error "
			    "reason=\"the list refused the query\"",
			    q->z->name, name, r->rr[i].text);
			refused = true;
			continue;
		}
		if (!sl_dnslist_filter_match(q->z, a)) {
			check_log(chk, LOG_DEBUG,
			    "zone=%s answer=%s action=ignored "
			    "reason=\"not in the zone's filter\"",
			    q->z->name, r->rr[i].text);
			continue;
		}
		if (q->state == ZQ_LISTED)
			append(q->answers, sizeof(q->answers), &o, ",", 1);
		append(q->answers, sizeof(q->answers), &o, r->rr[i].text,
		    strlen(r->rr[i].text));
		q->state = ZQ_LISTED;
	}
	if (refused) {
		q->state = ZQ_FAILED;
		q->why = "refused";
	}
}

static void
a_answer(void *arg, const struct sl_dns_result *r)
{
	struct zq *q = arg;
	struct sl_dnslist_check *chk = q->chk;
	char name[300];

	q->a = NULL;
	chk->pending--;
	switch (r->status) {
	case SL_DNS_OK:
		classify(q, r);
		break;
	case SL_DNS_NXDOMAIN:
	case SL_DNS_NODATA:
		q->state = ZQ_CLEAN;
		break;
	default:
		q->state = ZQ_FAILED;
		q->why = sl_dns_status_name(r->status);
		qname(chk, q, name, sizeof(name));
		check_log(chk, LOG_WARNING,
		    "zone=%s query=%s status=%s error=\"%s\" action=error",
		    q->z->name, name, q->why, r->error);
		break;
	}
	if (q->state != ZQ_FAILED) {
		if (!chk->have_ttl || r->ttl < chk->res.ttl)
			chk->res.ttl = r->ttl;
		chk->have_ttl = true;
	}
	if (q->state == ZQ_LISTED && q->z->weight > 0 && chk->zl->txt) {
		qname(chk, q, name, sizeof(name));
		q->txt =
		    sl_dns_lookup(chk->conn, name, SL_DNS_TXT, txt_answer, q);
	}
	maybe_finish(chk);
}

struct sl_dnslist_check *
sl_dnslist_check_start(struct sl_conn *c, const struct sl_dnslist *zl,
    const char *plugin, const char *what, const char *name, sl_dnslist_fn fn,
    void *arg)
{
	struct sl_dnslist_check *chk;
	struct zq *q;
	char qn[300];
	size_t i;

	chk = sl_xcalloc(1, sizeof(*chk) + zl->count * sizeof(chk->zq[0]));
	chk->zl = zl;
	chk->conn = c;
	chk->plugin = plugin;
	chk->fn = fn;
	chk->arg = arg;
	snprintf(chk->what, sizeof(chk->what), "%s", what);
	snprintf(chk->name, sizeof(chk->name), "%s", name);
	for (i = 0; i < zl->count; i++) {
		q = &chk->zq[i];
		q->chk = chk;
		q->z = &zl->zones[i];
		qname(chk, q, qn, sizeof(qn));
		q->a = sl_dns_lookup(c, qn, SL_DNS_A, a_answer, q);
		if (q->a == NULL) {
			q->state = ZQ_FAILED;
			q->why = "error";
			check_log(chk, LOG_WARNING,
			    "zone=%s query=%s status=error error=\"no "
			    "resolver\" action=error",
			    q->z->name, qn);
			continue;
		}
		chk->pending++;
	}
	if (chk->pending == 0)
		finish(chk);
	return chk;
}

bool
sl_dnslist_check_is_done(const struct sl_dnslist_check *chk)
{
	return chk->done;
}

void
sl_dnslist_check_give_up(struct sl_dnslist_check *chk)
{
	struct zq *q;
	size_t i;

	if (chk->done)
		return;
	for (i = 0; i < chk->zl->count; i++) {
		q = &chk->zq[i];
		if (q->a == NULL)
			continue;
		sl_dns_cancel(&q->a);
		q->state = ZQ_FAILED;
		q->why = "timeout";
		check_log(chk, LOG_WARNING,
		    "zone=%s status=timeout action=error "
		    "reason=\"no answer within the plugin's timeout\"",
		    q->z->name);
	}
	chk->pending = 0;
	finish(chk);
}

const struct sl_dnslist_result *
sl_dnslist_check_result(const struct sl_dnslist_check *chk)
{
	return chk->done ? &chk->res : NULL;
}

void
sl_dnslist_check_free(struct sl_dnslist_check **cp)
{
	struct sl_dnslist_check *chk = *cp;
	size_t i;

	if (chk == NULL)
		return;
	for (i = 0; i < chk->zl->count; i++) {
		sl_dns_cancel(&chk->zq[i].a);
		sl_dns_cancel(&chk->zq[i].txt);
	}
	free(chk);
	*cp = NULL;
}
