/*
 * test_milter.c - a libmilter test milter driven by its command line, the
 * peer of sluice-milter-client and of the milter host plugin in tests.
 *
 *	test_milter -p SOCKET [-l LOGFILE] [-r STAGE[~MATCH]=VERDICT]...
 *	    [-e EDIT]... [-d MS] [-P PROTO] [-M STAGE=MACROS]... [-x MACRO]...
 *
 * -r picks the answer of a stage (connect helo mail rcpt data header eoh
 * body eom unknown): continue, accept, reject, tempfail, discard, skip,
 * or reject:TEXT / tempfail:TEXT ("550 5.7.1 text", set with
 * smfi_setreply).  With ~MATCH the rule applies only when the stage's
 * argument (host, HELO name, address, header name) contains MATCH; the
 * first rule that applies wins, the default is continue.
 * -e adds an edit made at end of message, in command-line order:
 * addheader NAME:VALUE, insheader IDX:NAME:VALUE, chgheader IDX:NAME:VALUE
 * (an empty value deletes), addrcpt ADDR, addrcpt_par ADDR:ARGS, delrcpt
 * ADDR, chgfrom ADDR[:ARGS], replbody TEXT (\r \n \t \\ escapes),
 * quarantine REASON, progress N (smfi_progress N times), sleep MS.  -d
 * sleeps MS milliseconds at end of message before the edits.  -P asks for these
 *SMFIP_* bits (NO*, NR_*) in xxfi_negotiate; -M asks for a macro list
 *(smfi_setsymlist).  -l logs each callback on one line with its arguments and
 *the macros i, j, {mail_addr}, {rcpt_addr}, {client_addr} (and each -x MACRO)
 *that are set.  "READY" goes to stderr once the socket listens; SIGUSR1 exits
 *at once (libmilter takes up to 5 s to act on SIGTERM).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#define MAX_RULES 64
#define MAX_EDITS 64
#define MAX_MACROS 16
#define LOG_BODY_MAX 200

enum stage {
	ST_CONNECT,
	ST_HELO,
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_HEADER,
	ST_EOH,
	ST_BODY,
	ST_EOM,
	ST_UNKNOWN,
	ST_NSTAGES
};

static const char *const stage_names[ST_NSTAGES] = { "connect", "helo", "mail",
	"rcpt", "data", "header", "eoh", "body", "eom", "unknown" };

struct rule {
	enum stage stage;
	char *match; /* NULL: always */
	sfsistat status;
	char *rcode, *xcode, *text; /* smfi_setreply arguments, or NULL */
};

enum edit_kind {
	ED_ADDHEADER,
	ED_INSHEADER,
	ED_CHGHEADER,
	ED_ADDRCPT,
	ED_ADDRCPT_PAR,
	ED_DELRCPT,
	ED_CHGFROM,
	ED_REPLBODY,
	ED_QUARANTINE,
	ED_PROGRESS,
	ED_SLEEP
};

struct edit {
	enum edit_kind kind;
	int idx;
	char *a, *b; /* name/value, address/args, text, reason */
	size_t len;  /* replbody length */
};

static struct rule rules[MAX_RULES];
static size_t nrules;
static struct edit edits[MAX_EDITS];
static size_t nedits;
static char *symlists[SMFIM_EOH + 1];
static char *log_macros[MAX_MACROS];
static size_t nlog_macros;
static unsigned long want_proto;
static long eom_delay_ms;
static FILE *log_fp;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: test_milter -p SOCKET [-l LOGFILE] "
	    "[-r STAGE[~MATCH]=VERDICT]...\n"
	    "\t[-e EDIT]... [-d MS] [-P PROTO] [-M STAGE=MACROS]... "
	    "[-x MACRO]...\n");
	exit(2);
}

static void
die(const char *what, const char *arg)
{
	fprintf(stderr, "test_milter: %s: %s\n", what, arg);
	exit(2);
}

static char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		die("out of memory", s);
	return p;
}

static long
parse_num(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		die("bad number", s);
	return v;
}

/* ---------------------------------------------------------------- log */

