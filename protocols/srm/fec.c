/* srm's erasure code: Intel ISA-L's Cauchy Reed-Solomon. Row r < k of the
 * code is the identity (data symbol r); row k + i is parity i, whose
 * coefficients depend on k and i only, so a receiver needs no n to use a
 * parity symbol, and a sender can make more parity for a block later
 * without changing what it sent. ISA-L does the GF(2^8) arithmetic (SIMD
 * where the CPU has it); nothing here multiplies in the field itself. */
#include "protocols/srm/fec.h"

#include <isa-l/erasure_code.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

bool srm_fec_valid(unsigned k, unsigned index)
{
	return k >= 1 && k < SRM_FEC_MAX_BLOCK && index < SRM_FEC_MAX_BLOCK - k;
}

/* The generator of the last k used, all its rows: one event loop uses
 * it, and a session keeps one k, so it is made once per session. */
static uint8_t generator[SRM_FEC_MAX_BLOCK * (SRM_FEC_MAX_BLOCK - 1)];
static unsigned generator_k;

/* Row k + index of the k-column Cauchy generator, into row[0..k). */
static void parity_row(unsigned k, unsigned index, uint8_t *row)
{
	if (generator_k != k) {
		gf_gen_cauchy1_matrix(generator, SRM_FEC_MAX_BLOCK, (int)k);
		generator_k = k;
	}
	memcpy(row, generator + (size_t)(k + index) * k, k);
}

/* out_rows outputs, each the GF sum of coefficient rows[o][c] times
 * in[c], c < k. */
static bool apply(unsigned k, unsigned out_rows, uint8_t *rows, size_t len, const uint8_t *const *in,
		  uint8_t *const *out)
{
	uint8_t *tables;

	if (len > INT_MAX)
		return false;
	tables = malloc((size_t)32 * k * out_rows);
	if (tables == NULL)
		return false;
	ec_init_tables((int)k, (int)out_rows, rows, tables);
	ec_encode_data((int)len, (int)k, (int)out_rows, tables, (uint8_t **)in, (uint8_t **)out);
	free(tables);
	return true;
}

bool srm_fec_encode(unsigned k, unsigned index, const uint8_t *const *data, size_t len, uint8_t *parity)
{
	uint8_t row[SRM_FEC_MAX_BLOCK];

	if (!srm_fec_valid(k, index) || len == 0)
		return false;
	parity_row(k, index, row);
	return apply(k, 1, row, len, data, &parity);
}

bool srm_fec_decode(unsigned k, size_t len, const uint8_t *const *data, const uint8_t *const *parity,
		    const unsigned *index, unsigned n_parity, uint8_t *const *out)
{
	/* The k x k matrix of the rows received (identity rows for the data
	 * present, parity rows for the rest), its inverse, and the rows of
	 * the inverse that give the missing data. */
	uint8_t *m = NULL, *inverse = NULL, *rows = NULL;
	const uint8_t *in[SRM_FEC_MAX_BLOCK];
	uint8_t *missing_out[SRM_FEC_MAX_BLOCK];
	unsigned missing[SRM_FEC_MAX_BLOCK], n_missing = 0, used = 0;
	bool seen[SRM_FEC_MAX_BLOCK] = { false }, ok = false;

	if (k == 0 || k >= SRM_FEC_MAX_BLOCK || len == 0)
		return false;
	for (unsigned i = 0; i < n_parity; i++) {
		if (!srm_fec_valid(k, index[i]) || seen[index[i]])
			return false;
		seen[index[i]] = true;
	}
	for (unsigned j = 0; j < k; j++)
		if (data[j] == NULL)
			missing[n_missing++] = j;
	if (n_missing == 0)
		return true;
	if (n_missing > n_parity)
		return false;
	m = calloc((size_t)k * k, 1);
	inverse = malloc((size_t)k * k);
	rows = malloc((size_t)k * n_missing);
	if (m == NULL || inverse == NULL || rows == NULL)
		goto out;
	for (unsigned j = 0; j < k; j++) {
		if (data[j] != NULL) {
			m[(size_t)used * k + j] = 1;
			in[used++] = data[j];
		}
	}
	for (unsigned i = 0; used < k; i++) {
		parity_row(k, index[i], m + (size_t)used * k);
		in[used++] = parity[i];
	}
	if (gf_invert_matrix(m, inverse, (int)k) != 0)
		goto out;	/* not for a Cauchy code: any k rows are independent */
	for (unsigned i = 0; i < n_missing; i++) {
		memcpy(rows + (size_t)i * k, inverse + (size_t)missing[i] * k, k);
		missing_out[i] = out[missing[i]];
	}
	ok = apply(k, n_missing, rows, len, in, missing_out);
out:
	free(m);
	free(inverse);
	free(rows);
	return ok;
}
