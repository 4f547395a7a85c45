/*
 * sluice/plugin.h - the plugin ABI of libsluice.
 *
 * A plugin is a shared object that exports one descriptor named
 * "sluice_plugin" (struct sl_plugin).  The core checks .abi before it calls
 * anything, validates the plugin's options against its .conf table, calls
 * .init once per "plugin NAME ..." line, then calls the hooks in chain
 * order.  Every hook runs on the loop thread that owns the connection; a
 * hook never blocks and never writes to the client: it returns a verdict
 * now, or SL_PENDING and later resumes the session exactly once through
 * sl_async_done().  Changes to the message go through the edit API.
 *
 * This header carries no libevent or OpenSSL types.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/conf.h>

#define SL_PLUGIN_ABI 2

/* Verdicts, as in qpsmtpd. */
enum sl_verdict {
	SL_DECLINED = 0, /* no opinion: next plugin */
	SL_OK,           /* accept at this stage: skip the rest of the chain */
	SL_DENY,         /* 5xx */
	SL_DENYSOFT,     /* 4xx */
	SL_DENY_DISCONNECT,     /* 5xx, then close (plain 5xx in milterd) */
	SL_DENYSOFT_DISCONNECT, /* 4xx, then close */
	SL_DISCARD,             /* accept and drop the message */
	SL_DONE,                /* the plugin set the reply itself */
	SL_PENDING,             /* asynchronous: see sl_async_begin() */
	SL_ERROR,               /* the plugin failed (back end down ...): the
	                           core applies the configured default action */
};

enum sl_hook_id {
	SL_HOOK_CONNECT = 0,
	SL_HOOK_HELO,
	SL_HOOK_AUTH,
	SL_HOOK_MAIL,
	SL_HOOK_RCPT,
	SL_HOOK_DATA,
	SL_HOOK_HEADER,
	SL_HOOK_EOH,
	SL_HOOK_BODY,
	SL_HOOK_DATA_POST,
	SL_HOOK_QUEUE,
	SL_HOOK_RESET,
	SL_HOOK_DISCONNECT,
	SL_HOOK_UNRECOGNIZED,
	SL_HOOK_DENY,
	SL_HOOK_MAX
};

enum sl_front_end {
	SL_FRONT_SMTPD = 1,
	SL_FRONT_MILTERD = 2,
};

struct sl_conn;    /* a client connection (smtpd) or milter session */
struct sl_txn;     /* one message transaction, reset by RSET / MAIL */
struct sl_hookctx; /* what one hook call sees; valid during the call */
struct sl_async;   /* a suspended hook, see sl_async_begin() */

/*
 * What a hook call is about.  Strings are borrowed for the call only.
 *   helo:         arg = the HELO/EHLO argument
 *   mail:         arg = the reverse-path without <> ("" for the null path),
 *                 params = ESMTP parameters as "KEY=VALUE" strings
 *   rcpt:         arg = the forward-path without <>, params as for mail
 *   data:         arg = "DATA" or "BDAT" (the first chunk, whose bytes
 *                 follow the command: no 354) in sluice-smtpd; NULL in
 *                 sluice-milterd
 *   header:       name, value = what follows the colon, leading blanks
 *                 removed, without the final line end; a folded header
 *                 keeps its inner LF and the white space after it
 *   body:         data/len = a chunk of the body, LF line ends
 *   unrecognized: arg = the whole command line
 *   deny:         arg = the name of the plugin instance that denied ("" for
 *                 the core), value = the reply text, denied_hook
 *   auth:         arg = the mechanism ("PLAIN", "LOGIN"), name = the
 *                 authentication identity, value = the password
 *                 (NUL-terminated; smtpd wipes it when the chain is
 *                 done, so a plugin that needs it later - on a worker -
 *                 copies it and wipes its copy with explicit_bzero).
 *                 OK authenticates (the chain stops), DENY or a chain of
 *                 DECLINED is bad credentials (535), DENYSOFT a
 *                 temporary failure (454).
 */
struct sl_hookargs {
	enum sl_hook_id hook;
	const char *arg;
	const char *const *params;
	size_t nparams;
	const char *name;
	const char *value;
	const uint8_t *data;
	size_t len;
	enum sl_hook_id denied_hook;
	enum sl_verdict denied_verdict;
};

typedef enum sl_verdict (*sl_hook_fn)(void *state, struct sl_hookctx *ctx);

