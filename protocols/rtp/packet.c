/* RTP and RTCP on the wire (RFC 3550 sections 5 and 6). Every multi-byte
 * field is network order and read or written a byte at a time, so no
 * packet is ever cast to a struct and no alignment is assumed. */
#include "protocols/rtp/packet.h"

#include <limits.h>
#include <string.h>

#include "protocols/support/bytes.h"

/* ---- bytes ------------------------------------------------------------ */

static uint32_t read_u24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* The cumulative number of packets lost is a 24-bit two's complement
 * field: duplicates can make it negative (RFC 3550 6.4.1). Flipping the
 * sign bit and subtracting it back sign-extends without shifting a
 * negative number. */
static int32_t sign_extend_24(uint32_t v)
{
	return (int32_t)(v ^ 0x800000u) - 0x800000;
}

/* ---- RTP -------------------------------------------------------------- */

#define RTP_PAYLOAD_TYPE_MASK 0x7f
#define RTP_EXTENSION_HEADER_SIZE 4

void rtp_write_header(uint8_t *out, bool marker, uint8_t payload_type, uint16_t sequence, uint32_t timestamp,
		      uint32_t ssrc)
{
	out[0] = RTP_VERSION << 6;
	out[1] = (uint8_t)((marker ? 0x80 : 0) | (payload_type & RTP_PAYLOAD_TYPE_MASK));
	write_u16(out + 2, sequence);
	write_u32(out + 4, timestamp);
	write_u32(out + 8, ssrc);
}

static void parse_fixed_header(const uint8_t *pkt, struct rtp_header *h)
{
	h->padding = pkt[0] & 0x20;
	h->extension = pkt[0] & 0x10;
	h->csrc_count = pkt[0] & 0x0f;
	h->marker = pkt[1] & 0x80;
	h->payload_type = pkt[1] & RTP_PAYLOAD_TYPE_MASK;
	h->sequence = read_u16(pkt + 2);
	h->timestamp = read_u32(pkt + 4);
	h->ssrc = read_u32(pkt + 8);
}

/* The CSRC list and the extension, each only if it fits: *header_len
 * grows past them. Lengths are compared against what remains, never
 * added to a pointer first, so nothing can wrap. */
static int parse_header_tail(const uint8_t *pkt, size_t len, struct rtp_header *h, size_t *header_len)
{
	size_t at = RTP_HEADER_SIZE;

	if ((size_t)h->csrc_count * 4 > len - at)
		return RTP_SHORT;
	for (unsigned i = 0; i < h->csrc_count; i++, at += 4)
		h->csrc[i] = read_u32(pkt + at);
	if (h->extension) {
		if (len - at < RTP_EXTENSION_HEADER_SIZE)
			return RTP_SHORT;
		h->extension_profile = read_u16(pkt + at);
		h->extension_len = (size_t)read_u16(pkt + at + 2) * 4;
		at += RTP_EXTENSION_HEADER_SIZE;
		if (h->extension_len > len - at)
			return RTP_SHORT;
		h->extension_data = pkt + at;
		at += h->extension_len;
	}
	*header_len = at;
	return RTP_OK;
}

/* The last octet counts the padding, itself included, so it is at least
 * 1 and at most everything after the header (RFC 3550 5.1). With nothing
 * after the header, no count can pass. */
static int padding_length(const uint8_t *pkt, size_t len, size_t header_len, size_t *padding)
{
	if (pkt[len - 1] == 0 || pkt[len - 1] > len - header_len)
		return RTP_BAD_PADDING;
	*padding = pkt[len - 1];
	return RTP_OK;
}

int rtp_parse(const uint8_t *pkt, size_t len, struct rtp_header *h)
{
	struct rtp_header parsed = { 0 };
	size_t header_len = 0, padding = 0;
	int rc;

	if (len < RTP_HEADER_SIZE)
		return RTP_SHORT;
	if (pkt[0] >> 6 != RTP_VERSION)
		return RTP_BAD_VERSION;
	parse_fixed_header(pkt, &parsed);
	rc = parse_header_tail(pkt, len, &parsed, &header_len);
	if (rc == RTP_OK && parsed.padding)
		rc = padding_length(pkt, len, header_len, &padding);
	if (rc != RTP_OK)
		return rc;
	parsed.payload = pkt + header_len;
	parsed.payload_len = len - header_len - padding;
	*h = parsed;
	return RTP_OK;
}

/* ---- RTCP: time ----------------------------------------------------- */

#define NTP_UNIX_EPOCH_OFFSET 2208988800ull	/* seconds from 1900 to 1970 */
#define NS_PER_SECOND 1000000000ull

/* The seconds wrap in 2036 (NTP era 1), as the 32-bit field on the wire
 * does; the shift drops what does not fit. The fraction is truncated:
 * ns < 10^9 < 2^30, so ns << 32 fits in 64 bits. */
