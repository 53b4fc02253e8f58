/* What a unit runs with in one config generation.
 *
 * A generation is one config snapshot and everything still using it. A
 * service is one unit's configuration in one generation and the module
 * instance that runs it; accepted connections hold a reference, so a
 * reload that changes a unit leaves live connections on the options they
 * began with. An instance is a module's running state: a reload that keeps
 * the unit, and whose module says same(old, new), hands the instance to
 * the new service instead of stopping it and starting another, so that
 * what it has built up (an upstream's back-off, a sender's sequence
 * numbers) carries on. */
#ifndef CHASSISD_SERVICE_H
#define CHASSISD_SERVICE_H

#include "daemon/chassis.h"
#include "daemon/conn.h"
#include "daemon/datagram.h"

struct conf;
struct conf_listener;
struct conf_stream;
struct protocol;

struct generation {
	struct conf *conf;
	unsigned refs;
	unsigned number;
};

struct instance {
	unsigned refs;			/* services running it */
	const struct protocol *protocol;
	void *state;			/* from start() */
	struct unit_env env;
	char *unit;			/* env.unit: the first config may go first */
	/* The module's own connections. The instance outlives its last
	 * service until they are closed, so stop() never pulls state from
	 * under a connection. */
	struct conn_owner outbound;
	struct conn_profile outbound_profile;
};

struct service {
	unsigned refs;			/* the unit, its accepted connections */
	struct generation *generation;
	const struct conf_listener *conf;	/* a listener's; NULL for a stream */
	const struct conf_stream *stream;	/* a stream's; NULL for a listener */
	struct instance *instance;
	struct conn_profile profile;	/* what accepted connections run with */
	struct datagram_profile datagram;	/* what datagrams go to */
};

/* Takes conf; NULL (conf freed) when out of memory. */
struct generation *generation_new(struct conf *conf, unsigned number);
void generation_release(struct generation *gen);

/* A service for `conf` in `gen`. previous is the service the unit ran
 * with until now (a reload that keeps it), or NULL: its instance is handed
 * on when the module's same() allows. NULL when the module failed to
 * start. */
struct service *service_new(struct chassis *chassis, struct generation *gen, const struct conf_listener *conf,
			    const struct service *previous);
/* The same for a stream, which has no socket of the chassis's own. */
struct service *service_new_stream(struct chassis *chassis, struct generation *gen, const struct conf_stream *conf,
				   const struct service *previous);
/* A reload handed the running instance on (the unit kept running). */
bool service_kept_instance(const struct service *svc, const struct service *previous);
/* Tells the module of a kept instance that the reload is done. */
void service_reloaded(const struct service *svc);
void service_ref(struct service *svc);
void service_release(struct service *svc);
/* The module's counters and rows, for status pages and the SIGUSR1 dump
 * ("" when it has none). */
void service_module_status(const struct service *svc, char *counters, size_t counters_len, char *rows,
			   size_t rows_len);

/* Its words (status_text): "KEY text\n" lines, "" when none. */
void service_module_text(const struct service *svc, char *text, size_t text_len);

#endif
