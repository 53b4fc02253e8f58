#include "protocols/support/oneshot.h"

#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <stdlib.h>

#include "daemon/chassis.h"
#include "daemon/log.h"

#define ONESHOT_BUSY "busy: try again later\r\n"

struct oneshot {
	struct conn *conn;
	struct oneshot_counters *counters;
	const char *what;
	struct feed *feed;
};

static void oneshot_write(void *arg, struct evbuffer *data)
{
	struct oneshot *shot = arg;

	conn_write_buffer(shot->conn, data);
}

static int oneshot_write_file(void *arg, int fd, off_t offset, off_t len)
{
	struct oneshot *shot = arg;

	return conn_write_file(shot->conn, fd, offset, len);
}

static void oneshot_done(void *arg, bool ok, const char *why)
{
	struct oneshot *shot = arg;

	shot->feed = NULL;
	if (ok) {
		shot->counters->served++;
	} else {
		shot->counters->failed++;
		conn_log(shot->conn, LOG_WARNING, "%s failed: %s", shot->what, why);
	}
	conn_close_after_flush(shot->conn);
}

static bool oneshot_full(void *arg)
{
	struct oneshot *shot = arg;

	return conn_output_full(shot->conn);
}

static const struct feed_sink oneshot_sink = {
	.write = oneshot_write,
	.write_file = oneshot_write_file,
	.done = oneshot_done,
	.full = oneshot_full,
};

static struct oneshot *oneshot_open(struct conn *conn, struct oneshot_counters *counters, const char *what)
{
	struct oneshot *shot = calloc(1, sizeof(*shot));

	if (shot == NULL)
		return NULL;
	shot->conn = conn;
	shot->counters = counters;
	shot->what = what;
	conn_set_data(conn, shot);
	return shot;
}

static int oneshot_started(struct oneshot *shot, struct feed *feed, const char *err, bool busy_message)
{
	shot->feed = feed;
	if (feed != NULL)
		return 0;
	if (errno == EAGAIN) {
		shot->counters->busy++;
		conn_log(shot->conn, LOG_NOTICE, "no %s: %s", shot->what, err);
		if (!busy_message)
			return -1;
		conn_write(shot->conn, ONESHOT_BUSY, sizeof(ONESHOT_BUSY) - 1);
		conn_close_after_flush(shot->conn);
		return 0;
	}
	shot->counters->failed++;
	conn_log(shot->conn, LOG_WARNING, "%s failed: %s", shot->what, err);
	return -1;
}

int oneshot_conn_open(struct conn *conn, struct oneshot_counters *counters, const char *what, oneshot_body_fn *body,
		      void *state, bool busy_message)
{
	struct oneshot *shot = oneshot_open(conn, counters, what);
	char err[PATH_MAX + 64] = "out of memory";

	if (shot == NULL)
		return -1;
	return oneshot_started(shot, body(state, &oneshot_sink, shot, err, sizeof(err)), err, busy_message);
}

/* What the client sends is ignored (RFC 865), but read and dropped so a
 * chatty client cannot fill our buffers. */
void oneshot_conn_input(struct conn *conn, struct evbuffer *in)
{
	(void)conn;
	evbuffer_drain(in, evbuffer_get_length(in));
}

/* The client may half-close at once (`nc -N`); the body still comes. */
void oneshot_conn_end_of_input(struct conn *conn)
{
	(void)conn;
}

void oneshot_conn_drained(struct conn *conn)
{
	struct oneshot *shot = conn_data(conn);

	if (shot != NULL)
		feed_sink_drained(shot->feed);
}

void oneshot_conn_close(struct conn *conn)
{
	struct oneshot *shot = conn_data(conn);

	if (shot == NULL)
		return;
	/* An early disconnect kills the program. */
	if (shot->feed != NULL)
		feed_cancel(shot->feed);
	free(shot);
}
