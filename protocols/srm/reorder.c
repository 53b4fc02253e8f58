/* A ring of slots for the sequences [next, next + size): `next` is the
 * first not yet delivered, `leading` one past the highest known to exist
 * (heard, or announced by a heartbeat). A slot in [next, leading) is
 * present (held), gone (given up) or missing (a NAK due at nak_at_ns). */
#include "protocols/srm/reorder.h"

#include <stdlib.h>
#include <string.h>

struct rslot {
	uint8_t *data;
	size_t cap;
	struct srm_header h;		/* payload points into data */
	bool present, gone;
	uint64_t nak_at_ns;
	uint64_t naked_ns;		/* when our last NAK for it went, 0: none */
};

struct srm_reorder {
	struct rslot *slots;
	size_t size, first_slot;	/* first_slot: next's */
	uint32_t next, leading;
	size_t bytes, missing;
	struct srm_reorder_limits limits;
	uint32_t rng;
	uint64_t rtt_ns;		/* smoothed NAK-to-repair time, 0: not measured yet */
	srm_deliver_fn *deliver;
	void *arg;
	struct srm_reorder_counters counters;
};

struct srm_reorder *srm_reorder_new(const struct srm_reorder_limits *limits, uint32_t first, uint32_t seed,
				    srm_deliver_fn *deliver, void *arg)
{
	struct srm_reorder *r;

	if (limits->datagrams == 0 || limits->datagrams > 0x40000000u)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->slots = calloc(limits->datagrams, sizeof(*r->slots));
	if (r->slots == NULL) {
		free(r);
		return NULL;
	}
	r->size = limits->datagrams;
	r->limits = *limits;
	r->next = r->leading = first;
	r->rng = seed ? seed : 0x9E3779B9u;	/* xorshift must not start at 0 */
	r->deliver = deliver;
	r->arg = arg;
	return r;
}

void srm_reorder_free(struct srm_reorder *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->size; i++)
		free(r->slots[i].data);
	free(r->slots);
	free(r);
}

/* The back-off spans twice the measured round trip (the other receivers'
 * NAKs have time to arrive and hold ours back, as NORM's does over a
 * multiple of its GRTT), never over the configured back-off, which is
 * also the span before a first measurement. */
#define RTT_BACKOFF_FACTOR 2
#define RTT_BACKOFF_MIN_NS 1000000ull

static uint64_t backoff_span(const struct srm_reorder *r)
{
	uint64_t span = RTT_BACKOFF_FACTOR * r->rtt_ns;

	if (r->rtt_ns == 0 || span > r->limits.backoff_ns)
		return r->limits.backoff_ns;
	return span < RTT_BACKOFF_MIN_NS ? RTT_BACKOFF_MIN_NS : span;
}

/* xorshift32: a back-off needs spread between receivers, not secrecy. */
static uint64_t random_backoff(struct srm_reorder *r)
{
	uint64_t span = backoff_span(r);

	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 17;
	r->rng ^= r->rng << 5;
	return span == 0 ? 0 : r->rng % (span + 1);
}

/* A repair of a sequence we NAKed: one sample of the round trip, smoothed
 * like TCP's SRTT (RFC 6298: 1/8 of each new sample). */
static void rtt_sample(struct srm_reorder *r, const struct rslot *s, const struct srm_header *h, uint64_t now_ns)
{
	uint64_t sample;

	if (h->type != SRM_REPAIR || s->naked_ns == 0 || now_ns < s->naked_ns)
		return;
	sample = now_ns - s->naked_ns;
	r->rtt_ns = r->rtt_ns == 0 ? sample : r->rtt_ns - r->rtt_ns / 8 + sample / 8;
}

/* seq in [next, next + size). */
static struct rslot *slot_of(const struct srm_reorder *r, uint32_t seq)
{
	return &r->slots[(r->first_slot + (size_t)(seq - r->next)) % r->size];
}

static size_t known(const struct srm_reorder *r)
{
	return (size_t)(r->leading - r->next);
}

/* Sequences [leading, to) exist but were not heard: missing, each NAK due
 * after its own random back-off. `to` is at most next + size. */
