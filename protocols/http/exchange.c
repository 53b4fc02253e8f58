/* One connection's requests, read and answered one at a time: the
 * exchange's whole life (parse, answer, finish, the next request), which
 * the response writers and the route handlers call into.
 *
 * Kamaelia's HTTPServer answered one HTTP/1.0 request per connection. Here a
 * connection carries any number of requests (keep-alive, pipelining), read
 * and answered strictly one at a time: the parser pauses at the end of each
 * request, the route's handler answers it, and only then is the next one
 * parsed. Answers therefore leave in order with no queue, and a client that
 * pipelines faster than it reads meets the chassis's output limit, which
 * stops both parsing and reading until it drains.
 *
 * The request head is copied into a per-connection arena of max-head bytes
 * as the parser reports it; its overflow is the 414/431 limit, and the
 * handler sees plain pointers into it. Errors are answered through the
 * settings' respond_error (response.c), so that this file calls nothing
 * above it. */
#include "protocols/http/exchange.h"

#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/addr.h"
#include "daemon/chassis.h"
#include "daemon/log.h"
#include "protocols/support/feed.h"

/* The wall clock to the second. Not time(): it reads the coarse clock,
 * which lags by up to a tick, so a Date could name the second before the
 * one a client's own clock shows as it reads the answer. */
time_t http_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static void http_process(struct http_exchange *ex);

static uint64_t timespec_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

static uint64_t http_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return timespec_ns(&ts);
}

uint64_t http_started_ns(const struct http_exchange *ex)
{
	return timespec_ns(&ex->started);
}

/* ---- for handlers ---- */

const char *http_header_find(const struct http_exchange *ex, const char *name, size_t *len)
{
	size_t name_len = strlen(name);

	for (size_t i = 0; i < ex->request.n_headers; i++) {
		const struct http_header *h = &ex->request.headers[i];
		if (h->name_len == name_len && strncasecmp(h->name, name, name_len) == 0) {
			*len = h->value_len;
			return h->value;
		}
	}
	return NULL;
}

/* ---- parser callbacks: copy the head into the arena ---- */

/* The parser's own text for a failed callback ("the on_url callback
 * failed") would tell the client nothing; the callback names the reason. */
static int http_fail(struct http_exchange *ex, int status, const char *why)
{
	ex->error = status;
	ex->error_why = why;
	return -1;
}

static bool arena_append(struct http_exchange *ex, const char *at, size_t len)
{
	if (len > ex->settings->max_head - ex->arena_used)
		return false;
	memcpy(ex->arena + ex->arena_used, at, len);
	ex->arena_used += len;
	return true;
}

static int on_message_begin(http_parser *parser)
{
	struct http_exchange *ex = parser->data;

	ex->phase = PHASE_HEAD;
	ex->error = 0;
	ex->error_why = NULL;
	ex->last = PIECE_NONE;
	ex->arena_used = 0;
	ex->body_bytes = 0;
	ex->request = (struct http_request){ .headers = ex->headers, .body = ex->request.body };
	if (ex->request.body != NULL)
		evbuffer_drain(ex->request.body, evbuffer_get_length(ex->request.body));
	clock_gettime(CLOCK_MONOTONIC, &ex->started);
	return 0;
}

static int on_url(http_parser *parser, const char *at, size_t len)
{
	struct http_exchange *ex = parser->data;

	if (ex->last == PIECE_NONE) {
		ex->request.url = ex->arena + ex->arena_used;
		ex->last = PIECE_URL;
	}
	if (!arena_append(ex, at, len))
		return http_fail(ex, 414, "The request target is too long.");
	ex->request.url_len += len;
	return 0;
}

