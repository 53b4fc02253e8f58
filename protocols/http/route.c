/* Routes: the ordered list in a listener's http section, each a path
 * prefix bound to a handler, and the small handlers (a module's body,
 * redirect, echo). A table like tmux's command table: one entry per
 * handler, naming the route options it takes. */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/chassis.h"
#include "protocols/http/handlers.h"
#include "protocols/http/response.h"
#include "protocols/http/route.h"
#include "daemon/protocol.h"
#include "protocols/bodies.h"

cfg_opt_t http_route_options[] = {
	CFG_STR("handler", NULL, CFGF_NODEFAULT),
	CFG_STR("root", NULL, CFGF_NODEFAULT),
	CFG_STR("index", "index.html", CFGF_NONE),
	CFG_BOOL("autoindex", cfg_false, CFGF_NONE),
	CFG_BOOL("follow-symlinks", cfg_false, CFGF_NONE),
	CFG_BOOL("precompressed", cfg_true, CFGF_NONE),
	CFG_INT("open-files", 256, CFGF_NONE),
	CFG_INT("prepared-max", 16384, CFGF_NONE),
	CFG_STR("location", NULL, CFGF_NODEFAULT),
	CFG_INT("status", 301, CFGF_NONE),
	CFG_STR("stream", NULL, CFGF_NODEFAULT),
	CFG_STR("listener", NULL, CFGF_NODEFAULT),
	CFG_STR("content-type", HTTP_DEFAULT_STREAM_TYPE, CFGF_NONE),
	CFG_INT("client-buffer", HTTP_DEFAULT_CLIENT_BUFFER, CFGF_NONE),
	CFG_INT("max-clients", HTTP_DEFAULT_MAX_CLIENTS, CFGF_NONE),
	CFG_INT("max-swarms", 1000, CFGF_NONE),
	CFG_INT("max-peers", 1000, CFGF_NONE),
	CFG_INT("max-peers-per-address", 16, CFGF_NONE),
	CFG_INT("interval", 1800, CFGF_NONE),
	CFG_SEC("fortune", fortune_options, CFGF_NONE),
	CFG_SEC("audio-cookie", audio_cookie_options, CFGF_NONE),
	CFG_SEC("video-cookie", video_cookie_options, CFGF_NONE),
	CFG_END()
};

/* ---- a module's body: fortune, audio-cookie, video-cookie ---- */

static bool module_configure(struct http_route *route, cfg_t *sec, struct conf_scope *scope)
{
	cfg_t *module_sec = cfg_getsec(sec, route->module->config.name);
	struct conf_scope *inner = conf_scope_enter(scope, module_sec, route->module->config.name);

	if (inner == NULL)
		return false;
	route->module_settings = route->module->config.configure(module_sec, inner);
	return conf_scope_leave(inner) && route->module_settings != NULL;
}

static void module_free(struct http_route *route)
{
	if (route->module_settings != NULL)
		route->module->config.settings_free(route->module_settings);
}

static void module_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	http_respond_feed(ex, route->module, route_state);
}

static const struct http_handler http_handler_module = {
	.name = "module",
	.options = (const char *const[]){ NULL },
	.methods = HTTP_ALLOW_GET | HTTP_ALLOW_HEAD,
	.configure = module_configure,
	.free = module_free,
	.serve = module_serve,
};

/* ---- redirect ---- */

static bool redirect_configure(struct http_route *route, cfg_t *sec, struct conf_scope *scope)
{
	const char *location = cfg_getstr(sec, "location");
	long status;

	if (location == NULL || location[0] == '\0' || strpbrk(location, "\r\n") != NULL) {
		conf_scope_error(scope, "location", "a redirect needs location = \"<URL or /path>\"");
		return false;
	}
	if (!conf_scope_int(scope, sec, "status", 301, 308, &status) || (status > 303 && status < 307)) {
		conf_scope_error(scope, "status", "status must be 301, 302, 303, 307 or 308");
		return false;
	}
	route->location = strdup(location);
	route->redirect_status = (int)status;
	return route->location != NULL;
}

static void redirect_free(struct http_route *route)
{
	free(route->location);
}

