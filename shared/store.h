/*
 * shared/store.h - the state store: LMDB (a file under state_dir) or Redis
 * (hiredis async, one link per loop thread), behind the sl_store_* calls
 * of <sluice/plugin.h>.  The store is process-wide: the daemon opens it
 * at start-up; a reload keeps it (changing store, store_path or
 * redis_server needs a restart).
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <sluice/plugin.h>

#include "config.h"

enum sl_store_kind {
	SL_STORE_LMDB = 0,
	SL_STORE_REDIS = 1,
};

enum sl_store_failure {
	SL_STORE_FAIL_OPEN = 0,
	SL_STORE_FAIL_TEMPFAIL = 1,
};

struct sl_store; /* opaque */

/*
 * Opens the store cfg describes, once per process, at start-up (a reload
 * keeps it).  check_only (sluice-smtpd -t) checks the settings and that
 * the LMDB file could be opened or created, without creating anything.
 * Returns 0, or -1 with *error_r allocated ("file:line: store_path: ...").
 */
int sl_store_setup(const struct sl_config *cfg, bool check_only,
    char **error_r);
/* The process's store, or NULL before sl_store_setup. */
struct sl_store *sl_store_get_current(void);

/*
 * An LMDB store at path (a file; path-lock beside it), created if missing,
 * expired entries purged.  For sl_store_setup and unit tests.
 */
struct sl_store *sl_store_lmdb_open(const char *path, size_t map_size,
    char **error_r);
void sl_store_free(struct sl_store **stp);

/*
 * The LMDB operations, synchronous, with the time given (unit tests inject
 * it).  Each returns an enum sl_store_result.  get: *val_r is allocated
 * (NUL-terminated, *len_r without the NUL).  incr: *num_r is the new value
 * (an absent or expired key counts as 0; a value that is not a number is
 * SL_STORE_UNAVAILABLE).  expire_s 0 = never.
 */
int sl_store_lmdb_get(struct sl_store *st, const char *key, time_t now,
    char **val_r, size_t *len_r);
int sl_store_lmdb_set(struct sl_store *st, const char *key, const void *val,
    size_t len, unsigned int expire_s, time_t now);
int sl_store_lmdb_incr(struct sl_store *st, const char *key, long long by,
    unsigned int expire_s, time_t now, long long *num_r);
int sl_store_lmdb_delete(struct sl_store *st, const char *key, time_t now);
/* Deletes the entries expired at now; returns how many, or -1. */
long sl_store_lmdb_purge(struct sl_store *st, time_t now);

#endif
