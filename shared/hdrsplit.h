/*
 * hdrsplit.h - splits a message (LF line ends, from the msgreader) into
 * RFC 5322 header fields and the body, resumable at any byte.
 *
 * A header field is "name: value" with continuation lines starting with
 * SP or HT; SP/HT between the name and the colon is allowed (RFC 5322 4.5
 * obs-optional, which MUAs accept: refusing it would let a "From :" field
 * hide from the plugins).  The header section ends at the first empty line
 * (which is consumed and reported as had_blank) or at the first field that
 * cannot be a header field: no colon, an empty name or one with bytes
 * outside 33..126, a NUL byte anywhere in the field, more than max_header
 * bytes (inner LFs count, the final one not), the field after max_headers
 * fields, a continuation line with no field before it, or a field cut
 * short by the end of the message before its final LF.  From that field's
 * first line on everything is body, so no byte is lost:
 *
 *	for each header: raw + "\n", then (had_blank ? "\n" : ""), then body
 *
 * is the input, byte for byte.  A message that ends inside the header
 * section (no body) is flushed by sl_hdrsplit_finish().
 */
#ifndef SL_HDRSPLIT_H
#define SL_HDRSPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_hdrsplit_cb {
	/*
	 * One header field.  name is NUL-terminated, without the colon;
	 * value is what follows the colon with leading SP/HT removed and no
	 * final LF (inner LFs of folded lines kept); raw is the whole field
	 * as received without the final LF (raw_len bytes, NUL-terminated).
	 * All three are borrowed for the call.
	 */
	void (*header)(void *arg, const char *name, const char *value,
	    const char *raw, size_t raw_len);
	/* End of header section; had_blank: an empty line separated it. */
	void (*eoh)(void *arg, bool had_blank);
	/* Body bytes, in pieces (never empty), after eoh. */
	void (*body)(void *arg, const uint8_t *p, size_t n);
	void *arg;
};

struct sl_hdrsplit_limits {
	size_t max_header;  /* bytes in one field, folded; 0 = 64 KiB */
	size_t max_headers; /* fields; 0 = 1000 */
};

struct sl_hdrsplit;

/* lim may be NULL (defaults); *cb is copied, any callback may be NULL. */
struct sl_hdrsplit *sl_hdrsplit_new(const struct sl_hdrsplit_limits *lim,
    const struct sl_hdrsplit_cb *cb);
void sl_hdrsplit_free(struct sl_hdrsplit **hp);
void sl_hdrsplit_reset(struct sl_hdrsplit *h);
void sl_hdrsplit_feed(struct sl_hdrsplit *h, const uint8_t *p, size_t n);
/*
 * End of message: emits a pending header and eoh if not done yet (eoh
 * comes exactly once per message, even for an empty one).  Input fed
 * after it is ignored until reset.
 */
void sl_hdrsplit_finish(struct sl_hdrsplit *h);

#endif
