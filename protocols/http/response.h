/* Writing answers (response.c): status line and headers in one small
 * write, bodies from memory, from a file by sendfile, or from a module's
 * feed as chunks. Each body call finishes the exchange. */
#ifndef CHASSISD_HTTP_RESPONSE_H
#define CHASSISD_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "protocols/http/exchange.h"

struct evbuffer;
struct evbuffer_file_segment;
struct protocol;

/* Headers first, then at most one body call, then
 * http_finish() (the body calls finish by themselves). length -1: unknown,
 * chunked for HTTP/1.1 and close-delimited for 1.0; HTTP_LENGTH_UNTIL_CLOSE:
 * close-delimited for both (a live stream: no chunk framing per datagram).
 * extra: whole header lines, each ending in CRLF, or NULL. */
#define HTTP_LENGTH_UNTIL_CLOSE ((off_t)-2)
void http_respond_head(struct http_exchange *ex, int status, const char *type, off_t length,
		       const char *extra);
/* The same in two steps, for a handler that looks at the head's bytes:
 * format (0 when the extra headers do not fit), then send. */
#define HTTP_HEAD_MAX 2048
size_t http_head_format(struct http_exchange *ex, int status, const char *type, off_t length, const char *extra,
			char head[HTTP_HEAD_MAX]);
void http_respond_formatted_head(struct http_exchange *ex, const char *head, size_t len);
/* Head and body as one file (a prepared answer: a memory file of the
 * module's own): head_len + body_len bytes from its start. */
void http_respond_prepared(struct http_exchange *ex, struct evbuffer_file_segment *answer, size_t head_len,
			   off_t body_len);
void http_respond_bytes(struct http_exchange *ex, int status, const char *type, const void *body,
			size_t len, const char *extra);
void http_respond_buffer(struct http_exchange *ex, int status, const char *type, struct evbuffer *body,
			 const char *extra);
/* Queues len bytes of the segment, whose file is fd, for sendfile (none
 * for HEAD); the output takes its own reference. */
void http_respond_file(struct http_exchange *ex, struct evbuffer_file_segment *segment, int fd, off_t offset,
		       off_t len);
/* An HTML error page; `detail` is escaped. */
void http_respond_error(struct http_exchange *ex, int status, const char *detail);
/* 301 to the request's path with a "/" added, its query kept: a directory
 * (or a route written "/files/") asked for as "/files", so that relative
 * links resolve inside it. */
void http_respond_add_slash(struct http_exchange *ex);
/* A module's feed as a chunked body; the exchange finishes when it ends. */
void http_respond_feed(struct http_exchange *ex, const struct protocol *module, void *module_state);
const char *http_status_text(int status);
/* "Sun, 06 Nov 1994 08:49:37 GMT"; buf needs 30 bytes. */
void http_date(time_t when, char *buf);
bool http_date_parse(const char *text, size_t len, time_t *out);
/* Appends text with < > & " ' escaped. */
void http_html_escape(struct evbuffer *out, const char *text, size_t len);

#endif
