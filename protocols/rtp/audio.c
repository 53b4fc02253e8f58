#include "protocols/rtp/audio.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "protocols/rtp/mpa.h"
#include "protocols/rtp/wav.h"

#define G711_RATE 8000
#define ULAW_BIAS 0x21		/* on the 14-bit magnitude */
#define ULAW_CLIP 8159
#define ALAW_INVERT 0x55
/* RFC 2250 3.5: MBZ and Frag_offset before the frame. */
#define MPA_PAYLOAD_HEADER 4
/* Bytes one call looks through for a frame: a source of something else
 * is read on in small steps (the caller pauses between them). */
#define MPA_SCAN_MAX 4096

/* The segment of a magnitude of 256 or more: 1 for 256..511, up to 7
 * for 16384..32767 (the position of its highest bit, less 7). */
static unsigned segment(unsigned magnitude)
{
	unsigned seg = 0;

	while (seg < 7 && magnitude >= (256u << seg))
		seg++;
	return seg;
}

/* mu-law on the 14-bit sample (the 16-bit one floored by 4, as G.711
 * and its reference code quantise negative samples): the magnitude,
 * clipped and biased so that every segment has the same form, then
 * segment and four mantissa bits, all bits inverted (the sign bit set
 * for positive samples). */
uint8_t audio_ulaw(int16_t sample)
{
	int value = sample < 0 ? -((-sample + 3) / 4) : sample / 4;
	unsigned mask = value < 0 ? 0x7f : 0xff, magnitude, seg = 0;

	magnitude = (unsigned)(value < 0 ? -value : value);
	if (magnitude > ULAW_CLIP)
		magnitude = ULAW_CLIP;
	magnitude += ULAW_BIAS;
	while (seg < 8 && magnitude > (0x40u << seg) - 1)
		seg++;
	if (seg == 8)			/* the clipped top: the loudest code */
		return (uint8_t)(0x7f ^ mask);
	return (uint8_t)((seg << 4 | ((magnitude >> (seg + 1)) & 0x0f)) ^ mask);
}

/* A-law: segment 0 is linear (magnitude / 16), the others as mu-law's
 * without the bias; the sign bit is set for positive samples and the
 * even bits are inverted. */
uint8_t audio_alaw(int16_t sample)
{
	int value = sample;
	unsigned sign = value >= 0 ? 0x80 : 0, magnitude, seg, code;

	magnitude = (unsigned)(value < 0 ? -value - 1 : value);
	if (magnitude < 256) {
		code = magnitude >> 4;
	} else {
		seg = segment(magnitude);
		code = seg << 4 | ((magnitude >> (seg + 3)) & 0x0f);
	}
	return (uint8_t)((sign | code) ^ ALAW_INVERT);
}

static int16_t le_sample(const uint8_t *p)
{
	return (int16_t)(uint16_t)(p[0] | p[1] << 8);
}

/* The mean of a frame's channels. */
static int16_t downmix(const uint8_t *frame, unsigned channels)
{
	long sum = 0;

	for (unsigned c = 0; c < channels; c++)
		sum += le_sample(frame + 2 * c);
	return (int16_t)(sum / (long)channels);
}

size_t audio_convert(enum audio_payload payload, const uint8_t *in, size_t frames, unsigned channels, uint8_t *out)
{
	size_t frame = (size_t)channels * 2;

	if (payload == AUDIO_L16) {
		for (size_t i = 0; i < frames * frame; i += 2) {
			out[i] = in[i + 1];
			out[i + 1] = in[i];
		}
		return frames * frame;
	}
	for (size_t f = 0; f < frames; f++) {
		int16_t mono = downmix(in + f * frame, channels);
		out[f] = payload == AUDIO_PCMU ? audio_ulaw(mono) : audio_alaw(mono);
	}
	return frames;
}

/* ---- the reader ---- */

static bool audio_fail(struct audio_reader *r, const char *what)
{
	snprintf(r->error, sizeof(r->error), "%s", what);
	r->state = AUDIO_FAILED;
	return false;
}

static void audio_take(struct audio_reader *r, struct evbuffer *in, size_t n)
{
	evbuffer_drain(in, n);
	r->consumed += n;
}

void audio_reader_init(struct audio_reader *r, const struct audio_config *config)
{
	memset(r, 0, sizeof(*r));
	r->config = *config;
	if (!config->wav && config->payload != AUDIO_MPA) {
		r->rate = config->sample_rate;
		r->channels = config->channels;
		r->known = true;
	}
	audio_reader_restart(r);
}

