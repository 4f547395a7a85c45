/*
 * resolver.c - asynchronous DNS on c-ares, one resolver per loop thread,
 * with a TTL-honouring cache.  See resolver.h.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <ares.h>
#include <event2/event.h>

#include "core.h"
#include "log.h"
#include "resolver.h"
#include "ttlmap.h"
#include "xmalloc.h"

/* --- an owned result -------------------------------------------------- */

/*
 * Shared by the cache and the queries a hit is waiting to be delivered to
 * (a loop thread's own: no locking); freed with the last reference.
 */
struct ans {
	struct sl_dns_result res; /* points into the fields below */
	char *name;
	struct sl_dns_rr *rr;
	char **texts;
	size_t alloc;
	unsigned int refs;
};

static struct ans *
ans_new(const char *name, enum sl_dns_type type, enum sl_dns_status st)
{
	struct ans *a = sl_xcalloc(1, sizeof(*a));

	a->refs = 1;
	a->name = sl_xstrdup(name);
	a->res.name = a->name;
	a->res.type = type;
	a->res.status = st;
	a->res.error = sl_dns_status_name(st);
	return a;
}

static void
ans_add(struct ans *a, const char *text, size_t len, unsigned int pref,
    const uint8_t *addr, size_t addrlen)
{
	struct sl_dns_rr *rr;

	if (a->res.count == a->alloc) {
		a->alloc = a->alloc ? a->alloc * 2 : 4;
		a->rr = sl_xreallocarray(a->rr, a->alloc, sizeof(*a->rr));
		a->texts =
		    sl_xreallocarray(a->texts, a->alloc, sizeof(*a->texts));
	}
	rr = &a->rr[a->res.count];
	memset(rr, 0, sizeof(*rr));
	a->texts[a->res.count] = sl_xstrndup(text, len);
	rr->text = a->texts[a->res.count];
	rr->len = len;
	rr->pref = pref;
	if (addr != NULL && addrlen <= sizeof(rr->addr))
		memcpy(rr->addr, addr, addrlen);
	a->res.count++;
	a->res.rr = a->rr;
}

static struct ans *
ans_copy(const struct sl_dns_result *r)
{
	struct ans *a = ans_new(r->name, r->type, r->status);
	size_t i;

	a->res.ttl = r->ttl;
	a->res.error = r->error;
	for (i = 0; i < r->count; i++)
		ans_add(a, r->rr[i].text, r->rr[i].len, r->rr[i].pref,
		    r->rr[i].addr, sizeof(r->rr[i].addr));
	return a;
}

static struct ans *
ans_ref(struct ans *a)
{
	a->refs++;
	return a;
}

/* Drops a reference; the last one frees. */
static void
ans_free(struct ans **ap)
{
	struct ans *a = *ap;
	size_t i;

	if (a == NULL)
		return;
	*ap = NULL;
	if (--a->refs > 0)
		return;
	for (i = 0; i < a->res.count; i++)
		free(a->texts[i]);
	free(a->texts);
	free(a->rr);
	free(a->name);
	free(a);
}

/* --- names -------------------------------------------------------------- */

const char *
sl_dns_status_name(enum sl_dns_status s)
{
	static const char *const names[] = { "ok", "nxdomain", "nodata",
		"timeout", "servfail", "error" };

	if ((size_t)s < SL_NELEM(names))
		return names[s];
	return "error";
}

bool
sl_dns_has_addr(const struct sl_dns_result *r, const uint8_t addr[16])
{
	bool v4 = sl_addr_is_v4(addr);
	size_t i;

	if (r->type != (v4 ? SL_DNS_A : SL_DNS_AAAA))
		return false;
	for (i = 0; i < r->count; i++)
		if (v4 ? memcmp(r->rr[i].addr, addr + 12, 4) == 0
		       : memcmp(r->rr[i].addr, addr, 16) == 0)
			return true;
	return false;
}

const char *
sl_dns_type_name(enum sl_dns_type t)
{
	switch (t) {
	case SL_DNS_A:
		return "A";
	case SL_DNS_AAAA:
		return "AAAA";
	case SL_DNS_TXT:
		return "TXT";
	case SL_DNS_PTR:
		return "PTR";
	case SL_DNS_MX:
		return "MX";
	}
	return "?";
}

