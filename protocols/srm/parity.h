/* An SRM sender's parity plan (FEC, fec = "K+N"): its sequences cut into
 * blocks of k from its first one, and which parity to send for each. A
 * NAK lists ranges; what it misses in a block is the count of its
 * sequences there (no wire change: one NAK is one receiver's). For a
 * block sent whole and still kept, the plan queues that many parity
 * symbols, fresh indices each time (parity i repairs a different loss at
 * each receiver), less what the block already had within the hold-off:
 * the sender sends per block what the worst receiver misses, as NORM does
 * (RFC 5740 5.3). What parity cannot answer goes back to the caller as
 * ranges for plain repair: a block not yet sent whole (the tail of a
 * transfer, or a sender gone idle), one partly out of the window, and
 * losses past the block's n parity. Proactive parity is queued as each
 * block is sent whole. No clock, no socket, no datagrams. */
#ifndef CHASSISD_SRM_PARITY_H
#define CHASSISD_SRM_PARITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/srm/wire.h"

struct srm_parity_plan;

struct srm_parity_counters {
	uint64_t queued;		/* parity symbols queued, proactive and for NAKs */
	uint64_t held_off;		/* NAKed sequences the block's parity in this hold-off already covers */
	uint64_t exhausted;		/* NAKed sequences past a block's n parity: repaired plainly */
	uint64_t partial;		/* NAKed sequences of blocks not sent whole or not kept whole */
	uint64_t queue_full;		/* parity that could not be queued (the receiver asks again) */
};

/* k 1..254, n 1..255-k, proactive 0..n; window: the transmit window in
 * datagrams (bounds the blocks tracked); first_sequence: the sender's
 * first. NULL when out of memory or the numbers are out of range. */
struct srm_parity_plan *srm_parity_plan_new(unsigned k, unsigned n, unsigned proactive, size_t window,
					    uint64_t hold_off_ns, uint32_t first_sequence);
void srm_parity_plan_free(struct srm_parity_plan *plan);

/* The first sequence of seq's block, and how many sequences it has
 * (k, but for a block cut short by the sequence space's wrap). */
uint32_t srm_parity_block_first(const struct srm_parity_plan *plan, uint32_t seq, unsigned *count);

/* The sequenced datagram leading - 1 was sent: when it completes its
 * block, that block's proactive parity is queued. */
void srm_parity_plan_sent(struct srm_parity_plan *plan, uint32_t leading);

/* One NAK's ranges against the window [trailing, leading): parity queued
 * for what it can answer; the rest appended to plain (at most max_plain,
 * *n_plain counting), for the caller's repair queue (which also says GONE
 * for what left the window). */
void srm_parity_plan_nak(struct srm_parity_plan *plan, const struct srm_range *ranges, size_t n, uint32_t trailing,
			 uint32_t leading, uint64_t now_ns, struct srm_range *plain, size_t *n_plain, size_t max_plain);

/* The next parity to send: its block's first sequence and its index;
 * false when none is queued. The caller skips one whose block has left
 * the window meanwhile. */
bool srm_parity_plan_next(struct srm_parity_plan *plan, uint32_t *first, unsigned *index);

unsigned srm_parity_plan_k(const struct srm_parity_plan *plan);
const struct srm_parity_counters *srm_parity_plan_counters(const struct srm_parity_plan *plan);

#endif
