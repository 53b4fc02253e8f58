/* Content negotiation by the Accept header (RFC 9110 12.5.1), for a
 * handler that can answer in more than one type (status: JSON or HTML),
 * and by Accept-Encoding (static: a precompressed .gz). */
#ifndef CHASSISD_HTTP_ACCEPT_H
#define CHASSISD_HTTP_ACCEPT_H

#include <stddef.h>

/* The quality, 0 to 1000, that an Accept value (len bytes, not
 * NUL-terminated) gives `type` ("text/html"): that of the most specific
 * range naming it ("text/html" over "text/ *" over "* / *"), 0 when none
 * does. Malformed elements are ignored. */
unsigned http_accept_quality(const char *accept, size_t len, const char *type);
/* The same for a content coding ("gzip") in an Accept-Encoding value
 * (RFC 9110 12.5.3): that of the element naming it, else of "*", else 0. */
unsigned http_accept_coding_quality(const char *accept_encoding, size_t len, const char *coding);

#endif
