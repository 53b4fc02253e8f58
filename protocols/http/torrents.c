/* torrents: the index of what a torrent stream seeds, as an HTML page with
 * each torrent's .torrent file and magnet link, and the .torrent files
 * themselves at PREFIX/INFOHASH.torrent. The list is the one the stream
 * publishes (torrent/torrent.c), looked up at each request: the stream
 * may start, restart or go. */
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/chassis.h"
#include "protocols/http/handlers.h"
#include "protocols/http/response.h"

#define TORRENTS_HASH_LEN 40
/* A .torrent file larger than this is not served (a made one is small:
 * 20 bytes a piece). */
#define TORRENTS_FILE_MAX (16 * 1024 * 1024)

struct listed {
	const char *hash, *file, *name;
	size_t file_len, name_len;
};

static bool torrents_configure(struct http_route *route, cfg_t *sec, struct conf_scope *scope)
{
	const char *stream = cfg_getstr(sec, "stream");
	char name[300];

	if (stream == NULL || stream[0] == '\0') {
		conf_scope_error(scope, "stream", "a torrents route needs stream = \"<name of a torrent stream>\"");
		return false;
	}
	snprintf(name, sizeof(name), "torrent:%s", stream);
	route->location = strdup(name);
	return route->location != NULL;
}

static void torrents_free(struct http_route *route)
{
	free(route->location);
}

/* The next "HASH\tFILE\tNAME" line from *at; false at the end. */
static bool next_listed(const char **at, struct listed *l)
{
	while (**at != '\0') {
		const char *line = *at, *end = strchr(line, '\n'), *tab1, *tab2;

		if (end == NULL)
			end = line + strlen(line);
		*at = *end ? end + 1 : end;
		tab1 = memchr(line, '\t', (size_t)(end - line));
		tab2 = tab1 ? memchr(tab1 + 1, '\t', (size_t)(end - tab1 - 1)) : NULL;
		if (tab1 == NULL || tab2 == NULL || tab1 - line != TORRENTS_HASH_LEN)
			continue;
		l->hash = line;
		l->file = tab1 + 1;
		l->file_len = (size_t)(tab2 - tab1 - 1);
		l->name = tab2 + 1;
		l->name_len = (size_t)(end - tab2 - 1);
		return true;
	}
	return false;
}

/* The tracker of the list's "tr\tURL" line, or "". */
static size_t listed_tracker(const char *text, const char **url)
{
	const char *end;

	*url = "";
	if (strncmp(text, "tr\t", 3) != 0)
		return 0;
	*url = text + 3;
	end = strchr(*url, '\n');
	return end ? (size_t)(end - *url) : strlen(*url);
}

static void url_encode(struct evbuffer *out, const char *text, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c))
			evbuffer_add(out, &text[i], 1);
		else
			evbuffer_add_printf(out, "%%%c%c", hex[c >> 4], hex[c & 15]);
	}
}

/* A magnet link (BEP 9), before HTML escaping. */
static void magnet(struct evbuffer *out, const struct listed *l, const char *tracker, size_t tracker_len)
{
	evbuffer_add_printf(out, "magnet:?xt=urn:btih:%.*s&dn=", TORRENTS_HASH_LEN, l->hash);
	url_encode(out, l->name, l->name_len);
	if (tracker_len > 0) {
		evbuffer_add_printf(out, "&tr=");
		url_encode(out, tracker, tracker_len);
	}
}

static void escaped_buffer(struct evbuffer *page, struct evbuffer *raw)
{
	size_t len = evbuffer_get_length(raw);
	const char *text = (const char *)evbuffer_pullup(raw, (ev_ssize_t)len);

	http_html_escape(page, text ? text : "", text ? len : 0);
	evbuffer_drain(raw, len);
}