/* Writes s[0..len) to f, control bytes and backslash as C escapes. */
static void
put_escaped(FILE *f, const char *s, size_t len)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '\r')
			fputs("\\r", f);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c == '\\')
			fputs("\\\\", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

static void
log_macro(FILE *f, SMFICTX *ctx, const char *name)
{
	char buf[128];
	const char *v;

	snprintf(buf, sizeof(buf), "%s", name);
	if ((v = smfi_getsymval(ctx, buf)) == NULL)
		return;
	fprintf(f, " %s=", name);
	put_escaped(f, v, strlen(v));
}

/*
 * One line: the event, its arguments (printf format; the caller escapes
 * them), " |" and the macros that are set.
 */
static void __attribute__((format(printf, 2, 3)))
logev(SMFICTX *ctx, const char *fmt, ...)
{
	static const char *const std[] = { "i", "j", "{mail_addr}",
		"{rcpt_addr}", "{client_addr}" };
	va_list ap;
	size_t i;

	if (log_fp == NULL)
		return;
	pthread_mutex_lock(&log_lock);
	va_start(ap, fmt);
	vfprintf(log_fp, fmt, ap);
	va_end(ap);
	if (ctx != NULL) {
		fputs(" |", log_fp);
		for (i = 0; i < sizeof(std) / sizeof(std[0]); i++)
			log_macro(log_fp, ctx, std[i]);
		for (i = 0; i < nlog_macros; i++)
			log_macro(log_fp, ctx, log_macros[i]);
	}
	fputc('\n', log_fp);
	fflush(log_fp);
	pthread_mutex_unlock(&log_lock);
}

/* Logs "event arg" with arg escaped. */
static void
logev_arg(SMFICTX *ctx, const char *event, const char *arg, size_t len)
{
	char *buf;
	size_t n;
	FILE *f;

	if (log_fp == NULL)
		return;
	buf = NULL;
	n = 0;
	if ((f = open_memstream(&buf, &n)) == NULL)
		die("open_memstream", strerror(errno));
	put_escaped(f, arg, len);
	fclose(f);
	logev(ctx, "%s %s", event, buf);
	free(buf);
}

static void
logev_argv(SMFICTX *ctx, const char *event, char **argv)
{
	char *buf;
	size_t n, i;
	FILE *f;

	buf = NULL;
	n = 0;
	if ((f = open_memstream(&buf, &n)) == NULL)
		die("open_memstream", strerror(errno));
	for (i = 0; argv[i] != NULL; i++) {
		if (i > 0)
			fputc(' ', f);
		fputs(argv[i], f);
	}
	fclose(f);
	logev_arg(ctx, event, buf, n);
	free(buf);
}

/* ---------------------------------------------------------------- rules */

static sfsistat
answer(SMFICTX *ctx, enum stage st, const char *arg)
{
	size_t i;
	struct rule *r;

	for (i = 0; i < nrules; i++) {
		r = &rules[i];
		if (r->stage != st)
			continue;
		if (r->match != NULL &&
		    (arg == NULL || strstr(arg, r->match) == NULL))
			continue;
		if (r->rcode != NULL &&
		    smfi_setreply(ctx, r->rcode, r->xcode, r->text) !=
		        MI_SUCCESS)
			logev(NULL, "%s setreply failed", stage_names[st]);
		return r->status;
	}
	return SMFIS_CONTINUE;
}

static void
parse_reply_text(struct rule *r, const char *text)
{
	const char *p, *sp;

	/* "550 5.7.1 text": code, optional enhanced code, text. */
	if (strlen(text) < 3)
		die("bad reply text", text);
	r->rcode = strndup(text, 3);
	p = text + 3;
	while (*p == ' ')
		p++;
	if (*p >= '2' && *p <= '5' && p[1] == '.') {
		sp = strchr(p, ' ');
		r->xcode =
		    sp == NULL ? xstrdup(p) : strndup(p, (size_t)(sp - p));
		p = sp == NULL ? "" : sp + 1;
	}
	r->text = *p == '\0' ? NULL : xstrdup(p);
	if (r->rcode == NULL)
		die("out of memory", text);
}

static void
parse_rule(const char *spec)
{
	static const struct {
		const char *name;
		sfsistat status;
	} verdicts[] = {
		{ "continue", SMFIS_CONTINUE },
		{ "accept", SMFIS_ACCEPT },
		{ "reject", SMFIS_REJECT },
		{ "tempfail", SMFIS_TEMPFAIL },
		{ "discard", SMFIS_DISCARD },
		{ "skip", SMFIS_SKIP },
	};
	struct rule *r;
	const char *eq, *v, *colon;
	char *st;
	size_t i, vlen;

	if (nrules == MAX_RULES)
		die("too many rules", spec);
	r = &rules[nrules];
	if ((eq = strchr(spec, '=')) == NULL)
		die("rule needs STAGE=VERDICT", spec);
	if ((st = strndup(spec, (size_t)(eq - spec))) == NULL)
		die("out of memory", spec);
	if ((r->match = strchr(st, '~')) != NULL)
		*r->match++ = '\0';
	for (i = 0; i < ST_NSTAGES; i++)
		if (strcmp(st, stage_names[i]) == 0)
			break;
	if (i == ST_NSTAGES)
		die("unknown stage", spec);
	r->stage = (enum stage)i;
	v = eq + 1;
	colon = strchr(v, ':');
	vlen = colon != NULL ? (size_t)(colon - v) : strlen(v);
	for (i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++)
		if (strlen(verdicts[i].name) == vlen &&
		    strncmp(v, verdicts[i].name, vlen) == 0)
			break;
	if (i == sizeof(verdicts) / sizeof(verdicts[0]))
		die("unknown verdict", spec);
	r->status = verdicts[i].status;
	if (colon != NULL) {
		if (r->status != SMFIS_REJECT && r->status != SMFIS_TEMPFAIL)
			die("reply text needs reject or tempfail", spec);
		parse_reply_text(r, colon + 1);
	}
	nrules++;
}

/* Splits "A:B" at the first colon; B is NULL without one. */
static void
split2(const char *s, char **a_r, char **b_r)
{
	const char *c;

	if ((c = strchr(s, ':')) == NULL) {
		*a_r = xstrdup(s);
		*b_r = NULL;
		return;
	}
	if ((*a_r = strndup(s, (size_t)(c - s))) == NULL)
		die("out of memory", s);
	*b_r = xstrdup(c + 1);
}

static char *
unescape(const char *s, size_t *len_r)
{
	char *out, *o;

	out = o = malloc(strlen(s) + 1);
	if (out == NULL)
		die("out of memory", s);
	for (; *s != '\0'; s++) {
		if (*s != '\\' || s[1] == '\0') {
			*o++ = *s;
			continue;
		}
		s++;
		*o++ = *s == 'r' ? '\r'
		    : *s == 'n'  ? '\n'
		    : *s == 't'  ? '\t'
		                 : *s;
	}
	*o = '\0';
	*len_r = (size_t)(o - out);
	return out;
}

static void
parse_edit(const char *spec)
{
	static const char *const kinds[] = { "addheader", "insheader",
		"chgheader", "addrcpt", "addrcpt_par", "delrcpt", "chgfrom",
		"replbody", "quarantine", "progress", "sleep" };
	struct edit *e;
	const char *sp, *arg;
	char *idx;
	size_t i, klen;

	if (nedits == MAX_EDITS)
		die("too many edits", spec);
	e = &edits[nedits];
	sp = strchr(spec, ' ');
	klen = sp != NULL ? (size_t)(sp - spec) : strlen(spec);
	arg = sp != NULL ? sp + 1 : "";
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i]) == klen &&
		    strncmp(spec, kinds[i], klen) == 0)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0]))
		die("unknown edit", spec);
	e->kind = (enum edit_kind)i;
	switch (e->kind) {
	case ED_INSHEADER:
	case ED_CHGHEADER:
		split2(arg, &idx, &e->a);
		if (e->a == NULL)
			die("edit needs IDX:NAME:VALUE", spec);
		e->idx = (int)parse_num(idx, 0, 1000000);
		free(idx);
		idx = e->a;
		split2(idx, &e->a, &e->b);
		free(idx);
		if (e->b == NULL)
			die("edit needs IDX:NAME:VALUE", spec);
		break;
	case ED_ADDHEADER:
		split2(arg, &e->a, &e->b);
		if (e->b == NULL)
			die("edit needs NAME:VALUE", spec);
		break;
	case ED_ADDRCPT_PAR:
	case ED_CHGFROM:
		split2(arg, &e->a, &e->b);
		break;
	case ED_REPLBODY:
		e->a = unescape(arg, &e->len);
		break;
	case ED_PROGRESS:
		e->idx = (int)parse_num(arg, 0, 1000);
		break;
	case ED_SLEEP:
		e->idx = (int)parse_num(arg, 0, 3600000);
		break;
	default:
		e->a = xstrdup(arg);
		break;
	}
	nedits++;
}

