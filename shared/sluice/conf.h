/*
 * sluice/conf.h - option tables, shared by the daemon's directives and by
 * every plugin's "key=value" options.
 *
 * A table is an array of struct sl_conf_def ending in SL_CONF_END.  The core
 * parses each value by its type, checks the bounds, and stores the result
 * at .offset inside the owner's block (the daemon settings, or the
 * plugin's state block of state_size bytes).  Unset options get .def.
 * Errors read "file:line: NAME: reason" and stop start-up.
 */
#ifndef SLUICE_CONF_H
#define SLUICE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sl_conf_type {
	SL_CONF_NONE = 0, /* terminator */
	SL_CONF_STR,      /* char * (allocated; NULL if def is NULL) */
	SL_CONF_INT,      /* long long, within [min, max] */
	SL_CONF_UINT,     /* unsigned int, within [min, max] */
	SL_CONF_SIZE,  /* size_t bytes: 10, 64k, 10M, 1G; within [min, max] */
	SL_CONF_MSEC,  /* unsigned int ms: 250ms, 5s, 2m, 1h; within bounds */
	SL_CONF_BOOL,  /* bool: yes/no, true/false, on/off, 1/0 */
	SL_CONF_ENUM,  /* int: index into .choices (NULL-terminated) */
	SL_CONF_LIST,  /* struct sl_strlist: "a,b c" or @file (one per line) */
	SL_CONF_CIDRS, /* struct sl_cidrlist: addresses and networks, or @file
	                */
};

struct sl_conf_def {
	const char *name;
	enum sl_conf_type type;
	const char *def;    /* default, as text; NULL = unset */
	long long min, max; /* bounds for numbers (0, 0 = unbounded) */
	size_t offset;      /* where the value goes in the owner block */
	const char *const *choices; /* SL_CONF_ENUM; SL_CONF_LIST: the only
	                               items allowed (case-insensitive) */
	const char *help;           /* one line, for error messages */
	unsigned int flags;         /* SL_CONF_F_* */
};

/*
 * For lists of mail addresses: an item "@word" is the domain entry it
 * looks like, and only "@path/with/slash" (e.g. "@./list") names a file.
 */
#define SL_CONF_F_AT_LITERAL 0x1

#define SL_CONF_END                                                            \
	{                                                                      \
		.name = NULL, .type = SL_CONF_NONE                             \
	}

/* A list of strings; items never NULL.  Freed by the core. */
struct sl_strlist {
	char **items;
	size_t count;
};

/* A list of networks, for matching client addresses. */
struct sl_cidr {
	uint8_t addr[16];    /* IPv4 as ::ffff:a.b.c.d */
	unsigned int prefix; /* 0..128, counted on the 16-byte form */
};
struct sl_cidrlist {
	struct sl_cidr *items;
	size_t count;
};

/* true if addr16 (see sl_conn_remote_addr) is inside one of the networks */
bool sl_cidrlist_match(const struct sl_cidrlist *l, const uint8_t addr16[16]);
/* Parses "192.0.2.0/24", "2001:db8::/32" or a plain address. 0 or -1. */
int sl_cidr_parse(const char *s, struct sl_cidr *c_r);
/* Parses a numeric IPv4 or IPv6 address into the 16-byte form. 0 or -1. */
int sl_addr_parse(const char *s, uint8_t addr16_r[16]);
/* true if addr16 is an IPv4 address (::ffff:a.b.c.d, the last 4 bytes) */
bool sl_addr_is_v4(const uint8_t addr16[16]);
/* true if item is in the list (ASCII case-insensitive) */
bool sl_strlist_has(const struct sl_strlist *l, const char *item);

#endif
