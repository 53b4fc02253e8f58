/* srm, the receiver: a multicast listener follows sessions through a
 * reorder window each (reorder.c), multicasts NAKs, and writes each object
 * to `directory`: a temporary name first, renamed once its size and CRC32C
 * match the END, to the name the END carries if it is a safe one, else to
 * object-SESSION-N. With `command` instead, each object is written to an
 * unnamed file in `spool` and, once verified, queued for the program
 * (command.c). In kamaelia wire mode it dechunks the §7.2 stream into one
 * file instead. Wire format: wire.h. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "daemon/pacer.h"
#include "daemon/protocol.h"
#include "protocols/srm/command.h"
#include "protocols/srm/receive.h"
#include "protocols/srm/recover.h"
#include "protocols/srm/reorder.h"
#include "protocols/srm/common.h"
#include "protocols/srm/wire.h"
#include "protocols/support/framing.h"

#define SRM_RECEIVER_TICK_MS 10
/* Blocks of a session with parity held at once, at most (and at most
 * the reorder window's datagrams): one per block with a loss not yet
 * rebuilt. */
#define SRM_RECOVER_BLOCKS 1024


/* A Kamaelia stream has no objects and no end: its frames are appended
 * to this file in the directory as they arrive. */
#define SRM_KAMAELIA_FILE "kamaelia-stream"
/* A dechunker holding a chunk this long after the last datagram gives
 * it out: the last frame has no sync after it. */
#define SRM_KAMAELIA_FLUSH_NS (200ull * 1000 * 1000)

struct srm_session;

/* A session forgotten after the timeout, and the next sequence it would
 * have delivered: if its sender is heard again it goes on from there
 * rather than take the window again and deliver its objects twice. */
#define SRM_FORGOTTEN 64
struct srm_forgotten {
	bool used;
	uint32_t id, next;
};

struct srm_receiver {
	const char *unit_name;
	struct chassis *chassis;
	char *unit, *directory;		/* directory NULL: to command, or live only */
	char *spool;
	struct srm_command *command;
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
	uint64_t live_bytes, live_objects;	/* to stream routes */
	/* What forgotten sessions had counted, so that the listener's totals
	 * never go back; and where each had got to (below). */
	struct srm_reorder_counters forgotten_reorder;
	struct srm_recover_counters forgotten_recover;
	struct srm_forgotten forgotten[SRM_FORGOTTEN];
	unsigned forgotten_next;
	uint64_t datagrams, bad, sessions_refused, sessions_expired, naks_sent, naks_heard, delivered_objects,
		unrecoverable, bad_crc, incomplete, gone_heard, names_refused, store_failed, objects_too_large;
};

struct srm_session {
	bool used;
	uint32_t id;
	struct srm_receiver *rx;
	struct srm_reorder *reorder;
	struct srm_recover *recover;	/* from the session's first PARITY on, else NULL */
	uint64_t last_heard_ns;
	int fd;				/* the object's temporary file, -1: none */
	uint32_t object;
	uint64_t size;
	uint32_t crc;
	bool lost;
	bool too_large;			/* lost as past max-object-size: said once */
	char part[4096];		/* its name; "" for an unnamed spool file */
	/* this session's share of the listener's counters, for its row */
	uint64_t datagrams, naks_sent, delivered_objects, unrecoverable;
};

static void srm_object_discard(struct srm_session *ss)
{
	if (ss->fd < 0)
		return;
	close(ss->fd);
	if (ss->part[0] != '\0')
		unlink(ss->part);
	ss->fd = -1;
}

/* The object is over (delivered, lost or left behind): the next starts
 * clean. */
static void srm_object_done(struct srm_session *ss)
{
	srm_object_discard(ss);
	ss->lost = ss->too_large = false;
}

/* A file of no name in the spool directory: O_TMPFILE, or where the file
 * system has none a named one unlinked at once. Either way nothing is
 * left behind, whatever happens to the daemon. */
