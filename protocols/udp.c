/* udp: raw datagrams. As a stream, the bytes of its source cut into
 * packet-size datagrams (7 x 188 for MPEG-TS, the way IPTV is multicast
 * to VLC, ffmpeg and set-top boxes), paced at the stream's rate, through
 * the fault simulator, to every destination: Kamaelia's Packetise ->
 * BrokenNetwork -> Multicast_sender, without its blocking socket, fixed
 * TTL, default interface and unbounded queue. A listener source's
 * datagrams go on whole. As a udp or multicast listener it only receives,
 * for a stream whose source names it. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/text.h"
#include "daemon/log.h"
#include "daemon/netsim.h"
#include "daemon/pacer.h"
#include "daemon/protocol.h"
#include "daemon/sender.h"
#include "protocols/support/framing.h"
#include "sources/source.h"

/* A late wakeup sends at most this many datagrams at once; the rest of
 * the debt is forgiven (counted as late), not burst at the receiver. */
#define UDP_BURST_DATAGRAMS 4
/* Unpaced, a tick sends this many and lets the loop breathe. */
#define UDP_UNPACED_PER_TICK 64
/* Unpaced and the socket full: look again after this long. */
#define UDP_BLOCKED_RETRY_NS (1000 * 1000)
/* What a stopping stream may take to send its queue. */
#define UDP_LINGER_MS 1000
#define UDP_DATAGRAM_MAX 65535
/* Bytes short of a whole packet that have waited this long for more go as
 * a short datagram: a source that cannot keep up (a slow origin, a
 * program that paused) sends what it has. */
#define UDP_PARTIAL_WAIT_NS (200ull * 1000 * 1000)

struct udp_stream {
	const struct unit_env *env;
	struct source *source;		/* NULL until the loop runs */
	struct conf_source *source_conf;	/* what to open it with, till then */
	struct event *begin;
	struct sender *sender;
	struct netsim *netsim;
	struct pacer *pacer;
	struct pace pace;
	size_t packet_size;
	bool in_tick;
	bool send_partial;		/* the partial packet has waited enough */
	bool waiting_for_more;		/* the pacer is set for a partial packet */
	size_t partial_len;		/* a partial packet's length when first seen */
	uint64_t partial_since_ns;
	uint64_t datagrams, bytes, discontinuities;
	unsigned char packet[UDP_DATAGRAM_MAX + 2];
};

/* The state of a udp listener, which keeps none. */
static const char udp_listener_state;

static void udp_deliver(void *arg, const void *data, size_t len, const void *meta, size_t meta_len)
{
	struct udp_stream *st = arg;

	sender_add(st->sender, data, len);
	/* From a netsim timer: no tick will flush it. */
	if (!st->in_tick)
		sender_flush(st->sender);
	(void)meta;
	(void)meta_len;
}

static void udp_emit(struct udp_stream *st, const void *data, size_t len)
{
	st->datagrams++;
	st->bytes += len;
	if (st->netsim != NULL)
		netsim_push(st->netsim, data, len, NULL, 0);
	else
		udp_deliver(st, data, len, NULL, 0);
}

/* The length of the next datagram the source can give now; 0 when it has
 * not enough yet. A file's last bytes go as a short datagram. */
static size_t udp_next_length(struct udp_stream *st)
{
	struct evbuffer *buf = source_buffer(st->source);
	size_t have = evbuffer_get_length(buf);
	unsigned char prefix[2];

	if (source_datagrams(st->source)) {
		if (have < 2 || evbuffer_copyout(buf, prefix, 2) != 2)
			return 0;
		return have >= 2u + ((size_t)prefix[0] << 8 | prefix[1]) ? 2u + ((size_t)prefix[0] << 8 | prefix[1]) : 0;
	}
	if (have >= st->packet_size)
		return st->packet_size;
	return source_ended(st->source) || st->send_partial ? have : 0;
}

/* Whether a partial packet has waited long enough to go; when not, when
 * to look again (0: nothing waits). */
static uint64_t udp_partial_due(struct udp_stream *st, uint64_t now)
{
	size_t have = evbuffer_get_length(source_buffer(st->source));

	st->send_partial = false;
	if (have == 0 || source_datagrams(st->source)) {
		st->partial_len = 0;
		return 0;
	}
	if (have != st->partial_len) {
		st->partial_len = have;
		st->partial_since_ns = now;
	}
	if (now - st->partial_since_ns >= UDP_PARTIAL_WAIT_NS) {
		st->send_partial = true;
		return now;
	}
	return st->partial_since_ns + UDP_PARTIAL_WAIT_NS;
}

static void udp_take(struct udp_stream *st, size_t len)
{
	struct evbuffer *buf = source_buffer(st->source);

	if (source_datagrams(st->source)) {
		evbuffer_remove(buf, st->packet, len);
		udp_emit(st, st->packet + 2, len - 2);
		return;
	}
	len = packetise_next(buf, st->packet_size, source_ended(st->source) || st->send_partial, st->packet);
	st->send_partial = false;
	st->partial_len = 0;
	udp_emit(st, st->packet, len);
}

