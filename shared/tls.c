/*
 * tls.c - server-side TLS contexts, SNI and what a handshake negotiated;
 * see tls.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "core.h"
#include "xmalloc.h"
#include "tls.h"

struct cert {
	SSL_CTX *ctx;
	X509 *leaf; /* borrowed from ctx */
};

struct sl_tls_server {
	struct cert *certs;
	size_t ncerts;
	int ccerts; /* enum sl_tls_ccert */
};

static const struct {
	const char *name;
	int version;
} versions[] = {
	{ "TLSv1", TLS1_VERSION },
	{ "TLSv1.1", TLS1_1_VERSION },
	{ "TLSv1.2", TLS1_2_VERSION },
	{ "TLSv1.3", TLS1_3_VERSION },
};

int
sl_tls_version_of(const char *name)
{
	size_t i;

	for (i = 0; i < SL_NELEM(versions); i++) {
		if (strcasecmp(name, versions[i].name) == 0)
			return versions[i].version;
	}
	return 0;
}

size_t
sl_tls_errors_from(unsigned long (*next)(void *), void *arg, char *buf,
    size_t size)
{
	unsigned long e;
	size_t len = 0;
	char one[256];

	buf[0] = '\0';
	while ((e = next(arg)) != 0) {
		if (ERR_GET_LIB(e) == 0)
			continue; /* not OpenSSL's: libevent queues errno values
			           */
		ERR_error_string_n(e, one, sizeof(one));
		if (len < size)
			len += (size_t)snprintf(buf + len, size - len, "%s%s",
			    len > 0 ? "; " : "", one);
	}
	return len;
}

static unsigned long
thread_error(void *arg)
{
	(void)arg;
	return ERR_get_error();
}

const char *
sl_tls_errors(char *buf, size_t size)
{
	if (sl_tls_errors_from(thread_error, NULL, buf, size) == 0)
		snprintf(buf, size, "unknown error");
	return buf;
}

/* "ask": the client's certificate is recorded, whatever its validity. */
static int
verify_ask(int preverify_ok, X509_STORE_CTX *x)
{
	(void)preverify_ok;
	(void)x;
	return 1;
}

/* tls_protocols as a contiguous [min, max] range. */
static int
protocol_range(const struct sl_strlist *l, int *min_r, int *max_r,
    char **reason_r)
{
	bool on[SL_NELEM(versions)] = { false };
	size_t i, j, first = SIZE_MAX, last = 0;

	for (i = 0; i < l->count; i++) {
		for (j = 0; j < SL_NELEM(versions); j++) {
			if (strcasecmp(l->items[i], versions[j].name) == 0)
				break;
		}
		if (j == SL_NELEM(versions)) {
			*reason_r = sl_xasprintf("tls_protocols: unknown "
			                         "version '%s' (TLSv1, "
			                         "TLSv1.1, TLSv1.2, TLSv1.3)",
			    l->items[i]);
			return -1;
		}
		on[j] = true;
		if (j < first)
			first = j;
		if (j > last)
			last = j;
	}
	if (first == SIZE_MAX) {
		*reason_r = sl_xstrdup("tls_protocols: no version given");
		return -1;
	}
	for (j = first; j <= last; j++) {
		if (!on[j]) {
			*reason_r = sl_xasprintf("tls_protocols: %s is "
			                         "missing between %s and %s",
			    versions[j].name, versions[first].name,
			    versions[last].name);
			return -1;
		}
	}
	*min_r = versions[first].version;
	*max_r = versions[last].version;
	return 0;
}

/* Checks that path can be opened, for an errno-worded error. */
static int
readable(const char *path, char **reason_r)
{
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		*reason_r = sl_xasprintf("%s", strerror(errno));
		return -1;
	}
	(void)fclose(fp);
	return 0;
}

