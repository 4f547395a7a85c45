/*
 * fcrdns - forward-confirmed reverse DNS of the client (sluice-plugins(7)).
 *
 * Hooks connect, helo, mail, rcpt.  At connect the plugin asks for the PTR
 * names of the client address, then, in parallel, for the A (IPv4 client)
 * or AAAA (IPv6 client) records of each of them (at most max_names); the
 * client passes when one of those addresses is its own.  The answer is
 * recorded at once as the outcome result.NAME and, on a pass, as the
 * connection note "fcrdns.name" (the verified name, read by rhsbl and
 * helo).  The verdict waits for check_at (default rcpt), so the lookups
 * run while the client greets; if they are still out then, that hook
 * suspends until they are in.  Each lookup ends within dns_timeout, so a
 * verdict comes after at most two of them.  XCLIENT runs connect again:
 * everything here is per client identity.
 *
 *	plugin fcrdns check_at=rcpt reject_no_ptr=yes reject_mismatch=no
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

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

#include "smtpparse.h"
#include "xmalloc.h"

#define NAME_NOTE "fcrdns.name"

enum { AT_CONNECT, AT_HELO, AT_MAIL, AT_RCPT };
static const char *const at_choices[] = { "connect", "helo", "mail", "rcpt",
	NULL };
enum { DNSF_SKIP, DNSF_TEMPFAIL };
static const char *const dnsf_choices[] = { "skip", "tempfail", NULL };

struct fcrdns {
	int check_at;                     /* check_at=: AT_* */
	unsigned int max_names;           /* max_names= */
	bool reject_no_ptr;               /* reject_no_ptr= */
	bool reject_mismatch;             /* reject_mismatch= */
	int dns_failure;                  /* dns_failure=: DNSF_* */
	struct sl_cidrlist skip_networks; /* skip_networks= */
};

static const struct sl_conf_def fcrdns_conf[] = {
	{ .name = "check_at",
	    .type = SL_CONF_ENUM,
	    .def = "rcpt",
	    .choices = at_choices,
	    .offset = offsetof(struct fcrdns, check_at),
	    .help = "the hook that gives the verdict: connect, helo, mail or "
	            "rcpt" },
	{ .name = "max_names",
	    .type = SL_CONF_UINT,
	    .def = "10",
	    .min = 1,
	    .max = 100,
	    .offset = offsetof(struct fcrdns, max_names),
	    .help = "PTR names whose addresses are looked up" },
	{ .name = "reject_no_ptr",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = offsetof(struct fcrdns, reject_no_ptr),
	    .help = "refuse clients without a PTR record" },
	{ .name = "reject_mismatch",
	    .type = SL_CONF_BOOL,
	    .def = "no",
	    .offset = offsetof(struct fcrdns, reject_mismatch),
	    .help = "refuse clients whose PTR names do not resolve to them" },
	{ .name = "dns_failure",
	    .type = SL_CONF_ENUM,
	    .def = "skip",
	    .choices = dnsf_choices,
	    .offset = offsetof(struct fcrdns, dns_failure),
	    .help = "on a DNS timeout or server failure: skip or tempfail" },
	{ .name = "skip_networks",
	    .type = SL_CONF_CIDRS,
	    .def = NULL,
	    .offset = offsetof(struct fcrdns, skip_networks),
	    .help = "client networks not looked up" },
	SL_CONF_END,
};

enum fc_result {
	FC_IDLE = 0, /* nothing started (connect did not run) */
	FC_PENDING,  /* lookups out */
	FC_PASS,
	FC_SKIP,
	FC_NO_PTR,
	FC_MISMATCH,
	FC_DNSFAIL,
};

struct fc_conn;

/* One PTR name and its forward lookup. */
struct fc_fwd {
	struct fc_conn *fc;
	char *name;
	struct sl_dns_query *q;
	enum sl_dns_status status;
};

/* Per connection and instance: the lookups and their result. */
struct fc_conn {
	const struct fcrdns *st;
	struct sl_conn *conn;
	const char *inst; /* the instance name (lives as long as the runtime) */
	char ip[INET6_ADDRSTRLEN];
	uint8_t addr[16];
	bool v6;
	struct sl_dns_query *ptrq;
	struct fc_fwd *fwd;
	size_t nfwd, pending;
	bool bad_names; /* some PTR names were not host names */
	enum fc_result result;
	char detail[64];
	char name[256];     /* the verified name, or the first PTR name */
	struct sl_async *a; /* the verdict hook, waiting for the lookups */
};

