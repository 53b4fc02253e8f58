#include "daemon/runtime.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/conn.h"
#include "daemon/listener.h"
#include "daemon/log.h"
#include "daemon/protocol.h"
#include "daemon/child.h"
#include "systemd/notify.h"

/* Time systemd is asked for before each protocol start() hook. */
#define PROTOCOL_START_TIMEOUT_USEC (30ull * 1000000)

/* A config snapshot and everything still using it. */
struct generation {
	struct conf *conf;
	unsigned refs;
	unsigned number;
};

/* What a reload does with one listener of the new file. */
struct plan {
	struct service *service;
	struct listener *kept;		/* same socket as a running listener */
	struct listener *opened;	/* newly bound */
};

static struct generation *generation_new(struct conf *conf, unsigned number)
{
	struct generation *gen = calloc(1, sizeof(*gen));

	if (gen == NULL) {
		conf_free(conf);
		return NULL;
	}
	gen->conf = conf;
	gen->refs = 1;
	gen->number = number;
	return gen;
}

static void generation_release(struct generation *gen)
{
	if (gen != NULL && --gen->refs == 0) {
		conf_free(gen->conf);
		free(gen);
	}
}

static struct service *service_new(struct runtime *rt, struct generation *gen, const struct conf_listener *conf)
{
	struct service_env env = { .base = rt->base, .listener = conf->name };
	struct service *svc = calloc(1, sizeof(*svc));

	if (svc == NULL)
		return NULL;
	svc->refs = 1;
	svc->conf = conf;
	if (protocol_of(conf->module)->start != NULL) {
		/* A start may hash files or spawn programs: ask systemd for time. */
		notify_extend_timeout(PROTOCOL_START_TIMEOUT_USEC);
		svc->state = protocol_of(conf->module)->start(conf->settings, &env);
		if (svc->state == NULL) {
			free(svc);
			return NULL;
		}
	}
	svc->generation = gen;
	gen->refs++;
	return svc;
}

void service_ref(struct service *svc)
{
	svc->refs++;
}

void service_release(struct service *svc)
{
	if (svc == NULL || --svc->refs > 0)
		return;
	if (protocol_of(svc->conf->module)->stop != NULL)
		protocol_of(svc->conf->module)->stop(svc->state);
	generation_release(svc->generation);
	free(svc);
}

/* One timer for every connection: closes those idle past their timeout
 * at no cost per read or write. It ticks twice a second so the documented
 * bound (closed between T and T+1 s) holds even when a tick runs late. */
static void runtime_on_idle_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct runtime *rt = arg;
	struct listener *ls, *next;
	uint64_t now = conn_clock_ms();

	TAILQ_FOREACH(ls, &rt->active, link)
		conn_expire_idle(&ls->conns, now);
	for (ls = TAILQ_FIRST(&rt->retired); ls != NULL; ls = next) {
		next = TAILQ_NEXT(ls, link);
		conn_expire_idle(&ls->conns, now);	/* may free ls */
	}
	(void)fd;
	(void)what;
}

static time_t runtime_clock_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct runtime *runtime_new(struct event_base *base)
{
	struct timeval half_second = { 0, 500000 };
	struct runtime *rt = calloc(1, sizeof(*rt));

	if (rt == NULL)
		return NULL;
	rt->base = base;
	rt->started = runtime_clock_seconds();
	TAILQ_INIT(&rt->active);
	TAILQ_INIT(&rt->retired);
	rt->idle_sweep = event_new(base, -1, EV_PERSIST, runtime_on_idle_sweep, rt);
	if (rt->idle_sweep == NULL || event_add(rt->idle_sweep, &half_second) < 0) {
		if (rt->idle_sweep != NULL)
			event_free(rt->idle_sweep);
		free(rt);
		return NULL;
	}
	return rt;
}

const struct conf *runtime_conf(const struct runtime *rt)
{
	return rt->current ? rt->current->conf : NULL;
}

unsigned runtime_max_connections(const struct runtime *rt)
{
	return rt->current->conf->max_connections;
}

static struct log_context listener_conf_context(const struct conf_listener *conf, enum log_event event)
{
	return (struct log_context){
		.listener = conf->name,
		.protocol = conf->module->name,
		.transport = transport_name(conf->transport),
		.config_line = conf->line,
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

	plan->service = service_new(rt, gen, conf);
	if (plan->service == NULL) {
		log_write(LOG_ERR, &ctx, "listener %s: protocol %s failed to start", conf->name,
			  conf->module->name);
		return false;
	}
	plan->kept = find_running(rt, conf);
	if (plan->kept != NULL) {
		plan->kept->claimed = true;
		return true;
	}
	plan->opened = listener_open(rt, plan->service, err, sizeof(err));
	if (plan->opened != NULL)
		return true;
	log_write(conf->required ? LOG_ERR : LOG_WARNING, &ctx, "listener %s: %s%s", conf->name, err,
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

	log_write(LOG_INFO, &ctx, "listening on %s (%s, %s)%s", conf->address,
		  transport_name(conf->transport), conf->module->name,
		  ls->adopted ? ", socket from systemd" : "");
}

/* Everything below succeeds or only logs: the point of no return. */
static void plan_commit(struct runtime *rt, struct plan *plans, size_t n, unsigned *kept,
			unsigned *added, unsigned *removed)
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
				log_err("listener %s: cannot watch its socket", ls->service->conf->name);
			TAILQ_INSERT_TAIL(&next, ls, link);
			log_listening(ls);
			(*added)++;
		}
		service_release(plans[i].service);
	}
	while ((ls = TAILQ_FIRST(&rt->active)) != NULL) {
		TAILQ_REMOVE(&rt->active, ls, link);
		listener_retire(ls, rt->current->conf->shutdown_grace);
		if (ls->n_conns == 0)
			listener_free(ls);
		else
			TAILQ_INSERT_TAIL(&rt->retired, ls, link);
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
	child_set_global_limit(conf->max_children);
	rt->generation_number = gen->number;
	plan_commit(rt, plans, n, &kept, &added, &removed);
	free(plans);
	if (gen->number > 1) {
		struct log_context ctx = { .generation = gen->number, .event = LOG_EVENT_RELOAD_APPLIED,
					   .config_file = gen->conf->path };
		log_write(LOG_NOTICE, &ctx, "reload %u: %u kept, %u added, %u removed", gen->number, kept,
			  added, removed);
	}
	return 0;
}

