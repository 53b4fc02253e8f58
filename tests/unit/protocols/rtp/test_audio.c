/* Audio payloads: G.711 against the reference values (the whole 16-bit
 * range was compared with Python's audioop once; these are its values),
 * L16's byte order, the downmix, and the reader: 20 ms packets from a
 * WAV file, a header again after a loop, a trailer skipped, raw input,
 * the short last packet, and what makes it fail. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <string.h>

#include "protocols/rtp/audio.h"

Test(g711, reference_values)
{
	static const struct { int16_t in; uint8_t ulaw, alaw; } v[] = {
		{ 0, 0xff, 0xd5 }, { -1, 0x7e, 0x55 }, { 1000, 0xce, 0xfa }, { -1000, 0x4e, 0x7a },
		{ 32767, 0x80, 0xaa }, { -32768, 0x00, 0x2a },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		cr_assert_eq(audio_ulaw(v[i].in), v[i].ulaw, "ulaw(%d)", v[i].in);
		cr_assert_eq(audio_alaw(v[i].in), v[i].alaw, "alaw(%d)", v[i].in);
	}
}

Test(convert, l16_is_big_endian_and_g711_downmixes)
{
	const uint8_t in[] = { 0x34, 0x12, 0x78, 0x56, 0xe8, 0x03, 0xe8, 0x03 };	/* two stereo frames */
	uint8_t out[8];

	cr_assert_eq(audio_convert(AUDIO_L16, in, 2, 2, out), 8);
	cr_assert(memcmp(out, "\x12\x34\x56\x78\x03\xe8\x03\xe8", 8) == 0);
	/* (0x1234 + 0x5678) / 2 = 0x3456; (1000 + 1000) / 2 = 1000. */
	cr_assert_eq(audio_convert(AUDIO_PCMU, in, 2, 2, out), 2);
	cr_assert_eq(out[0], audio_ulaw(0x3456));
	cr_assert_eq(out[1], 0xce);
}

static void add_le32(struct evbuffer *b, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	evbuffer_add(b, p, 4);
}

/* A 16-bit PCM WAV of `frames` frames (sample i of each channel = i),
 * with `trailer` bytes of a chunk after the data. */
static void add_wav(struct evbuffer *b, unsigned rate, unsigned channels, unsigned frames, unsigned trailer)
{
	evbuffer_add(b, "RIFF", 4);
	add_le32(b, 36 + frames * channels * 2);
	evbuffer_add(b, "WAVEfmt ", 8);
	add_le32(b, 16);
	add_le32(b, 1 | channels << 16);
	add_le32(b, rate);
	add_le32(b, rate * channels * 2);
	add_le32(b, (channels * 2) | 16 << 16);
	evbuffer_add(b, "data", 4);
	add_le32(b, frames * channels * 2);
	for (unsigned i = 0; i < frames; i++)
		for (unsigned c = 0; c < channels; c++) {
			uint8_t s[2] = { (uint8_t)i, (uint8_t)(i >> 8) };
			evbuffer_add(b, s, 2);
		}
	for (unsigned i = 0; i < trailer; i++)
		evbuffer_add(b, "z", 1);
}

static struct audio_config wav_config(enum audio_payload payload)
{
	return (struct audio_config){ .payload = payload, .wav = true, .ptime_ms = 20 };
}

Test(reader, pcmu_20_ms_packets_of_160_bytes_and_a_short_last_one)
{
	struct evbuffer *in = evbuffer_new();
	struct audio_config config = wav_config(AUDIO_PCMU);
	struct audio_reader r;
	uint8_t out[AUDIO_PAYLOAD_MAX];
	size_t len;
	uint32_t samples;

	add_wav(in, 8000, 1, 400, 0);
	audio_reader_init(&r, &config);
	cr_assert(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples));
	cr_assert_eq(len, 160);
	cr_assert_eq(samples, 160);
	cr_assert_eq(audio_packet_samples(&r), 160);
	cr_assert(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples));
	cr_assert_not(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples), "80 left: wait");
	cr_assert(audio_reader_next(&r, in, true, UINT64_MAX, out, &len, &samples), "the end: a short packet");
	cr_assert_eq(samples, 80);
	cr_assert_eq(r.consumed, 44 + 800);
	evbuffer_free(in);
}

