/* Kamaelia's framing: frame_decode and the dechunker on any bytes, and the
 * round trips that must hold for any message.
 *
 * Byte 0 picks the dechunker's options (drain, sync, a small bound), bytes
 * 1-3 the sizes the rest is cut into, cycled, so the fuzzer chooses where
 * the datagram boundaries fall. */
#include <event2/buffer.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/support/framing.h"

#define OPTION_BYTES 4
#define MAX_PIECE 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	size_t max_len;
	size_t messages;
	struct evbuffer *last;
};

static void check_message(void *arg, const void *msg, size_t len)
{
	struct seen *seen = arg;

	/* Unescaping only shrinks a chunk, and the chunk is bounded. */
	if (len > seen->max_len)
		abort();
	seen->messages++;
	if (seen->last != NULL) {
		evbuffer_drain(seen->last, evbuffer_get_length(seen->last));
		evbuffer_add(seen->last, msg, len);
	}
}

static void feed_in_pieces(struct dechunker *dechunker, const uint8_t *data, size_t size, const uint8_t *sizes)
{
	for (size_t turn = 0; size > 0; turn++) {
		size_t piece = 1 + sizes[turn % (OPTION_BYTES - 1)] % MAX_PIECE;

		if (piece > size)
			piece = size;
		dechunker_feed(dechunker, data, piece);
		data += piece;
		size -= piece;
	}
}

static void fuzz_dechunker(const uint8_t *data, size_t size)
{
	const uint8_t *options = data;
	struct dechunker_options opts = {
		.drain = options[0] & 1,
		.sync = options[0] & 2 ? "#|" : NULL,
		.max_buffered = options[0] & 4 ? 64 : 0,
	};
	size_t bound = opts.max_buffered ? opts.max_buffered : DECHUNKER_DEFAULT_MAX_BUFFERED;
	/* The bound is checked after a feed, so a chunk can be as long as
	 * the bound plus the piece that completed it. */
	struct seen seen = { .max_len = bound + MAX_PIECE };
	struct dechunker *dechunker = dechunker_new(&opts, check_message, &seen);

	if (dechunker == NULL)
		abort();
	feed_in_pieces(dechunker, data + OPTION_BYTES, size - OPTION_BYTES, options + 1);
	if (dechunker_buffered(dechunker) > bound)
		abort();
	dechunker_flush(dechunker);
	if (dechunker_buffered(dechunker) != 0 || dechunker_stats(dechunker)->messages != seen.messages)
		abort();
	dechunker_free(dechunker);
}

/* The input as one chunk, cut the same way, comes back whole. */
static void fuzz_chunk_round_trip(const uint8_t *data, size_t size)
{
	const uint8_t *msg = data + OPTION_BYTES;
	size_t msg_len = size - OPTION_BYTES;
	struct dechunker_options opts = { .drain = data[0] & 1, .sync = data[0] & 2 ? "#|" : NULL };
	struct evbuffer *wire = evbuffer_new();
	struct seen seen = { .max_len = DECHUNKER_DEFAULT_MAX_BUFFERED, .last = evbuffer_new() };
	struct dechunker *dechunker = dechunker_new(&opts, check_message, &seen);

	if (chunk_encode(wire, msg, msg_len, opts.sync) != 0)
		abort();
	feed_in_pieces(dechunker, evbuffer_pullup(wire, -1), evbuffer_get_length(wire), data + 1);
	dechunker_flush(dechunker);
	if (seen.messages != 1 || evbuffer_get_length(seen.last) != msg_len ||
	    (msg_len > 0 && memcmp(evbuffer_pullup(seen.last, -1), msg, msg_len) != 0))
		abort();
	if (dechunker_stats(dechunker)->bad_escapes != 0)
		abort();
	dechunker_free(dechunker);
	evbuffer_free(seen.last);
	evbuffer_free(wire);
}

static void fuzz_frame(const uint8_t *data, size_t size)
{
	struct evbuffer *framed = evbuffer_new();
	long long tag, got_tag;
	const void *body;
	size_t body_len;

	if (frame_decode(data, size, &tag, &body, &body_len) == FRAME_OK &&
	    (body_len > size || (const uint8_t *)body < data || (const uint8_t *)body + body_len > data + size))
		abort();
	memcpy(&tag, data, size < sizeof(tag) ? size : sizeof(tag));
	if (size < sizeof(tag))
		tag = (long long)size;
	if (frame_encode(framed, tag, data, size) != 0)
		abort();
	if (frame_decode(evbuffer_pullup(framed, -1), evbuffer_get_length(framed), &got_tag, &body, &body_len) != FRAME_OK ||
	    got_tag != tag || body_len != size || (size > 0 && memcmp(body, data, size) != 0))
		abort();
	evbuffer_free(framed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_frame(data, size);
	if (size < OPTION_BYTES)
		return 0;
	fuzz_dechunker(data, size);
	fuzz_chunk_round_trip(data, size);
	return 0;
}
