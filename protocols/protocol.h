/* The protocol descriptor: what a protocol module gives the chassis.
 *
 * Kamaelia's ConnectedServer made one handler per connection and wired the
 * socket to it. Here each module is one const table entry (registry.c) whose
 * hooks the chassis calls; hooks a module does not need stay NULL. A module
 * talks back only through daemon/chassis.h. */
#ifndef CHASSISD_PROTOCOL_H
#define CHASSISD_PROTOCOL_H

#include <confuse.h>

#include "conf/conf.h"
#include "daemon/chassis.h"

struct event_base;
struct feed;
struct feed_sink;

/* What a listener generation's state may use. */
struct service_env {
	struct event_base *base;	/* for a module's own timers and children */
	const char *listener;
};

struct protocol {
	const char *name;
	unsigned transports;		/* TRANSPORT_BIT() mask */
	/* The client speaks first and nothing happens until it has: a tcp
	 * listener then accepts a connection once its first bytes are in. */
	bool client_sends_first;

	/* Configuration: the options of the listener's nested "<name> { }"
	 * section, and a hook that checks them and returns private settings
	 * (NULL with an error reported through the scope when invalid). */
	cfg_opt_t *options;
	void *(*configure)(cfg_t *section, struct conf_scope *scope);
	void (*settings_free)(void *settings);

	/* Per listener generation: state shared by its connections. stop()
	 * runs when the last connection of the generation has closed.
	 * status() adds the module's counters to the SIGUSR1 dump. */
	void *(*start)(const void *settings, const struct service_env *env);
	void (*stop)(void *state);
	void (*status)(const void *state, char *buf, size_t len);

	/* Per connection (tcp). open() may write a greeting; returning -1
	 * closes the connection. input() sees new bytes in `in`.
	 * end_of_input() runs when the peer shuts down its write side; when
	 * NULL the chassis closes after the output is flushed. drained() runs
	 * when output that had reached the buffer limit falls to half of it.
	 * close() runs exactly once, whoever ends the connection. */
	int (*open)(struct conn *conn);
	void (*input)(struct conn *conn, struct evbuffer *in);
	void (*end_of_input)(struct conn *conn);
	void (*drained)(struct conn *conn);
	void (*close)(struct conn *conn);

	/* Per datagram (udp, multicast). */
	void (*datagram)(struct datagram *dgram);

	/* The module as another protocol's body source (an HTTP route): one
	 * fortune or clip fed into sink, or NULL with errno set (EAGAIN: over
	 * a child cap) and the reason in err. */
	struct feed *(*body)(void *state, const struct feed_sink *sink, void *arg, char *err, size_t err_len);
	const char *content_type;	/* of what body() produces */
};

#endif
