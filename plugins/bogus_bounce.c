/*
 * bogus_bounce - refuse bounces that cannot be genuine (sluice-plugins(7)),
 * as qpsmtpd's bogus_bounce and Haraka's bounce plugin.  No DNS.
 *
 * Only transactions with the null sender (RFC 5321 4.5.5) are looked at.
 * At RCPT: a recipient in bad_rcpt= (an address that sends no mail gets
 * no bounces) and, with single_recipient, any recipient after the first
 * (a delivery status notification goes to one return path).  At
 * data_post: with empty_return_path, a Return-Path: header that is not
 * empty; with non_local_msgid, a body whose first scan_size bytes name
 * Message-IDs, none of them in local_domains= (a bounce of a message we
 * did not send: backscatter).  Each refusal is 550 5.7.1.  Relay clients
 * are not checked.
 *
 *	plugin bogus_bounce bad_rcpt=@./noreply.list non_local_msgid=yes
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <sluice/addrlist.h>
#include <sluice/plugin.h>

#include "xmalloc.h"

struct bogus_bounce {
	bool single_recipient;        /* single_recipient= */
	bool empty_return_path;       /* empty_return_path= */
	struct sl_strlist bad_rcpt;   /* bad_rcpt= */
	bool non_local_msgid;         /* non_local_msgid= */
	struct sl_strlist local_doms; /* local_domains=; empty: macro j */
	size_t scan_size;             /* scan_size= */
	struct sl_addrlist *bad;      /* built from bad_rcpt by init */
};

static const struct sl_conf_def bb_conf[] = {
	{ .name = "single_recipient",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = offsetof(struct bogus_bounce, single_recipient),
	    .help = "a bounce has exactly one recipient" },
	{ .name = "empty_return_path",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = offsetof(struct bogus_bounce, empty_return_path),
	    .help = "a bounce's Return-Path: header, if any, is <>" },
	{ .name = "bad_rcpt",
	    .type = SL_CONF_LIST,
	    .flags = SL_CONF_F_AT_LITERAL,
	    .def = NULL,
	    .offset = offsetof(struct bogus_bounce, bad_rcpt),
	    .help = "addresses that send no mail: user@dom, @dom, /regex/, "
	            "@./file" },
	{ .name = "non_local_msgid",
	    .type = SL_CONF_BOOL,
	    .def = "no",
	    .offset = offsetof(struct bogus_bounce, non_local_msgid),
	    .help = "a bounce must name a Message-ID of local_domains" },
	{ .name = "local_domains",
	    .type = SL_CONF_LIST,
	    .def = NULL,
	    .offset = offsetof(struct bogus_bounce, local_doms),
	    .help = "domains of our Message-IDs (default: the host name)" },
	{ .name = "scan_size",
	    .type = SL_CONF_SIZE,
	    .def = "64k",
	    .min = 1024,
	    .max = 16 * 1024 * 1024,
	    .offset = offsetof(struct bogus_bounce, scan_size),
	    .help = "bytes of a bounce's body searched for Message-ID:" },
	SL_CONF_END,
};

/* init runs on the configuring thread only: one buffer will do. */
static char bb_error[512];

static int
bb_init(void **state_r, const char **error_r)
{
	struct bogus_bounce *st = *state_r;
	char *error;

	st->bad = sl_addrlist_new(&st->bad_rcpt, &error);
	if (st->bad == NULL) {
		snprintf(bb_error, sizeof(bb_error), "bad_rcpt: %s", error);
		free(error);
		*error_r = bb_error;
		return -1;
	}
	return 0;
}

static void
bb_fini(void *state)
{
	struct bogus_bounce *st = state;

	sl_addrlist_free(&st->bad);
}

/* A fail already recorded for this connection stays. */
static void
outcome(struct sl_hookctx *ctx, const char *what, const char *detail)
{
	struct sl_conn *c = sl_hook_conn(ctx);
	const char *name = sl_hook_plugin_name(ctx);
	const char *old = sl_conn_outcome_get(c, name);

	if (old != NULL && strncmp(old, "fail", 4) == 0 &&
	    strcmp(what, "fail") != 0)
		return;
	sl_conn_outcome_set(c, name, what, detail);
}