static int srm_spool_open(const char *spool)
{
	char path[4096];
	int fd = open(spool, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	snprintf(path, sizeof(path), "%s/.chassisd-srm-XXXXXX", spool);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static void srm_object_open(struct srm_session *ss, uint32_t object)
{
	srm_object_discard(ss);
	ss->object = object;
	ss->size = 0;
	ss->crc = 0;
	ss->lost = false;
	ss->part[0] = '\0';
	if (ss->rx->command != NULL) {
		ss->fd = srm_spool_open(ss->rx->spool);
	} else {
		snprintf(ss->part, sizeof(ss->part), "%s/.object-%" PRIu32 "-%" PRIu32 ".part", ss->rx->directory,
			 ss->id, object);
		ss->fd = open(ss->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	}
	if (ss->fd < 0) {
		srm_log(NULL, ss->rx->unit_name, LOG_ERR, strerror(errno),
			ss->id, object);
		ss->lost = true;
	}
}

/* An object past max-object-size is given up at once, its file removed:
 * a forged or runaway sender cannot fill the disk with one object. */
static void srm_object_too_large(struct srm_session *ss)
{
	ss->rx->objects_too_large++;
	srm_log(NULL, ss->rx->unit_name, LOG_WARNING, "refused: larger than max-object-size", ss->id, ss->object);
	srm_object_discard(ss);
	ss->lost = ss->too_large = true;
}

static void srm_object_data(struct srm_session *ss, const struct srm_header *h)
{
	if (ss->fd < 0 && !ss->lost) {
		srm_object_open(ss, h->object);
		ss->lost = h->offset != 0;	/* joined after its start, beyond repair */
	}
	if (ss->lost || h->offset != ss->size)
		return;
	if (ss->size + h->payload_len > ss->rx->settings.max_object_size) {
		srm_object_too_large(ss);
		return;
	}
	if (pwrite(ss->fd, h->payload, h->payload_len, (off_t)h->offset) != (ssize_t)h->payload_len) {
		ss->lost = true;
		return;
	}
	ss->size += h->payload_len;
	ss->crc = srm_crc32c(ss->crc, h->payload, h->payload_len);
}

/* The name an END carries, if the receiver takes it (srm_name_refusal):
 * else none, and the refusal is counted and logged. */
static void srm_object_name(struct srm_session *ss, const struct srm_end *end, const uint8_t **name,
			    size_t *name_len)
{
	struct srm_receiver *rx = ss->rx;
	const char *why = end->name_len > 0 ? srm_name_refusal(end->name, end->name_len) : NULL;
	char what[160];

	*name = NULL;
	*name_len = 0;
	if (end->name_len == 0)
		return;
	if (why == NULL) {
		*name = end->name;
		*name_len = end->name_len;
		return;
	}
	rx->names_refused++;
	if (rx->command != NULL)
		snprintf(what, sizeof(what), "name refused (%s), no SRM_NAME", why);
	else
		snprintf(what, sizeof(what), "name refused (%s), stored as object-%" PRIu32 "-%" PRIu32, why, ss->id,
			 ss->object);
	srm_log_named(NULL, rx->unit_name, LOG_WARNING, what, ss->id, ss->object, end->name, end->name_len);
}

/* The temporary file renamed in the directory: to the name, which has no
 * "/" and is not "." or "..", so it stays in the directory (a symlink of
 * that name is replaced, not followed). */
static bool srm_object_store(struct srm_session *ss, const uint8_t *name, size_t name_len)
{
	struct srm_receiver *rx = ss->rx;
	char final[4096 + SRM_NAME_STORE_MAX];
	int fd = ss->fd;

	if (name_len > 0)
		snprintf(final, sizeof(final), "%s/%.*s", rx->directory, (int)name_len, (const char *)name);
	else
		snprintf(final, sizeof(final), "%s/object-%" PRIu32 "-%" PRIu32, rx->directory, ss->id, ss->object);
	ss->fd = -1;
	if (close(fd) == 0 && rename(ss->part, final) == 0) {
		rx->delivered_objects++;
		ss->delivered_objects++;
		srm_log_named(NULL, rx->unit_name, LOG_INFO, "delivered", ss->id, ss->object, name, name_len);
		return true;
	}
	rx->store_failed++;
	snprintf(final, sizeof(final), "not stored (%s)", strerror(errno));
	srm_log_named(NULL, rx->unit_name, LOG_ERR, final, ss->id, ss->object, name, name_len);
	unlink(ss->part);
	return false;
}

static void srm_object_end(struct srm_session *ss, const struct srm_header *h)
{
	struct srm_receiver *rx = ss->rx;
	struct srm_end end;
	const uint8_t *name;
	size_t name_len;

	srm_read_end(h, &end);
	if (ss->fd < 0 && !ss->lost && end.size == 0)
		srm_object_open(ss, h->object);
	if (ss->too_large) {
		;	/* said when it was refused */
	} else if (ss->lost || ss->fd < 0) {
		rx->unrecoverable++;
		ss->unrecoverable++;
		srm_log_named(NULL, rx->unit_name, LOG_WARNING, "unrecoverable loss", ss->id, h->object, end.name,
			      end.name_len);
	} else if (end.size != ss->size || end.crc != ss->crc) {
		rx->bad_crc++;
		srm_log_named(NULL, rx->unit_name, LOG_WARNING, "size or CRC32C mismatch", ss->id, h->object, end.name,
			      end.name_len);
	} else if (rx->command != NULL) {
		srm_object_name(ss, &end, &name, &name_len);
		rx->delivered_objects++;
		ss->delivered_objects++;
		srm_log_named(NULL, rx->unit_name, LOG_INFO, "verified, to the command", ss->id, ss->object, name,
			      name_len);
		srm_command_add(rx->command, ss->fd, end.size, ss->id, ss->object, name, name_len);
		ss->fd = -1;
	} else {
		srm_object_name(ss, &end, &name, &name_len);
		srm_object_store(ss, name, name_len);
	}
	srm_object_done(ss);
}

/* The session's bytes in order to the listener's stream routes (a live
 * stream, as udpxy relays a group): each payload once, as it becomes the
 * next in order; what could not be repaired is a gap. Only from a
 * listener that follows one sender: two sessions' bytes interleaved are
 * nobody's stream. */
static void srm_to_routes(struct srm_receiver *rx, const void *data, size_t len)
{
	if (!rx->kamaelia && rx->settings.session == 0 && rx->settings.sessions > 1)
		return;
	chassis_tap_payload(rx->chassis, rx->unit, data, len);
	rx->live_bytes += len;
}

static void srm_deliver(void *arg, uint32_t seq, const struct srm_header *h)
{
	struct srm_session *ss = arg;
	bool end = h != NULL && (h->type == SRM_END || (h->flags & SRM_FLAG_END));

	if (ss->recover != NULL)
		srm_recover_delivered(ss->recover, seq, h);
	if (h != NULL && !end)
		srm_to_routes(ss->rx, h->payload, h->payload_len);
	if (ss->rx->settings.live) {	/* no object files */
		ss->rx->live_objects += end;
		return;
	}
	if (h == NULL) {
		ss->lost = true;
		srm_object_discard(ss);
		return;
	}
	/* A new object starts clean; a loss before the first datagram of any
	 * (object 0) is the first object's. */
	if (ss->object != 0 && h->object != ss->object)
		srm_object_done(ss);
	ss->object = h->object;
	if (end)
		srm_object_end(ss, h);
	else
		srm_object_data(ss, h);
}

/* Where a receiver hearing a session for the first time starts: at a
 * heartbeat's trailing edge (everything the sender can still repair); at
 * the start of the object a DATA (or its REPAIR) belongs to, reckoned from
 * its offset in whole payloads (a sender's payloads are all one size but
 * the last), so losing an object's first datagrams still gets them
 * NAKed; else at the datagram itself. Never further back than the
 * reorder window reaches. Sequences are the sender's random ones. */
static uint32_t srm_first_sequence(const struct srm_header *h, size_t window)
{
	struct srm_heartbeat hb;
	uint64_t back = 0;

	if (h->type == SRM_HEARTBEAT) {
		srm_read_heartbeat(h, &hb);
		back = hb.leading - hb.trailing;
		return back < window ? hb.trailing : hb.leading - (uint32_t)(window - 1);
	}
	if ((h->type == SRM_DATA || (h->type == SRM_REPAIR && !(h->flags & SRM_FLAG_END))) && h->payload_len > 0)
		back = h->offset / h->payload_len;
	if (back > window - 1)
		back = window - 1;
	return h->sequence - (uint32_t)back;
}

static void srm_add_reorder_counters(struct srm_reorder_counters *sum, const struct srm_reorder_counters *c)
{
	sum->suppressed += c->suppressed;
	sum->lost += c->lost;
	sum->duplicates += c->duplicates;
}

static void srm_add_recover_counters(struct srm_recover_counters *sum, const struct srm_recover_counters *c)
{
	sum->parity += c->parity;
	sum->unneeded += c->unneeded;
	sum->dropped += c->dropped;
	sum->recovered += c->recovered;
	sum->failed += c->failed;
}

/* Keeps what an expiring session counted and where it had got to. */
static void srm_session_forget(struct srm_receiver *rx, const struct srm_session *ss)
{
	struct srm_forgotten *f = &rx->forgotten[rx->forgotten_next++ % SRM_FORGOTTEN];

	srm_add_reorder_counters(&rx->forgotten_reorder, srm_reorder_counters(ss->reorder));
	if (ss->recover != NULL)
		srm_add_recover_counters(&rx->forgotten_recover, srm_recover_counters(ss->recover));
	for (size_t i = 0; i < SRM_FORGOTTEN; i++)
		if (rx->forgotten[i].used && rx->forgotten[i].id == ss->id)
			rx->forgotten[i].used = false;
	f->used = true;
	f->id = ss->id;
	f->next = srm_reorder_next(ss->reorder);
}

/* Where a session heard again starts: where it had got to when it was
 * forgotten, if that lies between where this datagram would start it and
 * the sender's leading edge (a restarted sender, with a new random
 * sequence, starts afresh); else `first`. */
static uint32_t srm_session_resume(struct srm_receiver *rx, const struct srm_header *h, uint32_t first)
{
	uint32_t upper = h->sequence;
	struct srm_heartbeat hb;

	if (h->type == SRM_HEARTBEAT) {
		srm_read_heartbeat(h, &hb);
		upper = hb.leading;
	}
	for (size_t i = 0; i < SRM_FORGOTTEN; i++) {
		struct srm_forgotten *f = &rx->forgotten[i];

		if (!f->used || f->id != h->session)
			continue;
		f->used = false;
		if ((int32_t)(f->next - first) >= 0 && (int32_t)(upper - f->next) >= 0)
			return f->next;
	}
	return first;
}

static struct srm_session *srm_session_find(struct srm_receiver *rx, const struct srm_header *h, uint64_t now)
{
	struct srm_session *free_slot = NULL;
	uint32_t id = h->session;
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
	if ((rx->settings.session != 0 && id != rx->settings.session) || h->type == SRM_NAK || h->type == SRM_GONE ||
	    h->type == SRM_PARITY)
		return NULL;
	if (free_slot == NULL) {
		rx->sessions_refused++;
		return NULL;
	}
	free_slot->reorder = srm_reorder_new(&limits, srm_session_resume(rx, h, srm_first_sequence(h, limits.datagrams)),
					     rx->receiver_id ^ id, srm_deliver, free_slot);
	if (free_slot->reorder == NULL)
		return NULL;
	free_slot->used = true;
	free_slot->id = id;
	free_slot->datagrams = free_slot->naks_sent = free_slot->delivered_objects = free_slot->unrecoverable = 0;
	/* A slot used before starts with nothing of its last session's. */
	free_slot->object = 0;
	free_slot->size = 0;
	free_slot->crc = 0;
	free_slot->lost = free_slot->too_large = false;
	free_slot->part[0] = '\0';
	free_slot->fd = -1;
	free_slot->rx = rx;
	free_slot->last_heard_ns = now;
	return free_slot;
}

static void srm_receive_one(struct srm_receiver *rx, const struct srm_header *h, uint64_t now)
{
	struct srm_session *ss = srm_session_find(rx, h, now);
	struct srm_range ranges[SRM_MAX_RANGES];
	struct srm_heartbeat hb;
	size_t n;

	if (ss == NULL)
		return;
	/* Only the sender's own datagrams say it is still there: the other
	 * receivers' NAKs go on after it died. */
	if (h->type != SRM_NAK) {
		ss->last_heard_ns = now;
		ss->datagrams++;
	}
	switch (h->type) {
	case SRM_DATA:
	case SRM_END:
	case SRM_REPAIR:
		srm_reorder_add(ss->reorder, h, now);
		if (ss->recover != NULL)
			srm_recover_heard(ss->recover, ss->reorder, h->sequence, now);
		break;
	case SRM_PARITY:
		if (ss->recover == NULL)
			ss->recover = srm_recover_new(&(struct srm_recover_limits){
				.blocks = rx->settings.reorder < SRM_RECOVER_BLOCKS ? rx->settings.reorder : SRM_RECOVER_BLOCKS,
				.bytes = (size_t)rx->settings.reorder_bytes });
		if (ss->recover != NULL)
			srm_recover_parity(ss->recover, ss->reorder, h, now);
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
		if (ss->recover != NULL)
			srm_recover_suppress(ss->recover, ss->reorder, ranges, n, now);
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
	srm_to_routes(rx, data, data_len);
	if (rx->kamaelia_fd < 0 || write(rx->kamaelia_fd, data, data_len) == (ssize_t)data_len)
		rx->frames++;
}

void srm_receiver_datagram(struct srm_receiver *rx, struct datagram *dgram)
{
	struct srm_header h;
	size_t len;
	const void *data = datagram_payload(dgram, &len);
	int result;

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
	if (len != 0 && sendto(rx->nak_fd, out, len, 0, (struct sockaddr *)&rx->group, rx->group_len) > 0) {
		rx->naks_sent++;
		ss->naks_sent++;
	}
}

/* Nothing heard of a session for the timeout: its slot is freed, so that
 * senders that finished, died or were forged (a HEARTBEAT costs nothing to
 * fake) cannot hold the `sessions` slots and their NAKs for ever. With an
 * object open it is incomplete, and its temporary file goes. */
static void srm_session_check(struct srm_receiver *rx, struct srm_session *ss, uint64_t now)
{
	struct srm_range ranges[SRM_MAX_RANGES];
	size_t n = srm_reorder_due_naks(ss->reorder, now, ranges, SRM_MAX_RANGES);

	/* Parity held for a block counts toward it: the NAK asks for less. */
	if (n > 0 && ss->recover != NULL)
		n = srm_recover_trim(ss->recover, ss->reorder, ranges, n, SRM_MAX_RANGES);
	if (n > 0)
		srm_send_nak(rx, ss, ranges, n);
	if (now - ss->last_heard_ns < (uint64_t)rx->settings.timeout_s * 1000 * SRM_NS_PER_MS)
		return;
	if (ss->fd >= 0) {
		rx->incomplete++;
		srm_log(NULL, rx->unit_name, LOG_WARNING, "incomplete (the sender went quiet)", ss->id, ss->object);
		srm_object_discard(ss);
	}
	rx->sessions_expired++;
	srm_session_forget(rx, ss);
	srm_reorder_free(ss->reorder);
	srm_recover_free(ss->recover);
	ss->reorder = NULL;
	ss->recover = NULL;
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

void srm_receiver_free(struct srm_receiver *rx)
{
	for (size_t i = 0; rx->sessions != NULL && i < rx->n_sessions; i++) {
		if (!rx->sessions[i].used)
			continue;
		srm_object_discard(&rx->sessions[i]);
		srm_reorder_free(rx->sessions[i].reorder);
		srm_recover_free(rx->sessions[i].recover);
	}
	if (rx->timer != NULL)
		event_free(rx->timer);
	srm_command_detach(rx->command);
	if (rx->dechunker != NULL)
		dechunker_free(rx->dechunker);
	if (rx->kamaelia_fd >= 0)
		close(rx->kamaelia_fd);
	if (rx->nak_fd >= 0)
		close(rx->nak_fd);
	free(rx->sessions);
	free(rx->unit);
	free(rx->directory);
	free(rx->spool);
	free(rx);
}

/* Where NAKs leave from: the listener's interface, TTL and loop (the
 * other receivers on this host hear them and hold theirs back), an
 * ephemeral port that nothing else is sent to. */
static int srm_open_nak_sender(const struct conf_listener *l, char *err, size_t err_len)
{
	int family = l->endpoint.sa.ss_family, ttl = l->ttl, loop = l->loop;
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc;

	if (fd < 0) {
		snprintf(err, err_len, "the NAK socket: %s", strerror(errno));
		return -1;
	}
	if (family == AF_INET) {
		struct ip_mreqn mreq = { .imr_address = l->if_addr, .imr_ifindex = (int)l->ifindex };

		rc = setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) < 0 ||
		     setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) < 0 ||
		     setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) < 0;
	} else {
		int ifindex = (int)l->ifindex;

		rc = setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0 ||
		     setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof(ttl)) < 0 ||
		     setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof(loop)) < 0;
	}
	if (rc) {
		snprintf(err, err_len, "the NAK socket: %s", strerror(errno));
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

	if (rx->directory != NULL) {	/* else live: to stream routes only */
		snprintf(path, sizeof(path), "%s/" SRM_KAMAELIA_FILE, rx->directory);
		rx->kamaelia_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (rx->kamaelia_fd < 0)
			return -1;
	}
	rx->dechunker = dechunker_new(&opts, srm_kamaelia_message, rx);
	return rx->dechunker == NULL ? -1 : 0;
}

struct srm_receiver *srm_receiver_start(const struct srm_settings *s, const struct unit_env *env)
{
	struct srm_receiver *rx = calloc(1, sizeof(*rx));
	struct timeval every = { .tv_usec = SRM_RECEIVER_TICK_MS * 1000 };
	char err[256];

	if (rx == NULL)
		return NULL;
	/* Nothing of s is kept by pointer: the state outlives it on reload. */
	rx->settings = *s;
	rx->settings.directory = NULL;
	rx->settings.spool = NULL;
	rx->settings.command = (struct child_spec){ 0 };
	rx->unit = strdup(env->unit);
	rx->unit_name = rx->unit;
	rx->chassis = env->chassis;
	rx->directory = s->directory != NULL ? strdup(s->directory) : NULL;
	if (s->command.argv != NULL) {
		rx->spool = strdup(s->spool);
		rx->command = srm_command_new(env, &s->command, s->command_queue);
	}
	rx->receiver_id = srm_random32();
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
	if (rx->unit == NULL || (s->directory != NULL && rx->directory == NULL) ||
	    (s->command.argv != NULL && (rx->spool == NULL || rx->command == NULL)) || rx->sessions == NULL ||
	    rx->nak_fd < 0 || rx->timer == NULL || event_add(rx->timer, &every) < 0) {
		srm_receiver_free(rx);
		return NULL;
	}
	return rx;
}

/* A row per followed session: "session ID key=value ...". */
void srm_receiver_status_rows(const struct srm_receiver *rx, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < rx->n_sessions && used < len; i++) {
		const struct srm_session *ss = &rx->sessions[i];
		const struct srm_reorder_counters *r;

		if (!ss->used || ss->reorder == NULL)
			continue;
		r = srm_reorder_counters(ss->reorder);
		used += (size_t)snprintf(buf + used, len - used,
					 "session %" PRIu32 " datagrams=%" PRIu64 " naks_sent=%" PRIu64
					 " naks_suppressed=%" PRIu64 " duplicates=%" PRIu64 " lost=%" PRIu64
					 " delivered_objects=%" PRIu64 " unrecoverable=%" PRIu64 " rtt_us=%" PRIu64 "\n",
					 ss->id, ss->datagrams, ss->naks_sent, r->suppressed, r->duplicates, r->lost,
					 ss->delivered_objects, ss->unrecoverable, srm_reorder_rtt_ns(ss->reorder) / 1000);
	}
	if (used >= len) {	/* cut: whole rows only */
		char *end = strrchr(buf, '\n');

		if (end != NULL)
			end[1] = '\0';
		else
			buf[0] = '\0';
	}
}

