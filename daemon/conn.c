#include "daemon/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/listener.h"
#include "daemon/log.h"
#include "daemon/runtime.h"
#include "protocols/protocol.h"

/* How long a closing connection keeps reading (and discarding) after its
 * last byte went out, so that the client's unread request bytes do not turn
 * our close into a reset that destroys the response in flight. */
#define CONN_LINGER_SECONDS 2

enum {
	CONN_CLOSING = 1 << 0,		/* close once the output is flushed */
	CONN_READ_EOF = 1 << 1,		/* the peer shut down its write side */
	CONN_FULL = 1 << 2,		/* output at the buffer limit: not reading */
	CONN_PAUSED = 1 << 3,		/* the protocol asked not to read */
	CONN_LINGERING = 1 << 4,	/* output flushed, write side shut */
	CONN_LOCAL_KNOWN = 1 << 5,
};

struct conn {
	struct bufferevent *bev;
	struct listener *listener;
	struct service *service;
	const struct protocol *protocol;
	size_t buffer_size;
	unsigned flags;
	void *data;
	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	socklen_t peer_len;
	socklen_t local_len;
	TAILQ_ENTRY(conn) link;
};

static void conn_on_read(struct bufferevent *bev, void *arg);
static void conn_on_write(struct bufferevent *bev, void *arg);
static void conn_on_event(struct bufferevent *bev, short what, void *arg);

static struct log_context conn_context(const struct conn *conn)
{
	const struct conf_listener *conf = conn->service->conf;

	return (struct log_context){
		.listener = conf->name,
		.protocol = conf->protocol->name,
		.transport = transport_name(conf->transport),
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

static void conn_update_reading(struct conn *conn)
{
	bool want = (conn->flags & CONN_LINGERING) ||
		    !(conn->flags & (CONN_CLOSING | CONN_READ_EOF | CONN_FULL | CONN_PAUSED));

	if (want)
		bufferevent_enable(conn->bev, EV_READ);
	else
		bufferevent_disable(conn->bev, EV_READ);
}

/* The write callback costs a call per flush, so it is installed only while
 * something waits for the output to drain. */
static void conn_update_callbacks(struct conn *conn)
{
	bool want_write = conn->flags & (CONN_FULL | CONN_CLOSING);

	bufferevent_setcb(conn->bev, conn_on_read, want_write ? conn_on_write : NULL,
			  conn_on_event, conn);
}

static void conn_finish(struct conn *conn)
{
	struct listener *ls = conn->listener;
	struct service *svc = conn->service;

	if (conn->protocol->close != NULL)
		conn->protocol->close(conn);
	conn_log(conn, LOG_DEBUG, "connection closed");
	TAILQ_REMOVE(&ls->conns, conn, link);
	ls->n_conns--;
	source_table_release(&ls->sources, (struct sockaddr *)&conn->peer);
	bufferevent_free(conn->bev);
	free(conn);
	runtime_connection_closed(ls->rt, ls);
	service_release(svc);
}

static void conn_linger(struct conn *conn)
{
	struct timeval linger = { CONN_LINGER_SECONDS, 0 };

	conn->flags |= CONN_LINGERING;
	shutdown(bufferevent_getfd(conn->bev), SHUT_WR);
	bufferevent_set_timeouts(conn->bev, &linger, NULL);
	conn_update_reading(conn);
}

/* Runs at the end of every chassis callback: a closing connection whose
 * output is out ends here, so a hook never sees its connection freed. */
static void conn_settle(struct conn *conn)
{
	if (!(conn->flags & CONN_CLOSING) || (conn->flags & CONN_LINGERING))
		return;
	if (evbuffer_get_length(bufferevent_get_output(conn->bev)) > 0)
		return;
	if (conn->flags & CONN_READ_EOF)
		conn_finish(conn);
	else
		conn_linger(conn);
}

static void conn_check_full(struct conn *conn)
{
	if ((conn->flags & CONN_FULL) ||
	    evbuffer_get_length(bufferevent_get_output(conn->bev)) < conn->buffer_size)
		return;
	conn->flags |= CONN_FULL;
	conn_update_reading(conn);
	conn_update_callbacks(conn);
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (conn->flags & CONN_CLOSING) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (conn->protocol->input != NULL)
		conn->protocol->input(conn, in);
	else
		evbuffer_drain(in, evbuffer_get_length(in));
	conn_settle(conn);
}

static void conn_on_write(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev));

	if ((conn->flags & CONN_FULL) && pending <= conn->buffer_size / 2) {
		conn->flags &= ~CONN_FULL;
		conn_update_reading(conn);
		conn_update_callbacks(conn);
		if (conn->protocol->drained != NULL && !(conn->flags & CONN_CLOSING))
			conn->protocol->drained(conn);
	}
	conn_settle(conn);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *conn = arg;

