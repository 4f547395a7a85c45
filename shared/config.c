/*
 * config.c - reads sluice.conf(5) into struct sl_config, and parses the
 * typed values of option tables (daemon directives and plugin options).
 *
 * Called once at start-up and on SIGHUP, on one thread.  Limits: a line
 * holds at most SL_CONF_LINE_MAX bytes (without its line end); includes
 * nest at most SL_CONF_INCLUDE_MAX deep; an included file that is already
 * being read is an error.  Every error carries "file:line: " and stops the
 * load; nothing is half-applied, the caller keeps its old config.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include <sluice/conf.h>

#include "config.h"
#include "log.h"
#include "resolver.h"
#include "xmalloc.h"

#define SL_CONF_LINE_MAX 65536
#define SL_CONF_INCLUDE_MAX 8

#define KIB 1024LL
#define MIB (1024LL * KIB)
#define GIB (1024LL * MIB)
#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

#define SET(f) offsetof(struct sl_settings, f)

static const char *const log_level_names[] = { "error", "warning", "notice",
	"info", "debug", NULL };
/* syslog priority of each log_level_names[] entry */
static const int log_level_values[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE,
	LOG_INFO, LOG_DEBUG };
static const char *const action_names[] = { "tempfail", "accept", "reject",
	NULL };
static const char *const bare_names[] = { "reject", "normalise", NULL };
static const char *const ccert_names[] = { "no", "ask", "require", NULL };
const char *const sl_milter_modes[] = { "0660", "0600", "0666", NULL };
/* The SASL mechanisms smtpd implements (smtpd/auth.c). */
static const char *const auth_mechanism_names[] = { "PLAIN", "LOGIN", NULL };
static const char *const store_names[] = { "lmdb", "redis", NULL };
static const char *const store_failure_names[] = { "open", "tempfail", NULL };

