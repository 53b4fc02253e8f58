/* Parity repair (FEC) for srm: a systematic Reed-Solomon code over
 * GF(2^8) from Intel ISA-L (a Cauchy matrix, so any k of the k data and
 * parity symbols of a block rebuild the k data symbols). A symbol is one
 * sequenced datagram as it went on the wire, zero padded to the longest
 * of its block: its own header says how long it is, and its CRC32C checks
 * the rebuild. No state: the callers keep the symbols. */
#ifndef CHASSISD_SRM_FEC_H
#define CHASSISD_SRM_FEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* k data plus parity symbols of a block, at most: the code's rows are
 * numbered below 256 and a row's number is k + the parity's index. */
#define SRM_FEC_MAX_BLOCK 255

/* Whether parity `index` of a block of k data symbols exists. */
bool srm_fec_valid(unsigned k, unsigned index);

/* Parity symbol `index` (0, 1, ...) of the k data symbols data[0..k), each
 * len bytes, into parity (len bytes). False when !srm_fec_valid or len is 0. */
bool srm_fec_encode(unsigned k, unsigned index, const uint8_t *const *data, size_t len, uint8_t *parity);

/* Rebuilds the data symbols of a block that are missing (data[j] NULL)
 * from those present and n_parity parity symbols (parity[i] with index
 * index[i]), all len bytes, into out[j] (len bytes each) for each missing
 * j. False (out untouched or partly written) when present + n_parity < k,
 * an index is invalid or repeated, or len is 0. Extra parity is unused. */
bool srm_fec_decode(unsigned k, size_t len, const uint8_t *const *data, const uint8_t *const *parity,
		    const unsigned *index, unsigned n_parity, uint8_t *const *out);

#endif
