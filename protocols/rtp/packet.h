/* RTP and RTCP on the wire (RFC 3550): writing a sender's packets and
 * reading anyone's, every header form, without trusting a byte. */
#ifndef CHASSISD_RTP_PACKET_H
#define CHASSISD_RTP_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RTP_HEADER_SIZE 12
#define RTP_VERSION 2

struct rtp_header {
	bool marker, padding, extension;
	uint8_t payload_type;		/* 0..127 */
	uint16_t sequence;
	uint32_t timestamp;
	uint32_t ssrc;
	uint8_t csrc_count;
	uint32_t csrc[15];
	uint16_t extension_profile;	/* when extension */
	const uint8_t *extension_data;	/* into the packet */
	size_t extension_len;		/* bytes */
	const uint8_t *payload;		/* into the packet, padding removed */
	size_t payload_len;
};

/* Writes the fixed 12-byte header (no CSRC, no extension, no padding)
 * into out[0..11]; payload_type is cut to its 7 bits. */
void rtp_write_header(uint8_t *out, bool marker, uint8_t payload_type, uint16_t sequence, uint32_t timestamp,
		      uint32_t ssrc);

enum rtp_parse_result {
	RTP_OK = 0,
	RTP_SHORT = -1,			/* under 12 bytes, or CSRCs/extension past the end */
	RTP_BAD_VERSION = -2,
	RTP_BAD_PADDING = -3,		/* padding count 0 or longer than what follows the header */
};
/* Any bytes: RTP_OK with h filled (pointers into pkt), or why not; h is
 * untouched unless RTP_OK. Without an extension its fields are 0/NULL.
 * The payload lies within pkt[0..len) and may be empty (then it points
 * just past the header). */
int rtp_parse(const uint8_t *pkt, size_t len, struct rtp_header *h);

/* RTCP (RFC 3550 section 6). NTP time: seconds since 1900 in the upper
 * 32 bits, the fraction in the lower (truncated, never rounded up). The
 * seconds wrap to 0 in February 2036 (NTP era 1), as on the wire. */
uint64_t rtcp_ntp_from_unix_ns(uint64_t unix_ns);

struct rtcp_sender_info {
	uint32_t ssrc;
	uint64_t ntp;			/* wall clock of the same instant as rtp_timestamp */
	uint32_t rtp_timestamp;
	uint32_t packets, octets;	/* sent since the start, payload octets */
};

/* A compound packet: SR (no report blocks) + SDES with the CNAME, and
 * with `bye` a BYE after them, all of info->ssrc. Returns its length (a
 * multiple of 4: 28 + the SDES + 8 for the BYE), or 0 when cap is too
 * small or the CNAME (a C string) is empty or over 255 bytes, the most
 * an SDES item holds. */
size_t rtcp_write_sr(uint8_t *out, size_t cap, const struct rtcp_sender_info *info, const char *cname, bool bye);

/* One report block of an RR or SR (what a receiver says of a sender). */
struct rtcp_report {
	uint32_t reporter;		/* SSRC of the receiver that sent it */
	uint32_t source;		/* SSRC it reports on */
	uint8_t fraction_lost;		/* /256 */
	int32_t cumulative_lost;	/* 24-bit signed */
	uint32_t highest_sequence;	/* extended */
	uint32_t jitter;		/* timestamp units */
	uint32_t last_sr;		/* middle 32 bits of the NTP of the last SR */
	uint32_t delay_since_last_sr;	/* 1/65536 s */
};

typedef void rtcp_report_fn(void *arg, const struct rtcp_report *report);
/* Walks a compound RTCP packet (any bytes) and hands over every report
 * block of its SRs and RRs (report may be NULL: just validate). Returns
 * the number of RTCP packets walked, or -1 when the compound is malformed:
 * empty, a length past the end (leftover bytes short of a header too),
 * version not 2, the first packet neither SR nor RR, an SR/RR too short
 * for its SSRC, sender info or report count, a padding count of 0 or past
 * the packet (padding is honoured in any packet, not only the last). Other
 * packet types (SDES, BYE, APP, ...) are skipped by their length. Blocks of the packets before the faulty one have been
 * handed over, none of the faulty one's. Never reads outside pkt[0..len). */
int rtcp_parse(const uint8_t *pkt, size_t len, rtcp_report_fn *report, void *arg);

/* A receiver's compound packet: RR from `reporter` with the n blocks (at
 * most 31) + SDES with its CNAME. Returns its length (a multiple of 4),
 * or 0 when cap is too small, n over 31 or the CNAME empty or over 255
 * bytes. A block's reporter field is not written (the RR's SSRC is). */
size_t rtcp_write_rr(uint8_t *out, size_t cap, uint32_t reporter, const struct rtcp_report *blocks, size_t n,
		     const char *cname);

/* The sender info of the first SR of a well-formed compound (what
 * rtcp_parse accepts): true with info filled, false when there is none or
 * the compound is malformed. */
bool rtcp_find_sr(const uint8_t *pkt, size_t len, struct rtcp_sender_info *info);

/* The middle 32 bits of an NTP time: an RR's LSR field. */
static inline uint32_t rtcp_ntp_middle(uint64_t ntp)
{
	return (uint32_t)(ntp >> 16);
}

#endif
