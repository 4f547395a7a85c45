/*
 * test_config.c - sluice.conf(5): the file syntax (comments, quoting,
 * include, @file lists, plugin lines), every value type's parser with
 * valid, invalid and boundary values, the option tables used for plugin
 * options, and the address helpers of <sluice/conf.h>.
 *
 * Each table case runs in its own directory under a mkdtemp(3) directory,
 * which is the current directory while it runs, so that error messages
 * read "sluice.conf:LINE: ..." exactly as a user would see them.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include <sluice/conf.h>

#include "config.h"
#include "xmalloc.h"

#define MAX_FILES 4
#define MAX_EXPECT 10

struct tfile {
	const char *name; /* relative to the case directory */
	const char *text;
};

struct expect {
	const char *name; /* a directive, or "plugins" / "plugin_where" */
	const char *value;
};

struct good_case {
	const char *conf;
	struct tfile files[MAX_FILES];
	struct expect expect[MAX_EXPECT];
};

struct bad_case {
	const char *conf;
	struct tfile files[MAX_FILES];
	const char *error; /* expected prefix */
};

static char tmpdir[] = "/tmp/sluice-test-config-XXXXXX";
static char *oldcwd;
static unsigned int ncase;

/* --- helpers -------------------------------------------------------- */

static void append(char **s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
append(char **s, const char *fmt, ...)
{
	va_list ap;
	char *more, *t;

	va_start(ap, fmt);
	more = sl_xvasprintf(fmt, ap);
	va_end(ap);
	t = sl_xasprintf("%s%s", *s, more);
	free(*s);
	free(more);
	*s = t;
}

/* Creates the directories leading to name. */
static void
make_parents(const char *name)
{
	char *copy, *slash;

	copy = sl_xstrdup(name);
	for (slash = strchr(copy, '/'); slash != NULL;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(copy, 0700) != 0)
			assert_int_equal(errno, EEXIST);
		*slash = '/';
	}
	free(copy);
}

