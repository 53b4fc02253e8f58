/* srm: reliable multicast of files (issue 20). A stream sends its source
 * as one object of DATA datagrams at the stream's rate, then END; keeps
 * each in the transmit window (window.c); listens on the group for NAKs
 * and answers with REPAIR once per hold-off, or GONE for what left the
 * window; says its window edges in a HEARTBEAT when idle. A multicast
 * listener follows sessions through a reorder window each (reorder.c),
 * multicasts NAKs, and writes each object to `directory`: a temporary
 * name first, renamed once its size and CRC32C match the END. Wire format:
 * wire.h. IPv4 groups only for now. */
#include <arpa/inet.h>
#include <confuse.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "daemon/pacer.h"
#include "daemon/protocol.h"
#include "protocols/srm/reorder.h"
#include "protocols/srm/window.h"
#include "protocols/srm/wire.h"
#include "protocols/support/framing.h"
#include "protocols/support/outlet.h"
#include "sources/source.h"

#define SRM_WINDOW_DEFAULT 16384
#define SRM_WINDOW_BYTES_DEFAULT (64ll * 1024 * 1024)
#define SRM_HOLD_OFF_MS_DEFAULT 50
#define SRM_HEARTBEAT_MS_DEFAULT 200
#define SRM_SESSIONS_DEFAULT 8
#define SRM_REORDER_DEFAULT 16384
#define SRM_REORDER_BYTES_DEFAULT (64ll * 1024 * 1024)
#define SRM_BACKOFF_MS_DEFAULT 20
#define SRM_RETRY_MS_DEFAULT 200
#define SRM_TIMEOUT_S_DEFAULT 10
#define SRM_NS_PER_MS 1000000ull
/* Datagrams one tick sends at most, and one wakeup of the NAK socket reads. */
#define SRM_BURST 16
#define SRM_READ_BURST 256
#define SRM_DATAGRAM_MAX (SRM_HEADER_SIZE + SRM_MAX_PAYLOAD)
#define SRM_RECEIVER_TICK_MS 10

/* kamaelia: exactly Kamaelia's SimpleReliableMulticast byte stream
 * (kamaelia.md 7.2), no header, so no repair: for old peers. */
enum srm_wire { SRM_WIRE_CHASSISD, SRM_WIRE_KAMAELIA };

/* A Kamaelia stream has no objects and no end: its frames are appended
 * to this file in the directory as they arrive. */
#define SRM_KAMAELIA_FILE "kamaelia-stream"
/* A dechunker holding a chunk this long after the last datagram gives
 * it out: the last frame has no sync after it. */
#define SRM_KAMAELIA_FLUSH_NS (200ull * 1000 * 1000)

struct srm_settings {
	enum srm_wire wire;
	uint32_t session;
	unsigned window;
	unsigned long long window_bytes;
	unsigned hold_off_ms, heartbeat_ms;
	/* listener */
	char *directory;
	unsigned sessions, reorder;
	unsigned long long reorder_bytes;
	unsigned backoff_ms, retry_ms, timeout_s;
};

/* ---- the sender ---- */

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
	uint64_t sent, repaired, naks_received, gone_sent, heartbeats, bad, foreign;
	uint8_t packet[SRM_DATAGRAM_MAX], repair[SRM_DATAGRAM_MAX];
};

/* The state of a listener is a struct srm_receiver; both start with this. */
enum srm_side { SRM_SIDE_SENDER = 1, SRM_SIDE_RECEIVER = 2 };

struct srm_session;

struct srm_receiver {
	const char *unit_name;
	char *unit, *directory;
	struct srm_settings settings;
	uint32_t receiver_id;
	int nak_fd;
	struct sockaddr_storage group;
	socklen_t group_len;
	struct event *timer;
	struct srm_session *sessions;
	size_t n_sessions;
	bool kamaelia;
	struct dechunker *dechunker;
	int kamaelia_fd;
	long long last_frame;
	uint64_t last_datagram_ns;
	uint64_t frames, frames_bad, frames_late, frames_missed;
	uint64_t datagrams, bad, sessions_refused, naks_sent, naks_heard, delivered_objects, unrecoverable,
		bad_crc, incomplete, gone_heard;
};