void srm_receiver_status(const struct srm_receiver *rx, char *buf, size_t len)
{
	struct srm_reorder_counters r = rx->forgotten_reorder;
	struct srm_recover_counters f = rx->forgotten_recover;
	uint64_t rtt_ns = 0;
	const struct srm_command_counters *c;
	size_t used;

	for (size_t i = 0; i < rx->n_sessions; i++) {
		if (!rx->sessions[i].used)
			continue;
		srm_add_reorder_counters(&r, srm_reorder_counters(rx->sessions[i].reorder));
		if (srm_reorder_rtt_ns(rx->sessions[i].reorder) > rtt_ns)
			rtt_ns = srm_reorder_rtt_ns(rx->sessions[i].reorder);
		if (rx->sessions[i].recover != NULL)
			srm_add_recover_counters(&f, srm_recover_counters(rx->sessions[i].recover));
	}
	if (rx->kamaelia) {
		snprintf(buf, len,
			 "datagrams=%" PRIu64 " frames=%" PRIu64 " frames_bad=%" PRIu64 " frames_late=%" PRIu64
			 " frames_missed=%" PRIu64 " incomplete_chunks=%" PRIu64 " live_bytes=%" PRIu64,
			 rx->datagrams, rx->frames, rx->frames_bad, rx->frames_late, rx->frames_missed,
			 dechunker_stats(rx->dechunker)->incomplete, rx->live_bytes);
		return;
	}
	used = (size_t)snprintf(buf, len,
				"datagrams=%" PRIu64 " bad=%" PRIu64 " sessions_refused=%" PRIu64 " sessions_expired=%" PRIu64
				" naks_sent=%" PRIu64
				" naks_heard=%" PRIu64 " naks_suppressed=%" PRIu64 " duplicates=%" PRIu64
				" gone=%" PRIu64 " lost=%" PRIu64 " delivered_objects=%" PRIu64
				" unrecoverable=%" PRIu64 " bad_crc=%" PRIu64 " incomplete=%" PRIu64
				" names_refused=%" PRIu64 " store_failed=%" PRIu64 " objects_too_large=%" PRIu64
				" rtt_us=%" PRIu64
				" live_bytes=%" PRIu64 " live_objects=%" PRIu64,
				rx->datagrams, rx->bad, rx->sessions_refused, rx->sessions_expired, rx->naks_sent, rx->naks_heard,
				r.suppressed, r.duplicates, rx->gone_heard, r.lost, rx->delivered_objects, rx->unrecoverable,
				rx->bad_crc, rx->incomplete, rx->names_refused, rx->store_failed, rx->objects_too_large,
				rtt_ns / 1000,
				rx->live_bytes, rx->live_objects);
	if (used < len)
		used += (size_t)snprintf(buf + used, len - used,
					 " parity_received=%" PRIu64 " parity_unneeded=%" PRIu64 " parity_dropped=%" PRIu64
					 " fec_recovered=%" PRIu64 " fec_failed=%" PRIu64,
					 f.parity, f.unneeded, f.dropped, f.recovered, f.failed);
	if (rx->command == NULL || used >= len)
		return;
	c = srm_command_counters(rx->command);
	snprintf(buf + used, len - used,
		 " command_delivered=%" PRIu64 " command_failed=%" PRIu64 " command_dropped=%" PRIu64
		 " command_waiting=%zu",
		 c->delivered, c->failed, c->dropped, srm_command_waiting(rx->command));
}
