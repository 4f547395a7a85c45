/*
 * conn.c - connection and transaction objects: addresses, notes, private
 * plugin data, structured results, the header list, the body spool, the
 * edit API and writing the final message for queue plugins.
 *
 * Edits apply at once to the transaction, so later plugins see the edited
 * message; smtpd writes what stands at queue time.  All of it runs on the
 * connection's loop thread (a queue plugin's worker reads the transaction
 * while the session waits for it).
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "xmalloc.h"

/* --- key/value notes --------------------------------------------------- */

/* key[0..klen) hashes to hash. */
static struct sl_kv *
kv_new(const char *key, size_t klen, uint32_t hash, const char *value,
    size_t vlen)
{
	/* a little slack, so that an outcome's update fits in place */
	size_t room = vlen + 1 + 16;
	struct sl_kv *e = sl_xmalloc(sizeof(*e) + klen + 1 + room);

	memcpy(e->key, key, klen + 1);
	e->hash = hash;
	e->value = e->key + klen + 1;
	e->room = room;
	memcpy(e->value, value, vlen + 1);
	e->next = NULL;
	return e;
}

/* value NULL deletes */
static void
kv_set(struct sl_kv **head, const char *key, const char *value)
{
	struct sl_kv **pp, *e;
	size_t klen = strlen(key), vlen = value != NULL ? strlen(value) : 0;
	uint32_t h = sl_fnv1a(key, klen);

	for (pp = head; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			break;
	e = *pp;
	if (e != NULL && value != NULL && vlen < e->room) {
		memmove(e->value, value, vlen + 1);
		return;
	}
	if (value != NULL) {
		*pp = kv_new(key, klen, h, value, vlen);
		(*pp)->next = e != NULL ? e->next : NULL;
	} else if (e != NULL)
		*pp = e->next;
	free(e);
}

static const char *
kv_get(const struct sl_kv *e, const char *key)
{
	uint32_t h = sl_fnv1a(key, strlen(key));

	for (; e != NULL; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e->value;
	return NULL;
}

/* Deletes every entry but those whose key starts with keep. */
static void
kv_delete_but(struct sl_kv **head, const char *keep)
{
	struct sl_kv **pp = head, *e;
	size_t n = strlen(keep);

	while (*pp != NULL) {
		e = *pp;
		if (strncmp(e->key, keep, n) == 0) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		free(e);
	}
}

static void
kv_free(struct sl_kv **head)
{
	struct sl_kv *e, *next;

	for (e = *head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	*head = NULL;
}

static void
pdata_set(struct sl_pdata **head, const void *key, void *data,
    void (*free_fn)(void *))
{
	struct sl_pdata *e;

	for (e = *head; e != NULL; e = e->next)
		if (e->key == key)
			break;
	if (e == NULL) {
		e = sl_xcalloc(1, sizeof(*e));
		e->key = key;
		e->next = *head;
		*head = e;
	} else if (e->free_fn != NULL && e->data != NULL && e->data != data)
		e->free_fn(e->data);
	e->data = data;
	e->free_fn = free_fn;
}

static void *
pdata_get(const struct sl_pdata *e, const void *key)
{
	for (; e != NULL; e = e->next)
		if (e->key == key)
			return e->data;
	return NULL;
}

static void
pdata_free(struct sl_pdata **head)
{
	struct sl_pdata *e, *next;

	for (e = *head; e != NULL; e = next) {
		next = e->next;
		if (e->free_fn != NULL && e->data != NULL)
			e->free_fn(e->data);
		free(e);
	}
	*head = NULL;
}

/* --- connections ------------------------------------------------------- */

struct sl_conn *
sl_conn_new(struct sl_loop *l, enum sl_front_end fe)
{
	struct sl_conn *c;

	c = sl_xcalloc(1, sizeof(*c));
	sl_make_id(c->id, sizeof(c->id));
	c->fe = fe;
	c->loop = l;
	c->rt = sl_runtime_current();
	return c;
}

void
sl_conn_free(struct sl_conn **cp)
{
	struct sl_conn *c = *cp;

	if (c == NULL)
		return;
	sl_hook_abandon(c);
	sl_txn_free(&c->txn);
	kv_free(&c->notes);
	pdata_free(&c->pdata);
	sl_conn_input_waits_detach(c);
	free(c->remote_host);
	free(c->helo);
	free(c->rcpt_suffix);
	if (c->auth_user != NULL) {
		explicit_bzero(c->auth_user, strlen(c->auth_user));
		free(c->auth_user);
	}
	sl_runtime_unref(&c->rt);
	free(c);
	*cp = NULL;
}

static void
addr_to16(int family, const void *a, uint8_t out[16])
{
	memset(out, 0, 16);
	if (family == AF_INET) {
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, a, 4);
	} else
		memcpy(out, a, 16);
}

static void
sockaddr_split(const void *sa, char *ip, size_t ipsize, unsigned int *port_r,
    uint8_t addr16[16], int *family_r)
{
	const struct sockaddr *s = sa;

	ip[0] = '\0';
	*port_r = 0;
	if (s->sa_family == AF_INET) {
		const struct sockaddr_in *in = sa;

		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)ipsize);
		*port_r = ntohs(in->sin_port);
		addr_to16(AF_INET, &in->sin_addr, addr16);
	} else if (s->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)ipsize);
		*port_r = ntohs(in6->sin6_port);
		addr_to16(AF_INET6, &in6->sin6_addr, addr16);
		/* A v4-mapped peer is shown as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip,
			    (socklen_t)ipsize);
			if (family_r != NULL)
				*family_r = AF_INET;
			return;
		}
	} else if (s->sa_family == AF_UNIX) {
		snprintf(ip, ipsize, "127.0.0.1");
		addr_to16(AF_INET, "\x7f\0\0\x01", addr16);
	}
	if (family_r != NULL)
		*family_r = s->sa_family;
}

void
sl_conn_set_remote(struct sl_conn *c, const void *sa, size_t salen)
{
	(void)salen;
	sockaddr_split(sa, c->remote_ip, sizeof(c->remote_ip), &c->remote_port,
	    c->remote_addr, &c->remote_family);
	memcpy(c->peer_addr, c->remote_addr, 16);
	sl_conn_update_relay(c);
}

int
sl_conn_set_remote_text(struct sl_conn *c, const char *ip, unsigned int port)
{
	uint8_t a[16];

	if (sl_addr_parse(ip, a) == -1)
		return -1;
	memcpy(c->remote_addr, a, 16);
	c->remote_family = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
	snprintf(c->remote_ip, sizeof(c->remote_ip), "%s", ip);
	c->remote_port = port;
	sl_conn_update_relay(c);
	return 0;
}

void
sl_conn_set_local(struct sl_conn *c, const void *sa, size_t salen)
{
	uint8_t a[16];

	(void)salen;
	sockaddr_split(sa, c->local_ip, sizeof(c->local_ip), &c->local_port, a,
	    NULL);
}

void
sl_conn_update_relay(struct sl_conn *c)
{
	c->relay_client = c->relay_always || c->auth_user != NULL ||
	    sl_cidrlist_match(&c->rt->set->relay_clients, c->remote_addr);
}

struct sl_txn *
sl_conn_begin_txn(struct sl_conn *c)
{
	sl_txn_free(&c->txn);
	c->txn = sl_txn_new(c);
	c->txn_count++;
	return c->txn;
}

void
sl_conn_end_txn(struct sl_conn *c)
{
	sl_txn_free(&c->txn);
}

const char *
sl_conn_id(const struct sl_conn *c)
{
	return c->id;
}

enum sl_front_end
sl_conn_front_end(const struct sl_conn *c)
{
	return c->fe;
}

const char *
sl_conn_remote_ip(const struct sl_conn *c)
{
	return c->remote_ip;
}

unsigned int
sl_conn_remote_port(const struct sl_conn *c)
{
	return c->remote_port;
}

int
sl_conn_remote_addr(const struct sl_conn *c, uint8_t addr16_r[16])
{
	memcpy(addr16_r, c->remote_addr, 16);
	return c->remote_family;
}

const char *
sl_conn_local_ip(const struct sl_conn *c)
{
	return c->local_ip;
}

unsigned int
sl_conn_local_port(const struct sl_conn *c)
{
	return c->local_port;
}

const char *
sl_conn_remote_host(const struct sl_conn *c)
{
	return c->remote_host;
}

const char *
sl_conn_helo(const struct sl_conn *c)
{
	return c->helo;
}

bool
sl_conn_is_relay_client(const struct sl_conn *c)
{
	return c->relay_client;
}

const char *
sl_conn_auth_user(const struct sl_conn *c)
{
	return c->auth_user;
}

bool
sl_conn_is_tls(const struct sl_conn *c)
{
	return c->tls;
}

unsigned int
sl_conn_txn_count(const struct sl_conn *c)
{
	return c->txn_count;
}

unsigned int
sl_conn_ip_connections(const struct sl_conn *c)
{
	return sl_ipcount_get(c->peer_addr);
}

/* The TLS macros, from the notes the front end keeps (sl_tls_record). */
static const char *
tls_macro(struct sl_conn *c, const char *name)
{
	static const char *const map[][2] = {
		{ "{tls_version}", "tls.version" },
		{ "{cipher}", "tls.cipher" },
		{ "{cipher_bits}", "tls.bits" },
		{ "{cert_subject}", "tls.peer_subject" },
		{ "{cert_issuer}", "tls.peer_issuer" },
		{ "{verify}", "tls.verify" },
	};
	size_t i;

	for (i = 0; i < SL_NELEM(map); i++) {
		if (strcmp(name, map[i][0]) == 0)
			return c->tls ? sl_conn_note_get(c, map[i][1]) : NULL;
	}
	return NULL;
}

