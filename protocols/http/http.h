/* Shared inside protocols/http/ only: the settings a listener's http
 * section becomes, the request being answered, and the response calls the
 * route handlers use. Nothing outside this folder includes it.
 *
 * Split after h2o: configuration (route.c) turns each route into a handler
 * and its settings once, at load; serving (http.c, response.c) only looks
 * them up. */
#ifndef CHASSISD_HTTP_H
#define CHASSISD_HTTP_H

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

/* Defaults for the limits; each has an option of the same name. */
#define HTTP_DEFAULT_MAX_HEAD 8192		/* request line + headers, bytes */
#define HTTP_DEFAULT_MAX_HEADERS 100
#define HTTP_DEFAULT_MAX_BODY (1 << 20)
#define HTTP_DEFAULT_HEAD_TIMEOUT 10		/* seconds from the first byte */
#define HTTP_DEFAULT_KEEPALIVE_TIMEOUT 15	/* seconds idle between requests */
#define HTTP_DEFAULT_MAX_REQUESTS 1000		/* per connection */

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
	char *location;					/* redirect */
	int redirect_status;
};

struct http_settings {
	bool access_log;
	size_t max_head, max_body;
	unsigned max_headers, head_timeout, keepalive_timeout, max_requests;
	struct mime_table *mime;
	struct http_route *routes;
	size_t n_routes;
};

struct http_counters {
	uint64_t requests, bad_requests, timeouts, bytes_out, prepared;
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

/* config (route.c) */
extern cfg_opt_t http_route_options[];
bool http_routes_configure(struct http_settings *settings, cfg_t *sec, struct conf_scope *scope);
void http_routes_free(struct http_settings *settings);
const struct http_route *http_route_match(const struct http_settings *settings, const char *path, size_t len);
extern const struct http_handler http_handler_static, http_handler_module, http_handler_status,
	http_handler_metrics, http_handler_redirect, http_handler_echo;

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
	struct event *head_deadline;
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
};

/* the exchange (http.c) */
const char *http_header_find(const struct http_exchange *ex, const char *name, size_t *len);
/* Whether the connection stays open after this answer; decided once, when
 * the answer's head is written. */
bool http_exchange_keep_alive(struct http_exchange *ex);
/* When the request's first byte was parsed: CLOCK_MONOTONIC, nanoseconds. */
uint64_t http_started_ns(const struct http_exchange *ex);

/* responses (response.c). Headers first, then at most one body call, then
 * http_finish() (the body calls finish by themselves). length -1: unknown,
 * chunked for HTTP/1.1 and close-delimited for 1.0. extra: whole header
 * lines, each ending in CRLF, or NULL. */
void http_respond_head(struct http_exchange *ex, int status, const char *type, off_t length,
		       const char *extra);
/* The same in two steps, for a handler that looks at the head's bytes:
 * format (0 when the extra headers do not fit), then send. */
#define HTTP_HEAD_MAX 2048
size_t http_head_format(struct http_exchange *ex, int status, const char *type, off_t length, const char *extra,
			char head[HTTP_HEAD_MAX]);
void http_respond_formatted_head(struct http_exchange *ex, const char *head, size_t len);
/* Head and body as one file (a prepared answer): head_len + body_len bytes
 * from its start. */
void http_respond_prepared(struct http_exchange *ex, struct evbuffer_file_segment *answer, size_t head_len,
			   off_t body_len);
void http_respond_bytes(struct http_exchange *ex, int status, const char *type, const void *body,
			size_t len, const char *extra);
void http_respond_buffer(struct http_exchange *ex, int status, const char *type, struct evbuffer *body,
			 const char *extra);
/* Queues len bytes of the segment for sendfile (none for HEAD); the
 * output takes its own reference. */
void http_respond_file(struct http_exchange *ex, struct evbuffer_file_segment *segment, off_t offset, off_t len);
/* An HTML error page; `detail` is escaped. */
void http_respond_error(struct http_exchange *ex, int status, const char *detail);
/* A module's feed as a chunked body; the exchange finishes when it ends. */
void http_respond_feed(struct http_exchange *ex, const struct protocol *module, void *module_state);
void http_finish(struct http_exchange *ex);
const char *http_status_text(int status);
/* The wall-clock second that Date headers and the access log name. */
time_t http_now(void);
/* "Sun, 06 Nov 1994 08:49:37 GMT"; buf needs 30 bytes. */
void http_date(time_t when, char *buf);
bool http_date_parse(const char *text, size_t len, time_t *out);
/* Appends text with < > & " ' escaped. */
void http_html_escape(struct evbuffer *out, const char *text, size_t len);

/* mime.c */
struct mime_table *mime_table_load(const char *path);
void mime_table_free(struct mime_table *table);
const char *mime_type_for(const struct mime_table *table, const char *name, size_t len);

#endif
