/* ICY (SHOUTcast/Icecast) in-band metadata. A server asked for it with
 * "Icy-MetaData: 1" answers with an icy-metaint header N and then sends
 *
 *   [N bytes audio][1 byte L][16*L bytes metadata, NUL padded][N bytes audio][L]...
 *
 * The demultiplexer takes that stream in pieces of any size, passes the
 * audio on and hands each metadata block over whole. Metadata is text in
 * no agreed encoding (Latin-1, UTF-8, whatever the encoder had), so it is
 * kept as bytes: nothing here decodes it. */
#ifndef CHASSISD_SOURCE_ICY_H
#define CHASSISD_SOURCE_ICY_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* L is one byte, so a block is never longer than this. */
#define ICY_META_MAX (255 * 16)

struct icy_demux {
	size_t metaint;			/* audio bytes between blocks; 0 = no metadata */
	size_t audio_left;		/* audio bytes before the next length byte */
	bool in_block;			/* between a length byte and the block's end */
	size_t block_len, block_have;
	char block[ICY_META_MAX];
};

typedef void icy_metadata_fn(void *arg, const char *block, size_t len);

/* metaint is the icy-metaint header's value; 0 (header missing) passes
 * every byte through as audio. */
void icy_demux_init(struct icy_demux *d, size_t metaint);
/* Appends the audio bytes among data to audio_out and calls metadata
 * with each block once its last byte has arrived. A block with L = 0
 * means "unchanged" and is not reported. -1 if audio_out cannot grow. */
int icy_demux_feed(struct icy_demux *d, const void *data, size_t len, struct evbuffer *audio_out,
		   icy_metadata_fn *metadata, void *arg);

/* Finds key='value' in a block (StreamTitle, StreamUrl) and points value
 * into the block, without the quotes. The value ends at the first "';"
 * as real servers never escape a quote inside a title (It's stays It's);
 * a last field may lack its ';'. The NUL padding ends the text. False
 * when the key is absent. */
bool icy_parse_field(const char *block, size_t len, const char *key, const char **value, size_t *value_len);

#endif
