/* TLS contexts built from the config, and sessions on connections. Every
 * byte of the protocol is OpenSSL's: nothing here touches records. */
#include "daemon/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "conf/conf.h"
#include "conf/tls.h"
#include "daemon/tls_tickets.h"

/* A certificate closer to its end than this is worth a warning. */
#define TLS_EXPIRY_WARNING_SECONDS (14 * 86400)

struct tls_context {
	unsigned refs;			/* the snapshot's or module's, and one per connection */
	SSL_CTX *main;			/* the default identity; a client's only one */
	SSL_CTX **by_name;		/* one per sni "name" { }, same order as names */
	const struct conf_tls *conf;	/* a server's: the snapshot's, which outlives every session */
	unsigned char *alpn_wire;	/* the alpn list, length-prefixed */
	size_t alpn_wire_len;
	size_t n_identities;		/* the conf's, which a connection may outlive */
	unsigned handshake_timeout_ms;
	/* A client's (an outbound side): */
	bool client;
	bool verify;
	char *server_name;		/* NULL: the name connected to */
	SSL_SESSION *last_session;	/* offered by the next connection, as nginx's proxy_ssl_session_reuse */
};

struct tls_session {
	SSL *ssl;
	bool notified;
};

/* OpenSSL's queued errors, the last (most specific) one, into buf. */
static const char *tls_error_text(char *buf, size_t len)
{
	unsigned long code = ERR_peek_last_error();

	if (code == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(code, buf, len);
	ERR_clear_error();
	return buf;
}

static void tls_context_free(void *arg)
{
	struct tls_context *ctx = arg;

	if (ctx == NULL || --ctx->refs > 0)
		return;
	SSL_CTX_free(ctx->main);
	for (size_t i = 1; ctx->by_name != NULL && i < ctx->n_identities; i++)
		SSL_CTX_free(ctx->by_name[i]);
	free(ctx->by_name);
	free(ctx->alpn_wire);
	SSL_SESSION_free(ctx->last_session);
	free(ctx->server_name);
	free(ctx);
}

/* The client's name picks its identity; an unknown one gets the default
 * (and fails the client's own verification, not the handshake). */
static int tls_on_server_name(SSL *ssl, int *alert, void *arg)
{
	const struct tls_context *ctx = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	for (size_t i = 1; name != NULL && i < ctx->conf->n_identities; i++) {
		if (strcasecmp(name, ctx->conf->identities[i].server_name) == 0) {
			SSL_set_SSL_CTX(ssl, ctx->by_name[i]);
			break;
		}
	}
	(void)alert;
	return SSL_TLSEXT_ERR_OK;
}

/* The first of our names the client offers; none in common: no ALPN. */
static int tls_on_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len, const unsigned char *in,
		       unsigned in_len, void *arg)
{
	const struct tls_context *ctx = arg;
	unsigned char *chosen;

	if (SSL_select_next_proto(&chosen, out_len, ctx->alpn_wire, (unsigned)ctx->alpn_wire_len, in, in_len) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = chosen;
	(void)ssl;
	return SSL_TLSEXT_ERR_OK;
}

static bool tls_build_alpn(struct tls_context *ctx)
{
	size_t len = 0, at = 0;

	for (size_t i = 0; ctx->conf->alpn != NULL && ctx->conf->alpn[i] != NULL; i++)
		len += 1 + strlen(ctx->conf->alpn[i]);
	if (len == 0)
		return true;
	ctx->alpn_wire = malloc(len);
	if (ctx->alpn_wire == NULL)
		return false;
	for (size_t i = 0; ctx->conf->alpn[i] != NULL; i++) {
		size_t n = strlen(ctx->conf->alpn[i]);
		ctx->alpn_wire[at++] = (unsigned char)n;
		memcpy(ctx->alpn_wire + at, ctx->conf->alpn[i], n);
		at += n;
	}
	ctx->alpn_wire_len = len;
	return true;
}

/* The certificate's end: an error when past, a warning when near. */
static bool tls_check_expiry(SSL_CTX *ssl_ctx, const struct conf_tls_identity *id, struct conf *conf,
			     struct conf_errors *errors)
{
	X509 *cert = SSL_CTX_get0_certificate(ssl_ctx);
	int days = 0, seconds = 0;

	if (cert == NULL || !ASN1_TIME_diff(&days, &seconds, NULL, X509_get0_notAfter(cert)))
		return true;
	if (days < 0 || seconds < 0) {
		conf_errors_add(errors, "%scertificate %s has expired", id->where, id->certificate);
		return false;
	}
	if ((long)days * 86400 + seconds < TLS_EXPIRY_WARNING_SECONDS)
		conf_errors_add(&conf->warnings, "%swarning: certificate %s expires in %d day%s", id->where,
				id->certificate, days, days == 1 ? "" : "s");
	return true;
}

/* OpenSSL says "system lib" for a file it cannot open: the errno says more. */
static bool tls_readable(const char *where, const char *what, const char *path, struct conf_errors *errors)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		conf_errors_add(errors, "%scannot read %s %s: %s", where, what, path, strerror(errno));
		return false;
	}
	fclose(f);
	return true;
}