/* Payload bytes of the next datagram, what the rate is counted in. */
static size_t udp_payload(const struct udp_stream *st, size_t len)
{
	return source_datagrams(st->source) ? len - 2 : len;
}

static void udp_tick(struct udp_stream *st, uint64_t now)
{
	uint64_t allowance = pace_allowance(&st->pace, now);
	unsigned sent = 0;
	size_t len;

	st->in_tick = true;
	st->waiting_for_more = false;
	while ((len = udp_next_length(st)) > 0 && sender_can_take(st->sender)) {
		size_t units = udp_payload(st, len);

		/* A datagram larger than a burst goes once a burst is owed,
		 * taking the rest as debt; otherwise it would wait for ever. */
		if (st->pace.rate != 0 && units > allowance && allowance < st->pace.burst)
			break;
		if (st->pace.rate == 0 && sent == UDP_UNPACED_PER_TICK)
			break;
		if (source_take_discontinuity(st->source))
			st->discontinuities++;
		udp_take(st, len);
		pace_sent(&st->pace, units);
		allowance -= st->pace.rate != 0 ? (units < allowance ? units : allowance) : 0;
		sent++;
	}
	sender_flush(st->sender);
	st->in_tick = false;
	source_taken(st->source);
	len = udp_next_length(st);
	if (len == 0) {
		uint64_t due = udp_partial_due(st, now);
		/* Otherwise the source's ready() calls again. */
		if (due != 0) {
			pacer_at(st->pacer, due);
			st->waiting_for_more = true;
		}
		return;
	}
	if (!sender_can_take(st->sender))
		pacer_at(st->pacer, now + UDP_BLOCKED_RETRY_NS);
	else
		pacer_at(st->pacer, pace_deadline(&st->pace, udp_payload(st, len)));
}

static void udp_on_pacer(void *arg, uint64_t now_ns)
{
	udp_tick(arg, now_ns);
}

/* New bytes in an empty source, or the source ended: unless a deadline is
 * already set, see what may go now. */
static void udp_on_source_ready(void *arg)
{
	struct udp_stream *st = arg;

	/* A deadline set only to wait for more bytes is not a rate's. */
	if (!pacer_armed(st->pacer) || st->waiting_for_more)
		udp_tick(st, pacer_now_ns());
}

static void udp_on_begin(evutil_socket_t fd, short what, void *arg)
{
	struct udp_stream *st = arg;
	struct log_context ctx = { .stream = st->env->unit, .protocol = "udp" };
	char err[256];

	st->source = source_open(st->source_conf, st->env, udp_on_source_ready, st, err, sizeof(err));
	if (st->source == NULL)
		log_write(LOG_ERR, &ctx, "stream %s: its source cannot start: %s", st->env->unit, err);
	conf_source_free(st->source_conf);
	st->source_conf = NULL;
	(void)fd;
	(void)what;
}

static void udp_stream_free(struct udp_stream *st)
{
	if (st->begin != NULL)
		event_free(st->begin);
	conf_source_free(st->source_conf);
	source_close(st->source);
	pacer_free(st->pacer);
	if (st->netsim != NULL) {
		/* What the simulator holds back is queued too: it goes. */
		st->in_tick = true;
		netsim_flush(st->netsim);
		netsim_free(st->netsim);
	}
	sender_close(st->sender, st->env->chassis, UDP_LINGER_MS);
	free(st);
}

static void *udp_start(const void *settings, const struct unit_env *env)
{
	const struct conf_stream *conf = env->stream;
	struct udp_stream *st;
	struct log_context ctx = { .stream = env->unit, .protocol = "udp" };
	char err[256] = "out of memory";
	struct timeval now = { 0, 0 };

	if (conf == NULL)
		return (void *)&udp_listener_state;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->env = env;
	st->packet_size = conf->packet_size;
	pace_start(&st->pace, conf->rate / 8, (uint64_t)UDP_BURST_DATAGRAMS * conf->packet_size, pacer_now_ns());
	st->pacer = pacer_new(env->base, true, udp_on_pacer, st);
	st->sender = st->pacer ? sender_open(env->base, conf, env->unit, err, sizeof(err)) : NULL;
	if (st->sender != NULL && conf->netsim.enabled &&
	    (st->netsim = netsim_new(env->base, &conf->netsim, udp_deliver, st)) == NULL)
		snprintf(err, sizeof(err), "out of memory");
	if (st->sender != NULL && (st->netsim != NULL || !conf->netsim.enabled)) {
		st->source_conf = conf_source_copy(&conf->source);
		st->begin = evtimer_new(env->base, udp_on_begin, st);
	}
	if (st->source_conf == NULL || st->begin == NULL) {
		log_write(LOG_ERR, &ctx, "stream %s: %s", env->unit, err);
		udp_stream_free(st);
		return NULL;
	}
	/* The source opens files and starts programs: at the daemon's start
	 * that must wait for the loop, which runs after privileges are
	 * dropped, or a program would run as root. */
	evtimer_add(st->begin, &now);
	(void)settings;
	return st;
}

