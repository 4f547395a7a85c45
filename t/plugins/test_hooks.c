/*
 * test_hooks.c - a test-only plugin that gives any verdict at any hook,
 * synchronously or after a delay, fails, hangs, resumes late or twice,
 * runs on the worker pool, and makes edits.  Used by t/integration to
 * drive the core's failure paths; never installed.
 *
 *   plugin test_hooks hook=rcpt action=deny text="no thanks" match=bad
 *
 * hook=    connect helo auth mail rcpt data data_post queue unrecognized
 *          header eoh body reset
 * action=  ok deny denysoft deny_disconnect denysoft_disconnect discard done
 *          error invalid declined
 *          pending_forever  (suspend, never resume: the timeout must fire)
 *          pending          (resume after delay= ms with verdict=)
 *          pending_twice    (resume twice: the second must be harmless)
 *          worker           (sleep delay= ms on the worker pool, then verdict=)
 *          io               (a socketpair through sl_conn_io_wait: wait
 *                            writable, write, wait readable, read, then
 *                            verdict=)
 *          io_timeout       (wait readable on a silent socket for delay=
 *                            ms: must time out, then verdict=)
 *          edit             (data_post: edits from the comma-separated
 *                            edit= list: add insert change delete body
 *                            smuggle addrcpt delrcpt chgfrom quarantine;
 *                            "all" = the four header edits and the
 *                            envelope ones)
 * macros=  log these milter macros (sl_conn_macro) when acting
 * match=   act only when the hook's argument (address, HELO, header name,
 *          command line; the client address at connect, the user name at
 *          auth) contains this text
 */
#include <sys/socket.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sluice/plugin.h>

static const char *const hook_choices[] = { "connect", "helo", "auth", "mail",
	"rcpt", "data", "header", "eoh", "body", "data_post", "queue", "reset",
	"disconnect", "unrecognized", "deny", NULL };
static const char *const verdict_choices[] = { "declined", "ok", "deny",
	"denysoft", "deny_disconnect", "denysoft_disconnect", "discard", "done",
	"pending", "error", NULL };
static const char *const action_choices[] = { "declined", "ok", "deny",
	"denysoft", "deny_disconnect", "denysoft_disconnect", "discard", "done",
	"error", "invalid", "pending_forever", "pending", "pending_twice",
	"worker", "edit", "io", "io_timeout", NULL };

enum action {
	A_DECLINED,
	A_OK,
	A_DENY,
	A_DENYSOFT,
	A_DENY_DISCONNECT,
	A_DENYSOFT_DISCONNECT,
	A_DISCARD,
	A_DONE,
	A_ERROR,
	A_INVALID,
	A_PENDING_FOREVER,
	A_PENDING,
	A_PENDING_TWICE,
	A_WORKER,
	A_EDIT,
	A_IO,
	A_IO_TIMEOUT,
};

struct th {
	int hook;
	int action;
	int verdict; /* for pending, pending_twice, worker */
	unsigned int delay_ms;
	int code;
	char *text;
	char *match;
	char *edit;
	struct sl_strlist macros;
};

static const struct sl_conf_def th_conf[] = {
	{ .name = "hook",
	    .type = SL_CONF_ENUM,
	    .def = "rcpt",
	    .choices = hook_choices,
	    .offset = offsetof(struct th, hook) },
	{ .name = "action",
	    .type = SL_CONF_ENUM,
	    .def = "declined",
	    .choices = action_choices,
	    .offset = offsetof(struct th, action) },
	{ .name = "verdict",
	    .type = SL_CONF_ENUM,
	    .def = "ok",
	    .choices = verdict_choices,
	    .offset = offsetof(struct th, verdict) },
	{ .name = "delay",
	    .type = SL_CONF_MSEC,
	    .def = "100ms",
	    .min = 0,
	    .max = 600000,
	    .offset = offsetof(struct th, delay_ms) },
	{ .name = "code",
	    .type = SL_CONF_UINT,
	    .def = "0",
	    .min = 0,
	    .max = 599,
	    .offset = offsetof(struct th, code) },
	{ .name = "text",
	    .type = SL_CONF_STR,
	    .offset = offsetof(struct th, text) },
	{ .name = "match",
	    .type = SL_CONF_STR,
	    .offset = offsetof(struct th, match) },
	{ .name = "edit",
	    .type = SL_CONF_STR,
	    .def = "all",
	    .offset = offsetof(struct th, edit) },
	{ .name = "macros",
	    .type = SL_CONF_LIST,
	    .offset = offsetof(struct th, macros) },
	SL_CONF_END,
};

struct later {
	struct sl_async *a;
	enum sl_verdict v;
	unsigned int delay_ms;
	bool twice;
};