struct sl_plugin {
	unsigned int abi; /* SL_PLUGIN_ABI */
	const char *name; /* as in "plugin NAME" */
	const struct sl_conf_def
	    *conf;         /* option table, SL_CONF_END-terminated */
	size_t state_size; /* bytes of option storage (calloc'ed) */
	/*
	 * Called once per config line after the options were stored into a
	 * zeroed block of state_size bytes (*state_r on entry points to it).
	 * The core owns that block and the option values in it (it frees
	 * them after fini).  init may replace *state_r with its own object
	 * (which may point back at the block).  Returns 0, or -1 with
	 * *error_r set to a static string: start-up then fails with
	 * "file:line: plugin NAME: error".
	 */
	int (*init)(void **state_r, const char **error_r);
	void (*fini)(
	    void *state); /* frees what init allocated, not the block */
	sl_hook_fn hooks[SL_HOOK_MAX];
	unsigned int front_ends; /* SL_FRONT_* bits; 0 = both */
	/*
	 * The SL_EDIT_* kinds this plugin may make.  sluice-milterd asks the
	 * MTA only for these (an undeclared edit is dropped there, logged).
	 */
	unsigned int edits;
};

/* Edit kinds, for struct sl_plugin .edits. */
enum {
	SL_EDIT_HEADER_ADD = 1 << 0,    /* sl_edit_header_add, _insert */
	SL_EDIT_HEADER_CHANGE = 1 << 1, /* sl_edit_header_change, _delete */
	SL_EDIT_BODY = 1 << 2,
	SL_EDIT_RCPT_ADD = 1 << 3,
	SL_EDIT_RCPT_DELETE = 1 << 4,
	SL_EDIT_SENDER = 1 << 5,
	SL_EDIT_QUARANTINE = 1 << 6,
	SL_EDIT_ALL = (1 << 7) - 1,
};

/* --- hook context ---------------------------------------------------- */

const struct sl_hookargs *sl_hook_args(const struct sl_hookctx *ctx);
struct sl_conn *sl_hook_conn(const struct sl_hookctx *ctx);
/* NULL outside a transaction (connect, helo, disconnect ...). */
struct sl_txn *sl_hook_txn(const struct sl_hookctx *ctx);
/* The plugin instance's name: "NAME" or the line's name= option. */
const char *sl_hook_plugin_name(const struct sl_hookctx *ctx);
/*
 * The instance's timeout= in ms, or 0 when the line did not give one (the
 * core then waits plugin_timeout): for a plugin that keeps its own
 * deadline, with its own default, and sets the core's to match with
 * sl_async_timeout().
 */
unsigned int sl_hook_timeout(const struct sl_hookctx *ctx);

/*
 * Set the reply that goes with the verdict this hook returns (or passes to
 * sl_async_done).  code 0 keeps the front end's default for the verdict;
 * enh may be NULL.  text is one line; CR, LF and NUL are replaced.
 */
