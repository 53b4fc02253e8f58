/* Datagram sending for a stream: one socket per address family, with the
 * multicast interface, TTL (hop limit) and loop the config says, never
 * blocking. Datagrams added in one pacer tick go out together with
 * sendmmsg. When the kernel says EAGAIN or ENOBUFS they wait in a bounded
 * queue for the socket to be writable; beyond the queue the newest are
 * dropped and counted. Nothing busy-loops and nothing grows without
 * bound. */
#ifndef CHASSISD_SENDER_H
#define CHASSISD_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chassis;
struct conf_stream;
struct event_base;
struct sender;

struct sender_counters {
	uint64_t datagrams;		/* sent, per destination */
	uint64_t bytes;
	uint64_t blocked;		/* EAGAIN or ENOBUFS: waited for the socket */
	uint64_t dropped_queue_full;
	uint64_t dropped_error;		/* the kernel refused it (EMSGSIZE, unreachable ...) */
};

/* NULL with the reason in err. */
struct sender *sender_open(struct event_base *base, const struct conf_stream *conf, const char *unit, char *err,
			   size_t err_len);
/* Queues one datagram to every destination. */
void sender_add(struct sender *sender, const void *data, size_t len);
/* Sends what is queued, as far as the socket takes it. */
void sender_flush(struct sender *sender);
/* Datagrams waiting for the socket. */
size_t sender_queued(const struct sender *sender);
/* Room for one more datagram to every destination, and the socket not
 * known to be full: a producer holds back otherwise. */
bool sender_can_take(const struct sender *sender);
const struct sender_counters *sender_counters(const struct sender *sender);
/* Sends what is queued for up to `linger_ms` while holding the daemon
 * (a stopping or removed stream), then frees. */
void sender_close(struct sender *sender, struct chassis *chassis, unsigned linger_ms);
/* At exit, after a second stop signal: whatever still lingers is freed
 * unsent. */
void sender_free_lingering(void);

#endif
