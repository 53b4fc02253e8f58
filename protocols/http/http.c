/* HTTP/1.1 on the chassis's own connections, parsed by libhttp-parser: the
 * protocol module. Its configuration (the http section; routes are in
 * route.c), its per-unit state and counters; each connection's requests
 * are exchange.c's. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/protocol.h"
#include "protocols/http/exchange.h"
#include "protocols/http/mime.h"
#include "protocols/http/response.h"
#include "protocols/http/route.h"

/* ---- configuration and per-listener state ---- */

static cfg_opt_t http_options[] = {
	CFG_BOOL("access-log", cfg_true, CFGF_NONE),
	CFG_INT("max-head", HTTP_DEFAULT_MAX_HEAD, CFGF_NONE),
	CFG_INT("max-headers", HTTP_DEFAULT_MAX_HEADERS, CFGF_NONE),
	CFG_INT("max-body", HTTP_DEFAULT_MAX_BODY, CFGF_NONE),
	CFG_INT("head-timeout", HTTP_DEFAULT_HEAD_TIMEOUT, CFGF_NONE),
	CFG_INT("body-timeout", HTTP_DEFAULT_BODY_TIMEOUT, CFGF_NONE),
	CFG_INT("body-min-rate", HTTP_DEFAULT_BODY_MIN_RATE, CFGF_NONE),
	CFG_INT("keepalive-timeout", HTTP_DEFAULT_KEEPALIVE_TIMEOUT, CFGF_NONE),
	CFG_INT("max-requests", HTTP_DEFAULT_MAX_REQUESTS, CFGF_NONE),
	CFG_STR("mime-types", "/etc/mime.types", CFGF_NONE),
	CFG_SEC("route", http_route_options, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END()
};

static void http_settings_free(void *p)
{
	struct http_settings *settings = p;

	if (settings == NULL)
		return;
	http_routes_free(settings);
	mime_table_free(settings->mime);
	free(settings);
}

static bool http_configure_limits(struct http_settings *settings, cfg_t *sec, struct conf_scope *scope)
{
	long head, headers, body, head_timeout, body_timeout, body_min_rate, keepalive, requests;
	bool ok = true;

	ok &= conf_scope_int(scope, sec, "max-head", 256, 1 << 20, &head);
	ok &= conf_scope_int(scope, sec, "max-headers", 1, 10000, &headers);
	ok &= conf_scope_int(scope, sec, "max-body", 0, 1L << 40, &body);
	ok &= conf_scope_int(scope, sec, "head-timeout", 1, 3600, &head_timeout);
	ok &= conf_scope_int(scope, sec, "body-timeout", 1, 86400, &body_timeout);
	ok &= conf_scope_int(scope, sec, "body-min-rate", 0, 1L << 40, &body_min_rate);
	ok &= conf_scope_int(scope, sec, "keepalive-timeout", 0, 86400, &keepalive);
	ok &= conf_scope_int(scope, sec, "max-requests", 1, 1000000000, &requests);
	settings->max_head = (size_t)head;
	settings->max_headers = (unsigned)headers;
	settings->max_body = (size_t)body;
	settings->head_timeout = (unsigned)head_timeout;
	settings->body_timeout = (unsigned)body_timeout;
	settings->body_min_rate = (unsigned long)body_min_rate;
	settings->keepalive_timeout = (unsigned)keepalive;
	settings->max_requests = (unsigned)requests;
	return ok;
}

static void *http_configure(cfg_t *sec, struct conf_scope *scope)
{
	struct http_settings *settings = calloc(1, sizeof(*settings));
	const char *mime = cfg_getstr(sec, "mime-types");
	char err[160];
	bool ok;

	if (settings == NULL)
		return NULL;
	settings->access_log = cfg_getbool(sec, "access-log");
	settings->respond_error = http_respond_error;
	ok = http_configure_limits(settings, sec, scope);
	/* The file may be missing (no media-types package); then the built-in
	 * table serves, unless the administrator named a file. */
	settings->mime = mime_table_load(mime, err, sizeof(err));
	if (settings->mime == NULL && conf_scope_written(scope, "mime-types")) {
		conf_scope_error(scope, "mime-types", "cannot read %s: %s", mime, err);
		ok = false;
	} else if (settings->mime == NULL) {
		settings->mime = mime_table_load(NULL, err, sizeof(err));
	}
	ok &= http_routes_configure(settings, sec, scope);
	if (!ok) {
		http_settings_free(settings);
		return NULL;
	}
	return settings;
}

static void http_stop(void *p)
{
	struct http_state *state = p;
	const struct http_settings *settings = state->settings;

	for (size_t i = 0; i < settings->n_routes; i++) {
		const struct http_route *route = &settings->routes[i];
		if (state->route_states[i] == NULL)
			continue;
		if (route->module != NULL)
			route->module->stop(state->route_states[i]);
		else if (route->handler->stop != NULL)
			route->handler->stop(state->route_states[i]);
	}
	free(state->route_states);
	free(state);
}

static void *http_start(const void *p, const struct unit_env *env)
{
	const struct http_settings *settings = p;
	struct http_state *state = calloc(1, sizeof(*state));

	if (state == NULL)
		return NULL;
	state->settings = settings;
	state->base = env->base;
	state->route_states = calloc(settings->n_routes, sizeof(*state->route_states));
	if (state->route_states == NULL) {
		free(state);
		return NULL;
	}
	for (size_t i = 0; i < settings->n_routes; i++) {
		const struct http_route *route = &settings->routes[i];
		if (route->module != NULL)
			state->route_states[i] = route->module->start(route->module_settings, env);
		else if (route->handler->start != NULL)
			state->route_states[i] = route->handler->start(route, env);
		else
			continue;
		if (state->route_states[i] == NULL) {
			http_stop(state);
			return NULL;
		}
	}
	return state;
}

static void http_status(const void *p, char *buf, size_t len)
{
	const struct http_state *state = p;
	const struct http_counters *c = &state->counters;

	snprintf(buf, len,
		 "requests=%llu responses_1xx=%llu responses_2xx=%llu responses_3xx=%llu responses_4xx=%llu "
		 "responses_5xx=%llu bad_requests=%llu head_timeouts=%llu body_timeouts=%llu body_bytes_out=%llu "
		 "prepared_answers=%llu files_cut_short=%llu",
		 (unsigned long long)c->requests, (unsigned long long)c->status[1],
		 (unsigned long long)c->status[2], (unsigned long long)c->status[3],
		 (unsigned long long)c->status[4], (unsigned long long)c->status[5],
		 (unsigned long long)c->bad_requests, (unsigned long long)c->timeouts,
		 (unsigned long long)c->body_timeouts, (unsigned long long)c->bytes_out, (unsigned long long)c->prepared,
		 (unsigned long long)c->files_cut_short);
}

/* A row for each route that keeps running state (a stream route's
 * clients), for the status page and metrics. */
static void http_status_rows(const void *p, char *buf, size_t len)
{
	const struct http_state *state = p;
	const struct http_settings *settings = state->settings;
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < settings->n_routes && used + 1 < len; i++) {
		const struct http_route *route = &settings->routes[i];
		if (route->module != NULL || route->handler->status_row == NULL || state->route_states[i] == NULL)
			continue;
		route->handler->status_row(route, state->route_states[i], buf + used, len - used);
		used += strlen(buf + used);
	}
}

const struct protocol protocol_http = {
	.config = {
		.name = "http",
		.transports = TRANSPORT_BIT(TRANSPORT_TCP),
		.options = http_options,
		.configure = http_configure,
		.settings_free = http_settings_free,
	},
	.client_sends_first = true,
	.start = http_start,
	.stop = http_stop,
	.status = http_status,
	.status_rows = http_status_rows,
	.conn = {
		.open = http_exchange_open,
		.input = http_exchange_input,
		.end_of_input = http_exchange_end_of_input,
		.drained = http_exchange_drained,
		.close = http_exchange_close,
	},
};