void audio_reader_restart(struct audio_reader *r)
{
	if (r->state == AUDIO_FAILED)
		return;
	r->state = r->config.wav || r->config.payload == AUDIO_MPA ? AUDIO_HEADER : AUDIO_DATA;
	r->data_left = UINT64_MAX;
}

uint32_t audio_packet_samples(const struct audio_reader *r)
{
	if (r->config.payload == AUDIO_MPA)
		return 0;
	uint64_t samples = (uint64_t)r->rate * r->config.ptime_ms / 1000;
	size_t out_frame = r->config.payload == AUDIO_L16 ? (size_t)r->channels * 2 : 1;

	if (samples == 0)
		samples = 1;
	if (out_frame && samples * out_frame > AUDIO_PAYLOAD_MAX)
		samples = AUDIO_PAYLOAD_MAX / out_frame;
	return (uint32_t)samples;
}

/* The format a WAV header gives, checked against the payload and, at a
 * loop, against the first. */
static bool audio_accept(struct audio_reader *r, const struct wav_format *f)
{
	if (r->config.payload != AUDIO_L16 && f->sample_rate != G711_RATE)
		return audio_fail(r, "PCMU and PCMA need 8000 Hz input (no resampling)");
	if (r->known && (f->sample_rate != r->rate || f->channels != r->channels))
		return audio_fail(r, "the WAV format changed at a loop");
	r->rate = f->sample_rate;
	r->channels = f->channels;
	r->known = true;
	r->data_left = f->data_len;
	return true;
}

static bool audio_header(struct audio_reader *r, struct evbuffer *in, bool ended, uint64_t limit)
{
	size_t have = evbuffer_get_length(in), avail = have < limit ? have : (size_t)limit;
	size_t want = avail < WAV_HEADER_MAX + 64 ? avail : WAV_HEADER_MAX + 64;
	const uint8_t *p = evbuffer_pullup(in, (ssize_t)want);
	struct wav_format f;
	char why[96] = "";
	int rc = p == NULL && want > 0 ? WAV_NEED_MORE : wav_parse(p ? p : (const uint8_t *)"", want, &f, why, sizeof(why));

	if (rc == WAV_BAD) {
		char what[128];
		snprintf(what, sizeof(what), "not a 16-bit PCM WAV file: %s", why);
		return audio_fail(r, what);
	}
	if (rc == WAV_NEED_MORE) {
		/* Cut by the end, a loop, or the limit of a header. */
		if ((ended && avail == have) || avail < have || want > WAV_HEADER_MAX)
			return audio_fail(r, "a WAV header cut short");
		return false;
	}
	if (!audio_accept(r, &f))
		return false;
	audio_take(r, in, f.data_offset);
	r->state = AUDIO_DATA;
	return true;
}

/* How many frames the next packet has, or 0 to wait for more. */
static size_t audio_frames(const struct audio_reader *r, struct evbuffer *in, bool ended, uint64_t limit)
{
	size_t frame = (size_t)r->channels * 2, want = audio_packet_samples(r);
	uint64_t avail = evbuffer_get_length(in);
	bool cut = ended && avail < want * frame;

	if (limit < avail)
		avail = limit, cut = true;
	if (r->data_left < avail)
		avail = r->data_left, cut = true;
	if (avail >= want * frame)
		return want;
	return cut ? (size_t)(avail / frame) : 0;
}

/* ---- MPA ---- */

static size_t available(struct evbuffer *in, uint64_t limit)
{
	size_t have = evbuffer_get_length(in);

	return have < limit ? have : (size_t)limit;
}

/* An ID3v2 tag at the start of the file goes, in pieces if long. True
 * once the frames may begin. */
static bool mpa_skip_tag(struct audio_reader *r, struct evbuffer *in, bool ended, uint64_t limit)
{
	size_t have = available(in, limit), want = have < 10 ? have : 10, tag;
	bool need_more = false, cut = ended || have < evbuffer_get_length(in);

	if (r->tag_left == 0 && r->state == AUDIO_HEADER) {
		tag = want ? mpa_id3_length(evbuffer_pullup(in, (ssize_t)want), want, &need_more) : 0;
		if ((want == 0 || need_more) && !cut)
			return false;
		r->tag_left = tag;
		r->state = AUDIO_DATA;
	}
	if (r->tag_left > 0) {
		size_t n = have < r->tag_left ? have : (size_t)r->tag_left;
		audio_take(r, in, n);
		r->tag_left -= n;
		if (r->tag_left > 0 && !cut)
			return false;
		r->tag_left = 0;
	}
	return true;
}

