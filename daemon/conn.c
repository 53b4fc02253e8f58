/* The per-connection chassis.
 *
 * Built on plain events and evbuffers rather than bufferevents: the output
 * is written straight through at the end of each callback, and EPOLLOUT is
 * armed only when the kernel buffer is full. A bufferevent arms and disarms
 * it around every write (two epoll_ctl calls and an extra wakeup per round
 * trip) and asks FIONREAD before every read. Idle timeouts are not timers
 * either: the chassis keeps every connection ordered by last activity and
 * one sweep twice a second closes those idle too long.
 *
 * A connection knows nothing of listeners or the runtime: its profile
 * says what it runs with, and its owner hears of its end. Ending one
 * connection never ends another at once: conn_abort() takes effect in the
 * aborted connection's own callback, so no caller is left holding a freed
 * connection. */
#include "daemon/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "conf/addr.h"
#include "daemon/chassis.h"
#include "daemon/log.h"
#include "daemon/tls.h"

/* How long a closing connection keeps reading (and discarding) after its
 * last byte went out, so that the client's unread request bytes do not turn
 * our close into a reset that destroys the response in flight. */
#define CONN_LINGER_MS 2000
/* Bytes asked of the kernel per read. */
#define CONN_READ_CHUNK 16384

enum {
	CONN_CLOSING = 1 << 0,		/* close once the output is flushed */
	CONN_READ_EOF = 1 << 1,		/* the peer shut down its write side */
	CONN_FULL = 1 << 2,		/* output at the buffer limit: not reading */
	CONN_PAUSED = 1 << 3,		/* the protocol asked not to read */
	CONN_LINGERING = 1 << 4,	/* output flushed, write side shut */
	CONN_LOCAL_KNOWN = 1 << 5,
	CONN_READING = 1 << 6,		/* read event added */
	CONN_WRITING = 1 << 7,		/* write event added: the kernel buffer was full */
	CONN_IN_HOOK = 1 << 8,		/* a protocol hook runs: flush when it returns */
	CONN_FAILED = 1 << 9,		/* a write failed: end at the next settle */
	CONN_FILE_QUEUED = 1 << 10,	/* a file segment waits in the output */
	CONN_SHUT_PENDING = 1 << 11,	/* shut the write side once flushed */
	CONN_WRITE_SHUT = 1 << 12,	/* ... and that is done */
	CONN_DECOUPLED = 1 << 13,	/* a full output does not stop reading */
	CONN_ABORTING = 1 << 14,	/* end at the next settle, with a reset */
	CONN_FILE_SHORT = 1 << 15,	/* with CONN_FAILED: a queued file ended early */
	CONN_PEER_RESET = 1 << 16,	/* the peer reset: nothing to tell it */
	CONN_HANDED_OVER = 1 << 17,	/* the socket is a program's (exec) */
	CONN_HANDSHAKING = 1 << 18,	/* TLS: no hook has run yet */
};

/* The most memory chains the head before a file is sent from in one go. */
#define CONN_HEAD_IOVECS 8
/* A file goes into the output in chunks, because libevent's sendfile call
 * ignores evbuffer_write_atmost's limit and would push a whole file at
 * once; and a connection writes at most a chunk or so per loop turn. One
 * large download then no longer holds the loop for milliseconds, and the
 * transfers interleave: on loopback, 4 clients of a 10 MiB file got about
 * 1.5x the throughput of whole-file writes (the turn lighttpd takes). */
#define CONN_FILE_CHUNK ((off_t)256 * 1024)
#define CONN_WRITE_SHARE ((size_t)256 * 1024)
/* A file over TLS is read this much at a time: one TLS record's worth. */
#define CONN_TLS_FILE_CHUNK 16384

/* A file over TLS, not yet read. The output of a TLS connection cannot
 * drain to the fd, and libevent maps a file segment added to such a
 * buffer: a file cut short under the map (a new version copied over it)
 * raised SIGBUS when the pages past its new end were read, and the daemon
 * died. So the file waits here, as a range, and is read with pread a
 * chunk at a time just before it is encrypted: a cut shows as a short
 * read, and memory holds a chunk, not the file. `gap` is the memory
 * queued between the previous range (or the output's front) and this one:
 * what was written behind a file goes out behind it. */
struct conn_range {
	TAILQ_ENTRY(conn_range) link;
	int fd;
	/* NULL: the range owns fd (conn_write_file). Else a chain holding the
	 * caller's segment, and so its fd, open for as long as the range
	 * reads it: no descriptor of its own per download. */
	struct evbuffer *anchor;
	const struct evbuffer_file_segment *segment;	/* anchored: to extend */
	off_t offset, left;
	size_t gap;
};
TAILQ_HEAD(conn_ranges, conn_range);

struct conn {
	int fd;
	unsigned flags;
	enum conn_end end;		/* why it ends: for the close hook */
	struct evbuffer *in, *out;
	struct event *readable, *writable;
	struct tls_session *tls;	/* NULL: plain TCP */
	struct event *handshake_timer;
	struct conn_owner *owner;
	struct chassis *chassis;
	struct conn_profile profile;
	size_t head_len;		/* memory bytes at the front, before a file */
	struct conn_ranges ranges;	/* TLS: files still to read, in order */
	size_t range_memory;		/* memory bytes before the last range (the gaps) */
	uint64_t range_bytes;		/* file bytes the ranges have left */
	uint64_t last_active_ms;
	uint64_t opened_ms;
	uint64_t bytes_in, bytes_out;	/* for connection-log */
	unsigned idle_ms;		/* 0 = never */
	void *data;
	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	socklen_t peer_len;
	socklen_t local_len;
	TAILQ_ENTRY(conn) owner_link;	/* owner->conns */
	TAILQ_ENTRY(conn) activity_link;	/* chassis->by_activity, least recently active first */
};

