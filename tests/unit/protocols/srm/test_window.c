/* The SRM sender's transmit window: bounds in datagrams and bytes, the
 * edges across the 32-bit wrap, repairs queued once per hold-off however
 * many ask, GONE for what left the window, requests for what was never
 * sent, and a full repair queue. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "protocols/srm/window.h"

#define MS 1000000ull

/* A datagram of len bytes whose first four are its sequence, so that what
 * comes back can be told apart. */
static void keep(struct srm_window *w, size_t len)
{
	uint8_t bytes[256] = { 0 };
	uint32_t seq = srm_window_leading(w);

	cr_assert_leq(len, sizeof(bytes));
	memcpy(bytes, &seq, sizeof(seq));
	srm_window_keep(w, bytes, len);
}

static uint32_t seq_of(const struct srm_window *w, uint32_t seq)
{
	size_t len = 0;
	const uint8_t *d = srm_window_get(w, seq, &len);
	uint32_t got;

	cr_assert_not_null(d, "sequence %u is kept", seq);
	memcpy(&got, d, sizeof(got));
	return got;
}

static void request(struct srm_window *w, uint32_t first, uint32_t last, uint64_t now, struct srm_range *gone,
		    size_t *n_gone)
{
	struct srm_range r = { first, last };

	srm_window_request(w, &r, now, gone, n_gone, 4);
}

Test(srm_window, bounded_in_datagrams)
{
	struct srm_window *w = srm_window_new(4, 1 << 20, 10 * MS, 100);
	size_t len;

	cr_assert_eq(srm_window_trailing(w), 100);
	cr_assert_eq(srm_window_leading(w), 100);
	for (int i = 0; i < 6; i++)
		keep(w, 40);
	cr_assert_eq(srm_window_trailing(w), 102);
	cr_assert_eq(srm_window_leading(w), 106);
	cr_assert_null(srm_window_get(w, 101, &len));
	cr_assert_null(srm_window_get(w, 106, &len));
	for (uint32_t s = 102; s < 106; s++)
		cr_assert_eq(seq_of(w, s), s);
	cr_assert_eq(srm_window_counters(w)->evicted, 2);
	srm_window_free(w);
}

Test(srm_window, bounded_in_bytes)
{
	struct srm_window *w = srm_window_new(100, 250, 10 * MS, 0);

	for (int i = 0; i < 5; i++)
		keep(w, 100);
	/* 250 bytes hold two datagrams of 100. */
	cr_assert_eq(srm_window_leading(w) - srm_window_trailing(w), 2);
	cr_assert_eq(seq_of(w, 4), 4);
	/* One larger than the bound is sent but not kept: nothing is. */
	cr_assert_not(srm_window_keep(w, (const uint8_t[256]){ 0 }, 256));
	cr_assert_eq(srm_window_leading(w), 6);
	cr_assert_eq(srm_window_trailing(w), 6);
	keep(w, 50);
	cr_assert_eq(seq_of(w, 6), 6);
	srm_window_free(w);
}

/* A ring size that does not divide 2^32: the sequences around the wrap
 * each keep their own datagram. */
Test(srm_window, across_the_wrap)
{
	struct srm_window *w = srm_window_new(3, 1 << 20, 10 * MS, 0xFFFFFFFDu);

	for (int i = 0; i < 5; i++)
		keep(w, 40);
	cr_assert_eq(srm_window_trailing(w), 0xFFFFFFFFu);
	cr_assert_eq(srm_window_leading(w), 2);
	cr_assert_eq(seq_of(w, 0xFFFFFFFFu), 0xFFFFFFFFu);
	cr_assert_eq(seq_of(w, 0), 0);
	cr_assert_eq(seq_of(w, 1), 1);
	srm_window_free(w);
}

/* Three receivers ask for the same loss: one repair each, in the order
 * first asked; asked again after the repair but within the hold-off:
 * nothing; after it: once more. */
