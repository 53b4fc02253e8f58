#include "daemon/runtime.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/child.h"
#include "daemon/conn.h"
#include "daemon/listener.h"
#include "daemon/log.h"
#include "daemon/sender.h"
#include "daemon/service.h"

/* What a reload does with one listener of the new file. A listener's
 * identity is its socket (transport, address, port, group, interface):
 * the same socket is kept, whatever else changed. */
struct plan {
	struct service *service;
	struct listener *kept;		/* same socket as a running listener */
	struct listener *opened;	/* newly bound */
};

/* A stream unit: the service that runs it. A stream has no socket of the
 * chassis's own; its identity for a reload is its name, and its module
 * decides (same()) whether a changed one restarts. */
struct stream_unit {
	struct service *service;
	bool claimed;			/* a reload in progress keeps this name */
	TAILQ_ENTRY(stream_unit) link;
};

struct stream_plan {
	struct stream_unit *previous;
	struct service *service;
};

static void stream_log_status(const struct stream_unit *su);

static time_t runtime_clock_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void runtime_stats(void *arg, struct chassis_totals *totals,
			  void (*each)(const struct chassis_listener_stats *stats, void *each_arg), void *each_arg);

struct runtime *runtime_new(struct event_base *base)
{
	struct runtime *rt = calloc(1, sizeof(*rt));

	if (rt == NULL)
		return NULL;
	chassis_init(&rt->chassis, base);
	rt->chassis.stats = runtime_stats;
	rt->chassis.stats_arg = rt;
	rt->started = runtime_clock_seconds();
	TAILQ_INIT(&rt->active);
	TAILQ_INIT(&rt->retired);
	TAILQ_INIT(&rt->streams);
	return rt;
}

const struct conf *runtime_conf(const struct runtime *rt)
{
	return rt->current ? rt->current->conf : NULL;
}

static struct log_context listener_conf_context(const struct conf_listener *conf, enum log_event event)
{
	return (struct log_context){
		.listener = conf->unit.name,
		.protocol = conf->unit.module->name,
		.transport = transport_name(conf->transport),
		.config_file = conf->unit.file,
		.config_line = conf->unit.line,
		.event = event,
	};
}

static struct listener *find_running(struct runtime *rt, const struct conf_listener *conf)
{
	struct listener *ls;

	TAILQ_FOREACH(ls, &rt->active, link)
		if (!ls->claimed && conf_listener_same_socket(ls->service->conf, conf))
			return ls;
	return NULL;
}

/* Returns false when the whole change must be abandoned. */
static bool plan_listener(struct runtime *rt, struct generation *gen, const struct conf_listener *conf,
			  struct plan *plan)
{
	struct log_context ctx = listener_conf_context(conf, LOG_EVENT_LISTENER_BIND_FAILED);
	char err[256];

	ctx.config_file = conf->address_file;
	ctx.config_line = conf->address_line;
	ctx.generation = gen->number;

	plan->kept = find_running(rt, conf);
	plan->service = service_new(&rt->chassis, gen, conf, plan->kept ? plan->kept->service : NULL);
	if (plan->service == NULL) {
		rt->failure = RUNTIME_START_FAILED;
		log_write(LOG_ERR, &ctx, "listener %s: protocol %s failed to start", conf->unit.name,
			  conf->unit.module->name);
		plan->kept = NULL;
		return false;
	}
	if (plan->kept != NULL) {
		plan->kept->claimed = true;
		return true;
	}
	plan->opened = listener_open(&rt->chassis, plan->service, err, sizeof(err));
	if (plan->opened != NULL)
		return true;
	log_write(conf->required ? LOG_ERR : LOG_WARNING, &ctx, "%s:%d: listener %s: %s%s", ctx.config_file,
		  ctx.config_line, conf->unit.name, err,
		  conf->required ? "" : " (not required: carrying on without it)");
	return !conf->required;
}

static void plan_abandon(struct plan *plans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (plans[i].kept != NULL)
			plans[i].kept->claimed = false;
		if (plans[i].opened != NULL)
			listener_free(plans[i].opened);
		service_release(plans[i].service);
	}
}

static void log_listening(const struct listener *ls)
{
	const struct conf_listener *conf = ls->service->conf;
	struct log_context ctx = listener_conf_context(conf, LOG_EVENT_LISTENER_BOUND);

	log_write(LOG_INFO, &ctx, "listening on %s (%s, %s)%s", conf->address, transport_name(conf->transport),
		  conf->unit.module->name, ls->adopted ? ", socket from systemd" : "");
}

