/* Parity is kept per block in a small table searched by its first
 * sequence (blocks with parity held at once are few: those with a loss
 * not yet rebuilt); its symbols as a list per block. Copies of delivered
 * datagrams sit in a ring of 256 slots by sequence modulo 256 (256
 * divides 2^32, so the wrap needs nothing): a block is at most 254 long,
 * so the copies reach back over any block's start. A symbol is the
 * datagram as it went on the wire, written again from the header and
 * payload kept (srm_write gives the same bytes), zero padded. */
#include "protocols/srm/recover.h"

#include <stdlib.h>
#include <string.h>

#include "protocols/srm/fec.h"

#define COPIES 256

struct copy {
	bool valid;
	uint32_t seq;
	struct srm_header h;		/* payload points into buf */
	uint8_t *buf;
	size_t cap;
};

struct parity_item {
	struct parity_item *next;
	unsigned index;
	uint8_t symbol[];
};

struct pblock {
	bool used;
	uint32_t first;
	unsigned k, n;
	size_t symbol_len;
	struct parity_item *items;
};

struct srm_recover {
	struct srm_recover_limits limits;
	bool keeping;			/* a PARITY was heard: copies are kept */
	struct copy copies[COPIES];
	size_t copy_bytes, parity_bytes;
	struct pblock *blocks;
	size_t n_used;
	unsigned k;			/* of the last parity heard: the session's blocks */
	uint32_t aligned;		/* a block's first sequence */
	struct srm_recover_counters counters;
};

struct srm_recover *srm_recover_new(const struct srm_recover_limits *limits)
{
	struct srm_recover *rc;

	if (limits->blocks == 0 || limits->bytes == 0)
		return NULL;
	rc = calloc(1, sizeof(*rc));
	if (rc == NULL)
		return NULL;
	rc->limits = *limits;
	rc->blocks = calloc(limits->blocks, sizeof(*rc->blocks));
	if (rc->blocks == NULL) {
		free(rc);
		return NULL;
	}
	return rc;
}

static void block_free(struct srm_recover *rc, struct pblock *b)
{
	while (b->items != NULL) {
		struct parity_item *next = b->items->next;

		free(b->items);
		rc->parity_bytes -= b->symbol_len;
		b->items = next;
	}
	b->used = false;
	b->n = 0;
	rc->n_used--;
}

void srm_recover_free(struct srm_recover *rc)
{
	if (rc == NULL)
		return;
	for (size_t i = 0; i < rc->limits.blocks; i++)
		if (rc->blocks[i].used)
			block_free(rc, &rc->blocks[i]);
	for (size_t i = 0; i < COPIES; i++)
		free(rc->copies[i].buf);
	free(rc->blocks);
	free(rc);
}

const struct srm_recover_counters *srm_recover_counters(const struct srm_recover *rc)
{
	return &rc->counters;
}

void srm_recover_delivered(struct srm_recover *rc, uint32_t seq, const struct srm_header *h)
{
	struct copy *c = &rc->copies[seq % COPIES];

	if (!rc->keeping)
		return;
	c->valid = false;
	if (h == NULL)
		return;
	if (h->payload_len > c->cap) {
		uint8_t *bigger;

		if (rc->copy_bytes - c->cap + h->payload_len > rc->limits.bytes)
			return;
		bigger = realloc(c->buf, h->payload_len);
		if (bigger == NULL)
			return;
		rc->copy_bytes = rc->copy_bytes - c->cap + h->payload_len;
		c->buf = bigger;
		c->cap = h->payload_len;
	}
	c->h = *h;
	if (h->payload_len > 0)
		memcpy(c->buf, h->payload, h->payload_len);
	c->h.payload = c->buf;
	c->seq = seq;
	c->valid = true;
}

/* A datagram of the block that is at hand: held, or delivered and copied. */
static const struct srm_header *at_hand(const struct srm_recover *rc, const struct srm_reorder *r, uint32_t seq)
{
	const struct copy *c = &rc->copies[seq % COPIES];

	if (srm_reorder_state(r, seq) == SRM_REORDER_HELD)
		return srm_reorder_held(r, seq);
	if (srm_reorder_state(r, seq) == SRM_REORDER_PAST && c->valid && c->seq == seq)
		return &c->h;
	return NULL;
}

static bool block_passed(const struct srm_reorder *r, const struct pblock *b)
{
	return srm_reorder_state(r, b->first + b->k - 1) == SRM_REORDER_PAST;
}

/* Rebuilds what the block misses when its parity suffices; the block's
 * parity is let go once it is rebuilt or has nothing left to rebuild. */
