/*
 * core.h - libsluice internals shared by the core modules and the front
 * ends: the runtime (a loaded configuration with its plugin instances),
 * connections, transactions, the hook runner, loop threads and the worker
 * pool.  Plugins never include this; they see sluice/plugin.h.
 *
 * Threads: a connection and everything hanging off it belong to one loop
 * thread from accept to close.  A runtime is shared, read-only, and
 * reference-counted: a reload makes a new one, sessions keep the one they
 * started with.
 */
#ifndef SL_CORE_H
#define SL_CORE_H

#include <sys/time.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/plugin.h>

#include "config.h"

struct event_base;
struct sl_loop;
struct sl_spool;

/* --- runtime: a configuration and its plugin instances ----------------- */

enum sl_reject_mode {
	SL_REJECT_YES = 0,
	SL_REJECT_NO,    /* log what would have been denied */
	SL_REJECT_DEFER, /* mark the connection, deny at RCPT */
};

enum {
	SL_SKIP_RELAY = 1 << 0,
	SL_SKIP_AUTH = 1 << 1,
};

struct sl_instance {
	const struct sl_plugin *plugin;
	void *dl;    /* dlopen handle */
	void *opts;  /* the option block (state_size bytes), core-owned */
	void *state; /* what init returned (opts unless it replaced it) */
	char *name;  /* name= or the plugin's name */
	int reject;  /* enum sl_reject_mode */
	unsigned int timeout_ms;
	bool timeout_given; /* timeout= was on the line */
	unsigned int skip;  /* SL_SKIP_* */
	bool inited;
};

struct sl_runtime {
	int refs; /* atomic */
	struct sl_config *cfg;
	const struct sl_settings *set; /* &cfg->settings */
	struct sl_instance *inst;
	size_t ninst;
	/* per hook: the instances that have it, in chain order */
	struct sl_instance **chain[SL_HOOK_MAX];
	size_t nchain[SL_HOOK_MAX];
	struct sl_tls_server *tls; /* sluice-smtpd with tls_cert; or NULL */
	/* the naughty plugin is loaded: it applies deferred marks, the
	 * front ends do not (sl_conn_defer) */
	bool naughty;
};

/*
 * Loads the configuration and every plugin it names, calling each init.
 * Returns NULL with *error_r (allocated "file:line: ...") on failure.
 * front_end limits which plugins may be listed.
 */
struct sl_runtime *sl_runtime_load(const char *path, enum sl_front_end fe,
    char **error_r);
struct sl_runtime *sl_runtime_ref(struct sl_runtime *rt);
/* Drops a reference; the last one calls every fini and frees. */
void sl_runtime_unref(struct sl_runtime **rtp);
/* The current runtime (a new reference), and the swap done on reload. */
struct sl_runtime *sl_runtime_current(void);
void sl_runtime_set_current(struct sl_runtime *rt);

/* --- notes, private data, results ------------------------------------- */

/* One allocation an entry: the key, then room for the value. */
struct sl_kv {
	struct sl_kv *next;
	char *value;   /* into key[]'s allocation */
	size_t room;   /* bytes there for the value, its NUL included */
	uint32_t hash; /* of key: most compares end there */
	char key[];
};

struct sl_pdata {
	const void *key;
	void *data;
	void (*free_fn)(void *);
	struct sl_pdata *next;
};

struct sl_result {
	char *method;
	char *result;
	char *reason;
	struct sl_result *next;
};

/* --- the reply a hook chain produced ---------------------------------- */

struct sl_reply {
	int code;       /* 0 = the front end's default */
	char enh[16];   /* "" = default */
	char text[512]; /* "" = default */
};

/* --- transactions ------------------------------------------------------ */

struct sl_header {
	char *name;
	char *value;
	char *raw; /* as received (no final LF), or NULL once edited/added */
	size_t raw_len;
	unsigned int orig; /* 1-based position as received; 0 = added */
	bool changed;      /* value edited since received */
};

struct sl_rcpt {
	char *addr;
	char *params; /* may be NULL */
};