static void extend(struct srm_reorder *r, uint32_t to, uint64_t now_ns)
{
	while (r->leading != to) {
		struct rslot *s = slot_of(r, r->leading);

		s->present = s->gone = false;
		s->naked_ns = 0;
		s->nak_at_ns = now_ns + random_backoff(r);
		r->missing++;
		r->leading++;
	}
}

/* A slot keeps a buffer of a usual datagram's size for the next one; a
 * larger one is freed, so that what stays allocated is bounded by the
 * window's slots times SLOT_KEEP_BYTES, plus the bytes held. */
#define SLOT_KEEP_BYTES 2048

static void release(struct srm_reorder *r, struct rslot *s)
{
	r->bytes -= s->h.payload_len;
	s->present = s->gone = false;
	s->h.payload_len = 0;
	if (s->cap > SLOT_KEEP_BYTES) {
		free(s->data);
		s->data = NULL;
		s->cap = 0;
	}
}

static void deliver_ready(struct srm_reorder *r)
{
	while (known(r) > 0) {
		struct rslot *s = slot_of(r, r->next);
		uint32_t seq = r->next;

		if (!s->present && !s->gone)
			return;
		/* Advance first: the callback may look at the counters. */
		r->next++;
		r->first_slot = (r->first_slot + 1) % r->size;
		if (s->present) {
			r->counters.delivered++;
			r->deliver(r->arg, seq, &s->h);
		} else {
			r->deliver(r->arg, seq, NULL);
		}
		release(r, s);
	}
}

/* A REPAIR is delivered as what it repairs. */
static void store(struct rslot *s, const struct srm_header *h)
{
	s->h = *h;
	if (h->type == SRM_REPAIR)
		s->h.type = h->flags & SRM_FLAG_END ? SRM_END : SRM_DATA;
	s->h.flags = (uint16_t)(h->flags & ~SRM_FLAG_END);
	if (h->payload_len > 0)
		memcpy(s->data, h->payload, h->payload_len);
	s->h.payload = s->data;
	s->present = true;
}

static bool make_room(struct rslot *s, size_t len)
{
	uint8_t *bigger;

	if (len <= s->cap)
		return true;
	bigger = realloc(s->data, len);
	if (bigger == NULL)
		return false;
	s->data = bigger;
	s->cap = len;
	return true;
}

int srm_reorder_add(struct srm_reorder *r, const struct srm_header *h, uint64_t now_ns)
{
	uint32_t offset = h->sequence - r->next;
	struct rslot *s;

	if (offset >= 0x80000000u) {	/* before next: delivered or given up */
		r->counters.duplicates++;
		return SRM_REORDER_DUPLICATE;
	}
	if (offset >= r->size) {
		extend(r, r->next + (uint32_t)r->size, now_ns);
		r->counters.ahead++;
		return SRM_REORDER_AHEAD;
	}
	s = slot_of(r, h->sequence);
	if (offset < known(r) && (s->present || s->gone)) {
		r->counters.duplicates++;
		return SRM_REORDER_DUPLICATE;
	}
	/* The next in order is delivered at once, so it never waits for room. */
	if ((offset != 0 && r->bytes + h->payload_len > r->limits.bytes) || !make_room(s, h->payload_len)) {
		r->counters.over_bytes++;
		return SRM_REORDER_OVER_BYTES;
	}
	if (offset >= known(r)) {
		extend(r, h->sequence, now_ns);
	} else {
		r->missing--;
		rtt_sample(r, s, h, now_ns);
	}
	if (offset >= known(r))
		r->leading = h->sequence + 1;
	store(s, h);
	r->bytes += h->payload_len;
	deliver_ready(r);
	return SRM_REORDER_KEPT;
}

void srm_reorder_heard_leading(struct srm_reorder *r, uint32_t leading, uint64_t now_ns)
{
	uint32_t offset = leading - r->next;

	if (offset >= 0x80000000u || offset <= known(r))
		return;
	if (offset > r->size)
		offset = (uint32_t)r->size;
	extend(r, r->next + offset, now_ns);
}

/* The part of range within [next, next + limit), as offsets from next;
 * false when none. */
