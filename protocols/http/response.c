/* Writing answers: status line and headers in one small write, bodies from
 * memory, from a file by sendfile, or from a module's feed as chunks. */
#include <event2/buffer.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/chassis.h"
#include "daemon/log.h"
#include "protocols/http/response.h"
#include "daemon/protocol.h"
#include "protocols/support/feed.h"

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

static const char *const day_names[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* By hand rather than strftime: the names must be English whatever the
 * locale, and this runs for every answer. */
void http_date(time_t when, char *buf)
{
	struct tm tm;

	gmtime_r(&when, &tm);
	snprintf(buf, 30, "%s, %02u %s %04u %02u:%02u:%02u GMT", day_names[tm.tm_wday], (unsigned)tm.tm_mday % 100u,
		 month_names[tm.tm_mon], (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)tm.tm_hour % 100u,
		 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
}

/* IMF-fixdate only; the obsolete forms a client may send just miss. */
bool http_date_parse(const char *text, size_t len, time_t *out)
{
	char copy[40], month[4];
	struct tm tm = { 0 };
	int day, year, hour, min, sec, used = 0;

	if (len >= sizeof(copy))
		return false;
	memcpy(copy, text, len);
	copy[len] = '\0';
	if (sscanf(copy, "%*3s, %2d %3s %4d %2d:%2d:%2d GMT%n", &day, month, &year, &hour, &min, &sec, &used) != 6 ||
	    used != (int)len)
		return false;
	for (tm.tm_mon = 0; tm.tm_mon < 12 && strcmp(month, month_names[tm.tm_mon]) != 0; tm.tm_mon++)
		;
	if (tm.tm_mon == 12)
		return false;
	tm.tm_mday = day;
	tm.tm_year = year - 1900;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	*out = timegm(&tm);
	return true;
}

static const char *http_date_now(void)
{
	static time_t cached_at;
	static char cached[30];
	time_t now = http_now();

	if (now != cached_at) {
		http_date(now, cached);
		cached_at = now;
	}
	return cached;
}

void http_html_escape(struct evbuffer *out, const char *text, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		const char *entity;
		switch (text[i]) {
		case '<': entity = "&lt;"; break;
		case '>': entity = "&gt;"; break;
		case '&': entity = "&amp;"; break;
		case '"': entity = "&quot;"; break;
		case '\'': entity = "&#39;"; break;
		default: continue;
		}
		evbuffer_add(out, text + start, i - start);
		evbuffer_add(out, entity, strlen(entity));
		start = i + 1;
	}
	evbuffer_add(out, text + start, len - start);
}

/* Builds heads without printf: they are written for every answer. */
static char *put(char *at, const char *text, size_t len)
{
	memcpy(at, text, len);
	return at + len;
}

#define PUT(at, literal) put(at, literal, sizeof(literal) - 1)

static char *put_decimal(char *at, unsigned long long value)
{
	char digits[20];
	size_t n = 0;

	do
		digits[n++] = (char)('0' + value % 10);
	while ((value /= 10) > 0);
	while (n > 0)
		*at++ = digits[--n];
	return at;
}

/* The longest Content-Type a head takes; the rest of its line fits in
 * 256 bytes, and most extra headers in what is left of HTTP_HEAD_MAX. */
#define HTTP_TYPE_MAX 512

/* Everything up to the extra headers; sets the exchange up for the answer. */
static char *head_lines(struct http_exchange *ex, int status, const char *type, off_t length, char *at)
{
	const char *reason = http_status_text(status);
	bool one_oh = ex->request.major == 1 && ex->request.minor == 0;
	size_t type_len = type != NULL ? strnlen(type, HTTP_TYPE_MAX + 1) : 0;

	ex->status = status;
	ex->chunked = false;
	/* An unknown length on HTTP/1.0 can only end with the connection. */
	if ((length < 0 && one_oh) || length == HTTP_LENGTH_UNTIL_CLOSE)
		ex->keep_alive = false;
	at = PUT(at, "HTTP/1.1 ");
	at = put_decimal(at, (unsigned)status % 1000u);
	*at++ = ' ';
	at = put(at, reason, strlen(reason));
	at = PUT(at, "\r\nServer: chassisd\r\nDate: ");
	at = put(at, http_date_now(), 29);
	at = PUT(at, "\r\n");
	if (type_len > 0 && type_len <= HTTP_TYPE_MAX) {
		at = PUT(at, "Content-Type: ");
		at = put(at, type, type_len);
		at = PUT(at, "\r\n");
	}
	if (length >= 0 && status != 304) {
		at = PUT(at, "Content-Length: ");
		at = put_decimal(at, (unsigned long long)length);
		at = PUT(at, "\r\n");
	} else if (length == -1 && !one_oh) {
		at = PUT(at, "Transfer-Encoding: chunked\r\n");
		ex->chunked = true;
	}
	if (!http_exchange_keep_alive(ex))
		at = PUT(at, "Connection: close\r\n");
	else if (one_oh)
		at = PUT(at, "Connection: keep-alive\r\n");
	return at;
}

size_t http_head_format(struct http_exchange *ex, int status, const char *type, off_t length, const char *extra,
			char head[HTTP_HEAD_MAX])
{
	char *at = head_lines(ex, status, type, length, head);
	size_t extra_len = extra != NULL ? strlen(extra) : 0;

	if (extra_len + 2 > HTTP_HEAD_MAX - (size_t)(at - head))
		return 0;
	if (extra_len > 0)	/* extra may be NULL: no memcpy from it */
		at = put(at, extra, extra_len);
	at = PUT(at, "\r\n");
	return (size_t)(at - head);
}

void http_respond_formatted_head(struct http_exchange *ex, const char *head, size_t len)
{
	conn_write(ex->conn, head, len);
	ex->head_written = true;
}

void http_respond_head(struct http_exchange *ex, int status, const char *type, off_t length, const char *extra)
{
	char head[HTTP_HEAD_MAX];
	size_t len = http_head_format(ex, status, type, length, extra, head);

	if (len == 0) {		/* extra headers too long for one piece */
		len = (size_t)(head_lines(ex, status, type, length, head) - head);
		conn_write(ex->conn, head, len);
		conn_write(ex->conn, extra, strlen(extra));
		len = 2;
		memcpy(head, "\r\n", 2);
	}
	http_respond_formatted_head(ex, head, len);
}

void http_respond_bytes(struct http_exchange *ex, int status, const char *type, const void *body, size_t len,
			const char *extra)
{
	http_respond_head(ex, status, type, (off_t)len, extra);
	if (!ex->head_only && len > 0) {
		conn_write(ex->conn, body, len);
		ex->bytes_out = len;
	}
	http_finish(ex);
}

void http_respond_buffer(struct http_exchange *ex, int status, const char *type, struct evbuffer *body,
			 const char *extra)
{
	size_t len = evbuffer_get_length(body);

	http_respond_head(ex, status, type, (off_t)len, extra);
	if (!ex->head_only && len > 0) {
		conn_write_buffer(ex->conn, body);
		ex->bytes_out = len;
	}
	http_finish(ex);
}

void http_respond_prepared(struct http_exchange *ex, struct evbuffer_file_segment *answer, size_t head_len,
			   off_t body_len)
{
	ex->head_written = true;
	/* No fd: a memfd the daemon filled and that no one else holds, so
	 * that no one can cut it short; over TLS it may be mapped. */
	if (conn_write_file_segment(ex->conn, answer, -1, 0, (off_t)head_len + body_len) < 0)
		ex->keep_alive = false;		/* part may be queued: end there */
	else
		ex->bytes_out = (uint64_t)body_len;
	http_finish(ex);
}

void http_respond_file(struct http_exchange *ex, struct evbuffer_file_segment *segment, int fd, off_t offset,
		       off_t len)
{
	if (ex->head_only || len == 0) {
		http_finish(ex);
		return;
	}
	ex->bytes_out = (uint64_t)len;
	http_finish_with_file(ex, segment, fd, offset, len);
}

/* "Allow: GET, HEAD\r\n" from a handler's method bits. */
static void http_allow_header(unsigned methods, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = { { HTTP_ALLOW_GET, "GET" }, { HTTP_ALLOW_HEAD, "HEAD" }, { HTTP_ALLOW_POST, "POST" },
		      { HTTP_ALLOW_PUT, "PUT" } };
	size_t used = (size_t)snprintf(buf, len, "Allow:");

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && used < len; i++)
		if (methods & names[i].bit)
			used += (size_t)snprintf(buf + used, len - used, "%s %s", used > 6 ? "," : "", names[i].name);
	if (used < len)
		snprintf(buf + used, len - used, "\r\n");
}

