/* The SRM receiver's reorder window: in-order delivery of shuffled and
 * duplicated datagrams, each once; repairs delivered as what they repair;
 * missing sequences NAKed after the back-off, as ranges, again after the
 * retry time, later when another receiver's NAK is heard; a lost tail
 * found from a heartbeat; GONE delivered as lost; bounds in datagrams and
 * bytes; the 32-bit wrap. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "protocols/srm/reorder.h"

#define MS 1000000ull

struct delivered {
	uint32_t seq[64];
	uint8_t type[64];
	char first_byte[64];
	size_t n, lost;
};

static void on_deliver(void *arg, uint32_t seq, const struct srm_header *h)
{
	struct delivered *d = arg;

	cr_assert_lt(d->n, 64);
	d->seq[d->n] = seq;
	d->type[d->n] = h ? h->type : 0;
	d->first_byte[d->n] = h && h->payload_len ? (char)h->payload[0] : 0;
	if (h == NULL)
		d->lost++;
	d->n++;
}

static const struct srm_reorder_limits limits = {
	.datagrams = 16, .bytes = 1000, .backoff_ns = 10 * MS, .retry_ns = 50 * MS,
};

static int add(struct srm_reorder *r, uint8_t type, uint32_t seq, const char *payload, uint64_t now)
{
	struct srm_header h = { .type = type, .sequence = seq, .payload = (const uint8_t *)payload,
				.payload_len = strlen(payload) };

	return srm_reorder_add(r, &h, now);
}

Test(srm_reorder, in_order_duplicates_and_shuffle)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 100, 1, on_deliver, &d);
	const uint32_t order[] = { 100, 102, 101, 101, 104, 103, 100, 105 };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		add(r, SRM_DATA, order[i], (const char[]){ (char)('a' + order[i] - 100), 0 }, 0);
	cr_assert_eq(d.n, 6);
	for (size_t i = 0; i < 6; i++) {
		cr_assert_eq(d.seq[i], 100 + i);
		cr_assert_eq(d.first_byte[i], 'a' + (char)i);
	}
	cr_assert_eq(srm_reorder_counters(r)->duplicates, 2);
	cr_assert_eq(srm_reorder_missing(r), 0);
	cr_assert_eq(srm_reorder_next(r), 106);
	srm_reorder_free(r);
}

Test(srm_reorder, repairs_delivered_as_their_original)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 0, 1, on_deliver, &d);
	struct srm_header end = { .type = SRM_REPAIR, .flags = SRM_FLAG_END | SRM_FLAG_LAST, .sequence = 2,
				  .payload = (const uint8_t *)"123456789012", .payload_len = 12 };

	add(r, SRM_DATA, 0, "x", 0);
	cr_assert_eq(srm_reorder_add(r, &end, 0), SRM_REORDER_KEPT);
	cr_assert_eq(srm_reorder_missing(r), 1);
	cr_assert_eq(add(r, SRM_REPAIR, 1, "y", 0), SRM_REORDER_KEPT);
	cr_assert_eq(d.n, 3);
	cr_assert_eq(d.type[1], SRM_DATA);
	cr_assert_eq(d.first_byte[1], 'y');
	cr_assert_eq(d.type[2], SRM_END);
	cr_assert_eq(add(r, SRM_REPAIR, 1, "y", 0), SRM_REORDER_DUPLICATE);
	srm_reorder_free(r);
}

Test(srm_reorder, naks_after_backoff_as_ranges_then_retry)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 0, 7, on_deliver, &d);
	struct srm_range out[4];

	add(r, SRM_DATA, 0, "a", 0);
	add(r, SRM_DATA, 4, "e", 0);	/* 1..3 missing */
	add(r, SRM_DATA, 7, "h", 0);	/* 5..6 missing */
	cr_assert_eq(srm_reorder_missing(r), 5);
	/* After the longest back-off every one is due: two ranges. */
	cr_assert_eq(srm_reorder_due_naks(r, 10 * MS, out, 4), 2);
	cr_assert_eq(out[0].first, 1);
	cr_assert_eq(out[0].last, 3);
	cr_assert_eq(out[1].first, 5);
	cr_assert_eq(out[1].last, 6);
	/* Not again before the retry time. */
	cr_assert_eq(srm_reorder_due_naks(r, 20 * MS, out, 4), 0);
	cr_assert_eq(srm_reorder_due_naks(r, 60 * MS, out, 4), 2);
	cr_assert_eq(srm_reorder_counters(r)->nak_sequences, 10);
	srm_reorder_free(r);
}

