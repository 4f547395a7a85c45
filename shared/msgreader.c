/*
 * msgreader.c - the DATA / BDAT content reader (contract in msgreader.h).
 *
 * One pass over each feed: runs of ordinary bytes are found with memchr and
 * copied into an output buffer, handed to out() when full and at the end
 * of the feed, so a message costs a few out() calls rather than one per
 * line.  A CR is never output as it is read: whether it ends a line depends
 * on the next byte, which may come in the next feed.  Cost is linear in
 * the input whatever the mix of CR and LF (the next CR and LF positions
 * are remembered, not searched for again at every bare CR or LF).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"
#include "msgreader.h"

#define MR_MAX_LINE_DEFAULT 998 /* RFC 5322 2.1.1 */
#define MR_BUFSIZE 8192

enum mr_state {
	MR_TEXT,   /* inside a line */
	MR_CR,     /* after a CR: CRLF ends the line, else the CR is bare */
	MR_BOL,    /* dot mode: at the start of a line */
	MR_DOT,    /* dot mode: "." at the start of a line */
	MR_DOT_CR, /* dot mode: ".\r" at the start of a line */
	MR_DONE,   /* the final dot was read, or finish() was called */
};

struct sl_msgreader {
	struct sl_msgreader_limits lim;
	sl_msgreader_out_fn out;
	void *arg;
	enum mr_state state;
	bool dot_mode;
	unsigned int flags;
	uint64_t size;  /* bytes output, or that would have been */
	size_t linelen; /* output bytes since the last LF */
	uint8_t *buf;   /* output not yet passed to out(); MR_BUFSIZE */
	size_t buflen;
};

/*
 * One feed: [run, p) is input still to be output as it is.  lf and cr are
 * the next LF and CR at or after p (end if none), NULL until looked for.
 */
struct mr_cursor {
	const uint8_t *p, *end, *run;
	const uint8_t *lf, *cr;
};

static const uint8_t mr_lf = '\n';
static const uint8_t mr_cr = '\r';

struct sl_msgreader *
sl_msgreader_new(const struct sl_msgreader_limits *lim, sl_msgreader_out_fn out,
    void *arg)
{
	struct sl_msgreader *r;

	r = sl_xcalloc(1, sizeof(*r));
	if (lim != NULL)
		r->lim = *lim;
	if (r->lim.max_line == 0)
		r->lim.max_line = MR_MAX_LINE_DEFAULT;
	r->out = out;
	r->arg = arg;
	sl_msgreader_reset(r, true);
	return r;
}

void
sl_msgreader_free(struct sl_msgreader **rp)
{
	if (*rp == NULL)
		return;
	free((*rp)->buf);
	free(*rp);
	*rp = NULL;
}

void
sl_msgreader_reset(struct sl_msgreader *r, bool dot_mode)
{
	r->dot_mode = dot_mode;
	r->state = dot_mode ? MR_BOL : MR_TEXT;
	r->flags = 0;
	r->size = 0;
	r->linelen = 0;
	r->buflen = 0;
}

static void
mr_flush(struct sl_msgreader *r)
{
	if (r->buflen > 0) {
		r->out(r->arg, r->buf, r->buflen);
		r->buflen = 0;
	}
}

/* Outputs n bytes, as far as max_size allows. */
static void
mr_put(struct sl_msgreader *r, const uint8_t *s, size_t n)
{
	uint64_t before;

	before = r->size;
	r->size += n;
	if (r->lim.max_size != 0 && r->size > r->lim.max_size) {
		r->flags |= SL_MR_TOO_BIG;
		if (before >= r->lim.max_size)
			return;
		n = (size_t)(r->lim.max_size - before);
	}
	if (n == 0)
		return;
	if (n > MR_BUFSIZE - r->buflen) {
		mr_flush(r);
		if (n >= MR_BUFSIZE) {
			r->out(r->arg, s, n);
			return;
		}
	}
	if (r->buf == NULL)
		r->buf = sl_xmalloc(MR_BUFSIZE);
	memcpy(r->buf + r->buflen, s, n);
	r->buflen += n;
}

/* Outputs the pending run [run, p). */
static void
mr_put_run(struct sl_msgreader *r, struct mr_cursor *c)
{
	mr_put(r, c->run, (size_t)(c->p - c->run));
	c->run = c->p;
}