uint64_t conn_clock_ms(void)
{
	struct timespec ts;

	/* Not the coarse clock: its 4 ms steps could close a connection a
	 * hair before its timeout. This one is a vDSO read too. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct log_context conn_context(const struct conn *conn)
{
	return (struct log_context){
		.listener = conn->profile.unit,
		.protocol = conn->profile.protocol,
		.transport = conn->profile.transport,
		.peer = (const struct sockaddr *)&conn->peer,
	};
}

void conn_log(const struct conn *conn, int level, const char *fmt, ...)
{
	struct log_context ctx;
	char message[1024];
	va_list ap;

	if (!log_enabled(level))
		return;
	ctx = conn_context(conn);
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	log_write(level, &ctx, "%s", message);
}

void conn_log_line(const struct conn *conn, int level, const struct log_field *fields, size_t n_fields,
		   const char *line)
{
	struct log_context ctx;

	if (!log_enabled(level))
		return;
	ctx = conn_context(conn);
	ctx.fields = fields;
	ctx.n_fields = n_fields;
	ctx.bare_text = true;
	log_write(level, &ctx, "%s", line);
}

const char *chassis_published(const struct conn *conn, const char *name, const char **content_type)
{
	return chassis_document(conn->chassis, name, content_type);
}

void chassis_stats(const struct conn *conn, struct chassis_totals *totals,
		   void (*each)(const struct chassis_listener_stats *stats, void *arg), void *arg)
{
	struct chassis *ch = conn->chassis;

	if (ch->stats != NULL) {
		ch->stats(ch->stats_arg, totals, each, arg);
		return;
	}
	*totals = (struct chassis_totals){ .connections = ch->connections, .max_connections = ch->max_connections };
}

static void conn_touch(struct conn *conn)
{
	struct conn_list *conns = &conn->chassis->by_activity;

	conn->last_active_ms = conn_clock_ms();
	if (TAILQ_NEXT(conn, activity_link) != NULL) {
		TAILQ_REMOVE(conns, conn, activity_link);
		TAILQ_INSERT_TAIL(conns, conn, activity_link);
	}
}

/* A closing connection goes on reading (and discarding) until its end,
 * rather than leave epoll and join it again to linger. */
static bool conn_wants_reading(const struct conn *conn)
{
	unsigned stops = conn->flags & CONN_DECOUPLED ? CONN_PAUSED : CONN_FULL | CONN_PAUSED;

	return !(conn->flags & (CONN_READ_EOF | CONN_HANDED_OVER)) &&
	       ((conn->flags & (CONN_CLOSING | CONN_LINGERING)) ||
		(!(conn->flags & stops) && evbuffer_get_length(conn->in) < conn->profile.buffer_size));
}

/* Inside a hook, conn_after_hook() updates epoll once the hook returns.
 * A connection that stops wanting input keeps EPOLLIN until input comes
 * (conn_on_readable disarms it then): a client that waits for each
 * answer, as nearly all do, costs no epoll_ctl pair per long answer. */
static void conn_update_reading(struct conn *conn)
{
	if ((conn->flags & CONN_IN_HOOK) || !conn_wants_reading(conn))
		return;
	if (!(conn->flags & CONN_READING)) {
		event_add(conn->readable, NULL);
		conn->flags |= CONN_READING;
	}
	/* Decrypted bytes left inside OpenSSL (the input buffer was full)
	 * make no EPOLLIN: go and take them. Only once the event is added:
	 * event_add() does not register an event that event_active() queued. */
	if (conn->tls != NULL && tls_pending(conn->tls))
		event_active(conn->readable, EV_READ, 0);
}

static void conn_range_free(struct conn_range *range)
{
	if (range->anchor != NULL)
		evbuffer_free(range->anchor);
	else
		close(range->fd);
	free(range);
}

static void conn_free_io(struct conn *conn)
{
	struct conn_range *range;

	while ((range = TAILQ_FIRST(&conn->ranges)) != NULL) {
		TAILQ_REMOVE(&conn->ranges, range, link);
		conn_range_free(range);
	}
	if (conn->readable)
		event_free(conn->readable);
	if (conn->writable)
		event_free(conn->writable);
	if (conn->in)
		evbuffer_free(conn->in);
	if (conn->out)
		evbuffer_free(conn->out);
	if (conn->handshake_timer)
		event_free(conn->handshake_timer);
	tls_session_free(conn->tls);
	if (conn->profile.tls != NULL)
		tls_context_release(conn->profile.tls);
}

/* Bytes still to send: the output's memory and, over TLS, what the files
 * queued have left to read. */
static uint64_t conn_pending(const struct conn *conn)
{
	return evbuffer_get_length(conn->out) + conn->range_bytes;
}

static const char *const conn_end_names[] = {
	[CONN_END_DONE] = "done",
	[CONN_END_IDLE] = "idle timeout",
	[CONN_END_FAILED] = "failed",
	[CONN_END_CLOSED] = "closed at stop",
	[CONN_END_ABORTED] = "aborted",
	[CONN_END_FILE_SHORT] = "file cut short",
	[CONN_END_HANDSHAKE] = "TLS handshake failed",
};

/* connection-log: what xinetd's log_on_exit gives, for every protocol. */
static void conn_log_closed(const struct conn *conn)
{
	uint64_t ms = conn_clock_ms() - conn->opened_ms;

	if (conn->flags & CONN_HANDED_OVER) {
		conn_log(conn, LOG_INFO, "connection closed: bytes unknown (the socket was a program's), %llu.%03llu s, %s",
			 (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000), conn_end_names[conn->end]);
		return;
	}
	conn_log(conn, LOG_INFO, "connection closed: %llu bytes in, %llu bytes out, %llu.%03llu s, %s",
		 (unsigned long long)conn->bytes_in, (unsigned long long)conn->bytes_out,
		 (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000), conn_end_names[conn->end]);
}

/* How an outbound handshake ended, to whoever started it. Once: the pointer is cleared before the call. */
static bool conn_tell_handshake(struct conn *conn, int error)
{
	bool (*outcome)(void *arg, int error) = conn->profile.handshake_outcome;

	conn->profile.handshake_outcome = NULL;
	return outcome == NULL || outcome(conn->profile.handshake_arg, error);
}

/* The owner hears last, once the socket is closed: what it frees (the
 * profile's settings, a retired listener) the close hook may still use. */
static void conn_finish(struct conn *conn, enum conn_end end)
{
	struct conn_owner *owner = conn->owner;
	struct chassis *ch = conn->chassis;

	conn->end = end;
	if (conn->flags & CONN_HANDSHAKING)
		conn_tell_handshake(conn, ECONNABORTED);
	/* A connection whose handshake never finished ran no hook. */
	if (conn->profile.hooks->close != NULL && !(conn->flags & CONN_HANDSHAKING))
		conn->profile.hooks->close(conn);
	if (conn->tls != NULL && end == CONN_END_DONE)
		tls_close_notify(conn->tls);
	if (conn->profile.connection_log)
		conn_log_closed(conn);
	else
		conn_log(conn, LOG_DEBUG, "connection closed");
	TAILQ_REMOVE(&owner->conns, conn, owner_link);
	TAILQ_REMOVE(&ch->by_activity, conn, activity_link);
	owner->n_conns--;
	ch->connections--;
	conn_free_io(conn);
	/* A reset tells the peer at once, and that an answer is cut; a peer
	 * that reset needs no telling. */
	if ((end == CONN_END_ABORTED || end == CONN_END_FAILED || end == CONN_END_FILE_SHORT) &&
	    !(conn->flags & (CONN_PEER_RESET | CONN_HANDED_OVER)))
		setsockopt(conn->fd, SOL_SOCKET, SO_LINGER, &(struct linger){ 1, 0 }, sizeof(struct linger));
	if (!(conn->flags & CONN_HANDED_OVER))
		close(conn->fd);
	owner->closed(owner, conn, end);
	free(conn);
	chassis_release(ch);
}

/* Sends the memory before a queued file (an HTTP head) so that it leaves
 * with the body's first bytes in one segment. A body that fits the turn:
 * MSG_MORE holds the head until sendfile adds the body (two segments
 * doubled the kernel's work per keep-alive answer; a cork costs two more
 * syscalls). A longer body: TCP_CORK until the turn's writes end, which
 * measured on loopback (10 MiB to 4 clients, paired runs against
 * lighttpd, which corks the same way) 6% more requests/s than MSG_MORE.
 * True when the caller must uncork. */
static bool conn_send_head(struct conn *conn)
{
	struct evbuffer_iovec peek[CONN_HEAD_IOVECS];
	struct iovec vec[CONN_HEAD_IOVECS];
	int n_vec = evbuffer_peek(conn->out, (ev_ssize_t)conn->head_len, NULL, peek, CONN_HEAD_IOVECS);
	size_t left = conn->head_len;
	struct msghdr msg = { .msg_iov = vec };
	bool cork = evbuffer_get_length(conn->out) - conn->head_len > CONN_WRITE_SHARE;
	ssize_t sent;

	for (int i = 0; i < n_vec && i < CONN_HEAD_IOVECS && left > 0; i++) {
		vec[i].iov_base = peek[i].iov_base;
		vec[i].iov_len = peek[i].iov_len < left ? peek[i].iov_len : left;
		left -= vec[i].iov_len;
		msg.msg_iovlen++;
	}
	conn->head_len = 0;
	if (cork)
		setsockopt(conn->fd, IPPROTO_TCP, TCP_CORK, &(int){ 1 }, sizeof(int));
	sent = sendmsg(conn->fd, &msg, (cork ? 0 : MSG_MORE) | MSG_NOSIGNAL);
	if (sent > 0) {
		evbuffer_drain(conn->out, (size_t)sent);
		conn->bytes_out += (uint64_t)sent;
	}
	return cork;
}

/* libevent's evbuffer_write() gives 0 both for sendfile's EAGAIN and for
 * sendfile finding the end of the file: a file truncated under a queued
 * segment. Only EAGAIN sets errno. (Over TLS, pread finds the end.)
 * Waiting on would stall the client until the idle timeout; the
 * connection ends at once, with a reset, so that the client knows the
 * answer is cut. */
static void conn_note_file_short(struct conn *conn)
{
	conn_log(conn, LOG_INFO, "a file ended before its length (changed while being sent): connection reset");
	conn->flags |= CONN_FAILED | CONN_FILE_SHORT;
}

/* EPOLLOUT, for output the kernel did not take yet. event_add() does not
 * register an event that event_active() queued and that has not run: it
 * would never see EPOLLOUT. The queued run is only a flush, which the
 * caller is doing or waits for, so it is dropped. */
static void conn_arm_writable(struct conn *conn)
{
	if (conn->flags & CONN_WRITING)
		return;
	event_del(conn->writable);
	event_add(conn->writable, NULL);
	conn->flags |= CONN_WRITING;
}

static void conn_write_plain(struct conn *conn);
static void conn_after_write(struct conn *conn, int n, int write_errno, bool sent);

/* A range read to its end leaves; the memory before it (its last chunk
 * among it) is now before the next one. */
static void conn_range_done(struct conn *conn, struct conn_range *range)
{
	struct conn_range *next = TAILQ_NEXT(range, link);

	if (next != NULL)
		next->gap += range->gap;
	else
		conn->range_memory -= range->gap;
	TAILQ_REMOVE(&conn->ranges, range, link);
	conn_range_free(range);
}

/* The first range's next chunk, put at the output's front (everything
 * before the range has been sent). From there it is memory like any
 * other: an SSL_write that must be retried finds the same bytes. False
 * when the file came up short or could not be read: the connection ends,
 * with no byte sent past what the file has. */
static bool conn_range_read(struct conn *conn)
{
	struct conn_range *range = TAILQ_FIRST(&conn->ranges);
	char chunk[CONN_TLS_FILE_CHUNK];
	size_t want = range->left < (off_t)sizeof(chunk) ? (size_t)range->left : sizeof(chunk);
	ssize_t n;

	do
		n = pread(range->fd, chunk, want, range->offset);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		conn_note_file_short(conn);
		return false;
	}
	if (n < 0 || evbuffer_prepend(conn->out, chunk, (size_t)n) < 0) {
		conn_log(conn, LOG_WARNING, "reading a file to send failed: %s",
			 n < 0 ? strerror(errno) : "out of memory");
		conn->flags |= CONN_FAILED;
		return false;
	}
	range->offset += n;
	range->left -= n;
	range->gap = (size_t)n;
	conn->range_memory += (size_t)n;
	conn->range_bytes -= (uint64_t)n;
	if (range->left == 0)
		conn_range_done(conn, range);
	return true;
}

