/* Reliable multicast (SRM) on the wire, version 1: one header per
 * datagram, typed bodies, CRC32C over header and payload. Writing any
 * message and reading anyone's, without trusting a byte. The layout is
 * documented in README.md ("srm wire format") and chassisd.conf(5). */
#ifndef CHASSISD_SRM_WIRE_H
#define CHASSISD_SRM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRM_HEADER_SIZE 32
#define SRM_VERSION 1
#define SRM_MAGIC 0x4353u		/* "CS" */
#define SRM_MAX_PAYLOAD 65000u		/* what one UDP datagram carries after the header, rounded down */
#define SRM_MAX_RANGES 64		/* ranges in one NAK or GONE */
#define SRM_RANGE_SIZE 8
#define SRM_HEARTBEAT_BODY_SIZE 8
#define SRM_END_BODY_SIZE 12

enum srm_type {
	SRM_DATA = 1,			/* sequenced: object bytes at offset */
	SRM_NAK = 2,			/* receiver -> group: ranges it misses; object = the receiver's id */
	SRM_REPAIR = 3,			/* a DATA (or, with SRM_FLAG_END, an END) sent again, same sequence */
	SRM_HEARTBEAT = 4,		/* the sender's window edges, when idle and after the end */
	SRM_END = 5,			/* sequenced: an object is complete: size and CRC32C of it */
	SRM_GONE = 6,			/* sender -> group: ranges asked for that left the window */
};

#define SRM_FLAG_LAST 0x0001u		/* no object follows: an END, its REPAIR, the heartbeats after */
#define SRM_FLAG_END 0x0002u		/* a REPAIR whose original was an END */
#define SRM_FLAGS_KNOWN (SRM_FLAG_LAST | SRM_FLAG_END)

struct srm_header {
	uint8_t type;			/* enum srm_type */
	uint16_t flags;
	uint32_t session;		/* the sender's identity on the group */
	uint32_t sequence;		/* DATA, END, REPAIR: the datagram's; HEARTBEAT, GONE: the sender's next;
				 * NAK: the receiver's next in order */
	uint32_t object;		/* DATA, END, REPAIR: the object; NAK: the receiver's id */
	uint64_t offset;		/* DATA, REPAIR of DATA: where the payload lies in the object */
	const uint8_t *payload;		/* into the datagram when parsed */
	size_t payload_len;
};

/* CRC32C (Castagnoli, reflected 0x82F63B78): continue `crc` (start at 0)
 * over p[0..len). */
uint32_t srm_crc32c(uint32_t crc, const uint8_t *p, size_t len);

/* Sequence order across the 32-bit wrap: a is before b when b - a is
 * 1..2^31-1 (serial number arithmetic, RFC 1982). */
static inline bool srm_seq_before(uint32_t a, uint32_t b)
{
	uint32_t ahead = b - a;

	return ahead != 0 && ahead < 0x80000000u;
}

/* The header and h->payload (h->payload_len bytes; it may already lie at
 * out + SRM_HEADER_SIZE) into out, CRC last.
 * Returns the datagram's length, or 0 when cap is too small, the payload
 * is over SRM_MAX_PAYLOAD or the type is unknown. */
size_t srm_write(uint8_t *out, size_t cap, const struct srm_header *h);

enum srm_parse_result {
	SRM_OK = 0,
	SRM_SHORT = -1,			/* under the header, or the payload length past the end */
	SRM_BAD_MAGIC = -2,
	SRM_BAD_VERSION = -3,
	SRM_BAD_TYPE = -4,
	SRM_BAD_LENGTH = -5,		/* bytes after the payload */
	SRM_BAD_CRC = -6,
	SRM_BAD_BODY = -7,		/* a body its type does not allow (see srm_parse) */
};

/* Any bytes: SRM_OK with h filled (payload pointing into pkt), or why
 * not; h is untouched unless SRM_OK. Checked in this order: length,
 * magic, version, type, exact length, CRC, then the body: NAK and GONE
 * 1..SRM_MAX_RANGES ranges each with first not after last and spanning
 * under 2^31; HEARTBEAT 8 bytes with the trailing edge not after the
 * leading one; END (and REPAIR with SRM_FLAG_END) 12 bytes; DATA and
 * REPAIR offset + length within 2^64; unknown flags refused. */
int srm_parse(const uint8_t *pkt, size_t len, struct srm_header *h);

/* A short name of a parse result, for counters and logs. */
const char *srm_parse_result_name(int result);

/* Inclusive sequence ranges of NAK and GONE bodies. */
struct srm_range {
	uint32_t first, last;
};

/* n ranges into out (n * SRM_RANGE_SIZE bytes); returns that length, or 0
 * when n is 0, over SRM_MAX_RANGES or over cap. */
size_t srm_write_ranges(uint8_t *out, size_t cap, const struct srm_range *ranges, size_t n);
/* The ranges of a NAK or GONE body srm_parse accepted (at most max); returns how many. */
size_t srm_read_ranges(const struct srm_header *h, struct srm_range *ranges, size_t max);

/* HEARTBEAT body: the oldest sequence still kept for repair and the next
 * sequence to be sent (equal: nothing kept). */
struct srm_heartbeat {
	uint32_t trailing, leading;
};
/* Readers take a header srm_parse accepted with that body. */
void srm_write_heartbeat(uint8_t out[SRM_HEARTBEAT_BODY_SIZE], const struct srm_heartbeat *hb);
void srm_read_heartbeat(const struct srm_header *h, struct srm_heartbeat *hb);

/* END body: the object's size in bytes and the CRC32C of all of it. */
struct srm_end {
	uint64_t size;
	uint32_t crc;
};
void srm_write_end(uint8_t out[SRM_END_BODY_SIZE], const struct srm_end *end);
void srm_read_end(const struct srm_header *h, struct srm_end *end);

#endif
