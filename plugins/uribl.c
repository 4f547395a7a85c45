/*
 * uribl - refuse messages whose URIs point at domains or addresses listed
 * in URI blocklists such as SURBL and URIBL (sluice-plugins(7)).
 *
 * Hooks header and body feed the message to the extractor
 * (uribl/extract.c) as it streams in; each new name to look up (the
 * registered domain of a host, or an IPv4 address reversed) starts its A
 * queries in every zone at once, so most answers are in by the end of
 * DATA.  Hook data_post collects them, suspending until the last one is
 * in: 127.0.0.X with X & mask != 0 is a hit (550 5.7.1); 127.0.0.1 is
 * the lists' "query refused" and counts as a DNS failure.  At most
 * max_lookups distinct names and max_scan decoded bytes per message: past
 * a cap the plugin logs and stops extracting.  Per-message state hangs
 * off the connection (its free function cancels the queries) and starts
 * afresh for each transaction.
 *
 *	plugin uribl zones=multi.surbl.org:0xfe,multi.uribl.com:0x0e
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <sluice/plugin.h>

#include "xmalloc.h"

#include "uribl/extract.h"

#define ZONES_MAX 16
#define ZONE_NAME_MAX 200
#define QNAME_MAX 253 /* RFC 1035 2.3.4, without the final dot */

enum dns_failure {
	DNS_FAILURE_SKIP = 0,
	DNS_FAILURE_TEMPFAIL,
};

struct zone {
	char name[ZONE_NAME_MAX + 1]; /* lower case, no final dot */
	unsigned int mask;            /* of the last octet; 0 = any */
};

struct uribl {
	/* options */
	struct sl_strlist zones_opt; /* zones= */
	struct sl_strlist headers;   /* headers= */
	struct sl_strlist two_level; /* two_level_tlds= */
	struct sl_strlist allow;     /* allow_domains= */
	bool allow_own;              /* allow_own_domain= */
	bool email_domains;          /* check_email_domains= */
	unsigned int max_lookups;    /* max_lookups= */
	size_t max_scan;             /* max_scan= */
	int dns_failure;             /* dns_failure= */
	/* built by init */
	struct zone zones[ZONES_MAX];
	size_t nzones;
	struct uribl_patterns *pat;
	struct uribl_suffixes *sfx;
};

static const char *const dns_failure_names[] = { "skip", "tempfail", NULL };

static const struct sl_conf_def uribl_conf[] = {
	{ .name = "zones",
	    .type = SL_CONF_LIST,
	    .def = NULL,
	    .offset = offsetof(struct uribl, zones_opt),
	    .help = "URI lists as ZONE[:MASK], e.g. multi.uribl.com:0x0e" },
	{ .name = "headers",
	    .type = SL_CONF_LIST,
	    .def = "Subject,From,Reply-To,Sender,To,Cc",
	    .offset = offsetof(struct uribl, headers),
	    .help = "header fields whose URIs are looked up" },
	{ .name = "two_level_tlds",
	    .type = SL_CONF_LIST,
	    .def = NULL,
	    .offset = offsetof(struct uribl, two_level),
	    .help = "more two-label public suffixes (co.uk) or @file" },
	{ .name = "allow_domains",
	    .type = SL_CONF_LIST,
	    .def = NULL,
	    .offset = offsetof(struct uribl, allow),
	    .help = "domains never looked up (with their subdomains)" },
	{ .name = "allow_own_domain",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = offsetof(struct uribl, allow_own),
	    .help = "never look up the domain of our host name (macro j)" },
	{ .name = "check_email_domains",
	    .type = SL_CONF_BOOL,
	    .def = "no",
	    .offset = offsetof(struct uribl, email_domains),
	    .help = "look up the domains of mail addresses too" },
	{ .name = "max_lookups",
	    .type = SL_CONF_UINT,
	    .def = "20",
	    .min = 1,
	    .max = 200,
	    .offset = offsetof(struct uribl, max_lookups),
	    .help = "distinct names looked up per message" },
	{ .name = "max_scan",
	    .type = SL_CONF_SIZE,
	    .def = "1M",
	    .min = 1024,
	    .max = 64 * 1024 * 1024,
	    .offset = offsetof(struct uribl, max_scan),
	    .help = "decoded bytes scanned per message" },
	{ .name = "dns_failure",
	    .type = SL_CONF_ENUM,
	    .def = "skip",
	    .offset = offsetof(struct uribl, dns_failure),
	    .choices = dns_failure_names,
	    .help = "a lookup that failed: skip it, or tempfail the message" },
	SL_CONF_END,
};

