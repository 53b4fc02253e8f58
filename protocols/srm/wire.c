/* SRM versions 1 and 2 on the wire. Every multi-byte field is network
 * order, read and written a byte at a time: no datagram is cast to a
 * struct, no alignment assumed, no length added to a pointer before it is
 * checked.
 *
 *   0  magic "CS"   2 version   3 type   4 flags (16)   6 payload length (16)
 *   8  session (32)   12 sequence (32)   16 object (32)   20 offset (64)
 *   28 CRC32C over bytes 0..27 and the payload   32 payload
 *
 * Version 2 differs only in one flag, NAME: an END's body goes on after
 * its 12 bytes with the object's name, so the CRC covers the name as it
 * covers any payload. Version 3 adds one type, PARITY, whose body is
 *
 *   0  k (8)   1 parity index (8)   2 symbol length (16)   4 symbol
 *
 * and whose sequence is its block's first.
 */
#include "protocols/srm/wire.h"

#include <string.h>

#include "protocols/srm/fec.h"
#include "protocols/support/bytes.h"

/* ---- CRC32C ------------------------------------------------------------ */

/* A checksum against corruption and mix-ups, not against an attacker:
 * the byte-wise table form is fast enough at multicast rates and needs
 * no library. The table is built on first use (one thread runs the
 * event loop). */
#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[256];
static bool crc_table_ready;

static void build_crc_table(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int bit = 0; bit < 8; bit++)
			c = c & 1 ? c >> 1 ^ CRC32C_POLY : c >> 1;
		crc_table[n] = c;
	}
	crc_table_ready = true;
}

uint32_t srm_crc32c(uint32_t crc, const uint8_t *p, size_t len)
{
	if (!crc_table_ready)
		build_crc_table();
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = crc_table[(crc ^ p[i]) & 0xff] ^ crc >> 8;
	return ~crc;
}

/* ---- header ------------------------------------------------------------ */

#define AT_VERSION 2
#define AT_TYPE 3
#define AT_FLAGS 4
#define AT_LENGTH 6
#define AT_SESSION 8
#define AT_SEQUENCE 12
#define AT_OBJECT 16
#define AT_OFFSET 20
#define AT_CRC 28

static bool known_type(unsigned type)
{
	return type >= SRM_DATA && type <= SRM_PARITY;
}

/* The version a datagram of this type with these flags is written in, and
 * must be read in. */
static unsigned version_of(unsigned type, unsigned flags)
{
	if (type == SRM_PARITY)
		return SRM_VERSION_PARITY;
	return flags & SRM_FLAG_NAME ? SRM_VERSION_NAMES : SRM_VERSION;
}

static uint32_t datagram_crc(const uint8_t *header, const uint8_t *payload, size_t payload_len)
{
	return srm_crc32c(srm_crc32c(0, header, AT_CRC), payload, payload_len);
}

size_t srm_write(uint8_t *out, size_t cap, const struct srm_header *h)
{
	if (!known_type(h->type) || h->payload_len > SRM_MAX_PAYLOAD || cap < SRM_HEADER_SIZE ||
	    cap - SRM_HEADER_SIZE < h->payload_len)
		return 0;
	write_u16(out, SRM_MAGIC);
	out[AT_VERSION] = (uint8_t)version_of(h->type, h->flags);
	out[AT_TYPE] = h->type;
	write_u16(out + AT_FLAGS, h->flags);
	write_u16(out + AT_LENGTH, (uint16_t)h->payload_len);
	write_u32(out + AT_SESSION, h->session);
	write_u32(out + AT_SEQUENCE, h->sequence);
	write_u32(out + AT_OBJECT, h->object);
	write_u64(out + AT_OFFSET, h->offset);
	if (h->payload_len > 0)		/* the payload may already sit in out, after the header */
		memmove(out + SRM_HEADER_SIZE, h->payload, h->payload_len);
	write_u32(out + AT_CRC, datagram_crc(out, out + SRM_HEADER_SIZE, h->payload_len));
	return SRM_HEADER_SIZE + h->payload_len;
}

/* ---- bodies ------------------------------------------------------------ */

/* A range whose last is not at or after first within half the sequence
 * space is no range any window could hold. */
static bool plausible_range(uint32_t first, uint32_t last)
{
	return first == last || srm_seq_before(first, last);
}

