/* srm, the sender: a stream sends its source as one object of DATA
 * datagrams at the stream's rate, then END; keeps each in the transmit
 * window (window.c); listens on the group for NAKs and answers with REPAIR
 * once per hold-off, or GONE for what left the window; says its window
 * edges in a HEARTBEAT when idle. Wire format: wire.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "daemon/pacer.h"
#include "daemon/protocol.h"
#include "protocols/srm/sender.h"
#include "protocols/srm/common.h"
#include "protocols/srm/window.h"
#include "protocols/srm/wire.h"
#include "protocols/support/framing.h"
#include "protocols/support/outlet.h"
#include "sources/source.h"

/* Datagrams one tick sends at most, and one wakeup of the NAK socket reads. */
#define SRM_BURST 16
#define SRM_READ_BURST 256
/* Subnets of the stream's interface kept for the NAK source check. */
#define SRM_LINK_NETS 8

/* An IPv4 subnet, host byte order. */
struct srm_net {
	uint32_t addr, mask;
};

struct srm_sender {
	struct outlet *outlet;
	struct source *source;
	struct pacer *pacer;
	struct pace pace;
	const char *unit;
	uint32_t session;
	struct srm_window *window;
	int nak_fd;
	struct event *nak_event, *heartbeat_timer;
	uint64_t hold_off_ns, heartbeat_ns, last_send_ns;
	size_t payload_size;
	uint32_t object;		/* the one being sent */
	uint64_t offset;		/* bytes of it sent */
	uint32_t crc;
	bool ended;			/* its END went */
	bool kamaelia;
	struct evbuffer *chunks;	/* kamaelia: the escaped byte stream not yet sent */
	long long frames;		/* kamaelia: the last frame's number */
	struct srm_net link_nets[SRM_LINK_NETS];	/* none: NAKs from anywhere */
	size_t n_link_nets;
	uint64_t sent, repaired, naks_received, gone_sent, heartbeats, bad, foreign, naks_off_path;
	uint8_t packet[SRM_DATAGRAM_MAX], repair[SRM_DATAGRAM_MAX];
};

static void srm_send_sequenced(struct srm_sender *st, struct srm_header *h)
{
	size_t len;

	h->session = st->session;
	h->sequence = srm_window_leading(st->window);
	len = srm_write(st->packet, sizeof(st->packet), h);
	if (len == 0)
		return;
	srm_window_keep(st->window, st->packet, len);
	outlet_emit(st->outlet, st->packet, len);
	pace_sent(&st->pace, len);
	st->sent++;
}

static bool srm_send_data(struct srm_sender *st)
{
	struct evbuffer *in = source_buffer(st->source);
	size_t have = evbuffer_get_length(in), n = have < st->payload_size ? have : st->payload_size;
	struct srm_header h = { .type = SRM_DATA, .object = st->object, .offset = st->offset };

	if (n == 0 || (n < st->payload_size && !source_ended(st->source)))
		return false;
	evbuffer_remove(in, st->packet + SRM_HEADER_SIZE, n);
	h.payload = st->packet + SRM_HEADER_SIZE;
	h.payload_len = n;
	st->crc = srm_crc32c(st->crc, h.payload, n);
	st->offset += n;
	srm_send_sequenced(st, &h);
	return true;
}

static void srm_send_end(struct srm_sender *st)
{
	struct srm_end end = { .size = st->offset, .crc = st->crc };
	struct srm_header h = { .type = SRM_END, .flags = SRM_FLAG_LAST, .object = st->object };

	h.payload = st->packet + SRM_HEADER_SIZE;
	h.payload_len = srm_write_end(st->packet + SRM_HEADER_SIZE, sizeof(st->packet) - SRM_HEADER_SIZE, &end);
	srm_send_sequenced(st, &h);
	st->ended = true;
	srm_log(st->unit, NULL, LOG_INFO, "end", st->session,
		st->object);
}

