/*
 * fuzz_msgreader.c - libFuzzer harness: msgreader, then hdrsplit.
 *
 * The first byte picks the mode (DATA or BDAT), the bare CR/LF policy,
 * small or default limits and a piece size; the rest is the wire input.
 * Checks: feeding whole and in pieces gives the same output, flags and
 * end; in dot mode the output has no CR (normalise) and the end follows
 * CRLF.CRLF; hdrsplit, fed whole and byte by byte, puts the output back
 * together byte for byte (headers' raw + LF, blank line, body).
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -Ishared \
 *	    t/fuzz/fuzz_msgreader.c shared/msgreader.c shared/hdrsplit.c \
 *	    shared/xmalloc.c shared/log.c -o fuzz_msgreader
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"
#include "hdrsplit.h"
#include "msgreader.h"

#define CHECK(e)                                                               \
	do {                                                                   \
		if (!(e))                                                      \
			abort();                                               \
	} while (0)

struct buf {
	uint8_t *p;
	size_t len, cap;
};

struct mr_run {
	struct buf out;
	unsigned int flags;
	uint64_t size;
	size_t consumed;
	bool done;
};

struct hs_run {
	struct buf re; /* the message put back together */
	int neoh;
	size_t nhdrs;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (n > b->cap - b->len) {
		b->cap = 2 * (b->len + n);
		b->p = sl_xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
mr_out(void *arg, const uint8_t *p, size_t n)
{
	CHECK(n > 0);
	buf_add(arg, p, n);
}

static void
hs_header(void *arg, const char *name, const char *value, const char *raw,
    size_t raw_len)
{
	struct hs_run *h = arg;

	CHECK(h->neoh == 0);
	CHECK(strlen(raw) == raw_len && strlen(name) > 0);
	CHECK(value >= raw && value <= raw + raw_len);
	CHECK(memcmp(raw, name, strlen(name)) == 0);
	buf_add(&h->re, raw, raw_len);
	buf_add(&h->re, "\n", 1);
	h->nhdrs++;
}

static void
hs_eoh(void *arg, bool had_blank)
{
	struct hs_run *h = arg;

	CHECK(h->neoh++ == 0);
	if (had_blank)
		buf_add(&h->re, "\n", 1);
}

static void
hs_body(void *arg, const uint8_t *p, size_t n)
{
	struct hs_run *h = arg;

	CHECK(h->neoh == 1 && n > 0);
	buf_add(&h->re, p, n);
}

static void
run_msgreader(uint8_t opt, const uint8_t *in, size_t len, size_t step,
    struct mr_run *res)
{
	struct sl_msgreader_limits lim = { 0 };
	struct sl_msgreader *r;
	size_t off, n, used;

	lim.normalise = (opt & 2) != 0;
	if ((opt & 4) != 0) {
		lim.max_line = 1 + (opt >> 6);
		lim.max_size = 1 + (len >> 1);
	}
	memset(res, 0, sizeof(*res));
	r = sl_msgreader_new(&lim, mr_out, &res->out);
	sl_msgreader_reset(r, (opt & 1) == 0);
	for (off = 0; off < len && !res->done; off += n) {
		n = len - off < step ? len - off : step;
		used = sl_msgreader_feed(r, in + off, n, &res->done);
		CHECK(used == n || (res->done && used < n));
		res->consumed += used;
	}
	sl_msgreader_finish(r);
	res->flags = sl_msgreader_flags(r);
	res->size = sl_msgreader_size(r);
	sl_msgreader_free(&r);
}

static void
run_hdrsplit(const struct buf *msg, size_t step)
{
	struct sl_hdrsplit_limits lim = { .max_header = 64, .max_headers = 8 };
	struct sl_hdrsplit_cb cb = { hs_header, hs_eoh, hs_body, NULL };
	struct sl_hdrsplit *h;
	struct hs_run res;
	size_t off, n;

	memset(&res, 0, sizeof(res));
	cb.arg = &res;
	h = sl_hdrsplit_new(step == 1 ? &lim : NULL, &cb);
	for (off = 0; off < msg->len; off += n) {
		n = msg->len - off < step ? msg->len - off : step;
		sl_hdrsplit_feed(h, msg->p + off, n);
	}
	sl_hdrsplit_finish(h);
	sl_hdrsplit_free(&h);
	CHECK(res.neoh == 1);
	CHECK(res.re.len == msg->len);
	CHECK(msg->len == 0 || memcmp(res.re.p, msg->p, msg->len) == 0);
	free(res.re.p);
}

static void
check_same(const struct mr_run *a, const struct mr_run *b)
{
	CHECK(a->out.len == b->out.len);
	CHECK(a->out.len == 0 || memcmp(a->out.p, b->out.p, a->out.len) == 0);
	CHECK(a->flags == b->flags && a->size == b->size);
	CHECK(a->consumed == b->consumed && a->done == b->done);
}

/* In dot mode the end comes right after CRLF.CRLF (or .CRLF at first). */
static void
check_end(const uint8_t *in, const struct mr_run *a)
{
	size_t n = a->consumed;

	if (!a->done)
		return;
	CHECK(n >= 3 && memcmp(in + n - 3, ".\r\n", 3) == 0);
	CHECK(n == 3 || (n >= 5 && memcmp(in + n - 5, "\r\n", 2) == 0));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mr_run whole, split;
	size_t step;
	uint8_t opt;

	if (size == 0)
		return 0;
	opt = data[0];
	data++;
	size--;
	step = 1 + ((opt >> 3) & 7) * 3;
	run_msgreader(opt, data, size, size == 0 ? 1 : size, &whole);
	run_msgreader(opt, data, size, step, &split);
	check_same(&whole, &split);
	if ((opt & 1) == 0)
		check_end(data, &whole);
	if ((opt & 2) != 0 && whole.out.len > 0)
		CHECK(memchr(whole.out.p, '\r', whole.out.len) == NULL);
	run_hdrsplit(&whole.out, SIZE_MAX);
	run_hdrsplit(&whole.out, 1);
	free(whole.out.p);
	free(split.out.p);
	return 0;
}