static void runtime_on_listener_gone(struct listener *ls, void *arg)
{
	struct runtime *rt = arg;

	TAILQ_REMOVE(&rt->retired, ls, link);
	listener_free(ls);
}

/* Retired listeners keep serving their connections for shutdown-grace. */
static void runtime_retire(struct runtime *rt, struct listener *ls)
{
	TAILQ_REMOVE(&rt->active, ls, link);
	if (listener_retire(ls, rt->current->conf->shutdown_grace, runtime_on_listener_gone, rt))
		TAILQ_INSERT_TAIL(&rt->retired, ls, link);
	else
		listener_free(ls);
}

/* Everything below succeeds or only logs: the point of no return. */
static void plan_commit(struct runtime *rt, struct plan *plans, size_t n, unsigned *kept, unsigned *added,
			unsigned *removed)
{
	struct listener_list next = TAILQ_HEAD_INITIALIZER(next);
	struct listener *ls;

	for (size_t i = 0; i < n; i++) {
		if (plans[i].kept != NULL) {
			ls = plans[i].kept;
			TAILQ_REMOVE(&rt->active, ls, link);
			ls->claimed = false;
			listener_set_service(ls, plans[i].service);
			TAILQ_INSERT_TAIL(&next, ls, link);
			(*kept)++;
		} else if (plans[i].opened != NULL) {
			ls = plans[i].opened;
			if (listener_enable(ls) < 0)
				log_err("listener %s: cannot watch its socket", ls->service->conf->unit.name);
			TAILQ_INSERT_TAIL(&next, ls, link);
			log_listening(ls);
			(*added)++;
		}
		service_release(plans[i].service);
	}
	while ((ls = TAILQ_FIRST(&rt->active)) != NULL) {
		runtime_retire(rt, ls);
		(*removed)++;
	}
	TAILQ_CONCAT(&rt->active, &next, link);
}

/* ---- streams ---- */

static struct log_context stream_context(const struct conf_stream *conf, unsigned generation)
{
	return (struct log_context){
		.stream = conf->unit.name,
		.protocol = conf->unit.module->name,
		.config_file = conf->unit.file,
		.config_line = conf->unit.line,
		.generation = generation,
	};
}

static struct stream_unit *find_stream(struct runtime *rt, const char *name)
{
	struct stream_unit *su;

	TAILQ_FOREACH(su, &rt->streams, link)
		if (!su->claimed && strcmp(su->service->stream->unit.name, name) == 0)
			return su;
	return NULL;
}

static bool plan_stream(struct runtime *rt, struct generation *gen, const struct conf_stream *conf,
			struct stream_plan *plan)
{
	plan->previous = find_stream(rt, conf->unit.name);
	plan->service = service_new_stream(&rt->chassis, gen, conf, plan->previous ? plan->previous->service : NULL);
	if (plan->service == NULL) {
		struct log_context ctx = stream_context(conf, gen->number);
		rt->failure = RUNTIME_START_FAILED;
		log_write(LOG_ERR, &ctx, "stream %s: protocol %s failed to start", conf->unit.name,
			  conf->unit.module->name);
		plan->previous = NULL;
		return false;
	}
	if (plan->previous != NULL)
		plan->previous->claimed = true;
	return true;
}

static void stream_plans_abandon(struct stream_plan *plans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (plans[i].previous != NULL)
			plans[i].previous->claimed = false;
		service_release(plans[i].service);
	}
}

/* Builds every stream of the new config; false (nothing changed) when
 * one cannot start. */
static bool plan_streams(struct runtime *rt, struct generation *gen, struct stream_plan **out)
{
	size_t n = gen->conf->n_streams, i;
	struct stream_plan *plans = calloc(n ? n : 1, sizeof(*plans));

	for (i = 0; plans != NULL && i < n; i++)
		if (!plan_stream(rt, gen, &gen->conf->streams[i], &plans[i]))
			break;
	if (plans == NULL || i < n) {
		if (plans != NULL)
			stream_plans_abandon(plans, i);
		free(plans);
		return false;
	}
	*out = plans;
	return true;
}

static void stream_unit_stop(struct stream_unit *su)
{
	service_release(su->service);
	free(su);
}

