/* RTP and RTCP packets (RFC 3550): RTP headers written and read back,
 * hand-made packets of every header form, each way a packet can be
 * malformed, an SR compound checked byte by byte, report blocks of RRs and
 * SRs, and the NTP clock. Parsed bytes sit in buffers of exactly their
 * size, so a sanitizer build catches any read past the end. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/rtp/packet.h"

#define NTP_1970 2208988800ull

/* ---- helpers -------------------------------------------------------- */

/* A heap copy of exactly len bytes (at least one, so malloc(0) is not
 * asked), for the parsers to read. */
static uint8_t *exact_copy(const void *bytes, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	cr_assert_not_null(copy);
	if (len > 0)
		memcpy(copy, bytes, len);
	return copy;
}

static int parse_rtp_exact(const void *bytes, size_t len, struct rtp_header *h)
{
	uint8_t *copy = exact_copy(bytes, len);
	int rc = rtp_parse(copy, len, h);

	/* Turn the pointers into offsets from the start, as the copy goes. */
	if (rc == RTP_OK) {
		h->payload = (const uint8_t *)bytes + (h->payload - copy);
		if (h->extension_data != NULL)
			h->extension_data = (const uint8_t *)bytes + (h->extension_data - copy);
	}
	free(copy);
	return rc;
}

struct reports {
	struct rtcp_report items[8];
	size_t count;
};

static void collect_report(void *arg, const struct rtcp_report *report)
{
	struct reports *reports = arg;

	cr_assert_lt(reports->count, 8);
	reports->items[reports->count++] = *report;
}

static int parse_rtcp_exact(const void *bytes, size_t len, struct reports *reports)
{
	uint8_t *copy = exact_copy(bytes, len);
	int rc;

	*reports = (struct reports){ 0 };
	rc = rtcp_parse(copy, len, collect_report, reports);
	free(copy);
	return rc;
}

static void assert_report(const struct rtcp_report *r, uint32_t reporter, uint32_t source, uint8_t fraction,
			  int32_t cumulative, uint32_t highest, uint32_t jitter, uint32_t lsr, uint32_t dlsr)
{
	cr_assert_eq(r->reporter, reporter);
	cr_assert_eq(r->source, source);
	cr_assert_eq(r->fraction_lost, fraction);
	cr_assert_eq(r->cumulative_lost, cumulative, "cumulative lost %d, want %d", r->cumulative_lost, cumulative);
	cr_assert_eq(r->highest_sequence, highest);
	cr_assert_eq(r->jitter, jitter);
	cr_assert_eq(r->last_sr, lsr);
	cr_assert_eq(r->delay_since_last_sr, dlsr);
}

/* ---- RTP: writing and reading -------------------------------------- */

Test(rtp, written_header_parses_back)
{
	uint8_t pkt[RTP_HEADER_SIZE + 5];
	struct rtp_header h;

	rtp_write_header(pkt, true, 33, 0xFFFE, 0x89ABCDEF, 0x01234567);
	memcpy(pkt + RTP_HEADER_SIZE, "hello", 5);
	cr_assert_eq(pkt[0], 0x80);
	cr_assert_eq(pkt[1], 0x80 | 33);
	cr_assert_eq(parse_rtp_exact(pkt, sizeof(pkt), &h), RTP_OK);
	cr_assert(h.marker);
	cr_assert_not(h.padding);
	cr_assert_not(h.extension);
	cr_assert_eq(h.payload_type, 33);
	cr_assert_eq(h.sequence, 0xFFFE);
	cr_assert_eq(h.timestamp, 0x89ABCDEF);
	cr_assert_eq(h.ssrc, 0x01234567);
	cr_assert_eq(h.csrc_count, 0);
	cr_assert_null(h.extension_data);
	cr_assert_eq(h.extension_len, 0);
	cr_assert_eq(h.payload, pkt + RTP_HEADER_SIZE);
	cr_assert_eq(h.payload_len, 5);
}

Test(rtp, header_bytes_are_network_order_and_type_is_seven_bits)
{
	static const uint8_t want[] = { 0x80, 0x7F, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x0A, 0x0B, 0x0C, 0x0D };
	uint8_t pkt[RTP_HEADER_SIZE];

	/* 0xFF would set the marker bit if it were not cut to 7 bits. */
	rtp_write_header(pkt, false, 0xFF, 0x1234, 0xDEADBEEF, 0x0A0B0C0D);
	cr_assert_arr_eq(pkt, want, sizeof(want));
}

