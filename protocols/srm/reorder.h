/* An SRM receiver's view of one session's sequence: a reorder window that
 * delivers the sequenced datagrams (DATA and END, repairs as what they
 * repair) in order, each once; the sequences missing in it, each with the
 * time its NAK is due (a random back-off, pushed back when another
 * receiver's NAK for it is heard: NORM's suppression, RFC 5740 5.3); and
 * the sequences the sender said are GONE, delivered as lost. The back-off
 * spans twice the round trip measured from our NAKs to their repairs
 * (smoothed), at most limits.backoff_ns. Bounded in
 * datagrams and bytes. No clock, no socket: the caller passes the time,
 * sends the NAKs and owns the timer. */
#ifndef CHASSISD_SRM_REORDER_H
#define CHASSISD_SRM_REORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocols/srm/wire.h"

struct srm_reorder;

/* In order: a DATA or an END (a REPAIR comes as the type it repairs),
 * payload valid during the call only; or, with h NULL, sequence seq was
 * given up (GONE). */
typedef void srm_deliver_fn(void *arg, uint32_t seq, const struct srm_header *h);

struct srm_reorder_limits {
	size_t datagrams;		/* window, 1 or more */
	size_t bytes;			/* payload bytes held out of order */
	uint64_t backoff_ns;		/* a first NAK waits a random 0..backoff (0..2 RTT once measured, if less) */
	uint64_t retry_ns;		/* a NAK not answered is sent again after this */
};

struct srm_reorder_counters {
	uint64_t delivered, duplicates, ahead, over_bytes, lost;
	uint64_t nak_sequences, suppressed;
};

/* The first sequence to deliver is `first`; seed makes the back-offs
 * differ between receivers. NULL when out of memory or datagrams is 0. */
struct srm_reorder *srm_reorder_new(const struct srm_reorder_limits *limits, uint32_t first, uint32_t seed,
				    srm_deliver_fn *deliver, void *arg);
void srm_reorder_free(struct srm_reorder *r);

enum srm_reorder_result {
	SRM_REORDER_KEPT = 0,		/* held or delivered */
	SRM_REORDER_DUPLICATE = 1,	/* delivered or held already, or given up */
	SRM_REORDER_AHEAD = 2,		/* past the window: dropped, its NAK comes later */
	SRM_REORDER_OVER_BYTES = 3,	/* the byte bound is reached: dropped */
};
/* A sequenced datagram (DATA, END, or a REPAIR) that srm_parse accepted.
 * Delivers what is now in order, then notes the sequences skipped to
 * reach it as missing. */
int srm_reorder_add(struct srm_reorder *r, const struct srm_header *h, uint64_t now_ns);

/* A HEARTBEAT's leading edge (the sender's next sequence): the sequences
 * before it not yet heard are missing (a lost tail shows this way). */
void srm_reorder_heard_leading(struct srm_reorder *r, uint32_t leading, uint64_t now_ns);

/* Another receiver's NAK for these: ours waits another retry time. */
void srm_reorder_suppress(struct srm_reorder *r, const struct srm_range *range, uint64_t now_ns);

/* GONE: these will never come; delivered as lost, in order. */
void srm_reorder_gone(struct srm_reorder *r, const struct srm_range *range);

/* The missing sequences whose NAK is due, as at most max ranges; each is
 * due again retry_ns later. Returns how many ranges. */
size_t srm_reorder_due_naks(struct srm_reorder *r, uint64_t now_ns, struct srm_range *out, size_t max);

/* Where a sequence stands, for parity repair (recover.c). */
enum srm_reorder_state {
	SRM_REORDER_PAST = 0,		/* before next: delivered or given up */
	SRM_REORDER_HELD = 1,		/* held, not yet delivered */
	SRM_REORDER_MISSING = 2,	/* within the window, not heard (known missing or not yet known) */
	SRM_REORDER_GIVEN_UP = 3,	/* GONE, not yet passed */
	SRM_REORDER_BEYOND = 4,		/* past the window */
};
int srm_reorder_state(const struct srm_reorder *r, uint32_t seq);
/* A held datagram as srm_reorder_add stored it (a REPAIR as what it
 * repairs), or NULL when seq is not SRM_REORDER_HELD. Valid until the
 * next call that adds or delivers. */
const struct srm_header *srm_reorder_held(const struct srm_reorder *r, uint32_t seq);

/* Sequences missing now, and the next to deliver. */
size_t srm_reorder_missing(const struct srm_reorder *r);
uint32_t srm_reorder_next(const struct srm_reorder *r);
/* The smoothed NAK-to-repair time, 0 before a repair of a NAKed sequence. */
uint64_t srm_reorder_rtt_ns(const struct srm_reorder *r);
const struct srm_reorder_counters *srm_reorder_counters(const struct srm_reorder *r);

#endif