static bool tls_load_identity(SSL_CTX *ssl_ctx, const struct conf_tls_identity *id, struct conf *conf,
			      struct conf_errors *errors)
{
	char why[256];

	if (!tls_readable(id->where, "certificate", id->certificate, errors) ||
	    !tls_readable(id->key_where, "key", id->key, errors))
		return false;
	if (SSL_CTX_use_certificate_chain_file(ssl_ctx, id->certificate) != 1) {
		conf_errors_add(errors, "%scannot load certificate %s: %s", id->where, id->certificate,
				tls_error_text(why, sizeof(why)));
		return false;
	}
	/* OpenSSL checks the pair as it loads the key. */
	if (SSL_CTX_use_PrivateKey_file(ssl_ctx, id->key, SSL_FILETYPE_PEM) != 1 &&
	    ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
		conf_errors_add(errors, "%scannot load key %s: %s", id->key_where, id->key,
				tls_error_text(why, sizeof(why)));
		return false;
	}
	if (SSL_CTX_check_private_key(ssl_ctx) != 1) {
		conf_errors_add(errors, "%skey %s does not match certificate %s", id->key_where, id->key,
				id->certificate);
		ERR_clear_error();
		return false;
	}
	return tls_check_expiry(ssl_ctx, id, conf, errors);
}

static bool tls_set_client_verify(SSL_CTX *ssl_ctx, const struct conf_tls *tls, struct conf_errors *errors)
{
	STACK_OF(X509_NAME) *names;
	char why[256];
	int mode = SSL_VERIFY_PEER;

	if (tls->client_certificate == CONF_TLS_CLIENT_CERT_OFF)
		return true;
	if (!tls_readable(tls->ca_where, "ca", tls->ca, errors))
		return false;
	if (SSL_CTX_load_verify_locations(ssl_ctx, tls->ca, NULL) != 1 ||
	    (names = SSL_load_client_CA_file(tls->ca)) == NULL) {
		conf_errors_add(errors, "%scannot load ca %s: %s", tls->ca_where, tls->ca,
				tls_error_text(why, sizeof(why)));
		return false;
	}
	SSL_CTX_set_client_CA_list(ssl_ctx, names);
	if (tls->client_certificate == CONF_TLS_CLIENT_CERT_REQUIRED)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ssl_ctx, mode, NULL);
	return true;
}

/* Sessions resume only where they began: on the same listener, under the
 * same client certificate rules. Ticket keys are shared by every listener
 * and outlive reloads (tls_tickets.c), so without the rules in the context
 * a ticket from before "client-certificate = required" would skip it. */
static bool tls_set_session_context(SSL_CTX *ssl_ctx, const struct conf_tls *tls, const char *unit)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char rules[64];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok;

	snprintf(rules, sizeof(rules), "|%d|", (int)tls->client_certificate);
	ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(md, unit, strlen(unit) + 1) == 1 && EVP_DigestUpdate(md, rules, strlen(rules)) == 1 &&
	     (tls->ca == NULL || EVP_DigestUpdate(md, tls->ca, strlen(tls->ca)) == 1) &&
	     EVP_DigestFinal_ex(md, digest, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok && SSL_CTX_set_session_id_context(ssl_ctx, digest, sizeof(digest)) == 1;
}

/* Everything but the identity: the same for the default and each SNI one,
 * since a switch by name keeps the first context's handshake settings. */
static SSL_CTX *tls_new_ssl_ctx(const struct conf_tls *tls, struct tls_context *ctx, const char *unit,
				struct conf_errors *errors)
{
	SSL_CTX *ssl_ctx = SSL_CTX_new(TLS_server_method());
	char why[256];

