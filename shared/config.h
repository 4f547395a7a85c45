/*
 * config.h - the configuration file (sluice.conf(5)) of both daemons.
 *
 * One directive per line, '#' comments, blank lines ignored, values
 * separated by blanks; a value may be double-quoted (\" and \\ escapes).
 * "include FILE" reads another file (relative to the including file's
 * directory; nesting limited to 8).  A list value may be "@path": one item
 * per line of that file ('#' comments, relative to the config file).
 * Daemon directives are rows of sl_config_directives[] (types, defaults,
 * bounds); a scalar given twice keeps the last value, a list given twice
 * grows.  "plugin NAME [key=value ...]" lines are kept in order as
 * struct sl_plugin_line for the plugin loader, which checks their options
 * against the plugin's own table with sl_conf_table_apply().
 *
 * Errors read "FILE:LINE: DIRECTIVE: reason" (or "FILE:LINE: reason").
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <sluice/conf.h>

enum sl_bare_policy {
	SL_BARE_REJECT = 0,
	SL_BARE_NORMALISE = 1,
};

enum sl_default_action {
	SL_ACTION_TEMPFAIL = 0,
	SL_ACTION_ACCEPT = 1,
	SL_ACTION_REJECT = 2,
};

/* Daemon settings; one block per loaded configuration. */
struct sl_settings {
	char *hostname;                  /* default: gethostname() */
	struct sl_strlist listen;        /* "addr:port", "[v6]:port" */
	struct sl_strlist proxy_listen;  /* PROXY protocol v1/v2 listeners */
	struct sl_strlist smtps_listen;  /* implicit TLS ("listen smtps") */
	struct sl_strlist milter_listen; /* inet:, inet6:, unix: */
	int milter_socket_mode;          /* index into sl_milter_modes */
	unsigned int milter_timeout_ms;
	unsigned int milter_progress_ms;
	char *user;                   /* drop to this user; NULL = stay */
	char *state_dir;              /* default "var" */
	char *spool_dir;              /* default: state_dir/spool */
	struct sl_strlist plugin_dir; /* searched in order; empty = default */
	char *pid_file;
	int log_level; /* LOG_ERR .. LOG_DEBUG */
	char *banner;  /* text after "220 hostname " */
	struct sl_strlist local_domains;
	struct sl_cidrlist relay_clients;
	struct sl_cidrlist trusted_proxies;
	unsigned int loop_threads; /* 0 = one per CPU */
	unsigned int worker_threads;
	unsigned int max_connections;
	unsigned int max_connections_per_ip;
	size_t max_command_line; /* CRLF included (RFC 5321 4.5.3.1.4) */
	size_t max_line_length;  /* DATA line, CRLF included (4.5.3.1.6) */
	size_t max_message_size;
	size_t max_header_size;
	unsigned int max_recipients;
	unsigned int max_errors;
	unsigned int max_unknown_commands;
	unsigned int idle_timeout_ms;
	unsigned int data_timeout_ms;
	unsigned int proxy_timeout_ms;
	unsigned int shutdown_timeout_ms;
	unsigned int plugin_timeout_ms;
	int plugin_default_action; /* enum sl_default_action */
	int bare_newline;          /* enum sl_bare_policy */
	size_t spool_memory_max;
	bool smtputf8;
	bool chunking;
	bool pipelining;
	bool enable_vrfy;
	/* SMTP AUTH (RFC 4954), smtpd only */
	struct sl_strlist auth_mechanisms; /* "PLAIN", "LOGIN", in order */
	bool auth_require_tls;
	unsigned int auth_max_failures; /* per session */
	unsigned int auth_failure_delay_ms;
	unsigned int auth_ip_max_failures; /* per client address; 0 = off */
	unsigned int auth_ip_window_ms;
	/* TLS (sluice-smtpd): the nth tls_key goes with the nth tls_cert */
	struct sl_strlist tls_cert;      /* PEM: certificate, then its chain */
	struct sl_strlist tls_key;       /* PEM private keys */
	struct sl_strlist tls_protocols; /* "TLSv1.2", "TLSv1.3" */
	char *tls_ciphers;               /* TLS <= 1.2 cipher list */
	char *tls_ciphersuites;          /* TLS 1.3 suites */
	int tls_client_certs;            /* enum sl_tls_ccert */
	char *tls_client_ca;             /* CA file for client certs */
	bool starttls;                   /* offer STARTTLS when certs exist */
	unsigned int tls_handshake_timeout_ms;
	/* DNS (resolver.h): servers as given; empty = /etc/resolv.conf */
	struct sl_strlist dns_servers;
	unsigned int dns_timeout_ms; /* per query */
	unsigned int dns_cache_size; /* entries; 0 = no cache */
	/* state store (shared/store.h) */
	int store;             /* enum sl_store_kind */
	char *store_path;      /* LMDB file; default state_dir/store.mdb */
	size_t store_map_size; /* LMDB map size */
	char *redis_server;    /* HOST:PORT or unix:/path */
	unsigned int redis_timeout_ms;
	int store_failure; /* enum sl_store_failure */
};

enum sl_tls_ccert {
	SL_TLS_CCERT_NO,      /* none asked for */
	SL_TLS_CCERT_ASK,     /* asked for; recorded, never required */
	SL_TLS_CCERT_REQUIRE, /* required and verified against tls_client_ca */
};

/* One "plugin NAME k=v ..." line, in chain order. */
struct sl_plugin_line {
	char *name;
	size_t nopts;
	char **keys;
	char **values;
	char *file; /* for error messages */
	unsigned int line;
};

struct sl_config {
	char *path;
	/* distinct for every configuration loaded in this process, so that
	 * per-loop state made from one (the resolver) sees a reload cheaply */
	unsigned long serial;
	struct sl_settings settings;
	char **where; /* per directive: "file:line" of its last line */
	struct sl_plugin_line *plugins;
	size_t nplugins;
};

extern const struct sl_conf_def sl_config_directives[];
/* The milter_socket_mode choices, as octal text. */
extern const char *const sl_milter_modes[];

/*
 * Reads path and everything it includes.  Returns a new config, or NULL
 * with *error_r set to an allocated "file:line: ..." message (free it).
 * Applies the defaults of every directive that was not given.
 */
struct sl_config *sl_config_load(const char *path, char **error_r);
void sl_config_free(struct sl_config **cp);
/*
 * "file:line" of the last line that set directive name, for errors found
 * after loading (a certificate that does not load); the config's path if
 * the directive was not given.
 */
const char *sl_config_where(const struct sl_config *cfg, const char *name);

/*
 * Applies "key=value" options to block according to defs: every key must
 * be in the table, values are parsed and bounds-checked, options not given
 * get their default.  base_dir resolves relative @file paths (may be
 * NULL).  Returns 0, or -1 with *error_r = allocated "key: reason".
 * Keys listed in ignore (NULL-terminated, may be NULL) are skipped:
 * the core uses this for options every plugin gets (name, reject, timeout,
 * skip).
 */
int sl_conf_table_apply(const struct sl_conf_def *defs, void *block,
    char *const *keys, char *const *values, size_t n, const char *base_dir,
    const char *const *ignore, char **error_r);
/* Frees what sl_conf_table_apply allocated inside block (not block). */
void sl_conf_table_free(const struct sl_conf_def *defs, void *block);

/*
 * Parses one value of a type into *out (a pointer to the field).  Used by
 * sl_conf_table_apply; exported for tests.  Returns 0, or -1 with *error_r
 * set (allocated).
 */
int sl_conf_parse_value(const struct sl_conf_def *def, const char *value,
    void *out, const char *base_dir, char **error_r);

#endif
