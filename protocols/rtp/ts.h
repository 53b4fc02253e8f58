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

/* One 188-byte packet at p: its PCR in 27 MHz ticks and its PID, if it
 * carries one (adaptation_field_control 2 or 3, adaptation field length
 * >= 7, PCR_flag set). False for anything else, a malformed packet
 * included; never reads past p[187]. */
bool ts_packet_pcr(const uint8_t *p, uint64_t *pcr, unsigned *pid);
/* True when the packet at p sets discontinuity_indicator in its
 * adaptation field (a splice: the next PCR starts a new timeline). */
bool ts_packet_discontinuity(const uint8_t *p);
/* The offset of the first place in buf where sync bytes stand at `need`
 * consecutive 188-byte boundaries (or fewer, up to the end of buf, if
 * buf is shorter), or len when there is none. */
size_t ts_resync(const uint8_t *buf, size_t len, unsigned need);

/* The pacing clock: PCRs seen at stream byte offsets, in order.
 * ts_clock_pcr() feeds each PCR of the PCR PID with the stream offset of
 * its packet's first byte; ts_clock_time() then gives the due time of a
 * byte offset, in 27 MHz ticks on a continuous timeline that starts at 0
 * at the first PCR and never goes back: a PCR that jumps back or more
 * than max_gap forward (a discontinuity, a file loop, a wrap handled as
 * such only when it is not a plain 2^33 wrap) starts a new segment that
 * continues from where the last one ended, at the last segment's rate. */
struct ts_clock {
	uint64_t max_gap;		/* ticks; a PCR further on is a discontinuity */
	/* Known PCR points: a ring of (offset, time on the continuous timeline). */
	struct ts_point { uint64_t offset, time; } points[64];
	unsigned head, count;
	uint64_t last_pcr;		/* raw, for the next PCR's difference */
	double ticks_per_byte;		/* of the last segment: for extrapolation */
	uint64_t discontinuities;
	bool started;
};

void ts_clock_init(struct ts_clock *clock, uint64_t max_gap);
void ts_clock_pcr(struct ts_clock *clock, uint64_t offset, uint64_t pcr, bool discontinuity);
/* The due time of offset (ticks, continuous). False when offset lies
 * beyond the last PCR fed (the caller waits for
 * more of the stream); 0 before the first PCR. Offsets beyond the last
 * PCR are extrapolated at the last segment's rate only when
 * `extrapolate` (the end of a source: there will be no next PCR). */
bool ts_clock_time(const struct ts_clock *clock, uint64_t offset, bool extrapolate, uint64_t *time);
/* Forget the points before offset (they will not be asked again). */
void ts_clock_forget(struct ts_clock *clock, uint64_t offset);

#endif
