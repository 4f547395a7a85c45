/*
 * karma - a score per connection from the client's history and from how
 * it fared with other plugins; refuses and slows down bad clients
 * (sluice-plugins(7)); Haraka's karma.
 *
 * Hooks connect .. data_post, deny and disconnect.  At connect the
 * history of the client address is read from the state store (keys
 * karma:IP:good, karma:IP:bad, karma:IP:conn; the hook waits for the
 * store, which answers within redis_timeout) and gives the first points:
 * good - bad, kept within +-history_cap.  At every hook the awards=
 * whose plugin outcome has appeared are added (each once per
 * connection), and every denial seen through the deny hook adds
 * deny_points=.  At reject_at= and later a score at or below negative=
 * gets 550 5.7.1; a score below 0 delays the hook's reply by delay_step=
 * per point, up to delay_max=.  At disconnect the history is counted:
 * bad (score at or below negative=, a denial, or a deferred mark), good
 * (a message got through with a score of 0 or more) or neither.
 * Relay clients are scored and counted, never refused nor delayed.
 * The per-connection state is connection data; store answers and the
 * delay timer reach it through pointers cleared when it is freed.
 *
 *	plugin karma awards=dnsbl:fail:-5,fcrdns:pass:1 negative=-5
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sluice/plugin.h>

#include "xmalloc.h"

#define POINTS_MAX 1000
/* the core's own wait for a delayed hook: the delay and this much more */
#define DELAY_SLACK_MS 5000
#define TOO_LOW "Your karma is too low (%lld)"

/* reject_at= choices, in session order, and their hooks */
static const char *const reject_at_names[] = { "connect", "helo", "mail",
	"rcpt", "data", "data_post", NULL };
static const enum sl_hook_id reject_at_hooks[] = { SL_HOOK_CONNECT,
	SL_HOOK_HELO, SL_HOOK_MAIL, SL_HOOK_RCPT, SL_HOOK_DATA,
	SL_HOOK_DATA_POST };
/* for logs */
static const char *const hook_names[SL_HOOK_MAX] = { "connect", "helo", "auth",
	"mail", "rcpt", "data", "header", "eoh", "body", "data_post", "queue",
	"reset", "disconnect", "unrecognized", "deny" };
static const char *const delay_names[] = { "no", "yes", "smtpd", NULL };
enum { DELAY_NO, DELAY_YES, DELAY_SMTPD };
static const char *const outcomes[] = { "pass", "fail", "neutral", "skip",
	"error", NULL };

struct award {
	char *name; /* plugin instance */
	const char *outcome;
	long long points;
};

struct karma {
	struct sl_strlist award_list;  /* awards= */
	long long negative;            /* negative= */
	long long positive;            /* positive= */
	long long deny_points;         /* deny_points= */
	unsigned int history_cap;      /* history_cap= */
	unsigned int history_expire_s; /* history_expire= */
	int reject_at;                 /* reject_at=: index into hook_names */
	int delay;                     /* delay=: DELAY_* */
	unsigned int delay_step_ms;    /* delay_step= */
	unsigned int delay_max_ms;     /* delay_max= */
	bool header;                   /* header= */
	struct award *awards;          /* made by init from award_list */
	size_t nawards;
};