	if (ssl_ctx == NULL) {
		conf_errors_add(errors, "%sout of memory", tls->where);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ssl_ctx, tls->min_tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ssl_ctx, tls->max_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
	/* A bare FIN ends the input as on plain TCP (the protocol's own
	 * framing tells a cut answer), not an error per client that skips
	 * close_notify. */
	SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					     SSL_OP_IGNORE_UNEXPECTED_EOF | (tls->kernel_tls ? SSL_OP_ENABLE_KTLS : 0) |
					     (tls->session_tickets ? 0 : SSL_OP_NO_TICKET));
	/* Partial writes: the output is an evbuffer drained by what was
	 * sent; moving: its front chunk may be a different address on retry. */
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
					  SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_dh_auto(ssl_ctx, 1);
	if (!tls_set_session_context(ssl_ctx, tls, unit)) {
		conf_errors_add(errors, "%s%s", tls->where, tls_error_text(why, sizeof(why)));
		SSL_CTX_free(ssl_ctx);
		return NULL;
	}
	if (tls->session_tickets)
		tls_tickets_attach(ssl_ctx);
	if (SSL_CTX_set_cipher_list(ssl_ctx, tls->ciphers) != 1) {
		conf_errors_add(errors, "%sciphers \"%s\": %s", tls->where, tls->ciphers,
				tls_error_text(why, sizeof(why)));
		SSL_CTX_free(ssl_ctx);
		return NULL;
	}
	if (!tls_set_client_verify(ssl_ctx, tls, errors)) {
		SSL_CTX_free(ssl_ctx);
		return NULL;
	}
	if (ctx->alpn_wire != NULL)
		SSL_CTX_set_alpn_select_cb(ssl_ctx, tls_on_alpn, ctx);
	return ssl_ctx;
}

static struct tls_context *tls_context_build(struct conf_listener *l, struct conf *conf,
					     struct conf_errors *errors)
{
	const struct conf_tls *tls = l->tls;
	struct tls_context *ctx = calloc(1, sizeof(*ctx));
	bool ok;

	if (ctx == NULL)
		return NULL;
	ctx->refs = 1;
	ctx->conf = tls;
	ctx->n_identities = tls->n_identities;
	ctx->handshake_timeout_ms = tls->handshake_timeout * 1000u;
	ctx->by_name = calloc(tls->n_identities, sizeof(*ctx->by_name));
	if (ctx->by_name == NULL || !tls_build_alpn(ctx)) {
		tls_context_free(ctx);
		return NULL;
	}
	ok = (ctx->main = tls_new_ssl_ctx(tls, ctx, l->unit.name, errors)) != NULL &&
	     tls_load_identity(ctx->main, &tls->identities[0], conf, errors);
	for (size_t i = 1; ok && i < tls->n_identities; i++)
		ok = (ctx->by_name[i] = tls_new_ssl_ctx(tls, ctx, l->unit.name, errors)) != NULL &&
		     tls_load_identity(ctx->by_name[i], &tls->identities[i], conf, errors);
	if (!ok) {
		tls_context_free(ctx);
		return NULL;
	}
	if (tls->n_identities > 1) {
		SSL_CTX_set_tlsext_servername_callback(ctx->main, tls_on_server_name);
		SSL_CTX_set_tlsext_servername_arg(ctx->main, ctx);
	}
	return ctx;
}

bool tls_load(struct conf *conf, struct conf_errors *errors)
{
	size_t before = errors->count;

	for (size_t i = 0; i < conf->n_listeners; i++) {
		struct conf_listener *l = &conf->listeners[i];

		if (l->tls == NULL)
			continue;
		l->tls->context = tls_context_build(l, conf, errors);
		l->tls->context_free = tls_context_free;
		if (l->tls->context == NULL && errors->count == before)
			conf_errors_add(errors, "%sout of memory", l->tls->where);
	}
	return errors->count == before;
}

/* ---- the client side ---- */

/* A new session from the peer: the next connection offers it. A copy:
 * OpenSSL marks a connection's own session not resumable when that
 * connection ends without close_notify (a reset on either side), which
 * says nothing about a TLS 1.3 ticket's worth. */
static int tls_on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_context *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	SSL_SESSION *copy = SSL_SESSION_dup(sess);

	if (copy != NULL) {
		SSL_SESSION_free(ctx->last_session);
		ctx->last_session = copy;
	}
	return 0;	/* sess stays the connection's */
}

/* A file OpenSSL would only call "system lib". */
static bool tls_client_file_readable(const char *what, const char *path, char *why, size_t why_len)
{
	if (access(path, R_OK) == 0)
		return true;
	snprintf(why, why_len, "cannot read %s %s: %s", what, path, strerror(errno));
	return false;
}

