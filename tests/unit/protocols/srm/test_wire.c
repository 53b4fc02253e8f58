/* The SRM wire format: CRC32C against its published check value, sequence
 * order across the wrap, every message type written and read back, a
 * datagram checked byte by byte against the documented layout, and each
 * way a datagram can be refused. Parsed bytes sit in buffers of exactly
 * their size, so a sanitizer build catches any read past the end. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/srm/wire.h"

/* ---- helpers -------------------------------------------------------- */

static int parse_exact(const uint8_t *bytes, size_t len, struct srm_header *h)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	cr_assert_not_null(copy);
	if (len > 0)
		memcpy(copy, bytes, len);
	rc = srm_parse(copy, len, h);
	if (rc == SRM_OK)	/* the payload pointer as an offset into bytes, as the copy goes */
		h->payload = bytes + (h->payload - copy);
	free(copy);
	return rc;
}

static size_t write_data(uint8_t *out, size_t cap, const char *text)
{
	struct srm_header h = { .type = SRM_DATA, .session = 17, .sequence = 5, .object = 2, .offset = 4096,
				.payload = (const uint8_t *)text, .payload_len = strlen(text) };

	return srm_write(out, cap, &h);
}

/* Recomputes the CRC after a field was changed by hand. */
static void reseal(uint8_t *pkt, size_t len)
{
	uint32_t crc = srm_crc32c(srm_crc32c(0, pkt, 28), pkt + 32, len - 32);

	pkt[28] = (uint8_t)(crc >> 24);
	pkt[29] = (uint8_t)(crc >> 16);
	pkt[30] = (uint8_t)(crc >> 8);
	pkt[31] = (uint8_t)crc;
}

/* ---- CRC32C and sequences ---------------------------------------------- */

Test(srm_crc32c, check_value_and_continuation)
{
	const uint8_t *digits = (const uint8_t *)"123456789";

	/* The CRC-32C check value (RFC 3720 B.4 and every CRC catalogue). */
	cr_assert_eq(srm_crc32c(0, digits, 9), 0xE3069283u);
	cr_assert_eq(srm_crc32c(srm_crc32c(0, digits, 4), digits + 4, 5), 0xE3069283u);
	cr_assert_eq(srm_crc32c(0, digits, 0), 0);
}

Test(srm_crc32c, rfc3720_zeros)
{
	uint8_t zeros[32] = { 0 }, ones[32];

	memset(ones, 0xff, sizeof(ones));
	cr_assert_eq(srm_crc32c(0, zeros, 32), 0x8A9136AAu);
	cr_assert_eq(srm_crc32c(0, ones, 32), 0x62A8AB43u);
}

Test(srm_seq, order_across_the_wrap)
{
	cr_assert(srm_seq_before(1, 2));
	cr_assert_not(srm_seq_before(2, 1));
	cr_assert_not(srm_seq_before(7, 7));
	cr_assert(srm_seq_before(0xFFFFFFFFu, 0));
	cr_assert(srm_seq_before(0xFFFFFFF0u, 0x10));
	cr_assert_not(srm_seq_before(0x10, 0xFFFFFFF0u));
	cr_assert(srm_seq_before(0, 0x7FFFFFFFu));
	cr_assert_not(srm_seq_before(0, 0x80000000u));
}

/* ---- writing and reading ------------------------------------------------ */

Test(srm_wire, data_layout_byte_by_byte)
{
	const uint8_t expected_header[28] = {
		0x43, 0x53, 1, SRM_DATA, 0, 0, 0, 3,	/* "CS", version, type, flags, length */
		0, 0, 0, 17, 0, 0, 0, 5, 0, 0, 0, 2,	/* session, sequence, object */
		0, 0, 0, 0, 0, 0, 0x10, 0,		/* offset 4096 */
	};
	uint8_t pkt[64];
	size_t len = write_data(pkt, sizeof(pkt), "abc");
	uint32_t crc = srm_crc32c(srm_crc32c(0, pkt, 28), (const uint8_t *)"abc", 3);

	cr_assert_eq(len, 35);
	cr_assert_arr_eq(pkt, expected_header, 28);
	cr_assert_eq(pkt[28], (uint8_t)(crc >> 24));
	cr_assert_eq(pkt[31], (uint8_t)crc);
	cr_assert_arr_eq(pkt + 32, "abc", 3);
}

