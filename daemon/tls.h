/* TLS on the chassis's own connections (OpenSSL 3).
 *
 * A listener's tls { } becomes a context when the config is loaded, before
 * anything is swapped: a certificate that does not load, or a key that
 * does not match it, makes the whole load fail with FILE:LINE, so a reload
 * leaves the old contexts serving. Each connection then runs a session on
 * its own socket (a socket BIO on conn.c's fd: no copy through memory
 * BIOs, and what kernel TLS would need); a live connection's SSL holds a
 * reference to its context, which outlives a reload. */
#ifndef CHASSISD_TLS_H
#define CHASSISD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conf;
struct conf_errors;
struct conf_tls_client;
struct tls_context;
struct tls_session;

/* Loads the context of every listener that has tls { } (into its
 * conf_tls->context). False, with errors added, when any fails;
 * certificates that expire within 14 days add warnings. */
bool tls_load(struct conf *conf, struct conf_errors *errors);

/* The context of a module's outbound side (a relay's upstreams), built
 * while the module is configured. NULL when it cannot be: *option names
 * the option at fault (NULL: out of memory) and why says why. */
struct tls_context *tls_client_context_new(const struct conf_tls_client *conf, unsigned handshake_timeout_ms,
					   const char **option, char *why, size_t why_len);
/* A connection holds its context while it lives: the snapshot or module
 * settings that made it may be freed first. Release also frees what the
 * builder made (a client context's only reference). */
const struct tls_context *tls_context_hold(const struct tls_context *context);
void tls_context_release(const struct tls_context *context);

/* A session on fd: a server's, or a client's of a client context, which
 * names peer_name in SNI and checks the peer's certificate against it
 * (unless the context has a server-name of its own). NULL when out of
 * memory. */
struct tls_session *tls_session_new(const struct tls_context *context, int fd, const char *peer_name);
void tls_session_free(struct tls_session *session);
unsigned tls_handshake_timeout_ms(const struct tls_context *context);
/* Seconds until the first of the context's certificates ends (0 past it). */
uint64_t tls_expiry_seconds(const struct tls_context *context);

enum tls_step {
	TLS_DONE,
	TLS_WANT_READ,
	TLS_WANT_WRITE,
	TLS_FAILED,
};
/* Why a handshake failed, in the classes counted. */
enum tls_failure {
	TLS_FAILURE_PROTOCOL,		/* no protocol version in common */
	TLS_FAILURE_CIPHER,		/* no cipher in common */
	TLS_FAILURE_CLIENT_CERTIFICATE,	/* missing or not from the ca */
	TLS_FAILURE_OTHER,		/* not TLS, a reset, anything else */
};
/* why: the reason of a failure (OpenSSL's, or the peer's alert). */
enum tls_step tls_handshake(struct tls_session *session, char *why, size_t why_len, enum tls_failure *failure);
/* Plain bytes: > 0 read or written; 0 from tls_read at the peer's end
 * (close_notify, or its FIN); -1 with errno EAGAIN when the socket must be
 * waited for, else EIO (why logged by the caller from errno). */
ssize_t tls_read(struct tls_session *session, void *buf, size_t len);
ssize_t tls_write(struct tls_session *session, const void *buf, size_t len);
/* Decrypted bytes wait inside OpenSSL: epoll will not say so. */
bool tls_pending(const struct tls_session *session);
/* Sends close_notify once; never blocks. */
void tls_close_notify(struct tls_session *session);
/* "TLSv1.3" etc., for the log. */
const char *tls_version(const struct tls_session *session);
bool tls_resumed(const struct tls_session *session);
bool tls_is_v13(const struct tls_session *session);
/* Kernel TLS took over sending: SSL_write hands plain bytes to the
 * kernel. Only with kernel-tls = true, where the kernel has the tls
 * module and the cipher is one it knows. */
bool tls_kernel_sends(const struct tls_session *session);

#endif
