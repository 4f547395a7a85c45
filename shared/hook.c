/*
 * hook.c - the hook runner: runs one hook's chain of plugin instances for
 * a connection, in config order, and reports the chain's verdict once.
 *
 * DECLINED passes to the next plugin; any other verdict decides.  A
 * plugin may suspend (SL_PENDING after sl_async_begin); the chain then
 * waits for sl_async_done() or the instance's timeout, whichever comes
 * first, and resumes from the event loop (never inside the plugin's call).
 * Answers the loop has at once (DNS cache hits) are delivered as soon as
 * the plugin's call returned: if they complete it, the chain goes on
 * without a timer or a round through the loop.
 * A plugin that fails (SL_ERROR, an unknown verdict, PENDING without a
 * handle or on a synchronous hook) or times out gets the configured
 * default action (tempfail unless plugin_default_action says otherwise).
 * reject=no turns a denial into a log line, reject=defer into a mark that
 * the front end applies at RCPT (or the naughty plugin where it is told).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "log.h"
#include "xmalloc.h"

struct sl_hookctx {
	struct sl_conn *conn;
	struct sl_instance *inst;
	const struct sl_hookargs *args;
	struct sl_reply reply;
	struct sl_async *async; /* made by sl_async_begin in this call */
};

struct sl_async {
	struct sl_hookrun *run;  /* NULL once the session stopped waiting */
	unsigned int timeout_ms; /* 0 = the instance's timeout */
};

struct sl_hookrun {
	struct sl_conn *conn;
	struct sl_hookargs args;
	sl_hook_done_fn done;
	void *arg;
	size_t idx;
	struct sl_hookctx ctx;
	struct sl_async *async; /* the suspended plugin's handle */
	struct sl_timer *timer;
	unsigned int timeout_ms; /* set by sl_async_timeout, or 0 */
	enum sl_verdict resume_v;
	bool posted;    /* a resume is queued on the loop */
	bool settling;  /* run_chain delivers the answers known at once */
	bool settled;   /* ... and sl_async_done() came in then */
	bool abandoned; /* the session ended while it was queued or settling */
	bool on_stack;  /* a synchronous hook's run: sl_hook_run() owns it */
};

static const char *const hook_names[SL_HOOK_MAX] = { "connect", "helo", "auth",
	"mail", "rcpt", "data", "header", "eoh", "body", "data_post", "queue",
	"reset", "disconnect", "unrecognized", "deny" };

static const char *const verdict_names[] = { "declined", "ok", "deny",
	"denysoft", "deny_disconnect", "denysoft_disconnect", "discard", "done",
	"pending", "error" };

const char *
sl_hook_name(enum sl_hook_id h)
{
	return (unsigned int)h < SL_HOOK_MAX ? hook_names[h] : "?";
}

const char *
sl_verdict_name(enum sl_verdict v)
{
	return (unsigned int)v < SL_NELEM(verdict_names) ? verdict_names[v]
	                                                 : "invalid";
}

static bool
hook_is_sync(enum sl_hook_id h)
{
	return h == SL_HOOK_HEADER || h == SL_HOOK_EOH || h == SL_HOOK_BODY ||
	    h == SL_HOOK_DISCONNECT || h == SL_HOOK_DENY;
}

bool
sl_verdict_is_deny(enum sl_verdict v)
{
	return v == SL_DENY || v == SL_DENYSOFT || v == SL_DENY_DISCONNECT ||
	    v == SL_DENYSOFT_DISCONNECT;
}

bool
sl_hook_wanted(const struct sl_runtime *rt, enum sl_hook_id h)
{
	return rt->nchain[h] > 0;
}

static void
async_kill(struct sl_hookrun *run)
{
	if (run->async != NULL) {
		run->async->run = NULL;
		run->async = NULL;
	}
	sl_timer_cancel(&run->timer);
}

static void run_chain(struct sl_hookrun *run);

/* The empty reply: the front end's defaults. */
static void
reply_clear(struct sl_reply *r)
{
	r->code = 0;
	r->enh[0] = '\0';
	r->text[0] = '\0';
}

