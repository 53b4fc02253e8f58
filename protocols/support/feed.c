#include "protocols/support/feed.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "daemon/child.h"
#include "daemon/pacer.h"

/* Pacing granularity: 50 ms worth of bytes per release, small enough for
 * smooth playback, few wakeups; released on the pacer's deadlines, so a
 * late wakeup does not make the whole feed late. */
#define FEED_STEPS_PER_SECOND 20
#define FEED_FILE_CHUNK 65536
/* A program's output read ahead of a paced release, at most: beyond it the
 * program waits in its pipe (the rest of its output-limit is not held). */
#define FEED_PENDING_MAX (256 * 1024)

struct feed {
	const struct feed_sink *sink;
	void *arg;
	struct pacer *tick;
	struct pace pace;
	struct evbuffer *pending;	/* produced, not yet released */
	struct child *child;
	int fd;				/* a file still being read (paced) */
	off_t file_left;
	unsigned long step;		/* bytes per release when paced */
	bool source_done, ok;
	bool held;			/* the child's output paused */
	const char *why;
};

static void feed_free(struct feed *feed)
{
	if (feed->child != NULL)
		child_abandon(feed->child);
	if (feed->fd >= 0)
		close(feed->fd);
	pacer_free(feed->tick);
	if (feed->pending != NULL)
		evbuffer_free(feed->pending);
	free(feed);
}

/* A client that does not read, or a pace slower than the program, must
 * not make the daemon hold the program's whole output: the pipe fills and
 * the program waits. Held past the limit, released at half of it. */
static void feed_check_hold(struct feed *feed)
{
	size_t pending = evbuffer_get_length(feed->pending);
	bool sink_full = feed->sink->full != NULL && feed->sink->full(feed->arg);

	if (feed->child == NULL)
		return;
	if (!feed->held && (sink_full || pending > FEED_PENDING_MAX)) {
		feed->held = true;
		child_pause_output(feed->child);
	} else if (feed->held && !sink_full && pending <= FEED_PENDING_MAX / 2) {
		feed->held = false;
		child_resume_output(feed->child);
	}
}

void feed_sink_drained(struct feed *feed)
{
	if (feed != NULL)
		feed_check_hold(feed);
}

static void feed_schedule(struct feed *feed)
{
	if (feed->pace.rate == 0 || evbuffer_get_length(feed->pending) == 0)
		pacer_at(feed->tick, 0);
	else if (!pacer_armed(feed->tick))
		pacer_at(feed->tick, pace_deadline(&feed->pace, feed->step));
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

static void feed_on_tick(void *arg, uint64_t now_ns)
{
	struct feed *feed = arg;
	uint64_t allowed = pace_allowance(&feed->pace, now_ns);
	size_t allowance = allowed > SIZE_MAX ? SIZE_MAX : (size_t)allowed;

	feed_read_file(feed, allowance == SIZE_MAX ? FEED_FILE_CHUNK : allowance);
	if (allowance >= evbuffer_get_length(feed->pending)) {
		pace_sent(&feed->pace, evbuffer_get_length(feed->pending));
		feed->sink->write(feed->arg, feed->pending);
	} else if (allowance > 0) {
		struct evbuffer *part = evbuffer_new();

		if (part != NULL) {
			evbuffer_remove_buffer(feed->pending, part, allowance);
			pace_sent(&feed->pace, allowance);
			feed->sink->write(feed->arg, part);
			evbuffer_free(part);
		}
	}
	feed_check_hold(feed);
	if (feed->source_done && evbuffer_get_length(feed->pending) == 0 && feed->fd < 0) {
		feed->sink->done(feed->arg, feed->ok, feed->why);
		feed_free(feed);
		return;
	}
	if (feed->pace.rate != 0 && (evbuffer_get_length(feed->pending) > 0 || feed->fd >= 0))
		pacer_at(feed->tick, pace_deadline(&feed->pace, feed->step));
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
	feed->step = pace / FEED_STEPS_PER_SECOND ? pace / FEED_STEPS_PER_SECOND : 1;
	pace_start(&feed->pace, pace, 2 * feed->step, pacer_now_ns());
	feed->ok = true;
	feed->pending = evbuffer_new();
	feed->tick = pacer_new(base, false, feed_on_tick, feed);
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
	feed_check_hold(feed);
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
