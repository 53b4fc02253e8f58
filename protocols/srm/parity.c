/* Blocks are numbered by their offset from the first sequence over k, so
 * a block's state sits in a ring of slots at its number modulo the slots,
 * tagged with the number (the window spans fewer blocks than the ring
 * holds, so two blocks still kept never share a slot). Queued parity is a
 * FIFO of (block, index); a block's indices are handed out in order and
 * never twice. */
#include "protocols/srm/parity.h"

#include <stdlib.h>

#include "protocols/srm/fec.h"

struct block_state {
	bool used;
	uint32_t number;
	unsigned next_index;		/* parity indices handed out: 0 .. next_index - 1 */
	bool period_open;
	uint64_t period_start_ns;	/* the hold-off the block's NAK answers are counted in */
	unsigned period_sent;		/* parity queued for NAKs in it */
};

struct queued {
	uint32_t first;
	unsigned index;
};

struct srm_parity_plan {
	unsigned k, n, proactive;
	uint64_t hold_off_ns;
	uint32_t first_sequence;
	struct block_state *blocks;
	size_t n_blocks;
	struct queued *queue;
	size_t queue_cap, queue_head, queue_len;
	struct srm_parity_counters counters;
};

struct srm_parity_plan *srm_parity_plan_new(unsigned k, unsigned n, unsigned proactive, size_t window,
					    uint64_t hold_off_ns, uint32_t first_sequence)
{
	struct srm_parity_plan *plan;

	if (k < 1 || n < 1 || k + n > SRM_FEC_MAX_BLOCK || proactive > n || window == 0 || window > 0x40000000u)
		return NULL;
	plan = calloc(1, sizeof(*plan));
	if (plan == NULL)
		return NULL;
	plan->k = k;
	plan->n = n;
	plan->proactive = proactive;
	plan->hold_off_ns = hold_off_ns;
	plan->first_sequence = first_sequence;
	plan->n_blocks = window / k + 2;
	plan->queue_cap = plan->n_blocks * n;
	plan->blocks = calloc(plan->n_blocks, sizeof(*plan->blocks));
	plan->queue = calloc(plan->queue_cap, sizeof(*plan->queue));
	if (plan->blocks == NULL || plan->queue == NULL) {
		srm_parity_plan_free(plan);
		return NULL;
	}
	return plan;
}

void srm_parity_plan_free(struct srm_parity_plan *plan)
{
	if (plan == NULL)
		return;
	free(plan->blocks);
	free(plan->queue);
	free(plan);
}

unsigned srm_parity_plan_k(const struct srm_parity_plan *plan)
{
	return plan->k;
}

const struct srm_parity_counters *srm_parity_plan_counters(const struct srm_parity_plan *plan)
{
	return &plan->counters;
}

/* Offsets from the first sequence run 0 .. 2^32 - 1: the last block
 * before they wrap is cut short unless k divides 2^32. */
uint32_t srm_parity_block_first(const struct srm_parity_plan *plan, uint32_t seq, unsigned *count)
{
	uint32_t offset = seq - plan->first_sequence;
	uint64_t start = (uint64_t)(offset / plan->k) * plan->k;
	uint64_t left = 0x100000000ull - start;

	*count = left < plan->k ? (unsigned)left : plan->k;
	return plan->first_sequence + (uint32_t)start;
}

static struct block_state *block_of(struct srm_parity_plan *plan, uint32_t first)
{
	uint32_t number = (first - plan->first_sequence) / plan->k;
	struct block_state *b = &plan->blocks[number % plan->n_blocks];

	if (!b->used || b->number != number)
		*b = (struct block_state){ .used = true, .number = number };
	return b;
}

/* Queues parity indices from the block's next on, up to want of them;
 * returns how many it queued. */
static unsigned queue_parity(struct srm_parity_plan *plan, struct block_state *b, uint32_t first, unsigned want)
{
	unsigned queued = 0;

	while (queued < want && b->next_index < plan->n) {
		if (plan->queue_len == plan->queue_cap) {
			plan->counters.queue_full += want - queued;
			break;
		}
		plan->queue[(plan->queue_head + plan->queue_len++) % plan->queue_cap] =
			(struct queued){ .first = first, .index = b->next_index++ };
		plan->counters.queued++;
		queued++;
	}
	return queued;
}

void srm_parity_plan_sent(struct srm_parity_plan *plan, uint32_t leading)
{
	uint32_t offset = leading - plan->first_sequence;
	struct block_state *b;
	uint32_t first;

	if (plan->proactive == 0 || offset == 0 || offset % plan->k != 0)
		return;
	first = leading - plan->k;
	b = block_of(plan, first);
	queue_parity(plan, b, first, plan->proactive);
}

/* The last `count` sequences of the portions (one block's part of a NAK,
 * in the NAK's order) to plain repair. */
static void append_plain(const struct srm_range *portions, size_t n_portions, uint32_t count,
			 struct srm_range *plain, size_t *n_plain, size_t max_plain)
{
	size_t i = n_portions;