/* A repair 2 ms after our NAK: the round trip is 2 ms, and the next
 * gap's NAKs are all due within twice that, not the configured 10 ms. */
Test(srm_reorder, backoff_scaled_by_the_measured_round_trip)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 0, 7, on_deliver, &d);
	struct srm_range out[4];

	add(r, SRM_DATA, 0, "a", 0);
	add(r, SRM_DATA, 2, "c", 0);
	cr_assert_eq(srm_reorder_rtt_ns(r), 0);
	cr_assert_eq(srm_reorder_due_naks(r, 10 * MS, out, 4), 1);
	add(r, SRM_DATA, 1, "b", 11 * MS);	/* not a repair: no sample */
	cr_assert_eq(srm_reorder_rtt_ns(r), 0);
	add(r, SRM_DATA, 4, "e", 20 * MS);
	cr_assert_eq(srm_reorder_due_naks(r, 30 * MS, out, 4), 1);
	add(r, SRM_REPAIR, 3, "d", 32 * MS);
	cr_assert_eq(srm_reorder_rtt_ns(r), 2 * MS);
	add(r, SRM_DATA, 12, "m", 100 * MS);	/* 5..11 missing */
	cr_assert_eq(srm_reorder_due_naks(r, 104 * MS, out, 4), 1);
	cr_assert_eq(out[0].first, 5);
	cr_assert_eq(out[0].last, 11);
	srm_reorder_free(r);
}

Test(srm_reorder, nak_ranges_bounded_by_room)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 0, 7, on_deliver, &d);
	struct srm_range out[2];

	for (uint32_t s = 0; s < 12; s += 2)
		add(r, SRM_DATA, s, "x", 0);	/* 1, 3, 5, 7, 9 missing */
	cr_assert_eq(srm_reorder_due_naks(r, 10 * MS, out, 2), 2);
	cr_assert_eq(out[1].first, 3);
	/* The rest were not sent: still due. */
	cr_assert_eq(srm_reorder_due_naks(r, 10 * MS, out, 2), 2);
	cr_assert_eq(out[0].first, 5);
	cr_assert_eq(out[1].first, 7);
	srm_reorder_free(r);
}

Test(srm_reorder, suppressed_by_another_receivers_nak)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 0, 7, on_deliver, &d);
	struct srm_range out[4], heard = { 1, 2 };

	add(r, SRM_DATA, 0, "a", 0);
	add(r, SRM_DATA, 4, "e", 0);	/* 1..3 missing */
	srm_reorder_suppress(r, &heard, 1 * MS);
	cr_assert_eq(srm_reorder_counters(r)->suppressed, 2);
	cr_assert_eq(srm_reorder_due_naks(r, 10 * MS, out, 4), 1);
	cr_assert_eq(out[0].first, 3);
	cr_assert_eq(out[0].last, 3);
	/* The repair comes: nothing left to ask. */
	add(r, SRM_REPAIR, 1, "b", 20 * MS);
	add(r, SRM_REPAIR, 2, "c", 20 * MS);
	add(r, SRM_REPAIR, 3, "d", 20 * MS);
	cr_assert_eq(srm_reorder_due_naks(r, 100 * MS, out, 4), 0);
	cr_assert_eq(d.n, 5);
	srm_reorder_free(r);
}

