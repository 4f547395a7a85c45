/*
 * session.c - one milter session: the MTA's commands in, the plugin
 * chain's verdicts and edits out (milter-protocol.md 5.8 is the
 * checklist).
 *
 * A session reads one packet at a time.  Every event goes check (is the
 * command legal in this state, is the packet well formed) -> hook chain ->
 * reply; while a chain runs (a plugin may suspend) no further packet is
 * read.  Malformed or out-of-order input is logged and ends this session
 * only: the MTA sees the socket close and applies its failure policy at
 * once, instead of waiting for a reply that never comes.
 *
 * What is negotiated follows the loaded plugins: events no plugin hooks
 * are answered with no reply (NR_*) or not sent at all (NO*), and only the
 * modification actions the plugins declare (struct sl_plugin .edits) are
 * asked for.  Edits are applied to the transaction as plugins make them;
 * at end of message the difference between what the MTA showed us and
 * what the plugins left becomes the SMFIR_* modification replies.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core.h"
#include "log.h"
#include "milter.h"
#include "xmalloc.h"
#include "milterd.h"

/* libmilter's states (engine.c), named by the command that entered them. */
enum mst {
	MS_INIT, /* nothing yet: expect OPTNEG */
	MS_OPTS, /* negotiated: expect CONNECT */
	MS_CONN,
	MS_HELO,
	MS_MAIL,
	MS_RCPT,
	MS_DATA,
	MS_HDRS,
	MS_EOHS,
	MS_BODY,
	MS_ENDM,
	MS_UNKN,
	MS_QNC, /* after QUIT_NC: expect CONNECT */
	MS_CLOSING,
	MS_MAX
};

static const char *const state_names[MS_MAX] = { "init", "optneg", "connect",
	"helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom",
	"unknown", "quit_nc", "closing" };

/* Commands legal in each state (engine.c next_states[]). */
static const char *const legal[MS_MAX] = {
	[MS_INIT] = "O",
	[MS_OPTS] = "CU",
	[MS_CONN] = "HMU",
	[MS_HELO] = "HMU",
	[MS_MAIL] = "RAU",
	[MS_RCPT] = "RTLNBEAU",
	[MS_DATA] = "LNA",
	[MS_HDRS] = "LNA",
	[MS_EOHS] = "BEA",
	[MS_BODY] = "BEA",
	[MS_ENDM] = "MQKU",
	[MS_UNKN] = "HMRTBUAQK",
	[MS_QNC] = "CU",
};

/* A header as the MTA showed it: its name and its number among its name. */
struct rhdr {
	char *name;
	unsigned int occ; /* 1-based, for SMFIR_CHGHEADER */
};

/* A recipient as the MTA sent it, for SMFIR_DELRCPT. */
struct rrcpt {
	char *addr; /* without <> */
	char *raw;  /* argv[0] as received */
};

struct msess {
	struct sl_conn *conn;
	struct sl_loop *loop;
	const struct sl_settings *set;
	struct bufferevent *bev;
	enum mst state;
	bool in_process;
	bool busy;        /* a hook chain runs */
	bool read_paused; /* ... and the read timeout is off meanwhile */
	bool free_scheduled;
	bool drain_after_msg;
	bool connect_ran;
	bool ip_counted; /* holds a count for the client's address */
	/* negotiated */
	uint32_t version, actions, proto;
	bool content;       /* some plugin needs the message content */
	unsigned int edits; /* SL_EDIT_* the plugins declare */
	struct sl_milter_macros macros;
	struct sl_milter_buf out;
	/* the packet being handled (decoded strings point into it) */
	uint8_t *pkt;
	size_t pkt_alloc;
	struct sl_milter_msg m;
	struct sl_hookargs args;
	char *params_joined;
	char *addr; /* the current MAIL/RCPT address without <> */
	/* the current message as the MTA showed it */
	struct rhdr *rhdrs;
	size_t nrhdrs, rhdrs_alloc;
	struct rrcpt *rrcpts;
	size_t nrrcpts, rrcpts_alloc;
	char *orig_sender, *orig_sender_params;
	bool body_cr;  /* the last body chunk ended in CR */
	bool msg_done; /* a verdict ended this message for us */
	struct sl_timer *progress;
	unsigned long long progress_sent;
	struct msess *next, *prev; /* the loop thread's sessions */
};

static __thread struct msess *sessions;

static void process_input(struct msess *s);
static const char *conn_macro(struct sl_conn *c, const char *name);
static void session_close(struct msess *s, const char *why);

/* --- output ------------------------------------------------------------- */

/*
 * Sends what is queued: one write(2), straight to the socket when nothing
 * waits there; what the socket does not take waits in the bufferevent.
 */
static void
flush_out(struct msess *s)
{
	struct evbuffer *o = bufferevent_get_output(s->bev);
	ssize_t n = 0;

	if (s->out.len == 0)
		return;
	if (evbuffer_get_length(o) == 0) {
		n = write(bufferevent_getfd(s->bev), s->out.data, s->out.len);
		if (n < 0)
			n = 0;
	}
	if ((size_t)n < s->out.len)
		evbuffer_add(o, s->out.data + n, s->out.len - (size_t)n);
	s->out.len = 0;
}

static void
put_simple(struct msess *s, uint8_t code)
{
	sl_log(LOG_DEBUG, s->conn->id, "milter reply=%s",
	    sl_milter_reply_name(code));
	(void)sl_milter_put_empty(&s->out, code);
}

/* Whether the MTA waits for a reply to command cmd. */
static bool
wants_reply(const struct msess *s, uint8_t cmd)
{
	static const struct {
		uint8_t cmd;
		uint32_t nr;
	} nr[] = { { 'C', SL_SMFIP_NR_CONN }, { 'H', SL_SMFIP_NR_HELO },
		{ 'M', SL_SMFIP_NR_MAIL }, { 'R', SL_SMFIP_NR_RCPT },
		{ 'T', SL_SMFIP_NR_DATA }, { 'L', SL_SMFIP_NR_HDR },
		{ 'N', SL_SMFIP_NR_EOH }, { 'B', SL_SMFIP_NR_BODY },
		{ 'U', SL_SMFIP_NR_UNKN } };
	size_t i;

	for (i = 0; i < sizeof(nr) / sizeof(nr[0]); i++)
		if (nr[i].cmd == cmd)
			return (s->proto & nr[i].nr) == 0;
	return cmd == 'E';
}

