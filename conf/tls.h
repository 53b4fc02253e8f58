/* The tls { } section of a TCP listener, and of a module's outbound side:
 * what the snapshot keeps of it.
 *
 * conf/ checks only its shape (names, values, which may go together); the
 * daemon (daemon/tls.c) loads the certificates into a context once the
 * snapshot is read, and reports what fails at the `where` of the option. */
#ifndef CHASSISD_CONF_TLS_H
#define CHASSISD_CONF_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <confuse.h>

struct conf_scope;

#define CONF_TLS_DEFAULT_HANDSHAKE_TIMEOUT 10	/* seconds */
/* Mozilla's "intermediate" TLS 1.2 list (TLS 1.3 suites: OpenSSL's). */
#define CONF_TLS_DEFAULT_CIPHERS                                                                                      \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                    \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                      \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

enum conf_tls_client_cert {
	CONF_TLS_CLIENT_CERT_OFF,
	CONF_TLS_CLIENT_CERT_OPTIONAL,
	CONF_TLS_CLIENT_CERT_REQUIRED,
};

/* One certificate chain and its key; the first of a section is the
 * default, the others are chosen by the client's SNI name. */
struct conf_tls_identity {
	char *server_name;			/* NULL for the default */
	char *certificate;			/* PEM: the certificate, then its chain */
	char *key;
	char *where;				/* "FILE:LINE: listener \"x\": tls: " at certificate */
	char *key_where;			/* ... at key */
};

struct conf_tls {
	struct conf_tls_identity *identities;
	size_t n_identities;
	bool min_tls13;				/* protocols = "TLSv1.3" alone */
	bool max_tls12;				/* protocols = "TLSv1.2" alone */
	char *ciphers;
	char **alpn;				/* NULL-terminated; none: no ALPN */
	bool session_tickets;
	bool kernel_tls;			/* ask OpenSSL for kTLS (SSL_OP_ENABLE_KTLS) */
	enum conf_tls_client_cert client_certificate;
	char *ca;				/* the CA file client certificates are checked against */
	char *ca_where;
	unsigned handshake_timeout;		/* seconds */
	char *where;				/* the section's, for errors about it as a whole */
	/* The daemon's loaded form of it (an SSL_CTX), freed with the snapshot. */
	void *context;
	void (*context_free)(void *context);
};

/* The tls { } of a module's outbound side (the relay's upstreams): how
 * chassisd, as the client, checks the peer. The module builds its context
 * (daemon/tls.c) while it is configured, so a CA that does not load is an
 * error at its line. */
struct conf_tls_client {
	bool verify;				/* the peer's chain, and its name */
	char *ca;				/* NULL: the system's store */
	char *server_name;			/* SNI and the name checked; NULL: the peer's host */
	char *certificate, *key;		/* ours, for a peer that asks; NULL: none */
	bool min_tls13, max_tls12;
	char *ciphers;
	char *where, *ca_where, *certificate_where;
};

extern cfg_opt_t conf_tls_server_options[];
extern cfg_opt_t conf_tls_client_options[];

/* NULL when the section was not written or is invalid (the error is then
 * reported through the scope). */
struct conf_tls *conf_tls_parse(struct conf_scope *scope, struct cfg_t *unit_section);
void conf_tls_free(struct conf_tls *tls);
/* NULL when not written or invalid; `section` holds the tls { }. */
struct conf_tls_client *conf_tls_client_parse(struct conf_scope *scope, struct cfg_t *section);
void conf_tls_client_free(struct conf_tls_client *tls);
/* Without where strings: for a copy that outlives the snapshot. */
struct conf_tls_client *conf_tls_client_copy(const struct conf_tls_client *tls);

#endif
