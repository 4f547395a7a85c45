/*
 * resolvable_fromhost - the sender's domain must be able to receive mail
 * (sluice-plugins(7)), as Postfix's reject_unknown_sender_domain and
 * qpsmtpd's resolvable_fromhost.
 *
 * At MAIL the domain of a non-null sender is looked up: its MX records;
 * on NODATA its own A and AAAA (the implicit MX of RFC 5321 5.1); with
 * check_mx_hosts, the A and AAAA of up to MAX_HOSTS exchangers, until one
 * gives an address outside bad_networks.  A null MX (RFC 7505) is refused
 * with 5.7.27, NXDOMAIN and a domain without a usable host with 5.1.8; a
 * DNS failure tempfails or is skipped (dns_failure=).  An address literal
 * needs no DNS: it must be valid and outside bad_networks.
 *
 * The transaction does not exist yet at MAIL, so the lookup lives in
 * per-connection data: check_at=mail suspends MAIL until the verdict is
 * in; check_at=rcpt lets MAIL through and collects the verdict at each
 * RCPT of that transaction, suspending the first one if the answers are
 * not in yet.  A new MAIL, RSET, a new client identity (XCLIENT) and the
 * connection's end cancel whatever is in flight.  Relay clients are not
 * checked.
 *
 *	plugin resolvable_fromhost check_at=rcpt dns_failure=tempfail
 */
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

#include "log.h"
#include "xmalloc.h"

/* Exchangers checked for an address: enough for any sane domain. */
#define MAX_HOSTS 10
#define BAD_NETWORKS_DEFAULT                                                   \
	"0.0.0.0/8,127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,"       \
	"169.254.0.0/16,::1,fc00::/7,fe80::/10"

enum rfh_check_at { CHECK_AT_MAIL = 0, CHECK_AT_RCPT };
enum rfh_dns_failure { DNS_FAILURE_TEMPFAIL = 0, DNS_FAILURE_SKIP };

struct rfh {
	int check_at;                    /* enum rfh_check_at */
	bool check_mx_hosts;             /* check_mx_hosts= */
	struct sl_cidrlist bad_networks; /* bad_networks= */
	int dns_failure;                 /* enum rfh_dns_failure */
};

static const char *const check_at_choices[] = { "mail", "rcpt", NULL };
static const char *const dns_failure_choices[] = { "tempfail", "skip", NULL };

static const struct sl_conf_def rfh_conf[] = {
	{ .name = "check_at",
	    .type = SL_CONF_ENUM,
	    .def = "mail",
	    .choices = check_at_choices,
	    .offset = offsetof(struct rfh, check_at),
	    .help = "where the verdict lands: mail or rcpt" },
	{ .name = "check_mx_hosts",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = offsetof(struct rfh, check_mx_hosts),
	    .help = "an exchanger must resolve outside bad_networks" },
	{ .name = "bad_networks",
	    .type = SL_CONF_CIDRS,
	    .def = BAD_NETWORKS_DEFAULT,
	    .offset = offsetof(struct rfh, bad_networks),
	    .help = "addresses no mail server of the sender may have" },
	{ .name = "dns_failure",
	    .type = SL_CONF_ENUM,
	    .def = "tempfail",
	    .choices = dns_failure_choices,
	    .offset = offsetof(struct rfh, dns_failure),
	    .help = "what a DNS timeout or failure does: tempfail or skip" },
	SL_CONF_END,
};

enum rfh_phase {
	PHASE_IDLE = 0, /* nothing to check in this transaction */
	PHASE_RUNNING,  /* lookups in flight */
	PHASE_DONE,     /* the verdict is in */
};

struct rfh_look;

/* One address query of the second stage. */
struct rfh_slot {
	struct rfh_look *lk;
	struct sl_dns_query *q;
	const char *host; /* points into lk->hosts or lk->domain */
};