/* Through OpenSSL, a chunk at a time, memory up to the next file's place
 * and then the file's next chunk. The length offered never shrinks
 * between a write that OpenSSL must retry and its retry (the front chunk
 * and the gap only shrink by what was sent), as SSL_write requires.
 * Returns as evbuffer_write() does; 0 with CONN_FAILED when a file failed. */
static int conn_write_tls(struct conn *conn, size_t *total)
{
	struct evbuffer_iovec front;
	ssize_t n = 0;

	while (*total < CONN_WRITE_SHARE) {
		struct conn_range *range = TAILQ_FIRST(&conn->ranges);
		size_t len;

		if (range != NULL && range->gap == 0) {
			if (!conn_range_read(conn))
				return 0;
			continue;
		}
		if (evbuffer_peek(conn->out, -1, NULL, &front, 1) <= 0)
			break;
		len = range != NULL && range->gap < front.iov_len ? range->gap : front.iov_len;
		n = tls_write(conn->tls, front.iov_base, len);
		if (n <= 0)
			return n < 0 ? -1 : 0;
		evbuffer_drain(conn->out, (size_t)n);
		conn->bytes_out += (uint64_t)n;
		*total += (size_t)n;
		if (range != NULL) {
			range->gap -= (size_t)n;
			conn->range_memory -= (size_t)n;
		}
	}
	return (int)n;
}

