/*
 * shared/store.c - the state store behind sl_store_get/set/incr/delete.
 *
 * LMDB: one environment per process (MDB_NOTLS | MDB_NOSUBDIR), shared by
 * the loop threads.  A value is stored as an 8-byte expiry time (seconds
 * since the epoch, 0 = never) followed by its bytes; an expired entry
 * reads as absent and is overwritten by set and incr; expired entries
 * are purged when the store is opened, every PURGE_EVERY writes, and when
 * the map is full.  The operations are short and run on the loop
 * thread; the callback is posted to the next loop iteration, so callers
 * see the same shape as with Redis.
 *
 * Redis: one hiredis async link per loop thread, on the loop's event
 * base, made on first use.  Each operation has its own timer
 * (redis_timeout): when it fires the caller hears "unavailable" and the
 * link is dropped (the replies still pending are then answered the same
 * way).  After a failure the link stays down for a back-off (1 s,
 * doubling up to 30 s) during which operations fail at once.
 */
#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <lmdb.h>

#include <sluice/plugin.h>

#include "core.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

#define EXP_BYTES 8
#define BACKOFF_MIN_S 1
#define BACKOFF_MAX_S 30
#define PURGE_EVERY 4096

struct sl_store {
	enum sl_store_kind kind;
	char *path;
	MDB_env *env;
	MDB_dbi dbi;
	unsigned long writes; /* for the purge every PURGE_EVERY */
	/* redis */
	char *redis_host; /* NULL for a UNIX socket */
	char *redis_unix;
	int redis_port;
};

static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sl_store *current;

/* --- LMDB ------------------------------------------------------------- */

