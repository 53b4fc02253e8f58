/* Routes (route.c): the ordered list in a listener's http section, read
 * at load into handlers and their settings. */
#ifndef CHASSISD_HTTP_ROUTE_H
#define CHASSISD_HTTP_ROUTE_H

#include <confuse.h>
#include <stdbool.h>

#include "protocols/http/exchange.h"

extern cfg_opt_t http_route_options[];
bool http_routes_configure(struct http_settings *settings, cfg_t *sec, struct conf_scope *scope);
void http_routes_free(struct http_settings *settings);

#endif
