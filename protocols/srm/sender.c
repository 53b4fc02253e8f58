/* srm, the sender: a stream sends its source as one object of DATA
 * datagrams at the stream's rate, then END; or, with a directory, each
 * regular file in it as an object of its own, its name in its END;
 * keeps each datagram in the transmit window (window.c); listens on the
 * group for NAKs and answers with REPAIR once per hold-off, or GONE for
 * what left the window; says its window edges in a HEARTBEAT when idle.
 * Wire format: wire.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/addr.h"
#include "conf/conf.h"
#include "conf/text.h"
#include "daemon/log.h"
#include "daemon/pacer.h"
#include "daemon/protocol.h"
#include "protocols/srm/sender.h"
#include "protocols/srm/common.h"
#include "protocols/srm/fec.h"
#include "protocols/srm/parity.h"
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
/* Receivers told apart by the id in their NAKs, for receivers_heard: a
 * receiver counts while its last NAK is under a minute old. A bounded
 * table: past it the oldest is forgotten and the count is a floor. */
#define SRM_RECEIVERS_TRACKED 256
#define SRM_RECEIVER_HEARD_NS (60 * 1000 * SRM_NS_PER_MS)
/* GONEs at most 100 a second: about 10 KB/s however many NAKs come. */
#define SRM_GONE_GAP_NS (10 * SRM_NS_PER_MS)

struct srm_heard {
	uint32_t id;
	uint64_t last_ns;		/* 0: a free slot */
};

/* A file of the directory as it was seen: a changed one is sent again. */
struct srm_file {
	char *name;
	uint64_t size;
	int64_t mtime_s;
	long mtime_ns;
};

/* Files in name order (byte order), at most cap. */
struct srm_files {
	struct srm_file *v;
	size_t n, cap;
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
	struct event *nak_event, *heartbeat_timer, *gone_timer;
	struct srm_range gone_pending[SRM_MAX_RANGES];	/* for the next GONE */
	size_t n_gone_pending;
	uint64_t hold_off_ns, heartbeat_ns, last_send_ns;
	size_t payload_size;
	uint32_t object;		/* the one being sent */
	uint64_t offset;		/* bytes of it sent */
	uint32_t crc;
	bool ended;			/* the last END went */
	/* a directory instead of the source: each file an object */
	char *directory;
	size_t max_files;
	struct event *begin;		/* the first look, once the loop runs */
	bool looked;
	struct srm_files seen;		/* the last look, for what a reload finds new */
	struct srm_files queue;		/* to send, in order, from next_file */
	size_t next_file;
	int fd;				/* the file being sent, -1: none */
	bool at_eof;			/* read to its end: its END is next */
	char name[NAME_MAX + 1];	/* the file's, NUL-terminated */
	size_t name_len;		/* on the wire; 0: sent without a name */
	uint64_t files_sent, files_failed, files_over_limit, names_unsafe;
	bool kamaelia;
	struct evbuffer *chunks;	/* kamaelia: the escaped byte stream not yet sent */
	long long frames;		/* kamaelia: the last frame's number */
	/* The link's subnets, for the NAK source check: on when checking
	 * (ttl 0 or 1 on a named interface), looked at again at most once a
	 * second when a NAK matches none (addresses come and go). */
	bool check_path;
	struct cidr link_nets[SRM_LINK_NETS];
	size_t n_link_nets;
	uint64_t link_nets_ns;
	struct srm_heard heard[SRM_RECEIVERS_TRACKED];
	unsigned ifindex;		/* the stream's interface: by index, */
	struct in_addr if_addr;		/* or by an IPv4 address */
	sa_family_t family;		/* the group's */
	uint64_t sent, repaired, naks_received, gone_sent, gone_held, heartbeats, bad, foreign, naks_off_path;
	uint64_t last_gone_ns;
	/* fec: the parity plan (NULL: off), and the last block encoded, its
	 * datagrams zero padded to its longest, k symbols one after another */
	struct srm_parity_plan *parity;
	uint8_t *block;
	size_t block_cap, symbol_len;
	uint32_t block_first;
	bool block_ready;
	uint64_t parity_sent;
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
	if (st->parity != NULL)
		srm_parity_plan_sent(st->parity, srm_window_leading(st->window));
	outlet_emit(st->outlet, st->packet, len);
	pace_sent(&st->pace, len);
	st->sent++;
}

