/*
 * smtpparse.h - SMTP command-line, path and ESMTP parameter parsing
 * (RFC 5321 4.1, RFC 6531 for SMTPUTF8).  Pure functions over one complete
 * command line (without CRLF); no I/O, no allocation except where said.
 * The SMTP front end answers each error with the reply in struct
 * sl_smtp_error; plugins never see a line that failed here.
 */
#ifndef SL_SMTPPARSE_H
#define SL_SMTPPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sl_smtp_verb {
	SL_VERB_UNKNOWN = 0,
	SL_VERB_HELO,
	SL_VERB_EHLO,
	SL_VERB_MAIL,
	SL_VERB_RCPT,
	SL_VERB_DATA,
	SL_VERB_BDAT,
	SL_VERB_RSET,
	SL_VERB_NOOP,
	SL_VERB_QUIT,
	SL_VERB_VRFY,
	SL_VERB_EXPN,
	SL_VERB_HELP,
	SL_VERB_STARTTLS,
	SL_VERB_AUTH,
	SL_VERB_XCLIENT,
};

/*
 * The reply for a failed parse, e.g. 501, "5.5.4", "Syntax: MAIL
 * FROM:<address> [parameters]".  All three point to static storage.
 */
struct sl_smtp_error {
	int code;
	const char *enh;
	const char *text;
};

/*
 * Splits a command line into the verb (case-insensitive) and its argument.
 * The verb is the whole word up to the first space or the end ("MAILFROM:"
 * is SL_VERB_UNKNOWN).  *arg_r points into line after the verb and exactly
 * one space ("" if none); it is set for SL_VERB_UNKNOWN too.  line must be
 * NUL-terminated at len and hold no CR, LF or NUL (the caller checked).
 * Returns the verb, SL_VERB_UNKNOWN for anything else.
 */
enum sl_smtp_verb sl_smtp_parse_verb(const char *line, size_t len,
    const char **arg_r);

#define SL_SMTP_MAX_PARAMS 16
/* RFC 5321 4.5.3.1: octets in a path (with its <>), local part, domain. */
#define SL_SMTP_PATH_MAX 256
#define SL_SMTP_LOCAL_MAX 64
#define SL_SMTP_DOMAIN_MAX 255

/*
 * One parsed MAIL FROM: or RCPT TO: argument.  addr is the mailbox without
 * <> and source route ("" for <>, "postmaster" as written for
 * <postmaster>); local is the local part as written (quotes kept); domain
 * is the domain or address literal as written, "" for <> and
 * <postmaster>.  params[] hold "KEY" or "KEY=VALUE" and point into the
 * caller's line, which is modified (NULs are written).
 */
struct sl_smtp_path {
	char addr[520];
	char local[260];
	char domain[260];
	bool null_path;    /* MAIL FROM:<> */
	bool source_route; /* had "@a,@b:" in front (RFC 5321 4.1.2) */
	bool quoted_local; /* local part was a quoted string */
	bool routed_local; /* local part holds '%', '!' or (quoted) '@' */
	bool utf8;         /* non-ASCII bytes in the address (valid UTF-8) */
	bool postmaster;   /* RCPT TO:<postmaster> with no domain */
	size_t nparams;
	char *params[SL_SMTP_MAX_PARAMS];
};

/*
 * Parses the argument of MAIL ("FROM:<addr> params") or RCPT ("TO:<addr>
 * params").  arg is modified in place.  allow_utf8 (RCPT only): this
 * transaction's MAIL carried SMTPUTF8 (RFC 6531 3.4) - for MAIL the
 * function itself checks for an SMTPUTF8 parameter on the same line and
 * ignores allow_utf8.  Accepts one space after the colon (common client
 * bug) but not a missing <>; parameters are separated by one or more
 * spaces, and trailing spaces are ignored.  Keywords and the 8-bit
 * permission are syntax only: the caller checks what it announced.
 * Returns 0, or -1 with *err_r filled (static strings) and *path_r zeroed:
 *   501 5.5.4 syntax (no colon, missing brackets, junk),
 *   553 5.1.3 (MAIL: 5.1.7, RCPT: 5.1.3) bad address syntax,
 *   553 5.6.7 non-ASCII without SMTPUTF8, 553 5.6.7 invalid UTF-8,
 *   501 5.5.4 too many parameters / malformed parameter,
 *   501 5.5.4 path longer than 256 octets, counting the <> (RFC 5321
 *   4.5.3.1.3); a local part over 64 or a domain over 255 octets is bad
 *   address syntax.
 */
int sl_smtp_parse_path(char *arg, bool is_mail, bool allow_utf8,
    struct sl_smtp_path *path_r, struct sl_smtp_error *err_r);

/*
 * Finds parameter key (case-insensitive) in path->params.  Returns the
 * value ("" for a bare KEY), pointing into the parsed line, or NULL when
 * absent.  With a repeated key, the first one wins.
 */
const char *sl_smtp_param(const struct sl_smtp_path *path, const char *key);

/*
 * true if s[0..len) is well-formed UTF-8 (RFC 3629 4): no overlongs, no
 * surrogates, nothing above U+10FFFF, no truncated sequence.
 */
bool sl_utf8_valid(const uint8_t *s, size_t len);

/*
 * Checks a HELO/EHLO argument: a domain or an address literal
 * ([192.0.2.1], [IPv6:...]).  Returns true if acceptable.  Lenient about
 * underscores; rejects empty, spaces, control bytes.
 */
bool sl_smtp_helo_valid(const char *arg);

/*
 * Parses a BDAT argument: "SIZE [LAST]" (RFC 3030), SIZE decimal digits
 * below 2^63 (it fits an off_t), LAST case-insensitive after exactly one
 * space.  Returns 0 with *size_r and *last_r, or -1 (501 5.5.4) leaving
 * them alone.  Sizes over max are still parsed (the caller answers 552
 * after reading them).
 */
int sl_smtp_parse_bdat(const char *arg, uint64_t *size_r, bool *last_r);

#endif
