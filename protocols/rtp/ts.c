#include "protocols/rtp/ts.h"

#include <stdint.h>

/* ---- packets -------------------------------------------------------- */

/* The adaptation field fills at most the 184 bytes after the 4-byte
 * header, its length byte included. */
#define MAX_ADAPTATION_LENGTH 183
/* flags byte + 6 PCR bytes */
#define PCR_ADAPTATION_LENGTH 7
#define FLAG_DISCONTINUITY 0x80
#define FLAG_PCR 0x10
#define TRANSPORT_ERROR 0x80
/* The extension counts 27 MHz ticks modulo 300: 300..511 cannot occur. */
#define PCR_EXTENSION_MODULUS 300

/* The length of the packet's adaptation field, or -1 when it has none or
 * the packet cannot be trusted (no sync byte, transport_error_indicator:
 * the demodulator could not correct it, so its PCR may be garbage). */
static int adaptation_length(const uint8_t *p)
{
	unsigned control = (p[3] >> 4) & 3;

	if (p[0] != TS_SYNC_BYTE || (p[1] & TRANSPORT_ERROR) != 0)
		return -1;
	if (control != 2 && control != 3)
		return -1;
	if (p[4] > MAX_ADAPTATION_LENGTH)
		return -1;
	return p[4];
}

bool ts_packet_pcr(const uint8_t *p, uint64_t *pcr, unsigned *pid)
{
	uint64_t base;
	unsigned extension;

	if (adaptation_length(p) < PCR_ADAPTATION_LENGTH || (p[5] & FLAG_PCR) == 0)
		return false;
	base = (uint64_t)p[6] << 25 | (uint64_t)p[7] << 17 | (uint64_t)p[8] << 9 | (uint64_t)p[9] << 1 | p[10] >> 7;
	extension = (unsigned)(p[10] & 1) << 8 | p[11];
	if (extension >= PCR_EXTENSION_MODULUS)
		return false;
	*pcr = base * 300 + extension;
	if (pid != NULL)
		*pid = (unsigned)(p[1] & 0x1f) << 8 | p[2];
	return true;
}

bool ts_packet_discontinuity(const uint8_t *p)
{
	return adaptation_length(p) >= 1 && (p[5] & FLAG_DISCONTINUITY) != 0;
}

/* Sync bytes at `need` boundaries from start, counting only those that
 * lie inside buf. */
static bool synced_at(const uint8_t *buf, size_t len, size_t start, unsigned need)
{
	for (size_t k = 0; k < need && start < len; k++, start += TS_PACKET_SIZE) {
		if (buf[start] != TS_SYNC_BYTE)
			return false;
	}
	return true;
}

size_t ts_resync(const uint8_t *buf, size_t len, unsigned need)
{
	if (need == 0)
		need = 1;
	for (size_t start = 0; start < len; start++)
		if (buf[start] == TS_SYNC_BYTE && synced_at(buf, len, start, need))
			return start;
	return len;
}

/* ---- arithmetic that cannot overflow --------------------------------- */

static uint64_t saturating_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* floor(a * b / c), exact, saturated; c > 0. */
static uint64_t scale(uint64_t a, uint64_t b, uint64_t c)
{
	unsigned __int128 quotient = (unsigned __int128)a * b / c;

	return quotient > UINT64_MAX ? UINT64_MAX : (uint64_t)quotient;
}

/* bytes at ticks_per_byte, saturated: a double past 2^64 has no
 * uint64_t value (converting it is undefined). */
static uint64_t ticks_for_bytes(double ticks_per_byte, uint64_t bytes)
{
	double ticks = (double)bytes * ticks_per_byte;

	if (!(ticks < 18446744073709551616.0))
		return UINT64_MAX;
	return (uint64_t)ticks;
}

/* ---- the clock ------------------------------------------------------ */

static const struct ts_point *point_at(const struct ts_clock *clock, unsigned i)
{
	return &clock->points[(clock->head + i) % TS_CLOCK_POINTS];
}

static const struct ts_point *newest_point(const struct ts_clock *clock)
{
	return point_at(clock, clock->count - 1);
}