void http_respond_add_slash(struct http_exchange *ex)
{
	const struct http_request *req = &ex->request;
	size_t cap = req->path_len + req->query_len + 32;
	char *location = malloc(cap);

	if (location == NULL) {
		http_respond_error(ex, 500, "out of memory");
		return;
	}
	snprintf(location, cap, "Location: %.*s/%s%.*s\r\n", (int)req->path_len, req->path, req->query ? "?" : "",
		 (int)req->query_len, req->query ? req->query : "");
	http_respond_bytes(ex, 301, NULL, NULL, 0, location);
	free(location);
}

void http_respond_error(struct http_exchange *ex, int status, const char *detail)
{
	struct evbuffer *page = evbuffer_new();
	char allow[64] = "Allow: GET, HEAD\r\n";

	if (page == NULL) {
		ex->keep_alive = false;
		http_respond_bytes(ex, status, NULL, NULL, 0, NULL);
		return;
	}
	/* A bad request leaves the connection in an unknown state. */
	if (status == 400 || status == 408 || status == 411 || status == 413 || status == 414 || status == 417 ||
	    status == 431 || status >= 500)
		ex->keep_alive = false;
	evbuffer_add_printf(page, "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n<body><h1>%d %s</h1>\n<p>",
			    status, http_status_text(status), status, http_status_text(status));
	http_html_escape(page, detail, strlen(detail));
	evbuffer_add_printf(page, "</p>\n<hr><address>chassisd</address></body></html>\n");
	if (status == 405 && ex->route != NULL)
		http_allow_header(ex->route->handler->methods, allow, sizeof(allow));
	http_respond_buffer(ex, status, "text/html; charset=utf-8", page, status == 405 ? allow : NULL);
	evbuffer_free(page);
}

