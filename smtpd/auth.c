/*
 * auth.c - SMTP AUTH (RFC 4954) in sluice-smtpd: the PLAIN (RFC 4616) and
 * LOGIN mechanisms, checked by the auth hook chain (plugins/auth/...).
 *
 * AUTH is offered when an auth plugin is configured and the session may
 * use it: over TLS, or always with auth_require_tls no.  The command goes
 * check -> SASL exchange -> hook chain -> reply: sequence, TLS, the
 * client address's failure count and the mechanism are checked before a
 * byte of the response is decoded, and malformed responses never reach a
 * plugin.  Responses after a 334 are read in ST_AUTH, one CRLF line of at
 * most SASL_LINE_MAX octets ("*" cancels).
 *
 * Credentials - the command line's initial response, the base64 line, the
 * decoded response and the LOGIN user name - are wiped with
 * explicit_bzero as soon as the chain is done, and by smtpd_auth_free()
 * when the session ends in the middle.  XXX: the client's bytes also pass
 * through libevent's input buffer, which frees them unwiped.
 *
 * Failures are counted per session (the auth_max_failures-th gets 421 and
 * the session closes) and per client address across sessions and loop
 * threads (authfail.c); the reply to the n-th failure of a session waits
 * auth_failure_delay * 2^(n-1), at most 30 s, on a loop timer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "authfail.h"
#include "base64.h"
#include "core.h"
#include "log.h"
#include "xmalloc.h"
#include "smtpd.h"

/* RFC 4954 4: a SASL response line, CRLF included. */
#define SASL_LINE_MAX 12288
/* RFC 4616 2: user names up to 255 octets; more is refused. */
#define AUTH_USER_MAX 255
#define AUTH_DELAY_MAX_MS 30000
/* A user name as logged: escaped, cut. */
#define AUTH_LOGNAME_MAX 128

enum auth_mech {
	MECH_PLAIN,
	MECH_LOGIN,
};

enum auth_step {
	STEP_NONE,
	STEP_PLAIN,      /* 334 sent, the PLAIN message comes next */
	STEP_LOGIN_USER, /* "334 VXNlcm5hbWU6" (Username:) sent */
	STEP_LOGIN_PASS, /* "334 UGFzc3dvcmQ6" (Password:) sent */
	STEP_CHECK,      /* the hook chain runs */
	STEP_DELAY,      /* a failure's reply waits on the timer */
};

struct smtpd_auth {
	enum auth_mech mech;
	enum auth_step step;
	char *line;   /* SASL_LINE_MAX + 1: the base64 response line */
	uint8_t *dec; /* the decoded response, NUL-terminated */
	size_t dec_size;
	char *user; /* LOGIN: the decoded user name */
	size_t user_size;
	struct sl_hookargs args;
	unsigned int failures; /* in this session */
	struct sl_timer *timer;
	bool too_many;   /* the delayed failure reply is 421 */
	bool disconnect; /* a plugin said DENY_DISCONNECT: 535, then close */
};

static const char *const mech_names[] = { "PLAIN", "LOGIN" };

/* --- credentials --------------------------------------------------------- */

static void
wipe_free(void *p, size_t size)
{
	if (p == NULL)
		return;
	explicit_bzero(p, size);
	free(p);
}

/* Everything the exchange held; the session's counts stay. */
static void
auth_wipe(struct smtpd_auth *a)
{
	wipe_free(a->line, SASL_LINE_MAX + 1);
	a->line = NULL;
	wipe_free(a->dec, a->dec_size);
	a->dec = NULL;
	a->dec_size = 0;
	wipe_free(a->user, a->user_size);
	a->user = NULL;
	a->user_size = 0;
	memset(&a->args, 0, sizeof(a->args));
	a->step = STEP_NONE;
}

void
smtpd_auth_free(struct smtp *s)
{
	struct smtpd_auth *a = s->auth;

	if (a == NULL)
		return;
	sl_timer_cancel(&a->timer);
	auth_wipe(a);
	free(a);
	s->auth = NULL;
}