Test(rtp, header_only_packet_has_empty_payload)
{
	uint8_t pkt[RTP_HEADER_SIZE];
	struct rtp_header h;

	rtp_write_header(pkt, false, 96, 1, 2, 3);
	cr_assert_eq(parse_rtp_exact(pkt, sizeof(pkt), &h), RTP_OK);
	cr_assert_eq(h.payload, pkt + RTP_HEADER_SIZE);
	cr_assert_eq(h.payload_len, 0);
}

/* V=2 P=1 X=1 CC=2, M=1 PT=96, two CSRCs, a one-word extension, 3 bytes
 * of payload and 3 of padding. */
static const uint8_t every_form[] = {
	0xB2, 0xE0, 0x12, 0x34, 0x01, 0x02, 0x03, 0x04, 0x0A, 0x0B, 0x0C, 0x0D,
	0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22,
	0xBE, 0xDE, 0x00, 0x01, 0x10, 0x20, 0x30, 0x40,
	'h', 'i', '!',
	0x00, 0x00, 0x03,
};

Test(rtp, csrcs_extension_and_padding)
{
	struct rtp_header h;

	cr_assert_eq(parse_rtp_exact(every_form, sizeof(every_form), &h), RTP_OK);
	cr_assert(h.marker);
	cr_assert(h.padding);
	cr_assert(h.extension);
	cr_assert_eq(h.payload_type, 96);
	cr_assert_eq(h.sequence, 0x1234);
	cr_assert_eq(h.timestamp, 0x01020304);
	cr_assert_eq(h.ssrc, 0x0A0B0C0D);
	cr_assert_eq(h.csrc_count, 2);
	cr_assert_eq(h.csrc[0], 0x11111111);
	cr_assert_eq(h.csrc[1], 0x22222222);
	cr_assert_eq(h.extension_profile, 0xBEDE);
	cr_assert_eq(h.extension_len, 4);
	cr_assert_eq(h.extension_data, every_form + 24);
	cr_assert_eq(h.payload, every_form + 28);
	cr_assert_eq(h.payload_len, 3);
	cr_assert_arr_eq(h.payload, "hi!", 3);
}

Test(rtp, fifteen_csrcs_and_an_empty_extension)
{
	uint8_t pkt[RTP_HEADER_SIZE + 15 * 4 + 4 + 2];
	struct rtp_header h;

	rtp_write_header(pkt, false, 8, 7, 6, 5);
	pkt[0] |= 0x10 | 15;
	for (unsigned i = 0; i < 15; i++) {
		uint8_t *csrc = pkt + RTP_HEADER_SIZE + 4 * i;

		csrc[0] = 0;
		csrc[1] = 0;
		csrc[2] = 0;
		csrc[3] = (uint8_t)(i + 1);
	}
	memcpy(pkt + RTP_HEADER_SIZE + 60, "\x10\x00\x00\x00" "ok", 6);
	cr_assert_eq(parse_rtp_exact(pkt, sizeof(pkt), &h), RTP_OK);
	cr_assert_eq(h.csrc_count, 15);
	for (unsigned i = 0; i < 15; i++)
		cr_assert_eq(h.csrc[i], i + 1);
	cr_assert_eq(h.extension_profile, 0x1000);
	cr_assert_eq(h.extension_len, 0);
	cr_assert_eq(h.payload_len, 2);
	cr_assert_arr_eq(h.payload, "ok", 2);
}

Test(rtp, padding_may_take_everything_after_the_header)
{
	static const uint8_t pkt[] = { 0xA0, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4 };
	struct rtp_header h;

	cr_assert_eq(parse_rtp_exact(pkt, sizeof(pkt), &h), RTP_OK);
	cr_assert_eq(h.payload, pkt + RTP_HEADER_SIZE);
	cr_assert_eq(h.payload_len, 0);
}

/* ---- RTP: malformed ------------------------------------------------- */

static void assert_rtp_fails(const void *pkt, size_t len, int want)
{
	struct rtp_header h, untouched;

	memset(&h, 0xA5, sizeof(h));
	memcpy(&untouched, &h, sizeof(h));
	cr_assert_eq(parse_rtp_exact(pkt, len, &h), want, "%zu bytes", len);
	cr_assert_arr_eq(&h, &untouched, sizeof(h), "h changed on failure");
}