/* --- per message --------------------------------------------------------- */

struct msg;

/* A name looked up: "example.com", or "4.3.2.1" shown as "1.2.3.4". */
struct name {
	char *q;
	char *shown;
};

/* One query: a name in one zone. */
struct lookup {
	struct msg *m;
	struct sl_dns_query *q; /* while it runs */
	size_t name, zone;
	bool failed;       /* timeout, server failure, 127.0.0.1 */
	bool listed;       /* a hit under the zone's mask */
	const char *why;   /* failed: "timeout", "refused" ... */
	unsigned int bits; /* last octets of the 127.0.0.0/8 answers */
	char answer[16];   /* the first of them, for the logs */
};

struct msg {
	const struct uribl *st;
	struct sl_conn *conn;
	const char *pname; /* the instance's name (lives with the runtime) */
	struct uribl_extractor *x;
	char own[URIBL_HOST_MAX + 1]; /* our own domain, or "" */
	struct name *names;           /* looked up, max_lookups at most */
	size_t nnames;
	struct lookup *lk; /* max_lookups * nzones, by name then zone */
	size_t npending;
	struct lookup *hit;   /* the first listed answer */
	bool capped_lookups;  /* max_lookups reached */
	bool logged_scan_cap; /* the max_scan cap was logged */
	bool decided;         /* data_post gave its verdict */
	struct sl_async *a;   /* data_post, suspended */
};

/* Cancels what runs and forgets the message; m stays for the next one. */
static void
msg_clear(struct msg *m)
{
	/* only the first nnames names' lookups were ever used */
	size_t i, n = m->nnames * m->st->nzones;

	for (i = 0; i < n; i++)
		sl_dns_cancel(&m->lk[i].q);
	memset(m->lk, 0, n * sizeof(*m->lk));
	for (i = 0; i < m->nnames; i++) {
		if (m->names[i].shown != m->names[i].q)
			free(m->names[i].shown);
		free(m->names[i].q);
	}
	m->nnames = 0;
	m->npending = 0;
	m->hit = NULL;
	m->capped_lookups = false;
	m->logged_scan_cap = false;
	m->decided = false;
	uribl_extractor_free(&m->x);
	if (m->a != NULL)
		sl_async_done(&m->a, SL_DENYSOFT);
}

static void
msg_free(void *arg)
{
	struct msg *m = arg;

	msg_clear(m);
	free(m->lk);
	free(m->names);
	free(m);
}

static bool host_found(void *arg, const char *host);

/* Starts the message of the current transaction. */
static void
msg_begin(struct msg *m, struct sl_hookctx *ctx)
{
	const struct uribl *st = m->st;

	msg_clear(m);
	m->pname = sl_hook_plugin_name(ctx);
	m->x = uribl_extractor_new(st->pat, &st->headers, st->max_scan,
	    host_found, m);
}

/* Our own domain (from the j macro, allow_own=yes) into m->own, or "". */
static void
own_domain(struct msg *m)
{
	const struct uribl *st = m->st;
	const char *j;
	char host[URIBL_HOST_MAX + 1];
	size_t n;

	m->own[0] = '\0';
	j = st->allow_own ? sl_conn_macro(m->conn, "j") : NULL;
	if (j != NULL && (n = strlen(j)) < sizeof(host)) {
		memcpy(host, j, n + 1);
		while (n > 0 && host[n - 1] == '.')
			host[--n] = '\0';
		for (n = 0; host[n] != '\0'; n++)
			if (host[n] >= 'A' && host[n] <= 'Z')
				host[n] = (char)(host[n] + 'a' - 'A');
		if (uribl_query_name(st->sfx, host, m->own, sizeof(m->own)) !=
		    URIBL_NAME_DOMAIN)
			m->own[0] = '\0';
	}
}

