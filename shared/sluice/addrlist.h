/*
 * sluice/addrlist.h - a list of e-mail address patterns, shared by the
 * plugins that match senders or recipients (badmailfrom, badrcptto ...).
 *
 * Entries, as they come from a SL_CONF_LIST option:
 *   user@example.com   that address exactly (ASCII case-insensitive)
 *   @example.com       any address whose domain (after the last '@') is
 *                      example.com exactly (case-insensitive; subdomains
 *                      do not match: use a regex for them)
 *   /regex/  /regex/i  a PCRE2 pattern (UTF mode; i = caseless) searched
 *                      anywhere in the address: anchor it with ^ and $
 * Anything else, a bare "example.com" included, is refused at load time
 * (a bare domain is ambiguous: "use @example.com").
 *
 * A list is immutable once built; sl_addrlist_match() may run on any
 * number of threads at once.
 */
#ifndef SLUICE_ADDRLIST_H
#define SLUICE_ADDRLIST_H

#include <sluice/conf.h>

struct sl_addrlist; /* opaque */

/*
 * Builds a list from items (which may be empty).  Returns the list, or
 * NULL with *error_r set to an allocated message naming the bad entry
 * ('entry "/a(/": regex: missing closing parenthesis at offset 2'); the
 * caller frees it with free().
 */
struct sl_addrlist *sl_addrlist_new(const struct sl_strlist *items,
    char **error_r);

/*
 * Matches addr (a path without <>, e.g. "user@example.com"; "" for the
 * null path) against the list: exact addresses first, then @domain
 * entries, then the regexes in list order.  Returns the text of the
 * matching entry as it was configured (valid until sl_addrlist_free), or
 * NULL.  A regex that exceeds its match limit (pathological backtracking)
 * counts as no match and is logged.
 */
const char *sl_addrlist_match(const struct sl_addrlist *l, const char *addr);

/* Number of entries in the list. */
size_t sl_addrlist_count(const struct sl_addrlist *l);

/* Frees the list; accepts NULL and sets *lp = NULL. */
void sl_addrlist_free(struct sl_addrlist **lp);

#endif
