#include "daemon/service.h"

#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/tls.h"
#include "daemon/netsim.h"
#include "daemon/protocol.h"
#include "systemd/notify.h"

/* Time systemd is asked for before each protocol start() hook. */
#define PROTOCOL_START_TIMEOUT_USEC (30ull * 1000000)

struct generation *generation_new(struct conf *conf, unsigned number)
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

void generation_release(struct generation *gen)
{
	if (gen != NULL && --gen->refs == 0) {
		conf_free(gen->conf);
		free(gen);
	}
}

/* ---- instances ---- */

static void instance_free(struct instance *in)
{
	if (in->protocol->stop != NULL && in->state != NULL)
		in->protocol->stop(in->state);
	free(in->unit);
	free(in);
}

static void instance_release_if_unused(struct instance *in)
{
	if (in->refs == 0 && in->outbound.n_conns == 0)
		instance_free(in);
}

static void instance_outbound_closed(struct conn_owner *owner, struct conn *conn, enum conn_end end)
{
	struct instance *in = (struct instance *)((char *)owner - offsetof(struct instance, outbound));

	instance_release_if_unused(in);
	(void)conn;
	(void)end;
}

/* Outbound connections start with the unit's current limits (a stream's:
 * the defaults). */
static void instance_set_limits(struct instance *in, const struct conf_listener *conf)
{
	in->outbound_profile.buffer_size = conf ? conf->buffer_size : CONF_DEFAULT_BUFFER_SIZE;
	in->outbound_profile.idle_ms = (conf ? conf->idle_timeout : CONF_DEFAULT_IDLE_TIMEOUT) * 1000u;
}

static struct instance *instance_start(struct chassis *chassis, const struct conf_unit *unit,
				       const struct conf_listener *conf, const struct conf_stream *stream)
{
	const struct protocol *protocol = protocol_of(unit->module);
	struct instance *in = calloc(1, sizeof(*in));

	if (in == NULL || (in->unit = strdup(unit->name)) == NULL) {
		free(in);
		return NULL;
	}
	in->protocol = protocol;
	conn_owner_init(&in->outbound, chassis, instance_outbound_closed);
	in->outbound_profile = (struct conn_profile){
		.unit = in->unit,
		.protocol = protocol->config.name,
		.transport = transport_name(TRANSPORT_TCP),
	};
	instance_set_limits(in, conf);
	in->env = (struct unit_env){
		.base = chassis->base,
		.unit = in->unit,
		.chassis = chassis,
		.outbound = &in->outbound,
		.outbound_profile = &in->outbound_profile,
		.stream = stream,
		.listener = conf,
	};
	if (protocol->start != NULL) {
		/* A start may hash files or spawn programs: ask systemd for time. */
		notify_extend_timeout(PROTOCOL_START_TIMEOUT_USEC);
		in->state = protocol->start(unit->settings, &in->env);
		in->env.stream = NULL;
		in->env.listener = NULL;
		if (in->state == NULL) {
			free(in->unit);
			free(in);
			return NULL;
		}
	}
	in->outbound_profile.state = in->state;
	return in;
}

/* The running instance, when the module says the new settings need no
 * restart. */
static struct instance *instance_handed_on(const struct service *previous, const struct conf_listener *conf)
{
	struct instance *in;

	if (previous == NULL || previous->conf->unit.module != conf->unit.module)
		return NULL;
	in = previous->instance;
	if (in->protocol->same == NULL || !in->protocol->same(previous->conf->unit.settings, conf->unit.settings))
		return NULL;
	instance_set_limits(in, conf);
	return in;
}

/* ---- services ---- */

