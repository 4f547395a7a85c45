/*
 * helo - checks of the HELO/EHLO name (sluice-plugins(7)).
 *
 * Hooks connect (forgets the last client's name), helo, mail, rcpt.  The
 * name is judged when the client gives it, by policy=:
 *   lenient  the syntax of a domain name or an address literal, no bare
 *            address, and no claim to be us (our hostname, the "j" macro,
 *            or our address, {daemon_addr}) from a client that is
 *            neither a relay client nor ourselves;
 *   rfc      lenient, plus a fully-qualified name (RFC 5321 4.1.1.1), an
 *            address literal that is the client's address, and no
 *            localhost name from a remote client;
 *   strict   rfc, plus a name whose A (IPv4 client) or AAAA (IPv6 client)
 *            records hold the client's address, or the name fcrdns
 *            verified (the connection note "fcrdns.name").
 * The verdict is given at check_at= (default helo: the client may try
 * another HELO); strict waits there for its lookup.  The result is the
 * outcome result.NAME.  In sluice-milterd the name is the one the MTA
 * reports with SMFIC_HELO.
 *
 *	plugin helo policy=rfc check_at=helo
 */
#include <sys/socket.h>

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

enum { POLICY_LENIENT, POLICY_RFC, POLICY_STRICT };
static const char *const policy_choices[] = { "lenient", "rfc", "strict",
	NULL };
enum { AT_HELO, AT_MAIL, AT_RCPT };
static const char *const at_choices[] = { "helo", "mail", "rcpt", NULL };
enum { DNSF_SKIP, DNSF_TEMPFAIL };
static const char *const dnsf_choices[] = { "skip", "tempfail", NULL };

struct helo {
	int policy;      /* policy=: POLICY_* */
	int check_at;    /* check_at=: AT_* */
	int dns_failure; /* dns_failure=: DNSF_* */
};

static const struct sl_conf_def helo_conf[] = {
	{ .name = "policy",
	    .type = SL_CONF_ENUM,
	    .def = "rfc",
	    .choices = policy_choices,
	    .offset = offsetof(struct helo, policy),
	    .help = "lenient, rfc or strict" },
	{ .name = "check_at",
	    .type = SL_CONF_ENUM,
	    .def = "helo",
	    .choices = at_choices,
	    .offset = offsetof(struct helo, check_at),
	    .help = "the hook that gives the verdict: helo, mail or rcpt" },
	{ .name = "dns_failure",
	    .type = SL_CONF_ENUM,
	    .def = "tempfail",
	    .choices = dnsf_choices,
	    .offset = offsetof(struct helo, dns_failure),
	    .help = "policy=strict on a DNS timeout or server failure: skip "
	            "or tempfail" },
	SL_CONF_END,
};

/* Why a name fails; the keyword is the outcome's detail. */
enum reason {
	R_NONE = 0,  /* not judged yet */
	R_PENDING,   /* strict: the lookup is out */
	R_PASS,      /* passed the policy */
	R_SYNTAX,    /* neither a domain name nor an address literal */
	R_BARE_IP,   /* an address without brackets */
	R_OUR_NAME,  /* our hostname */
	R_OUR_ADDR,  /* a literal of our address */
	R_LITERAL,   /* rfc: a literal of another address */
	R_LOCALHOST, /* rfc: localhost from a remote client */
	R_NOT_FQDN,  /* rfc: no dot */
	R_NXDOMAIN,  /* strict: the name does not exist */
	R_MISMATCH,  /* strict: no address of the name is the client's */
	R_DNSFAIL,   /* strict: the lookup failed */
};

static const char *const reason_names[] = { [R_NONE] = "none",
	[R_PENDING] = "pending",
	[R_PASS] = "pass",
	[R_SYNTAX] = "syntax",
	[R_BARE_IP] = "bare-ip",
	[R_OUR_NAME] = "our-name",
	[R_OUR_ADDR] = "our-address",
	[R_LITERAL] = "literal-mismatch",
	[R_LOCALHOST] = "localhost",
	[R_NOT_FQDN] = "not-fqdn",
	[R_NXDOMAIN] = "nxdomain",
	[R_MISMATCH] = "mismatch",
	[R_DNSFAIL] = "dns-failure" };