static void
finish(struct sl_hookrun *run, enum sl_verdict v)
{
	struct sl_conn *c = run->conn;
	sl_hook_done_fn done = run->done;
	void *arg = run->arg;
	struct sl_reply reply = run->ctx.reply;
	struct sl_hookargs dargs;
	enum sl_hook_id h = run->args.hook;
	const char *by = run->ctx.inst != NULL ? run->ctx.inst->name : "";

	c->run = NULL;
	if (!run->on_stack)
		free(run);
	if (sl_verdict_is_deny(v) && h != SL_HOOK_DENY &&
	    sl_hook_wanted(c->rt, SL_HOOK_DENY) && !c->closing) {
		memset(&dargs, 0, sizeof(dargs));
		dargs.hook = SL_HOOK_DENY;
		dargs.arg = by;
		dargs.value = reply.text;
		dargs.denied_hook = h;
		dargs.denied_verdict = v;
		sl_hook_run(c, &dargs, NULL, NULL);
	}
	if (done != NULL)
		done(c, v, &reply, arg);
}

/*
 * The instance failed: apply the default action.  Returns true if that
 * decided the chain (finish was called).
 */
static bool
apply_failure(struct sl_hookrun *run, const char *why)
{
	struct sl_conn *c = run->conn;
	struct sl_reply *r = &run->ctx.reply;

	memset(r, 0, sizeof(*r));
	switch (c->rt->set->plugin_default_action) {
	case SL_ACTION_ACCEPT:
		sl_log(LOG_WARNING, c->id,
		    "hook=%s plugin=%s failure=\"%s\" action=accept",
		    sl_hook_name(run->args.hook), run->ctx.inst->name, why);
		return false;
	case SL_ACTION_REJECT:
		sl_log(LOG_WARNING, c->id,
		    "hook=%s plugin=%s failure=\"%s\" action=reject",
		    sl_hook_name(run->args.hook), run->ctx.inst->name, why);
		r->code = 550;
		snprintf(r->enh, sizeof(r->enh), "5.3.0");
		snprintf(r->text, sizeof(r->text), "Local policy failure");
		finish(run, SL_DENY);
		return true;
	default:
		sl_log(LOG_WARNING, c->id,
		    "hook=%s plugin=%s failure=\"%s\" action=tempfail",
		    sl_hook_name(run->args.hook), run->ctx.inst->name, why);
		r->code = 451;
		snprintf(r->enh, sizeof(r->enh), "4.3.0");
		snprintf(r->text, sizeof(r->text),
		    "Temporary local problem, please try again later");
		finish(run, SL_DENYSOFT);
		return true;
	}
}

/* Returns true if v decided the chain (finish was called). */
static bool
handle_verdict(struct sl_hookrun *run, enum sl_verdict v)
{
	struct sl_conn *c = run->conn;
	struct sl_instance *in = run->ctx.inst;
	const char *hn = sl_hook_name(run->args.hook);

	if ((unsigned int)v > SL_ERROR || v == SL_PENDING) {
		return apply_failure(run, "invalid verdict");
	}
	if (v == SL_ERROR)
		return apply_failure(run, "plugin error");
	if (v == SL_DECLINED)
		return false;
	if (sl_verdict_is_deny(v) && in->reject == SL_REJECT_NO) {
		sl_log(LOG_INFO, c->id,
		    "hook=%s plugin=%s verdict=%s action=log-only text=\"%s\"",
		    hn, in->name, sl_verdict_name(v), run->ctx.reply.text);
		return false;
	}
	if (sl_verdict_is_deny(v) && in->reject == SL_REJECT_DEFER) {
		sl_conn_defer(c, in->name, v, run->ctx.reply.code,
		    run->ctx.reply.enh, run->ctx.reply.text);
		sl_log(LOG_INFO, c->id,
		    "hook=%s plugin=%s verdict=%s action=defer text=\"%s\"", hn,
		    in->name, sl_verdict_name(v), run->ctx.reply.text);
		return false;
	}
	if (run->args.hook == SL_HOOK_DENY || run->args.hook == SL_HOOK_BODY ||
	    run->args.hook == SL_HOOK_HEADER)
		sl_log(LOG_DEBUG, c->id, "hook=%s plugin=%s verdict=%s", hn,
		    in->name, sl_verdict_name(v));
	else
		sl_log(v == SL_OK ? LOG_DEBUG : LOG_INFO, c->id,
		    "hook=%s plugin=%s verdict=%s%s%s%s", hn, in->name,
		    sl_verdict_name(v),
		    run->ctx.reply.text[0] != '\0' ? " text=\"" : "",
		    run->ctx.reply.text,
		    run->ctx.reply.text[0] != '\0' ? "\"" : "");
	if (run->args.hook == SL_HOOK_DENY)
		return false; /* notification only */
	finish(run, v);
	return true;
}

