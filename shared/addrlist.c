/*
 * addrlist.c - address pattern lists (see sluice/addrlist.h).
 *
 * Exact addresses and @domain entries are kept in two sorted arrays and
 * found by binary search, so a list of many thousand entries costs
 * O(log n) per match; regexes are compiled (and JIT-compiled where the
 * platform allows) once at load time and tried in list order.  Matching
 * allocates only a pcre2 match data block, per call, so one list serves
 * every loop thread without locks.  Regexes run under a match limit: the
 * subject is an address the client chose, and a pathological pattern must
 * not let it pin a thread (ReDoS).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <sluice/addrlist.h>

#include "log.h"
#include "xmalloc.h"

/* Backtracking budget per regex and address (pcre2's default is 10^7). */
#define ADDRLIST_MATCH_LIMIT 100000
#define ADDRLIST_DEPTH_LIMIT 1000

struct addrlist_regex {
	pcre2_code *code;
	const char *text; /* the entry as configured */
};

struct sl_addrlist {
	char **texts; /* our copies of every entry */
	size_t ntexts;
	const char **exact; /* sorted, ASCII case-insensitive */
	size_t nexact;
	const char **domains; /* "@domain" entries, sorted on the domain */
	size_t ndomains;
	struct addrlist_regex *regexes; /* in list order */
	size_t nregexes;
	pcre2_match_context *mctx; /* read-only once built: shared */
};

static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* strcasecmp without the locale: addresses are compared as ASCII. */
static int
ascii_casecmp(const char *a, const char *b)
{
	int ca, cb;

	for (;; a++, b++) {
		ca = ascii_lower((unsigned char)*a);
		cb = ascii_lower((unsigned char)*b);
		if (ca != cb || ca == '\0')
			return ca - cb;
	}
}

static int
cmp_exact(const void *a, const void *b)
{
	return ascii_casecmp(*(const char *const *)a, *(const char *const *)b);
}

/* Domain entries start with '@'; compare what follows. */
static int
cmp_domain(const void *a, const void *b)
{
	return ascii_casecmp(*(const char *const *)a + 1,
	    *(const char *const *)b + 1);
}

static int
key_exact(const void *key, const void *elem)
{
	return ascii_casecmp(key, *(const char *const *)elem);
}

static int
key_domain(const void *key, const void *elem)
{
	return ascii_casecmp(key, *(const char *const *)elem + 1);
}

/*
 * Splits "/re/" or "/re/i" into the pattern (pointer and length) and the
 * caseless flag.  Returns 0, or -1 if text is not a well-formed regex
 * entry.
 */
static int
regex_split(const char *text, const char **re_r, size_t *len_r,
    bool *caseless_r)
{
	size_t len;

	len = strlen(text);
	if (len >= 3 && text[len - 1] == '/') {
		*caseless_r = false;
		*len_r = len - 2;
	} else if (len >= 4 && text[len - 2] == '/' && text[len - 1] == 'i') {
		*caseless_r = true;
		*len_r = len - 3;
	} else
		return -1;
	*re_r = text + 1;
	return 0;
}

static int
add_regex(struct sl_addrlist *l, const char *text, char **error_r)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE erroff;
	const char *re;
	pcre2_code *code;
	uint32_t opts;
	size_t len;
	bool caseless;
	int errcode;

	if (regex_split(text, &re, &len, &caseless) == -1) {
		*error_r = sl_xasprintf("entry \"%s\": a regex is written "
		                        "/pattern/ or /pattern/i",
		    text);
		return -1;
	}
	/*
	 * Addresses may be SMTPUTF8; MATCH_INVALID_UTF keeps a malformed
	 * one from turning into a match error.
	 */
	opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;
	if (caseless)
		opts |= PCRE2_CASELESS;
	code =
	    pcre2_compile((PCRE2_SPTR)re, len, opts, &errcode, &erroff, NULL);
	if (code == NULL) {
		if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
			msg[0] = '\0';
		*error_r = sl_xasprintf("entry \"%s\": regex: %s at offset %zu",
		    text, (const char *)msg, (size_t)erroff);
		return -1;
	}
	/* Best effort: without JIT the interpreter gives the same results. */
	(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	l->regexes[l->nregexes].code = code;
	l->regexes[l->nregexes].text = text;
	l->nregexes++;
	return 0;
}