uint64_t rtcp_ntp_from_unix_ns(uint64_t unix_ns)
{
	uint64_t seconds = unix_ns / NS_PER_SECOND + NTP_UNIX_EPOCH_OFFSET;
	uint64_t fraction = ((unix_ns % NS_PER_SECOND) << 32) / NS_PER_SECOND;

	return seconds << 32 | fraction;
}

/* ---- RTCP: writing -------------------------------------------------- */

#define RTCP_HEADER_SIZE 4
#define RTCP_SR 200
#define RTCP_RR 201
#define RTCP_SDES 202
#define RTCP_BYE 203
#define RTCP_SDES_END 0
#define RTCP_SDES_CNAME 1
#define RTCP_SENDER_INFO_SIZE 20
#define RTCP_REPORT_BLOCK_SIZE 24
#define RTCP_SR_SIZE (RTCP_HEADER_SIZE + 4 + RTCP_SENDER_INFO_SIZE)
#define RTCP_BYE_SIZE (RTCP_HEADER_SIZE + 4)
#define RTCP_MAX_ITEM_TEXT 255

/* Every RTCP packet is whole 32-bit words; the length field counts them
 * minus one, so that 0 is a valid (header-only) packet. */
static void write_rtcp_header(uint8_t *out, unsigned count, uint8_t packet_type, size_t size)
{
	out[0] = (uint8_t)(RTP_VERSION << 6 | count);
	out[1] = packet_type;
	write_u16(out + 2, (uint16_t)(size / 4 - 1));
}

/* The chunk's items end with at least one null octet, then nulls up to a
 * word boundary (RFC 3550 6.5): SSRC, type, length, text, 1-4 nulls. */
static size_t sdes_size(size_t cname_len)
{
	size_t items = 2 + cname_len + 1;

	return RTCP_HEADER_SIZE + 4 + (items + 3) / 4 * 4;
}

static size_t write_sr(uint8_t *out, const struct rtcp_sender_info *info)
{
	write_rtcp_header(out, 0, RTCP_SR, RTCP_SR_SIZE);
	write_u32(out + 4, info->ssrc);
	write_u32(out + 8, (uint32_t)(info->ntp >> 32));
	write_u32(out + 12, (uint32_t)info->ntp);
	write_u32(out + 16, info->rtp_timestamp);
	write_u32(out + 20, info->packets);
	write_u32(out + 24, info->octets);
	return RTCP_SR_SIZE;
}

static size_t write_sdes_cname(uint8_t *out, uint32_t ssrc, const char *cname, size_t cname_len)
{
	size_t size = sdes_size(cname_len);

	memset(out, 0, size);	/* the null item and the padding */
	write_rtcp_header(out, 1, RTCP_SDES, size);
	write_u32(out + 4, ssrc);
	out[8] = RTCP_SDES_CNAME;
	out[9] = (uint8_t)cname_len;
	memcpy(out + 10, cname, cname_len);
	return size;
}

static size_t write_bye(uint8_t *out, uint32_t ssrc)
{
	write_rtcp_header(out, 1, RTCP_BYE, RTCP_BYE_SIZE);
	write_u32(out + 4, ssrc);
	return RTCP_BYE_SIZE;
}

size_t rtcp_write_sr(uint8_t *out, size_t cap, const struct rtcp_sender_info *info, const char *cname, bool bye)
{
	size_t cname_len = cname == NULL ? 0 : strnlen(cname, RTCP_MAX_ITEM_TEXT + 1);
	size_t total, at = 0;

	if (cname_len == 0 || cname_len > RTCP_MAX_ITEM_TEXT)
		return 0;
	total = RTCP_SR_SIZE + sdes_size(cname_len) + (bye ? RTCP_BYE_SIZE : 0);
	if (total > cap)
		return 0;
	at += write_sr(out, info);
	at += write_sdes_cname(out + at, info->ssrc, cname, cname_len);
	if (bye)
		at += write_bye(out + at, info->ssrc);
	return at;
}

#define RTCP_MAX_REPORTS 31

static void write_report_block(uint8_t *b, const struct rtcp_report *r)
{
	uint32_t lost = (uint32_t)r->cumulative_lost & 0xffffffu;

	write_u32(b, r->source);
	b[4] = r->fraction_lost;
	b[5] = (uint8_t)(lost >> 16);
	b[6] = (uint8_t)(lost >> 8);
	b[7] = (uint8_t)lost;
	write_u32(b + 8, r->highest_sequence);
	write_u32(b + 12, r->jitter);
	write_u32(b + 16, r->last_sr);
	write_u32(b + 20, r->delay_since_last_sr);
}

size_t rtcp_write_rr(uint8_t *out, size_t cap, uint32_t reporter, const struct rtcp_report *blocks, size_t n,
		     const char *cname)
{
	size_t cname_len = cname == NULL ? 0 : strnlen(cname, RTCP_MAX_ITEM_TEXT + 1);
	size_t rr_size = RTCP_HEADER_SIZE + 4 + n * RTCP_REPORT_BLOCK_SIZE;

	if (cname_len == 0 || cname_len > RTCP_MAX_ITEM_TEXT || n > RTCP_MAX_REPORTS ||
	    rr_size + sdes_size(cname_len) > cap)
		return 0;
	write_rtcp_header(out, (unsigned)n, RTCP_RR, rr_size);
	write_u32(out + 4, reporter);
	for (size_t i = 0; i < n; i++)
		write_report_block(out + 8 + i * RTCP_REPORT_BLOCK_SIZE, &blocks[i]);
	return rr_size + write_sdes_cname(out + rr_size, reporter, cname, cname_len);
}

