/*
 * milter.h - the milter protocol codec, for both roles: the filter side
 * (sluice-milterd) and the MTA side (sluice-milter-client, the milter host
 * plugin).  Reference: the team's milter-protocol.md, sections 1-6 and 8.
 *
 * The codec does no I/O.  A receiver appends what it read to a buffer and
 * calls sl_milter_frame() until it returns 0; each packet is then decoded
 * with sl_milter_decode(), which takes every field through one bounded
 * cursor and refuses leftover bytes.  Decoded strings point into the
 * packet's bytes (borrowed until the caller consumes the buffer).  A
 * sender appends packets to a struct sl_milter_buf with the sl_milter_put_*
 * functions, which refuse a packet whose data exceeds the buffer's limit.
 *
 * Lengths are unsigned; a declared length of 0, or of more than the
 * receiver's cap, is a protocol error found before anything is allocated.
 */
#ifndef SL_MILTER_H
#define SL_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- sizes ------------------------------------------------------------- */

#define SL_MILTER_CHUNK 65535      /* body chunk, REPLBODY split unit */
#define SL_MILTER_SEND_MAX 65535   /* default largest data part sent */
#define SL_MILTER_RECV_MAX 1048575 /* default cap on data received */
#define SL_MILTER_MAX_ARGS 64      /* argv entries in MAIL/RCPT */
#define SL_MILTER_VERSION 6        /* the version we speak */

/* --- commands (MTA -> filter) and replies (filter -> MTA) -------------- */

enum {
	SL_SMFIC_ABORT = 'A',
	SL_SMFIC_BODY = 'B',
	SL_SMFIC_CONNECT = 'C',
	SL_SMFIC_MACRO = 'D',
	SL_SMFIC_BODYEOB = 'E',
	SL_SMFIC_HELO = 'H',
	SL_SMFIC_QUIT_NC = 'K',
	SL_SMFIC_HEADER = 'L',
	SL_SMFIC_MAIL = 'M',
	SL_SMFIC_EOH = 'N',
	SL_SMFIC_OPTNEG = 'O',
	SL_SMFIC_QUIT = 'Q',
	SL_SMFIC_RCPT = 'R',
	SL_SMFIC_DATA = 'T',
	SL_SMFIC_UNKNOWN = 'U',

	SL_SMFIR_ADDRCPT = '+',
	SL_SMFIR_DELRCPT = '-',
	SL_SMFIR_ADDRCPT_PAR = '2',
	SL_SMFIR_SHUTDOWN = '4',
	SL_SMFIR_ACCEPT = 'a',
	SL_SMFIR_REPLBODY = 'b',
	SL_SMFIR_CONTINUE = 'c',
	SL_SMFIR_DISCARD = 'd',
	SL_SMFIR_CHGFROM = 'e',
	SL_SMFIR_CONN_FAIL = 'f',
	SL_SMFIR_ADDHEADER = 'h',
	SL_SMFIR_INSHEADER = 'i',
	SL_SMFIR_SETSYMLIST = 'l',
	SL_SMFIR_CHGHEADER = 'm',
	SL_SMFIR_PROGRESS = 'p',
	SL_SMFIR_QUARANTINE = 'q',
	SL_SMFIR_REJECT = 'r',
	SL_SMFIR_SKIP = 's',
	SL_SMFIR_TEMPFAIL = 't',
	SL_SMFIR_REPLYCODE = 'y',
	SL_SMFIR_OPTNEG = 'O',
};

/* Action flags (SMFIF_*). */
#define SL_SMFIF_ADDHDRS 0x001u
#define SL_SMFIF_CHGBODY 0x002u
#define SL_SMFIF_ADDRCPT 0x004u
#define SL_SMFIF_DELRCPT 0x008u
#define SL_SMFIF_CHGHDRS 0x010u
#define SL_SMFIF_QUARANTINE 0x020u
#define SL_SMFIF_CHGFROM 0x040u
#define SL_SMFIF_ADDRCPT_PAR 0x080u
#define SL_SMFIF_SETSYMLIST 0x100u
#define SL_SMFIF_V1_ACTS 0x00fu
#define SL_SMFIF_ALL 0x1ffu