/* A denial, or a plugin's own 4xx/5xx reply (DONE). */
static bool
is_refusal(enum sl_verdict v, const struct sl_reply *r)
{
	return sl_verdict_is_deny(v) || (v == SL_DONE && r->code >= 400);
}

/*
 * The reply to an event for a chain's verdict.  A milter cannot drop the
 * client: the _DISCONNECT verdicts become plain denials (a plugin's own
 * 421 still goes through, and the MTA then hangs up).  Returns true if
 * the verdict ends the message for this session.
 */
static bool
reply_verdict(struct msess *s, uint8_t cmd, enum sl_verdict v,
    const struct sl_reply *r)
{
	const char *enh, *text;
	int code;
	bool in_txn = s->conn->txn != NULL;

	if (v == SL_DENY_DISCONNECT)
		v = SL_DENY;
	else if (v == SL_DENYSOFT_DISCONNECT)
		v = SL_DENYSOFT;
	if (is_refusal(v, r)) {
		sl_verdict_reply(v, r, 550, "5.7.1", "Rejected by policy",
		    &code, &enh, &text);
		if (!wants_reply(s, cmd)) {
			sl_log(LOG_WARNING, s->conn->id,
			    "milter: %s at %s cannot be sent: the MTA "
			    "expects no reply there",
			    sl_verdict_name(v), sl_milter_command_name(cmd));
			return false;
		}
		sl_log(LOG_DEBUG, s->conn->id, "milter reply=%d %s %s", code,
		    enh, text);
		if (sl_milter_put_reply(&s->out, code, enh, text) == -1)
			put_simple(s,
			    code / 100 == 4 ? SL_SMFIR_TEMPFAIL
			                    : SL_SMFIR_REJECT);
		/* A rejected recipient leaves the message going. */
		return cmd != 'R' && cmd != 'C' && cmd != 'H' && cmd != 'U';
	}
	if (in_txn && (v == SL_DISCARD || s->conn->txn->discard)) {
		s->conn->txn->discard = true;
		if (wants_reply(s, cmd)) {
			put_simple(s, SL_SMFIR_DISCARD);
			return true;
		}
		return false; /* said at the next event that gets a reply */
	}
	if (wants_reply(s, cmd))
		put_simple(s, SL_SMFIR_CONTINUE);
	return false;
}

/* --- session life ------------------------------------------------------- */

static void
txn_forget(struct msess *s)
{
	size_t i;

	for (i = 0; i < s->nrhdrs; i++)
		free(s->rhdrs[i].name);
	s->nrhdrs = 0;
	for (i = 0; i < s->nrrcpts; i++) {
		free(s->rrcpts[i].addr);
		free(s->rrcpts[i].raw);
	}
	s->nrrcpts = 0;
	free(s->orig_sender);
	free(s->orig_sender_params);
	s->orig_sender = s->orig_sender_params = NULL;
	s->body_cr = false;
	s->msg_done = false;
	sl_timer_cancel(&s->progress);
	sl_conn_end_txn(s->conn);
}

/* The disconnect hook, once per MTA-side "session" (CONNECT .. QUIT/K). */
static void
run_disconnect(struct msess *s)
{
	if (s->ip_counted)
		sl_ipcount_release(s->conn->peer_addr);
	s->ip_counted = false;
	if (!s->connect_ran)
		return;
	s->connect_ran = false;
	sl_hook_disconnect(s->conn);
}

static void
session_free(struct msess *s)
{
	struct sl_loop *l = s->loop;

	run_disconnect(s);
	txn_forget(s);
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	sl_log(LOG_INFO, s->conn->id, "milter session end");
	bufferevent_free(s->bev);
	sl_milter_macros_clear(&s->macros);
	sl_milter_buf_free(&s->out);
	free(s->pkt);
	free(s->rhdrs);
	free(s->rrcpts);
	free(s->params_joined);
	free(s->addr);
	sl_conn_free(&s->conn);
	free(s);
	sl_loop_conn_removed(l);
}

static void
deferred_free(void *arg)
{
	session_free(arg);
}

/* Never frees in place: the loop frees it once the callback is done. */
static void
maybe_free(struct msess *s)
{
	if (s->free_scheduled)
		return;
	s->free_scheduled = true;
	sl_loop_post(s->loop, deferred_free, s);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct msess *s = arg;

	(void)bev;
	if (s->state == MS_CLOSING)
		maybe_free(s);
}

static void
session_close(struct msess *s, const char *why)
{
	if (s->state == MS_CLOSING)
		return;
	if (why != NULL)
		sl_log(LOG_NOTICE, s->conn->id, "milter session closed: %s",
		    why);
	flush_out(s);
	s->state = MS_CLOSING;
	sl_timer_cancel(&s->progress);
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		maybe_free(s);
}

static void
protocol_error(struct msess *s, const char *what)
{
	sl_log(LOG_WARNING, s->conn->id,
	    "milter protocol error: %s (state=%s); closing", what,
	    state_names[s->state]);
	s->out.len = 0;
	session_close(s, NULL);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct msess *s = arg;

	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) != 0 && s->state != MS_CLOSING) {
		sl_log(LOG_NOTICE, s->conn->id,
		    "milter timeout state=%s: no command from the MTA",
		    state_names[s->state]);
		session_close(s, NULL);
		return;
	}
	if (s->state != MS_CLOSING &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		sl_log(LOG_WARNING, s->conn->id,
		    "milter protocol error: the MTA closed the connection "
		    "inside a packet (state=%s)",
		    state_names[s->state]);
	else if (s->state != MS_CLOSING && s->conn->txn != NULL)
		sl_log(LOG_NOTICE, s->conn->id,
		    "milter: the MTA closed the connection state=%s",
		    state_names[s->state]);
	s->state = MS_CLOSING;
	maybe_free(s);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process_input(arg);
}