struct srm_session {
	bool used;
	uint32_t id;
	struct srm_receiver *rx;
	struct srm_reorder *reorder;
	uint64_t last_heard_ns;
	int fd;				/* the object's temporary file, -1: none */
	uint32_t object;
	uint64_t size;
	uint32_t crc;
	bool lost;
	char part[4096], final[4096];
};

struct srm_state {
	enum srm_side side;
	union {
		struct srm_sender *sender;
		struct srm_receiver *receiver;
	} u;
};

static uint32_t random32(void)
{
	uint32_t value = 0;

	if (getrandom(&value, sizeof(value), 0) != sizeof(value))
		value = (uint32_t)pacer_now_ns() ^ (uint32_t)getpid() << 16;
	return value;
}

/* "WHAT: session N object M", the one shape of srm's log lines. */
static void srm_log(const char *stream, const char *listener, int level, const char *what, uint32_t session,
		    uint32_t object)
{
	struct log_context ctx = { .stream = stream, .listener = listener, .protocol = "srm" };

	log_write(level, &ctx, "%s: session %" PRIu32 " object %" PRIu32, what, session, object);
}

/* Writes and keeps the next sequenced datagram (DATA or END), and emits it. */
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
	uint8_t body[SRM_END_BODY_SIZE];
	struct srm_end end = { .size = st->offset, .crc = st->crc };
	struct srm_header h = { .type = SRM_END, .flags = SRM_FLAG_LAST, .object = st->object };

	srm_write_end(body, &end);
	memcpy(st->packet + SRM_HEADER_SIZE, body, sizeof(body));
	h.payload = st->packet + SRM_HEADER_SIZE;
	h.payload_len = sizeof(body);
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