/* Writes up to a turn's share now and keeps EPOLLOUT armed while a rest
 * waits. */
static void conn_write_out(struct conn *conn)
{
	if (conn->tls != NULL) {
		size_t total = 0;
		int n;

		errno = 0;
		n = conn_write_tls(conn, &total);
		if (!(conn->flags & CONN_FAILED))	/* else a file failed: ends now */
			conn_after_write(conn, n, errno, total > 0);
		return;
	}
	conn_write_plain(conn);
}

static void conn_write_plain(struct conn *conn)
{
	/* The head counts under the share, so that a turn ends where the
	 * shortened first file chunk ends. */
	size_t total = conn->head_len;
	bool corked = conn->head_len > 0 && conn_send_head(conn);
	int n = 0, write_errno;

	/* One evbuffer_write stops where memory meets a file chunk: keep
	 * going while the kernel takes it, up to the turn's share. Never on
	 * an empty buffer: libevent returns -1 for it with errno untouched. */
	while (evbuffer_get_length(conn->out) > 0) {
		errno = 0;
		n = evbuffer_write(conn->out, conn->fd);
		if (n > 0)
			conn->bytes_out += (uint64_t)n;
		if (n <= 0 || (total += (size_t)n) >= CONN_WRITE_SHARE)
			break;
	}
	write_errno = errno;
	if (corked)
		setsockopt(conn->fd, IPPROTO_TCP, TCP_CORK, &(int){ 0 }, sizeof(int));
	if (n == 0 && write_errno == 0 && evbuffer_get_length(conn->out) > 0) {
		conn_note_file_short(conn);
		return;
	}
	conn_after_write(conn, n, write_errno, n > 0);
}

/* A failed write ends the connection; a rest arms EPOLLOUT. */
static void conn_after_write(struct conn *conn, int n, int write_errno, bool sent)
{
	if (n < 0 && write_errno != EAGAIN && write_errno != EWOULDBLOCK && write_errno != EINTR) {
		conn_log(conn, LOG_DEBUG, "write failed: %s", strerror(write_errno));
		conn->flags |= CONN_FAILED;
		return;
	}
	if (sent)
		conn_touch(conn);
	if (conn_pending(conn) > 0) {
		conn_arm_writable(conn);
	} else {
		if (conn->flags & CONN_WRITING)
			event_del(conn->writable);
		conn->flags &= ~(CONN_WRITING | CONN_FILE_QUEUED);
	}
}

/* While EPOLLOUT is armed the kernel buffer is full: nothing to try. */
static void conn_flush(struct conn *conn)
{
	if (!(conn->flags & (CONN_WRITING | CONN_FAILED | CONN_ABORTING)) && conn_pending(conn) > 0)
		conn_write_out(conn);
}

/* Output at the limit stops reading; draining to half resumes it. */
static void conn_check_output(struct conn *conn)
{
	uint64_t pending = conn_pending(conn);

	if (!(conn->flags & CONN_FULL) && pending >= conn->profile.buffer_size) {
		conn->flags |= CONN_FULL;
		conn_update_reading(conn);
	} else if ((conn->flags & CONN_FULL) && pending <= conn->profile.buffer_size / 2) {
		conn->flags &= ~CONN_FULL;
		conn_update_reading(conn);
		if (conn->profile.hooks->drained != NULL &&
		    !(conn->flags & (CONN_CLOSING | CONN_ABORTING | CONN_FAILED))) {
			conn->flags |= CONN_IN_HOOK;
			conn->profile.hooks->drained(conn);
			conn->flags &= ~CONN_IN_HOOK;
			/* Sent once epoll says so, not now: a flush that took
			 * all of a refill (a file fed a window at a time) would
			 * leave the output marked full with nothing to come
			 * back for. Not event_active() either: that runs in this
			 * same pass, and a fast reader would hold the loop. */
			if (conn_pending(conn) > 0)
				conn_arm_writable(conn);
		}
	}
}

/* False when the connection has ended. */
static bool conn_linger(struct conn *conn)
{
	char discard[512];
	ssize_t n;

	conn->flags |= CONN_LINGERING;
	conn->idle_ms = CONN_LINGER_MS;
	if (conn->tls != NULL)
		tls_close_notify(conn->tls);
	shutdown(conn->fd, SHUT_WR);
	/* A client that knew the answer was the last (Connection: close) has
	 * often closed already: then no loop turn is needed to see it. Into
	 * the stack, not the input buffer, which would hold a read chunk for
	 * as long as the connection lingers. */
	n = recv(conn->fd, discard, sizeof(discard), MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		conn_finish(conn, CONN_END_DONE);
		return false;
	}
	evbuffer_drain(conn->in, evbuffer_get_length(conn->in));
	conn_touch(conn);
	return true;
}

/* nginx's test for skipping the linger: nothing of the client's is left
 * unread and every byte of ours has left the socket, so close() sends a
 * plain FIN and no reset can overtake the answer. It saves a shutdown and a
 * loop turn waiting for the client's FIN per Connection: close answer. */
static bool conn_can_close_at_once(struct conn *conn)
{
	char peek;
	int unsent;
	ssize_t n;

	if (evbuffer_get_length(conn->in) > 0)
		return false;
	n = recv(conn->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) &&
		      (ioctl(conn->fd, SIOCOUTQNSD, &unsent) < 0 || unsent > 0)))
		return false;
	return true;		/* nothing pending, the client's FIN, or an error */
}

/* Runs at the end of every chassis callback, so that no hook ever sees its
 * connection freed under it. False when the connection has ended. */
