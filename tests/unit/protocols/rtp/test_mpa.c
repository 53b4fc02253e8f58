/* MPEG audio frame headers: the lengths and sample counts of each
 * version and layer (against what ffmpeg's encoders write), the reserved
 * values refused, and ID3v2 tags measured. */
#include <criterion/criterion.h>
#include <string.h>

#include "protocols/rtp/mpa.h"

static bool header(uint8_t b1, uint8_t b2, struct mpa_frame *f)
{
	const uint8_t p[4] = { 0xff, b1, b2, 0xc4 };

	return mpa_frame_header(p, f);
}

Test(mpa, mpeg1_layer2_192k_48k)
{
	struct mpa_frame f;

	/* MPEG-1 (11), layer II (10), no CRC: 0xfd; 192 kbit/s (1010), 48 kHz (01). */
	cr_assert(header(0xfd, 0xa4, &f));
	cr_assert_eq(f.sample_rate, 48000);
	cr_assert_eq(f.samples, 1152);
	cr_assert_eq(f.length, 576);
}

Test(mpa, mpeg1_layer3_128k_44k_padded)
{
	struct mpa_frame f;

	/* Layer III (01): 0xfb; 128 kbit/s (1001), 44.1 kHz (00), padding. */
	cr_assert(header(0xfb, 0x92, &f));
	cr_assert_eq(f.sample_rate, 44100);
	cr_assert_eq(f.samples, 1152);
	cr_assert_eq(f.length, 418);
}

Test(mpa, mpeg2_layer3_has_576_samples_and_mpeg25_a_quarter_rate)
{
	struct mpa_frame f;

	/* MPEG-2 (10) layer III: 0xf3; 64 kbit/s (1000), 22.05 kHz. */
	cr_assert(header(0xf3, 0x80, &f));
	cr_assert_eq(f.sample_rate, 22050);
	cr_assert_eq(f.samples, 576);
	cr_assert_eq(f.length, 72 * 64000 / 22050);
	/* MPEG-2.5 (00) layer III: 0xe3; 8 kbit/s (0001), 8 kHz (10). */
	cr_assert(header(0xe3, 0x18, &f));
	cr_assert_eq(f.sample_rate, 8000);
	cr_assert_eq(f.length, 72);
}

Test(mpa, layer1_counts_in_four_byte_slots)
{
	struct mpa_frame f;

	/* MPEG-1 layer I (11): 0xff; 448 kbit/s (1110), 32 kHz (10), padding. */
	cr_assert(header(0xff, 0xea, &f));
	cr_assert_eq(f.samples, 384);
	cr_assert_eq(f.length, (12 * 448000 / 32000 + 1) * 4);
}

Test(mpa, the_longest_frame_is_the_bound)
{
	struct mpa_frame f;

	/* MPEG-2.5 layer II 160 kbit/s at 8 kHz, padded. */
	cr_assert(header(0xe5, 0xea, &f));
	cr_assert_eq(f.length, MPA_FRAME_MAX);
}

Test(mpa, reserved_and_free_format_are_refused)
{
	struct mpa_frame f;
	const uint8_t no_sync[4] = { 0xfe, 0xfd, 0xa4, 0 };

	cr_assert_not(mpa_frame_header(no_sync, &f));
	cr_assert_not(header(0xed, 0xa4, &f), "version 01 is reserved");
	cr_assert_not(header(0xf9, 0xa4, &f), "layer 00 is reserved");
	cr_assert_not(header(0xfd, 0x04, &f), "free format");
	cr_assert_not(header(0xfd, 0xf4, &f), "bitrate index 15");
	cr_assert_not(header(0xfd, 0xac, &f), "rate index 3");
}

Test(mpa, id3v2_tags)
{
	bool more;
	const uint8_t tag[10] = { 'I', 'D', '3', 4, 0, 0, 0, 0, 0x01, 0x23 };
	const uint8_t footer[10] = { 'I', 'D', '3', 4, 0, 0x10, 0, 0, 0, 5 };

	cr_assert_eq(mpa_id3_length(tag, 10, &more), 10 + 0xa3);
	cr_assert_not(more);
	cr_assert_eq(mpa_id3_length(footer, 10, &more), 10 + 5 + 10);
	cr_assert_eq(mpa_id3_length(tag, 4, &more), 0);
	cr_assert(more);
	cr_assert_eq(mpa_id3_length((const uint8_t *)"ID", 2, &more), 0);
	cr_assert(more);
	cr_assert_eq(mpa_id3_length((const uint8_t *)"\xff\xfb", 2, &more), 0);
	cr_assert_not(more);
}
