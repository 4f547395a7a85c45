/*
 * authfail.h - failed SMTP authentications per client address, counted
 * for auth_ip_max_failures / auth_ip_window (sluice.conf(5)).
 *
 * One table for the process, shared by every loop thread behind a mutex.
 * A count lives for one window from its first failure, then starts again
 * from zero.  The table holds at most SL_AUTHFAIL_MAX addresses: when it
 * is full, expired entries go first, then the one with the oldest window
 * (a flood of new addresses can push an old one out early; each of them
 * is then counted on its own, which bounds memory, not the attack).
 * Addresses are in the 16-byte form of sl_conn_remote_addr(); times are
 * milliseconds of a monotonic clock (sl_now_ms()).
 */
#ifndef SL_AUTHFAIL_H
#define SL_AUTHFAIL_H

#include <stddef.h>
#include <stdint.h>

#define SL_AUTHFAIL_MAX 8192

/* Milliseconds of CLOCK_MONOTONIC. */
/* Failures of addr in its current window (0 once it has expired). */
unsigned int sl_authfail_count(const uint8_t addr[16], unsigned int window_ms,
    uint64_t now_ms);
/* Records one failure of addr; returns its count in the window. */
unsigned int sl_authfail_add(const uint8_t addr[16], unsigned int window_ms,
    uint64_t now_ms);
/* Addresses in the table (tests). */
size_t sl_authfail_size(void);
/* Empties the table (tests). */
void sl_authfail_clear(void);

#endif