static const struct sl_conf_def karma_conf[] = {
	{ .name = "awards",
	    .type = SL_CONF_LIST,
	    .offset = offsetof(struct karma, award_list),
	    .help = "NAME:OUTCOME:POINTS, e.g. dnsbl:fail:-5" },
	{ .name = "negative",
	    .type = SL_CONF_INT,
	    .def = "-5",
	    .min = -POINTS_MAX,
	    .max = POINTS_MAX,
	    .offset = offsetof(struct karma, negative),
	    .help = "a score at or below this is bad" },
	{ .name = "positive",
	    .type = SL_CONF_INT,
	    .def = "2",
	    .min = -POINTS_MAX,
	    .max = POINTS_MAX,
	    .offset = offsetof(struct karma, positive),
	    .help = "a score at or above this is good" },
	{ .name = "deny_points",
	    .type = SL_CONF_INT,
	    .def = "-1",
	    .min = -POINTS_MAX,
	    .max = 0,
	    .offset = offsetof(struct karma, deny_points),
	    .help = "points for each denial of the session" },
	{ .name = "history_cap",
	    .type = SL_CONF_UINT,
	    .def = "3",
	    .min = 0,
	    .max = POINTS_MAX,
	    .offset = offsetof(struct karma, history_cap),
	    .help = "most points the history gives or takes; 0 = ignore it" },
	{ .name = "history_expire",
	    .type = SL_CONF_UINT,
	    .def = "5184000",
	    .min = 0,
	    .max = 315360000,
	    .offset = offsetof(struct karma, history_expire_s),
	    .help = "seconds a client's history is kept after its last "
	            "session; 0 = for ever" },
	{ .name = "reject_at",
	    .type = SL_CONF_ENUM,
	    .def = "rcpt",
	    .choices = reject_at_names,
	    .offset = offsetof(struct karma, reject_at),
	    .help = "the first hook where a bad client is refused" },
	{ .name = "delay",
	    .type = SL_CONF_ENUM,
	    .def = "smtpd",
	    .choices = delay_names,
	    .offset = offsetof(struct karma, delay),
	    .help = "slow down clients below 0: in both front ends, in "
	            "sluice-smtpd only, or not" },
	{ .name = "delay_step",
	    .type = SL_CONF_MSEC,
	    .def = "1s",
	    .min = 1,
	    .max = 60000,
	    .offset = offsetof(struct karma, delay_step_ms),
	    .help = "delay per point below 0" },
	{ .name = "delay_max",
	    .type = SL_CONF_MSEC,
	    .def = "5s",
	    .min = 1,
	    .max = 60000,
	    .offset = offsetof(struct karma, delay_max_ms),
	    .help = "the longest delay of one reply" },
	{ .name = "header",
	    .type = SL_CONF_BOOL,
	    .def = "no",
	    .offset = offsetof(struct karma, header),
	    .help = "add X-Sluice-Karma: to each message" },
	SL_CONF_END,
};

/* --- per connection ------------------------------------------------------ */

enum { K_GOOD, K_BAD, K_CONN, K_NKEYS };
static const char *const key_names[K_NKEYS] = { "good", "bad", "conn" };

struct kconn;

/* One history read: three gets, answered in any order, maybe late. */
struct fetch {
	struct kconn *kc; /* NULL once the connection forgot it */
	unsigned int left;
	bool unavailable;
	long long value[K_NKEYS];
	struct slot {
		struct fetch *f;
		int key;
	} slot[K_NKEYS];
};

struct kconn {
	const struct karma *st;
	struct sl_conn *conn;
	const char *name;    /* the instance's, for logs and outcome */
	char ip[64];         /* "" = no IP client: no history */
	struct fetch *fetch; /* a history read under way */
	struct sl_async *a;  /* the hook waiting for the fetch or delay */
	struct sl_io *delay; /* the delay's timer */
	enum sl_verdict v;   /* its verdict after the delay */
	bool history_known;
	long long history[K_NKEYS];
	long long history_points; /* clamped good - bad */
	long long points;         /* awards and denials */
	unsigned int denials;
	bool delivered;
	bool counted;              /* the history of this session was written */
	bool *awarded;             /* [st->nawards] */
	bool published;            /* the note and outcome say ... */
	long long published_score; /* ... this score (publish) */
};

static const char *
hook_name(enum sl_hook_id h)
{
	return (unsigned int)h < SL_HOOK_MAX ? hook_names[h] : "?";
}

static long long
score_of(const struct kconn *kc)
{
	return kc->history_points + kc->points;
}

/* Drops whatever the previous hook or client identity left waiting. */
static void
kconn_idle(struct kconn *kc)
{
	sl_io_cancel(&kc->delay);
	sl_async_done(&kc->a, SL_DECLINED);
}