static void streams_commit(struct runtime *rt, struct stream_plan *plans, size_t n, unsigned *kept, unsigned *added,
			   unsigned *removed)
{
	struct stream_list next = TAILQ_HEAD_INITIALIZER(next);
	struct stream_unit *su;

	for (size_t i = 0; i < n; i++) {
		const struct conf_stream *conf = plans[i].service->stream;
		struct log_context ctx = stream_context(conf, rt->generation_number);

		if (plans[i].previous != NULL) {
			su = plans[i].previous;
			TAILQ_REMOVE(&rt->streams, su, link);
			su->claimed = false;
			if (service_kept_instance(plans[i].service, su->service)) {
				(*kept)++;
				service_reloaded(plans[i].service);
			} else {
				log_write(LOG_INFO, &ctx, "stream %s: changed, restarted", conf->unit.name);
				(*added)++;
				(*removed)++;
			}
			service_release(su->service);
		} else {
			su = calloc(1, sizeof(*su));
			if (su == NULL) {
				service_release(plans[i].service);
				continue;
			}
			if (conf->n_destinations == 0)
				log_write(LOG_INFO, &ctx, "stream %s: started (%s)", conf->unit.name,
					  conf->unit.module->name);
			else
				log_write(LOG_INFO, &ctx, "stream %s: sending to %zu destination%s (%s)",
					  conf->unit.name, conf->n_destinations, conf->n_destinations == 1 ? "" : "s",
					  conf->unit.module->name);
			(*added)++;
		}
		su->service = plans[i].service;
		TAILQ_INSERT_TAIL(&next, su, link);
	}
	while ((su = TAILQ_FIRST(&rt->streams)) != NULL) {
		TAILQ_REMOVE(&rt->streams, su, link);
		stream_unit_stop(su);
		(*removed)++;
	}
	TAILQ_CONCAT(&rt->streams, &next, link);
}

static void streams_stop_all(struct runtime *rt)
{
	struct stream_unit *su;

	while ((su = TAILQ_FIRST(&rt->streams)) != NULL) {
		TAILQ_REMOVE(&rt->streams, su, link);
		stream_unit_stop(su);
	}
}

int runtime_apply(struct runtime *rt, struct conf *conf)
{
	struct generation *gen = generation_new(conf, rt->generation_number + 1);
	unsigned kept = 0, added = 0, removed = 0;
	struct stream_plan *stream_plans = NULL;
	struct plan *plans;
	size_t n, i;

	rt->failure = RUNTIME_BIND_FAILED;
	if (gen == NULL)
		return -1;
	n = gen->conf->n_listeners;
	plans = calloc(n ? n : 1, sizeof(*plans));
	for (i = 0; plans != NULL && i < n; i++)
		if (!plan_listener(rt, gen, &gen->conf->listeners[i], &plans[i]))
			break;
	if (plans != NULL && i == n && !plan_streams(rt, gen, &stream_plans))
		i = n + 1;
	if (plans == NULL || i != n) {
		if (plans != NULL)
			plan_abandon(plans, i < n ? i + 1 : n);
		free(plans);
		generation_release(gen);
		return -1;
	}
	generation_release(rt->current);
	rt->current = gen;
	rt->chassis.max_connections = conf->max_connections;
	rt->chassis.shutdown_grace = conf->shutdown_grace;
	child_set_global_limit(conf->max_children);
	rt->generation_number = gen->number;
	plan_commit(rt, plans, n, &kept, &added, &removed);
	free(plans);
	streams_commit(rt, stream_plans, gen->conf->n_streams, &kept, &added, &removed);
	free(stream_plans);
	if (gen->number > 1) {
		struct log_context ctx = { .generation = gen->number, .event = LOG_EVENT_RELOAD_APPLIED,
					   .config_file = gen->conf->path };
		log_write(LOG_NOTICE, &ctx, "reload %u: %u kept, %u added, %u removed", gen->number, kept, added,
			  removed);
	}
	return 0;
}

static void runtime_on_stopped(void *arg)
{
	struct runtime *rt = arg;

	event_base_loopbreak(rt->chassis.base);
}

void runtime_shutdown(struct runtime *rt)
{
	struct listener *ls;

	rt->stopping = true;
	while ((ls = TAILQ_FIRST(&rt->active)) != NULL)
		runtime_retire(rt, ls);
	/* A stream sends what it has queued, holding the daemon meanwhile. */
	streams_stop_all(rt);
	chassis_stop(&rt->chassis, runtime_on_stopped, rt);
}

void runtime_free(struct runtime *rt)
{
	struct listener *ls;

	if (rt == NULL)
		return;
	rt->chassis.stopped = NULL;	/* no loopbreak from inside the teardown */
	streams_stop_all(rt);
	while ((ls = TAILQ_FIRST(&rt->active)) != NULL) {
		TAILQ_REMOVE(&rt->active, ls, link);
		listener_free(ls);
	}
	while ((ls = TAILQ_FIRST(&rt->retired)) != NULL) {
		TAILQ_REMOVE(&rt->retired, ls, link);
		ls->closing_all = true;
		listener_free(ls);
	}
	/* Outbound connections whose abort was still on its way. */
	conn_close_everything(&rt->chassis);
	sender_free_lingering();
	generation_release(rt->current);
	chassis_cleanup(&rt->chassis);
	free(rt);
}