struct sl_txn {
	char id[32];
	struct sl_conn *conn;
	char *sender; /* NULL before MAIL */
	char *sender_params;
	struct sl_rcpt *rcpts;
	size_t nrcpts, rcpts_alloc;
	struct sl_header *hdrs;
	size_t nhdrs, hdrs_alloc;
	unsigned int nreceived; /* headers appended as received */
	bool had_blank;         /* an empty line ended the header section */
	struct sl_spool *body;
	uint64_t size; /* header + body bytes received */
	struct sl_kv *notes;
	struct sl_pdata *pdata;
	struct sl_result *results;
	char *quarantine;
	bool discard;      /* a DISCARD verdict: accept and drop */
	unsigned int busy; /* worker jobs that may read it */
	bool dead;         /* freed while busy: the last job frees it */
	bool body_replaced;
};

struct sl_txn *sl_txn_new(struct sl_conn *c);
/* Frees now, or (while worker jobs hold it) when the last one is done. */
void sl_txn_free(struct sl_txn **tp);
void sl_txn_unbusy(struct sl_txn *t);
void sl_txn_set_sender(struct sl_txn *t, const char *sender,
    const char *params);
void sl_txn_add_rcpt(struct sl_txn *t, const char *rcpt, const char *params);
/*
 * Appends a header as received (from the header splitter, or a milter
 * HEADER packet: raw may then be NULL).
 */
void sl_txn_add_raw_header(struct sl_txn *t, const char *name,
    const char *value, const char *raw, size_t raw_len);
/* Appends body bytes to the spool; returns 0 or -1 (I/O error, logged). */
int sl_txn_body_append(struct sl_txn *t, const uint8_t *p, size_t n);

/* The MAIL parameters as given ("KEY=VALUE KEY ..."), or NULL. */
const char *sl_txn_sender_params(const struct sl_txn *t);

/*
 * Reading the final message as sl_txn_write_message() writes it (LF line
 * ends, the added empty line included) in pieces, from a position the
 * caller keeps (zero it to start): for queue plugins that send it over a
 * socket as it drains.  Returns the bytes copied into buf (up to len), 0
 * at the end, -1 on a spool read error.  Headers must not be edited
 * between calls.
 */
struct sl_txn_msgpos {
	size_t hdr;    /* header index; nhdrs = the empty line, then body */
	size_t off;    /* bytes of that header's line already read */
	uint64_t body; /* body bytes already read */
};
long sl_txn_message_read(struct sl_txn *t, struct sl_txn_msgpos *pos, void *buf,
    size_t len);
/* Its length in bytes, as read above. */
uint64_t sl_txn_message_size(const struct sl_txn *t);

/* --- connections ------------------------------------------------------- */

struct sl_hookrun; /* hook.c */

struct sl_conn {
	char id[24];
	enum sl_front_end fe;
	struct sl_loop *loop;
	struct sl_runtime *rt;
	char remote_ip[64];
	unsigned int remote_port;
	uint8_t remote_addr[16];
	int remote_family;
	char local_ip[64];
	unsigned int local_port;
	uint8_t peer_addr[16]; /* the socket's peer, for per-IP counting */
	char *remote_host;
	char *helo;
	char *auth_user;
	bool tls;
	bool esmtp; /* the accepted greeting was EHLO (smtpd) */
	bool relay_client;
	/* RELAYCLIENT was set (sluice-smtpd -i): a relay client whatever
	 * the address; sl_conn_update_relay keeps it */
	bool relay_always;
	/* RELAYCLIENT's value when not empty: appended to each RCPT address
	 * (qmail-smtpd); NULL otherwise */
	char *rcpt_suffix;
	bool closing; /* no more hooks may start */
	bool discard; /* DISCARD at connect/helo: every message is dropped */
	unsigned int txn_count;
	struct sl_txn *txn;
	struct sl_kv *notes;
	struct sl_pdata *pdata;
	struct sl_hookrun *run; /* the chain in progress, if any */
	/* reject=defer or sl_conn_defer: the first deferred denial, applied
	 * at RCPT by the front end, or by the naughty plugin when loaded */
	bool deferred;
	enum sl_verdict deferred_verdict;
	struct sl_reply deferred_reply;
	char deferred_by[64]; /* the instance that marked it */
	void *fe_data;        /* the front end's session */
	/* the front end's macros (milterd), or NULL */
	const char *(*fe_macro)(struct sl_conn *c, const char *name);
	/* the front end's count of unread client input (smtpd), or NULL */
	size_t (*fe_input_pending)(struct sl_conn *c);
	/* sl_conn_input_wait's waits not fired or cancelled yet */
	struct sl_io *input_waits;
	char macro_buf[128]; /* sl_conn_macro's made-up values */
};