/* The per-connection state of one instance: the current transaction's. */
struct rfh_look {
	const struct rfh *st;
	struct sl_conn *conn;
	const char *name; /* the instance's name (lives with the runtime) */
	enum rfh_phase phase;
	char *sender, *domain;
	struct sl_dns_query *mxq;
	bool implicit; /* no MX: the domain's own addresses */
	char *hosts[MAX_HOSTS];
	size_t nhosts;
	struct rfh_slot slots[2 * MAX_HOSTS]; /* A and AAAA per host */
	size_t nslots;
	unsigned int pending; /* slots still waiting */
	size_t seen;          /* addresses found, usable or not */
	char failure[160];    /* the first failed address query, or "" */
	struct sl_async *a;   /* a suspended hook waiting for the verdict */
	enum sl_verdict v;    /* PHASE_DONE: DECLINED or a denial */
	int code;
	const char *enh;
	char text[640];
};

/* --- state ------------------------------------------------------------- */

static void
look_cancel(struct rfh_look *lk)
{
	size_t i;

	sl_dns_cancel(&lk->mxq);
	for (i = 0; i < lk->nslots; i++)
		sl_dns_cancel(&lk->slots[i].q);
	lk->nslots = 0;
	lk->pending = 0;
	for (i = 0; i < lk->nhosts; i++)
		free(lk->hosts[i]);
	lk->nhosts = 0;
}

/* Forget the transaction's lookup; a dead suspended hook is freed. */
static void
look_reset(struct rfh_look *lk)
{
	look_cancel(lk);
	sl_async_done(&lk->a, SL_DECLINED);
	free(lk->sender);
	free(lk->domain);
	lk->sender = lk->domain = NULL;
	lk->phase = PHASE_IDLE;
	lk->implicit = false;
	lk->seen = 0;
	lk->failure[0] = '\0';
	lk->v = SL_DECLINED;
	lk->code = 0;
	lk->enh = NULL;
	lk->text[0] = '\0';
}

static void
look_free(void *arg)
{
	struct rfh_look *lk = arg;

	look_reset(lk);
	free(lk);
}

static struct rfh_look *
look_get(const struct rfh *st, struct sl_hookctx *ctx)
{
	struct sl_conn *c = sl_hook_conn(ctx);
	struct rfh_look *lk;

	lk = sl_conn_data_get(c, st);
	if (lk == NULL) {
		lk = sl_xcalloc(1, sizeof(*lk));
		lk->st = st;
		lk->conn = c;
		lk->name = sl_hook_plugin_name(ctx);
		sl_conn_data_set(c, st, lk, look_free);
	}
	return lk;
}

/* A fail already recorded for this connection stays. */
static void
outcome(struct rfh_look *lk, const char *what, const char *detail)
{
	const char *old = sl_conn_outcome_get(lk->conn, lk->name);

	if (old != NULL && strncmp(old, "fail", 4) == 0 &&
	    strcmp(what, "fail") != 0)
		return;
	sl_conn_outcome_set(lk->conn, lk->name, what, detail);
}

/* --- verdicts ---------------------------------------------------------- */

/* The verdict is in: record it and resume a waiting hook. */
static void
decide(struct rfh_look *lk)
{
	look_cancel(lk);
	lk->phase = PHASE_DONE;
	if (lk->a == NULL)
		return;
	if (lk->v != SL_DECLINED)
		sl_async_reply(lk->a, lk->code, lk->enh, "%s", lk->text);
	sl_async_done(&lk->a, lk->v);
}

static void
pass(struct rfh_look *lk, const char *reason, const char *detail)
{
	char d[300];

	snprintf(d, sizeof(d), "%s%s%s", reason, detail[0] ? " " : "", detail);
	/* a pass is in the queued line's results= */
	sl_log(LOG_DEBUG, sl_conn_id(lk->conn),
	    "plugin=%s verdict=pass sender=<%s> domain=%s reason=%s%s%s",
	    lk->name, lk->sender, lk->domain, reason, detail[0] ? " " : "",
	    detail);
	outcome(lk, "pass", d);
	lk->v = SL_DECLINED;
	decide(lk);
}