static void
fc_stop(struct fc_conn *fc)
{
	size_t i;

	sl_dns_cancel(&fc->ptrq);
	for (i = 0; i < fc->nfwd; i++) {
		sl_dns_cancel(&fc->fwd[i].q);
		free(fc->fwd[i].name);
	}
	free(fc->fwd);
	fc->fwd = NULL;
	fc->nfwd = fc->pending = 0;
}

static void
fc_free(void *arg)
{
	struct fc_conn *fc = arg;

	fc_stop(fc);
	sl_async_done(&fc->a, SL_DECLINED); /* the session is gone: frees */
	free(fc);
}

/*
 * The verdict for the result, with the reply and one log line for what is
 * not a pass; at = the hook's name.
 */
static enum sl_verdict
fc_decide(const struct fc_conn *fc, const char *at, int *code_r,
    const char **enh_r, char *text, size_t size)
{
	const struct fcrdns *st = fc->st;
	enum sl_verdict v = SL_DECLINED;

	*code_r = 550;
	*enh_r = "5.7.25"; /* RFC 7372: reverse DNS validation failed */
	switch (fc->result) {
	case FC_NO_PTR:
		if (st->reject_no_ptr)
			v = SL_DENY;
		snprintf(text, size, "Client host [%s] has no reverse DNS",
		    fc->ip);
		break;
	case FC_MISMATCH:
		if (st->reject_mismatch)
			v = SL_DENY;
		snprintf(text, size,
		    "Client host [%s] reverse DNS name %s does not resolve "
		    "to [%s]",
		    fc->ip, fc->name, fc->ip);
		break;
	case FC_DNSFAIL:
		if (st->dns_failure == DNSF_TEMPFAIL)
			v = SL_DENYSOFT;
		*code_r = 451;
		*enh_r = "4.4.3";
		snprintf(text, size,
		    "Client host [%s]: reverse DNS lookup failed, try again "
		    "later",
		    fc->ip);
		break;
	default:
		return SL_DECLINED;
	}
	sl_conn_log(fc->conn, fc->inst, LOG_INFO,
	    "verdict=%s reason=%s ip=%s at=%s%s",
	    v == SL_DENY           ? "deny"
	        : v == SL_DENYSOFT ? "denysoft"
	                           : "declined",
	    fc->detail, fc->ip, at,
	    v != SL_DECLINED                ? ""
	        : fc->result == FC_NO_PTR   ? " reject_no_ptr=no"
	        : fc->result == FC_MISMATCH ? " reject_mismatch=no"
	                                    : " dns_failure=skip");
	return v;
}

/*
 * Whether the lookups are still about the connection's client.  After
 * XCLIENT to a client this instance skips (skip=relay), connect did not
 * run again to cancel them.
 */
static bool
fc_is_current(const struct fc_conn *fc)
{
	uint8_t addr[16];

	(void)sl_conn_remote_addr(fc->conn, addr);
	return memcmp(addr, fc->addr, sizeof(addr)) == 0;
}

/* The lookups are over: record the result and wake a waiting hook. */
static void
fc_finish(struct fc_conn *fc, enum fc_result res, const char *detail)
{
	static const char *const outcomes[] = { [FC_PASS] = "pass",
		[FC_SKIP] = "skip",
		[FC_NO_PTR] = "fail",
		[FC_MISMATCH] = "fail",
		[FC_DNSFAIL] = "error" };
	char text[512];
	const char *enh;
	enum sl_verdict v;
	int code;

	fc_stop(fc);
	if (!fc_is_current(fc)) {
		fc->result = FC_IDLE; /* another client's: forget it */
		sl_async_done(&fc->a, SL_DECLINED);
		return;
	}
	fc->result = res;
	snprintf(fc->detail, sizeof(fc->detail), "%s", detail);
	sl_conn_outcome_set(fc->conn, fc->inst, outcomes[res], detail);
	if (res == FC_PASS)
		sl_conn_note_set(fc->conn, NAME_NOTE, fc->name);
	sl_conn_log(fc->conn, fc->inst, LOG_INFO, "result=%s %s=%s ip=%s%s%s",
	    outcomes[res], res == FC_PASS ? "name" : "reason", detail, fc->ip,
	    res == FC_MISMATCH ? " ptr=" : "",
	    res == FC_MISMATCH ? fc->name : "");
	if (fc->a == NULL)
		return;
	if (!sl_async_is_live(fc->a)) {
		sl_async_done(&fc->a, SL_DECLINED); /* timed out: frees */
		return;
	}
	v = fc_decide(fc, at_choices[fc->st->check_at], &code, &enh, text,
	    sizeof(text));
	if (v != SL_DECLINED)
		sl_async_reply(fc->a, code, enh, "%s", text);
	sl_async_done(&fc->a, v);
}