/*
 * The message state for the hook's transaction: the connection keeps one,
 * and the transaction is marked with it (a mark without a free function,
 * never dereferenced), so a new transaction - even one with a reused id
 * after XCLIENT - starts afresh.  NULL if create is false and this
 * transaction has none.
 */
static struct msg *
msg_get(const struct uribl *st, struct sl_hookctx *ctx, bool create)
{
	struct sl_conn *c = sl_hook_conn(ctx);
	struct sl_txn *t = sl_hook_txn(ctx);
	struct msg *m;

	if (t == NULL)
		return NULL;
	m = sl_conn_data_get(c, st);
	if (m != NULL && sl_txn_data_get(t, st) == m)
		return m;
	if (!create)
		return NULL;
	if (m == NULL) {
		m = sl_xcalloc(1, sizeof(*m));
		m->st = st;
		m->conn = c;
		m->names = sl_xcalloc(st->max_lookups, sizeof(*m->names));
		m->lk = sl_xcalloc((size_t)st->max_lookups * st->nzones,
		    sizeof(*m->lk));
		own_domain(m); /* the j macro is the connection's */
		sl_conn_data_set(c, st, m, msg_free);
	}
	msg_begin(m, ctx);
	sl_txn_data_set(t, st, m, NULL);
	return m;
}

/* --- lookups ------------------------------------------------------------- */

/* Whether name (of host) is one never looked up. */
static bool
is_allowed(const struct msg *m, const char *host, const char *name)
{
	const struct sl_strlist *l = &m->st->allow;
	size_t i, hl, il;

	if (m->own[0] != '\0' && strcmp(name, m->own) == 0)
		return true;
	hl = strlen(host);
	for (i = 0; i < l->count; i++) {
		if (strcasecmp(name, l->items[i]) == 0)
			return true;
		il = strlen(l->items[i]);
		if (hl == il && strcasecmp(host, l->items[i]) == 0)
			return true;
		if (hl > il && host[hl - il - 1] == '.' &&
		    strcasecmp(host + hl - il, l->items[i]) == 0)
			return true;
	}
	return false;
}

/* The first hit decides: the other queries are no longer needed. */
static void
cancel_pending(struct msg *m)
{
	size_t i, n = m->nnames * m->st->nzones;

	for (i = 0; i < n; i++) {
		if (m->lk[i].q != NULL) {
			sl_dns_cancel(&m->lk[i].q);
			m->npending--;
		}
	}
}

static enum sl_verdict decide(struct msg *m, int *code_r, const char **enh_r,
    char *text, size_t size);

static void
answer(void *arg, const struct sl_dns_result *r)
{
	struct lookup *lk = arg;
	struct msg *m = lk->m;
	const struct zone *z = &m->st->zones[lk->zone];
	const uint8_t *a;
	bool refused = false;
	char text[512];
	const char *enh;
	enum sl_verdict v;
	size_t i;
	int code;

	lk->q = NULL;
	m->npending--;
	switch (r->status) {
	case SL_DNS_OK:
		for (i = 0; i < r->count; i++) {
			a = r->rr[i].addr;
			if (a[0] != 127)
				continue; /* not a list answer */
			if (a[1] == 0 && a[2] == 0 && a[3] == 1) {
				refused = true;
				continue;
			}
			if (lk->answer[0] == '\0')
				snprintf(lk->answer, sizeof(lk->answer), "%s",
				    r->rr[i].text);
			lk->bits |= a[3];
		}
		lk->listed =
		    z->mask == 0 ? lk->bits != 0 : (lk->bits & z->mask) != 0;
		if (!lk->listed && refused) {
			lk->failed = true;
			lk->why = "refused";
		}
		break;
	case SL_DNS_NXDOMAIN:
	case SL_DNS_NODATA:
		break;
	default:
		lk->failed = true;
		lk->why = sl_dns_status_name(r->status);
		break;
	}
	sl_conn_log(m->conn, m->pname, LOG_DEBUG,
	    "lookup name=%s zone=%s status=%s answer=%s bits=0x%02x%s",
	    m->names[lk->name].shown, z->name,
	    refused && !lk->listed ? "refused" : sl_dns_status_name(r->status),
	    lk->answer[0] != '\0' ? lk->answer : "-", lk->bits,
	    lk->listed ? " listed=yes" : "");
	if (lk->listed && m->hit == NULL) {
		m->hit = lk;
		cancel_pending(m);
	}
	if (m->a == NULL || (m->hit == NULL && m->npending > 0))
		return;
	v = decide(m, &code, &enh, text, sizeof(text));
	if (v != SL_DECLINED)
		sl_async_reply(m->a, code, enh, "%s", text);
	sl_async_done(&m->a, v);
}

