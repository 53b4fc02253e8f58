#include "protocols/support/outlet.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/text.h"
#include "daemon/chassis.h"
#include "daemon/log.h"
#include "daemon/netsim.h"
#include "daemon/pacer.h"
#include "daemon/sender.h"
#include "sources/source.h"

/* What a stopping stream may take to send its queue. */
#define OUTLET_LINGER_MS 1000

struct outlet {
	const struct unit_env *env;
	const struct outlet_hooks *hooks;
	void *arg;
	struct source *source;		/* NULL until the loop runs */
	struct conf_source *source_conf;	/* what to open it with, till then */
	struct event *begin;
	struct sender *sender;
	struct netsim *netsim;
	struct pacer *pacer;
	bool in_tick;
	bool sourceless;		/* SOURCE_NONE: the protocol reads what it sends itself */
	uint64_t datagrams, bytes, discontinuities;
};

static void outlet_deliver(void *arg, const void *data, size_t len, const void *meta, size_t meta_len)
{
	struct outlet *outlet = arg;

	sender_add(outlet->sender, data, len);
	/* From a netsim timer: no tick will flush it. */
	if (!outlet->in_tick)
		sender_flush(outlet->sender);
	(void)meta;
	(void)meta_len;
}

static void outlet_on_pacer(void *arg, uint64_t now_ns)
{
	struct outlet *outlet = arg;

	outlet->hooks->tick(outlet->arg, now_ns);
}

static void outlet_on_ready(void *arg)
{
	struct outlet *outlet = arg;

	outlet->hooks->ready(outlet->arg);
}

static void outlet_on_begin(evutil_socket_t fd, short what, void *arg)
{
	struct outlet *outlet = arg;
	struct log_context ctx = { .stream = outlet->env->unit };
	char err[256];

	outlet->source = source_open(outlet->source_conf, outlet->env, outlet_on_ready, outlet, err, sizeof(err));
	if (outlet->source == NULL)
		log_write(LOG_ERR, &ctx, "stream %s: its source cannot start: %s", outlet->env->unit, err);
	conf_source_free(outlet->source_conf);
	outlet->source_conf = NULL;
	(void)fd;
	(void)what;
}

void outlet_close(struct outlet *outlet)
{
	if (outlet == NULL)
		return;
	if (outlet->begin != NULL)
		event_free(outlet->begin);
	conf_source_free(outlet->source_conf);
	source_close(outlet->source);
	pacer_free(outlet->pacer);
	if (outlet->netsim != NULL) {
		/* What the simulator holds back is queued too: it goes. */
		outlet->in_tick = true;
		netsim_flush(outlet->netsim);
		netsim_free(outlet->netsim);
	}
	sender_close(outlet->sender, outlet->env->chassis, OUTLET_LINGER_MS);
	free(outlet);
}

struct outlet *outlet_open(const struct unit_env *env, const struct outlet_hooks *hooks, void *arg)
{
	const struct conf_stream *conf = env->stream;
	struct outlet *outlet = calloc(1, sizeof(*outlet));
	struct log_context ctx = { .stream = env->unit };
	char err[256] = "out of memory";
	struct timeval now = { 0, 0 };

	if (outlet == NULL)
		return NULL;
	outlet->env = env;
	outlet->hooks = hooks;
	outlet->arg = arg;
	outlet->pacer = pacer_new(env->base, true, outlet_on_pacer, outlet);
	outlet->sender = outlet->pacer ? sender_open(env->base, conf, env->unit, err, sizeof(err)) : NULL;
	if (outlet->sender != NULL && conf->netsim.enabled &&
	    (outlet->netsim = netsim_new(env->base, &conf->netsim, outlet_deliver, outlet)) == NULL)
		snprintf(err, sizeof(err), "out of memory");
	if (outlet->sender != NULL && (outlet->netsim != NULL || !conf->netsim.enabled) &&
	    conf->source.kind == SOURCE_NONE) {
		outlet->sourceless = true;
		return outlet;
	}
	if (outlet->sender != NULL && (outlet->netsim != NULL || !conf->netsim.enabled)) {
		outlet->source_conf = conf_source_copy(&conf->source);
		outlet->begin = evtimer_new(env->base, outlet_on_begin, outlet);
	}
	if (outlet->source_conf == NULL || outlet->begin == NULL) {
		log_write(LOG_ERR, &ctx, "stream %s: %s", env->unit, err);
		outlet_close(outlet);
		return NULL;
	}
	/* The source opens files and starts programs: at the daemon's start
	 * that must wait for the loop, which runs after privileges are
	 * dropped, or a program would run as root. */
	evtimer_add(outlet->begin, &now);
	return outlet;
}

