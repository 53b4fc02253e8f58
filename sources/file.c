/* A file source: read ahead in large reads (never one per datagram), and
 * with loop start again at the end. A file that is missing or unreadable
 * is tried again with back-off: it may be put in place later. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/file.h"
#include "daemon/log.h"
#include "sources/kind.h"

/* Under 64 KiB with libevent's chain header, so that a chain is 64 KiB
 * and not a 128 KiB one that malloc would mmap and munmap every time. */
#define FILE_READ_CHUNK (60 * 1024)

struct file_source {
	int fd;
	struct event *retry;
	unsigned failures;
	bool read_since_open;		/* an empty looping file must not spin */
};

static void file_fill(struct source *src);

/* error 0: what says it all. */
static void file_fail(struct source *src, const char *what, int error)
{
	struct file_source *f = src->kind;
	unsigned delay = source_backoff_ms(src, ++f->failures);
	struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };

	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	src->counters.failures++;
	if (error == 0)
		source_set_state(src, "backing off", LOG_WARNING, "%s: %s; trying again with back-off",
				 src->conf->file, what);
	else
		source_set_state(src, "backing off", LOG_WARNING, "%s %s: %s; trying again with back-off", what,
				 src->conf->file, strerror(error));
	evtimer_add(f->retry, &tv);
}

static bool file_open(struct source *src)
{
	struct file_source *f = src->kind;

	struct stat st;
	char err[160];

	/* A FIFO or a device would block the loop on open or read. */
	f->fd = file_open_regular(src->conf->file, &st, err, sizeof(err));
	if (f->fd < 0) {
		file_fail(src, err, 0);
		return false;
	}
	f->read_since_open = false;
	source_set_state(src, "reading", LOG_INFO, "reading %s", src->conf->file);
	return true;
}

/* At the end: once more from the start, or the source has ended. */
static bool file_at_end(struct source *src)
{
	struct file_source *f = src->kind;

	if (!src->conf->loop) {
		close(f->fd);
		f->fd = -1;
		source_set_state(src, "ended", LOG_INFO, "%s sent to its end", src->conf->file);
		source_mark_ended(src);
		return false;
	}
	if (!f->read_since_open) {
		file_fail(src, "nothing to loop in", ENODATA);
		return false;
	}
	if (lseek(f->fd, 0, SEEK_SET) < 0) {
		file_fail(src, "cannot rewind", errno);
		return false;
	}
	f->read_since_open = false;
	source_mark_discontinuity(src);
	src->counters.restarts++;
	return true;
}

/* One read() into the buffer's own space: evbuffer_read() would ask
 * FIONREAD first and read in pieces, three syscalls where one does. */
static ssize_t file_read_chunk(struct source *src, int fd)
{
	struct evbuffer_iovec vec;
	ssize_t n;

	if (evbuffer_reserve_space(src->buffer, FILE_READ_CHUNK, &vec, 1) < 1)
		return -1;
	n = read(fd, vec.iov_base, vec.iov_len < FILE_READ_CHUNK ? vec.iov_len : FILE_READ_CHUNK);
	vec.iov_len = n > 0 ? (size_t)n : 0;
	evbuffer_commit_space(src->buffer, &vec, 1);
	return n;
}

static void file_fill(struct source *src)
{
	struct file_source *f = src->kind;
	size_t before = evbuffer_get_length(src->buffer);

	while (f->fd >= 0 && !source_full(src)) {
		ssize_t n = file_read_chunk(src, f->fd);

		if (n > 0) {
			f->read_since_open = true;
			f->failures = 0;
			src->counters.bytes += (uint64_t)n;
		} else if (n == 0) {
			/* The last loop's break not taken yet: a short file
			 * would loop many times in one fill, and its consumer
			 * learns only the last break (RTP's marker bits).
			 * source_taken() resumes once it has been taken. */
			if (src->discontinuity || !file_at_end(src))
				break;
		} else if (errno != EINTR) {
			file_fail(src, "cannot read", errno);
			break;
		}
	}
	if (evbuffer_get_length(src->buffer) > before)
		source_arrived(src);
}

static void file_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct source *src = arg;

	if (file_open(src))
		file_fill(src);
	(void)fd;
	(void)what;
}

static int file_start(struct source *src, char *err, size_t err_len)
{
	struct file_source *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->fd = -1;
	src->kind = f;
	f->retry = evtimer_new(src->base, file_on_retry, src);
	if (f->retry == NULL)
		return -1;
	if (file_open(src))
		file_fill(src);
	(void)err;
	(void)err_len;
	return 0;
}

static void file_resume(struct source *src)
{
	file_fill(src);
}

static void file_stop(struct source *src)
{
	struct file_source *f = src->kind;

	if (f == NULL)
		return;
	if (f->retry != NULL)
		event_free(f->retry);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
	src->kind = NULL;
}

const struct source_ops source_file_ops = {
	.start = file_start,
	.resume = file_resume,
	.stop = file_stop,
};
