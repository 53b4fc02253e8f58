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
#include "daemon/service.h"

/* What a reload does with one listener of the new file. A listener's
 * identity is its socket (transport, address, port, group, interface):
 * the same socket is kept, whatever else changed. */
struct plan {
	struct service *service;
	struct listener *kept;		/* same socket as a running listener */
	struct listener *opened;	/* newly bound */
};

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

	ctx.config_file = gen->conf->path;
	ctx.config_line = conf->address_line;
	ctx.generation = gen->number;

	plan->kept = find_running(rt, conf);
	plan->service = service_new(&rt->chassis, gen, conf, plan->kept ? plan->kept->service : NULL);
	if (plan->service == NULL) {
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
	log_write(conf->required ? LOG_ERR : LOG_WARNING, &ctx, "listener %s: %s%s", conf->unit.name, err,
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

int runtime_apply(struct runtime *rt, struct conf *conf)
{
	struct generation *gen = generation_new(conf, rt->generation_number + 1);
	unsigned kept = 0, added = 0, removed = 0;
	struct plan *plans;
	size_t n, i;

	if (gen == NULL)
		return -1;
	n = gen->conf->n_listeners;
	plans = calloc(n ? n : 1, sizeof(*plans));
	for (i = 0; plans != NULL && i < n; i++)
		if (!plan_listener(rt, gen, &gen->conf->listeners[i], &plans[i]))
			break;
	if (plans == NULL || i < n) {
		if (plans != NULL)
			plan_abandon(plans, i < n ? i + 1 : n);
		free(plans);
		generation_release(gen);
		return -1;
	}
	generation_release(rt->current);
	rt->current = gen;
	rt->chassis.max_connections = conf->max_connections;
	child_set_global_limit(conf->max_children);
	rt->generation_number = gen->number;
	plan_commit(rt, plans, n, &kept, &added, &removed);
	free(plans);
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
	chassis_stop(&rt->chassis, runtime_on_stopped, rt);
}

void runtime_free(struct runtime *rt)
{
	struct listener *ls;

	if (rt == NULL)
		return;
	rt->chassis.stopped = NULL;	/* no loopbreak from inside the teardown */
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
	generation_release(rt->current);
	chassis_cleanup(&rt->chassis);
	free(rt);
}

void runtime_status_line(const struct runtime *rt, char *buf, size_t len)
{
	const struct listener *ls;
	unsigned listeners = 0;

	TAILQ_FOREACH(ls, &rt->active, link)
		listeners++;
	snprintf(buf, len, "%u listener%s, %u connection%s, generation %u", listeners, listeners == 1 ? "" : "s",
		 rt->chassis.connections, rt->chassis.connections == 1 ? "" : "s", rt->generation_number);
}

void runtime_log_status(const struct runtime *rt)
{
	const struct listener *ls;
	char line[160];

	runtime_status_line(rt, line, sizeof(line));
	log_info("status: %s", line);
	TAILQ_FOREACH(ls, &rt->active, link)
		listener_log_status(ls);
	TAILQ_FOREACH(ls, &rt->retired, link)
		listener_log_status(ls);
}

static void runtime_listener_stats(const struct listener *ls,
				   void (*each)(const struct chassis_listener_stats *stats, void *arg), void *arg)
{
	struct chassis_listener_stats stats;
	char counters[512], rows[4096];

	listener_stats(ls, &stats, counters, sizeof(counters), rows, sizeof(rows));
	each(&stats, arg);
}

static void runtime_stats(void *arg, struct chassis_totals *totals,
			  void (*each)(const struct chassis_listener_stats *stats, void *each_arg), void *each_arg)
{
	const struct runtime *rt = arg;
	const struct listener *ls;

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
}
