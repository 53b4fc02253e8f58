/* Shared inside protocols/http/ only: the settings a listener's http
 * section becomes, the request being answered, and the exchange's own
 * calls. Nothing outside this folder includes it.
 *
 * Split after h2o: configuration (route.c) turns each route into a handler
 * and its settings once, at load; serving only looks them up. The files
 * stand in one line, each calling only those below it: http.c (the
 * module) > route.c (routes, small handlers) > static.c, info.c >
 * status_html.c > snapshot.c (the status pages' counters), accept.c >
 * response.c (writing answers) > exchange.c (a connection's requests). */
#ifndef CHASSISD_HTTP_EXCHANGE_H
#define CHASSISD_HTTP_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <confuse.h>
#include <http_parser.h>

#include "conf/conf.h"

struct conn;
struct evbuffer;
struct evbuffer_file_segment;
struct feed;
struct http_exchange;
struct http_route;
struct mime_table;
struct protocol;
struct unit_env;

/* Defaults for the limits; each has an option of the same name. */
#define HTTP_DEFAULT_MAX_HEAD 8192		/* request line + headers, bytes */
#define HTTP_DEFAULT_MAX_HEADERS 100
#define HTTP_DEFAULT_MAX_BODY (1 << 20)
#define HTTP_DEFAULT_HEAD_TIMEOUT 10		/* seconds from the first byte */
#define HTTP_DEFAULT_BODY_TIMEOUT 20		/* seconds from the head's end ... */
#define HTTP_DEFAULT_BODY_MIN_RATE 500		/* ... plus one per this many body bytes */
#define HTTP_DEFAULT_KEEPALIVE_TIMEOUT 15	/* seconds idle between requests */
#define HTTP_DEFAULT_MAX_REQUESTS 1000		/* per connection */
#define HTTP_DEFAULT_STREAM_TYPE "video/mp2t"	/* a stream route's content-type */
#define HTTP_DEFAULT_CLIENT_BUFFER (1 << 20)	/* bytes a stream client may fall behind */
#define HTTP_DEFAULT_MAX_CLIENTS 256		/* per stream route */

enum http_method_bit {
	HTTP_ALLOW_GET = 1 << 0,
	HTTP_ALLOW_HEAD = 1 << 1,
	HTTP_ALLOW_POST = 1 << 2,
	HTTP_ALLOW_PUT = 1 << 3,
};

struct http_handler {
	const char *name;
	const char *const *options;	/* route options it takes; others are refused */
	unsigned methods;
	bool (*configure)(struct http_route *route, cfg_t *sec, struct conf_scope *scope);
	void (*free)(struct http_route *route);
	void (*serve)(struct http_exchange *ex, const struct http_route *route, void *route_state);
	/* A route's running state, per listener generation (a stream route's
	 * clients and tap); NULL hooks for handlers that keep none. stop()
	 * runs once the generation's connections are gone. */
	void *(*start)(const struct http_route *route, const struct unit_env *env);
	void (*stop)(void *route_state);
	/* Its status row, "route PREFIX key=value ...\n", appended at buf. */
	void (*status_row)(const struct http_route *route, const void *route_state, char *buf, size_t len);
};

struct static_cached;

struct http_static {
	int root_fd;			/* O_PATH: requests resolve beneath it */
	char *root;
	char *index;
	bool autoindex, follow_symlinks, precompressed;
	struct static_cached *cache;	/* open files, direct-mapped */
	size_t cache_size;
	off_t prepared_max;		/* largest file sent as a prepared answer */
};

struct http_route {
	char *prefix;
	size_t prefix_len;
	int line;
	const struct http_handler *handler;
	struct http_static files;			/* static */
	const struct protocol *module;			/* fortune, audio-cookie ... */
	void *module_settings;
	char *location;					/* redirect; sdp: the stream; stream: the listener */
	int redirect_status;
	/* stream: what each client gets and how far it may fall behind */
	char *content_type;
	size_t client_buffer;
	unsigned max_clients;
	/* tracker: its tables' bounds and the announce interval (seconds) */
	unsigned tracker_swarms, tracker_peers, tracker_per_address, tracker_interval;
};

/* Answers with an error page (response.c's http_respond_error): how the
 * exchange refuses a request without calling up into the writers. */
typedef void http_error_fn(struct http_exchange *ex, int status, const char *detail);

struct http_settings {
	bool access_log;
	http_error_fn *respond_error;
	size_t max_head, max_body;
	unsigned max_headers, head_timeout, keepalive_timeout, max_requests;
	unsigned body_timeout;		/* seconds from the head's end to the body's ... */
	unsigned long body_min_rate;	/* ... plus one for each this many bytes of it */
	struct mime_table *mime;
	struct http_route *routes;
	size_t n_routes;
};