void
milterd_session_start(struct sl_loop *l, int fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct msess *s;
	struct timeval tv;
	int on = 1;

	s = sl_xcalloc(1, sizeof(*s));
	s->loop = l;
	s->conn = sl_conn_new(l, SL_FRONT_MILTERD);
	s->conn->fe_data = s;
	s->conn->fe_macro = conn_macro;
	s->set = s->conn->rt->set;
	if (sa->sa_family != AF_UNIX) {
		sl_conn_set_remote(s->conn, sa, (size_t)salen);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	}
	s->out.max_data = SL_MILTER_SEND_MAX;
	s->bev =
	    bufferevent_socket_new(sl_loop_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	/* Bounded input: one packet at most, plus what arrives with it. */
	bufferevent_setwatermark(s->bev, EV_READ, 0,
	    SL_MILTER_RECV_MAX + 64 * 1024);
	tv = sl_timeval_ms(s->set->milter_timeout_ms);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	sl_loop_conn_added(l);
	sl_log(LOG_DEBUG, s->conn->id, "milter session mta=[%s]",
	    sa->sa_family == AF_UNIX ? "unix" : s->conn->remote_ip);
}

void
milterd_sessions_drain(struct sl_loop *l, bool deadline)
{
	struct msess *s, *next;

	(void)l;
	for (s = sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == MS_CLOSING)
			continue;
		if (deadline || (!s->busy && s->conn->txn == NULL))
			session_close(s,
			    deadline ? "shutdown deadline" : "shutting down");
		else
			s->drain_after_msg = true;
	}
}

/* --- negotiation -------------------------------------------------------- */

/* The macros we ask for at CONNECT (where SMFIF_SETSYMLIST is offered). */
static const char connect_macros[] =
    "j {daemon_name} {daemon_addr} {daemon_port} v _ {client_addr} "
    "{client_port} {client_name} {client_ptr}";

static void
plan_negotiation(struct msess *s, uint32_t *actions_r, uint32_t *proto_r)
{
	const struct sl_runtime *rt = s->conn->rt;
	uint32_t a = SL_SMFIF_SETSYMLIST, p = SL_SMFIP_SKIP;
	bool defer = false;
	size_t i;

	s->edits = 0;
	for (i = 0; i < rt->ninst; i++) {
		s->edits |= rt->inst[i].plugin->edits;
		if (rt->inst[i].reject == SL_REJECT_DEFER)
			defer = true;
	}
	if ((s->edits & SL_EDIT_HEADER_ADD) != 0)
		a |= SL_SMFIF_ADDHDRS;
	if ((s->edits & SL_EDIT_HEADER_CHANGE) != 0)
		a |= SL_SMFIF_CHGHDRS;
	if ((s->edits & SL_EDIT_BODY) != 0)
		a |= SL_SMFIF_CHGBODY;
	if ((s->edits & SL_EDIT_RCPT_ADD) != 0)
		a |= SL_SMFIF_ADDRCPT | SL_SMFIF_ADDRCPT_PAR;
	if ((s->edits & SL_EDIT_RCPT_DELETE) != 0)
		a |= SL_SMFIF_DELRCPT;
	if ((s->edits & SL_EDIT_SENDER) != 0)
		a |= SL_SMFIF_CHGFROM;
	if ((s->edits & SL_EDIT_QUARANTINE) != 0)
		a |= SL_SMFIF_QUARANTINE;
	s->content = s->edits != 0 || sl_hook_wanted(rt, SL_HOOK_HEADER) ||
	    sl_hook_wanted(rt, SL_HOOK_EOH) ||
	    sl_hook_wanted(rt, SL_HOOK_BODY) ||
	    sl_hook_wanted(rt, SL_HOOK_DATA_POST);
	if (!sl_hook_wanted(rt, SL_HOOK_CONNECT))
		p |= SL_SMFIP_NR_CONN;
	if (!sl_hook_wanted(rt, SL_HOOK_HELO))
		p |= SL_SMFIP_NR_HELO;
	if (!sl_hook_wanted(rt, SL_HOOK_MAIL))
		p |= SL_SMFIP_NR_MAIL;
	if (!sl_hook_wanted(rt, SL_HOOK_RCPT) && !defer)
		p |= SL_SMFIP_NR_RCPT;
	if (!sl_hook_wanted(rt, SL_HOOK_UNRECOGNIZED))
		p |= SL_SMFIP_NOUNKNOWN | SL_SMFIP_NR_UNKN;
	if (s->content) {
		/* DATA is answered: the chance to say DISCARD. */
		if (!sl_hook_wanted(rt, SL_HOOK_HEADER))
			p |= SL_SMFIP_NR_HDR;
		if (!sl_hook_wanted(rt, SL_HOOK_EOH))
			p |= SL_SMFIP_NR_EOH;
		if (!sl_hook_wanted(rt, SL_HOOK_BODY))
			p |= SL_SMFIP_NR_BODY;
		if (!sl_hook_wanted(rt, SL_HOOK_BODY) &&
		    !sl_hook_wanted(rt, SL_HOOK_DATA_POST) &&
		    (s->edits & SL_EDIT_BODY) == 0)
			p |= SL_SMFIP_NOBODY;
	} else {
		/* Nobody reads content: ACCEPT at DATA ends the message. */
		p |= SL_SMFIP_NOHDRS | SL_SMFIP_NOEOH | SL_SMFIP_NOBODY;
	}
	*actions_r = a;
	*proto_r = p;
}

static void
ev_optneg(struct msess *s)
{
	const char *err, *symlist[SL_SMFIM_MAX] = { NULL };
	uint32_t want_a, want_p, missing;

	plan_negotiation(s, &want_a, &want_p);
	if (sl_milter_negotiate_filter(s->m.version, s->m.actions,
	        s->m.protocol, want_a, want_p, &s->version, &s->actions,
	        &s->proto, &missing, &err) == -1) {
		protocol_error(s, err);
		return;
	}
	missing &= ~(uint32_t)(SL_SMFIF_SETSYMLIST | SL_SMFIF_ADDRCPT_PAR);
	if (missing != 0)
		sl_log(LOG_WARNING, s->conn->id,
		    "milter: the MTA does not offer actions 0x%x the plugins "
		    "may need; those edits will be dropped",
		    (unsigned int)missing);
	if ((s->actions & SL_SMFIF_SETSYMLIST) != 0)
		symlist[SL_SMFIM_CONNECT] = connect_macros;
	sl_log(LOG_DEBUG, s->conn->id,
	    "milter optneg offer=%u/0x%x/0x%x answer=%u/0x%x/0x%x",
	    (unsigned int)s->m.version, (unsigned int)s->m.actions,
	    (unsigned int)s->m.protocol, (unsigned int)s->version,
	    (unsigned int)s->actions, (unsigned int)s->proto);
	(void)sl_milter_put_optneg(&s->out, s->version, s->actions, s->proto,
	    symlist);
	s->state = MS_OPTS;
}

