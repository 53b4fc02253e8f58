/* Listening sockets: bind (or keep across reloads), accept with limits and
 * access lists, read datagrams, and pause accepting when out of fds. */
#ifndef CHASSISD_LISTENER_H
#define CHASSISD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "daemon/conn.h"
#include "daemon/source_table.h"

struct conf_listener;
struct runtime;
struct service;

struct listener_counters {
	uint64_t accepted;
	uint64_t denied;		/* allow/deny said no */
	uint64_t refused_limit;		/* max-connections, daemon or listener */
	uint64_t refused_per_source;
	uint64_t idle_closed;
	uint64_t accept_paused;		/* times accepting paused for lack of fds */
	uint64_t datagrams;
	uint64_t replies;
	uint64_t dropped;
};

struct listener {
	struct runtime *rt;
	struct service *service;	/* current config; connections may hold older ones */
	int fd;
	struct evconnlistener *acceptor;	/* tcp */
	struct event *readable;			/* udp, multicast */
	struct event *resume_timer;
	struct event *grace_timer;
	bool out_of_fds;		/* logged once per episode */
	bool accept_paused;
	bool claimed;
	bool adopted;			/* passed by systemd (socket activation) */			/* a reload in progress keeps this one */
	bool closing_all;
	struct conn_list conns;
	unsigned n_conns;
	struct source_table sources;
	struct listener_counters counters;
	time_t last_limit_log;
	TAILQ_ENTRY(listener) link;
};

/* Binds and prepares the socket; accepting starts with listener_enable(). */
struct listener *listener_open(struct runtime *rt, struct service *svc, char *err, size_t errlen);
int listener_enable(struct listener *ls);
/* A reload kept the socket: new connections get svc; live ones keep theirs. */
void listener_set_service(struct listener *ls, struct service *svc);
/* Stops accepting now and closes the remaining connections after grace. */
void listener_retire(struct listener *ls, unsigned grace);
void listener_close_connections(struct listener *ls);
void listener_free(struct listener *ls);
void listener_resume_accept(struct listener *ls);
bool listener_allows(const struct conf_listener *conf, const struct sockaddr *peer);
void listener_log_status(const struct listener *ls);

#endif
