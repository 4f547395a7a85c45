/*
 * msgreader.h - the DATA / BDAT content reader.
 *
 * A resumable byte state machine: input may arrive split at any byte.  In
 * dot mode (DATA) it removes dot-stuffing and stops at CRLF.CRLF, and only
 * there (RFC 5321 4.1.1.4; a bare LF or bare CR never ends a line, so
 * "\n.\n" is ordinary content: SMTP smuggling).  A line starts at the
 * beginning of the data and after each CRLF, never after a bare CR or LF;
 * at a line start "." CRLF is the end of data and any other "." is
 * removed (RFC 5321 4.5.2: "..x" becomes ".x", ".x" becomes "x").  In raw
 * mode (BDAT) there is no dot handling and the caller says where the
 * chunks end.
 *
 * Output is the message with LF line ends ("\r\n" -> "\n"), through the
 * out callback, in pieces: it is batched in an internal buffer (allocated
 * at the first output) and handed over when that is full and before
 * feed() and finish() return, never in empty pieces.  NUL bytes pass
 * through untouched.  Bare LF and bare CR are flagged in both policies;
 * with normalise they are output as "\n" (a bare CR as a line end),
 * otherwise they pass through as is (the caller refuses the message).  A
 * line of more than max_line output bytes between LFs is flagged and still
 * output whole.  Output stops after max_size bytes: once a message would
 * exceed it, SL_MR_TOO_BIG is set, but reading goes on to the end.
 */
#ifndef SL_MSGREADER_H
#define SL_MSGREADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	SL_MR_BARE_LF = 1 << 0,
	SL_MR_BARE_CR = 1 << 1,
	SL_MR_LONG_LINE = 1 << 2,
	SL_MR_TOO_BIG = 1 << 3,
};

struct sl_msgreader_limits {
	size_t max_line; /* bytes per line without the line end; 0 = 998 */
	size_t max_size; /* bytes of output; 0 = unlimited */
	bool normalise;  /* bare CR / LF become line ends */
};

typedef void (*sl_msgreader_out_fn)(void *arg, const uint8_t *p, size_t n);

struct sl_msgreader;

/* lim may be NULL (defaults, reject policy).  Starts in dot mode. */
struct sl_msgreader *sl_msgreader_new(const struct sl_msgreader_limits *lim,
    sl_msgreader_out_fn out, void *arg);
void sl_msgreader_free(struct sl_msgreader **rp);
/* Starts a new message; dot_mode true for DATA, false for BDAT. */
void sl_msgreader_reset(struct sl_msgreader *r, bool dot_mode);

/*
 * Feeds len bytes.  Returns how many were consumed: all of them, except in
 * dot mode when the end of data was reached, where it returns the count up
 * to and including the final ".\r\n" and sets *done_r.  Bytes after it
 * belong to the next command (PIPELINING).  *done_r (done_r may be NULL)
 * is set to whether the data has ended (always false in raw mode); once
 * it has, or after finish(), feed consumes nothing until reset.  All output for
 * the consumed bytes has been passed to out when it returns, except a final CR,
 * held back until the next byte says whether it ends a line.
 */
size_t sl_msgreader_feed(struct sl_msgreader *r, const uint8_t *in, size_t len,
    bool *done_r);

/*
 * Raw mode: the last chunk was fed (BDAT LAST).  A CR held back at the end
 * of the last chunk is a bare CR: it is flagged and output as the policy
 * says, so the output is complete.  Does nothing in dot mode, where the
 * data ends only at the final dot (without it the message is incomplete
 * and the caller drops it).
 */
void sl_msgreader_finish(struct sl_msgreader *r);

unsigned int sl_msgreader_flags(const struct sl_msgreader *r);
/* Bytes output (or that would have been, past max_size). */
uint64_t sl_msgreader_size(const struct sl_msgreader *r);

#endif
