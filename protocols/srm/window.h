/* An SRM sender's transmit window: the last sequenced datagrams it sent,
 * kept whole for repair and bounded in datagrams and in bytes; and the
 * repairs that NAKs ask for, each sequence queued once per hold-off
 * however many receivers ask, and the asked-for sequences that already
 * left the window, to be answered with GONE (RFC 3208's transmit window
 * and NAK handling, RFC 5740's repair aggregation). No clock and no
 * socket: the caller passes the time and sends. */
#ifndef CHASSISD_SRM_WINDOW_H
#define CHASSISD_SRM_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/srm/wire.h"

struct srm_window;

struct srm_window_counters {
	uint64_t kept, evicted;		/* datagrams */
	uint64_t requested;		/* sequences asked for, NAK ranges summed */
	uint64_t queued;		/* of those, queued for repair */
	uint64_t held_off;		/* asked again within the hold-off, or already queued */
	uint64_t gone;			/* asked for after they left the window */
	uint64_t implausible;		/* asked for but never sent */
	uint64_t queue_full;		/* could not be queued (the receiver asks again) */
};

/* Holds at most max_datagrams (1 or more) and max_bytes of datagrams;
 * hold_off_ns: how long after a repair the same sequence is not queued
 * again. first_sequence: the sequence of the first datagram kept. NULL
 * when out of memory or max_datagrams is 0. */
struct srm_window *srm_window_new(size_t max_datagrams, size_t max_bytes, uint64_t hold_off_ns,
				  uint32_t first_sequence);
void srm_window_free(struct srm_window *window);

/* Keeps a copy of the next sequenced datagram (whole, header included),
 * which takes sequence srm_window_leading(); the oldest leave to stay
 * within both bounds. False when out of memory or len is over max_bytes:
 * then the sequence is still used up (it was sent), only not kept. */
bool srm_window_keep(struct srm_window *window, const uint8_t *datagram, size_t len);

/* The oldest sequence kept, and the next to be sent (equal: none kept):
 * a HEARTBEAT's body. */
uint32_t srm_window_trailing(const struct srm_window *window);
uint32_t srm_window_leading(const struct srm_window *window);

/* A kept datagram, or NULL when seq is not in the window. Valid until the
 * next srm_window_keep(). */
const uint8_t *srm_window_get(const struct srm_window *window, uint32_t seq, size_t *len);

/* One NAK range: each sequence still kept is queued for repair unless it
 * is queued already or was repaired less than the hold-off ago. The part
 * before the trailing edge is appended to gone (as one range, if
 * *n_gone < max_gone), so the caller can say GONE; the part at or after
 * the leading edge was never sent and is only counted. */
void srm_window_request(struct srm_window *window, const struct srm_range *range, uint64_t now_ns,
			struct srm_range *gone, size_t *n_gone, size_t max_gone);

/* The next queued repair in the order asked, marked repaired at now_ns;
 * false when none is queued. Sequences that left the window while queued
 * are skipped. */
bool srm_window_next_repair(struct srm_window *window, uint64_t now_ns, uint32_t *seq);

const struct srm_window_counters *srm_window_counters(const struct srm_window *window);

#endif
