/* The RIFF/WAVE header of a PCM file (the audio RTP payloads' input):
 * where the samples start and what they are. Any bytes are safe. */
#ifndef CHASSISD_RTP_WAV_H
#define CHASSISD_RTP_WAV_H

#include <stddef.h>
#include <stdint.h>

/* Headers longer than this (chunks before "data") are refused: a
 * header is read whole before any sample goes. */
#define WAV_HEADER_MAX (64 * 1024)

struct wav_format {
	unsigned channels;		/* 1..8 */
	unsigned sample_rate;		/* 1000..192000 */
	size_t data_offset;		/* the first sample byte */
	uint64_t data_len;		/* bytes of samples as declared (a whole number of frames) */
};

enum wav_result {
	WAV_OK = 0,
	WAV_NEED_MORE = 1,		/* a valid start, the "data" chunk not reached yet */
	WAV_BAD = -1,			/* not RIFF/WAVE, not 16-bit PCM, no fmt before data, too long */
};

/* Reads the header at buf (len bytes from the start of the file): the
 * "fmt " chunk (PCM, or WAVE_FORMAT_EXTENSIBLE with the PCM subformat;
 * 16 bits; 1 to 8 channels; 1000 to 192000 Hz), chunks it does not know
 * skipped by their size (padded to even), up to the "data" chunk's
 * header. why gets a reason with WAV_BAD. Never reads outside buf. */
int wav_parse(const uint8_t *buf, size_t len, struct wav_format *out, char *why, size_t why_len);

#endif