static int on_header_field(http_parser *parser, const char *at, size_t len)
{
	struct http_exchange *ex = parser->data;
	struct http_header *h;

	if (ex->last != PIECE_FIELD) {
		if (ex->request.n_headers == 0) {
			/* The request line is read: its version is known to
			 * the access log even if the head fails later. */
			ex->request.major = parser->http_major;
			ex->request.minor = parser->http_minor;
		}
		if (ex->request.n_headers == ex->settings->max_headers)
			return http_fail(ex, 431, "Too many header fields.");
		h = &ex->headers[ex->request.n_headers++];
		*h = (struct http_header){ .name = ex->arena + ex->arena_used, .value = "" };
		ex->last = PIECE_FIELD;
	}
	h = &ex->headers[ex->request.n_headers - 1];
	if (!arena_append(ex, at, len))
		return http_fail(ex, 431, "The request head is too large.");
	h->name_len += len;
	return 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t len)
{
	struct http_exchange *ex = parser->data;
	struct http_header *h = &ex->headers[ex->request.n_headers - 1];

	if (ex->last != PIECE_VALUE) {
		h->value = ex->arena + ex->arena_used;
		ex->last = PIECE_VALUE;
	} else if (ex->value_end != NULL && ex->value_end != at) {
		/* A second piece of one value from the same read, with bytes in
		 * between: an obsolete line fold (RFC 9112 5.2). Refused rather
		 * than joined, as two parsers could join it differently. */
		return http_fail(ex, 400, "A folded header line (obsolete line folding).");
	}
	if (!arena_append(ex, at, len))
		return http_fail(ex, 431, "The request head is too large.");
	h->value_len += len;
	ex->value_end = at + len;
	return 0;
}

/* Splits origin-form or absolute-form into path and query. */
static bool http_split_target(struct http_request *req)
{
	const char *url = req->url, *end = url + req->url_len, *p;

	if (req->url_len == 0)
		return false;
	if (url[0] != '/') {
		const char *scheme = memchr(url, ':', req->url_len);

		if (scheme == NULL || end - scheme < 3 || scheme[1] != '/' || scheme[2] != '/')
			return false;
		url = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
		if (url == NULL)
			url = "/", end = url + 1;
	}
	for (p = url; p < end && *p != '?' && *p != '#'; p++)
		;
	req->path = url;
	req->path_len = (size_t)(p - url);
	if (p < end && *p == '?') {
		const char *q = p + 1, *hash = memchr(q, '#', (size_t)(end - q));

		req->query = q;
		req->query_len = (size_t)((hash ? hash : end) - q);
	}
	return true;
}

static unsigned http_method_bit(enum http_method method)
{
	switch (method) {
	case HTTP_GET: return HTTP_ALLOW_GET;
	case HTTP_HEAD: return HTTP_ALLOW_HEAD;
	case HTTP_POST: return HTTP_ALLOW_POST;
	case HTTP_PUT: return HTTP_ALLOW_PUT;
	default: return 0;
	}
}

static bool http_has_body(const http_parser *parser)
{
	return (parser->flags & F_CHUNKED) || (parser->content_length > 0 && parser->content_length != ULLONG_MAX);
}

/* Answers Expect before the body is sent (RFC 9110 10.1.1). */
static int http_check_expect(struct http_exchange *ex, bool body_wanted)
{
	static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
	size_t len;
	const char *expect = http_header_find(ex, "Expect", &len);

	if (expect == NULL)
		return 0;
	if (len != 12 || strncasecmp(expect, "100-continue", 12) != 0)
		return http_fail(ex, 417, "Only Expect: 100-continue is understood.");
	if (body_wanted && ex->request.minor >= 1)
		conn_write(ex->conn, go_on, sizeof(go_on) - 1);
	return 0;
}

/* "/files" where a route is written "/files/": that route answers it, as
 * the directory it names without its slash (static answers 301 to
 * "/files/"), rather than a shorter prefix such as "/" would. */
static const struct http_route *slash_route(const struct http_settings *settings, const char *path, size_t len)
{
	for (size_t i = 0; i < settings->n_routes; i++) {
		const struct http_route *route = &settings->routes[i];
		if (route->handler != NULL && route->prefix_len == len + 1 && route->prefix[len] == '/' &&
		    memcmp(route->prefix, path, len) == 0)
			return route;
	}
	return NULL;
}

