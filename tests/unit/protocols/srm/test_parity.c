/* The sender's parity plan (parity.c): per block as many parity symbols
 * as the worst NAK within a hold-off misses, fresh indices each time and
 * never past n; plain repair for blocks not sent or not kept whole and
 * for losses past n; proactive parity as each block is sent whole;
 * blocks across the sequence wrap. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "protocols/srm/parity.h"

#define MS 1000000ull
#define HOLD_OFF (50 * MS)

struct answer {
	struct srm_range plain[4 * SRM_MAX_RANGES];
	size_t n_plain;
};

static void nak(struct srm_parity_plan *p, uint32_t first, uint32_t last, uint32_t trailing, uint32_t leading,
		uint64_t now, struct answer *a)
{
	struct srm_range r = { first, last };

	a->n_plain = 0;
	srm_parity_plan_nak(p, &r, 1, trailing, leading, now, a->plain, &a->n_plain, 4 * SRM_MAX_RANGES);
}

static void expect_parity(struct srm_parity_plan *p, uint32_t first, unsigned index)
{
	uint32_t got_first;
	unsigned got_index;

	cr_assert(srm_parity_plan_next(p, &got_first, &got_index), "parity %u of block %u queued", index, first);
	cr_assert_eq(got_first, first);
	cr_assert_eq(got_index, index);
}

static void expect_none(struct srm_parity_plan *p)
{
	uint32_t first;
	unsigned index;

	cr_assert_not(srm_parity_plan_next(p, &first, &index));
}

Test(parity_plan, the_worst_receivers_count_per_block_fresh_indices)
{
	struct srm_parity_plan *p = srm_parity_plan_new(4, 3, 0, 64, HOLD_OFF, 1000);
	struct answer a;

	cr_assert_not_null(p);
	/* Blocks [1000, 1004) [1004, 1008) [1008, 1012) sent. */
	nak(p, 1001, 1002, 1000, 1012, 0, &a);	/* one receiver misses 2 of block 1000 */
	cr_assert_eq(a.n_plain, 0);
	expect_parity(p, 1000, 0);
	expect_parity(p, 1000, 1);
	expect_none(p);
	nak(p, 1003, 1003, 1000, 1012, 10 * MS, &a);	/* another misses 1 there: covered */
	expect_none(p);
	cr_assert_eq(srm_parity_plan_counters(p)->held_off, 1);
	nak(p, 1000, 1002, 1000, 1012, 20 * MS, &a);	/* a third misses 3: one more, the next index */
	expect_parity(p, 1000, 2);
	expect_none(p);
	cr_assert_eq(a.n_plain, 0);
	/* After the hold-off the block's n are spent: plain repair. */
	nak(p, 1001, 1001, 1000, 1012, 20 * MS + HOLD_OFF, &a);
	expect_none(p);
	cr_assert_eq(a.n_plain, 1);
	cr_assert_eq(a.plain[0].first, 1001);
	cr_assert_eq(a.plain[0].last, 1001);
	cr_assert_eq(srm_parity_plan_counters(p)->exhausted, 1);
	srm_parity_plan_free(p);
}

Test(parity_plan, one_nak_over_blocks_counts_each)
{
	struct srm_parity_plan *p = srm_parity_plan_new(4, 2, 0, 64, HOLD_OFF, 1000);
	struct srm_range r[3] = { { 1003, 1005 }, { 1007, 1007 }, { 1009, 1009 } };
	struct answer a = { .n_plain = 0 };

	srm_parity_plan_nak(p, r, 3, 1000, 1012, 0, a.plain, &a.n_plain, 4 * SRM_MAX_RANGES);
	expect_parity(p, 1000, 0);	/* 1003 */
	expect_parity(p, 1004, 0);	/* 1004, 1005, 1007 */
	expect_parity(p, 1004, 1);
	expect_parity(p, 1008, 0);	/* 1009 */
	expect_none(p);
	cr_assert_eq(srm_parity_plan_counters(p)->queued, 4);
	/* The third of block 1004 is past n: plain, the last NAKed there. */
	cr_assert_eq(srm_parity_plan_counters(p)->exhausted, 1);
	cr_assert_eq(a.n_plain, 1);
	cr_assert_eq(a.plain[0].first, 1007);
	cr_assert_eq(a.plain[0].last, 1007);
	srm_parity_plan_free(p);
}

