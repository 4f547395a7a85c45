/*
 * dnsbl - refuse clients whose address is listed in DNS block lists,
 * with per-zone weights, a threshold and allow lists, as Postfix's
 * postscreen_dnsbl_sites (sluice-plugins(7)).
 *
 * Hooks connect (the lookups start: every zone at once, through
 * shared/dnslist.c) and connect, helo, mail, rcpt (the verdict, from
 * check_at= on; a hook that comes before the answers waits for them).
 * The verdict per client address is kept in a bounded cache shared by the
 * loop threads (a mutex; the oldest entry goes when it is full) for the
 * least TTL of the answers, at most cache_ttl; a verdict that rested on a
 * failed lookup is never cached.  XCLIENT runs connect again: the state
 * is per client identity.
 *
 *	plugin dnsbl
 *zones=zen.example*3,bl.example=127.0.0.[2..4]*2,wl.example*-2
 */
#include <sys/socket.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sluice/plugin.h>

#include "core.h"
#include "dnslist.h"
#include "ttlmap.h"
#include "xmalloc.h"

static const char *const check_at_names[] = { "connect", "helo", "mail", "rcpt",
	NULL };
static const enum sl_hook_id check_at_hooks[] = { SL_HOOK_CONNECT, SL_HOOK_HELO,
	SL_HOOK_MAIL, SL_HOOK_RCPT };

struct dnsbl_cache;

struct dnsbl {
	struct sl_dnslist_opts opts; /* zones= threshold= txt= message=
	                                dns_failure= */
	long long allow_threshold;
	int check_at;
	unsigned int cache_size;
	unsigned int cache_ttl_ms;
	/* built by init */
	struct sl_dnslist zl;
	struct dnsbl_cache *cache; /* NULL: cache_size=0 */
};

static const struct sl_conf_def dnsbl_conf[] = {
	SL_DNSLIST_CONF_ROWS(struct dnsbl,
	    "reply text; %ip%, %zone%, %txt%, %score% are replaced"),
	{ .name = "allow_threshold",
	    .type = SL_CONF_INT,
	    .def = "-1",
	    .min = -SL_DNSLIST_ZONES_MAX * SL_DNSLIST_WEIGHT_MAX,
	    .max = -1,
	    .offset = offsetof(struct dnsbl, allow_threshold),
	    .help = "score at or below which the client is allow-listed" },
	{ .name = "check_at",
	    .type = SL_CONF_ENUM,
	    .def = "rcpt",
	    .choices = check_at_names,
	    .offset = offsetof(struct dnsbl, check_at),
	    .help = "where the verdict is given: connect, helo, mail, rcpt" },
	{ .name = "cache_size",
	    .type = SL_CONF_UINT,
	    .def = "10000",
	    .min = 0,
	    .max = 1000000,
	    .offset = offsetof(struct dnsbl, cache_size),
	    .help = "client addresses whose verdict is kept, 0 = no cache" },
	{ .name = "cache_ttl",
	    .type = SL_CONF_MSEC,
	    .def = "5m",
	    .min = 1000,
	    .max = 86400000,
	    .offset = offsetof(struct dnsbl, cache_ttl_ms),
	    .help = "longest time a verdict is kept" },
	SL_CONF_END,
};

/* --- the verdict cache ------------------------------------------------ */

struct centry {
	struct sl_ttlnode node; /* first: the table's node is the entry */
	enum sl_dnslist_status status;
	long long score;
	char *zone, *txt, *listed;
	char ip[64];
};

struct dnsbl_cache {
	pthread_mutex_t mu;
	struct sl_ttlmap map;
};

static bool
centry_match(const struct sl_ttlnode *n, const void *ip)
{
	return strcmp(((const struct centry *)n)->ip, ip) == 0;
}

static void
centry_free(struct sl_ttlnode *n)
{
	struct centry *e = (struct centry *)n;

	free(e->zone);
	free(e->txt);
	free(e->listed);
	free(e);
}