size_t
sl_conn_input_pending(struct sl_conn *c)
{
	return c->fe_input_pending != NULL ? c->fe_input_pending(c) : 0;
}

const char *
sl_conn_macro(struct sl_conn *c, const char *name)
{
	const char *v = NULL;
	char one[4];

	if (c->fe_macro != NULL && (v = c->fe_macro(c, name)) != NULL)
		return v;
	if (strlen(name) == 1) {
		snprintf(one, sizeof(one), "{%s}", name);
		name = one;
	}
	if (strcmp(name, "{j}") == 0 || strcmp(name, "{daemon_name}") == 0)
		return c->rt->set->hostname;
	if (strcmp(name, "{client_name}") == 0 ||
	    strcmp(name, "{client_ptr}") == 0)
		return c->remote_host;
	if (strcmp(name, "{auth_authen}") == 0)
		return c->auth_user;
	if (strcmp(name, "{i}") == 0)
		return c->txn != NULL ? c->txn->id : NULL;
	if (strcmp(name, "{mail_addr}") == 0)
		return c->txn != NULL ? c->txn->sender : NULL;
	if (strncmp(name, "{tls_", 5) == 0 ||
	    strncmp(name, "{cipher", 7) == 0 ||
	    strncmp(name, "{cert_", 6) == 0 || strcmp(name, "{verify}") == 0)
		return tls_macro(c, name);
	if (strcmp(name, "{client_addr}") == 0)
		v = c->remote_ip;
	else if (strcmp(name, "{daemon_addr}") == 0)
		v = c->local_ip;
	else if (strcmp(name, "{client_port}") == 0)
		snprintf(c->macro_buf, sizeof(c->macro_buf), "%u",
		    c->remote_port);
	else if (strcmp(name, "{daemon_port}") == 0)
		snprintf(c->macro_buf, sizeof(c->macro_buf), "%u",
		    c->local_port);
	else
		return NULL;
	if (v != NULL)
		return v[0] != '\0' ? v : NULL;
	return c->macro_buf;
}