Test(srm_wire, data_round_trip)
{
	uint8_t pkt[64];
	size_t len = write_data(pkt, sizeof(pkt), "hello");
	struct srm_header h;

	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
	cr_assert_eq(h.type, SRM_DATA);
	cr_assert_eq(h.flags, 0);
	cr_assert_eq(h.session, 17);
	cr_assert_eq(h.sequence, 5);
	cr_assert_eq(h.object, 2);
	cr_assert_eq(h.offset, 4096);
	cr_assert_eq(h.payload_len, 5);
	cr_assert_eq(h.payload, pkt + SRM_HEADER_SIZE);
	cr_assert_arr_eq(h.payload, "hello", 5);
}

Test(srm_wire, payload_already_in_place)
{
	uint8_t pkt[64];
	struct srm_header h = { .type = SRM_DATA, .payload = pkt + SRM_HEADER_SIZE, .payload_len = 4 };
	struct srm_header back;

	memcpy(pkt + SRM_HEADER_SIZE, "wxyz", 4);
	cr_assert_eq(srm_write(pkt, sizeof(pkt), &h), 36);
	cr_assert_eq(parse_exact(pkt, 36, &back), SRM_OK);
	cr_assert_arr_eq(back.payload, "wxyz", 4);
}

Test(srm_wire, empty_data_and_end_of_empty_object)
{
	uint8_t pkt[64], body[SRM_END_BODY_SIZE];
	struct srm_end end = { .size = 0, .crc = 0 }, back_end;
	struct srm_header h = { .type = SRM_END, .flags = SRM_FLAG_LAST, .session = 1, .sequence = 0xFFFFFFFFu,
				.object = 9, .payload = body, .payload_len = sizeof(body) };
	struct srm_header back;

	cr_assert_eq(srm_write_end(body, sizeof(body), &end), SRM_END_BODY_SIZE);
	cr_assert_eq(srm_write(pkt, sizeof(pkt), &h), 44);
	cr_assert_eq(parse_exact(pkt, 44, &back), SRM_OK);
	cr_assert_eq(back.flags, SRM_FLAG_LAST);
	cr_assert_eq(back.sequence, 0xFFFFFFFFu);
	srm_read_end(&back, &back_end);
	cr_assert_eq(back_end.size, 0);
	cr_assert_eq(back_end.crc, 0);
	cr_assert_eq(write_data(pkt, sizeof(pkt), ""), 32);
	cr_assert_eq(parse_exact(pkt, 32, &back), SRM_OK);
	cr_assert_eq(back.payload_len, 0);
}

Test(srm_wire, end_and_repaired_end)
{
	uint8_t pkt[64], body[SRM_END_BODY_SIZE];
	struct srm_end end = { .size = 52428800, .crc = 0xDEADBEEFu }, back_end;
	struct srm_header h = { .type = SRM_END, .session = 3, .sequence = 100, .object = 1, .payload = body,
				.payload_len = sizeof(body) };
	struct srm_header back;
	size_t len;

	cr_assert_eq(srm_write_end(body, sizeof(body), &end), SRM_END_BODY_SIZE);
	len = srm_write(pkt, sizeof(pkt), &h);
	cr_assert_eq(parse_exact(pkt, len, &back), SRM_OK);
	srm_read_end(&back, &back_end);
	cr_assert_eq(back_end.size, 52428800);
	cr_assert_eq(back_end.crc, 0xDEADBEEFu);
	h.type = SRM_REPAIR;
	h.flags = SRM_FLAG_END | SRM_FLAG_LAST;
	len = srm_write(pkt, sizeof(pkt), &h);
	cr_assert_eq(parse_exact(pkt, len, &back), SRM_OK);
	cr_assert_eq(back.type, SRM_REPAIR);
	cr_assert_eq(back.flags, SRM_FLAG_END | SRM_FLAG_LAST);
	srm_read_end(&back, &back_end);
	cr_assert_eq(back_end.crc, 0xDEADBEEFu);
}

