/* The transmit window is a ring of slots: the sequences kept are always
 * the contiguous run [trailing, leading), the trailing one in slot
 * first_slot, so a sequence's slot is found without a search (not by
 * sequence modulo size, which would collide across the 2^32 wrap unless
 * the size divided it). Repairs wait
 * in a FIFO of sequences as long as the ring: a sequence is queued at
 * most once while kept, and one that left the window while queued is
 * skipped when its turn comes. */
#include "protocols/srm/window.h"

#include <stdlib.h>
#include <string.h>

struct slot {
	uint8_t *data;
	size_t len, cap;
	bool queued;
	bool repaired;			/* once at least: repaired_at_ns means something */
	uint64_t repaired_at_ns;
};

struct srm_window {
	struct slot *slots;
	size_t size;			/* slots, the bound in datagrams */
	size_t max_bytes, bytes;
	uint64_t hold_off_ns;
	uint32_t trailing, leading;
	size_t first_slot;		/* trailing's */
	uint32_t *queue;		/* sequences to repair, oldest request first */
	size_t queue_head, queue_len;
	struct srm_window_counters counters;
};

struct srm_window *srm_window_new(size_t max_datagrams, size_t max_bytes, uint64_t hold_off_ns,
				  uint32_t first_sequence)
{
	struct srm_window *w;

	if (max_datagrams == 0 || max_datagrams > 0x40000000u)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->slots = calloc(max_datagrams, sizeof(*w->slots));
	w->queue = calloc(max_datagrams, sizeof(*w->queue));
	if (w->slots == NULL || w->queue == NULL) {
		srm_window_free(w);
		return NULL;
	}
	w->size = max_datagrams;
	w->max_bytes = max_bytes;
	w->hold_off_ns = hold_off_ns;
	w->trailing = w->leading = first_sequence;
	return w;
}

void srm_window_free(struct srm_window *w)
{
	if (w == NULL)
		return;
	if (w->slots != NULL)
		for (size_t i = 0; i < w->size; i++)
			free(w->slots[i].data);
	free(w->slots);
	free(w->queue);
	free(w);
}

static size_t held(const struct srm_window *w)
{
	return (size_t)(w->leading - w->trailing);
}

/* seq must be in [trailing, trailing + size). */
static struct slot *slot_of(const struct srm_window *w, uint32_t seq)
{
	return &w->slots[(w->first_slot + (size_t)(seq - w->trailing)) % w->size];
}

/* The slot's buffer stays for the next datagram that lands there: the
 * window is full most of the time, so this saves a free and a malloc per
 * datagram. */
static void evict_oldest(struct srm_window *w)
{
	struct slot *s = slot_of(w, w->trailing);

	w->bytes -= s->len;
	s->len = 0;
	s->queued = false;
	s->repaired = false;
	w->trailing++;
	w->first_slot = (w->first_slot + 1) % w->size;
	w->counters.evicted++;
}

static bool store(struct slot *s, const uint8_t *datagram, size_t len)
{
	if (len > s->cap) {
		uint8_t *bigger = realloc(s->data, len);

		if (bigger == NULL)
			return false;
		s->data = bigger;
		s->cap = len;
	}
	if (len > 0)
		memcpy(s->data, datagram, len);
	s->len = len;
	return true;
}

bool srm_window_keep(struct srm_window *w, const uint8_t *datagram, size_t len)
{
	while (held(w) > 0 && (held(w) >= w->size || w->bytes + len > w->max_bytes))
		evict_oldest(w);
	w->leading++;
	if (len > w->max_bytes || !store(slot_of(w, w->leading - 1), datagram, len)) {
		/* Sent, not kept: the window starts after it. */
		while (held(w) > 0)
			evict_oldest(w);
		return false;
	}
	w->bytes += len;
	w->counters.kept++;
	return true;
}

uint32_t srm_window_trailing(const struct srm_window *w)
{
	return w->trailing;
}

uint32_t srm_window_leading(const struct srm_window *w)
{
	return w->leading;
}

static bool in_window(const struct srm_window *w, uint32_t seq)
{
	return (size_t)(seq - w->trailing) < held(w);
}

const uint8_t *srm_window_get(const struct srm_window *w, uint32_t seq, size_t *len)
{
	const struct slot *s;

	if (!in_window(w, seq))
		return NULL;
	s = slot_of(w, seq);
	*len = s->len;
	return s->data;
}

/* a - b as a signed distance across the wrap, -2^31 .. 2^31 - 1. */
static int64_t distance(uint32_t a, uint32_t b)
{
	uint32_t d = a - b;

	return d < 0x80000000u ? (int64_t)d : (int64_t)d - 0x100000000ll;
}

static void queue_one(struct srm_window *w, uint32_t seq, uint64_t now_ns)
{
	struct slot *s = slot_of(w, seq);

	if (s->queued || (s->repaired && now_ns - s->repaired_at_ns < w->hold_off_ns)) {
		w->counters.held_off++;
		return;
	}
	if (w->queue_len == w->size) {
		w->counters.queue_full++;
		return;
	}
	w->queue[(w->queue_head + w->queue_len++) % w->size] = seq;
	s->queued = true;
	w->counters.queued++;
}

static void note_gone(const struct srm_range *range, int64_t from, int64_t to, struct srm_range *gone,
		      size_t *n_gone, size_t max_gone)
{
	if (*n_gone >= max_gone)
		return;
	gone[*n_gone].first = range->first;
	gone[*n_gone].last = range->first + (uint32_t)(to - from);
	(*n_gone)++;
}

void srm_window_request(struct srm_window *w, const struct srm_range *range, uint64_t now_ns,
			struct srm_range *gone, size_t *n_gone, size_t max_gone)
{
	/* Offsets from the trailing edge: the window is [0, held). A range is
	 * under 2^31 long (srm_parse), so int64 holds both ends. */
	int64_t from = distance(range->first, w->trailing);
	int64_t to = from + (int64_t)(uint32_t)(range->last - range->first);
	int64_t end = (int64_t)held(w);

	w->counters.requested += (uint64_t)(to - from + 1);
	if (from < 0) {
		int64_t gone_to = to < 0 ? to : -1;

		w->counters.gone += (uint64_t)(gone_to - from + 1);
		note_gone(range, from, gone_to, gone, n_gone, max_gone);
	}
	for (int64_t at = from < 0 ? 0 : from; at <= to && at < end; at++)
		queue_one(w, w->trailing + (uint32_t)at, now_ns);
	if (to >= end)
		w->counters.implausible += (uint64_t)(to - (from > end ? from : end) + 1);
}

bool srm_window_next_repair(struct srm_window *w, uint64_t now_ns, uint32_t *seq)
{
	while (w->queue_len > 0) {
		uint32_t next = w->queue[w->queue_head];
		struct slot *s;

		w->queue_head = (w->queue_head + 1) % w->size;
		w->queue_len--;
		if (!in_window(w, next))
			continue;
		s = slot_of(w, next);
		if (!s->queued)
			continue;
		s->queued = false;
		s->repaired = true;
		s->repaired_at_ns = now_ns;
		*seq = next;
		return true;
	}
	return false;
}

const struct srm_window_counters *srm_window_counters(const struct srm_window *w)
{
	return &w->counters;
}
