/*
 * milter.c - the milter protocol codec (milter.h): framing, one bounded
 * cursor for every field, the decoding of each SMFIC_* and SMFIR_* packet,
 * the put functions that build packets, option negotiation for both roles
 * and the filter side's macro store.  Called by sluice-milterd and by the
 * MTA side (milter plugin, sluice-milter-client).
 *
 * No I/O and no logging: errors are static strings for the caller to log.
 * Whatever a put function emits, the matching decode function accepts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"
#include "milter.h"

#define HDR_LEN 5          /* uint32 length and the command byte */
#define MAX_REPLY_LINES 32 /* smfi_setmlreply's limit */
#define NSLOTS 7

/* --- buffers ------------------------------------------------------------ */

void
sl_milter_buf_free(struct sl_milter_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

void
sl_milter_buf_consume(struct sl_milter_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

static size_t
buf_max(const struct sl_milter_buf *b)
{
	return b->max_data == 0 ? SL_MILTER_SEND_MAX : b->max_data;
}

/* Makes room for n more bytes; -1 if the size would overflow. */
static int
buf_reserve(struct sl_milter_buf *b, size_t n)
{
	size_t want, alloc;

	if (n > SIZE_MAX - b->len)
		return -1;
	want = b->len + n;
	if (want <= b->alloc)
		return 0;
	alloc = b->alloc < 256 ? 256 : b->alloc;
	while (alloc < want)
		alloc = alloc > SIZE_MAX / 2 ? want : alloc * 2;
	b->data = sl_xrealloc(b->data, alloc);
	b->alloc = alloc;
	return 0;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Appends the header of a packet with dlen data bytes and returns where the
 * data goes (the caller fills all of it), or NULL, appending nothing, if
 * dlen is over the buffer's limit.
 */
static uint8_t *
buf_packet(struct sl_milter_buf *b, uint8_t code, size_t dlen)
{
	uint8_t *p;

	if (dlen > buf_max(b) || dlen > UINT32_MAX - 1)
		return NULL;
	if (buf_reserve(b, HDR_LEN + dlen) == -1)
		return NULL;
	p = b->data + b->len;
	put_be32(p, (uint32_t)(dlen + 1));
	p[4] = code;
	b->len += HDR_LEN + dlen;
	return p + HDR_LEN;
}

/* Copies s with its NUL to p; returns the byte after it. */
static uint8_t *
copy_str(uint8_t *p, const char *s)
{
	size_t n;

	n = strlen(s) + 1;
	memcpy(p, s, n);
	return p + n;
}

/* Adds n to *total unless the sum would exceed max; -1 then. */
static int
add_len(size_t *total, size_t n, size_t max)
{
	if (n > max || *total > max - n)
		return -1;
	*total += n;
	return 0;
}

/* --- framing ------------------------------------------------------------ */

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int
sl_milter_frame(const uint8_t *in, size_t len, size_t max_data,
    struct sl_milter_packet *pkt, size_t *used_r, const char **error_r)
{
	uint32_t declared;

	*used_r = 0;
	if (max_data == 0)
		max_data = SL_MILTER_RECV_MAX;
	if (len < 4)
		return 0;
	/* Checked before waiting for the data: nothing is sized from it. */
	declared = get_be32(in);
	if (declared == 0) {
		*error_r = "packet length 0";
		return -1;
	}
	if ((size_t)declared - 1 > max_data) {
		*error_r = "packet too large";
		return -1;
	}
	if (len - 4 < declared)
		return 0;
	pkt->cmd = in[4];
	pkt->data = in + HDR_LEN;
	pkt->len = (size_t)declared - 1;
	*used_r = 4 + (size_t)declared;
	return 1;
}

/* --- bounded cursor ----------------------------------------------------- */

void
sl_cursor_init(struct sl_cursor *c, const uint8_t *p, size_t len)
{
	static const uint8_t empty[1];

	if (p == NULL || len == 0) {
		c->p = c->end = empty;
		return;
	}
	c->p = p;
	c->end = p + len;
}

size_t
sl_cursor_left(const struct sl_cursor *c)
{
	return (size_t)(c->end - c->p);
}

bool
sl_cursor_at_end(const struct sl_cursor *c)
{
	return c->p == c->end;
}

int
sl_cursor_u8(struct sl_cursor *c, uint8_t *v_r)
{
	if (sl_cursor_left(c) < 1)
		return -1;
	*v_r = *c->p++;
	return 0;
}

int
sl_cursor_u16(struct sl_cursor *c, uint16_t *v_r)
{
	if (sl_cursor_left(c) < 2)
		return -1;
	*v_r = (uint16_t)((unsigned int)c->p[0] << 8 | c->p[1]);
	c->p += 2;
	return 0;
}

int
sl_cursor_u32(struct sl_cursor *c, uint32_t *v_r)
{
	if (sl_cursor_left(c) < 4)
		return -1;
	*v_r = get_be32(c->p);
	c->p += 4;
	return 0;
}

int
sl_cursor_str(struct sl_cursor *c, const char **s_r)
{
	const uint8_t *nul;

	nul = memchr(c->p, '\0', sl_cursor_left(c));
	if (nul == NULL)
		return -1;
	*s_r = (const char *)c->p;
	c->p = nul + 1;
	return 0;
}

/* The cursor calls with the error strings the decoders report. */
static int
get_u8(struct sl_cursor *c, uint8_t *v_r, const char **error_r)
{
	if (sl_cursor_u8(c, v_r) == -1) {
		*error_r = "truncated packet";
		return -1;
	}
	return 0;
}

static int
get_u16(struct sl_cursor *c, uint16_t *v_r, const char **error_r)
{
	if (sl_cursor_u16(c, v_r) == -1) {
		*error_r = "truncated packet";
		return -1;
	}
	return 0;
}

static int
get_u32(struct sl_cursor *c, uint32_t *v_r, const char **error_r)
{
	if (sl_cursor_u32(c, v_r) == -1) {
		*error_r = "truncated packet";
		return -1;
	}
	return 0;
}

static int
get_str(struct sl_cursor *c, const char **s_r, const char **error_r)
{
	if (sl_cursor_str(c, s_r) == -1) {
		*error_r = "string without NUL";
		return -1;
	}
	return 0;
}

/* A string that may not be empty (addresses, header names, reasons). */
static int
get_word(struct sl_cursor *c, const char **s_r, const char *what,
    const char **error_r)
{
	if (get_str(c, s_r, error_r) == -1)
		return -1;
	if (**s_r == '\0') {
		*error_r = what;
		return -1;
	}
	return 0;
}

/* Takes the rest of the packet as raw bytes. */
static void
get_rest(struct sl_cursor *c, const uint8_t **data_r, size_t *len_r)
{
	*len_r = sl_cursor_left(c);
	*data_r = *len_r == 0 ? NULL : c->p;
	c->p = c->end;
}

/* --- decoding ----------------------------------------------------------- */

static int
decode_optneg(struct sl_cursor *c, struct sl_milter_msg *m,
    const char **error_r)
{
	if (get_u32(c, &m->version, error_r) == -1 ||
	    get_u32(c, &m->actions, error_r) == -1 ||
	    get_u32(c, &m->protocol, error_r) == -1)
		return -1;
	return 0;
}

/*
 * The macro-list tail of an 'O' answer: { uint32 stage, list\0 }*.  A
 * stage of SL_SMFIM_MAX or more, or one given twice, is an error rather
 * than something to skip or overwrite: libmilter never sends either, and
 * an MTA that used the wrong list would send the filter macros it did not
 * ask for (10.3 item 1: a tail with an unknown stage -> failure policy).
 * An empty list is valid ("send no macros at this stage").
 */
static int
decode_symlist(struct sl_cursor *c, struct sl_milter_msg *m,
    const char **error_r)
{
	uint32_t stage;
	const char *list;

	while (!sl_cursor_at_end(c)) {
		if (get_u32(c, &stage, error_r) == -1 ||
		    get_str(c, &list, error_r) == -1)
			return -1;
		if (stage >= SL_SMFIM_MAX) {
			*error_r = "macro list for an unknown stage";
			return -1;
		}
		if (m->symlist[stage] != NULL) {
			*error_r = "two macro lists for one stage";
			return -1;
		}
		m->symlist[stage] = list;
	}
	return 0;
}

/* 'D': the stage byte, then an even number of strings (none is fine). */
static int
decode_macro(struct sl_cursor *c, struct sl_milter_msg *m, const char **error_r)
{
	const char *s;
	size_t n;

	if (get_u8(c, &m->stage, error_r) == -1)
		return -1;
	m->macros = sl_cursor_left(c) == 0 ? NULL : c->p;
	m->nmacros_bytes = sl_cursor_left(c);
	for (n = 0; !sl_cursor_at_end(c); n++)
		if (get_str(c, &s, error_r) == -1)
			return -1;
	if (n % 2 != 0) {
		*error_r = "macro name without a value";
		return -1;
	}
	return 0;
}

/* 'C': host\0 family, and unless family is 'U': uint16 port, addr\0. */
static int
decode_connect(struct sl_cursor *c, struct sl_milter_msg *m,
    const char **error_r)
{
	if (get_str(c, &m->host, error_r) == -1 ||
	    get_u8(c, &m->family, error_r) == -1)
		return -1;
	switch (m->family) {
	case 'U':
		return 0;
	case '4':
	case '6':
	case 'L':
		/* The address stays text; the session layer parses it. */
		if (get_u16(c, &m->port, error_r) == -1 ||
		    get_str(c, &m->addr, error_r) == -1)
			return -1;
		return 0;
	default:
		*error_r = "unknown address family";
		return -1;
	}
}

/* 'M' 'R': one to SL_MILTER_MAX_ARGS strings. */
static int
decode_argv(struct sl_cursor *c, struct sl_milter_msg *m, const char **error_r)
{
	while (!sl_cursor_at_end(c)) {
		if (m->argc == SL_MILTER_MAX_ARGS) {
			*error_r = "too many arguments";
			return -1;
		}
		if (get_str(c, &m->argv[m->argc], error_r) == -1)
			return -1;
		m->argc++;
	}
	if (m->argc == 0) {
		*error_r = "no address";
		return -1;
	}
	return 0;
}

/*
 * 'L' and 'h': name\0 value\0.  The name may not be empty (no MTA sends a
 * header without a name, and Postfix calls an empty one from a filter a
 * configuration error); the value may (6.2).
 */
static int
decode_header(struct sl_cursor *c, struct sl_milter_msg *m,
    const char **error_r)
{
	if (get_word(c, &m->name, "empty header name", error_r) == -1 ||
	    get_str(c, &m->value, error_r) == -1)
		return -1;
	return 0;
}

static int
decode_command_fields(struct sl_cursor *c, struct sl_milter_msg *m,
    const char **error_r)
{
	switch (m->code) {
	case SL_SMFIC_OPTNEG:
		return decode_optneg(c, m, error_r);
	case SL_SMFIC_MACRO:
		return decode_macro(c, m, error_r);
	case SL_SMFIC_CONNECT:
		return decode_connect(c, m, error_r);
	case SL_SMFIC_HELO:
	case SL_SMFIC_UNKNOWN:
		return get_str(c, &m->str, error_r);
	case SL_SMFIC_MAIL:
	case SL_SMFIC_RCPT:
		return decode_argv(c, m, error_r);
	case SL_SMFIC_HEADER:
		return decode_header(c, m, error_r);
	case SL_SMFIC_BODY:
	case SL_SMFIC_BODYEOB:
		/*
		 * 'B' of any size, empty included: an MTA sends 1 ... 65535
		 * bytes, but an empty chunk is harmless and libmilter takes
		 * it.  Both MTAs send 'E' without data; libmilter hands data
		 * found there to xxfi_body first, so we give it to the caller
		 * as a last chunk (doc 2, 5.8 item 6).
		 */
		get_rest(c, &m->data, &m->len);
		return 0;
	case SL_SMFIC_ABORT:
	case SL_SMFIC_QUIT:
	case SL_SMFIC_QUIT_NC:
	case SL_SMFIC_EOH:
	case SL_SMFIC_DATA:
		if (!sl_cursor_at_end(c)) {
			*error_r = "data in a command that takes none";
			return -1;
		}
		return 0;
	default:
		*error_r = "unknown command";
		return -1;
	}
}

/* One packet through one direction's field table; no byte may be left. */
static int
decode(const struct sl_milter_packet *pkt, struct sl_milter_msg *m,
    int (*fields)(struct sl_cursor *, struct sl_milter_msg *, const char **),
    const char **error_r)
{
	struct sl_cursor c;

	memset(m, 0, sizeof(*m));
	m->code = pkt->cmd;
	sl_cursor_init(&c, pkt->data, pkt->len);
	if (fields(&c, m, error_r) == -1)
		return -1;
	if (!sl_cursor_at_end(&c)) {
		*error_r = "extra bytes after the last field";
		return -1;
	}
	return 0;
}

int
sl_milter_decode_command(const struct sl_milter_packet *pkt,
    struct sl_milter_msg *m, const char **error_r)
{
	return decode(pkt, m, decode_command_fields, error_r);
}

static int
decode_reply_fields(struct sl_cursor *c, struct sl_milter_msg *m,
    const char **error_r)
{
	switch (m->code) {
	case SL_SMFIR_OPTNEG:
		if (decode_optneg(c, m, error_r) == -1)
			return -1;
		return decode_symlist(c, m, error_r);
	case SL_SMFIR_REPLYCODE:
		if (get_str(c, &m->str, error_r) == -1)
			return -1;
		if (!sl_cursor_at_end(c)) {
			*error_r = "reply text with an embedded NUL";
			return -1;
		}
		return sl_milter_check_reply(m->str, error_r);
	case SL_SMFIR_ADDHEADER:
		return decode_header(c, m, error_r);
	case SL_SMFIR_INSHEADER:
	case SL_SMFIR_CHGHEADER:
		if (get_u32(c, &m->index, error_r) == -1)
			return -1;
		return decode_header(c, m, error_r);
	case SL_SMFIR_CHGFROM:
	case SL_SMFIR_ADDRCPT_PAR:
		if (get_word(c, &m->str, "empty address", error_r) == -1)
			return -1;
		if (!sl_cursor_at_end(c) && get_str(c, &m->args, error_r) == -1)
			return -1;
		return 0;
	case SL_SMFIR_ADDRCPT:
	case SL_SMFIR_DELRCPT:
		return get_word(c, &m->str, "empty address", error_r);
	case SL_SMFIR_QUARANTINE:
		/* smfi_quarantine() refuses an empty reason too. */
		return get_word(c, &m->str, "empty quarantine reason", error_r);
	case SL_SMFIR_REPLBODY:
		/* May be empty: one empty 'b' replaces the body by nothing. */
		get_rest(c, &m->data, &m->len);
		return 0;
	case SL_SMFIR_ACCEPT:
	case SL_SMFIR_CONTINUE:
	case SL_SMFIR_DISCARD:
	case SL_SMFIR_PROGRESS:
	case SL_SMFIR_REJECT:
	case SL_SMFIR_SKIP:
	case SL_SMFIR_TEMPFAIL:
	case SL_SMFIR_SHUTDOWN:
		if (!sl_cursor_at_end(c)) {
			*error_r = "data in a reply that takes none";
			return -1;
		}
		return 0;
	default:
		/* Including 'f' (CONN_FAIL) and 'l' (SETSYMLIST): see doc 3. */
		*error_r = "unknown reply";
		return -1;
	}
}

int
sl_milter_decode_reply(const struct sl_milter_packet *pkt,
    struct sl_milter_msg *m, const char **error_r)
{
	return decode(pkt, m, decode_reply_fields, error_r);
}

int
sl_milter_macro_next(const struct sl_milter_msg *m, size_t *pos,
    const char **name_r, const char **value_r)
{
	struct sl_cursor c;

	if (m->macros == NULL || *pos >= m->nmacros_bytes)
		return 0;
	sl_cursor_init(&c, m->macros + *pos, m->nmacros_bytes - *pos);
	if (sl_cursor_str(&c, name_r) == -1 || sl_cursor_str(&c, value_r) == -1)
		return 0;
	*pos = (size_t)(c.p - m->macros);
	return 1;
}

/* --- names -------------------------------------------------------------- */

const char *
sl_milter_command_name(uint8_t code)
{
	switch (code) {
	case SL_SMFIC_ABORT:
		return "ABORT";
	case SL_SMFIC_BODY:
		return "BODY";
	case SL_SMFIC_CONNECT:
		return "CONNECT";
	case SL_SMFIC_MACRO:
		return "MACRO";
	case SL_SMFIC_BODYEOB:
		return "BODYEOB";
	case SL_SMFIC_HELO:
		return "HELO";
	case SL_SMFIC_QUIT_NC:
		return "QUIT_NC";
	case SL_SMFIC_HEADER:
		return "HEADER";
	case SL_SMFIC_MAIL:
		return "MAIL";
	case SL_SMFIC_EOH:
		return "EOH";
	case SL_SMFIC_OPTNEG:
		return "OPTNEG";
	case SL_SMFIC_QUIT:
		return "QUIT";
	case SL_SMFIC_RCPT:
		return "RCPT";
	case SL_SMFIC_DATA:
		return "DATA";
	case SL_SMFIC_UNKNOWN:
		return "UNKNOWN";
	default:
		return "?";
	}
}

const char *
sl_milter_reply_name(uint8_t code)
{
	switch (code) {
	case SL_SMFIR_ADDRCPT:
		return "ADDRCPT";
	case SL_SMFIR_DELRCPT:
		return "DELRCPT";
	case SL_SMFIR_ADDRCPT_PAR:
		return "ADDRCPT_PAR";
	case SL_SMFIR_SHUTDOWN:
		return "SHUTDOWN";
	case SL_SMFIR_ACCEPT:
		return "ACCEPT";
	case SL_SMFIR_REPLBODY:
		return "REPLBODY";
	case SL_SMFIR_CONTINUE:
		return "CONTINUE";
	case SL_SMFIR_DISCARD:
		return "DISCARD";
	case SL_SMFIR_CHGFROM:
		return "CHGFROM";
	case SL_SMFIR_CONN_FAIL:
		return "CONN_FAIL";
	case SL_SMFIR_ADDHEADER:
		return "ADDHEADER";
	case SL_SMFIR_INSHEADER:
		return "INSHEADER";
	case SL_SMFIR_SETSYMLIST:
		return "SETSYMLIST";
	case SL_SMFIR_CHGHEADER:
		return "CHGHEADER";
	case SL_SMFIR_PROGRESS:
		return "PROGRESS";
	case SL_SMFIR_QUARANTINE:
		return "QUARANTINE";
	case SL_SMFIR_REJECT:
		return "REJECT";
	case SL_SMFIR_SKIP:
		return "SKIP";
	case SL_SMFIR_TEMPFAIL:
		return "TEMPFAIL";
	case SL_SMFIR_REPLYCODE:
		return "REPLYCODE";
	case SL_SMFIR_OPTNEG:
		return "OPTNEG";
	default:
		return "?";
	}
}

/* --- reply text ----------------------------------------------------------- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t
digits(const char *p, size_t len)
{
	size_t n;

	for (n = 0; n < len && is_digit(p[n]); n++)
		;
	return n;
}

/*
 * Length of the enhanced status code "c.sss.ddd" (RFC 3463: 1-3 digits in
 * the last two parts) at the start of p[0..len), or 0 if there is none.
 */
static size_t
enh_len(const char *p, size_t len)
{
	size_t i, n;

	if (len < 5 || !is_digit(p[0]) || p[1] != '.')
		return 0;
	i = 2;
	n = digits(p + i, len - i);
	if (n < 1 || n > 3)
		return 0;
	i += n;
	if (i >= len || p[i] != '.')
		return 0;
	i++;
	n = digits(p + i, len - i);
	if (n < 1 || n > 3)
		return 0;
	return i + n;
}

/*
 * One line of a reply: "4xx" or "5xx" (the same as on the first line), then
 * '-' if more lines follow, ' ' or nothing on the last; then optionally an
 * enhanced code of the same class.  Text starting with "d." is taken as an
 * enhanced code and must be a whole one, so "550 5.7.1000" and
 * "550 6.7.1" are refused rather than passed on as text.
 */
static int
check_line(const char *line, size_t len, const char *first, bool last,
    const char **error_r)
{
	const char *p;
	size_t n, rest;

	if (len < 3 || (line[0] != '4' && line[0] != '5') ||
	    !is_digit(line[1]) || !is_digit(line[2])) {
		*error_r = "reply line without a 4xx or 5xx code";
		return -1;
	}
	if (memcmp(line, first, 3) != 0) {
		*error_r = "reply lines with different codes";
		return -1;
	}
	if (len == 3) {
		if (!last) {
			*error_r = "reply line without '-' before the next";
			return -1;
		}
		return 0;
	}
	if (line[3] != (last ? ' ' : '-')) {
		*error_r = last ? "last reply line without ' ' after the code"
		                : "reply line without '-' before the next";
		return -1;
	}
	p = line + 4;
	rest = len - 4;
	if (rest < 2 || !is_digit(p[0]) || p[1] != '.')
		return 0;
	n = enh_len(p, rest);
	if (n == 0 || (n < rest && p[n] != ' ')) {
		*error_r = "malformed enhanced status code";
		return -1;
	}
	if (p[0] != line[0]) {
		*error_r = "enhanced status code of another class";
		return -1;
	}
	return 0;
}

/*
 * A lone '%' is not refused: the header's contract does not list it,
 * libmilter filters send it (smfi_setreply does not check), and Postfix
 * drops it; our MTA side un-doubles "%%" and drops a lone '%' likewise.
 */
int
sl_milter_check_reply(const char *text, const char **error_r)
{
	const char *p;
	size_t len, nlines;
	bool last;

	p = text;
	for (nlines = 1;; nlines++) {
		if (nlines > MAX_REPLY_LINES) {
			*error_r = "reply text of more than 32 lines";
			return -1;
		}
		len = strcspn(p, "\r\n");
		last = p[len] == '\0';
		if (!last && (p[len] != '\r' || p[len + 1] != '\n')) {
			*error_r = "bare CR or LF in reply text";
			return -1;
		}
		if (check_line(p, len, text, last, error_r) == -1)
			return -1;
		if (last)
			return 0;
		p += len + 2;
	}
}

/* --- encoding ----------------------------------------------------------- */

int
sl_milter_put(struct sl_milter_buf *b, uint8_t code, const void *data,
    size_t len)
{
	uint8_t *p;

	if (len > 0 && data == NULL)
		return -1;
	if ((p = buf_packet(b, code, len)) == NULL)
		return -1;
	if (len > 0)
		memcpy(p, data, len);
	return 0;
}

int
sl_milter_put_empty(struct sl_milter_buf *b, uint8_t code)
{
	return sl_milter_put(b, code, NULL, 0);
}

int
sl_milter_put_optneg(struct sl_milter_buf *b, uint32_t version,
    uint32_t actions, uint32_t protocol, const char *const *symlist)
{
	size_t i, total, max;
	uint8_t *p;

	max = buf_max(b);
	total = 12;
	if (total > max)
		return -1;
	for (i = 0; symlist != NULL && i < SL_SMFIM_MAX; i++)
		if (symlist[i] != NULL &&
		    (add_len(&total, 4, max) == -1 ||
		        add_len(&total, strlen(symlist[i]) + 1, max) == -1))
			return -1;
	if ((p = buf_packet(b, SL_SMFIR_OPTNEG, total)) == NULL)
		return -1;
	put_be32(p, version);
	put_be32(p + 4, actions);
	put_be32(p + 8, protocol);
	p += 12;
	for (i = 0; symlist != NULL && i < SL_SMFIM_MAX; i++) {
		if (symlist[i] == NULL)
			continue;
		put_be32(p, (uint32_t)i);
		p = copy_str(p + 4, symlist[i]);
	}
	return 0;
}

int
sl_milter_put_macros(struct sl_milter_buf *b, uint8_t stage,
    const char *const *names, const char *const *values, size_t n)
{
	size_t i, total, max;
	uint8_t *p;

	max = buf_max(b);
	total = 1;
	if (total > max)
		return -1;
	for (i = 0; i < n; i++) {
		if (names[i] == NULL || names[i][0] == '\0')
			return -1;
		if (values[i] == NULL)
			continue;
		if (add_len(&total, strlen(names[i]) + 1, max) == -1 ||
		    add_len(&total, strlen(values[i]) + 1, max) == -1)
			return -1;
	}
	if ((p = buf_packet(b, SL_SMFIC_MACRO, total)) == NULL)
		return -1;
	*p++ = stage;
	for (i = 0; i < n; i++) {
		if (values[i] == NULL)
			continue;
		p = copy_str(p, names[i]);
		p = copy_str(p, values[i]);
	}
	return 0;
}

int
sl_milter_put_connect(struct sl_milter_buf *b, const char *host, uint8_t family,
    uint16_t port, const char *addr)
{
	size_t total, max;
	uint8_t *p;

	if (host == NULL)
		return -1;
	switch (family) {
	case 'U':
		addr = NULL;
		break;
	case '4':
	case '6':
	case 'L':
		if (addr == NULL)
			return -1;
		break;
	default:
		return -1;
	}
	max = buf_max(b);
	total = 0;
	if (add_len(&total, strlen(host) + 1, max) == -1 ||
	    add_len(&total, 1, max) == -1 ||
	    (addr != NULL &&
	        (add_len(&total, 2, max) == -1 ||
	            add_len(&total, strlen(addr) + 1, max) == -1)))
		return -1;
	if ((p = buf_packet(b, SL_SMFIC_CONNECT, total)) == NULL)
		return -1;
	p = copy_str(p, host);
	*p++ = family;
	if (addr != NULL) {
		*p++ = (uint8_t)(port >> 8);
		*p++ = (uint8_t)port;
		copy_str(p, addr);
	}
	return 0;
}

/*
 * Whether strs[0..n) is what a decoder accepts for code: the number of
 * strings, and the ones that may not be empty.
 */
static bool
strings_valid(uint8_t code, const char *const *strs, size_t n)
{
	size_t i, min, max;
	bool first_nonempty;

	first_nonempty = true;
	switch (code) {
	case SL_SMFIC_HELO:
	case SL_SMFIC_UNKNOWN:
		min = max = 1;
		first_nonempty = false;
		break;
	case SL_SMFIR_ADDRCPT:
	case SL_SMFIR_DELRCPT:
	case SL_SMFIR_QUARANTINE:
		min = max = 1;
		break;
	case SL_SMFIC_MAIL:
	case SL_SMFIC_RCPT:
		min = 1;
		max = SL_MILTER_MAX_ARGS;
		first_nonempty = false;
		break;
	case SL_SMFIC_HEADER:
	case SL_SMFIR_ADDHEADER:
		min = max = 2;
		break;
	case SL_SMFIR_CHGFROM:
	case SL_SMFIR_ADDRCPT_PAR:
		min = 1;
		max = 2;
		break;
	default:
		return false;
	}
	if (n < min || n > max)
		return false;
	for (i = 0; i < n; i++)
		if (strs[i] == NULL)
			return false;
	return !first_nonempty || strs[0][0] != '\0';
}

int
sl_milter_put_strings(struct sl_milter_buf *b, uint8_t code,
    const char *const *strs, size_t n)
{
	size_t i, total, max;
	uint8_t *p;

	if (!strings_valid(code, strs, n))
		return -1;
	max = buf_max(b);
	total = 0;
	for (i = 0; i < n; i++)
		if (add_len(&total, strlen(strs[i]) + 1, max) == -1)
			return -1;
	if ((p = buf_packet(b, code, total)) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		p = copy_str(p, strs[i]);
	return 0;
}

int
sl_milter_put_index(struct sl_milter_buf *b, uint8_t code, uint32_t index,
    const char *name, const char *value)
{
	size_t total, max;
	uint8_t *p;

	if ((code != SL_SMFIR_INSHEADER && code != SL_SMFIR_CHGHEADER) ||
	    name == NULL || name[0] == '\0' || value == NULL)
		return -1;
	max = buf_max(b);
	total = 4;
	if (total > max || add_len(&total, strlen(name) + 1, max) == -1 ||
	    add_len(&total, strlen(value) + 1, max) == -1)
		return -1;
	if ((p = buf_packet(b, code, total)) == NULL)
		return -1;
	put_be32(p, index);
	p = copy_str(p + 4, name);
	copy_str(p, value);
	return 0;
}

/*
 * An empty 'B' appends nothing (an empty body is 'N' then 'E', with no
 * chunk); an empty 'b' is one empty packet, which replaces the body with
 * nothing (doc 6.4).
 */
int
sl_milter_put_body(struct sl_milter_buf *b, uint8_t code, const uint8_t *data,
    size_t len)
{
	size_t chunk, n, nchunks;
	uint8_t *p;

	if (code != SL_SMFIC_BODY && code != SL_SMFIR_REPLBODY)
		return -1;
	if (len > 0 && data == NULL)
		return -1;
	if (len == 0)
		return code == SL_SMFIR_REPLBODY ? sl_milter_put_empty(b, code)
		                                 : 0;
	chunk = buf_max(b) < SL_MILTER_CHUNK ? buf_max(b) : SL_MILTER_CHUNK;
	nchunks = len / chunk + (len % chunk != 0);
	if (nchunks > (SIZE_MAX - len) / HDR_LEN ||
	    buf_reserve(b, nchunks * HDR_LEN + len) == -1)
		return -1;
	while (len > 0) {
		n = len < chunk ? len : chunk;
		p = buf_packet(b, code, n);
		memcpy(p, data, n);
		data += n;
		len -= n;
	}
	return 0;
}

/* Appends c to out at *o; doubles '%' and drops CR. */
static void
reply_char(char *out, size_t *o, char c)
{
	if (c == '\r')
		return;
	out[(*o)++] = c;
	if (c == '%')
		out[(*o)++] = '%';
}

int
sl_milter_put_reply(struct sl_milter_buf *b, int code, const char *enh,
    const char *text)
{
	const char *p, *lf, *end, *err;
	char codes[4], *out;
	size_t enhlen, textlen, nlines, size, o, i;
	int rc;

	if (code < 400 || code > 599)
		return -1;
	snprintf(codes, sizeof(codes), "%d", code);
	if (enh == NULL)
		enh = "";
	enhlen = strlen(enh);
	if (enhlen > 0 &&
	    (enh_len(enh, enhlen) != enhlen || enh[0] != codes[0]))
		return -1;
	if (text == NULL)
		text = "";
	textlen = strlen(text);
	/* Lines are separated by LF; a final LF does not start a line. */
	nlines = 1;
	for (p = text; (lf = strchr(p, '\n')) != NULL && lf[1] != '\0';
	     p = lf + 1)
		nlines++;
	if (nlines > MAX_REPLY_LINES || textlen > buf_max(b))
		return -1;
	/* Per line "CODE-ENH " and CRLF; every text byte at most twice. */
	size = nlines * (4 + enhlen + 1 + 2) + 2 * textlen + 1;
	out = sl_xmalloc(size);
	o = 0;
	p = text;
	for (i = 0; i < nlines; i++) {
		end = p + strcspn(p, "\n");
		memcpy(out + o, codes, 3);
		out[o + 3] = i + 1 < nlines ? '-' : ' ';
		o += 4;
		memcpy(out + o, enh, enhlen);
		o += enhlen;
		if (enhlen > 0 && end - p > (ptrdiff_t)strspn(p, "\r"))
			out[o++] = ' ';
		for (; p < end; p++)
			reply_char(out, &o, *p);
		if (*p == '\n')
			p++;
		if (i + 1 < nlines) {
			out[o++] = '\r';
			out[o++] = '\n';
		}
	}
	out[o++] = '\0';
	/* The NUL goes out with the text (doc 6.6: strlen + 1 == len). */
	rc = -1;
	if (sl_milter_check_reply(out, &err) == 0)
		rc = sl_milter_put(b, SL_SMFIR_REPLYCODE, out, o);
	free(out);
	return rc;
}

/* --- option negotiation ------------------------------------------------ */

int
sl_milter_negotiate_filter(uint32_t offer_version, uint32_t offer_actions,
    uint32_t offer_proto, uint32_t want_actions, uint32_t want_proto,
    uint32_t *version_r, uint32_t *actions_r, uint32_t *proto_r,
    uint32_t *missing_r, const char **error_r)
{
	/* libmilter >= 8.14 closes on version 1 (doc 4.2). */
	if (offer_version < 2) {
		*error_r = "MTA offers protocol version below 2";
		return -1;
	}
	*version_r = offer_version < SL_MILTER_VERSION ? offer_version
	                                               : SL_MILTER_VERSION;
	/* An offer of 0 is an old MTA's way of saying "the v1 set". */
	if (offer_actions == 0)
		offer_actions = SL_SMFIF_V1_ACTS;
	if (offer_proto == 0)
		offer_proto = SL_SMFIP_V1_PROT;
	*actions_r = want_actions & offer_actions;
	*missing_r = want_actions & ~offer_actions;
	*proto_r = want_proto & offer_proto;
	return 0;
}

/*
 * A macro-list tail is taken whatever the answered actions say: asking for
 * lists without SMFIF_SETSYMLIST is the caller's matter (it may ignore the
 * lists), not a malformed answer.
 */
int
sl_milter_negotiate_mta(uint32_t offer_version, uint32_t offer_actions,
    uint32_t offer_proto, const struct sl_milter_msg *answer, uint32_t *proto_r,
    uint32_t *masked_r, const char **error_r)
{
	if (answer->code != SL_SMFIR_OPTNEG) {
		*error_r = "filter did not answer the option negotiation";
		return -1;
	}
	if (answer->version < 2 || answer->version > offer_version) {
		*error_r = "filter answers a protocol version not offered";
		return -1;
	}
	if ((answer->actions & ~offer_actions) != 0) {
		*error_r = "filter asks for actions not offered";
		return -1;
	}
	*masked_r = answer->protocol & ~offer_proto;
	*proto_r = answer->protocol & offer_proto;
	return 0;
}

/*
 * Only the events the SMFIM stages are named after.  Postfix also sends
 * the EOH list before each 'L' and the EOM list before each 'B'; a caller
 * that copies that maps those itself.
 */
int
sl_milter_stage_of(uint8_t cmd)
{
	switch (cmd) {
	case SL_SMFIC_CONNECT:
		return SL_SMFIM_CONNECT;
	case SL_SMFIC_HELO:
		return SL_SMFIM_HELO;
	case SL_SMFIC_MAIL:
		return SL_SMFIM_ENVFROM;
	case SL_SMFIC_RCPT:
		return SL_SMFIM_ENVRCPT;
	case SL_SMFIC_DATA:
		return SL_SMFIM_DATA;
	case SL_SMFIC_BODYEOB:
		return SL_SMFIM_EOM;
	case SL_SMFIC_EOH:
		return SL_SMFIM_EOH;
	default:
		return -1;
	}
}

static const struct sl_milter_event events[] = {
	{ SL_SMFIC_CONNECT, SL_SMFIP_NOCONNECT, SL_SMFIP_NR_CONN,
	    SL_SMFIM_CONNECT, 2 },
	{ SL_SMFIC_HELO, SL_SMFIP_NOHELO, SL_SMFIP_NR_HELO, SL_SMFIM_HELO, 2 },
	{ SL_SMFIC_MAIL, SL_SMFIP_NOMAIL, SL_SMFIP_NR_MAIL, SL_SMFIM_ENVFROM,
	    2 },
	{ SL_SMFIC_RCPT, SL_SMFIP_NORCPT, SL_SMFIP_NR_RCPT, SL_SMFIM_ENVRCPT,
	    2 },
	{ SL_SMFIC_DATA, SL_SMFIP_NODATA, SL_SMFIP_NR_DATA, SL_SMFIM_DATA, 4 },
	{ SL_SMFIC_HEADER, SL_SMFIP_NOHDRS, SL_SMFIP_NR_HDR, SL_SMFIM_EOH, 2 },
	{ SL_SMFIC_EOH, SL_SMFIP_NOEOH, SL_SMFIP_NR_EOH, SL_SMFIM_EOH, 2 },
	{ SL_SMFIC_BODY, SL_SMFIP_NOBODY, SL_SMFIP_NR_BODY, SL_SMFIM_EOM, 2 },
	{ SL_SMFIC_BODYEOB, 0, 0, SL_SMFIM_EOM, 2 },
	{ SL_SMFIC_UNKNOWN, SL_SMFIP_NOUNKNOWN, SL_SMFIP_NR_UNKN, -1, 3 },
};

const struct sl_milter_event *
sl_milter_event_of(uint8_t cmd)
{
	size_t i;

	for (i = 0; i < sizeof(events) / sizeof(events[0]); i++)
		if (events[i].cmd == cmd)
			return &events[i];
	return NULL;
}

const char *const sl_milter_default_macros[SL_SMFIM_MAX][8] = {
	[SL_SMFIM_CONNECT] = { "j", "{daemon_name}", "{daemon_addr}", "v", "_",
	    "{client_addr}", NULL },
	[SL_SMFIM_HELO] = { "{tls_version}", "{cipher}", "{cipher_bits}",
	    "{cert_subject}", "{cert_issuer}", NULL },
	[SL_SMFIM_ENVFROM] = { "i", "{auth_type}", "{auth_authen}",
	    "{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}",
	    NULL },
	[SL_SMFIM_ENVRCPT] = { "i", "{rcpt_addr}", "{rcpt_host}",
	    "{rcpt_mailer}", NULL },
	[SL_SMFIM_DATA] = { "i", NULL },
	[SL_SMFIM_EOM] = { "i", NULL },
	[SL_SMFIM_EOH] = { "i", NULL },
};

/* --- macro store -------------------------------------------------------- */

/* Slot of a 'D' stage byte, in event order C H M R T N E; -1 for others. */
static int
macro_slot(uint8_t stage)
{
	static const char order[] = "CHMRTNE";
	const char *p;

	if (stage == '\0' || (p = strchr(order, stage)) == NULL)
		return -1;
	return (int)(p - order);
}

static void
slot_free(struct sl_milter_macros *mm, int i)
{
	free(mm->slot[i]);
	mm->slot[i] = NULL;
	mm->slot_len[i] = 0;
}

void
sl_milter_macros_store(struct sl_milter_macros *mm,
    const struct sl_milter_msg *m)
{
	int i;

	if (m->code != SL_SMFIC_MACRO || m->nmacros_bytes == 0)
		return;
	if ((i = macro_slot(m->stage)) == -1)
		return;
	slot_free(mm, i);
	mm->slot[i] = sl_xmalloc(m->nmacros_bytes);
	memcpy(mm->slot[i], m->macros, m->nmacros_bytes);
	mm->slot_len[i] = m->nmacros_bytes;
}

void
sl_milter_macros_event(struct sl_milter_macros *mm, uint8_t cmd)
{
	int i, from;

	switch (cmd) {
	case SL_SMFIC_CONNECT:
	case SL_SMFIC_HELO:
	case SL_SMFIC_MAIL:
	case SL_SMFIC_RCPT:
		from = macro_slot(cmd) + 1;
		break;
	case SL_SMFIC_QUIT:
	case SL_SMFIC_QUIT_NC:
	case SL_SMFIC_OPTNEG:
		from = 0;
		break;
	default:
		return;
	}
	for (i = from; i < NSLOTS; i++)
		slot_free(mm, i);
}

/*
 * Within a slot the first pair of a name wins, as smfi_getsymval() walks
 * it; a one-letter name also matches in braces and the other way round.
 */
const char *
sl_milter_macros_get(const struct sl_milter_macros *mm, const char *name)
{
	struct sl_cursor c;
	const char *n, *v;
	char alt[4];
	size_t len;
	int i;

	if (name == NULL)
		return NULL;
	len = strlen(name);
	alt[0] = '\0';
	if (len == 1) {
		alt[0] = '{';
		alt[1] = name[0];
		alt[2] = '}';
		alt[3] = '\0';
	} else if (len == 3 && name[0] == '{' && name[2] == '}') {
		alt[0] = name[1];
		alt[1] = '\0';
	}
	for (i = NSLOTS - 1; i >= 0; i--) {
		sl_cursor_init(&c, (const uint8_t *)mm->slot[i],
		    mm->slot_len[i]);
		while (sl_cursor_str(&c, &n) == 0 && sl_cursor_str(&c, &v) == 0)
			if (strcmp(n, name) == 0 ||
			    (alt[0] != '\0' && strcmp(n, alt) == 0))
				return v;
	}
	return NULL;
}

void
sl_milter_macros_clear(struct sl_milter_macros *mm)
{
	int i;

	for (i = 0; i < NSLOTS; i++)
		slot_free(mm, i);
}