/* Per connection and instance: the last HELO name and its verdict. */
struct helo_conn {
	const struct helo *st;
	struct sl_conn *conn;
	const char *inst; /* the instance name (lives as long as the runtime) */
	char *name;       /* the HELO argument */
	char ip[64];      /* the client address */
	uint8_t addr[16];
	bool v6;
	enum reason reason;
	const char *via; /* a pass: what verified it */
	char detail[64]; /* a DNS failure: which */
	struct sl_dns_query *q;
	struct sl_async *a; /* the verdict hook, waiting for the lookup */
};

/* Forget the name: cancel its lookup and drop a dead waiting handle. */
static void
hc_reset(struct helo_conn *hc)
{
	sl_dns_cancel(&hc->q);
	sl_async_done(&hc->a, SL_DECLINED);
	free(hc->name);
	hc->name = NULL;
	hc->reason = R_NONE;
	hc->via = NULL;
	hc->detail[0] = '\0';
}

static void
hc_free(void *arg)
{
	struct helo_conn *hc = arg;

	hc_reset(hc);
	free(hc);
}

static struct helo_conn *
hc_get(const struct helo *st, struct sl_hookctx *ctx)
{
	struct sl_conn *conn = sl_hook_conn(ctx);
	struct helo_conn *hc;

	hc = sl_conn_data_get(conn, st);
	if (hc == NULL) {
		hc = sl_xcalloc(1, sizeof(*hc));
		hc->st = st;
		hc->conn = conn;
		hc->inst = sl_hook_plugin_name(ctx);
		sl_conn_data_set(conn, st, hc, hc_free);
	}
	return hc;
}

/* --- the checks --------------------------------------------------------- */

/* "[192.0.2.1]", "[IPv6:2001:db8::1]" -> 16 bytes; 0 or -1. */
static int
literal_addr(const char *name, uint8_t addr16_r[16])
{
	char buf[64];
	size_t len = strlen(name);
	const char *s = name + 1;

	if (len < 3 || len - 2 >= sizeof(buf) || name[len - 1] != ']')
		return -1;
	if (strncasecmp(s, "IPv6:", 5) == 0) {
		s += 5;
		len -= 5;
	}
	memcpy(buf, s, len - 2);
	buf[len - 2] = '\0';
	return sl_addr_parse(buf, addr16_r);
}

/* RFC 6761 6.3: localhost and every name below it. */
static bool
is_localhost(const char *name)
{
	size_t len = strlen(name);

	return strcasecmp(name, "localhost") == 0 ||
	    strcasecmp(name, "localhost.localdomain") == 0 ||
	    (len > 10 && strcasecmp(name + len - 10, ".localhost") == 0);
}

static bool
is_loopback(const struct helo_conn *hc)
{
	static const uint8_t lo6[16] = { [15] = 1 };

	if (hc->v6)
		return memcmp(hc->addr, lo6, 16) == 0;
	return sl_addr_is_v4(hc->addr) && hc->addr[12] == 127;
}

/*
 * The client claims to be us.  Relay clients may (a submission client
 * that names its server), and so may we ourselves: a client on our own
 * address (a local program) is us.
 */
static enum reason
check_ours(struct helo_conn *hc, bool literal, const uint8_t lit[16])
{
	struct sl_conn *conn = hc->conn;
	const char *j, *da;
	uint8_t ours[16];
	bool is_us;

	if (sl_conn_is_relay_client(conn))
		return R_PASS;
	da = sl_conn_macro(conn, "{daemon_addr}");
	is_us = da != NULL && sl_addr_parse(da, ours) == 0;
	if (is_us && memcmp(ours, hc->addr, 16) == 0)
		return R_PASS;
	if (literal)
		return is_us && memcmp(lit, ours, 16) == 0 ? R_OUR_ADDR
		                                           : R_PASS;
	j = sl_conn_macro(conn, "j");
	if (j != NULL && strcasecmp(j, hc->name) == 0)
		return R_OUR_NAME;
	return R_PASS;
}

