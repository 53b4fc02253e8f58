#include "protocols/support/feed.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "daemon/child.h"

/* Pacing granularity: small enough for smooth playback, few wakeups. */
#define FEED_TICK_MS 50
#define FEED_FILE_CHUNK 65536

struct feed {
	const struct feed_sink *sink;
	void *arg;
	struct event *tick;
	struct evbuffer *pending;	/* produced, not yet released */
	struct child *child;
	int fd;				/* a file still being read (paced) */
	off_t file_left;
	unsigned long pace;
	uint64_t started_ms, released;
	bool source_done, ok;
	const char *why;
};

static uint64_t feed_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void feed_free(struct feed *feed)
{
	if (feed->child != NULL)
		child_abandon(feed->child);
	if (feed->fd >= 0)
		close(feed->fd);
	if (feed->tick != NULL)
		event_free(feed->tick);
	if (feed->pending != NULL)
		evbuffer_free(feed->pending);
	free(feed);
}

static void feed_schedule(struct feed *feed)
{
	struct timeval tick = { 0, FEED_TICK_MS * 1000 };

	if (feed->pace == 0 || evbuffer_get_length(feed->pending) == 0)
		event_active(feed->tick, EV_TIMEOUT, 0);
	else if (!evtimer_pending(feed->tick, NULL))
		evtimer_add(feed->tick, &tick);
}

/* Paced files are read only as fast as they are released. */
static void feed_read_file(struct feed *feed, size_t want)
{
	while (feed->fd >= 0 && evbuffer_get_length(feed->pending) < want) {
		int n = evbuffer_read(feed->pending, feed->fd, FEED_FILE_CHUNK);

		if (n > 0)
			feed->file_left -= n;
		if (n <= 0 || feed->file_left <= 0) {
			if (n < 0) {
				feed->ok = false;
				feed->why = "cannot read the file";
			}
			close(feed->fd);
			feed->fd = -1;
			feed->source_done = true;
		}
	}
}

static size_t feed_allowance(struct feed *feed)
{
	uint64_t allowed;

	if (feed->pace == 0)
		return SIZE_MAX;
	allowed = (feed_clock_ms() - feed->started_ms) * feed->pace / 1000;
	return allowed > feed->released ? (size_t)(allowed - feed->released) : 0;
}

static void feed_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct feed *feed = arg;
	size_t allowance = feed_allowance(feed);

	feed_read_file(feed, allowance == SIZE_MAX ? FEED_FILE_CHUNK : allowance);
	if (allowance >= evbuffer_get_length(feed->pending)) {
		feed->released += evbuffer_get_length(feed->pending);
		feed->sink->write(feed->arg, feed->pending);
	} else if (allowance > 0) {
		struct evbuffer *part = evbuffer_new();

		if (part != NULL) {
			evbuffer_remove_buffer(feed->pending, part, allowance);
			feed->released += allowance;
			feed->sink->write(feed->arg, part);
			evbuffer_free(part);
		}
	}
	if (feed->source_done && evbuffer_get_length(feed->pending) == 0 && feed->fd < 0) {
		feed->sink->done(feed->arg, feed->ok, feed->why);
		feed_free(feed);
		return;
	}
	if (feed->pace != 0 && (evbuffer_get_length(feed->pending) > 0 || feed->fd >= 0)) {
		struct timeval tick = { 0, FEED_TICK_MS * 1000 };

		evtimer_add(feed->tick, &tick);
	}
	(void)fd;
	(void)what;
}

static struct feed *feed_new(struct event_base *base, unsigned long pace, const struct feed_sink *sink,
			     void *arg)
{
	struct feed *feed = calloc(1, sizeof(*feed));

	if (feed == NULL)
		return NULL;
	feed->fd = -1;
	feed->sink = sink;
	feed->arg = arg;
	feed->pace = pace;
	feed->ok = true;
	feed->started_ms = feed_clock_ms();
	feed->pending = evbuffer_new();
	feed->tick = evtimer_new(base, feed_on_tick, feed);
	if (feed->pending == NULL || feed->tick == NULL) {
		feed_free(feed);
		return NULL;
	}
	return feed;
}

struct feed *feed_bytes(struct event_base *base, const void *data, size_t len, unsigned long pace,
			const struct feed_sink *sink, void *arg)
{
	struct feed *feed = feed_new(base, pace, sink, arg);

	if (feed == NULL)
		return NULL;
	if (evbuffer_add(feed->pending, data, len) < 0) {
		feed_free(feed);
		return NULL;
	}
	feed->source_done = true;
	feed_schedule(feed);
	return feed;
}

struct feed *feed_file(struct event_base *base, int fd, off_t len, unsigned long pace,
		       const struct feed_sink *sink, void *arg)
{
	struct feed *feed = feed_new(base, pace, sink, arg);

	if (feed == NULL) {
		close(fd);
		return NULL;
	}
	if (pace == 0) {
		/* Straight from the page cache to the socket. */
		feed->source_done = true;
		if (len > 0 && sink->write_file(arg, fd, 0, len) < 0) {
			feed->ok = false;
			feed->why = "cannot queue the file";
		} else if (len == 0) {
			close(fd);
		}
	} else {
		feed->fd = fd;
		feed->file_left = len;
		if (len == 0) {
			close(fd);
			feed->fd = -1;
			feed->source_done = true;
		}
	}
	feed_schedule(feed);
	return feed;
}

static void feed_child_output(void *arg, struct evbuffer *data)
{
	struct feed *feed = arg;

	evbuffer_add_buffer(feed->pending, data);
	feed_schedule(feed);
}

static void feed_child_finished(void *arg, enum child_end end)
{
	struct feed *feed = arg;
	static const char *const reasons[] = {
		[CHILD_OK] = NULL,
		[CHILD_FAILED] = "the program failed",
		[CHILD_TIMED_OUT] = "the program timed out",
		[CHILD_CUT] = "the program's output reached output-limit",
	};

	feed->child = NULL;
	feed->source_done = true;
	feed->ok = end == CHILD_OK;
	feed->why = reasons[end];
	feed_schedule(feed);
}

static const struct child_hooks feed_child_hooks = {
	.output = feed_child_output,
	.finished = feed_child_finished,
};

struct feed *feed_command(struct event_base *base, const struct child_spec *spec, struct child_pool *pool,
			  const char *listener, unsigned long pace, const struct feed_sink *sink, void *arg,
			  char *err, size_t err_len)
{
	struct feed *feed = feed_new(base, pace, sink, arg);
	int saved;

	if (feed == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	feed->child = child_spawn(base, spec, pool, listener, &feed_child_hooks, feed, err, err_len);
	if (feed->child == NULL) {
		saved = errno;
		feed_free(feed);
		errno = saved;
		return NULL;
	}
	return feed;
}

void feed_cancel(struct feed *feed)
{
	feed_free(feed);
}