static uint64_t
exp_decode(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < EXP_BYTES; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
exp_encode(unsigned char *p, uint64_t v)
{
	int i;

	for (i = EXP_BYTES - 1; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
exp_at(unsigned int expire_s, time_t now)
{
	return expire_s == 0 ? 0 : (uint64_t)now + expire_s;
}

static bool
is_expired(const MDB_val *v, time_t now)
{
	uint64_t at;

	if (v->mv_size < EXP_BYTES)
		return true;
	at = exp_decode(v->mv_data);
	return at != 0 && at <= (uint64_t)now;
}

static void
lmdb_error(int rc, const char *what, const char *key)
{
	sl_log(LOG_ERR, NULL, "store: lmdb %s key=%s failed: %s", what, key,
	    mdb_strerror(rc));
}

struct sl_store *
sl_store_lmdb_open(const char *path, size_t map_size, char **error_r)
{
	struct sl_store *st;
	MDB_txn *txn;
	int rc;

	st = sl_xcalloc(1, sizeof(*st));
	st->kind = SL_STORE_LMDB;
	st->path = sl_xstrdup(path);
	rc = mdb_env_create(&st->env);
	if (rc == 0)
		rc = mdb_env_set_mapsize(st->env, map_size);
	/*
	 * Counters and greylist entries, not mail: no fsync per commit
	 * (a system crash may lose the last writes), and commits write
	 * into the map, not through pwrite(2) calls (the file is as large
	 * as the map at once, sparse).
	 */
	if (rc == 0)
		rc = mdb_env_open(st->env, path,
		    MDB_NOSUBDIR | MDB_NOTLS | MDB_NOSYNC | MDB_WRITEMAP, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_dbi_open(txn, NULL, 0, &st->dbi);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0) {
		*error_r = sl_xasprintf("cannot open the LMDB store %s: %s",
		    path, mdb_strerror(rc));
		sl_store_free(&st);
		return NULL;
	}
	(void)sl_store_lmdb_purge(st, time(NULL));
	return st;
}

void
sl_store_free(struct sl_store **stp)
{
	struct sl_store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	if (st->env != NULL)
		mdb_env_close(st->env);
	free(st->path);
	free(st->redis_host);
	free(st->redis_unix);
	free(st);
}

static int
key_val(const char *key, MDB_val *k)
{
	k->mv_data = (void *)(uintptr_t)key;
	k->mv_size = strlen(key);
	if (k->mv_size == 0 || k->mv_size > 511)
		return -1;
	return 0;
}

int
sl_store_lmdb_get(struct sl_store *st, const char *key, time_t now,
    char **val_r, size_t *len_r)
{
	MDB_txn *txn;
	MDB_val k, v;
	int rc, res;

	*val_r = NULL;
	*len_r = 0;
	if (key_val(key, &k) != 0)
		return SL_STORE_UNAVAILABLE;
	rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		lmdb_error(rc, "get", key);
		return SL_STORE_UNAVAILABLE;
	}
	rc = mdb_get(txn, st->dbi, &k, &v);
	if (rc == MDB_NOTFOUND || (rc == 0 && is_expired(&v, now)))
		res = SL_STORE_ABSENT;
	else if (rc != 0) {
		lmdb_error(rc, "get", key);
		res = SL_STORE_UNAVAILABLE;
	} else {
		*len_r = v.mv_size - EXP_BYTES;
		*val_r = sl_xmalloc(*len_r + 1);
		memcpy(*val_r, (const char *)v.mv_data + EXP_BYTES, *len_r);
		(*val_r)[*len_r] = '\0';
		res = SL_STORE_OK;
	}
	mdb_txn_abort(txn);
	return res;
}

static int
put(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, const void *val, size_t len,
    uint64_t at)
{
	MDB_val v;
	int rc;

	v.mv_size = EXP_BYTES + len;
	rc = mdb_put(txn, dbi, k, &v, MDB_RESERVE);
	if (rc != 0)
		return rc;
	exp_encode(v.mv_data, at);
	if (len > 0)
		memcpy((char *)v.mv_data + EXP_BYTES, val, len);
	return 0;
}

/*
 * Writes the value and commits txn (or aborts it); *rc_r is LMDB's code.
 * A full map is not logged here: the caller purges and tries again.
 */
static int
put_commit(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, const void *val, size_t len,
    uint64_t at, const char *what, int *rc_r)
{
	int rc;

	rc = put(txn, dbi, k, val, len, at);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	*rc_r = rc;
	if (rc != 0) {
		if (rc != MDB_MAP_FULL)
			lmdb_error(rc, what, (const char *)k->mv_data);
		return SL_STORE_UNAVAILABLE;
	}
	return SL_STORE_OK;
}

static int
lmdb_set_once(struct sl_store *st, const char *key, const void *val, size_t len,
    unsigned int expire_s, time_t now, int *rc_r)
{
	MDB_txn *txn;
	MDB_val k;
	int rc;

	*rc_r = 0;
	if (key_val(key, &k) != 0)
		return SL_STORE_UNAVAILABLE;
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc != 0) {
		lmdb_error(rc, "set", key);
		return SL_STORE_UNAVAILABLE;
	}
	return put_commit(txn, st->dbi, &k, val, len, exp_at(expire_s, now),
	    "set", rc_r);
}

/* The value as a number, as Redis's INCRBY reads it. */
static int
parse_num(const char *p, size_t len, long long *num_r)
{
	char buf[32], *end;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	errno = 0;
	*num_r = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return 0;
}

static int
lmdb_incr_once(struct sl_store *st, const char *key, long long by,
    unsigned int expire_s, time_t now, long long *num_r, int *rc_r)
{
	MDB_txn *txn;
	MDB_val k, v;
	char buf[32];
	long long n = 0;
	int rc, len;

	*num_r = 0;
	*rc_r = 0;
	if (key_val(key, &k) != 0)
		return SL_STORE_UNAVAILABLE;
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc != 0) {
		lmdb_error(rc, "incr", key);
		return SL_STORE_UNAVAILABLE;
	}
	rc = mdb_get(txn, st->dbi, &k, &v);
	if (rc == 0 && !is_expired(&v, now) &&
	    parse_num((const char *)v.mv_data + EXP_BYTES,
	        v.mv_size - EXP_BYTES, &n) != 0) {
		sl_log(LOG_WARNING, NULL,
		    "store: incr key=%s: the value is not a number", key);
		mdb_txn_abort(txn);
		return SL_STORE_UNAVAILABLE;
	}
	if (rc == 0 && is_expired(&v, now))
		n = 0;
	if (rc != 0 && rc != MDB_NOTFOUND) {
		lmdb_error(rc, "incr", key);
		mdb_txn_abort(txn);
		return SL_STORE_UNAVAILABLE;
	}
	if ((by > 0 && n > LLONG_MAX - by) || (by < 0 && n < LLONG_MIN - by)) {
		mdb_txn_abort(txn);
		return SL_STORE_UNAVAILABLE;
	}
	n += by;
	len = snprintf(buf, sizeof(buf), "%lld", n);
	rc = put_commit(txn, st->dbi, &k, buf, (size_t)len,
	    exp_at(expire_s, now), "incr", rc_r);
	if (rc == SL_STORE_OK)
		*num_r = n;
	return rc;
}