static void redirect_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	char header[2048];
	struct evbuffer *page = evbuffer_new();

	if (page == NULL) {
		http_respond_error(ex, 500, "out of memory");
		return;
	}
	snprintf(header, sizeof(header), "Location: %s\r\n", route->location);
	evbuffer_add_printf(page, "<!DOCTYPE html>\n<html><body><a href=\"");
	http_html_escape(page, route->location, strlen(route->location));
	evbuffer_add_printf(page, "\">moved here</a></body></html>\n");
	http_respond_buffer(ex, route->redirect_status, "text/html; charset=utf-8", page, header);
	evbuffer_free(page);
	(void)route_state;
}

static const struct http_handler http_handler_redirect = {
	.name = "redirect",
	.options = (const char *const[]){ "location", "status", NULL },
	.methods = HTTP_ALLOW_GET | HTTP_ALLOW_HEAD,
	.configure = redirect_configure,
	.free = redirect_free,
	.serve = redirect_serve,
};

/* ---- sdp: a document a stream publishes (an RTP session's SDP) ---- */

static bool sdp_configure(struct http_route *route, cfg_t *sec, struct conf_scope *scope)
{
	const char *stream = cfg_getstr(sec, "stream");

	if (stream == NULL || stream[0] == '\0') {
		conf_scope_error(scope, "stream", "an sdp route needs stream = \"<name of an rtp stream>\"");
		return false;
	}
	route->location = strdup(stream);
	return route->location != NULL;
}

/* Looked up at each request: the stream may start, restart or go. */
static void sdp_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	const char *type, *text = chassis_published(ex->conn, route->location, &type);
	struct evbuffer *body;

	if (text == NULL) {
		http_respond_error(ex, 404, "no such stream running");
		return;
	}
	body = evbuffer_new();
	if (body == NULL || evbuffer_add(body, text, strlen(text)) < 0) {
		if (body != NULL)
			evbuffer_free(body);
		http_respond_error(ex, 500, "out of memory");
		return;
	}
	http_respond_buffer(ex, 200, type, body, "Cache-Control: no-store\r\n");
	evbuffer_free(body);
	(void)route_state;
}

static const struct http_handler http_handler_sdp = {
	.name = "sdp",
	.options = (const char *const[]){ "stream", NULL },
	.methods = HTTP_ALLOW_GET | HTTP_ALLOW_HEAD,
	.configure = sdp_configure,
	.free = redirect_free,
	.serve = sdp_serve,
};

/* ---- echo: the request body back, for uploads and tests ---- */

static void echo_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	size_t len;
	const char *type = http_header_find(ex, "Content-Type", &len);
	char type_copy[256];
	struct evbuffer *empty = NULL, *body = ex->request.body;

	snprintf(type_copy, sizeof(type_copy), "%.*s", type ? (int)len : 24,
		 type ? type : "application/octet-stream");
	if (body == NULL)
		body = empty = evbuffer_new();
	if (body == NULL) {
		http_respond_error(ex, 500, "out of memory");
		return;
	}
	http_respond_buffer(ex, 200, type_copy, body, NULL);
	if (empty != NULL)
		evbuffer_free(empty);
	(void)route;
	(void)route_state;
}

static const struct http_handler http_handler_echo = {
	.name = "echo",
	.options = (const char *const[]){ NULL },
	.methods = HTTP_ALLOW_POST | HTTP_ALLOW_PUT,
	.serve = echo_serve,
};

/* ---- the table and the route list ---- */

static const struct http_handler *const http_handlers[] = {
	&http_handler_static, &http_handler_status, &http_handler_metrics, &http_handler_redirect,
	&http_handler_echo, &http_handler_sdp, &http_handler_stream, &http_handler_tracker,
	&http_handler_torrents, NULL,
};

/* The modules a route can take a body from; their sections are in
 * http_route_options. */
static const struct protocol *const body_modules[] = {
	&protocol_fortune, &protocol_audio_cookie, &protocol_video_cookie, NULL,
};

static bool route_find_handler(struct http_route *route, const char *name, struct conf_scope *scope)
{
	for (size_t i = 0; http_handlers[i] != NULL; i++)
		if (strcmp(http_handlers[i]->name, name) == 0) {
			route->handler = http_handlers[i];
			return true;
		}
	for (size_t i = 0; body_modules[i] != NULL; i++)
		if (strcmp(body_modules[i]->config.name, name) == 0) {
			route->handler = &http_handler_module;
			route->module = body_modules[i];
			return true;
		}
	conf_scope_error(scope, "handler",
			 "unknown handler \"%s\" (known: static, fortune, audio-cookie, video-cookie, status, "
			 "metrics, redirect, echo, sdp, stream, tracker, torrents)", name);
	return false;
}