static bool
type_known(enum sl_dns_type t)
{
	return t == SL_DNS_A || t == SL_DNS_AAAA || t == SL_DNS_TXT ||
	    t == SL_DNS_PTR || t == SL_DNS_MX;
}

int
sl_dns_reverse_name(const char *ip, const char *zone, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t a[16];
	size_t off = 0;
	int i, n;

	if (inet_pton(AF_INET, ip, a) == 1) {
		n = snprintf(buf, size, "%u.%u.%u.%u.%s", a[3], a[2], a[1],
		    a[0], zone ? zone : "in-addr.arpa");
		return n < 0 || (size_t)n >= size ? -1 : 0;
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return -1;
	for (i = 15; i >= 0; i--) {
		if (off + 4 >= size)
			return -1;
		buf[off++] = hex[a[i] & 0xf];
		buf[off++] = '.';
		buf[off++] = hex[a[i] >> 4];
		buf[off++] = '.';
	}
	n = snprintf(buf + off, size - off, "%s", zone ? zone : "ip6.arpa");
	return n < 0 || (size_t)n >= size - off ? -1 : 0;
}

/* --- dns_servers ------------------------------------------------------- */

static int
server_item(const char *item, char **out_r)
{
	char host[64];
	const char *p, *port = NULL;
	unsigned long pn = 53;
	uint8_t a[16];
	size_t hl;
	char *end;
	bool v6;

	if (item[0] == '[') {
		p = strchr(item, ']');
		if (p == NULL)
			return -1;
		hl = (size_t)(p - item - 1);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, item + 1, hl);
		host[hl] = '\0';
		if (p[1] == ':')
			port = p + 2;
		else if (p[1] != '\0')
			return -1;
		v6 = true;
	} else {
		p = strchr(item, ':');
		if (p != NULL && strchr(p + 1, ':') == NULL) {
			hl = (size_t)(p - item);
			port = p + 1;
		} else {
			hl = strlen(item); /* IPv4, or a bare IPv6 */
		}
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, item, hl);
		host[hl] = '\0';
		v6 = strchr(host, ':') != NULL;
	}
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, a) != 1)
		return -1;
	if (port != NULL) {
		if (!isdigit((unsigned char)port[0]))
			return -1;
		pn = strtoul(port, &end, 10);
		if (*end != '\0' || pn == 0 || pn > 65535)
			return -1;
	}
	*out_r = v6 ? sl_xasprintf("[%s]:%lu", host, pn)
	            : sl_xasprintf("%s:%lu", host, pn);
	return 0;
}

int
sl_dns_servers_csv(const struct sl_strlist *l, char **csv_r, char **error_r)
{
	char *csv = sl_xstrdup(""), *item, *next;
	size_t i;

	for (i = 0; i < l->count; i++) {
		if (server_item(l->items[i], &item) != 0) {
			free(csv);
			*error_r = sl_xasprintf("bad address %s (ADDRESS, "
			                        "ADDRESS:PORT or [IPV6]:PORT)",
			    l->items[i]);
			return -1;
		}
		next = sl_xasprintf("%s%s%s", csv, i ? "," : "", item);
		free(item);
		free(csv);
		csv = next;
	}
	*csv_r = csv;
	return 0;
}

/* --- cache ------------------------------------------------------------- */

struct centry {
	struct sl_ttlnode node; /* first: the table's node is the entry */
	struct ans *a;
};

struct sl_dns_cache {
	struct sl_ttlmap map;
	struct sl_dns_result out;
};

/* what a cache entry is looked up by */
struct ckey {
	const char *name;
	enum sl_dns_type type;
};

static uint32_t
key_hash(const char *name, enum sl_dns_type type)
{
	uint32_t h = 2166136261u ^ (uint32_t)type;

	for (; *name != '\0'; name++) {
		h ^= (uint8_t)tolower((unsigned char)*name);
		h *= 16777619u;
	}
	return h;
}

static bool
centry_match(const struct sl_ttlnode *n, const void *key)
{
	const struct centry *e = (const struct centry *)n;
	const struct ckey *k = key;

	return e->a->res.type == k->type &&
	    strcasecmp(e->a->name, k->name) == 0;
}

