/*
 * rhsbl - refuse mail whose sender domain, HELO name or client host name
 * is listed in domain-based DNS lists (RHSBL, RFC 5782 3), with the
 * weights and filters of dnsbl (sluice-plugins(7)).
 *
 * Each name is looked up in every zone as soon as it is known: the
 * client's host name at connect (the fcrdns plugin's note "fcrdns.name",
 * else the name the front end knows), the HELO name at helo, the sender's
 * domain at mail; the verdict comes at check_at= (mail or rcpt), waiting
 * for answers still out.  A name scores on its own: the zones that list
 * it add their weights, and it is listed when the sum reaches threshold
 * (a negative weight lowers only that name's score).  Address literals,
 * one-label names and the null sender are not looked up.
 *
 *	plugin rhsbl zones=dbl.example*2,rhsbl.example checks=sender,helo
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <sluice/plugin.h>

#include "dnslist.h"
#include "xmalloc.h"

enum { CHECK_AT_MAIL = 0, CHECK_AT_RCPT };
enum { K_SENDER = 0, K_HELO, K_RDNS, K_N };

static const char *const check_at_names[] = { "mail", "rcpt", NULL };
static const char *const checks_names[] = { "sender", "helo", "rdns", NULL };
/* per kind: the log key and the start of the refusal */
static const char *const kind_key[K_N] = { "sender", "helo", "rdns" };
static const char *const kind_text[K_N] = { "Sender address rejected",
	"HELO name rejected", "Client host name rejected" };

struct rhsbl {
	struct sl_dnslist_opts opts; /* zones= threshold= txt= message=
	                                dns_failure= */
	struct sl_strlist checks;
	int check_at;
	/* built by init */
	struct sl_dnslist zl;
	bool want[K_N];
	size_t max_domain; /* longest name that fits under every zone */
};

static const struct sl_conf_def rhsbl_conf[] = {
	SL_DNSLIST_CONF_ROWS(struct rhsbl,
	    "reply text; %domain%, %zone%, %txt%, %check% are replaced"),
	{ .name = "checks",
	    .type = SL_CONF_LIST,
	    .def = "sender,helo,rdns",
	    .choices = checks_names,
	    .offset = offsetof(struct rhsbl, checks),
	    .help = "the names to look up: sender, helo, rdns" },
	{ .name = "check_at",
	    .type = SL_CONF_ENUM,
	    .def = "rcpt",
	    .choices = check_at_names,
	    .offset = offsetof(struct rhsbl, check_at),
	    .help = "where the verdict is given: mail or rcpt" },
	SL_CONF_END,
};

/* --- per connection --------------------------------------------------- */

struct rconn;

struct rslot {
	struct rconn *rc;
	char raw[256];    /* what it was made from, when that fits */
	char domain[256]; /* what is looked up; "" = nothing */
	char what[300];   /* "sender=DOMAIN" for logs */
	struct sl_dnslist_check *chk;
	struct sl_dnslist_result res;
	bool started, done;
};

struct rconn {
	struct rhsbl *st;
	struct sl_conn *conn;
	const char *name; /* the instance's name: lives with the runtime */
	struct rslot slot[K_N];
	struct sl_async *async; /* the verdict hook waiting for answers */
	struct sl_timer *timer; /* the hook's own timeout= */
	bool logged;            /* the verdict of this transaction */
};

static void
rconn_free(void *arg)
{
	struct rconn *rc = arg;
	size_t k;

	for (k = 0; k < K_N; k++)
		sl_dnslist_check_free(&rc->slot[k].chk);
	sl_timer_cancel(&rc->timer);
	if (rc->async != NULL)
		sl_async_done(&rc->async, SL_DECLINED); /* frees the handle */
	free(rc);
}

/*
 * The name as looked up (lower case, no final dot) in out[256], or false
 * when it is not a domain worth a lookup: an address literal or bare
 * address, one label, bytes outside letters, digits, '-', '_' (an
 * internationalized name too), or too long to fit under the zones.
 */