static bool
skipped(const struct sl_instance *in, const struct sl_conn *c)
{
	if ((in->skip & SL_SKIP_RELAY) != 0 && c->relay_client)
		return true;
	if ((in->skip & SL_SKIP_AUTH) != 0 && c->auth_user != NULL)
		return true;
	return false;
}

static void
timeout_cb(void *arg)
{
	struct sl_hookrun *run = arg;
	char why[64];

	run->timer = NULL;
	async_kill(run);
	snprintf(why, sizeof(why), "timed out after %u ms",
	    run->timeout_ms != 0 ? run->timeout_ms : run->ctx.inst->timeout_ms);
	if (apply_failure(run, why))
		return;
	run->idx++;
	run_chain(run);
}

/*
 * The plugin suspended: deliver what the loop has at once.  Returns 1 if
 * that completed the plugin (its verdict in *v_r), 0 if the chain must
 * wait, -1 if the session ended meanwhile (run is freed).
 */
static int
settle(struct sl_hookrun *run, enum sl_verdict *v_r)
{
	run->settling = true;
	sl_loop_settle(run->conn->loop);
	run->settling = false;
	if (run->abandoned) {
		free(run);
		return -1;
	}
	if (!run->settled)
		return 0;
	run->settled = false;
	*v_r = run->resume_v == SL_PENDING ? SL_ERROR : run->resume_v;
	return 1;
}

static void
run_chain(struct sl_hookrun *run)
{
	struct sl_conn *c = run->conn;
	enum sl_hook_id h = run->args.hook;
	struct sl_instance *in;
	enum sl_verdict v;

	for (; run->idx < c->rt->nchain[h]; run->idx++) {
		in = c->rt->chain[h][run->idx];
		if (skipped(in, c))
			continue;
		reply_clear(&run->ctx.reply);
		run->ctx.inst = in;
		run->ctx.async = NULL;
		v = in->plugin->hooks[h](in->state, &run->ctx);
		if (v == SL_PENDING && run->ctx.async != NULL &&
		    !hook_is_sync(h)) {
			run->async = run->ctx.async;
			run->timeout_ms = run->async->timeout_ms;
			run->ctx.async = NULL;
			switch (settle(run, &v)) {
			case -1:
				return;
			case 0:
				run->timer = sl_timer_add(c->loop,
				    run->timeout_ms != 0 ? run->timeout_ms
				                         : in->timeout_ms,
				    timeout_cb, run);
				return;
			default:
				if (handle_verdict(run, v))
					return;
				continue;
			}
		}
		if (run->ctx.async != NULL) {
			/* Returned a verdict after all: the handle is dead. */
			run->ctx.async->run = NULL;
			run->ctx.async = NULL;
		}
		if (v == SL_PENDING) {
			if (apply_failure(run,
			        hook_is_sync(h)
			            ? "cannot suspend in this hook"
			            : "pending without sl_async_begin"))
				return;
			continue;
		}
		if (handle_verdict(run, v))
			return;
	}
	reply_clear(&run->ctx.reply);
	finish(run, SL_DECLINED);
}

void
sl_hook_run(struct sl_conn *c, const struct sl_hookargs *args,
    sl_hook_done_fn done, void *arg)
{
	struct sl_hookrun *run, local;
	struct sl_reply none;

	SL_ASSERT(c->run == NULL || hook_is_sync(args->hook));
	if (c->rt->nchain[args->hook] == 0) {
		if (done != NULL) {
			memset(&none, 0, sizeof(none));
			done(c, SL_DECLINED, &none, arg);
		}
		return;
	}
	if (hook_is_sync(args->hook)) {
		/* cannot suspend, so it ends before this call does (headers
		 * and body chunks come often: no allocation) */
		memset(&local, 0, sizeof(local));
		run = &local;
		run->on_stack = true;
	} else
		run = sl_xcalloc(1, sizeof(*run));
	run->conn = c;
	run->args = *args;
	run->done = done;
	run->arg = arg;
	run->ctx.conn = c;
	run->ctx.args = &run->args;
	if (!hook_is_sync(args->hook))
		c->run = run;
	run_chain(run);
}