static bool tls_client_failed(const char *what, const char *path, char *why, size_t why_len)
{
	char reason[200];

	snprintf(why, why_len, "cannot load %s %s: %s", what, path, tls_error_text(reason, sizeof(reason)));
	return false;
}

/* Sets *option to the option at fault, for the error's line. */
static bool tls_client_load(struct tls_context *ctx, const struct conf_tls_client *conf, const char **option,
			    char *why, size_t why_len)
{
	SSL_CTX *ssl_ctx = ctx->main;

	*option = "ciphers";
	if (SSL_CTX_set_cipher_list(ssl_ctx, conf->ciphers) != 1)
		return tls_client_failed("ciphers", conf->ciphers, why, why_len);
	*option = "ca";
	if (ctx->verify && conf->ca != NULL) {
		if (!tls_client_file_readable("ca", conf->ca, why, why_len))
			return false;
		if (SSL_CTX_load_verify_locations(ssl_ctx, conf->ca, NULL) != 1)
			return tls_client_failed("ca", conf->ca, why, why_len);
	} else if (ctx->verify && SSL_CTX_set_default_verify_paths(ssl_ctx) != 1) {
		return tls_client_failed("the system's CAs", "", why, why_len);
	}
	if (conf->certificate == NULL)
		return true;
	*option = "certificate";
	if (!tls_client_file_readable("certificate", conf->certificate, why, why_len))
		return false;
	if (SSL_CTX_use_certificate_chain_file(ssl_ctx, conf->certificate) != 1)
		return tls_client_failed("certificate", conf->certificate, why, why_len);
	*option = "key";
	if (!tls_client_file_readable("key", conf->key, why, why_len))
		return false;
	if (SSL_CTX_use_PrivateKey_file(ssl_ctx, conf->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ssl_ctx) != 1)
		return tls_client_failed("key", conf->key, why, why_len);
	return true;
}

struct tls_context *tls_client_context_new(const struct conf_tls_client *conf, unsigned handshake_timeout_ms,
					   const char **option, char *why, size_t why_len)
{
	struct tls_context *ctx = calloc(1, sizeof(*ctx));

	*option = NULL;
	snprintf(why, why_len, "out of memory");
	if (ctx == NULL)
		return NULL;
	ctx->refs = 1;
	ctx->client = true;
	ctx->verify = conf->verify;
	ctx->handshake_timeout_ms = handshake_timeout_ms;
	ctx->main = SSL_CTX_new(TLS_client_method());
	if (ctx->main == NULL || (conf->server_name != NULL && (ctx->server_name = strdup(conf->server_name)) == NULL)) {
		tls_context_free(ctx);
		return NULL;
	}
	SSL_CTX_set_app_data(ctx->main, ctx);
	SSL_CTX_set_min_proto_version(ctx->main, conf->min_tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx->main, conf->max_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
	SSL_CTX_set_options(ctx->main, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx->main, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
					    SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx->main, ctx->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx->main, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx->main, tls_on_new_session);
	if (!tls_client_load(ctx, conf, option, why, why_len)) {
		tls_context_free(ctx);
		return NULL;
	}
	return ctx;
}

const struct tls_context *tls_context_hold(const struct tls_context *context)
{
	((struct tls_context *)context)->refs++;
	return context;
}

void tls_context_release(const struct tls_context *context)
{
	tls_context_free((struct tls_context *)context);
}

/* SNI, and the name or address the peer's certificate must carry. */
static bool tls_client_session_setup(SSL *ssl, const struct tls_context *ctx, const char *peer_name)
{
	const char *name = ctx->server_name != NULL ? ctx->server_name : peer_name;
	struct in6_addr addr;
	bool literal = name != NULL && (inet_pton(AF_INET, name, &addr) == 1 || inet_pton(AF_INET6, name, &addr) == 1);

	SSL_set_connect_state(ssl);
	if (ctx->last_session != NULL)
		SSL_set_session(ssl, ctx->last_session);
	if (name == NULL)
		return true;
	/* RFC 6066: no address in SNI. */
	if (!literal && SSL_set_tlsext_host_name(ssl, name) != 1)
		return false;
	if (!ctx->verify)
		return true;
	return literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 : SSL_set1_host(ssl, name) == 1;
}

struct tls_session *tls_session_new(const struct tls_context *context, int fd, const char *peer_name)
{
	struct tls_session *session = calloc(1, sizeof(*session));

	if (session == NULL)
		return NULL;
	session->ssl = SSL_new(context->main);
	if (session->ssl == NULL || SSL_set_fd(session->ssl, fd) != 1 ||
	    (context->client && !tls_client_session_setup(session->ssl, context, peer_name))) {
		tls_session_free(session);
		return NULL;
	}
	if (!context->client)
		SSL_set_accept_state(session->ssl);
	return session;
}

void tls_session_free(struct tls_session *session)
{
	if (session == NULL)
		return;
	SSL_free(session->ssl);
	free(session);
}

static int64_t tls_seconds_left(SSL_CTX *ssl_ctx)
{
	X509 *cert = SSL_CTX_get0_certificate(ssl_ctx);
	int days = 0, seconds = 0;

	if (cert == NULL || !ASN1_TIME_diff(&days, &seconds, NULL, X509_get0_notAfter(cert)))
		return 0;
	return (int64_t)days * 86400 + seconds;
}

uint64_t tls_expiry_seconds(const struct tls_context *context)
{
	int64_t least = tls_seconds_left(context->main);

	for (size_t i = 1; i < context->n_identities; i++) {
		int64_t left = tls_seconds_left(context->by_name[i]);
		if (left < least)
			least = left;
	}
	return least > 0 ? (uint64_t)least : 0;
}

unsigned tls_handshake_timeout_ms(const struct tls_context *context)
{
	return context->handshake_timeout_ms;
}

static enum tls_failure tls_classify(unsigned long code)
{
	switch (ERR_GET_REASON(code)) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_VERSION_TOO_LOW:
		return TLS_FAILURE_PROTOCOL;
	case SSL_R_NO_SHARED_CIPHER:
		return TLS_FAILURE_CIPHER;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		return TLS_FAILURE_CLIENT_CERTIFICATE;
	default:
		return TLS_FAILURE_OTHER;
	}
}

