/* MPEG-TS timing: PCRs and discontinuity flags read from synthetic
 * packets, resync after garbage, and the pacing clock on constant-rate
 * streams with loops, jumps, wraps, forgetting and a full ring. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "protocols/rtp/ts.h"

/* ---- helpers -------------------------------------------------------- */

struct packet_spec {
	unsigned pid;
	bool has_pcr;
	uint64_t pcr;
	bool discontinuity;
};

/* PCR base (33 bits), 6 reserved bits (written as 1s, as muxers do, so
 * a reader that trusts them fails), extension (9 bits). */
static void write_pcr(uint8_t *field, uint64_t base, unsigned extension)
{
	field[0] = (uint8_t)(base >> 25);
	field[1] = (uint8_t)(base >> 17);
	field[2] = (uint8_t)(base >> 9);
	field[3] = (uint8_t)(base >> 1);
	field[4] = (uint8_t)((base & 1) << 7 | 0x7e | (extension >> 8));
	field[5] = (uint8_t)extension;
}

/* A 188-byte packet: with an adaptation field (control 3) only when it
 * has something to carry, else payload only (control 1). */
static void write_packet(uint8_t *p, struct packet_spec spec)
{
	bool adaptation = spec.has_pcr || spec.discontinuity;

	memset(p, 0xff, TS_PACKET_SIZE);
	p[0] = TS_SYNC_BYTE;
	p[1] = (uint8_t)((spec.pid >> 8) & 0x1f);
	p[2] = (uint8_t)spec.pid;
	p[3] = (uint8_t)((adaptation ? 3 : 1) << 4);
	if (!adaptation)
		return;
	p[4] = spec.has_pcr ? 7 : 1;
	p[5] = (uint8_t)((spec.discontinuity ? 0x80 : 0) | (spec.has_pcr ? 0x10 : 0));
	if (spec.has_pcr)
		write_pcr(p + 6, spec.pcr / 300, (unsigned)(spec.pcr % 300));
}

static uint64_t pcr_of(const uint8_t *p)
{
	uint64_t pcr = 0;

	cr_assert(ts_packet_pcr(p, &pcr, NULL));
	return pcr;
}

static uint64_t time_at(const struct ts_clock *clock, uint64_t offset)
{
	uint64_t time = 0;

	cr_assert(ts_clock_time(clock, offset, false, &time), "no time at %llu", (unsigned long long)offset);
	return time;
}

#define assert_time(clock, offset, want) \
	cr_assert_eq(time_at((clock), (offset)), (uint64_t)(want), "offset %llu: %llu, want %llu", \
		     (unsigned long long)(offset), (unsigned long long)time_at((clock), (offset)), \
		     (unsigned long long)(want))

/* A constant-rate stream: a PCR every 10 packets, 10 ticks a byte. */
#define PCR_SPACING (10 * TS_PACKET_SIZE)
#define TICKS_PER_BYTE 10
#define PCR_STEP (PCR_SPACING * TICKS_PER_BYTE)
#define ONE_SECOND TS_PCR_HZ

/* Feeds n PCRs at offsets first_offset, + PCR_SPACING, ... with PCRs
 * first_pcr, + PCR_STEP, ... (modulo the wrap). */
static void feed_stream(struct ts_clock *clock, uint64_t first_offset, uint64_t first_pcr, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ts_clock_pcr(clock, first_offset + (uint64_t)i * PCR_SPACING, (first_pcr + (uint64_t)i * PCR_STEP) % TS_PCR_WRAP,
			     false);
}

/* Every byte offset in [from, to) in steps, no time before the last. */
static void assert_monotonic(const struct ts_clock *clock, uint64_t from, uint64_t to, uint64_t stride)
{
	uint64_t previous = 0;

	for (uint64_t offset = from; offset < to; offset += stride) {
		uint64_t time = time_at(clock, offset);

		cr_assert_geq(time, previous, "time goes back at offset %llu", (unsigned long long)offset);
		previous = time;
	}
}

/* ---- packets -------------------------------------------------------- */