/*
 * The extractor found host: look up its name in every zone, unless it is
 * known already, allowed, or one too many.  Returns false to stop the
 * extractor.
 */
static bool
host_found(void *arg, const char *host)
{
	struct msg *m = arg;
	const struct uribl *st = m->st;
	char name[URIBL_HOST_MAX + 1], qname[QNAME_MAX + 2];
	enum uribl_name_kind kind;
	struct lookup *lk;
	size_t i, nlen, zlen;

	if (m->hit != NULL)
		return false;
	kind = uribl_query_name(st->sfx, host, name, sizeof(name));
	if (kind == URIBL_NAME_NONE)
		return true;
	if (kind == URIBL_NAME_DOMAIN && is_allowed(m, host, name))
		return true;
	for (i = 0; i < m->nnames; i++)
		if (strcmp(m->names[i].q, name) == 0)
			return true;
	if (m->nnames == st->max_lookups) {
		m->capped_lookups = true;
		sl_conn_log(m->conn, m->pname, LOG_INFO,
		    "cap=max_lookups max_lookups=%u next=%s action=stop "
		    "extracting",
		    st->max_lookups, name);
		return false;
	}
	m->names[m->nnames].q = sl_xstrdup(name);
	m->names[m->nnames].shown =
	    kind == URIBL_NAME_IP ? sl_xstrdup(host) : m->names[m->nnames].q;
	nlen = strlen(name);
	for (i = 0; i < st->nzones; i++) {
		lk = &m->lk[m->nnames * st->nzones + i];
		lk->m = m;
		lk->name = m->nnames;
		lk->zone = i;
		/* "NAME.ZONE" */
		zlen = strlen(st->zones[i].name);
		if (nlen + 1 + zlen > QNAME_MAX)
			continue; /* too long to ask: not listed */
		memcpy(qname, name, nlen);
		qname[nlen] = '.';
		memcpy(qname + nlen + 1, st->zones[i].name, zlen + 1);
		lk->q = sl_dns_lookup(m->conn, qname, SL_DNS_A, answer, lk);
		if (lk->q == NULL) {
			lk->failed = true;
			lk->why = "no resolver";
			continue;
		}
		m->npending++;
	}
	sl_conn_log(m->conn, m->pname, LOG_DEBUG, "uri host=%s name=%s", host,
	    name);
	m->nnames++;
	return true;
}

/* --- the verdict --------------------------------------------------------- */

/*
 * All answers are in, or one was a hit: logs the decision, records the
 * outcome and returns the verdict with its reply (code, enh, text).
 */
