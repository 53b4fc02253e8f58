/* The SRM wire format on any bytes: srm_parse on the input as it is, and
 * on a copy resealed to look valid (magic, the version its flags need, a
 * known type, the payload length and the CRC set from the input), so the
 * fuzzer gets past the CRC into the body checks. Whatever is accepted
 * must point inside the input, add up, and write back to the same bytes;
 * its body readers must stay inside the payload, and a name a receiver
 * takes must be one that cannot leave its directory. A PARITY (version
 * 3) must describe a symbol the erasure code has and the body holds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/srm/fec.h"
#include "protocols/srm/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The body readers of an accepted datagram, whose results must obey what
 * srm_parse promised. */
static void check_end(const struct srm_header *h)
{
	struct srm_end end;
	const char *why;

	srm_read_end(h, &end);
	if (!(h->flags & SRM_FLAG_NAME)) {
		if (end.name != NULL || end.name_len != 0 || h->payload_len != SRM_END_BODY_SIZE)
			abort();
		return;
	}
	if (end.name != h->payload + SRM_END_BODY_SIZE || end.name_len == 0 || end.name_len > SRM_NAME_MAX ||
	    SRM_END_BODY_SIZE + end.name_len != h->payload_len)
		abort();
	why = srm_name_refusal(end.name, end.name_len);
	if (why != NULL)
		return;
	/* Taken: a plain file name of the directory, nothing more. */
	if (end.name_len > SRM_NAME_STORE_MAX || end.name[0] == '.' || memchr(end.name, '/', end.name_len) != NULL)
		abort();
	for (size_t i = 0; i < end.name_len; i++)
		if (end.name[i] < 0x20 || end.name[i] == 0x7f)
			abort();
}

static void check_body(const struct srm_header *h)
{
	struct srm_range ranges[SRM_MAX_RANGES];
	struct srm_heartbeat hb;
	struct srm_parity parity;
	size_t n;

	switch (h->type) {
	case SRM_NAK:
	case SRM_GONE:
		n = srm_read_ranges(h, ranges, SRM_MAX_RANGES);
		if (n == 0 || n * SRM_RANGE_SIZE != h->payload_len)
			abort();
		for (size_t i = 0; i < n; i++)
			if (ranges[i].first != ranges[i].last && !srm_seq_before(ranges[i].first, ranges[i].last))
				abort();
		break;
	case SRM_HEARTBEAT:
		srm_read_heartbeat(h, &hb);
		if (hb.trailing != hb.leading && !srm_seq_before(hb.trailing, hb.leading))
			abort();
		break;
	case SRM_END:
		check_end(h);
		break;
	case SRM_REPAIR:
		if (h->flags & SRM_FLAG_END)
			check_end(h);
		else if (h->flags & SRM_FLAG_NAME)
			abort();
		break;
	case SRM_PARITY:
		srm_read_parity(h, &parity);
		if (!srm_fec_valid(parity.k, parity.index) || parity.symbol != h->payload + SRM_PARITY_BODY_SIZE ||
		    parity.symbol_len + SRM_PARITY_BODY_SIZE != h->payload_len || parity.symbol_len < SRM_HEADER_SIZE ||
		    h->flags != 0 || h->object != 0 || h->offset != 0)
			abort();
		break;
	default:
		break;
	}
}

/* An accepted datagram is header then payload and nothing else, and
 * srm_write makes the same bytes of it. */
static void check(const uint8_t *data, size_t size)
{
	struct srm_header h;
	uint8_t *again;

	if (srm_parse(data, size, &h) != SRM_OK)
		return;
	if (h.payload != data + SRM_HEADER_SIZE || SRM_HEADER_SIZE + h.payload_len != size ||
	    h.type < SRM_DATA || h.type > SRM_PARITY || (h.flags & ~SRM_FLAGS_KNOWN) ||
	    data[2] != (h.type == SRM_PARITY ? SRM_VERSION_PARITY
					     : h.flags & SRM_FLAG_NAME ? SRM_VERSION_NAMES : SRM_VERSION))
		abort();
	check_body(&h);
	again = malloc(size);
	if (again == NULL || srm_write(again, size, &h) != size || memcmp(again, data, size) != 0)
		abort();
	free(again);
}

/* Magic, a known type, the version the type and flags need, the length
 * of what follows the header (and a PARITY's symbol length) and the CRC
 * over it all. */
static void reseal(uint8_t *pkt, size_t size)
{
	size_t payload_len = size - SRM_HEADER_SIZE;
	uint32_t crc;

	pkt[0] = 0x43;
	pkt[1] = 0x53;
	pkt[3] = (uint8_t)(SRM_DATA + pkt[3] % SRM_PARITY);
	pkt[2] = pkt[3] == SRM_PARITY ? SRM_VERSION_PARITY : pkt[5] & SRM_FLAG_NAME ? SRM_VERSION_NAMES : SRM_VERSION;
	if (pkt[3] == SRM_PARITY && payload_len >= SRM_PARITY_BODY_SIZE) {
		pkt[SRM_HEADER_SIZE + 2] = (uint8_t)((payload_len - SRM_PARITY_BODY_SIZE) >> 8);
		pkt[SRM_HEADER_SIZE + 3] = (uint8_t)(payload_len - SRM_PARITY_BODY_SIZE);
	}
	pkt[6] = (uint8_t)(payload_len >> 8);
	pkt[7] = (uint8_t)payload_len;
	crc = srm_crc32c(srm_crc32c(0, pkt, 28), pkt + SRM_HEADER_SIZE, payload_len);
	pkt[28] = (uint8_t)(crc >> 24);
	pkt[29] = (uint8_t)(crc >> 16);
	pkt[30] = (uint8_t)(crc >> 8);
	pkt[31] = (uint8_t)crc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	check(data, size);
	/* The name check on any bytes, whatever their length. */
	if (srm_name_refusal(data, size) == NULL && (size == 0 || size > SRM_NAME_STORE_MAX || data[0] == '.'))
		abort();
	if (size < SRM_HEADER_SIZE || size - SRM_HEADER_SIZE > 0xFFFF)
		return 0;
	copy = malloc(size);
	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	reseal(copy, size);
	check(copy, size);
	free(copy);
	return 0;
}