/*
 * A full map is purged of expired entries and the write tried once more;
 * every PURGE_EVERY writes purge as well, so expired entries do not pile
 * up in a store that is never reopened.
 */
static void
note_write(struct sl_store *st, time_t now)
{
	if (__atomic_add_fetch(&st->writes, 1, __ATOMIC_RELAXED) %
	        PURGE_EVERY ==
	    0)
		(void)sl_store_lmdb_purge(st, now);
}

static void
map_full(const char *what, const char *key)
{
	sl_log(LOG_ERR, NULL,
	    "store: lmdb %s key=%s failed: the store is full (store_map_size)",
	    what, key);
}

int
sl_store_lmdb_set(struct sl_store *st, const char *key, const void *val,
    size_t len, unsigned int expire_s, time_t now)
{
	int res, rc;

	res = lmdb_set_once(st, key, val, len, expire_s, now, &rc);
	if (rc == MDB_MAP_FULL && sl_store_lmdb_purge(st, now) > 0)
		res = lmdb_set_once(st, key, val, len, expire_s, now, &rc);
	if (rc == MDB_MAP_FULL)
		map_full("set", key);
	note_write(st, now);
	return res;
}

int
sl_store_lmdb_incr(struct sl_store *st, const char *key, long long by,
    unsigned int expire_s, time_t now, long long *num_r)
{
	int res, rc;

	res = lmdb_incr_once(st, key, by, expire_s, now, num_r, &rc);
	if (rc == MDB_MAP_FULL && sl_store_lmdb_purge(st, now) > 0)
		res = lmdb_incr_once(st, key, by, expire_s, now, num_r, &rc);
	if (rc == MDB_MAP_FULL)
		map_full("incr", key);
	note_write(st, now);
	return res;
}

int
sl_store_lmdb_delete(struct sl_store *st, const char *key, time_t now)
{
	MDB_txn *txn;
	MDB_val k, v;
	int rc, res = SL_STORE_OK;

	if (key_val(key, &k) != 0)
		return SL_STORE_UNAVAILABLE;
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc == 0) {
		rc = mdb_get(txn, st->dbi, &k, &v);
		if (rc == 0 && is_expired(&v, now))
			res = SL_STORE_ABSENT;
		if (rc == 0)
			rc = mdb_del(txn, st->dbi, &k, NULL);
		if (rc == MDB_NOTFOUND) {
			res = SL_STORE_ABSENT;
			rc = 0;
		}
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	if (rc != 0) {
		lmdb_error(rc, "delete", key);
		return SL_STORE_UNAVAILABLE;
	}
	return res;
}

long
sl_store_lmdb_purge(struct sl_store *st, time_t now)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	long n = 0;
	int rc;

	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (rc != 0)
		return -1;
	rc = mdb_cursor_open(txn, st->dbi, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!is_expired(&v, now))
			continue;
		if (mdb_cursor_del(cur, 0) != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	if (mdb_txn_commit(txn) != 0)
		return -1;
	if (n > 0)
		sl_log(LOG_INFO, NULL, "store: purged=%ld expired entries", n);
	return n;
}

/* --- operations, as the plugin API sees them ------------------------- */

enum op_kind {
	OP_GET,
	OP_SET,
	OP_INCR,
	OP_DELETE,
};