/* The n payload bytes already in place after the header, as the current
 * object's next DATA. */
static void srm_send_payload(struct srm_sender *st, size_t n)
{
	struct srm_header h = { .type = SRM_DATA, .object = st->object, .offset = st->offset };

	h.payload = st->packet + SRM_HEADER_SIZE;
	h.payload_len = n;
	st->crc = srm_crc32c(st->crc, h.payload, n);
	st->offset += n;
	srm_send_sequenced(st, &h);
}

static bool srm_send_data(struct srm_sender *st)
{
	struct evbuffer *in = source_buffer(st->source);
	size_t have = evbuffer_get_length(in), n = have < st->payload_size ? have : st->payload_size;

	if (n == 0 || (n < st->payload_size && !source_ended(st->source)))
		return false;
	evbuffer_remove(in, st->packet + SRM_HEADER_SIZE, n);
	srm_send_payload(st, n);
	return true;
}

/* The object's END: its size and CRC32C, and its name if it has one;
 * LAST when no object follows. */
static void srm_send_end(struct srm_sender *st, bool last)
{
	struct srm_end end = { .size = st->offset, .crc = st->crc, .name = (const uint8_t *)st->name,
			       .name_len = st->name_len };
	struct srm_header h = { .type = SRM_END, .object = st->object };

	h.flags = (uint16_t)((last ? SRM_FLAG_LAST : 0) | (st->name_len > 0 ? SRM_FLAG_NAME : 0));
	h.payload = st->packet + SRM_HEADER_SIZE;
	h.payload_len = srm_write_end(st->packet + SRM_HEADER_SIZE, sizeof(st->packet) - SRM_HEADER_SIZE, &end);
	srm_send_sequenced(st, &h);
	st->ended = last;
	srm_log_named(st->unit, NULL, LOG_INFO, "end", st->session, st->object, end.name, end.name_len);
}

/* ---- a directory: every regular file in it, an object each ---- */

static void srm_files_clear(struct srm_files *files)
{
	for (size_t i = 0; i < files->n; i++)
		free(files->v[i].name);
	files->n = 0;
}

static void srm_files_free(struct srm_files *files)
{
	srm_files_clear(files);
	free(files->v);
	files->v = NULL;
	files->cap = 0;
}