static bool conn_settle(struct conn *conn)
{
	if (conn->flags & CONN_HANDED_OVER) {
		if (!(conn->flags & (CONN_CLOSING | CONN_ABORTING)))
			return true;
		conn_finish(conn, conn->flags & CONN_ABORTING ? CONN_END_ABORTED : CONN_END_DONE);
		return false;
	}
	if (conn->flags & (CONN_FAILED | CONN_ABORTING)) {
		conn_finish(conn, conn->flags & CONN_ABORTING	 ? CONN_END_ABORTED
				  : conn->flags & CONN_FILE_SHORT ? CONN_END_FILE_SHORT
								  : CONN_END_FAILED);
		return false;
	}
	if (conn_pending(conn) > 0)
		return true;
	if ((conn->flags & (CONN_SHUT_PENDING | CONN_WRITE_SHUT)) == CONN_SHUT_PENDING) {
		if (conn->tls != NULL)
			tls_close_notify(conn->tls);
		shutdown(conn->fd, SHUT_WR);
		conn->flags |= CONN_WRITE_SHUT;
	}
	if ((conn->flags & (CONN_WRITE_SHUT | CONN_READ_EOF)) == (CONN_WRITE_SHUT | CONN_READ_EOF)) {
		conn_finish(conn, CONN_END_DONE);
		return false;
	}
	if (!(conn->flags & CONN_CLOSING) || (conn->flags & CONN_LINGERING))
		return true;
	if ((conn->flags & CONN_READ_EOF) || conn_can_close_at_once(conn)) {
		conn_finish(conn, CONN_END_DONE);
		return false;
	}
	return conn_linger(conn);
}

/* After a hook: send, apply backpressure, maybe end; epoll learns the
 * outcome once, at the end. */
static void conn_after_hook(struct conn *conn)
{
	conn_flush(conn);
	conn_check_output(conn);
	if (conn_settle(conn))
		conn_update_reading(conn);
}

static void conn_on_eof(struct conn *conn)
{
	conn->flags |= CONN_READ_EOF;
	if (conn->flags & CONN_LINGERING) {
		conn_finish(conn, CONN_END_DONE);
		return;
	}
	if (conn->profile.hooks->end_of_input != NULL && !(conn->flags & CONN_CLOSING)) {
		conn->flags |= CONN_IN_HOOK;
		conn->profile.hooks->end_of_input(conn);
		conn->flags &= ~CONN_IN_HOOK;
	} else {
		conn->flags |= CONN_CLOSING;
	}
	conn_after_hook(conn);
}

/* Decrypts into the reserved space until OpenSSL wants the socket or the
 * space is full: bytes it keeps decrypted would wake no epoll. Returns as
 * readv() does, or 1 with something read. */
static ssize_t conn_read_tls(struct conn *conn, struct evbuffer_iovec *vec, int n_vec)
{
	size_t total = 0;
	ssize_t n = 0;

	for (int i = 0; i < n_vec; i++) {
		size_t used = 0;

		while (used < vec[i].iov_len && (n = tls_read(conn->tls, (char *)vec[i].iov_base + used,
							      vec[i].iov_len - used)) > 0)
			used += (size_t)n;
		vec[i].iov_len = used;
		total += used;
		if (n <= 0) {
			n_vec = i + 1;
			break;
		}
	}
	evbuffer_commit_space(conn->in, vec, total > 0 ? n_vec : 0);
	if (total == 0)
		return n;
	conn->bytes_in += (uint64_t)total;
	return 1;
}

/* Reads into the input buffer's own free space: no FIONREAD, no copy. */
static ssize_t conn_read(struct conn *conn)
{
	size_t room = conn->profile.buffer_size - evbuffer_get_length(conn->in);
	struct evbuffer_iovec vec[2];
	int n_vec = room == 0 ? 0 : evbuffer_reserve_space(conn->in, room < CONN_READ_CHUNK ? room : CONN_READ_CHUNK,
							   vec, 2);
	struct iovec iov[2];
	ssize_t n;

	if (n_vec <= 0) {
		errno = room == 0 ? EAGAIN : ENOMEM;
		return -1;
	}
	if (conn->tls != NULL)
		return conn_read_tls(conn, vec, n_vec);
	for (int i = 0; i < n_vec; i++) {
		iov[i].iov_base = vec[i].iov_base;
		iov[i].iov_len = vec[i].iov_len;
	}
	n = readv(conn->fd, iov, n_vec);
	if (n <= 0) {
		evbuffer_commit_space(conn->in, vec, 0);
		return n;
	}
	conn->bytes_in += (uint64_t)n;
	for (int i = 0; i < n_vec; i++) {
		size_t used = (size_t)n > vec[i].iov_len ? vec[i].iov_len : (size_t)n;
		n -= (ssize_t)used;
		vec[i].iov_len = used;
	}
	evbuffer_commit_space(conn->in, vec, n_vec);
	return 1;
}

static void conn_handshake_step(struct conn *conn);

static void conn_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;
	ssize_t n;

	if (conn->flags & CONN_HANDSHAKING) {
		conn_handshake_step(conn);
		return;
	}
	if (!conn_wants_reading(conn)) {
		event_del(conn->readable);
		conn->flags &= ~CONN_READING;
		return;
	}
	/* A closing connection reads only to discard: input left over from
	 * before (a full buffer) would make every read EAGAIN, and the
	 * readable socket would spin the loop. */
	if (conn->flags & (CONN_CLOSING | CONN_LINGERING))
		evbuffer_drain(conn->in, evbuffer_get_length(conn->in));
	n = conn_read(conn);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		conn_after_hook(conn);	/* after the first read, EPOLLIN is armed here */
		return;
	}
	if (n < 0) {
		conn_log(conn, LOG_DEBUG, "read failed: %s", strerror(errno));
		if (errno == ECONNRESET)
			conn->flags |= CONN_PEER_RESET;
		conn_finish(conn, CONN_END_FAILED);
		return;
	}
	if (n == 0) {
		conn_on_eof(conn);
		return;
	}
	if (conn->flags & (CONN_CLOSING | CONN_LINGERING)) {
		evbuffer_drain(conn->in, evbuffer_get_length(conn->in));
		/* Called straight from conn_open() (an open hook that
		 * refused), no event is watching yet: the settle adds it. */
		conn_after_hook(conn);
		return;
	}
	conn_touch(conn);
	conn->flags |= CONN_IN_HOOK;
	if (conn->profile.hooks->input != NULL)
		conn->profile.hooks->input(conn, conn->in);
	else
		evbuffer_drain(conn->in, evbuffer_get_length(conn->in));
	conn->flags &= ~CONN_IN_HOOK;
	conn_after_hook(conn);
	(void)fd;
	(void)what;
}

/* EPOLLOUT after a full kernel buffer, or a flush asked for from outside
 * any of this connection's hooks (event_active). */