static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		continue;
}

static int
do_edit(SMFICTX *ctx, const struct edit *e)
{
	int i, rc;

	switch (e->kind) {
	case ED_ADDHEADER:
		return smfi_addheader(ctx, e->a, e->b);
	case ED_INSHEADER:
		return smfi_insheader(ctx, e->idx, e->a, e->b);
	case ED_CHGHEADER:
		return smfi_chgheader(ctx, e->a, e->idx,
		    e->b[0] == '\0' ? NULL : e->b);
	case ED_ADDRCPT:
		return smfi_addrcpt(ctx, e->a);
	case ED_ADDRCPT_PAR:
		return smfi_addrcpt_par(ctx, e->a, e->b);
	case ED_DELRCPT:
		return smfi_delrcpt(ctx, e->a);
	case ED_CHGFROM:
		return smfi_chgfrom(ctx, e->a, e->b);
	case ED_REPLBODY:
		return smfi_replacebody(ctx, (unsigned char *)e->a,
		    (int)e->len);
	case ED_QUARANTINE:
		return smfi_quarantine(ctx, e->a);
	case ED_PROGRESS:
		for (i = 0, rc = MI_SUCCESS; i < e->idx && rc == MI_SUCCESS;
		     i++)
			rc = smfi_progress(ctx);
		return rc;
	case ED_SLEEP:
		sleep_ms(e->idx);
		return MI_SUCCESS;
	}
	return MI_FAILURE;
}