Test(rtp_malformed, short_packets)
{
	uint8_t pkt[RTP_HEADER_SIZE];

	rtp_write_header(pkt, false, 0, 0, 0, 0);
	for (size_t len = 0; len < RTP_HEADER_SIZE; len++)
		assert_rtp_fails(pkt, len, RTP_SHORT);
}

Test(rtp_malformed, versions_other_than_two)
{
	uint8_t pkt[RTP_HEADER_SIZE];

	rtp_write_header(pkt, false, 0, 0, 0, 0);
	for (uint8_t version = 0; version < 4; version++) {
		if (version == RTP_VERSION)
			continue;
		pkt[0] = (uint8_t)(version << 6);
		assert_rtp_fails(pkt, sizeof(pkt), RTP_BAD_VERSION);
	}
}

Test(rtp_malformed, padding_count_zero)
{
	static const uint8_t pkt[] = { 0xA0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 'x', 0 };

	assert_rtp_fails(pkt, sizeof(pkt), RTP_BAD_PADDING);
}

Test(rtp_malformed, padding_longer_than_the_payload)
{
	/* 4 counted, 3 after the header; 3 would be valid (an empty payload). */
	static const uint8_t pkt[] = { 0xA0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 'x', 'y', 4 };

	assert_rtp_fails(pkt, sizeof(pkt), RTP_BAD_PADDING);
}

Test(rtp_malformed, padding_reaching_into_the_extension)
{
	/* The count's 5 covers the payload byte and would eat 4 of the
	 * extension: padding follows the whole header, extension included. */
	static const uint8_t pkt[] = { 0xB0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 5 };

	assert_rtp_fails(pkt, sizeof(pkt), RTP_BAD_PADDING);
}

Test(rtp_malformed, padding_bit_with_nothing_after_the_header)
{
	static const uint8_t pkt[] = { 0xA0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1 };

	assert_rtp_fails(pkt, sizeof(pkt), RTP_BAD_PADDING);
}

Test(rtp_malformed, csrc_count_past_the_end)
{
	/* Three CSRCs announced, two and a half present. */
	static const uint8_t pkt[] = { 0x83, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3 };

	assert_rtp_fails(pkt, sizeof(pkt), RTP_SHORT);
	assert_rtp_fails(pkt, 12, RTP_SHORT);
}

Test(rtp_malformed, extension_length_past_the_end)
{
	/* Two words announced, one present. */
	static const uint8_t pkt[] = { 0x90, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xBE, 0xDE, 0x00, 0x02, 1, 2, 3, 4 };

	assert_rtp_fails(pkt, sizeof(pkt), RTP_SHORT);
}

Test(rtp_malformed, extension_header_cut_short)
{
	static const uint8_t pkt[] = { 0x91, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 9, 9, 0xBE, 0xDE, 0x00 };

	for (size_t len = 16; len <= sizeof(pkt); len++)
		assert_rtp_fails(pkt, len, RTP_SHORT);
}

/* ---- RTCP: the NTP clock -------------------------------------------- */

Test(rtcp_ntp, unix_epoch)
{
	cr_assert_eq(rtcp_ntp_from_unix_ns(0), NTP_1970 << 32);
}

Test(rtcp_ntp, fractions_of_a_second)
{
	cr_assert_eq(rtcp_ntp_from_unix_ns(500000000), NTP_1970 << 32 | 0x80000000);
	cr_assert_eq(rtcp_ntp_from_unix_ns(1250000000), (NTP_1970 + 1) << 32 | 0x40000000);
	/* 2^32 / 10^9 = 4.29...: truncated. */
	cr_assert_eq(rtcp_ntp_from_unix_ns(1), NTP_1970 << 32 | 4);
	/* (10^9 - 1) * 2^32 / 10^9 = 4294967291.7...: never rounds up to a whole second. */
	cr_assert_eq(rtcp_ntp_from_unix_ns(999999999), NTP_1970 << 32 | 0xFFFFFFFB);
}

Test(rtcp_ntp, a_recent_second_and_the_2036_wrap)
{
	/* 2026-01-01T00:00:00Z is unix 1767225600. */
	cr_assert_eq(rtcp_ntp_from_unix_ns(1767225600ull * 1000000000), (1767225600ull + NTP_1970) << 32);
	/* 2036-02-07T06:28:16Z: NTP era 1 starts and the seconds field is 0 again. */
	cr_assert_eq(rtcp_ntp_from_unix_ns(2085978496ull * 1000000000 + 500000000), 0x80000000);
}

