/*
 * smtpclient.h - the asynchronous SMTP / LMTP client behind the queue
 * plugins queue/smtp-forward and queue/lmtp (sluice-plugins(7)).
 *
 * One client session per message, on the loop thread that owns the
 * connection, never blocking: connect, greeting, EHLO (LHLO), optional
 * STARTTLS (OpenSSL through bufferevent_openssl), XCLIENT or XFORWARD to
 * pass the original client on, MAIL, RCPT (pipelined when offered), DATA
 * with the message in CRLF and dot-stuffed, QUIT.  The sending client gets
 * 250 only after the next hop answered 250 to the message; every other
 * outcome maps to a refusal as sl_smtpclient_map() says.
 *
 * Internal to libsluice: the plugins reach it through -rdynamic like the
 * rest of the core.  The pure parts (reply parser, DATA writer, xtext,
 * the LMTP mapping) are exported for the unit tests.
 */
#ifndef SL_SMTPCLIENT_H
#define SL_SMTPCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/conf.h>
#include <sluice/plugin.h>

struct evbuffer;

/* --- the options both queue plugins take (their option block) ----------- */

enum {
	SL_SMTPCLIENT_TLS_NO = 0,
	SL_SMTPCLIENT_TLS_MAY,
	SL_SMTPCLIENT_TLS_REQUIRE,
};
extern const char *const sl_smtpclient_tls_choices[]; /* no, may, require */

struct sl_smtpclient_opts {
	char *host; /* HOST:PORT, [IPv6]:PORT or unix:/path */
	char *helo; /* NULL: the daemon's hostname */
	int starttls;
	bool tls_verify;
	char *tls_ca;
	char *tls_name;
	bool xclient;
	bool xforward;
	unsigned int connect_timeout_ms;
	unsigned int command_timeout_ms;
	unsigned int data_timeout_ms;
};

#define SL_SMTPCLIENT_OPT(f) offsetof(struct sl_smtpclient_opts, f)

/* The rows of both option tables; starttls_def is "may" or "no". */
#define SL_SMTPCLIENT_CONF_ROWS(starttls_def)                                  \
	{ .name = "host",                                                      \
		.type = SL_CONF_STR,                                           \
		.offset = SL_SMTPCLIENT_OPT(host),                             \
		.help =                                                        \
		    "the next hop: HOST:PORT, [IPv6]:PORT or unix:/path" },    \
	    { .name = "helo",                                                  \
		    .type = SL_CONF_STR,                                       \
		    .offset = SL_SMTPCLIENT_OPT(helo),                         \
		    .help = "the EHLO/LHLO name (default: hostname)" },        \
	    { .name = "starttls",                                              \
		    .type = SL_CONF_ENUM,                                      \
		    .def = starttls_def,                                       \
		    .choices = sl_smtpclient_tls_choices,                      \
		    .offset = SL_SMTPCLIENT_OPT(starttls),                     \
		    .help = "no, may (when offered) or require" },             \
	    { .name = "tls_verify",                                            \
		    .type = SL_CONF_BOOL,                                      \
		    .def = "no",                                               \
		    .offset = SL_SMTPCLIENT_OPT(tls_verify),                   \
		    .help = "verify the next hop's certificate and name" },    \
	    { .name = "tls_ca",                                                \
		    .type = SL_CONF_STR,                                       \
		    .offset = SL_SMTPCLIENT_OPT(tls_ca),                       \
		    .help = "CA certificates (PEM file) for tls_verify" },     \
	    { .name = "tls_name",                                              \
		    .type = SL_CONF_STR,                                       \
		    .offset = SL_SMTPCLIENT_OPT(tls_name),                     \
		    .help =                                                    \
		        "the name the certificate must carry (default: the "   \
		        "host of host=)" },                                    \
	    { .name = "xclient",                                               \
		    .type = SL_CONF_BOOL,                                      \
		    .def = "yes",                                              \
		    .offset = SL_SMTPCLIENT_OPT(xclient),                      \
		    .help = "pass the client on with XCLIENT when offered" },  \
	    { .name = "xforward",                                              \
		    .type = SL_CONF_BOOL,                                      \
		    .def = "yes",                                              \
		    .offset = SL_SMTPCLIENT_OPT(xforward),                     \
		    .help =                                                    \
		        "pass the client on with XFORWARD when offered and "   \
		        "XCLIENT is not used" },                               \
	    { .name = "connect_timeout",                                       \
		    .type = SL_CONF_MSEC,                                      \
		    .def = "30s",                                              \
		    .min = 1,                                                  \
		    .max = 3600000,                                            \
		    .offset = SL_SMTPCLIENT_OPT(connect_timeout_ms),           \
		    .help = "time to connect to the next hop" },               \
	    { .name = "command_timeout",                                       \
		    .type = SL_CONF_MSEC,                                      \
		    .def = "1m",                                               \
		    .min = 1,                                                  \
		    .max = 3600000,                                            \
		    .offset = SL_SMTPCLIENT_OPT(command_timeout_ms),           \
		    .help = "time for each reply and the TLS handshake" },     \
	{                                                                      \
		.name = "data_timeout", .type = SL_CONF_MSEC, .def = "5m",     \
		.min = 1, .max = 3600000,                                      \
		.offset = SL_SMTPCLIENT_OPT(data_timeout_ms),                  \
		.help = "time for each write of the message and the reply "    \
		        "to its end"                                           \
	}

