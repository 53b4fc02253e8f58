/* The WAV header reader, the MPEG audio frame and ID3 readers, and the
 * audio reader on any bytes: wav_parse on the input, mpa_frame_header at
 * every offset (a frame's length within MPA_FRAME_MAX), then the reader
 * walks the input as
 * a source would give it (in pieces, with loop breaks where the input
 * says), for each payload. It must never read outside what it was given,
 * never hand over more than a packet holds, and account for every byte
 * it takes.
 *
 * Byte 0: the piece size (x 64 + 1); byte 1: a break every (x 256 + 1)
 * bytes, 0 for none; the rest is the source's bytes. */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "protocols/rtp/audio.h"
#include "protocols/rtp/mpa.h"
#include "protocols/rtp/wav.h"

#define OPTION_BYTES 2
#define READS_MAX 10000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void parse_header(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	struct wav_format f;
	char why[96];

	for (size_t i = 0; i < size; i++)
		copy[i] = data[i];
	if (wav_parse(copy, size, &f, why, sizeof(why)) == WAV_OK) {
		check(f.data_offset <= size && f.data_offset <= WAV_HEADER_MAX + 8);
		check(f.channels >= 1 && f.channels <= 8 && f.data_len % (f.channels * 2) == 0);
	}
	free(copy);
}

static void frame_headers(const uint8_t *data, size_t size)
{
	struct mpa_frame f;
	bool more;

	for (size_t at = 0; at + MPA_HEADER_SIZE <= size; at++)
		if (mpa_frame_header(data + at, &f))
			check(f.length >= MPA_HEADER_SIZE && f.length <= MPA_FRAME_MAX && f.samples > 0);
	mpa_id3_length(data, size < 10 ? size : 10, &more);
}

static void walk(const uint8_t *data, size_t size, enum audio_payload payload, size_t piece, size_t every)
{
	struct audio_config config = { .payload = payload, .wav = payload != AUDIO_MPA, .ptime_ms = 20 };
	struct audio_reader r;
	struct evbuffer *in = evbuffer_new();
	static uint8_t out[AUDIO_PAYLOAD_MAX];
	size_t fed = 0;
	uint64_t next_break = every ? every : UINT64_MAX;

	audio_reader_init(&r, &config);
	for (unsigned turn = 0; turn < READS_MAX && r.state != AUDIO_FAILED; turn++) {
		size_t len = 0, n = size - fed < piece ? size - fed : piece;
		uint32_t samples = 0;
		uint64_t before = r.consumed;

		evbuffer_add(in, data + fed, n);
		fed += n;
		while (next_break <= r.consumed) {
			audio_reader_restart(&r);
			next_break += every;
		}
		if (audio_reader_next(&r, in, fed == size, next_break - r.consumed, out, &len, &samples)) {
			check(len > 0 && len <= AUDIO_PAYLOAD_MAX && samples > 0);
			check(payload == AUDIO_MPA || samples <= audio_packet_samples(&r));
		}
		check(r.consumed >= before && r.consumed <= fed);
		check(r.consumed + evbuffer_get_length(in) == fed);
		if (fed == size && r.consumed == before && n == 0)
			break;
	}
	evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t piece, every;

	if (size < OPTION_BYTES)
		return 0;
	piece = (size_t)data[0] * 64 + 1;
	every = data[1] ? (size_t)data[1] * 256 + 1 : 0;
	data += OPTION_BYTES;
	size -= OPTION_BYTES;
	parse_header(data, size);
	frame_headers(data, size);
	walk(data, size, AUDIO_MPA, piece, every);
	walk(data, size, AUDIO_L16, piece, every);
	walk(data, size, AUDIO_PCMU, piece, every);
	return 0;
}