/* ---- RTCP: writing an SR -------------------------------------------- */

static const struct rtcp_sender_info sender = {
	.ssrc = 0x11223344,
	.ntp = 0x0102030405060708,
	.rtp_timestamp = 0xAABBCCDD,
	.packets = 5,
	.octets = 1000,
};

/* By hand from RFC 3550 6.4.1, 6.5 and 6.6. */
static const uint8_t sr_sdes_bye[] = {
	/* SR: V=2 RC=0, PT 200, 6 words after the first */
	0x80, 0xC8, 0x00, 0x06,
	0x11, 0x22, 0x33, 0x44,
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0xAA, 0xBB, 0xCC, 0xDD,
	0x00, 0x00, 0x00, 0x05,
	0x00, 0x00, 0x03, 0xE8,
	/* SDES: V=2 SC=1, PT 202, 3 words: SSRC, CNAME "ab@c", null item, 1 pad */
	0x81, 0xCA, 0x00, 0x03,
	0x11, 0x22, 0x33, 0x44,
	0x01, 0x04, 'a', 'b',
	'@', 'c', 0x00, 0x00,
	/* BYE: V=2 SC=1, PT 203, 1 word: the SSRC */
	0x81, 0xCB, 0x00, 0x01,
	0x11, 0x22, 0x33, 0x44,
};

Test(rtcp_write, sr_sdes_bye_byte_exact)
{
	uint8_t out[128];
	struct reports reports;
	size_t len;

	memset(out, 0xEE, sizeof(out));
	len = rtcp_write_sr(out, sizeof(out), &sender, "ab@c", true);
	cr_assert_eq(len, sizeof(sr_sdes_bye));
	cr_assert_eq(len % 4, 0);
	cr_assert_arr_eq(out, sr_sdes_bye, sizeof(sr_sdes_bye));
	cr_assert_eq(out[len], 0xEE, "wrote past its length");
	cr_assert_eq(parse_rtcp_exact(out, len, &reports), 3);
	cr_assert_eq(reports.count, 0);
}

Test(rtcp_write, without_bye_is_sr_and_sdes)
{
	uint8_t out[128];
	size_t len = rtcp_write_sr(out, sizeof(out), &sender, "ab@c", false);
	struct reports reports;

	cr_assert_eq(len, sizeof(sr_sdes_bye) - 8);
	cr_assert_arr_eq(out, sr_sdes_bye, len);
	cr_assert_eq(parse_rtcp_exact(out, len, &reports), 2);
}

/* Items ending on a word boundary still need a null octet, so a whole
 * word of nulls follows them; items ending one short need exactly one. */
Test(rtcp_write, sdes_null_item_and_padding_for_every_cname_length)
{
	uint8_t out[512];

	for (size_t n = 1; n <= 255; n++) {
		char cname[256];
		size_t len, sdes_len, items, words;
		const uint8_t *sdes = out + 28;

		memset(cname, 'x', n);
		cname[n] = '\0';
		memset(out, 0xEE, sizeof(out));
		len = rtcp_write_sr(out, sizeof(out), &sender, cname, false);
		items = 2 + n;
		sdes_len = 8 + (items + 1 + 3) / 4 * 4;
		cr_assert_eq(len, 28 + sdes_len, "cname of %zu", n);
		cr_assert_eq(len % 4, 0);
		words = ((size_t)sdes[2] << 8 | sdes[3]) + 1;
		cr_assert_eq(words * 4, sdes_len);
		cr_assert_eq((size_t)sdes[9], n);
		cr_assert_geq(sdes_len - 8 - items, 1);
		cr_assert_leq(sdes_len - 8 - items, 4);
		for (size_t i = 8 + items; i < sdes_len; i++)
			cr_assert_eq(sdes[i], 0, "cname of %zu: byte %zu", n, i);
	}
}

Test(rtcp_write, refuses_small_buffers_and_bad_cnames)
{
	uint8_t out[600];
	char long_cname[257];

	cr_assert_eq(rtcp_write_sr(out, sizeof(sr_sdes_bye) - 1, &sender, "ab@c", true), 0);
	cr_assert_eq(rtcp_write_sr(out, sizeof(sr_sdes_bye), &sender, "ab@c", true), sizeof(sr_sdes_bye));
	cr_assert_eq(rtcp_write_sr(out, sizeof(out), &sender, "", true), 0);
	cr_assert_eq(rtcp_write_sr(out, sizeof(out), &sender, NULL, true), 0);
	memset(long_cname, 'x', 256);
	long_cname[256] = '\0';
	cr_assert_eq(rtcp_write_sr(out, sizeof(out), &sender, long_cname, true), 0);
	long_cname[255] = '\0';
	cr_assert_neq(rtcp_write_sr(out, sizeof(out), &sender, long_cname, true), 0);
}