/* ---- a module's body, chunked ---- */

static void feed_head(struct http_exchange *ex)
{
	if (!ex->head_written)
		http_respond_head(ex, 200, ex->feed_type, -1, NULL);
}

static void feed_chunk_start(struct http_exchange *ex, size_t len)
{
	char size[24];
	int n;

	feed_head(ex);
	ex->bytes_out += len;
	if (!ex->chunked)
		return;
	n = snprintf(size, sizeof(size), "%zx\r\n", len);
	conn_write(ex->conn, size, (size_t)n);
}

static void http_feed_write(void *arg, struct evbuffer *data)
{
	struct http_exchange *ex = arg;
	size_t len = evbuffer_get_length(data);

	if (len == 0)
		return;
	feed_chunk_start(ex, len);
	conn_write_buffer(ex->conn, data);
	if (ex->chunked)
		conn_write(ex->conn, "\r\n", 2);
}

static int http_feed_write_file(void *arg, int fd, off_t offset, off_t len)
{
	struct http_exchange *ex = arg;
	int rc;

	feed_chunk_start(ex, (size_t)len);
	rc = conn_write_file(ex->conn, fd, offset, len);
	if (ex->chunked)
		conn_write(ex->conn, "\r\n", 2);
	return rc;
}

static void http_feed_done(void *arg, bool ok, const char *why)
{
	struct http_exchange *ex = arg;

	feed_head(ex);
	ex->feed = NULL;
	if (!ok) {
		/* No last chunk: the client sees the body is cut short. */
		conn_log(ex->conn, LOG_WARNING, "%s failed: %s", ex->route->module->config.name, why);
		ex->keep_alive = false;
	} else if (ex->chunked) {
		conn_write(ex->conn, "0\r\n\r\n", 5);
	}
	http_finish(ex);
}

static bool http_feed_full(void *arg)
{
	struct http_exchange *ex = arg;

	return conn_output_full(ex->conn);
}

static const struct feed_sink http_feed_sink = {
	.write = http_feed_write,
	.write_file = http_feed_write_file,
	.done = http_feed_done,
	.full = http_feed_full,
};

void http_respond_feed(struct http_exchange *ex, const struct protocol *module, void *module_state)
{
	char err[256] = "out of memory";

	ex->feed_type = module->content_type;
	if (ex->head_only) {
		http_respond_head(ex, 200, ex->feed_type, -1, NULL);
		http_finish(ex);
		return;
	}
	ex->feed = module->body(module_state, &http_feed_sink, ex, err, sizeof(err));
	if (ex->feed == NULL) {
		bool busy = errno == EAGAIN;

		conn_log(ex->conn, busy ? LOG_NOTICE : LOG_WARNING, "%s: %s", module->config.name, err);
		if (busy)
			http_respond_bytes(ex, 503, "text/plain; charset=utf-8", "busy: try again later\n", 22,
					   "Retry-After: 1\r\n");
		else
			http_respond_error(ex, 500, "The body could not be produced.");
		return;
	}
	feed_head(ex);
}