static void index_row(struct evbuffer *page, struct evbuffer *scratch, const struct http_route *route,
		      const struct listed *l, const char *tracker, size_t tracker_len)
{
	evbuffer_add_printf(page, "<tr><td>");
	http_html_escape(page, l->name, l->name_len);
	evbuffer_add_printf(page, "</td><td><a href=\"");
	http_html_escape(page, route->prefix, route->prefix_len);
	evbuffer_add_printf(page, "%s%.*s.torrent\">.torrent</a></td><td><a href=\"",
			    route->prefix[route->prefix_len - 1] == '/' ? "" : "/", TORRENTS_HASH_LEN, l->hash);
	magnet(scratch, l, tracker, tracker_len);
	escaped_buffer(page, scratch);
	evbuffer_add_printf(page, "\">magnet</a></td><td><code>%.*s</code></td></tr>\n", TORRENTS_HASH_LEN,
			    l->hash);
}

static void serve_index(struct http_exchange *ex, const struct http_route *route, const char *text)
{
	struct evbuffer *page = evbuffer_new(), *scratch = evbuffer_new();
	const char *tracker, *at = text;
	size_t tracker_len = listed_tracker(text, &tracker);
	struct listed l;

	if (page == NULL || scratch == NULL) {
		http_respond_error(ex, 500, "out of memory");
	} else {
		evbuffer_add_printf(page, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Torrents</title>"
				    "</head><body>\n<h1>Torrents</h1>\n<table>\n<tr><th>name</th><th>torrent</th>"
				    "<th>magnet</th><th>infohash</th></tr>\n");
		while (next_listed(&at, &l))
			index_row(page, scratch, route, &l, tracker, tracker_len);
		evbuffer_add_printf(page, "</table>\n</body></html>\n");
		http_respond_buffer(ex, 200, "text/html; charset=utf-8", page, "Cache-Control: no-store\r\n");
	}
	if (page != NULL)
		evbuffer_free(page);
	if (scratch != NULL)
		evbuffer_free(scratch);
}

/* The .torrent of a listed infohash: the file named in the list, never a
 * path from the request. */
static void serve_file(struct http_exchange *ex, const struct listed *l)
{
	char path[4096];
	struct evbuffer *body;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%.*s", (int)l->file_len, l->file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TORRENTS_FILE_MAX) {
		if (fd >= 0)
			close(fd);
		http_respond_error(ex, 404, "the torrent file is gone");
		return;
	}
	body = evbuffer_new();
	while (body != NULL && evbuffer_get_length(body) < (size_t)st.st_size)
		if (evbuffer_read(body, fd, (int)((size_t)st.st_size - evbuffer_get_length(body))) <= 0)
			break;
	close(fd);
	if (body == NULL || evbuffer_get_length(body) != (size_t)st.st_size) {
		if (body != NULL)
			evbuffer_free(body);
		http_respond_error(ex, 500, "cannot read the torrent file");
		return;
	}
	http_respond_buffer(ex, 200, "application/x-bittorrent", body, "Cache-Control: no-store\r\n");
	evbuffer_free(body);
}

static void torrents_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	const char *type, *text = chassis_published(ex->conn, route->location, &type);
	const struct http_request *req = &ex->request;
	size_t skip = route->prefix[route->prefix_len - 1] == '/' ? route->prefix_len - 1 : route->prefix_len;
	const char *rest = req->path + skip, *at = text;
	size_t rest_len = req->path_len - skip;
	struct listed l;

	(void)route_state;
	if (text == NULL) {
		http_respond_error(ex, 404, "no such torrent stream running");
		return;
	}
	if (rest_len <= 1) {
		serve_index(ex, route, text);
		return;
	}
	if (rest_len == 1 + TORRENTS_HASH_LEN + 8 && rest[0] == '/' &&
	    memcmp(rest + 1 + TORRENTS_HASH_LEN, ".torrent", 8) == 0)
		while (next_listed(&at, &l))
			if (memcmp(l.hash, rest + 1, TORRENTS_HASH_LEN) == 0) {
				serve_file(ex, &l);
				return;
			}
	http_respond_error(ex, 404, "no such torrent");
}

const struct http_handler http_handler_torrents = {
	.name = "torrents",
	.options = (const char *const[]){ "stream", NULL },
	.methods = HTTP_ALLOW_GET | HTTP_ALLOW_HEAD,
	.configure = torrents_configure,
	.free = torrents_free,
	.serve = torrents_serve,
};