/* A user name for the log: printable ASCII kept, the rest \xHH. */
static void
log_name(char *dst, size_t size, const char *name)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)name;

	for (; *p != '\0' && o + 5 < size; p++) {
		if (*p > ' ' && *p < 0x7f && *p != '\\' && *p != '"')
			dst[o++] = (char)*p;
		else
			o += (size_t)snprintf(dst + o, size - o, "\\x%02x", *p);
	}
	if (*p != '\0' && o + 4 <= size)
		o += (size_t)snprintf(dst + o, size - o, "...");
	dst[o] = '\0';
}

/* --- failures ------------------------------------------------------------ */

/* delay * 2^(n-1), capped */
static unsigned int
failure_delay(unsigned int delay_ms, unsigned int n)
{
	while (n-- > 1 && delay_ms < AUTH_DELAY_MAX_MS)
		delay_ms *= 2;
	return delay_ms < AUTH_DELAY_MAX_MS ? delay_ms : AUTH_DELAY_MAX_MS;
}

static void
too_many(struct smtp *s)
{
	char text[300];

	snprintf(text, sizeof(text), "%s Too many authentication failures",
	    s->set->hostname);
	smtpd_reply(s, 421, "4.7.0", text);
	smtpd_close(s);
}

static void
failure_reply(struct smtp *s)
{
	struct smtpd_auth *a = s->auth;

	a->step = STEP_NONE;
	if (a->too_many) {
		too_many(s);
		return;
	}
	smtpd_reply(s, 535, "5.7.8", "Authentication credentials invalid");
	if (a->disconnect) {
		smtpd_close(s);
		return;
	}
	s->state = ST_CMD;
	smtpd_process_input(s);
}

static void
delay_cb(void *arg)
{
	struct smtp *s = arg;

	s->auth->timer = NULL;
	failure_reply(s);
}

/*
 * Bad credentials (or a malformed response, or a denying plugin): counted
 * for the session and the client address, answered after the delay.  who
 * is the escaped user name ("" if none).
 */
static void
auth_failed(struct smtp *s, const char *who, const char *reason,
    bool disconnect)
{
	struct smtpd_auth *a = s->auth;
	const struct sl_settings *set = s->set;
	unsigned int ipn = 0, delay;

	auth_wipe(a);
	a->failures++;
	if (set->auth_ip_max_failures > 0)
		ipn = sl_authfail_add(s->conn->remote_addr,
		    set->auth_ip_window_ms, sl_now_ms());
	a->too_many = a->failures >= set->auth_max_failures ||
	    (set->auth_ip_max_failures > 0 && ipn >= set->auth_ip_max_failures);
	a->disconnect = disconnect;
	delay = failure_delay(set->auth_failure_delay_ms, a->failures);
	sl_log(LOG_NOTICE, s->conn->id,
	    "auth failed client=[%s] mechanism=%s user=\"%s\" reason=%s "
	    "failures=%u ip_failures=%u delay=%ums%s",
	    s->conn->remote_ip, mech_names[a->mech], who, reason, a->failures,
	    ipn, delay,
	    a->too_many || a->disconnect ? " action=disconnect" : "");
	s->state = ST_BUSY;
	a->step = STEP_DELAY;
	if (delay == 0)
		failure_reply(s);
	else
		a->timer = sl_timer_add(s->conn->loop, delay, delay_cb, s);
}

/* --- the hook chain ------------------------------------------------------ */

