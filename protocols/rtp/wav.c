#include "protocols/rtp/wav.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define RIFF_HEADER 12			/* "RIFF", size, "WAVE" */
#define CHUNK_HEADER 8			/* id, size */
#define FMT_PCM 1
#define FMT_EXTENSIBLE 0xfffe
#define FMT_MIN 16			/* the fields up to bits per sample */
#define FMT_EXTENSIBLE_MIN 40		/* with cbSize, valid bits, mask and the subformat GUID */

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int wav_bad(char *why, size_t why_len, const char *reason)
{
	snprintf(why, why_len, "%s", reason);
	return WAV_BAD;
}

/* The "fmt " chunk's body (size bytes at p, all inside the buffer). */
static int wav_fmt(const uint8_t *p, uint32_t size, struct wav_format *out, char *why, size_t why_len)
{
	unsigned tag, channels, rate, block_align, bits;

	if (size < FMT_MIN)
		return wav_bad(why, why_len, "a fmt chunk too short");
	tag = le16(p);
	channels = le16(p + 2);
	rate = le32(p + 4);
	block_align = le16(p + 12);
	bits = le16(p + 14);
	/* The extensible form's subformat GUID starts with the format tag. */
	if (tag == FMT_EXTENSIBLE && size >= FMT_EXTENSIBLE_MIN)
		tag = le16(p + 24);
	if (tag != FMT_PCM)
		return wav_bad(why, why_len, "not PCM");
	if (bits != 16)
		return wav_bad(why, why_len, "not 16-bit samples");
	if (channels < 1 || channels > 8)
		return wav_bad(why, why_len, "not 1 to 8 channels");
	if (rate < 1000 || rate > 192000)
		return wav_bad(why, why_len, "a sample rate not from 1000 to 192000 Hz");
	if (block_align != channels * 2)
		return wav_bad(why, why_len, "a block align that is not channels x 2");
	out->channels = channels;
	out->sample_rate = rate;
	return WAV_OK;
}

int wav_parse(const uint8_t *buf, size_t len, struct wav_format *out, char *why, size_t why_len)
{
	struct wav_format found = { 0 };
	bool have_fmt = false;
	size_t at = RIFF_HEADER;

	if (len < RIFF_HEADER)
		return memcmp(buf, "RIFF", len < 4 ? len : 4) == 0 ? WAV_NEED_MORE : wav_bad(why, why_len, "not RIFF");
	if (memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0)
		return wav_bad(why, why_len, "not RIFF/WAVE");
	for (;;) {
		uint32_t size;

		if (at > WAV_HEADER_MAX)
			return wav_bad(why, why_len, "a header over 64 KiB");
		if (at > len || len - at < CHUNK_HEADER)
			return WAV_NEED_MORE;
		size = le32(buf + at + 4);
		if (memcmp(buf + at, "data", 4) == 0) {
			if (!have_fmt)
				return wav_bad(why, why_len, "data before fmt");
			found.data_offset = at + CHUNK_HEADER;
			found.data_len = size / (found.channels * 2) * (found.channels * 2);
			*out = found;
			return WAV_OK;
		}
		if (memcmp(buf + at, "fmt ", 4) == 0) {
			int rc;

			if (len - at - CHUNK_HEADER < size)
				return size > WAV_HEADER_MAX ? wav_bad(why, why_len, "a header over 64 KiB")
							      : WAV_NEED_MORE;
			rc = wav_fmt(buf + at + CHUNK_HEADER, size, &found, why, why_len);
			if (rc != WAV_OK)
				return rc;
			have_fmt = true;
		}
		/* Chunks are padded to an even size; a size past the limit
		 * ends the header on the next turn. */
		if (size > WAV_HEADER_MAX)
			return wav_bad(why, why_len, "a header over 64 KiB");
		at += CHUNK_HEADER + size + (size & 1);
	}
}