static void
put_bytes(const char *name, const void *data, size_t len)
{
	FILE *fp;

	make_parents(name);
	fp = fopen(name, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
put_file(const char *name, const char *text)
{
	put_bytes(name, text, strlen(text));
}

/* Makes a fresh directory the current one. */
static void
enter_case_dir(void)
{
	char name[64];

	assert_int_equal(chdir(tmpdir), 0);
	(void)snprintf(name, sizeof(name), "case%u", ncase++);
	assert_int_equal(mkdir(name, 0700), 0);
	assert_int_equal(chdir(name), 0);
}

static void
put_case_files(const char *conf, const struct tfile *files)
{
	size_t i;

	enter_case_dir();
	put_file("sluice.conf", conf);
	for (i = 0; i < MAX_FILES && files[i].name != NULL; i++)
		put_file(files[i].name, files[i].text);
}

static const struct sl_conf_def *
find_directive(const struct sl_conf_def *defs, const char *name)
{
	size_t i;

	for (i = 0; defs[i].name != NULL; i++) {
		if (strcmp(defs[i].name, name) == 0)
			return &defs[i];
	}
	return NULL;
}

static void
render_cidrs(char **s, const struct sl_cidrlist *l)
{
	char text[INET6_ADDRSTRLEN];
	size_t i;

	for (i = 0; i < l->count; i++) {
		assert_non_null(
		    inet_ntop(AF_INET6, l->items[i].addr, text, sizeof(text)));
		append(s, "%s%s/%u", i > 0 ? "," : "", text,
		    l->items[i].prefix);
	}
}

/* The value of one option as text; lists are joined with ','. */
static char *
render_field(const struct sl_conf_def *def, const void *block)
{
	const void *p = (const char *)block + def->offset;
	const struct sl_strlist *l;
	char *s = sl_xstrdup("");
	size_t i;

	switch (def->type) {
	case SL_CONF_STR:
		append(&s, "%s",
		    *(char *const *)p != NULL ? *(char *const *)p : "(null)");
		break;
	case SL_CONF_INT:
		append(&s, "%lld", *(const long long *)p);
		break;
	case SL_CONF_UINT:
	case SL_CONF_MSEC:
		append(&s, "%u", *(const unsigned int *)p);
		break;
	case SL_CONF_SIZE:
		append(&s, "%zu", *(const size_t *)p);
		break;
	case SL_CONF_BOOL:
		append(&s, "%s", *(const bool *)p ? "yes" : "no");
		break;
	case SL_CONF_ENUM:
		append(&s, "%d", *(const int *)p);
		break;
	case SL_CONF_LIST:
		l = p;
		for (i = 0; i < l->count; i++)
			append(&s, "%s%s", i > 0 ? "," : "", l->items[i]);
		break;
	case SL_CONF_CIDRS:
		render_cidrs(&s, p);
		break;
	default:
		fail_msg("option %s: bad type", def->name);
	}
	return s;
}

static char *
render_plugins(const struct sl_config *cfg, bool where)
{
	const struct sl_plugin_line *pl;
	char *s = sl_xstrdup("");
	size_t i, j;

	for (i = 0; i < cfg->nplugins; i++) {
		pl = &cfg->plugins[i];
		if (where) {
			append(&s, "%s%s:%u", i > 0 ? ";" : "", pl->file,
			    pl->line);
			continue;
		}
		append(&s, "%s%s", i > 0 ? ";" : "", pl->name);
		for (j = 0; j < pl->nopts; j++)
			append(&s, " %s=%s", pl->keys[j], pl->values[j]);
	}
	return s;
}

static char *
render_setting(const struct sl_config *cfg, const char *name)
{
	const struct sl_conf_def *def;

	if (strcmp(name, "plugins") == 0)
		return render_plugins(cfg, false);
	if (strcmp(name, "plugin_where") == 0)
		return render_plugins(cfg, true);
	def = find_directive(sl_config_directives, name);
	if (def == NULL)
		fail_msg("no directive %s", name);
	return render_field(def, &cfg->settings);
}

static void
check_expect(size_t n, const struct sl_config *cfg, const struct expect *e)
{
	char *got;

	got = render_setting(cfg, e->name);
	if (strcmp(got, e->value) != 0)
		print_message("case %zu: %s: got '%s', want '%s'\n", n, e->name,
		    got, e->value);
	assert_string_equal(got, e->value);
	free(got);
}

/* Loads path expecting an error that starts with want. */
static void
check_error(size_t n, const char *path, const char *want)
{
	struct sl_config *cfg;
	char *error = NULL;

	cfg = sl_config_load(path, &error);
	if (cfg != NULL)
		print_message("case %zu: loaded, want error '%s'\n", n, want);
	assert_null(cfg);
	assert_non_null(error);
	if (strncmp(error, want, strlen(want)) != 0)
		print_message("case %zu: got '%s', want '%s...'\n", n, error,
		    want);
	assert_true(strncmp(error, want, strlen(want)) == 0);
	free(error);
}

static struct sl_config *
load_ok(const char *path)
{
	struct sl_config *cfg;
	char *error = NULL;

	cfg = sl_config_load(path, &error);
	if (cfg == NULL)
		fail_msg("%s: %s", path, error);
	assert_null(error);
	return cfg;
}

/* --- the configuration file ----------------------------------------- */

static const struct good_case good_cases[] = {
	/* comments, blank lines, tabs, CRLF, quoting */
	{ "# comment\n\n\t hostname\tmx.example.org   # trailing\r\n"
	  "banner \"ESMTP \\\"sluice\\\" \\\\ #ok\"\n"
	  "user \"\"\n"
	  "pid_file a#b\n",
	    {},
	    { { "hostname", "mx.example.org" },
	        { "banner", "ESMTP \"sluice\" \\ #ok" }, { "user", "" },
	        { "pid_file", "a#b" } } },
	/* a last line without LF; a token made of quoted parts */
	{ "state_dir /srv/\"my dir\"/x", {},
	    { { "state_dir", "/srv/my dir/x" },
	        { "spool_dir", "/srv/my dir/x/spool" } } },
	/* a scalar given twice keeps the last value */
	{ "worker_threads 8\nworker_threads 16\nhostname a\nhostname b\n", {},
	    { { "worker_threads", "16" }, { "hostname", "b" } } },
	/* a list given twice grows; commas and blanks separate items */
	{ "local_domains a.example, b.example\n"
	  "local_domains c.example\td.example,e.example ,, f.example\n"
	  "listen \"[::1]:25, 127.0.0.1:25\"\n",
	    {},
	    { { "local_domains",
	          "a.example,b.example,c.example,d.example,e.example,"
	          "f.example" },
	        { "listen", "[::1]:25,127.0.0.1:25" } } },
	/* an explicitly empty list does not get the default */
	{ "local_domains \"\"\nlisten \",\"\n", {},
	    { { "local_domains", "" }, { "listen", "" } } },
	/* @file lists: comments, blank lines, blanks around items */
	{ "local_domains a.example @domains z.example\n"
	  "milter_listen @milters\n",
	    { { "domains",
	          "# the domains\n\nx.example\n  y.example  # note\n"
	          "\t#\n" },
	        { "milters", "inet:8891@127.0.0.1\nunix:/run/m sock\n" } },
	    { { "local_domains", "a.example,x.example,y.example,z.example" },
	        { "milter_listen", "inet:8891@127.0.0.1,unix:/run/m sock" } } },
	/* include and @file are relative to the file that names them */
	{ "include sub/inc.conf\nhostname main\n",
	    { { "sub/inc.conf",
	          "hostname inc\nrelay_clients @nets\ninclude deeper.conf\n"
	          "plugin karma penalty=1\n" },
	        { "sub/nets", "10.0.0.0/8\n2001:db8::/32\n" },
	        { "sub/deeper.conf", "worker_threads 7\n" } },
	    { { "hostname", "main" },
	        { "relay_clients", "::ffff:10.0.0.0/104,2001:db8::/32" },
	        { "worker_threads", "7" },
	        { "plugin_where", "sub/inc.conf:4" } } },
	/* sizes and durations */
	{ "max_message_size 20M\nmax_header_size 1M\nspool_memory_max 0\n"
	  "max_command_line 64k\nmax_line_length 1048576\n"
	  "idle_timeout 1h\ndata_timeout 90\nproxy_timeout 1500ms\n"
	  "plugin_timeout 100ms\nshutdown_timeout 2m\n",
	    {},
	    { { "max_message_size", "20971520" },
	        { "max_header_size", "1048576" }, { "spool_memory_max", "0" },
	        { "max_command_line", "65536" },
	        { "max_line_length", "1048576" }, { "idle_timeout", "3600000" },
	        { "data_timeout", "90000" }, { "proxy_timeout", "1500" },
	        { "plugin_timeout", "100" },
	        { "shutdown_timeout", "120000" } } },
	/* upper and lower bounds are inclusive */
	{ "max_recipients 100\nmax_connections 1000000\nloop_threads 0\n"
	  "worker_threads 256\nmax_message_size 2G\nmax_errors 1\n"
	  "max_connections_per_ip 100000\nmax_unknown_commands 1000\n"
	  "idle_timeout 1s\n",
	    {},
	    { { "max_recipients", "100" }, { "max_connections", "1000000" },
	        { "loop_threads", "0" }, { "worker_threads", "256" },
	        { "max_message_size", "2147483648" }, { "max_errors", "1" },
	        { "max_connections_per_ip", "100000" },
	        { "max_unknown_commands", "1000" },
	        { "idle_timeout", "1000" } } },
	/* enums and booleans */
	{ "log_level debug\nplugin_default_action reject\n"
	  "bare_newline normalise\nsmtputf8 off\nchunking false\n"
	  "pipelining 0\nenable_vrfy Yes\n",
	    {},
	    { { "log_level", "7" }, { "plugin_default_action", "2" },
	        { "bare_newline", "1" }, { "smtputf8", "no" },
	        { "chunking", "no" }, { "pipelining", "no" },
	        { "enable_vrfy", "yes" } } },
	/* a closed list: items in the table's spelling, in the given order */
	{ "auth_mechanisms login\nauth_mechanisms Plain\n"
	  "auth_require_tls no\nauth_failure_delay 0\n"
	  "auth_ip_max_failures 0\nauth_ip_window 1s\n",
	    {},
	    { { "auth_mechanisms", "LOGIN,PLAIN" },
	        { "auth_require_tls", "no" }, { "auth_failure_delay", "0" },
	        { "auth_ip_max_failures", "0" },
	        { "auth_ip_window", "1000" } } },
	/* spool_dir: given, or derived from state_dir */
	{ "state_dir /srv/sluice/\nspool_dir /var/spool/sluice\n", {},
	    { { "state_dir", "/srv/sluice/" },
	        { "spool_dir", "/var/spool/sluice" } } },
	{ "state_dir /srv/sluice/\n", {},
	    { { "spool_dir", "/srv/sluice/spool" } } },
	/* networks */
	{ "trusted_proxies 127.0.0.1 ::1, 2001:db8::/48\n"
	  "trusted_proxies 192.0.2.77/24\n",
	    {},
	    { { "trusted_proxies",
	        "::ffff:127.0.0.1/128,::1/128,2001:db8::/48,"
	        "::ffff:192.0.2.0/120" } } },
	/* plugin lines: order, repeats, quoting, the first '=' splits */
	{ "plugin earlytalker\n"
	  "plugin dnsbl zone=zen.example reject=defer\n"
	  "# between\n"
	  "plugin dnsbl zone=\"b l.example\" skip=relay,auth\n"
	  "plugin queue/maildir dir=var/Maildir empty= x=a=b\n",
	    {},
	    { { "plugins",
	          "earlytalker;dnsbl zone=zen.example reject=defer;"
	          "dnsbl zone=b l.example skip=relay,auth;"
	          "queue/maildir dir=var/Maildir empty= x=a=b" },
	        { "plugin_where",
	            "sluice.conf:1;sluice.conf:2;sluice.conf:4;"
	            "sluice.conf:5" } } },
};

static void
test_good_configs(void **state)
{
	struct sl_config *cfg;
	size_t i, j;

	(void)state;
	for (i = 0; i < SL_NELEM(good_cases); i++) {
		put_case_files(good_cases[i].conf, good_cases[i].files);
		cfg = load_ok("sluice.conf");
		assert_string_equal(cfg->path, "sluice.conf");
		for (j = 0;
		     j < MAX_EXPECT && good_cases[i].expect[j].name != NULL;
		     j++)
			check_expect(i, cfg, &good_cases[i].expect[j]);
		sl_config_free(&cfg);
		assert_null(cfg);
	}
}

static const struct bad_case bad_cases[] = {
	{ "foo bar\n", {}, "sluice.conf:1: unknown directive 'foo'" },
	{ "Hostname x\n", {}, "sluice.conf:1: unknown directive 'Hostname'" },
	{ "\n# x\n  hostname   # no value\n", {},
	    "sluice.conf:3: hostname: missing value" },
	{ "listen\n", {}, "sluice.conf:1: listen: missing value" },
	{ "hostname a b\n", {}, "sluice.conf:1: hostname: too many values" },
	{ "max_message_size 10 M\n", {},
	    "sluice.conf:1: max_message_size: too many values" },
	{ "worker_threads 0\n", {},
	    "sluice.conf:1: worker_threads: value 0 out of range 1..256" },
	{ "worker_threads 257\n", {},
	    "sluice.conf:1: worker_threads: value 257 out of range 1..256" },
	{ "worker_threads -1\n", {},
	    "sluice.conf:1: worker_threads: invalid number '-1'" },
	{ "loop_threads 65\n", {},
	    "sluice.conf:1: loop_threads: value 65 out of range 0..64" },
	{ "max_recipients 99\n", {},
	    "sluice.conf:1: max_recipients: value 99 out of range "
	    "100..100000" },
	{ "max_connections 1000001\n", {},
	    "sluice.conf:1: max_connections: value 1000001 out of range "
	    "1..1000000" },
	{ "max_command_line 511\n", {},
	    "sluice.conf:1: max_command_line: value 511 out of range "
	    "512..64k" },
	{ "max_line_length 999\n", {},
	    "sluice.conf:1: max_line_length: value 999 out of range 1000..1M" },
	{ "max_message_size 3G\n", {},
	    "sluice.conf:1: max_message_size: value 3G out of range 1k..2G" },
	{ "max_message_size 99999999999999999999\n", {},
	    "sluice.conf:1: max_message_size: value 99999999999999999999 out "
	    "of range 1k..2G" },
	{ "max_message_size 10MB\n", {},
	    "sluice.conf:1: max_message_size: invalid size '10MB' (a number, "
	    "optionally followed by k, M or G)" },
	{ "spool_memory_max 65537k\n", {},
	    "sluice.conf:1: spool_memory_max: value 65537k out of range "
	    "0..64M" },
	{ "idle_timeout 2h\n", {},
	    "sluice.conf:1: idle_timeout: value 2h out of range 1s..1h" },
	{ "idle_timeout 999ms\n", {},
	    "sluice.conf:1: idle_timeout: value 999ms out of range 1s..1h" },
	{ "plugin_timeout 99ms\n", {},
	    "sluice.conf:1: plugin_timeout: value 99ms out of range "
	    "100ms..1h" },
	{ "idle_timeout 5min\n", {},
	    "sluice.conf:1: idle_timeout: invalid duration '5min' (a number "
	    "followed by ms, s, m or h)" },
	{ "smtputf8 maybe\n", {},
	    "sluice.conf:1: smtputf8: invalid boolean 'maybe' (expected yes or "
	    "no)" },
	{ "log_level loud\n", {},
	    "sluice.conf:1: log_level: invalid value 'loud' (expected one of: "
	    "error, warning, notice, info, debug)" },
	{ "auth_mechanisms PLAIN CRAM-MD5\n", {},
	    "sluice.conf:1: auth_mechanisms: invalid item 'CRAM-MD5' (expected "
	    "one of: PLAIN, LOGIN)" },
	{ "auth_failure_delay 31s\n", {},
	    "sluice.conf:1: auth_failure_delay: value 31s out of range "
	    "0..30s" },
	{ "bare_newline strip\n", {},
	    "sluice.conf:1: bare_newline: invalid value 'strip' (expected one "
	    "of: reject, normalise)" },
	{ "plugin_default_action defer\n", {},
	    "sluice.conf:1: plugin_default_action: invalid value 'defer' "
	    "(expected one of: tempfail, accept, reject)" },
	{ "relay_clients 10.0.0.0/8, 10.0.0.0/33\n", {},
	    "sluice.conf:1: relay_clients: invalid address or network "
	    "'10.0.0.0/33'" },
	{ "hostname h\nrelay_clients @nets\n",
	    { { "nets", "10.0.0.0/8\n\n# c\nbad\n" } },
	    "sluice.conf:2: relay_clients: nets:4: invalid address or network "
	    "'bad'" },
	{ "relay_clients @missing\n", {},
	    "sluice.conf:1: relay_clients: missing: No such file" },
	{ "local_domains a @\n", {},
	    "sluice.conf:1: local_domains: missing file name after '@'" },
	{ "banner \"unterminated\n", {},
	    "sluice.conf:1: unterminated quoted string" },
	{ "banner \"ends in a backslash\\\n", {},
	    "sluice.conf:1: unterminated quoted string" },
	{ "banner \"a\\nb\"\n", {},
	    "sluice.conf:1: invalid escape '\\n' in quoted string" },
	{ "include\n", {}, "sluice.conf:1: include: missing value" },
	{ "include a b\n", {}, "sluice.conf:1: include: too many values" },
	{ "hostname x\ninclude missing.conf\n", {},
	    "sluice.conf:2: include: missing.conf: No such file" },
	{ "include sub\n", { { "sub/x", "" } },
	    "sub:1: read error: Is a directory" },
	/* errors inside an included file name that file */
	{ "hostname x\ninclude sub/inc.conf\n",
	    { { "sub/inc.conf", "\nworker_threads x\n" } },
	    "sub/inc.conf:2: worker_threads: invalid number 'x'" },
	{ "include sub/inc.conf\n",
	    { { "sub/inc.conf", "include nope.conf\n" } },
	    "sub/inc.conf:1: include: sub/nope.conf: No such file" },
	{ "include sub/inc.conf\n",
	    { { "sub/inc.conf", "relay_clients @nets\n" },
	        { "sub/nets", "::1\n::1/129\n" } },
	    "sub/inc.conf:1: relay_clients: sub/nets:2: invalid address or "
	    "network '::1/129'" },
	/* include loops */
	{ "include sluice.conf\n", {},
	    "sluice.conf:1: include: sluice.conf: include loop" },
	{ "include a.conf\n",
	    { { "a.conf", "include b.conf\n" },
	        { "b.conf", "\ninclude ./a.conf\n" } },
	    "b.conf:2: include: ./a.conf: include loop" },
	/* plugin lines */
	{ "plugin\n", {}, "sluice.conf:1: plugin: missing value" },
	{ "plugin a=b\n", {},
	    "sluice.conf:1: plugin: invalid plugin name 'a=b'" },
	{ "plugin \"\"\n", {},
	    "sluice.conf:1: plugin: invalid plugin name ''" },
	{ "plugin dnsbl zone\n", {},
	    "sluice.conf:1: plugin dnsbl: option 'zone' needs key=value" },
	{ "plugin dnsbl =x\n", {},
	    "sluice.conf:1: plugin dnsbl: option '=x' has no key" },
	{ "plugin dnsbl zone=a reject=no zone=b\n", {},
	    "sluice.conf:1: plugin dnsbl: duplicate option 'zone'" },
	{ "plugin dnsbl zone=a zonex=b zone=c\n", {},
	    "sluice.conf:1: plugin dnsbl: duplicate option 'zone'" },
};

static void
test_bad_configs(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(bad_cases); i++) {
		put_case_files(bad_cases[i].conf, bad_cases[i].files);
		check_error(i, "sluice.conf", bad_cases[i].error);
	}
}

/* Every field of struct sl_settings, with its default. */
static const struct expect defaults[] = {
	{ "listen", "127.0.0.1:2525" },
	{ "proxy_listen", "" },
	{ "milter_listen", "" },
	{ "milter_socket_mode", "0" },
	{ "milter_timeout", "3600000" },
	{ "milter_progress_interval", "5000" },
	{ "user", "(null)" },
	{ "state_dir", "var" },
	{ "spool_dir", "var/spool" },
	{ "plugin_dir", "" },
	{ "pid_file", "(null)" },
	{ "banner", "(null)" },
	{ "local_domains", "localhost" },
	{ "relay_clients", "" },
	{ "trusted_proxies", "" },
	{ "loop_threads", "0" },
	{ "worker_threads", "4" },
	{ "max_connections", "1000" },
	{ "max_connections_per_ip", "50" },
	{ "max_command_line", "512" },
	{ "max_line_length", "1000" },
	{ "max_message_size", "10485760" },
	{ "max_header_size", "65536" },
	{ "max_recipients", "100" },
	{ "max_errors", "10" },
	{ "max_unknown_commands", "5" },
	{ "idle_timeout", "300000" },
	{ "data_timeout", "600000" },
	{ "proxy_timeout", "10000" },
	{ "shutdown_timeout", "30000" },
	{ "plugin_timeout", "30000" },
	{ "plugin_default_action", "0" },
	{ "bare_newline", "0" },
	{ "spool_memory_max", "262144" },
	{ "smtputf8", "yes" },
	{ "chunking", "yes" },
	{ "pipelining", "yes" },
	{ "enable_vrfy", "no" },
	{ "auth_mechanisms", "PLAIN,LOGIN" },
	{ "auth_require_tls", "yes" },
	{ "auth_max_failures", "3" },
	{ "auth_failure_delay", "1000" },
	{ "auth_ip_max_failures", "10" },
	{ "auth_ip_window", "3600000" },
	{ "smtps_listen", "" },
	{ "tls_cert", "" },
	{ "tls_key", "" },
	{ "tls_protocols", "TLSv1.2,TLSv1.3" },
	{ "tls_ciphers", "(null)" },
	{ "tls_ciphersuites", "(null)" },
	{ "tls_client_certs", "0" },
	{ "tls_client_ca", "(null)" },
	{ "starttls", "yes" },
	{ "tls_handshake_timeout", "30000" },
	{ "dns_servers", "" },
	{ "dns_timeout", "5000" },
	{ "dns_cache_size", "10000" },
	{ "store", "0" },
	{ "store_path", "var/store.mdb" },
	{ "store_map_size", "67108864" },
	{ "redis_server", "127.0.0.1:6379" },
	{ "redis_timeout", "1000" },
	{ "store_failure", "0" },
	{ "plugins", "" },
};

static void
test_defaults(void **state)
{
	struct sl_config *cfg;
	char host[HOST_NAME_MAX + 1];
	size_t i;

	(void)state;
	put_case_files("", (const struct tfile[]){ { NULL, NULL } });
	cfg = load_ok("sluice.conf");
	for (i = 0; i < SL_NELEM(defaults); i++)
		check_expect(i, cfg, &defaults[i]);
	assert_int_equal(cfg->settings.log_level, LOG_INFO);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	assert_string_equal(cfg->settings.hostname, host);
	assert_int_equal(cfg->nplugins, 0);
	sl_config_free(&cfg);
}

/* The table covers each field once, and its own rows are consistent. */
static void
test_directive_table(void **state)
{
	const struct sl_conf_def *d = sl_config_directives, *e;
	size_t i, j, n = 0;

	(void)state;
	for (i = 0; d[i].name != NULL; i++) {
		n++;
		assert_true(d[i].min <= d[i].max);
		assert_non_null(d[i].help);
		if (d[i].type == SL_CONF_ENUM)
			assert_non_null(d[i].choices);
		for (j = 0; j < i; j++) {
			assert_string_not_equal(d[i].name, d[j].name);
			assert_int_not_equal(d[i].offset, d[j].offset);
		}
		/* hostname and log_level are checked by test_defaults */
		if (strcmp(d[i].name, "hostname") == 0 ||
		    strcmp(d[i].name, "log_level") == 0)
			continue;
		for (j = 0; j < SL_NELEM(defaults); j++)
			if (strcmp(defaults[j].name, d[i].name) == 0)
				break;
		if (j == SL_NELEM(defaults))
			fail_msg("directive %s has no expected default",
			    d[i].name);
	}
	/* 65 fields in struct sl_settings */
	assert_int_equal(n, 65);
	e = find_directive(d, "idle_timeout");
	assert_non_null(e);
	assert_int_equal(e->offset,
	    offsetof(struct sl_settings, idle_timeout_ms));
}

static void
test_log_levels(void **state)
{
	static const struct {
		const char *name;
		int priority;
	} levels[] = { { "error", LOG_ERR }, { "warning", LOG_WARNING },
		{ "notice", LOG_NOTICE }, { "info", LOG_INFO },
		{ "debug", LOG_DEBUG } };
	struct sl_config *cfg;
	char *conf;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(levels); i++) {
		conf = sl_xasprintf("log_level %s\n", levels[i].name);
		put_case_files(conf, (const struct tfile[]){ { NULL, NULL } });
		free(conf);
		cfg = load_ok("sluice.conf");
		assert_int_equal(cfg->settings.log_level, levels[i].priority);
		sl_config_free(&cfg);
	}
}