static bool valid_ranges(const uint8_t *body, size_t len)
{
	if (len == 0 || len % SRM_RANGE_SIZE != 0 || len / SRM_RANGE_SIZE > SRM_MAX_RANGES)
		return false;
	for (size_t at = 0; at < len; at += SRM_RANGE_SIZE)
		if (!plausible_range(read_u32(body + at), read_u32(body + at + 4)))
			return false;
	return true;
}

static bool valid_flags(const struct srm_header *h)
{
	if (h->flags & ~SRM_FLAGS_KNOWN)
		return false;
	if ((h->flags & SRM_FLAG_NAME) && h->type != SRM_END && !(h->flags & SRM_FLAG_END))
		return false;
	if (h->flags & SRM_FLAG_END)
		return h->type == SRM_REPAIR;
	if (h->flags & SRM_FLAG_LAST)	/* a REPAIR with it has SRM_FLAG_END too: above */
		return h->type == SRM_END || h->type == SRM_HEARTBEAT;
	return true;
}

static bool valid_parity_fields(unsigned k, unsigned index, size_t symbol_len)
{
	return k >= 1 && k < SRM_FEC_MAX_BLOCK && index < SRM_FEC_MAX_BLOCK - k && symbol_len >= SRM_HEADER_SIZE &&
	       symbol_len <= SRM_PARITY_SYMBOL_MAX;
}

static bool valid_parity(const struct srm_header *h)
{
	return h->flags == 0 && h->object == 0 && h->offset == 0 && h->payload_len >= SRM_PARITY_BODY_SIZE &&
	       read_u16(h->payload + 2) == h->payload_len - SRM_PARITY_BODY_SIZE &&
	       valid_parity_fields(h->payload[0], h->payload[1], h->payload_len - SRM_PARITY_BODY_SIZE);
}

/* 12 bytes, and with a name 1..SRM_NAME_MAX bytes more. */
static bool valid_end(const struct srm_header *h)
{
	if (!(h->flags & SRM_FLAG_NAME))
		return h->payload_len == SRM_END_BODY_SIZE;
	return h->payload_len > SRM_END_BODY_SIZE && h->payload_len - SRM_END_BODY_SIZE <= SRM_NAME_MAX;
}

static bool valid_body(const struct srm_header *h)
{
	if (!valid_flags(h))
		return false;
	switch (h->type) {
	case SRM_NAK:
	case SRM_GONE:
		return valid_ranges(h->payload, h->payload_len);
	case SRM_HEARTBEAT:
		return h->payload_len == SRM_HEARTBEAT_BODY_SIZE &&
		       plausible_range(read_u32(h->payload), read_u32(h->payload + 4));
	case SRM_END:
		return valid_end(h);
	case SRM_PARITY:
		return valid_parity(h);
	case SRM_REPAIR:
		if (h->flags & SRM_FLAG_END)
			return valid_end(h);
		return h->payload_len <= UINT64_MAX - h->offset;
	default:		/* SRM_DATA */
		return h->payload_len <= UINT64_MAX - h->offset;
	}
}

static void read_header(const uint8_t *pkt, struct srm_header *h)
{
	h->type = pkt[AT_TYPE];
	h->flags = read_u16(pkt + AT_FLAGS);
	h->session = read_u32(pkt + AT_SESSION);
	h->sequence = read_u32(pkt + AT_SEQUENCE);
	h->object = read_u32(pkt + AT_OBJECT);
	h->offset = read_u64(pkt + AT_OFFSET);
	h->payload = pkt + SRM_HEADER_SIZE;
	h->payload_len = read_u16(pkt + AT_LENGTH);
}

int srm_parse(const uint8_t *pkt, size_t len, struct srm_header *out)
{
	struct srm_header h;

	if (len < SRM_HEADER_SIZE)
		return SRM_SHORT;
	if (read_u16(pkt) != SRM_MAGIC)
		return SRM_BAD_MAGIC;
	if (pkt[AT_VERSION] != version_of(pkt[AT_TYPE], read_u16(pkt + AT_FLAGS)))
		return SRM_BAD_VERSION;
	if (!known_type(pkt[AT_TYPE]))
		return SRM_BAD_TYPE;
	read_header(pkt, &h);
	if (h.payload_len > len - SRM_HEADER_SIZE)
		return SRM_SHORT;
	if (h.payload_len < len - SRM_HEADER_SIZE)
		return SRM_BAD_LENGTH;
	if (read_u32(pkt + AT_CRC) != datagram_crc(pkt, h.payload, h.payload_len))
		return SRM_BAD_CRC;
	if (!valid_body(&h))
		return SRM_BAD_BODY;
	*out = h;
	return SRM_OK;
}