/* Counts n output bytes of the current line. */
static void
mr_count(struct sl_msgreader *r, size_t n)
{
	r->linelen += n;
	if (r->linelen > r->lim.max_line)
		r->flags |= SL_MR_LONG_LINE;
}

/* A CR not followed by LF.  The caller has no pending run. */
static void
mr_bare_cr(struct sl_msgreader *r)
{
	r->flags |= SL_MR_BARE_CR;
	if (r->lim.normalise) {
		mr_put(r, &mr_lf, 1);
		r->linelen = 0;
	} else {
		mr_put(r, &mr_cr, 1);
		mr_count(r, 1);
	}
}

static const uint8_t *
mr_find(const uint8_t *p, const uint8_t *end, int ch)
{
	const uint8_t *q;

	q = memchr(p, ch, (size_t)(end - p));
	return q != NULL ? q : end;
}

/* Inside a line: takes the ordinary bytes up to the next CR or LF. */
static void
mr_text(struct sl_msgreader *r, struct mr_cursor *c)
{
	const uint8_t *stop;

	if (c->lf == NULL || c->lf < c->p)
		c->lf = mr_find(c->p, c->end, '\n');
	if (c->cr == NULL || c->cr < c->p)
		c->cr = mr_find(c->p, c->end, '\r');
	stop = c->cr < c->lf ? c->cr : c->lf;
	mr_count(r, (size_t)(stop - c->p));
	c->p = stop;
	if (stop == c->end)
		return;
	if (*stop == '\n') {
		/*
		 * A bare LF: "\n" in both policies, but never a line end
		 * for the protocol, so no "." after it ends the data.
		 */
		r->flags |= SL_MR_BARE_LF;
		r->linelen = 0;
		c->p++;
		return;
	}
	mr_put_run(r, c);
	c->p++;
	c->run = c->p;
	r->state = MR_CR;
}

/* After a CR, which was not output. */
static void
mr_after_cr(struct sl_msgreader *r, struct mr_cursor *c)
{
	if (*c->p == '\n') {
		/* CRLF: the LF stays in the run, the CR is dropped. */
		r->linelen = 0;
		c->p++;
		r->state = r->dot_mode ? MR_BOL : MR_TEXT;
		return;
	}
	mr_bare_cr(r);
	r->state = MR_TEXT;
}

/* Dot mode, at a line start: "." CRLF ends the data, other dots go. */
static void
mr_dot(struct sl_msgreader *r, struct mr_cursor *c)
{
	switch (r->state) {
	case MR_BOL:
		r->state = MR_TEXT;
		if (*c->p == '.') {
			mr_put_run(r, c);
			c->run = ++c->p;
			r->state = MR_DOT;
		}
		break;
	case MR_DOT:
		/* Unless CRLF follows, the dot was stuffing (RFC 5321 4.5.2).
		 */
		r->state = MR_TEXT;
		if (*c->p == '\r') {
			c->run = ++c->p;
			r->state = MR_DOT_CR;
		}
		break;
	default: /* MR_DOT_CR */
		if (*c->p == '\n') {
			c->run = ++c->p;
			r->state = MR_DONE;
		} else {
			mr_bare_cr(r);
			r->state = MR_TEXT;
		}
		break;
	}
}

size_t
sl_msgreader_feed(struct sl_msgreader *r, const uint8_t *in, size_t len,
    bool *done_r)
{
	struct mr_cursor c;

	if (len == 0 || r->state == MR_DONE) {
		if (done_r != NULL)
			*done_r = r->state == MR_DONE && r->dot_mode;
		return 0;
	}
	c.p = c.run = in;
	c.end = in + len;
	c.lf = c.cr = NULL;
	while (c.p < c.end && r->state != MR_DONE) {
		if (r->state == MR_TEXT)
			mr_text(r, &c);
		else if (r->state == MR_CR)
			mr_after_cr(r, &c);
		else
			mr_dot(r, &c);
	}
	mr_put_run(r, &c);
	mr_flush(r);
	if (done_r != NULL)
		*done_r = r->state == MR_DONE;
	return (size_t)(c.p - in);
}

void
sl_msgreader_finish(struct sl_msgreader *r)
{
	if (r->dot_mode)
		return;
	if (r->state == MR_CR)
		mr_bare_cr(r);
	r->state = MR_DONE;
	mr_flush(r);
}

unsigned int
sl_msgreader_flags(const struct sl_msgreader *r)
{
	return r->flags;
}

uint64_t
sl_msgreader_size(const struct sl_msgreader *r)
{
	return r->size;
}
