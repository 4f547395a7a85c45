/*
 * hdrsplit.c - RFC 5322 header / body splitter (contract in hdrsplit.h).
 *
 * The field being read is kept in buf, as received, up to max_header
 * bytes: a field is known to be complete only when the first byte of the
 * next line is not SP or HT.  A field that turns out not to be a header
 * goes to the body from buf, and the rest of the input follows it
 * unbuffered.  Values are scanned with memchr; only names go byte by byte.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"
#include "hdrsplit.h"

#define HS_MAX_HEADER_DEFAULT (64 * 1024)
#define HS_MAX_HEADERS_DEFAULT 1000
#define HS_BUF_INITIAL 256

enum hs_state {
	HS_START, /* at the start of the message */
	HS_NAME,  /* in the field name */
	HS_WSP,   /* after the name, before the colon */
	HS_VALUE, /* after the colon, or in a continuation line */
	HS_LF,    /* a field line ended; a continuation line may follow */
	HS_BODY,
	HS_DONE, /* finish() was called */
};

struct sl_hdrsplit {
	struct sl_hdrsplit_cb cb;
	size_t max_header, max_headers;
	enum hs_state state;
	size_t nfields;  /* header callbacks made */
	size_t name_len; /* of the field in buf */
	size_t colon;    /* offset of its colon */
	uint8_t *buf;    /* the field so far, as received */
	size_t len, cap;
};

struct sl_hdrsplit *
sl_hdrsplit_new(const struct sl_hdrsplit_limits *lim,
    const struct sl_hdrsplit_cb *cb)
{
	struct sl_hdrsplit *h;

	h = sl_xcalloc(1, sizeof(*h));
	h->cb = *cb;
	if (lim != NULL) {
		h->max_header = lim->max_header;
		h->max_headers = lim->max_headers;
	}
	if (h->max_header == 0)
		h->max_header = HS_MAX_HEADER_DEFAULT;
	if (h->max_headers == 0)
		h->max_headers = HS_MAX_HEADERS_DEFAULT;
	sl_hdrsplit_reset(h);
	return h;
}

void
sl_hdrsplit_free(struct sl_hdrsplit **hp)
{
	if (*hp == NULL)
		return;
	free((*hp)->buf);
	free(*hp);
	*hp = NULL;
}

void
sl_hdrsplit_reset(struct sl_hdrsplit *h)
{
	h->state = HS_START;
	h->nfields = 0;
	h->len = 0;
}

static void
hs_reserve(struct sl_hdrsplit *h, size_t need)
{
	size_t cap;

	if (need <= h->cap)
		return;
	cap = h->cap == 0 ? HS_BUF_INITIAL : h->cap;
	while (cap < need)
		cap *= 2;
	h->buf = sl_xrealloc(h->buf, cap);
	h->cap = cap;
}

static void
hs_append(struct sl_hdrsplit *h, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	hs_reserve(h, h->len + n);
	memcpy(h->buf + h->len, p, n);
	h->len += n;
}

/* Adds n bytes other than the final LF, if the field stays in bounds. */
static bool
hs_take(struct sl_hdrsplit *h, const uint8_t *p, size_t n)
{
	if (h->len > h->max_header || n > h->max_header - h->len)
		return false;
	hs_append(h, p, n);
	return true;
}

static void
hs_eoh(struct sl_hdrsplit *h, bool had_blank)
{
	if (h->cb.eoh != NULL)
		h->cb.eoh(h->cb.arg, had_blank);
}

static void
hs_body(struct sl_hdrsplit *h, const uint8_t *p, size_t n)
{
	if (n > 0 && h->cb.body != NULL)
		h->cb.body(h->cb.arg, p, n);
}

/* The field in buf is not a header: it and all that follows are body. */
static void
hs_to_body(struct sl_hdrsplit *h)
{
	hs_eoh(h, false);
	hs_body(h, h->buf, h->len);
	h->len = 0;
	h->state = HS_BODY;
}

/* Emits the complete field in buf, which ends in its final LF. */
static void
hs_emit(struct sl_hdrsplit *h)
{
	size_t raw_len, v;
	char *raw, *name;

	raw_len = h->len - 1;
	/* raw NUL-terminated in place of the LF, then a copy of the name. */
	hs_reserve(h, h->len + h->name_len + 1);
	raw = (char *)h->buf;
	raw[raw_len] = '\0';
	name = raw + h->len;
	memcpy(name, raw, h->name_len);
	name[h->name_len] = '\0';
	v = h->colon + 1;
	while (v < raw_len && (raw[v] == ' ' || raw[v] == '\t'))
		v++;
	if (h->cb.header != NULL)
		h->cb.header(h->cb.arg, name, raw + v, raw, raw_len);
	h->nfields++;
	h->len = 0;
}

