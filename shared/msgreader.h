/*
 * msgreader.h - the DATA / BDAT content reader.
 *
 * A resumable byte state machine: input may arrive split at any byte.  In
 * dot mode (DATA) it removes dot-stuffing and stops at CRLF.CRLF, and only
 * there (RFC 5321 4.1.1.4; a bare LF or bare CR never ends a line, so
 * "\n.\n" is ordinary content: SMTP smuggling).  In raw mode (BDAT) there
 * is no dot handling and the caller says where the chunks end.
 *
 * Output is the message with LF line ends ("\r\n" -> "\n"), through the
 * out callback, in pieces.  NUL bytes pass through untouched.  Bare LF and
 * bare CR are flagged; with normalise they are output as "\n" (a bare CR
 * as a line end), otherwise they pass through as is (the caller refuses the
 * message).  A line longer than max_line bytes (without CRLF) is flagged
 * and still output whole.  Once more than max_size bytes were output, output
 * stops and SL_MR_TOO_BIG is set, but reading goes on to the end.
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
	bool normalise;	 /* bare CR / LF become line ends */
};

typedef void (*sl_msgreader_out_fn)(void *arg, const uint8_t *p, size_t n);

struct sl_msgreader;

struct sl_msgreader *sl_msgreader_new(const struct sl_msgreader_limits *lim,
    sl_msgreader_out_fn out, void *arg);
void sl_msgreader_free(struct sl_msgreader **rp);
/* Starts a new message; dot_mode true for DATA, false for BDAT. */
void sl_msgreader_reset(struct sl_msgreader *r, bool dot_mode);

/*
 * Feeds len bytes.  Returns how many were consumed: all of them, except in
 * dot mode when the end of data was reached, where it returns the count up
 * to and including the final ".\r\n" and sets *done_r.  Bytes after it
 * belong to the next command (PIPELINING).
 */
size_t sl_msgreader_feed(struct sl_msgreader *r, const uint8_t *in,
    size_t len, bool *done_r);

/*
 * Raw mode: the last chunk was fed (BDAT LAST).  Flushes a pending CR
 * (flagged as bare CR unless it ended the data) so the output is complete.
 */
void sl_msgreader_finish(struct sl_msgreader *r);

unsigned int sl_msgreader_flags(const struct sl_msgreader *r);
/* Bytes output (or that would have been, past max_size). */
uint64_t sl_msgreader_size(const struct sl_msgreader *r);

#endif