Test(ts_packet, pcr_values_are_exact)
{
	const uint64_t values[] = {
		0, 1, 299, 300, 27000000, 0x155555555ull * 300 + 256, 0xaaaaaaaaull * 300 + 43,
		TS_PCR_WRAP - 1,	/* base 2^33 - 1, extension 299 */
		TS_PCR_WRAP - 300,	/* base 2^33 - 1, extension 0 */
	};
	const unsigned pids[] = { 0, 0x1fff, 0x100, 0x1234 };
	uint8_t p[TS_PACKET_SIZE];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		uint64_t pcr = 0;
		unsigned pid = 0, want_pid = pids[i % 4];

		write_packet(p, (struct packet_spec){ .pid = want_pid, .has_pcr = true, .pcr = values[i] });
		cr_assert(ts_packet_pcr(p, &pcr, &pid));
		cr_assert_eq(pcr, values[i], "got %llu, want %llu", (unsigned long long)pcr, (unsigned long long)values[i]);
		cr_assert_eq(pid, want_pid);
		cr_assert_not(ts_packet_discontinuity(p));
	}
}

Test(ts_packet, pcr_with_adaptation_field_only)
{
	uint8_t p[TS_PACKET_SIZE];

	write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 123456789 });
	p[3] = 2 << 4;		/* adaptation field only: it fills the packet */
	p[4] = 183;
	cr_assert_eq(pcr_of(p), 123456789);
}

Test(ts_packet, no_pcr_in_packets_without_one)
{
	uint8_t p[TS_PACKET_SIZE];
	uint64_t pcr = 42;

	write_packet(p, (struct packet_spec){ .pid = 17 });
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "payload only (control 1)");
	write_packet(p, (struct packet_spec){ .discontinuity = true });
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "adaptation field without PCR_flag");
	cr_assert_eq(pcr, 42, "untouched when false");
}

Test(ts_packet, malformed_packets_give_no_pcr)
{
	uint8_t p[TS_PACKET_SIZE];
	uint64_t pcr;

	/* Each case spoils one thing of a good PCR packet. */
	write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 1000 });
	p[0] = 0x46;
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "bad sync");

	write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 1000 });
	p[3] = 1 << 4;
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "control 1: bytes 4.. are payload");

	write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 1000 });
	p[3] = 0;
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "control 0 (reserved)");

	for (unsigned short_length = 0; short_length < 7; short_length++) {
		write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 1000 });
		p[4] = (uint8_t)short_length;
		cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "adaptation field of %u bytes", short_length);
	}

	write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 1000 });
	p[4] = 184;
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "adaptation field longer than the packet");

	write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 1000 });
	p[1] |= 0x80;
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "transport_error_indicator");

	write_packet(p, (struct packet_spec){ .has_pcr = true });
	write_pcr(p + 6, 5, 300);
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "extension 300");
	write_pcr(p + 6, (1ull << 33) - 1, 511);
	cr_assert_not(ts_packet_pcr(p, &pcr, NULL), "extension 511");
}

Test(ts_packet, discontinuity_indicator)
{
	uint8_t p[TS_PACKET_SIZE];

	write_packet(p, (struct packet_spec){ .discontinuity = true });
	cr_assert(ts_packet_discontinuity(p));
	write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 7, .discontinuity = true });
	cr_assert(ts_packet_discontinuity(p));
	cr_assert_eq(pcr_of(p), 7);

	write_packet(p, (struct packet_spec){ .has_pcr = true, .pcr = 7 });
	cr_assert_not(ts_packet_discontinuity(p));
	write_packet(p, (struct packet_spec){ .pid = 0x80 });
	p[4] = 0x80;		/* payload, not a flag */
	cr_assert_not(ts_packet_discontinuity(p), "control 1");
	write_packet(p, (struct packet_spec){ .discontinuity = true });
	p[4] = 0;
	cr_assert_not(ts_packet_discontinuity(p), "empty adaptation field: no flags byte");
	write_packet(p, (struct packet_spec){ .discontinuity = true });
	p[0] = 0;
	cr_assert_not(ts_packet_discontinuity(p), "bad sync");
}

/* ---- resync --------------------------------------------------------- */

#define GARBAGE 50

/* GARBAGE bytes of noise, then n packets without PCRs. */
static size_t garbage_then_packets(uint8_t *buf, unsigned n)
{
	memset(buf, 0x00, GARBAGE);
	for (unsigned i = 0; i < n; i++)
		write_packet(buf + GARBAGE + i * TS_PACKET_SIZE, (struct packet_spec){ .pid = 0x100 + i });
	return GARBAGE + (size_t)n * TS_PACKET_SIZE;
}

Test(ts_resync, finds_the_packets_after_garbage)
{
	uint8_t buf[GARBAGE + 4 * TS_PACKET_SIZE];
	size_t len = garbage_then_packets(buf, 4);

	cr_assert_eq(ts_resync(buf, len, 3), GARBAGE);
	cr_assert_eq(ts_resync(buf, len, 1), GARBAGE);
	cr_assert_eq(ts_resync(buf + GARBAGE, len - GARBAGE, 3), 0, "already in sync");
}

