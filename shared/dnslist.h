/*
 * dnslist.h - DNS lists (DNSBL, DNSWL, RHSBL) for the dnsbl and rhsbl
 * plugins (sluice-plugins(7)): the zone list in Postfix's
 * postscreen_dnsbl_sites syntax, and one name looked up in every zone at
 * once with a weighted score.
 *
 * Internal to libsluice: the plugins reach it through -rdynamic like the
 * rest of the core.  A zone list is built at start-up and only read
 * afterwards (every loop thread shares it); a check belongs to one
 * connection and runs on its loop thread.
 */
#ifndef SL_DNSLIST_H
#define SL_DNSLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/conf.h>
#include <sluice/plugin.h>

#define SL_DNSLIST_ZONES_MAX 32  /* zones in one list */
#define SL_DNSLIST_RANGES_MAX 16 /* items in one "[a;b..c]" */
#define SL_DNSLIST_WEIGHT_MAX 100000
#define SL_DNSLIST_TXT_MAX 200 /* bytes of a list's TXT kept for replies */

/* --- the zone list ---------------------------------------------------- */

struct sl_dnslist_range {
	uint8_t lo, hi;
};

/* The values one octet of an answer may take. */
struct sl_dnslist_octet {
	size_t count;
	struct sl_dnslist_range r[SL_DNSLIST_RANGES_MAX];
};

/*
 * One item: ZONE[=FILTER][*WEIGHT], e.g. "bl.example=127.0.0.[2..4]*2".
 * A negative weight makes the zone an allow list.
 */
struct sl_dnslist_zone {
	char *name; /* lower case, no final dot */
	long long weight;
	bool has_filter;
	struct sl_dnslist_octet filter[4];
};

struct sl_dnslist {
	struct sl_dnslist_zone *zones;
	size_t count;
	/* set by the plugin after sl_dnslist_parse */
	long long threshold;       /* score >= threshold: listed */
	long long allow_threshold; /* score <= this: allow-listed; LLONG_MIN:
	                              never */
	bool txt; /* fetch the TXT of the zone a refusal names */
};

/*
 * Parses the items of a zones= option into zl (zeroed by the caller;
 * thresholds 1 and LLONG_MIN, txt off until the plugin sets them).
 * Returns 0, or -1 with err set to "zones: ITEM: reason" (zl is then
 * cleared).
 */
int sl_dnslist_parse(struct sl_dnslist *zl, const struct sl_strlist *items,
    char *err, size_t errsize);
void sl_dnslist_clear(struct sl_dnslist *zl);
/* Whether an answer address (4 bytes) passes the zone's filter. */
bool sl_dnslist_filter_match(const struct sl_dnslist_zone *z,
    const uint8_t a[4]);

/* --- the options dnsbl and rhsbl share --------------------------------- */

enum { SL_DNSLIST_FAILURE_SKIP = 0, SL_DNSLIST_FAILURE_TEMPFAIL };
extern const char *const sl_dnslist_failure_choices[]; /* skip, tempfail */

/* The first member, "opts", of both plugins' option blocks. */
struct sl_dnslist_opts {
	struct sl_strlist zones;
	long long threshold;
	bool txt;
	char *message;
	int dns_failure;
};

#define SL_DNSLIST_OPT(owner, f) offsetof(owner, opts.f)

/*
 * The option rows for the opts of struct owner; message_help names the %KEY%s
 * the plugin replaces in message=.
 */
#define SL_DNSLIST_CONF_ROWS(owner, message_help)                              \
	{ .name = "zones",                                                     \
		.type = SL_CONF_LIST,                                          \
		.offset = SL_DNSLIST_OPT(owner, zones),                        \
		.help = "ZONE[=FILTER][*WEIGHT] items, as "                    \
		        "postscreen_dnsbl_sites" },                            \
	    { .name = "threshold",                                             \
		    .type = SL_CONF_INT,                                       \
		    .def = "1",                                                \
		    .min = 1,                                                  \
		    .max = SL_DNSLIST_ZONES_MAX * SL_DNSLIST_WEIGHT_MAX,       \
		    .offset = SL_DNSLIST_OPT(owner, threshold),                \
		    .help = "score at or above which it is refused" },         \
	    { .name = "txt",                                                   \
		    .type = SL_CONF_BOOL,                                      \
		    .def = "yes",                                              \
		    .offset = SL_DNSLIST_OPT(owner, txt),                      \
		    .help = "add the list's TXT record to the reply" },        \
	    { .name = "message",                                               \
		    .type = SL_CONF_STR,                                       \
		    .offset = SL_DNSLIST_OPT(owner, message),                  \
		    .help = message_help },                                    \
	{                                                                      \
		.name = "dns_failure", .type = SL_CONF_ENUM, .def = "skip",    \
		.choices = sl_dnslist_failure_choices,                         \
		.offset = SL_DNSLIST_OPT(owner, dns_failure),                  \
		.help = "when a failed lookup leaves the verdict open: skip "  \
		        "or tempfail"                                          \
	}