void
sl_conn_note_set(struct sl_conn *c, const char *key, const char *value)
{
	kv_set(&c->notes, key, value);
}

const char *
sl_conn_note_get(const struct sl_conn *c, const char *key)
{
	return kv_get(c->notes, key);
}

/* An outcome's note is RESULT_PREFIX "NAME". */
#define RESULT_PREFIX "result."
#define RESULT_PREFIX_LEN (sizeof(RESULT_PREFIX) - 1)

/* "result.NAME" into key (size > 7), cut to fit as snprintf would. */
static void
outcome_key(char *key, size_t size, const char *name)
{
	const size_t pre = RESULT_PREFIX_LEN;
	size_t n = strnlen(name, size - pre - 1);

	memcpy(key, RESULT_PREFIX, pre);
	memcpy(key + pre, name, n);
	key[pre + n] = '\0';
}

void
sl_conn_outcome_set(struct sl_conn *c, const char *name, const char *outcome,
    const char *detail)
{
	char key[96], buf[512], *v = buf;
	size_t on, dn;

	outcome_key(key, sizeof(key), name);
	if (detail == NULL || detail[0] == '\0') {
		kv_set(&c->notes, key, outcome);
		return;
	}
	/* "OUTCOME DETAIL", on the stack unless it is long */
	on = strlen(outcome);
	dn = strlen(detail);
	if (on + 1 + dn >= sizeof(buf))
		v = sl_xmalloc(on + 1 + dn + 1);
	memcpy(v, outcome, on);
	v[on] = ' ';
	memcpy(v + on + 1, detail, dn + 1);
	kv_set(&c->notes, key, v);
	if (v != buf)
		free(v);
}