Test(ts_resync, a_stray_sync_byte_is_not_a_packet)
{
	uint8_t buf[GARBAGE + 4 * TS_PACKET_SIZE];
	size_t len = garbage_then_packets(buf, 4);

	buf[10] = TS_SYNC_BYTE;	/* 10 + 188 is inside the first packet's payload */
	cr_assert_eq(ts_resync(buf, len, 3), GARBAGE);
	cr_assert_eq(ts_resync(buf, len, 2), GARBAGE);
	cr_assert_eq(ts_resync(buf, len, 1), 10, "one sync byte is all need=1 asks");
	cr_assert_eq(ts_resync(buf, len, 0), 10, "need 0 counts as 1");
}

Test(ts_resync, fewer_boundaries_at_the_end_of_the_buffer)
{
	uint8_t buf[GARBAGE + 4 * TS_PACKET_SIZE];
	size_t len = garbage_then_packets(buf, 1);

	/* Only one boundary lies inside buf: the rest is still to come. */
	cr_assert_eq(ts_resync(buf, len, 3), GARBAGE);
	cr_assert_eq(ts_resync(buf, GARBAGE + 1, 3), GARBAGE);
	len = garbage_then_packets(buf, 2);
	buf[GARBAGE + TS_PACKET_SIZE] = 0;	/* the second boundary is in buf and wrong */
	cr_assert_eq(ts_resync(buf, len, 3), len);
}

Test(ts_resync, nothing_to_find)
{
	uint8_t buf[500];

	memset(buf, 0x47 ^ 0xff, sizeof(buf));
	cr_assert_eq(ts_resync(buf, sizeof(buf), 3), sizeof(buf));
	cr_assert_eq(ts_resync(buf, 0, 3), 0);
}

/* ---- the clock ------------------------------------------------------ */

Test(ts_clock, nothing_known_before_the_first_pcr)
{
	struct ts_clock clock;
	uint64_t time = 99;

	ts_clock_init(&clock, ONE_SECOND);
	cr_assert_not(ts_clock_time(&clock, 0, false, &time));
	cr_assert_not(ts_clock_time(&clock, 0, true, &time));
	cr_assert_eq(time, 99);
}

Test(ts_clock, constant_rate_is_linear)
{
	struct ts_clock clock;
	uint64_t start = 376, last = start + 4 * PCR_SPACING;

	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, start, 1234567, 5);
	assert_time(&clock, 0, 0);	/* before the first PCR */
	assert_time(&clock, start - 1, 0);
	for (unsigned i = 0; i < 5; i++)
		assert_time(&clock, start + i * PCR_SPACING, i * PCR_STEP);
	assert_time(&clock, start + 1, TICKS_PER_BYTE);
	assert_time(&clock, start + PCR_SPACING / 2, PCR_STEP / 2);
	assert_time(&clock, start + 3 * PCR_SPACING + 187, 3 * PCR_STEP + 187 * TICKS_PER_BYTE);
	assert_time(&clock, last - 1, 4 * PCR_STEP - TICKS_PER_BYTE);
	cr_assert_eq(clock.discontinuities, 0);
}

Test(ts_clock, uneven_rate_is_exact)
{
	struct ts_clock clock;

	/* 27000 ticks over 1880 bytes: 14.36... a byte, floored, no drift. */
	ts_clock_init(&clock, ONE_SECOND);
	ts_clock_pcr(&clock, 0, 500, false);
	ts_clock_pcr(&clock, 1880, 500 + 27000, false);
	ts_clock_pcr(&clock, 3760, 500 + 54000, false);
	assert_time(&clock, 1000, 1000ull * 27000 / 1880);
	assert_time(&clock, 1880 + 1879, 27000 + 1879ull * 27000 / 1880);
	assert_time(&clock, 3760, 54000);
}

Test(ts_clock, beyond_the_last_pcr_only_when_extrapolating)
{
	struct ts_clock clock;
	uint64_t last = 4 * PCR_SPACING, time = 0;

	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, 0, 5);
	cr_assert_not(ts_clock_time(&clock, last + 1, false, &time));
	cr_assert(ts_clock_time(&clock, last + 1, true, &time));
	cr_assert_eq(time, 4 * PCR_STEP + TICKS_PER_BYTE);
	cr_assert(ts_clock_time(&clock, last + 1000, true, &time));
	cr_assert_eq(time, 4 * PCR_STEP + 1000 * TICKS_PER_BYTE);
	cr_assert(ts_clock_time(&clock, last, false, &time), "the last PCR itself is known");
	cr_assert_eq(time, 4 * PCR_STEP);
}

