/* The protocol descriptor: what a protocol module gives the chassis.
 *
 * Kamaelia's ConnectedServer made one handler per connection and wired the
 * socket to it. Here each module is one const table entry (registry.c) whose
 * hooks the chassis calls; hooks a module does not need stay NULL. A module
 * talks back only through daemon/chassis.h. */
#ifndef CHASSISD_PROTOCOL_H
#define CHASSISD_PROTOCOL_H

#include <confuse.h>
#include <stddef.h>

#include "conf/conf.h"
#include "daemon/chassis.h"

struct event_base;
struct feed;
struct feed_sink;

struct protocol {
	/* Name, transports, options and configure(): what the config loader
	 * sees of the module (conf/conf.h). */
	struct conf_module config;
	/* The client speaks first and nothing happens until it has: a tcp
	 * listener then accepts a connection once its first bytes are in. */
	bool client_sends_first;

	/* Per unit: the state its connections and datagrams share
	 * (conn_service_state()). stop() runs once no connection of the unit
	 * and no outbound connection of the module is left. */
	void *(*start)(const void *settings, const struct unit_env *env);
	void (*stop)(void *state);
	/* A reload that keeps the unit: true when the running state may go on
	 * under the new settings, false (or NULL) to start it afresh. A state
	 * that may go on outlives the settings it was started with, so it
	 * must keep no pointer into them. */
	bool (*same)(const void *old_settings, const void *new_settings);
	/* After a reload that kept the unit's state (same() said so), with
	 * the new settings, during the call only: a state applies what may
	 * change while it runs (a torrent session's listen address), and one
	 * that reads the world at start (a torrent stream's directory) looks
	 * again. NULL when nothing is to be done. */
	void (*reloaded)(void *state, const void *settings);
	/* The module's counters for the SIGUSR1 dump and status pages,
	 * "key=value ...", and its table, a line per row,
	 * "KIND NAME key=value ...\n" (chassis_listener_stats). */
	void (*status)(const void *state, char *buf, size_t len);
	void (*status_rows)(const void *state, char *buf, size_t len);
	/* Words rather than counters, a line each: "KEY text to the end of
	 * the line\n" (a stream's source state and ICY title). */
	void (*status_text)(const void *state, char *buf, size_t len);

	/* Per connection (tcp): daemon/chassis.h. */
	struct conn_hooks conn;

	/* Per datagram (udp, multicast); or, instead, the socket itself when
	 * a datagram waits (inetd's wait: chassis.h, datagram_wait). */
	void (*socket_waiting)(struct datagram_wait *wait);
	/* Per datagram (udp, multicast). */
	void (*datagram)(struct datagram *dgram);
	/* The taps of this module's datagram listeners (chassis_tap_datagrams)
	 * get what the module hands to chassis_tap_payload(), not the raw
	 * datagrams: an rtp listener gives its ordered payload. */
	bool taps_get_payload;

	/* The module as another protocol's body source (an HTTP route): one
	 * fortune or clip fed into sink, or NULL with errno set (EAGAIN: over
	 * a child cap) and the reason in err. */
	struct feed *(*body)(void *state, const struct feed_sink *sink, void *arg, char *err, size_t err_len);
	const char *content_type;	/* of what body() produces */
};

/* The descriptor whose config face the loader recorded for a unit. */
static inline const struct protocol *protocol_of(const struct conf_module *config)
{
	return (const struct protocol *)(const void *)((const char *)config - offsetof(struct protocol, config));
}

#endif