static void
later_fire(void *arg)
{
	struct later *l = arg;
	struct sl_async *copy = l->a;

	sl_async_reply(l->a, 0, NULL, "resumed by test_hooks");
	sl_async_done(&l->a, l->v);
	if (l->twice) {
		/* A second resume, through a stale copy: must be harmless
		 * because the handle pointer was cleared. */
		(void)copy;
		sl_async_done(&l->a, SL_DENY);
	}
	free(l);
}

/* The io actions: a socketpair and one wait after another. */
struct io_test {
	struct sl_async *a;
	struct sl_conn *conn; /* valid while the hook waits (a is live) */
	enum sl_verdict v;
	int sv[2];
	bool timeout_test;
};

static void
io_finish(struct io_test *t, enum sl_verdict v, const char *how)
{
	sl_async_reply(t->a, 0, NULL, "io %s", how);
	sl_async_done(&t->a, v);
	close(t->sv[0]);
	close(t->sv[1]);
	free(t);
}

static void
io_readable(void *arg, unsigned int what)
{
	struct io_test *t = arg;
	char c;

	if (t->timeout_test) {
		io_finish(t, what == SL_IO_TIMEOUT ? t->v : SL_ERROR,
		    what == SL_IO_TIMEOUT ? "timeout" : "unexpected");
		return;
	}
	if (what != SL_IO_READ || read(t->sv[1], &c, 1) != 1 || c != 'x') {
		io_finish(t, SL_ERROR, "read failed");
		return;
	}
	io_finish(t, t->v, "read");
}

static void
io_writable(void *arg, unsigned int what)
{
	struct io_test *t = arg;

	if (!sl_async_is_live(t->a) || what != SL_IO_WRITE ||
	    write(t->sv[0], "x", 1) != 1) {
		io_finish(t, SL_ERROR, "write failed");
		return;
	}
	(void)sl_conn_io_wait(t->conn, t->sv[1], SL_IO_READ, 5000, io_readable,
	    t);
}

static void
release_forever(void *arg)
{
	struct later *l = arg;

	sl_async_done(&l->a, SL_DECLINED);
	free(l);
}