Test(srm_wire, nak_and_gone_ranges)
{
	const struct srm_range ranges[3] = { { 10, 12 }, { 0xFFFFFFFEu, 1 }, { 40, 40 } };
	struct srm_range back[4];
	uint8_t body[64], pkt[128];
	struct srm_header h = { .type = SRM_NAK, .session = 17, .sequence = 50, .object = 0xABCD, .payload = body };
	struct srm_header parsed;

	h.payload_len = srm_write_ranges(body, sizeof(body), ranges, 3);
	cr_assert_eq(h.payload_len, 24);
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &parsed), SRM_OK);
	cr_assert_eq(parsed.object, 0xABCD);
	cr_assert_eq(srm_read_ranges(&parsed, back, 4), 3);
	cr_assert_eq(back[1].first, 0xFFFFFFFEu);
	cr_assert_eq(back[1].last, 1);
	cr_assert_eq(back[2].first, 40);
	cr_assert_eq(srm_read_ranges(&parsed, back, 2), 2);
	h.type = SRM_GONE;
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &parsed), SRM_OK);
	cr_assert_eq(parsed.type, SRM_GONE);
}

Test(srm_wire, ranges_refused_when_empty_or_too_many)
{
	struct srm_range many[SRM_MAX_RANGES + 1] = { { 0, 0 } };
	uint8_t body[(SRM_MAX_RANGES + 1) * SRM_RANGE_SIZE];

	cr_assert_eq(srm_write_ranges(body, sizeof(body), many, 0), 0);
	cr_assert_eq(srm_write_ranges(body, sizeof(body), many, SRM_MAX_RANGES + 1), 0);
	cr_assert_eq(srm_write_ranges(body, 15, many, 2), 0);
	cr_assert_eq(srm_write_ranges(body, sizeof(body), many, SRM_MAX_RANGES), SRM_MAX_RANGES * SRM_RANGE_SIZE);
}

Test(srm_wire, heartbeat)
{
	uint8_t body[SRM_HEARTBEAT_BODY_SIZE], pkt[64];
	struct srm_heartbeat hb = { .trailing = 0xFFFFFF00u, .leading = 0x100 }, back_hb;
	struct srm_header h = { .type = SRM_HEARTBEAT, .flags = SRM_FLAG_LAST, .sequence = 0x100, .payload = body,
				.payload_len = sizeof(body) };
	struct srm_header back;

	srm_write_heartbeat(body, &hb);
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_OK);
	srm_read_heartbeat(&back, &back_hb);
	cr_assert_eq(back_hb.trailing, 0xFFFFFF00u);
	cr_assert_eq(back_hb.leading, 0x100);
}

Test(srm_wire, write_refuses_what_does_not_fit)
{
	uint8_t pkt[40];
	static uint8_t big[SRM_MAX_PAYLOAD + 1];
	struct srm_header h = { .type = SRM_DATA, .payload = big, .payload_len = sizeof(big) };

	cr_assert_eq(write_data(pkt, 34, "abc"), 0);
	cr_assert_eq(write_data(pkt, 35, "abc"), 35);
	cr_assert_eq(srm_write(pkt, sizeof(pkt), &h), 0);
	h.payload_len = 0;
	h.type = 8;
	cr_assert_eq(srm_write(pkt, sizeof(pkt), &h), 0);
	h.type = 0;
	cr_assert_eq(srm_write(pkt, sizeof(pkt), &h), 0);
}

/* ---- refusals ----------------------------------------------------------- */