static void
centry_free(struct sl_ttlnode *n)
{
	struct centry *e = (struct centry *)n;

	ans_free(&e->a);
	free(e);
}

struct sl_dns_cache *
sl_dns_cache_new(size_t max_entries)
{
	struct sl_dns_cache *c = sl_xcalloc(1, sizeof(*c));

	sl_ttlmap_init(&c->map, max_entries, centry_free);
	return c;
}

void
sl_dns_cache_reset(struct sl_dns_cache *c, size_t max_entries)
{
	sl_ttlmap_clear(&c->map);
	sl_ttlmap_init(&c->map, max_entries, centry_free);
}

void
sl_dns_cache_free(struct sl_dns_cache **cp)
{
	struct sl_dns_cache *c = *cp;

	if (c == NULL)
		return;
	sl_ttlmap_clear(&c->map);
	free(c);
	*cp = NULL;
}

static bool
cacheable(const struct sl_dns_cache *c, const struct sl_dns_result *res)
{
	return c->map.max > 0 && res->ttl > 0 &&
	    (res->status == SL_DNS_OK || res->status == SL_DNS_NXDOMAIN ||
	        res->status == SL_DNS_NODATA);
}

/* Keeps a (a reference, not a copy) for res->ttl seconds. */
static void
cache_put_ans(struct sl_dns_cache *c, struct ans *a, uint64_t now_ms)
{
	const struct sl_dns_result *res = &a->res;
	const struct ckey k = { res->name, res->type };
	struct centry *e = sl_xcalloc(1, sizeof(*e));

	e->a = a;
	e->node.hash = key_hash(res->name, res->type);
	e->node.expires_ms = now_ms + (uint64_t)res->ttl * 1000;
	sl_ttlmap_put(&c->map, &e->node, centry_match, &k);
}

void
sl_dns_cache_put(struct sl_dns_cache *c, const struct sl_dns_result *res,
    uint64_t now_ms)
{
	if (cacheable(c, res))
		cache_put_ans(c, ans_copy(res), now_ms);
}

/* The live entry for name/type, or NULL (an expired one goes). */
static struct centry *
cache_live(struct sl_dns_cache *c, const char *name, enum sl_dns_type type,
    uint64_t now_ms)
{
	const struct ckey k = { name, type };

	return (struct centry *)sl_ttlmap_find(&c->map, key_hash(name, type),
	    centry_match, &k, now_ms);
}

/* e's answer as a hit at now_ms: the TTL left, rounded up */
static void
hit_result(const struct centry *e, uint64_t now_ms, struct sl_dns_result *out)
{
	*out = e->a->res;
	out->ttl = (unsigned int)((e->node.expires_ms - now_ms + 999) / 1000);
	out->cached = true;
}

const struct sl_dns_result *
sl_dns_cache_get(struct sl_dns_cache *c, const char *name,
    enum sl_dns_type type, uint64_t now_ms)
{
	struct centry *e = cache_live(c, name, type, now_ms);

	if (e == NULL)
		return NULL;
	hit_result(e, now_ms, &c->out);
	return &c->out;
}

size_t
sl_dns_cache_count(const struct sl_dns_cache *c)
{
	return c->map.count;
}

/* --- the resolver ------------------------------------------------------ */

struct sock {
	int fd;
	struct event *ev;
	struct sock *next;
};

/* Spare queries a resolver keeps; none under ASan, which then sees a
 * query used after its free. */
#ifdef __SANITIZE_ADDRESS__
#define QUERY_SPARE_MAX 0
#else
#define QUERY_SPARE_MAX 256
#endif

struct sl_dns_query {
	struct sl_resolver *r;
	sl_dns_fn fn;
	void *arg;
	char *name; /* name_buf, or allocated if longer */
	enum sl_dns_type type;
	char sessid[32];
	char name_buf[80];
	struct event *timer;           /* the deadline (queries sent only) */
	struct ans *hit;               /* an answer waiting for delivery ... */
	struct sl_dns_result hit_res;  /* ... as delivered */
	struct sl_dns_query *due_next; /* in r->due, if hit */
	bool in_ares;                  /* c-ares's callback has not run yet */
	bool user_done;                /* fn ran, or the plugin cancelled */
	bool starting; /* inside ares_query(): deliver from the loop */
	struct sl_dns_query *prev, *next;
};