/* ---- RTCP: reading reports ------------------------------------------ */

/* RR from 0xDEADBEEF with two blocks: one with cumulative lost -2 (more
 * duplicates than losses), one at the most negative 24-bit value. */
static const uint8_t rr_two_blocks[] = {
	0x82, 0xC9, 0x00, 0x0D,
	0xDE, 0xAD, 0xBE, 0xEF,
	0x01, 0x02, 0x03, 0x04, 0x40, 0xFF, 0xFF, 0xFE,
	0x00, 0x01, 0xFF, 0xFF, 0x00, 0x00, 0x01, 0x23,
	0x55, 0x66, 0x77, 0x88, 0x00, 0x01, 0x00, 0x00,
	0x0A, 0x0B, 0x0C, 0x0D, 0xFF, 0x80, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
};

Test(rtcp_parse, rr_with_two_blocks)
{
	struct reports reports;

	cr_assert_eq(parse_rtcp_exact(rr_two_blocks, sizeof(rr_two_blocks), &reports), 1);
	cr_assert_eq(reports.count, 2);
	assert_report(&reports.items[0], 0xDEADBEEF, 0x01020304, 0x40, -2, 0x0001FFFF, 0x123, 0x55667788, 0x10000);
	assert_report(&reports.items[1], 0xDEADBEEF, 0x0A0B0C0D, 0xFF, -8388608, 100, 0, 0, 1);
}

Test(rtcp_parse, positive_cumulative_lost)
{
	uint8_t rr[sizeof(rr_two_blocks)];
	struct reports reports;

	memcpy(rr, rr_two_blocks, sizeof(rr));
	memcpy(rr + 13, "\x7F\xFF\xFF", 3);
	memcpy(rr + 37, "\x00\x00\x10", 3);
	cr_assert_eq(parse_rtcp_exact(rr, sizeof(rr), &reports), 1);
	cr_assert_eq(reports.items[0].cumulative_lost, 8388607);
	cr_assert_eq(reports.items[1].cumulative_lost, 16);
}

/* SR from 0x11223344 with one block, then a BYE. */
static const uint8_t sr_one_block[] = {
	0x81, 0xC8, 0x00, 0x0C,
	0x11, 0x22, 0x33, 0x44,
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0xAA, 0xBB, 0xCC, 0xDD, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x03, 0xE8,
	0x99, 0x88, 0x77, 0x66, 0x1A, 0x00, 0x00, 0x07,
	0x00, 0x02, 0x00, 0x10, 0x00, 0x00, 0x00, 0x2A,
	0x03, 0x04, 0x05, 0x06, 0x00, 0x00, 0x80, 0x00,
	0x81, 0xCB, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44,
};

Test(rtcp_parse, sr_with_one_block)
{
	struct reports reports;

	cr_assert_eq(parse_rtcp_exact(sr_one_block, sizeof(sr_one_block), &reports), 2);
	cr_assert_eq(reports.count, 1);
	assert_report(&reports.items[0], 0x11223344, 0x99887766, 0x1A, 7, 0x00020010, 42, 0x03040506, 0x8000);
}

Test(rtcp_parse, compound_sr_sdes_bye_has_no_blocks)
{
	struct reports reports;

	cr_assert_eq(parse_rtcp_exact(sr_sdes_bye, sizeof(sr_sdes_bye), &reports), 3);
	cr_assert_eq(reports.count, 0);
}

Test(rtcp_parse, rr_with_profile_extension_and_padding)
{
	/* RR, no blocks, a one-word profile extension, then an APP padded by
	 * 4 octets (its last octet counts them). */
	static const uint8_t pkt[] = {
		0x80, 0xC9, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0xCA, 0xFE, 0xBA, 0xBE,
		0xA0, 0xCC, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 'n', 'a', 'm', 'e', 0, 0, 0, 4,
	};
	struct reports reports;

	cr_assert_eq(parse_rtcp_exact(pkt, sizeof(pkt), &reports), 2);
	cr_assert_eq(reports.count, 0);
}

