/* MPEG-TS timing for RTP pacing (RFC 2250 senders): find the PCRs in a
 * transport stream and say when each byte is due.
 *
 * A TS is 188-byte packets, each starting with the sync byte 0x47. The
 * PCR (a 27 MHz clock: 33-bit base x 300 + 9-bit extension) sits in the
 * adaptation field of packets of one PID, the PCR PID. Between two PCRs
 * the bytes of a constant-rate multiplex are evenly spaced, so the time
 * of any byte is a linear interpolation between the PCRs around it. */
#ifndef CHASSISD_RTP_TS_H
#define CHASSISD_RTP_TS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TS_PACKET_SIZE 188
#define TS_SYNC_BYTE 0x47
#define TS_PCR_HZ 27000000ull
/* The PCR wraps at 2^33 x 300 ticks (about 26.5 hours). */
#define TS_PCR_WRAP (((uint64_t)1 << 33) * 300)

/* One 188-byte packet at p: its PCR in 27 MHz ticks (always below
 * TS_PCR_WRAP) and its PID, if it carries one (adaptation_field_control
 * 2 or 3, adaptation field length 7..183, PCR_flag set). False for
 * anything else, a malformed packet included: no sync byte, an adaptation
 * field longer than the packet, a PCR extension of 300 or more (it counts
 * modulo 300), transport_error_indicator set (the receiver could not
 * correct the packet, so its PCR cannot be trusted). pid may be NULL.
 * Never reads past p[187] (in fact past p[11]). */
bool ts_packet_pcr(const uint8_t *p, uint64_t *pcr, unsigned *pid);
/* True when the packet at p sets discontinuity_indicator in its
 * adaptation field (a splice: the next PCR starts a new timeline). False
 * for the packets ts_packet_pcr() does not trust: no sync byte, an
 * adaptation field longer than the packet, transport_error_indicator. */
bool ts_packet_discontinuity(const uint8_t *p);
/* The offset of the first place in buf where sync bytes stand at `need`
 * consecutive 188-byte boundaries (or fewer, up to the end of buf, if
 * buf is shorter), or len when there is none. need 0 counts as 1. */
size_t ts_resync(const uint8_t *buf, size_t len, unsigned need);

/* The pacing clock: PCRs seen at stream byte offsets, in order.
 * ts_clock_pcr() feeds each PCR of the PCR PID with the stream offset of
 * its packet's first byte; ts_clock_time() then gives the due time of a
 * byte offset, in 27 MHz ticks on a continuous timeline that starts at 0
 * at the first PCR and never goes back as the offset grows.
 *
 * Between two PCRs of a segment the time is their linear interpolation
 * (exact: floor, no rounding drift). The PCR's difference is taken modulo
 * the wrap, so crossing 2^33 x 300 is a plain step. A PCR whose step is 0,
 * more than max_gap, or (modulo the wrap) a step back, or one fed with
 * `discontinuity`, starts a new segment: its point is put where the last
 * segment's rate would put its offset, so the timeline goes on (a file
 * loop, a splice, a glitch all look alike to the receiver's pacing).
 *
 * Bounded: the points are a ring of TS_CLOCK_POINTS; when it is full the
 * oldest point is dropped, and offsets before the oldest point kept take
 * its time (as offsets before the first PCR take 0). Times saturate at
 * UINT64_MAX rather than wrap. Nothing allocates; any values are safe. */
#define TS_CLOCK_POINTS 64u

struct ts_clock {
	uint64_t max_gap;		/* ticks; a PCR further on is a discontinuity */
	/* Known PCR points: a ring of (offset, time on the continuous
	 * timeline), oldest at head, offsets strictly increasing, times
	 * never decreasing. */
	struct ts_point { uint64_t offset, time; } points[TS_CLOCK_POINTS];
	unsigned head, count;
	uint64_t last_pcr;		/* raw (below TS_PCR_WRAP), for the next PCR's difference */
	double ticks_per_byte;		/* the last step within a segment: for extrapolation */
	uint64_t discontinuities;	/* segments started after the first */
	bool started;
};

/* max_gap is clamped to TS_PCR_WRAP / 2: beyond it a step back could not
 * be told from a step forward across the wrap. 0 makes every PCR a new
 * segment; ISO 13818-1 puts PCRs at most 0.1 s apart, so a second or so
 * (27000000) is a reasonable choice. */
void ts_clock_init(struct ts_clock *clock, uint64_t max_gap);
/* discontinuity: this PCR's packet, or one of the PCR PID since the last
 * PCR, set discontinuity_indicator (ts_packet_discontinuity()). A PCR
 * whose offset is not past the last one's is ignored: bytes already
 * timed cannot be timed again. pcr is taken modulo TS_PCR_WRAP. */
void ts_clock_pcr(struct ts_clock *clock, uint64_t offset, uint64_t pcr, bool discontinuity);
/* The due time of offset (ticks, continuous). False when no PCR has been
 * fed, or when offset lies beyond the last PCR fed (the caller waits for
 * more of the stream); 0 before the first PCR. Offsets beyond the last
 * PCR are extrapolated at the last segment's rate only when
 * `extrapolate` (the end of a source: there will be no next PCR); with
 * no rate known yet (a single PCR) they take the last PCR's time. */
bool ts_clock_time(const struct ts_clock *clock, uint64_t offset, bool extrapolate, uint64_t *time);
/* Forget the points before offset (they will not be asked again), all
 * but the last one at or before it, which the bytes after it still
 * interpolate from. The newest point is always kept. */
void ts_clock_forget(struct ts_clock *clock, uint64_t offset);

#endif
