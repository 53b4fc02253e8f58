/* Audio RTP payloads (RFC 3551): PCMU and PCMA (G.711, 8000 Hz mono) and
 * L16 (16-bit big-endian, any rate and channels), made from 16-bit
 * little-endian PCM: a WAV file (its header read at every start of the
 * file, so it may loop) or raw samples of a configured format.
 *
 * MPA (RFC 2250 3.5): MPEG audio frames as they are (an MP2 or MP3
 * file, an ID3v2 tag at its start skipped), one frame a packet after the
 * payload's 4-byte header; bytes where no frame lines up are skipped.
 *
 * The reader takes the source's bytes and gives one packet's payload at
 * a time, ptime milliseconds of samples (MPA: a frame), never straddling
 * a point the caller names (a loop of the file: the next packet starts
 * the file again and carries the marker bit). */
#ifndef CHASSISD_RTP_AUDIO_H
#define CHASSISD_RTP_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum audio_payload { AUDIO_PCMU, AUDIO_PCMA, AUDIO_L16, AUDIO_MPA };

struct audio_config {
	enum audio_payload payload;
	bool wav;			/* else raw s16le of sample_rate and channels */
	unsigned sample_rate, channels;	/* raw input only */
	unsigned ptime_ms;		/* per packet */
};

/* The biggest payload a packet can have: 100 ms of 192 kHz x 8 channels
 * of L16 would not fit a datagram, so the reader cuts packets to this. */
#define AUDIO_PAYLOAD_MAX 60000

/* G.711 (ITU-T G.711, segment encoding of the 16-bit sample). */
uint8_t audio_ulaw(int16_t sample);
uint8_t audio_alaw(int16_t sample);

/* frames of interleaved s16le samples at in, `channels` each, into the
 * payload's bytes at out: G.711 takes the mean of the channels (a mono
 * downmix), L16 swaps to big-endian. Returns the bytes written. */
size_t audio_convert(enum audio_payload payload, const uint8_t *in, size_t frames, unsigned channels, uint8_t *out);

enum audio_state { AUDIO_HEADER, AUDIO_DATA, AUDIO_TRAILER, AUDIO_FAILED };

struct audio_reader {
	struct audio_config config;
	enum audio_state state;
	unsigned rate, channels;	/* of the input, once known */
	bool known;			/* a header was read (or raw input) */
	uint64_t data_left;		/* WAV: bytes of samples before the trailer */
	uint64_t consumed;		/* source bytes taken */
	uint64_t skipped;		/* MPA: bytes that were no frame */
	uint64_t tag_left;		/* MPA: of an ID3v2 tag, still to skip */
	char error[128];		/* with AUDIO_FAILED */
};

void audio_reader_init(struct audio_reader *r, const struct audio_config *config);
/* The input starts again (a file loop) at the bytes not yet taken. */
void audio_reader_restart(struct audio_reader *r);
/* The next payload into out (AUDIO_PAYLOAD_MAX bytes) from in, taking at
 * most `limit` bytes (up to the next loop). True with *len bytes and
 * *samples samples per channel; false when more bytes are needed, or at
 * a failure (state AUDIO_FAILED, error set: a bad header, a rate the
 * payload cannot carry, a WAV whose format changes at a loop). A short
 * packet goes only when `ended` or the limit cuts it. */
bool audio_reader_next(struct audio_reader *r, struct evbuffer *in, bool ended, uint64_t limit, uint8_t *out,
		       size_t *len, uint32_t *samples);
/* Samples per channel in a full packet (MPA: known per frame, 0). */
uint32_t audio_packet_samples(const struct audio_reader *r);

#endif