static int
sni_cb(SSL *ssl, int *alert, void *arg)
{
	struct sl_tls_server *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	size_t i;

	(void)alert;
	if (name == NULL)
		return SSL_TLSEXT_ERR_OK;
	for (i = 0; i < t->ncerts; i++) {
		if (X509_check_host(t->certs[i].leaf, name, 0, 0, NULL) == 1) {
			if (i > 0)
				(void)SSL_set_SSL_CTX(ssl, t->certs[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_OK; /* the default certificate */
}

/* Why a private key was refused (allocated). */
static char *
key_error(const char *cert, char *buf, size_t size)
{
	if (ERR_GET_REASON(ERR_peek_last_error()) ==
	    X509_R_KEY_VALUES_MISMATCH) {
		ERR_clear_error();
		return sl_xasprintf("the key does not match the certificate "
		                    "%s",
		    cert);
	}
	return sl_xasprintf("no usable PEM private key (%s)",
	    sl_tls_errors(buf, size));
}

/* Sets *error_r to "where: what: reason" (reason freed). */
static SSL_CTX *
fail(SSL_CTX *ctx, char **error_r, const char *where, const char *what,
    char *reason)
{
	*error_r = sl_xasprintf("%s: %s: %s", where, what, reason);
	free(reason);
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *
ctx_new(const struct sl_config *cfg, size_t i, char **error_r)
{
	const struct sl_settings *set = &cfg->settings;
	const char *cert = set->tls_cert.items[i];
	const char *key = i < set->tls_key.count ? set->tls_key.items[i] : cert;
	const char *kdir = i < set->tls_key.count ? "tls_key" : "tls_cert";
	char buf[512], *what, *reason = NULL;
	SSL_CTX *ctx;
	int min, max;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return fail(NULL, error_r, cfg->path, "TLS",
		    sl_xstrdup(sl_tls_errors(buf, sizeof(buf))));
	if (protocol_range(&set->tls_protocols, &min, &max, &reason) != 0)
		return fail(ctx, error_r, sl_config_where(cfg, "tls_protocols"),
		    "TLS", reason);
	if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max) != 1)
		return fail(ctx, error_r, sl_config_where(cfg, "tls_protocols"),
		    "tls_protocols",
		    sl_xstrdup(sl_tls_errors(buf, sizeof(buf))));
	SSL_CTX_set_options(ctx,
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	        SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (set->tls_ciphers != NULL &&
	    SSL_CTX_set_cipher_list(ctx, set->tls_ciphers) != 1)
		return fail(ctx, error_r, sl_config_where(cfg, "tls_ciphers"),
		    "tls_ciphers",
		    sl_xasprintf("'%s': no usable cipher (%s)",
		        set->tls_ciphers, sl_tls_errors(buf, sizeof(buf))));
	if (set->tls_ciphersuites != NULL &&
	    SSL_CTX_set_ciphersuites(ctx, set->tls_ciphersuites) != 1)
		return fail(ctx, error_r,
		    sl_config_where(cfg, "tls_ciphersuites"),
		    "tls_ciphersuites",
		    sl_xasprintf("'%s': no usable suite (%s)",
		        set->tls_ciphersuites,
		        sl_tls_errors(buf, sizeof(buf))));
	what = sl_xasprintf("tls_cert %s", cert);
	if (readable(cert, &reason) != 0 ||
	    (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 &&
	        (reason = sl_xasprintf("not a PEM certificate chain (%s)",
	             sl_tls_errors(buf, sizeof(buf)))) != NULL)) {
		ctx = fail(ctx, error_r, sl_config_where(cfg, "tls_cert"), what,
		    reason);
		free(what);
		return NULL;
	}
	free(what);
	what = sl_xasprintf("%s %s", kdir, key);
	if (readable(key, &reason) != 0 ||
	    (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 &&
	        (reason = key_error(cert, buf, sizeof(buf))) != NULL) ||
	    (SSL_CTX_check_private_key(ctx) != 1 &&
	        (reason = key_error(cert, buf, sizeof(buf))) != NULL)) {
		ERR_clear_error();
		ctx = fail(ctx, error_r, sl_config_where(cfg, kdir), what,
		    reason);
		free(what);
		return NULL;
	}
	free(what);
	(void)SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)"sluice", 6);
	if (set->tls_client_certs != SL_TLS_CCERT_NO) {
		if (set->tls_client_ca != NULL) {
			STACK_OF(X509_NAME) * names;

			what = sl_xasprintf("tls_client_ca %s",
			    set->tls_client_ca);
			if (readable(set->tls_client_ca, &reason) != 0 ||
			    (SSL_CTX_load_verify_locations(ctx,
			         set->tls_client_ca, NULL) != 1 &&
			        (reason = sl_xasprintf("no PEM certificates "
			                               "(%s)",
			             sl_tls_errors(buf, sizeof(buf)))) !=
			            NULL)) {
				ctx = fail(ctx, error_r,
				    sl_config_where(cfg, "tls_client_ca"), what,
				    reason);
				free(what);
				return NULL;
			}
			free(what);
			names = SSL_load_client_CA_file(set->tls_client_ca);
			if (names != NULL)
				SSL_CTX_set_client_CA_list(ctx, names);
		}
		if (set->tls_client_certs == SL_TLS_CCERT_ASK)
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_ask);
		else
			SSL_CTX_set_verify(ctx,
			    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			    NULL);
	}
	return ctx;
}

struct sl_tls_server *
sl_tls_server_new(const struct sl_config *cfg, char **error_r)
{
	const struct sl_settings *set = &cfg->settings;
	struct sl_tls_server *t;
	size_t i;

	*error_r = NULL;
	if (set->tls_key.count > set->tls_cert.count) {
		*error_r = sl_xasprintf("%s: tls_key: %zu keys for %zu "
		                        "certificates (tls_cert)",
		    sl_config_where(cfg, "tls_key"), set->tls_key.count,
		    set->tls_cert.count);
		return NULL;
	}
	if (set->tls_client_certs == SL_TLS_CCERT_REQUIRE &&
	    set->tls_client_ca == NULL) {
		*error_r = sl_xasprintf("%s: tls_client_certs require: "
		                        "tls_client_ca is not set",
		    sl_config_where(cfg, "tls_client_certs"));
		return NULL;
	}
	if (set->tls_cert.count == 0) {
		if (set->smtps_listen.count > 0)
			*error_r = sl_xasprintf("%s: listen smtps: tls_cert "
			                        "is not set",
			    sl_config_where(cfg, "smtps_listen"));
		return NULL;
	}
	t = sl_xcalloc(1, sizeof(*t));
	t->certs = sl_xcalloc(set->tls_cert.count, sizeof(*t->certs));
	t->ccerts = set->tls_client_certs;
	for (i = 0; i < set->tls_cert.count; i++) {
		t->certs[i].ctx = ctx_new(cfg, i, error_r);
		if (t->certs[i].ctx == NULL) {
			sl_tls_server_free(&t);
			return NULL;
		}
		t->certs[i].leaf = SSL_CTX_get0_certificate(t->certs[i].ctx);
		t->ncerts++;
	}
	if (t->ncerts > 1) {
		SSL_CTX_set_tlsext_servername_callback(t->certs[0].ctx, sni_cb);
		SSL_CTX_set_tlsext_servername_arg(t->certs[0].ctx, t);
	}
	return t;
}

void
sl_tls_server_free(struct sl_tls_server **tp)
{
	struct sl_tls_server *t = *tp;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->ncerts; i++)
		SSL_CTX_free(t->certs[i].ctx);
	free(t->certs);
	free(t);
	*tp = NULL;
}

