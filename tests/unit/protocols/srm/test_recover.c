/* An SRM receiver's parity repair (recover.c) against a reorder window:
 * lost datagrams rebuilt byte for byte from parity, whether the parity
 * comes before or after the rest of its block, an END among them; a block
 * whose start was delivered before any parity was heard needs more; a
 * corrupt parity rebuilds nothing (the CRC32C of the rebuilt datagram
 * catches it); due NAKs ask for what the parity held does not cover;
 * the byte bound. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/srm/fec.h"
#include "protocols/srm/recover.h"
#include "protocols/srm/reorder.h"

#define MS 1000000ull
#define K 4
#define FIRST 100
#define COUNT 8			/* two blocks: [100, 104) [104, 108), 107 an END */
#define MAX_LEN 128
#define PARITY_MAX (2 * MAX_LEN)

struct sent {
	uint8_t dgram[COUNT][MAX_LEN];
	size_t len[COUNT];
	uint8_t parity[2][4][PARITY_MAX];	/* per block, parity 0..3 as datagrams */
	size_t parity_len[2][4];
};

struct rx {
	struct srm_reorder *r;
	struct srm_recover *rc;
	uint32_t seq[COUNT * 2];
	uint8_t payload[COUNT * 2][MAX_LEN];
	size_t payload_len[COUNT * 2];
	uint8_t type[COUNT * 2];
	size_t n;
};

static void on_deliver(void *arg, uint32_t seq, const struct srm_header *h)
{
	struct rx *x = arg;

	srm_recover_delivered(x->rc, seq, h);
	cr_assert_lt(x->n, COUNT * 2);
	x->seq[x->n] = seq;
	x->type[x->n] = h ? h->type : 0;
	x->payload_len[x->n] = h ? h->payload_len : 0;
	if (h && h->payload_len)
		memcpy(x->payload[x->n], h->payload, h->payload_len);
	x->n++;
}

static void make_sent(struct sent *s)
{
	uint64_t offset = 0;

	for (unsigned i = 0; i < COUNT; i++) {
		uint8_t payload[MAX_LEN];
		struct srm_header h = { .type = SRM_DATA, .session = 17, .sequence = FIRST + i, .object = 1,
					.offset = offset, .payload = payload, .payload_len = 20 + i * 7 };

		for (size_t b = 0; b < h.payload_len; b++)
			payload[b] = (uint8_t)(i * 31 + b);
		if (i == COUNT - 1) {	/* the object's END */
			h.type = SRM_END;
			h.flags = SRM_FLAG_LAST;
			h.offset = 0;
			h.payload_len = SRM_END_BODY_SIZE;
		}
		offset += h.payload_len;
		s->len[i] = srm_write(s->dgram[i], MAX_LEN, &h);
		cr_assert_neq(s->len[i], 0);
	}
	for (unsigned b = 0; b < 2; b++) {
		uint8_t padded[K][MAX_LEN] = { { 0 } };
		const uint8_t *in[K];
		size_t sym = 0;

		for (unsigned j = 0; j < K; j++) {
			memcpy(padded[j], s->dgram[b * K + j], s->len[b * K + j]);
			in[j] = padded[j];
			if (s->len[b * K + j] > sym)
				sym = s->len[b * K + j];
		}
		for (unsigned p = 0; p < 4; p++) {
			uint8_t body[MAX_LEN + SRM_PARITY_BODY_SIZE];
			struct srm_parity par = { .k = K, .index = p, .symbol_len = sym };
			struct srm_header h = { .type = SRM_PARITY, .session = 17, .sequence = FIRST + b * K, .payload = body };

			h.payload_len = srm_write_parity(body, sizeof(body), &par);
			cr_assert(srm_fec_encode(K, p, in, sym, body + SRM_PARITY_BODY_SIZE));
			s->parity_len[b][p] = srm_write(s->parity[b][p], PARITY_MAX, &h);
			cr_assert_neq(s->parity_len[b][p], 0);
		}
	}
}