static void
test_missing_main_file(void **state)
{
	char *error = NULL;

	(void)state;
	enter_case_dir();
	assert_null(sl_config_load("nonexistent.conf", &error));
	assert_string_equal(error,
	    "nonexistent.conf: No such file or "
	    "directory");
	free(error);
}

/* Writes n1.conf .. n<depth>.conf, each including the next. */
static void
write_chain(unsigned int depth)
{
	char name[32], *text;
	unsigned int i;

	put_file("sluice.conf", "include n1.conf\n");
	for (i = 1; i <= depth; i++) {
		(void)snprintf(name, sizeof(name), "n%u.conf", i);
		if (i < depth)
			text = sl_xasprintf("include n%u.conf\n", i + 1);
		else
			text = sl_xstrdup("worker_threads 9\n");
		put_file(name, text);
		free(text);
	}
}

static void
test_include_depth(void **state)
{
	struct sl_config *cfg;

	(void)state;
	enter_case_dir();
	write_chain(8);
	cfg = load_ok("sluice.conf");
	assert_int_equal(cfg->settings.worker_threads, 9);
	sl_config_free(&cfg);

	enter_case_dir();
	write_chain(9);
	check_error(0, "sluice.conf",
	    "n8.conf:1: include: nesting too deep (max 8)");
}