static enum sl_verdict
decide(struct msg *m, int *code_r, const char **enh_r, char *text, size_t size)
{
	const struct uribl *st = m->st;
	const struct lookup *lk, *failed = NULL;
	char detail[512];
	size_t i, n = m->nnames * st->nzones;
	const char *cap = m->capped_lookups ? " capped=max_lookups"
	    : m->logged_scan_cap            ? " capped=max_scan"
	                                    : "";

	m->decided = true;
	cancel_pending(m);
	uribl_extractor_free(&m->x);
	if ((lk = m->hit) != NULL) {
		snprintf(detail, sizeof(detail), "%s %s %s",
		    m->names[lk->name].shown, st->zones[lk->zone].name,
		    lk->answer);
		sl_conn_outcome_set(m->conn, m->pname, "fail", detail);
		sl_conn_log(m->conn, m->pname, LOG_INFO,
		    "verdict=deny reason=listed domain=%s zone=%s answer=%s "
		    "bits=0x%02x mask=0x%02x names=%zu outcome=fail",
		    m->names[lk->name].shown, st->zones[lk->zone].name,
		    lk->answer, lk->bits, st->zones[lk->zone].mask, m->nnames);
		*code_r = 550;
		*enh_r = "5.7.1";
		snprintf(text, size, "Message contains a listed URI: %s (%s)",
		    m->names[lk->name].shown, st->zones[lk->zone].name);
		return SL_DENY;
	}
	for (i = 0; i < n && failed == NULL; i++)
		if (m->lk[i].failed)
			failed = &m->lk[i];
	if (failed == NULL) {
		snprintf(detail, sizeof(detail), "names=%zu%s", m->nnames, cap);
		sl_conn_outcome_set(m->conn, m->pname, "pass", detail);
		/* a pass is in the queued line's results= */
		sl_conn_log(m->conn, m->pname, LOG_DEBUG,
		    "verdict=pass names=%zu%s outcome=pass", m->nnames, cap);
		return SL_DECLINED;
	}
	snprintf(detail, sizeof(detail), "%s %s %s",
	    m->names[failed->name].shown, st->zones[failed->zone].name,
	    failed->why);
	sl_conn_outcome_set(m->conn, m->pname, "error", detail);
	if (st->dns_failure == DNS_FAILURE_SKIP) {
		sl_conn_log(m->conn, m->pname, LOG_INFO,
		    "verdict=pass reason=dns_failure action=skip domain=%s "
		    "zone=%s error=%s names=%zu%s outcome=error",
		    m->names[failed->name].shown, st->zones[failed->zone].name,
		    failed->why, m->nnames, cap);
		return SL_DECLINED;
	}
	sl_conn_log(m->conn, m->pname, LOG_INFO,
	    "verdict=denysoft reason=dns_failure action=tempfail domain=%s "
	    "zone=%s error=%s names=%zu outcome=error",
	    m->names[failed->name].shown, st->zones[failed->zone].name,
	    failed->why, m->nnames);
	*code_r = 451;
	*enh_r = "4.4.3";
	snprintf(text, size, "URI blocklist lookup failed, try again later");
	return SL_DENYSOFT;
}

/* --- hooks --------------------------------------------------------------- */

/* Logs the max_scan cap once, when the extractor reached it. */
static void
check_scan_cap(struct msg *m)
{
	if (m->x == NULL || m->logged_scan_cap ||
	    !uribl_extract_scan_capped(m->x))
		return;
	m->logged_scan_cap = true;
	sl_conn_log(m->conn, m->pname, LOG_INFO,
	    "cap=max_scan max_scan=%zu scanned=%zu action=stop extracting",
	    m->st->max_scan, uribl_extract_scanned(m->x));
}

static enum sl_verdict
uribl_header(void *state, struct sl_hookctx *ctx)
{
	const struct sl_hookargs *args = sl_hook_args(ctx);
	struct msg *m;

	m = msg_get(state, ctx, true);
	if (m == NULL || m->x == NULL || args->name == NULL ||
	    args->value == NULL)
		return SL_DECLINED;
	uribl_extract_header(m->x, args->name, args->value);
	check_scan_cap(m);
	return SL_DECLINED;
}

static enum sl_verdict
uribl_body(void *state, struct sl_hookctx *ctx)
{
	const struct sl_hookargs *args = sl_hook_args(ctx);
	struct msg *m;

	m = msg_get(state, ctx, true);
	if (m == NULL || m->x == NULL || args->data == NULL)
		return SL_DECLINED;
	uribl_extract_body(m->x, args->data, args->len);
	check_scan_cap(m);
	return SL_DECLINED;
}

