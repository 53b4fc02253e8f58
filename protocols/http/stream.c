/* The stream handler: what a udp, multicast or rtp listener receives, to
 * every HTTP client of the route as it arrives, the way udpxy relays an
 * IPTV group. For a udp or multicast listener that is each datagram whole
 * (MPEG-TS already, for IPTV); for an rtp listener, its ordered payload.
 *
 * One fan-out per route and listener generation holds the clients and ONE
 * tap on the listener, taken with the first client and given back with
 * the last: a listener that joins its group on demand is a member only
 * while someone watches. Each datagram is copied into every client's
 * output; a client whose output would pass client-buffer is dropped (a
 * reset) and counted, so a slow client costs the others nothing and
 * memory stays bounded at max-clients x client-buffer.
 *
 * The body is close-delimited even on HTTP/1.1 (no Content-Length, no
 * chunks), as udpxy sends it: a live stream has no end to announce, chunk
 * framing would cost three writes per datagram per client, and curl,
 * ffmpeg/ffprobe and VLC all read a body to the close; HTTP/1.0 clients
 * get the same bytes. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "daemon/chassis.h"
#include "daemon/log.h"
#include "protocols/http/handlers.h"
#include "protocols/http/response.h"

struct stream_fanout;

struct stream_client {
	TAILQ_ENTRY(stream_client) link;
	struct stream_fanout *fanout;	/* NULL once dropped: its close is on its way */
	struct http_exchange *ex;
};

TAILQ_HEAD(stream_client_list, stream_client);

struct stream_counters {
	uint64_t served;		/* clients that got the stream */
	uint64_t dropped_slow;		/* over client-buffer: reset */
	uint64_t refused_full;		/* over max-clients: 503 */
	uint64_t datagrams, bytes_in, bytes_out;
};

struct stream_fanout {
	struct chassis *chassis;
	char *listener;
	const char *content_type;	/* the route's: settings outlive the state */
	size_t client_buffer;
	unsigned max_clients;
	struct datagram_tap *tap;	/* while there are clients */
	struct stream_client_list clients;
	unsigned n_clients;
	struct stream_counters counters;
};

/* ---- configuration ---- */

static bool stream_configure(struct http_route *route, cfg_t *sec, struct conf_scope *scope)
{
	const char *listener = cfg_getstr(sec, "listener");
	const char *type = cfg_getstr(sec, "content-type");
	long buffer, clients;
	bool ok = true;

	if (listener == NULL || listener[0] == '\0') {
		conf_scope_error(scope, "listener", "a stream route needs listener = \"<a udp or multicast listener>\"");
		return false;
	}
	if (type[0] == '\0' || strpbrk(type, "\r\n") != NULL) {
		conf_scope_error(scope, "content-type", "content-type must be one line, not empty");
		ok = false;
	}
	ok &= conf_scope_int(scope, sec, "client-buffer", 4096, 1L << 30, &buffer);
	ok &= conf_scope_int(scope, sec, "max-clients", 1, 100000, &clients);
	if (!ok)
		return false;
	conf_scope_refer_datagram_listener(scope, "listener", listener);
	route->location = strdup(listener);
	route->content_type = strdup(type);
	route->client_buffer = (size_t)buffer;
	route->max_clients = (unsigned)clients;
	return route->location != NULL && route->content_type != NULL;
}

static void stream_free(struct http_route *route)
{
	free(route->location);
	free(route->content_type);
}

/* ---- the fan-out ---- */

static void *stream_start(const struct http_route *route, const struct unit_env *env)
{
	struct stream_fanout *fo = calloc(1, sizeof(*fo));

	if (fo == NULL || (fo->listener = strdup(route->location)) == NULL) {
		free(fo);
		return NULL;
	}
	fo->chassis = env->chassis;
	fo->content_type = route->content_type;
	fo->client_buffer = route->client_buffer;
	fo->max_clients = route->max_clients;
	TAILQ_INIT(&fo->clients);
	return fo;
}

/* Every connection of the generation is gone by now, and with it every
 * client and the tap. */
static void stream_stop(void *route_state)
{
	struct stream_fanout *fo = route_state;

	chassis_untap(fo->tap);
	free(fo->listener);
	free(fo);
}

