/* Session ticket keys for every TLS context of the process.
 *
 * OpenSSL gives each SSL_CTX keys of its own, and a reload builds new
 * contexts: every ticket handed out before it would stop resuming. The
 * keys live here instead, made at first use from OpenSSL's RNG, rotated
 * hourly, and a retired key still opens tickets for two more hours (with a
 * fresh ticket in return), so a reload changes nothing for clients. They
 * stay in memory only: a restart starts over, as nginx without
 * ssl_session_ticket_key does. */
#ifndef CHASSISD_TLS_TICKETS_H
#define CHASSISD_TLS_TICKETS_H

#include <openssl/ssl.h>

/* Seals and opens the context's tickets with the shared keys. */
void tls_tickets_attach(SSL_CTX *ssl_ctx);

#endif