/* why: " key=value ..." for the log line, or "" */
static enum sl_verdict
refuse(struct sl_hookctx *ctx, const char *check, const char *why,
    const char *text)
{
	sl_hook_log(ctx, LOG_INFO, "verdict=deny check=%s%s text=\"%s\"", check,
	    why, text);
	outcome(ctx, "fail", check);
	sl_hook_reply(ctx, 550, "5.7.1", "%s", text);
	return SL_DENY;
}

/* Whether the transaction is a bounce to check; records skips. */
static bool
is_checked_bounce(struct sl_hookctx *ctx)
{
	const char *sender = sl_txn_sender(sl_hook_txn(ctx));

	if (sender == NULL || sender[0] != '\0')
		return false;
	if (sl_conn_is_relay_client(sl_hook_conn(ctx))) {
		outcome(ctx, "skip", "relay");
		return false;
	}
	return true;
}

static enum sl_verdict
bb_mail(void *state, struct sl_hookctx *ctx)
{
	const char *sender = sl_hook_args(ctx)->arg;

	(void)state;
	if (sender != NULL && sender[0] != '\0')
		outcome(ctx, "skip", "not-a-bounce");
	return SL_DECLINED;
}

static enum sl_verdict
bb_rcpt(void *state, struct sl_hookctx *ctx)
{
	const struct bogus_bounce *st = state;
	const char *rcpt = sl_hook_args(ctx)->arg, *entry;
	char text[400], why[700];
	size_t n;

	if (sl_hook_txn(ctx) == NULL || !is_checked_bounce(ctx))
		return SL_DECLINED;
	entry = sl_addrlist_match(st->bad, rcpt);
	if (entry != NULL) {
		snprintf(why, sizeof(why), " rcpt=<%s> entry=\"%s\"", rcpt,
		    entry);
		snprintf(text, sizeof(text),
		    "Address <%s> sends no mail, so it gets no bounces", rcpt);
		return refuse(ctx, "bad-rcpt", why, text);
	}
	/* RFC 3464 2.2: a DSN goes to the one return path of the message */
	n = sl_txn_rcpt_count(sl_hook_txn(ctx));
	if (st->single_recipient && n > 0) {
		snprintf(why, sizeof(why), " rcpt=<%s> accepted=%zu", rcpt, n);
		return refuse(ctx, "single-recipient", why,
		    "Bounces have one recipient");
	}
	return SL_DECLINED;
}

/* --- data_post ---------------------------------------------------------- */

/* s for a log line: control characters and quotes become '?'. */
static void
log_safe(const char *s, char *buf, size_t size)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < size; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == '"' ? '?' : s[i];
	buf[i] = '\0';
}

/* "<>", blanks and line ends around it, or nothing. */
static bool
return_path_empty(const char *v)
{
	v += strspn(v, " \t\r\n");
	if (*v == '\0')
		return true;
	if (strncmp(v, "<>", 2) != 0)
		return false;
	v += 2;
	return v[strspn(v, " \t\r\n")] == '\0';
}

/* dom is one of the domains or a subdomain of one (ASCII case). */
static bool
domain_matches(const char *dom, size_t len, const char *want)
{
	size_t wl = strlen(want);

	if (wl == 0 || len < wl)
		return false;
	if (strncasecmp(dom + len - wl, want, wl) != 0)
		return false;
	return len == wl || dom[len - wl - 1] == '.';
}

static bool
domain_is_local(const struct bogus_bounce *st, struct sl_conn *c,
    const char *dom, size_t len)
{
	const char *j;
	size_t i;

	if (st->local_doms.count == 0) {
		j = sl_conn_macro(c, "j");
		return j != NULL && domain_matches(dom, len, j);
	}
	for (i = 0; i < st->local_doms.count; i++)
		if (domain_matches(dom, len, st->local_doms.items[i]))
			return true;
	return false;
}

struct msgids {
	size_t count, local;
	char first[256]; /* the first non-local one, for the log */
};

/* One Message-ID value: "<left@right>" (comments and blanks around). */
static void
msgid_value(const struct bogus_bounce *st, struct sl_conn *c, const char *v,
    size_t len, struct msgids *m)
{
	const char *lt, *gt, *at;
	size_t dl;

	lt = memchr(v, '<', len);
	if (lt == NULL)
		return;
	gt = memchr(lt, '>', len - (size_t)(lt - v));
	if (gt == NULL)
		return;
	for (at = gt; at > lt && *at != '@'; at--)
		;
	if (at == lt)
		return;
	dl = (size_t)(gt - at - 1);
	if (dl == 0)
		return;
	m->count++;
	if (domain_is_local(st, c, at + 1, dl))
		m->local++;
	else if (m->first[0] == '\0')
		snprintf(m->first, sizeof(m->first), "%.*s", (int)(gt - lt + 1),
		    lt);
}