/* An absolute config path: includes and @files resolve next to it. */
static void
test_absolute_path(void **state)
{
	struct sl_config *cfg;
	char cwd[PATH_MAX], *path, *want;

	(void)state;
	put_case_files("include inc.conf\n",
	    (const struct tfile[]){ { "inc.conf", "local_domains @doms\n" },
	        { "doms", "example.org\n" }, { NULL, NULL } });
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	path = sl_xasprintf("%s/sluice.conf", cwd);
	assert_int_equal(chdir("/"), 0);
	cfg = load_ok(path);
	check_expect(0, cfg,
	    &(struct expect){ "local_domains", "example.org" });
	sl_config_free(&cfg);

	assert_int_equal(chdir(cwd), 0);
	put_file("doms", "example.org\nbad item\n");
	put_file("inc.conf", "relay_clients @doms\n");
	assert_int_equal(chdir("/"), 0);
	want = sl_xasprintf("%s/inc.conf:1: relay_clients: %s/doms:1: invalid "
	                    "address or network 'example.org'",
	    cwd, cwd);
	check_error(0, path, want);
	free(want);
	free(path);
}

/* Lines up to 64 KiB without their end are fine; longer ones are not. */
static void
test_long_lines(void **state)
{
	struct sl_config *cfg;
	char *text;
	size_t n = 65536;

	(void)state;
	text = sl_xmalloc(n + 3);
	memset(text, 'x', n + 2);
	memcpy(text, "banner ", 7);
	text[n] = '\r';
	text[n + 1] = '\n';
	text[n + 2] = '\0';
	put_case_files(text, (const struct tfile[]){ { NULL, NULL } });
	cfg = load_ok("sluice.conf");
	assert_int_equal(strlen(cfg->settings.banner), n - 7);
	sl_config_free(&cfg);

	text[n] = 'x';
	put_case_files(text, (const struct tfile[]){ { NULL, NULL } });
	check_error(0, "sluice.conf",
	    "sluice.conf:1: line too long (max 65536 bytes)");

	/* the same limit in an @file */
	enter_case_dir();
	put_file("sluice.conf", "\nlocal_domains @doms\n");
	put_file("doms", text);
	check_error(0, "sluice.conf",
	    "sluice.conf:2: local_domains: doms:1: line too long (max 65536 "
	    "bytes)");
	free(text);
}