static int on_headers_complete(http_parser *parser)
{
	struct http_exchange *ex = parser->data;
	struct http_request *req = &ex->request;
	unsigned allowed;

	ex->phase = PHASE_BODY;
	ex->body_started_ns = http_clock_ns();
	if (ex->request_deadline != NULL)
		event_del(ex->request_deadline);
	req->method = (enum http_method)parser->method;
	req->major = parser->http_major;
	req->minor = parser->http_minor;
	if (req->major != 1)
		return http_fail(ex, 505, "Only HTTP/1.0 and HTTP/1.1 are supported.");
	if (!http_split_target(req))
		return http_fail(ex, 400, "The request target is not a path.");
	if (!(parser->flags & F_CHUNKED) && http_header_find(ex, "Transfer-Encoding", &(size_t){ 0 }) != NULL)
		return http_fail(ex, 501, "Only the chunked transfer coding is understood.");
	/* Before the route: a 404 or 405 waits for the body to be read, and
	 * one over the limit would never be. */
	if (parser->content_length != ULLONG_MAX && parser->content_length > ex->settings->max_body)
		return http_fail(ex, 413, "The body is larger than this server accepts.");
	ex->route = http_route_match(ex->settings, req->path, req->path_len);
	/* Only a shorter prefix ("/") matched: the route it names wins. */
	if (ex->route == NULL || ex->route->prefix_len < req->path_len) {
		const struct http_route *named = slash_route(ex->settings, req->path, req->path_len);
		if (named != NULL)
			ex->route = named;
	}
	if (ex->route == NULL)
		return 0;	/* a 404, once the body (if any) is read */
	allowed = ex->route->handler->methods;
	if (!(http_method_bit(req->method) & allowed))
		return 0;	/* a 405, likewise */
	if ((allowed & (HTTP_ALLOW_POST | HTTP_ALLOW_PUT)) && !http_has_body(parser) &&
	    parser->content_length == ULLONG_MAX && (req->method == HTTP_POST || req->method == HTTP_PUT))
		return http_fail(ex, 411, "A body needs a Content-Length or chunked coding.");
	return http_check_expect(ex, http_has_body(parser));
}

static int on_body(http_parser *parser, const char *at, size_t len)
{
	struct http_exchange *ex = parser->data;

	ex->body_bytes += len;
	if (ex->body_bytes > ex->settings->max_body)
		return http_fail(ex, 413, "The body is larger than this server accepts.");
	if (ex->route != NULL && (ex->route->handler->methods & (HTTP_ALLOW_POST | HTTP_ALLOW_PUT))) {
		if (ex->request.body == NULL && (ex->request.body = evbuffer_new()) == NULL)
			return http_fail(ex, 500, "Out of memory.");
		evbuffer_add(ex->request.body, at, len);
	}
	return 0;
}

/* A chunk's size is known from its size line: one that would pass the
 * limit is answered now, not once its bytes have come (or never come). */
static int on_chunk_header(http_parser *parser)
{
	struct http_exchange *ex = parser->data;

	if (parser->content_length > ex->settings->max_body - ex->body_bytes)
		return http_fail(ex, 413, "The body is larger than this server accepts.");
	return 0;
}

static int on_message_complete(http_parser *parser)
{
	struct http_exchange *ex = parser->data;

	ex->phase = PHASE_ANSWERING;
	if (ex->request_deadline != NULL)
		event_del(ex->request_deadline);
	http_parser_pause(parser, 1);
	return 0;
}

static const http_parser_settings http_callbacks = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_chunk_header = on_chunk_header,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* ---- one request ---- */

static void http_answer(struct http_exchange *ex)
{
	const struct http_route *route = ex->route;
	struct http_state *state = ex->state;

	state->counters.requests++;
	ex->status = 0;
	ex->bytes_out = 0;
	ex->head_written = false;
	ex->head_only = ex->request.method == HTTP_HEAD;
	if (route == NULL) {
		char detail[512];

		snprintf(detail, sizeof(detail), "No route matches %.*s", (int)(ex->request.path_len < 400 ? ex->request.path_len : 400),
			 ex->request.path);
		ex->settings->respond_error(ex, 404, detail);
		return;
	}
	if (!(http_method_bit(ex->request.method) & route->handler->methods)) {
		ex->settings->respond_error(ex, 405, http_method_str(ex->request.method));
		return;
	}
	route->handler->serve(ex, route, state->route_states[route - ex->settings->routes]);
}

