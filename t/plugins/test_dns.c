/*
 * test_dns.c - a test-only plugin that drives the core resolver
 * (sl_dns_lookup) from SMTP commands; never installed.
 *
 *   plugin test_dns
 *
 * HELO dns-TYPE.NAME (TYPE a aaaa txt ptr mx) looks NAME up and answers
 * "550 dns status=S error=E count=N ttl=T cached=yes|no rr=R1|R2" (MX records
 * as PREF/NAME) - as a 550, since HELO shows only a denial's text; a timeout,
 * SERVFAIL or error answers 451 with the same text. MAIL FROM:<x@DOMAIN> starts
 * an A lookup of DOMAIN and returns at once; the next RCPT collects it
 * (suspending until it is in) and answers "550 rcpt dns status=..." (451 on
 * failure).  A connection that ends first cancels it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <sluice/plugin.h>

struct pending {
	struct sl_dns_query *q;
	struct sl_async *a; /* a hook waiting for the answer */
	bool in;            /* the answer arrived */
	char text[400];
	enum sl_verdict v;
};

static const struct {
	const char *name;
	enum sl_dns_type type;
} types[] = { { "a", SL_DNS_A }, { "aaaa", SL_DNS_AAAA }, { "txt", SL_DNS_TXT },
	{ "ptr", SL_DNS_PTR }, { "mx", SL_DNS_MX } };

static void
render(struct pending *p, const struct sl_dns_result *r)
{
	size_t i, off;
	int n;

	n = snprintf(p->text, sizeof(p->text),
	    "dns status=%s error=%s count=%zu ttl=%u cached=%s rr=",
	    sl_dns_status_name(r->status), r->error, r->count, r->ttl,
	    r->cached ? "yes" : "no");
	off = n > 0 ? (size_t)n : 0;
	for (i = 0; i < r->count && off < sizeof(p->text); i++) {
		if (r->type == SL_DNS_MX)
			n = snprintf(p->text + off, sizeof(p->text) - off,
			    "%s%u/%s", i ? "|" : "", r->rr[i].pref,
			    r->rr[i].text);
		else
			n = snprintf(p->text + off, sizeof(p->text) - off,
			    "%s%s", i ? "|" : "", r->rr[i].text);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	p->v = r->status == SL_DNS_OK || r->status == SL_DNS_NXDOMAIN ||
	        r->status == SL_DNS_NODATA
	    ? SL_DENY
	    : SL_DENYSOFT;
}

static void
finish(struct pending *p, const char *prefix)
{
	sl_async_reply(p->a, p->v == SL_DENY ? 550 : 451, NULL, "%s%s", prefix,
	    p->text);
	sl_async_done(&p->a, p->v);
}

static void
helo_answer(void *arg, const struct sl_dns_result *r)
{
	struct pending *p = arg;

	p->q = NULL;
	render(p, r);
	finish(p, "");
	free(p);
}

static enum sl_verdict
dns_helo(void *state, struct sl_hookctx *ctx)
{
	const char *arg = sl_hook_args(ctx)->arg, *colon;
	struct pending *p;
	size_t i, n;

	(void)state;
	if (strncasecmp(arg, "dns-", 4) != 0)
		return SL_DECLINED;
	arg += 4;
	colon = strchr(arg, '.');
	if (colon == NULL)
		return SL_DECLINED;
	n = (size_t)(colon - arg);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strlen(types[i].name) == n &&
		    strncasecmp(arg, types[i].name, n) == 0)
			break;
	if (i == sizeof(types) / sizeof(types[0]))
		return SL_DECLINED;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return SL_ERROR;
	p->a = sl_async_begin(ctx);
	p->q = sl_dns_lookup(sl_hook_conn(ctx), colon + 1, types[i].type,
	    helo_answer, p);
	if (p->q == NULL) {
		sl_async_done(&p->a, SL_ERROR);
		free(p);
	}
	return SL_PENDING;
}

/* --- MAIL starts, RCPT collects ----------------------------------------- */

static void
pending_free(void *arg)
{
	struct pending *p = arg;

	sl_dns_cancel(&p->q);
	if (p->a != NULL)
		sl_async_done(&p->a, SL_DENYSOFT);
	free(p);
}

static void
mail_answer(void *arg, const struct sl_dns_result *r)
{
	struct pending *p = arg;

	p->q = NULL;
	p->in = true;
	render(p, r);
	if (p->a != NULL)
		finish(p, "rcpt ");
}

static enum sl_verdict
dns_mail(void *state, struct sl_hookctx *ctx)
{
	const char *at = strrchr(sl_hook_args(ctx)->arg, '@');
	struct pending *p;

	if (at == NULL || at[1] == '\0')
		return SL_DECLINED;
	/* MAIL runs before the transaction exists: keep it on the conn */
	p = sl_conn_data_get(sl_hook_conn(ctx), state);
	if (p == NULL) {
		p = calloc(1, sizeof(*p));
		if (p == NULL)
			return SL_ERROR;
		sl_conn_data_set(sl_hook_conn(ctx), state, p, pending_free);
	}
	sl_dns_cancel(&p->q); /* an earlier transaction's */
	p->in = false;
	p->q =
	    sl_dns_lookup(sl_hook_conn(ctx), at + 1, SL_DNS_A, mail_answer, p);
	sl_hook_log(ctx, LOG_INFO, "dns started name=%s at=mail", at + 1);
	return SL_DECLINED;
}

static enum sl_verdict
dns_rcpt(void *state, struct sl_hookctx *ctx)
{
	struct pending *p = sl_conn_data_get(sl_hook_conn(ctx), state);

	if (p == NULL)
		return SL_DECLINED;
	if (p->in) {
		sl_hook_reply(ctx, p->v == SL_DENY ? 550 : 451, NULL, "rcpt %s",
		    p->text);
		return p->v;
	}
	if (p->q == NULL)
		return SL_ERROR;
	sl_hook_log(ctx, LOG_INFO, "dns waiting at=rcpt");
	p->a = sl_async_begin(ctx);
	return SL_PENDING;
}

static int
dns_init(void **state_r, const char **error_r)
{
	(void)state_r;
	(void)error_r;
	return 0;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "test_dns",
	.state_size = 1,
	.init = dns_init,
	.hooks = {
		[SL_HOOK_HELO] = dns_helo,
		[SL_HOOK_MAIL] = dns_mail,
		[SL_HOOK_RCPT] = dns_rcpt,
	},
	.front_ends = SL_FRONT_SMTPD,
};
