/* One body per TCP connection, then close: the framing that fortune and
 * the cookies share (Kamaelia's "cookie" servers).
 *
 * A module's open() hook returns oneshot_conn_open() with its body()
 * hook; the other connection hooks are the oneshot_conn_* functions. */
#ifndef CHASSISD_ONESHOT_H
#define CHASSISD_ONESHOT_H

#include <stdbool.h>
#include <stddef.h>

#include "protocols/support/feed.h"

struct conn;
struct evbuffer;
struct oneshot;

struct oneshot_counters {
	unsigned long long served, failed, busy;
};

typedef struct feed *oneshot_body_fn(void *state, const struct feed_sink *sink, void *arg, char *err,
				      size_t err_len);

/* Starts body(state, ...) towards the connection; `what` names it in log
 * lines ("fortune", "clip"). Over a child cap, busy_message says whether
 * to tell the client. Returns what open() must return. */
int oneshot_conn_open(struct conn *conn, struct oneshot_counters *counters, const char *what, oneshot_body_fn *body,
		      void *state, bool busy_message);

void oneshot_conn_input(struct conn *conn, struct evbuffer *in);
void oneshot_conn_end_of_input(struct conn *conn);
/* The client read enough: a program held back goes on. */
void oneshot_conn_drained(struct conn *conn);
void oneshot_conn_close(struct conn *conn);

#endif
