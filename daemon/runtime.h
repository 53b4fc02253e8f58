/* The running daemon: listeners built from a config snapshot, reloads that
 * diff the new snapshot against what runs, and orderly shutdown. */
#ifndef CHASSISD_RUNTIME_H
#define CHASSISD_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <time.h>

struct conf;
struct conf_listener;
struct event;
struct event_base;
struct generation;
struct listener;

/* One listener's configuration in one generation, with the protocol's
 * per-listener state. Connections hold a reference, so a reload that
 * changes a listener leaves live connections on the options they began
 * with. */
struct service {
	unsigned refs;
	struct generation *generation;
	const struct conf_listener *conf;
	void *state;
};

TAILQ_HEAD(listener_list, listener);

struct runtime {
	struct event_base *base;
	struct generation *current;
	struct listener_list active;
	struct listener_list retired;	/* stopped accepting; connections finishing */
	unsigned connections;
	unsigned generation_number;
	bool stopping;
	struct event *idle_sweep;	/* once a second: close idle connections */
	time_t started;			/* CLOCK_MONOTONIC seconds */
};

struct runtime *runtime_new(struct event_base *base);
/* Opens what `conf` adds, keeps what it shares with the running set, retires
 * what it drops. Takes ownership of conf. On failure nothing changes: every
 * socket opened for it is closed again and -1 is returned. */
int runtime_apply(struct runtime *rt, struct conf *conf);
const struct conf *runtime_conf(const struct runtime *rt);
/* Stops accepting; the event loop ends once the last connection is gone. */
void runtime_shutdown(struct runtime *rt);
void runtime_free(struct runtime *rt);
void runtime_log_status(const struct runtime *rt);
/* One line for systemd's STATUS=. */
void runtime_status_line(const struct runtime *rt, char *buf, size_t len);
/* The chassis_stats() behind a status page: every listener, retired too. */
struct chassis_totals;
struct chassis_listener_stats;
void runtime_stats(const struct runtime *rt, struct chassis_totals *totals,
		   void (*each)(const struct chassis_listener_stats *stats, void *arg), void *arg);

/* For listeners and connections. */
void runtime_connection_opened(struct runtime *rt);
void runtime_connection_closed(struct runtime *rt, struct listener *ls);
/* Frees a retired listener once its last connection is gone. */
void runtime_reap_listener(struct runtime *rt, struct listener *ls);
unsigned runtime_max_connections(const struct runtime *rt);
void service_release(struct service *svc);
void service_ref(struct service *svc);

#endif