/* --- connection events -------------------------------------------------- */

static const char *
macro(const struct msess *s, const char *name)
{
	return sl_milter_macros_get(&s->macros, name);
}

/* sl_conn_macro() in milterd: what the MTA sent. */
static const char *
conn_macro(struct sl_conn *c, const char *name)
{
	const struct msess *s = c->fe_data;

	return macro(s, name);
}

static unsigned int
port_of(const char *p)
{
	unsigned long v;
	char *end;

	if (p == NULL || *p == '\0')
		return 0;
	v = strtoul(p, &end, 10);
	return *end == '\0' && v <= 65535 ? (unsigned int)v : 0;
}

static const char *
strip_ipv6_tag(const char *a)
{
	return strncasecmp(a, "IPv6:", 5) == 0 ? a + 5 : a;
}

/*
 * The end of a CONNECT, HELO or UNKNOWN chain: the reply, nothing else
 * to keep.  DISCARD before any message discards all of the session's.
 */
static void
event_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct msess *s = arg;

	(void)c;
	s->busy = false;
	if (v == SL_DISCARD && s->m.code != 'U')
		s->conn->discard = true;
	reply_verdict(s, s->m.code, v, r);
	process_input(s);
}

static void
ev_connect(struct msess *s)
{
	struct sl_conn *c = s->conn;
	const char *addr = NULL, *da;
	unsigned int port = s->m.port;
	bool over;

	if (s->m.family == '4' || s->m.family == '6') {
		addr = strip_ipv6_tag(s->m.addr);
		if ((strchr(addr, ':') != NULL) != (s->m.family == '6')) {
			protocol_error(s,
			    "CONNECT address does not match its "
			    "family");
			return;
		}
	} else if (macro(s, "{client_addr}") != NULL)
		addr = strip_ipv6_tag(macro(s, "{client_addr}"));
	if (port == 0)
		port = port_of(macro(s, "{client_port}"));
	if (addr != NULL && sl_conn_set_remote_text(c, addr, port) == -1) {
		if (s->m.family == '4' || s->m.family == '6') {
			protocol_error(s,
			    "CONNECT with an unparseable address");
			return;
		}
		addr = NULL;
	}
	if (addr != NULL) {
		/* Per-client counting (sl_conn_ip_connections) as smtpd. */
		memcpy(c->peer_addr, c->remote_addr, sizeof(c->peer_addr));
		(void)sl_ipcount_acquire(c->peer_addr, 0, 0, &over);
		s->ip_counted = true;
	} else {
		/* No IP client: plugins see none, as for smtpd -i. */
		c->remote_ip[0] = '\0';
		c->remote_family = 0;
		c->remote_port = 0;
		memset(c->remote_addr, 0, sizeof(c->remote_addr));
	}
	free(c->remote_host);
	c->remote_host = NULL;
	if (s->m.host[0] != '\0' && s->m.host[0] != '[' &&
	    strcmp(s->m.host, "unknown") != 0)
		c->remote_host = sl_xstrdup(s->m.host);
	da = macro(s, "{daemon_addr}");
	if (da != NULL)
		snprintf(c->local_ip, sizeof(c->local_ip), "%s",
		    strip_ipv6_tag(da));
	c->local_port = port_of(macro(s, "{daemon_port}"));
	sl_log(LOG_INFO, c->id, "connect client=%s[%s]:%u local=[%s]:%u mta=%s",
	    c->remote_host != NULL ? c->remote_host : "unknown", c->remote_ip,
	    c->remote_port, c->local_ip, c->local_port,
	    macro(s, "j") != NULL ? macro(s, "j") : "-");
	s->state = MS_CONN;
	s->connect_ran = true;
	c->closing = false;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_CONNECT;
	s->busy = true;
	sl_hook_run(c, &s->args, event_done, s);
}

static void
reset_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct msess *s = arg;

	(void)c;
	(void)v;
	(void)r;
	s->busy = false;
	txn_forget(s);
	process_input(s);
}

/*
 * Ends an open transaction (ABORT, or a new MAIL or HELO): the reset
 * hook runs, then the command is handled.  Returns true if the session
 * must wait for the hook.
 */
static bool
abort_txn(struct msess *s)
{
	if (s->conn->txn == NULL)
		return false;
	sl_log(LOG_INFO, s->conn->id, "txn=%s aborted by the MTA",
	    s->conn->txn->id);
	if (!sl_hook_wanted(s->conn->rt, SL_HOOK_RESET)) {
		txn_forget(s);
		return false;
	}
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_RESET;
	s->busy = true;
	sl_hook_run(s->conn, &s->args, reset_done, s);
	return s->busy;
}

static void
ev_helo(struct msess *s)
{
	struct sl_conn *c = s->conn;
	const char *tls = macro(s, "{tls_version}");

	free(c->helo);
	c->helo = sl_xstrdup(s->m.str);
	c->tls = tls != NULL && *tls != '\0';
	if (c->tls) {
		sl_conn_note_set(c, "tls.version", tls);
		sl_conn_note_set(c, "tls.cipher", macro(s, "{cipher}"));
	}
	s->state = MS_HELO;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_HELO;
	s->args.arg = c->helo;
	s->busy = true;
	sl_hook_run(c, &s->args, event_done, s);
}

/*
 * "<a@b>" -> "a@b", "<>" -> "", "<@r1,@r2:a@b>" -> "a@b": a copy kept in
 * the session until the next envelope command.
 */
static char *
strip_path(struct msess *s, const char *raw)
{
	size_t n = strlen(raw);
	char *a, *colon;

	free(s->addr);
	a = s->addr = sl_xstrdup(raw);

	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a[n - 1] = '\0';
		a++;
	}
	if (a[0] == '@' && (colon = strchr(a, ':')) != NULL)
		a = colon + 1;
	return a;
}

static void
join_params(struct msess *s)
{
	size_t i, len = 0;
	char *p;

	free(s->params_joined);
	s->params_joined = NULL;
	if (s->m.argc <= 1)
		return;
	for (i = 1; i < s->m.argc; i++)
		len += strlen(s->m.argv[i]) + 1;
	p = s->params_joined = sl_xmalloc(len);
	for (i = 1; i < s->m.argc; i++) {
		len = strlen(s->m.argv[i]);
		memcpy(p, s->m.argv[i], len);
		p += len;
		*p++ = i + 1 < s->m.argc ? ' ' : '\0';
	}
}

