/* The WAV header reader: the forms sox and ffmpeg write, chunks to skip,
 * a header in pieces, and each way a header is refused. Buffers are of
 * exactly their size, so a sanitizer build catches a read past the end. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/rtp/wav.h"

static size_t put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
	return 4;
}

static size_t put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
	return 2;
}

/* RIFF, WAVE, [a LIST chunk of list_len], fmt (tag, channels, rate,
 * bits), data of data_len: the header, data_len declared only. */
static size_t header(uint8_t *b, uint16_t tag, uint16_t channels, uint32_t rate, uint16_t bits, uint32_t list_len,
		     uint32_t data_len)
{
	size_t at = 0;

	memcpy(b, "RIFF", 4), at += 4;
	at += put32(b + at, 1000);
	memcpy(b + at, "WAVE", 4), at += 4;
	if (list_len) {
		memcpy(b + at, "LIST", 4), at += 4;
		at += put32(b + at, list_len);
		memset(b + at, 'x', list_len + (list_len & 1)), at += list_len + (list_len & 1);
	}
	memcpy(b + at, "fmt ", 4), at += 4;
	at += put32(b + at, 16);
	at += put16(b + at, tag);
	at += put16(b + at, channels);
	at += put32(b + at, rate);
	at += put32(b + at, rate * channels * bits / 8);
	at += put16(b + at, (uint16_t)(channels * bits / 8));
	at += put16(b + at, bits);
	memcpy(b + at, "data", 4), at += 4;
	at += put32(b + at, data_len);
	return at;
}

static int parse_exact(const uint8_t *b, size_t len, struct wav_format *f)
{
	uint8_t *copy = malloc(len ? len : 1);
	char why[96];
	int rc;

	memcpy(copy, b, len);
	rc = wav_parse(copy, len, f, why, sizeof(why));
	free(copy);
	return rc;
}

Test(wav, the_plain_pcm_header)
{
	uint8_t b[256];
	struct wav_format f;
	size_t len = header(b, 1, 1, 8000, 16, 0, 48000);

	cr_assert_eq(parse_exact(b, len, &f), WAV_OK);
	cr_assert_eq(f.channels, 1);
	cr_assert_eq(f.sample_rate, 8000);
	cr_assert_eq(f.data_offset, 44);
	cr_assert_eq(f.data_len, 48000);
}

Test(wav, a_list_chunk_of_odd_size_is_skipped_with_its_pad_byte)
{
	uint8_t b[256];
	struct wav_format f;
	size_t len = header(b, 1, 2, 48000, 16, 27, 4001);

	cr_assert_eq(parse_exact(b, len, &f), WAV_OK);
	cr_assert_eq(f.data_offset, 44 + 8 + 28);
	cr_assert_eq(f.data_len, 4000, "whole frames only");
}

Test(wav, every_prefix_asks_for_more)
{
	uint8_t b[256];
	struct wav_format f;
	size_t len = header(b, 1, 2, 44100, 16, 26, 100);

	for (size_t n = 0; n < len; n++)
		cr_assert_eq(parse_exact(b, n, &f), WAV_NEED_MORE, "at %zu", n);
}

Test(wav, what_is_refused)
{
	uint8_t b[256];
	struct wav_format f;
	size_t len;

	len = header(b, 3, 1, 8000, 16, 0, 10);		/* IEEE float */
	cr_assert_eq(parse_exact(b, len, &f), WAV_BAD);
	len = header(b, 1, 1, 8000, 8, 0, 10);
	cr_assert_eq(parse_exact(b, len, &f), WAV_BAD);
	len = header(b, 1, 0, 8000, 16, 0, 10);
	cr_assert_eq(parse_exact(b, len, &f), WAV_BAD);
	len = header(b, 1, 9, 8000, 16, 0, 10);
	cr_assert_eq(parse_exact(b, len, &f), WAV_BAD);
	len = header(b, 1, 1, 500, 16, 0, 10);
	cr_assert_eq(parse_exact(b, len, &f), WAV_BAD);
	len = header(b, 1, 1, 8000, 16, 0, 10);
	memcpy(b + 8, "AVI ", 4);
	cr_assert_eq(parse_exact(b, len, &f), WAV_BAD);
	cr_assert_eq(parse_exact((const uint8_t *)"ID3\x03", 4, &f), WAV_BAD);
}

Test(wav, data_before_fmt_is_refused)
{
	uint8_t b[64] = "RIFF\0\0\0\0WAVEdata\4\0\0\0abcd";
	struct wav_format f;

	cr_assert_eq(parse_exact(b, 24, &f), WAV_BAD);
}

Test(wav, a_chunk_too_long_for_a_header_is_refused_not_waited_for)
{
	uint8_t b[64] = "RIFF\0\0\0\0WAVEJUNK";
	struct wav_format f;

	put32(b + 16, 0x7fffffff);
	cr_assert_eq(parse_exact(b, 20, &f), WAV_BAD);
}

Test(wav, the_extensible_form_with_the_pcm_subformat)
{
	uint8_t b[128] = "RIFF\0\0\0\0WAVEfmt ";
	struct wav_format f;
	size_t at = 16;

	at += put32(b + at, 40);
	at += put16(b + at, 0xfffe);
	at += put16(b + at, 6);
	at += put32(b + at, 48000);
	at += put32(b + at, 48000 * 12);
	at += put16(b + at, 12);
	at += put16(b + at, 16);
	at += put16(b + at, 22);		/* cbSize */
	at += put16(b + at, 16);		/* valid bits */
	at += put32(b + at, 0x3f);		/* channel mask */
	at += put16(b + at, 1);			/* the subformat GUID starts with the tag */
	memset(b + at, 0, 14), at += 14;
	memcpy(b + at, "data", 4), at += 4;
	at += put32(b + at, 1200);
	cr_assert_eq(parse_exact(b, at, &f), WAV_OK);
	cr_assert_eq(f.channels, 6);
	cr_assert_eq(f.data_offset, at);
}
