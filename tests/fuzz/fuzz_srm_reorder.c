/* The SRM receiver's reorder window and the sender's transmit window
 * driven by any bytes, 8 per step: a datagram (DATA, END, REPAIR) at a
 * sequence near the window, a heartbeat's leading edge, another
 * receiver's NAK, a GONE, a NAK round, a time step; and, for the sender,
 * datagrams kept and NAK ranges asked. PARITY of any bytes goes to the
 * receiver's parity repair (recover.c) and NAK rounds through its trim;
 * the sender's NAK ranges through its parity plan (parity.c) too.
 * Whatever comes, the receiver delivers consecutive sequences, each once,
 * holds no more than its bounds, and every range it NAKs is missing; the
 * sender repairs only what it keeps, and queues parity only for blocks
 * it has sent whole, each index below n once. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/srm/parity.h"
#include "protocols/srm/recover.h"
#include "protocols/srm/reorder.h"
#include "protocols/srm/window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIRST 0xFFFFFFF0u	/* close to the wrap */

struct check {
	uint32_t expected;
	uint64_t delivered;
	struct srm_recover *rc;
};

static void on_deliver(void *arg, uint32_t seq, const struct srm_header *h)
{
	struct check *c = arg;

	if (seq != c->expected)
		abort();
	if (h != NULL && h->type != SRM_DATA && h->type != SRM_END)
		abort();
	srm_recover_delivered(c->rc, seq, h);
	c->expected++;
	c->delivered++;
}

static uint32_t near(uint32_t base, const uint8_t *step)
{
	/* -128 .. +127 around base, and now and then far away. */
	if (step[1] == 0xff)
		return base + ((uint32_t)step[2] << 24 | (uint32_t)step[3] << 16);
	return base + (uint32_t)(int32_t)(int8_t)step[2];
}

static struct srm_range range_at(uint32_t base, const uint8_t *step)
{
	struct srm_range r = { near(base, step), 0 };

	r.last = r.first + step[4] % 40;
	return r;
}

/* A PARITY whose symbol is the step's bytes over and over. */
static void parity_step(struct srm_recover *rc, struct srm_reorder *r, uint32_t first, const uint8_t *step,
			uint64_t now)
{
	uint8_t body[SRM_PARITY_BODY_SIZE + 64];
	struct srm_parity p = { .k = 1 + step[6] % 8, .index = step[7] % 4, .symbol_len = 32 + step[5] % 32 };
	struct srm_header h = { .type = SRM_PARITY, .sequence = first, .payload = body };

	h.payload_len = srm_write_parity(body, sizeof(body), &p);
	if (h.payload_len == 0)
		abort();
	for (size_t i = 0; i < p.symbol_len; i++)
		body[SRM_PARITY_BODY_SIZE + i] = step[i % 8];
	srm_recover_parity(rc, r, &h, now);
}

static void receiver_step(struct srm_reorder *r, struct srm_recover *rc, const uint8_t *step, uint64_t *now)
{
	uint32_t base = srm_reorder_next(r);
	struct srm_range out[8], range = range_at(base, step);
	size_t n;
	struct srm_header h = { .type = SRM_DATA, .sequence = near(base, step), .payload = step,
				.payload_len = step[5] % 9 };

	switch (step[0] % 8) {
	case 0:
	case 1:
		srm_reorder_add(r, &h, *now);
		srm_recover_heard(rc, r, h.sequence, *now);
		break;
	case 2:
		h.type = step[6] & 1 ? SRM_END : SRM_REPAIR;
		h.flags = step[6] & 2 ? SRM_FLAG_END : 0;
		srm_reorder_add(r, &h, *now);
		srm_recover_heard(rc, r, h.sequence, *now);
		break;
	case 6:
		parity_step(rc, r, near(base, step), step, *now);
		break;
	case 3:
		srm_reorder_heard_leading(r, near(base, step), *now);
		break;
	case 4:
		srm_reorder_suppress(r, &range, *now);
		break;
	case 5:
		srm_reorder_gone(r, &range);
		break;
	default:
		*now += (uint64_t)step[7] * 1000000;
		n = srm_reorder_due_naks(r, *now, out, 1 + step[3] % 8);
		n = srm_recover_trim(rc, r, out, n, 1 + step[3] % 8);
		for (size_t i = 0; i < n; i++)
			if (srm_seq_before(out[i].first, srm_reorder_next(r)) ||
			    srm_seq_before(out[i].last, out[i].first))
				abort();
		if (n > 0)
			srm_recover_suppress(rc, r, out, n, *now);
		break;
	}
	if (srm_reorder_missing(r) > 64)
		abort();
}

static void sender_step(struct srm_window *w, struct srm_parity_plan *plan, const uint8_t *step, uint64_t now)
{
	struct srm_range gone[4], plain[8], range = range_at(srm_window_trailing(w), step);
	size_t n_gone = 0, n_plain = 0, len;
	uint32_t seq, first;
	unsigned index, count;

	if (step[0] & 0x80) {
		srm_window_keep(w, step, 1 + step[5] % 8);
		srm_parity_plan_sent(plan, srm_window_leading(w));
		return;
	}
	srm_parity_plan_nak(plan, &range, 1, srm_window_trailing(w), srm_window_leading(w), now, plain, &n_plain, 8);
	if (n_plain > 8)
		abort();
	while (srm_parity_plan_next(plan, &first, &index))
		if (index >= 3 || srm_parity_block_first(plan, first, &count) != first ||
		    srm_seq_before(srm_window_leading(w), first + count))
			abort();
	for (size_t i = 0; i < n_plain; i++)
		srm_window_request(w, &plain[i], now, gone, &n_gone, 4);
	srm_window_request(w, &range, now, gone, &n_gone, 4);
	if (n_gone > 4)
		abort();
	while (srm_window_next_repair(w, now, &seq))
		if (srm_window_get(w, seq, &len) == NULL || len == 0 || len > 8)
			abort();
	if ((uint32_t)(srm_window_leading(w) - srm_window_trailing(w)) > 32)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct srm_reorder_limits limits = {
		.datagrams = 64, .bytes = 200, .backoff_ns = 5000000, .retry_ns = 20000000,
	};
	struct check c = { .expected = FIRST };
	struct srm_reorder *r = srm_reorder_new(&limits, FIRST, 1, on_deliver, &c);
	struct srm_window *w = srm_window_new(32, 100, 10000000, FIRST);
	struct srm_parity_plan *plan = srm_parity_plan_new(4, 3, size > 0 ? data[0] % 2 : 0, 32, 10000000, FIRST);
	uint64_t now = 0;

	c.rc = srm_recover_new(&(struct srm_recover_limits){ .blocks = 4, .bytes = 300 });
	if (r == NULL || w == NULL || plan == NULL || c.rc == NULL)
		abort();
	for (size_t at = 0; size - at >= 8; at += 8) {
		receiver_step(r, c.rc, data + at, &now);
		sender_step(w, plan, data + at, now);
	}
	if (c.expected != srm_reorder_next(r))
		abort();
	srm_reorder_free(r);
	srm_recover_free(c.rc);
	srm_window_free(w);
	srm_parity_plan_free(plan);
	return 0;
}