void
sl_hook_abandon(struct sl_conn *c)
{
	struct sl_hookrun *run = c->run;

	if (run == NULL)
		return;
	c->run = NULL;
	async_kill(run);
	if (run->posted || run->settling)
		run->abandoned = true;
	else
		free(run);
}

void
sl_hook_disconnect(struct sl_conn *c)
{
	struct sl_hookargs a;

	c->closing = true;
	sl_hook_abandon(c);
	memset(&a, 0, sizeof(a));
	a.hook = SL_HOOK_DISCONNECT;
	sl_hook_run(c, &a, NULL, NULL);
}

static void
resume_cb(void *arg)
{
	struct sl_hookrun *run = arg;

	run->posted = false;
	if (run->abandoned) {
		free(run);
		return;
	}
	if (run->resume_v == SL_PENDING)
		run->resume_v = SL_ERROR;
	if (handle_verdict(run, run->resume_v))
		return;
	run->idx++;
	run_chain(run);
}

/* --- the API plugins see ---------------------------------------------- */

const struct sl_hookargs *
sl_hook_args(const struct sl_hookctx *ctx)
{
	return ctx->args;
}

struct sl_conn *
sl_hook_conn(const struct sl_hookctx *ctx)
{
	return ctx->conn;
}

struct sl_txn *
sl_hook_txn(const struct sl_hookctx *ctx)
{
	return ctx->conn->txn;
}

const char *
sl_hook_plugin_name(const struct sl_hookctx *ctx)
{
	return ctx->inst->name;
}

unsigned int
sl_hook_timeout_ms(const struct sl_hookctx *ctx)
{
	return ctx->inst->timeout_ms;
}

unsigned int
sl_hook_timeout(const struct sl_hookctx *ctx)
{
	return ctx->inst->timeout_given ? ctx->inst->timeout_ms : 0;
}