Test(reader, l16_keeps_rate_and_channels_and_a_loop_reads_the_header_again)
{
	struct evbuffer *in = evbuffer_new();
	struct audio_config config = wav_config(AUDIO_L16);
	struct audio_reader r;
	uint8_t out[AUDIO_PAYLOAD_MAX];
	size_t len;
	uint32_t samples;
	uint64_t loop;

	add_wav(in, 48000, 2, 1000, 6);
	loop = evbuffer_get_length(in);
	add_wav(in, 48000, 2, 1000, 6);
	audio_reader_init(&r, &config);
	cr_assert(audio_reader_next(&r, in, false, loop, out, &len, &samples));
	cr_assert_eq(r.rate, 48000);
	cr_assert_eq(r.channels, 2);
	cr_assert_eq(samples, 960);
	cr_assert_eq(len, 960 * 4);
	cr_assert_eq(out[0], 0);
	cr_assert_eq(out[5], 1, "frame 1, big-endian");
	/* 40 frames to the end of the data: cut by it, not the loop. */
	cr_assert(audio_reader_next(&r, in, false, loop - r.consumed, out, &len, &samples));
	cr_assert_eq(samples, 40);
	/* The trailer goes up to the loop, then nothing until restarted. */
	cr_assert_not(audio_reader_next(&r, in, false, loop - r.consumed, out, &len, &samples));
	cr_assert_eq(r.consumed, loop);
	audio_reader_restart(&r);
	cr_assert(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples));
	cr_assert_eq(samples, 960);
	cr_assert_eq(out[0], 0, "the second pass starts at sample 0");
	evbuffer_free(in);
}

Test(reader, raw_input_needs_no_header)
{
	struct evbuffer *in = evbuffer_new();
	struct audio_config config = { .payload = AUDIO_PCMA, .wav = false, .sample_rate = 8000, .channels = 1,
				       .ptime_ms = 10 };
	struct audio_reader r;
	uint8_t out[AUDIO_PAYLOAD_MAX], zero[160] = { 0 };
	size_t len;
	uint32_t samples;

	evbuffer_add(in, zero, sizeof(zero));
	audio_reader_init(&r, &config);
	cr_assert(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples));
	cr_assert_eq(len, 80);
	cr_assert_eq(out[0], 0xd5);
	evbuffer_free(in);
}

Test(reader, g711_refuses_other_rates_and_a_format_may_not_change_at_a_loop)
{
	struct evbuffer *in = evbuffer_new();
	struct audio_config config = wav_config(AUDIO_PCMU);
	struct audio_reader r;
	uint8_t out[AUDIO_PAYLOAD_MAX];
	size_t len;
	uint32_t samples;

	add_wav(in, 16000, 1, 400, 0);
	audio_reader_init(&r, &config);
	cr_assert_not(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples));
	cr_assert_eq(r.state, AUDIO_FAILED);
	cr_assert(strstr(r.error, "8000") != NULL, "%s", r.error);
	evbuffer_drain(in, evbuffer_get_length(in));

	config = wav_config(AUDIO_L16);
	audio_reader_init(&r, &config);
	add_wav(in, 44100, 1, 10, 0);
	add_wav(in, 22050, 1, 10, 0);
	cr_assert(audio_reader_next(&r, in, false, 64, out, &len, &samples));
	cr_assert_eq(samples, 10);
	audio_reader_restart(&r);
	cr_assert_not(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples));
	cr_assert_eq(r.state, AUDIO_FAILED);
	evbuffer_free(in);
}