static void stream_unlink(struct stream_client *client)
{
	struct stream_fanout *fo = client->fanout;

	TAILQ_REMOVE(&fo->clients, client, link);
	client->fanout = NULL;
	if (--fo->n_clients == 0) {
		/* Nobody watches: the listener may leave its group. */
		chassis_untap(fo->tap);
		fo->tap = NULL;
	}
}

static void stream_drop_slow(struct stream_client *client, size_t queued)
{
	struct stream_fanout *fo = client->fanout;

	fo->counters.dropped_slow++;
	conn_log(client->ex->conn, LOG_NOTICE, "stream client dropped: %zu bytes queued, client-buffer is %zu",
		 queued, fo->client_buffer);
	stream_unlink(client);
	conn_abort(client->ex->conn);
}

static void stream_on_datagram(void *arg, const void *data, size_t len)
{
	struct stream_fanout *fo = arg;
	struct stream_client *client, *next;

	fo->counters.datagrams++;
	fo->counters.bytes_in += len;
	for (client = TAILQ_FIRST(&fo->clients); client != NULL; client = next) {
		struct conn *conn = client->ex->conn;
		size_t queued = conn_output_length(conn);

		next = TAILQ_NEXT(client, link);
		if (queued + len > fo->client_buffer) {
			stream_drop_slow(client, queued);
			continue;
		}
		conn_write(conn, data, len);
		client->ex->bytes_out += len;
		fo->counters.bytes_out += len;
	}
}

/* The exchange's connection went (the client left, or was dropped). */
static void stream_client_gone(void *arg)
{
	struct stream_client *client = arg;

	if (client->fanout != NULL)
		stream_unlink(client);
	free(client);
}

static bool stream_add_client(struct stream_fanout *fo, struct http_exchange *ex)
{
	struct stream_client *client = calloc(1, sizeof(*client));

	if (client == NULL)
		return false;
	if (fo->tap == NULL && (fo->tap = chassis_tap_datagrams(fo->chassis, fo->listener, stream_on_datagram, fo)) == NULL) {
		free(client);
		return false;
	}
	client->fanout = fo;
	client->ex = ex;
	TAILQ_INSERT_TAIL(&fo->clients, client, link);
	fo->n_clients++;
	fo->counters.served++;
	ex->endless_gone = stream_client_gone;
	ex->endless_arg = client;
	return true;
}

static void stream_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	static const char full[] = "the stream has all the clients it takes: try again later\n";
	struct stream_fanout *fo = route_state;

	if (ex->head_only) {
		http_respond_head(ex, 200, fo->content_type, HTTP_LENGTH_UNTIL_CLOSE, "Cache-Control: no-store\r\n");
		http_finish(ex);
		return;
	}
	if (fo->n_clients >= fo->max_clients) {
		fo->counters.refused_full++;
		conn_log(ex->conn, LOG_NOTICE, "stream %s: max-clients (%u) reached: 503", route->prefix,
			 fo->max_clients);
		http_respond_bytes(ex, 503, "text/plain; charset=utf-8", full, sizeof(full) - 1, "Retry-After: 5\r\n");
		return;
	}
	if (!stream_add_client(fo, ex)) {
		http_respond_error(ex, 500, "out of memory");
		return;
	}
	/* The answer goes on until the client or the daemon ends it. */
	http_respond_head(ex, 200, fo->content_type, HTTP_LENGTH_UNTIL_CLOSE, "Cache-Control: no-store\r\n");
}

static void stream_status_row(const struct http_route *route, const void *route_state, char *buf, size_t len)
{
	const struct stream_fanout *fo = route_state;
	const struct stream_counters *c = &fo->counters;

	snprintf(buf, len,
		 "route %s clients=%u served=%llu dropped_slow=%llu refused_full=%llu datagrams=%llu bytes_in=%llu "
		 "bytes_out=%llu\n",
		 route->prefix, fo->n_clients, (unsigned long long)c->served, (unsigned long long)c->dropped_slow,
		 (unsigned long long)c->refused_full, (unsigned long long)c->datagrams,
		 (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
}

const struct http_handler http_handler_stream = {
	.name = "stream",
	.options = (const char *const[]){ "listener", "content-type", "client-buffer", "max-clients", NULL },
	.methods = HTTP_ALLOW_GET | HTTP_ALLOW_HEAD,
	.configure = stream_configure,
	.free = stream_free,
	.serve = stream_serve,
	.start = stream_start,
	.stop = stream_stop,
	.status_row = stream_status_row,
};