Test(srm_window, one_repair_per_hold_off)
{
	struct srm_window *w = srm_window_new(64, 1 << 20, 10 * MS, 0);
	struct srm_range gone[4];
	size_t n_gone = 0;
	uint32_t seq;

	for (int i = 0; i < 20; i++)
		keep(w, 40);
	request(w, 5, 7, 0, gone, &n_gone);
	request(w, 6, 7, 1 * MS, gone, &n_gone);
	request(w, 3, 3, 1 * MS, gone, &n_gone);
	request(w, 5, 7, 2 * MS, gone, &n_gone);
	cr_assert_eq(n_gone, 0);
	for (uint32_t want = 5; want <= 7; want++) {
		cr_assert(srm_window_next_repair(w, 3 * MS, &seq));
		cr_assert_eq(seq, want);
	}
	cr_assert(srm_window_next_repair(w, 3 * MS, &seq));
	cr_assert_eq(seq, 3);
	cr_assert_not(srm_window_next_repair(w, 3 * MS, &seq));
	request(w, 5, 5, 12 * MS, gone, &n_gone);
	cr_assert_not(srm_window_next_repair(w, 12 * MS, &seq));
	request(w, 5, 5, 13 * MS, gone, &n_gone);
	cr_assert(srm_window_next_repair(w, 13 * MS, &seq));
	cr_assert_eq(seq, 5);
	cr_assert_eq(srm_window_counters(w)->requested, 3 + 2 + 1 + 3 + 1 + 1);
	cr_assert_eq(srm_window_counters(w)->queued, 5);
	cr_assert_eq(srm_window_counters(w)->held_off, 6);
	srm_window_free(w);
}

Test(srm_window, gone_and_never_sent)
{
	struct srm_window *w = srm_window_new(4, 1 << 20, 10 * MS, 0);
	struct srm_range gone[4];
	size_t n_gone = 0;
	uint32_t seq;

	for (int i = 0; i < 10; i++)
		keep(w, 40);	/* keeps 6..9 */
	request(w, 2, 7, 0, gone, &n_gone);
	cr_assert_eq(n_gone, 1);
	cr_assert_eq(gone[0].first, 2);
	cr_assert_eq(gone[0].last, 5);
	cr_assert(srm_window_next_repair(w, 0, &seq));
	cr_assert_eq(seq, 6);
	cr_assert(srm_window_next_repair(w, 0, &seq));
	cr_assert_eq(seq, 7);
	cr_assert_not(srm_window_next_repair(w, 0, &seq));
	/* From before the window to past what was sent. */
	request(w, 0xFFFFFFF0u, 20, 0, gone, &n_gone);
	cr_assert_eq(n_gone, 2);
	cr_assert_eq(gone[1].first, 0xFFFFFFF0u);
	cr_assert_eq(gone[1].last, 5);
	cr_assert_eq(srm_window_counters(w)->gone, 4 + 22);
	cr_assert_eq(srm_window_counters(w)->implausible, 11);
	/* 8 and 9 were queued, 6 and 7 held off. */
	cr_assert(srm_window_next_repair(w, 0, &seq));
	cr_assert_eq(seq, 8);
	/* A range wholly in the future. */
	request(w, 1000, 1001, 0, gone, &n_gone);
	cr_assert_eq(srm_window_counters(w)->implausible, 13);
	cr_assert_eq(n_gone, 2);
	srm_window_free(w);
}

/* The gone list is bounded by its caller's room. */
Test(srm_window, gone_list_bounded)
{
	struct srm_window *w = srm_window_new(2, 1 << 20, 10 * MS, 0);
	struct srm_range gone[4];
	size_t n_gone = 0;

	for (int i = 0; i < 10; i++)
		keep(w, 40);
	for (uint32_t s = 0; s < 6; s++)
		request(w, s, s, 0, gone, &n_gone);
	cr_assert_eq(n_gone, 4);
	cr_assert_eq(gone[3].first, 3);
	cr_assert_eq(srm_window_counters(w)->gone, 6);
	srm_window_free(w);
}

/* A queued sequence that leaves the window is not repaired; the queue
 * never holds more than the window's size. */
Test(srm_window, queued_then_evicted)
{
	struct srm_window *w = srm_window_new(4, 1 << 20, 10 * MS, 0);
	struct srm_range gone[4];
	size_t n_gone = 0;
	uint32_t seq;

	for (int i = 0; i < 4; i++)
		keep(w, 40);
	request(w, 0, 3, 0, gone, &n_gone);
	keep(w, 40);
	keep(w, 40);	/* 0 and 1 leave */
	request(w, 4, 5, 0, gone, &n_gone);
	cr_assert_eq(srm_window_counters(w)->queue_full, 2, "4 stale or live entries fill the queue");
	cr_assert(srm_window_next_repair(w, 0, &seq));
	cr_assert_eq(seq, 2);
	cr_assert(srm_window_next_repair(w, 0, &seq));
	cr_assert_eq(seq, 3);
	cr_assert_not(srm_window_next_repair(w, 0, &seq));
	request(w, 4, 5, 0, gone, &n_gone);
	cr_assert(srm_window_next_repair(w, 0, &seq));
	cr_assert_eq(seq, 4);
	srm_window_free(w);
}

Test(srm_window, refuses_size_zero)
{
	cr_assert_null(srm_window_new(0, 1000, 0, 0));
}