static void
envelope_args(struct msess *s, enum sl_hook_id h, char *addr)
{
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = h;
	s->args.arg = addr;
	s->args.params = s->m.argc > 1 ? &s->m.argv[1] : NULL;
	s->args.nparams = s->m.argc > 1 ? s->m.argc - 1 : 0;
	join_params(s);
}

static void
mail_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct msess *s = arg;
	struct sl_txn *t;
	const char *qid = macro(s, "i");

	s->busy = false;
	if (is_refusal(v, r)) {
		reply_verdict(s, 'M', v, r);
		s->state = MS_HELO;
		process_input(s);
		return;
	}
	t = sl_conn_begin_txn(c);
	sl_txn_set_sender(t, s->args.arg, s->params_joined);
	s->orig_sender = sl_xstrdup(s->args.arg);
	s->orig_sender_params =
	    s->params_joined != NULL ? sl_xstrdup(s->params_joined) : NULL;
	if (c->discard)
		t->discard = true;
	sl_log(LOG_INFO, c->id, "mail from=<%s> txn=%s queue_id=%s",
	    s->args.arg, t->id, qid != NULL ? qid : "-");
	if (reply_verdict(s, 'M', v, r)) {
		s->msg_done = true;
		s->state = MS_HELO;
	}
	process_input(s);
}

static void
ev_mail(struct msess *s)
{
	struct sl_conn *c = s->conn;
	const char *user = macro(s, "{auth_authen}");

	free(c->auth_user);
	c->auth_user = user != NULL && *user != '\0' ? sl_xstrdup(user) : NULL;
	sl_conn_update_relay(c);
	s->state = MS_MAIL;
	envelope_args(s, SL_HOOK_MAIL, strip_path(s, s->m.argv[0]));
	s->busy = true;
	sl_hook_run(c, &s->args, mail_done, s);
}

static void
rcpt_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct msess *s = arg;
	struct rrcpt *rr;

	s->busy = false;
	if (is_refusal(v, r)) {
		sl_log(LOG_INFO, c->id, "rcpt to=<%s> refused", s->args.arg);
		reply_verdict(s, 'R', v, r);
		process_input(s);
		return;
	}
	sl_txn_add_rcpt(c->txn, s->args.arg, s->params_joined);
	if (s->nrrcpts == s->rrcpts_alloc) {
		s->rrcpts_alloc =
		    s->rrcpts_alloc == 0 ? 4 : s->rrcpts_alloc * 2;
		s->rrcpts = sl_xreallocarray(s->rrcpts, s->rrcpts_alloc,
		    sizeof(*s->rrcpts));
	}
	rr = &s->rrcpts[s->nrrcpts++];
	rr->addr = sl_xstrdup(s->args.arg);
	rr->raw = sl_xstrdup(s->m.argv[0]);
	sl_log(LOG_INFO, c->id, "rcpt to=<%s>", s->args.arg);
	if (reply_verdict(s, 'R', v, r)) {
		s->msg_done = true;
		s->state = MS_HELO;
	}
	process_input(s);
}

static void
ev_rcpt(struct msess *s)
{
	struct sl_conn *c = s->conn;
	struct sl_reply dr;
	enum sl_verdict mv;
	char *addr;

	s->state = MS_RCPT;
	addr = strip_path(s, s->m.argv[0]);
	if ((mv = sl_conn_mark_at_rcpt(c)) != SL_DECLINED) {
		sl_log(LOG_INFO, c->id, "rcpt to=<%s> refused reason=deferred",
		    addr);
		dr = c->deferred_reply;
		reply_verdict(s, 'R', mv, &dr);
		return;
	}
	envelope_args(s, SL_HOOK_RCPT, addr);
	s->busy = true;
	sl_hook_run(c, &s->args, rcpt_done, s);
}

static void
data_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct msess *s = arg;

	(void)c;
	s->busy = false;
	if (!sl_verdict_is_deny(v) && v != SL_DISCARD && !s->content &&
	    !s->conn->txn->discard && wants_reply(s, 'T')) {
		/* Nothing more to do for this message: ACCEPT spares the MTA
		 * sending us its content. */
		put_simple(s, SL_SMFIR_ACCEPT);
		s->msg_done = true;
		s->state = MS_HELO;
	} else if (reply_verdict(s, 'T', v, r)) {
		s->msg_done = true;
		s->state = MS_HELO;
	}
	process_input(s);
}

static void
ev_data(struct msess *s)
{
	s->state = MS_DATA;
	if (s->conn->txn == NULL) {
		protocol_error(s, "DATA without a transaction");
		return;
	}
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_DATA;
	s->busy = true;
	sl_hook_run(s->conn, &s->args, data_done, s);
}

/* --- content ------------------------------------------------------------ */

/* Synchronous hooks (header, eoh, body): the verdict comes at once. */
static void
content_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct msess *s = arg;

	(void)c;
	if (s->m.code == 'E' && !sl_verdict_is_deny(v)) {
		/* data on BODYEOB: the final reply comes after data_post */
		if (v == SL_DISCARD)
			s->conn->txn->discard = true;
		return;
	}
	if (reply_verdict(s, s->m.code, v, r)) {
		s->msg_done = true;
		s->state = MS_HELO;
	}
}

static void
ev_header(struct msess *s)
{
	struct sl_txn *t = s->conn->txn;
	const char *value = s->m.value;
	struct rhdr *rh;
	size_t i;

	s->state = MS_HDRS;
	while (*value == ' ' || *value == '\t')
		value++;
	sl_txn_add_raw_header(t, s->m.name, value, NULL, 0);
	t->size += strlen(s->m.name) + strlen(s->m.value) + 3;
	if (s->nrhdrs == s->rhdrs_alloc) {
		s->rhdrs_alloc = s->rhdrs_alloc == 0 ? 32 : s->rhdrs_alloc * 2;
		s->rhdrs = sl_xreallocarray(s->rhdrs, s->rhdrs_alloc,
		    sizeof(*s->rhdrs));
	}
	rh = &s->rhdrs[s->nrhdrs++];
	rh->name = sl_xstrdup(s->m.name);
	rh->occ = 1;
	for (i = 0; i + 1 < s->nrhdrs; i++)
		if (strcasecmp(s->rhdrs[i].name, rh->name) == 0)
			rh->occ++;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_HEADER;
	s->args.name = s->m.name;
	s->args.value = value;
	sl_hook_run(s->conn, &s->args, content_done, s);
}

