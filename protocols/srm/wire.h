/* Reliable multicast (SRM) on the wire: one header per datagram, typed
 * bodies, CRC32C over header and payload. Writing any message and reading
 * anyone's, without trusting a byte. Version 1 is the base; version 2 is
 * version 1 plus an object's name in its END (SRM_FLAG_NAME); version 3
 * is version 2 plus the PARITY message (FEC), and a datagram carries the
 * lowest version that can say it, so a sender without names speaks
 * exactly version 1 and one without FEC never sends version 3 (an older
 * receiver drops a PARITY as an unknown version and counts it as bad). The layout is documented in
 * README.md ("srm wire format") and chassisd.conf(5). */
#ifndef CHASSISD_SRM_WIRE_H
#define CHASSISD_SRM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRM_HEADER_SIZE 32
#define SRM_VERSION 1
#define SRM_VERSION_NAMES 2		/* what a datagram with SRM_FLAG_NAME carries */
#define SRM_VERSION_PARITY 3		/* what a PARITY carries */
#define SRM_MAGIC 0x4353u		/* "CS" */
#define SRM_MAX_PAYLOAD 65000u		/* what one UDP datagram carries after the header, rounded down */
#define SRM_MAX_RANGES 64		/* ranges in one NAK or GONE */
#define SRM_RANGE_SIZE 8
#define SRM_HEARTBEAT_BODY_SIZE 8
#define SRM_END_BODY_SIZE 12		/* without a name */
#define SRM_NAME_MAX 1024		/* bytes of a name on the wire */
#define SRM_NAME_STORE_MAX 255		/* what a receiver takes as a file name (NAME_MAX) */
#define SRM_PARITY_BODY_SIZE 4		/* before the symbol */
/* The longest sequenced datagram a block of parity can cover. */
#define SRM_PARITY_SYMBOL_MAX (SRM_MAX_PAYLOAD - SRM_PARITY_BODY_SIZE)

enum srm_type {
	SRM_DATA = 1,			/* sequenced: object bytes at offset */
	SRM_NAK = 2,			/* receiver -> group: ranges it misses; object = the receiver's id */
	SRM_REPAIR = 3,			/* a DATA (or, with SRM_FLAG_END, an END) sent again, same sequence */
	SRM_HEARTBEAT = 4,		/* the sender's window edges, when idle and after the end */
	SRM_END = 5,			/* sequenced: an object is complete: size and CRC32C of it */
	SRM_GONE = 6,			/* sender -> group: ranges asked for that left the window */
	SRM_PARITY = 7,			/* version 3: a parity symbol of a block of sequenced datagrams */
};

#define SRM_FLAG_LAST 0x0001u		/* no object follows: an END, its REPAIR, the heartbeats after */
#define SRM_FLAG_END 0x0002u		/* a REPAIR whose original was an END */
#define SRM_FLAG_NAME 0x0004u		/* version 2: an END (or its REPAIR) whose body has the object's name after
					 * the 12 bytes */
#define SRM_FLAGS_KNOWN (SRM_FLAG_LAST | SRM_FLAG_END | SRM_FLAG_NAME)

struct srm_header {
	uint8_t type;			/* enum srm_type */
	uint16_t flags;
	uint32_t session;		/* the sender's identity on the group */
	uint32_t sequence;		/* DATA, END, REPAIR: the datagram's; HEARTBEAT, GONE: the sender's next;
				 * NAK: the receiver's next in order; PARITY: its block's first */
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
 * out + SRM_HEADER_SIZE) into out, CRC last; version 3 for a PARITY, 2
 * when h->flags has SRM_FLAG_NAME, else 1.
 * Returns the datagram's length, or 0 when cap is too small, the payload
 * is over SRM_MAX_PAYLOAD or the type is unknown. */
size_t srm_write(uint8_t *out, size_t cap, const struct srm_header *h);

enum srm_parse_result {
	SRM_OK = 0,
	SRM_SHORT = -1,			/* under the header, or the payload length past the end */
	SRM_BAD_MAGIC = -2,
	SRM_BAD_VERSION = -3,		/* not 1, 2 or 3, or not the one the type and flags need */
	SRM_BAD_TYPE = -4,
	SRM_BAD_LENGTH = -5,		/* bytes after the payload */
	SRM_BAD_CRC = -6,
	SRM_BAD_BODY = -7,		/* a body its type does not allow (see srm_parse) */
};

/* Any bytes: SRM_OK with h filled (payload pointing into pkt), or why
 * not; h is untouched unless SRM_OK. Checked in this order: length,
 * magic, version (3 exactly for a PARITY, 2 exactly when the flags have
 * SRM_FLAG_NAME, else 1),
 * type, exact length, CRC, then the body: NAK and GONE 1..SRM_MAX_RANGES
 * ranges each with first not after last and spanning under 2^31;
 * HEARTBEAT 8 bytes with the trailing edge not after the leading one; END
 * (and REPAIR with SRM_FLAG_END) 12 bytes, or with SRM_FLAG_NAME 12 plus
 * 1..SRM_NAME_MAX bytes of name (any bytes: srm_name_acceptable() is the
 * receiver's own check); DATA and REPAIR offset + length within 2^64;
 * PARITY (version 3 exactly) no flags, object and offset 0, k 1..254,
 * k + index under SRM_FEC_MAX_BLOCK (255), and a symbol of exactly the
 * length it says, at least a header long; unknown flags refused, and
 * SRM_FLAG_NAME on anything but an END or its REPAIR. */
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

/* END body: the object's size in bytes and the CRC32C of all of it; in
 * version 2 (SRM_FLAG_NAME) its name after them, name_len bytes, no NUL. */
struct srm_end {
	uint64_t size;
	uint32_t crc;
	const uint8_t *name;		/* NULL (name_len 0): none */
	size_t name_len;
};
/* The body into out; returns its length (SRM_END_BODY_SIZE + name_len),
 * or 0 when cap is too small or the name over SRM_NAME_MAX. A caller with
 * a name sets SRM_FLAG_NAME on the header. */
size_t srm_write_end(uint8_t *out, size_t cap, const struct srm_end *end);
/* name points into the payload (NULL without SRM_FLAG_NAME). */
void srm_read_end(const struct srm_header *h, struct srm_end *end);

/* PARITY body: parity symbol `index` (0, 1, ...) of the block of the k
 * sequenced datagrams from h->sequence on, each zero padded to symbol_len
 * bytes (fec.h). A block may be short: k is how many it has. */
struct srm_parity {
	unsigned k, index;
	const uint8_t *symbol;		/* into the payload */
	size_t symbol_len;
};
/* The 4 bytes before the symbol into out; the symbol goes after them
 * (out + SRM_PARITY_BODY_SIZE). Returns the body's whole length, or 0
 * when cap is too small, k or index out of range, or symbol_len under a
 * header or over SRM_PARITY_SYMBOL_MAX. */
size_t srm_write_parity(uint8_t *out, size_t cap, const struct srm_parity *p);
void srm_read_parity(const struct srm_header *h, struct srm_parity *p);

/* Why a receiver refuses a name as a file name in its directory, or NULL
 * when it takes it: empty, over SRM_NAME_STORE_MAX, "." or "..", a
 * leading "." (hidden, and the receiver's own temporary names start so),
 * a "/", a NUL or another control byte (under 0x20, or 0x7f). Any other
 * byte is taken (file names are bytes). */
const char *srm_name_refusal(const uint8_t *name, size_t len);

#endif