static void
auth_done(struct sl_conn *c, enum sl_verdict v, const struct sl_reply *r,
    void *arg)
{
	struct smtp *s = arg;
	struct smtpd_auth *a = s->auth;
	char who[AUTH_LOGNAME_MAX];
	const char *mech = mech_names[a->mech];

	log_name(who, sizeof(who), a->args.name);
	if (v == SL_OK) {
		c->auth_user = sl_xstrdup(a->args.name);
		auth_wipe(a);
		sl_conn_update_relay(c);
		sl_log(LOG_INFO, c->id, "auth user=%s mechanism=%s", who, mech);
		smtpd_reply(s, 235, "2.7.0", "Authentication successful");
		s->state = ST_CMD;
		smtpd_process_input(s);
		return;
	}
	auth_wipe(a);
	if (v == SL_DENYSOFT || v == SL_DENYSOFT_DISCONNECT) {
		sl_log(LOG_WARNING, c->id,
		    "auth tempfail client=[%s] mechanism=%s user=\"%s\"",
		    c->remote_ip, mech, who);
		s->state = ST_CMD;
		if (v == SL_DENYSOFT_DISCONNECT) {
			smtpd_reply(s, 421, "4.7.0",
			    r->text[0] != '\0' ? r->text
			                       : "Temporary authentication "
			                         "failure");
			smtpd_close(s);
			return;
		}
		smtpd_reply_error(s, 454, "4.7.0",
		    r->text[0] != '\0' ? r->text
		                       : "Temporary authentication failure");
		smtpd_process_input(s);
		return;
	}
	auth_failed(s, who,
	    v == SL_DECLINED   ? "no-plugin-accepted"
	        : v == SL_DENY ? "denied"
	                       : sl_verdict_name(v),
	    v == SL_DENY_DISCONNECT);
}

static void
run_chain(struct smtp *s, const char *user, const char *pass)
{
	struct smtpd_auth *a = s->auth;

	a->step = STEP_CHECK;
	s->state = ST_BUSY;
	memset(&a->args, 0, sizeof(a->args));
	a->args.hook = SL_HOOK_AUTH;
	a->args.arg = mech_names[a->mech];
	a->args.name = user;
	a->args.value = pass;
	sl_hook_run(s->conn, &a->args, auth_done, s);
}

/* --- the SASL exchange --------------------------------------------------- */

/* A decoded field: not empty, no CR or LF (the NULs split it already). */
static bool
field_ok(const char *p, size_t len)
{
	return len > 0 && memchr(p, '\r', len) == NULL &&
	    memchr(p, '\n', len) == NULL;
}

/* The exchange ends without a verdict: back to commands. */
static void
auth_abort(struct smtp *s, int code, const char *enh, const char *text)
{
	auth_wipe(s->auth);
	s->state = ST_CMD;
	smtpd_reply_error(s, code, enh, text);
}

static void
challenge(struct smtp *s, enum auth_step step, const char *text)
{
	s->auth->step = step;
	smtpd_reply(s, 334, "", text);
	s->state = ST_AUTH;
}

/*
 * RFC 4616 2: authzid NUL authcid NUL passwd.  We act only as the
 * identity authenticated, so authzid must be empty or the same.
 */
static void
check_plain(struct smtp *s, size_t n)
{
	struct smtpd_auth *a = s->auth;
	const char *authz = (const char *)a->dec, *user, *pass, *end;
	char who[AUTH_LOGNAME_MAX];

	end = authz + n;
	user = memchr(authz, '\0', n);
	pass = user != NULL ? memchr(user + 1, '\0', (size_t)(end - user - 1))
	                    : NULL;
	if (user == NULL || pass == NULL ||
	    memchr(pass + 1, '\0', (size_t)(end - pass - 1)) != NULL) {
		auth_failed(s, "", "malformed-response", false);
		return;
	}
	user++;
	pass++;
	log_name(who, sizeof(who), user);
	if (!field_ok(user, strlen(user)) || strlen(user) > AUTH_USER_MAX ||
	    !field_ok(pass, (size_t)(end - pass)) ||
	    (authz[0] != '\0' && !field_ok(authz, strlen(authz)))) {
		auth_failed(s, who, "malformed-response", false);
		return;
	}
	if (authz[0] != '\0' && strcmp(authz, user) != 0) {
		auth_failed(s, who, "authzid-mismatch", false);
		return;
	}
	run_chain(s, user, pass);
}

