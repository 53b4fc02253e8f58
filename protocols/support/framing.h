/* Kamaelia's framing, byte-exact (kamaelia.md 7.2, 7.3, 8.1-8.3):
 *
 *   SimpleFrame    "<tag> <length>\n<data>"           frame_encode / frame_decode
 *   DataChunker    sync + escape(message)              chunk_encode, chunk_escape
 *   DataDeChunker  a byte stream back to messages      struct dechunker
 *   MaxSizePacketiser  pieces of at most N bytes       packetise_message / packetise_next
 *
 * The wire bytes are Kamaelia's. Where Kamaelia crashes (a non-integer
 * header) or grows without bound (the dechunker's buffer), these refuse or
 * discard instead, and say so through return codes and counters. */
#ifndef CHASSISD_FRAMING_H
#define CHASSISD_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* ---- SimpleFrame ---------------------------------------------------- */

/* Appends "%lld %zu\n" and the data. 0, or -1 when out of memory. */
int frame_encode(struct evbuffer *out, long long tag, const void *data, size_t len);

enum frame_result {
	FRAME_OK = 0,
	FRAME_NO_LF = -1,		/* no '\n' ends the header */
	FRAME_NOT_TWO_FIELDS = -2,	/* the header is not two whitespace-separated words */
	FRAME_NOT_INTEGER = -3,		/* a word is not [+-]digits */
	FRAME_OVERFLOW = -4,		/* the tag is outside long long, or the length outside size_t */
	FRAME_NEGATIVE_LENGTH = -5,
	FRAME_SHORT = -6,		/* Kamaelia's ShortFrame: the length says more than the body has */
};

/* Kamaelia's fromString: the header is the text before the first LF, split
 * on ASCII whitespace into exactly two decimal integers (a sign and leading
 * zeros allowed, as Python's int()). Bytes after the declared length are
 * ignored. On FRAME_OK, *data points into buf. Any input is safe. */
int frame_decode(const void *buf, size_t len, long long *tag, const void **data, size_t *data_len);
const char *frame_result_str(int result);

/* ---- DataChunker ---------------------------------------------------- */

/* 24 x 'X', Kamaelia's default. */
#define CHUNK_SYNC_DEFAULT "XXXXXXXXXXXXXXXXXXXXXXXX"
#define CHUNK_SYNC_MAX 64

/* Every sync argument below is a C string, NULL for the default. A sync is
 * usable when it is 1..CHUNK_SYNC_MAX bytes with none below 0x10, no '%'
 * and no lowercase hex digit: Kamaelia's escape is ambiguous for those
 * (kamaelia.md 8.2), and for all others it is exactly what is coded here. */
bool chunk_sync_valid(const char *sync);

/* escape(): '%' -> "%25", then each byte of the sync -> '%' and its
 * lowercase hex (X -> "%58"). -1 for a bad sync or no memory. */
int chunk_escape(struct evbuffer *out, const void *msg, size_t len, const char *sync);
/* unescape(): the reverse. A '%' that starts no known escape is copied as
 * it is, as Kamaelia does, and counted in *bad_escapes (may be NULL). */
int chunk_unescape(struct evbuffer *out, const void *data, size_t len, const char *sync, size_t *bad_escapes);
/* DataChunker on one message: sync + escape(msg). */
int chunk_encode(struct evbuffer *out, const void *msg, size_t len, const char *sync);

/* ---- DataDeChunker -------------------------------------------------- */

#define DECHUNKER_DEFAULT_MAX_BUFFERED ((size_t)1 << 20)

struct dechunker_options {
	const char *sync;	/* NULL: CHUNK_SYNC_DEFAULT */
	/* More bytes than this still buffered after a feed are discarded
	 * (counted in overflows). The check comes after the feed's chunk is
	 * taken, so an escaped chunk can be this long plus the feed that
	 * completes it, no longer. 0: DECHUNKER_DEFAULT_MAX_BUFFERED. */
	size_t max_buffered;
	/* false: Kamaelia exactly, at most one message per feed, so a feed
	 * holding several chunks leaves a backlog. true: every complete
	 * chunk is emitted at once (what a TCP reader wants). */
	bool drain;
};

struct dechunker_stats {
	uint64_t messages;		/* emitted */
	uint64_t incomplete;		/* chunks dropped for not starting with the sync */
	uint64_t overflows;		/* times the buffer passed max_buffered and was discarded */
	uint64_t bytes_discarded;	/* by overflows */
	uint64_t bad_escapes;		/* passed through unchanged, see chunk_unescape */
};

/* msg is valid only during the call. The callback must not feed, flush or
 * free the dechunker that calls it. */
typedef void dechunker_emit_fn(void *arg, const void *msg, size_t len);

struct dechunker;

/* NULL with errno EINVAL (bad sync) or ENOMEM. opts may be NULL. */
struct dechunker *dechunker_new(const struct dechunker_options *opts, dechunker_emit_fn *emit, void *arg);
void dechunker_free(struct dechunker *dechunker);
/* One received datagram or read; boundaries carry no meaning. 0, or -1
 * when out of memory (the buffer is then discarded as on overflow). */
int dechunker_feed(struct dechunker *dechunker, const void *data, size_t len);
/* The "flush" inbox: everything buffered after a leading sync goes out as
 * one message (Kamaelia: several buffered chunks come out joined, syncs
 * and all), anything else is dropped as incomplete; the buffer empties. */
void dechunker_flush(struct dechunker *dechunker);
size_t dechunker_buffered(const struct dechunker *dechunker);
const struct dechunker_stats *dechunker_stats(const struct dechunker *dechunker);

/* ---- MaxSizePacketiser ---------------------------------------------- */

typedef void packet_emit_fn(void *arg, const void *packet, size_t len);

/* Kamaelia on one message: pieces of packet_size, then the rest. Exactly
 * k * packet_size bytes give k pieces; an empty message gives one empty
 * packet. Returns the number of packets, 0 only for packet_size 0. */
size_t packetise_message(const void *msg, size_t len, size_t packet_size, packet_emit_fn *emit, void *arg);

/* The same cut for a stream sender: moves the next packet out of in into
 * out (room for packet_size bytes) and returns its length. A short packet
 * leaves only when flush is set, so a stream is cut into full packets as it
 * grows. 0 means nothing to send (an empty stream has no empty packet) or
 * packet_size 0. */
size_t packetise_next(struct evbuffer *in, size_t packet_size, bool flush, void *out);

#endif