struct source *outlet_source(const struct outlet *outlet)
{
	return outlet->source;
}

struct pacer *outlet_pacer(const struct outlet *outlet)
{
	return outlet->pacer;
}

void outlet_begin(struct outlet *outlet)
{
	outlet->in_tick = true;
}

void outlet_emit(struct outlet *outlet, const void *data, size_t len)
{
	outlet->datagrams++;
	outlet->bytes += len;
	if (outlet->netsim != NULL)
		netsim_push(outlet->netsim, data, len, NULL, 0);
	else
		outlet_deliver(outlet, data, len, NULL, 0);
}

void outlet_end(struct outlet *outlet)
{
	sender_flush(outlet->sender);
	outlet->in_tick = false;
}

bool outlet_can_take(const struct outlet *outlet)
{
	return sender_can_take(outlet->sender);
}

void outlet_count_discontinuity(struct outlet *outlet)
{
	outlet->discontinuities++;
}

void outlet_status(const struct outlet *outlet, uint64_t late, char *buf, size_t len)
{
	const struct sender_counters *s = sender_counters(outlet->sender);

	snprintf(buf, len,
		 "datagrams=%" PRIu64 " bytes=%" PRIu64 " sent=%" PRIu64 " sent_bytes=%" PRIu64 " blocked=%" PRIu64
		 " dropped_queue_full=%" PRIu64 " dropped_error=%" PRIu64 " late=%" PRIu64 " discontinuities=%" PRIu64,
		 outlet->datagrams, outlet->bytes, s->datagrams, s->bytes, s->blocked, s->dropped_queue_full,
		 s->dropped_error, late, outlet->discontinuities);
}

void outlet_status_rows(const struct outlet *outlet, char *buf, size_t len)
{
	const struct source_counters *c;
	size_t used;

	buf[0] = '\0';
	if (outlet->source == NULL)
		return;
	c = source_counters(outlet->source);
	used = (size_t)snprintf(buf, len,
				"source - bytes=%" PRIu64 " datagrams=%" PRIu64 " restarts=%" PRIu64
				" failures=%" PRIu64 " dropped=%" PRIu64 "\n",
				c->bytes, c->datagrams, c->restarts, c->failures, c->dropped);
	if (outlet->netsim != NULL && used < len) {
		const struct netsim_counters *n = netsim_counters(outlet->netsim);
		snprintf(buf + used, len - used,
			 "netsim - in=%" PRIu64 " out=%" PRIu64 " lost=%" PRIu64 " duplicated=%" PRIu64
			 " reordered=%" PRIu64 " delayed=%" PRIu64 " corrupted=%" PRIu64 " overflow=%" PRIu64 "\n",
			 n->in, n->out, n->lost, n->duplicated, n->reordered, n->delayed, n->corrupted, n->overflow);
	}
}

/* The stream's own state, beside its source's. */
static const char *outlet_state(const struct outlet *outlet)
{
	if (source_ended(outlet->source) && evbuffer_get_length(source_buffer(outlet->source)) == 0)
		return "ended";
	if (!sender_can_take(outlet->sender))
		return "blocked";
	return outlet->datagrams == 0 ? "waiting" : "sending";
}

void outlet_status_text(const struct outlet *outlet, char *buf, size_t len)
{
	const char *title;
	char escaped[512];

	if (outlet->sourceless) {
		snprintf(buf, len, "state %s\n", !sender_can_take(outlet->sender) ? "blocked"
						 : outlet->datagrams == 0	  ? "waiting"
										  : "sending");
		return;
	}
	if (outlet->source == NULL) {
		const char *what = outlet->begin != NULL && outlet->source_conf ? "starting" : "failed";
		snprintf(buf, len, "state %s\nsource_state %s\n", what, what);
		return;
	}
	/* The title of what plays: none while the source is away. */
	title = strcmp(source_state(outlet->source), "connected") == 0 ? source_title(outlet->source) : NULL;
	if (title != NULL)
		text_escape_utf8(title, strlen(title), escaped, sizeof(escaped));
	snprintf(buf, len, "state %s\nsource_state %s\n%s%s%s", outlet_state(outlet), source_state(outlet->source),
		 title ? "title " : "", title ? escaped : "", title ? "\n" : "");
}