struct sl_resolver {
	struct event_base *base;
	ares_channel ch;
	struct event *timer;
	struct sock *socks;
	struct sl_dns_cache *cache;
	unsigned int timeout_ms;
	size_t cache_size;
	char *servers;
	struct sl_dns_query *queries;
	/* freed queries kept for the next lookups (about a dozen a message),
	 * linked by next */
	struct sl_dns_query *spare;
	size_t nspare;
	/* answers known at once (cache hits, bad queries, immediate
	 * failures), delivered in order by one event, never inside
	 * sl_dns_lookup() */
	struct event *due_ev;
	struct sl_dns_query *due, **due_tail;
};

static void
arm_timer(struct sl_resolver *r)
{
	struct timeval tv, *tvp;

	tvp = ares_timeout(r->ch, NULL, &tv);
	if (tvp == NULL)
		evtimer_del(r->timer);
	else
		evtimer_add(r->timer, tvp);
}

static void
ares_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_resolver *r = arg;

	(void)fd;
	(void)what;
	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(r);
}

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_resolver *r = arg;

	ares_process_fd(r->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	arm_timer(r);
}

/* c-ares opens, watches and closes its sockets through this. */
static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct sl_resolver *r = data;
	struct sock **pp, *s;

	for (pp = &r->socks; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->fd == fd)
			break;
	s = *pp;
	if (!readable && !writable) {
		if (s != NULL) {
			*pp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = sl_xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = r->socks;
		r->socks = s;
	} else {
		event_free(s->ev);
	}
	s->ev = event_new(r->base, fd,
	    EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0),
	    sock_cb, r);
	event_add(s->ev, NULL);
}

static void
query_free(struct sl_dns_query *q)
{
	struct sl_resolver *r = q->r;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		r->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	if (q->timer != NULL)
		event_free(q->timer);
	ans_free(&q->hit);
	if (q->name != q->name_buf)
		free(q->name);
#if QUERY_SPARE_MAX > 0
	if (r->nspare < QUERY_SPARE_MAX) {
		q->next = r->spare;
		r->spare = q;
		r->nspare++;
		return;
	}
#endif
	free(q);
}

/* A zeroed query: a spare one, or a new one. */
static struct sl_dns_query *
query_alloc(struct sl_resolver *r)
{
	struct sl_dns_query *q = r->spare;

	if (q == NULL)
		return sl_xcalloc(1, sizeof(*q));
	r->spare = q->next;
	r->nspare--;
	memset(q, 0, sizeof(*q));
	return q;
}

static void
deliver(struct sl_dns_query *q, const struct sl_dns_result *res)
{
	q->user_done = true;
	if (q->timer != NULL)
		evtimer_del(q->timer);
	sl_log(LOG_DEBUG, q->sessid,
	    "dns result name=%s type=%s status=%s count=%zu ttl=%u cached=%s",
	    res->name, sl_dns_type_name(res->type),
	    sl_dns_status_name(res->status), res->count, res->ttl,
	    res->cached ? "yes" : "no");
	q->fn(q->arg, res);
}

/* q's answer a (a reference it takes over) is known: deliver it soon. */
static void
due_push(struct sl_dns_query *q, struct ans *a)
{
	struct sl_resolver *r = q->r;

	q->hit = a;
	q->hit_res = a->res;
	q->due_next = NULL;
	*r->due_tail = q;
	r->due_tail = &q->due_next;
	if (r->due == q)
		event_active(r->due_ev, EV_TIMEOUT, 0);
}

static void
due_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_resolver *r = arg;
	struct sl_dns_query *q, *next;

	(void)fd;
	(void)what;
	/* what the callbacks look up now waits for the next round */
	q = r->due;
	r->due = NULL;
	r->due_tail = &r->due;
	for (; q != NULL; q = next) {
		next = q->due_next;
		if (!q->user_done)
			deliver(q, &q->hit_res);
		query_free(q);
	}
}