	if (what & BEV_EVENT_ERROR) {
		conn_log(conn, LOG_DEBUG, "connection error: %s", strerror(errno));
		conn_finish(conn);
	} else if (what & BEV_EVENT_TIMEOUT) {
		if (!(conn->flags & CONN_LINGERING)) {
			conn->listener->counters.idle_closed++;
			conn_log(conn, LOG_DEBUG, "idle timeout (%s)",
				 (what & BEV_EVENT_READING) ? "no input" : "output not read");
		}
		conn_finish(conn);
	} else if (what & BEV_EVENT_EOF) {
		conn->flags |= CONN_READ_EOF;
		if (conn->flags & CONN_LINGERING) {
			conn_finish(conn);
			return;
		}
		if (conn->protocol->end_of_input != NULL && !(conn->flags & CONN_CLOSING))
			conn->protocol->end_of_input(conn);
		else
			conn_close_after_flush(conn);
		conn_settle(conn);
	}
	(void)bev;
}

static void conn_set_timeouts(struct conn *conn, unsigned idle_seconds)
{
	struct timeval idle = { (time_t)idle_seconds, 0 };
	const struct timeval *shared;

	if (idle_seconds == 0)
		return;
	/* Thousands of connections share one timeout value: a common timeout
	 * keeps them in a queue instead of the timer heap. */
	shared = event_base_init_common_timeout(bufferevent_get_base(conn->bev), &idle);
	bufferevent_set_timeouts(conn->bev, shared ? shared : &idle, shared ? shared : &idle);
}

int conn_open(struct listener *ls, evutil_socket_t fd, const struct sockaddr *peer,
	      socklen_t peer_len)
{
	struct service *svc = ls->service;
	const struct conf_listener *conf = svc->conf;
	struct conn *conn = calloc(1, sizeof(*conn));

	if (conn == NULL ||
	    (conn->bev = bufferevent_socket_new(ls->rt->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		free(conn);
		evutil_closesocket(fd);
		return -1;
	}
	conn->listener = ls;
	conn->service = svc;
	conn->protocol = conf->protocol;
	conn->buffer_size = conf->buffer_size;
	memcpy(&conn->peer, peer, peer_len);
	conn->peer_len = peer_len;
	service_ref(svc);
	TAILQ_INSERT_TAIL(&ls->conns, conn, link);
	ls->n_conns++;
	runtime_connection_opened(ls->rt);

	conn_update_callbacks(conn);
	bufferevent_setwatermark(conn->bev, EV_READ, 0, conn->buffer_size);
	bufferevent_setwatermark(conn->bev, EV_WRITE, conn->buffer_size / 2, 0);
	conn_set_timeouts(conn, conf->idle_timeout);
	conn_update_reading(conn);
	conn_log(conn, LOG_DEBUG, "connection accepted");
	if (conn->protocol->open != NULL && conn->protocol->open(conn) < 0)
		conn_close_after_flush(conn);
	conn_settle(conn);
	return 0;
}

void conn_close_now(struct conn *conn)
{
	conn_finish(conn);
}

/* ---- the chassis API ---- */

void conn_write(struct conn *conn, const void *data, size_t len)
{
	bufferevent_write(conn->bev, data, len);
	conn_check_full(conn);
}

void conn_write_buffer(struct conn *conn, struct evbuffer *data)
{
	bufferevent_write_buffer(conn->bev, data);
	conn_check_full(conn);
}

int conn_write_file(struct conn *conn, int fd, off_t offset, off_t len)
{
	int rc = evbuffer_add_file(bufferevent_get_output(conn->bev), fd, offset, len);

	conn_check_full(conn);
	return rc;
}

bool conn_output_full(const struct conn *conn)
{
	return conn->flags & CONN_FULL;
}

size_t conn_output_length(const struct conn *conn)
{
	return evbuffer_get_length(bufferevent_get_output(conn->bev));
}

void conn_close_after_flush(struct conn *conn)
{
	if (conn->flags & CONN_CLOSING)
		return;
	conn->flags |= CONN_CLOSING;
	conn_update_reading(conn);
	conn_update_callbacks(conn);
	bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
	/* Called outside a chassis callback with nothing queued, no write
	 * would ever come to finish the close: ask for one. */
	bufferevent_trigger(conn->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
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
		if (getsockname(bufferevent_getfd(conn->bev), (struct sockaddr *)&conn->local,
				&conn->local_len) == 0)
			addr_unmap(&conn->local, &conn->local_len);
		conn->flags |= CONN_LOCAL_KNOWN;
	}
	return (const struct sockaddr *)&conn->local;
}

const void *conn_settings(const struct conn *conn)
{
	return conn->service->conf->settings;
}

void *conn_service_state(const struct conn *conn)
{
	return conn->service->state;
}

void *conn_data(const struct conn *conn)
{
	return conn->data;
}

void conn_set_data(struct conn *conn, void *data)
{
	conn->data = data;
}
