/* A stream's source: where the bytes (or datagrams) that a stream sends
 * come from. One kind per source (conf_source): a file, optionally
 * looping; a program's stdout; an HTTP or Icecast URL through libcurl; or
 * another unit's received datagrams.
 *
 * A source reads ahead into a bounded buffer and stops reading while the
 * buffer is full, so a source faster than the stream is read no faster
 * than the stream sends; the stream takes what it needs and says so with
 * source_taken(). Failures are the source's own business: it backs off,
 * retries, logs once per change of state and shows it in its status. */
#ifndef CHASSISD_SOURCE_H
#define CHASSISD_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf_source;
struct evbuffer;
struct source;
struct unit_env;

struct source_counters {
	uint64_t bytes;			/* read from the source (after ICY metadata is removed) */
	uint64_t datagrams;		/* listener sources: taken whole */
	uint64_t restarts;		/* connects, spawns, loops after the first */
	uint64_t failures;		/* refused, error status, exit != 0, stalls */
	uint64_t dropped;		/* listener sources: datagrams over the read-ahead */
};

/* ready(arg) runs (never from inside a source call) when data arrives in
 * an empty buffer, and when the source ends. NULL with the reason in err
 * when it cannot start at all (a missing listener, out of memory); a
 * missing file or a refused URL is not that: it is retried. */
struct source *source_open(const struct conf_source *conf, const struct unit_env *env, void (*ready)(void *arg),
			   void *arg, char *err, size_t err_len);
/* Bytes ready to send. In datagram mode (source_datagrams()) each record
 * is a 2-byte big-endian length and the datagram. Drain what is taken,
 * then call source_taken(). */
struct evbuffer *source_buffer(struct source *src);
bool source_datagrams(const struct source *src);
void source_taken(struct source *src);
/* True once nothing more will come (a file without loop at its end, a
 * command or URL that was told to stop). The buffer may still hold bytes. */
bool source_ended(const struct source *src);
/* A discontinuity since the last call: the file looped or the URL
 * reconnected (RTP sets its marker bit on it). */
bool source_take_discontinuity(struct source *src);
/* Where the last discontinuity is in the source's bytes: counting every
 * byte it has put in its buffer, the first byte after the break. A
 * consumer that reads ahead marks the packet that holds it. */
uint64_t source_discontinuity_offset(const struct source *src);
/* "reading", "connecting", "connected", "backing off", "ended", "failed" */
const char *source_state(const struct source *src);
/* The last ICY StreamTitle of the current or last transfer, as received
 * (escaped for display by the caller), or NULL; cleared when a new
 * transfer begins. */
const char *source_title(const struct source *src);
const struct source_counters *source_counters(const struct source *src);
void source_close(struct source *src);

#endif