/* The outcomes as "NAME:OUTCOME,..." into buf, as many as fit. */
static void
outcomes_line(const struct sl_conn *c, char *buf, size_t size)
{
	const size_t pre = RESULT_PREFIX_LEN;
	const struct sl_kv *e;
	size_t o = 0, kn, vn;

	buf[0] = '\0';
	for (e = c->notes; e != NULL; e = e->next) {
		if (strncmp(e->key, RESULT_PREFIX, pre) != 0)
			continue;
		kn = strlen(e->key + pre);
		vn = strcspn(e->value, " ");
		if (o + (o > 0) + kn + 1 + vn >= size)
			break; /* what fits; the plugins' lines have the rest */
		if (o > 0)
			buf[o++] = ',';
		memcpy(buf + o, e->key + pre, kn);
		o += kn;
		buf[o++] = ':';
		memcpy(buf + o, e->value, vn);
		o += vn;
		buf[o] = '\0';
	}
}

void
sl_conn_log_accepted(const struct sl_conn *c, const char *verb)
{
	const struct sl_txn *t = c->txn;
	char results[512];

	outcomes_line(c, results, sizeof(results));
	sl_log(LOG_INFO, c->id, "%s txn=%s size=%llu rcpts=%zu%s%s", verb,
	    t->id, (unsigned long long)t->size, t->nrcpts,
	    results[0] != '\0' ? " results=" : "", results);
}

void
sl_conn_identity_reset(struct sl_conn *c)
{
	/* what plugins noted about the old client goes; the session's own
	 * facts (TLS) stay */
	kv_delete_but(&c->notes, "tls.");
	c->deferred = false;
	c->deferred_by[0] = '\0';
}

const char *
sl_conn_outcome_get(const struct sl_conn *c, const char *name)
{
	char key[96];

	outcome_key(key, sizeof(key), name);
	return kv_get(c->notes, key);
}

void
sl_conn_defer(struct sl_conn *c, const char *plugin, enum sl_verdict v,
    int code, const char *enh, const char *text)
{
	struct sl_reply *r = &c->deferred_reply;

	if (c->deferred || !sl_verdict_is_deny(v))
		return;
	c->deferred = true;
	c->deferred_verdict = v;
	memset(r, 0, sizeof(*r));
	r->code = code;
	if (enh != NULL)
		snprintf(r->enh, sizeof(r->enh), "%s", enh);
	if (text != NULL)
		snprintf(r->text, sizeof(r->text), "%s", text);
	snprintf(c->deferred_by, sizeof(c->deferred_by), "%s",
	    plugin != NULL ? plugin : "");
}

enum sl_verdict
sl_conn_mark_at_rcpt(const struct sl_conn *c)
{
	if (!c->deferred || c->relay_client || c->rt->naughty)
		return SL_DECLINED;
	return c->deferred_verdict == SL_DENYSOFT ||
	        c->deferred_verdict == SL_DENYSOFT_DISCONNECT
	    ? SL_DENYSOFT
	    : SL_DENY;
}