Test(srm_reorder, lost_tail_from_heartbeat_and_gone)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 0, 7, on_deliver, &d);
	struct srm_range out[4], gone = { 1, 2 };

	add(r, SRM_DATA, 0, "a", 0);
	srm_reorder_heard_leading(r, 3, 0);	/* 1 and 2 were sent */
	cr_assert_eq(srm_reorder_missing(r), 2);
	cr_assert_eq(srm_reorder_due_naks(r, 10 * MS, out, 4), 1);
	srm_reorder_gone(r, &gone);
	cr_assert_eq(d.n, 3);
	cr_assert_eq(d.lost, 2);
	cr_assert_eq(srm_reorder_counters(r)->lost, 2);
	cr_assert_eq(srm_reorder_next(r), 3);
	cr_assert_eq(srm_reorder_missing(r), 0);
	/* A GONE past what is known, or of what was delivered: harmless. */
	gone = (struct srm_range){ 3, 4 };
	srm_reorder_gone(r, &gone);
	cr_assert_eq(d.lost, 4);
	cr_assert_eq(srm_reorder_next(r), 5);
	add(r, SRM_DATA, 3, "x", 0);
	cr_assert_eq(srm_reorder_counters(r)->duplicates, 1);
	srm_reorder_free(r);
}

Test(srm_reorder, bounded_window_and_bytes)
{
	struct delivered d = { 0 };
	struct srm_reorder_limits small = limits;
	struct srm_reorder *r;
	char big[600];

	small.bytes = 1000;
	r = srm_reorder_new(&small, 0, 7, on_deliver, &d);
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(add(r, SRM_DATA, 16, "far", 0), SRM_REORDER_AHEAD);
	cr_assert_eq(srm_reorder_missing(r), 16, "the whole window is now known missing");
	cr_assert_eq(add(r, SRM_DATA, 5, big, 0), SRM_REORDER_KEPT);
	cr_assert_eq(add(r, SRM_DATA, 6, big, 0), SRM_REORDER_OVER_BYTES);
	/* The next in order goes whatever the bound. */
	cr_assert_eq(add(r, SRM_DATA, 0, big, 0), SRM_REORDER_KEPT);
	cr_assert_eq(d.n, 1);
	cr_assert_eq(srm_reorder_counters(r)->ahead, 1);
	cr_assert_eq(srm_reorder_counters(r)->over_bytes, 1);
	srm_reorder_free(r);
}

Test(srm_reorder, across_the_wrap)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 0xFFFFFFFEu, 7, on_deliver, &d);
	struct srm_range out[2];

	add(r, SRM_DATA, 0xFFFFFFFEu, "a", 0);
	add(r, SRM_DATA, 1, "d", 0);
	cr_assert_eq(srm_reorder_due_naks(r, 10 * MS, out, 2), 1);
	cr_assert_eq(out[0].first, 0xFFFFFFFFu);
	cr_assert_eq(out[0].last, 0);
	add(r, SRM_DATA, 0, "c", 0);
	add(r, SRM_DATA, 0xFFFFFFFFu, "b", 0);
	cr_assert_eq(d.n, 4);
	cr_assert_eq(d.seq[3], 1);
	cr_assert_eq(d.first_byte[1], 'b');
	cr_assert_eq(add(r, SRM_DATA, 0xFFFFFFF0u, "old", 0), SRM_REORDER_DUPLICATE);
	srm_reorder_free(r);
}

/* Regression (fuzz_srm_reorder): a NAK heard from another receiver while
 * nothing is missing, for a range that starts before the next sequence,
 * must not walk a window of no length. */
Test(srm_reorder, suppress_with_nothing_known)
{
	struct delivered d = { 0 };
	struct srm_reorder *r = srm_reorder_new(&limits, 10, 7, on_deliver, &d);
	struct srm_range heard = { 5, 20 };

	srm_reorder_suppress(r, &heard, 0);
	cr_assert_eq(srm_reorder_counters(r)->suppressed, 0);
	cr_assert_eq(srm_reorder_missing(r), 0);
	srm_reorder_free(r);
}