void
sl_resolver_settle(struct sl_resolver *r)
{
	int round;

	for (round = 0; round < 4 && r->due != NULL; round++)
		due_cb(-1, 0, r);
}

/* RFC 2308: a negative answer lives min(SOA TTL, SOA MINIMUM). */
static unsigned int
neg_ttl(ns_msg *msg)
{
	ns_rr rr;
	uint32_t min;
	int i, n = ns_msg_count(*msg, ns_s_ns);

	for (i = 0; i < n; i++) {
		if (ns_parserr(msg, ns_s_ns, i, &rr) != 0)
			break;
		if (ns_rr_type(rr) != ns_t_soa || ns_rr_rdlen(rr) < 20)
			continue;
		min = ns_get32(ns_rr_rdata(rr) + ns_rr_rdlen(rr) - 4);
		return ns_rr_ttl(rr) < min ? ns_rr_ttl(rr) : min;
	}
	return SL_DNS_NEG_TTL;
}

static void
parse_rr(struct ans *a, ns_msg *msg, ns_rr *rr)
{
	const uint8_t *d = ns_rr_rdata(*rr);
	size_t len = ns_rr_rdlen(*rr), off, n;
	char text[NS_MAXDNAME], *buf;
	unsigned int pref = 0;
	const uint8_t *p = d;

	switch (a->res.type) {
	case SL_DNS_A:
	case SL_DNS_AAAA:
		if (len != (a->res.type == SL_DNS_A ? 4u : 16u))
			return;
		inet_ntop(a->res.type == SL_DNS_A ? AF_INET : AF_INET6, d, text,
		    sizeof(text));
		ans_add(a, text, strlen(text), 0, d, len);
		return;
	case SL_DNS_TXT:
		buf = sl_xmalloc(len + 1);
		for (off = 0, n = 0; off < len; off += 1 + d[off]) {
			if (off + 1 + d[off] > len)
				break;
			memcpy(buf + n, d + off + 1, d[off]);
			n += d[off];
		}
		ans_add(a, buf, n, 0, NULL, 0);
		free(buf);
		return;
	case SL_DNS_MX:
		if (len < 3)
			return;
		pref = ns_get16(d);
		p = d + 2;
		SL_FALLTHROUGH;
	case SL_DNS_PTR:
		if (dn_expand(ns_msg_base(*msg), ns_msg_end(*msg), p, text,
		        sizeof(text)) < 0)
			return;
		n = strlen(text);
		if (n > 0 && text[n - 1] == '.')
			text[--n] = '\0';
		ans_add(a, text, n, pref, NULL, 0);
		return;
	}
}

/* The answer section's records of the type asked, and the TTLs. */
static struct ans *
parse_answer(const char *name, enum sl_dns_type type, int status,
    const uint8_t *abuf, int alen)
{
	struct ans *a;
	ns_msg msg;
	ns_rr rr;
	uint32_t ttl = UINT32_MAX;
	int i, n;

	a = ans_new(name, type, SL_DNS_OK);
	if (abuf == NULL || alen <= 0 || ns_initparse(abuf, alen, &msg) != 0) {
		a->res.status =
		    status == ARES_ENOTFOUND ? SL_DNS_NXDOMAIN : SL_DNS_NODATA;
		a->res.ttl = SL_DNS_NEG_TTL;
		a->res.error = sl_dns_status_name(a->res.status);
		return a;
	}
	n = ns_msg_count(msg, ns_s_an);
	for (i = 0; i < n && status == ARES_SUCCESS; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) != 0)
			break;
		if (ns_rr_class(rr) != ns_c_in)
			continue;
		if (ns_rr_ttl(rr) < ttl)
			ttl = ns_rr_ttl(rr);
		if ((int)ns_rr_type(rr) == (int)type)
			parse_rr(a, &msg, &rr);
	}
	if (a->res.count > 0) {
		a->res.ttl = ttl;
		return a;
	}
	a->res.status =
	    status == ARES_ENOTFOUND ? SL_DNS_NXDOMAIN : SL_DNS_NODATA;
	a->res.error = sl_dns_status_name(a->res.status);
	a->res.ttl = neg_ttl(&msg);
	return a;
}