SSL *
sl_tls_server_ssl(struct sl_tls_server *t)
{
	return SSL_new(t->certs[0].ctx);
}

static void
note_name(struct sl_conn *c, const char *key, X509_NAME *n)
{
	char *s;

	if (n == NULL)
		return;
	s = X509_NAME_oneline(n, NULL, 0);
	if (s != NULL) {
		sl_conn_note_set(c, key, s);
		OPENSSL_free(s);
	}
}

void
sl_tls_record(SSL *ssl, struct sl_conn *c)
{
	const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	X509 *peer = SSL_get0_peer_certificate(ssl);
	const struct sl_tls_server *t = c->rt->tls;
	char num[16];
	int bits, alg = 0;

	c->tls = true;
	sl_conn_note_set(c, "tls.version", SSL_get_version(ssl));
	sl_conn_note_set(c, "tls.cipher",
	    ci != NULL ? SSL_CIPHER_get_name(ci) : "unknown");
	bits = ci != NULL ? SSL_CIPHER_get_bits(ci, &alg) : 0;
	snprintf(num, sizeof(num), "%d", bits);
	sl_conn_note_set(c, "tls.bits", num);
	snprintf(num, sizeof(num), "%d", alg);
	sl_conn_note_set(c, "tls.alg_bits", num);
	if (sni != NULL)
		sl_conn_note_set(c, "tls.sni", sni);
	if (peer != NULL) {
		note_name(c, "tls.peer_subject", X509_get_subject_name(peer));
		note_name(c, "tls.peer_issuer", X509_get_issuer_name(peer));
	}
	sl_conn_note_set(c, "tls.verify",
	    t == NULL || t->ccerts == SL_TLS_CCERT_NO     ? "NONE"
	        : peer == NULL                            ? "NO"
	        : SSL_get_verify_result(ssl) == X509_V_OK ? "OK"
	                                                  : "FAIL");
}
