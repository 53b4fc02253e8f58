/* Feeds: one produced body (a fortune, a clip, a program's output) on its
 * way to a sink, optionally paced at a byte rate.
 *
 * The producer side knows nothing of TCP: the fortune and cookie modules
 * hand a connection's sink to a feed today, and an HTTP response can be a
 * sink tomorrow. The sink hears done() exactly once, never from inside the
 * call that started the feed, and the feed is gone after it. */
#ifndef CHASSISD_FEED_H
#define CHASSISD_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct child_pool;
struct child_spec;
struct event_base;
struct evbuffer;
struct feed;

struct feed_sink {
	void (*write)(void *arg, struct evbuffer *data);	/* takes every byte */
	int (*write_file)(void *arg, int fd, off_t offset, off_t len);	/* takes the fd */
	void (*done)(void *arg, bool ok, const char *why);
	/* The sink holds enough unsent (its client does not read): a
	 * program's output waits in its pipe until feed_sink_drained(). */
	bool (*full)(void *arg);
};

/* pace: bytes per second, 0 for as fast as the sink takes them. */
struct feed *feed_bytes(struct event_base *base, const void *data, size_t len, unsigned long pace,
			const struct feed_sink *sink, void *arg);
/* Takes the fd; unpaced it goes out with sendfile. */
struct feed *feed_file(struct event_base *base, int fd, off_t len, unsigned long pace,
		       const struct feed_sink *sink, void *arg);
/* NULL with errno EAGAIN when over a child cap, else another errno; the
 * reason is in err. */
struct feed *feed_command(struct event_base *base, const struct child_spec *spec, struct child_pool *pool,
			  const char *listener, unsigned long pace, const struct feed_sink *sink, void *arg,
			  char *err, size_t err_len);
/* The sink has room again (its connection's drained hook): a program
 * held back by full() goes on. */
void feed_sink_drained(struct feed *feed);
/* The sink is gone: stop, kill any child, free. No done() follows. */
void feed_cancel(struct feed *feed);

#endif