/* Everything but the DNS: R_PASS, or why not. */
static enum reason
check_name(struct helo_conn *hc)
{
	const char *name = hc->name;
	bool literal = name[0] == '[';
	uint8_t lit[16], a[16];
	enum reason r;

	if (!literal && sl_addr_parse(name, a) == 0)
		return R_BARE_IP;
	/*
	 * The front end let it through (sluice-smtpd refuses worse with
	 * 501), but an MTA in front of sluice-milterd may not have; and
	 * "_" is not a host name character (RFC 952, RFC 1123 2.1).
	 */
	if (!sl_smtp_helo_valid(name) || (!literal && strchr(name, '_')))
		return R_SYNTAX;
	if (literal && literal_addr(name, lit) == -1)
		return R_SYNTAX;
	if ((r = check_ours(hc, literal, lit)) != R_PASS)
		return r;
	if (hc->st->policy == POLICY_LENIENT)
		return R_PASS;
	if (literal)
		return memcmp(lit, hc->addr, 16) == 0 ? R_PASS : R_LITERAL;
	if (is_localhost(name))
		return is_loopback(hc) ? R_PASS : R_LOCALHOST;
	if (strchr(name, '.') == NULL)
		return R_NOT_FQDN;
	return R_PASS;
}

/* The name fcrdns verified for this client, if it is the HELO name. */
static bool
is_fcrdns_name(const struct helo_conn *hc)
{
	const char *v = sl_conn_note_get(hc->conn, "fcrdns.name");

	return v != NULL && strcasecmp(v, hc->name) == 0;
}

/* --- verdicts ----------------------------------------------------------- */

static enum sl_verdict
hc_decide(const struct helo_conn *hc, const char *at, int *code_r,
    const char **enh_r, char *text, size_t size)
{
	const char *n = hc->name;
	enum sl_verdict v = SL_DENY;

	*code_r = 550;
	*enh_r = "5.7.1";
	switch (hc->reason) {
	case R_SYNTAX:
		*code_r = 501;
		*enh_r = "5.5.2";
		snprintf(text, size,
		    "HELO name %s is neither a domain name nor an address "
		    "literal",
		    n);
		break;
	case R_BARE_IP:
		*code_r = 501;
		*enh_r = "5.5.2";
		snprintf(text, size,
		    "HELO name %s is an address: use an address literal "
		    "[%s%s]",
		    n, strchr(n, ':') != NULL ? "IPv6:" : "", n);
		break;
	case R_OUR_NAME:
	case R_OUR_ADDR:
		snprintf(text, size, "Client host [%s] is not us (HELO %s)",
		    hc->ip, n);
		break;
	case R_LITERAL:
		snprintf(text, size,
		    "HELO address literal %s is not the client's address "
		    "[%s]",
		    n, hc->ip);
		break;
	case R_LOCALHOST:
		snprintf(text, size,
		    "HELO name %s is for local clients, not [%s]", n, hc->ip);
		break;
	case R_NOT_FQDN:
		snprintf(text, size,
		    "HELO name %s is not a fully-qualified domain name", n);
		break;
	case R_NXDOMAIN:
		snprintf(text, size, "HELO name %s does not exist in DNS", n);
		break;
	case R_MISMATCH:
		snprintf(text, size, "HELO name %s does not resolve to [%s]", n,
		    hc->ip);
		break;
	case R_DNSFAIL:
		v = hc->st->dns_failure == DNSF_TEMPFAIL ? SL_DENYSOFT
		                                         : SL_DECLINED;
		*code_r = 451;
		*enh_r = "4.4.3";
		snprintf(text, size,
		    "HELO name %s: DNS lookup failed, try again later", n);
		break;
	default:
		return SL_DECLINED;
	}
	sl_conn_log(hc->conn, hc->inst, LOG_INFO,
	    "verdict=%s reason=%s%s%s helo=%s ip=%s at=%s%s",
	    v == SL_DENY           ? "deny"
	        : v == SL_DENYSOFT ? "denysoft"
	                           : "declined",
	    reason_names[hc->reason], hc->detail[0] != '\0' ? "/" : "",
	    hc->detail, n, hc->ip, at,
	    v == SL_DECLINED ? " dns_failure=skip" : "");
	return v;
}