const struct sl_conf_def sl_config_directives[] = {
	{ .name = "hostname",
	    .type = SL_CONF_STR,
	    .offset = SET(hostname),
	    .help = "name in the banner and EHLO reply; default: gethostname" },
	{ .name = "listen",
	    .type = SL_CONF_LIST,
	    .def = "127.0.0.1:2525",
	    .offset = SET(listen),
	    .help = "SMTP listeners, addr:port or [v6]:port" },
	{ .name = "proxy_listen",
	    .type = SL_CONF_LIST,
	    .offset = SET(proxy_listen),
	    .help = "SMTP listeners expecting a PROXY protocol header" },
	{ .name = "smtps_listen",
	    .type = SL_CONF_LIST,
	    .offset = SET(smtps_listen),
	    .help = "implicit-TLS SMTP listeners (also: listen smtps ...)" },
	{ .name = "milter_listen",
	    .type = SL_CONF_LIST,
	    .offset = SET(milter_listen),
	    .help = "milter listeners, inet:port@addr, inet6:, unix:path" },
	{ .name = "milter_socket_mode",
	    .type = SL_CONF_ENUM,
	    .def = "0660",
	    .choices = sl_milter_modes,
	    .offset = SET(milter_socket_mode),
	    .help = "permissions of milter UNIX sockets" },
	{ .name = "milter_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "1h",
	    .min = 1 * SEC,
	    .max = 24 * HOUR,
	    .offset = SET(milter_timeout_ms),
	    .help = "wait for the MTA's next milter command" },
	{ .name = "milter_progress_interval",
	    .type = SL_CONF_MSEC,
	    .def = "5s",
	    .min = 100,
	    .max = 5 * MIN,
	    .offset = SET(milter_progress_ms),
	    .help = "SMFIR_PROGRESS period while a plugin works at end of "
	            "message" },
	{ .name = "user",
	    .type = SL_CONF_STR,
	    .offset = SET(user),
	    .help = "user to run as after binding the listeners" },
	{ .name = "state_dir",
	    .type = SL_CONF_STR,
	    .def = "var",
	    .offset = SET(state_dir),
	    .help = "directory for state files" },
	{ .name = "spool_dir",
	    .type = SL_CONF_STR,
	    .offset = SET(spool_dir),
	    .help = "directory for spooled messages; default state_dir/spool" },
	{ .name = "plugin_dir",
	    .type = SL_CONF_LIST,
	    .offset = SET(plugin_dir),
	    .help = "directories searched for plugins, in order" },
	{ .name = "pid_file",
	    .type = SL_CONF_STR,
	    .offset = SET(pid_file),
	    .help = "file that receives the daemon's process id" },
	{ .name = "log_level",
	    .type = SL_CONF_ENUM,
	    .def = "info",
	    .offset = SET(log_level),
	    .choices = log_level_names,
	    .help = "least important messages logged" },
	{ .name = "banner",
	    .type = SL_CONF_STR,
	    .offset = SET(banner),
	    .help = "text after \"220 hostname \" in the greeting" },
	{ .name = "local_domains",
	    .type = SL_CONF_LIST,
	    .def = "localhost",
	    .offset = SET(local_domains),
	    .help = "domains delivered here" },
	{ .name = "relay_clients",
	    .type = SL_CONF_CIDRS,
	    .offset = SET(relay_clients),
	    .help = "client networks allowed to relay" },
	{ .name = "trusted_proxies",
	    .type = SL_CONF_CIDRS,
	    .offset = SET(trusted_proxies),
	    .help = "peers whose PROXY header is believed" },
	{ .name = "loop_threads",
	    .type = SL_CONF_UINT,
	    .def = "0",
	    .min = 0,
	    .max = 64,
	    .offset = SET(loop_threads),
	    .help = "event loop threads; 0 = one per CPU" },
	{ .name = "worker_threads",
	    .type = SL_CONF_UINT,
	    .def = "4",
	    .min = 1,
	    .max = 256,
	    .offset = SET(worker_threads),
	    .help = "threads for blocking work" },
	{ .name = "max_connections",
	    .type = SL_CONF_UINT,
	    .def = "1000",
	    .min = 1,
	    .max = 1000000,
	    .offset = SET(max_connections),
	    .help = "concurrent connections" },
	{ .name = "max_connections_per_ip",
	    .type = SL_CONF_UINT,
	    .def = "50",
	    .min = 1,
	    .max = 100000,
	    .offset = SET(max_connections_per_ip),
	    .help = "concurrent connections from one address" },
	{ .name = "max_command_line",
	    .type = SL_CONF_SIZE,
	    .def = "512",
	    .min = 512,
	    .max = 64 * KIB,
	    .offset = SET(max_command_line),
	    .help = "bytes per command line, CRLF included" },
	{ .name = "max_line_length",
	    .type = SL_CONF_SIZE,
	    .def = "1000",
	    .min = 1000,
	    .max = 1 * MIB,
	    .offset = SET(max_line_length),
	    .help = "bytes per message text line, CRLF included" },
	{ .name = "max_message_size",
	    .type = SL_CONF_SIZE,
	    .def = "10M",
	    .min = 1 * KIB,
	    .max = 2 * GIB,
	    .offset = SET(max_message_size),
	    .help = "bytes per message" },
	{ .name = "max_header_size",
	    .type = SL_CONF_SIZE,
	    .def = "64k",
	    .min = 1 * KIB,
	    .max = 1 * MIB,
	    .offset = SET(max_header_size),
	    .help = "bytes of the header section" },
	{ .name = "max_recipients",
	    .type = SL_CONF_UINT,
	    .def = "100",
	    .min = 100, /* RFC 5321 4.5.3.1.8 */
	    .max = 100000,
	    .offset = SET(max_recipients),
	    .help = "recipients per message" },
	{ .name = "max_errors",
	    .type = SL_CONF_UINT,
	    .def = "10",
	    .min = 1,
	    .max = 1000,
	    .offset = SET(max_errors),
	    .help = "error replies before the client is disconnected" },
	{ .name = "max_unknown_commands",
	    .type = SL_CONF_UINT,
	    .def = "5",
	    .min = 1,
	    .max = 1000,
	    .offset = SET(max_unknown_commands),
	    .help = "unknown commands before the client is disconnected" },
	{ .name = "idle_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "5m",
	    .min = 1 * SEC,
	    .max = 1 * HOUR,
	    .offset = SET(idle_timeout_ms),
	    .help = "wait for a command" },
	{ .name = "data_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "10m",
	    .min = 1 * SEC,
	    .max = 1 * HOUR,
	    .offset = SET(data_timeout_ms),
	    .help = "wait for more message data" },
	{ .name = "proxy_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "10s",
	    .min = 1 * SEC,
	    .max = 1 * HOUR,
	    .offset = SET(proxy_timeout_ms),
	    .help = "wait for the PROXY header" },
	{ .name = "shutdown_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "30s",
	    .min = 1 * SEC,
	    .max = 1 * HOUR,
	    .offset = SET(shutdown_timeout_ms),
	    .help = "sessions may finish after SIGTERM" },
	{ .name = "plugin_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "30s",
	    .min = 100,
	    .max = 1 * HOUR,
	    .offset = SET(plugin_timeout_ms),
	    .help = "default time a plugin may take to answer" },
	{ .name = "plugin_default_action",
	    .type = SL_CONF_ENUM,
	    .def = "tempfail",
	    .offset = SET(plugin_default_action),
	    .choices = action_names,
	    .help = "verdict when a plugin fails or times out" },
	{ .name = "bare_newline",
	    .type = SL_CONF_ENUM,
	    .def = "reject",
	    .offset = SET(bare_newline),
	    .choices = bare_names,
	    .help = "what to do with a bare CR or LF in DATA" },
	{ .name = "spool_memory_max",
	    .type = SL_CONF_SIZE,
	    .def = "256k",
	    .min = 0,
	    .max = 64 * MIB,
	    .offset = SET(spool_memory_max),
	    .help = "message bytes kept in memory before spooling to disk" },
	{ .name = "smtputf8",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = SET(smtputf8),
	    .help = "offer SMTPUTF8 (RFC 6531)" },
	{ .name = "chunking",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = SET(chunking),
	    .help = "offer CHUNKING and BDAT (RFC 3030)" },
	{ .name = "pipelining",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = SET(pipelining),
	    .help = "offer PIPELINING (RFC 2920)" },
	{ .name = "enable_vrfy",
	    .type = SL_CONF_BOOL,
	    .def = "no",
	    .offset = SET(enable_vrfy),
	    .help = "answer VRFY instead of 252" },
	{ .name = "tls_cert",
	    .type = SL_CONF_LIST,
	    .offset = SET(tls_cert),
	    .help = "PEM certificate files (chain included), one per name" },
	{ .name = "tls_key",
	    .type = SL_CONF_LIST,
	    .offset = SET(tls_key),
	    .help = "PEM private key files, in tls_cert's order" },
	{ .name = "tls_protocols",
	    .type = SL_CONF_LIST,
	    .def = "TLSv1.2 TLSv1.3",
	    .offset = SET(tls_protocols),
	    .help = "TLS versions offered: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3" },
	{ .name = "tls_ciphers",
	    .type = SL_CONF_STR,
	    .offset = SET(tls_ciphers),
	    .help = "OpenSSL cipher list for TLS 1.2 and older" },
	{ .name = "tls_ciphersuites",
	    .type = SL_CONF_STR,
	    .offset = SET(tls_ciphersuites),
	    .help = "OpenSSL cipher suites for TLS 1.3" },
	{ .name = "tls_client_certs",
	    .type = SL_CONF_ENUM,
	    .def = "no",
	    .choices = ccert_names,
	    .offset = SET(tls_client_certs),
	    .help = "ask clients for certificates: no, ask, require" },
	{ .name = "tls_client_ca",
	    .type = SL_CONF_STR,
	    .offset = SET(tls_client_ca),
	    .help = "PEM file of the CAs client certificates are checked "
	            "against" },
	{ .name = "starttls",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = SET(starttls),
	    .help = "offer STARTTLS when tls_cert is set" },
	{ .name = "tls_handshake_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "30s",
	    .min = 1,
	    .max = 3600 * 1000,
	    .offset = SET(tls_handshake_timeout_ms),
	    .help = "time allowed for a TLS handshake" },
	{ .name = "dns_servers",
	    .type = SL_CONF_LIST,
	    .offset = SET(dns_servers),
	    .help = "DNS servers, ADDRESS[:PORT] or [IPV6]:PORT; "
	            "default: /etc/resolv.conf" },
	{ .name = "dns_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "5s",
	    .min = 100,
	    .max = 5 * MIN,
	    .offset = SET(dns_timeout_ms),
	    .help = "time one DNS query may take" },
	{ .name = "dns_cache_size",
	    .type = SL_CONF_UINT,
	    .def = "10000",
	    .min = 0,
	    .max = 10000000,
	    .offset = SET(dns_cache_size),
	    .help = "DNS answers kept in each loop's cache; 0 = no cache" },
	{ .name = "auth_mechanisms",
	    .type = SL_CONF_LIST,
	    .def = "PLAIN LOGIN",
	    .choices = auth_mechanism_names,
	    .offset = SET(auth_mechanisms),
	    .help = "SASL mechanisms offered with AUTH (RFC 4954)" },
	{ .name = "auth_require_tls",
	    .type = SL_CONF_BOOL,
	    .def = "yes",
	    .offset = SET(auth_require_tls),
	    .help = "offer and accept AUTH only over TLS" },
	{ .name = "auth_max_failures",
	    .type = SL_CONF_UINT,
	    .def = "3",
	    .min = 1,
	    .max = 100,
	    .offset = SET(auth_max_failures),
	    .help = "failed AUTH commands before the session is closed" },
	{ .name = "auth_failure_delay",
	    .type = SL_CONF_MSEC,
	    .def = "1s",
	    .min = 0,
	    .max = 30 * SEC,
	    .offset = SET(auth_failure_delay_ms),
	    .help = "delay of the first failure's reply; doubles each time" },
	{ .name = "auth_ip_max_failures",
	    .type = SL_CONF_UINT,
	    .def = "10",
	    .min = 0,
	    .max = 100000,
	    .offset = SET(auth_ip_max_failures),
	    .help = "failed AUTHs from one address per auth_ip_window; 0 = no "
	            "limit" },
	{ .name = "auth_ip_window",
	    .type = SL_CONF_MSEC,
	    .def = "1h",
	    .min = 1 * SEC,
	    .max = 24 * HOUR,
	    .offset = SET(auth_ip_window_ms),
	    .help = "how long a client address's failures are counted" },
	{ .name = "store",
	    .type = SL_CONF_ENUM,
	    .def = "lmdb",
	    .choices = store_names,
	    .offset = SET(store),
	    .help =
	        "state store back end: lmdb (local file) or redis (shared)" },
	{ .name = "store_path",
	    .type = SL_CONF_STR,
	    .offset = SET(store_path),
	    .help = "LMDB store file; default state_dir/store.mdb" },
	{ .name = "store_map_size",
	    .type = SL_CONF_SIZE,
	    .def = "64M",
	    .min = 1024 * 1024,
	    .max = 1LL << 40,
	    .offset = SET(store_map_size),
	    .help = "largest size the LMDB store may grow to" },
	{ .name = "redis_server",
	    .type = SL_CONF_STR,
	    .def = "127.0.0.1:6379",
	    .offset = SET(redis_server),
	    .help = "Redis server for store redis: HOST:PORT or unix:/path" },
	{ .name = "redis_timeout",
	    .type = SL_CONF_MSEC,
	    .def = "1s",
	    .min = 10,
	    .max = 1 * MIN,
	    .offset = SET(redis_timeout_ms),
	    .help = "time a Redis operation may take" },
	{ .name = "store_failure",
	    .type = SL_CONF_ENUM,
	    .def = "open",
	    .choices = store_failure_names,
	    .offset = SET(store_failure),
	    .help = "when the store is down: open (go on) or tempfail" },
	SL_CONF_END,
};