static void
kconn_reset(struct kconn *kc)
{
	kconn_idle(kc);
	if (kc->fetch != NULL) {
		kc->fetch->kc = NULL; /* frees itself on its last answer */
		kc->fetch = NULL;
	}
	kc->ip[0] = '\0';
	kc->history_known = false;
	memset(kc->history, 0, sizeof(kc->history));
	kc->history_points = 0;
	kc->points = 0;
	kc->denials = 0;
	kc->delivered = false;
	kc->counted = false;
	kc->published = false;
	if (kc->st->nawards > 0)
		memset(kc->awarded, 0, kc->st->nawards * sizeof(*kc->awarded));
}

static void
kconn_free(void *arg)
{
	struct kconn *kc = arg;

	kconn_reset(kc);
	free(kc->awarded);
	free(kc);
}

static struct kconn *
kconn_get(const struct karma *st, struct sl_hookctx *ctx)
{
	struct sl_conn *conn = sl_hook_conn(ctx);
	struct kconn *kc;

	kc = sl_conn_data_get(conn, st);
	if (kc != NULL)
		return kc;
	kc = sl_xcalloc(1, sizeof(*kc));
	kc->st = st;
	kc->conn = conn;
	kc->name = sl_hook_plugin_name(ctx);
	kc->awarded = sl_xcalloc(st->nawards + 1, sizeof(*kc->awarded));
	sl_conn_data_set(conn, st, kc, kconn_free);
	return kc;
}

/*
 * The score as a note and an outcome, for later plugins and the logs.
 * Returns the outcome.
 */
static const char *
publish(struct kconn *kc)
{
	long long score = score_of(kc);
	const char *outcome = "neutral";
	char buf[32];

	if (score <= kc->st->negative)
		outcome = "fail";
	else if (score >= kc->st->positive)
		outcome = "pass";
	if (kc->published && kc->published_score == score)
		return outcome; /* every hook asks: only a change is written */
	kc->published = true;
	kc->published_score = score;
	snprintf(buf, sizeof(buf), "%lld", score);
	sl_conn_note_set(kc->conn, "karma.score", buf);
	snprintf(buf, sizeof(buf), "score=%lld", score);
	sl_conn_outcome_set(kc->conn, kc->name, outcome, buf);
	return outcome;
}

/* Adds the awards whose outcome has appeared since the last look. */
static void
award(struct kconn *kc)
{
	const struct award *aw;
	const char *got;
	size_t i, n;

	for (i = 0; i < kc->st->nawards; i++) {
		aw = &kc->st->awards[i];
		if (kc->awarded[i])
			continue;
		got = sl_conn_outcome_get(kc->conn, aw->name);
		if (got == NULL)
			continue;
		n = strcspn(got, " ");
		if (n != strlen(aw->outcome) ||
		    strncmp(got, aw->outcome, n) != 0)
			continue;
		kc->awarded[i] = true;
		kc->points += aw->points;
		sl_conn_log(kc->conn, kc->name, LOG_INFO,
		    "award name=%s outcome=%s points=%lld score=%lld", aw->name,
		    aw->outcome, aw->points, score_of(kc));
	}
}

static bool
at_or_after_reject_at(const struct kconn *kc, enum sl_hook_id h)
{
	return h >= reject_at_hooks[kc->st->reject_at];
}

/*
 * The verdict of hook h, with the delay its reply gets in *delay_ms_r.
 * Relay clients are never refused nor delayed.
 */
static enum sl_verdict
judge(struct kconn *kc, enum sl_hook_id h, unsigned int *delay_ms_r)
{
	const struct karma *st = kc->st;
	long long score, ms;
	bool bad, slow;

	award(kc);
	(void)publish(kc);
	score = score_of(kc);
	*delay_ms_r = 0;
	bad = score <= st->negative && at_or_after_reject_at(kc, h);
	slow = score < 0 &&
	    (st->delay == DELAY_YES ||
	        (st->delay == DELAY_SMTPD &&
	            sl_conn_front_end(kc->conn) == SL_FRONT_SMTPD));
	if (sl_conn_is_relay_client(kc->conn)) {
		if (bad || slow)
			sl_conn_log(kc->conn, kc->name, LOG_INFO,
			    "exempt=relay_client hook=%s score=%lld",
			    hook_name(h), score);
		return SL_DECLINED;
	}
	if (slow) {
		ms = -score * (long long)st->delay_step_ms;
		if (ms > (long long)st->delay_max_ms)
			ms = st->delay_max_ms;
		*delay_ms_r = (unsigned int)ms;
	}
	if (!bad)
		return SL_DECLINED;
	sl_conn_log(kc->conn, kc->name, LOG_INFO,
	    "verdict=deny hook=%s score=%lld negative=%lld", hook_name(h),
	    score, st->negative);
	return SL_DENY;
}