static void
ev_eoh(struct msess *s)
{
	s->state = MS_EOHS;
	s->conn->txn->had_blank = true;
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_EOH;
	sl_hook_run(s->conn, &s->args, content_done, s);
}

/*
 * Body bytes come with CRLF line ends; the core keeps LF (as smtpd's
 * reader does).  A CR at the end of a chunk waits for the next one.
 * Returns -1 on a spool error.
 */
static int
body_feed(struct msess *s, const uint8_t *p, size_t n, uint8_t **lf_r,
    size_t *lf_len_r)
{
	uint8_t *o;
	size_t i, k = 0;

	o = sl_xmalloc(n + 2);
	if (s->body_cr) {
		if (n == 0 || p[0] != '\n')
			o[k++] = '\r';
		s->body_cr = false;
	}
	for (i = 0; i < n; i++) {
		if (p[i] == '\r') {
			if (i + 1 == n) {
				s->body_cr = true;
				break;
			}
			if (p[i + 1] == '\n')
				continue;
		}
		o[k++] = p[i];
	}
	s->conn->txn->size += n;
	*lf_r = o;
	*lf_len_r = k;
	return sl_txn_body_append(s->conn->txn, o, k);
}

static void
ev_body(struct msess *s, const uint8_t *data, size_t len, bool eob)
{
	struct sl_conn *c = s->conn;
	uint8_t *lf;
	size_t n;

	if (!eob)
		s->state = MS_BODY;
	if (body_feed(s, data, len, &lf, &n) == -1) {
		free(lf);
		if (wants_reply(s, 'B') || eob) {
			(void)sl_milter_put_reply(&s->out, 451, "4.3.0",
			    "Local error storing message");
			s->msg_done = true;
			s->state = MS_HELO;
		}
		return;
	}
	if (n > 0 && sl_hook_wanted(c->rt, SL_HOOK_BODY)) {
		memset(&s->args, 0, sizeof(s->args));
		s->args.hook = SL_HOOK_BODY;
		s->args.data = lf;
		s->args.len = n;
		sl_hook_run(c, &s->args, content_done, s);
	} else if (!eob && wants_reply(s, 'B')) {
		if ((s->proto & SL_SMFIP_SKIP) != 0 &&
		    !sl_hook_wanted(c->rt, SL_HOOK_DATA_POST) &&
		    (s->edits & SL_EDIT_BODY) == 0)
			put_simple(s, SL_SMFIR_SKIP);
		else
			put_simple(s, SL_SMFIR_CONTINUE);
	}
	free(lf);
}

/* --- end of message: edits and the final reply -------------------------- */

static bool
may(struct msess *s, uint32_t action, const char *what)
{
	if ((s->actions & action) != 0)
		return true;
	sl_log(LOG_ERR, s->conn->id,
	    "milter: edit dropped (%s): not negotiated with the MTA; declare "
	    "it in the plugin's .edits",
	    what);
	return false;
}

static void
put_header_edit(struct msess *s, uint8_t code, uint32_t idx, const char *name,
    const char *value)
{
	const char *strs[2] = { name, value };
	int rc;

	if (code == SL_SMFIR_ADDHEADER)
		rc = sl_milter_put_strings(&s->out, code, strs, 2);
	else
		rc = sl_milter_put_index(&s->out, code, idx, name, value);
	if (rc == -1)
		sl_log(LOG_ERR, s->conn->id,
		    "milter: header edit %s too large for the MTA; dropped",
		    name);
	else
		sl_log(LOG_DEBUG, s->conn->id, "milter reply=%s %s[%u]",
		    sl_milter_reply_name(code), name, (unsigned int)idx);
}

/*
 * Headers: changes first, then deletes from the last one up (so that
 * the positions hold for both MTAs: Postfix shifts after a delete,
 * sendmail does not), then new headers: appended when nothing the MTA
 * showed follows them, else inserted at their place.  The MTA's own
 * Received: is its position 0 (hidden from us); a header a plugin put
 * first goes above it, as smtpd puts it above its own Received:.
 */
static void
emit_header_edits(struct msess *s)
{
	struct sl_txn *t = s->conn->txn;
	bool *present;
	size_t i, j;
	bool later_orig;

	present = sl_xcalloc(s->nrhdrs + 1, sizeof(*present));
	for (i = 0; i < t->nhdrs; i++) {
		const struct sl_header *h = &t->hdrs[i];

		if (h->orig == 0 || h->orig > s->nrhdrs)
			continue;
		present[h->orig] = true;
		if (h->changed && may(s, SL_SMFIF_CHGHDRS, "change header"))
			put_header_edit(s, SL_SMFIR_CHGHEADER,
			    s->rhdrs[h->orig - 1].occ, h->name, h->value);
	}
	for (i = s->nrhdrs; i > 0; i--)
		if (!present[i] && may(s, SL_SMFIF_CHGHDRS, "delete header"))
			put_header_edit(s, SL_SMFIR_CHGHEADER,
			    s->rhdrs[i - 1].occ, s->rhdrs[i - 1].name, "");
	free(present);
	for (i = 0; i < t->nhdrs; i++) {
		const struct sl_header *h = &t->hdrs[i];

		if (h->orig != 0 || !may(s, SL_SMFIF_ADDHDRS, "add header"))
			continue;
		later_orig = false;
		for (j = i + 1; j < t->nhdrs && !later_orig; j++)
			later_orig = t->hdrs[j].orig != 0;
		if (!later_orig)
			put_header_edit(s, SL_SMFIR_ADDHEADER, 0, h->name,
			    h->value);
		else
			put_header_edit(s, SL_SMFIR_INSHEADER,
			    i == 0 ? 0 : (uint32_t)i + 1, h->name, h->value);
	}
}

static bool
rcpt_in(const struct sl_rcpt *v, size_t n, bool *used, const char *addr)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!used[i] && strcasecmp(v[i].addr, addr) == 0) {
			used[i] = true;
			return true;
		}
	return false;
}