/* "certificate verify failed" says too little to an administrator: the
 * chain's own reason (hostname mismatch, unknown CA, expired) follows. */
static void tls_add_verify_result(struct tls_session *session, char *why, size_t why_len)
{
	long result = SSL_get_verify_result(session->ssl);
	size_t len = strlen(why);

	if (result != X509_V_OK && len < why_len)
		snprintf(why + len, why_len - len, " (%s)", X509_verify_cert_error_string(result));
}

enum tls_step tls_handshake(struct tls_session *session, char *why, size_t why_len, enum tls_failure *failure)
{
	int rc = SSL_do_handshake(session->ssl);

	if (rc == 1)
		return TLS_DONE;
	switch (SSL_get_error(session->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_WRITE;
	case SSL_ERROR_SYSCALL:
		snprintf(why, why_len, "%s", errno ? strerror(errno) : "the peer closed");
		ERR_clear_error();
		*failure = TLS_FAILURE_OTHER;
		return TLS_FAILED;
	default:
		*failure = tls_classify(ERR_peek_last_error());
		tls_error_text(why, why_len);
		tls_add_verify_result(session, why, why_len);
		return TLS_FAILED;
	}
}

/* What an SSL_read or SSL_write failure means for the caller. */
static ssize_t tls_failed(struct tls_session *session, int rc, bool reading)
{
	switch (SSL_get_error(session->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (reading && errno == 0)
			return 0;
		if (errno == 0)
			errno = EIO;
		return -1;
	default:
		ERR_clear_error();
		errno = EIO;
		return -1;
	}
}

ssize_t tls_read(struct tls_session *session, void *buf, size_t len)
{
	int rc = SSL_read(session->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

	return rc > 0 ? rc : tls_failed(session, rc, true);
}

ssize_t tls_write(struct tls_session *session, const void *buf, size_t len)
{
	int rc = SSL_write(session->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);

	return rc > 0 ? rc : tls_failed(session, rc, false);
}

bool tls_pending(const struct tls_session *session)
{
	return SSL_has_pending(session->ssl) == 1;
}

void tls_close_notify(struct tls_session *session)
{
	if (session->notified || !SSL_is_init_finished(session->ssl))
		return;
	session->notified = true;
	SSL_shutdown(session->ssl);
	ERR_clear_error();
}

const char *tls_version(const struct tls_session *session)
{
	return SSL_get_version(session->ssl);
}

bool tls_is_v13(const struct tls_session *session)
{
	return SSL_version(session->ssl) == TLS1_3_VERSION;
}

bool tls_kernel_sends(const struct tls_session *session)
{
	return BIO_get_ktls_send(SSL_get_wbio(session->ssl)) > 0;
}

bool tls_resumed(const struct tls_session *session)
{
	return SSL_session_reused(session->ssl) == 1;
}