/* Resumes the waiting hook (kc->a) with v and its reply. */
static void
resume(struct kconn *kc, enum sl_verdict v)
{
	if (v == SL_DENY)
		sl_async_reply(kc->a, 550, "5.7.1", TOO_LOW, score_of(kc));
	sl_async_done(&kc->a, v);
}

static void
delay_fired(void *arg, unsigned int what)
{
	struct kconn *kc = arg;

	(void)what;
	kc->delay = NULL; /* freed by the core */
	resume(kc, kc->v);
}

/*
 * The answer of hook h: now, or after the delay.  With ctx NULL the hook
 * waits already (kc->a: connect, after the store answered) and is
 * resumed.  The delay timer is a wait on no descriptor, since the
 * store's answer comes without a hook context for sl_hook_timer.
 */
static enum sl_verdict
answer(struct kconn *kc, struct sl_hookctx *ctx, enum sl_hook_id h)
{
	unsigned int ms;
	enum sl_verdict v;

	v = judge(kc, h, &ms);
	if (ms > 0 && (ctx != NULL || sl_async_is_live(kc->a))) {
		sl_conn_log(kc->conn, kc->name, LOG_INFO,
		    "delay=%ums hook=%s score=%lld", ms, hook_name(h),
		    score_of(kc));
		if (ctx != NULL)
			kc->a = sl_async_begin(ctx);
		kc->v = v;
		sl_async_timeout(kc->a, ms + DELAY_SLACK_MS);
		kc->delay =
		    sl_conn_io_wait(kc->conn, -1, 0, ms, delay_fired, kc);
		return SL_PENDING;
	}
	if (ctx == NULL) {
		resume(kc, v);
		return SL_PENDING;
	}
	if (v == SL_DENY)
		sl_hook_reply(ctx, 550, "5.7.1", TOO_LOW, score_of(kc));
	return v;
}

/* --- connect: the history ------------------------------------------------ */