Test(ts_clock, a_single_pcr_has_no_rate)
{
	struct ts_clock clock;
	uint64_t time = 0;

	ts_clock_init(&clock, ONE_SECOND);
	ts_clock_pcr(&clock, 1000, 5, false);
	cr_assert(ts_clock_time(&clock, 5000, true, &time));
	cr_assert_eq(time, 0);
}

Test(ts_clock, a_file_loop_goes_on)
{
	struct ts_clock clock;
	uint64_t loop = 5 * PCR_SPACING;

	/* The file's PCRs start again from its first one. */
	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, 9000000, 5);
	feed_stream(&clock, loop, 9000000, 5);
	cr_assert_eq(clock.discontinuities, 1);
	/* The loop's first PCR is where the rate would have put it. */
	assert_time(&clock, loop, 5 * PCR_STEP);
	assert_time(&clock, loop - PCR_SPACING / 2, 4 * PCR_STEP + PCR_STEP / 2);
	assert_time(&clock, loop + 2 * PCR_SPACING + 3, 7 * PCR_STEP + 3 * TICKS_PER_BYTE);
	assert_monotonic(&clock, 0, loop + 4 * PCR_SPACING + 1, 97);
}

Test(ts_clock, a_small_step_back_is_a_discontinuity)
{
	struct ts_clock clock;

	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, 9000000, 3);
	ts_clock_pcr(&clock, 3 * PCR_SPACING, 9000000 + PCR_STEP, false);	/* one step back */
	cr_assert_eq(clock.discontinuities, 1);
	assert_time(&clock, 3 * PCR_SPACING, 3 * PCR_STEP);
	assert_monotonic(&clock, 0, 3 * PCR_SPACING + 1, 13);
}

Test(ts_clock, a_big_jump_forward_is_a_discontinuity)
{
	struct ts_clock clock;
	uint64_t jump = 5 * PCR_SPACING, jumped_pcr = 4 * PCR_STEP + 10 * ONE_SECOND;

	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, 0, 5);
	feed_stream(&clock, jump, jumped_pcr, 3);
	cr_assert_eq(clock.discontinuities, 1);
	assert_time(&clock, jump, 5 * PCR_STEP);
	assert_time(&clock, jump + 2 * PCR_SPACING, 7 * PCR_STEP);
	assert_monotonic(&clock, 0, jump + 2 * PCR_SPACING + 1, 101);
}

Test(ts_clock, a_step_of_exactly_max_gap_is_not)
{
	struct ts_clock clock;

	ts_clock_init(&clock, ONE_SECOND);
	ts_clock_pcr(&clock, 0, 0, false);
	ts_clock_pcr(&clock, 1000, ONE_SECOND, false);
	cr_assert_eq(clock.discontinuities, 0);
	assert_time(&clock, 1000, ONE_SECOND);
	ts_clock_pcr(&clock, 2000, 2 * ONE_SECOND + 1, false);
	cr_assert_eq(clock.discontinuities, 1);
	assert_time(&clock, 2000, 2 * ONE_SECOND);
}

Test(ts_clock, the_discontinuity_flag_starts_a_segment)
{
	struct ts_clock clock;

	/* A small, plausible step, but flagged: the PCR's value says nothing. */
	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, 0, 3);
	ts_clock_pcr(&clock, 3 * PCR_SPACING, 2 * PCR_STEP + 5000, true);
	cr_assert_eq(clock.discontinuities, 1);
	assert_time(&clock, 3 * PCR_SPACING, 3 * PCR_STEP);
	/* The new segment's own steps count from its first PCR. */
	ts_clock_pcr(&clock, 4 * PCR_SPACING, 2 * PCR_STEP + 5000 + PCR_STEP, false);
	assert_time(&clock, 4 * PCR_SPACING, 4 * PCR_STEP);
	cr_assert_eq(clock.discontinuities, 1);
}

Test(ts_clock, the_wrap_is_a_plain_step)
{
	struct ts_clock clock;

	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, TS_PCR_WRAP - 2 * PCR_STEP - 7, 6);
	cr_assert_eq(clock.discontinuities, 0);
	for (unsigned i = 0; i < 6; i++)
		assert_time(&clock, i * PCR_SPACING, i * PCR_STEP);
	assert_time(&clock, 2 * PCR_SPACING + 11, 2 * PCR_STEP + 11 * TICKS_PER_BYTE);
}