/* Files one entry into its table.  Returns 0, or -1 with *error_r set. */
static int
add_entry(struct sl_addrlist *l, const char *text, char **error_r)
{
	const char *at;

	if (text[0] == '/')
		return add_regex(l, text, error_r);
	if (text[0] == '@') {
		if (text[1] == '\0' || strchr(text + 1, '@') != NULL) {
			*error_r = sl_xasprintf("entry \"%s\": a domain entry "
			                        "is written @example.com",
			    text);
			return -1;
		}
		l->domains[l->ndomains++] = text;
		return 0;
	}
	at = strrchr(text, '@');
	if (at == NULL) {
		*error_r = sl_xasprintf("entry \"%s\": not an address, "
		                        "@domain or /regex/ (for a domain "
		                        "write @%s)",
		    text, text);
		return -1;
	}
	if (at[1] == '\0') {
		*error_r = sl_xasprintf("entry \"%s\": address without a "
		                        "domain",
		    text);
		return -1;
	}
	l->exact[l->nexact++] = text;
	return 0;
}

struct sl_addrlist *
sl_addrlist_new(const struct sl_strlist *items, char **error_r)
{
	struct sl_addrlist *l;
	size_t i, n;

	*error_r = NULL;
	n = items != NULL ? items->count : 0;
	l = sl_xcalloc(1, sizeof(*l));
	l->texts = sl_xcalloc(n, sizeof(*l->texts));
	l->exact = sl_xcalloc(n, sizeof(*l->exact));
	l->domains = sl_xcalloc(n, sizeof(*l->domains));
	l->regexes = sl_xcalloc(n, sizeof(*l->regexes));
	for (i = 0; i < n; i++) {
		l->texts[i] = sl_xstrdup(items->items[i]);
		l->ntexts++;
		if (add_entry(l, l->texts[i], error_r) == -1)
			goto fail;
	}
	qsort(l->exact, l->nexact, sizeof(*l->exact), cmp_exact);
	qsort(l->domains, l->ndomains, sizeof(*l->domains), cmp_domain);
	if (l->nregexes > 0) {
		l->mctx = pcre2_match_context_create(NULL);
		if (l->mctx == NULL)
			sl_panic(
			    "out of memory creating a pcre2 match context");
		pcre2_set_match_limit(l->mctx, ADDRLIST_MATCH_LIMIT);
		pcre2_set_depth_limit(l->mctx, ADDRLIST_DEPTH_LIMIT);
	}
	return l;
fail:
	sl_addrlist_free(&l);
	return NULL;
}

static const char *
match_regexes(const struct sl_addrlist *l, const char *addr)
{
	PCRE2_UCHAR msg[128];
	pcre2_match_data *md;
	const char *found;
	size_t i;
	int rc;

	/* One ovector pair is enough: we only ask whether it matched. */
	md = pcre2_match_data_create(1, NULL);
	if (md == NULL)
		sl_panic("out of memory creating pcre2 match data");
	found = NULL;
	for (i = 0; i < l->nregexes && found == NULL; i++) {
		rc = pcre2_match(l->regexes[i].code, (PCRE2_SPTR)addr,
		    PCRE2_ZERO_TERMINATED, 0, 0, md, l->mctx);
		if (rc >= 0)
			found = l->regexes[i].text;
		else if (rc != PCRE2_ERROR_NOMATCH) {
			if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
				msg[0] = '\0';
			sl_log(LOG_WARNING, NULL,
			    "addrlist regex=\"%s\" error=\"%s\": counted as "
			    "no match",
			    l->regexes[i].text, (const char *)msg);
		}
	}
	pcre2_match_data_free(md);
	return found;
}

const char *
sl_addrlist_match(const struct sl_addrlist *l, const char *addr)
{
	const char *const *hit;
	const char *at;

	if (l == NULL || addr == NULL)
		return NULL;
	if (l->nexact > 0) {
		hit = bsearch(addr, l->exact, l->nexact, sizeof(*l->exact),
		    key_exact);
		if (hit != NULL)
			return *hit;
	}
	at = strrchr(addr, '@');
	if (l->ndomains > 0 && at != NULL) {
		hit = bsearch(at + 1, l->domains, l->ndomains,
		    sizeof(*l->domains), key_domain);
		if (hit != NULL)
			return *hit;
	}
	if (l->nregexes > 0)
		return match_regexes(l, addr);
	return NULL;
}

size_t
sl_addrlist_count(const struct sl_addrlist *l)
{
	return l != NULL ? l->ntexts : 0;
}

void
sl_addrlist_free(struct sl_addrlist **lp)
{
	struct sl_addrlist *l;
	size_t i;

	if (lp == NULL || (l = *lp) == NULL)
		return;
	for (i = 0; i < l->nregexes; i++)
		pcre2_code_free(l->regexes[i].code);
	pcre2_match_context_free(l->mctx);
	for (i = 0; i < l->ntexts; i++)
		free(l->texts[i]);
	free(l->texts);
	free(l->exact);
	free(l->domains);
	free(l->regexes);
	free(l);
	*lp = NULL;
}