struct http_counters {
	uint64_t requests, bad_requests, timeouts, body_timeouts, bytes_out, prepared;
	uint64_t files_cut_short;	/* truncated while being sent: reset */
	uint64_t status[6];		/* by class: [2] = 2xx ... */
};

/* Per listener generation. */
struct http_state {
	const struct http_settings *settings;
	struct event_base *base;
	void **route_states;		/* a module route's own state */
	struct http_counters counters;
};

/* The request being answered: everything points into the connection's
 * head arena and stays valid until the response is finished. */
struct http_header {
	const char *name, *value;
	size_t name_len, value_len;
};

struct http_request {
	enum http_method method;
	unsigned short major, minor;
	const char *url;
	size_t url_len;
	const char *path;		/* decoded later by the handler that needs it */
	size_t path_len;
	const char *query;		/* NULL when none */
	size_t query_len;
	struct http_header *headers;
	size_t n_headers;
	struct evbuffer *body;		/* for routes that take one */
};

/* One connection and the request on it, answered one at a time. */
enum http_phase {
	PHASE_IDLE,		/* between requests */
	PHASE_HEAD,		/* request line and headers arriving */
	PHASE_BODY,
	PHASE_ANSWERING,	/* a handler answers; parsing waits */
	PHASE_CLOSED,		/* no more requests on this connection */
};

enum http_last_piece { PIECE_NONE, PIECE_URL, PIECE_FIELD, PIECE_VALUE };

struct http_exchange {
	struct conn *conn;
	struct http_state *state;
	const struct http_settings *settings;
	struct evbuffer *in;
	http_parser parser;
	enum http_phase phase;
	enum http_last_piece last;
	int error;			/* a status a callback chose; 0 none */
	const char *error_why;		/* and the reason it gives */
	const char *value_end;		/* to tell a folded header line */
	char *arena;
	size_t arena_used;
	struct http_header *headers;
	struct http_request request;
	const struct http_route *route;
	uint64_t body_bytes;
	uint64_t body_started_ns;	/* the head's end, for the body's deadline */
	struct event *request_deadline;
	struct timespec started;	/* the head's deadline, the access log's duration */
	unsigned served;		/* requests answered on this connection */
	bool end_of_input;
	bool in_process;
	/* the response */
	int status;
	uint64_t bytes_out;		/* body bytes */
	bool head_only, chunked, keep_alive, head_written;
	struct feed *feed;
	const char *feed_type;
	/* A body that never ends by itself (a stream route's client): told
	 * when the connection goes, which finishes the answer. */
	void (*endless_gone)(void *arg);
	void *endless_arg;
	/* a file body still to queue, window by window as the output drains */
	struct evbuffer *file_anchor;	/* one chain: keeps the segment alive */
	struct evbuffer_file_segment *file_segment;
	int file_fd;			/* the segment's, for TLS to read */
	off_t file_next, file_left;
};

/* the exchange (exchange.c) */
const char *http_header_find(const struct http_exchange *ex, const char *name, size_t *len);
/* Whether the connection stays open after this answer; decided once, when
 * the answer's head is written. */
bool http_exchange_keep_alive(struct http_exchange *ex);
/* When the request's first byte was parsed: CLOCK_MONOTONIC, nanoseconds. */
uint64_t http_started_ns(const struct http_exchange *ex);

/* http_finish(): the answer is complete; the next request is read. */
void http_finish(struct http_exchange *ex);
/* Queues len bytes of the segment (whose file is fd) from offset as the
 * output drains, never much more than buffer-size ahead whatever the
 * file's size, then finishes the answer. */
void http_finish_with_file(struct http_exchange *ex, struct evbuffer_file_segment *segment, int fd, off_t offset,
			   off_t len);
/* The wall-clock second that Date headers and the access log name. */
time_t http_now(void);
/* The first route whose prefix takes the path, among the first n. */
const struct http_route *http_route_match_among(const struct http_route *routes, size_t n, const char *path,
						size_t len);
const struct http_route *http_route_match(const struct http_settings *settings, const char *path, size_t len);

/* The connection hooks of protocol_http. */
int http_exchange_open(struct conn *conn);
void http_exchange_input(struct conn *conn, struct evbuffer *in);
void http_exchange_end_of_input(struct conn *conn);
void http_exchange_drained(struct conn *conn);
void http_exchange_close(struct conn *conn);

#endif