static bool clip(const struct srm_reorder *r, const struct srm_range *range, size_t limit, size_t *from,
		 size_t *to)
{
	uint32_t start = range->first - r->next;
	int64_t lo = start < 0x80000000u ? (int64_t)start : (int64_t)start - 0x100000000ll;
	int64_t hi = lo + (int64_t)(uint32_t)(range->last - range->first);

	if (limit == 0 || hi < 0 || lo >= (int64_t)limit)
		return false;
	*from = lo < 0 ? 0 : (size_t)lo;
	*to = hi >= (int64_t)limit ? limit - 1 : (size_t)hi;
	return true;
}

void srm_reorder_suppress(struct srm_reorder *r, const struct srm_range *range, uint64_t now_ns)
{
	size_t from, to;

	if (!clip(r, range, known(r), &from, &to))
		return;
	for (size_t at = from; at <= to; at++) {
		struct rslot *s = slot_of(r, r->next + (uint32_t)at);

		if (!s->present && !s->gone && s->nak_at_ns < now_ns + r->limits.retry_ns) {
			s->nak_at_ns = now_ns + r->limits.retry_ns;
			r->counters.suppressed++;
		}
	}
}

void srm_reorder_gone(struct srm_reorder *r, const struct srm_range *range)
{
	size_t from, to;

	if (!clip(r, range, r->size, &from, &to))
		return;
	if (to >= known(r))
		extend(r, r->next + (uint32_t)to + 1, 0);
	for (size_t at = from; at <= to; at++) {
		struct rslot *s = slot_of(r, r->next + (uint32_t)at);

		if (!s->present && !s->gone) {
			s->gone = true;
			r->missing--;
			r->counters.lost++;
		}
	}
	deliver_ready(r);
}

static size_t add_to_ranges(struct srm_range *out, size_t n, size_t max, uint32_t seq)
{
	if (n > 0 && out[n - 1].last + 1 == seq) {
		out[n - 1].last = seq;
		return n;
	}
	if (n == max)
		return n;
	out[n].first = out[n].last = seq;
	return n + 1;
}

size_t srm_reorder_due_naks(struct srm_reorder *r, uint64_t now_ns, struct srm_range *out, size_t max)
{
	size_t n = 0;

	for (size_t at = 0; at < known(r) && max > 0; at++) {
		uint32_t seq = r->next + (uint32_t)at;
		struct rslot *s = slot_of(r, seq);
		size_t before = n;

		if (s->present || s->gone || s->nak_at_ns > now_ns)
			continue;
		n = add_to_ranges(out, n, max, seq);
		if (n == before && (n == 0 || out[n - 1].last != seq))
			break;	/* no room for another range */
		s->nak_at_ns = now_ns + r->limits.retry_ns;
		s->naked_ns = now_ns;
		r->counters.nak_sequences++;
	}
	return n;
}

int srm_reorder_state(const struct srm_reorder *r, uint32_t seq)
{
	uint32_t offset = seq - r->next;
	const struct rslot *s;

	if (offset >= 0x80000000u)
		return SRM_REORDER_PAST;
	if (offset >= r->size)
		return SRM_REORDER_BEYOND;
	if (offset >= known(r))
		return SRM_REORDER_MISSING;
	s = slot_of(r, seq);
	if (s->present)
		return SRM_REORDER_HELD;
	return s->gone ? SRM_REORDER_GIVEN_UP : SRM_REORDER_MISSING;
}

const struct srm_header *srm_reorder_held(const struct srm_reorder *r, uint32_t seq)
{
	if (srm_reorder_state(r, seq) != SRM_REORDER_HELD)
		return NULL;
	return &slot_of(r, seq)->h;
}

size_t srm_reorder_missing(const struct srm_reorder *r)
{
	return r->missing;
}

uint64_t srm_reorder_rtt_ns(const struct srm_reorder *r)
{
	return r->rtt_ns;
}

uint32_t srm_reorder_next(const struct srm_reorder *r)
{
	return r->next;
}

const struct srm_reorder_counters *srm_reorder_counters(const struct srm_reorder *r)
{
	return &r->counters;
}
