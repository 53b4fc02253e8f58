/* MPEG-TS timing on any bytes: the packet readers and ts_resync on the
 * input as a stream, and the pacing clock fed twice, once from the PCRs
 * the packets carry and once from records that choose every offset, PCR,
 * flag and forget. After every change the clock must keep its promises:
 * points in order, times that never go back as the offset grows, exact
 * times on its points, and forgetting that changes no time still asked.
 *
 * Byte 0 picks max_gap (a power of two, or a second), byte 1 the `need`
 * of ts_resync; the rest is the stream, and, cut into records, the feed:
 *   3 bytes offset step | 6 bytes PCR | 1 byte flags
 * flags: 1 discontinuity, 2 forget up to the new offset less the step,
 * 4 a step shifted 40 bits left (to reach saturation). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/rtp/ts.h"

#define OPTION_BYTES 2
#define RECORD_SIZE 10
#define FLAG_DISCONTINUITY 1
#define FLAG_FORGET 2
#define FLAG_HUGE_STEP 4
#define QUERIES_PER_SPAN 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static uint64_t read_be(const uint8_t *p, unsigned n)
{
	uint64_t value = 0;

	for (unsigned i = 0; i < n; i++)
		value = value << 8 | p[i];
	return value;
}

static uint64_t max_gap_from(uint8_t option)
{
	return option < 64 ? (uint64_t)1 << option : TS_PCR_HZ;
}

/* ---- the clock's promises -------------------------------------------- */

static const struct ts_point *point_at(const struct ts_clock *clock, unsigned i)
{
	return &clock->points[(clock->head + i) % TS_CLOCK_POINTS];
}

static uint64_t time_at(const struct ts_clock *clock, uint64_t offset)
{
	uint64_t time = 0;

	check(ts_clock_time(clock, offset, false, &time));
	return time;
}

/* Walks every point and a few offsets between each two, in offset order:
 * each is known, none earlier than the one before, points exact. */
static void check_timeline(const struct ts_clock *clock)
{
	const struct ts_point *oldest = point_at(clock, 0);
	uint64_t previous = oldest->time;

	check(clock->count >= 1 && clock->count <= TS_CLOCK_POINTS);
	if (oldest->offset > 0)
		check(time_at(clock, oldest->offset - 1) == oldest->time);
	for (unsigned i = 0; i + 1 < clock->count; i++) {
		const struct ts_point *a = point_at(clock, i), *b = point_at(clock, i + 1);
		uint64_t span = b->offset - a->offset;

		check(b->offset > a->offset && b->time >= a->time);
		check(time_at(clock, a->offset) == a->time && a->time >= previous);
		previous = a->time;
		for (unsigned k = 1; k < QUERIES_PER_SPAN; k++) {
			uint64_t time = time_at(clock, a->offset + span / QUERIES_PER_SPAN * k);

			check(time >= previous && time <= b->time);
			previous = time;
		}
	}
}

static void check_beyond_the_last(const struct ts_clock *clock)
{
	const struct ts_point *newest = point_at(clock, clock->count - 1);
	uint64_t time = 0, further = 0;

	check(time_at(clock, newest->offset) == newest->time);
	if (newest->offset == UINT64_MAX)
		return;
	check(!ts_clock_time(clock, newest->offset + 1, false, &time));
	check(ts_clock_time(clock, newest->offset + 1, true, &time) && time >= newest->time);
	check(ts_clock_time(clock, UINT64_MAX, true, &further) && further >= time);
}

static void check_clock(const struct ts_clock *clock, uint64_t *newest_time)
{
	check(clock->started);
	check_timeline(clock);
	check_beyond_the_last(clock);
	/* The timeline never goes back, whatever the PCRs did. */
	check(point_at(clock, clock->count - 1)->time >= *newest_time);
	*newest_time = point_at(clock, clock->count - 1)->time;
}