static void try_block(struct srm_recover *rc, struct srm_reorder *r, struct pblock *b, uint64_t now_ns)
{
	const uint8_t *data[SRM_FEC_MAX_BLOCK], *parity[SRM_FEC_MAX_BLOCK];
	uint8_t *out[SRM_FEC_MAX_BLOCK];
	unsigned index[SRM_FEC_MAX_BLOCK], erased = 0, wanted = 0, n = 0;
	bool want[SRM_FEC_MAX_BLOCK];
	uint8_t *symbols;
	unsigned k = b->k;
	size_t len = b->symbol_len;

	for (unsigned j = 0; j < k; j++) {
		want[j] = srm_reorder_state(r, b->first + j) == SRM_REORDER_MISSING;
		wanted += want[j];
		erased += at_hand(rc, r, b->first + j) == NULL;
	}
	if (wanted == 0) {
		block_free(rc, b);
		return;
	}
	if (erased > b->n)
		return;
	symbols = calloc(k, len);
	if (symbols == NULL)
		return;
	for (unsigned j = 0; j < k; j++) {
		const struct srm_header *h = at_hand(rc, r, b->first + j);
		uint8_t *sym = symbols + (size_t)j * len;

		out[j] = sym;
		data[j] = h != NULL && srm_write(sym, len, h) != 0 ? sym : NULL;
	}
	for (struct parity_item *p = b->items; p != NULL; p = p->next) {
		parity[n] = p->symbol;
		index[n++] = p->index;
	}
	if (!srm_fec_decode(k, len, data, parity, index, n, out)) {
		free(symbols);
		return;
	}
	/* The block's parity goes before the rebuilt datagrams are added:
	 * adding delivers, and delivery calls back into this session. */
	{
		uint32_t first = b->first;

		block_free(rc, b);
		for (unsigned j = 0; j < k; j++) {
			struct srm_header h;
			uint8_t *sym = symbols + (size_t)j * len;
			size_t dlen = SRM_HEADER_SIZE + ((size_t)sym[6] << 8 | sym[7]);

			if (!want[j] || data[j] != NULL)
				continue;
			if (dlen > len || srm_parse(sym, dlen, &h) != SRM_OK || h.sequence != first + j ||
			    (h.type != SRM_DATA && h.type != SRM_END)) {
				rc->counters.failed++;
				continue;
			}
			/* As a repair: it answers a NAK, and times the round trip. */
			if (h.type == SRM_END)
				h.flags |= SRM_FLAG_END;
			h.type = SRM_REPAIR;
			if (srm_reorder_add(r, &h, now_ns) == SRM_REORDER_KEPT)
				rc->counters.recovered++;
		}
	}
	free(symbols);
}

static struct pblock *find_block(const struct srm_recover *rc, uint32_t seq)
{
	for (size_t i = 0; i < rc->limits.blocks && rc->n_used > 0; i++) {
		struct pblock *b = &rc->blocks[i];

		if (b->used && seq - b->first < b->k)
			return b;
	}
	return NULL;
}

static struct pblock *new_block(struct srm_recover *rc, const struct srm_reorder *r)
{
	struct pblock *unused = NULL;

	for (size_t i = 0; i < rc->limits.blocks; i++) {
		struct pblock *b = &rc->blocks[i];

		if (b->used && block_passed(r, b))
			block_free(rc, b);
		if (!b->used && unused == NULL)
			unused = b;
	}
	return unused;
}

void srm_recover_parity(struct srm_recover *rc, struct srm_reorder *r, const struct srm_header *h, uint64_t now_ns)
{
	struct srm_parity p;
	struct pblock *b;
	struct parity_item *item;
	bool missing = false;

	rc->counters.parity++;
	rc->keeping = true;
	srm_read_parity(h, &p);
	rc->k = p.k;
	rc->aligned = h->sequence;
	if (srm_reorder_state(r, h->sequence) == SRM_REORDER_BEYOND) {
		rc->counters.dropped++;
		return;
	}
	for (unsigned j = 0; j < p.k && !missing; j++)
		missing = srm_reorder_state(r, h->sequence + j) == SRM_REORDER_MISSING;
	b = find_block(rc, h->sequence);
	if (b != NULL && (b->first != h->sequence || b->k != p.k || b->symbol_len != p.symbol_len)) {
		rc->counters.dropped++;
		return;
	}
	if (!missing || (b != NULL && b->n >= b->k)) {
		rc->counters.unneeded++;
		return;
	}
	for (item = b != NULL ? b->items : NULL; item != NULL; item = item->next) {
		if (item->index == p.index) {
			rc->counters.unneeded++;
			return;
		}
	}
	if (b == NULL && (b = new_block(rc, r)) == NULL) {
		rc->counters.dropped++;
		return;
	}
	if (rc->parity_bytes + p.symbol_len > rc->limits.bytes ||
	    (item = malloc(sizeof(*item) + p.symbol_len)) == NULL) {
		rc->counters.dropped++;
		return;
	}
	if (!b->used) {
		*b = (struct pblock){ .used = true, .first = h->sequence, .k = p.k, .symbol_len = p.symbol_len };
		rc->n_used++;
	}
	item->index = p.index;
	memcpy(item->symbol, p.symbol, p.symbol_len);
	item->next = b->items;
	b->items = item;
	b->n++;
	rc->parity_bytes += p.symbol_len;
	try_block(rc, r, b, now_ns);
}