/* A reply line never carries CR, LF or NUL from a plugin. */
static void reply_set(struct sl_reply *r, int code, const char *enh,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void
reply_set(struct sl_reply *r, int code, const char *enh, const char *fmt,
    va_list ap)
{
	size_t i;

	r->code = code >= 200 && code <= 599 ? code : 0;
	r->enh[0] = '\0';
	if (enh != NULL)
		snprintf(r->enh, sizeof(r->enh), "%s", enh);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	for (i = 0; r->text[i] != '\0'; i++)
		if (r->text[i] == '\r' || r->text[i] == '\n' ||
		    (unsigned char)r->text[i] < 32)
			r->text[i] = ' ';
	for (i = 0; r->enh[i] != '\0'; i++)
		if (!((r->enh[i] >= '0' && r->enh[i] <= '9') ||
		        r->enh[i] == '.'))
			r->enh[0] = '\0';
}

void
sl_hook_reply(struct sl_hookctx *ctx, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_set(&ctx->reply, code, enh, fmt, ap);
	va_end(ap);
}

static void
plugin_vlog(const struct sl_conn *c, const char *plugin, int priority,
    const char *fmt, va_list ap)
{
	sl_vlog_plugin(priority, c->id, plugin, fmt, ap);
}

void
sl_hook_log(struct sl_hookctx *ctx, int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	plugin_vlog(ctx->conn, ctx->inst->name, priority, fmt, ap);
	va_end(ap);
}

void
sl_conn_log(const struct sl_conn *c, const char *plugin, int priority,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	plugin_vlog(c, plugin, priority, fmt, ap);
	va_end(ap);
}

struct sl_async *
sl_async_begin(struct sl_hookctx *ctx)
{
	struct sl_async *a;
	struct sl_hookrun *run;

	run = (struct sl_hookrun *)((char *)ctx -
	    offsetof(struct sl_hookrun, ctx));
	if (ctx->async != NULL)
		return ctx->async;
	a = sl_xcalloc(1, sizeof(*a));
	a->run = run;
	ctx->async = a;
	return a;
}

void
sl_async_timeout(struct sl_async *a, unsigned int ms)
{
	struct sl_hookrun *run;

	if (a == NULL || ms == 0)
		return;
	a->timeout_ms = ms;
	if ((run = a->run) == NULL || run->async != a)
		return; /* still in the hook call: run_chain reads it */
	run->timeout_ms = ms;
	sl_timer_cancel(&run->timer);
	run->timer = sl_timer_add(run->conn->loop, ms, timeout_cb, run);
}

bool
sl_async_is_live(const struct sl_async *a)
{
	return a != NULL && a->run != NULL;
}

void
sl_async_reply(struct sl_async *a, int code, const char *enh, const char *fmt,
    ...)
{
	va_list ap;

	if (a == NULL || a->run == NULL)
		return;
	va_start(ap, fmt);
	reply_set(&a->run->ctx.reply, code, enh, fmt, ap);
	va_end(ap);
}

void
sl_async_done(struct sl_async **ap, enum sl_verdict v)
{
	struct sl_async *a = *ap;
	struct sl_hookrun *run;

	if (a == NULL)
		return;
	*ap = NULL;
	run = a->run;
	free(a);
	if (run == NULL)
		return; /* late: the session stopped waiting */
	run->async = NULL;
	sl_timer_cancel(&run->timer);
	run->resume_v = v;
	if (run->settling) {
		run->settled = true; /* run_chain goes on with it */
		return;
	}
	run->posted = true;
	sl_loop_post(run->conn->loop, resume_cb, run);
}

/*
 * A worker job keeps the transaction alive until its done callback ran,
 * even if the hook timed out and the session moved on or ended: a queue
 * plugin's worker may still be writing the message out.  It also keeps the
 * runtime, whose plugin state the job may use (an auth plugin's users
 * file), alive past the session and a reload.
 */
struct wjob {
	struct sl_runtime *rt;
	struct sl_txn *txn;
	sl_work_fn work, done;
	void *arg;
};

static void
wjob_work(void *arg)
{
	struct wjob *w = arg;

	w->work(w->arg);
}

static void
wjob_done(void *arg)
{
	struct wjob *w = arg;

	w->done(w->arg);
	if (w->txn != NULL)
		sl_txn_unbusy(w->txn);
	sl_runtime_unref(&w->rt);
	free(w);
}

void
sl_hook_run_worker(struct sl_hookctx *ctx, sl_work_fn work, sl_work_fn done,
    void *arg)
{
	struct wjob *w;

	w = sl_xmalloc(sizeof(*w));
	w->rt = sl_runtime_ref(ctx->conn->rt);
	w->txn = ctx->conn->txn;
	w->work = work;
	w->done = done;
	w->arg = arg;
	if (w->txn != NULL)
		w->txn->busy++;
	sl_worker_submit(ctx->conn->loop, wjob_work, wjob_done, w);
}

struct sl_timer *
sl_hook_timer(struct sl_hookctx *ctx, unsigned int ms, sl_work_fn fn, void *arg)
{
	return sl_timer_add(ctx->conn->loop, ms, fn, arg);
}

void
sl_verdict_reply(enum sl_verdict v, const struct sl_reply *r, int def_code,
    const char *def_enh, const char *def_text, int *code_r, const char **enh_r,
    const char **text_r)
{
	int code = def_code, cls = def_code / 100;
	const char *enh = def_enh, *text = def_text;

	switch (v) {
	case SL_DENY:
	case SL_DENY_DISCONNECT:
		cls = 5;
		code = v == SL_DENY ? 550 : 554;
		enh = "5.7.1";
		text = "Rejected by policy";
		break;
	case SL_DENYSOFT:
	case SL_DENYSOFT_DISCONNECT:
		cls = 4;
		code = v == SL_DENYSOFT ? 451 : 421;
		enh = "4.7.1";
		text = "Temporarily rejected by policy, try again later";
		break;
	case SL_DONE:
		cls = r->code / 100;
		break;
	default:
		break;
	}
	if (r->code != 0 && r->code / 100 == cls) {
		code = r->code;
		if (r->enh[0] != '\0' && r->enh[0] - '0' == cls)
			enh = r->enh;
	}
	if (r->text[0] != '\0')
		text = r->text;
	*code_r = code;
	*enh_r = enh;
	*text_r = text;
}