static int http_error_for(enum http_errno err)
{
	switch (err) {
	case HPE_INVALID_METHOD: return 501;
	case HPE_INVALID_TRANSFER_ENCODING: return 501;
	case HPE_INVALID_VERSION: return 505;
	case HPE_HEADER_OVERFLOW: return 431;
	default: return 400;
	}
}

/* A request the parser or a limit refused: answer, count, close. */
static void http_reject(struct http_exchange *ex, int status, const char *why)
{
	struct http_state *state = ex->state;

	state->counters.bad_requests++;
	conn_log(ex->conn, LOG_DEBUG, "bad request: %d %s", status, why);
	if (ex->phase == PHASE_IDLE)
		clock_gettime(CLOCK_MONOTONIC, &ex->started);
	ex->phase = PHASE_ANSWERING;
	ex->keep_alive = false;
	ex->head_only = false;
	ex->head_written = false;
	ex->bytes_out = 0;
	if (ex->request.url == NULL)
		ex->request.url = "", ex->request.url_len = 0;
	ex->settings->respond_error(ex, status, why);
}

static void http_on_request_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct http_exchange *ex = arg;

	if (ex->phase == PHASE_HEAD) {
		ex->state->counters.timeouts++;
		http_reject(ex, 408, "The request head took too long.");
	} else if (ex->phase == PHASE_BODY) {
		ex->state->counters.body_timeouts++;
		http_reject(ex, 408, "The request body took too long.");
	}
	(void)fd;
	(void)what;
}

/* The request's deadline: `ns` after `from` (http_clock_ns() time). */
static void http_arm_request_deadline(struct http_exchange *ex, uint64_t from, uint64_t ns)
{
	uint64_t elapsed = http_clock_ns() - from;
	struct timeval left;

	if (ex->request_deadline == NULL &&
	    (ex->request_deadline = evtimer_new(ex->state->base, http_on_request_deadline, ex)) == NULL)
		return;
	elapsed = elapsed < ns ? ns - elapsed : 0;
	left.tv_sec = (time_t)(elapsed / 1000000000u);
	left.tv_usec = (suseconds_t)(elapsed % 1000000000u / 1000u);
	evtimer_add(ex->request_deadline, &left);
}

/* Slowloris: a head still incomplete gets a deadline from its first byte.
 * A body gets body-timeout from the head's end, moved a second later for
 * each body-min-rate bytes that came (Apache's mod_reqtimeout): a large
 * upload at a sane rate goes on, a byte every few seconds does not. Both
 * outlast the connection's idle timeout, which any byte resets. */
static void http_arm_deadlines(struct http_exchange *ex)
{
	const struct http_settings *settings = ex->settings;
	uint64_t earned;

	if (ex->phase == PHASE_HEAD && (ex->request_deadline == NULL || !evtimer_pending(ex->request_deadline, NULL))) {
		http_arm_request_deadline(ex, http_started_ns(ex), settings->head_timeout * 1000000000ull);
	} else if (ex->phase == PHASE_BODY) {
		earned = settings->body_min_rate ? ex->body_bytes / settings->body_min_rate : 0;
		/* 136 years at most: terabytes at a byte a second must not wrap
		 * the nanoseconds to a deadline already passed. */
		if (earned > UINT32_MAX)
			earned = UINT32_MAX;
		http_arm_request_deadline(ex, ex->body_started_ns, (settings->body_timeout + earned) * 1000000000ull);
	}
}

/* Feeds buffered input to the parser until a request is complete, the input
 * runs out, or the output is full; answers each complete request. */