const char *srm_parse_result_name(int result)
{
	switch (result) {
	case SRM_OK:
		return "ok";
	case SRM_SHORT:
		return "short";
	case SRM_BAD_MAGIC:
		return "magic";
	case SRM_BAD_VERSION:
		return "version";
	case SRM_BAD_TYPE:
		return "type";
	case SRM_BAD_LENGTH:
		return "length";
	case SRM_BAD_CRC:
		return "crc";
	case SRM_BAD_BODY:
		return "body";
	default:
		return "unknown";
	}
}

size_t srm_write_ranges(uint8_t *out, size_t cap, const struct srm_range *ranges, size_t n)
{
	if (n == 0 || n > SRM_MAX_RANGES || cap / SRM_RANGE_SIZE < n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		write_u32(out + i * SRM_RANGE_SIZE, ranges[i].first);
		write_u32(out + i * SRM_RANGE_SIZE + 4, ranges[i].last);
	}
	return n * SRM_RANGE_SIZE;
}

size_t srm_read_ranges(const struct srm_header *h, struct srm_range *ranges, size_t max)
{
	size_t n = h->payload_len / SRM_RANGE_SIZE;

	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++) {
		ranges[i].first = read_u32(h->payload + i * SRM_RANGE_SIZE);
		ranges[i].last = read_u32(h->payload + i * SRM_RANGE_SIZE + 4);
	}
	return n;
}

void srm_write_heartbeat(uint8_t out[SRM_HEARTBEAT_BODY_SIZE], const struct srm_heartbeat *hb)
{
	write_u32(out, hb->trailing);
	write_u32(out + 4, hb->leading);
}

void srm_read_heartbeat(const struct srm_header *h, struct srm_heartbeat *hb)
{
	hb->trailing = read_u32(h->payload);
	hb->leading = read_u32(h->payload + 4);
}

size_t srm_write_end(uint8_t *out, size_t cap, const struct srm_end *end)
{
	if (end->name_len > SRM_NAME_MAX || cap < SRM_END_BODY_SIZE || cap - SRM_END_BODY_SIZE < end->name_len)
		return 0;
	write_u64(out, end->size);
	write_u32(out + 8, end->crc);
	if (end->name_len > 0)
		memcpy(out + SRM_END_BODY_SIZE, end->name, end->name_len);
	return SRM_END_BODY_SIZE + end->name_len;
}

void srm_read_end(const struct srm_header *h, struct srm_end *end)
{
	end->size = read_u64(h->payload);
	end->crc = read_u32(h->payload + 8);
	end->name = NULL;
	end->name_len = 0;
	if (h->flags & SRM_FLAG_NAME) {
		end->name = h->payload + SRM_END_BODY_SIZE;
		end->name_len = h->payload_len - SRM_END_BODY_SIZE;
	}
}

size_t srm_write_parity(uint8_t *out, size_t cap, const struct srm_parity *p)
{
	if (!valid_parity_fields(p->k, p->index, p->symbol_len) || cap < SRM_PARITY_BODY_SIZE ||
	    cap - SRM_PARITY_BODY_SIZE < p->symbol_len)
		return 0;
	out[0] = (uint8_t)p->k;
	out[1] = (uint8_t)p->index;
	write_u16(out + 2, (uint16_t)p->symbol_len);
	return SRM_PARITY_BODY_SIZE + p->symbol_len;
}

void srm_read_parity(const struct srm_header *h, struct srm_parity *p)
{
	p->k = h->payload[0];
	p->index = h->payload[1];
	p->symbol_len = read_u16(h->payload + 2);
	p->symbol = h->payload + SRM_PARITY_BODY_SIZE;
}

const char *srm_name_refusal(const uint8_t *name, size_t len)
{
	if (len == 0)
		return "empty";
	if (len > SRM_NAME_STORE_MAX)
		return "too long";
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '/')
			return "a slash";
		if (name[i] == 0)
			return "a NUL byte";
		if (name[i] < 0x20 || name[i] == 0x7f)
			return "a control byte";
	}
	if (name[0] == '.')	/* ".", "..", hidden, and our own ".object-*.part" */
		return len <= 2 && (len == 1 || name[1] == '.') ? "a dot name" : "a leading dot";
	return NULL;
}