Test(srm_parse, short_and_truncated)
{
	uint8_t pkt[64];
	size_t len = write_data(pkt, sizeof(pkt), "hello");
	struct srm_header h = { .session = 99 };

	for (size_t cut = 0; cut < SRM_HEADER_SIZE; cut++)
		cr_assert_eq(parse_exact(pkt, cut, &h), SRM_SHORT);
	cr_assert_eq(parse_exact(pkt, len - 1, &h), SRM_SHORT);
	cr_assert_eq(h.session, 99, "h is untouched on a refusal");
}

Test(srm_parse, trailing_bytes)
{
	uint8_t pkt[64];
	size_t len = write_data(pkt, sizeof(pkt), "hello");
	struct srm_header h;

	pkt[len] = 0;
	cr_assert_eq(parse_exact(pkt, len + 1, &h), SRM_BAD_LENGTH);
}

Test(srm_parse, magic_version_type)
{
	uint8_t pkt[64];
	size_t len = write_data(pkt, sizeof(pkt), "hello");
	struct srm_header h;

	pkt[0] ^= 1;
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_MAGIC);
	pkt[0] ^= 1;
	pkt[2] = 2;		/* version 2 says a name: a DATA has none */
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_VERSION);
	pkt[2] = 3;
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_VERSION);
	pkt[2] = 1;
	pkt[3] = 0;
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_TYPE);
	pkt[3] = 8;
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_TYPE);
	pkt[3] = SRM_PARITY;	/* in version 1: the version is checked first */
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_VERSION);
	cr_assert_str_eq(srm_parse_result_name(SRM_BAD_TYPE), "type");
}

/* Every single bit flipped anywhere in header or payload is caught: by
 * the CRC, or before it by a field check. */
Test(srm_parse, every_bit_flip_refused)
{
	uint8_t pkt[64];
	size_t len = write_data(pkt, sizeof(pkt), "hello");
	struct srm_header h;

	for (size_t bit = 0; bit < len * 8; bit++) {
		pkt[bit / 8] ^= (uint8_t)(1u << bit % 8);
		cr_assert_neq(parse_exact(pkt, len, &h), SRM_OK, "bit %zu", bit);
		pkt[bit / 8] ^= (uint8_t)(1u << bit % 8);
	}
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
	pkt[33] ^= 0x20;
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_CRC);
}

Test(srm_parse, bodies_their_type_refuses)
{
	uint8_t pkt[64];
	size_t len;
	struct srm_header h;

	/* A NAK of 5 bytes (not whole ranges). */
	len = write_data(pkt, sizeof(pkt), "hello");
	pkt[3] = SRM_NAK;
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_BODY);
	/* An empty GONE. */
	len = write_data(pkt, sizeof(pkt), "");
	pkt[3] = SRM_GONE;
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_BODY);
	/* A HEARTBEAT and an END of the wrong size. */
	len = write_data(pkt, sizeof(pkt), "abcdefghi");
	pkt[3] = SRM_HEARTBEAT;
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_BODY);
	pkt[3] = SRM_END;
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_BODY);
}

Test(srm_parse, implausible_ranges_and_edges)
{
	const struct srm_range backwards[1] = { { 12, 10 } }, too_wide[1] = { { 0, 0x80000000u } };
	uint8_t body[16], pkt[64];
	struct srm_header h = { .type = SRM_NAK, .payload = body, .payload_len = 8 };
	struct srm_heartbeat hb = { .trailing = 10, .leading = 9 };
	struct srm_header back;

	srm_write_ranges(body, sizeof(body), backwards, 1);
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_BAD_BODY);
	srm_write_ranges(body, sizeof(body), too_wide, 1);
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_BAD_BODY);
	h.type = SRM_HEARTBEAT;
	srm_write_heartbeat(body, &hb);
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_BAD_BODY);
}

Test(srm_parse, flags)
{
	uint8_t pkt[64];
	struct srm_header h = { .type = SRM_DATA, .payload = (const uint8_t *)"x", .payload_len = 1 };
	struct srm_header back;

	h.flags = 0x0100;	/* unknown */
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_BAD_BODY);
	h.flags = SRM_FLAG_END;	/* only a REPAIR carries an END */
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_BAD_BODY);
	h.flags = SRM_FLAG_LAST;	/* a DATA is never the last word */
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_BAD_BODY);
	h.type = SRM_REPAIR;	/* nor is its repair */
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_BAD_BODY);
}