/* A queued repair: the kept datagram again, as a REPAIR of it. */
static bool srm_send_repair(struct srm_sender *st, uint64_t now)
{
	uint32_t seq;
	size_t len;
	const uint8_t *kept;
	struct srm_header h;

	if (!srm_window_next_repair(st->window, now, &seq))
		return false;
	kept = srm_window_get(st->window, seq, &len);
	if (kept == NULL || srm_parse(kept, len, &h) != SRM_OK)
		return true;
	if (h.type == SRM_END)
		h.flags |= SRM_FLAG_END;
	h.type = SRM_REPAIR;
	len = srm_write(st->repair, sizeof(st->repair), &h);
	outlet_emit(st->outlet, st->repair, len);
	pace_sent(&st->pace, len);
	st->repaired++;
	return true;
}

/* kamaelia: the next packet-size frame of the source framed and escaped
 * onto the stream ("%d %d\n" + data behind the sync), whenever less than a
 * datagram of it is left. */
static void srm_kamaelia_frame(struct srm_sender *st)
{
	struct evbuffer *in = source_buffer(st->source), *frame;
	size_t have = evbuffer_get_length(in), n = have < st->payload_size ? have : st->payload_size;
	const void *data;

	if (n == 0 || (n < st->payload_size && !source_ended(st->source)) ||
	    evbuffer_get_length(st->chunks) >= st->payload_size)
		return;
	frame = evbuffer_new();
	data = evbuffer_pullup(in, (ssize_t)n);
	if (frame != NULL && frame_encode(frame, ++st->frames, data, n) == 0)
		chunk_encode(st->chunks, evbuffer_pullup(frame, -1), evbuffer_get_length(frame), NULL);
	evbuffer_drain(in, n);
	if (frame != NULL)
		evbuffer_free(frame);
	st->sent++;
}

static bool srm_kamaelia_send(struct srm_sender *st)
{
	bool last;
	size_t len;

	srm_kamaelia_frame(st);
	last = source_ended(st->source) && evbuffer_get_length(source_buffer(st->source)) == 0;
	len = packetise_next(st->chunks, st->payload_size, last, st->packet);
	if (len == 0)
		return false;
	outlet_emit(st->outlet, st->packet, len);
	pace_sent(&st->pace, len);
	return true;
}

/* Repairs first, then new data, both within the rate. */
static bool srm_send_one(struct srm_sender *st, uint64_t now)
{
	if (!outlet_can_take(st->outlet) || pace_allowance(&st->pace, now) < SRM_DATAGRAM_MAX / 8)
		return false;
	if (st->kamaelia)
		return srm_kamaelia_send(st);
	if (srm_send_repair(st, now))
		return true;
	if (st->ended)
		return false;
	if (srm_send_data(st))
		return true;
	if (source_ended(st->source) && evbuffer_get_length(source_buffer(st->source)) == 0) {
		srm_send_end(st);
		return true;
	}
	return false;
}

static void srm_sender_tick(void *arg, uint64_t now)
{
	struct srm_sender *st = arg;
	unsigned sent = 0;

	st->source = outlet_source(st->outlet);
	if (st->source == NULL)
		return;
	outlet_begin(st->outlet);
	while (sent < SRM_BURST && srm_send_one(st, now))
		sent++;
	outlet_end(st->outlet);
	source_taken(st->source);
	if (sent > 0)
		st->last_send_ns = now;
	if (sent == SRM_BURST || pace_allowance(&st->pace, now) < SRM_DATAGRAM_MAX / 8)
		pacer_at(st->pacer, pace_deadline(&st->pace, SRM_DATAGRAM_MAX / 8));
	else if (!outlet_can_take(st->outlet))
		pacer_at(st->pacer, now + SRM_NS_PER_MS);
}

static void srm_sender_ready(void *arg)
{
	struct srm_sender *st = arg;

	if (!pacer_armed(st->pacer))
		srm_sender_tick(st, pacer_now_ns());
}