/* One response (base64, "=" already made ""), for the current step. */
static void
auth_response(struct smtp *s, const char *b64, size_t len)
{
	struct smtpd_auth *a = s->auth;
	char who[AUTH_LOGNAME_MAX];
	long n;

	if (len == 1 && b64[0] == '*') {
		/* RFC 4954 4: the client cancels. */
		auth_abort(s, 501, "5.0.0", "Authentication aborted");
		return;
	}
	wipe_free(a->dec, a->dec_size);
	a->dec_size = SL_BASE64_DECODED_MAX(len) + 1;
	a->dec = sl_xmalloc(a->dec_size);
	n = sl_base64_decode(b64, len, a->dec, a->dec_size - 1);
	if (n < 0) {
		auth_abort(s, 501, "5.5.2", "Invalid base64 data");
		return;
	}
	a->dec[n] = '\0';
	switch (a->step) {
	case STEP_PLAIN:
		check_plain(s, (size_t)n);
		break;
	case STEP_LOGIN_USER:
		if (!field_ok((char *)a->dec, (size_t)n) ||
		    strlen((char *)a->dec) != (size_t)n ||
		    (size_t)n > AUTH_USER_MAX) {
			log_name(who, sizeof(who), (char *)a->dec);
			auth_failed(s, who, "malformed-response", false);
			break;
		}
		a->user = (char *)a->dec;
		a->user_size = a->dec_size;
		a->dec = NULL;
		a->dec_size = 0;
		challenge(s, STEP_LOGIN_PASS, "UGFzc3dvcmQ6");
		break;
	case STEP_LOGIN_PASS:
		if (!field_ok((char *)a->dec, (size_t)n) ||
		    strlen((char *)a->dec) != (size_t)n) {
			log_name(who, sizeof(who), a->user);
			auth_failed(s, who, "malformed-response", false);
			break;
		}
		run_chain(s, a->user, (char *)a->dec);
		break;
	default:
		SL_ASSERT(0);
	}
}

bool
smtpd_auth_read(struct smtp *s)
{
	struct smtpd_auth *a = s->auth;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t len = evbuffer_get_length(in), n;
	struct evbuffer_ptr ep;

	if (len == 0)
		return false;
	ep = evbuffer_search(in, "\r\n", 2, NULL);
	if (ep.pos < 0 && len < SASL_LINE_MAX)
		return false;
	if (ep.pos < 0 || (size_t)ep.pos + 2 > SASL_LINE_MAX) {
		/* RFC 4954 4; the rest of the line is skipped as a command. */
		if (ep.pos >= 0)
			evbuffer_drain(in, (size_t)ep.pos + 2);
		else
			s->skipping = true;
		auth_abort(s, 500, "5.5.6",
		    "Authentication Exchange line is too long");
		return true;
	}
	n = (size_t)ep.pos;
	if (a->line == NULL)
		a->line = sl_xmalloc(SASL_LINE_MAX + 1);
	evbuffer_remove(in, a->line, n);
	evbuffer_drain(in, 2);
	a->line[n] = '\0';
	auth_response(s, a->line, n);
	if (s->auth->line != NULL)
		explicit_bzero(s->auth->line, n);
	return true;
}

/* --- the command --------------------------------------------------------- */

const char *
smtpd_auth_ehlo(struct smtp *s, char *buf, size_t size)
{
	const struct sl_strlist *m = &s->set->auth_mechanisms;
	size_t i, o = 0;

	if (!sl_hook_wanted(s->conn->rt, SL_HOOK_AUTH) || m->count == 0 ||
	    (s->set->auth_require_tls && !s->conn->tls))
		return NULL;
	buf[0] = '\0';
	for (i = 0; i < m->count && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s",
		    i > 0 ? " " : "", m->items[i]);
	return buf;
}