Test(reader, not_a_wav_fails_and_a_header_cut_by_a_loop_fails)
{
	struct evbuffer *in = evbuffer_new();
	struct audio_config config = wav_config(AUDIO_L16);
	struct audio_reader r;
	uint8_t out[AUDIO_PAYLOAD_MAX];
	size_t len;
	uint32_t samples;

	evbuffer_add(in, "ID3\x03 not a wav file at all, no", 31);
	audio_reader_init(&r, &config);
	cr_assert_not(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples));
	cr_assert_eq(r.state, AUDIO_FAILED);
	evbuffer_drain(in, evbuffer_get_length(in));

	add_wav(in, 8000, 1, 10, 0);
	audio_reader_init(&r, &config);
	cr_assert_not(audio_reader_next(&r, in, false, 20, out, &len, &samples));
	cr_assert_eq(r.state, AUDIO_FAILED);
	evbuffer_free(in);
}

/* MPEG-1 layer II, 192 kbit/s, 48 kHz: 576 bytes a frame. */
static void add_mp2_frame(struct evbuffer *b, uint8_t fill)
{
	uint8_t frame[576];

	memset(frame, fill, sizeof(frame));
	memcpy(frame, "\xff\xfd\xa4\x00", 4);
	evbuffer_add(b, frame, sizeof(frame));
}

Test(reader, mpa_frames_after_a_tag_and_garbage_one_a_packet)
{
	struct evbuffer *in = evbuffer_new();
	struct audio_config config = { .payload = AUDIO_MPA };
	struct audio_reader r;
	uint8_t out[AUDIO_PAYLOAD_MAX], tag[30] = { 'I', 'D', '3', 4, 0, 0, 0, 0, 0, 20 };
	size_t len;
	uint32_t samples;

	evbuffer_add(in, tag, sizeof(tag));
	evbuffer_add(in, "\xff\xfb\x00", 3);		/* a false sync, then nothing */
	for (uint8_t i = 1; i <= 3; i++)
		add_mp2_frame(in, i);
	audio_reader_init(&r, &config);
	for (uint8_t i = 1; i <= 2; i++) {
		cr_assert(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples));
		cr_assert_eq(len, 4 + 576);
		cr_assert(memcmp(out, "\0\0\0\0\xff\xfd\xa4\x00", 8) == 0, "MBZ and Frag_offset 0, then the frame");
		cr_assert_eq(out[4 + 575], i);
		cr_assert_eq(samples, 1152);
		cr_assert_eq(r.rate, 48000);
	}
	cr_assert_eq(r.skipped, 3);
	cr_assert_not(audio_reader_next(&r, in, false, UINT64_MAX, out, &len, &samples), "is a frame next? wait");
	cr_assert(audio_reader_next(&r, in, true, UINT64_MAX, out, &len, &samples), "the end: the last frame goes");
	cr_assert_eq(out[4 + 575], 3);
	cr_assert_eq(r.consumed, 30 + 3 + 3 * 576);
	evbuffer_free(in);
}

Test(reader, mpa_a_frame_cut_by_a_loop_is_skipped)
{
	struct evbuffer *in = evbuffer_new();
	struct audio_config config = { .payload = AUDIO_MPA };
	struct audio_reader r;
	uint8_t out[AUDIO_PAYLOAD_MAX];
	size_t len;
	uint32_t samples;

	add_mp2_frame(in, 1);
	add_mp2_frame(in, 2);
	audio_reader_init(&r, &config);
	cr_assert(audio_reader_next(&r, in, false, 576 + 300, out, &len, &samples));
	cr_assert_not(audio_reader_next(&r, in, false, 300, out, &len, &samples));
	cr_assert_eq(r.consumed, 576 + 300, "the cut frame's bytes up to the loop went");
	audio_reader_restart(&r);
	cr_assert_eq(r.skipped, 300);
	evbuffer_free(in);
}