/* --- small helpers -------------------------------------------------- */

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void
strlist_add(struct sl_strlist *l, char *item)
{
	l->items = sl_xreallocarray(l->items, l->count + 1, sizeof(*l->items));
	l->items[l->count++] = item;
}

static void
strlist_clear(struct sl_strlist *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

/* The directory part of path: "." if it has none. */
static char *
dir_of(const char *path)
{
	const char *slash;

	slash = strrchr(path, '/');
	if (slash == NULL)
		return sl_xstrdup(".");
	if (slash == path)
		return sl_xstrdup("/");
	return sl_xstrndup(path, (size_t)(slash - path));
}

/* path relative to dir (NULL or "." = as given). */
static char *
join_path(const char *dir, const char *path)
{
	size_t len;

	if (path[0] == '/' || dir == NULL || strcmp(dir, ".") == 0)
		return sl_xstrdup(path);
	len = strlen(dir);
	if (len > 0 && dir[len - 1] == '/')
		return sl_xasprintf("%s%s", dir, path);
	return sl_xasprintf("%s/%s", dir, path);
}

enum line_status {
	LINE_OK,
	LINE_EOF,
	LINE_TOO_LONG,
	LINE_NUL,
	LINE_ERROR,
};

/* Room for the longest line, its CR and a NUL. */
#define LINE_BUF_SIZE (SL_CONF_LINE_MAX + 2)

/*
 * Reads one line into buf (LINE_BUF_SIZE bytes) without its LF or CRLF.
 * A last line without LF counts.
 */
static enum line_status
read_line(FILE *fp, char *buf, size_t *len_r)
{
	size_t len = 0;
	int c;

	while ((c = getc(fp)) != EOF && c != '\n') {
		if (c == '\0')
			return LINE_NUL;
		if (len > SL_CONF_LINE_MAX)
			return LINE_TOO_LONG;
		buf[len++] = (char)c;
	}
	if (c == EOF && ferror(fp))
		return LINE_ERROR;
	if (c == EOF && len == 0)
		return LINE_EOF;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > SL_CONF_LINE_MAX)
		return LINE_TOO_LONG;
	buf[len] = '\0';
	*len_r = len;
	return LINE_OK;
}

static char *
line_error(enum line_status st, int saved_errno)
{
	switch (st) {
	case LINE_TOO_LONG:
		return sl_xasprintf("line too long (max %d bytes)",
		    SL_CONF_LINE_MAX);
	case LINE_NUL:
		return sl_xstrdup("NUL byte in line");
	default:
		return sl_xasprintf("read error: %s", strerror(saved_errno));
	}
}

/* --- typed values --------------------------------------------------- */