Test(parity_plan, blocks_not_whole_are_repaired_plainly)
{
	struct srm_parity_plan *p = srm_parity_plan_new(4, 2, 0, 64, HOLD_OFF, 1000);
	struct answer a;

	nak(p, 1009, 1009, 1000, 1010, 0, &a);	/* block 1008 not sent whole yet */
	expect_none(p);
	cr_assert_eq(a.n_plain, 1);
	cr_assert_eq(a.plain[0].first, 1009);
	nak(p, 1005, 1005, 1005, 1010, 0, &a);	/* block 1004 partly left the window */
	expect_none(p);
	cr_assert_eq(a.n_plain, 1);
	nak(p, 990, 1001, 1000, 1010, 0, &a);	/* before the window, and block 1000 whole */
	cr_assert_eq(a.n_plain, 1);
	cr_assert_eq(a.plain[0].first, 990);
	cr_assert_eq(a.plain[0].last, 999);
	expect_parity(p, 1000, 0);
	expect_parity(p, 1000, 1);
	expect_none(p);
	nak(p, 1011, 1020, 1000, 1012, 0, &a);	/* past the leading edge: never sent */
	cr_assert_eq(a.n_plain, 1);
	cr_assert_eq(a.plain[0].first, 1012);
	cr_assert_eq(a.plain[0].last, 1020);
	expect_parity(p, 1008, 0);	/* 1011: block 1008 is whole now */
	cr_assert_eq(srm_parity_plan_counters(p)->partial, 2);
	srm_parity_plan_free(p);
}

Test(parity_plan, proactive_parity_as_each_block_completes)
{
	struct srm_parity_plan *p = srm_parity_plan_new(4, 2, 1, 64, HOLD_OFF, 1000);
	struct answer a;

	for (uint32_t leading = 1001; leading <= 1008; leading++)
		srm_parity_plan_sent(p, leading);
	expect_parity(p, 1000, 0);
	expect_parity(p, 1004, 0);
	expect_none(p);
	nak(p, 1001, 1002, 1000, 1008, 0, &a);	/* the next index, then n is spent */
	expect_parity(p, 1000, 1);
	expect_none(p);
	cr_assert_eq(a.n_plain, 1);
	cr_assert_eq(a.plain[0].first, 1002);
	srm_parity_plan_free(p);
}

Test(parity_plan, blocks_across_the_wrap)
{
	struct srm_parity_plan *p = srm_parity_plan_new(4, 2, 0, 64, HOLD_OFF, 0xFFFFFFFEu);
	unsigned count;
	struct answer a;

	cr_assert_eq(srm_parity_block_first(p, 1, &count), 0xFFFFFFFEu);
	cr_assert_eq(count, 4);
	cr_assert_eq(srm_parity_block_first(p, 2, &count), 2);
	nak(p, 0xFFFFFFFFu, 0, 0xFFFFFFFEu, 6, 0, &a);
	cr_assert_eq(a.n_plain, 0);
	expect_parity(p, 0xFFFFFFFEu, 0);
	expect_parity(p, 0xFFFFFFFEu, 1);
	srm_parity_plan_free(p);
	/* k = 3 from 0: 2^32 - 1 is a block of its own, cut short by the wrap. */
	p = srm_parity_plan_new(3, 2, 0, 64, HOLD_OFF, 0);
	cr_assert_eq(srm_parity_block_first(p, 0xFFFFFFFFu, &count), 0xFFFFFFFFu);
	cr_assert_eq(count, 1);
	nak(p, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFF0u, 3, 0, &a);
	expect_none(p);
	cr_assert_eq(a.n_plain, 1);
	srm_parity_plan_free(p);
}

Test(parity_plan, refuses_impossible_codes)
{
	cr_assert_null(srm_parity_plan_new(0, 2, 0, 64, HOLD_OFF, 0));
	cr_assert_null(srm_parity_plan_new(4, 0, 0, 64, HOLD_OFF, 0));
	cr_assert_null(srm_parity_plan_new(250, 6, 0, 64, HOLD_OFF, 0));
	cr_assert_null(srm_parity_plan_new(4, 2, 3, 64, HOLD_OFF, 0));
}