/* Every forward lookup answered, none with the client's address. */
static void
fwd_conclude(struct fc_conn *fc)
{
	char detail[64];
	size_t i, nx = 0;

	for (i = 0; i < fc->nfwd; i++) {
		switch (fc->fwd[i].status) {
		case SL_DNS_OK:
		case SL_DNS_NODATA:
			break;
		case SL_DNS_NXDOMAIN:
			nx++;
			break;
		default:
			/* Perhaps the one that would have matched. */
			snprintf(detail, sizeof(detail), "%s-%s",
			    fc->v6 ? "aaaa" : "a",
			    sl_dns_status_name(fc->fwd[i].status));
			fc_finish(fc, FC_DNSFAIL, detail);
			return;
		}
	}
	fc_finish(fc, FC_MISMATCH,
	    nx == fc->nfwd && !fc->bad_names ? "forward-nxdomain" : "no-match");
}

static void
fwd_answer(void *arg, const struct sl_dns_result *r)
{
	struct fc_fwd *fw = arg;
	struct fc_conn *fc = fw->fc;

	fw->q = NULL;
	fw->status = r->status;
	fc->pending--;
	if (r->status == SL_DNS_OK && sl_dns_has_addr(r, fc->addr)) {
		snprintf(fc->name, sizeof(fc->name), "%s", fw->name);
		fc_finish(fc, FC_PASS, fc->name); /* cancels the others */
		return;
	}
	if (fc->pending == 0)
		fwd_conclude(fc);
}

static bool
fwd_has(const struct fc_conn *fc, const char *name)
{
	size_t i;

	for (i = 0; i < fc->nfwd; i++)
		if (strcasecmp(fc->fwd[i].name, name) == 0)
			return true;
	return false;
}

static void
ptr_answer(void *arg, const struct sl_dns_result *r)
{
	struct fc_conn *fc = arg;
	char detail[64];
	size_t i, n;

	fc->ptrq = NULL;
	if (r->status == SL_DNS_NXDOMAIN) {
		fc_finish(fc, FC_NO_PTR, "ptr-nxdomain");
		return;
	}
	if (r->status == SL_DNS_NODATA) {
		fc_finish(fc, FC_NO_PTR, "no-ptr");
		return;
	}
	if (r->status != SL_DNS_OK) {
		snprintf(detail, sizeof(detail), "ptr-%s",
		    sl_dns_status_name(r->status));
		fc_finish(fc, FC_DNSFAIL, detail);
		return;
	}
	snprintf(fc->name, sizeof(fc->name), "%s", r->rr[0].text);
	n = r->count < fc->st->max_names ? r->count : fc->st->max_names;
	fc->fwd = sl_xcalloc(n, sizeof(*fc->fwd));
	for (i = 0; i < r->count && fc->nfwd < n; i++) {
		/*
		 * The client's own DNS wrote these: a name that cannot be
		 * looked up is a name that does not match, not a DNS
		 * failure it could hide behind.
		 */
		if (r->rr[i].text[0] == '[' ||
		    !sl_smtp_helo_valid(r->rr[i].text)) {
			fc->bad_names = true;
			continue;
		}
		if (fwd_has(fc, r->rr[i].text))
			continue;
		fc->fwd[fc->nfwd].fc = fc;
		fc->fwd[fc->nfwd].name = sl_xstrdup(r->rr[i].text);
		fc->nfwd++;
	}
	if (fc->nfwd == 0) {
		fc_finish(fc, FC_MISMATCH, "no-match");
		return;
	}
	fc->pending = fc->nfwd;
	for (i = 0; i < fc->nfwd; i++) {
		fc->fwd[i].q = sl_dns_lookup(fc->conn, fc->fwd[i].name,
		    fc->v6 ? SL_DNS_AAAA : SL_DNS_A, fwd_answer, &fc->fwd[i]);
		if (fc->fwd[i].q == NULL) {
			fc->fwd[i].status = SL_DNS_ERROR;
			fc->pending--;
		}
	}
	if (fc->pending == 0)
		fwd_conclude(fc);
}