/* Protocol flags (SMFIP_*). */
#define SL_SMFIP_NOCONNECT 0x00000001u
#define SL_SMFIP_NOHELO 0x00000002u
#define SL_SMFIP_NOMAIL 0x00000004u
#define SL_SMFIP_NORCPT 0x00000008u
#define SL_SMFIP_NOBODY 0x00000010u
#define SL_SMFIP_NOHDRS 0x00000020u
#define SL_SMFIP_NOEOH 0x00000040u
#define SL_SMFIP_NR_HDR 0x00000080u
#define SL_SMFIP_NOUNKNOWN 0x00000100u
#define SL_SMFIP_NODATA 0x00000200u
#define SL_SMFIP_SKIP 0x00000400u
#define SL_SMFIP_RCPT_REJ 0x00000800u
#define SL_SMFIP_NR_CONN 0x00001000u
#define SL_SMFIP_NR_HELO 0x00002000u
#define SL_SMFIP_NR_MAIL 0x00004000u
#define SL_SMFIP_NR_RCPT 0x00008000u
#define SL_SMFIP_NR_DATA 0x00010000u
#define SL_SMFIP_NR_UNKN 0x00020000u
#define SL_SMFIP_NR_EOH 0x00040000u
#define SL_SMFIP_NR_BODY 0x00080000u
#define SL_SMFIP_HDR_LEADSPC 0x00100000u
#define SL_SMFIP_MDS_256K 0x10000000u
#define SL_SMFIP_MDS_1M 0x20000000u
#define SL_SMFIP_V1_PROT 0x0000003fu
#define SL_SMFIP_ALL 0x001fffffu     /* SMFI_CURR_PROT */
#define SL_SMFIP_NR_MASK 0x000ff080u /* every NR_* bit */

/* Macro stages of the option-negotiation tail (SMFIM_*): wire numbers. */
enum sl_smfim {
	SL_SMFIM_CONNECT = 0,
	SL_SMFIM_HELO = 1,
	SL_SMFIM_ENVFROM = 2,
	SL_SMFIM_ENVRCPT = 3,
	SL_SMFIM_DATA = 4,
	SL_SMFIM_EOM = 5,
	SL_SMFIM_EOH = 6,
	SL_SMFIM_MAX = 7
};

/* --- buffers ------------------------------------------------------------ */

/* An output buffer; zero-initialise, set max_data (0 = SL_MILTER_SEND_MAX). */
struct sl_milter_buf {
	uint8_t *data;
	size_t len, alloc;
	size_t max_data; /* largest data part (len - 1) a put may emit */
};

void sl_milter_buf_free(struct sl_milter_buf *b); /* frees data, keeps max */
/* Drops the first n bytes (after they were written). */
void sl_milter_buf_consume(struct sl_milter_buf *b, size_t n);

/* --- framing ------------------------------------------------------------ */

struct sl_milter_packet {
	uint8_t cmd;
	const uint8_t *data; /* len bytes, borrowed from the input */
	size_t len;
};

/*
 * Looks for one complete packet at the start of in[0..len).  Returns 1 with
 * *pkt and *used_r (bytes the packet took, header included) set; 0 if more
 * input is needed (*used_r = 0); -1 on a framing error (declared length 0
 * or data longer than max_data; 0 = SL_MILTER_RECV_MAX), with *error_r set
 * to a static string.  Never reads past len.
 */
int sl_milter_frame(const uint8_t *in, size_t len, size_t max_data,
    struct sl_milter_packet *pkt, size_t *used_r, const char **error_r);

/* --- bounded cursor ----------------------------------------------------- */

struct sl_cursor {
	const uint8_t *p, *end;
};

void sl_cursor_init(struct sl_cursor *c, const uint8_t *p, size_t len);
int sl_cursor_u8(struct sl_cursor *c, uint8_t *v_r);
int sl_cursor_u16(struct sl_cursor *c, uint16_t *v_r); /* big-endian */
int sl_cursor_u32(struct sl_cursor *c, uint32_t *v_r); /* big-endian */
/* A NUL-terminated string inside the data; returns -1 if no NUL. */
int sl_cursor_str(struct sl_cursor *c, const char **s_r);
size_t sl_cursor_left(const struct sl_cursor *c);
bool sl_cursor_at_end(const struct sl_cursor *c);