static void rx_new(struct rx *x, size_t bytes)
{
	static const struct srm_reorder_limits limits = {
		.datagrams = 64, .bytes = 100000, .backoff_ns = 10 * MS, .retry_ns = 50 * MS,
	};

	memset(x, 0, sizeof(*x));
	x->r = srm_reorder_new(&limits, FIRST, 1, on_deliver, x);
	x->rc = srm_recover_new(&(struct srm_recover_limits){ .blocks = 8, .bytes = bytes });
	cr_assert_not_null(x->r);
	cr_assert_not_null(x->rc);
}

static void rx_free(struct rx *x)
{
	srm_reorder_free(x->r);
	srm_recover_free(x->rc);
}

static void hear_data(struct rx *x, const struct sent *s, unsigned i)
{
	struct srm_header h;

	cr_assert_eq(srm_parse(s->dgram[i], s->len[i], &h), SRM_OK);
	srm_reorder_add(x->r, &h, 0);
	srm_recover_heard(x->rc, x->r, h.sequence, 0);
}

static void hear_parity(struct rx *x, const uint8_t *dgram, size_t len)
{
	struct srm_header h;

	cr_assert_eq(srm_parse(dgram, len, &h), SRM_OK);
	srm_recover_parity(x->rc, x->r, &h, 0);
}

/* Everything delivered in order, each exactly as sent. */
static void expect_all(const struct rx *x, const struct sent *s)
{
	cr_assert_eq(x->n, COUNT);
	for (unsigned i = 0; i < COUNT; i++) {
		struct srm_header h;

		cr_assert_eq(srm_parse(s->dgram[i], s->len[i], &h), SRM_OK);
		cr_assert_eq(x->seq[i], FIRST + i);
		cr_assert_eq(x->type[i], h.type, "seq %u delivered as %u", FIRST + i, x->type[i]);
		cr_assert_eq(x->payload_len[i], h.payload_len);
		cr_assert_arr_eq(x->payload[i], h.payload, h.payload_len);
	}
}

Test(srm_recover, losses_rebuilt_from_parity_after_the_block)
{
	static struct sent s;
	struct rx x;

	make_sent(&s);
	rx_new(&x, 100000);
	hear_parity(&x, s.parity[0][2], s.parity_len[0][2]);
	for (unsigned i = 0; i < COUNT; i++)
		if (i != 1 && i != 3 && i != 7)	/* two of block 100, and the END */
			hear_data(&x, &s, i);
	cr_assert_eq(x.n, 1, "one parity cannot rebuild two");
	hear_parity(&x, s.parity[0][0], s.parity_len[0][0]);
	cr_assert_eq(x.n, 7);
	hear_parity(&x, s.parity[1][3], s.parity_len[1][3]);
	expect_all(&x, &s);
	cr_assert_eq(srm_recover_counters(x.rc)->recovered, 3);
	cr_assert_eq(srm_recover_counters(x.rc)->failed, 0);
	/* Parity for what is whole now rebuilds nothing. */
	hear_parity(&x, s.parity[1][0], s.parity_len[1][0]);
	cr_assert_eq(srm_recover_counters(x.rc)->unneeded, 1);
	rx_free(&x);
}

Test(srm_recover, parity_before_the_rest_of_its_block)
{
	static struct sent s;
	struct rx x;

	make_sent(&s);
	rx_new(&x, 100000);
	hear_parity(&x, s.parity[0][1], s.parity_len[0][1]);	/* proactive, ahead of the data */
	hear_data(&x, &s, 0);
	hear_data(&x, &s, 2);
	cr_assert_eq(x.n, 1);
	hear_data(&x, &s, 3);	/* 1 lost: 3 at hand and a parity */
	cr_assert_eq(x.n, 4);
	for (unsigned i = 4; i < COUNT; i++)
		hear_data(&x, &s, i);
	expect_all(&x, &s);
	cr_assert_eq(srm_recover_counters(x.rc)->recovered, 1);
	rx_free(&x);
}