bool
sl_conn_deferred(const struct sl_conn *c, enum sl_verdict *v_r, int *code_r,
    const char **enh_r, const char **text_r, const char **plugin_r)
{
	if (!c->deferred)
		return false;
	if (v_r != NULL)
		*v_r = c->deferred_verdict;
	if (code_r != NULL)
		*code_r = c->deferred_reply.code;
	if (enh_r != NULL)
		*enh_r = c->deferred_reply.enh;
	if (text_r != NULL)
		*text_r = c->deferred_reply.text;
	if (plugin_r != NULL)
		*plugin_r = c->deferred_by;
	return true;
}

void
sl_conn_data_set(struct sl_conn *c, const void *key, void *data,
    void (*free_fn)(void *))
{
	pdata_set(&c->pdata, key, data, free_fn);
}

void *
sl_conn_data_get(const struct sl_conn *c, const void *key)
{
	return pdata_get(c->pdata, key);
}

/* --- transactions ------------------------------------------------------ */

struct sl_txn *
sl_txn_new(struct sl_conn *c)
{
	struct sl_txn *t;
	const struct sl_settings *set = c->rt->set;

	t = sl_xcalloc(1, sizeof(*t));
	t->conn = c;
	snprintf(t->id, sizeof(t->id), "%s.%u", c->id, c->txn_count + 1);
	t->body = sl_spool_new(set->spool_dir, set->spool_memory_max);
	return t;
}

static void
header_free(struct sl_header *h)
{
	free(h->name);
	free(h->value);
	free(h->raw);
}

void
sl_txn_unbusy(struct sl_txn *t)
{
	SL_ASSERT(t->busy > 0);
	if (--t->busy == 0 && t->dead)
		sl_txn_free(&t);
}

void
sl_txn_free(struct sl_txn **tp)
{
	struct sl_txn *t = *tp;
	struct sl_result *r, *next;
	size_t i;

	if (t == NULL)
		return;
	*tp = NULL;
	if (t->busy > 0) {
		/* A worker still reads it: the last one frees it. */
		t->dead = true;
		t->conn = NULL;
		return;
	}
	free(t->sender);
	free(t->sender_params);
	for (i = 0; i < t->nrcpts; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].params);
	}
	free(t->rcpts);
	for (i = 0; i < t->nhdrs; i++)
		header_free(&t->hdrs[i]);
	free(t->hdrs);
	sl_spool_free(&t->body);
	kv_free(&t->notes);
	pdata_free(&t->pdata);
	for (r = t->results; r != NULL; r = next) {
		next = r->next;
		free(r->method);
		free(r->result);
		free(r->reason);
		free(r);
	}
	free(t->quarantine);
	free(t);
	*tp = NULL;
}

void
sl_txn_set_sender(struct sl_txn *t, const char *sender, const char *params)
{
	free(t->sender);
	free(t->sender_params);
	t->sender = sl_xstrdup(sender);
	t->sender_params = params != NULL ? sl_xstrdup(params) : NULL;
}

void
sl_txn_add_rcpt(struct sl_txn *t, const char *rcpt, const char *params)
{
	if (t->nrcpts == t->rcpts_alloc) {
		t->rcpts_alloc = t->rcpts_alloc == 0 ? 4 : t->rcpts_alloc * 2;
		t->rcpts = sl_xreallocarray(t->rcpts, t->rcpts_alloc,
		    sizeof(*t->rcpts));
	}
	t->rcpts[t->nrcpts].addr = sl_xstrdup(rcpt);
	t->rcpts[t->nrcpts].params = params != NULL ? sl_xstrdup(params) : NULL;
	t->nrcpts++;
}

static void
header_insert(struct sl_txn *t, size_t idx, char *name, char *value, char *raw,
    size_t raw_len)
{
	if (idx > t->nhdrs)
		idx = t->nhdrs;
	if (t->nhdrs == t->hdrs_alloc) {
		t->hdrs_alloc = t->hdrs_alloc == 0 ? 16 : t->hdrs_alloc * 2;
		t->hdrs =
		    sl_xreallocarray(t->hdrs, t->hdrs_alloc, sizeof(*t->hdrs));
	}
	memmove(&t->hdrs[idx + 1], &t->hdrs[idx],
	    (t->nhdrs - idx) * sizeof(*t->hdrs));
	t->hdrs[idx].name = name;
	t->hdrs[idx].value = value;
	t->hdrs[idx].raw = raw;
	t->hdrs[idx].raw_len = raw_len;
	t->hdrs[idx].orig = 0;
	t->hdrs[idx].changed = false;
	t->nhdrs++;
}

