#include "protocols/rtp/mpa.h"

#include <string.h>

#define ID3_HEADER 10
#define ID3_FOOTER_FLAG 0x10

enum { MPEG_25 = 0, MPEG_RESERVED = 1, MPEG_2 = 2, MPEG_1 = 3 };
enum { LAYER_RESERVED = 0, LAYER_3 = 1, LAYER_2 = 2, LAYER_1 = 3 };

/* kbit/s by [MPEG-1 or not][layer I, II, III][index]; 0 = free format. */
static const unsigned short bitrates[2][3][15] = {
	{ /* MPEG-2 and 2.5 */
	  { 0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256 },
	  { 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160 },
	  { 0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160 } },
	{ /* MPEG-1 */
	  { 0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448 },
	  { 0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384 },
	  { 0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320 } },
};

/* MPEG-1's rates; MPEG-2 halves them, MPEG-2.5 quarters them. */
static const unsigned rates[3] = { 44100, 48000, 32000 };

bool mpa_frame_header(const uint8_t *p, struct mpa_frame *f)
{
	unsigned version = p[1] >> 3 & 3, layer = p[1] >> 1 & 3;
	unsigned bitrate_index = p[2] >> 4, rate_index = p[2] >> 2 & 3, padding = p[2] >> 1 & 1;
	unsigned kbps, rate, layer_number;
	bool mpeg1 = version == MPEG_1;

	if (p[0] != 0xff || (p[1] & 0xe0) != 0xe0 || version == MPEG_RESERVED || layer == LAYER_RESERVED ||
	    bitrate_index == 0 || bitrate_index == 15 || rate_index == 3)
		return false;
	layer_number = 4 - layer;	/* 1, 2 or 3 */
	kbps = bitrates[mpeg1][layer_number - 1][bitrate_index];
	rate = rates[rate_index] >> (mpeg1 ? 0 : version == MPEG_2 ? 1 : 2);
	f->sample_rate = rate;
	if (layer_number == 1) {
		f->samples = 384;
		f->length = (12 * kbps * 1000 / rate + padding) * 4;
	} else {
		/* Layer III of MPEG-2 and 2.5 has half the samples a frame. */
		bool half = layer_number == 3 && !mpeg1;
		f->samples = half ? 576 : 1152;
		f->length = (half ? 72 : 144) * kbps * 1000 / rate + padding;
	}
	return f->length >= MPA_HEADER_SIZE;
}

/* A syncsafe integer: four bytes of seven bits each. */
static size_t syncsafe(const uint8_t *p)
{
	return (size_t)(p[0] & 0x7f) << 21 | (size_t)(p[1] & 0x7f) << 14 | (size_t)(p[2] & 0x7f) << 7 | (p[3] & 0x7f);
}

size_t mpa_id3_length(const uint8_t *p, size_t len, bool *need_more)
{
	size_t have = len < 3 ? len : 3;

	*need_more = false;
	if (memcmp(p, "ID3", have) != 0)
		return 0;
	if (len < ID3_HEADER) {
		*need_more = true;
		return 0;
	}
	return ID3_HEADER + syncsafe(p + 6) + (p[5] & ID3_FOOTER_FLAG ? ID3_HEADER : 0);
}