/* The name is judged: record the outcome and wake a waiting hook. */
static void
hc_finish(struct helo_conn *hc, enum reason r)
{
	char text[512];
	const char *enh, *outcome;
	enum sl_verdict v;
	int code;

	hc->reason = r;
	outcome = r == R_PASS ? "pass" : r == R_DNSFAIL ? "error" : "fail";
	if (r == R_PASS) {
		sl_conn_outcome_set(hc->conn, hc->inst, outcome, hc->via);
		sl_conn_log(hc->conn, hc->inst, LOG_INFO,
		    "result=pass helo=%s ip=%s policy=%s via=%s", hc->name,
		    hc->ip, policy_choices[hc->st->policy], hc->via);
	} else {
		sl_conn_outcome_set(hc->conn, hc->inst, outcome,
		    r == R_DNSFAIL ? hc->detail : reason_names[r]);
		sl_conn_log(hc->conn, hc->inst, LOG_INFO,
		    "result=%s reason=%s helo=%s ip=%s%s%s", outcome,
		    reason_names[r], hc->name, hc->ip,
		    hc->detail[0] != '\0' ? " dns=" : "", hc->detail);
	}
	if (hc->a == NULL)
		return;
	if (!sl_async_is_live(hc->a)) {
		sl_async_done(&hc->a, SL_DECLINED); /* timed out: frees */
		return;
	}
	v = hc_decide(hc, at_choices[hc->st->check_at], &code, &enh, text,
	    sizeof(text));
	if (v != SL_DECLINED)
		sl_async_reply(hc->a, code, enh, "%s", text);
	sl_async_done(&hc->a, v);
}

/*
 * Whether the name is still the connection client's.  After XCLIENT to a
 * client this instance skips (skip=relay), connect did not run again to
 * forget it.
 */
static bool
hc_is_current(const struct helo_conn *hc)
{
	uint8_t addr[16];

	(void)sl_conn_remote_addr(hc->conn, addr);
	return memcmp(addr, hc->addr, sizeof(addr)) == 0;
}

static void
dns_answer(void *arg, const struct sl_dns_result *r)
{
	struct helo_conn *hc = arg;

	hc->q = NULL;
	if (!hc_is_current(hc)) {
		hc_reset(hc); /* another client's: forget it */
		return;
	}
	if (r->status == SL_DNS_OK && sl_dns_has_addr(r, hc->addr)) {
		hc->via = "dns";
		hc_finish(hc, R_PASS);
		return;
	}
	/* fcrdns may have finished while we looked. */
	if (is_fcrdns_name(hc)) {
		hc->via = "fcrdns";
		hc_finish(hc, R_PASS);
		return;
	}
	switch (r->status) {
	case SL_DNS_OK:
	case SL_DNS_NODATA:
		hc_finish(hc, R_MISMATCH);
		break;
	case SL_DNS_NXDOMAIN:
		hc_finish(hc, R_NXDOMAIN);
		break;
	default:
		snprintf(hc->detail, sizeof(hc->detail), "%s-%s",
		    hc->v6 ? "aaaa" : "a", sl_dns_status_name(r->status));
		hc_finish(hc, R_DNSFAIL);
		break;
	}
}