static long long
clamp(long long v, long long lo, long long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* All three answers are in: score the history and answer connect. */
static void
fetched(struct kconn *kc, struct fetch *f)
{
	const struct karma *st = kc->st;

	kc->fetch = NULL;
	if (f->unavailable) {
		if (sl_store_failure_tempfails(kc->conn)) {
			sl_conn_log(kc->conn, kc->name, LOG_WARNING,
			    "history ip=%s unavailable action=tempfail",
			    kc->ip);
			sl_async_reply(kc->a, 451, "4.3.0",
			    "Karma history unavailable, try again later");
			sl_async_done(&kc->a, SL_DENYSOFT);
			return;
		}
		sl_conn_log(kc->conn, kc->name, LOG_WARNING,
		    "history ip=%s unavailable action=continue", kc->ip);
	} else {
		kc->history_known = true;
		memcpy(kc->history, f->value, sizeof(kc->history));
		kc->history_points = clamp(f->value[K_GOOD] - f->value[K_BAD],
		    -(long long)st->history_cap, (long long)st->history_cap);
		sl_conn_log(kc->conn, kc->name, LOG_INFO,
		    "history ip=%s good=%lld bad=%lld conn=%lld points=%lld",
		    kc->ip, f->value[K_GOOD], f->value[K_BAD], f->value[K_CONN],
		    kc->history_points);
	}
	(void)answer(kc, NULL, SL_HOOK_CONNECT);
}

static void
got(void *arg, enum sl_store_result res, const char *value, size_t len,
    long long num)
{
	struct slot *s = arg;
	struct fetch *f = s->f;
	char *end;
	long long n = 0;

	(void)len;
	(void)num;
	if (res == SL_STORE_UNAVAILABLE)
		f->unavailable = true;
	else if (res == SL_STORE_OK) {
		errno = 0;
		n = strtoll(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || n < 0)
			n = 0; /* not ours: count from scratch */
	}
	f->value[s->key] = n;
	if (--f->left > 0)
		return;
	if (f->kc != NULL)
		fetched(f->kc, f);
	free(f);
}

static enum sl_verdict
karma_connect(void *state, struct sl_hookctx *ctx)
{
	const struct karma *st = state;
	struct kconn *kc = kconn_get(st, ctx);
	struct fetch *f;
	uint8_t addr[16];
	char key[128];
	int family, i;

	/* XCLIENT runs connect again: a new client, a fresh account. */
	kconn_reset(kc);
	family = sl_conn_remote_addr(kc->conn, addr);
	if (family != AF_INET && family != AF_INET6)
		return SL_DECLINED; /* no IP client, no history */
	snprintf(kc->ip, sizeof(kc->ip), "%s", sl_conn_remote_ip(kc->conn));
	f = sl_xcalloc(1, sizeof(*f));
	f->kc = kc;
	f->left = K_NKEYS;
	kc->fetch = f;
	kc->a = sl_async_begin(ctx);
	for (i = 0; i < K_NKEYS; i++) {
		f->slot[i].f = f;
		f->slot[i].key = i;
		snprintf(key, sizeof(key), "karma:%s:%s", kc->ip, key_names[i]);
		sl_store_get(kc->conn, key, got, &f->slot[i]);
	}
	return SL_PENDING;
}

/* --- the other hooks ----------------------------------------------------- */

static enum sl_verdict
karma_hook(void *state, struct sl_hookctx *ctx)
{
	struct kconn *kc = kconn_get(state, ctx);

	kconn_idle(kc);
	return answer(kc, ctx, sl_hook_args(ctx)->hook);
}

static enum sl_verdict
karma_data_post(void *state, struct sl_hookctx *ctx)
{
	struct kconn *kc = kconn_get(state, ctx);
	struct sl_txn *txn = sl_hook_txn(ctx);
	char buf[128];

	kconn_idle(kc);
	/*
	 * A message got this far.  Should it be refused after all, the
	 * refusal counts the session bad first (karma_disconnect).
	 */
	kc->delivered = true;
	award(kc);
	if (kc->st->header && txn != NULL) {
		if (kc->history_known)
			snprintf(buf, sizeof(buf),
			    "score=%lld history=%lld/%lld/%lld", score_of(kc),
			    kc->history[K_GOOD], kc->history[K_BAD],
			    kc->history[K_CONN]);
		else
			snprintf(buf, sizeof(buf), "score=%lld history=unknown",
			    score_of(kc));
		sl_edit_header_add(txn, "X-Sluice-Karma", buf);
	}
	return answer(kc, ctx, SL_HOOK_DATA_POST);
}

static enum sl_verdict
karma_deny(void *state, struct sl_hookctx *ctx)
{
	struct kconn *kc = sl_conn_data_get(sl_hook_conn(ctx), state);

	if (kc == NULL)
		return SL_DECLINED;
	kc->denials++;
	kc->points += kc->st->deny_points;
	sl_conn_log(kc->conn, kc->name, LOG_INFO,
	    "denied hook=%s points=%lld score=%lld",
	    hook_name(sl_hook_args(ctx)->denied_hook), kc->st->deny_points,
	    score_of(kc));
	(void)publish(kc);
	return SL_DECLINED;
}

static void
incr(struct kconn *kc, int key)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "karma:%s:%s", kc->ip, key_names[key]);
	sl_store_incr(kc->conn, buf, 1, kc->st->history_expire_s, NULL, NULL);
}

