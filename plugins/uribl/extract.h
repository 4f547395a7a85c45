/*
 * extract.h - the URI extractor of the uribl plugin (plugins/uribl.c),
 * linked into uribl.so and into t/unit/test_uribl.
 *
 * An extractor takes one message as it streams in - header fields, then
 * body pieces split anywhere - and reports every host name it finds in
 * URIs: in the header fields it is told to scan (RFC 2047 encoded-words
 * decoded) and in the text/plain and text/html parts of the body, through
 * nested multipart and message/rfc822 entities, with quoted-printable
 * and base64 undone and (in HTML) numeric and a few named character
 * references.  It holds a fixed amount of memory (about 24 KiB) whatever
 * the message, and scans at most max_scan decoded bytes.
 *
 * Hosts are reported normalised: percent-escapes decoded, lower case, no
 * leading or trailing dots, only [a-z0-9_-] labels, at least two labels;
 * IPv4 literals as dotted quads.  uribl_query_name() then reduces a host
 * to the name a URI list is asked about.
 *
 * Not thread-safe per object; the patterns and suffix list are read-only
 * after creation and shared by every loop thread.
 */
#ifndef URIBL_EXTRACT_H
#define URIBL_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/conf.h>

/* Shared by the plugin's files only: not exported from uribl.so. */
#define URIBL_HIDDEN __attribute__((visibility("hidden")))

/* Longest host name reported (RFC 1035 2.3.4, without the final dot). */
#define URIBL_HOST_MAX 253

/* --- patterns ------------------------------------------------------------ */

struct uribl_patterns; /* compiled PCRE2 patterns (JIT where available) */

/*
 * Compiles the patterns once per plugin instance.  email_domains adds the
 * domains of mail addresses ("user@example.com") to what is reported.
 * Returns NULL with *error_r (static text) if PCRE2 refuses.
 */
URIBL_HIDDEN struct uribl_patterns *uribl_patterns_new(bool email_domains,
    const char **error_r);
URIBL_HIDDEN void uribl_patterns_free(struct uribl_patterns **pp);
/*
 * Without email_domains the scan asks the regex engine only at offsets
 * where a URI's literal ("http://", "www", "href" ...) begins; off, it
 * steps over every byte.  Same hosts either way: for tests comparing them.
 */
URIBL_HIDDEN void uribl_patterns_prefilter(struct uribl_patterns *p, bool on);

/* --- extractor ----------------------------------------------------------- */

/*
 * Called with each host found, normalised (see above), borrowed for the
 * call.  The same host may be reported more than once.  Returning false
 * stops the extractor: later calls feed nothing.
 */
typedef bool (*uribl_host_fn)(void *arg, const char *host);

struct uribl_extractor;

/*
 * headers: the names of the header fields to scan (case-insensitive),
 * borrowed for the extractor's life; max_scan: decoded bytes scanned at
 * most (headers and body together), 0 for no limit.
 */
URIBL_HIDDEN struct uribl_extractor *uribl_extractor_new(
    const struct uribl_patterns *pat, const struct sl_strlist *headers,
    size_t max_scan, uribl_host_fn fn, void *arg);
URIBL_HIDDEN void uribl_extractor_free(struct uribl_extractor **xp);

/*
 * One header field of the message (before any body): value as the hook
 * gives it, folded lines and all.  Content-Type and
 * Content-Transfer-Encoding are remembered for the body.
 */
URIBL_HIDDEN void uribl_extract_header(struct uribl_extractor *x,
    const char *name, const char *value);
/* A piece of the body (LF or CRLF line ends), split anywhere. */
URIBL_HIDDEN void uribl_extract_body(struct uribl_extractor *x,
    const uint8_t *p, size_t n);
/* The end of the message: scans what is still buffered. */
URIBL_HIDDEN void uribl_extract_finish(struct uribl_extractor *x);

/* Whether max_scan was reached (the extractor then stopped). */
URIBL_HIDDEN bool uribl_extract_scan_capped(const struct uribl_extractor *x);
/* Decoded bytes scanned so far. */
URIBL_HIDDEN size_t uribl_extract_scanned(const struct uribl_extractor *x);

/* --- the name to look up ------------------------------------------------- */

/*
 * Two-label public suffixes ("co.uk"): a built-in list of common
 * country-code second levels, plus extra items ("co.test").  Not the
 * Public Suffix List.  Returns NULL with *bad_r pointing at an extra item
 * that is not two labels of [a-z0-9-].
 */
struct uribl_suffixes;
URIBL_HIDDEN struct uribl_suffixes *uribl_suffixes_new(
    const struct sl_strlist *extra, const char **bad_r);
URIBL_HIDDEN void uribl_suffixes_free(struct uribl_suffixes **sp);

enum uribl_name_kind {
	URIBL_NAME_NONE = -1,  /* nothing to look up (a bare suffix) */
	URIBL_NAME_DOMAIN = 0, /* the registered domain */
	URIBL_NAME_IP = 1,     /* an IPv4 address, reversed: "4.3.2.1" */
};

/*
 * The name a URI list is asked about for host (as reported above): its
 * last two labels, or three when the last two are a two-label suffix;
 * an IPv4 address reversed, SURBL style.  Writes it to buf (size bytes).
 */
URIBL_HIDDEN enum uribl_name_kind uribl_query_name(
    const struct uribl_suffixes *s, const char *host, char *buf, size_t size);

#endif
