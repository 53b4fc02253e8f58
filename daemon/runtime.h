/* The running daemon: the units built from a config snapshot (listeners
 * and streams), reloads that diff a new snapshot
 * against what runs, and orderly shutdown. */
#ifndef CHASSISD_RUNTIME_H
#define CHASSISD_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <time.h>

#include "daemon/core.h"

struct conf;
struct event_base;
struct generation;
struct listener;

TAILQ_HEAD(listener_list, listener);
TAILQ_HEAD(stream_list, stream_unit);

/* Why runtime_apply() failed. */
enum runtime_failure {
	RUNTIME_BIND_FAILED,		/* a required listener could not bind */
	RUNTIME_START_FAILED,		/* a module could not start a unit */
};

struct runtime {
	struct chassis chassis;
	enum runtime_failure failure;	/* of the last runtime_apply() that failed */
	struct generation *current;
	struct listener_list active;
	struct listener_list retired;	/* stopped accepting; connections finishing */
	struct stream_list streams;
	unsigned generation_number;
	bool stopping;
	time_t started;			/* CLOCK_MONOTONIC seconds */
};

struct runtime *runtime_new(struct event_base *base);
/* Opens what `conf` adds, keeps what it shares with the running set, retires
 * what it drops. Takes ownership of conf. On failure nothing changes: every
 * socket opened for it is closed again and -1 is returned. */
int runtime_apply(struct runtime *rt, struct conf *conf);
const struct conf *runtime_conf(const struct runtime *rt);
/* Stops accepting; the event loop ends once nothing holds the daemon. */
void runtime_shutdown(struct runtime *rt);
void runtime_free(struct runtime *rt);
void runtime_log_status(const struct runtime *rt);
/* One line for systemd's STATUS=. */
void runtime_status_line(const struct runtime *rt, char *buf, size_t len);

#endif