/* ---- RTCP: reading -------------------------------------------------- */

#define RTCP_MALFORMED (-1)

/* One packet of a compound, cut to its own bytes by its length field. */
struct rtcp_packet {
	unsigned count;			/* RC or SC: the low five bits */
	uint8_t type;
	const uint8_t *body;		/* after the 4-byte header, padding removed */
	size_t body_len;
};

/* The packet at the front of pkt (len bytes remain): its header, and how
 * many bytes it takes, or 0 when it does not fit or is not version 2.
 * With P set, the last octet of the packet counts its padding (1 to all
 * of the body), which report blocks must not reach into. */
static size_t next_rtcp_packet(const uint8_t *pkt, size_t len, struct rtcp_packet *p)
{
	size_t size, padding = 0;

	if (len < RTCP_HEADER_SIZE || pkt[0] >> 6 != RTP_VERSION)
		return 0;
	size = ((size_t)read_u16(pkt + 2) + 1) * 4;
	if (size > len)
		return 0;
	if (pkt[0] & 0x20) {
		padding = pkt[size - 1];
		if (padding == 0 || padding > size - RTCP_HEADER_SIZE)
			return 0;
	}
	p->count = pkt[0] & 0x1f;
	p->type = pkt[1];
	p->body = pkt + RTCP_HEADER_SIZE;
	p->body_len = size - RTCP_HEADER_SIZE - padding;
	return size;
}

static void read_report_block(const uint8_t *b, uint32_t reporter, struct rtcp_report *r)
{
	r->reporter = reporter;
	r->source = read_u32(b);
	r->fraction_lost = b[4];
	r->cumulative_lost = sign_extend_24(read_u24(b + 5));
	r->highest_sequence = read_u32(b + 8);
	r->jitter = read_u32(b + 12);
	r->last_sr = read_u32(b + 16);
	r->delay_since_last_sr = read_u32(b + 20);
}

/* An SR or RR: the sender's SSRC, the sender info of an SR, then `count`
 * report blocks, all inside the packet (profile extensions may follow
 * them and are skipped). Every block is checked to fit before the first
 * is handed over, so a faulty packet hands over none. */
static bool walk_report_blocks(const struct rtcp_packet *p, rtcp_report_fn *report, void *arg)
{
	size_t at = 4 + (p->type == RTCP_SR ? RTCP_SENDER_INFO_SIZE : 0);
	uint32_t reporter;

	if (p->body_len < at || (size_t)p->count * RTCP_REPORT_BLOCK_SIZE > p->body_len - at)
		return false;
	reporter = read_u32(p->body);
	for (unsigned i = 0; i < p->count; i++, at += RTCP_REPORT_BLOCK_SIZE) {
		struct rtcp_report r;

		read_report_block(p->body + at, reporter, &r);
		if (report != NULL)
			report(arg, &r);
	}
	return true;
}

static bool is_report(uint8_t type)
{
	return type == RTCP_SR || type == RTCP_RR;
}

int rtcp_parse(const uint8_t *pkt, size_t len, rtcp_report_fn *report, void *arg)
{
	int walked = 0;

	if (len == 0)
		return RTCP_MALFORMED;
	while (len > 0) {
		struct rtcp_packet p;
		size_t size = next_rtcp_packet(pkt, len, &p);

		if (size == 0 || (walked == 0 && !is_report(p.type)) || walked == INT_MAX)
			return RTCP_MALFORMED;
		if (is_report(p.type) && !walk_report_blocks(&p, report, arg))
			return RTCP_MALFORMED;
		pkt += size;
		len -= size;
		walked++;
	}
	return walked;
}

static void read_sender_info(const uint8_t *body, struct rtcp_sender_info *info)
{
	info->ssrc = read_u32(body);
	info->ntp = (uint64_t)read_u32(body + 4) << 32 | read_u32(body + 8);
	info->rtp_timestamp = read_u32(body + 12);
	info->packets = read_u32(body + 16);
	info->octets = read_u32(body + 20);
}

bool rtcp_find_sr(const uint8_t *pkt, size_t len, struct rtcp_sender_info *info)
{
	if (rtcp_parse(pkt, len, NULL, NULL) < 0)
		return false;
	while (len > 0) {
		struct rtcp_packet p = { 0 };
		size_t size = next_rtcp_packet(pkt, len, &p);

		/* rtcp_parse has checked every packet fits and an SR holds its
		 * sender info. */
		if (p.type == RTCP_SR) {
			read_sender_info(p.body, info);
			return true;
		}
		pkt += size;
		len -= size;
	}
	return false;
}
