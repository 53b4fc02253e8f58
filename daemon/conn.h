/* One TCP connection, in either direction: the per-connection chassis.
 *
 * It knows no listener and no runtime. Whoever opened it (its owner: a
 * listener for accepted connections, a unit for its outbound ones) hears
 * of its end through the owner's closed(), and keeps alive what the
 * connection's profile points to until then. */
#ifndef CHASSISD_CONN_H
#define CHASSISD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon/core.h"

enum conn_end {
	CONN_END_DONE,			/* closed in order, or as the module asked */
	CONN_END_IDLE,			/* idle-timeout */
	CONN_END_FAILED,		/* a read or write failed: a reset */
	CONN_END_CLOSED,		/* conn_close_now(): grace over, exit */
	CONN_END_ABORTED,		/* conn_abort(): with a reset */
	CONN_END_FILE_SHORT,		/* a queued file ended early: with a reset */
	CONN_END_HANDSHAKE,		/* TLS: the handshake failed or took too long (no hook ran) */
};

struct tls_context;

/* What a connection runs with, copied when it opens. */
struct conn_profile {
	const struct conn_hooks *hooks;
	const struct tls_context *tls;	/* NULL: plain; else the hooks run once the handshake is done */
	const void *settings;		/* conn_settings() */
	void *state;			/* conn_service_state() */
	size_t buffer_size;		/* bytes queued before backpressure */
	unsigned idle_ms;		/* 0 = never */
	const char *unit, *protocol, *transport;	/* the log context */
	bool connection_log;		/* an info line at close: bytes, duration */
	void *owner_ref;		/* the owner's own, for closed() */
	/* An outbound TLS connection's: the name its peer must prove, and
	 * who hears how the handshake ended, once, never from inside
	 * conn_open(): error 0 before the open hook runs (returning false
	 * closes it instead, no hook run), else EPROTO, ETIMEDOUT or
	 * ECONNABORTED as it closes. */
	const char *tls_peer_name;
	bool (*handshake_outcome)(void *arg, int error);
	void *handshake_arg;
};

/* What the handshakes of an owner's connections came to. */
struct conn_tls_counters {
	uint64_t handshakes, resumed, tls12, tls13, kernel_send;
	uint64_t failed_protocol, failed_cipher, failed_client_certificate, failed_timeout, failed_other;
};

struct conn_owner {
	struct chassis *chassis;
	struct conn_tls_counters *tls;	/* NULL: not counted */
	/* Once per connection, after its close hook. */
	void (*closed)(struct conn_owner *owner, struct conn *conn, enum conn_end end);
	/* Kept by conn.c. */
	struct conn_list conns;
	unsigned n_conns;
};

void conn_owner_init(struct conn_owner *owner, struct chassis *chassis,
		     void (*closed)(struct conn_owner *owner, struct conn *conn, enum conn_end end));

/* Takes the fd, which must be a connected, non-blocking TCP socket, and
 * runs the open hook with conn_data() = data. -1 (fd closed, nothing
 * counted) when out of memory; once it returns 0 the connection may
 * already be gone again. */
int conn_open(struct conn_owner *owner, const struct conn_profile *profile, int fd, const struct sockaddr *peer,
	      socklen_t peer_len, void *data);
/* Ends the connection now, queued output or not (shutdown grace is over). */
void conn_close_now(struct conn *conn);
/* Every connection of the chassis, now: at exit. */
void conn_close_everything(struct chassis *chassis);
/* The profile's owner_ref: which of its things an owner's closed() is
 * about. */
void *conn_owner_ref(const struct conn *conn);

#endif