static void
emit_envelope_edits(struct msess *s)
{
	struct sl_txn *t = s->conn->txn;
	const char *strs[2];
	bool *used;
	size_t i, j;
	char *a;

	if (strcmp(t->sender, s->orig_sender) != 0 ||
	    (t->sender_params == NULL) != (s->orig_sender_params == NULL) ||
	    (t->sender_params != NULL &&
	        strcmp(t->sender_params, s->orig_sender_params) != 0)) {
		if (may(s, SL_SMFIF_CHGFROM, "change sender")) {
			a = sl_xasprintf("<%s>", t->sender);
			strs[0] = a;
			strs[1] = t->sender_params;
			(void)sl_milter_put_strings(&s->out, SL_SMFIR_CHGFROM,
			    strs, t->sender_params != NULL ? 2 : 1);
			sl_log(LOG_INFO, s->conn->id, "milter: sender -> <%s>",
			    t->sender);
			free(a);
		}
	}
	/* Recipients the MTA gave that are gone: DELRCPT as it sent them. */
	used = sl_xcalloc(t->nrcpts + 1, sizeof(*used));
	for (i = 0; i < s->nrrcpts; i++) {
		if (rcpt_in(t->rcpts, t->nrcpts, used, s->rrcpts[i].addr))
			continue;
		if (may(s, SL_SMFIF_DELRCPT, "delete recipient")) {
			strs[0] = s->rrcpts[i].raw;
			(void)sl_milter_put_strings(&s->out, SL_SMFIR_DELRCPT,
			    strs, 1);
			sl_log(LOG_INFO, s->conn->id,
			    "milter: recipient removed <%s>",
			    s->rrcpts[i].addr);
		}
	}
	/* Recipients no MTA recipient matched: new. */
	for (j = 0; j < t->nrcpts; j++) {
		if (used[j])
			continue;
		a = sl_xasprintf("<%s>", t->rcpts[j].addr);
		strs[0] = a;
		strs[1] = t->rcpts[j].params;
		if (t->rcpts[j].params != NULL &&
		    (s->actions & SL_SMFIF_ADDRCPT_PAR) != 0)
			(void)sl_milter_put_strings(&s->out,
			    SL_SMFIR_ADDRCPT_PAR, strs, 2);
		else if (may(s, SL_SMFIF_ADDRCPT, "add recipient"))
			(void)sl_milter_put_strings(&s->out, SL_SMFIR_ADDRCPT,
			    strs, 1);
		sl_log(LOG_INFO, s->conn->id, "milter: recipient added <%s>",
		    t->rcpts[j].addr);
		free(a);
	}
	free(used);
}

/* The new body, LF to CRLF, in REPLBODY packets (contiguous). */
static void
emit_body(struct msess *s)
{
	struct sl_txn *t = s->conn->txn;
	uint8_t in[16384], *o;
	size_t off = 0, k, i;
	long n;

	if (!may(s, SL_SMFIF_CHGBODY, "replace body"))
		return;
	o = sl_xmalloc(2 * sizeof(in));
	for (;;) {
		n = sl_txn_body_read(t, off, in, sizeof(in));
		if (n <= 0)
			break;
		off += (size_t)n;
		for (i = 0, k = 0; i < (size_t)n; i++) {
			if (in[i] == '\n')
				o[k++] = '\r';
			o[k++] = in[i];
		}
		(void)sl_milter_put_body(&s->out, SL_SMFIR_REPLBODY, o, k);
	}
	if (off == 0)
		(void)sl_milter_put(&s->out, SL_SMFIR_REPLBODY, NULL, 0);
	free(o);
	sl_log(LOG_INFO, s->conn->id, "milter: body replaced size=%zu", off);
}

static void
emit_edits(struct msess *s)
{
	struct sl_txn *t = s->conn->txn;
	const char *q = t->quarantine;

	emit_header_edits(s);
	emit_envelope_edits(s);
	if (t->body_replaced)
		emit_body(s);
	if (q != NULL && may(s, SL_SMFIF_QUARANTINE, "quarantine")) {
		(void)sl_milter_put_strings(&s->out, SL_SMFIR_QUARANTINE, &q,
		    1);
		sl_log(LOG_NOTICE, s->conn->id, "quarantined txn=%s reason=%s",
		    t->id, q);
	}
}

static void
progress_cb(void *arg)
{
	struct msess *s = arg;

	s->progress = NULL;
	put_simple(s, SL_SMFIR_PROGRESS);
	flush_out(s);
	s->progress_sent++;
	s->progress =
	    sl_timer_add(s->loop, s->set->milter_progress_ms, progress_cb, s);
}

static void
eom_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct msess *s = arg;
	struct sl_txn *t = c->txn;

	s->busy = false;
	sl_timer_cancel(&s->progress);
	if (is_refusal(v, r) || v == SL_DISCARD || t->discard) {
		sl_log(LOG_INFO, c->id, "txn=%s %s", t->id,
		    v == SL_DISCARD || t->discard ? "discarded" : "refused");
		reply_verdict(s, 'E', v, r);
	} else {
		emit_edits(s);
		put_simple(s, SL_SMFIR_CONTINUE);
		sl_conn_log_accepted(c, "accepted");
	}
	s->state = MS_ENDM;
	s->msg_done = true;
	txn_forget(s);
	if (s->drain_after_msg) {
		session_close(s, "shutting down");
		return;
	}
	process_input(s);
}

static void
ev_eom(struct msess *s)
{
	struct sl_conn *c = s->conn;

	if (s->m.len > 0)
		ev_body(s, s->m.data, s->m.len, true);
	if (s->body_cr) {
		s->body_cr = false;
		(void)sl_txn_body_append(c->txn, (const uint8_t *)"\r", 1);
	}
	if (s->msg_done) { /* a body hook refused at the last chunk */
		s->state = MS_ENDM;
		txn_forget(s);
		return;
	}
	s->state = MS_ENDM;
	s->progress_sent = 0;
	s->progress =
	    sl_timer_add(s->loop, s->set->milter_progress_ms, progress_cb, s);
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_DATA_POST;
	s->busy = true;
	sl_hook_run(c, &s->args, eom_done, s);
}

/* --- other events ------------------------------------------------------- */

static void
ev_unknown(struct msess *s)
{
	memset(&s->args, 0, sizeof(s->args));
	s->args.hook = SL_HOOK_UNRECOGNIZED;
	s->args.arg = s->m.str;
	s->busy = true;
	sl_hook_run(s->conn, &s->args, event_done, s);
}