static bool route_option_applies(const struct http_route *route, const char *option)
{
	for (size_t i = 0; route->handler->options[i] != NULL; i++)
		if (strcmp(route->handler->options[i], option) == 0)
			return true;
	return false;
}

/* An option the handler ignores would be a silent mistake. Every option of
 * a route but "handler" belongs to some handler, and every section to its
 * module: the table above says which may be written. */
static bool route_reject_others(const struct http_route *route, struct conf_scope *scope)
{
	const char *handler = route->module ? route->module->config.name : route->handler->name;
	bool ok = true;

	for (const cfg_opt_t *opt = http_route_options; opt->name != NULL; opt++) {
		bool section = opt->type == CFGT_SEC;
		bool applies = section ? route->module != NULL && strcmp(opt->name, handler) == 0
				       : strcmp(opt->name, "handler") == 0 || route_option_applies(route, opt->name);

		if (!applies && conf_scope_written(scope, opt->name)) {
			conf_scope_error(scope, opt->name, "%s \"%s%s\" does not apply to handler \"%s\"",
					 section ? "section" : "option", opt->name, section ? " { }" : "", handler);
			ok = false;
		}
	}
	return ok;
}

static bool route_configure(struct http_route *route, cfg_t *sec, struct conf_scope *scope)
{
	const char *title = cfg_title(sec);
	const char *handler = cfg_getstr(sec, "handler");

	route->prefix = strdup(title);
	route->prefix_len = strlen(title);
	if (route->prefix == NULL)
		return false;
	if (title[0] != '/' || strpbrk(title, "?# \t") != NULL) {
		conf_scope_error(scope, NULL, "a route is a path prefix starting with \"/\", not \"%s\"", title);
		return false;
	}
	if (handler == NULL) {
		conf_scope_error(scope, NULL, "missing \"handler\"");
		return false;
	}
	if (!route_find_handler(route, handler, scope) || !route_reject_others(route, scope))
		return false;
	return route->handler->configure == NULL || route->handler->configure(route, sec, scope);
}

/* First match wins, so a route whose prefix an earlier one already takes
 * (a catch-all "/" placed first) would never answer: say so. */
static void route_check_reachable(const struct http_settings *settings, const struct http_route *route,
				  struct conf_scope *scope)
{
	const struct http_route *earlier = http_route_match_among(settings->routes, (size_t)(route - settings->routes),
							     route->prefix, route->prefix_len);

	if (earlier != NULL)
		conf_scope_error(scope, NULL, "never reached: route \"%s\" on line %d comes first and takes every path "
				 "this one would; put the longer prefix first", earlier->prefix, earlier->line);
}

bool http_routes_configure(struct http_settings *settings, cfg_t *sec, struct conf_scope *scope)
{
	unsigned n = cfg_size(sec, "route");
	bool ok = true;

	if (n == 0) {
		conf_scope_error(scope, NULL, "no route: add one, e.g. route \"/\" { handler = \"static\"  root = \"/srv/www\" }");
		return false;
	}
	settings->routes = calloc(n, sizeof(*settings->routes));
	if (settings->routes == NULL)
		return false;
	for (unsigned i = 0; i < n; i++) {
		cfg_t *route_sec = cfg_getnsec(sec, "route", i);
		struct http_route *route = &settings->routes[settings->n_routes++];
		char label[256];
		struct conf_scope *inner;

		route->files.root_fd = -1;
		snprintf(label, sizeof(label), "route \"%s\"", cfg_title(route_sec));
		inner = conf_scope_enter(scope, route_sec, label);
		if (inner == NULL)
			return false;
		route->line = conf_scope_line(inner, NULL);
		if (route_configure(route, route_sec, inner))
			route_check_reachable(settings, route, inner);
		ok &= conf_scope_leave(inner);
	}
	return ok;
}

void http_routes_free(struct http_settings *settings)
{
	for (size_t i = 0; i < settings->n_routes; i++) {
		struct http_route *route = &settings->routes[i];
		if (route->handler != NULL && route->handler->free != NULL)
			route->handler->free(route);
		free(route->prefix);
	}
	free(settings->routes);
}