/* Where name is or would go in the sorted list. */
static size_t srm_files_find(const struct srm_files *files, const char *name, bool *found)
{
	size_t lo = 0, hi = files->n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(files->v[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Keeps the first cap files by name: a later one past them is refused
 * (false); an earlier one pushes the last out (*pushed). */
static bool srm_files_insert(struct srm_files *files, const struct srm_file *f, bool *pushed)
{
	bool found;
	size_t at = srm_files_find(files, f->name, &found);

	*pushed = false;
	if (at == files->cap)
		return false;
	if (files->n == files->cap) {
		free(files->v[files->n - 1].name);
		files->n--;
		*pushed = true;
	}
	memmove(&files->v[at + 1], &files->v[at], (files->n - at) * sizeof(*files->v));
	files->v[at] = *f;
	files->n++;
	return true;
}

static bool srm_same_file(const struct srm_file *a, const struct srm_file *b)
{
	return a->size == b->size && a->mtime_s == b->mtime_s && a->mtime_ns == b->mtime_ns;
}

/* The regular files of the directory, not those whose name starts with a
 * dot (hidden, or another program's temporary file), and not what a
 * symlink points to; the first max-files by name, the others counted. */
static int srm_dir_look(struct srm_sender *st, struct srm_files *look, uint64_t *over)
{
	DIR *dir = opendir(st->directory);
	struct dirent *e;

	*over = 0;
	if (dir == NULL)
		return -1;
	while ((e = readdir(dir)) != NULL) {
		struct stat sb;
		struct srm_file f;
		bool pushed;

		if (e->d_name[0] == '.' || fstatat(dirfd(dir), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		f = (struct srm_file){ .name = strdup(e->d_name), .size = (uint64_t)sb.st_size,
				       .mtime_s = sb.st_mtim.tv_sec, .mtime_ns = sb.st_mtim.tv_nsec };
		if (f.name == NULL || !srm_files_insert(look, &f, &pushed)) {
			free(f.name);
			(*over)++;
		} else if (pushed) {
			(*over)++;
		}
	}
	closedir(dir);
	return 0;
}

/* Looks at the directory and queues what is new or changed since the last
 * look (all of it the first time). The queue holds at most max-files:
 * more waiting at once are counted as over the limit. */
static void srm_dir_queue(struct srm_sender *st)
{
	struct srm_files look = { .v = calloc(st->max_files, sizeof(struct srm_file)), .cap = st->max_files };
	struct log_context ctx = { .stream = st->unit, .protocol = "srm" };
	uint64_t over = 0;
	size_t queued = 0;
	bool found;

	if (look.v == NULL || srm_dir_look(st, &look, &over) < 0) {
		log_write(LOG_ERR, &ctx, "cannot read the directory %s: %s", st->directory,
			  look.v == NULL ? "out of memory" : strerror(errno));
		srm_files_free(&look);
		st->files_failed++;
		return;
	}
	/* What was sent already leaves the queue's front. */
	if (st->next_file > 0) {
		for (size_t i = 0; i < st->next_file; i++)
			free(st->queue.v[i].name);
		memmove(st->queue.v, &st->queue.v[st->next_file], (st->queue.n - st->next_file) * sizeof(*st->queue.v));
		st->queue.n -= st->next_file;
		st->next_file = 0;
	}
	for (size_t i = 0; i < look.n; i++) {
		size_t at = srm_files_find(&st->seen, look.v[i].name, &found);
		bool waiting = false;

		if (found && srm_same_file(&st->seen.v[at], &look.v[i]))
			continue;
		for (size_t q = 0; q < st->queue.n && !waiting; q++)
			waiting = strcmp(st->queue.v[q].name, look.v[i].name) == 0;
		if (waiting)
			continue;
		if (st->queue.n == st->queue.cap) {
			over++;
			continue;
		}
		st->queue.v[st->queue.n] = look.v[i];
		st->queue.v[st->queue.n].name = strdup(look.v[i].name);
		if (st->queue.v[st->queue.n].name != NULL) {
			st->queue.n++;
			queued++;
		}
	}
	srm_files_free(&st->seen);
	st->seen = look;
	st->files_over_limit += over;
	if (over > 0)
		log_write(LOG_WARNING, &ctx, "%s: %" PRIu64 " file%s over max-files (%zu): not sent", st->directory, over,
			  over == 1 ? "" : "s", st->max_files);
	log_write(LOG_INFO, &ctx, "%s: %zu file%s to send", st->directory, queued, queued == 1 ? "" : "s");
}

/* The next file of the queue opened as the next object (its name checked
 * as a receiver will); false when none is left. A file that went or
 * cannot be read is logged, counted and passed over. */
static bool srm_dir_open_next(struct srm_sender *st)
{
	struct log_context ctx = { .stream = st->unit, .protocol = "srm" };
	char path[PATH_MAX + NAME_MAX + 2];
	const char *why;

	while (st->next_file < st->queue.n) {
		const struct srm_file *f = &st->queue.v[st->next_file++];
		struct stat sb;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", st->directory, f->name);
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			log_write(LOG_WARNING, &ctx, "cannot send %s: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
			if (fd >= 0)
				close(fd);
			st->files_failed++;
			continue;
		}
		st->fd = fd;
		st->at_eof = false;
		st->object++;
		st->offset = 0;
		st->crc = 0;
		snprintf(st->name, sizeof(st->name), "%s", f->name);
		st->name_len = strlen(st->name);
		why = srm_name_refusal((const uint8_t *)st->name, st->name_len);
		if (why != NULL) {
			char what[64];

			st->names_unsafe++;
			snprintf(what, sizeof(what), "sent without a name (%s)", why);
			srm_log_named(st->unit, NULL, LOG_WARNING, what, st->session, st->object, (const uint8_t *)st->name,
				      st->name_len);
			st->name_len = 0;	/* a receiver stores it as object-SESSION-N */
		}
		return true;
	}
	return false;
}

/* Up to a payload of the file being sent, as its next DATA; at its end
 * its END, LAST when no file follows. False when nothing is left. */
static bool srm_dir_send(struct srm_sender *st)
{
	size_t n = 0;
	ssize_t got = 1;
	bool more;

	if (st->fd < 0 && !srm_dir_open_next(st)) {
		st->ended = st->object > 0;
		return false;
	}
	while (!st->at_eof && n < st->payload_size && got > 0) {
		got = read(st->fd, st->packet + SRM_HEADER_SIZE + n, st->payload_size - n);
		if (got > 0)
			n += (size_t)got;
		else if (got < 0 && errno == EINTR)
			got = 1;
	}
	if (got < 0) {
		/* No END: a receiver never takes a short file for a whole one. */
		log_write(LOG_WARNING, &(struct log_context){ .stream = st->unit, .protocol = "srm" },
			  "cannot read %s/%s: %s; not sent whole", st->directory, st->name, strerror(errno));
		st->files_failed++;
		close(st->fd);
		st->fd = -1;
		return true;
	}
	st->at_eof = st->at_eof || n < st->payload_size;
	if (n > 0) {
		srm_send_payload(st, n);
		return true;
	}
	close(st->fd);
	st->fd = -1;
	st->files_sent++;
	more = st->next_file < st->queue.n;
	srm_send_end(st, !more);
	return true;
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

/* The block from first as k symbols in st->block; false when a datagram
 * of it is no longer kept. */
static bool srm_load_block(struct srm_sender *st, uint32_t first)
{
	unsigned k = srm_parity_plan_k(st->parity);
	size_t len, longest = 0;

	if (st->block_ready && st->block_first == first)
		return true;
	st->block_ready = false;
	for (unsigned j = 0; j < k; j++) {
		if (srm_window_get(st->window, first + j, &len) == NULL)
			return false;
		if (len > longest)
			longest = len;
	}
	if (longest < SRM_HEADER_SIZE || longest > SRM_PARITY_SYMBOL_MAX || (size_t)k * longest > st->block_cap)
		return false;
	for (unsigned j = 0; j < k; j++) {
		const uint8_t *kept = srm_window_get(st->window, first + j, &len);

		memcpy(st->block + j * longest, kept, len);
		memset(st->block + j * longest + len, 0, longest - len);
	}
	st->symbol_len = longest;
	st->block_first = first;
	st->block_ready = true;
	return true;
}

/* A queued parity: encoded from the block's kept datagrams (skipped when
 * the block left the window meanwhile). */
static bool srm_send_parity(struct srm_sender *st)
{
	const uint8_t *symbols[SRM_FEC_MAX_BLOCK];
	struct srm_header h = { .type = SRM_PARITY, .session = st->session };
	struct srm_parity p;
	uint32_t first;
	unsigned index, k;
	size_t len;

	if (st->parity == NULL)
		return false;
	k = srm_parity_plan_k(st->parity);
	while (srm_parity_plan_next(st->parity, &first, &index)) {
		if (!srm_load_block(st, first))
			continue;
		for (unsigned j = 0; j < k; j++)
			symbols[j] = st->block + j * st->symbol_len;
		p = (struct srm_parity){ .k = k, .index = index, .symbol_len = st->symbol_len };
		h.sequence = first;
		h.payload = st->repair + SRM_HEADER_SIZE;
		h.payload_len = srm_write_parity(st->repair + SRM_HEADER_SIZE, sizeof(st->repair) - SRM_HEADER_SIZE, &p);
		if (h.payload_len == 0 ||
		    !srm_fec_encode(k, index, symbols, st->symbol_len, st->repair + SRM_HEADER_SIZE + SRM_PARITY_BODY_SIZE))
			continue;
		len = srm_write(st->repair, sizeof(st->repair), &h);
		outlet_emit(st->outlet, st->repair, len);
		pace_sent(&st->pace, len);
		st->parity_sent++;
		return true;
	}
	return false;
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
	if (srm_send_repair(st, now) || srm_send_parity(st))
		return true;
	if (st->ended)
		return false;
	if (st->directory != NULL)
		return srm_dir_send(st);
	if (srm_send_data(st))
		return true;
	if (source_ended(st->source) && evbuffer_get_length(source_buffer(st->source)) == 0) {
		srm_send_end(st, true);
		return true;
	}
	return false;
}

static void srm_sender_tick(void *arg, uint64_t now)
{
	struct srm_sender *st = arg;
	unsigned sent = 0;

	st->source = outlet_source(st->outlet);
	if (st->source == NULL && st->directory == NULL)
		return;
	outlet_begin(st->outlet);
	while (sent < SRM_BURST && srm_send_one(st, now))
		sent++;
	outlet_end(st->outlet);
	if (st->source != NULL)
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

/* The pending GONE's ranges, all in one datagram; none pending after. */
static void srm_send_gone(struct srm_sender *st, uint64_t now)
{
	uint8_t body[SRM_MAX_RANGES * SRM_RANGE_SIZE];
	struct srm_header h = { .type = SRM_GONE, .session = st->session };
	size_t len;

	st->last_gone_ns = now;
	h.sequence = srm_window_leading(st->window);
	h.payload_len = srm_write_ranges(body, sizeof(body), st->gone_pending, st->n_gone_pending);
	st->n_gone_pending = 0;
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

static void srm_on_gone_timer(evutil_socket_t fd, short what, void *arg)
{
	struct srm_sender *st = arg;

	(void)fd;
	(void)what;
	if (st->n_gone_pending > 0)
		srm_send_gone(st, pacer_now_ns());
}

/* Whether serial range a holds all of b. */
static bool srm_range_holds(const struct srm_range *a, const struct srm_range *b)
{
	return (int32_t)(b->first - a->first) >= 0 && (int32_t)(a->last - b->last) >= 0;
}

/* GONE for what NAKs asked that left the window. A GONE goes outside the
 * rate's queue, so at most one per SRM_GONE_GAP_NS: a storm of NAKs for
 * what left long ago (a receiver far behind, or forged) cannot make the
 * sender send faster or starve its data. What comes between is gathered
 * into the next GONE, each range once (up to 64): a flood of one range
 * cannot crowd out the ranges other receivers wait for. */
static void srm_answer_gone(struct srm_sender *st, const struct srm_range *gone, size_t n, uint64_t now)
{
	struct timeval in = { 0, 0 };

	for (size_t i = 0; i < n; i++) {
		size_t j = 0;

		while (j < st->n_gone_pending && !srm_range_holds(&st->gone_pending[j], &gone[i]))
			j++;
		if (j == st->n_gone_pending && st->n_gone_pending < SRM_MAX_RANGES)
			st->gone_pending[st->n_gone_pending++] = gone[i];
	}
	if (st->last_gone_ns == 0 || now - st->last_gone_ns >= SRM_GONE_GAP_NS) {
		srm_send_gone(st, now);
		return;
	}
	st->gone_held++;
	if (!evtimer_pending(st->gone_timer, NULL)) {
		in.tv_usec = (suseconds_t)((st->last_gone_ns + SRM_GONE_GAP_NS - now) / 1000);
		evtimer_add(st->gone_timer, &in);
	}
}

static void srm_hear_receiver(struct srm_sender *st, uint32_t id, uint64_t now)
{
	struct srm_heard *slot = &st->heard[0];

	for (size_t i = 0; i < SRM_RECEIVERS_TRACKED; i++) {
		if (st->heard[i].last_ns != 0 && st->heard[i].id == id) {
			st->heard[i].last_ns = now;
			return;
		}
		if (st->heard[i].last_ns < slot->last_ns)
			slot = &st->heard[i];
	}
	slot->id = id;
	slot->last_ns = now;
}

static size_t srm_receivers_heard(const struct srm_sender *st, uint64_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < SRM_RECEIVERS_TRACKED; i++)
		n += st->heard[i].last_ns != 0 && now - st->heard[i].last_ns < SRM_RECEIVER_HEARD_NS;
	return n;
}

static void srm_sender_nak(struct srm_sender *st, const struct srm_header *h, uint64_t now)
{
	/* With fec, what parity does not answer comes back as ranges for
	 * plain repair: at most the NAK's own, each cut in three (before,
	 * past and in the window), and one per block it touches. */
	struct srm_range ranges[SRM_MAX_RANGES], gone[SRM_MAX_RANGES], plain[4 * SRM_MAX_RANGES];
	size_t n = srm_read_ranges(h, ranges, SRM_MAX_RANGES), n_gone = 0, n_plain = 0;
	const struct srm_range *repair = ranges;

	st->naks_received++;
	srm_hear_receiver(st, h->object, now);	/* a NAK's object is its receiver's id */
	if (st->parity != NULL) {
		srm_parity_plan_nak(st->parity, ranges, n, srm_window_trailing(st->window),
				    srm_window_leading(st->window), now, plain, &n_plain, sizeof(plain) / sizeof(plain[0]));
		repair = plain;
		n = n_plain;
	}
	for (size_t i = 0; i < n; i++)
		srm_window_request(st->window, &repair[i], now, gone, &n_gone, SRM_MAX_RANGES);
	if (n_gone > 0)
		srm_answer_gone(st, gone, n_gone, now);
	if (!pacer_armed(st->pacer))
		pacer_at(st->pacer, now);
}

static bool srm_on_link_nets(const struct srm_sender *st, const struct sockaddr *from)
{
	for (size_t i = 0; i < st->n_link_nets; i++)
		if (cidr_match(&st->link_nets[i], from))
			return true;
	return false;
}

static void srm_find_link_nets(struct srm_sender *st);

/* Whether a NAK's source is on the group's path: with no check (a ttl
 * over 1, or no interface given) any is. On IPv6 a link-local source is
 * on the link when it came in on the stream's interface. */
static bool srm_on_path(struct srm_sender *st, const struct sockaddr_storage *from, uint64_t now)
{
	const struct sockaddr_in6 *from6 = (const struct sockaddr_in6 *)from;

	if (!st->check_path)
		return true;
	if (from->ss_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&from6->sin6_addr))
		return from6->sin6_scope_id == st->ifindex;
	if (srm_on_link_nets(st, (const struct sockaddr *)from))
		return true;
	if (now - st->link_nets_ns < SRM_NS_PER_MS * 1000)
		return false;
	srm_find_link_nets(st);
	return srm_on_link_nets(st, (const struct sockaddr *)from);
}

static void srm_sender_on_nak_socket(evutil_socket_t fd, short what, void *arg)
{
	struct srm_sender *st = arg;
	uint8_t data[SRM_DATAGRAM_MAX];
	struct srm_header h;

	for (unsigned i = 0; i < SRM_READ_BURST; i++) {
		struct sockaddr_storage from = { 0 };
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
		else if (!srm_on_path(st, &from, pacer_now_ns()))
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

static int srm_join(int fd, const struct conf_stream *conf)
{
	const struct sockaddr_storage *group = &conf->destinations[0].sa;

	if (group->ss_family == AF_INET) {
		struct ip_mreqn mreq = { .imr_multiaddr = ((const struct sockaddr_in *)group)->sin_addr,
					 .imr_address = conf->if_addr, .imr_ifindex = (int)conf->ifindex };

		return setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq));
	}
	struct ipv6_mreq mreq6 = { .ipv6mr_multiaddr = ((const struct sockaddr_in6 *)group)->sin6_addr,
				   .ipv6mr_interface = conf->ifindex };

	return setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mreq6, sizeof(mreq6));
}

/* A socket on the group's port, joined on the stream's interface: the
 * receivers' NAKs come to the group. */
static int srm_open_nak_socket(const struct conf_stream *conf, char *err, size_t err_len)
{
	struct endpoint group = conf->destinations[0];
	int one = 1, fd = socket(group.sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	addr_scope_group(&group.sa, conf->ifindex);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (group.sa.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)&group.sa, group.len) < 0 || srm_join(fd, conf) < 0) {
		snprintf(err, err_len, "the NAK socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The interface a stream names, by index or by one of its addresses. */
static bool srm_is_stream_interface(const struct srm_sender *st, const struct ifaddrs *ifa)
{
	if (st->ifindex != 0)
		return if_nametoindex(ifa->ifa_name) == st->ifindex;
	return ifa->ifa_addr->sa_family == AF_INET &&
	       ((const struct sockaddr_in *)ifa->ifa_addr)->sin_addr.s_addr == st->if_addr.s_addr;
}

/* An address of the interface as its subnet; once each, and no
 * link-local one (those are checked by scope). */
static void srm_add_link_net(struct srm_sender *st, const struct ifaddrs *ifa)
{
	struct cidr net = { .family = ifa->ifa_addr->sa_family };
	const uint8_t *addr, *mask;
	size_t n;

	if (net.family == AF_INET) {
		addr = (const uint8_t *)&((const struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
		mask = (const uint8_t *)&((const struct sockaddr_in *)ifa->ifa_netmask)->sin_addr;
		n = 4;
	} else {
		if (IN6_IS_ADDR_LINKLOCAL(&((const struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr))
			return;
		addr = ((const struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr.s6_addr;
		mask = ((const struct sockaddr_in6 *)ifa->ifa_netmask)->sin6_addr.s6_addr;
		n = 16;
	}
	for (size_t i = 0; i < n; i++) {
		net.bytes[i] = addr[i] & mask[i];
		net.prefix += (unsigned)__builtin_popcount(mask[i]);
	}
	for (size_t i = 0; i < st->n_link_nets; i++)
		if (memcmp(&st->link_nets[i], &net, sizeof(net)) == 0)
			return;
	st->link_nets[st->n_link_nets++] = net;
}

/* With ttl 0 or 1 the group reaches only the interface's link, so a
 * receiver's NAK comes from one of its subnets; one from elsewhere (a
 * spoof from off the link) is dropped and counted. A ttl over 1 routes
 * the group on, and any source may be a receiver. */
static void srm_find_link_nets(struct srm_sender *st)
{
	struct ifaddrs *all, *ifa;
	const char *name = NULL;

	st->link_nets_ns = pacer_now_ns();
	if (getifaddrs(&all) < 0)
		return;
	st->n_link_nets = 0;
	for (ifa = all; ifa != NULL && name == NULL; ifa = ifa->ifa_next)
		if (ifa->ifa_addr != NULL && srm_is_stream_interface(st, ifa))
			name = ifa->ifa_name;
	for (ifa = all; ifa != NULL && name != NULL && st->n_link_nets < SRM_LINK_NETS; ifa = ifa->ifa_next)
		if (ifa->ifa_addr != NULL && ifa->ifa_netmask != NULL && ifa->ifa_addr->sa_family == st->family &&
		    strcmp(ifa->ifa_name, name) == 0)
			srm_add_link_net(st, ifa);
	freeifaddrs(all);
}

static void srm_path_check_begin(struct srm_sender *st, const struct conf_stream *conf)
{
	st->ifindex = conf->ifindex;
	st->if_addr = conf->if_addr;
	st->family = conf->destinations[0].sa.ss_family;
	st->check_path = conf->ttl <= 1 && (conf->ifindex != 0 || conf->if_addr.s_addr != htonl(INADDR_ANY));
	if (st->check_path)
		srm_find_link_nets(st);
}

/* The first look at the directory, once the loop runs: after the daemon
 * dropped root, as a source's file is opened. */
static void srm_dir_begin(evutil_socket_t fd, short what, void *arg)
{
	struct srm_sender *st = arg;

	(void)fd;
	(void)what;
	srm_dir_queue(st);
	st->looked = true;
	if (st->queue.n == 0)
		st->ended = true;
	if (!pacer_armed(st->pacer))
		pacer_at(st->pacer, pacer_now_ns());
}

void srm_sender_reloaded(struct srm_sender *st)
{
	if (st->directory == NULL || !st->looked)
		return;
	srm_dir_queue(st);
	if (st->fd < 0 && st->next_file < st->queue.n)
		st->ended = false;
	if (!st->ended && !pacer_armed(st->pacer))
		pacer_at(st->pacer, pacer_now_ns());
}

void srm_sender_free(struct srm_sender *st)
{
	if (st->begin != NULL)
		event_free(st->begin);
	if (st->fd >= 0)
		close(st->fd);
	srm_files_free(&st->seen);
	srm_files_free(&st->queue);
	free(st->directory);
	if (st->outlet != NULL)
		outlet_close(st->outlet);
	if (st->nak_event != NULL)
		event_free(st->nak_event);
	if (st->heartbeat_timer != NULL)
		event_free(st->heartbeat_timer);
	if (st->gone_timer != NULL)
		event_free(st->gone_timer);
	if (st->chunks != NULL)
		evbuffer_free(st->chunks);
	if (st->nak_fd >= 0)
		close(st->nak_fd);
	srm_window_free(st->window);
	srm_parity_plan_free(st->parity);
	free(st->block);
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

static bool srm_dir_prepare(struct srm_sender *st, const struct srm_settings *s, const struct unit_env *env)
{
	st->directory = strdup(s->directory);
	st->max_files = s->max_files;
	st->queue.cap = s->max_files;
	st->queue.v = calloc(s->max_files, sizeof(*st->queue.v));
	st->begin = evtimer_new(env->base, srm_dir_begin, st);
	return st->directory != NULL && st->queue.v != NULL && st->begin != NULL;
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
	st->fd = -1;
	st->unit = env->unit;
	st->session = s->session;
	st->object = s->directory != NULL ? 0 : 1;	/* a directory's first file is object 1 */
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
	srm_path_check_begin(st, conf);
	if (s->fec_k > 0) {
		st->parity = srm_parity_plan_new(s->fec_k, s->fec_n, s->fec_proactive, s->window, st->hold_off_ns,
						 srm_window_leading(st->window));
		/* A block's longest datagram: a DATA, or an END with a name. */
		st->block_cap = (size_t)s->fec_k * (SRM_HEADER_SIZE + (st->payload_size > SRM_END_BODY_SIZE + SRM_NAME_MAX
									? st->payload_size
									: SRM_END_BODY_SIZE + SRM_NAME_MAX));
		st->block = malloc(st->block_cap);
		if (st->parity == NULL || st->block == NULL) {
			srm_log(env->unit, NULL, LOG_ERR, "out of memory", st->session, 0);
			srm_sender_free(st);
			return NULL;
		}
	}
	if (s->directory != NULL && !srm_dir_prepare(st, s, env)) {
		srm_sender_free(st);
		return NULL;
	}
	st->nak_event = event_new(env->base, st->nak_fd, EV_READ | EV_PERSIST, srm_sender_on_nak_socket, st);
	st->heartbeat_timer = event_new(env->base, -1, EV_PERSIST, srm_sender_heartbeat, st);
	st->gone_timer = evtimer_new(env->base, srm_on_gone_timer, st);
	pace_start(&st->pace, conf->rate ? conf->rate / 8 : 0, (uint64_t)SRM_BURST * SRM_DATAGRAM_MAX,
		   pacer_now_ns());
	st->outlet = outlet_open(env, &srm_outlet_hooks, st);
	if (st->nak_event == NULL || st->heartbeat_timer == NULL || st->gone_timer == NULL || st->outlet == NULL ||
	    event_add(st->nak_event, NULL) < 0 || event_add(st->heartbeat_timer, &every) < 0) {
		srm_sender_free(st);
		return NULL;
	}
	st->pacer = outlet_pacer(st->outlet);
	if (st->begin != NULL)
		event_active(st->begin, EV_TIMEOUT, 0);
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
		 " gone=%" PRIu64 " gone_held=%" PRIu64 " heartbeats=%" PRIu64 " bad=%" PRIu64 " foreign=%" PRIu64
		 " naks_off_path=%" PRIu64 " receivers_heard=%zu",
		 st->sent, st->repaired, st->naks_received, w->held_off, st->gone_sent, st->gone_held, st->heartbeats, st->bad,
		 st->foreign, st->naks_off_path, srm_receivers_heard(st, pacer_now_ns()));
	used = strlen(buf);
	if (st->parity != NULL && used < len) {
		const struct srm_parity_counters *p = srm_parity_plan_counters(st->parity);

		snprintf(buf + used, len - used,
			 " parity_sent=%" PRIu64 " parity_held_off=%" PRIu64 " parity_exhausted=%" PRIu64
			 " parity_partial=%" PRIu64,
			 st->parity_sent, p->held_off, p->exhausted, p->partial);
		used = strlen(buf);
	}
	if (st->directory != NULL && used < len)
		snprintf(buf + used, len - used,
			 " files_sent=%" PRIu64 " files_waiting=%zu files_failed=%" PRIu64 " files_over_limit=%" PRIu64
			 " names_unsafe=%" PRIu64,
			 st->files_sent, st->queue.n - st->next_file + (st->fd >= 0), st->files_failed,
			 st->files_over_limit, st->names_unsafe);
}

void srm_sender_status_rows(const struct srm_sender *st, char *buf, size_t len)
{
	outlet_status_rows(st->outlet, buf, len);
}

void srm_sender_status_text(const struct srm_sender *st, char *buf, size_t len)
{
	char escaped[4 * NAME_MAX + 1];

	if (st->directory == NULL) {
		outlet_status_text(st->outlet, buf, len);
		return;
	}
	if (st->fd >= 0) {
		text_escape_utf8(st->name, strlen(st->name), escaped, sizeof(escaped));
		snprintf(buf, len, "state sending\nfile %s\n", escaped);
	} else {
		snprintf(buf, len, "state %s\n", st->ended ? "ended" : "waiting");
	}
}