/* Judge a new HELO name (the lookup of strict may stay out). */
static void
hc_judge(struct helo_conn *hc, const char *name)
{
	struct sl_conn *conn = hc->conn;
	enum reason r;
	int family;

	hc_reset(hc);
	hc->name = sl_xstrdup(name);
	snprintf(hc->ip, sizeof(hc->ip), "%s", sl_conn_remote_ip(conn));
	family = sl_conn_remote_addr(conn, hc->addr);
	hc->v6 = family == AF_INET6 && !sl_addr_is_v4(hc->addr);
	hc->via = policy_choices[hc->st->policy];
	if (family != AF_INET && family != AF_INET6) {
		/* No IP client (a session on standard input): syntax only. */
		r = !sl_smtp_helo_valid(name) ? R_SYNTAX : R_PASS;
		hc_finish(hc, r);
		return;
	}
	r = check_name(hc);
	if (r != R_PASS || hc->st->policy != POLICY_STRICT ||
	    hc->name[0] == '[') {
		hc_finish(hc, r);
		return;
	}
	if (is_fcrdns_name(hc)) {
		hc->via = "fcrdns";
		hc_finish(hc, R_PASS);
		return;
	}
	hc->reason = R_PENDING;
	hc->q = sl_dns_lookup(conn, hc->name, hc->v6 ? SL_DNS_AAAA : SL_DNS_A,
	    dns_answer, hc);
	if (hc->q == NULL) {
		snprintf(hc->detail, sizeof(hc->detail), "no-resolver");
		hc_finish(hc, R_DNSFAIL);
	}
}

/* The verdict now, or suspend until the lookup is in. */
static enum sl_verdict
hc_verdict(struct helo_conn *hc, struct sl_hookctx *ctx)
{
	char text[512];
	const char *enh;
	enum sl_verdict v;
	int code;

	if (hc->reason == R_PENDING) {
		sl_async_done(&hc->a, SL_DECLINED); /* a dead one: frees */
		hc->a = sl_async_begin(ctx);
		return SL_PENDING;
	}
	v = hc_decide(hc, at_choices[hc->st->check_at], &code, &enh, text,
	    sizeof(text));
	if (v != SL_DECLINED)
		sl_hook_reply(ctx, code, enh, "%s", text);
	return v;
}

/* --- hooks -------------------------------------------------------------- */

static enum sl_verdict
helo_connect(void *state, struct sl_hookctx *ctx)
{
	struct helo_conn *hc = sl_conn_data_get(sl_hook_conn(ctx), state);

	/* A new client identity (XCLIENT, a milter's next CONNECT). */
	if (hc != NULL)
		hc_reset(hc);
	return SL_DECLINED;
}

static enum sl_verdict
helo_helo(void *state, struct sl_hookctx *ctx)
{
	const struct helo *st = state;
	struct helo_conn *hc = hc_get(st, ctx);

	hc_judge(hc, sl_hook_args(ctx)->arg);
	if (st->check_at != AT_HELO)
		return SL_DECLINED;
	return hc_verdict(hc, ctx);
}

static enum sl_verdict
helo_later(void *state, struct sl_hookctx *ctx, int at)
{
	const struct helo *st = state;
	struct helo_conn *hc;
	const char *name;

	if (st->check_at != at)
		return SL_DECLINED;
	hc = hc_get(st, ctx);
	if (hc->reason == R_NONE || !hc_is_current(hc)) {
		/* No HELO hook saw the name (a milter session without one). */
		name = sl_conn_helo(sl_hook_conn(ctx));
		if (name == NULL)
			return SL_DECLINED;
		hc_judge(hc, name);
	}
	return hc_verdict(hc, ctx);
}

static enum sl_verdict
helo_mail(void *state, struct sl_hookctx *ctx)
{
	return helo_later(state, ctx, AT_MAIL);
}

static enum sl_verdict
helo_rcpt(void *state, struct sl_hookctx *ctx)
{
	return helo_later(state, ctx, AT_RCPT);
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "helo",
	.conf = helo_conf,
	.state_size = sizeof(struct helo),
	.hooks = {
		[SL_HOOK_CONNECT] = helo_connect,
		[SL_HOOK_HELO] = helo_helo,
		[SL_HOOK_MAIL] = helo_mail,
		[SL_HOOK_RCPT] = helo_rcpt,
	},
};