static void mpa_skip(struct audio_reader *r, struct evbuffer *in, size_t n)
{
	audio_take(r, in, n);
	r->skipped += n;
}

/* The frame at the front, when it is one: a valid header, the rate of
 * the frames before, and a next frame that lines up (unless the end or
 * a loop comes first). 1: a frame of *f; 0: wait for more bytes; -1: no
 * frame starts here. */
static int mpa_frame_at(const struct audio_reader *r, const uint8_t *p, size_t have, bool cut, struct mpa_frame *f)
{
	struct mpa_frame next;

	if (have < MPA_HEADER_SIZE)
		return cut ? -1 : 0;
	if (!mpa_frame_header(p, f) || (r->known && f->sample_rate != r->rate))
		return -1;
	if (have < f->length + MPA_HEADER_SIZE)
		return cut ? (have >= f->length ? 1 : -1) : 0;
	return mpa_frame_header(p + f->length, &next) ? 1 : -1;
}

static bool mpa_next(struct audio_reader *r, struct evbuffer *in, bool ended, uint64_t limit, uint8_t *out,
		     size_t *len, uint32_t *samples)
{
	if (r->state == AUDIO_HEADER || r->tag_left > 0) {
		uint64_t before = r->consumed;

		if (!mpa_skip_tag(r, in, ended, limit))
			return false;
		limit -= limit == UINT64_MAX ? 0 : r->consumed - before;
	}
	for (unsigned scanned = 0; scanned < MPA_SCAN_MAX; scanned++) {
		size_t have = available(in, limit), want = have < MPA_FRAME_MAX + 4 ? have : MPA_FRAME_MAX + 4;
		bool cut = ended || have < evbuffer_get_length(in);
		const uint8_t *p = want ? evbuffer_pullup(in, (ssize_t)want) : NULL;
		struct mpa_frame f;
		int found = p ? mpa_frame_at(r, p, want, cut, &f) : (cut ? -1 : 0);

		if (found == 0 || (found < 0 && have == 0))
			return false;
		if (found < 0) {
			mpa_skip(r, in, have < MPA_HEADER_SIZE ? have : 1);
			if (limit != UINT64_MAX)
				limit -= have < MPA_HEADER_SIZE ? have : 1;
			continue;
		}
		memset(out, 0, MPA_PAYLOAD_HEADER);
		memcpy(out + MPA_PAYLOAD_HEADER, p, f.length);
		*len = MPA_PAYLOAD_HEADER + f.length;
		*samples = f.samples;
		r->rate = f.sample_rate;
		r->known = true;
		audio_take(r, in, f.length);
		return true;
	}
	return false;
}

bool audio_reader_next(struct audio_reader *r, struct evbuffer *in, bool ended, uint64_t limit, uint8_t *out,
		       size_t *len, uint32_t *samples)
{
	size_t frames, frame;
	uint64_t before = r->consumed;

	if (r->config.payload == AUDIO_MPA)
		return r->state != AUDIO_FAILED && mpa_next(r, in, ended, limit, out, len, samples);

	if (r->state == AUDIO_HEADER && !audio_header(r, in, ended, limit))
		return false;
	if (r->state == AUDIO_FAILED)
		return false;
	if (limit != UINT64_MAX)
		limit -= r->consumed - before;	/* the header's bytes */
	frame = (size_t)r->channels * 2;
	if (r->state == AUDIO_DATA && r->data_left < frame)
		r->state = AUDIO_TRAILER;
	if (r->state == AUDIO_TRAILER) {
		/* After the samples: whatever chunks follow, up to the loop. */
		size_t have = evbuffer_get_length(in);
		audio_take(r, in, have < limit ? have : (size_t)limit);
		return false;
	}
	frames = audio_frames(r, in, ended, limit);
	if (frames == 0) {
		/* Less than a frame before a loop: its bytes go. */
		if (limit < frame && limit > 0 && evbuffer_get_length(in) >= limit)
			audio_take(r, in, (size_t)limit);
		return false;
	}
	*len = audio_convert(r->config.payload, evbuffer_pullup(in, (ssize_t)(frames * frame)), frames, r->channels,
			     out);
	*samples = (uint32_t)frames;
	audio_take(r, in, frames * frame);
	if (r->data_left != UINT64_MAX)
		r->data_left -= frames * frame;
	return true;
}