/*
 * Message-ID: lines of buf (the returned message's header inside the
 * bounce); leading blanks and '>' quoting are allowed, and the value may
 * be folded onto the next line.
 */
static void
scan_msgids(const struct bogus_bounce *st, struct sl_conn *c, const char *buf,
    size_t len, struct msgids *m)
{
	const char *p = buf, *end = buf + len, *eol, *v, *next;

	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		next = eol < end ? eol + 1 : end;
		while (p < eol && (*p == ' ' || *p == '\t' || *p == '>'))
			p++;
		if ((size_t)(eol - p) >= 11 &&
		    strncasecmp(p, "Message-ID:", 11) == 0) {
			v = p + 11;
			if (memchr(v, '<', (size_t)(eol - v)) == NULL &&
			    next < end && (*next == ' ' || *next == '\t')) {
				v = next;
				eol = memchr(next, '\n', (size_t)(end - next));
				if (eol == NULL)
					eol = end;
				next = eol < end ? eol + 1 : end;
			}
			msgid_value(st, c, v, (size_t)(eol - v), m);
		}
		p = next;
	}
}

static enum sl_verdict
check_msgids(const struct bogus_bounce *st, struct sl_hookctx *ctx)
{
	struct sl_txn *t = sl_hook_txn(ctx);
	struct msgids m;
	size_t want, got = 0;
	char *buf, why[300];
	long n = 0;

	memset(&m, 0, sizeof(m));
	want = sl_txn_body_size(t);
	if (want > st->scan_size)
		want = st->scan_size;
	buf = sl_xmalloc(want + 1);
	while (got < want) {
		n = sl_txn_body_read(t, got, buf + got, want - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (n < 0 && got < want) {
		free(buf);
		sl_hook_log(ctx, LOG_WARNING, "error=\"cannot read the body\"");
		outcome(ctx, "error", "body-read");
		return SL_ERROR;
	}
	scan_msgids(st, sl_hook_conn(ctx), buf, got, &m);
	free(buf);
	if (m.count > 0 && m.local == 0) {
		snprintf(why, sizeof(why), " msgids=%zu first=%s", m.count,
		    m.first);
		return refuse(ctx, "non-local-msgid", why,
		    "Bounce of a message we did not send");
	}
	if (m.count == 0) {
		sl_hook_log(ctx, LOG_INFO,
		    "verdict=neutral check=non-local-msgid reason=no-msgid");
		outcome(ctx, "neutral", "no-msgid");
		return SL_DECLINED;
	}
	sl_hook_log(ctx, LOG_INFO, "verdict=pass msgids=%zu local=%zu", m.count,
	    m.local);
	outcome(ctx, "pass", NULL);
	return SL_DECLINED;
}

static enum sl_verdict
bb_data_post(void *state, struct sl_hookctx *ctx)
{
	const struct bogus_bounce *st = state;
	struct sl_txn *t = sl_hook_txn(ctx);
	const char *rp;
	char val[200], why[300];
	size_t i;

	if (t == NULL || !is_checked_bounce(ctx))
		return SL_DECLINED;
	for (i = 0; st->empty_return_path &&
	     (rp = sl_txn_header_get(t, "Return-Path", i)) != NULL;
	     i++) {
		if (!return_path_empty(rp)) {
			log_safe(rp, val, sizeof(val));
			snprintf(why, sizeof(why), " return_path=\"%s\"", val);
			return refuse(ctx, "return-path", why,
			    "Bounce with a non-empty Return-Path");
		}
	}
	if (st->non_local_msgid)
		return check_msgids(st, ctx);
	sl_hook_log(ctx, LOG_DEBUG, "verdict=pass");
	outcome(ctx, "pass", NULL);
	return SL_DECLINED;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "bogus_bounce",
	.conf = bb_conf,
	.state_size = sizeof(struct bogus_bounce),
	.init = bb_init,
	.fini = bb_fini,
	.hooks = {
		[SL_HOOK_MAIL] = bb_mail,
		[SL_HOOK_RCPT] = bb_rcpt,
		[SL_HOOK_DATA_POST] = bb_data_post,
	},
};