/* Forgetting keeps every time from the forgotten offset on. */
static void forget_and_check(struct ts_clock *clock, uint64_t offset)
{
	uint64_t asked[TS_CLOCK_POINTS + 1], before[TS_CLOCK_POINTS + 1] = { 0 };
	unsigned n = 0;

	asked[n++] = offset;
	for (unsigned i = 0; i < clock->count; i++)
		if (point_at(clock, i)->offset > offset)
			asked[n++] = point_at(clock, i)->offset - 1;
	for (unsigned i = 0; i < n; i++)
		check(ts_clock_time(clock, asked[i], false, &before[i]) || asked[i] > point_at(clock, clock->count - 1)->offset);
	ts_clock_forget(clock, offset);
	for (unsigned i = 0; i < n; i++) {
		uint64_t after;

		if (ts_clock_time(clock, asked[i], false, &after))
			check(after == before[i]);
	}
}

/* ---- the packets ----------------------------------------------------- */

static void check_resync(const uint8_t *data, size_t size, unsigned need)
{
	size_t start = ts_resync(data, size, need);
	const uint8_t *first_sync = memchr(data, TS_SYNC_BYTE, size);

	check(start <= size);
	if (start == size) {
		check(need > 1 || first_sync == NULL);
		return;
	}
	check(first_sync != NULL && start >= (size_t)(first_sync - data));
	if (need <= 1)
		check(start == (size_t)(first_sync - data));
	for (size_t k = 0, at = start; k < need && at < size; k++, at += TS_PACKET_SIZE)
		check(data[at] == TS_SYNC_BYTE);
}

/* Feeds the PCRs of the packets from `start` on, as a sender would. */
static void feed_packets(const uint8_t *data, size_t size, size_t start, uint64_t max_gap)
{
	struct ts_clock clock;
	uint64_t newest_time = 0;
	bool discontinuity = false;

	ts_clock_init(&clock, max_gap);
	for (size_t at = start; size - at >= TS_PACKET_SIZE; at += TS_PACKET_SIZE) {
		uint64_t pcr = 0, pcr_again = 0;
		unsigned pid = 0;
		bool has_pcr = ts_packet_pcr(data + at, &pcr, &pid);

		check(has_pcr == ts_packet_pcr(data + at, &pcr_again, NULL));
		discontinuity |= ts_packet_discontinuity(data + at);
		if (!has_pcr)
			continue;
		check(pcr < TS_PCR_WRAP && pcr == pcr_again && pid < 0x2000);
		ts_clock_pcr(&clock, at, pcr, discontinuity);
		discontinuity = false;
		check_clock(&clock, &newest_time);
	}
}

/* ---- the records ----------------------------------------------------- */

static void feed_records(const uint8_t *data, size_t size, uint64_t max_gap)
{
	struct ts_clock clock;
	uint64_t offset = 0, newest_time = 0;

	ts_clock_init(&clock, max_gap);
	for (; size >= RECORD_SIZE; data += RECORD_SIZE, size -= RECORD_SIZE) {
		uint8_t flags = data[9];
		uint64_t step = read_be(data, 3) << (flags & FLAG_HUGE_STEP ? 40 : 0);

		offset = offset > UINT64_MAX - step ? UINT64_MAX : offset + step;
		ts_clock_pcr(&clock, offset, read_be(data + 3, 6), flags & FLAG_DISCONTINUITY);
		check_clock(&clock, &newest_time);
		if (flags & FLAG_FORGET) {
			forget_and_check(&clock, offset - step);
			check_clock(&clock, &newest_time);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t max_gap;
	unsigned need;

	if (size < OPTION_BYTES)
		return 0;
	max_gap = max_gap_from(data[0]);
	need = data[1];
	data += OPTION_BYTES;
	size -= OPTION_BYTES;

	check_resync(data, size, need);
	check_resync(data, size, 3);
	feed_packets(data, size, 0, max_gap);
	feed_packets(data, size, ts_resync(data, size, need), max_gap);
	feed_records(data, size, max_gap);
	return 0;
}