/* Effective bounds of an unsigned option of type maximum type_max. */
static void
ubounds(const struct sl_conf_def *def, unsigned long long type_max,
    unsigned long long *lo_r, unsigned long long *hi_r)
{
	if (def->min == 0 && def->max == 0) {
		*lo_r = 0;
		*hi_r = type_max;
		return;
	}
	*lo_r = def->min > 0 ? (unsigned long long)def->min : 0;
	*hi_r = def->max > 0 ? (unsigned long long)def->max : 0;
	if (*hi_r > type_max)
		*hi_r = type_max;
}

struct unit {
	unsigned long long mult; /* 0 ends a table */
	const char *name;
};

static const struct unit size_units[] = { { GIB, "G" }, { MIB, "M" },
	{ KIB, "k" }, { 0, NULL } };
static const struct unit time_units[] = { { HOUR, "h" }, { MIN, "m" },
	{ SEC, "s" }, { 1, "ms" }, { 0, NULL } };

/* Renders v with the largest unit that divides it (for error messages). */
static void
fmt_unit(char *buf, size_t size, unsigned long long v, enum sl_conf_type type)
{
	const struct unit *u = NULL;
	size_t i;

	if (type == SL_CONF_SIZE)
		u = size_units;
	else if (type == SL_CONF_MSEC)
		u = time_units;
	for (i = 0; u != NULL && v != 0 && u[i].mult != 0; i++) {
		if (v % u[i].mult == 0) {
			(void)snprintf(buf, size, "%llu%s", v / u[i].mult,
			    u[i].name);
			return;
		}
	}
	(void)snprintf(buf, size, "%llu", v);
}

static char *
range_error(const struct sl_conf_def *def, const char *value,
    unsigned long long lo, unsigned long long hi)
{
	char los[32], his[32];

	fmt_unit(los, sizeof(los), lo, def->type);
	fmt_unit(his, sizeof(his), hi, def->type);
	return sl_xasprintf("%s: value %s out of range %s..%s", def->name,
	    value, los, his);
}

/*
 * Parses the decimal digits at the start of s; *end_r points after them.
 * Returns 0, -1 if s does not start with a digit, 1 on overflow.
 */
static int
parse_digits(const char *s, unsigned long long *v_r, const char **end_r)
{
	char *end;

	if (!is_digit(s[0]))
		return -1;
	errno = 0;
	*v_r = strtoull(s, &end, 10);
	*end_r = end;
	return errno == ERANGE ? 1 : 0;
}

/* Scales v by mult; 1 on overflow. */
static int
scale(unsigned long long *v, unsigned long long mult)
{
	if (*v > ULLONG_MAX / mult)
		return 1;
	*v *= mult;
	return 0;
}

static int
size_suffix(const char *s, unsigned long long *mult_r)
{
	if (s[0] == '\0') {
		*mult_r = 1;
		return 0;
	}
	if (s[1] != '\0')
		return -1;
	switch (s[0]) {
	case 'k':
	case 'K':
		*mult_r = KIB;
		return 0;
	case 'm':
	case 'M':
		*mult_r = MIB;
		return 0;
	case 'g':
	case 'G':
		*mult_r = GIB;
		return 0;
	default:
		return -1;
	}
}

static int
msec_suffix(const char *s, unsigned long long *mult_r)
{
	static const struct {
		const char *unit;
		unsigned long long mult;
	} units[] = { { "", SEC }, { "ms", 1 }, { "s", SEC }, { "m", MIN },
		{ "h", HOUR } };
	size_t i;

	for (i = 0; i < SL_NELEM(units); i++) {
		if (strcmp(s, units[i].unit) == 0) {
			*mult_r = units[i].mult;
			return 0;
		}
	}
	return -1;
}

#define SIZE_HINT "a number, optionally followed by k, M or G"
#define MSEC_HINT "a number followed by ms, s, m or h"

static char *
syntax_error(const struct sl_conf_def *def, const char *value)
{
	switch (def->type) {
	case SL_CONF_SIZE:
		return sl_xasprintf("%s: invalid size '%s' (" SIZE_HINT ")",
		    def->name, value);
	case SL_CONF_MSEC:
		return sl_xasprintf("%s: invalid duration '%s' (" MSEC_HINT ")",
		    def->name, value);
	default:
		return sl_xasprintf("%s: invalid number '%s'", def->name,
		    value);
	}
}

/*
 * Parses an unsigned value of type UINT, SIZE or MSEC into *v_r and checks
 * it against the bounds.
 */
static int
parse_unsigned(const struct sl_conf_def *def, const char *value,
    unsigned long long type_max, unsigned long long *v_r, char **error_r)
{
	const char *end;
	unsigned long long mult = 1, lo, hi;
	int rc;

	rc = parse_digits(value, v_r, &end);
	if (rc >= 0 && def->type == SL_CONF_SIZE)
		rc = size_suffix(end, &mult) != 0 ? -1 : rc;
	else if (rc >= 0 && def->type == SL_CONF_MSEC)
		rc = msec_suffix(end, &mult) != 0 ? -1 : rc;
	else if (rc >= 0 && *end != '\0')
		rc = -1;
	if (rc < 0) {
		*error_r = syntax_error(def, value);
		return -1;
	}
	ubounds(def, type_max, &lo, &hi);
	if (rc != 0 || scale(v_r, mult) != 0 || *v_r < lo || *v_r > hi) {
		*error_r = range_error(def, value, lo, hi);
		return -1;
	}
	return 0;
}