void
sl_txn_add_raw_header(struct sl_txn *t, const char *name, const char *value,
    const char *raw, size_t raw_len)
{
	char *r = NULL;

	if (raw != NULL) {
		r = sl_xmalloc(raw_len + 1);
		memcpy(r, raw, raw_len);
		r[raw_len] = '\0';
	} else
		raw_len = 0;
	header_insert(t, t->nhdrs, sl_xstrdup(name), sl_xstrdup(value), r,
	    raw_len);
	t->hdrs[t->nhdrs - 1].orig = ++t->nreceived;
}

int
sl_txn_body_append(struct sl_txn *t, const uint8_t *p, size_t n)
{
	if (sl_spool_append(t->body, p, n) == -1) {
		sl_log(LOG_ERR, t->conn->id, "spool write error=\"%s\"",
		    strerror(errno));
		return -1;
	}
	return 0;
}

const char *
sl_txn_id(const struct sl_txn *t)
{
	return t->id;
}

const char *
sl_txn_sender(const struct sl_txn *t)
{
	return t->sender;
}

const char *
sl_txn_sender_params(const struct sl_txn *t)
{
	return t->sender_params;
}

size_t
sl_txn_rcpt_count(const struct sl_txn *t)
{
	return t->nrcpts;
}

const char *
sl_txn_rcpt(const struct sl_txn *t, size_t i)
{
	return i < t->nrcpts ? t->rcpts[i].addr : NULL;
}

size_t
sl_txn_size(const struct sl_txn *t)
{
	return (size_t)t->size;
}

void
sl_txn_note_set(struct sl_txn *t, const char *key, const char *value)
{
	kv_set(&t->notes, key, value);
}

const char *
sl_txn_note_get(const struct sl_txn *t, const char *key)
{
	return kv_get(t->notes, key);
}

void
sl_txn_data_set(struct sl_txn *t, const void *key, void *data,
    void (*free_fn)(void *))
{
	pdata_set(&t->pdata, key, data, free_fn);
}

void *
sl_txn_data_get(const struct sl_txn *t, const void *key)
{
	return pdata_get(t->pdata, key);
}

size_t
sl_txn_header_count(const struct sl_txn *t)
{
	return t->nhdrs;
}

int
sl_txn_header_at(const struct sl_txn *t, size_t i, const char **name_r,
    const char **value_r)
{
	if (i >= t->nhdrs)
		return -1;
	*name_r = t->hdrs[i].name;
	*value_r = t->hdrs[i].value;
	return 0;
}

/* Index into hdrs of the n-th header called name, or -1. */
static long
header_find(const struct sl_txn *t, const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < t->nhdrs; i++)
		if (strcasecmp(t->hdrs[i].name, name) == 0 && n-- == 0)
			return (long)i;
	return -1;
}

const char *
sl_txn_header_get(const struct sl_txn *t, const char *name, size_t n)
{
	long i;

	i = header_find(t, name, n);
	return i < 0 ? NULL : t->hdrs[i].value;
}

size_t
sl_txn_header_count_name(const struct sl_txn *t, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < t->nhdrs; i++)
		if (strcasecmp(t->hdrs[i].name, name) == 0)
			n++;
	return n;
}

long
sl_txn_body_read(struct sl_txn *t, size_t off, void *buf, size_t len)
{
	return sl_spool_read(t->body, off, buf, len);
}

size_t
sl_txn_body_size(const struct sl_txn *t)
{
	return sl_spool_size(t->body);
}

