/* A datagram port: a UDP socket whose every datagram goes to a module,
 * which may reply to the source. A datagram listener has one; a stream
 * that sends will have one too. It knows no listener: the profile says
 * whom to hand datagrams to and whom to let in. */
#ifndef CHASSISD_DATAGRAM_H
#define CHASSISD_DATAGRAM_H

#include <stdbool.h>
#include <stdint.h>

struct chassis;
struct conf_listener;
struct conf_netsim;
struct netsim;
struct datagram;
struct datagram_wait;
struct event;
struct event_base;

struct datagram_profile {
	void (*datagram)(struct datagram *dgram);
	void (*socket_waiting)(struct datagram_wait *wait);	/* instead of datagram() */
	const void *settings;		/* datagram_settings() */
	void *state;			/* datagram_service_state() */
	const struct conf_listener *access;	/* allow/deny; NULL: everyone */
	const char *unit, *protocol, *transport;	/* the log context */
	struct chassis *chassis;	/* whose taps see what comes in */
	bool module_feeds_taps;		/* the module gives the taps their data */
	/* Fault simulation on what comes in (NULL: none): the profile's
	 * owner makes it with datagram_netsim_new(). */
	struct netsim *netsim;
};

struct datagram_counters {
	uint64_t datagrams, replies, dropped, denied;
};

struct datagram_port {
	int fd;				/* not the port's: its owner closes it */
	bool dual_stack;		/* "*" bound as IPv6: IPv4 peers are mapped */
	struct event *readable;
	/* The current one; a reload swaps it between two datagrams. */
	const struct datagram_profile *profile;
	struct datagram_counters counters;
	struct datagram_wait *wait;	/* the socket is a module's: not watched */
};

/* A simulator for profile->netsim whose survivors go on to the module as
 * if just received. */
struct netsim *datagram_netsim_new(struct event_base *base, const struct conf_netsim *conf);

int datagram_port_start(struct datagram_port *port, struct event_base *base, int fd, bool dual_stack,
			const struct datagram_profile *profile);
void datagram_port_stop(struct datagram_port *port);

#endif