static int
parse_int(const struct sl_conf_def *def, const char *value, long long *out,
    char **error_r)
{
	long long v, lo = LLONG_MIN, hi = LLONG_MAX;
	char *end;
	const char *digits = value[0] == '-' ? value + 1 : value;

	if (!is_digit(digits[0])) {
		*error_r =
		    sl_xasprintf("%s: invalid number '%s'", def->name, value);
		return -1;
	}
	errno = 0;
	v = strtoll(value, &end, 10);
	if (*end != '\0') {
		*error_r =
		    sl_xasprintf("%s: invalid number '%s'", def->name, value);
		return -1;
	}
	if (def->min != 0 || def->max != 0) {
		lo = def->min;
		hi = def->max;
	}
	if (errno == ERANGE || v < lo || v > hi) {
		*error_r = sl_xasprintf("%s: value %s out of range %lld..%lld",
		    def->name, value, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_bool(const struct sl_conf_def *def, const char *value, bool *out,
    char **error_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < SL_NELEM(yes); i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	*error_r = sl_xasprintf("%s: invalid boolean '%s' (expected yes or no)",
	    def->name, value);
	return -1;
}

/* Appends ", name" for each of names to s (which it frees). */
static char *
append_names(char *s, const char *const *names)
{
	char *t;
	size_t i;

	for (i = 0; names != NULL && names[i] != NULL; i++) {
		t = sl_xasprintf("%s%s%s", s, s[0] != '\0' ? ", " : "",
		    names[i]);
		free(s);
		s = t;
	}
	return s;
}

static int
parse_enum(const struct sl_conf_def *def, const char *value, int *out,
    char **error_r)
{
	char *allowed;
	int i;

	for (i = 0; def->choices != NULL && def->choices[i] != NULL; i++) {
		if (strcasecmp(value, def->choices[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	allowed = append_names(sl_xstrdup(""), def->choices);
	*error_r = sl_xasprintf("%s: invalid value '%s' (expected one of: %s)",
	    def->name, value, allowed);
	free(allowed);
	return -1;
}

static int
list_add_item(const struct sl_conf_def *def, const char *item, void *out,
    char **reason_r)
{
	struct sl_cidrlist *cl = out;
	struct sl_cidr c;
	char *allowed;
	size_t i;

	if (def->type == SL_CONF_LIST && def->choices != NULL) {
		/* A closed list: the items are kept in the table's spelling. */
		for (i = 0; def->choices[i] != NULL; i++) {
			if (strcasecmp(item, def->choices[i]) == 0) {
				strlist_add(out, sl_xstrdup(def->choices[i]));
				return 0;
			}
		}
		allowed = append_names(sl_xstrdup(""), def->choices);
		*reason_r = sl_xasprintf("invalid item '%s' (expected one of: "
		                         "%s)",
		    item, allowed);
		free(allowed);
		return -1;
	}
	if (def->type == SL_CONF_LIST) {
		strlist_add(out, sl_xstrdup(item));
		return 0;
	}
	if (sl_cidr_parse(item, &c) != 0) {
		*reason_r =
		    sl_xasprintf("invalid address or network '%s'", item);
		return -1;
	}
	cl->items =
	    sl_xreallocarray(cl->items, cl->count + 1, sizeof(*cl->items));
	cl->items[cl->count++] = c;
	return 0;
}

/* The item on a line of an @file: comment and outer blanks removed. */
static char *
item_of_line(char *line)
{
	char *p, *end;

	for (p = line; *p != '\0'; p++) {
		if (*p == '#' && (p == line || is_blank(p[-1]))) {
			*p = '\0';
			break;
		}
	}
	while (is_blank(*line))
		line++;
	end = line + strlen(line);
	while (end > line && is_blank(end[-1]))
		*--end = '\0';
	return line;
}

/* Adds the items of file name (one per line) to the list at out. */
static int
list_read_file(const struct sl_conf_def *def, const char *name,
    const char *base_dir, void *out, char **error_r)
{
	char *path, *buf, *item, *reason = NULL;
	enum line_status st;
	unsigned int lineno = 0;
	size_t len;
	FILE *fp;
	int rc;

	path = join_path(base_dir, name);
	fp = fopen(path, "r");
	if (fp == NULL) {
		*error_r = sl_xasprintf("%s: %s: %s", def->name, path,
		    strerror(errno));
		free(path);
		return -1;
	}
	buf = sl_xmalloc(LINE_BUF_SIZE);
	while (reason == NULL && (st = read_line(fp, buf, &len)) != LINE_EOF) {
		lineno++;
		if (st != LINE_OK) {
			reason = line_error(st, errno);
			break;
		}
		item = item_of_line(buf);
		if (item[0] != '\0')
			(void)list_add_item(def, item, out, &reason);
	}
	rc = 0;
	if (reason != NULL) {
		*error_r = sl_xasprintf("%s: %s:%u: %s", def->name, path,
		    lineno, reason);
		rc = -1;
	}
	free(reason);
	free(buf);
	free(path);
	(void)fclose(fp);
	return rc;
}

#define LIST_SEPARATORS ", \t\r\f\v"

/* Appends the items of value ("a, b c", "@file") to the list at out. */
static int
parse_list(const struct sl_conf_def *def, const char *value, void *out,
    const char *base_dir, char **error_r)
{
	char *item, *reason = NULL;
	size_t n;
	int rc = 0;

	while (rc == 0) {
		value += strspn(value, LIST_SEPARATORS);
		if (*value == '\0')
			break;
		n = strcspn(value, LIST_SEPARATORS);
		item = sl_xstrndup(value, n);
		value += n;
		if (strcmp(item, "@") == 0) {
			*error_r = sl_xasprintf(
			    "%s: missing file name after '@'", def->name);
			rc = -1;
		} else if (item[0] == '@' &&
		    ((def->flags & SL_CONF_F_AT_LITERAL) == 0 ||
		        strchr(item, '/') != NULL)) {
			rc = list_read_file(def, item + 1, base_dir, out,
			    error_r);
		} else if (list_add_item(def, item, out, &reason) != 0) {
			*error_r = sl_xasprintf("%s: %s", def->name, reason);
			free(reason);
			rc = -1;
		}
		free(item);
	}
	return rc;
}

int
sl_conf_parse_value(const struct sl_conf_def *def, const char *value, void *out,
    const char *base_dir, char **error_r)
{
	unsigned long long v;

	if (value == NULL) {
		*error_r = sl_xasprintf("%s: missing value", def->name);
		return -1;
	}
	switch (def->type) {
	case SL_CONF_STR:
		free(*(char **)out);
		*(char **)out = sl_xstrdup(value);
		return 0;
	case SL_CONF_INT:
		return parse_int(def, value, out, error_r);
	case SL_CONF_UINT:
	case SL_CONF_MSEC:
		if (parse_unsigned(def, value, UINT_MAX, &v, error_r) != 0)
			return -1;
		*(unsigned int *)out = (unsigned int)v;
		return 0;
	case SL_CONF_SIZE:
		if (parse_unsigned(def, value, SIZE_MAX, &v, error_r) != 0)
			return -1;
		*(size_t *)out = (size_t)v;
		return 0;
	case SL_CONF_BOOL:
		return parse_bool(def, value, out, error_r);
	case SL_CONF_ENUM:
		return parse_enum(def, value, out, error_r);
	case SL_CONF_LIST:
	case SL_CONF_CIDRS:
		return parse_list(def, value, out, base_dir, error_r);
	default:
		*error_r = sl_xasprintf("%s: option of unknown type %d",
		    def->name, (int)def->type);
		return -1;
	}
}

/* --- option tables -------------------------------------------------- */

/* Above this many names, "unknown option" does not list them. */
#define UNKNOWN_LIST_MAX 20

static size_t
count_defs(const struct sl_conf_def *defs)
{
	size_t n = 0;

	while (defs[n].name != NULL)
		n++;
	return n;
}

static const struct sl_conf_def *
find_def(const struct sl_conf_def *defs, const char *name, size_t *index_r)
{
	size_t i;

	for (i = 0; defs[i].name != NULL; i++) {
		if (strcmp(defs[i].name, name) == 0) {
			*index_r = i;
			return &defs[i];
		}
	}
	return NULL;
}

static void *
field_of(const struct sl_conf_def *def, void *block)
{
	return (char *)block + def->offset;
}

static bool
in_list(const char *const *list, const char *s)
{
	size_t i;

	for (i = 0; list != NULL && list[i] != NULL; i++) {
		if (strcmp(list[i], s) == 0)
			return true;
	}
	return false;
}

static char *
unknown_option(const struct sl_conf_def *defs, const char *const *ignore,
    const char *key)
{
	char *names, *error;
	size_t i, n;

	n = count_defs(defs);
	for (i = 0; ignore != NULL && ignore[i] != NULL; i++)
		n++;
	if (n == 0 || n > UNKNOWN_LIST_MAX)
		return sl_xasprintf("unknown option '%s'", key);
	names = sl_xstrdup("");
	for (i = 0; defs[i].name != NULL; i++) {
		const char *one[] = { defs[i].name, NULL };

		names = append_names(names, one);
	}
	names = append_names(names, ignore);
	error = sl_xasprintf("unknown option '%s' (valid: %s)", key, names);
	free(names);
	return error;
}

/* Stores the default of every option not given. */
static int
apply_defaults(const struct sl_conf_def *defs, void *block, const bool *given,
    const char *base_dir, char **error_r)
{
	size_t i;

	for (i = 0; defs[i].name != NULL; i++) {
		if (given[i] || defs[i].def == NULL)
			continue;
		if (sl_conf_parse_value(&defs[i], defs[i].def,
		        field_of(&defs[i], block), base_dir, error_r) != 0)
			return -1;
	}
	return 0;
}

static int
apply_one(const struct sl_conf_def *defs, void *block, bool *given,
    const char *key, const char *value, const char *base_dir,
    const char *const *ignore, char **error_r)
{
	const struct sl_conf_def *def;
	size_t idx;

	if (in_list(ignore, key))
		return 0;
	def = find_def(defs, key, &idx);
	if (def == NULL) {
		*error_r = unknown_option(defs, ignore, key);
		return -1;
	}
	if (given[idx]) {
		*error_r = sl_xasprintf("duplicate option '%s'", key);
		return -1;
	}
	given[idx] = true;
	return sl_conf_parse_value(def, value, field_of(def, block), base_dir,
	    error_r);
}

/*
 * block must start zeroed (the loader callocs it).  On failure what was
 * stored is freed again, so the caller need not call sl_conf_table_free.
 */
int
sl_conf_table_apply(const struct sl_conf_def *defs, void *block,
    char *const *keys, char *const *values, size_t n, const char *base_dir,
    const char *const *ignore, char **error_r)
{
	bool *given;
	size_t i;
	int rc = 0;

	given = sl_xcalloc(count_defs(defs) + 1, sizeof(*given));
	for (i = 0; rc == 0 && i < n; i++)
		rc = apply_one(defs, block, given, keys[i], values[i], base_dir,
		    ignore, error_r);
	if (rc == 0)
		rc = apply_defaults(defs, block, given, base_dir, error_r);
	if (rc != 0)
		sl_conf_table_free(defs, block);
	free(given);
	return rc;
}

void
sl_conf_table_free(const struct sl_conf_def *defs, void *block)
{
	struct sl_cidrlist *cl;
	char **sp;
	size_t i;

	for (i = 0; defs[i].name != NULL; i++) {
		switch (defs[i].type) {
		case SL_CONF_STR:
			sp = field_of(&defs[i], block);
			free(*sp);
			*sp = NULL;
			break;
		case SL_CONF_LIST:
			strlist_clear(field_of(&defs[i], block));
			break;
		case SL_CONF_CIDRS:
			cl = field_of(&defs[i], block);
			free(cl->items);
			cl->items = NULL;
			cl->count = 0;
			break;
		default:
			break;
		}
	}
}

/* --- the configuration file ----------------------------------------- */

struct file_id {
	dev_t dev;
	ino_t ino;
};

struct loader {
	struct sl_config *cfg;
	bool *given; /* per sl_config_directives[] row */
	struct file_id open[SL_CONF_INCLUDE_MAX + 1]; /* files being read */
	size_t nopen;
};

/* Where a line came from, for "file:line: " prefixes. */
struct where {
	const char *file;
	const char *dir;
	unsigned int line;
};

static int load_file(struct loader *ld, const char *path, const char *ctx,
    char **error_r);

/* Sets *error_r to "file:line: reason" and frees reason. */
static int
fail_at(const struct where *w, char *reason, char **error_r)
{
	*error_r = sl_xasprintf("%s:%u: %s", w->file, w->line, reason);
	free(reason);
	return -1;
}

/* Copies one token at *pp into tok: blanks end it; "..." may be inside. */
static int
scan_token(const char **pp, char *tok, char **error_r)
{
	const char *p = *pp;
	size_t len = 0;

	while (*p != '\0' && !is_blank(*p)) {
		if (*p != '"') {
			tok[len++] = *p++;
			continue;
		}
		for (p++; *p != '"'; p++) {
			if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
				p++;
			} else if (*p == '\\' && p[1] != '\0') {
				*error_r = sl_xasprintf("invalid escape '\\%c' "
				                        "in quoted string",
				    p[1]);
				return -1;
			}
			if (*p == '\0') {
				*error_r = sl_xstrdup("unterminated quoted "
				                      "string");
				return -1;
			}
			tok[len++] = *p;
		}
		p++;
	}
	tok[len] = '\0';
	*pp = p;
	return 0;
}

/* Splits line into tokens; '#' at the start of a token ends the line. */
static int
tokenize(const char *line, struct sl_strlist *toks, char **error_r)
{
	char *tok;

	for (;;) {
		while (is_blank(*line))
			line++;
		if (*line == '\0' || *line == '#')
			return 0;
		tok = sl_xmalloc(strlen(line) + 1);
		if (scan_token(&line, tok, error_r) != 0) {
			free(tok);
			return -1;
		}
		strlist_add(toks, tok);
	}
}

static int
do_include(struct loader *ld, const struct where *w,
    const struct sl_strlist *toks, char **error_r)
{
	char *path, *ctx;
	int rc;

	if (toks->count == 1)
		return fail_at(w, sl_xstrdup("include: missing value"),
		    error_r);
	if (toks->count > 2)
		return fail_at(w, sl_xstrdup("include: too many values"),
		    error_r);
	if (ld->nopen > SL_CONF_INCLUDE_MAX)
		return fail_at(w,
		    sl_xasprintf("include: nesting too deep (max %d)",
		        SL_CONF_INCLUDE_MAX),
		    error_r);
	path = join_path(w->dir, toks->items[1]);
	ctx = sl_xasprintf("%s:%u: include: ", w->file, w->line);
	rc = load_file(ld, path, ctx, error_r);
	free(ctx);
	free(path);
	return rc;
}

/* Checks "key=value" options of a plugin line before anything is kept. */
static int
check_plugin_options(const struct where *w, const struct sl_strlist *toks,
    char **error_r)
{
	const char *name = toks->items[1], *opt, *eq;
	size_t i, j, klen;

	for (i = 2; i < toks->count; i++) {
		opt = toks->items[i];
		eq = strchr(opt, '=');
		if (eq == NULL)
			return fail_at(w,
			    sl_xasprintf("plugin %s: option '%s' needs "
			                 "key=value",
			        name, opt),
			    error_r);
		klen = (size_t)(eq - opt);
		if (klen == 0)
			return fail_at(w,
			    sl_xasprintf("plugin %s: option '%s' has no key",
			        name, opt),
			    error_r);
		for (j = 2; j < i; j++) {
			if (strncmp(toks->items[j], opt, klen + 1) == 0)
				return fail_at(w,
				    sl_xasprintf("plugin %s: duplicate option "
				                 "'%.*s'",
				        name, (int)klen, opt),
				    error_r);
		}
	}
	return 0;
}

static int
do_plugin(struct loader *ld, const struct where *w,
    const struct sl_strlist *toks, char **error_r)
{
	struct sl_config *cfg = ld->cfg;
	struct sl_plugin_line *pl;
	const char *opt, *eq;
	size_t i;

	if (toks->count == 1)
		return fail_at(w, sl_xstrdup("plugin: missing value"), error_r);
	if (toks->items[1][0] == '\0' || strchr(toks->items[1], '=') != NULL)
		return fail_at(w,
		    sl_xasprintf("plugin: invalid plugin name '%s'",
		        toks->items[1]),
		    error_r);
	if (check_plugin_options(w, toks, error_r) != 0)
		return -1;
	cfg->plugins = sl_xreallocarray(cfg->plugins, cfg->nplugins + 1,
	    sizeof(*cfg->plugins));
	pl = &cfg->plugins[cfg->nplugins++];
	pl->name = sl_xstrdup(toks->items[1]);
	pl->nopts = toks->count - 2;
	pl->keys = sl_xcalloc(pl->nopts, sizeof(*pl->keys));
	pl->values = sl_xcalloc(pl->nopts, sizeof(*pl->values));
	for (i = 0; i < pl->nopts; i++) {
		opt = toks->items[i + 2];
		eq = strchr(opt, '=');
		pl->keys[i] = sl_xstrndup(opt, (size_t)(eq - opt));
		pl->values[i] = sl_xstrdup(eq + 1);
	}
	pl->file = sl_xstrdup(w->file);
	pl->line = w->line;
	return 0;
}

static int
do_directive(struct loader *ld, const struct where *w,
    const struct sl_strlist *toks, char **error_r)
{
	const struct sl_conf_def *def;
	const char *name = toks->items[0];
	char *reason = NULL;
	size_t idx, i, first = 1;
	bool is_list;

	if (strcmp(name, "include") == 0)
		return do_include(ld, w, toks, error_r);
	if (strcmp(name, "plugin") == 0)
		return do_plugin(ld, w, toks, error_r);
	/* "listen smtps ADDR ..." is smtps_listen; "listen smtp" is listen */
	if (strcmp(name, "listen") == 0 && toks->count > 1 &&
	    (strcmp(toks->items[1], "smtps") == 0 ||
	        strcmp(toks->items[1], "smtp") == 0)) {
		if (toks->count == 2)
			return fail_at(w,
			    sl_xasprintf("listen %s: missing address",
			        toks->items[1]),
			    error_r);
		if (strcmp(toks->items[1], "smtps") == 0)
			name = "smtps_listen";
		first = 2;
	}
	def = find_def(sl_config_directives, name, &idx);
	if (def == NULL)
		return fail_at(w, sl_xasprintf("unknown directive '%s'", name),
		    error_r);
	if (toks->count == 1)
		return fail_at(w, sl_xasprintf("%s: missing value", name),
		    error_r);
	is_list = def->type == SL_CONF_LIST || def->type == SL_CONF_CIDRS;
	if (!is_list && toks->count > 2)
		return fail_at(w, sl_xasprintf("%s: too many values", name),
		    error_r);
	for (i = first; i < toks->count; i++) {
		if (sl_conf_parse_value(def, toks->items[i],
		        field_of(def, &ld->cfg->settings), w->dir,
		        &reason) != 0)
			return fail_at(w, reason, error_r);
	}
	ld->given[idx] = true;
	free(ld->cfg->where[idx]);
	ld->cfg->where[idx] = sl_xasprintf("%s:%u", w->file, w->line);
	return 0;
}

static int
do_line(struct loader *ld, const struct where *w, const char *line,
    char **error_r)
{
	struct sl_strlist toks = { NULL, 0 };
	char *reason = NULL;
	int rc = 0;

	if (tokenize(line, &toks, &reason) != 0)
		rc = fail_at(w, reason, error_r);
	else if (toks.count > 0)
		rc = do_directive(ld, w, &toks, error_r);
	strlist_clear(&toks);
	return rc;
}

static int
read_lines(struct loader *ld, FILE *fp, const char *path, char **error_r)
{
	struct where w = { path, NULL, 0 };
	enum line_status st;
	char *buf, *dir;
	size_t len;
	int rc = 0;

	dir = dir_of(path);
	w.dir = dir;
	buf = sl_xmalloc(LINE_BUF_SIZE);
	while (rc == 0 && (st = read_line(fp, buf, &len)) != LINE_EOF) {
		w.line++;
		if (st != LINE_OK)
			rc = fail_at(&w, line_error(st, errno), error_r);
		else
			rc = do_line(ld, &w, buf, error_r);
	}
	free(buf);
	free(dir);
	return rc;
}

/* ctx prefixes the errors of opening path ("file:line: include: "). */
static int
load_file(struct loader *ld, const char *path, const char *ctx, char **error_r)
{
	struct stat st;
	FILE *fp;
	size_t i;
	int rc;

	fp = fopen(path, "r");
	if (fp == NULL || fstat(fileno(fp), &st) != 0) {
		*error_r = sl_xasprintf("%s%s: %s", ctx, path, strerror(errno));
		if (fp != NULL)
			(void)fclose(fp);
		return -1;
	}
	for (i = 0; i < ld->nopen; i++) {
		if (ld->open[i].dev == st.st_dev &&
		    ld->open[i].ino == st.st_ino) {
			*error_r =
			    sl_xasprintf("%s%s: include loop", ctx, path);
			(void)fclose(fp);
			return -1;
		}
	}
	ld->open[ld->nopen].dev = st.st_dev;
	ld->open[ld->nopen].ino = st.st_ino;
	ld->nopen++;
	rc = read_lines(ld, fp, path, error_r);
	ld->nopen--;
	(void)fclose(fp);
	return rc;
}

static int
default_hostname(struct sl_settings *s, char **reason_r)
{
	char name[HOST_NAME_MAX + 1];

	if (gethostname(name, sizeof(name)) != 0) {
		*reason_r = sl_xasprintf("hostname: gethostname: %s; set "
		                         "hostname",
		    strerror(errno));
		return -1;
	}
	name[sizeof(name) - 1] = '\0';
	s->hostname = sl_xstrdup(name);
	return 0;
}

/* Defaults, and the settings derived from others. */
static int
finish(struct sl_config *cfg, const bool *given, char **error_r)
{
	struct sl_settings *s = &cfg->settings;
	char *dir, *reason = NULL, *csv;
	int rc;

	dir = dir_of(cfg->path);
	rc = apply_defaults(sl_config_directives, s, given, dir, &reason);
	free(dir);
	if (rc == 0 && s->hostname == NULL)
		rc = default_hostname(s, &reason);
	if (rc != 0) {
		*error_r = sl_xasprintf("%s: %s", cfg->path, reason);
		free(reason);
		return -1;
	}
	/* The enum gives an index into log_level_names, not a priority. */
	SL_ASSERT(s->log_level >= 0 &&
	    (size_t)s->log_level < SL_NELEM(log_level_values));
	s->log_level = log_level_values[s->log_level];
	if (s->spool_dir == NULL)
		s->spool_dir = join_path(s->state_dir, "spool");
	if (sl_dns_servers_csv(&s->dns_servers, &csv, &reason) != 0) {
		*error_r = sl_xasprintf("%s: dns_servers: %s",
		    sl_config_where(cfg, "dns_servers"), reason);
		free(reason);
		return -1;
	}
	free(csv);
	if (s->store_path == NULL)
		s->store_path = join_path(s->state_dir, "store.mdb");
	return 0;
}

struct sl_config *
sl_config_load(const char *path, char **error_r)
{
	struct sl_config *cfg;
	struct loader ld;

	static unsigned long serials;

	cfg = sl_xcalloc(1, sizeof(*cfg));
	cfg->path = sl_xstrdup(path);
	cfg->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
	memset(&ld, 0, sizeof(ld));
	ld.cfg = cfg;
	ld.given =
	    sl_xcalloc(count_defs(sl_config_directives), sizeof(*ld.given));
	cfg->where =
	    sl_xcalloc(count_defs(sl_config_directives), sizeof(*cfg->where));
	*error_r = NULL;
	if (load_file(&ld, path, "", error_r) != 0 ||
	    finish(cfg, ld.given, error_r) != 0)
		sl_config_free(&cfg);
	free(ld.given);
	return cfg;
}

static void
plugin_line_free(struct sl_plugin_line *pl)
{
	size_t i;

	for (i = 0; i < pl->nopts; i++) {
		free(pl->keys[i]);
		free(pl->values[i]);
	}
	free(pl->keys);
	free(pl->values);
	free(pl->name);
	free(pl->file);
}

void
sl_config_free(struct sl_config **cp)
{
	struct sl_config *cfg;
	size_t i;

	if (cp == NULL || *cp == NULL)
		return;
	cfg = *cp;
	sl_conf_table_free(sl_config_directives, &cfg->settings);
	for (i = 0; i < cfg->nplugins; i++)
		plugin_line_free(&cfg->plugins[i]);
	free(cfg->plugins);
	for (i = 0; cfg->where != NULL && sl_config_directives[i].name != NULL;
	     i++)
		free(cfg->where[i]);
	free(cfg->where);
	free(cfg->path);
	free(cfg);
	*cp = NULL;
}

const char *
sl_config_where(const struct sl_config *cfg, const char *name)
{
	size_t idx;

	if (find_def(sl_config_directives, name, &idx) == NULL ||
	    cfg->where[idx] == NULL)
		return cfg->path;
	return cfg->where[idx];
}