/* ---------------------------------------------------------------- callbacks */

static sfsistat
t_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1,
    unsigned long *pf2, unsigned long *pf3)
{
	int i;

	(void)f2;
	(void)f3;
	logev(NULL, "negotiate actions=0x%lx protocol=0x%lx", f0, f1);
	*pf0 = f0;
	*pf1 = f1 & (want_proto | SMFIP_SKIP);
	*pf2 = *pf3 = 0;
	for (i = 0; i <= SMFIM_EOH; i++)
		if (symlists[i] != NULL &&
		    smfi_setsymlist(ctx, i, symlists[i]) != MI_SUCCESS)
			logev(NULL, "setsymlist %d failed", i);
	return SMFIS_CONTINUE;
}

static sfsistat
t_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	char addr[INET6_ADDRSTRLEN];
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (sa == NULL) {
		logev(ctx, "connect %s unknown", host);
	} else if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		logev(ctx, "connect %s inet %s %u", host, addr,
		    (unsigned)ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		logev(ctx, "connect %s inet6 %s %u", host, addr,
		    (unsigned)ntohs(sin6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		logev(ctx, "connect %s unix %s", host,
		    ((const struct sockaddr_un *)(const void *)sa)->sun_path);
	} else {
		logev(ctx, "connect %s family=%d", host, (int)sa->sa_family);
	}
	return answer(ctx, ST_CONNECT, host);
}

static sfsistat
t_helo(SMFICTX *ctx, char *helo)
{
	logev_arg(ctx, "helo", helo, strlen(helo));
	return answer(ctx, ST_HELO, helo);
}

static sfsistat
t_envfrom(SMFICTX *ctx, char **argv)
{
	logev_argv(ctx, "mail", argv);
	return answer(ctx, ST_MAIL, argv[0]);
}

static sfsistat
t_envrcpt(SMFICTX *ctx, char **argv)
{
	logev_argv(ctx, "rcpt", argv);
	return answer(ctx, ST_RCPT, argv[0]);
}

static sfsistat
t_data(SMFICTX *ctx)
{
	logev(ctx, "data");
	return answer(ctx, ST_DATA, NULL);
}

static sfsistat
t_header(SMFICTX *ctx, char *name, char *value)
{
	char *buf;
	size_t n;
	FILE *f;

	buf = NULL;
	n = 0;
	if ((f = open_memstream(&buf, &n)) == NULL)
		die("open_memstream", strerror(errno));
	fprintf(f, "%s:", name);
	put_escaped(f, value, strlen(value));
	fclose(f);
	logev(ctx, "header %s", buf);
	free(buf);
	return answer(ctx, ST_HEADER, name);
}

static sfsistat
t_eoh(SMFICTX *ctx)
{
	logev(ctx, "eoh");
	return answer(ctx, ST_EOH, NULL);
}

static sfsistat
t_body(SMFICTX *ctx, unsigned char *p, size_t len)
{
	char *buf;
	size_t n;
	FILE *f;

	buf = NULL;
	n = 0;
	if ((f = open_memstream(&buf, &n)) == NULL)
		die("open_memstream", strerror(errno));
	fprintf(f, "%zu ", len);
	put_escaped(f, (const char *)p,
	    len > LOG_BODY_MAX ? LOG_BODY_MAX : len);
	if (len > LOG_BODY_MAX)
		fputs("...", f);
	fclose(f);
	logev(ctx, "body %s", buf);
	free(buf);
	return answer(ctx, ST_BODY, NULL);
}

static sfsistat
t_eom(SMFICTX *ctx)
{
	size_t i;

	logev(ctx, "eom");
	sleep_ms(eom_delay_ms);
	for (i = 0; i < nedits; i++)
		if (do_edit(ctx, &edits[i]) != MI_SUCCESS)
			logev(NULL, "edit %zu failed", i + 1);
	return answer(ctx, ST_EOM, NULL);
}

static sfsistat
t_abort(SMFICTX *ctx)
{
	logev(ctx, "abort");
	return SMFIS_CONTINUE;
}

static sfsistat
t_close(SMFICTX *ctx)
{
	(void)ctx;
	logev(NULL, "close");
	return SMFIS_CONTINUE;
}

static sfsistat
t_unknown(SMFICTX *ctx, const char *cmd)
{
	logev_arg(ctx, "unknown", cmd, strlen(cmd));
	return answer(ctx, ST_UNKNOWN, cmd);
}

static void
on_usr1(int sig)
{
	(void)sig;
	_exit(0);
}

static void
parse_symlist(const char *spec)
{
	static const char *const names[] = { "connect", "helo", "mail", "rcpt",
		"data", "eom", "eoh" };
	const char *eq;
	size_t i, n;

	if ((eq = strchr(spec, '=')) == NULL)
		die("-M needs STAGE=MACROS", spec);
	n = (size_t)(eq - spec);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && strncmp(spec, names[i], n) == 0)
			break;
	if (i == sizeof(names) / sizeof(names[0]))
		die("unknown macro stage", spec);
	symlists[i] = xstrdup(eq + 1);
}