Test(rtcp_parse, null_callback_only_validates)
{
	cr_assert_eq(rtcp_parse(rr_two_blocks, sizeof(rr_two_blocks), NULL, NULL), 1);
}

/* ---- RTCP: malformed compounds -------------------------------------- */

static void assert_rtcp_fails(const void *pkt, size_t len, size_t blocks_before)
{
	struct reports reports;

	cr_assert_eq(parse_rtcp_exact(pkt, len, &reports), -1, "%zu bytes", len);
	cr_assert_eq(reports.count, blocks_before);
}

Test(rtcp_malformed, every_cut_of_a_valid_compound)
{
	/* Cut anywhere but between packets, the compound ends inside one;
	 * cut inside the BYE, the SR's block has been handed over. */
	for (size_t len = 0; len < sizeof(sr_one_block); len++)
		if (len != 52)
			assert_rtcp_fails(sr_one_block, len, len > 52 ? 1 : 0);
}

Test(rtcp_malformed, length_past_the_end)
{
	uint8_t rr[sizeof(rr_two_blocks)];

	memcpy(rr, rr_two_blocks, sizeof(rr));
	rr[3] = 0x0E;
	assert_rtcp_fails(rr, sizeof(rr), 0);
	rr[2] = 0xFF;
	rr[3] = 0xFF;
	assert_rtcp_fails(rr, sizeof(rr), 0);
}

Test(rtcp_malformed, report_count_past_the_packet)
{
	uint8_t pkt[sizeof(rr_two_blocks) + 8];

	/* Three blocks announced in a packet holding two, a BYE after it:
	 * the blocks must not be read from the BYE. */
	memcpy(pkt, rr_two_blocks, sizeof(rr_two_blocks));
	memcpy(pkt + sizeof(rr_two_blocks), "\x81\xCB\x00\x01\xDE\xAD\xBE\xEF", 8);
	pkt[0] = 0x83;
	assert_rtcp_fails(pkt, sizeof(pkt), 0);
}

Test(rtcp_malformed, reports_too_short_for_their_fixed_part)
{
	/* An RR of a header alone; an SR without room for its sender info. */
	static const uint8_t rr[] = { 0x80, 0xC9, 0x00, 0x00 };
	static const uint8_t sr[] = { 0x80, 0xC8, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44 };

	assert_rtcp_fails(rr, sizeof(rr), 0);
	assert_rtcp_fails(sr, sizeof(sr), 0);
}

Test(rtcp_malformed, versions_other_than_two)
{
	uint8_t pkt[sizeof(sr_one_block)];

	memcpy(pkt, sr_one_block, sizeof(pkt));
	pkt[0] = 0x41;
	assert_rtcp_fails(pkt, sizeof(pkt), 0);
	/* A bad second packet: the first's block was handed over. */
	memcpy(pkt, sr_one_block, sizeof(pkt));
	pkt[52] = 0xC1;
	assert_rtcp_fails(pkt, sizeof(pkt), 1);
}

Test(rtcp_malformed, first_packet_not_a_report)
{
	assert_rtcp_fails(sr_sdes_bye + 28, sizeof(sr_sdes_bye) - 28, 0);
	assert_rtcp_fails(sr_sdes_bye + 44, 8, 0);
}

Test(rtcp_malformed, bad_padding_counts)
{
	/* RR without blocks, padded: its last octet counts the padding. */
	uint8_t pkt[] = { 0xA0, 0xC9, 0x00, 0x02, 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x00, 0x00, 0x04 };
	struct reports reports;

	cr_assert_eq(parse_rtcp_exact(pkt, sizeof(pkt), &reports), 1);
	pkt[11] = 0;
	assert_rtcp_fails(pkt, sizeof(pkt), 0);
	pkt[11] = 9;
	assert_rtcp_fails(pkt, sizeof(pkt), 0);
	/* 5 octets of padding would eat into the SSRC. */
	pkt[11] = 5;
	assert_rtcp_fails(pkt, sizeof(pkt), 0);
}

Test(rtcp_malformed, leftover_bytes_after_the_last_packet)
{
	uint8_t pkt[sizeof(sr_sdes_bye) + 2];

	memcpy(pkt, sr_sdes_bye, sizeof(sr_sdes_bye));
	pkt[sizeof(sr_sdes_bye)] = 0x80;
	pkt[sizeof(sr_sdes_bye) + 1] = 0xCB;
	assert_rtcp_fails(pkt, sizeof(pkt), 0);
}
