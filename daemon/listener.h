/* Listening sockets: bind (or keep across reloads), accept with limits and
 * access lists, hand datagrams to a datagram port, and pause accepting
 * when out of fds. A listener owns the connections it accepts and knows
 * nothing of the runtime: a retired one says when it has none left. */
#ifndef CHASSISD_LISTENER_H
#define CHASSISD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "daemon/conn.h"
#include "daemon/datagram.h"
#include "daemon/source_table.h"

struct chassis;
struct chassis_listener_stats;
struct service;

struct listener_counters {
	uint64_t accepted;
	uint64_t denied;		/* allow/deny said no */
	uint64_t refused_limit;		/* max-connections, daemon or listener */
	uint64_t refused_per_source;
	uint64_t idle_closed;
	uint64_t accept_paused;		/* times accepting paused for lack of fds */
	struct conn_tls_counters tls;
};

struct listener {
	struct chassis *chassis;
	struct service *service;	/* current config; connections may hold older ones */
	int fd;
	struct event *acceptor;		/* tcp: EV_READ on fd */
	struct datagram_port port;		/* udp, multicast */
	struct event *resume_timer;
	struct event *grace_timer;
	bool out_of_fds;		/* logged once per episode */
	bool accept_paused;
	bool claimed;			/* a reload in progress keeps this one */
	bool adopted;			/* passed by systemd (socket activation) */
	bool retired;
	bool closing_all;
	/* multicast: a member of the group now. join = "on-demand" watches
	 * the unit's taps (core.h) and is a member only while it has some. */
	bool joined;
	struct tap_watch *tap_watch;
	/* A retired listener's last connection has gone. */
	void (*gone)(struct listener *ls, void *arg);
	void *gone_arg;
	struct conn_owner owner;	/* the connections it accepted */
	struct source_table sources;
	struct listener_counters counters;
	time_t last_limit_log;
	TAILQ_ENTRY(listener) link;	/* the runtime's */
	TAILQ_ENTRY(listener) paused_link;
};

/* Binds and prepares the socket; accepting starts with listener_enable(). */
struct listener *listener_open(struct chassis *chassis, struct service *svc, char *err, size_t errlen);
int listener_enable(struct listener *ls);
/* A reload kept the socket: new connections get svc; live ones keep theirs. */
void listener_set_service(struct listener *ls, struct service *svc);
/* Stops accepting now and closes the remaining connections after grace.
 * False when none remain: the caller frees it. Otherwise gone(ls, arg)
 * runs once the last one has closed. */
bool listener_retire(struct listener *ls, unsigned grace, void (*gone)(struct listener *ls, void *arg), void *arg);
void listener_free(struct listener *ls);
/* What a status page shows; module_counters and module_rows are written
 * into the two buffers. */
void listener_stats(const struct listener *ls, struct chassis_listener_stats *stats, char *counters,
		    size_t counters_len, char *rows, size_t rows_len);
void listener_log_status(const struct listener *ls);

#endif