Test(ts_clock, a_huge_max_gap_still_sees_a_step_back)
{
	struct ts_clock clock;

	ts_clock_init(&clock, UINT64_MAX);
	feed_stream(&clock, 0, 9000000, 2);
	ts_clock_pcr(&clock, 2 * PCR_SPACING, 9000000, false);
	cr_assert_eq(clock.discontinuities, 1);
	assert_time(&clock, 2 * PCR_SPACING, 2 * PCR_STEP);
}

Test(ts_clock, a_pcr_not_past_the_last_offset_is_ignored)
{
	struct ts_clock clock;

	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, 0, 3);
	ts_clock_pcr(&clock, 2 * PCR_SPACING, 999999, true);
	ts_clock_pcr(&clock, PCR_SPACING, 999999, false);
	cr_assert_eq(clock.count, 3);
	cr_assert_eq(clock.discontinuities, 0);
	ts_clock_pcr(&clock, 3 * PCR_SPACING, 3 * PCR_STEP, false);
	assert_time(&clock, 3 * PCR_SPACING, 3 * PCR_STEP);
}

Test(ts_clock, forgetting_keeps_what_is_still_asked)
{
	struct ts_clock clock;
	uint64_t asked = 3 * PCR_SPACING + 100;

	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, 0, 6);
	ts_clock_forget(&clock, asked);
	cr_assert_eq(clock.count, 3, "the points at 3, 4 and 5 spacings");
	assert_time(&clock, asked, 3 * PCR_STEP + 100 * TICKS_PER_BYTE);
	assert_time(&clock, 4 * PCR_SPACING + 50, 4 * PCR_STEP + 50 * TICKS_PER_BYTE);
	ts_clock_forget(&clock, 4 * PCR_SPACING);
	cr_assert_eq(clock.count, 2, "a point exactly at the offset is the one kept");
	assert_time(&clock, 4 * PCR_SPACING, 4 * PCR_STEP);
	/* Past every point: the newest stays, and the stream goes on. */
	ts_clock_forget(&clock, UINT64_MAX);
	cr_assert_eq(clock.count, 1);
	feed_stream(&clock, 6 * PCR_SPACING, 6 * PCR_STEP, 2);
	assert_time(&clock, 6 * PCR_SPACING + 1, 6 * PCR_STEP + TICKS_PER_BYTE);
	cr_assert_eq(clock.discontinuities, 0);
}

Test(ts_clock, a_full_ring_drops_the_oldest)
{
	struct ts_clock clock;
	unsigned n = 3 * TS_CLOCK_POINTS + 5;
	uint64_t oldest = (uint64_t)(n - TS_CLOCK_POINTS) * PCR_SPACING;

	ts_clock_init(&clock, ONE_SECOND);
	feed_stream(&clock, 0, 0, n);
	cr_assert_eq(clock.count, TS_CLOCK_POINTS);
	assert_time(&clock, oldest, (n - TS_CLOCK_POINTS) * (uint64_t)PCR_STEP);
	assert_time(&clock, oldest - 1, (n - TS_CLOCK_POINTS) * (uint64_t)PCR_STEP);	/* before the oldest: its time */
	assert_time(&clock, (n - 2) * (uint64_t)PCR_SPACING + 77, (n - 2) * (uint64_t)PCR_STEP + 77 * TICKS_PER_BYTE);
	assert_time(&clock, (n - 1) * (uint64_t)PCR_SPACING, (n - 1) * (uint64_t)PCR_STEP);
	assert_monotonic(&clock, 0, (n - 1) * (uint64_t)PCR_SPACING + 1, 1009);
}

Test(ts_clock, times_saturate_instead_of_wrapping)
{
	struct ts_clock clock;
	uint64_t time = 0;

	ts_clock_init(&clock, ONE_SECOND);
	ts_clock_pcr(&clock, 0, 0, false);
	ts_clock_pcr(&clock, 1, ONE_SECOND, false);	/* 27 M ticks a byte */
	cr_assert(ts_clock_time(&clock, UINT64_MAX, true, &time));
	cr_assert_eq(time, UINT64_MAX);
	ts_clock_pcr(&clock, UINT64_MAX, 0, true);
	cr_assert(ts_clock_time(&clock, UINT64_MAX - 1, false, &time));
	cr_assert_geq(time, ONE_SECOND);
	cr_assert_eq(time_at(&clock, UINT64_MAX), UINT64_MAX);
}