Test(srm_recover, a_block_begun_before_the_first_parity_needs_more)
{
	static struct sent s;
	struct srm_range ranges[SRM_MAX_RANGES];
	struct rx x;
	size_t n;

	make_sent(&s);
	rx_new(&x, 100000);
	hear_data(&x, &s, 0);	/* delivered with no copy: no parity heard yet */
	hear_data(&x, &s, 3);
	hear_parity(&x, s.parity[0][0], s.parity_len[0][0]);
	cr_assert_eq(x.n, 1);
	/* 100 passed without a copy and 101, 102 are missing: three to
	 * rebuild, one parity held; the NAK still asks for both. */
	n = srm_reorder_due_naks(x.r, 100 * MS, ranges, SRM_MAX_RANGES);
	cr_assert_eq(n, 1);
	n = srm_recover_trim(x.rc, x.r, ranges, n, SRM_MAX_RANGES);
	cr_assert_eq(n, 1);
	cr_assert_eq(ranges[0].first, 101);
	cr_assert_eq(ranges[0].last, 102);
	hear_parity(&x, s.parity[0][1], s.parity_len[0][1]);
	cr_assert_eq(x.n, 1);
	hear_parity(&x, s.parity[0][2], s.parity_len[0][2]);
	cr_assert_eq(x.n, 4);
	cr_assert_eq(srm_recover_counters(x.rc)->recovered, 2);
	rx_free(&x);
}

Test(srm_recover, due_naks_ask_for_what_parity_held_does_not_cover)
{
	static struct sent s;
	struct srm_range ranges[SRM_MAX_RANGES];
	struct rx x;
	size_t n;

	make_sent(&s);
	rx_new(&x, 100000);
	hear_parity(&x, s.parity[0][3], s.parity_len[0][3]);
	hear_data(&x, &s, 0);
	for (unsigned i = 4; i < COUNT; i++)
		hear_data(&x, &s, i);
	/* 101, 102, 103 missing, one parity held: two to ask for. */
	n = srm_reorder_due_naks(x.r, 100 * MS, ranges, SRM_MAX_RANGES);
	cr_assert_eq(n, 1);
	n = srm_recover_trim(x.rc, x.r, ranges, n, SRM_MAX_RANGES);
	cr_assert_eq(n, 1);
	cr_assert_eq(ranges[0].last - ranges[0].first + 1, 2);
	rx_free(&x);
}

Test(srm_recover, a_corrupt_parity_rebuilds_nothing)
{
	static struct sent s;
	struct rx x;
	struct srm_header h;
	uint8_t bad[PARITY_MAX];

	make_sent(&s);
	rx_new(&x, 100000);
	/* Valid on the wire, but not the block's parity: the symbol of
	 * parity 1 said to be parity 0. */
	memcpy(bad, s.parity[0][1], s.parity_len[0][1]);
	bad[SRM_HEADER_SIZE + 1] = 0;
	{
		uint32_t crc = srm_crc32c(srm_crc32c(0, bad, 28), bad + 32, s.parity_len[0][1] - 32);

		bad[28] = (uint8_t)(crc >> 24);
		bad[29] = (uint8_t)(crc >> 16);
		bad[30] = (uint8_t)(crc >> 8);
		bad[31] = (uint8_t)crc;
	}
	cr_assert_eq(srm_parse(bad, s.parity_len[0][1], &h), SRM_OK);
	srm_recover_parity(x.rc, x.r, &h, 0);
	for (unsigned i = 0; i < COUNT; i++)
		if (i != 2)
			hear_data(&x, &s, i);
	cr_assert_eq(x.n, 2);
	cr_assert_eq(srm_recover_counters(x.rc)->failed, 1);
	cr_assert_eq(srm_recover_counters(x.rc)->recovered, 0);
	rx_free(&x);
}

Test(srm_recover, parity_past_the_byte_bound_is_dropped)
{
	static struct sent s;
	struct rx x;

	make_sent(&s);
	rx_new(&x, s.parity_len[0][0]);	/* room for about one symbol */
	hear_data(&x, &s, 0);
	hear_parity(&x, s.parity[0][0], s.parity_len[0][0]);
	hear_parity(&x, s.parity[0][1], s.parity_len[0][1]);
	cr_assert_eq(srm_recover_counters(x.rc)->dropped, 1);
	rx_free(&x);
}