void
sl_txn_result_add(struct sl_txn *t, const char *method, const char *result,
    const char *reason)
{
	struct sl_result *r, **pp;

	r = sl_xcalloc(1, sizeof(*r));
	r->method = sl_xstrdup(method);
	r->result = sl_xstrdup(result);
	r->reason = reason != NULL ? sl_xstrdup(reason) : NULL;
	for (pp = &t->results; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = r;
}

const char *
sl_txn_result_get(const struct sl_txn *t, const char *method)
{
	const struct sl_result *r;

	for (r = t->results; r != NULL; r = r->next)
		if (strcmp(r->method, method) == 0)
			return r->result;
	return NULL;
}

/* --- edits ------------------------------------------------------------- */

/*
 * A header name must be printable ASCII without ':'; a value must not
 * smuggle a line end that does not continue the field (RFC 5322 2.2).
 */
bool
sl_header_name_valid(const char *name)
{
	const char *p;

	if (*name == '\0')
		return false;
	for (p = name; *p != '\0'; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126 ||
		    *p == ':')
			return false;
	return true;
}

static bool
header_ok(const char *name, const char *value)
{
	const char *p;

	if (!sl_header_name_valid(name))
		return false;
	for (p = value; *p != '\0'; p++) {
		if (*p == '\r')
			return false;
		if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
			return false;
	}
	return true;
}

void
sl_edit_header_add(struct sl_txn *t, const char *name, const char *value)
{
	sl_edit_header_insert(t, t->nhdrs, name, value);
}

void
sl_edit_header_insert(struct sl_txn *t, size_t idx, const char *name,
    const char *value)
{
	if (!header_ok(name, value)) {
		sl_log(LOG_WARNING, t->conn->id,
		    "edit refused: malformed header name=\"%s\"", name);
		return;
	}
	header_insert(t, idx, sl_xstrdup(name), sl_xstrdup(value), NULL, 0);
}

int
sl_edit_header_change(struct sl_txn *t, const char *name, size_t n,
    const char *value)
{
	long i;
	struct sl_header *h;

	if (value == NULL)
		return sl_edit_header_delete(t, name, n);
	i = header_find(t, name, n);
	if (i < 0 || !header_ok(name, value))
		return -1;
	h = &t->hdrs[i];
	free(h->value);
	free(h->raw);
	h->value = sl_xstrdup(value);
	h->raw = NULL;
	h->raw_len = 0;
	h->changed = true;
	return 0;
}

int
sl_edit_header_delete(struct sl_txn *t, const char *name, size_t n)
{
	long i;

	i = header_find(t, name, n);
	if (i < 0)
		return -1;
	header_free(&t->hdrs[i]);
	memmove(&t->hdrs[i], &t->hdrs[i + 1],
	    (t->nhdrs - (size_t)i - 1) * sizeof(*t->hdrs));
	t->nhdrs--;
	return 0;
}

int
sl_edit_body_replace(struct sl_txn *t, const uint8_t *data, size_t len)
{
	sl_spool_truncate(t->body);
	t->body_replaced = true;
	return sl_spool_append(t->body, data, len);
}

void
sl_edit_rcpt_add(struct sl_txn *t, const char *rcpt, const char *params)
{
	sl_txn_add_rcpt(t, rcpt, params);
}

int
sl_edit_rcpt_delete(struct sl_txn *t, const char *rcpt)
{
	size_t i;

	for (i = 0; i < t->nrcpts; i++)
		if (strcasecmp(t->rcpts[i].addr, rcpt) == 0)
			break;
	if (i == t->nrcpts)
		return -1;
	free(t->rcpts[i].addr);
	free(t->rcpts[i].params);
	memmove(&t->rcpts[i], &t->rcpts[i + 1],
	    (t->nrcpts - i - 1) * sizeof(*t->rcpts));
	t->nrcpts--;
	return 0;
}

void
sl_edit_sender_change(struct sl_txn *t, const char *sender, const char *params)
{
	sl_txn_set_sender(t, sender, params);
}

void
sl_edit_quarantine(struct sl_txn *t, const char *reason)
{
	free(t->quarantine);
	t->quarantine = sl_xstrdup(reason != NULL ? reason : "");
}

const char *
sl_txn_quarantine_reason(const struct sl_txn *t)
{
	return t->quarantine;
}

/* --- reading and writing the final message ----------------------------- */

/*
 * The final message is each header line ("raw" as received, or "name:
 * value" once edited or added) with "\n", then an empty line, then the
 * body.  The empty line is added when the client's message had none but
 * has a body, so that what we add never glues onto the first body line.
 */
static bool
has_blank(const struct sl_txn *t)
{
	return t->had_blank || (t->nhdrs > 0 && sl_spool_size(t->body) > 0);
}

/* Header i as up to four pieces; returns the count. */
static size_t
header_pieces(const struct sl_header *h, const uint8_t *p_r[4], size_t n_r[4])
{
	size_t np = 0;

	if (h->raw != NULL) {
		p_r[np] = (const uint8_t *)h->raw;
		n_r[np++] = h->raw_len;
	} else {
		p_r[np] = (const uint8_t *)h->name;
		n_r[np++] = strlen(h->name);
		p_r[np] = (const uint8_t *)": ";
		n_r[np++] = 2;
		p_r[np] = (const uint8_t *)h->value;
		n_r[np++] = strlen(h->value);
	}
	p_r[np] = (const uint8_t *)"\n";
	n_r[np++] = 1;
	return np;
}

long
sl_txn_message_read(struct sl_txn *t, struct sl_txn_msgpos *pos, void *buf,
    size_t len)
{
	const uint8_t *p[4];
	size_t n[4], np, i, base, total, skip, take, got = 0;
	uint8_t *out = buf;
	long r;

	while (got < len && pos->hdr < t->nhdrs) {
		np = header_pieces(&t->hdrs[pos->hdr], p, n);
		for (i = 0, total = 0; i < np; i++)
			total += n[i];
		for (i = 0, base = 0; i < np && got < len; base += n[i++]) {
			if (pos->off >= base + n[i])
				continue;
			skip = pos->off - base;
			take =
			    n[i] - skip < len - got ? n[i] - skip : len - got;
			memcpy(out + got, p[i] + skip, take);
			got += take;
			pos->off += take;
		}
		if (pos->off == total) {
			pos->hdr++;
			pos->off = 0;
		}
	}
	if (got < len && pos->hdr == t->nhdrs) {
		if (has_blank(t))
			out[got++] = '\n';
		pos->hdr++;
	}
	if (got == len)
		return (long)got;
	r = sl_spool_read(t->body, pos->body, out + got, len - got);
	if (r < 0)
		return -1;
	pos->body += (uint64_t)r;
	return (long)(got + (size_t)r);
}

uint64_t
sl_txn_message_size(const struct sl_txn *t)
{
	const uint8_t *p[4];
	size_t n[4], np, i, j;
	uint64_t size = sl_spool_size(t->body);

	for (i = 0; i < t->nhdrs; i++) {
		np = header_pieces(&t->hdrs[i], p, n);
		for (j = 0; j < np; j++)
			size += n[j];
	}
	return size + (has_blank(t) ? 1 : 0);
}

struct wbuf {
	int fd;
	bool crlf;
	size_t len;
	uint8_t buf[65536];
	bool last_cr;
};

static int
wbuf_flush(struct wbuf *w)
{
	size_t off = 0;
	ssize_t n;

	while (off < w->len) {
		n = write(w->fd, w->buf + off, w->len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	w->len = 0;
	return 0;
}

static int
wbuf_put(struct wbuf *w, const void *data, size_t n)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i < n; i++) {
		if (w->len + 2 > sizeof(w->buf) && wbuf_flush(w) == -1)
			return -1;
		if (w->crlf && p[i] == '\n' && !w->last_cr)
			w->buf[w->len++] = '\r';
		w->last_cr = p[i] == '\r';
		w->buf[w->len++] = p[i];
	}
	return 0;
}

static int
write_message(struct sl_txn *t, int fd, bool crlf)
{
	struct sl_txn_msgpos pos;
	struct wbuf *w;
	uint8_t chunk[65536];
	long n;
	int rc = -1;

	w = sl_xmalloc(sizeof(*w));
	w->fd = fd;
	w->crlf = crlf;
	w->len = 0;
	w->last_cr = false;
	memset(&pos, 0, sizeof(pos));
	while ((n = sl_txn_message_read(t, &pos, chunk, sizeof(chunk))) > 0)
		if (wbuf_put(w, chunk, (size_t)n) == -1)
			goto out;
	if (n == 0)
		rc = wbuf_flush(w);
out:
	free(w);
	return rc;
}

int
sl_txn_write_message(struct sl_txn *t, int fd)
{
	return write_message(t, fd, false);
}

int
sl_txn_write_message_crlf(struct sl_txn *t, int fd)
{
	return write_message(t, fd, true);
}