Test(srm_parse, offset_past_two_to_the_64)
{
	uint8_t pkt[64];
	struct srm_header h = { .type = SRM_DATA, .offset = UINT64_MAX - 1, .payload = (const uint8_t *)"ab",
				.payload_len = 2 };
	struct srm_header back;

	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_BAD_BODY);
	h.payload_len = 1;
	cr_assert_eq(parse_exact(pkt, srm_write(pkt, sizeof(pkt), &h), &back), SRM_OK);
}

/* ---- names (version 2) ----------------------------------------------------- */

/* An END of object 4 named `name`, as the sender writes it. */
static size_t write_named_end(uint8_t *out, size_t cap, const char *name, size_t name_len, uint16_t flags)
{
	uint8_t body[SRM_END_BODY_SIZE + SRM_NAME_MAX + 1];
	struct srm_end end = { .size = 5242880, .crc = 0x01020304u, .name = (const uint8_t *)name, .name_len = name_len };
	struct srm_header h = { .type = SRM_END, .flags = (uint16_t)(SRM_FLAG_NAME | flags), .session = 17,
				.sequence = 77, .object = 4, .payload = body };

	h.payload_len = srm_write_end(body, sizeof(body), &end);
	cr_assert_eq(h.payload_len, SRM_END_BODY_SIZE + name_len);
	return srm_write(out, cap, &h);
}

Test(srm_names, named_end_layout_byte_by_byte)
{
	const uint8_t expected[32 + 12 + 5] = {
		0x43, 0x53, 2, SRM_END, 0, 0x05, 0, 17,	/* "CS", version 2, END, flags NAME|LAST, length 17 */
		0, 0, 0, 17, 0, 0, 0, 77, 0, 0, 0, 4,	/* session, sequence, object */
		0, 0, 0, 0, 0, 0, 0, 0,			/* offset */
		0, 0, 0, 0,				/* the CRC, checked below */
		0, 0, 0, 0, 0, 0x50, 0, 0, 1, 2, 3, 4,	/* size 5 MiB, CRC32C of the object */
		'a', '.', 'b', 'i', 'n',		/* the name, no length byte, no NUL */
	};
	uint8_t pkt[128];
	size_t len = write_named_end(pkt, sizeof(pkt), "a.bin", 5, SRM_FLAG_LAST);
	uint32_t crc = srm_crc32c(srm_crc32c(0, pkt, 28), pkt + 32, 17);

	cr_assert_eq(len, sizeof(expected));
	cr_assert_arr_eq(pkt, expected, 28);
	cr_assert_arr_eq(pkt + 32, expected + 32, 17);
	cr_assert_eq(pkt[28], (uint8_t)(crc >> 24));
	cr_assert_eq(pkt[29], (uint8_t)(crc >> 16));
	cr_assert_eq(pkt[30], (uint8_t)(crc >> 8));
	cr_assert_eq(pkt[31], (uint8_t)crc);
}

Test(srm_names, named_end_and_its_repair_round_trip)
{
	uint8_t pkt[128];
	size_t len = write_named_end(pkt, sizeof(pkt), "image-2.bin", 11, 0);
	struct srm_header h;
	struct srm_end end;

	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
	cr_assert_eq(h.flags, SRM_FLAG_NAME);
	srm_read_end(&h, &end);
	cr_assert_eq(end.size, 5242880);
	cr_assert_eq(end.crc, 0x01020304u);
	cr_assert_eq(end.name_len, 11);
	cr_assert_arr_eq(end.name, "image-2.bin", 11);
	cr_assert_eq(end.name, h.payload + SRM_END_BODY_SIZE);
	/* The sender repairs it as it kept it: a REPAIR with END and NAME. */
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
	h.payload = pkt + SRM_HEADER_SIZE;
	h.type = SRM_REPAIR;
	h.flags |= SRM_FLAG_END;
	cr_assert_eq(srm_write(pkt, sizeof(pkt), &h), len);
	cr_assert_eq(pkt[2], 2);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
	srm_read_end(&h, &end);
	cr_assert_arr_eq(end.name, "image-2.bin", 11);
}