static void conn_on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;

	if (conn->flags & CONN_HANDSHAKING) {
		event_del(conn->writable);
		conn->flags &= ~CONN_WRITING;
		if (conn->flags & CONN_ABORTING)
			conn_finish(conn, CONN_END_ABORTED);
		else
			conn_handshake_step(conn);
		return;
	}
	if (!(conn->flags & (CONN_FAILED | CONN_ABORTING)))
		conn_write_out(conn);
	conn_after_hook(conn);
	(void)fd;
	(void)what;
}

static void conn_request_flush(struct conn *conn)
{
	if (!(conn->flags & (CONN_IN_HOOK | CONN_WRITING)))
		event_active(conn->writable, EV_WRITE, 0);
}

/* Ordered by last activity, and no timeout is under a second. The sweep
 * ticks twice a second so that the documented bound (closed between T and
 * T+1 s) holds even when a tick runs late. */
static void conn_on_idle_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct chassis *ch = arg;
	uint64_t now_ms = conn_clock_ms();
	struct conn *conn = TAILQ_FIRST(&ch->by_activity), *next;

	for (; conn != NULL && now_ms - conn->last_active_ms >= 1000; conn = next) {
		next = TAILQ_NEXT(conn, activity_link);
		if (conn->idle_ms == 0 || now_ms - conn->last_active_ms < conn->idle_ms)
			continue;
		if (conn->flags & CONN_LINGERING) {
			conn_finish(conn, CONN_END_DONE);
			continue;
		}
		conn_log(conn, LOG_DEBUG, "idle timeout: nothing sent or received for %u s", conn->idle_ms / 1000);
		conn_finish(conn, CONN_END_IDLE);
	}
	(void)fd;
	(void)what;
}

static int conn_start_idle_sweep(struct chassis *ch)
{
	struct timeval half_second = { 0, 500000 };

	if (ch->idle_sweep != NULL)
		return 0;
	ch->idle_sweep = event_new(ch->base, -1, EV_PERSIST, conn_on_idle_sweep, ch);
	if (ch->idle_sweep == NULL)
		return -1;
	return event_add(ch->idle_sweep, &half_second);
}

static int conn_init_io(struct conn *conn, struct event_base *base)
{
	TAILQ_INIT(&conn->ranges);
	conn->in = evbuffer_new();
	conn->out = evbuffer_new();
	conn->readable = event_new(base, conn->fd, EV_READ | EV_PERSIST, conn_on_readable, conn);
	conn->writable = event_new(base, conn->fd, EV_WRITE | EV_PERSIST, conn_on_writable, conn);
	if (conn->in == NULL || conn->out == NULL || conn->readable == NULL || conn->writable == NULL)
		return -1;
	/* Lets evbuffer_write() send file segments with sendfile; through
	 * TLS files wait as ranges instead (a segment would be mapped). */
	if (conn->profile.tls == NULL)
		evbuffer_set_flags(conn->out, EVBUFFER_FLAG_DRAINS_TO_FD);
	return 0;
}

void conn_owner_init(struct conn_owner *owner, struct chassis *chassis,
		     void (*closed)(struct conn_owner *owner, struct conn *conn, enum conn_end end))
{
	*owner = (struct conn_owner){ .chassis = chassis, .closed = closed };
	TAILQ_INIT(&owner->conns);
}

static void conn_begin(struct conn *conn);

static void conn_on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;

	conn_tell_handshake(conn, ETIMEDOUT);

	conn_log(conn, LOG_DEBUG, "TLS handshake not done within %u s: closed",
		 tls_handshake_timeout_ms(conn->profile.tls) / 1000);
	if (conn->owner->tls != NULL)
		conn->owner->tls->failed_timeout++;
	conn_finish(conn, CONN_END_HANDSHAKE);
	(void)fd;
	(void)what;
}

/* One step of the handshake, whenever the socket is ready for it; when
 * done, the protocol's open hook runs as on a plain connection. */
static void conn_handshake_step(struct conn *conn)
{
	struct conn_tls_counters *count = conn->owner->tls;
	enum tls_failure failure = TLS_FAILURE_OTHER;
	char why[256] = "";

	switch (tls_handshake(conn->tls, why, sizeof(why), &failure)) {
	case TLS_DONE:
		if (count != NULL) {
			count->handshakes++;
			count->resumed += tls_resumed(conn->tls);
			*(tls_is_v13(conn->tls) ? &count->tls13 : &count->tls12) += 1;
			count->kernel_send += tls_kernel_sends(conn->tls);
		}
		event_del(conn->handshake_timer);
		conn_log(conn, LOG_DEBUG, "TLS handshake done: %s%s%s", tls_version(conn->tls),
			 tls_resumed(conn->tls) ? ", resumed" : "", tls_kernel_sends(conn->tls) ? ", kTLS" : "");
		if (!conn_tell_handshake(conn, 0)) {
			conn_finish(conn, CONN_END_ABORTED);
			return;
		}
		conn->flags &= ~CONN_HANDSHAKING;
		conn_touch(conn);
		conn_begin(conn);
		return;
	case TLS_WANT_READ:
		if (!(conn->flags & CONN_READING)) {
			event_add(conn->readable, NULL);
			conn->flags |= CONN_READING;
		}
		return;
	case TLS_WANT_WRITE:
		conn_arm_writable(conn);
		return;
	case TLS_FAILED:
		/* A FIN, not a reset, so the client reads the alert that says why.
		 * Ours to a peer we chose: worth a warning. */
		conn_log(conn, conn->profile.handshake_outcome != NULL ? LOG_WARNING : LOG_DEBUG,
			 "TLS handshake failed: %s", why);
		conn_tell_handshake(conn, EPROTO);
		if (count != NULL)
			*(failure == TLS_FAILURE_PROTOCOL		? &count->failed_protocol
			  : failure == TLS_FAILURE_CIPHER		? &count->failed_cipher
			  : failure == TLS_FAILURE_CLIENT_CERTIFICATE ? &count->failed_client_certificate
								      : &count->failed_other) += 1;
		conn_finish(conn, CONN_END_HANDSHAKE);
		return;
	}
}

static void conn_start_tls(struct conn *conn)
{
	struct timeval deadline;
	unsigned ms = tls_handshake_timeout_ms(conn->profile.tls);

	conn->tls = tls_session_new(conn->profile.tls, conn->fd, conn->profile.tls_peer_name);
	conn->handshake_timer = event_new(conn->chassis->base, -1, 0, conn_on_handshake_timeout, conn);
	conn->flags |= CONN_HANDSHAKING;
	if (conn->tls == NULL || conn->handshake_timer == NULL) {
		conn_log(conn, LOG_WARNING, "TLS session: out of memory");
		conn->flags |= CONN_ABORTING;
	} else {
		deadline.tv_sec = ms / 1000;
		deadline.tv_usec = (ms % 1000) * 1000;
		event_add(conn->handshake_timer, &deadline);
	}
	/* The first step from the loop: whoever opened the connection hears
	 * of the handshake after conn_open() has returned. */
	event_active(conn->writable, EV_WRITE, 0);
}

