/*
 * tls.h - the server side of TLS for sluice-smtpd (STARTTLS, RFC 3207,
 * and implicit-TLS listeners, RFC 8314), on OpenSSL 3.
 *
 * One struct sl_tls_server per runtime, built from the tls_* directives
 * when the configuration is loaded: a certificate that is missing,
 * unreadable or does not match its key stops start-up (or the reload)
 * with "file:line: tls_cert PATH: reason".  With several certificates the
 * client's SNI name picks the one whose names match; the first is the
 * default.
 */
#ifndef SL_TLS_H
#define SL_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct sl_config;
struct sl_conn;
struct sl_tls_server;

/*
 * Builds the server contexts, or returns NULL: with *error_r NULL when
 * no tls_cert is configured, else with *error_r allocated.
 */
struct sl_tls_server *sl_tls_server_new(const struct sl_config *cfg,
    char **error_r);
void sl_tls_server_free(struct sl_tls_server **tp);
/* A new server-side SSL for one connection. */
SSL *sl_tls_server_ssl(struct sl_tls_server *t);

/*
 * After the handshake: records what was negotiated on c as notes
 * (tls.version, tls.cipher, tls.bits, tls.alg_bits, tls.sni,
 * tls.peer_subject, tls.peer_issuer, tls.verify = OK / FAIL / NONE) and
 * sets c->tls.
 */
void sl_tls_record(SSL *ssl, struct sl_conn *c);

/*
 * The reasons OpenSSL queued for this thread, "reason; reason", drained
 * (or "unknown error").  buf holds the result.
 */
const char *sl_tls_errors(char *buf, size_t size);

/*
 * The same from another queue of error codes: next(arg) returns them
 * until 0 (e.g. a bufferevent's).  Returns the length written; 0 when
 * there was none (buf is then "").
 */
size_t sl_tls_errors_from(unsigned long (*next)(void *), void *arg, char *buf,
    size_t size);

/* TLS1_2_VERSION etc. for "TLSv1.2"; 0 if unknown. */
int sl_tls_version_of(const char *name);

#endif