static enum sl_verdict
karma_disconnect(void *state, struct sl_hookctx *ctx)
{
	struct kconn *kc = sl_conn_data_get(sl_hook_conn(ctx), state);
	const char *result = "none", *outcome;
	long long score;

	if (kc == NULL || kc->ip[0] == '\0' || kc->counted)
		return SL_DECLINED;
	kconn_idle(kc);
	kc->counted = true;
	award(kc);
	outcome = publish(kc);
	score = score_of(kc);
	if (score <= kc->st->negative || kc->denials > 0 ||
	    sl_conn_deferred(kc->conn, NULL, NULL, NULL, NULL, NULL)) {
		result = "bad";
		incr(kc, K_BAD);
	} else if (kc->delivered && score >= 0) {
		result = "good";
		incr(kc, K_GOOD);
	}
	incr(kc, K_CONN);
	sl_conn_log(kc->conn, kc->name, LOG_INFO,
	    "session ip=%s score=%lld outcome=%s result=%s "
	    "denials=%u delivered=%s",
	    kc->ip, score, outcome, result, kc->denials,
	    kc->delivered ? "yes" : "no");
	return SL_DECLINED;
}

/* --- configuration ------------------------------------------------------- */

/* init runs on the configuring thread only: one buffer will do. */
static char karma_error[256];

static int
parse_award(const char *item, struct award *aw)
{
	const char *p1, *p2;
	char *end;
	size_t i;
	long long n;

	p2 = strrchr(item, ':');
	if (p2 == NULL || p2 == item)
		return -1;
	p1 = p2 - 1;
	while (p1 > item && *p1 != ':')
		p1--;
	if (p1 == item)
		return -1;
	errno = 0;
	n = strtoll(p2 + 1, &end, 10);
	if (p2[1] == '\0' || *end != '\0' || errno != 0 || n < -POINTS_MAX ||
	    n > POINTS_MAX)
		return -1;
	aw->outcome = NULL;
	for (i = 0; outcomes[i] != NULL; i++)
		if (strlen(outcomes[i]) == (size_t)(p2 - p1 - 1) &&
		    strncmp(outcomes[i], p1 + 1, (size_t)(p2 - p1 - 1)) == 0)
			aw->outcome = outcomes[i];
	if (aw->outcome == NULL)
		return -1;
	aw->name = sl_xstrndup(item, (size_t)(p1 - item));
	aw->points = n;
	return 0;
}

static void
karma_fini(void *state)
{
	struct karma *st = state;
	size_t i;

	for (i = 0; i < st->nawards; i++)
		free(st->awards[i].name);
	free(st->awards);
	st->awards = NULL;
	st->nawards = 0;
}

static int
karma_init(void **state_r, const char **error_r)
{
	struct karma *st = *state_r;
	size_t i;

	if (st->negative >= st->positive) {
		snprintf(karma_error, sizeof(karma_error),
		    "negative=%lld must be below positive=%lld", st->negative,
		    st->positive);
		*error_r = karma_error;
		return -1;
	}
	st->awards = sl_xcalloc(st->award_list.count + 1, sizeof(*st->awards));
	for (i = 0; i < st->award_list.count; i++) {
		if (parse_award(st->award_list.items[i],
		        &st->awards[st->nawards]) == -1) {
			snprintf(karma_error, sizeof(karma_error),
			    "awards: '%s': expected NAME:OUTCOME:POINTS with "
			    "OUTCOME pass, fail, neutral, skip or error and "
			    "POINTS -%d..%d",
			    st->award_list.items[i], POINTS_MAX, POINTS_MAX);
			*error_r = karma_error;
			karma_fini(st);
			return -1;
		}
		st->nawards++;
	}
	return 0;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "karma",
	.conf = karma_conf,
	.state_size = sizeof(struct karma),
	.init = karma_init,
	.fini = karma_fini,
	.edits = SL_EDIT_HEADER_ADD,
	.hooks = {
	    [SL_HOOK_CONNECT] = karma_connect,
	    [SL_HOOK_HELO] = karma_hook,
	    [SL_HOOK_MAIL] = karma_hook,
	    [SL_HOOK_RCPT] = karma_hook,
	    [SL_HOOK_DATA] = karma_hook,
	    [SL_HOOK_DATA_POST] = karma_data_post,
	    [SL_HOOK_DENY] = karma_deny,
	    [SL_HOOK_DISCONNECT] = karma_disconnect,
	},
};