/* --- decoding ----------------------------------------------------------- */

/*
 * One decoded packet.  Which fields are set depends on code (and on the
 * direction: decode_command for MTA -> filter, decode_reply for filter ->
 * MTA; SMFIC_OPTNEG and SMFIR_OPTNEG share 'O').
 *   'O'          version, actions, protocol, symlist[] (answer only: a
 *                macro list per SMFIM stage, NULL where none was given)
 *   'D'          stage, and the pairs: macros/nmacros_bytes (raw name\0value\0
 *                bytes, checked: an even number of strings)
 *   'C'          host, family ('4' '6' 'L' 'U'), port, addr (NULL for 'U')
 *   'H' 'U'      str
 *   'M' 'R'      argv/argc (argv[0] is the address as sent)
 *   'L'          name, value
 *   'B'          data/len (may hold NUL; 'E' with data also sets them)
 *   'h'          name, value
 *   'i' 'm'      index, name, value
 *   'e' '2'      str (address), args (NULL if absent)
 *   '+' '-' 'q'  str
 *   'y'          str (the reply text, checked with sl_milter_check_reply)
 *   'b'          data/len (may be empty)
 *   commands and replies without data: nothing (data is refused)
 */
struct sl_milter_msg {
	uint8_t code;
	uint32_t version, actions, protocol;
	const char *symlist[SL_SMFIM_MAX];
	uint8_t stage;
	const uint8_t *macros;
	size_t nmacros_bytes;
	const char *host;
	uint8_t family;
	uint16_t port;
	const char *addr;
	const char *str;
	const char *args;
	const char *argv[SL_MILTER_MAX_ARGS];
	size_t argc;
	const char *name, *value;
	uint32_t index;
	const uint8_t *data;
	size_t len;
};

/* Returns 0, or -1 with *error_r (static) for an unknown or malformed one. */
int sl_milter_decode_command(const struct sl_milter_packet *pkt,
    struct sl_milter_msg *m, const char **error_r);
int sl_milter_decode_reply(const struct sl_milter_packet *pkt,
    struct sl_milter_msg *m, const char **error_r);

/*
 * Walks the pairs of a decoded 'D' packet: returns 1 with *name_r and
 * *value_r set, 0 at the end.  *pos starts at 0.
 */
int sl_milter_macro_next(const struct sl_milter_msg *m, size_t *pos,
    const char **name_r, const char **value_r);

/* "OPTNEG", "CONTINUE", ... for logs; "?" for an unknown code. */
const char *sl_milter_command_name(uint8_t code);
const char *sl_milter_reply_name(uint8_t code);

/*
 * Whether text is a well-formed SMFIR_REPLYCODE text: every line "4xx" or
 * "5xx", '-' on all but the last line and ' ' (or end) on the last, an
 * optional enhanced code whose class equals the reply's, lines joined by
 * CRLF (no bare CR or LF), the same code on every line, at most 32 lines.
 * Returns 0 or -1 with *error_r.
 */
int sl_milter_check_reply(const char *text, const char **error_r);

/* --- encoding ----------------------------------------------------------- */

/*
 * Each put appends one packet (or, for a body, one per chunk) and returns
 * 0, or -1 (nothing appended) if a packet's data would exceed the
 * buffer's max_data or a string argument is invalid.
 */
int sl_milter_put(struct sl_milter_buf *b, uint8_t code, const void *data,
    size_t len);
int sl_milter_put_empty(struct sl_milter_buf *b, uint8_t code);
/* 'O': symlist may be NULL; NULL entries are left out. */
int sl_milter_put_optneg(struct sl_milter_buf *b, uint32_t version,
    uint32_t actions, uint32_t protocol, const char *const *symlist);
/* 'D': n name/value pairs (a NULL value is skipped). */
int sl_milter_put_macros(struct sl_milter_buf *b, uint8_t stage,
    const char *const *names, const char *const *values, size_t n);
/* 'C': addr ignored for family 'U'. */
int sl_milter_put_connect(struct sl_milter_buf *b, const char *host,
    uint8_t family, uint16_t port, const char *addr);
/* Consecutive NUL-terminated strings: H M R U L h e 2 + - q. */
int sl_milter_put_strings(struct sl_milter_buf *b, uint8_t code,
    const char *const *strs, size_t n);