static void
worker_sleep(void *arg)
{
	struct later *l = arg;
	struct timespec ts;

	ts.tv_sec = l->delay_ms / 1000;
	ts.tv_nsec = (long)(l->delay_ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

/* Whether the comma-separated list e holds token tok. */
static bool
has_token(const char *e, const char *tok)
{
	size_t n = strlen(tok);

	while (*e != '\0') {
		size_t len = strcspn(e, ",");

		if ((len == n && strncmp(e, tok, n) == 0) ||
		    (len == 3 && strncmp(e, "all", 3) == 0 &&
		        strcmp(tok, "body") != 0 &&
		        strcmp(tok, "smuggle") != 0))
			return true;
		e += len;
		if (*e == ',')
			e++;
	}
	return false;
}

static void
do_edits(struct th *th, struct sl_txn *t)
{
	const char *e = th->edit;
	static const uint8_t body[] = "This body was replaced by test_hooks.\n";

	if (has_token(e, "add"))
		sl_edit_header_add(t, "X-Test-Added", "yes");
	if (has_token(e, "insert"))
		sl_edit_header_insert(t, 0, "X-Test-Inserted", "first");
	if (has_token(e, "change"))
		sl_edit_header_change(t, "Subject", 0, "changed by test_hooks");
	if (has_token(e, "delete"))
		sl_edit_header_delete(t, "X-Delete-Me", 0);
	if (has_token(e, "body"))
		sl_edit_body_replace(t, body, sizeof(body) - 1);
	if (has_token(e, "smuggle"))
		sl_edit_header_add(t, "X-Bad", "a\r\nInjected: yes");
	if (has_token(e, "addrcpt"))
		sl_edit_rcpt_add(t, "added@sluice.test", NULL);
	if (has_token(e, "delrcpt"))
		sl_edit_rcpt_delete(t, "removed@sluice.test");
	if (has_token(e, "chgfrom"))
		sl_edit_sender_change(t, "changed@sluice.test", NULL);
	if (has_token(e, "quarantine"))
		sl_edit_quarantine(t, "test_hooks quarantine");
}

static const char *
hook_subject(struct sl_hookctx *ctx, const struct sl_hookargs *a)
{
	if (a->hook == SL_HOOK_CONNECT)
		return sl_conn_remote_ip(sl_hook_conn(ctx));
	if (a->hook == SL_HOOK_HEADER || a->hook == SL_HOOK_AUTH)
		return a->name;
	return a->arg != NULL ? a->arg : "";
}

static enum sl_verdict
th_hook(void *state, struct sl_hookctx *ctx)
{
	struct th *th = state;
	const struct sl_hookargs *a = sl_hook_args(ctx);
	struct later *l;

	if ((int)a->hook != th->hook)
		return SL_DECLINED;
	if (th->match != NULL &&
	    strstr(hook_subject(ctx, a), th->match) == NULL)
		return SL_DECLINED;
	if (th->code != 0 || th->text != NULL)
		sl_hook_reply(ctx, th->code, NULL, "%s",
		    th->text != NULL ? th->text : "test_hooks");
	sl_hook_log(ctx, LOG_INFO, "action=%s", action_choices[th->action]);
	for (size_t i = 0; i < th->macros.count; i++) {
		const char *v =
		    sl_conn_macro(sl_hook_conn(ctx), th->macros.items[i]);

		sl_hook_log(ctx, LOG_INFO, "macro %s=%s", th->macros.items[i],
		    v != NULL ? v : "(none)");
	}
	switch (th->action) {
	case A_DECLINED:
		return SL_DECLINED;
	case A_OK:
		return SL_OK;
	case A_DENY:
		return SL_DENY;
	case A_DENYSOFT:
		return SL_DENYSOFT;
	case A_DENY_DISCONNECT:
		return SL_DENY_DISCONNECT;
	case A_DENYSOFT_DISCONNECT:
		return SL_DENYSOFT_DISCONNECT;
	case A_DISCARD:
		return SL_DISCARD;
	case A_DONE:
		return SL_DONE;
	case A_ERROR:
		return SL_ERROR;
	case A_INVALID:
		return (enum sl_verdict)77;
	case A_PENDING_FOREVER:
		/* Never resumed; the handle is released with the connection
		 * (a late sl_async_done: harmless by contract). */
		l = calloc(1, sizeof(*l));
		if (l == NULL)
			return SL_ERROR;
		l->a = sl_async_begin(ctx);
		sl_conn_data_set(sl_hook_conn(ctx), l, l, release_forever);
		return SL_PENDING;
	case A_IO:
	case A_IO_TIMEOUT: {
		struct io_test *t = calloc(1, sizeof(*t));

		if (t == NULL ||
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
		        t->sv) == -1) {
			free(t);
			return SL_ERROR;
		}
		t->a = sl_async_begin(ctx);
		t->conn = sl_hook_conn(ctx);
		t->v = (enum sl_verdict)th->verdict;
		t->timeout_test = th->action == A_IO_TIMEOUT;
		if (t->timeout_test)
			(void)sl_conn_io_wait(sl_hook_conn(ctx), t->sv[1],
			    SL_IO_READ, th->delay_ms, io_readable, t);
		else
			(void)sl_conn_io_wait(sl_hook_conn(ctx), t->sv[0],
			    SL_IO_WRITE, 5000, io_writable, t);
		return SL_PENDING;
	}
	case A_EDIT:
		if (sl_hook_txn(ctx) != NULL)
			do_edits(th, sl_hook_txn(ctx));
		return SL_DECLINED;
	default:
		break;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return SL_ERROR;
	l->a = sl_async_begin(ctx);
	l->v = (enum sl_verdict)th->verdict;
	l->delay_ms = th->delay_ms;
	l->twice = th->action == A_PENDING_TWICE;
	if (th->action == A_WORKER)
		sl_hook_run_worker(ctx, worker_sleep, later_fire, l);
	else
		(void)sl_hook_timer(ctx, th->delay_ms, later_fire, l);
	return SL_PENDING;
}

static int
th_init(void **state_r, const char **error_r)
{
	(void)state_r;
	(void)error_r;
	return 0;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "test_hooks",
	.conf = th_conf,
	.state_size = sizeof(struct th),
	.init = th_init,
	.edits = SL_EDIT_ALL,
	.hooks = {
	    [SL_HOOK_CONNECT] = th_hook,
	    [SL_HOOK_HELO] = th_hook,
	    [SL_HOOK_AUTH] = th_hook,
	    [SL_HOOK_MAIL] = th_hook,
	    [SL_HOOK_RCPT] = th_hook,
	    [SL_HOOK_DATA] = th_hook,
	    [SL_HOOK_HEADER] = th_hook,
	    [SL_HOOK_EOH] = th_hook,
	    [SL_HOOK_BODY] = th_hook,
	    [SL_HOOK_DATA_POST] = th_hook,
	    [SL_HOOK_QUEUE] = th_hook,
	    [SL_HOOK_RESET] = th_hook,
	    [SL_HOOK_UNRECOGNIZED] = th_hook,
	},
};