/* QUIT_NC: this client session ends, the next CONNECT starts another. */
static void
ev_quit_nc(struct msess *s)
{
	struct sl_conn *c;

	txn_forget(s);
	run_disconnect(s);
	c = sl_conn_new(s->loop, SL_FRONT_MILTERD);
	c->fe_data = s;
	c->fe_macro = conn_macro;
	sl_conn_free(&s->conn);
	s->conn = c;
	s->set = c->rt->set;
	s->state = MS_QNC;
}

/* --- dispatch ----------------------------------------------------------- */

/* Message states, in order; one whose event we switched off may be skipped. */
static bool
skippable(const struct msess *s, enum mst st)
{
	switch (st) {
	case MS_DATA:
		return s->version < 4 || (s->proto & SL_SMFIP_NODATA) != 0;
	case MS_HDRS:
		return (s->proto & SL_SMFIP_NOHDRS) != 0;
	case MS_EOHS:
		return (s->proto & SL_SMFIP_NOEOH) != 0;
	case MS_BODY:
		return (s->proto & SL_SMFIP_NOBODY) != 0;
	default:
		return false;
	}
}

static bool
is_legal(const struct msess *s, uint8_t cmd)
{
	enum mst st = s->state;

	if (cmd == 'D')
		return st != MS_INIT;
	if (st == MS_INIT)
		return cmd == 'O';
	if (st == MS_OPTS || st == MS_QNC) /* ABORT is harmless anywhere */
		return strchr(legal[st], cmd) != NULL || cmd == 'A' ||
		    cmd == 'Q';
	/* After CONNECT: what libmilter accepts once it reset to HELO. */
	if (strchr("AQKHMU", cmd) != NULL)
		return true;
	for (;;) {
		if (strchr(legal[st], cmd) != NULL)
			return true;
		if (st < MS_MAIL || st >= MS_ENDM || !skippable(s, st + 1))
			return false;
		st++;
	}
}

/* Handles one decoded command. */
static void
dispatch(struct msess *s)
{
	uint8_t cmd = s->m.code;

	if (!is_legal(s, cmd)) {
		char what[80];

		snprintf(what, sizeof(what), "%s out of order",
		    sl_milter_command_name(cmd));
		protocol_error(s, what);
		return;
	}
	if (cmd != 'D' && cmd != 'A')
		sl_milter_macros_event(&s->macros, cmd);
	switch (cmd) {
	case 'O':
		ev_optneg(s);
		break;
	case 'D':
		sl_milter_macros_store(&s->macros, &s->m);
		break;
	case 'C':
		ev_connect(s);
		break;
	case 'H':
		if (abort_txn(s))
			return; /* the command is read again after reset */
		ev_helo(s);
		break;
	case 'M':
		if (abort_txn(s))
			return;
		ev_mail(s);
		break;
	case 'R':
		if (s->msg_done || s->conn->txn == NULL) {
			protocol_error(s, "RCPT after the message ended");
			return;
		}
		ev_rcpt(s);
		break;
	case 'T':
		ev_data(s);
		break;
	case 'L':
		ev_header(s);
		break;
	case 'N':
		ev_eoh(s);
		break;
	case 'B':
		ev_body(s, s->m.data, s->m.len, false);
		break;
	case 'E':
		ev_eom(s);
		break;
	case 'A':
		if (s->state >= MS_MAIL && s->state <= MS_BODY)
			s->state = MS_HELO;
		if (abort_txn(s))
			return;
		break;
	case 'U':
		s->state = MS_UNKN;
		ev_unknown(s);
		break;
	case 'K':
		ev_quit_nc(s);
		break;
	case 'Q':
		session_close(s, NULL);
		return;
	}
}

/*
 * Reads and handles packets until input runs out, a hook chain suspends,
 * or the session closes.  A command that first waits for a reset hook
 * (HELO or MAIL over an open transaction) stays in the buffer and is
 * decoded again.
 */
static void
process_input(struct msess *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct sl_milter_packet pkt;
	const char *err;
	uint8_t hdr[4];
	uint32_t len;
	size_t used, avail;
	int rc;

	if (s->in_process)
		return;
	s->in_process = true;
	while (!s->busy && s->state != MS_CLOSING) {
		avail = evbuffer_get_length(in);
		if (avail < 4)
			break;
		/* The codec judges the length from its 4 bytes alone. */
		evbuffer_copyout(in, hdr, 4);
		if (sl_milter_frame(hdr, 4, SL_MILTER_RECV_MAX, &pkt, &used,
		        &err) == -1) {
			protocol_error(s, err);
			break;
		}
		len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		    (uint32_t)hdr[2] << 8 | hdr[3];
		if (avail < (size_t)len + 4)
			break;
		if (s->pkt_alloc < (size_t)len + 4) {
			s->pkt_alloc = (size_t)len + 4;
			s->pkt = sl_xrealloc(s->pkt, s->pkt_alloc);
		}
		evbuffer_copyout(in, s->pkt, (size_t)len + 4);
		rc = sl_milter_frame(s->pkt, (size_t)len + 4,
		    SL_MILTER_RECV_MAX, &pkt, &used, &err);
		if (rc != 1) {
			protocol_error(s, err);
			break;
		}
		if (sl_milter_decode_command(&pkt, &s->m, &err) == -1) {
			char what[128];

			snprintf(what, sizeof(what), "%s (0x%02x): %s",
			    sl_milter_command_name(pkt.cmd), pkt.cmd, err);
			protocol_error(s, what);
			break;
		}
		dispatch(s);
		/* HELO/MAIL waiting for the reset hook: read it again. */
		if (s->busy && s->args.hook == SL_HOOK_RESET &&
		    (s->m.code == 'H' || s->m.code == 'M'))
			continue;
		evbuffer_drain(in, used);
	}
	s->in_process = false;
	if (s->busy != s->read_paused && s->state != MS_CLOSING) {
		/* While a plugin works the MTA waits for us: no read timeout.
		 */
		struct timeval tv = sl_timeval_ms(s->set->milter_timeout_ms);

		s->read_paused = s->busy;
		bufferevent_set_timeouts(s->bev, s->busy ? NULL : &tv, &tv);
	}
	flush_out(s);
}