static void
test_nul_byte(void **state)
{
	static const char conf[] = "hostname a\nbanner x\0y\n";

	(void)state;
	enter_case_dir();
	put_bytes("sluice.conf", conf, sizeof(conf) - 1);
	check_error(0, "sluice.conf", "sluice.conf:2: NUL byte in line");
}

static void
test_config_free_null(void **state)
{
	struct sl_config *cfg = NULL;

	(void)state;
	sl_config_free(NULL);
	sl_config_free(&cfg);
	assert_null(cfg);
}

/* --- value parsers -------------------------------------------------- */

struct opts {
	char *s;
	char *nodef;
	long long i;
	long long iu;
	unsigned int u;
	unsigned int uu;
	size_t sz;
	size_t szu;
	unsigned int ms;
	unsigned int msu;
	bool b;
	int e;
	struct sl_strlist l;
	struct sl_cidrlist c;
};

static const char *const colours[] = { "red", "green", "blue", NULL };

#define O(f) offsetof(struct opts, f)
static const struct sl_conf_def opt_defs[] = {
	{ .name = "s", .type = SL_CONF_STR, .def = "dflt", .offset = O(s) },
	{ .name = "nodef", .type = SL_CONF_STR, .offset = O(nodef) },
	{ .name = "i",
	    .type = SL_CONF_INT,
	    .def = "-3",
	    .min = -10,
	    .max = 10,
	    .offset = O(i) },
	{ .name = "iu", .type = SL_CONF_INT, .offset = O(iu) },
	{ .name = "u",
	    .type = SL_CONF_UINT,
	    .def = "5",
	    .min = 1,
	    .max = 100,
	    .offset = O(u) },
	{ .name = "uu", .type = SL_CONF_UINT, .offset = O(uu) },
	{ .name = "sz",
	    .type = SL_CONF_SIZE,
	    .def = "64k",
	    .min = 1024,
	    .max = 2147483648LL,
	    .offset = O(sz) },
	{ .name = "szu", .type = SL_CONF_SIZE, .offset = O(szu) },
	{ .name = "ms",
	    .type = SL_CONF_MSEC,
	    .def = "5s",
	    .min = 100,
	    .max = 3600000,
	    .offset = O(ms) },
	{ .name = "msu", .type = SL_CONF_MSEC, .offset = O(msu) },
	{ .name = "b", .type = SL_CONF_BOOL, .def = "yes", .offset = O(b) },
	{ .name = "e",
	    .type = SL_CONF_ENUM,
	    .def = "blue",
	    .offset = O(e),
	    .choices = colours },
	{ .name = "l", .type = SL_CONF_LIST, .def = "x, y", .offset = O(l) },
	{ .name = "c", .type = SL_CONF_CIDRS, .offset = O(c) },
	SL_CONF_END,
};
#undef O

struct value_case {
	const char *opt;
	const char *in;
	const char *want; /* the stored value, or the whole error */
	int rc;
};

