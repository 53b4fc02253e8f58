/* The route handlers, one file each where they are more than a few lines
 * (static.c, info.c, stream.c); route.c lists them in its table. */
#ifndef CHASSISD_HTTP_HANDLERS_H
#define CHASSISD_HTTP_HANDLERS_H

#include "protocols/http/exchange.h"

extern const struct http_handler http_handler_static, http_handler_status, http_handler_metrics, http_handler_stream,
	http_handler_tracker, http_handler_torrents;

#endif