static void http_process(struct http_exchange *ex)
{
	if (ex->in_process)
		return;
	ex->in_process = true;
	while (ex->phase != PHASE_ANSWERING && ex->phase != PHASE_CLOSED && !conn_output_full(ex->conn)) {
		struct evbuffer_iovec chunk;
		size_t used;
		enum http_errno err;

		if (evbuffer_peek(ex->in, -1, NULL, &chunk, 1) < 1 || chunk.iov_len == 0)
			break;
		ex->value_end = NULL;
		used = http_parser_execute(&ex->parser, &http_callbacks, chunk.iov_base, chunk.iov_len);
		evbuffer_drain(ex->in, used);
		err = HTTP_PARSER_ERRNO(&ex->parser);
		if (err == HPE_PAUSED) {
			http_parser_pause(&ex->parser, 0);
			http_answer(ex);
		} else if (err != HPE_OK) {
			if (ex->error != 0)
				http_reject(ex, ex->error, ex->error_why);
			else
				http_reject(ex, http_error_for(err), http_errno_description(err));
		} else if (ex->phase == PHASE_HEAD && ex->parser.http_major == 0 && ex->parser.http_minor == 9) {
			http_reject(ex, 505, "HTTP/0.9 is not supported.");
		}
	}
	http_arm_deadlines(ex);
	if (ex->end_of_input && ex->phase != PHASE_ANSWERING && ex->phase != PHASE_CLOSED &&
	    evbuffer_get_length(ex->in) == 0) {
		ex->phase = PHASE_CLOSED;
		conn_close_after_flush(ex->conn);
	}
	ex->in_process = false;
}

/* ---- the access log and the end of an answer ---- */

static void http_access_time(char *buf, size_t len)
{
	static time_t cached_at;
	static char cached[40];
	time_t now = http_now();
	struct tm tm;

	if (now != cached_at) {
		localtime_r(&now, &tm);
		strftime(cached, sizeof(cached), "%d/%b/%Y:%H:%M:%S %z", &tm);
		cached_at = now;
	}
	snprintf(buf, len, "%s", cached);
}

/* Quotes and control bytes from the client must not forge log fields. */
static void http_log_quote(char *out, size_t cap, const char *text, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

/* The log's request field, as nginx and Apache write it: "-" when no
 * request line was read, no version when the line had none. */
static void http_access_request(const struct http_exchange *ex, const char *method, const char *url, char *out,
				size_t cap)
{
	if (ex->request.url_len == 0)
		snprintf(out, cap, "-");
	else if (ex->request.major == 0)
		snprintf(out, cap, "%s %s", method, url);
	else
		snprintf(out, cap, "%s %s HTTP/%u.%u", method, url, ex->request.major, ex->request.minor);
}

static void http_access_log(struct http_exchange *ex)
{
	char when[40], peer[64], url[1024], referer[512], agent[512], request[1100], line[2700];
	char status[8], bytes[24], usec[24];
	const char *ref, *ua, *method = ex->request.url_len ? http_method_str(ex->request.method) : "-";
	size_t ref_len = 0, ua_len = 0;
	unsigned long long duration;
	struct log_field fields[5];

	if (!log_enabled(LOG_INFO))
		return;
	ref = http_header_find(ex, "Referer", &ref_len);
	ua = http_header_find(ex, "User-Agent", &ua_len);
	duration = (http_clock_ns() - http_started_ns(ex)) / 1000u;
	http_access_time(when, sizeof(when));
	addr_format(conn_peer(ex->conn), false, peer, sizeof(peer));
	http_log_quote(url, sizeof(url), ex->request.url, ex->request.url_len);
	http_log_quote(referer, sizeof(referer), ref ? ref : "-", ref ? ref_len : 1);
	http_log_quote(agent, sizeof(agent), ua ? ua : "-", ua ? ua_len : 1);
	http_access_request(ex, method, url, request, sizeof(request));
	snprintf(line, sizeof(line), "%s - - [%s] \"%s\" %d %llu \"%s\" \"%s\"", peer, when, request, ex->status,
		 (unsigned long long)ex->bytes_out, referer, agent);
	snprintf(status, sizeof(status), "%d", ex->status);
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)ex->bytes_out);
	snprintf(usec, sizeof(usec), "%llu", duration);
	fields[0] = (struct log_field){ "HTTP_METHOD", method };
	fields[1] = (struct log_field){ "HTTP_PATH", url };
	fields[2] = (struct log_field){ "HTTP_STATUS", status };
	fields[3] = (struct log_field){ "BYTES_OUT", bytes };
	fields[4] = (struct log_field){ "DURATION_USEC", usec };
	conn_log_line(ex->conn, LOG_INFO, fields, 5, line);
}