struct op {
	enum op_kind kind;
	struct sl_loop *loop;
	sl_store_fn fn;
	void *arg;
	int res;
	char *val;
	size_t len;
	long long num;
	/* redis */
	struct rlink *link;
	struct event *timer;
	bool answered;
};

static void
op_free(struct op *op)
{
	if (op->timer != NULL)
		event_free(op->timer);
	free(op->val);
	free(op);
}

/* Tells the caller, once. */
static void
op_answer(struct op *op)
{
	if (op->answered)
		return;
	op->answered = true;
	if (op->fn != NULL)
		op->fn(op->arg, (enum sl_store_result)op->res, op->val, op->len,
		    op->num);
}

static void
op_deferred(void *arg)
{
	struct op *op = arg;

	op_answer(op);
	op_free(op);
}

static struct op *
op_new(struct sl_conn *c, enum op_kind kind, sl_store_fn fn, void *arg)
{
	struct op *op;

	op = sl_xcalloc(1, sizeof(*op));
	op->kind = kind;
	op->loop = c->loop;
	op->fn = fn;
	op->arg = arg;
	op->res = SL_STORE_UNAVAILABLE;
	return op;
}

/* --- Redis ----------------------------------------------------------- */

/* One link per loop thread; kept on a list so they stay reachable. */
struct rlink {
	struct event_base *base;
	redisAsyncContext *ac;
	bool up;         /* connected */
	time_t retry_at; /* down until then */
	unsigned int backoff_s;
	struct rlink *next;
};

static _Thread_local struct rlink *my_link;
static struct rlink *all_links;

static void
link_down(struct rlink *l, const char *why)
{
	time_t now = time(NULL);

	if (l->backoff_s == 0)
		l->backoff_s = BACKOFF_MIN_S;
	else if (l->backoff_s < BACKOFF_MAX_S)
		l->backoff_s *= 2;
	if (l->backoff_s > BACKOFF_MAX_S)
		l->backoff_s = BACKOFF_MAX_S;
	l->retry_at = now + l->backoff_s;
	if (l->up || l->ac != NULL)
		sl_log(LOG_WARNING, NULL,
		    "store: redis unavailable: %s; retry_in=%us", why,
		    l->backoff_s);
	l->up = false;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rlink *l = ac->data;

	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback */
		link_down(l, ac->errstr);
		l->ac = NULL;
		return;
	}
	l->up = true;
	if (l->backoff_s != 0)
		sl_log(LOG_NOTICE, NULL, "store: redis connected again");
	l->backoff_s = 0;
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rlink *l = ac->data;

	if (l->ac == ac) {
		link_down(l, status == REDIS_OK ? "disconnected" : ac->errstr);
		l->ac = NULL;
	}
}

/* A usable context, connecting if the back-off allows; NULL = down. */
static redisAsyncContext *
link_context(struct sl_loop *loop)
{
	const struct sl_store *st = current;
	struct rlink *l = my_link;
	redisAsyncContext *ac;

	if (l == NULL) {
		l = sl_xcalloc(1, sizeof(*l));
		l->base = sl_loop_base(loop);
		pthread_mutex_lock(&store_mu);
		l->next = all_links;
		all_links = l;
		pthread_mutex_unlock(&store_mu);
		my_link = l;
	}
	if (l->ac != NULL)
		return l->ac;
	if (time(NULL) < l->retry_at)
		return NULL;
	if (st->redis_unix != NULL)
		ac = redisAsyncConnectUnix(st->redis_unix);
	else
		ac = redisAsyncConnect(st->redis_host, st->redis_port);
	if (ac == NULL || ac->err != 0) {
		l->ac = ac; /* so link_down logs */
		link_down(l, ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		l->ac = NULL;
		return NULL;
	}
	ac->data = l;
	if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
		redisAsyncFree(ac);
		return NULL;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	l->ac = ac;
	return ac;
}

static void
on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	const redisReply *reply = r;
	struct op *op = priv;

	(void)ac;
	if (reply == NULL)
		op->res = SL_STORE_UNAVAILABLE;
	else if (reply->type == REDIS_REPLY_ERROR) {
		sl_log(LOG_WARNING, NULL, "store: redis error: %s", reply->str);
		op->res = SL_STORE_UNAVAILABLE;
	} else if (reply->type == REDIS_REPLY_NIL)
		op->res = SL_STORE_ABSENT;
	else if (reply->type == REDIS_REPLY_STRING) {
		op->res = SL_STORE_OK;
		op->len = reply->len;
		op->val = sl_xmalloc(op->len + 1);
		memcpy(op->val, reply->str, op->len);
		op->val[op->len] = '\0';
	} else if (reply->type == REDIS_REPLY_INTEGER) {
		op->num = reply->integer;
		op->res = op->kind == OP_DELETE && op->num == 0
		    ? SL_STORE_ABSENT
		    : SL_STORE_OK;
	} else
		op->res = SL_STORE_OK;
	op_answer(op);
	op_free(op);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct op *op = arg;
	struct rlink *l = my_link;
	redisAsyncContext *ac;

	(void)fd;
	(void)what;
	op->res = SL_STORE_UNAVAILABLE;
	op_answer(op);
	/* Drop the link: every pending reply, this one too, gets NULL. */
	if (l != NULL && l->ac != NULL) {
		ac = l->ac;
		link_down(l, "timed out");
		l->ac = NULL;
		redisAsyncFree(ac);
	}
}