/*
 * init's shared part: zl (zeroed by the caller) from o's zones, threshold
 * and txt.  Returns 0, or -1 with err set (see sl_dnslist_parse).
 */
int sl_dnslist_init(struct sl_dnslist *zl, const struct sl_dnslist_opts *o,
    char *err, size_t errsize);

/*
 * A refusal's text into out: o->message with its %KEY%s from kv
 * (NULL-terminated pairs) when set, else head, then "; " and txt when
 * o->txt is on and txt is not empty.  Cut to size - 1 bytes.
 */
void sl_dnslist_reply_text(char *out, size_t size,
    const struct sl_dnslist_opts *o, const char *const *kv, const char *head,
    const char *txt);

/*
 * Suspends a hook until the plugin's lookups are in; returns the handle
 * for sl_async_done().  When the instance has its own timeout=, the
 * plugin decides itself once it runs out: give_up(arg) then runs from
 * *timer_r (cancel it when the answers come first) and the core's
 * timeout becomes a backstop one second later.
 */
struct sl_async *sl_dnslist_suspend(struct sl_hookctx *ctx,
    struct sl_timer **timer_r, sl_work_fn give_up, void *arg);

/* --- checking one name in every zone ------------------------------------ */

enum sl_dnslist_status {
	SL_DNSLIST_CLEAN = 0, /* between the thresholds */
	SL_DNSLIST_LISTED,    /* score >= threshold */
	SL_DNSLIST_ALLOWED,   /* score <= allow_threshold */
};

/*
 * What a finished check found.  status and score count the zones that
 * answered (a failed zone counts as not listing); undecided says that
 * the zones that failed could have changed status.  Strings are
 * NUL-terminated and truncated to fit.
 */
struct sl_dnslist_result {
	enum sl_dnslist_status status;
	bool undecided;
	long long score;
	unsigned int ttl; /* least TTL (s) of the answers, for caches */
	size_t nfailed;   /* zones that failed (timeout, SERVFAIL, refused) */
	char zone[256];   /* LISTED: the listing zone of largest weight */
	char txt[SL_DNSLIST_TXT_MAX + 1]; /* its TXT (printable ASCII), or "" */
	char listed[512]; /* "zone=answer*weight ..." of every listing zone */
	char failed[256]; /* "zone:reason ..." of every zone that failed */
};

struct sl_dnslist_check;
typedef void (*sl_dnslist_fn)(void *arg);

/*
 * Starts an A query for NAME.ZONE in every zone of zl (name: a reversed
 * address, sl_dns_reverse_name without the zone, or a domain).  fn(arg)
 * runs once, later, on the connection's loop thread, when every A answer
 * is in and - for a LISTED result with zl->txt - the TXT of the zone the
 * result names (fetched only once that zone listed, so that a client
 * nobody lists never waits for TXT).  fn may free the check.  If no
 * query could be started the check is done at once and fn is never
 * called: test sl_dnslist_check_is_done() after the call.  plugin names
 * the instance in log lines (borrowed for the check's life), what is the
 * subject for them ("client=[192.0.2.1]", "sender=example.com").
 * zl must outlive the check.
 */
struct sl_dnslist_check *sl_dnslist_check_start(struct sl_conn *c,
    const struct sl_dnslist *zl, const char *plugin, const char *what,
    const char *name, sl_dnslist_fn fn, void *arg);
bool sl_dnslist_check_is_done(const struct sl_dnslist_check *chk);
/*
 * Gives up on the answers still outstanding (counted as timeouts, a
 * missing TXT as none) and finishes the check without calling fn.
 */
void sl_dnslist_check_give_up(struct sl_dnslist_check *chk);
/* The result once done (borrowed for the check's life), else NULL. */
const struct sl_dnslist_result *sl_dnslist_check_result(
    const struct sl_dnslist_check *chk);
/* Cancels what is outstanding (fn is then never called); sets *cp NULL. */
void sl_dnslist_check_free(struct sl_dnslist_check **cp);

/* --- helpers ----------------------------------------------------------- */

/*
 * A list's TXT made fit for a reply line: printable ASCII only (other
 * bytes become '?', control characters blanks), at most size - 1 bytes.
 */
void sl_dnslist_txt_clean(const char *in, size_t len, char *out, size_t size);
/*
 * tmpl with each "%KEY%" replaced by its value from kv (NULL-terminated
 * pairs KEY, VALUE); any other '%' is kept.  The result is truncated to
 * size - 1 bytes.
 */
void sl_dnslist_expand(char *out, size_t size, const char *tmpl,
    const char *const *kv);

#endif