static void service_profiles(struct service *svc, struct chassis *chassis)
{
	const struct conf_listener *conf = svc->conf;
	const struct protocol *protocol = svc->instance->protocol;

	svc->profile = (struct conn_profile){
		.hooks = &protocol->conn,
		.settings = conf->unit.settings,
		.tls = conf->tls != NULL ? conf->tls->context : NULL,
		.state = svc->instance->state,
		.buffer_size = conf->buffer_size,
		.idle_ms = conf->idle_timeout * 1000u,
		.connection_log = conf->connection_log,
		.unit = conf->unit.name,
		.protocol = conf->unit.module->name,
		.transport = transport_name(conf->transport),
		.owner_ref = svc,
	};
	svc->datagram = (struct datagram_profile){
		.datagram = protocol->datagram,
		.socket_waiting = protocol->socket_waiting,
		.settings = conf->unit.settings,
		.state = svc->instance->state,
		.access = conf,
		.unit = conf->unit.name,
		.protocol = conf->unit.module->name,
		.transport = transport_name(conf->transport),
		.chassis = chassis,
		.module_feeds_taps = protocol->taps_get_payload,
	};
	if (conf->transport != TRANSPORT_TCP && conf->netsim.enabled)
		svc->datagram.netsim = datagram_netsim_new(chassis->base, &conf->netsim);
}

/* svc runs `in` (handed on, or just started) in gen; NULL (svc freed)
 * when the module could not start. */
static struct service *service_attach(struct service *svc, struct instance *in, struct generation *gen)
{
	if (in == NULL) {
		free(svc);
		return NULL;
	}
	svc->instance = in;
	in->refs++;
	svc->refs = 1;
	svc->generation = gen;
	gen->refs++;
	return svc;
}

struct service *service_new(struct chassis *chassis, struct generation *gen, const struct conf_listener *conf,
			    const struct service *previous)
{
	struct service *svc = calloc(1, sizeof(*svc));
	struct instance *in;

	if (svc == NULL)
		return NULL;
	in = instance_handed_on(previous, conf);
	if (in == NULL)
		in = instance_start(chassis, &conf->unit, conf, NULL);
	if (service_attach(svc, in, gen) == NULL)
		return NULL;
	svc->conf = conf;
	service_profiles(svc, chassis);
	return svc;
}

/* A stream is handed on when nothing the chassis runs it with changed and
 * its module says its own settings need no restart either. */
static struct instance *stream_instance_handed_on(const struct service *previous, const struct conf_stream *conf)
{
	struct instance *in;

	if (previous == NULL || !conf_stream_same(previous->stream, conf))
		return NULL;
	in = previous->instance;
	if (in->protocol->same == NULL || !in->protocol->same(previous->stream->unit.settings, conf->unit.settings))
		return NULL;
	return in;
}

struct service *service_new_stream(struct chassis *chassis, struct generation *gen, const struct conf_stream *conf,
				   const struct service *previous)
{
	struct service *svc = calloc(1, sizeof(*svc));
	struct instance *in;

	if (svc == NULL)
		return NULL;
	in = stream_instance_handed_on(previous, conf);
	if (in == NULL)
		in = instance_start(chassis, &conf->unit, NULL, conf);
	if (service_attach(svc, in, gen) == NULL)
		return NULL;
	svc->stream = conf;
	return svc;
}

bool service_kept_instance(const struct service *svc, const struct service *previous)
{
	return previous != NULL && svc->instance == previous->instance;
}

void service_reloaded(const struct service *svc)
{
	const struct instance *in = svc->instance;

	if (in->state != NULL && in->protocol->reloaded != NULL)
		in->protocol->reloaded(in->state, svc->stream->unit.settings);
}

void service_ref(struct service *svc)
{
	svc->refs++;
}

void service_release(struct service *svc)
{
	if (svc == NULL || --svc->refs > 0)
		return;
	svc->instance->refs--;
	instance_release_if_unused(svc->instance);
	/* What it still holds back is dropped with it: the port it would
	 * go to may be gone. */
	if (svc->datagram.netsim != NULL)
		netsim_free(svc->datagram.netsim);
	generation_release(svc->generation);
	free(svc);
}

void service_module_text(const struct service *svc, char *text, size_t text_len)
{
	const struct instance *in = svc->instance;

	text[0] = '\0';
	if (in->state != NULL && in->protocol->status_text != NULL)
		in->protocol->status_text(in->state, text, text_len);
}

void service_module_status(const struct service *svc, char *counters, size_t counters_len, char *rows,
			   size_t rows_len)
{
	const struct instance *in = svc->instance;

	counters[0] = '\0';
	rows[0] = '\0';
	if (in->state == NULL)
		return;
	if (in->protocol->status != NULL)
		in->protocol->status(in->state, counters, counters_len);
	if (in->protocol->status_rows != NULL)
		in->protocol->status_rows(in->state, rows, rows_len);
}