static const struct value_case value_cases[] = {
	/* SL_CONF_STR */
	{ "s", "", "", 0 },
	{ "s", "a b", "a b", 0 },
	/* SL_CONF_INT */
	{ "i", "-10", "-10", 0 },
	{ "i", "10", "10", 0 },
	{ "i", "0", "0", 0 },
	{ "i", "-11", "i: value -11 out of range -10..10", -1 },
	{ "i", "11", "i: value 11 out of range -10..10", -1 },
	{ "i", "--1", "i: invalid number '--1'", -1 },
	{ "i", "+1", "i: invalid number '+1'", -1 },
	{ "i", "1.5", "i: invalid number '1.5'", -1 },
	{ "i", "", "i: invalid number ''", -1 },
	{ "iu", "-9223372036854775808", "-9223372036854775808", 0 },
	{ "iu", "9223372036854775807", "9223372036854775807", 0 },
	{ "iu", "9223372036854775808",
	    "iu: value 9223372036854775808 out of range "
	    "-9223372036854775808..9223372036854775807",
	    -1 },
	/* SL_CONF_UINT */
	{ "u", "1", "1", 0 },
	{ "u", "100", "100", 0 },
	{ "u", "007", "7", 0 },
	{ "u", "0", "u: value 0 out of range 1..100", -1 },
	{ "u", "101", "u: value 101 out of range 1..100", -1 },
	{ "u", "99999999999999999999999",
	    "u: value 99999999999999999999999 out of range 1..100", -1 },
	{ "u", "-1", "u: invalid number '-1'", -1 },
	{ "u", "+1", "u: invalid number '+1'", -1 },
	{ "u", " 1", "u: invalid number ' 1'", -1 },
	{ "u", "1x", "u: invalid number '1x'", -1 },
	{ "u", "0x10", "u: invalid number '0x10'", -1 },
	{ "u", "", "u: invalid number ''", -1 },
	{ "uu", "0", "0", 0 },
	{ "uu", "4294967295", "4294967295", 0 },
	{ "uu", "4294967296", "uu: value 4294967296 out of range 0..4294967295",
	    -1 },
	/* SL_CONF_SIZE */
	{ "sz", "1k", "1024", 0 },
	{ "sz", "1K", "1024", 0 },
	{ "sz", "1024", "1024", 0 },
	{ "sz", "3m", "3145728", 0 },
	{ "sz", "2G", "2147483648", 0 },
	{ "sz", "2g", "2147483648", 0 },
	{ "sz", "2048M", "2147483648", 0 },
	{ "sz", "1023", "sz: value 1023 out of range 1k..2G", -1 },
	{ "sz", "2049M", "sz: value 2049M out of range 1k..2G", -1 },
	{ "sz", "17179869184G", "sz: value 17179869184G out of range 1k..2G",
	    -1 },
	{ "sz", "1kb",
	    "sz: invalid size '1kb' (a number, optionally followed by k, M or "
	    "G)",
	    -1 },
	{ "sz", "k",
	    "sz: invalid size 'k' (a number, optionally followed by k, M or G)",
	    -1 },
	{ "sz", "1T",
	    "sz: invalid size '1T' (a number, optionally followed by k, M or "
	    "G)",
	    -1 },
	{ "sz", "-1k",
	    "sz: invalid size '-1k' (a number, optionally followed by k, M or "
	    "G)",
	    -1 },
	{ "szu", "0", "0", 0 },
	{ "szu", "18446744073709551615", "18446744073709551615", 0 },
	{ "szu", "17179869183G", "18446744072635809792", 0 },
	{ "szu", "18446744073709551616",
	    "szu: value 18446744073709551616 out of range "
	    "0..18446744073709551615",
	    -1 },
	{ "szu", "17179869184G",
	    "szu: value 17179869184G out of range 0..18446744073709551615",
	    -1 },
	/* SL_CONF_MSEC */
	{ "ms", "100ms", "100", 0 },
	{ "ms", "1h", "3600000", 0 },
	{ "ms", "60m", "3600000", 0 },
	{ "ms", "3600", "3600000", 0 },
	{ "ms", "2s", "2000", 0 },
	{ "ms", "99ms", "ms: value 99ms out of range 100ms..1h", -1 },
	{ "ms", "0", "ms: value 0 out of range 100ms..1h", -1 },
	{ "ms", "3601s", "ms: value 3601s out of range 100ms..1h", -1 },
	{ "ms", "5x",
	    "ms: invalid duration '5x' (a number followed by ms, s, m or h)",
	    -1 },
	{ "ms", "5S",
	    "ms: invalid duration '5S' (a number followed by ms, s, m or h)",
	    -1 },
	{ "ms", "5 s",
	    "ms: invalid duration '5 s' (a number followed by ms, s, m or h)",
	    -1 },
	{ "ms", "s",
	    "ms: invalid duration 's' (a number followed by ms, s, m or h)",
	    -1 },
	{ "msu", "4294967295ms", "4294967295", 0 },
	{ "msu", "4294967s", "4294967000", 0 },
	{ "msu", "4294968s", "msu: value 4294968s out of range 0..4294967295ms",
	    -1 },
	{ "msu", "5124095576030432h",
	    "msu: value 5124095576030432h out of range 0..4294967295ms", -1 },
	/* SL_CONF_BOOL */
	{ "b", "yes", "yes", 0 },
	{ "b", "no", "no", 0 },
	{ "b", "true", "yes", 0 },
	{ "b", "false", "no", 0 },
	{ "b", "on", "yes", 0 },
	{ "b", "off", "no", 0 },
	{ "b", "1", "yes", 0 },
	{ "b", "0", "no", 0 },
	{ "b", "YES", "yes", 0 },
	{ "b", "2", "b: invalid boolean '2' (expected yes or no)", -1 },
	{ "b", "", "b: invalid boolean '' (expected yes or no)", -1 },
	{ "b", "yes ", "b: invalid boolean 'yes ' (expected yes or no)", -1 },
	/* SL_CONF_ENUM */
	{ "e", "red", "0", 0 },
	{ "e", "green", "1", 0 },
	{ "e", "BLUE", "2", 0 },
	{ "e", "pink",
	    "e: invalid value 'pink' (expected one of: red, green, blue)", -1 },
	{ "e", "", "e: invalid value '' (expected one of: red, green, blue)",
	    -1 },
	/* SL_CONF_LIST */
	{ "l", "a,b c", "a,b,c", 0 },
	{ "l", " , a,,b\t, ", "a,b", 0 },
	{ "l", "", "", 0 },
	{ "l", "@", "l: missing file name after '@'", -1 },
	{ "l", "a @", "l: missing file name after '@'", -1 },
	/* SL_CONF_CIDRS */
	{ "c", "10.0.0.0/8", "::ffff:10.0.0.0/104", 0 },
	{ "c", "10.1.2.3/8", "::ffff:10.0.0.0/104", 0 },
	{ "c", "192.0.2.1", "::ffff:192.0.2.1/128", 0 },
	{ "c", "192.0.2.1/32", "::ffff:192.0.2.1/128", 0 },
	{ "c", "0.0.0.0/0", "::ffff:0.0.0.0/96", 0 },
	{ "c", "2001:db8::/32", "2001:db8::/32", 0 },
	{ "c", "2001:db8:ffff::1/33", "2001:db8:8000::/33", 0 },
	{ "c", "::/0", "::/0", 0 },
	{ "c", "::1", "::1/128", 0 },
	{ "c", "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104", 0 },
	{ "c", "10.0.0.0/8 2001:db8::/32", "::ffff:10.0.0.0/104,2001:db8::/32",
	    0 },
	{ "c", "10.0.0.0/33", "c: invalid address or network '10.0.0.0/33'",
	    -1 },
	{ "c", "2001:db8::/129",
	    "c: invalid address or network '2001:db8::/129'", -1 },
	{ "c", "10.0.0", "c: invalid address or network '10.0.0'", -1 },
	{ "c", "1.2.3.4/", "c: invalid address or network '1.2.3.4/'", -1 },
	{ "c", "1.2.3.4/-1", "c: invalid address or network '1.2.3.4/-1'", -1 },
	{ "c", "1.2.3.4/0008", "c: invalid address or network '1.2.3.4/0008'",
	    -1 },
	{ "c", "::1/1a", "c: invalid address or network '::1/1a'", -1 },
	{ "c", "/8", "c: invalid address or network '/8'", -1 },
	{ "c", "example.com", "c: invalid address or network 'example.com'",
	    -1 },
	{ "c", "fe80::1%eth0", "c: invalid address or network 'fe80::1%eth0'",
	    -1 },
	{ "c", "10.0.0.0/8, bad, 10.0.0.1",
	    "c: invalid address or network 'bad'", -1 },
};