/* The client address is over auth_ip_max_failures: no back end is asked. */
static bool
ip_blocked(struct smtp *s)
{
	const struct sl_settings *set = s->set;
	unsigned int n;

	if (set->auth_ip_max_failures == 0)
		return false;
	n = sl_authfail_count(s->conn->remote_addr, set->auth_ip_window_ms,
	    sl_now_ms());
	if (n < set->auth_ip_max_failures)
		return false;
	sl_log(LOG_NOTICE, s->conn->id,
	    "auth refused client=[%s] reason=ip_failures ip_failures=%u",
	    s->conn->remote_ip, n);
	return true;
}

/* Checks what needs no decoding; false after answering. */
static bool
auth_allowed(struct smtp *s)
{
	struct sl_conn *c = s->conn;

	if (!sl_hook_wanted(c->rt, SL_HOOK_AUTH) ||
	    s->set->auth_mechanisms.count == 0) {
		smtpd_reply_error(s, 502, "5.5.1", "Command not implemented");
		return false;
	}
	if (!s->greeted || !s->esmtp) {
		smtpd_reply_error(s, 503, "5.5.1", "Send EHLO first");
		return false;
	}
	if (s->set->auth_require_tls && !c->tls) {
		/* No credentials are looked at: they crossed in clear. */
		sl_log(LOG_NOTICE, c->id,
		    "auth refused client=[%s] reason=no-tls", c->remote_ip);
		smtpd_reply_error(s, 530, "5.7.0",
		    "Must issue a STARTTLS command first");
		return false;
	}
	if (c->auth_user != NULL) {
		smtpd_reply_error(s, 503, "5.5.1", "Already authenticated");
		return false;
	}
	if (c->txn != NULL) {
		smtpd_reply_error(s, 503, "5.5.1",
		    "AUTH not permitted during a mail transaction");
		return false;
	}
	if (ip_blocked(s)) {
		too_many(s);
		return false;
	}
	return true;
}

void
smtpd_auth_cmd(struct smtp *s, char *arg)
{
	struct smtpd_auth *a;
	char *resp, *sp;
	size_t i, rlen = 0;

	sp = strchr(arg, ' ');
	resp = sp != NULL ? sp + 1 : NULL;
	if (resp != NULL)
		rlen = strlen(resp);
	if (!auth_allowed(s))
		goto out;
	if (sp != NULL)
		*sp = '\0';
	if (arg[0] == '\0' || (resp != NULL && rlen == 0)) {
		smtpd_reply_error(s, 501, "5.5.4",
		    "Syntax: AUTH mechanism [initial-response]");
		goto out;
	}
	if (!sl_strlist_has(&s->set->auth_mechanisms, arg)) {
		smtpd_reply_error(s, 504, "5.5.4",
		    "Unrecognized authentication type");
		goto out;
	}
	if (s->auth == NULL)
		s->auth = sl_xcalloc(1, sizeof(*s->auth));
	a = s->auth;
	for (i = 0; i < SL_NELEM(mech_names); i++)
		if (strcasecmp(arg, mech_names[i]) == 0)
			a->mech = (enum auth_mech)i;
	a->step = a->mech == MECH_PLAIN ? STEP_PLAIN : STEP_LOGIN_USER;
	if (resp == NULL) {
		challenge(s, a->step,
		    a->mech == MECH_PLAIN ? "" : "VXNlcm5hbWU6");
		goto out;
	}
	/* RFC 4954 4: "=" is an empty initial response. */
	if (strcmp(resp, "=") == 0)
		auth_response(s, "", 0);
	else if (strcmp(resp, "*") == 0)
		auth_abort(s, 501, "5.5.2", "Invalid base64 data");
	else
		auth_response(s, resp, rlen);
out:
	if (resp != NULL)
		explicit_bzero(resp, rlen);
}