int
main(int argc, char **argv)
{
	static char name[] = "sluice-test-milter";
	struct smfiDesc desc;
	struct sigaction sa;
	char *sock = NULL;
	const char *logpath = NULL;
	int c;

	while ((c = getopt(argc, argv, "d:e:l:M:p:P:r:x:")) != -1) {
		switch (c) {
		case 'd':
			eom_delay_ms = parse_num(optarg, 0, 3600000);
			break;
		case 'e':
			parse_edit(optarg);
			break;
		case 'l':
			logpath = optarg;
			break;
		case 'M':
			parse_symlist(optarg);
			break;
		case 'p':
			sock = optarg;
			break;
		case 'P':
			want_proto =
			    (unsigned long)parse_num(optarg, 0, 0x7fffffff);
			break;
		case 'r':
			parse_rule(optarg);
			break;
		case 'x':
			if (nlog_macros == MAX_MACROS)
				die("too many -x", optarg);
			log_macros[nlog_macros++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (sock == NULL || optind != argc)
		usage();
	if (logpath != NULL && (log_fp = fopen(logpath, "a")) == NULL)
		die(logpath, strerror(errno));

	memset(&desc, 0, sizeof(desc));
	desc.xxfi_name = name;
	desc.xxfi_version = SMFI_VERSION;
	desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT |
	    SMFIF_DELRCPT | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_CHGFROM |
	    SMFIF_ADDRCPT_PAR | SMFIF_SETSYMLIST;
	desc.xxfi_connect = t_connect;
	desc.xxfi_helo = t_helo;
	desc.xxfi_envfrom = t_envfrom;
	desc.xxfi_envrcpt = t_envrcpt;
	desc.xxfi_header = t_header;
	desc.xxfi_eoh = t_eoh;
	desc.xxfi_body = t_body;
	desc.xxfi_eom = t_eom;
	desc.xxfi_abort = t_abort;
	desc.xxfi_close = t_close;
	desc.xxfi_unknown = t_unknown;
	desc.xxfi_data = t_data;
	desc.xxfi_negotiate = t_negotiate;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	if (smfi_setconn(sock) != MI_SUCCESS)
		die("smfi_setconn failed", sock);
	if (smfi_register(desc) != MI_SUCCESS)
		die("smfi_register failed", sock);
	if (smfi_opensocket(true) != MI_SUCCESS)
		die("cannot listen on", sock);
	fprintf(stderr, "READY %s\n", sock);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