/*
 * A new connection on loop l, with a new reference to the current
 * runtime.  peer is the socket's peer address (for per-IP accounting).
 */
struct sl_conn *sl_conn_new(struct sl_loop *l, enum sl_front_end fe);
void sl_conn_free(struct sl_conn **cp);
/*
 * A new client identity on the same connection (XCLIENT): forgets the
 * notes plugins made about the old one (outcomes, fcrdns.name ...; the
 * tls.* notes stay) and its deferred mark.
 */
void sl_conn_identity_reset(struct sl_conn *c);
/*
 * Logs the message c->txn as accepted, both front ends' one line a
 * message: "VERB txn=ID size=N rcpts=N results=NAME:OUTCOME,..." (the
 * first word of each result.NAME note, in the order they came, as many
 * as fit; no results= without any).
 */
void sl_conn_log_accepted(const struct sl_conn *c, const char *verb);
/* Sets remote_ip/port/addr from a sockaddr (or numeric text). */
void sl_conn_set_remote(struct sl_conn *c, const void *sa, size_t salen);
int sl_conn_set_remote_text(struct sl_conn *c, const char *ip,
    unsigned int port);
void sl_conn_set_local(struct sl_conn *c, const void *sa, size_t salen);
/*
 * The front end (smtpd) saw client input that the session left unread
 * (a hook is suspended): every sl_conn_input_wait of c fires, from the
 * loop.
 */
void sl_conn_input_arrived(struct sl_conn *c);
/*
 * At the end of the connection: unlinks the input waits still there (a
 * plugin's free function should have cancelled them).
 */
void sl_conn_input_waits_detach(struct sl_conn *c);
/*
 * What the deferred mark makes of a RCPT in the front end: SL_DENY or
 * SL_DENYSOFT (the mark's kind), or SL_DECLINED when there is no mark,
 * the client is a relay client, or the naughty plugin places the
 * refusal instead.
 */
enum sl_verdict sl_conn_mark_at_rcpt(const struct sl_conn *c);
/* Recomputes relay_client from relay_clients (and authentication). */
void sl_conn_update_relay(struct sl_conn *c);
/* Starts a transaction (freeing any old one). */
struct sl_txn *sl_conn_begin_txn(struct sl_conn *c);
void sl_conn_end_txn(struct sl_conn *c);

/* --- hook runner ------------------------------------------------------- */

/*
 * Called once when the chain is decided.  v is never SL_PENDING, SL_ERROR
 * or SL_DECLINED-by-default confusion: it is the chain's verdict
 * (SL_DECLINED if nobody had an opinion), after timeouts, failures and
 * reject= modes were applied.  reply holds what the deciding plugin set.
 */
typedef void (*sl_hook_done_fn)(struct sl_conn *c, enum sl_verdict v,
    const struct sl_reply *reply, void *arg);

/*
 * Runs the chain for args->hook.  done may be called before this returns
 * (no plugin suspended) or later from the loop.  Only one chain may run
 * per connection at a time.  Synchronous-only hooks (header, eoh, body,
 * disconnect, deny) always call done before returning.
 */
void sl_hook_run(struct sl_conn *c, const struct sl_hookargs *args,
    sl_hook_done_fn done, void *arg);
/*
 * The reply that goes with a verdict, for both front ends: DENY 550 5.7.1,
 * DENY_DISCONNECT 554, DENYSOFT 451 4.7.1, DENYSOFT_DISCONNECT 421, DONE
 * the plugin's own code, anything else the default given; the plugin's
 * code (and enhanced code) replace the default when their class fits,
 * its text always.  The strings are borrowed from r or the arguments.
 */
void sl_verdict_reply(enum sl_verdict v, const struct sl_reply *r, int def_code,
    const char *def_enh, const char *def_text, int *code_r, const char **enh_r,
    const char **text_r);
/* DENY, DENYSOFT or their _DISCONNECT forms */
bool sl_verdict_is_deny(enum sl_verdict v);
/* The session ends: a suspended chain is abandoned (its done not called). */
void sl_hook_abandon(struct sl_conn *c);
/*
 * The client session is over: marks the connection closing, abandons a
 * suspended chain, then runs the disconnect chain.  Both front ends call
 * it once per session that ran connect.
 */
void sl_hook_disconnect(struct sl_conn *c);
/*
 * The calling instance's timeout= (plugin_timeout unless set), for an
 * in-tree plugin that enforces it itself (and sets a later core timeout
 * with sl_async_timeout as a backstop).
 */