Test(srm_names, an_unnamed_end_has_no_name_and_stays_version_1)
{
	uint8_t body[SRM_END_BODY_SIZE], pkt[64];
	struct srm_end end = { .size = 3, .crc = 9 };
	struct srm_header h = { .type = SRM_END, .payload = body, .payload_len = sizeof(body) };

	cr_assert_eq(srm_write_end(body, sizeof(body), &end), SRM_END_BODY_SIZE);
	cr_assert_eq(srm_write(pkt, sizeof(pkt), &h), 44);
	cr_assert_eq(pkt[2], 1);
	cr_assert_eq(parse_exact(pkt, 44, &h), SRM_OK);
	srm_read_end(&h, &end);
	cr_assert_null(end.name);
	cr_assert_eq(end.name_len, 0);
}

Test(srm_names, the_crc_covers_the_name)
{
	uint8_t pkt[128];
	size_t len = write_named_end(pkt, sizeof(pkt), "abc", 3, 0);
	struct srm_header h;

	for (size_t at = 32 + SRM_END_BODY_SIZE; at < len; at++) {
		pkt[at] ^= 0x01;
		cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_CRC, "byte %zu", at);
		pkt[at] ^= 0x01;
	}
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
}

Test(srm_names, the_version_must_be_the_one_the_flags_need)
{
	uint8_t pkt[128];
	size_t len = write_named_end(pkt, sizeof(pkt), "abc", 3, 0);
	struct srm_header h;

	pkt[2] = 1;		/* a name in version 1: an old sender cannot say it */
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_VERSION);
	pkt[2] = 2;
	pkt[5] &= (uint8_t)~SRM_FLAG_NAME;	/* version 2 without a name */
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_VERSION);
}

Test(srm_names, name_lengths)
{
	static char name[SRM_NAME_MAX + 1];
	static uint8_t pkt[SRM_HEADER_SIZE + SRM_END_BODY_SIZE + SRM_NAME_MAX + 1];
	uint8_t body[SRM_END_BODY_SIZE + SRM_NAME_MAX + 1];
	struct srm_end end = { .name = (const uint8_t *)name, .name_len = SRM_NAME_MAX + 1 };
	struct srm_header h;
	size_t len;

	memset(name, 'n', sizeof(name));
	len = write_named_end(pkt, sizeof(pkt), name, SRM_NAME_MAX, 0);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
	/* One byte more, written by hand: refused. */
	cr_assert_eq(srm_write_end(body, sizeof(body), &end), 0);
	pkt[len] = 'n';
	pkt[6] = (uint8_t)((len + 1 - SRM_HEADER_SIZE) >> 8);
	pkt[7] = (uint8_t)(len + 1 - SRM_HEADER_SIZE);
	reseal(pkt, len + 1);
	cr_assert_eq(parse_exact(pkt, len + 1, &h), SRM_BAD_BODY);
	/* The flag with no name at all. */
	len = write_named_end(pkt, sizeof(pkt), "x", 1, 0);
	pkt[7]--;
	reseal(pkt, len - 1);
	cr_assert_eq(parse_exact(pkt, len - 1, &h), SRM_BAD_BODY);
	/* Too small a body buffer. */
	end.name_len = 4;
	cr_assert_eq(srm_write_end(body, SRM_END_BODY_SIZE + 3, &end), 0);
	cr_assert_eq(srm_write_end(body, SRM_END_BODY_SIZE + 4, &end), SRM_END_BODY_SIZE + 4);
}