static void
test_parse_value(void **state)
{
	const struct value_case *vc;
	const struct sl_conf_def *def;
	struct opts o;
	char *error, *got;
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < SL_NELEM(value_cases); i++) {
		vc = &value_cases[i];
		def = find_directive(opt_defs, vc->opt);
		assert_non_null(def);
		memset(&o, 0, sizeof(o));
		error = NULL;
		rc = sl_conf_parse_value(def, vc->in, (char *)&o + def->offset,
		    NULL, &error);
		got = rc == 0 ? render_field(def, &o) : sl_xstrdup(error);
		if (rc != vc->rc || strcmp(got, vc->want) != 0)
			print_message("case %zu: %s '%s': rc %d '%s'\n", i,
			    vc->opt, vc->in, rc, got);
		assert_int_equal(rc, vc->rc);
		assert_string_equal(got, vc->want);
		free(got);
		free(error);
		sl_conf_table_free(opt_defs, &o);
	}
}

/* A failed value leaves the field as it was; a scalar is replaced. */
static void
test_parse_value_keeps_old(void **state)
{
	const struct sl_conf_def *u = find_directive(opt_defs, "u");
	const struct sl_conf_def *s = find_directive(opt_defs, "s");
	struct opts o;
	char *error = NULL;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(sl_conf_parse_value(u, "42", &o.u, NULL, &error), 0);
	assert_int_equal(sl_conf_parse_value(u, "420", &o.u, NULL, &error), -1);
	free(error);
	assert_int_equal(o.u, 42);
	assert_int_equal(sl_conf_parse_value(s, "one", &o.s, NULL, &error), 0);
	assert_int_equal(sl_conf_parse_value(s, "two", &o.s, NULL, &error), 0);
	assert_string_equal(o.s, "two");
	assert_int_equal(sl_conf_parse_value(s, NULL, &o.s, NULL, &error), -1);
	assert_string_equal(error, "s: missing value");
	free(error);
	sl_conf_table_free(opt_defs, &o);
	assert_null(o.s);
}

/* --- option tables (plugin options) --------------------------------- */

static const char *const core_keys[] = { "name", "reject", "timeout", "skip",
	NULL };

struct kv {
	const char *key, *value;
};

static int
apply(const struct sl_conf_def *defs, void *block, const struct kv *kv,
    size_t n, const char *base_dir, char **error_r)
{
	char **keys, **values;
	size_t i;
	int rc;

	keys = sl_xcalloc(n, sizeof(*keys));
	values = sl_xcalloc(n, sizeof(*values));
	for (i = 0; i < n; i++) {
		keys[i] = sl_xstrdup(kv[i].key);
		values[i] = sl_xstrdup(kv[i].value);
	}
	rc = sl_conf_table_apply(defs, block, keys, values, n, base_dir,
	    core_keys, error_r);
	for (i = 0; i < n; i++) {
		free(keys[i]);
		free(values[i]);
	}
	free(keys);
	free(values);
	return rc;
}

static void
check_opt(const struct opts *o, const char *name, const char *want)
{
	char *got;

	got = render_field(find_directive(opt_defs, name), o);
	assert_string_equal(got, want);
	free(got);
}

static void
test_table_apply(void **state)
{
	static const struct kv kv[] = { { "u", "7" }, { "reject", "defer" },
		{ "l", "a, b" }, { "skip", "relay,auth" }, { "c", "::1" },
		{ "e", "red" } };
	struct opts o;
	char *error = NULL;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(apply(opt_defs, &o, kv, SL_NELEM(kv), NULL, &error),
	    0);
	assert_null(error);
	check_opt(&o, "u", "7");
	check_opt(&o, "l", "a,b");
	check_opt(&o, "c", "::1/128");
	check_opt(&o, "e", "0");
	/* defaults of the options not given */
	check_opt(&o, "s", "dflt");
	check_opt(&o, "nodef", "(null)");
	check_opt(&o, "i", "-3");
	check_opt(&o, "sz", "65536");
	check_opt(&o, "ms", "5000");
	check_opt(&o, "b", "yes");
	check_opt(&o, "uu", "0");
	sl_conf_table_free(opt_defs, &o);
	assert_null(o.s);
	assert_null(o.l.items);
	assert_int_equal(o.c.count, 0);

	/* a list not given gets its default */
	memset(&o, 0, sizeof(o));
	assert_int_equal(apply(opt_defs, &o, NULL, 0, NULL, &error), 0);
	check_opt(&o, "l", "x,y");
	sl_conf_table_free(opt_defs, &o);
}