static const char incr_script[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) "
    "end return v";

static void
redis_issue(struct op *op, const char *key, const void *val, size_t len,
    long long by, unsigned int expire_s, unsigned int timeout_ms)
{
	redisAsyncContext *ac;
	struct timeval tv;
	int rc = REDIS_ERR;

	ac = link_context(op->loop);
	if (ac == NULL) {
		sl_loop_post(op->loop, op_deferred, op);
		return;
	}
	switch (op->kind) {
	case OP_GET:
		rc = redisAsyncCommand(ac, on_reply, op, "GET %s", key);
		break;
	case OP_SET:
		if (expire_s > 0)
			rc = redisAsyncCommand(ac, on_reply, op,
			    "SET %s %b EX %u", key, val, len, expire_s);
		else
			rc = redisAsyncCommand(ac, on_reply, op, "SET %s %b",
			    key, val, len);
		break;
	case OP_INCR:
		rc = redisAsyncCommand(ac, on_reply, op, "EVAL %s 1 %s %lld %u",
		    incr_script, key, by, expire_s);
		break;
	case OP_DELETE:
		rc = redisAsyncCommand(ac, on_reply, op, "DEL %s", key);
		break;
	}
	if (rc != REDIS_OK) {
		sl_loop_post(op->loop, op_deferred, op);
		return;
	}
	op->timer = evtimer_new(sl_loop_base(op->loop), on_timeout, op);
	tv = sl_timeval_ms(timeout_ms);
	evtimer_add(op->timer, &tv);
}

/* --- dispatch -------------------------------------------------------- */

static void
store_op(struct sl_conn *c, struct op *op, const char *key, const void *val,
    size_t len, long long by, unsigned int expire_s)
{
	struct sl_store *st = current;
	time_t now = time(NULL);

	if (st == NULL) {
		sl_loop_post(op->loop, op_deferred, op);
		return;
	}
	if (st->kind == SL_STORE_REDIS) {
		redis_issue(op, key, val, len, by, expire_s,
		    c->rt->set->redis_timeout_ms);
		return;
	}
	switch (op->kind) {
	case OP_GET:
		op->res = sl_store_lmdb_get(st, key, now, &op->val, &op->len);
		break;
	case OP_SET:
		op->res = sl_store_lmdb_set(st, key, val, len, expire_s, now);
		break;
	case OP_INCR:
		op->res =
		    sl_store_lmdb_incr(st, key, by, expire_s, now, &op->num);
		break;
	case OP_DELETE:
		op->res = sl_store_lmdb_delete(st, key, now);
		break;
	}
	sl_loop_post(op->loop, op_deferred, op);
}

void
sl_store_get(struct sl_conn *c, const char *key, sl_store_fn fn, void *arg)
{
	store_op(c, op_new(c, OP_GET, fn, arg), key, NULL, 0, 0, 0);
}

