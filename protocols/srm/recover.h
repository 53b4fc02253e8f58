/* An SRM receiver's parity repair (FEC) for one session: the PARITY
 * datagrams heard, kept per block until the block is rebuilt or passed;
 * a copy of the last datagrams delivered (a block that began before the
 * next to deliver needs them); and the rebuild itself: once a block's
 * datagrams heard plus its parity reach k, the missing ones are decoded
 * (fec.c), checked by their own CRC32C, and added to the reorder window
 * as repairs. The copies are kept from the session's first PARITY on: a
 * sender without fec costs nothing (the block under way when the first
 * parity comes may then need plain repair). Bounded: blocks kept, parity
 * bytes, and the copies in datagrams and bytes. No clock, no socket. */
#ifndef CHASSISD_SRM_RECOVER_H
#define CHASSISD_SRM_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/srm/reorder.h"
#include "protocols/srm/wire.h"

struct srm_recover;

struct srm_recover_limits {
	size_t blocks;			/* blocks with parity kept at once, 1 or more */
	size_t bytes;			/* parity symbol bytes kept, and separately delivered copies' bytes */
};

struct srm_recover_counters {
	uint64_t parity;		/* PARITY datagrams of the session heard */
	uint64_t unneeded;		/* of those, for a block with nothing missing, or passed */
	uint64_t dropped;		/* not kept: over a bound, beyond the window, or not matching the block's others */
	uint64_t recovered;		/* datagrams rebuilt and added */
	uint64_t failed;		/* rebuilt datagrams whose CRC32C or fields were wrong */
};

/* NULL when out of memory or a limit is 0. */
struct srm_recover *srm_recover_new(const struct srm_recover_limits *limits);
void srm_recover_free(struct srm_recover *rc);

/* The reorder window delivered seq (h NULL: given up): kept as a copy once
 * the session has sent parity. */
void srm_recover_delivered(struct srm_recover *rc, uint32_t seq, const struct srm_header *h);

/* A PARITY of the session: kept, and its block rebuilt when it can be. */
void srm_recover_parity(struct srm_recover *rc, struct srm_reorder *r, const struct srm_header *h, uint64_t now_ns);

/* A sequenced datagram of the session was added to r: its block rebuilt
 * if its parity now suffices. */
void srm_recover_heard(struct srm_recover *rc, struct srm_reorder *r, uint32_t seq, uint64_t now_ns);

/* Due NAK ranges less, in each block, as many missing sequences as parity
 * of it is held (that parity counts toward its rebuild, so the sender is
 * asked for that much less); returns how many ranges are left. */
size_t srm_recover_trim(const struct srm_recover *rc, const struct srm_reorder *r, struct srm_range *ranges,
			size_t n, size_t max);

/* Another receiver's NAK: where it asks for at least as many sequences of
 * a block as this one misses there (less the parity of it held), this
 * one's NAKs for the block wait (srm_reorder_suppress): the sender
 * answers a block with as many fresh parity symbols as the NAK asks, and
 * each serves every receiver. Needs the session's block size, known from
 * its first PARITY; before that, nothing. */
void srm_recover_suppress(const struct srm_recover *rc, struct srm_reorder *r, const struct srm_range *ranges,
			  size_t n, uint64_t now_ns);

/* How many parity symbols of the block holding seq are held (0: none, or
 * no parity heard for it), and that block's first sequence and k. */
unsigned srm_recover_block(const struct srm_recover *rc, uint32_t seq, uint32_t *first, unsigned *k);

const struct srm_recover_counters *srm_recover_counters(const struct srm_recover *rc);

#endif
