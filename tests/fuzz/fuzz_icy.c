/* The ICY demultiplexer on any stream, cut anywhere: the first byte is
 * the metaint (0 = no metadata), the second how the stream is cut, the
 * rest the stream. Fed whole and in pieces it must give the same audio
 * and blocks, and every block is parsed for its title and URL. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "sources/icy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	struct evbuffer *audio, *blocks;
};

static void parse_block(void *arg, const char *block, size_t len)
{
	static const char *const keys[] = {"StreamTitle", "StreamUrl"};
	struct seen *seen = arg;

	if (len == 0 || len > ICY_META_MAX || len % 16 != 0)
		abort();
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *value;
		size_t value_len;

		if (icy_parse_field(block, len, keys[i], &value, &value_len) &&
		    (value < block || value + value_len > block + len))
			abort();
	}
	evbuffer_add(seen->blocks, &len, sizeof(len));
	evbuffer_add(seen->blocks, block, len);
}

static void demux(size_t metaint, const uint8_t *stream, size_t len, size_t piece, struct seen *seen)
{
	static struct icy_demux d;

	icy_demux_init(&d, metaint);
	for (size_t at = 0; at < len; at += piece) {
		size_t n = len - at < piece ? len - at : piece;

		if (icy_demux_feed(&d, stream + at, n, seen->audio, parse_block, seen) != 0)
			abort();
	}
}

static bool same(struct evbuffer *a, struct evbuffer *b)
{
	size_t len = evbuffer_get_length(a);

	if (len != evbuffer_get_length(b))
		return false;
	return len == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen whole = {evbuffer_new(), evbuffer_new()}, cut = {evbuffer_new(), evbuffer_new()};
	size_t metaint, piece;

	if (size >= 2) {
		metaint = data[0] % 64;
		piece = data[1] % 32 + 1;
		demux(metaint, data + 2, size - 2, size, &whole);
		demux(metaint, data + 2, size - 2, piece, &cut);
		if (!same(whole.audio, cut.audio) || !same(whole.blocks, cut.blocks))
			abort();
		if (evbuffer_get_length(whole.audio) > size - 2)
			abort();
	}
	evbuffer_free(whole.audio);
	evbuffer_free(whole.blocks);
	evbuffer_free(cut.audio);
	evbuffer_free(cut.blocks);
	return 0;
}