static uint32_t
ip_hash(const char *ip)
{
	return sl_fnv1a(ip, strlen(ip));
}

static struct dnsbl_cache *
cache_new(size_t max)
{
	struct dnsbl_cache *c;

	c = sl_xcalloc(1, sizeof(*c));
	sl_ttlmap_init(&c->map, max, centry_free);
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

static void
cache_free(struct dnsbl_cache **cp)
{
	struct dnsbl_cache *c = *cp;

	if (c == NULL)
		return;
	sl_ttlmap_clear(&c->map);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*cp = NULL;
}

/* Copies a live entry for ip into res; false if there is none. */
static bool
cache_get(struct dnsbl_cache *c, const char *ip, struct sl_dnslist_result *res)
{
	struct centry *e;
	uint64_t now = (uint64_t)sl_now_ms();
	bool hit = false;

	pthread_mutex_lock(&c->mu);
	e = (struct centry *)sl_ttlmap_find(&c->map, ip_hash(ip), centry_match,
	    ip, now);
	if (e != NULL) {
		memset(res, 0, sizeof(*res));
		res->status = e->status;
		res->score = e->score;
		res->ttl =
		    (unsigned int)((e->node.expires_ms - now + 999) / 1000);
		snprintf(res->zone, sizeof(res->zone), "%s",
		    e->zone != NULL ? e->zone : "");
		snprintf(res->txt, sizeof(res->txt), "%s",
		    e->txt != NULL ? e->txt : "");
		snprintf(res->listed, sizeof(res->listed), "%s",
		    e->listed != NULL ? e->listed : "");
		hit = true;
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

static char *
dup_or_null(const char *s)
{
	return s[0] != '\0' ? sl_xstrdup(s) : NULL;
}

static void
cache_put(struct dnsbl_cache *c, const char *ip,
    const struct sl_dnslist_result *res, unsigned int ttl_ms)
{
	struct centry *e;

	if (ttl_ms == 0 || strlen(ip) >= sizeof(e->ip))
		return;
	e = sl_xcalloc(1, sizeof(*e));
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	e->node.hash = ip_hash(ip);
	e->node.expires_ms = (uint64_t)sl_now_ms() + ttl_ms;
	e->status = res->status;
	e->score = res->score;
	e->zone = dup_or_null(res->zone);
	e->txt = dup_or_null(res->txt);
	e->listed = dup_or_null(res->listed);
	pthread_mutex_lock(&c->mu);
	sl_ttlmap_put(&c->map, &e->node, centry_match, e->ip);
	pthread_mutex_unlock(&c->mu);
}

/* --- per client identity -------------------------------------------- */

struct dconn {
	struct dnsbl *st;
	struct sl_conn *conn;
	const char *name; /* the instance's name: lives with the runtime */
	char ip[64];
	char what[80]; /* "client=[IP]" for logs */
	struct sl_dnslist_check *chk;
	struct sl_dnslist_result res; /* once done */
	bool done, cached, logged;
	struct sl_async *async; /* a verdict hook waiting for the answers */
	enum sl_hook_id hook;
	struct sl_timer *timer; /* the hook's own timeout= */
};

static void
dconn_free(void *arg)
{
	struct dconn *d = arg;

	sl_dnslist_check_free(&d->chk);
	sl_timer_cancel(&d->timer);
	if (d->async != NULL)
		sl_async_done(&d->async, SL_DECLINED); /* frees the handle */
	free(d);
}

/* The result is in: outcome, note and cache. */
static void
dconn_record(struct dconn *d)
{
	struct dnsbl *st = d->st;
	const struct sl_dnslist_result *res = &d->res;
	char detail[900], key[128];
	unsigned long long ttl_ms;

	if (res->undecided &&
	    st->opts.dns_failure == SL_DNSLIST_FAILURE_TEMPFAIL) {
		snprintf(detail, sizeof(detail), "failed=%s score=%lld",
		    res->failed, res->score);
		sl_conn_outcome_set(d->conn, d->name, "error", detail);
	} else if (res->status == SL_DNSLIST_LISTED) {
		snprintf(detail, sizeof(detail), "%s score=%lld", res->listed,
		    res->score);
		sl_conn_outcome_set(d->conn, d->name, "fail", detail);
	} else if (res->status == SL_DNSLIST_ALLOWED) {
		snprintf(detail, sizeof(detail), "allowed %s score=%lld",
		    res->listed, res->score);
		sl_conn_outcome_set(d->conn, d->name, "pass", detail);
	} else if (res->undecided) {
		/* dns_failure=skip: passed, but nobody could tell */
		snprintf(detail, sizeof(detail), "failed=%s score=%lld",
		    res->failed, res->score);
		sl_conn_outcome_set(d->conn, d->name, "error", detail);
	} else {
		snprintf(detail, sizeof(detail), "score=%lld", res->score);
		sl_conn_outcome_set(d->conn, d->name, "pass", detail);
	}
	if (res->status == SL_DNSLIST_ALLOWED &&
	    !(res->undecided &&
	        st->opts.dns_failure == SL_DNSLIST_FAILURE_TEMPFAIL)) {
		snprintf(key, sizeof(key), "%s.allowed", d->name);
		sl_conn_note_set(d->conn, key, "yes");
	}
	if (st->cache != NULL && !d->cached && res->nfailed == 0) {
		ttl_ms = (unsigned long long)res->ttl * 1000;
		cache_put(st->cache, d->ip, res,
		    ttl_ms < st->cache_ttl_ms ? (unsigned int)ttl_ms
		                              : st->cache_ttl_ms);
	}
}

/*
 * The verdict at hook h for a finished lookup, with the reply; logs the
 * decision once per client identity.
 */
static enum sl_verdict
dconn_verdict(struct dconn *d, enum sl_hook_id h, int *code_r,
    const char **enh_r, char *text, size_t size)
{
	const struct dnsbl *st = d->st;
	const struct sl_dnslist_result *res = &d->res;
	const char *cached = d->cached ? "yes" : "no";
	char head[512], score[32];
	const char *kv[9];
	bool first = !d->logged;

	d->logged = true;
	text[0] = '\0';
	if (res->undecided &&
	    st->opts.dns_failure == SL_DNSLIST_FAILURE_TEMPFAIL) {
		if (first)
			sl_conn_log(d->conn, d->name, LOG_INFO,
			    "verdict=tempfail %s score=%lld failed=\"%s\" "
			    "dns_failure=tempfail",
			    d->what, res->score, res->failed);
		*code_r = 451;
		*enh_r = "4.4.3";
		snprintf(text, size,
		    "Service temporarily unavailable; DNS list lookup for "
		    "client [%s] failed, try again later",
		    d->ip);
		return SL_DENYSOFT;
	}
	if (res->status == SL_DNSLIST_LISTED) {
		if (first)
			sl_conn_log(d->conn, d->name, LOG_INFO,
			    "verdict=deny %s score=%lld threshold=%lld "
			    "zone=%s listed=\"%s\"%s%s%s cached=%s",
			    d->what, res->score, st->opts.threshold, res->zone,
			    res->listed, res->nfailed > 0 ? " failed=\"" : "",
			    res->failed, res->nfailed > 0 ? "\"" : "", cached);
		*code_r = h == SL_HOOK_CONNECT ? 554 : 550;
		*enh_r = "5.7.1";
		snprintf(score, sizeof(score), "%lld", res->score);
		kv[0] = "ip";
		kv[1] = d->ip;
		kv[2] = "zone";
		kv[3] = res->zone;
		kv[4] = "txt";
		kv[5] = res->txt;
		kv[6] = "score";
		kv[7] = score;
		kv[8] = NULL;
		snprintf(head, sizeof(head),
		    "Service unavailable; client [%s] blocked using %s", d->ip,
		    res->zone);
		sl_dnslist_reply_text(text, size, &st->opts, kv, head,
		    res->txt);
		return SL_DENY;
	}
	if (first) {
		if (res->status == SL_DNSLIST_ALLOWED)
			sl_conn_log(d->conn, d->name, LOG_INFO,
			    "verdict=allow %s score=%lld allow_threshold=%lld "
			    "listed=\"%s\" note=%s.allowed cached=%s",
			    d->what, res->score, st->allow_threshold,
			    res->listed, d->name, cached);
		else if (res->nfailed > 0)
			sl_conn_log(d->conn, d->name, LOG_INFO,
			    "verdict=pass %s score=%lld failed=\"%s\" %s "
			    "cached=%s",
			    d->what, res->score, res->failed,
			    res->undecided ? "dns_failure=skip" : "decided=yes",
			    cached);
		else
			sl_conn_log(d->conn, d->name, LOG_INFO,
			    "verdict=pass %s score=%lld%s%s%s cached=%s",
			    d->what, res->score,
			    res->listed[0] != '\0' ? " listed=\"" : "",
			    res->listed, res->listed[0] != '\0' ? "\"" : "",
			    cached);
	}
	return SL_DECLINED;
}

/* Answers a waiting hook. */
static void
dconn_resume(struct dconn *d)
{
	enum sl_verdict v;
	const char *enh = NULL;
	char text[512];
	int code = 0;

	sl_timer_cancel(&d->timer);
	if (d->async == NULL)
		return;
	v = dconn_verdict(d, d->hook, &code, &enh, text, sizeof(text));
	if (text[0] != '\0')
		sl_async_reply(d->async, code, enh, "%s", text);
	sl_async_done(&d->async, v);
}

static void
dconn_checked(void *arg)
{
	struct dconn *d = arg;

	d->res = *sl_dnslist_check_result(d->chk);
	sl_dnslist_check_free(&d->chk);
	d->done = true;
	dconn_record(d);
	dconn_resume(d);
}

/* The hook's timeout= ran out first: decide on what is in. */
static void
dconn_give_up(void *arg)
{
	struct dconn *d = arg;

	d->timer = NULL; /* the core frees a fired timer */
	sl_dnslist_check_give_up(d->chk);
	dconn_checked(d);
}

/* --- hooks --------------------------------------------------------------- */

static enum sl_verdict
dnsbl_check(struct dnsbl *st, struct sl_hookctx *ctx, enum sl_hook_id h)
{
	struct dconn *d = sl_conn_data_get(sl_hook_conn(ctx), st);
	enum sl_verdict v;
	const char *enh = NULL;
	char text[512];
	int code = 0;

	if (d == NULL || h < check_at_hooks[st->check_at])
		return SL_DECLINED;
	if (!d->done) {
		d->async = sl_dnslist_suspend(ctx, &d->timer, dconn_give_up, d);
		d->hook = h;
		sl_hook_log(ctx, LOG_DEBUG, "%s waiting for the lists at=%s",
		    d->what, check_at_names[st->check_at]);
		return SL_PENDING;
	}
	v = dconn_verdict(d, h, &code, &enh, text, sizeof(text));
	if (text[0] != '\0')
		sl_hook_reply(ctx, code, enh, "%s", text);
	return v;
}

static enum sl_verdict
dnsbl_connect(void *state, struct sl_hookctx *ctx)
{
	struct dnsbl *st = state;
	struct sl_conn *conn = sl_hook_conn(ctx);
	struct dconn *d;
	uint8_t addr[16];
	char rev[160], key[128];
	int family;

	/* XCLIENT: a new identity starts from scratch. */
	sl_conn_data_set(conn, st, NULL, NULL);
	snprintf(key, sizeof(key), "%s.allowed", sl_hook_plugin_name(ctx));
	sl_conn_note_set(conn, key, NULL);
	family = sl_conn_remote_addr(conn, addr);
	if (family != AF_INET && family != AF_INET6)
		return SL_DECLINED; /* no IP client: nothing to look up */
	d = sl_xcalloc(1, sizeof(*d));
	d->st = st;
	d->conn = conn;
	d->name = sl_hook_plugin_name(ctx);
	/* an IPv4-mapped IPv6 address is looked up as the IPv4 one */
	if (sl_addr_is_v4(addr))
		snprintf(d->ip, sizeof(d->ip), "%u.%u.%u.%u", addr[12],
		    addr[13], addr[14], addr[15]);
	else
		snprintf(d->ip, sizeof(d->ip), "%s", sl_conn_remote_ip(conn));
	snprintf(d->what, sizeof(d->what), "client=[%s]", d->ip);
	sl_conn_data_set(conn, st, d, dconn_free);
	if (st->cache != NULL && cache_get(st->cache, d->ip, &d->res)) {
		d->done = d->cached = true;
		sl_hook_log(ctx, LOG_DEBUG, "%s cached=yes ttl_left=%u",
		    d->what, d->res.ttl);
		dconn_record(d);
	} else if (sl_dns_reverse_name(d->ip, "", rev, sizeof(rev)) != 0) {
		sl_hook_log(ctx, LOG_WARNING, "%s cannot reverse the address",
		    d->what);
		sl_conn_data_set(conn, st, NULL, NULL);
		return SL_DECLINED;
	} else {
		rev[strlen(rev) - 1] = '\0'; /* "4.3.2.1." without the dot */
		d->chk = sl_dnslist_check_start(conn, &st->zl, d->name, d->what,
		    rev, dconn_checked, d);
		if (sl_dnslist_check_is_done(d->chk)) {
			d->res = *sl_dnslist_check_result(d->chk);
			sl_dnslist_check_free(&d->chk);
			d->done = true;
			dconn_record(d);
		}
	}
	return dnsbl_check(st, ctx, SL_HOOK_CONNECT);
}

static enum sl_verdict
dnsbl_helo(void *state, struct sl_hookctx *ctx)
{
	return dnsbl_check(state, ctx, SL_HOOK_HELO);
}

static enum sl_verdict
dnsbl_mail(void *state, struct sl_hookctx *ctx)
{
	return dnsbl_check(state, ctx, SL_HOOK_MAIL);
}

static enum sl_verdict
dnsbl_rcpt(void *state, struct sl_hookctx *ctx)
{
	return dnsbl_check(state, ctx, SL_HOOK_RCPT);
}

/* init runs on the configuring thread only: one buffer will do. */
static char dnsbl_error[512];

static int
dnsbl_init(void **state_r, const char **error_r)
{
	struct dnsbl *st = *state_r;

	if (sl_dnslist_init(&st->zl, &st->opts, dnsbl_error,
	        sizeof(dnsbl_error)) != 0) {
		*error_r = dnsbl_error;
		return -1;
	}
	st->zl.allow_threshold = st->allow_threshold;
	if (st->cache_size > 0)
		st->cache = cache_new(st->cache_size);
	return 0;
}

static void
dnsbl_fini(void *state)
{
	struct dnsbl *st = state;

	cache_free(&st->cache);
	sl_dnslist_clear(&st->zl);
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "dnsbl",
	.conf = dnsbl_conf,
	.state_size = sizeof(struct dnsbl),
	.init = dnsbl_init,
	.fini = dnsbl_fini,
	.hooks = {
		[SL_HOOK_CONNECT] = dnsbl_connect,
		[SL_HOOK_HELO] = dnsbl_helo,
		[SL_HOOK_MAIL] = dnsbl_mail,
		[SL_HOOK_RCPT] = dnsbl_rcpt,
	},
};
