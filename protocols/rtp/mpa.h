/* MPEG audio frames (MPEG-1/2/2.5 layers I-III, ISO 11172-3 and 13818-3)
 * for the RTP MPA payload (RFC 2250 3.5): where a frame is, how long, how
 * many samples at what rate. Any bytes are safe. */
#ifndef CHASSISD_RTP_MPA_H
#define CHASSISD_RTP_MPA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MPA_HEADER_SIZE 4
/* The longest frame: MPEG-2.5 layer II at 160 kbit/s and 8 kHz, padded. */
#define MPA_FRAME_MAX 2881

struct mpa_frame {
	unsigned sample_rate;		/* Hz */
	unsigned samples;		/* per channel */
	unsigned length;		/* bytes, the header included */
};

/* The frame header at p[0..3]: true with f filled for a valid one (the
 * sync word; no reserved version, layer, bitrate or rate; not free
 * format, whose length the header does not say). */
bool mpa_frame_header(const uint8_t *p, struct mpa_frame *f);
/* An ID3v2 tag at p (len bytes): its whole length (header, body and
 * footer), or 0 when p does not start one; 10 bytes decide it (fewer: 0
 * unless they could still begin "ID3", then *need_more). */
size_t mpa_id3_length(const uint8_t *p, size_t len, bool *need_more);

#endif