static const struct outlet_hooks srm_outlet_hooks = {
	.tick = srm_sender_tick,
	.ready = srm_sender_ready,
};

/* GONE for what a NAK asked that left the window: small and rare, sent now. */
static void srm_send_gone(struct srm_sender *st, const struct srm_range *gone, size_t n)
{
	uint8_t body[SRM_MAX_RANGES * SRM_RANGE_SIZE];
	struct srm_header h = { .type = SRM_GONE, .session = st->session };
	size_t len;

	h.sequence = srm_window_leading(st->window);
	h.payload_len = srm_write_ranges(body, sizeof(body), gone, n);
	h.payload = body;
	len = srm_write(st->repair, sizeof(st->repair), &h);
	if (len == 0)
		return;
	outlet_begin(st->outlet);
	outlet_emit(st->outlet, st->repair, len);
	outlet_end(st->outlet);
	pace_sent(&st->pace, len);
	st->gone_sent++;
}

static void srm_sender_nak(struct srm_sender *st, const struct srm_header *h, uint64_t now)
{
	struct srm_range ranges[SRM_MAX_RANGES], gone[SRM_MAX_RANGES];
	size_t n = srm_read_ranges(h, ranges, SRM_MAX_RANGES), n_gone = 0;

	st->naks_received++;
	for (size_t i = 0; i < n; i++)
		srm_window_request(st->window, &ranges[i], now, gone, &n_gone, SRM_MAX_RANGES);
	if (n_gone > 0)
		srm_send_gone(st, gone, n_gone);
	if (!pacer_armed(st->pacer))
		pacer_at(st->pacer, now);
}

/* Whether a NAK's source is on the group's path: with no subnets known
 * (a ttl over 1, or no interface given) any is. */
static bool srm_on_path(const struct srm_sender *st, const struct sockaddr_in *from)
{
	uint32_t addr = ntohl(from->sin_addr.s_addr);

	if (st->n_link_nets == 0)
		return true;
	for (size_t i = 0; i < st->n_link_nets; i++)
		if ((addr & st->link_nets[i].mask) == (st->link_nets[i].addr & st->link_nets[i].mask))
			return true;
	return false;
}

static void srm_sender_on_nak_socket(evutil_socket_t fd, short what, void *arg)
{
	struct srm_sender *st = arg;
	uint8_t data[SRM_DATAGRAM_MAX];
	struct srm_header h;

	for (unsigned i = 0; i < SRM_READ_BURST; i++) {
		struct sockaddr_in from = { 0 };
		socklen_t from_len = sizeof(from);
		ssize_t n = recvfrom(fd, data, sizeof(data), 0, (struct sockaddr *)&from, &from_len);

		if (n < 0)
			break;
		if (srm_parse(data, (size_t)n, &h) != SRM_OK)
			st->bad++;
		else if (h.type != SRM_NAK)
			continue;	/* our own datagrams, looped back */
		else if (h.session != st->session)
			st->foreign++;
		else if (!srm_on_path(st, &from))
			st->naks_off_path++;
		else
			srm_sender_nak(st, &h, pacer_now_ns());
	}
	(void)what;
}

static void srm_sender_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct srm_sender *st = arg;
	uint64_t now = pacer_now_ns();
	uint8_t body[SRM_HEARTBEAT_BODY_SIZE];
	struct srm_heartbeat hb;
	struct srm_header h = { .type = SRM_HEARTBEAT, .session = st->session };
	size_t len;

	(void)fd;
	(void)what;
	if (now - st->last_send_ns < st->heartbeat_ns || st->sent == 0)
		return;
	hb.trailing = srm_window_trailing(st->window);
	hb.leading = srm_window_leading(st->window);
	srm_write_heartbeat(body, &hb);
	h.flags = st->ended ? SRM_FLAG_LAST : 0;
	h.sequence = hb.leading;
	h.payload = body;
	h.payload_len = sizeof(body);
	len = srm_write(st->repair, sizeof(st->repair), &h);
	outlet_begin(st->outlet);
	outlet_emit(st->outlet, st->repair, len);
	outlet_end(st->outlet);
	st->heartbeats++;
	st->last_send_ns = now;
}

