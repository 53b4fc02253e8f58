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
#include "daemon/pacer.h"
#include "daemon/protocol.h"
#include "protocols/support/framing.h"
#include "protocols/support/outlet.h"
#include "sources/source.h"

/* A late wakeup sends at most this many datagrams at once; the rest of
 * the debt is forgiven (counted as late), not burst at the receiver. */
#define UDP_BURST_DATAGRAMS 4
/* Unpaced, a tick sends this many and lets the loop breathe. */
#define UDP_UNPACED_PER_TICK 64
/* Unpaced and the socket full: look again after this long. */
#define UDP_BLOCKED_RETRY_NS (1000 * 1000)
#define UDP_DATAGRAM_MAX 65535
/* Bytes short of a whole packet that have waited this long for more go as
 * a short datagram: a source that cannot keep up (a slow origin, a
 * program that paused) sends what it has. */
#define UDP_PARTIAL_WAIT_NS (200ull * 1000 * 1000)

struct udp_stream {
	struct outlet *outlet;
	struct source *source;		/* the outlet's, once it has one */
	struct pacer *pacer;
	struct pace pace;
	size_t packet_size;
	bool send_partial;		/* the partial packet has waited enough */
	bool waiting_for_more;		/* the pacer is set for a partial packet */
	size_t partial_len;		/* a partial packet's length when first seen */
	uint64_t partial_since_ns;
	unsigned char packet[UDP_DATAGRAM_MAX + 2];
};

/* The state of a udp listener, which keeps none. */
static const char udp_listener_state;

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
		outlet_emit(st->outlet, st->packet + 2, len - 2);
		return;
	}
	len = packetise_next(buf, st->packet_size, source_ended(st->source) || st->send_partial, st->packet);
	st->send_partial = false;
	st->partial_len = 0;
	outlet_emit(st->outlet, st->packet, len);
}

/* Payload bytes of the next datagram, what the rate is counted in. */
static size_t udp_payload(const struct udp_stream *st, size_t len)
{
	return source_datagrams(st->source) ? len - 2 : len;
}

/* Sends what the rate allows now; false when nothing more may go. */
static bool udp_send_one(struct udp_stream *st, uint64_t *allowance, unsigned sent)
{
	size_t len = udp_next_length(st), units;

	if (len == 0 || !outlet_can_take(st->outlet))
		return false;
	units = udp_payload(st, len);
	/* A datagram larger than a burst goes once a burst is owed, taking
	 * the rest as debt; otherwise it would wait for ever. */
	if (st->pace.rate != 0 && units > *allowance && *allowance < st->pace.burst)
		return false;
	if (st->pace.rate == 0 && sent == UDP_UNPACED_PER_TICK)
		return false;
	if (source_take_discontinuity(st->source))
		outlet_count_discontinuity(st->outlet);
	udp_take(st, len);
	pace_sent(&st->pace, units);
	if (st->pace.rate != 0)
		*allowance -= units < *allowance ? units : *allowance;
	return true;
}

static void udp_tick(void *arg, uint64_t now)
{
	struct udp_stream *st = arg;
	uint64_t allowance = pace_allowance(&st->pace, now);
	unsigned sent = 0;
	size_t len;

	st->source = outlet_source(st->outlet);
	if (st->source == NULL)
		return;
	st->waiting_for_more = false;
	outlet_begin(st->outlet);
	while (udp_send_one(st, &allowance, sent))
		sent++;
	outlet_end(st->outlet);
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
	if (!outlet_can_take(st->outlet))
		pacer_at(st->pacer, now + UDP_BLOCKED_RETRY_NS);
	else
		pacer_at(st->pacer, pace_deadline(&st->pace, udp_payload(st, len)));
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

static const struct outlet_hooks udp_outlet_hooks = {
	.tick = udp_tick,
	.ready = udp_on_source_ready,
};

static void *udp_start(const void *settings, const struct unit_env *env)
{
	const struct conf_stream *conf = env->stream;
	struct udp_stream *st;

	if (conf == NULL)
		return (void *)&udp_listener_state;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->packet_size = conf->packet_size;
	pace_start(&st->pace, conf->rate / 8, (uint64_t)UDP_BURST_DATAGRAMS * conf->packet_size, pacer_now_ns());
	st->outlet = outlet_open(env, &udp_outlet_hooks, st);
	if (st->outlet == NULL) {
		free(st);
		return NULL;
	}
	st->pacer = outlet_pacer(st->outlet);
	(void)settings;
	return st;
}

static bool udp_is_stream(const void *state)
{
	return state != &udp_listener_state;
}

static void udp_stop(void *state)
{
	struct udp_stream *st = state;

	if (!udp_is_stream(state))
		return;
	outlet_close(st->outlet);
	free(st);
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

	buf[0] = '\0';
	if (udp_is_stream(state))
		outlet_status(st->outlet, st->pace.late, buf, len);
}

static void udp_status_rows(const void *state, char *buf, size_t len)
{
	const struct udp_stream *st = state;

	buf[0] = '\0';
	if (udp_is_stream(state))
		outlet_status_rows(st->outlet, buf, len);
}

static void udp_status_text(const void *state, char *buf, size_t len)
{
	const struct udp_stream *st = state;

	buf[0] = '\0';
	if (udp_is_stream(state))
		outlet_status_text(st->outlet, buf, len);
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