int conn_open(struct conn_owner *owner, const struct conn_profile *profile, int fd, const struct sockaddr *peer,
	      socklen_t peer_len, void *data)
{
	struct chassis *ch = owner->chassis;
	struct conn *conn = calloc(1, sizeof(*conn));

	if (conn != NULL) {
		conn->fd = fd;
		conn->profile = *profile;
		if (profile->tls != NULL)
			tls_context_hold(profile->tls);
	}
	if (conn == NULL || conn_init_io(conn, ch->base) < 0 || conn_start_idle_sweep(ch) < 0) {
		if (conn != NULL)
			conn_free_io(conn);
		free(conn);
		close(fd);
		return -1;
	}
	conn->owner = owner;
	conn->chassis = ch;
	conn->profile = *profile;
	conn->idle_ms = profile->idle_ms;
	conn->data = data;
	conn->last_active_ms = conn_clock_ms();
	conn->opened_ms = conn->last_active_ms;
	memcpy(&conn->peer, peer, peer_len);
	conn->peer_len = peer_len;
	TAILQ_INSERT_TAIL(&owner->conns, conn, owner_link);
	TAILQ_INSERT_TAIL(&ch->by_activity, conn, activity_link);
	owner->n_conns++;
	ch->connections++;
	chassis_hold(ch);
	conn_log(conn, profile->connection_log ? LOG_INFO : LOG_DEBUG, "connection open");
	if (profile->tls != NULL)
		conn_start_tls(conn);
	else
		conn_begin(conn);
	return 0;
}

/* The open hook, then a first read: the connection is the protocol's. */
static void conn_begin(struct conn *conn)
{
	const struct conn_profile *profile = &conn->profile;
	int fd = conn->fd;

	if (profile->hooks->open != NULL) {
		conn->flags |= CONN_IN_HOOK;
		if (profile->hooks->open(conn) < 0)
			conn->flags |= CONN_CLOSING;
		conn->flags &= ~CONN_IN_HOOK;
	}
	/* Read before joining epoll: a client that speaks first has usually
	 * sent its request by now, and a connection answered and closed
	 * within this call never costs an epoll_ctl. Outbound connections
	 * too, though the read is an EAGAIN there: without it, relayed
	 * round trips ran at 0.4x in tests/bench/relay, for a reason not
	 * found (the syscalls per round trip were the same). */
	conn_flush(conn);
	conn_check_output(conn);
	if (conn_wants_reading(conn) && !(conn->flags & CONN_FAILED))
		conn_on_readable(fd, EV_READ, conn);
	else
		conn_after_hook(conn);
}

void conn_close_now(struct conn *conn)
{
	conn_finish(conn, CONN_END_CLOSED);
}

void conn_close_everything(struct chassis *chassis)
{
	struct conn *conn;

	while ((conn = TAILQ_FIRST(&chassis->by_activity)) != NULL)
		conn_finish(conn, CONN_END_CLOSED);
}

void *conn_owner_ref(const struct conn *conn)
{
	return conn->profile.owner_ref;
}

/* ---- the chassis API ---- */

/* Marks the output full as it is queued, not only when a flush finds it
 * so: a write from another connection's hook (a relay) may reach the
 * limit and drain in one flush, and the writer that paused for it must
 * still hear drained(). */
static void conn_queued(struct conn *conn)
{
	if (conn_pending(conn) >= conn->profile.buffer_size)
		conn->flags |= CONN_FULL;
	conn_request_flush(conn);
}

void conn_write(struct conn *conn, const void *data, size_t len)
{
	evbuffer_add(conn->out, data, len);
	conn_queued(conn);
}

void conn_write_buffer(struct conn *conn, struct evbuffer *data)
{
	evbuffer_add_buffer(conn->out, data);
	conn_queued(conn);
}

/* Only the first file in an otherwise plain buffer gets its head sent
 * ahead with MSG_MORE: behind an earlier file the head's place is unknown. */
static void conn_file_queued(struct conn *conn, size_t memory_before, off_t len)
{
	/* Without a body to follow, MSG_MORE would hold the head back. */
	if (!(conn->flags & CONN_FILE_QUEUED) && len > 0)
		conn->head_len = memory_before;
	conn->flags |= CONN_FILE_QUEUED;
	conn_queued(conn);
}

/* Over TLS: a range behind what the output holds. anchor NULL: takes fd. */
static int conn_range_add(struct conn *conn, int fd, struct evbuffer *anchor,
			  const struct evbuffer_file_segment *segment, off_t offset, off_t len)
{
	struct conn_range *range = malloc(sizeof(*range));
	size_t memory = evbuffer_get_length(conn->out);

	if (range == NULL) {
		if (anchor != NULL)
			evbuffer_free(anchor);
		else
			close(fd);
		return -1;
	}
	*range = (struct conn_range){ .fd = fd, .anchor = anchor, .segment = segment, .offset = offset,
				      .left = len, .gap = memory - conn->range_memory };
	TAILQ_INSERT_TAIL(&conn->ranges, range, link);
	conn->range_memory = memory;
	conn->range_bytes += (uint64_t)len;
	conn_queued(conn);
	return 0;
}

/* The segment's next piece right behind its last one, nothing queued in
 * between (a download refilled as the output drains): the same range,
 * longer. One range, and one anchor, per download. */
static bool conn_range_extend(struct conn *conn, const struct evbuffer_file_segment *segment, off_t offset,
			      off_t len)
{
	struct conn_range *last = TAILQ_LAST(&conn->ranges, conn_ranges);

	if (last == NULL || last->anchor == NULL || last->segment != segment ||
	    last->offset + last->left != offset || evbuffer_get_length(conn->out) != conn->range_memory)
		return false;
	last->left += len;
	conn->range_bytes += (uint64_t)len;
	conn_queued(conn);
	return true;
}

/* The anchor is a buffer that drains to an fd, so that libevent does not
 * map the file for it; it is never written. */