static void
ares_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct sl_dns_query *q = arg;
	struct sl_resolver *r = q->r;
	struct ans *a;

	(void)timeouts;
	q->in_ares = false;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return; /* sl_resolver_free frees what is left */
	switch (status) {
	case ARES_SUCCESS:
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		a = parse_answer(q->name, q->type, status, abuf, alen);
		if (cacheable(r->cache, &a->res))
			cache_put_ans(r->cache, ans_ref(a), sl_now_ms());
		break;
	case ARES_ETIMEOUT:
		a = ans_new(q->name, q->type, SL_DNS_TIMEOUT);
		break;
	case ARES_ESERVFAIL:
	case ARES_EREFUSED:
	case ARES_ECONNREFUSED:
		/* c-ares 1.18 ends a query every server REFUSED (or that
		 * no server could take) with ECONNREFUSED */
		a = ans_new(q->name, q->type, SL_DNS_SERVFAIL);
		a->res.error = status == ARES_ESERVFAIL ? "SERVFAIL"
		    : status == ARES_EREFUSED           ? "REFUSED"
		                              : "refused-or-unreachable";
		break;
	default:
		a = ans_new(q->name, q->type, SL_DNS_ERROR);
		a->res.error = ares_strerror(status);
		break;
	}
	if (q->starting && !q->user_done) {
		/* failed at once (no server ...): deliver from the loop */
		evtimer_del(q->timer);
		due_push(q, a);
		return;
	}
	if (!q->user_done)
		deliver(q, &a->res);
	ans_free(&a);
	query_free(q);
}

/* The deadline passed. */
static void
query_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_dns_query *q = arg;
	struct ans *a;

	(void)fd;
	(void)what;
	a = ans_new(q->name, q->type, SL_DNS_TIMEOUT);
	sl_log(LOG_INFO, q->sessid, "dns timeout name=%s type=%s after=%ums",
	    q->name, sl_dns_type_name(q->type), q->r->timeout_ms);
	deliver(q, &a->res);
	ans_free(&a);
	if (!q->in_ares)
		query_free(q);
}

static int
apply_servers(struct sl_resolver *r, const struct sl_settings *s,
    char **error_r)
{
	char *csv;
	int rc;

	if (sl_dns_servers_csv(&s->dns_servers, &csv, error_r) != 0)
		return -1;
	if (r->servers != NULL && strcmp(csv, r->servers) == 0) {
		free(csv);
		return 0;
	}
	if (csv[0] != '\0') {
		rc = ares_set_servers_ports_csv(r->ch, csv);
		if (rc != ARES_SUCCESS) {
			*error_r = sl_xasprintf("dns_servers %s: %s", csv,
			    ares_strerror(rc));
			free(csv);
			return -1;
		}
	}
	free(r->servers);
	r->servers = csv;
	return 0;
}