static enum sl_verdict
uribl_data_post(void *state, struct sl_hookctx *ctx)
{
	struct msg *m;
	char text[512];
	const char *enh;
	enum sl_verdict v;
	int code;

	/* A message without a header or body still gets its outcome. */
	m = msg_get(state, ctx, true);
	if (m == NULL || m->decided)
		return SL_DECLINED;
	if (m->x != NULL) {
		uribl_extract_finish(m->x);
		check_scan_cap(m);
	}
	if (m->hit == NULL && m->npending > 0) {
		m->a = sl_async_begin(ctx);
		return SL_PENDING;
	}
	v = decide(m, &code, &enh, text, sizeof(text));
	if (v != SL_DECLINED)
		sl_hook_reply(ctx, code, enh, "%s", text);
	return v;
}

/* --- configuration ------------------------------------------------------- */

static char uribl_error[512];

static int init_fail(const char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
init_fail(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(uribl_error, sizeof(uribl_error), fmt, ap);
	va_end(ap);
	*error_r = uribl_error;
	return -1;
}

/* "ZONE[:MASK]" -> z.  Returns 0, or -1 with *error_r set. */
static int
parse_zone(const char *item, struct zone *z, const char **error_r)
{
	const char *colon = strchr(item, ':');
	unsigned long mask = 0;
	size_t i, n;
	char *end;

	n = colon != NULL ? (size_t)(colon - item) : strlen(item);
	while (n > 0 && item[n - 1] == '.')
		n--;
	if (n == 0 || n > ZONE_NAME_MAX)
		return init_fail(error_r, "zones: bad zone '%s'", item);
	for (i = 0; i < n; i++) {
		char c = item[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 'a' - 'A');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		        c == '-' || c == '_' || c == '.') ||
		    (c == '.' && (i == 0 || item[i - 1] == '.')))
			return init_fail(error_r,
			    "zones: bad zone name in '%s'", item);
		z->name[i] = c;
	}
	z->name[n] = '\0';
	if (colon != NULL) {
		errno = 0;
		mask = strtoul(colon + 1, &end, 0);
		if (colon[1] == '\0' || *end != '\0' || errno != 0 ||
		    mask < 1 || mask > 255)
			return init_fail(error_r,
			    "zones: bad mask in '%s' (1 to 255, e.g. 0x0e)",
			    item);
	}
	z->mask = (unsigned int)mask;
	return 0;
}

static int
uribl_init(void **state_r, const char **error_r)
{
	struct uribl *st = *state_r;
	const char *bad;
	size_t i;

	if (st->zones_opt.count == 0)
		return init_fail(error_r,
		    "zones: at least one ZONE[:MASK] is required");
	if (st->zones_opt.count > ZONES_MAX)
		return init_fail(error_r, "zones: at most %d zones", ZONES_MAX);
	for (i = 0; i < st->zones_opt.count; i++)
		if (parse_zone(st->zones_opt.items[i], &st->zones[i],
		        error_r) == -1)
			return -1;
	st->nzones = st->zones_opt.count;
	st->sfx = uribl_suffixes_new(&st->two_level, &bad);
	if (st->sfx == NULL)
		return init_fail(error_r,
		    "two_level_tlds: '%s' is not a two-label suffix such as "
		    "co.uk",
		    bad);
	st->pat = uribl_patterns_new(st->email_domains, error_r);
	if (st->pat == NULL) {
		uribl_suffixes_free(&st->sfx);
		return -1;
	}
	return 0;
}

static void
uribl_fini(void *state)
{
	struct uribl *st = state;

	uribl_patterns_free(&st->pat);
	uribl_suffixes_free(&st->sfx);
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "uribl",
	.conf = uribl_conf,
	.state_size = sizeof(struct uribl),
	.init = uribl_init,
	.fini = uribl_fini,
	.hooks = { [SL_HOOK_HEADER] = uribl_header,
	    [SL_HOOK_BODY] = uribl_body,
	    [SL_HOOK_DATA_POST] = uribl_data_post },
};