static int conn_range_add_segment(struct conn *conn, struct evbuffer_file_segment *segment, int fd, off_t offset,
				  off_t len)
{
	struct evbuffer *anchor;

	if (conn_range_extend(conn, segment, offset, len))
		return 0;
	anchor = evbuffer_new();
	if (anchor == NULL || evbuffer_set_flags(anchor, EVBUFFER_FLAG_DRAINS_TO_FD) < 0 ||
	    evbuffer_add_file_segment(anchor, segment, offset, len) < 0) {
		if (anchor != NULL)
			evbuffer_free(anchor);
		return -1;
	}
	return conn_range_add(conn, fd, anchor, segment, offset, len);
}

/* Chunks end at multiples of CONN_FILE_CHUNK counted from the start of the
 * pending output, not of the file: the first one is short by what is
 * queued before it (an HTTP head), the split lighttpd's writev + sendfile
 * makes. Measured on loopback, 10 MiB to 4 clients: chunks at page-aligned
 * file offsets made the kernel's 64 KiB splice rounds leave 53 bytes past
 * each 65483-byte segment, sent alone: 15% more segments and 3x the
 * reader's wakeups per answer. */
static int conn_add_segment(struct conn *conn, struct evbuffer_file_segment *segment, off_t offset, off_t len)
{
	size_t before = evbuffer_get_length(conn->out);
	off_t piece = CONN_FILE_CHUNK - (off_t)(before % (size_t)CONN_FILE_CHUNK);

	for (off_t done = 0; done < len; done += piece, piece = CONN_FILE_CHUNK) {
		if (piece > len - done)
			piece = len - done;
		if (evbuffer_add_file_segment(conn->out, segment, offset + done, piece) < 0)
			return -1;
	}
	conn_file_queued(conn, before, len);
	return 0;
}

int conn_write_file_segment(struct conn *conn, struct evbuffer_file_segment *segment, int fd, off_t offset,
			    off_t len)
{
	/* Over TLS with no fd (a memory file of the daemon's own, which no
	 * one else can cut short) the segment is mapped, as libevent does. */
	if (conn->profile.tls != NULL && fd >= 0)
		return len > 0 ? conn_range_add_segment(conn, segment, fd, offset, len) : 0;
	return conn_add_segment(conn, segment, offset, len);
}

int conn_write_file(struct conn *conn, int fd, off_t offset, off_t len)
{
	struct evbuffer_file_segment *segment;
	int rc;

	if (conn->profile.tls != NULL) {
		if (len > 0)
			return conn_range_add(conn, fd, NULL, NULL, offset, len);
		close(fd);
		return 0;
	}
	segment = evbuffer_file_segment_new(fd, offset, len, EVBUF_FS_CLOSE_ON_FREE);
	if (segment == NULL) {
		close(fd);
		return -1;
	}
	rc = conn_add_segment(conn, segment, 0, len);
	evbuffer_file_segment_free(segment);
	return rc;
}

bool conn_output_full(const struct conn *conn)
{
	return conn_pending(conn) >= conn->profile.buffer_size;
}

size_t conn_output_length(const struct conn *conn)
{
	return (size_t)conn_pending(conn);
}

void conn_close_after_flush(struct conn *conn)
{
	if (conn->flags & CONN_CLOSING)
		return;
	conn->flags |= CONN_CLOSING;
	conn_update_reading(conn);
	/* Outside a hook nothing else would come back to finish the close. */
	if (!(conn->flags & (CONN_IN_HOOK | CONN_WRITING)))
		event_active(conn->writable, EV_WRITE, 0);
}

void conn_shutdown_after_flush(struct conn *conn)
{
	if (conn->flags & (CONN_SHUT_PENDING | CONN_CLOSING))
		return;
	conn->flags |= CONN_SHUT_PENDING;
	if (!(conn->flags & (CONN_IN_HOOK | CONN_WRITING)))
		event_active(conn->writable, EV_WRITE, 0);
}

void conn_abort(struct conn *conn)
{
	conn->flags |= CONN_ABORTING;
	if (!(conn->flags & CONN_IN_HOOK))
		event_active(conn->writable, EV_WRITE, 0);
}

bool conn_ended_in_order(const struct conn *conn)
{
	return conn->end == CONN_END_DONE;
}

bool conn_ended_by_a_short_file(const struct conn *conn)
{
	return conn->end == CONN_END_FILE_SHORT;
}

int conn_hand_over_socket(struct conn *conn)
{
	int flags = fcntl(conn->fd, F_GETFL);

	if ((conn->flags & (CONN_READING | CONN_WRITING | CONN_CLOSING | CONN_HANDED_OVER)) ||
	    evbuffer_get_length(conn->in) > 0 || conn_pending(conn) > 0 || flags < 0 ||
	    fcntl(conn->fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		return -1;
	conn_local(conn);		/* while the socket is still ours to ask */
	/* The listener's notsent-lowat serves an event loop; a program's
	 * blocking writes get the system's default. */
	setsockopt(conn->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &(int){ 0 }, sizeof(int));
	conn->flags |= CONN_HANDED_OVER;
	conn->idle_ms = 0;
	return conn->fd;
}

void conn_decouple_directions(struct conn *conn)
{
	conn->flags |= CONN_DECOUPLED;
	conn_update_reading(conn);
}

void conn_set_idle_timeout(struct conn *conn, unsigned seconds)
{
	if (!(conn->flags & (CONN_LINGERING | CONN_HANDED_OVER)))
		conn->idle_ms = seconds * 1000u;
}

void conn_pause_reading(struct conn *conn)
{
	conn->flags |= CONN_PAUSED;
	conn_update_reading(conn);
}

void conn_resume_reading(struct conn *conn)
{
	conn->flags &= ~CONN_PAUSED;
	conn_update_reading(conn);
}

const struct sockaddr *conn_peer(const struct conn *conn)
{
	return (const struct sockaddr *)&conn->peer;
}

const struct sockaddr *conn_local(struct conn *conn)
{
	/* Most protocols never ask; a getsockname per accept would be waste. */
	if (!(conn->flags & CONN_LOCAL_KNOWN)) {
		conn->local_len = sizeof(conn->local);
		if (getsockname(conn->fd, (struct sockaddr *)&conn->local, &conn->local_len) == 0)
			addr_unmap(&conn->local, &conn->local_len);
		conn->flags |= CONN_LOCAL_KNOWN;
	}
	return (const struct sockaddr *)&conn->local;
}

const void *conn_settings(const struct conn *conn)
{
	return conn->profile.settings;
}

void *conn_service_state(const struct conn *conn)
{
	return conn->profile.state;
}

void *conn_data(const struct conn *conn)
{
	return conn->data;
}

void conn_set_data(struct conn *conn, void *data)
{
	conn->data = data;
}