static void runtime_check_stopped(struct runtime *rt)
{
	if (rt->stopping && rt->connections == 0)
		event_base_loopbreak(rt->base);
}

void runtime_connection_opened(struct runtime *rt)
{
	rt->connections++;
}

void runtime_reap_listener(struct runtime *rt, struct listener *ls)
{
	if (ls->n_conns == 0 && ls->fd < 0 && !ls->closing_all) {
		TAILQ_REMOVE(&rt->retired, ls, link);
		listener_free(ls);
	}
}

void runtime_connection_closed(struct runtime *rt, struct listener *ls)
{
	struct listener *other;

	runtime_reap_listener(rt, ls);
	if (rt->connections > 0)
		rt->connections--;
	/* A freed fd may be just what a paused listener waits for. */
	TAILQ_FOREACH(other, &rt->active, link)
		listener_resume_accept(other);
	runtime_check_stopped(rt);
}

void runtime_shutdown(struct runtime *rt)
{
	struct listener *ls;

	rt->stopping = true;
	while ((ls = TAILQ_FIRST(&rt->active)) != NULL) {
		TAILQ_REMOVE(&rt->active, ls, link);
		listener_retire(ls, rt->current->conf->shutdown_grace);
		if (ls->n_conns == 0)
			listener_free(ls);
		else
			TAILQ_INSERT_TAIL(&rt->retired, ls, link);
	}
	runtime_check_stopped(rt);
}

void runtime_free(struct runtime *rt)
{
	struct listener *ls;

	if (rt == NULL)
		return;
	rt->stopping = false;	/* no loopbreak from inside the teardown */
	while ((ls = TAILQ_FIRST(&rt->active)) != NULL) {
		TAILQ_REMOVE(&rt->active, ls, link);
		listener_free(ls);
	}
	while ((ls = TAILQ_FIRST(&rt->retired)) != NULL) {
		TAILQ_REMOVE(&rt->retired, ls, link);
		ls->closing_all = true;
		listener_free(ls);
	}
	generation_release(rt->current);
	event_free(rt->idle_sweep);
	free(rt);
}

void runtime_status_line(const struct runtime *rt, char *buf, size_t len)
{
	const struct listener *ls;
	unsigned listeners = 0;

	TAILQ_FOREACH(ls, &rt->active, link)
		listeners++;
	snprintf(buf, len, "%u listener%s, %u connection%s, generation %u", listeners,
		 listeners == 1 ? "" : "s", rt->connections, rt->connections == 1 ? "" : "s",
		 rt->generation_number);
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
	const struct conf_listener *conf = ls->service->conf;
	const struct listener_counters *c = &ls->counters;
	char module[512] = "";
	struct chassis_listener_stats stats = {
		.name = conf->name,
		.protocol = conf->module->name,
		.transport = transport_name(conf->transport),
		.address = conf->address,
		.retired = ls->fd < 0,
		.connections = ls->n_conns,
		.accepted = c->accepted,
		.denied = c->denied,
		.refused_limit = c->refused_limit,
		.refused_per_source = c->refused_per_source,
		.idle_closed = c->idle_closed,
		.accept_paused = c->accept_paused,
		.datagrams = c->datagrams,
		.replies = c->replies,
		.dropped = c->dropped,
		.module_counters = module,
	};

	if (protocol_of(conf->module)->status != NULL && ls->service->state != NULL)
		protocol_of(conf->module)->status(ls->service->state, module, sizeof(module));
	each(&stats, arg);
}

void runtime_stats(const struct runtime *rt, struct chassis_totals *totals,
		   void (*each)(const struct chassis_listener_stats *stats, void *arg), void *arg)
{
	const struct listener *ls;

	*totals = (struct chassis_totals){
		.generation = rt->generation_number,
		.connections = rt->connections,
		.max_connections = runtime_max_connections(rt),
		.uptime_seconds = (uint64_t)(runtime_clock_seconds() - rt->started),
	};
	TAILQ_FOREACH(ls, &rt->active, link)
		totals->listeners++;
	if (each == NULL)
		return;
	TAILQ_FOREACH(ls, &rt->active, link)
		runtime_listener_stats(ls, each, arg);
	TAILQ_FOREACH(ls, &rt->retired, link)
		runtime_listener_stats(ls, each, arg);
}
