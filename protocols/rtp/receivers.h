/* What the receivers of an RTP stream say of it: the report blocks of
 * their RTCP RRs (and SRs) about our SSRC, one entry per receiver SSRC,
 * in a table of fixed size (RFC 3550 6.4.1, 6.3.5).
 *
 * Nothing here touches a socket or a clock: the caller hands over each
 * report block with the time it arrived, and asks for expiry and status
 * rows with the time now, so it is all testable with made-up numbers. */
#ifndef CHASSISD_RTP_RECEIVERS_H
#define CHASSISD_RTP_RECEIVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/rtp/packet.h"

struct rtp_receiver {
	uint32_t ssrc;			/* the receiver's */
	uint8_t fraction_lost;		/* /256, since its previous report */
	int32_t cumulative_lost;	/* may be negative: duplicates */
	uint32_t highest_sequence;	/* extended */
	uint32_t jitter;		/* in RTP timestamp units */
	bool rtt_known;			/* it had one of our SRs (LSR not 0) */
	uint64_t rtt_ns;
	uint64_t heard_ns;		/* monotonic time of its last report */
	uint64_t reports;
};

struct rtp_receivers {
	struct rtp_receiver *slots;	/* count used of cap, in order of arrival */
	size_t cap, count;
	uint64_t refused;		/* new receivers while the table was full */
	uint64_t expired;		/* removed after a silence */
	uint64_t ignored;		/* blocks about another SSRC than ours */
};

/* False when out of memory. cap 0 keeps no receiver (all refused). */
bool rtp_receivers_init(struct rtp_receivers *table, size_t cap);
void rtp_receivers_free(struct rtp_receivers *table);

/* A report block that arrived at now_ns (monotonic) and, the same
 * instant, at arrival_ntp (64-bit NTP, wall clock). Blocks about another
 * source than our_ssrc are counted and ignored; a receiver not in the
 * table takes a free slot or, with none, is refused and counted. The
 * round trip is arrival - LSR - DLSR in 1/65536 s (RFC 3550 6.4.1), only
 * when LSR is not 0, and 0 when the clocks make it negative. */
void rtp_receivers_report(struct rtp_receivers *table, const struct rtcp_report *report, uint32_t our_ssrc,
			  uint64_t arrival_ntp, uint64_t now_ns);
/* Removes every receiver silent for more than silence_ns. */
void rtp_receivers_expire(struct rtp_receivers *table, uint64_t now_ns, uint64_t silence_ns);
/* One status row per receiver, as many as fit in buf (always a C string):
 * "receiver SSRC fraction_lost=N lost=N highest_sequence=N jitter_us=N
 * [rtt_us=N] last_heard_ms=N reports=N\n". clock_hz turns the jitter's
 * timestamp units into time; a negative loss shows as 0 (the rows carry
 * unsigned counters). Returns the bytes written. */
size_t rtp_receivers_rows(const struct rtp_receivers *table, uint32_t clock_hz, uint64_t now_ns, char *buf,
			  size_t len);

#endif
