/* The status page for people (status_html.c): the same snapshot as the
 * JSON, as one HTML page that needs no script and reads on a phone. */
#ifndef CHASSISD_HTTP_STATUS_HTML_H
#define CHASSISD_HTTP_STATUS_HTML_H

struct evbuffer;
struct info_snapshot;

/* Every name and text is escaped: they come from the config and from
 * peers (an upstream's address, a stream's title). */
void status_html_write(struct evbuffer *out, const struct info_snapshot *snap);

#endif
