/* One body per TCP connection, then close: the framing that fortune and
 * the cookies share (Kamaelia's "cookie" servers).
 *
 * A module's open() hook makes a oneshot, starts a feed with oneshot_sink
 * and the oneshot as its argument, and returns oneshot_started(). The
 * other connection hooks are the oneshot_conn_* functions below. */
#ifndef CHASSISD_ONESHOT_H
#define CHASSISD_ONESHOT_H

#include <stdbool.h>

#include "protocols/support/feed.h"

struct conn;
struct evbuffer;
struct oneshot;

struct oneshot_counters {
	unsigned long long served, failed, busy;
};

extern const struct feed_sink oneshot_sink;

/* `what` names the body in log lines ("fortune", "clip"). NULL: out of memory. */
struct oneshot *oneshot_open(struct conn *conn, struct oneshot_counters *counters, const char *what);
/* feed is what the module started (NULL when it could not: errno EAGAIN
 * means over a child cap, and busy_message says whether to tell the client).
 * Returns what open() must return. */
int oneshot_started(struct oneshot *shot, struct feed *feed, const char *err, bool busy_message);

void oneshot_conn_input(struct conn *conn, struct evbuffer *in);
void oneshot_conn_end_of_input(struct conn *conn);
void oneshot_conn_close(struct conn *conn);

#endif