Test(srm_names, only_an_end_or_its_repair_has_a_name)
{
	uint8_t pkt[128];
	size_t len = write_named_end(pkt, sizeof(pkt), "abcdefghijkl", 12, 0);
	struct srm_header h;

	pkt[3] = SRM_DATA;
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_BODY);
	pkt[3] = SRM_REPAIR;	/* of a DATA: no END flag */
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_BODY);
	pkt[3] = SRM_HEARTBEAT;
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_BODY);
	pkt[3] = SRM_END;
	reseal(pkt, len);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
}

static const char *refusal(const char *name, size_t len)
{
	return srm_name_refusal((const uint8_t *)name, len);
}

Test(srm_names, what_a_receiver_takes_as_a_file_name)
{
	static char long_name[SRM_NAME_STORE_MAX + 1];

	cr_assert_null(refusal("image.bin", 9));
	cr_assert_null(refusal("a b", 3));
	cr_assert_null(refusal("caf\xc3\xa9", 5));
	cr_assert_null(refusal("x..y", 4));
	cr_assert_str_eq(refusal("", 0), "empty");
	cr_assert_str_eq(refusal(".", 1), "a dot name");
	cr_assert_str_eq(refusal("..", 2), "a dot name");
	cr_assert_str_eq(refusal(".hidden", 7), "a leading dot");
	cr_assert_str_eq(refusal("..x", 3), "a leading dot");
	cr_assert_str_eq(refusal(".object-17-2.part", 17), "a leading dot");
	cr_assert_str_eq(refusal("../evil", 7), "a slash");
	cr_assert_str_eq(refusal("a/b", 3), "a slash");
	cr_assert_str_eq(refusal("/etc/passwd", 11), "a slash");
	cr_assert_str_eq(refusal("a\0b", 3), "a NUL byte");
	cr_assert_str_eq(refusal("bad\x01name", 8), "a control byte");
	cr_assert_str_eq(refusal("line\n", 5), "a control byte");
	cr_assert_str_eq(refusal("del\x7f", 4), "a control byte");
	memset(long_name, 'a', sizeof(long_name));
	cr_assert_null(refusal(long_name, SRM_NAME_STORE_MAX));
	cr_assert_str_eq(refusal(long_name, SRM_NAME_STORE_MAX + 1), "too long");
}

/* ---- PARITY (version 3) ---------------------------------------------- */

/* A PARITY of block `first` with a symbol of sym_len bytes, each its
 * index in the symbol. */
static size_t write_parity(uint8_t *out, size_t cap, uint32_t first, unsigned k, unsigned index, size_t sym_len)
{
	uint8_t body[512];
	struct srm_parity p = { .k = k, .index = index, .symbol_len = sym_len };
	struct srm_header h = { .type = SRM_PARITY, .session = 17, .sequence = first, .payload = body };

	cr_assert_leq(sym_len + SRM_PARITY_BODY_SIZE, sizeof(body));
	for (size_t i = 0; i < sym_len; i++)
		body[SRM_PARITY_BODY_SIZE + i] = (uint8_t)i;
	h.payload_len = srm_write_parity(body, sizeof(body), &p);
	if (h.payload_len == 0)
		return 0;
	return srm_write(out, cap, &h);
}