static void fail(struct rfh_look *lk, const char *reason, int code,
    const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
fail(struct rfh_look *lk, const char *reason, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(lk->text, sizeof(lk->text), fmt, ap);
	va_end(ap);
	sl_log(LOG_INFO, sl_conn_id(lk->conn),
	    "plugin=%s verdict=deny sender=<%s> domain=%s reason=%s code=%d "
	    "text=\"%s\"",
	    lk->name, lk->sender, lk->domain, reason, code, lk->text);
	outcome(lk, "fail", reason);
	lk->v = SL_DENY;
	lk->code = code;
	lk->enh = enh;
	decide(lk);
}

/* A timeout, SERVFAIL or error: dns_failure= decides. */
static void
dns_failed(struct rfh_look *lk, const char *what)
{
	bool skip = lk->st->dns_failure == DNS_FAILURE_SKIP;

	sl_log(LOG_INFO, sl_conn_id(lk->conn),
	    "plugin=%s verdict=%s sender=<%s> domain=%s reason=dns-failure "
	    "dns=\"%s\"",
	    lk->name, skip ? "skip" : "tempfail", lk->sender, lk->domain, what);
	outcome(lk, "error", what);
	if (skip) {
		lk->v = SL_DECLINED;
	} else {
		lk->v = SL_DENYSOFT;
		lk->code = 451;
		lk->enh = "4.4.3";
		snprintf(lk->text, sizeof(lk->text),
		    "Sender address rejected: cannot resolve %s, try again "
		    "later",
		    lk->domain);
	}
	decide(lk);
}

/* --- second stage: addresses of the exchangers ------------------------- */

static void
addrs_done(struct rfh_look *lk)
{
	if (lk->failure[0] != '\0') {
		dns_failed(lk, lk->failure);
	} else if (lk->implicit && lk->seen == 0) {
		fail(lk, "no-address", 550, "5.1.8",
		    "Sender address rejected: Domain %s has no MX and no "
		    "address",
		    lk->domain);
	} else {
		fail(lk, "no-mx-host", 550, "5.1.8",
		    "Sender address rejected: no usable MX for %s", lk->domain);
	}
}

static bool
addr_usable(const struct rfh_look *lk, const char *text)
{
	uint8_t a16[16];

	if (sl_addr_parse(text, a16) != 0)
		return false;
	/* without check_mx_hosts, any address of the domain itself will do */
	if (lk->implicit && !lk->st->check_mx_hosts)
		return true;
	return !sl_cidrlist_match(&lk->st->bad_networks, a16);
}

static void
addr_answer(void *arg, const struct sl_dns_result *r)
{
	struct rfh_slot *s = arg;
	struct rfh_look *lk = s->lk;
	char detail[300];
	size_t i;

	s->q = NULL;
	lk->pending--;
	if (r->status == SL_DNS_OK) {
		for (i = 0; i < r->count; i++) {
			lk->seen++;
			if (!addr_usable(lk, r->rr[i].text))
				continue;
			snprintf(detail, sizeof(detail), "%s %s", s->host,
			    r->rr[i].text);
			pass(lk, lk->implicit ? "a" : "mx", detail);
			return;
		}
	} else if (r->status != SL_DNS_NXDOMAIN && r->status != SL_DNS_NODATA &&
	    lk->failure[0] == '\0') {
		snprintf(lk->failure, sizeof(lk->failure), "%s %s %s", s->host,
		    sl_dns_type_name(r->type), r->error);
	}
	if (lk->pending == 0)
		addrs_done(lk);
}

static void
addrs_start(struct rfh_look *lk, const char *const *hosts, size_t n)
{
	static const enum sl_dns_type types[] = { SL_DNS_A, SL_DNS_AAAA };
	struct rfh_slot *s;
	size_t i, t;

	for (i = 0; i < n; i++) {
		for (t = 0; t < 2; t++) {
			s = &lk->slots[lk->nslots++];
			s->lk = lk;
			s->host = hosts[i];
			s->q = sl_dns_lookup(lk->conn, hosts[i], types[t],
			    addr_answer, s);
			if (s->q != NULL)
				lk->pending++;
			else if (lk->failure[0] == '\0')
				snprintf(lk->failure, sizeof(lk->failure),
				    "%s no resolver", hosts[i]);
		}
	}
	if (lk->pending == 0)
		addrs_done(lk);
}

/* --- first stage: MX --------------------------------------------------- */

static bool
host_listed(const struct rfh_look *lk, const char *host)
{
	size_t i;

	for (i = 0; i < lk->nhosts; i++)
		if (strcasecmp(lk->hosts[i], host) == 0)
			return true;
	return false;
}

static void
mx_found(struct rfh_look *lk, const struct sl_dns_result *r)
{
	size_t i;

	/* RFC 7505 3: the null MX is "0 ."; an empty exchanger never works */
	for (i = 0; i < r->count; i++) {
		if (r->rr[i].text[0] == '\0' || host_listed(lk, r->rr[i].text))
			continue;
		if (lk->nhosts == MAX_HOSTS)
			break;
		lk->hosts[lk->nhosts++] = sl_xstrdup(r->rr[i].text);
	}
	if (lk->nhosts == 0) {
		/* RFC 7505 4.2 */
		fail(lk, "null-mx", 550, "5.7.27",
		    "Sender address <%s> has null MX", lk->sender);
		return;
	}
	if (!lk->st->check_mx_hosts) {
		pass(lk, "mx", lk->hosts[0]);
		return;
	}
	addrs_start(lk, (const char *const *)lk->hosts, lk->nhosts);
}

static void
mx_answer(void *arg, const struct sl_dns_result *r)
{
	struct rfh_look *lk = arg;
	char what[300];
	const char *dom;

	lk->mxq = NULL;
	switch (r->status) {
	case SL_DNS_OK:
		mx_found(lk, r);
		return;
	case SL_DNS_NODATA:
		/* RFC 5321 5.1: the domain itself is the implicit MX */
		lk->implicit = true;
		dom = lk->domain;
		addrs_start(lk, &dom, 1);
		return;
	case SL_DNS_NXDOMAIN:
		fail(lk, "nxdomain", 550, "5.1.8",
		    "Sender address rejected: Domain %s not found", lk->domain);
		return;
	default:
		snprintf(what, sizeof(what), "%s MX %s", r->name, r->error);
		dns_failed(lk, what);
		return;
	}
}

/*
 * An address literal (RFC 5321 4.1.3): "[192.0.2.1]" or "[IPv6:...]".
 * Decides at once.
 */
static void
check_literal(struct rfh_look *lk)
{
	const char *d = lk->domain;
	size_t len = strlen(d);
	uint8_t a16[16];
	char ip[64];
	bool v6;

	v6 = len > 6 && strncasecmp(d + 1, "IPv6:", 5) == 0;
	if (len < 3 || d[len - 1] != ']' ||
	    len - 2 - (v6 ? 5 : 0) >= sizeof(ip)) {
		fail(lk, "bad-literal", 550, "5.1.7",
		    "Sender address rejected: bad address literal %s", d);
		return;
	}
	memcpy(ip, d + 1 + (v6 ? 5 : 0), len - 2 - (v6 ? 5 : 0));
	ip[len - 2 - (v6 ? 5 : 0)] = '\0';
	if ((strchr(ip, ':') != NULL) != v6 || sl_addr_parse(ip, a16) != 0) {
		fail(lk, "bad-literal", 550, "5.1.7",
		    "Sender address rejected: bad address literal %s", d);
		return;
	}
	if (sl_cidrlist_match(&lk->st->bad_networks, a16)) {
		fail(lk, "private-literal", 550, "5.1.8",
		    "Sender address rejected: %s is not a public address", d);
		return;
	}
	pass(lk, "literal", ip);
}

/* --- hooks ------------------------------------------------------------- */

static bool
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* Returns the verdict now (PHASE_DONE) or DECLINED. */
static enum sl_verdict
verdict_now(const struct rfh_look *lk, struct sl_hookctx *ctx)
{
	if (lk->phase != PHASE_DONE || lk->v == SL_DECLINED)
		return SL_DECLINED;
	sl_hook_reply(ctx, lk->code, lk->enh, "%s", lk->text);
	return lk->v;
}

static enum sl_verdict
suspend(struct rfh_look *lk, struct sl_hookctx *ctx)
{
	sl_async_done(&lk->a, SL_DECLINED); /* one the core gave up on */
	lk->a = sl_async_begin(ctx);
	return SL_PENDING;
}

static enum sl_verdict
rfh_mail(void *state, struct sl_hookctx *ctx)
{
	const struct rfh *st = state;
	const char *sender = sl_hook_args(ctx)->arg, *at;
	struct rfh_look *lk;

	lk = look_get(st, ctx);
	look_reset(lk); /* an earlier transaction's */
	if (sender == NULL || sender[0] == '\0') {
		outcome(lk, "skip", "null-sender");
		return SL_DECLINED;
	}
	if (sl_conn_is_relay_client(lk->conn)) {
		outcome(lk, "skip", "relay");
		return SL_DECLINED;
	}
	at = strrchr(sender, '@');
	if (at == NULL || at[1] == '\0' || !is_ascii(at + 1)) {
		/* XXX: no IDNA here; a U-label domain is not looked up */
		sl_hook_log(ctx, LOG_INFO, "verdict=skip sender=<%s> reason=%s",
		    sender,
		    at == NULL || at[1] == '\0' ? "no-domain" : "utf8-domain");
		outcome(lk, "skip",
		    at == NULL || at[1] == '\0' ? "no-domain" : "utf8-domain");
		return SL_DECLINED;
	}
	lk->sender = sl_xstrdup(sender);
	lk->domain = sl_xstrdup(at + 1);
	lk->phase = PHASE_RUNNING;
	if (lk->domain[0] == '[') {
		check_literal(lk);
	} else {
		lk->mxq = sl_dns_lookup(lk->conn, lk->domain, SL_DNS_MX,
		    mx_answer, lk);
		if (lk->mxq == NULL)
			dns_failed(lk, "no resolver");
	}
	if (st->check_at != CHECK_AT_MAIL)
		return SL_DECLINED;
	if (lk->phase == PHASE_DONE)
		return verdict_now(lk, ctx);
	return suspend(lk, ctx);
}

static enum sl_verdict
rfh_rcpt(void *state, struct sl_hookctx *ctx)
{
	const struct rfh *st = state;
	struct rfh_look *lk;
	const char *sender;

	if (st->check_at != CHECK_AT_RCPT)
		return SL_DECLINED;
	lk = sl_conn_data_get(sl_hook_conn(ctx), st);
	if (lk == NULL || lk->phase == PHASE_IDLE)
		return SL_DECLINED;
	/* the lookup belongs to this transaction's MAIL, or to none */
	sender = sl_txn_sender(sl_hook_txn(ctx));
	if (sender == NULL || strcmp(sender, lk->sender) != 0)
		return SL_DECLINED;
	if (lk->phase == PHASE_DONE)
		return verdict_now(lk, ctx);
	sl_hook_log(ctx, LOG_DEBUG, "waiting domain=%s at=rcpt", lk->domain);
	return suspend(lk, ctx);
}

/* RSET, and a new client identity (XCLIENT runs connect again). */
static enum sl_verdict
rfh_forget(void *state, struct sl_hookctx *ctx)
{
	struct rfh_look *lk = sl_conn_data_get(sl_hook_conn(ctx), state);

	if (lk != NULL)
		look_reset(lk);
	return SL_DECLINED;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "resolvable_fromhost",
	.conf = rfh_conf,
	.state_size = sizeof(struct rfh),
	.hooks = {
		[SL_HOOK_CONNECT] = rfh_forget,
		[SL_HOOK_MAIL] = rfh_mail,
		[SL_HOOK_RCPT] = rfh_rcpt,
		[SL_HOOK_RESET] = rfh_forget,
	},
};
