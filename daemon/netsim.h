/* Fault simulation between a unit and the wire: Kamaelia's BrokenNetwork
 * filters (Throwaway, Duplicate, Reorder), made configurable, bounded and
 * repeatable. Each datagram pushed in is dropped, corrupted (one byte
 * flipped), duplicated, held back in a reorder window, or delayed with
 * jitter, as conf_netsim says; what survives goes to deliver(), at once or
 * from a timer. A seeded generator decides everything, so the same seed
 * and the same input give the same output. */
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
	uint64_t duplicated;
	uint64_t reordered;		/* delivered after a later one */
	uint64_t delayed;
	uint64_t corrupted;
	uint64_t overflow;		/* dropped: max-held reached */
};

/* meta (up to NETSIM_META_MAX bytes: a source address, a destination) is
 * copied and handed back with the datagram. */
#define NETSIM_META_MAX 128
typedef void netsim_deliver_fn(void *arg, const void *data, size_t len, const void *meta, size_t meta_len);

/* NULL when out of memory. conf is copied. */
struct netsim *netsim_new(struct event_base *base, const struct conf_netsim *conf, netsim_deliver_fn *deliver,
			  void *arg);
void netsim_push(struct netsim *ns, const void *data, size_t len, const void *meta, size_t meta_len);
/* Delivers everything held, in the order it would have gone (a stream
 * that stops sends what it has queued; Kamaelia's Reorder never sent its
 * last 7). */
void netsim_flush(struct netsim *ns);
const struct netsim_counters *netsim_counters(const struct netsim *ns);
/* Frees what is held without delivering it. */
void netsim_free(struct netsim *ns);

#endif