static void drop_oldest(struct ts_clock *clock)
{
	clock->head = (clock->head + 1) % TS_CLOCK_POINTS;
	clock->count--;
}

/* A full ring drops its oldest point: a sender forgets what it has sent,
 * so only a sender lagging 64 PCRs behind its input loses anything, and
 * then only the exact times of bytes before the oldest point kept. */
static void add_point(struct ts_clock *clock, uint64_t offset, uint64_t time)
{
	if (clock->count == TS_CLOCK_POINTS)
		drop_oldest(clock);
	clock->points[(clock->head + clock->count) % TS_CLOCK_POINTS] = (struct ts_point){ offset, time };
	clock->count++;
}

/* The largest gap that can be told from a jump back: a PCR a little
 * behind the last one is, modulo the wrap, almost a whole wrap ahead. */
#define MAX_GAP_LIMIT (TS_PCR_WRAP / 2)

void ts_clock_init(struct ts_clock *clock, uint64_t max_gap)
{
	*clock = (struct ts_clock){ .max_gap = max_gap < MAX_GAP_LIMIT ? max_gap : MAX_GAP_LIMIT };
}

/* A new segment: the bytes since the last point take as long as they
 * would have at the last segment's rate. */
static uint64_t continued_time(const struct ts_clock *clock, uint64_t offset)
{
	const struct ts_point *last = newest_point(clock);

	return saturating_add(last->time, ticks_for_bytes(clock->ticks_per_byte, offset - last->offset));
}

void ts_clock_pcr(struct ts_clock *clock, uint64_t offset, uint64_t pcr, bool discontinuity)
{
	const struct ts_point *last;
	uint64_t step;

	pcr %= TS_PCR_WRAP;
	if (!clock->started || clock->count == 0) {
		add_point(clock, offset, 0);
		clock->last_pcr = pcr;
		clock->started = true;
		return;
	}
	last = newest_point(clock);
	/* Bytes cannot take a time before bytes that precede them: a PCR at
	 * or before the last one's offset has no rate to give. */
	if (offset <= last->offset)
		return;
	/* Modulo the wrap, so that crossing 2^33 x 300 is a plain step. */
	step = (pcr + TS_PCR_WRAP - clock->last_pcr) % TS_PCR_WRAP;
	if (discontinuity || step == 0 || step > clock->max_gap) {
		clock->discontinuities++;
		add_point(clock, offset, continued_time(clock, offset));
	} else {
		clock->ticks_per_byte = (double)step / (double)(offset - last->offset);
		add_point(clock, offset, saturating_add(last->time, step));
	}
	clock->last_pcr = pcr;
}

/* The index of the last point at or before offset; the caller has made
 * sure the first point is at or before it and the last one after it. */
static unsigned point_before(const struct ts_clock *clock, uint64_t offset)
{
	unsigned low = 0, high = clock->count - 1;

	/* point_at(low) <= offset < point_at(high) */
	while (high - low > 1) {
		unsigned middle = low + (high - low) / 2;

		if (point_at(clock, middle)->offset <= offset)
			low = middle;
		else
			high = middle;
	}
	return low;
}

static uint64_t interpolate(const struct ts_point *a, const struct ts_point *b, uint64_t offset)
{
	return a->time + scale(offset - a->offset, b->time - a->time, b->offset - a->offset);
}

bool ts_clock_time(const struct ts_clock *clock, uint64_t offset, bool extrapolate, uint64_t *time)
{
	const struct ts_point *first, *last;
	unsigned i;

	if (clock->count == 0)
		return false;
	first = point_at(clock, 0);
	last = newest_point(clock);
	if (offset <= first->offset) {
		*time = first->time;
		return true;
	}
	if (offset >= last->offset) {
		if (offset > last->offset && !extrapolate)
			return false;
		*time = continued_time(clock, offset);
		return true;
	}
	i = point_before(clock, offset);
	*time = interpolate(point_at(clock, i), point_at(clock, i + 1), offset);
	return true;
}

void ts_clock_forget(struct ts_clock *clock, uint64_t offset)
{
	while (clock->count >= 2 && point_at(clock, 1)->offset <= offset)
		drop_oldest(clock);
}