/* The first byte of a line, with no field pending. */
static const uint8_t *
hs_line(struct sl_hdrsplit *h, const uint8_t *p)
{
	if (*p == '\n') {
		hs_eoh(h, true);
		h->state = HS_BODY;
		return p + 1;
	}
	if (*p == ' ' || *p == '\t' || h->nfields >= h->max_headers)
		hs_to_body(h);
	else
		h->state = HS_NAME;
	return p;
}

/* After a field line: a continuation, or the end of the field. */
static const uint8_t *
hs_after_lf(struct sl_hdrsplit *h, const uint8_t *p)
{
	if (*p == ' ' || *p == '\t') {
		h->state = HS_VALUE;
		return p;
	}
	hs_emit(h);
	return hs_line(h, p);
}

/* RFC 5322 3.6.8 ftext: printable US-ASCII but the colon. */
static bool
hs_is_ftext(uint8_t c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static const uint8_t *
hs_name(struct sl_hdrsplit *h, const uint8_t *p, const uint8_t *end)
{
	const uint8_t *q;

	for (q = p; q < end && hs_is_ftext(*q); q++)
		continue;
	if (!hs_take(h, p, (size_t)(q - p))) {
		hs_to_body(h);
		return p;
	}
	if (q == end)
		return q;
	if (h->len == 0 || (*q != ':' && *q != ' ' && *q != '\t')) {
		hs_to_body(h);
		return q;
	}
	h->name_len = h->len;
	h->state = HS_WSP;
	return q;
}

/* Between the name and the colon: SP/HT (obs-optional) or the colon. */
static const uint8_t *
hs_wsp(struct sl_hdrsplit *h, const uint8_t *p)
{
	if ((*p != ':' && *p != ' ' && *p != '\t') || !hs_take(h, p, 1)) {
		hs_to_body(h);
		return p;
	}
	if (*p == ':') {
		h->colon = h->len - 1;
		h->state = HS_VALUE;
	}
	return p + 1;
}

/* The rest of a field line, up to and including its LF. */
static const uint8_t *
hs_value(struct sl_hdrsplit *h, const uint8_t *p, const uint8_t *end)
{
	const uint8_t *lf, *stop;
	size_t n;

	lf = memchr(p, '\n', (size_t)(end - p));
	stop = lf != NULL ? lf : end;
	n = (size_t)(stop - p);
	if (memchr(p, '\0', n) != NULL || !hs_take(h, p, n)) {
		hs_to_body(h);
		return p;
	}
	if (lf == NULL)
		return end;
	hs_append(h, lf, 1);
	h->state = HS_LF;
	return lf + 1;
}

static const uint8_t *
hs_step(struct sl_hdrsplit *h, const uint8_t *p, const uint8_t *end)
{
	switch (h->state) {
	case HS_START:
		return hs_line(h, p);
	case HS_NAME:
		return hs_name(h, p, end);
	case HS_WSP:
		return hs_wsp(h, p);
	case HS_VALUE:
		return hs_value(h, p, end);
	case HS_LF:
		return hs_after_lf(h, p);
	case HS_BODY:
	case HS_DONE:
		break;
	}
	return p;
}

void
sl_hdrsplit_feed(struct sl_hdrsplit *h, const uint8_t *p, size_t n)
{
	const uint8_t *end;

	if (n == 0 || h->state == HS_DONE)
		return;
	end = p + n;
	while (p < end && h->state != HS_BODY)
		p = hs_step(h, p, end);
	hs_body(h, p, (size_t)(end - p));
}

void
sl_hdrsplit_finish(struct sl_hdrsplit *h)
{
	switch (h->state) {
	case HS_START:
		hs_eoh(h, false);
		break;
	case HS_LF:
		hs_emit(h);
		hs_eoh(h, false);
		break;
	case HS_NAME:
	case HS_WSP:
	case HS_VALUE:
		/* No final LF: not a complete field (see hdrsplit.h). */
		hs_to_body(h);
		break;
	case HS_BODY:
	case HS_DONE:
		break;
	}
	h->state = HS_DONE;
}