/* Decided once per answer, when its head is written. */
bool http_exchange_keep_alive(struct http_exchange *ex)
{
	ex->keep_alive = ex->keep_alive && ex->phase == PHASE_ANSWERING && ex->error == 0 &&
			 http_should_keep_alive(&ex->parser) && !ex->parser.upgrade &&
			 ex->served + 1 < ex->settings->max_requests && !ex->end_of_input;
	return ex->keep_alive;
}

/* Counted and logged once per answer, whether it finished or its
 * connection went first (a live stream's client). */
static void http_account(struct http_exchange *ex)
{
	struct http_state *state = ex->state;

	ex->served++;
	state->counters.bytes_out += ex->bytes_out;
	state->counters.status[ex->status / 100 < 6 ? ex->status / 100 : 5]++;
	if (ex->settings->access_log)
		http_access_log(ex);
}

void http_finish(struct http_exchange *ex)
{
	ex->feed = NULL;
	http_account(ex);
	ex->route = NULL;
	ex->request.url = NULL;
	ex->request.n_headers = 0;
	if (!ex->keep_alive) {
		ex->phase = PHASE_CLOSED;
		conn_close_after_flush(ex->conn);
		return;
	}
	ex->phase = PHASE_IDLE;
	ex->keep_alive = true;
	http_process(ex);
}

/* ---- a file body, a window at a time ---- */

/* Queued a piece at a time until the output is full: each piece in the
 * output costs a chain (~1 KiB of heap), and a 4 GiB file queued whole
 * was 16,384 of them for a client that never reads. */
#define HTTP_FILE_PIECE ((off_t)256 * 1024)

static void http_file_done(struct http_exchange *ex)
{
	if (ex->file_anchor != NULL)
		evbuffer_free(ex->file_anchor);
	ex->file_anchor = NULL;
	ex->file_segment = NULL;
	ex->file_left = 0;
}

/* True once the whole file is queued. */
static bool http_file_refill(struct http_exchange *ex)
{
	while (ex->file_left > 0 && !conn_output_full(ex->conn)) {
		/* Up to the output's next chunk end (conn_write_file_segment()
		 * counts chunks from the start of the output): one chunk per
		 * piece, never a tail of a few bytes behind it. */
		off_t piece = HTTP_FILE_PIECE - (off_t)(conn_output_length(ex->conn) % (size_t)HTTP_FILE_PIECE);

		if (piece > ex->file_left)
			piece = ex->file_left;
		if (conn_write_file_segment(ex->conn, ex->file_segment, ex->file_fd, ex->file_next, piece) < 0) {
			conn_abort(ex->conn);	/* the length promised cannot be kept */
			ex->keep_alive = false;
			ex->file_left = 0;
			break;
		}
		ex->file_next += piece;
		ex->file_left -= piece;
	}
	return ex->file_left == 0;
}

void http_finish_with_file(struct http_exchange *ex, struct evbuffer_file_segment *segment, int fd, off_t offset,
			   off_t len)
{
	ex->file_segment = segment;
	ex->file_fd = fd;
	ex->file_next = offset;
	ex->file_left = len;
	/* The rest waits: its chains must not outlive the segment. One chain
	 * for the whole rest holds a reference, as libevent counts them; the
	 * flag keeps libevent from reading (materializing) the file for it. */
	if (!http_file_refill(ex)) {
		ex->file_anchor = evbuffer_new();
		if (ex->file_anchor == NULL || evbuffer_set_flags(ex->file_anchor, EVBUFFER_FLAG_DRAINS_TO_FD) < 0 ||
		    evbuffer_add_file_segment(ex->file_anchor, segment, ex->file_next, ex->file_left) < 0) {
			conn_abort(ex->conn);	/* a short body must not look whole */
			ex->keep_alive = false;
			http_file_done(ex);
			http_finish(ex);
		}
		return;		/* drained() goes on */
	}
	http_file_done(ex);
	http_finish(ex);
}