static void
test_table_apply_file(void **state)
{
	static const struct kv kv[] = { { "c", "@nets 192.0.2.1" } };
	struct opts o;
	char *error = NULL, *dir, cwd[PATH_MAX];

	(void)state;
	enter_case_dir();
	put_file("conf.d/nets", "10.0.0.0/8\n");
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	dir = sl_xasprintf("%s/conf.d", cwd);
	assert_int_equal(chdir("/"), 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(apply(opt_defs, &o, kv, 1, dir, &error), 0);
	free(dir);
	check_opt(&o, "c", "::ffff:10.0.0.0/104,::ffff:192.0.2.1/128");
	sl_conf_table_free(opt_defs, &o);
}

struct apply_error_case {
	struct kv kv[3];
	size_t n;
	const char *error;
};

static const struct apply_error_case apply_errors[] = {
	{ { { "zone", "x" } }, 1,
	    "unknown option 'zone' (valid: s, nodef, i, iu, u, uu, sz, szu, "
	    "ms, msu, b, e, l, c, name, reject, timeout, skip)" },
	{ { { "u", "1" }, { "u", "2" } }, 2, "duplicate option 'u'" },
	{ { { "s", "x" }, { "l", "a" }, { "u", "0" } }, 3,
	    "u: value 0 out of range 1..100" },
	{ { { "l", "a" }, { "c", "a" } }, 2,
	    "c: invalid address or network 'a'" },
	{ { { "l", "@nonexistent-file" } }, 1,
	    "l: nonexistent-file: No such file" },
};

static void
test_table_apply_errors(void **state)
{
	const struct apply_error_case *ac;
	struct opts o;
	char *error;
	size_t i;

	(void)state;
	enter_case_dir();
	for (i = 0; i < SL_NELEM(apply_errors); i++) {
		ac = &apply_errors[i];
		memset(&o, 0, sizeof(o));
		error = NULL;
		assert_int_equal(
		    apply(opt_defs, &o, ac->kv, ac->n, NULL, &error), -1);
		if (strncmp(error, ac->error, strlen(ac->error)) != 0)
			print_message("case %zu: got '%s'\n", i, error);
		assert_true(strncmp(error, ac->error, strlen(ac->error)) == 0);
		free(error);
		/* what was stored before the error has been freed */
		assert_null(o.s);
		assert_null(o.l.items);
		assert_null(o.c.items);
		sl_conf_table_free(opt_defs, &o);
	}
}

/* Big tables do not list their options in the error. */
static void
test_table_apply_unknown_long(void **state)
{
	static const struct kv kv[] = { { "zone", "x" } };
	struct sl_settings s;
	char *error = NULL;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(apply(sl_config_directives, &s, kv, 1, NULL, &error),
	    -1);
	assert_string_equal(error, "unknown option 'zone'");
	free(error);
}

/* --- addresses and lists -------------------------------------------- */

static void
test_addr_parse(void **state)
{
	static const char *const bad[] = { "", "1.2.3", "1.2.3.4.5",
		"256.1.1.1", "1.2.3.4/8", "::g", "1:2:3:4:5:6:7:8:9", " ::1",
		"localhost" };
	uint8_t a[16], b[16];
	size_t i;

	(void)state;
	assert_int_equal(sl_addr_parse("192.0.2.1", a), 0);
	assert_int_equal(sl_addr_parse("::ffff:192.0.2.1", b), 0);
	assert_memory_equal(a, b, 16);
	assert_int_equal(a[10], 0xff);
	assert_int_equal(a[11], 0xff);
	assert_int_equal(a[12], 192);
	assert_int_equal(a[15], 1);
	assert_true(sl_addr_is_v4(a));
	assert_int_equal(sl_addr_parse("2001:db8::1", a), 0);
	assert_int_equal(a[0], 0x20);
	assert_int_equal(a[1], 0x01);
	assert_int_equal(a[15], 1);
	assert_false(sl_addr_is_v4(a));
	assert_int_equal(sl_addr_parse("::192.0.2.1", a), 0); /* compatible */
	assert_false(sl_addr_is_v4(a));
	for (i = 0; i < SL_NELEM(bad); i++) {
		if (sl_addr_parse(bad[i], a) != -1)
			fail_msg("'%s' parsed", bad[i]);
	}
}

struct match_case {
	const char *addr;
	bool in;
};

static void
check_matches(const char *nets, const struct match_case *mc, size_t n)
{
	const struct sl_conf_def *def = find_directive(opt_defs, "c");
	struct sl_cidrlist l = { NULL, 0 };
	char *error = NULL;
	uint8_t a[16];
	size_t i;

	assert_int_equal(sl_conf_parse_value(def, nets, &l, NULL, &error), 0);
	for (i = 0; i < n; i++) {
		assert_int_equal(sl_addr_parse(mc[i].addr, a), 0);
		if (sl_cidrlist_match(&l, a) != mc[i].in)
			fail_msg("%s in %s: want %d", mc[i].addr, nets,
			    mc[i].in);
	}
	free(l.items);
}

static void
test_cidr_match(void **state)
{
	static const struct match_case mixed[] = { { "10.1.2.3", true },
		{ "11.0.0.1", false }, { "9.255.255.255", false },
		{ "192.0.2.129", true }, { "192.0.2.255", true },
		{ "192.0.2.127", false }, { "::ffff:10.9.9.9", true },
		{ "2001:db8:1::5", true }, { "2001:db9::", false },
		{ "::1", true }, { "::2", false }, { "::a01:203", false } };
	static const struct match_case odd[] = { { "128.0.0.0", true },
		{ "200.1.1.1", true }, { "127.255.255.255", false },
		{ "8000::1", false } };
	static const struct match_case all6[] = { { "1.2.3.4", true },
		{ "2001:db8::1", true }, { "::", true } };
	static const struct match_case all4[] = { { "1.2.3.4", true },
		{ "255.255.255.255", true }, { "2001:db8::1", false },
		{ "::1", false } };
	static const struct match_case bits[] = { { "2001:db8:7fff::", false },
		{ "2001:db8:8000::", true }, { "2001:db8:ffff::1", true } };
	struct sl_cidrlist empty = { NULL, 0 };
	uint8_t a[16];

	(void)state;
	check_matches("10.0.0.0/8, 192.0.2.128/25 2001:db8::/32 ::1", mixed,
	    SL_NELEM(mixed));
	check_matches("128.0.0.0/1", odd, SL_NELEM(odd));
	check_matches("::/0", all6, SL_NELEM(all6));
	check_matches("0.0.0.0/0", all4, SL_NELEM(all4));
	check_matches("2001:db8:8000::/33", bits, SL_NELEM(bits));
	assert_int_equal(sl_addr_parse("10.0.0.1", a), 0);
	assert_false(sl_cidrlist_match(&empty, a));
	assert_false(sl_cidrlist_match(NULL, a));
}

static void
test_cidr_parse(void **state)
{
	struct sl_cidr c;

	(void)state;
	assert_int_equal(sl_cidr_parse("10.0.0.0/8", &c), 0);
	assert_int_equal(c.prefix, 104);
	assert_int_equal(sl_cidr_parse("192.0.2.7", &c), 0);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(sl_cidr_parse("2001:db8::/32", &c), 0);
	assert_int_equal(c.prefix, 32);
	assert_int_equal(sl_cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(c.prefix, 96);
	assert_int_equal(sl_cidr_parse("10.0.0.0/33", &c), -1);
	/* the longest textual address */
	assert_int_equal(
	    sl_cidr_parse("0000:0000:0000:0000:0000:ffff:255.255.255.255/127",
	        &c),
	    0);
	assert_int_equal(c.prefix, 127);
	assert_int_equal(
	    sl_cidr_parse("00000:0000:0000:0000:0000:ffff:255.255.255.255", &c),
	    -1);
	assert_int_equal(sl_cidr_parse("", &c), -1);
}

static void
test_strlist_has(void **state)
{
	static char a[] = "example.org", b[] = "Mail.Example.NET";
	char *items[] = { a, b };
	struct sl_strlist l = { items, 2 };
	struct sl_strlist empty = { NULL, 0 };

	(void)state;
	assert_true(sl_strlist_has(&l, "example.org"));
	assert_true(sl_strlist_has(&l, "EXAMPLE.ORG"));
	assert_true(sl_strlist_has(&l, "mail.example.net"));
	assert_false(sl_strlist_has(&l, "example"));
	assert_false(sl_strlist_has(&l, "example.org."));
	assert_false(sl_strlist_has(&l, "xample.org"));
	assert_false(sl_strlist_has(&l, ""));
	assert_false(sl_strlist_has(&empty, "example.org"));
	assert_false(sl_strlist_has(NULL, "example.org"));
}

/* --- fixtures ------------------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static int
group_setup(void **state)
{
	(void)state;
	oldcwd = getcwd(NULL, 0);
	if (oldcwd == NULL || mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	int rc;

	(void)state;
	rc = chdir(oldcwd);
	free(oldcwd);
	if (nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		rc = -1;
	return rc;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_configs),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_directive_table),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_missing_main_file),
		cmocka_unit_test(test_include_depth),
		cmocka_unit_test(test_absolute_path),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_config_free_null),
		cmocka_unit_test(test_parse_value),
		cmocka_unit_test(test_parse_value_keeps_old),
		cmocka_unit_test(test_table_apply),
		cmocka_unit_test(test_table_apply_file),
		cmocka_unit_test(test_table_apply_errors),
		cmocka_unit_test(test_table_apply_unknown_long),
		cmocka_unit_test(test_addr_parse),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_strlist_has),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