/* --- process scope: one per plugin line ---------------------------------- */

struct sl_smtpclient_conf; /* opaque, reference-counted, read-only */

/*
 * Checks the options, resolves host= (getaddrinfo, now: a name that does
 * not resolve stops start-up) and prepares the TLS context; copies what
 * it needs of o.  Returns NULL with *error_r set to a static string
 * ("host: ...") on failure.  Called from plugin init only (the main
 * thread).  The result is reference-counted: each session holds one, so
 * that a session outliving its connection and runtime stays safe.
 */
struct sl_smtpclient_conf *sl_smtpclient_conf_new(
    const struct sl_smtpclient_opts *o, bool lmtp, const char **error_r);
/* Drops a reference (any thread); the last one frees. */
void sl_smtpclient_conf_free(struct sl_smtpclient_conf **cfp);

/*
 * What both plugins' descriptors point at.  init: *state_r is the option
 * block (struct sl_smtpclient_opts) on entry, the conf on success.  The
 * queue hook starts delivering the hook's transaction and returns
 * SL_PENDING, or a verdict with its reply when it failed at once.  The
 * session belongs to the transaction: if that ends first (the client
 * left, the core gave up), the session is dropped, before the end of the
 * message went out if it had not yet.
 */
int sl_smtpclient_init_smtp(void **state_r, const char **error_r);
int sl_smtpclient_init_lmtp(void **state_r, const char **error_r);
void sl_smtpclient_fini(void *state);
enum sl_verdict sl_smtpclient_queue(void *state, struct sl_hookctx *ctx);

/* --- replies (RFC 5321 4.2, RFC 3463) ------------------------------------ */

#define SL_SMTP_REPLY_LINE_MAX 2048 /* bytes without CRLF (RFC: 510) */
#define SL_SMTP_REPLY_LINES_MAX 100
#define SL_SMTP_REPLY_TEXT_MAX 400

/*
 * A reply read line by line.  code is 0 until the first line; enh the
 * enhanced status code of the first line ("" if none, or if its class is
 * not the code's); text the lines' texts without code and enhanced code,
 * joined by one space, bytes outside printable ASCII as '?', truncated.
 */
struct sl_smtp_reply {
	int code;
	char enh[16];
	char text[SL_SMTP_REPLY_TEXT_MAX];
	unsigned int nlines;
	bool done;
};

void sl_smtp_reply_reset(struct sl_smtp_reply *r);
/*
 * One line without its CRLF (line[len] need not be NUL).  Strict: three
 * digits 2xx-5xx, then nothing, SP or '-', the same code on every line,
 * no control characters but HT, at most SL_SMTP_REPLY_LINES_MAX lines.
 * Returns 1 when the reply is complete, 0 if more lines follow, -1 with
 * *error_r (static) when the line is malformed.  *text_r (may be NULL)
 * is the line's text after "ddd" and its separator (an EHLO keyword
 * line), borrowed from line.
 */
int sl_smtp_reply_line(struct sl_smtp_reply *r, const char *line, size_t len,
    const char **text_r, size_t *text_len_r, const char **error_r);

/* --- the message in DATA (RFC 5321 4.5.2, 2.3.8) ------------------------- */

/*
 * Turns message bytes into DATA content: every line end (LF, CRLF, and a
 * bare CR) becomes CRLF, so no bare CR or LF ever goes out, and a line
 * starting with '.' gets another.  Resumable at any byte.
 */
struct sl_smtp_dotstuff {
	bool bol; /* at the start of a line */
	bool cr;  /* a CR waits for the next byte */
};

void sl_smtp_dotstuff_init(struct sl_smtp_dotstuff *d);
void sl_smtp_dotstuff_add(struct sl_smtp_dotstuff *d, struct evbuffer *out,
    const uint8_t *in, size_t n);
/* The end: closes an unfinished last line, then ".\r\n". */
void sl_smtp_dotstuff_end(struct sl_smtp_dotstuff *d, struct evbuffer *out);

/*
 * xtext (RFC 3461 4): '+', '=', and bytes outside '!'..'~' as "+HH".
 * Writes a NUL-terminated string; returns 0, or -1 if it does not fit.
 */
int sl_xtext_encode(const char *in, char *out, size_t size);

/* --- the verdict for the recipients' replies ---------------------------- */

/*
 * One reply per recipient (RCPT replies, or LMTP's after the end of
 * data): all 2xx -> SL_OK; all refused -> the first 4xx (SL_DENYSOFT) if
 * any refusal was temporary, else the first 5xx (SL_DENY); some delivered
 * and some refused (lmtp_mixed true only for LMTP's end of data, where
 * it can happen) -> 451 with the first temporary refusal if there was
 * one, else 554 with the first permanent one.  At RCPT any refusal
 * counts as "all": nothing is sent.  *first_r is the index of the reply
 * the verdict names (0 for SL_OK); *mixed_r says whether some recipients
 * got the message while the client is refused.
 */
enum sl_verdict sl_smtpclient_map(const struct sl_smtp_reply *replies, size_t n,
    bool lmtp_end, size_t *first_r, bool *mixed_r);

#endif