void srm_recover_heard(struct srm_recover *rc, struct srm_reorder *r, uint32_t seq, uint64_t now_ns)
{
	struct pblock *b;

	if (rc->n_used == 0)
		return;
	b = find_block(rc, seq);
	if (b != NULL)
		try_block(rc, r, b, now_ns);
}

unsigned srm_recover_block(const struct srm_recover *rc, uint32_t seq, uint32_t *first, unsigned *k)
{
	const struct pblock *b = find_block(rc, seq);

	if (rc->k == 0)
		return 0;
	/* Blocks are the sender's: k long from any block's first on. */
	*k = rc->k;
	*first = seq - (seq - rc->aligned) % rc->k;
	if (b == NULL)
		return 0;
	*first = b->first;
	*k = b->k;
	return b->n;
}

static size_t add_range(struct srm_range *out, size_t n, size_t max, uint32_t first, uint32_t last)
{
	if (n > 0 && out[n - 1].last + 1 == first) {
		out[n - 1].last = last;
		return n;
	}
	if (n == max)
		return n;
	out[n].first = first;
	out[n].last = last;
	return n + 1;
}

/* How many of a block's missing sequences its parity held does not
 * cover: a rebuild needs a parity symbol for every datagram not at hand,
 * and those that passed without a copy (delivered before the session's
 * first parity, or given up) take theirs first. */
static unsigned still_needed(const struct srm_recover *rc, const struct srm_reorder *r, const struct pblock *b)
{
	unsigned missing = 0, erased = 0;

	for (unsigned j = 0; j < b->k; j++) {
		missing += srm_reorder_state(r, b->first + j) == SRM_REORDER_MISSING;
		erased += at_hand(rc, r, b->first + j) == NULL;
	}
	if (b->n >= erased)
		return 0;
	return erased - b->n < missing ? erased - b->n : missing;
}

/* The session's block holding seq, by the last parity's k and first. */
static uint32_t aligned_first(const struct srm_recover *rc, uint32_t seq)
{
	return seq - (seq - rc->aligned) % rc->k;
}

size_t srm_recover_trim(const struct srm_recover *rc, const struct srm_reorder *r, struct srm_range *ranges,
			size_t n, size_t max)
{
	struct srm_range out[SRM_MAX_RANGES];
	size_t n_out = 0;
	uint32_t block_first = 0;
	unsigned keep = 0;
	bool in_block = false;

	if (rc->n_used == 0 || rc->k == 0 || max > SRM_MAX_RANGES)
		return n;
	for (size_t i = 0; i < n; i++) {
		uint32_t seq = ranges[i].first, left = ranges[i].last - ranges[i].first + 1;

		/* A block at a time (a block with parity, or the session's
		 * next k-aligned stretch without). */
		while (left > 0) {
			const struct pblock *b = find_block(rc, seq);
			uint32_t first = b != NULL ? b->first : aligned_first(rc, seq);
			uint32_t in_b = first + (b != NULL ? b->k : rc->k) - seq, take = left < in_b ? left : in_b, asked = take;

			/* Of a block with parity, as many of those due as it
			 * still needs (whichever: any parity serves). Those left
			 * out were due too: the next NAK may name them. */
			if (b != NULL) {
				if (!in_block || block_first != b->first) {
					in_block = true;
					block_first = b->first;
					keep = still_needed(rc, r, b);
				}
				asked = take < keep ? take : keep;
				keep -= asked;
			}
			if (asked > 0)
				n_out = add_range(out, n_out, max, seq, seq + asked - 1);
			seq += take;
			left -= take;
		}
	}
	memcpy(ranges, out, n_out * sizeof(*out));
	return n_out;
}

void srm_recover_suppress(const struct srm_recover *rc, struct srm_reorder *r, const struct srm_range *ranges,
			  size_t n, uint64_t now_ns)
{
	if (rc->k == 0)
		return;
	for (size_t i = 0; i < n; i++) {
		uint32_t seq = ranges[i].first, left = ranges[i].last - ranges[i].first + 1;

		/* Ranges are under 2^31 long; only what the window holds
		 * matters, and a block at a time. */
		while (left > 0 && srm_reorder_state(r, seq) != SRM_REORDER_BEYOND) {
			const struct pblock *b = find_block(rc, seq);
			uint32_t first = b != NULL ? b->first : aligned_first(rc, seq);
			unsigned k = b != NULL ? b->k : rc->k, mine = 0;
			uint32_t in_b = first + k - seq, take = left < in_b ? left : in_b;
			struct srm_range block = { first, first + k - 1 };

			/* Asked for at least as many of the block as we still
			 * need: the parity that answers it serves us too. */
			if (b != NULL) {
				mine = still_needed(rc, r, b);
			} else {
				for (unsigned j = 0; j < k; j++)
					mine += srm_reorder_state(r, first + j) == SRM_REORDER_MISSING;
			}
			if (mine > 0 && take >= mine)
				srm_reorder_suppress(r, &block, now_ns);
			seq += take;
			left -= take;
		}
	}
}