	while (count > 0 && i > 0 && *n_plain < max_plain) {
		struct srm_range r = portions[--i];
		uint32_t len = r.last - r.first + 1;

		if (len > count)
			r.first = r.last - count + 1;
		plain[(*n_plain)++] = r;
		count -= len > count ? count : len;
	}
}

static void add_plain(struct srm_range *plain, size_t *n_plain, size_t max_plain, uint32_t first, uint32_t last)
{
	if (*n_plain < max_plain)
		plain[(*n_plain)++] = (struct srm_range){ .first = first, .last = last };
}

struct nak_block {
	bool open;
	uint32_t first;
	unsigned count;			/* the block's sequences: k, or fewer at the wrap */
	uint32_t missing;		/* NAKed in it */
	struct srm_range portions[SRM_MAX_RANGES];
	size_t n_portions;
};

/* Whether [first, first + k) was sent whole and is still all kept. */
static bool block_kept_whole(const struct srm_parity_plan *plan, const struct nak_block *nb, uint32_t trailing,
			     uint32_t leading)
{
	uint32_t held = leading - trailing, at = nb->first - trailing;

	return nb->count == plan->k && held >= plan->k && at <= held - plan->k;
}

static void answer_block(struct srm_parity_plan *plan, struct nak_block *nb, uint32_t trailing, uint32_t leading,
			 uint64_t now_ns, struct srm_range *plain, size_t *n_plain, size_t max_plain)
{
	struct block_state *b;
	unsigned extra, queued;

	if (!nb->open)
		return;
	nb->open = false;
	if (!block_kept_whole(plan, nb, trailing, leading)) {
		plan->counters.partial += nb->missing;
		append_plain(nb->portions, nb->n_portions, nb->missing, plain, n_plain, max_plain);
		return;
	}
	b = block_of(plan, nb->first);
	if (!b->period_open || now_ns - b->period_start_ns >= plan->hold_off_ns) {
		b->period_open = true;
		b->period_start_ns = now_ns;
		b->period_sent = 0;
	}
	if (nb->missing <= b->period_sent) {
		plan->counters.held_off += nb->missing;
		return;
	}
	plan->counters.held_off += b->period_sent;
	extra = nb->missing - b->period_sent;
	queued = queue_parity(plan, b, nb->first, extra);
	b->period_sent += queued;
	if (queued < extra && b->next_index == plan->n) {
		plan->counters.exhausted += extra - queued;
		append_plain(nb->portions, nb->n_portions, extra - queued, plain, n_plain, max_plain);
	}
}

void srm_parity_plan_nak(struct srm_parity_plan *plan, const struct srm_range *ranges, size_t n, uint32_t trailing,
			 uint32_t leading, uint64_t now_ns, struct srm_range *plain, size_t *n_plain, size_t max_plain)
{
	struct nak_block nb = { .open = false };
	uint32_t held = leading - trailing;

	for (size_t i = 0; i < n; i++) {
		/* Offsets from the trailing edge, signed: the window is
		 * [0, held). Ranges are under 2^31 long (srm_parse). */
		uint32_t d = ranges[i].first - trailing;
		int64_t from = d < 0x80000000u ? (int64_t)d : (int64_t)d - 0x100000000ll;
		int64_t to = from + (int64_t)(uint32_t)(ranges[i].last - ranges[i].first);

		/* What lies outside the window is the repair queue's, to call
		 * GONE or never sent. */
		if (to < 0 || from >= (int64_t)held) {
			add_plain(plain, n_plain, max_plain, ranges[i].first, ranges[i].last);
			continue;
		}
		if (from < 0) {
			add_plain(plain, n_plain, max_plain, ranges[i].first, trailing - 1);
			from = 0;
		}
		if (to >= (int64_t)held) {
			add_plain(plain, n_plain, max_plain, leading, ranges[i].last);
			to = (int64_t)held - 1;
		}
		for (int64_t at = from; at <= to;) {
			uint32_t seq = trailing + (uint32_t)at;
			unsigned count;
			uint32_t first = srm_parity_block_first(plan, seq, &count);
			int64_t in_block = (int64_t)(uint32_t)(first + count - seq);
			int64_t take = to - at + 1 < in_block ? to - at + 1 : in_block;

			if (nb.open && nb.first != first)
				answer_block(plan, &nb, trailing, leading, now_ns, plain, n_plain, max_plain);
			if (!nb.open)
				nb = (struct nak_block){ .open = true, .first = first, .count = count };
			if (nb.n_portions < SRM_MAX_RANGES)
				nb.portions[nb.n_portions++] =
					(struct srm_range){ .first = seq, .last = seq + (uint32_t)take - 1 };
			nb.missing += (uint32_t)take;
			at += take;
		}
	}
	answer_block(plan, &nb, trailing, leading, now_ns, plain, n_plain, max_plain);
}

bool srm_parity_plan_next(struct srm_parity_plan *plan, uint32_t *first, unsigned *index)
{
	if (plan->queue_len == 0)
		return false;
	*first = plan->queue[plan->queue_head].first;
	*index = plan->queue[plan->queue_head].index;
	plan->queue_head = (plan->queue_head + 1) % plan->queue_cap;
	plan->queue_len--;
	return true;
}
