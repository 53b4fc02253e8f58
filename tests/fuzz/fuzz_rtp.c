/* RTP and RTCP parsing on any bytes: rtp_parse and rtcp_parse on the input
 * as it is, and on a copy repaired to look valid (version 2 everywhere, an
 * SR or RR first, every RTCP length cut to fit), so the fuzzer gets past
 * the first checks and into CSRCs, extensions, padding and report blocks.
 * Whatever the parsers return must point inside the input and add up;
 * a header and an SR written from the input's bytes must parse back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/rtp/packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const uint8_t *p, size_t len, const uint8_t *data, size_t size)
{
	return p >= data && p <= data + size && len <= (size_t)(data + size - p);
}

/* An accepted packet is header, payload and padding, in that order, and
 * nothing else. */
static void check_rtp(const uint8_t *data, size_t size)
{
	struct rtp_header h;
	size_t header_len;

	if (rtp_parse(data, size, &h) != RTP_OK)
		return;
	header_len = RTP_HEADER_SIZE + 4u * h.csrc_count + (h.extension ? 4 + h.extension_len : 0);
	if (h.csrc_count > 15 || h.payload_type > 127 || !inside(h.payload, h.payload_len, data, size) ||
	    h.payload != data + header_len || (!h.padding && header_len + h.payload_len != size) ||
	    (h.padding && header_len + h.payload_len + data[size - 1] != size))
		abort();
	if (h.extension && (!inside(h.extension_data, h.extension_len, data, size) ||
			    h.extension_data + h.extension_len != h.payload))
		abort();
	if (!h.extension && (h.extension_data != NULL || h.extension_len != 0))
		abort();
}

static void count_report(void *arg, const struct rtcp_report *report)
{
	size_t *blocks = arg;

	if (report->cumulative_lost < -0x800000 || report->cumulative_lost > 0x7FFFFF)
		abort();
	(*blocks)++;
}

/* Each report block is 24 bytes of its own and each packet at least 4. */
static void check_rtcp(const uint8_t *data, size_t size)
{
	size_t blocks = 0;
	int walked = rtcp_parse(data, size, count_report, &blocks);

	if (walked < -1 || walked == 0 || (walked > 0 && (size_t)walked * 4 > size) || blocks * 24 > size)
		abort();
}

/* Version 2 in every RTCP header along the lengths, the first an SR or
 * RR, and a length past the end cut to what is left. */
static void repair_rtcp(uint8_t *pkt, size_t size)
{
	for (size_t at = 0; size - at >= 4;) {
		size_t words = (size_t)pkt[at + 2] << 8 | pkt[at + 3];

		pkt[at] = (uint8_t)(0x80 | (pkt[at] & 0x3f));
		if (at == 0)
			pkt[1] = (uint8_t)(200 | (pkt[1] & 1));
		if ((words + 1) * 4 > size - at) {
			words = (size - at) / 4 - 1;
			pkt[at + 2] = (uint8_t)(words >> 8);
			pkt[at + 3] = (uint8_t)words;
		}
		at += (words + 1) * 4;
	}
}

static void check_repaired(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	if (copy == NULL)
		abort();
	if (size > 0) {
		memcpy(copy, data, size);
		copy[0] = (uint8_t)(0x80 | (copy[0] & 0x3f));
	}
	check_rtp(copy, size);
	repair_rtcp(copy, size);
	check_rtcp(copy, size);
	free(copy);
}

static uint32_t take_u32(const uint8_t *data, size_t size, size_t at)
{
	uint32_t v = 0;

	for (size_t i = at; i < at + 4 && i < size; i++)
		v = v << 8 | data[i];
	return v;
}

static void check_rtp_round_trip(const uint8_t *data, size_t size)
{
	uint8_t pkt[RTP_HEADER_SIZE];
	uint8_t first = size > 0 ? data[0] : 0;
	uint32_t fields = take_u32(data, size, 0);
	struct rtp_header h;

	rtp_write_header(pkt, first & 1, first, (uint16_t)fields, take_u32(data, size, 4), take_u32(data, size, 8));
	if (rtp_parse(pkt, sizeof(pkt), &h) != RTP_OK || h.marker != (first & 1) || h.payload_type != (first & 0x7f) ||
	    h.sequence != (uint16_t)fields || h.timestamp != take_u32(data, size, 4) || h.ssrc != take_u32(data, size, 8) ||
	    h.payload_len != 0 || h.csrc_count != 0 || h.padding || h.extension)
		abort();
}

/* The input's bytes up to a NUL (at most 255) as the CNAME. */
static void check_sr_round_trip(const uint8_t *data, size_t size)
{
	char cname[256];
	uint8_t out[28 + 8 + 260 + 8];
	struct rtcp_sender_info info = { .ssrc = take_u32(data, size, 0), .ntp = (uint64_t)take_u32(data, size, 4) << 32 };
	size_t cname_len = size < 255 ? size : 255, len;
	size_t blocks = 0;
	bool bye = size > 0 && data[0] & 1;

	memcpy(cname, data, cname_len);
	cname[cname_len] = '\0';
	len = rtcp_write_sr(out, sizeof(out), &info, cname, bye);
	if (cname[0] == '\0') {
		if (len != 0)
			abort();
		return;
	}
	if (len == 0 || len % 4 != 0 || rtcp_parse(out, len, count_report, &blocks) != (bye ? 3 : 2) || blocks != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_rtp(data, size);
	check_rtcp(data, size);
	check_repaired(data, size);
	check_rtp_round_trip(data, size);
	check_sr_round_trip(data, size);
	return 0;
}
