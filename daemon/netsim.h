/* Fault simulation between a unit and the wire: Kamaelia's BrokenNetwork
 * filters (Throwaway, Duplicate, Reorder), made configurable, bounded and
 * repeatable. Each datagram pushed in goes through, in this order:
 *
 *   loss       dropped with probability conf.loss;
 *   corrupt    one byte at a random offset XORed with a random non-zero
 *              byte (an empty datagram is left alone), probability
 *              conf.corrupt;
 *   duplicate  sent twice, back to back, probability conf.duplicate;
 *   reorder    a window of w = conf.reorder datagrams: once w are held, one
 *              of the w - 1 oldest, chosen uniformly, goes on (the newest
 *              never leaves at once; w = 2 keeps the order, 0 and 1 turn it
 *              off). A datagram waits at most 100 ms in a window that stops
 *              filling, and is overtaken by fewer than 16 w others in one
 *              that keeps filling;
 *   delay      conf.delay_ms +/- a uniform conf.jitter_ms, never below 0,
 *              counted from when it leaves the window.
 *
 * loss 0.1, duplicate 0.1, reorder 8 is Kamaelia's BrokenNetwork, except
 * that its tail is not held for ever. What survives goes to deliver(): at
 * once, from the caller's own buffer, when nothing holds it back;
 * otherwise from a copy, from one libevent timer on base. At most max_held
 * datagrams are held (0 = 4096); past that, and when out of memory, a
 * datagram is dropped and counted as overflow.
 *
 * A seeded generator (xoshiro256**) makes every decision while netsim_push
 * runs, so the same seed and the same input give the same output, delays
 * included. Seed 0 takes a seed from the clock: each run differs. A conf
 * that is not enabled passes everything straight through. */
#ifndef CHASSISD_NETSIM_H
#define CHASSISD_NETSIM_H

#include <stddef.h>
#include <stdint.h>

struct conf_netsim;
struct event_base;
struct netsim;

struct netsim_counters {
	uint64_t in;			/* datagrams pushed */
	uint64_t out;			/* delivered, duplicates included */
	uint64_t lost;
	uint64_t duplicated;		/* datagrams sent twice */
	uint64_t reordered;		/* delivered after a later one */
	uint64_t delayed;		/* copies put in the delay queue */
	uint64_t corrupted;
	uint64_t overflow;		/* dropped: max_held reached, or no memory */
};

/* meta (up to NETSIM_META_MAX bytes: a source address, a destination) is
 * copied and handed back with the datagram, at any alignment: copy it out
 * before reading it as a struct. More than that is an overflow. */
#define NETSIM_META_MAX 256
typedef void netsim_deliver_fn(void *arg, const void *data, size_t len, const void *meta, size_t meta_len);

/* NULL when out of memory. conf is copied. deliver() may push again; it
 * must not free the netsim. */
struct netsim *netsim_new(struct event_base *base, const struct conf_netsim *conf, netsim_deliver_fn *deliver,
			  void *arg);
void netsim_push(struct netsim *ns, const void *data, size_t len, const void *meta, size_t meta_len);
/* Delivers everything held, now: the delay queue in due order, then the
 * window oldest first (a stream that stops sends what it has queued;
 * Kamaelia's Reorder never sent its last 7). */
void netsim_flush(struct netsim *ns);
const struct netsim_counters *netsim_counters(const struct netsim *ns);
/* Frees what is held without delivering it. */
void netsim_free(struct netsim *ns);

#endif