static bool udp_is_stream(const void *state)
{
	return state != &udp_listener_state;
}

static void udp_stop(void *state)
{
	if (udp_is_stream(state))
		udp_stream_free(state);
}

/* udp has no settings of its own: what the chassis compares is all. */
static bool udp_same(const void *old_settings, const void *new_settings)
{
	(void)old_settings;
	(void)new_settings;
	return true;
}

static void udp_status(const void *state, char *buf, size_t len)
{
	const struct udp_stream *st = state;
	const struct sender_counters *s;

	buf[0] = '\0';
	if (!udp_is_stream(state))
		return;
	s = sender_counters(st->sender);
	snprintf(buf, len,
		 "datagrams=%" PRIu64 " bytes=%" PRIu64 " sent=%" PRIu64 " sent_bytes=%" PRIu64 " blocked=%" PRIu64
		 " dropped_queue_full=%" PRIu64 " dropped_error=%" PRIu64 " late=%" PRIu64 " discontinuities=%" PRIu64,
		 st->datagrams, st->bytes, s->datagrams, s->bytes, s->blocked, s->dropped_queue_full,
		 s->dropped_error, st->pace.late, st->discontinuities);
}

static void udp_status_rows(const void *state, char *buf, size_t len)
{
	const struct udp_stream *st = state;
	const struct source_counters *c;
	size_t used;

	buf[0] = '\0';
	if (!udp_is_stream(state))
		return;
	if (st->source == NULL)
		return;
	c = source_counters(st->source);
	used = (size_t)snprintf(buf, len,
				"source - bytes=%" PRIu64 " datagrams=%" PRIu64 " restarts=%" PRIu64
				" failures=%" PRIu64 " dropped=%" PRIu64 "\n",
				c->bytes, c->datagrams, c->restarts, c->failures, c->dropped);
	if (st->netsim != NULL && used < len) {
		const struct netsim_counters *n = netsim_counters(st->netsim);
		snprintf(buf + used, len - used,
			 "netsim - in=%" PRIu64 " out=%" PRIu64 " lost=%" PRIu64 " duplicated=%" PRIu64
			 " reordered=%" PRIu64 " delayed=%" PRIu64 " corrupted=%" PRIu64 " overflow=%" PRIu64 "\n",
			 n->in, n->out, n->lost, n->duplicated, n->reordered, n->delayed, n->corrupted, n->overflow);
	}
}

/* The stream's own state, beside its source's. */
static const char *udp_state(const struct udp_stream *st)
{
	if (source_ended(st->source) && evbuffer_get_length(source_buffer(st->source)) == 0)
		return "ended";
	if (!sender_can_take(st->sender))
		return "blocked";
	return st->datagrams == 0 ? "waiting" : "sending";
}

/* Words for a status page: the stream's state, its source's and the ICY
 * title. */
static void udp_status_text(const void *state, char *buf, size_t len)
{
	const struct udp_stream *st = state;
	const char *title;
	char escaped[512];

	buf[0] = '\0';
	if (!udp_is_stream(state))
		return;
	if (st->source == NULL) {
		const char *what = st->begin != NULL && st->source_conf ? "starting" : "failed";
		snprintf(buf, len, "state %s\nsource_state %s\n", what, what);
		return;
	}
	/* The title of what plays: none while the source is away. */
	title = strcmp(source_state(st->source), "connected") == 0 ? source_title(st->source) : NULL;
	if (title != NULL)
		text_escape_utf8(title, strlen(title), escaped, sizeof(escaped));
	snprintf(buf, len, "state %s\nsource_state %s\n%s%s%s", udp_state(st), source_state(st->source),
		 title ? "title " : "",
		 title ? escaped : "", title ? "\n" : "");
}

/* A udp listener only receives: a stream whose source names it sends on
 * what comes in (the chassis hands it over before this hook). */
static void udp_datagram(struct datagram *dgram)
{
	(void)dgram;
}

/* No options of its own: a "udp { }" section may be written, empty. */
static cfg_opt_t udp_options[] = {
	CFG_END()
};

const struct protocol protocol_udp = {
	.config = {
		.name = "udp",
		.options = udp_options,
		.transports = TRANSPORT_BIT(TRANSPORT_UDP) | TRANSPORT_BIT(TRANSPORT_MULTICAST) | UNIT_STREAM_BIT,
	},
	.start = udp_start,
	.stop = udp_stop,
	.same = udp_same,
	.status = udp_status,
	.status_rows = udp_status_rows,
	.status_text = udp_status_text,
	.datagram = udp_datagram,
};