void sl_hook_reply(struct sl_hookctx *ctx, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Log one event, prefixed with the session id and plugin name. */
void sl_hook_log(struct sl_hookctx *ctx, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * The same line where no hook context is at hand (DNS, store and timer
 * callbacks): plugin is the instance name (sl_hook_plugin_name).  Nothing
 * is formatted when the priority is above log_level.
 */
void sl_conn_log(const struct sl_conn *c, const char *plugin, int priority,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Asynchronous hooks.  sl_async_begin() returns a handle; the hook then
 * returns SL_PENDING.  Later, on the connection's loop thread, the plugin
 * calls sl_async_reply() (optional) and sl_async_done(), which frees the
 * handle and sets *ap = NULL, so a second call is harmless.  If the hook
 * timed out or the session ended first, sl_async_done() only frees the
 * handle: a late resume is harmless.  sl_async_is_live() says whether the
 * session still waits.  The session resumes from the event loop, never
 * inside sl_async_done().  Only connect, helo, auth, mail, rcpt, data,
 * data_post, queue, reset and unrecognized may suspend; header, eoh, body,
 * disconnect and deny are called synchronously (a PENDING there counts as
 * a plugin failure).
 */
struct sl_async *sl_async_begin(struct sl_hookctx *ctx);
/*
 * How long the core waits for this suspended hook, from now, instead of
 * the instance's timeout= (for a plugin that keeps its own timeouts and
 * wants the core's only as a backstop).  ms 0 changes nothing.
 */
void sl_async_timeout(struct sl_async *a, unsigned int ms);
bool sl_async_is_live(const struct sl_async *a);
void sl_async_reply(struct sl_async *a, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void sl_async_done(struct sl_async **ap, enum sl_verdict v);

/*
 * Worker pool: run work(arg) on a worker thread, then done(arg) on the
 * loop thread that owns the hook's connection.  done is always called,
 * even if the session ended meanwhile (check sl_async_is_live there).
 */
typedef void (*sl_work_fn)(void *arg);
void sl_hook_run_worker(struct sl_hookctx *ctx, sl_work_fn work,
    sl_work_fn done, void *arg);

/*
 * One-shot timer on the connection's loop thread: fn(arg) after ms.
 * Returns a handle for sl_timer_cancel(), which also frees it.  fn must
 * not cancel its own timer; the core frees a fired timer.
 */
struct sl_timer;
struct sl_timer *sl_hook_timer(struct sl_hookctx *ctx, unsigned int ms,
    sl_work_fn fn, void *arg);
void sl_timer_cancel(struct sl_timer **tp);

/*
 * Socket readiness on the connection's loop thread, for plugins that talk
 * to a server themselves (a hosted milter, a resolver): fn(arg, what) is
 * called once, when fd is readable (SL_IO_READ) or writable (SL_IO_WRITE)
 * as asked, or with SL_IO_TIMEOUT after timeout_ms (0 = no timeout).
 * One-shot: wait again for more.  sl_io_cancel() drops a wait that has
 * not fired (and sets *iop = NULL); a wait that fired is freed by the
 * core.  The descriptor stays the plugin's to close.
 */
enum {
	SL_IO_READ = 1 << 0,
	SL_IO_WRITE = 1 << 1,
	SL_IO_TIMEOUT = 1 << 2,
};
struct sl_io;
typedef void (*sl_io_fn)(void *arg, unsigned int what);
struct sl_io *sl_conn_io_wait(struct sl_conn *c, int fd, unsigned int what,
    unsigned int timeout_ms, sl_io_fn fn, void *arg);
void sl_io_cancel(struct sl_io **iop);

/*
 * The client's own input, for plugins that judge its timing (earlytalker):
 * sl_conn_input_pending() is how many bytes the client sent that the
 * session has not consumed yet - while a hook is suspended sluice-smtpd
 * parses nothing, so this is what arrived since the hook began plus any
 * pipelined rest (decrypted bytes under TLS; a PROXY header is never
 * counted).  0 in sluice-milterd, which never sees the client.
 * sl_conn_input_wait() is a wait as sl_conn_io_wait's on that input:
 * fn(arg, SL_IO_READ) once, on the loop thread, as soon as some is pending
 * (from the loop at once if some already is), or fn(arg, SL_IO_TIMEOUT)
 * after timeout_ms (0 = no timeout; in sluice-milterd only the timeout
 * fires).  Cancel it with sl_io_cancel() (a plugin does in its connection
 * data's free_fn); a wait that fired is freed by the core.  Neither call
 * consumes input: the session reads and answers it, in order, once the
 * hook is done.
 */
size_t sl_conn_input_pending(struct sl_conn *c);
struct sl_io *sl_conn_input_wait(struct sl_conn *c, unsigned int timeout_ms,
    sl_io_fn fn, void *arg);

/* --- connection ------------------------------------------------------ */

const char *sl_conn_id(const struct sl_conn *c);
enum sl_front_end sl_conn_front_end(const struct sl_conn *c);
/* Numeric client address ("192.0.2.1", "2001:db8::1"); port 0 if unknown. */
const char *sl_conn_remote_ip(const struct sl_conn *c);
unsigned int sl_conn_remote_port(const struct sl_conn *c);
/* Fills 16 bytes (IPv4 as ::ffff:a.b.c.d); returns the family. */
int sl_conn_remote_addr(const struct sl_conn *c, uint8_t addr16_r[16]);
const char *sl_conn_local_ip(const struct sl_conn *c);
unsigned int sl_conn_local_port(const struct sl_conn *c);
/* The client's verified host name or NULL. */
const char *sl_conn_remote_host(const struct sl_conn *c);
/* The HELO/EHLO argument or NULL. */
const char *sl_conn_helo(const struct sl_conn *c);
bool sl_conn_is_relay_client(const struct sl_conn *c);
/* The authenticated identity, or NULL. */
const char *sl_conn_auth_user(const struct sl_conn *c);
bool sl_conn_is_tls(const struct sl_conn *c);
/* How many transactions this connection has started so far. */
unsigned int sl_conn_txn_count(const struct sl_conn *c);
/* Connections open now from this client's address, this one included. */
unsigned int sl_conn_ip_connections(const struct sl_conn *c);

/*
 * A milter macro by name: "i", "j", "{client_addr}", "{auth_authen}" ...
 * (one-letter names with or without braces).  In sluice-milterd, what the
 * MTA sent (a later stage shadows an earlier one); otherwise, or when the
 * MTA did not send it, the same names made from the session's facts: j,
 * {daemon_name}, {daemon_addr}, {daemon_port}, {client_addr},
 * {client_port}, {client_name}, {client_ptr}, {auth_authen}, {mail_addr},
 * i (the transaction id).  NULL if unknown.  Borrowed until the next call
 * on this connection.
 */
const char *sl_conn_macro(struct sl_conn *c, const char *name);

/*
 * Notes: key/value strings kept for the connection.  value NULL deletes.
 * XCLIENT (a new client identity) forgets them all but the tls.* notes.
 */
void sl_conn_note_set(struct sl_conn *c, const char *key, const char *value);
const char *sl_conn_note_get(const struct sl_conn *c, const char *key);

/*
 * Outcomes, for scoring plugins (karma) and logs: how the connection fared
 * with one plugin instance.  Kept as the connection note "result.NAME"
 * (NAME = the instance name, sl_hook_plugin_name) with the value
 * "OUTCOME[ DETAIL]", OUTCOME one of "pass", "fail", "neutral", "skip",
 * "error".  A later call for the same name replaces the earlier one.
 * sl_conn_outcome_get returns the whole value, or NULL.
 */
void sl_conn_outcome_set(struct sl_conn *c, const char *name,
    const char *outcome, const char *detail);
const char *sl_conn_outcome_get(const struct sl_conn *c, const char *name);

/*
 * Deferred rejection (qpsmtpd's "naughty"): mark the connection instead
 * of rejecting now.  reject=defer on any plugin instance marks through
 * the same path.  The mark's rejection lands at each RCPT, or, when the
 * naughty plugin is loaded, at the hook naughty is configured for.
 * The first mark wins.  Relay clients (listed networks, authenticated
 * sessions) are never rejected by a mark.  v is SL_DENY, SL_DENYSOFT or
 * their _DISCONNECT forms; code 0 and NULL enh/text mean 550 5.7.1
 * (451 4.7.1 for the soft forms) and the front end's text.
 */
void sl_conn_defer(struct sl_conn *c, const char *plugin, enum sl_verdict v,
    int code, const char *enh, const char *text);
/*
 * The mark: false if none; else the verdict, code (0 = default), enhanced
 * code and text ("" = default), and the instance that marked it.  Any
 * out pointer may be NULL; strings are borrowed for the connection.
 */
bool sl_conn_deferred(const struct sl_conn *c, enum sl_verdict *v_r,
    int *code_r, const char **enh_r, const char **text_r,
    const char **plugin_r);

/*
 * Plugin-private data on the connection, keyed by any stable pointer
 * (the plugin's state works).  free_fn runs when the connection ends.
 */
void sl_conn_data_set(struct sl_conn *c, const void *key, void *data,
    void (*free_fn)(void *));
void *sl_conn_data_get(const struct sl_conn *c, const void *key);

/* --- transaction ----------------------------------------------------- */

const char *sl_txn_id(const struct sl_txn *t);
/* The reverse-path without <>: "" for the null sender; NULL before MAIL. */
const char *sl_txn_sender(const struct sl_txn *t);
size_t sl_txn_rcpt_count(const struct sl_txn *t);
const char *sl_txn_rcpt(const struct sl_txn *t, size_t i);
/* Message size in bytes so far (headers + body, LF line ends). */
size_t sl_txn_size(const struct sl_txn *t);

void sl_txn_note_set(struct sl_txn *t, const char *key, const char *value);
const char *sl_txn_note_get(const struct sl_txn *t, const char *key);
void sl_txn_data_set(struct sl_txn *t, const void *key, void *data,
    void (*free_fn)(void *));
void *sl_txn_data_get(const struct sl_txn *t, const void *key);

/*
 * Headers as the message stands now (edits applied).  Index i counts all
 * headers in order; name matching is case-insensitive.  The value is as
 * described for struct sl_hookargs.  Borrowed until the next edit.
 */
size_t sl_txn_header_count(const struct sl_txn *t);
int sl_txn_header_at(const struct sl_txn *t, size_t i, const char **name_r,
    const char **value_r);
/* The n-th (0-based) header called name, or NULL. */
const char *sl_txn_header_get(const struct sl_txn *t, const char *name,
    size_t n);
/* How many headers are called name. */
size_t sl_txn_header_count_name(const struct sl_txn *t, const char *name);

/*
 * The body as it stands now, from offset off: copies up to len bytes into
 * buf, returns the count (0 at the end) or -1 on an I/O error.  Valid from
 * data_post on.
 */
long sl_txn_body_read(struct sl_txn *t, size_t off, void *buf, size_t len);
size_t sl_txn_body_size(const struct sl_txn *t);

/*
 * Structured results (spf=pass ...), rendered into Authentication-Results
 * by the core and read by scoring plugins.  reason may be NULL.
 */
void sl_txn_result_add(struct sl_txn *t, const char *method, const char *result,
    const char *reason);
const char *sl_txn_result_get(const struct sl_txn *t, const char *method);

/* --- edits: later plugins see the edited message ----------------------- */

/* A header field name: printable US-ASCII but ':' (RFC 5322 2.2). */
bool sl_header_name_valid(const char *name);

void sl_edit_header_add(struct sl_txn *t, const char *name, const char *value);
/* Insert at position idx (0 = first) among all headers. */
void sl_edit_header_insert(struct sl_txn *t, size_t idx, const char *name,
    const char *value);
/* Change the n-th header called name (0-based); value NULL deletes it. */
int sl_edit_header_change(struct sl_txn *t, const char *name, size_t n,
    const char *value);
int sl_edit_header_delete(struct sl_txn *t, const char *name, size_t n);
int sl_edit_body_replace(struct sl_txn *t, const uint8_t *data, size_t len);
void sl_edit_rcpt_add(struct sl_txn *t, const char *rcpt, const char *params);
int sl_edit_rcpt_delete(struct sl_txn *t, const char *rcpt);
void sl_edit_sender_change(struct sl_txn *t, const char *sender,
    const char *params);
void sl_edit_quarantine(struct sl_txn *t, const char *reason);

/* --- queue hook -------------------------------------------------------- */

/*
 * The final message (Received: and other added headers first, then the
 * headers and the body), with LF line ends, written to fd.  For queue
 * plugins.  Returns 0 or -1 with errno set.
 */
int sl_txn_write_message(struct sl_txn *t, int fd);
/* Like sl_txn_write_message with CRLF line ends and dot-stuffing off. */
int sl_txn_write_message_crlf(struct sl_txn *t, int fd);
/* Whether the message was quarantined by an edit; reason or NULL. */
const char *sl_txn_quarantine_reason(const struct sl_txn *t);

/* --- DNS --------------------------------------------------------------- */

/*
 * Asynchronous DNS through the loop thread's resolver (c-ares; servers,
 * timeout and cache from sluice.conf's dns_servers, dns_timeout and
 * dns_cache_size).  sl_dns_lookup() starts a query for name (no final dot
 * needed) and type; fn(arg, result) runs later on the connection's loop
 * thread, never inside sl_dns_lookup(), exactly once unless the query is
 * cancelled first.  An answer known at once (a cache hit) comes as soon as
 * the hook that asked has returned: a hook that suspended for it goes on
 * without a round through the loop.  The result and everything it points to are
 * valid during the call only.  The handle is freed when fn returns: forget it
 * there.  sl_dns_cancel() drops a query whose fn has not run (fn is then
 * never called) and sets *qp = NULL; a plugin cancels its queries when the
 * connection or transaction they belong to ends (sl_conn_data_set's
 * free_fn is the place).  A failure is a result, never a stall: after
 * dns_timeout the status is SL_DNS_TIMEOUT.
 *
 * For SL_DNS_PTR, name may be a numeric IPv4 or IPv6 address: the query
 * is then for its in-addr.arpa / ip6.arpa name.
 */
enum sl_dns_type {
	SL_DNS_A = 1,
	SL_DNS_PTR = 12,
	SL_DNS_MX = 15,
	SL_DNS_TXT = 16,
	SL_DNS_AAAA = 28,
};

enum sl_dns_status {
	SL_DNS_OK = 0,   /* at least one record of the type */
	SL_DNS_NXDOMAIN, /* the name does not exist */
	SL_DNS_NODATA,   /* the name exists, no record of this type */
	SL_DNS_TIMEOUT,  /* no answer within dns_timeout */
	SL_DNS_SERVFAIL, /* the server failed or refused (SERVFAIL, REFUSED) */
	SL_DNS_ERROR,    /* anything else: bad name, no server reachable ... */
};

struct sl_dns_rr {
	/*
	 * A, AAAA: the numeric address; TXT: the record's strings joined
	 * (RFC 7208 3.3); PTR, MX: the name without the final dot ("" for
	 * a null MX, RFC 7505).
	 */
	const char *text;
	size_t len;        /* of text (TXT may hold NUL bytes) */
	unsigned int pref; /* MX: the preference; 0 otherwise */
	uint8_t addr[16];  /* A: 4 bytes, AAAA: 16; zeros otherwise */
};

struct sl_dns_result {
	enum sl_dns_status status;
	enum sl_dns_type type;
	const char *name; /* what was asked (PTR: the reverse name) */
	/* seconds: the least TTL of the answer (a negative answer: from the
	 * SOA, RFC 2308); 0 for timeout and errors */
	unsigned int ttl;
	size_t count; /* records in rr, in the answer's order */
	const struct sl_dns_rr *rr;
	bool cached;       /* served from the cache, no query sent */
	const char *error; /* for logs: "NXDOMAIN", "timeout" ... */
};

typedef void (*sl_dns_fn)(void *arg, const struct sl_dns_result *r);
struct sl_dns_query;
struct sl_dns_query *sl_dns_lookup(struct sl_conn *c, const char *name,
    enum sl_dns_type type, sl_dns_fn fn, void *arg);
void sl_dns_cancel(struct sl_dns_query **qp);
/* "ok", "nxdomain", "nodata", "timeout", "servfail", "error" */
const char *sl_dns_status_name(enum sl_dns_status s);
/*
 * Whether an address record of r is addr (16 bytes, an IPv4 address in
 * its ::ffff:a.b.c.d form): an A record for an IPv4 address, an AAAA
 * record otherwise.  For forward-confirming a client's address.
 */
bool sl_dns_has_addr(const struct sl_dns_result *r, const uint8_t addr[16]);
/* "A", "AAAA", "TXT", "PTR", "MX" */
const char *sl_dns_type_name(enum sl_dns_type t);

/*
 * The reverse name of a numeric address under zone ("in-addr.arpa" or
 * "ip6.arpa" when zone is NULL, else e.g. a DNSBL's zone; IPv6 nibbles
 * under a DNSBL zone as RFC 5782).  Returns 0, or -1 if ip is not an
 * address or buf is too small.
 */
int sl_dns_reverse_name(const char *ip, const char *zone, char *buf,
    size_t size);

/* --- state store --------------------------------------------------- */

/*
 * A key/value store shared by the process's connections (store lmdb) or
 * by several hosts (store redis).  Keys are strings namespaced by the
 * plugin ("karma:192.0.2.1"); values are small byte strings, or decimal
 * integers made by sl_store_incr.  expire_s is the lifetime in seconds
 * from now (0 = none); an expired key reads as absent.  Each call answers
 * once through fn(arg, ...) on the connection's loop thread, never inside
 * the call itself, even if the session ended meanwhile (a plugin that
 * suspended a hook checks sl_async_is_live there); fn may be NULL.
 *   value/len: get's value (NUL-terminated, borrowed for the call);
 *   num:       incr's new value.
 * SL_STORE_UNAVAILABLE means the store failed or timed out (redis_timeout
 * bounds every call): the plugin then goes on as if nothing was stored,
 * or, when sl_store_failure_tempfails() says so (store_failure tempfail),
 * answers its hook with SL_DENYSOFT.
 */
enum sl_store_result {
	SL_STORE_OK = 0,
	SL_STORE_ABSENT,      /* no such key (get, delete) */
	SL_STORE_UNAVAILABLE, /* the store is down, slow or failed */
};
typedef void (*sl_store_fn)(void *arg, enum sl_store_result res,
    const char *value, size_t len, long long num);
void sl_store_get(struct sl_conn *c, const char *key, sl_store_fn fn,
    void *arg);
void sl_store_set(struct sl_conn *c, const char *key, const void *value,
    size_t len, unsigned int expire_s, sl_store_fn fn, void *arg);
/* Adds by (an absent key counts as 0); expire_s restarts the lifetime. */
void sl_store_incr(struct sl_conn *c, const char *key, long long by,
    unsigned int expire_s, sl_store_fn fn, void *arg);
void sl_store_delete(struct sl_conn *c, const char *key, sl_store_fn fn,
    void *arg);
/* Whether SL_STORE_UNAVAILABLE should tempfail (store_failure tempfail). */
bool sl_store_failure_tempfails(const struct sl_conn *c);

/* Log priorities are syslog's (LOG_ERR ... LOG_DEBUG). */

#endif