static bool
domain_norm(const struct rhsbl *st, const char *in, char *out)
{
	size_t len = strlen(in), i, label = 0;
	bool dot = false, numeric = true;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > st->max_domain || in[0] == '[' || in[0] == '.')
		return false;
	for (i = 0; i < len; i++) {
		char ch = in[i];

		if (ch == '.') {
			if (label == 0)
				return false;
			out[i] = '.';
			dot = true;
			label = 0;
			numeric = true;
			continue;
		}
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		        ch == '-' || ch == '_'))
			return false;
		if (!(ch >= '0' && ch <= '9'))
			numeric = false;
		if (++label > 63)
			return false;
		out[i] = ch;
	}
	out[len] = '\0';
	/* a top-level label is never all digits: "192.0.2.1" is no name */
	return dot && label > 0 && !numeric;
}

static bool
rconn_all_in(const struct rconn *rc)
{
	size_t k;

	for (k = 0; k < K_N; k++)
		if (rc->slot[k].started && !rc->slot[k].done)
			return false;
	return true;
}

static void rconn_resume(struct rconn *rc);

static void
slot_take(struct rslot *s)
{
	s->res = *sl_dnslist_check_result(s->chk);
	sl_dnslist_check_free(&s->chk);
	s->done = true;
}

static void
slot_checked(void *arg)
{
	struct rslot *s = arg;
	struct rconn *rc = s->rc;

	slot_take(s);
	if (rc->async != NULL && rconn_all_in(rc))
		rconn_resume(rc);
}

/* Looks raw up for kind k unless that name is looked up already. */
static void
slot_set(struct rconn *rc, size_t k, const char *raw)
{
	struct rslot *s = &rc->slot[k];
	char dom[256];
	size_t n;

	/* asked every hook, mostly with what it had: skip the work */
	if (raw != NULL && s->raw[0] != '\0' && strcmp(raw, s->raw) == 0)
		return;
	n = raw != NULL ? strlen(raw) : 0;
	if (n > 0 && n < sizeof(s->raw))
		memcpy(s->raw, raw, n + 1);
	else
		s->raw[0] = '\0';
	if (raw == NULL || !domain_norm(rc->st, raw, dom))
		dom[0] = '\0';
	if (strcmp(dom, s->domain) == 0)
		return;
	sl_dnslist_check_free(&s->chk);
	s->started = s->done = false;
	snprintf(s->domain, sizeof(s->domain), "%s", dom);
	if (dom[0] == '\0') {
		if (raw != NULL && raw[0] != '\0')
			sl_conn_log(rc->conn, rc->name, LOG_DEBUG,
			    "%s=%s not looked up: not a domain name",
			    kind_key[k], raw);
		return;
	}
	snprintf(s->what, sizeof(s->what), "%s=%s", kind_key[k], dom);
	s->started = true;
	s->chk = sl_dnslist_check_start(rc->conn, &rc->st->zl, rc->name,
	    s->what, dom, slot_checked, s);
	if (sl_dnslist_check_is_done(s->chk))
		slot_take(s);
}

/*
 * Starts the lookup of the client's host name known by now: fcrdns's
 * verified name, else the front end's (XCLIENT NAME, the MTA's).
 */
static void
rconn_refresh_rdns(struct rconn *rc)
{
	const char *host;

	if (!rc->st->want[K_RDNS])
		return;
	host = sl_conn_note_get(rc->conn, "fcrdns.name");
	if (host == NULL || host[0] == '\0')
		host = sl_conn_remote_host(rc->conn);
	slot_set(rc, K_RDNS, host);
}

/* ... and of the HELO name (a client may skip HELO in milter mode). */
static void
rconn_refresh(struct rconn *rc)
{
	rconn_refresh_rdns(rc);
	if (rc->st->want[K_HELO])
		slot_set(rc, K_HELO, sl_conn_helo(rc->conn));
}