unsigned int sl_hook_timeout_ms(const struct sl_hookctx *ctx);
/* true if any instance in the runtime has this hook */
bool sl_hook_wanted(const struct sl_runtime *rt, enum sl_hook_id h);
const char *sl_hook_name(enum sl_hook_id h);
const char *sl_verdict_name(enum sl_verdict v);

/* --- loops, worker pool, timers --------------------------------------- */

/*
 * Starts n loop threads (0 = one per CPU) and nworkers worker threads.
 * Each loop runs until sl_loops_stop() and its connection count is 0.
 */
void sl_loops_start(unsigned int n, unsigned int nworkers);
/* Stops accepting new work; waits for loops to drain, then joins. */
void sl_loops_drain_and_join(unsigned int timeout_ms);
/* A duration in milliseconds as a struct timeval. */
struct timeval sl_timeval_ms(unsigned int ms);
/* n, or one per CPU when n is 0. */
unsigned int sl_loops_count(unsigned int n);
/* Loop i (0 <= i < the count started). */
struct sl_loop *sl_loop_at(unsigned int i);
struct event_base *sl_loop_base(struct sl_loop *l);
/*
 * Runs fn(arg) on loop l's thread (soon, from its event loop).  Safe from
 * any thread.
 */
void sl_loop_post(struct sl_loop *l, void (*fn)(void *), void *arg);
/* Counts connections on the loop (draining waits for zero). */
void sl_loop_conn_added(struct sl_loop *l);
void sl_loop_conn_removed(struct sl_loop *l);
/* Called on each loop thread when a drain begins or its deadline passes. */
void sl_loops_set_drain_cb(void (*fn)(struct sl_loop *l, bool deadline));
/*
 * Called on a loop thread when its last connection ends (sluice-smtpd -i
 * stops then).  Set before sl_loops_start().
 */
void sl_loops_set_idle_cb(void (*fn)(struct sl_loop *l));

/* Work on the pool; done(arg) is posted back to loop l. */
void sl_worker_submit(struct sl_loop *l, sl_work_fn work, sl_work_fn done,
    void *arg);

struct sl_timer *sl_timer_add(struct sl_loop *l, unsigned int ms, sl_work_fn fn,
    void *arg);

/*
 * Loop l's DNS resolver (resolver.h), made on first use with cfg's dns_*
 * settings and brought up to date when a call brings another
 * configuration (a reload may change them).  Loop thread only.  NULL
 * (logged) if c-ares cannot start.
 */
struct sl_resolver *sl_loop_resolver(struct sl_loop *l,
    const struct sl_config *cfg);
/*
 * Delivers what loop l can deliver at once (its resolver's cache hits),
 * as the loop would in this iteration.  Loop thread only.
 */
void sl_loop_settle(struct sl_loop *l);

/* --- per-IP connection accounting (any thread) ----------------------- */

/* Returns the new count for addr, or 0 if total or per-IP limits said no. */
unsigned int sl_ipcount_acquire(const uint8_t addr[16], unsigned int max_total,
    unsigned int max_per_ip, bool *over_total_r);
void sl_ipcount_release(const uint8_t addr[16]);
unsigned int sl_ipcount_get(const uint8_t addr[16]);
/* FNV-1a of a 16-byte address, for per-address tables. */
uint32_t sl_addr_hash(const uint8_t addr[16]);
/* FNV-1a of p[0..n), for in-memory tables. */
uint32_t sl_fnv1a(const void *p, size_t n);

/* --- spool ------------------------------------------------------------- */

/* Memory up to mem_max bytes, then an unlinked file in dir. */
struct sl_spool *sl_spool_new(const char *dir, size_t mem_max);
void sl_spool_free(struct sl_spool **sp);
int sl_spool_append(struct sl_spool *s, const uint8_t *p, size_t n);
size_t sl_spool_size(const struct sl_spool *s);
long sl_spool_read(struct sl_spool *s, size_t off, void *buf, size_t len);
void sl_spool_truncate(struct sl_spool *s);

/* --- misc -------------------------------------------------------------- */

/* A fresh 12-hex-digit id (process-unique, time-ordered). */
void sl_make_id(char *buf, size_t size);
/* RFC 5322 date of now, e.g. "Thu, 01 Jan 2026 00:00:00 +0000". */
void sl_rfc5322_date(char *buf, size_t size);

#endif