Test(srm_parity, layout_byte_by_byte_and_round_trip)
{
	uint8_t pkt[256];
	size_t len = write_parity(pkt, sizeof(pkt), 0xFFFFFFF0u, 16, 3, 40);
	struct srm_header h;
	struct srm_parity p;
	static const uint8_t head[] = { 'C', 'S', 3, SRM_PARITY, 0, 0, 0, 44, 0, 0, 0, 17, 0xFF, 0xFF, 0xFF, 0xF0,
					0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

	cr_assert_eq(len, SRM_HEADER_SIZE + SRM_PARITY_BODY_SIZE + 40);
	cr_assert_arr_eq(pkt, head, sizeof(head));
	cr_assert_eq(pkt[32], 16);	/* k */
	cr_assert_eq(pkt[33], 3);	/* index */
	cr_assert_eq(pkt[34], 0);
	cr_assert_eq(pkt[35], 40);	/* symbol length */
	cr_assert_eq(pkt[36 + 39], 39);
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
	cr_assert_eq(h.type, SRM_PARITY);
	cr_assert_eq(h.sequence, 0xFFFFFFF0u);
	srm_read_parity(&h, &p);
	cr_assert_eq(p.k, 16);
	cr_assert_eq(p.index, 3);
	cr_assert_eq(p.symbol_len, 40);
	cr_assert_eq(p.symbol, h.payload + SRM_PARITY_BODY_SIZE);
}

Test(srm_parity, write_refuses_what_the_code_has_not)
{
	uint8_t pkt[512];

	cr_assert_eq(write_parity(pkt, sizeof(pkt), 1, 0, 0, 40), 0);	/* k 0 */
	cr_assert_eq(write_parity(pkt, sizeof(pkt), 1, 255, 0, 40), 0);	/* k + index over 254 */
	cr_assert_eq(write_parity(pkt, sizeof(pkt), 1, 250, 5, 40), 0);
	cr_assert_neq(write_parity(pkt, sizeof(pkt), 1, 250, 4, 40), 0);
	cr_assert_eq(write_parity(pkt, sizeof(pkt), 1, 4, 0, SRM_HEADER_SIZE - 1), 0);	/* under a header */
	cr_assert_eq(write_parity(pkt, 40, 1, 4, 0, 40), 0);	/* no room */
}

/* A valid PARITY with one body byte changed by hand, resealed. */
static int parity_with(size_t at, uint8_t value)
{
	uint8_t pkt[256];
	size_t len = write_parity(pkt, sizeof(pkt), 100, 8, 1, 48);
	struct srm_header h;

	pkt[at] = value;
	reseal(pkt, len);
	return parse_exact(pkt, len, &h);
}

Test(srm_parity, bad_parity_refused)
{
	cr_assert_eq(parity_with(32, 8), SRM_OK);
	cr_assert_eq(parity_with(32, 0), SRM_BAD_BODY);	/* k 0 */
	cr_assert_eq(parity_with(33, 254), SRM_BAD_BODY);	/* index past the code */
	cr_assert_eq(parity_with(34, 1), SRM_BAD_BODY);	/* symbol length not the body's */
	cr_assert_eq(parity_with(35, 47), SRM_BAD_BODY);
	cr_assert_eq(parity_with(35, 49), SRM_BAD_BODY);
	cr_assert_eq(parity_with(5, SRM_FLAG_LAST), SRM_BAD_BODY);	/* no flags */
	cr_assert_eq(parity_with(19, 1), SRM_BAD_BODY);	/* object 0 */
	cr_assert_eq(parity_with(27, 1), SRM_BAD_BODY);	/* offset 0 */
	cr_assert_eq(parity_with(2, 1), SRM_BAD_VERSION);	/* an old sender cannot say it */
	cr_assert_eq(parity_with(2, 2), SRM_BAD_VERSION);
}

Test(srm_parity, a_body_too_short_for_its_fields)
{
	uint8_t pkt[64];
	struct srm_header h = { .type = SRM_PARITY, .session = 1, .payload = (const uint8_t *)"\x01\x00", .payload_len = 2 };
	size_t len = srm_write(pkt, sizeof(pkt), &h);

	cr_assert_eq(parse_exact(pkt, len, &h), SRM_BAD_BODY);
}

Test(srm_parity, every_bit_flip_refused)
{
	uint8_t pkt[256];
	size_t len = write_parity(pkt, sizeof(pkt), 7, 4, 0, 33);
	struct srm_header h;

	for (size_t bit = 0; bit < len * 8; bit++) {
		pkt[bit / 8] ^= (uint8_t)(1u << bit % 8);
		cr_assert_neq(parse_exact(pkt, len, &h), SRM_OK, "bit %zu", bit);
		pkt[bit / 8] ^= (uint8_t)(1u << bit % 8);
	}
	cr_assert_eq(parse_exact(pkt, len, &h), SRM_OK);
}
