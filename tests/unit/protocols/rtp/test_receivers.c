/* The receiver table of an RTP sender: report blocks about our SSRC
 * become rows, others are ignored, the table is bounded, silent
 * receivers go, and the round trip is RFC 3550 6.4.1's A - LSR - DLSR. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "protocols/rtp/receivers.h"

#define OURS 0x11223344u
#define SECOND 1000000000ull

static struct rtcp_report block(uint32_t reporter)
{
	return (struct rtcp_report){
		.reporter = reporter,
		.source = OURS,
		.fraction_lost = 64,
		.cumulative_lost = 17,
		.highest_sequence = 70000,
		.jitter = 90,		/* 1 ms at 90 kHz */
	};
}

/* NTP time with the middle 32 bits `middle` (seconds << 16 | fraction >> 16). */
static uint64_t ntp_with_middle(uint32_t middle)
{
	return (uint64_t)middle << 16;
}

Test(receivers, a_report_about_us_becomes_a_row)
{
	struct rtp_receivers t;
	struct rtcp_report r = block(0xaabbccdd);
	char rows[512];

	cr_assert(rtp_receivers_init(&t, 4));
	rtp_receivers_report(&t, &r, OURS, 0, 5 * SECOND);
	rtp_receivers_rows(&t, 90000, 7 * SECOND, rows, sizeof(rows));
	cr_assert_str_eq(rows, "receiver aabbccdd fraction_lost=64 lost=17 highest_sequence=70000 jitter_us=1000 "
			       "last_heard_ms=2000 reports=1\n");
	rtp_receivers_free(&t);
}

Test(receivers, blocks_about_another_source_are_ignored)
{
	struct rtp_receivers t;
	struct rtcp_report r = block(1);

	r.source = OURS + 1;
	cr_assert(rtp_receivers_init(&t, 4));
	rtp_receivers_report(&t, &r, OURS, 0, 0);
	cr_assert_eq(t.count, 0);
	cr_assert_eq(t.ignored, 1);
	rtp_receivers_free(&t);
}

Test(receivers, the_round_trip_is_arrival_less_lsr_less_dlsr)
{
	struct rtp_receivers t;
	struct rtcp_report r = block(1);
	char rows[512];

	/* SR at middle 0x00010000 (1 s), held 0.25 s, back at 1.5 s: 250 ms. */
	r.last_sr = 0x00010000;
	r.delay_since_last_sr = 0x4000;
	cr_assert(rtp_receivers_init(&t, 4));
	rtp_receivers_report(&t, &r, OURS, ntp_with_middle(0x00018000), 0);
	cr_assert(t.slots[0].rtt_known);
	cr_assert_eq(t.slots[0].rtt_ns, 250000000ull);
	rtp_receivers_rows(&t, 90000, 0, rows, sizeof(rows));
	cr_assert(strstr(rows, " rtt_us=250000 ") != NULL, "%s", rows);
	rtp_receivers_free(&t);
}

Test(receivers, the_round_trip_crosses_the_wrap_of_the_middle_bits)
{
	struct rtp_receivers t;
	struct rtcp_report r = block(1);

	r.last_sr = 0xffff8000;		/* half a second before the wrap */
	r.delay_since_last_sr = 0;
	cr_assert(rtp_receivers_init(&t, 1));
	rtp_receivers_report(&t, &r, OURS, ntp_with_middle(0x00000000), 0);
	cr_assert_eq(t.slots[0].rtt_ns, SECOND / 2);
	rtp_receivers_free(&t);
}

Test(receivers, no_lsr_no_round_trip_and_a_negative_one_is_zero)
{
	struct rtp_receivers t;
	struct rtcp_report r = block(1);
	char rows[512];

	cr_assert(rtp_receivers_init(&t, 2));
	rtp_receivers_report(&t, &r, OURS, ntp_with_middle(5), 0);
	cr_assert_not(t.slots[0].rtt_known);
	rtp_receivers_rows(&t, 90000, 0, rows, sizeof(rows));
	cr_assert_null(strstr(rows, "rtt_us"));
	/* A DLSR longer than the time since the SR: the clocks or the
	 * receiver are wrong, not the universe. */
	r.reporter = 2;
	r.last_sr = 0x00010000;
	r.delay_since_last_sr = 0x00020000;
	rtp_receivers_report(&t, &r, OURS, ntp_with_middle(0x00018000), 0);
	cr_assert(t.slots[1].rtt_known);
	cr_assert_eq(t.slots[1].rtt_ns, 0);
	rtp_receivers_free(&t);
}

