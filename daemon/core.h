/* The chassis core: one per daemon (a unit test makes its own). What every
 * connection, connect and unit registers with: the event loop, the holds
 * that keep the daemon running while it stops, the connection count and
 * its limit, and who answers a status page. */
#ifndef CHASSISD_CORE_H
#define CHASSISD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "daemon/chassis.h"

struct event;
struct event_base;

TAILQ_HEAD(conn_list, conn);
LIST_HEAD(datagram_tap_list, datagram_tap);
LIST_HEAD(tap_watch_list, tap_watch);
LIST_HEAD(document_list, document);

typedef void chassis_stats_fn(void *arg, struct chassis_totals *totals,
			      void (*each)(const struct chassis_listener_stats *stats, void *each_arg), void *each_arg);

struct chassis {
	struct event_base *base;
	/* Connections, connects in progress, streams still flushing: while
	 * any is held, a stopping daemon keeps its loop running. */
	unsigned holds;
	bool stopping;
	void (*stopped)(void *arg);		/* the last hold went while stopping */
	void *stopped_arg;
	/* Kept by conn.c: every connection, least recently active first, so
	 * that one sweep closes the idle ones. */
	unsigned connections;
	unsigned max_connections;		/* the runtime's, from the config */
	unsigned shutdown_grace;		/* the same: seconds a stop gives what holds it */
	struct conn_list by_activity;
	struct event *idle_sweep;
	struct evdns_base *dns;			/* connect.c's, made at first need */
	/* Streams that send what a datagram listener receives, by name: a
	 * tap outlives reloads of the listener it names. */
	struct datagram_tap_list taps;
	struct tap_watch_list tap_watches;	/* chassis_watch_taps() */
	struct document_list documents;		/* chassis_publish() */
	/* The runtime's, for chassis_stats(). */
	chassis_stats_fn *stats;
	void *stats_arg;
};

void chassis_init(struct chassis *ch, struct event_base *base);
/* Frees what conn.c and connect.c made; the connections must be gone. */
void chassis_cleanup(struct chassis *ch);
/* From now on, stopped(arg) runs once nothing holds the daemon (at once
 * when nothing does). */
/* What chassis_published() looks up. */
const char *chassis_document(const struct chassis *ch, const char *name, const char **content_type);
/* Hands one received datagram of unit `unit` to every tap on it. */
void chassis_tap_deliver(struct chassis *ch, const char *unit, const void *data, size_t len);

void chassis_stop(struct chassis *ch, void (*stopped)(void *arg), void *arg);

/* How many taps a unit has, for a multicast listener that joins its group
 * on demand (join = "on-demand"): changed(arg, n) runs at once with the
 * count now, and again each time a tap on `unit` comes or goes, also from
 * inside a tap's own callback (a stream route whose last client was just
 * dropped). NULL when out of memory. */
struct tap_watch;
typedef void tap_count_fn(void *arg, unsigned n_taps);
struct tap_watch *chassis_watch_taps(struct chassis *ch, const char *unit, tap_count_fn *changed, void *arg);
void chassis_unwatch_taps(struct tap_watch *watch);

#endif