/* 'i' and 'm'. */
int sl_milter_put_index(struct sl_milter_buf *b, uint8_t code, uint32_t index,
    const char *name, const char *value);
/* 'B' or 'b': splits data into packets of at most max_data bytes. */
int sl_milter_put_body(struct sl_milter_buf *b, uint8_t code,
    const uint8_t *data, size_t len);
/*
 * 'y' from a code, an enhanced code (NULL or "" for none) and text that
 * may hold LF between lines: each line becomes "CODE-ENH text", joined by
 * CRLF, '%' doubled, CR and NUL dropped.  code must be 4xx or 5xx and enh
 * of the same class.  Returns -1 if not.
 */
int sl_milter_put_reply(struct sl_milter_buf *b, int code, const char *enh,
    const char *text);

/* --- option negotiation ------------------------------------------------ */

/*
 * Filter side: settles the answer to an offer as libmilter does: refuses
 * a version below 2; answers min(6, offer); reads actions 0 as the v1 set
 * and protocol 0 as the v1 set; the answer's actions are want_actions
 * limited to the offer (*missing_r gets what was wanted but not offered);
 * the answer's protocol is want_proto limited to the offer.  Returns 0 or
 * -1 with *error_r.
 */
int sl_milter_negotiate_filter(uint32_t offer_version, uint32_t offer_actions,
    uint32_t offer_proto, uint32_t want_actions, uint32_t want_proto,
    uint32_t *version_r, uint32_t *actions_r, uint32_t *proto_r,
    uint32_t *missing_r, const char **error_r);

/*
 * MTA side: checks a filter's answer against what we offered: version in
 * [2, offer], actions within the offer.  Protocol bits outside the offer
 * are masked off (*proto_r) and *masked_r says which.  Returns 0 or -1
 * with *error_r.
 */
int sl_milter_negotiate_mta(uint32_t offer_version, uint32_t offer_actions,
    uint32_t offer_proto, const struct sl_milter_msg *answer, uint32_t *proto_r,
    uint32_t *masked_r, const char **error_r);

/* The SMFIM stage whose macros go with command code cmd, or -1. */
int sl_milter_stage_of(uint8_t cmd);

/*
 * MTA side: what goes with each event an MTA sends (C H M R T L N B E U):
 * the NO* bit that suppresses it, the NR_* bit that makes it go without
 * a reply (0: none), the SMFIM list for the 'D' packet sent before it (-1:
 * none, for U), and the first protocol version that has it.  NULL for a
 * command that is not an event.
 */
struct sl_milter_event {
	uint8_t cmd;
	uint32_t no_bit, nr_bit;
	int mstage;
	uint32_t min_version;
};
const struct sl_milter_event *sl_milter_event_of(uint8_t cmd);

/*
 * Postfix's default macro list per SMFIM stage (protocol reference 7.2),
 * plus {client_addr} at CONNECT; NULL-terminated.
 */
extern const char *const sl_milter_default_macros[SL_SMFIM_MAX][8];

/* --- macro store (filter side) ------------------------------------------ */

/*
 * One slot per stage (C H M R T N E), as libmilter keeps them: a 'D'
 * packet replaces its stage's slot (one with no pairs leaves it alone);
 * receiving an event clears the later stages (C clears H..E, H clears
 * M..E, M clears R..E, R clears T N E); lookups search E N T R M H C and
 * take the first match, so a later stage shadows an earlier one.  "i" and
 * "{i}" are the same name.  Zero-initialise; free with _clear.
 */
struct sl_milter_macros {
	char *slot[7]; /* raw pairs, copied */
	size_t slot_len[7];
};

/* Stores a decoded 'D' packet; stages other than C H M R T N E are ignored. */
void sl_milter_macros_store(struct sl_milter_macros *mm,
    const struct sl_milter_msg *m);
/* Clears what receiving command cmd clears ('Q', 'K', 'O' clear all). */
void sl_milter_macros_event(struct sl_milter_macros *mm, uint8_t cmd);
const char *sl_milter_macros_get(const struct sl_milter_macros *mm,
    const char *name);
void sl_milter_macros_clear(struct sl_milter_macros *mm);

#endif