Test(receivers, a_negative_loss_shows_as_zero)
{
	struct rtp_receivers t;
	struct rtcp_report r = block(1);
	char rows[512];

	r.cumulative_lost = -3;
	cr_assert(rtp_receivers_init(&t, 1));
	rtp_receivers_report(&t, &r, OURS, 0, 0);
	rtp_receivers_rows(&t, 90000, 0, rows, sizeof(rows));
	cr_assert(strstr(rows, " lost=0 ") != NULL, "%s", rows);
	rtp_receivers_free(&t);
}

Test(receivers, the_table_is_bounded_and_refuses_newcomers_when_full)
{
	struct rtp_receivers t;

	cr_assert(rtp_receivers_init(&t, 3));
	for (uint32_t ssrc = 1; ssrc <= 10; ssrc++) {
		struct rtcp_report r = block(ssrc);
		rtp_receivers_report(&t, &r, OURS, 0, 0);
	}
	cr_assert_eq(t.count, 3);
	cr_assert_eq(t.refused, 7);
	/* One already known still updates. */
	struct rtcp_report again = block(2);
	again.fraction_lost = 1;
	rtp_receivers_report(&t, &again, OURS, 0, 0);
	cr_assert_eq(t.slots[1].fraction_lost, 1);
	cr_assert_eq(t.slots[1].reports, 2);
	cr_assert_eq(t.refused, 7);
	rtp_receivers_free(&t);
}

Test(receivers, a_table_of_zero_keeps_nobody)
{
	struct rtp_receivers t;
	struct rtcp_report r = block(1);
	char rows[16] = "x";

	cr_assert(rtp_receivers_init(&t, 0));
	rtp_receivers_report(&t, &r, OURS, 0, 0);
	cr_assert_eq(t.count, 0);
	cr_assert_eq(t.refused, 1);
	cr_assert_eq(rtp_receivers_rows(&t, 90000, 0, rows, sizeof(rows)), 0);
	cr_assert_str_eq(rows, "");
	rtp_receivers_free(&t);
}

Test(receivers, silent_receivers_expire_and_free_their_slot)
{
	struct rtp_receivers t;
	struct rtcp_report a = block(1), b = block(2), c = block(3);

	cr_assert(rtp_receivers_init(&t, 2));
	rtp_receivers_report(&t, &a, OURS, 0, 0);
	rtp_receivers_report(&t, &b, OURS, 0, 20 * SECOND);
	rtp_receivers_expire(&t, 26 * SECOND, 25 * SECOND);
	cr_assert_eq(t.count, 1);
	cr_assert_eq(t.slots[0].ssrc, 2);
	cr_assert_eq(t.expired, 1);
	rtp_receivers_report(&t, &c, OURS, 0, 26 * SECOND);
	cr_assert_eq(t.count, 2);
	cr_assert_eq(t.refused, 0);
	rtp_receivers_free(&t);
}

Test(receivers, rows_that_do_not_fit_are_left_out_whole)
{
	struct rtp_receivers t;
	char rows[150];

	cr_assert(rtp_receivers_init(&t, 8));
	for (uint32_t ssrc = 1; ssrc <= 8; ssrc++) {
		struct rtcp_report r = block(ssrc);
		rtp_receivers_report(&t, &r, OURS, 0, 0);
	}
	size_t used = rtp_receivers_rows(&t, 90000, 0, rows, sizeof(rows));
	cr_assert_eq(used, strlen(rows));
	cr_assert(used > 0 && rows[used - 1] == '\n', "%s", rows);
	cr_assert_null(strstr(rows, "receiver 00000002"));
	rtp_receivers_free(&t);
}