/* The verdict now, or suspend until the lookups are in. */
static enum sl_verdict
fc_verdict(struct fc_conn *fc, struct sl_hookctx *ctx)
{
	char text[512];
	const char *enh;
	enum sl_verdict v;
	int code;

	if (fc == NULL || fc->result == FC_IDLE || !fc_is_current(fc))
		return SL_DECLINED;
	if (fc->result == FC_PENDING) {
		/* A handle left by a hook that timed out is dead: free it. */
		sl_async_done(&fc->a, SL_DECLINED);
		fc->a = sl_async_begin(ctx);
		return SL_PENDING;
	}
	v = fc_decide(fc, at_choices[fc->st->check_at], &code, &enh, text,
	    sizeof(text));
	if (v != SL_DECLINED)
		sl_hook_reply(ctx, code, enh, "%s", text);
	return v;
}

static enum sl_verdict
fcrdns_connect(void *state, struct sl_hookctx *ctx)
{
	const struct fcrdns *st = state;
	struct sl_conn *conn = sl_hook_conn(ctx);
	struct fc_conn *fc;
	int family;

	fc = sl_conn_data_get(conn, st);
	if (fc == NULL) {
		fc = sl_xcalloc(1, sizeof(*fc));
		sl_conn_data_set(conn, st, fc, fc_free);
	}
	/* A new client identity (XCLIENT, a milter's next CONNECT). */
	fc_stop(fc);
	sl_async_done(&fc->a, SL_DECLINED);
	memset(fc, 0, sizeof(*fc));
	fc->st = st;
	fc->conn = conn;
	fc->inst = sl_hook_plugin_name(ctx);
	snprintf(fc->ip, sizeof(fc->ip), "%s", sl_conn_remote_ip(conn));
	sl_conn_note_set(conn, NAME_NOTE, NULL);
	family = sl_conn_remote_addr(conn, fc->addr);
	if (family != AF_INET && family != AF_INET6) {
		fc_finish(fc, FC_SKIP, "no-address");
		return SL_DECLINED;
	}
	fc->v6 = !sl_addr_is_v4(fc->addr);
	if (!fc->v6) /* "::ffff:192.0.2.1" is looked up as 192.0.2.1 */
		inet_ntop(AF_INET, fc->addr + 12, fc->ip, sizeof(fc->ip));
	if (sl_cidrlist_match(&st->skip_networks, fc->addr)) {
		fc_finish(fc, FC_SKIP, "skip_networks");
		return SL_DECLINED;
	}
	fc->result = FC_PENDING;
	fc->ptrq = sl_dns_lookup(conn, fc->ip, SL_DNS_PTR, ptr_answer, fc);
	if (fc->ptrq == NULL)
		fc_finish(fc, FC_DNSFAIL, "no-resolver");
	return st->check_at == AT_CONNECT ? fc_verdict(fc, ctx) : SL_DECLINED;
}

static enum sl_verdict
fcrdns_at(void *state, struct sl_hookctx *ctx, int at)
{
	const struct fcrdns *st = state;

	if (st->check_at != at)
		return SL_DECLINED;
	return fc_verdict(sl_conn_data_get(sl_hook_conn(ctx), st), ctx);
}

static enum sl_verdict
fcrdns_helo(void *state, struct sl_hookctx *ctx)
{
	return fcrdns_at(state, ctx, AT_HELO);
}

static enum sl_verdict
fcrdns_mail(void *state, struct sl_hookctx *ctx)
{
	return fcrdns_at(state, ctx, AT_MAIL);
}

static enum sl_verdict
fcrdns_rcpt(void *state, struct sl_hookctx *ctx)
{
	return fcrdns_at(state, ctx, AT_RCPT);
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "fcrdns",
	.conf = fcrdns_conf,
	.state_size = sizeof(struct fcrdns),
	.hooks = {
		[SL_HOOK_CONNECT] = fcrdns_connect,
		[SL_HOOK_HELO] = fcrdns_helo,
		[SL_HOOK_MAIL] = fcrdns_mail,
		[SL_HOOK_RCPT] = fcrdns_rcpt,
	},
};
