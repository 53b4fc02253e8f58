/* The per-connection chassis: one protocol instance per accepted socket. */
#ifndef CHASSISD_CONN_H
#define CHASSISD_CONN_H

#include <event2/util.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct conn;
struct listener;

TAILQ_HEAD(conn_list, conn);

/* Takes the fd. -1 (fd closed, nothing counted) when out of memory; once
 * it returns 0 the connection may already be gone again. */
int conn_open(struct listener *ls, evutil_socket_t fd, const struct sockaddr *peer,
	      socklen_t peer_len);
/* Ends the connection now, queued output or not (shutdown grace is over). */
void conn_close_now(struct conn *conn);
/* Closes the connections of a list that have been idle past their timeout. */
void conn_expire_idle(struct conn_list *conns, uint64_t now_ms);
/* Milliseconds on a monotonic clock: what idle timeouts are measured in. */
uint64_t conn_clock_ms(void);

#endif