static void srm_sender_on_nak_socket(evutil_socket_t fd, short what, void *arg)
{
	struct srm_sender *st = arg;
	uint8_t data[SRM_DATAGRAM_MAX];
	struct srm_header h;

	for (unsigned i = 0; i < SRM_READ_BURST; i++) {
		ssize_t n = recv(fd, data, sizeof(data), 0);

		if (n < 0)
			break;
		if (srm_parse(data, (size_t)n, &h) != SRM_OK)
			st->bad++;
		else if (h.type != SRM_NAK)
			continue;	/* our own datagrams, looped back */
		else if (h.session != st->session)
			st->foreign++;
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
	if (now - st->last_send_ns < st->heartbeat_ns || srm_window_leading(st->window) == 0)
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

static void srm_sender_free(struct srm_sender *st)
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

static struct srm_sender *srm_sender_start(const struct srm_settings *s, const struct unit_env *env)
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
	st->window = srm_window_new(s->window, (size_t)s->window_bytes, st->hold_off_ns, 0);
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

/* ---- the receiver ---- */

static void srm_object_discard(struct srm_session *ss)
{
	if (ss->fd < 0)
		return;
	close(ss->fd);
	unlink(ss->part);
	ss->fd = -1;
}

static void srm_object_open(struct srm_session *ss, uint32_t object)
{
	srm_object_discard(ss);
	ss->object = object;
	ss->size = 0;
	ss->crc = 0;
	ss->lost = false;
	snprintf(ss->part, sizeof(ss->part), "%s/.object-%" PRIu32 "-%" PRIu32 ".part", ss->rx->directory, ss->id,
		 object);
	snprintf(ss->final, sizeof(ss->final), "%s/object-%" PRIu32 "-%" PRIu32, ss->rx->directory, ss->id, object);
	ss->fd = open(ss->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (ss->fd < 0) {
		srm_log(NULL, ss->rx->unit_name, LOG_ERR, strerror(errno),
			ss->id, object);
		ss->lost = true;
	}
}

static void srm_object_data(struct srm_session *ss, const struct srm_header *h)
{
	if (ss->fd < 0 && !ss->lost)
		srm_object_open(ss, h->object);
	if (ss->lost || h->offset != ss->size)
		return;
	if (pwrite(ss->fd, h->payload, h->payload_len, (off_t)h->offset) != (ssize_t)h->payload_len) {
		ss->lost = true;
		return;
	}
	ss->size += h->payload_len;
	ss->crc = srm_crc32c(ss->crc, h->payload, h->payload_len);
}

static void srm_object_end(struct srm_session *ss, const struct srm_header *h)
{
	struct srm_receiver *rx = ss->rx;
	struct srm_end end;

	srm_read_end(h, &end);
	if (ss->fd < 0 && !ss->lost && end.size == 0)
		srm_object_open(ss, h->object);
	if (ss->lost || ss->fd < 0) {
		rx->unrecoverable++;
		srm_log(NULL, rx->unit_name, LOG_WARNING, "unrecoverable loss",
			ss->id, h->object);
	} else if (end.size != ss->size || end.crc != ss->crc) {
		rx->bad_crc++;
		srm_log(NULL, rx->unit_name, LOG_WARNING,
			"size or CRC32C mismatch", ss->id, h->object);
	} else if (close(ss->fd) == 0 && rename(ss->part, ss->final) == 0) {
		ss->fd = -1;
		rx->delivered_objects++;
		srm_log(NULL, rx->unit_name, LOG_INFO, "delivered", ss->id,
			h->object);
		ss->lost = false;
		return;
	} else {
		ss->fd = -1;
	}
	srm_object_discard(ss);
	ss->lost = false;
}

static void srm_deliver(void *arg, uint32_t seq, const struct srm_header *h)
{
	struct srm_session *ss = arg;

	(void)seq;
	if (h == NULL) {
		ss->lost = true;
		srm_object_discard(ss);
		return;
	}
	/* A new object starts clean; a loss before the first datagram of any
	 * (object 0) is the first object's. */
	if (ss->object != 0 && h->object != ss->object) {
		srm_object_discard(ss);
		ss->lost = false;
	}
	ss->object = h->object;
	if (h->type == SRM_END || (h->flags & SRM_FLAG_END))
		srm_object_end(ss, h);
	else
		srm_object_data(ss, h);
}

static struct srm_session *srm_session_find(struct srm_receiver *rx, uint32_t id, uint64_t now)
{
	struct srm_session *free_slot = NULL;
	struct srm_reorder_limits limits = {
		.datagrams = rx->settings.reorder, .bytes = (size_t)rx->settings.reorder_bytes,
		.backoff_ns = rx->settings.backoff_ms * SRM_NS_PER_MS, .retry_ns = rx->settings.retry_ms * SRM_NS_PER_MS,
	};

	for (size_t i = 0; i < rx->n_sessions; i++) {
		if (rx->sessions[i].used && rx->sessions[i].id == id)
			return &rx->sessions[i];
		if (!rx->sessions[i].used && free_slot == NULL)
			free_slot = &rx->sessions[i];
	}
	if (rx->settings.session != 0 && id != rx->settings.session)
		return NULL;
	if (free_slot == NULL) {
		rx->sessions_refused++;
		return NULL;
	}
	free_slot->reorder = srm_reorder_new(&limits, 0, rx->receiver_id ^ id, srm_deliver, free_slot);
	if (free_slot->reorder == NULL)
		return NULL;
	free_slot->used = true;
	free_slot->id = id;
	free_slot->fd = -1;
	free_slot->rx = rx;
	free_slot->last_heard_ns = now;
	return free_slot;
}

static void srm_receive_one(struct srm_receiver *rx, const struct srm_header *h, uint64_t now)
{
	struct srm_session *ss = srm_session_find(rx, h->session, now);
	struct srm_range ranges[SRM_MAX_RANGES];
	struct srm_heartbeat hb;
	size_t n;

	if (ss == NULL)
		return;
	/* Only the sender's own datagrams say it is still there: the other
	 * receivers' NAKs go on after it died. */
	if (h->type != SRM_NAK)
		ss->last_heard_ns = now;
	switch (h->type) {
	case SRM_DATA:
	case SRM_END:
	case SRM_REPAIR:
		srm_reorder_add(ss->reorder, h, now);
		break;
	case SRM_HEARTBEAT:
		srm_read_heartbeat(h, &hb);
		srm_reorder_heard_leading(ss->reorder, hb.leading, now);
		break;
	case SRM_NAK:
		if (h->object == rx->receiver_id)
			break;		/* our own, looped back */
		rx->naks_heard++;
		n = srm_read_ranges(h, ranges, SRM_MAX_RANGES);
		for (size_t i = 0; i < n; i++)
			srm_reorder_suppress(ss->reorder, &ranges[i], now);
		break;
	case SRM_GONE:
		rx->gone_heard++;
		n = srm_read_ranges(h, ranges, SRM_MAX_RANGES);
		for (size_t i = 0; i < n; i++)
			srm_reorder_gone(ss->reorder, &ranges[i]);
		break;
	default:
		break;
	}
}

/* A dechunked message: a frame whose length matches is written if it is
 * newer than the last one written (duplicates and late frames dropped). */
static void srm_kamaelia_message(void *arg, const void *msg, size_t len)
{
	struct srm_receiver *rx = arg;
	long long tag;
	const void *data;
	size_t data_len;

	if (frame_decode(msg, len, &tag, &data, &data_len) != FRAME_OK ||
	    (const uint8_t *)data + data_len != (const uint8_t *)msg + len) {
		rx->frames_bad++;
		return;
	}
	if (tag <= rx->last_frame) {
		rx->frames_late++;
		return;
	}
	if (rx->last_frame != 0 && tag > rx->last_frame + 1)
		rx->frames_missed += (uint64_t)(tag - rx->last_frame - 1);
	rx->last_frame = tag;
	if (write(rx->kamaelia_fd, data, data_len) == (ssize_t)data_len)
		rx->frames++;
}

static void srm_receive_datagram(struct datagram *dgram)
{
	struct srm_state *state = datagram_service_state(dgram);
	struct srm_receiver *rx;
	struct srm_header h;
	size_t len;
	const void *data = datagram_payload(dgram, &len);
	int result;

	if (state->side != SRM_SIDE_RECEIVER)
		return;
	rx = state->u.receiver;
	rx->datagrams++;
	if (rx->kamaelia) {
		rx->last_datagram_ns = pacer_now_ns();
		dechunker_feed(rx->dechunker, data, len);
		return;
	}
	result = srm_parse(data, len, &h);
	if (result != SRM_OK) {
		rx->bad++;
		datagram_drop(dgram, srm_parse_result_name(result));
		return;
	}
	srm_receive_one(rx, &h, pacer_now_ns());
}

static void srm_send_nak(struct srm_receiver *rx, struct srm_session *ss, const struct srm_range *ranges, size_t n)
{
	uint8_t body[SRM_MAX_RANGES * SRM_RANGE_SIZE], out[SRM_HEADER_SIZE + sizeof(body)];
	struct srm_header h = { .type = SRM_NAK, .session = ss->id, .object = rx->receiver_id };
	size_t len;

	h.sequence = srm_reorder_next(ss->reorder);
	h.payload_len = srm_write_ranges(body, sizeof(body), ranges, n);
	h.payload = body;
	len = srm_write(out, sizeof(out), &h);
	if (len != 0 && sendto(rx->nak_fd, out, len, 0, (struct sockaddr *)&rx->group, rx->group_len) > 0)
		rx->naks_sent++;
}

/* Nothing heard of a session with an object open for the timeout: it is
 * incomplete, and its temporary file goes. */
static void srm_session_check(struct srm_receiver *rx, struct srm_session *ss, uint64_t now)
{
	struct srm_range ranges[SRM_MAX_RANGES];
	size_t n = srm_reorder_due_naks(ss->reorder, now, ranges, SRM_MAX_RANGES);

	if (n > 0)
		srm_send_nak(rx, ss, ranges, n);
	if (ss->fd < 0 || now - ss->last_heard_ns < (uint64_t)rx->settings.timeout_s * 1000 * SRM_NS_PER_MS)
		return;
	rx->incomplete++;
	srm_log(NULL, rx->unit_name, LOG_WARNING,
		"incomplete (the sender went quiet)", ss->id, ss->object);
	srm_object_discard(ss);
	srm_reorder_free(ss->reorder);
	ss->reorder = NULL;
	ss->used = false;
}

static void srm_receiver_tick(evutil_socket_t fd, short what, void *arg)
{
	struct srm_receiver *rx = arg;
	uint64_t now = pacer_now_ns();

	(void)fd;
	(void)what;
	if (rx->kamaelia && rx->last_datagram_ns != 0 && now - rx->last_datagram_ns > SRM_KAMAELIA_FLUSH_NS) {
		dechunker_flush(rx->dechunker);
		rx->last_datagram_ns = 0;
	}
	for (size_t i = 0; i < rx->n_sessions; i++)
		if (rx->sessions[i].used)
			srm_session_check(rx, &rx->sessions[i], now);
}

static void srm_receiver_free(struct srm_receiver *rx)
{
	for (size_t i = 0; rx->sessions != NULL && i < rx->n_sessions; i++) {
		if (!rx->sessions[i].used)
			continue;
		srm_object_discard(&rx->sessions[i]);
		srm_reorder_free(rx->sessions[i].reorder);
	}
	if (rx->timer != NULL)
		event_free(rx->timer);
	if (rx->dechunker != NULL)
		dechunker_free(rx->dechunker);
	if (rx->kamaelia_fd >= 0)
		close(rx->kamaelia_fd);
	if (rx->nak_fd >= 0)
		close(rx->nak_fd);
	free(rx->sessions);
	free(rx->unit);
	free(rx->directory);
	free(rx);
}

/* Where NAKs leave from: the listener's interface, TTL and loop (the
 * other receivers on this host hear them and hold theirs back), an
 * ephemeral port that nothing else is sent to. */
static int srm_open_nak_sender(const struct conf_listener *l, char *err, size_t err_len)
{
	struct ip_mreqn mreq = { .imr_address = l->if_addr, .imr_ifindex = (int)l->ifindex };
	int ttl = l->ttl, loop = l->loop;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (l->endpoint.sa.ss_family != AF_INET) {
		snprintf(err, err_len, "srm needs an IPv4 group");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) < 0) {
		snprintf(err, err_len, "the NAK socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Every complete chunk at once (drain), into the stream's file. */
static int srm_kamaelia_receiver_open(struct srm_receiver *rx)
{
	struct dechunker_options opts = { .drain = true };
	char path[4096];

	snprintf(path, sizeof(path), "%s/" SRM_KAMAELIA_FILE, rx->directory);
	rx->kamaelia_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	rx->dechunker = dechunker_new(&opts, srm_kamaelia_message, rx);
	return rx->kamaelia_fd < 0 || rx->dechunker == NULL ? -1 : 0;
}

static struct srm_receiver *srm_receiver_start(const struct srm_settings *s, const struct unit_env *env)
{
	struct srm_receiver *rx = calloc(1, sizeof(*rx));
	struct timeval every = { .tv_usec = SRM_RECEIVER_TICK_MS * 1000 };
	char err[256];

	if (rx == NULL)
		return NULL;
	rx->settings = *s;
	rx->settings.directory = NULL;
	rx->unit = strdup(env->unit);
	rx->unit_name = rx->unit;
	rx->directory = strdup(s->directory);
	rx->receiver_id = random32();
	rx->n_sessions = s->sessions;
	rx->sessions = calloc(s->sessions, sizeof(*rx->sessions));
	memcpy(&rx->group, &env->listener->endpoint.sa, sizeof(rx->group));
	rx->group_len = env->listener->endpoint.len;
	rx->kamaelia_fd = -1;
	rx->kamaelia = s->wire == SRM_WIRE_KAMAELIA;
	if (rx->kamaelia && srm_kamaelia_receiver_open(rx) < 0) {
		srm_log(NULL, env->unit, LOG_ERR, strerror(errno), 0, 0);
		rx->nak_fd = -1;
		srm_receiver_free(rx);
		return NULL;
	}
	rx->nak_fd = srm_open_nak_sender(env->listener, err, sizeof(err));
	rx->timer = event_new(env->base, -1, EV_PERSIST, srm_receiver_tick, rx);
	if (rx->nak_fd < 0)
		srm_log(NULL, env->unit, LOG_ERR, err, s->session, 0);
	if (rx->unit == NULL || rx->directory == NULL || rx->sessions == NULL || rx->nak_fd < 0 || rx->timer == NULL ||
	    event_add(rx->timer, &every) < 0) {
		srm_receiver_free(rx);
		return NULL;
	}
	return rx;
}

/* ---- the unit ---- */

static void *srm_start(const void *settings, const struct unit_env *env)
{
	struct srm_state *state = calloc(1, sizeof(*state));

	if (state == NULL)
		return NULL;
	if (env->stream != NULL) {
		state->side = SRM_SIDE_SENDER;
		state->u.sender = srm_sender_start(settings, env);
	} else {
		state->side = SRM_SIDE_RECEIVER;
		state->u.receiver = srm_receiver_start(settings, env);
	}
	if (state->u.sender == NULL && state->u.receiver == NULL) {
		free(state);
		return NULL;
	}
	return state;
}

static void srm_stop(void *arg)
{
	struct srm_state *state = arg;

	if (state->side == SRM_SIDE_SENDER)
		srm_sender_free(state->u.sender);
	else
		srm_receiver_free(state->u.receiver);
	free(state);
}

static bool srm_same(const void *a_arg, const void *b_arg)
{
	const struct srm_settings *a = a_arg, *b = b_arg;

	return a->wire == b->wire && a->session == b->session && a->window == b->window && a->window_bytes == b->window_bytes &&
	       a->hold_off_ms == b->hold_off_ms && a->heartbeat_ms == b->heartbeat_ms && a->sessions == b->sessions &&
	       a->reorder == b->reorder && a->reorder_bytes == b->reorder_bytes && a->backoff_ms == b->backoff_ms &&
	       a->retry_ms == b->retry_ms && a->timeout_s == b->timeout_s &&
	       (a->directory == NULL) == (b->directory == NULL) &&
	       (a->directory == NULL || strcmp(a->directory, b->directory) == 0);
}

static void srm_status(const void *arg, char *buf, size_t len)
{
	const struct srm_state *state = arg;
	size_t used;

	buf[0] = '\0';
	if (state->side == SRM_SIDE_SENDER) {
		const struct srm_sender *st = state->u.sender;
		const struct srm_window_counters *w = srm_window_counters(st->window);

		outlet_status(st->outlet, st->pace.late, buf, len);
		used = strlen(buf);
		snprintf(buf + used, len - used,
			 " sequenced=%" PRIu64 " repaired=%" PRIu64 " naks_received=%" PRIu64 " repairs_held_off=%" PRIu64
			 " gone=%" PRIu64 " heartbeats=%" PRIu64 " bad=%" PRIu64 " foreign=%" PRIu64,
			 st->sent, st->repaired, st->naks_received, w->held_off, st->gone_sent, st->heartbeats, st->bad,
			 st->foreign);
		return;
	}
	const struct srm_receiver *rx = state->u.receiver;
	uint64_t suppressed = 0, lost = 0, duplicates = 0;

	for (size_t i = 0; i < rx->n_sessions; i++) {
		if (!rx->sessions[i].used)
			continue;
		suppressed += srm_reorder_counters(rx->sessions[i].reorder)->suppressed;
		lost += srm_reorder_counters(rx->sessions[i].reorder)->lost;
		duplicates += srm_reorder_counters(rx->sessions[i].reorder)->duplicates;
	}
	if (rx->kamaelia) {
		snprintf(buf, len,
			 "datagrams=%" PRIu64 " frames=%" PRIu64 " frames_bad=%" PRIu64 " frames_late=%" PRIu64
			 " frames_missed=%" PRIu64 " incomplete_chunks=%" PRIu64,
			 rx->datagrams, rx->frames, rx->frames_bad, rx->frames_late, rx->frames_missed,
			 dechunker_stats(rx->dechunker)->incomplete);
		return;
	}
	snprintf(buf, len,
		 "datagrams=%" PRIu64 " bad=%" PRIu64 " sessions_refused=%" PRIu64 " naks_sent=%" PRIu64
		 " naks_heard=%" PRIu64 " naks_suppressed=%" PRIu64 " duplicates=%" PRIu64 " gone=%" PRIu64
		 " lost=%" PRIu64 " delivered_objects=%" PRIu64 " unrecoverable=%" PRIu64 " bad_crc=%" PRIu64
		 " incomplete=%" PRIu64,
		 rx->datagrams, rx->bad, rx->sessions_refused, rx->naks_sent, rx->naks_heard, suppressed, duplicates,
		 rx->gone_heard, lost, rx->delivered_objects, rx->unrecoverable, rx->bad_crc, rx->incomplete);
}

static void srm_status_rows(const void *arg, char *buf, size_t len)
{
	const struct srm_state *state = arg;

	buf[0] = '\0';
	if (state->side == SRM_SIDE_SENDER)
		outlet_status_rows(state->u.sender->outlet, buf, len);
}

static void srm_status_text(const void *arg, char *buf, size_t len)
{
	const struct srm_state *state = arg;

	buf[0] = '\0';
	if (state->side == SRM_SIDE_SENDER)
		outlet_status_text(state->u.sender->outlet, buf, len);
}

/* ---- config ---- */

static cfg_opt_t srm_options[] = {
	CFG_STR("wire", "chassisd", CFGF_NONE),
	CFG_INT("session", 0, CFGF_NONE),
	CFG_INT("window", SRM_WINDOW_DEFAULT, CFGF_NONE),
	CFG_INT("window-bytes", SRM_WINDOW_BYTES_DEFAULT, CFGF_NONE),
	CFG_INT("hold-off", SRM_HOLD_OFF_MS_DEFAULT, CFGF_NONE),
	CFG_INT("heartbeat", SRM_HEARTBEAT_MS_DEFAULT, CFGF_NONE),
	CFG_STR("directory", NULL, CFGF_NODEFAULT),
	CFG_INT("sessions", SRM_SESSIONS_DEFAULT, CFGF_NONE),
	CFG_INT("reorder", SRM_REORDER_DEFAULT, CFGF_NONE),
	CFG_INT("reorder-bytes", SRM_REORDER_BYTES_DEFAULT, CFGF_NONE),
	CFG_INT("nak-backoff", SRM_BACKOFF_MS_DEFAULT, CFGF_NONE),
	CFG_INT("nak-retry", SRM_RETRY_MS_DEFAULT, CFGF_NONE),
	CFG_INT("timeout", SRM_TIMEOUT_S_DEFAULT, CFGF_NONE),
	CFG_END()
};

static const char *const srm_sender_option_names[] = {
	"window", "window-bytes", "hold-off", "heartbeat", NULL,
};
static const char *const srm_receiver_option_names[] = {
	"directory", "sessions", "reorder", "reorder-bytes", "nak-backoff", "nak-retry", "timeout", NULL,
};

static bool srm_listed(const char *const *names, const char *name)
{
	for (size_t i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* For -T: a stream's options in a stream's section, a listener's in a
 * listener's. */
static bool srm_option_applies(cfg_t *sec, bool stream, const char *option)
{
	return !srm_listed(stream ? srm_receiver_option_names : srm_sender_option_names, option);
}

static void srm_settings_free(void *arg)
{
	struct srm_settings *s = arg;

	if (s == NULL)
		return;
	free(s->directory);
	free(s);
}

static void srm_check_side(cfg_t *sec, struct conf_scope *scope)
{
	bool stream = conf_scope_is_stream(scope);
	const char *const *names = stream ? srm_receiver_option_names : srm_sender_option_names;

	for (size_t i = 0; sec != NULL && names[i] != NULL; i++)
		if (conf_scope_written(scope, names[i]))
			conf_scope_error(scope, names[i], "%s is an srm %s option", names[i],
					 stream ? "listener" : "stream");
}

static void srm_configure_sender(struct srm_settings *s, cfg_t *sec, struct conf_scope *scope)
{
	long window = SRM_WINDOW_DEFAULT, window_bytes = SRM_WINDOW_BYTES_DEFAULT;
	long hold_off = SRM_HOLD_OFF_MS_DEFAULT, heartbeat = SRM_HEARTBEAT_MS_DEFAULT;
	const struct conf_stream *st = conf_scope_stream(scope);

	if (sec != NULL) {
		conf_scope_int(scope, sec, "window", 1, 1 << 20, &window);
		conf_scope_int(scope, sec, "window-bytes", SRM_DATAGRAM_MAX, 1ll << 32, &window_bytes);
		conf_scope_int(scope, sec, "hold-off", 1, 10000, &hold_off);
		conf_scope_int(scope, sec, "heartbeat", 10, 60000, &heartbeat);
	}
	s->window = (unsigned)window;
	s->window_bytes = (unsigned long long)window_bytes;
	s->hold_off_ms = (unsigned)hold_off;
	s->heartbeat_ms = (unsigned)heartbeat;
	if (s->session == 0 && s->wire == SRM_WIRE_CHASSISD)
		conf_scope_error(scope, "session", "an srm stream needs a session (1 to 4294967295)");
	if (st != NULL && (st->n_destinations != 1 || st->destinations[0].sa.ss_family != AF_INET ||
			   !IN_MULTICAST(ntohl(((const struct sockaddr_in *)&st->destinations[0].sa)->sin_addr.s_addr))))
		conf_scope_error(scope, "destination", "an srm stream sends to one IPv4 multicast group");
	if (st != NULL && st->rate == 0)
		conf_scope_error(scope, "session", "an srm stream needs a rate (repairs are counted against it)");
}

static void srm_configure_receiver(struct srm_settings *s, cfg_t *sec, struct conf_scope *scope)
{
	long sessions = SRM_SESSIONS_DEFAULT, reorder = SRM_REORDER_DEFAULT, reorder_bytes = SRM_REORDER_BYTES_DEFAULT;
	long backoff = SRM_BACKOFF_MS_DEFAULT, retry = SRM_RETRY_MS_DEFAULT, timeout = SRM_TIMEOUT_S_DEFAULT;
	const char *directory = sec ? cfg_getstr(sec, "directory") : NULL;

	if (sec != NULL) {
		conf_scope_int(scope, sec, "sessions", 1, 4096, &sessions);
		conf_scope_int(scope, sec, "reorder", 1, 1 << 20, &reorder);
		conf_scope_int(scope, sec, "reorder-bytes", SRM_DATAGRAM_MAX, 1ll << 32, &reorder_bytes);
		conf_scope_int(scope, sec, "nak-backoff", 1, 10000, &backoff);
		conf_scope_int(scope, sec, "nak-retry", 1, 60000, &retry);
		conf_scope_int(scope, sec, "timeout", 1, 86400, &timeout);
	}
	if (conf_scope_transport(scope) != TRANSPORT_MULTICAST)
		conf_scope_error(scope, "directory", "an srm listener needs transport = \"multicast\"");
	if (directory == NULL || directory[0] != '/')
		conf_scope_error(scope, "directory", "an srm listener needs directory = an absolute path");
	s->directory = directory ? strdup(directory) : NULL;
	s->sessions = (unsigned)sessions;
	s->reorder = (unsigned)reorder;
	s->reorder_bytes = (unsigned long long)reorder_bytes;
	s->backoff_ms = (unsigned)backoff;
	s->retry_ms = (unsigned)retry;
	s->timeout_s = (unsigned)timeout;
}

static void *srm_configure(cfg_t *sec, struct conf_scope *scope)
{
	struct srm_settings *s = calloc(1, sizeof(*s));
	long session = 0;
	const char *wire = sec ? cfg_getstr(sec, "wire") : NULL;

	if (s == NULL)
		return NULL;
	if (sec != NULL)
		conf_scope_int(scope, sec, "session", 0, 4294967295ll, &session);
	s->session = (uint32_t)session;
	if (wire == NULL || strcmp(wire, "chassisd") == 0)
		s->wire = SRM_WIRE_CHASSISD;
	else if (strcmp(wire, "kamaelia") == 0)
		s->wire = SRM_WIRE_KAMAELIA;
	else
		conf_scope_error(scope, "wire", "wire must be \"chassisd\" or \"kamaelia\", not \"%s\"", wire);
	srm_check_side(sec, scope);
	if (conf_scope_is_stream(scope))
		srm_configure_sender(s, sec, scope);
	else
		srm_configure_receiver(s, sec, scope);
	return s;
}

const struct protocol protocol_srm = {
	.config = {
		.name = "srm",
		.options = srm_options,
		.transports = TRANSPORT_BIT(TRANSPORT_MULTICAST) | UNIT_STREAM_BIT,
		.configure = srm_configure,
		.settings_free = srm_settings_free,
		.option_applies = srm_option_applies,
	},
	.start = srm_start,
	.stop = srm_stop,
	.same = srm_same,
	.status = srm_status,
	.status_rows = srm_status_rows,
	.status_text = srm_status_text,
	.datagram = srm_receive_datagram,
};