void
sl_store_set(struct sl_conn *c, const char *key, const void *value, size_t len,
    unsigned int expire_s, sl_store_fn fn, void *arg)
{
	store_op(c, op_new(c, OP_SET, fn, arg), key, value, len, 0, expire_s);
}

void
sl_store_incr(struct sl_conn *c, const char *key, long long by,
    unsigned int expire_s, sl_store_fn fn, void *arg)
{
	store_op(c, op_new(c, OP_INCR, fn, arg), key, NULL, 0, by, expire_s);
}

void
sl_store_delete(struct sl_conn *c, const char *key, sl_store_fn fn, void *arg)
{
	store_op(c, op_new(c, OP_DELETE, fn, arg), key, NULL, 0, 0, 0);
}

bool
sl_store_failure_tempfails(const struct sl_conn *c)
{
	return c->rt->set->store_failure == SL_STORE_FAIL_TEMPFAIL;
}

/* --- set-up ---------------------------------------------------------- */

static int
redis_parse(struct sl_store *st, const char *spec, char **why_r)
{
	const char *colon;
	char *end;
	unsigned long port;

	if (strncmp(spec, "unix:", 5) == 0) {
		if (spec[5] != '/') {
			*why_r =
			    sl_xasprintf("%s: the path must be absolute", spec);
			return -1;
		}
		st->redis_unix = sl_xstrdup(spec + 5);
		return 0;
	}
	colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec) {
		*why_r =
		    sl_xasprintf("%s: expected HOST:PORT or unix:/path", spec);
		return -1;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port == 0 || port > 65535) {
		*why_r = sl_xasprintf("%s: bad port", spec);
		return -1;
	}
	if (spec[0] == '[' && colon[-1] == ']')
		st->redis_host =
		    sl_xasprintf("%.*s", (int)(colon - spec - 2), spec + 1);
	else
		st->redis_host =
		    sl_xasprintf("%.*s", (int)(colon - spec), spec);
	st->redis_port = (int)port;
	return 0;
}

struct sl_store *
sl_store_get_current(void)
{
	return current;
}

/*
 * Whether the LMDB file could be opened or created, without doing so; a
 * missing state_dir is made at start-up, so then its parent counts.
 */
static int
lmdb_check(const char *path, const char *state_dir, char **why_r)
{
	char *copy, *dir;
	int rc;

	if (access(path, F_OK) == 0)
		rc = access(path, R_OK | W_OK);
	else {
		copy = sl_xstrdup(path);
		dir = dirname(copy);
		if (access(dir, F_OK) != 0 && strcmp(dir, state_dir) == 0)
			dir = dirname(dir);
		rc = access(dir, W_OK | X_OK);
		free(copy);
	}
	if (rc != 0) {
		*why_r = sl_xasprintf("cannot open the LMDB store %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
sl_store_setup(const struct sl_config *cfg, bool check_only, char **error_r)
{
	const struct sl_settings *s = &cfg->settings;
	struct sl_store *st;
	const char *what;
	char *why = NULL;

	if (current != NULL) {
		if ((int)current->kind != s->store)
			sl_log(LOG_NOTICE, NULL,
			    "store: a change of store needs a restart");
		return 0;
	}
	if (s->store == SL_STORE_REDIS) {
		what = "redis_server";
		st = sl_xcalloc(1, sizeof(*st));
		st->kind = SL_STORE_REDIS;
		if (redis_parse(st, s->redis_server, &why) != 0)
			sl_store_free(&st);
	} else {
		what = "store_path";
		if (check_only)
			st = NULL;
		else {
			/* the state directory, if missing; errors show below */
			(void)mkdir(s->state_dir, 0700);
			st = sl_store_lmdb_open(s->store_path,
			    s->store_map_size, &why);
		}
		if (check_only &&
		    lmdb_check(s->store_path, s->state_dir, &why) == 0)
			return 0;
	}
	if (st == NULL) {
		*error_r = sl_xasprintf("%s: %s: %s",
		    sl_config_where(cfg, what), what, why);
		free(why);
		return -1;
	}
	if (check_only)
		sl_store_free(&st);
	else
		current = st;
	return 0;
}
