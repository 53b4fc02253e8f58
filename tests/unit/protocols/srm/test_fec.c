/* srm's erasure code (fec.c): any n of a block's k data and n parity
 * symbols lost, the rest rebuild the data byte for byte; short blocks;
 * too few symbols, and parity with an index the code does not have or
 * given twice, refused. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/srm/fec.h"

#define MAX_K 32
#define MAX_N 8
#define LEN 301

struct block {
	unsigned k, n;
	size_t len;
	uint8_t data[MAX_K][LEN], parity[MAX_N][LEN];
};

static uint32_t rng = 12345;

static uint8_t random_byte(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return (uint8_t)rng;
}

static void make_block(struct block *b, unsigned k, unsigned n, size_t len)
{
	const uint8_t *in[MAX_K];

	b->k = k;
	b->n = n;
	b->len = len;
	for (unsigned j = 0; j < k; j++) {
		for (size_t i = 0; i < len; i++)
			b->data[j][i] = random_byte();
		in[j] = b->data[j];
	}
	for (unsigned i = 0; i < n; i++)
		cr_assert(srm_fec_encode(k, i, in, len, b->parity[i]));
}

/* Loses the symbols whose bit is set in lost (bit j < k: data j, bit k + i:
 * parity i) and rebuilds; true when it could, and then the data must be
 * the original. */
static bool rebuild(const struct block *b, uint64_t lost)
{
	const uint8_t *data[MAX_K], *parity[MAX_N];
	uint8_t out_buf[MAX_K][LEN];
	uint8_t *out[MAX_K];
	unsigned index[MAX_N], n_parity = 0;

	memset(out_buf, 0xEE, sizeof(out_buf));
	for (unsigned j = 0; j < b->k; j++) {
		data[j] = lost >> j & 1 ? NULL : b->data[j];
		out[j] = out_buf[j];
	}
	for (unsigned i = 0; i < b->n; i++) {
		if (lost >> (b->k + i) & 1)
			continue;
		parity[n_parity] = b->parity[i];
		index[n_parity++] = i;
	}
	if (!srm_fec_decode(b->k, b->len, data, parity, index, n_parity, out))
		return false;
	for (unsigned j = 0; j < b->k; j++)
		if (data[j] == NULL)
			cr_assert_arr_eq(out_buf[j], b->data[j], b->len, "data %u of k %u rebuilt exactly", j, b->k);
	return true;
}

static unsigned bits(uint64_t v)
{
	return (unsigned)__builtin_popcountll(v);
}

Test(fec, any_n_of_k_plus_n_lost_rebuilds)
{
	static struct block b;

	make_block(&b, 6, 3, LEN);
	/* Every loss pattern of the 9 symbols: it rebuilds exactly when no
	 * more data are lost than parity is left (any 3 lost, among them). */
	for (uint64_t lost = 0; lost < 1u << 9; lost++) {
		unsigned data_lost = bits(lost & 0x3f), parity_left = 3 - bits(lost >> 6 & 7);

		cr_assert_eq(rebuild(&b, lost), data_lost <= parity_left, "lost pattern %#llx",
			     (unsigned long long)lost);
	}
}

Test(fec, larger_block_random_losses)
{
	static struct block b;

	make_block(&b, 16, 4, LEN);
	for (int round = 0; round < 200; round++) {
		uint64_t lost = 0;

		while (bits(lost) < 4)
			lost |= 1ull << (random_byte() % 20);
		cr_assert(rebuild(&b, lost));
	}
}

Test(fec, short_block_and_one_byte_symbols)
{
	static struct block b;

	/* The tail of an object: fewer data symbols than the configured k. */
	make_block(&b, 3, 2, 1);
	cr_assert(rebuild(&b, 0x3));	/* data 0 and 1 */
	cr_assert(rebuild(&b, 0x5));
	cr_assert(rebuild(&b, 0x6));
	make_block(&b, 1, 1, LEN);	/* k = 1: parity is a copy */
	cr_assert_arr_eq(b.parity[0], b.data[0], LEN);
	cr_assert(rebuild(&b, 0x1));
}

Test(fec, too_few_symbols_refused)
{
	static struct block b;

	make_block(&b, 8, 2, LEN);
	cr_assert_not(rebuild(&b, 0x7));	/* 3 data lost, 2 parity */
	cr_assert(rebuild(&b, 0x1 | 0x100));	/* 1 data and a parity lost: 1 parity for 1 missing */
	cr_assert_not(rebuild(&b, 0x3 | 0x100));	/* 2 data and a parity lost */
}

Test(fec, bad_parity_refused)
{
	static struct block b;
	const uint8_t *data[4], *parity[2];
	uint8_t buf[LEN], *out[4] = { buf, buf, buf, buf };
	unsigned index[2];

	make_block(&b, 4, 2, LEN);
	for (unsigned j = 0; j < 4; j++)
		data[j] = b.data[j];
	data[1] = NULL;
	parity[0] = parity[1] = b.parity[0];
	/* An index past the code's rows, the same index twice, no length, k 0. */
	index[0] = SRM_FEC_MAX_BLOCK - 4;
	cr_assert_not(srm_fec_decode(4, LEN, data, parity, index, 1, out));
	index[0] = index[1] = 0;
	cr_assert_not(srm_fec_decode(4, LEN, data, parity, index, 2, out));
	cr_assert_not(srm_fec_decode(4, 0, data, parity, index, 1, out));
	cr_assert_not(srm_fec_decode(0, LEN, data, parity, index, 1, out));
	cr_assert_not(srm_fec_encode(4, SRM_FEC_MAX_BLOCK - 4, data, LEN, buf));
	cr_assert_not(srm_fec_encode(0, 0, data, LEN, buf));
	cr_assert(srm_fec_valid(254, 0));
	cr_assert_not(srm_fec_valid(254, 1));
	cr_assert_not(srm_fec_valid(255, 0));
	/* A parity of the wrong index decodes to the wrong bytes: the caller's
	 * CRC catches it, the code cannot. */
	index[0] = 1;
	cr_assert(srm_fec_decode(4, LEN, data, parity, index, 1, out));
	cr_assert(memcmp(buf, b.data[1], LEN) != 0);
}