/* The verdict once every answer is in, with the reply; logs it once. */
static enum sl_verdict
rconn_verdict(struct rconn *rc, int *code_r, const char **enh_r, char *text,
    size_t size)
{
	const struct rhsbl *st = rc->st;
	const struct sl_dnslist_result *res;
	const struct rslot *s, *failed = NULL;
	char detail[900], names[800], head[512];
	const char *kv[9];
	bool first = !rc->logged, any = false;
	size_t k, n, o = 0;

	rc->logged = true;
	text[0] = '\0';
	names[0] = '\0';
	for (k = 0; k < K_N; k++) {
		s = &rc->slot[k];
		if (!s->started)
			continue;
		res = &s->res;
		n = strlen(s->what);
		if (o + 1 + n < sizeof(names)) { /* "A B C" */
			if (any)
				names[o++] = ' ';
			memcpy(names + o, s->what, n + 1);
			o += n;
		}
		any = true;
		if (res->undecided && failed == NULL)
			failed = s;
		/* listed, unless a failed allow list might have said no */
		if (res->status != SL_DNSLIST_LISTED ||
		    (res->undecided &&
		        st->opts.dns_failure == SL_DNSLIST_FAILURE_TEMPFAIL))
			continue;
		if (first) {
			sl_conn_log(rc->conn, rc->name, LOG_INFO,
			    "verdict=deny %s score=%lld threshold=%lld zone=%s "
			    "listed=\"%s\"",
			    s->what, res->score, st->opts.threshold, res->zone,
			    res->listed);
			snprintf(detail, sizeof(detail), "%s %s score=%lld",
			    s->what, res->listed, res->score);
			sl_conn_outcome_set(rc->conn, rc->name, "fail", detail);
		}
		*code_r = 550;
		*enh_r = "5.7.1";
		kv[0] = "domain";
		kv[1] = s->domain;
		kv[2] = "zone";
		kv[3] = res->zone;
		kv[4] = "txt";
		kv[5] = res->txt;
		kv[6] = "check";
		kv[7] = kind_key[k];
		kv[8] = NULL;
		snprintf(head, sizeof(head), "%s: %s listed by %s",
		    kind_text[k], s->domain, res->zone);
		sl_dnslist_reply_text(text, size, &st->opts, kv, head,
		    res->txt);
		return SL_DENY;
	}
	if (failed != NULL) {
		snprintf(detail, sizeof(detail), "%s failed=%s", failed->what,
		    failed->res.failed);
		if (first) {
			sl_conn_log(rc->conn, rc->name, LOG_INFO,
			    "verdict=%s %s failed=\"%s\" dns_failure=%s",
			    st->opts.dns_failure == SL_DNSLIST_FAILURE_TEMPFAIL
			        ? "tempfail"
			        : "pass",
			    failed->what, failed->res.failed,
			    sl_dnslist_failure_choices[st->opts.dns_failure]);
			sl_conn_outcome_set(rc->conn, rc->name, "error",
			    detail);
		}
		if (st->opts.dns_failure == SL_DNSLIST_FAILURE_TEMPFAIL) {
			*code_r = 451;
			*enh_r = "4.4.3";
			snprintf(text, size,
			    "%s: DNS list lookup for %s failed, try again "
			    "later",
			    kind_text[failed - rc->slot], failed->domain);
			return SL_DENYSOFT;
		}
		return SL_DECLINED;
	}
	if (first) {
		/* a pass is in the queued line's results= */
		sl_conn_log(rc->conn, rc->name, LOG_DEBUG, "verdict=pass %s",
		    any ? names : "checked=none");
		sl_conn_outcome_set(rc->conn, rc->name, any ? "pass" : "skip",
		    any ? names : "nothing to look up");
	}
	return SL_DECLINED;
}

static void
rconn_resume(struct rconn *rc)
{
	enum sl_verdict v;
	const char *enh = NULL;
	char text[512];
	int code = 0;

	sl_timer_cancel(&rc->timer);
	v = rconn_verdict(rc, &code, &enh, text, sizeof(text));
	if (text[0] != '\0')
		sl_async_reply(rc->async, code, enh, "%s", text);
	sl_async_done(&rc->async, v);
}

/* The hook's timeout= ran out first: decide on what is in. */
static void
rconn_give_up(void *arg)
{
	struct rconn *rc = arg;
	struct rslot *s;
	size_t k;

	rc->timer = NULL; /* the core frees a fired timer */
	for (k = 0; k < K_N; k++) {
		s = &rc->slot[k];
		if (s->started && !s->done) {
			sl_dnslist_check_give_up(s->chk);
			slot_take(s);
		}
	}
	if (rc->async != NULL)
		rconn_resume(rc);
}

/* --- hooks --------------------------------------------------------------- */

static enum sl_verdict
rhsbl_check(struct rconn *rc, struct sl_hookctx *ctx)
{
	enum sl_verdict v;
	const char *enh = NULL;
	char text[512];
	int code = 0;

	rconn_refresh(rc);
	if (!rconn_all_in(rc)) {
		rc->async =
		    sl_dnslist_suspend(ctx, &rc->timer, rconn_give_up, rc);
		return SL_PENDING;
	}
	v = rconn_verdict(rc, &code, &enh, text, sizeof(text));
	if (text[0] != '\0')
		sl_hook_reply(ctx, code, enh, "%s", text);
	return v;
}