struct sl_resolver *
sl_resolver_new(struct event_base *base, const struct sl_settings *s,
    char **error_r)
{
	struct sl_resolver *r = sl_xcalloc(1, sizeof(*r));
	struct ares_options o;
	char lookups[] = "b";
	int rc;

	memset(&o, 0, sizeof(o));
	o.timeout = (int)s->dns_timeout_ms;
	o.tries = 1;
	o.flags = ARES_FLAG_NOSEARCH;
	o.lookups = lookups; /* DNS only, never /etc/hosts */
	o.sock_state_cb = sock_state_cb;
	o.sock_state_cb_data = r;
	r->base = base;
	rc = ares_init_options(&r->ch, &o,
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS |
	        ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		*error_r = sl_xasprintf("c-ares: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	r->timer = evtimer_new(base, ares_timer_cb, r);
	r->due_ev = event_new(base, -1, 0, due_cb, r);
	r->due_tail = &r->due;
	r->cache = sl_dns_cache_new(s->dns_cache_size);
	r->cache_size = s->dns_cache_size;
	r->timeout_ms = s->dns_timeout_ms;
	if (apply_servers(r, s, error_r) != 0) {
		sl_resolver_free(&r);
		return NULL;
	}
	return r;
}

int
sl_resolver_configure(struct sl_resolver *r, const struct sl_settings *s,
    char **error_r)
{
	r->timeout_ms = s->dns_timeout_ms;
	if (s->dns_cache_size != r->cache_size) {
		sl_dns_cache_reset(r->cache, s->dns_cache_size);
		r->cache_size = s->dns_cache_size;
	}
	return apply_servers(r, s, error_r);
}

void
sl_resolver_free(struct sl_resolver **rp)
{
	struct sl_resolver *r = *rp;

	if (r == NULL)
		return;
	ares_destroy(r->ch); /* every pending ares_cb: EDESTRUCTION */
	while (r->queries != NULL)
		query_free(r->queries);
	while (r->spare != NULL) {
		struct sl_dns_query *q = r->spare;

		r->spare = q->next;
		free(q);
	}
	while (r->socks != NULL)
		sock_state_cb(r, r->socks->fd, 0, 0);
	event_free(r->timer);
	event_free(r->due_ev);
	sl_dns_cache_free(&r->cache);
	free(r->servers);
	free(r);
	*rp = NULL;
}

struct sl_dns_query *
sl_resolver_lookup(struct sl_resolver *r, const char *sessid, const char *name,
    enum sl_dns_type type, sl_dns_fn fn, void *arg)
{
	struct sl_dns_query *q = query_alloc(r);
	struct centry *e;
	struct ans *a;
	uint64_t now;
	char rev[80];
	size_t n;

	q->r = r;
	q->fn = fn;
	q->arg = arg;
	q->type = type;
	if (sessid == NULL)
		sessid = "-";
	n = strnlen(sessid, sizeof(q->sessid) - 1);
	memcpy(q->sessid, sessid, n); /* query_alloc zeroed the rest */
	if (type == SL_DNS_PTR &&
	    sl_dns_reverse_name(name, NULL, rev, sizeof(rev)) == 0)
		name = rev;
	n = strlen(name);
	if (n < sizeof(q->name_buf)) {
		memcpy(q->name_buf, name, n + 1);
		q->name = q->name_buf;
	} else
		q->name = sl_xstrdup(name);
	if (n > 1 && q->name[n - 1] == '.')
		q->name[n - 1] = '\0';
	q->next = r->queries;
	if (r->queries != NULL)
		r->queries->prev = q;
	r->queries = q;

	if (!type_known(type) || q->name[0] == '\0' ||
	    strlen(q->name) > NS_MAXDNAME - 2) {
		a = ans_new(q->name, type, SL_DNS_ERROR);
		a->res.error = "bad query";
		due_push(q, a);
		return q;
	}
	now = sl_now_ms();
	e = cache_live(r->cache, q->name, type, now);
	if (e != NULL) {
		due_push(q, ans_ref(e->a));
		hit_result(e, now, &q->hit_res);
		sl_log(LOG_DEBUG, q->sessid,
		    "dns cache hit name=%s type=%s ttl_left=%u", q->name,
		    sl_dns_type_name(type), q->hit_res.ttl);
		return q;
	}
	q->timer = evtimer_new(r->base, query_timer_cb, q);
	sl_log(LOG_DEBUG, q->sessid, "dns query name=%s type=%s", q->name,
	    sl_dns_type_name(type));
	q->in_ares = true;
	{
		struct timeval tv = sl_timeval_ms(r->timeout_ms);

		evtimer_add(q->timer, &tv);
	}
	q->starting = true;
	ares_query(r->ch, q->name, ns_c_in, (int)type, ares_cb, q);
	q->starting = false;
	arm_timer(r);
	return q;
}

void
sl_dns_cancel(struct sl_dns_query **qp)
{
	struct sl_dns_query *q = *qp;

	*qp = NULL;
	if (q == NULL || q->user_done)
		return;
	q->user_done = true;
	if (q->in_ares) {
		evtimer_del(q->timer);
		return; /* ares_cb frees it */
	}
	if (q->hit != NULL)
		return; /* due: due_cb frees it */
	query_free(q);
}

struct sl_dns_query *
sl_dns_lookup(struct sl_conn *c, const char *name, enum sl_dns_type type,
    sl_dns_fn fn, void *arg)
{
	struct sl_resolver *r;

	r = sl_loop_resolver(c->loop, c->rt->cfg);
	if (r == NULL)
		return NULL;
	return sl_resolver_lookup(r, c->id, name, type, fn, arg);
}