void runtime_status_line(const struct runtime *rt, char *buf, size_t len)
{
	const struct listener *ls;
	const struct stream_unit *su;
	unsigned listeners = 0, streams = 0;

	TAILQ_FOREACH(ls, &rt->active, link)
		listeners++;
	TAILQ_FOREACH(su, &rt->streams, link)
		streams++;
	char stream_count[32] = "";

	/* Streams are named only where there are some: a listener-only
	 * daemon says what it always said. */
	if (streams > 0)
		snprintf(stream_count, sizeof(stream_count), ", %u stream%s", streams, streams == 1 ? "" : "s");
	snprintf(buf, len, "%u listener%s%s, %u connection%s, generation %u", listeners, listeners == 1 ? "" : "s",
		 stream_count, rt->chassis.connections, rt->chassis.connections == 1 ? "" : "s",
		 rt->generation_number);
}

void runtime_log_status(const struct runtime *rt)
{
	const struct listener *ls;
	const struct stream_unit *su;
	char line[160];

	runtime_status_line(rt, line, sizeof(line));
	log_info("status: %s", line);
	TAILQ_FOREACH(ls, &rt->active, link)
		listener_log_status(ls);
	TAILQ_FOREACH(ls, &rt->retired, link)
		listener_log_status(ls);
	TAILQ_FOREACH(su, &rt->streams, link)
		stream_log_status(su);
}

static void runtime_listener_stats(const struct listener *ls,
				   void (*each)(const struct chassis_listener_stats *stats, void *arg), void *arg)
{
	struct chassis_listener_stats stats;
	char counters[512], rows[4096];

	listener_stats(ls, &stats, counters, sizeof(counters), rows, sizeof(rows));
	each(&stats, arg);
}

/* A stream on a status page: its module's counters and rows (source,
 * netsim) under the transport "stream". */
static void stream_stats(const struct stream_unit *su, struct chassis_listener_stats *stats, char *counters,
			 size_t counters_len, char *rows, size_t rows_len, char *text, size_t text_len)
{
	const struct conf_stream *conf = su->service->stream;

	service_module_status(su->service, counters, counters_len, rows, rows_len);
	service_module_text(su->service, text, text_len);
	*stats = (struct chassis_listener_stats){
		.name = conf->unit.name,
		.protocol = conf->unit.module->name,
		.transport = "stream",
		/* A stream its peers come to (torrent) sends to none. */
		.address = conf->n_destinations > 0 ? conf->destination_text[0] : "",
		.module_counters = counters,
		.module_rows = rows,
		.module_text = text,
	};
}

static void stream_log_status(const struct stream_unit *su)
{
	struct log_context ctx = stream_context(su->service->stream, 0);
	struct chassis_listener_stats s;
	char counters[512], rows[2048], text[1024];

	stream_stats(su, &s, counters, sizeof(counters), rows, sizeof(rows), text, sizeof(text));
	log_write(LOG_INFO, &ctx, "status: %s %s", s.address, counters);
	log_lines(LOG_INFO, &ctx, "status: ", text);
	log_lines(LOG_INFO, &ctx, "status: ", rows);
}

static void runtime_stats(void *arg, struct chassis_totals *totals,
			  void (*each)(const struct chassis_listener_stats *stats, void *each_arg), void *each_arg)
{
	const struct runtime *rt = arg;
	const struct listener *ls;
	const struct stream_unit *su;

	*totals = (struct chassis_totals){
		.generation = rt->generation_number,
		.connections = rt->chassis.connections,
		.max_connections = rt->chassis.max_connections,
		.uptime_seconds = (uint64_t)(runtime_clock_seconds() - rt->started),
	};
	TAILQ_FOREACH(ls, &rt->active, link)
		totals->listeners++;
	if (each == NULL)
		return;
	TAILQ_FOREACH(ls, &rt->active, link)
		runtime_listener_stats(ls, each, each_arg);
	TAILQ_FOREACH(ls, &rt->retired, link)
		runtime_listener_stats(ls, each, each_arg);
	TAILQ_FOREACH(su, &rt->streams, link) {
		struct chassis_listener_stats stats;
		char counters[512], rows[4096], text[1024];

		stream_stats(su, &stats, counters, sizeof(counters), rows, sizeof(rows), text, sizeof(text));
		each(&stats, each_arg);
	}
}