static enum sl_verdict
rhsbl_connect(void *state, struct sl_hookctx *ctx)
{
	struct rhsbl *st = state;
	struct sl_conn *conn = sl_hook_conn(ctx);
	struct rconn *rc;
	size_t k;

	/* A new connection or client identity (XCLIENT) starts afresh. */
	rc = sl_xcalloc(1, sizeof(*rc));
	rc->st = st;
	rc->conn = conn;
	rc->name = sl_hook_plugin_name(ctx);
	for (k = 0; k < K_N; k++)
		rc->slot[k].rc = rc;
	sl_conn_data_set(conn, st, rc, rconn_free);
	rconn_refresh(rc);
	return SL_DECLINED;
}

static enum sl_verdict
rhsbl_helo(void *state, struct sl_hookctx *ctx)
{
	struct rhsbl *st = state;
	struct rconn *rc = sl_conn_data_get(sl_hook_conn(ctx), st);

	if (rc == NULL)
		return SL_DECLINED;
	if (st->want[K_HELO])
		slot_set(rc, K_HELO, sl_hook_args(ctx)->arg);
	rconn_refresh_rdns(rc);
	return SL_DECLINED;
}

static enum sl_verdict
rhsbl_mail(void *state, struct sl_hookctx *ctx)
{
	struct rhsbl *st = state;
	struct rconn *rc = sl_conn_data_get(sl_hook_conn(ctx), st);
	const char *sender, *at;

	if (rc == NULL)
		return SL_DECLINED;
	rc->logged = false; /* a new transaction, a new verdict */
	if (st->want[K_SENDER]) {
		sender = sl_hook_args(ctx)->arg;
		at = sender != NULL ? strrchr(sender, '@') : NULL;
		/* the null sender (bounces) has no domain to look up */
		slot_set(rc, K_SENDER, at != NULL ? at + 1 : NULL);
	}
	if (st->check_at != CHECK_AT_MAIL) {
		rconn_refresh(rc);
		return SL_DECLINED;
	}
	return rhsbl_check(rc, ctx);
}

static enum sl_verdict
rhsbl_rcpt(void *state, struct sl_hookctx *ctx)
{
	struct rhsbl *st = state;
	struct rconn *rc = sl_conn_data_get(sl_hook_conn(ctx), st);

	if (rc == NULL || st->check_at != CHECK_AT_RCPT)
		return SL_DECLINED;
	return rhsbl_check(rc, ctx);
}

/* init runs on the configuring thread only: one buffer will do. */
static char rhsbl_error[512];

static int
rhsbl_init(void **state_r, const char **error_r)
{
	struct rhsbl *st = *state_r;
	size_t i, k, longest = 0;

	if (st->checks.count == 0) {
		*error_r = "checks: nothing to check";
		return -1;
	}
	for (i = 0; i < st->checks.count; i++)
		for (k = 0; k < K_N; k++)
			if (strcasecmp(st->checks.items[i], checks_names[k]) ==
			    0)
				st->want[k] = true;
	if (sl_dnslist_init(&st->zl, &st->opts, rhsbl_error,
	        sizeof(rhsbl_error)) != 0) {
		*error_r = rhsbl_error;
		return -1;
	}
	for (i = 0; i < st->zl.count; i++)
		if (strlen(st->zl.zones[i].name) > longest)
			longest = strlen(st->zl.zones[i].name);
	st->max_domain = 252 - longest; /* DOMAIN.ZONE within 253 */
	return 0;
}

static void
rhsbl_fini(void *state)
{
	struct rhsbl *st = state;

	sl_dnslist_clear(&st->zl);
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "rhsbl",
	.conf = rhsbl_conf,
	.state_size = sizeof(struct rhsbl),
	.init = rhsbl_init,
	.fini = rhsbl_fini,
	.hooks = {
		[SL_HOOK_CONNECT] = rhsbl_connect,
		[SL_HOOK_HELO] = rhsbl_helo,
		[SL_HOOK_MAIL] = rhsbl_mail,
		[SL_HOOK_RCPT] = rhsbl_rcpt,
	},
};