/* A socket on the group's port, joined on the stream's interface: the
 * receivers' NAKs come to the group. */
static int srm_open_nak_socket(const struct conf_stream *conf, char *err, size_t err_len)
{
	const struct sockaddr_in *group = (const struct sockaddr_in *)&conf->destinations[0].sa;
	struct ip_mreqn mreq = { .imr_multiaddr = group->sin_addr, .imr_address = conf->if_addr,
				 .imr_ifindex = (int)conf->ifindex };
	int one = 1, fd;

	if (group->sin_family != AF_INET || !IN_MULTICAST(ntohl(group->sin_addr.s_addr))) {
		snprintf(err, err_len, "srm needs an IPv4 multicast destination");
		return -1;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)group, sizeof(*group)) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0) {
		snprintf(err, err_len, "the NAK socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The interface a stream names, by index or by one of its addresses. */
static bool srm_is_stream_interface(const struct conf_stream *conf, const struct ifaddrs *ifa)
{
	if (conf->ifindex != 0)
		return if_nametoindex(ifa->ifa_name) == conf->ifindex;
	return ((const struct sockaddr_in *)ifa->ifa_addr)->sin_addr.s_addr == conf->if_addr.s_addr;
}

/* With ttl 0 or 1 the group reaches only the interface's link, so a
 * receiver's NAK comes from one of its subnets; one from elsewhere (a
 * spoof from off the link) is dropped and counted. A ttl over 1 routes
 * the group on, and any source may be a receiver. */
static void srm_find_link_nets(struct srm_sender *st, const struct conf_stream *conf)
{
	struct ifaddrs *all, *ifa;
	const char *name = NULL;

	if (conf->ttl > 1 || (conf->ifindex == 0 && conf->if_addr.s_addr == htonl(INADDR_ANY)) || getifaddrs(&all) < 0)
		return;
	for (ifa = all; ifa != NULL && name == NULL; ifa = ifa->ifa_next)
		if (ifa->ifa_addr != NULL && ifa->ifa_addr->sa_family == AF_INET && srm_is_stream_interface(conf, ifa))
			name = ifa->ifa_name;
	for (ifa = all; ifa != NULL && name != NULL && st->n_link_nets < SRM_LINK_NETS; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || ifa->ifa_netmask == NULL || ifa->ifa_addr->sa_family != AF_INET ||
		    strcmp(ifa->ifa_name, name) != 0)
			continue;
		st->link_nets[st->n_link_nets].addr = ntohl(((const struct sockaddr_in *)ifa->ifa_addr)->sin_addr.s_addr);
		st->link_nets[st->n_link_nets].mask =
			ntohl(((const struct sockaddr_in *)ifa->ifa_netmask)->sin_addr.s_addr);
		st->n_link_nets++;
	}
	freeifaddrs(all);
}

void srm_sender_free(struct srm_sender *st)
{
	if (st->outlet != NULL)
		outlet_close(st->outlet);
	if (st->nak_event != NULL)
		event_free(st->nak_event);
	if (st->heartbeat_timer != NULL)
		event_free(st->heartbeat_timer);
	if (st->chunks != NULL)
		evbuffer_free(st->chunks);
	if (st->nak_fd >= 0)
		close(st->nak_fd);
	srm_window_free(st->window);
	free(st);
}

/* No NAKs and no heartbeats: Kamaelia's stream cannot be repaired. */
static struct srm_sender *srm_kamaelia_sender_start(struct srm_sender *st, const struct unit_env *env)
{
	st->chunks = evbuffer_new();
	pace_start(&st->pace, env->stream->rate ? env->stream->rate / 8 : 0, (uint64_t)SRM_BURST * SRM_DATAGRAM_MAX,
		   pacer_now_ns());
	st->outlet = st->chunks != NULL && st->window != NULL ? outlet_open(env, &srm_outlet_hooks, st) : NULL;
	if (st->outlet == NULL) {
		srm_sender_free(st);
		return NULL;
	}
	st->pacer = outlet_pacer(st->outlet);
	return st;
}

struct srm_sender *srm_sender_start(const struct srm_settings *s, const struct unit_env *env)
{
	const struct conf_stream *conf = env->stream;
	struct srm_sender *st = calloc(1, sizeof(*st));
	struct timeval every = { .tv_sec = s->heartbeat_ms / 1000, .tv_usec = (s->heartbeat_ms % 1000) * 1000 };
	char err[256];

	if (st == NULL)
		return NULL;
	st->nak_fd = -1;
	st->unit = env->unit;
	st->session = s->session;
	st->object = 1;
	st->hold_off_ns = s->hold_off_ms * SRM_NS_PER_MS;
	st->heartbeat_ns = s->heartbeat_ms * SRM_NS_PER_MS;
	st->payload_size = conf->packet_size > SRM_MAX_PAYLOAD ? SRM_MAX_PAYLOAD : conf->packet_size;
	/* A random first sequence: a receiver cannot mistake a restarted
	 * sender's datagrams for the old ones it still holds. */
	st->window = srm_window_new(s->window, (size_t)s->window_bytes, st->hold_off_ns, srm_random32());
	st->kamaelia = s->wire == SRM_WIRE_KAMAELIA;
	if (st->kamaelia)
		return srm_kamaelia_sender_start(st, env);
	st->nak_fd = srm_open_nak_socket(conf, err, sizeof(err));
	if (st->window == NULL || st->nak_fd < 0) {
		srm_log(env->unit, NULL, LOG_ERR,
			st->nak_fd < 0 ? err : "out of memory", st->session, 0);
		srm_sender_free(st);
		return NULL;
	}
	srm_find_link_nets(st, conf);
	st->nak_event = event_new(env->base, st->nak_fd, EV_READ | EV_PERSIST, srm_sender_on_nak_socket, st);
	st->heartbeat_timer = event_new(env->base, -1, EV_PERSIST, srm_sender_heartbeat, st);
	pace_start(&st->pace, conf->rate ? conf->rate / 8 : 0, (uint64_t)SRM_BURST * SRM_DATAGRAM_MAX,
		   pacer_now_ns());
	st->outlet = outlet_open(env, &srm_outlet_hooks, st);
	if (st->nak_event == NULL || st->heartbeat_timer == NULL || st->outlet == NULL ||
	    event_add(st->nak_event, NULL) < 0 || event_add(st->heartbeat_timer, &every) < 0) {
		srm_sender_free(st);
		return NULL;
	}
	st->pacer = outlet_pacer(st->outlet);
	return st;
}

void srm_sender_status(const struct srm_sender *st, char *buf, size_t len)
{
	const struct srm_window_counters *w = srm_window_counters(st->window);
	size_t used;

	outlet_status(st->outlet, st->pace.late, buf, len);
	used = strlen(buf);
	snprintf(buf + used, len - used,
		 " sequenced=%" PRIu64 " repaired=%" PRIu64 " naks_received=%" PRIu64 " repairs_held_off=%" PRIu64
		 " gone=%" PRIu64 " heartbeats=%" PRIu64 " bad=%" PRIu64 " foreign=%" PRIu64 " naks_off_path=%" PRIu64,
		 st->sent, st->repaired, st->naks_received, w->held_off, st->gone_sent, st->heartbeats, st->bad,
		 st->foreign, st->naks_off_path);
}

void srm_sender_status_rows(const struct srm_sender *st, char *buf, size_t len)
{
	outlet_status_rows(st->outlet, buf, len);
}

void srm_sender_status_text(const struct srm_sender *st, char *buf, size_t len)
{
	outlet_status_text(st->outlet, buf, len);
}