/* ---- the connection hooks (protocol_http's) ---- */

int http_exchange_open(struct conn *conn)
{
	struct http_state *state = conn_service_state(conn);
	const struct http_settings *settings = state->settings;
	struct http_exchange *ex = calloc(1, sizeof(*ex));

	if (ex == NULL)
		return -1;
	ex->conn = conn;
	ex->state = state;
	ex->settings = settings;
	ex->keep_alive = true;
	ex->arena = malloc(settings->max_head);
	ex->headers = calloc(settings->max_headers, sizeof(*ex->headers));
	if (ex->arena == NULL || ex->headers == NULL) {
		free(ex->arena);
		free(ex->headers);
		free(ex);
		return -1;
	}
	http_parser_init(&ex->parser, HTTP_REQUEST);
	ex->parser.data = ex;
	conn_set_data(conn, ex);
	conn_set_idle_timeout(conn, settings->keepalive_timeout);
	return 0;
}

void http_exchange_input(struct conn *conn, struct evbuffer *in)
{
	struct http_exchange *ex = conn_data(conn);

	ex->in = in;
	if (ex->phase == PHASE_CLOSED) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	http_process(ex);
}

/* The client will send no more; what it sent is still answered. */
void http_exchange_end_of_input(struct conn *conn)
{
	struct http_exchange *ex = conn_data(conn);

	ex->end_of_input = true;
	if (ex->phase == PHASE_ANSWERING)
		return;
	if (ex->in != NULL && ex->phase != PHASE_CLOSED)
		http_process(ex);
	if (ex->phase != PHASE_ANSWERING && ex->phase != PHASE_CLOSED) {
		ex->phase = PHASE_CLOSED;
		conn_close_after_flush(conn);
	}
}

void http_exchange_drained(struct conn *conn)
{
	struct http_exchange *ex = conn_data(conn);

	if (ex->feed != NULL)
		feed_sink_drained(ex->feed);
	if (ex->file_anchor != NULL) {
		if (http_file_refill(ex)) {
			http_file_done(ex);
			http_finish(ex);
		}
		return;
	}
	if (ex->in != NULL && ex->phase != PHASE_ANSWERING)
		http_process(ex);
}

void http_exchange_close(struct conn *conn)
{
	struct http_exchange *ex = conn_data(conn);

	if (ex == NULL)
		return;
	if (conn_ended_by_a_short_file(conn))
		ex->state->counters.files_cut_short++;
	if (ex->feed != NULL)
		feed_cancel(ex->feed);
	if (ex->endless_gone != NULL) {
		ex->endless_gone(ex->endless_arg);
		ex->endless_gone = NULL;
		http_account(ex);
	}
	http_file_done(ex);
	if (ex->request_deadline != NULL)
		event_free(ex->request_deadline);
	if (ex->request.body != NULL)
		evbuffer_free(ex->request.body);
	free(ex->arena);
	free(ex->headers);
	free(ex);
}

/* ---- routes ---- */

/* "/files" takes /files, /files/... but not /filesystem; "/" takes all. */
const struct http_route *http_route_match_among(const struct http_route *routes, size_t n_routes, const char *path,
						size_t len)
{
	for (size_t i = 0; i < n_routes; i++) {
		const struct http_route *route = &routes[i];
		size_t n = route->prefix_len;

		if (route->handler == NULL)
			continue;	/* refused at load: its prefix may be anything */
		if (len < n || memcmp(path, route->prefix, n) != 0)
			continue;
		if (route->prefix[n - 1] == '/' || len == n || path[n] == '/')
			return route;
	}
	return NULL;
}

const struct http_route *http_route_match(const struct http_settings *settings, const char *path, size_t len)
{
	return http_route_match_among(settings->routes, settings->n_routes, path, len);
}
