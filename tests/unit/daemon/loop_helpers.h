/* Shared by the daemon unit tests: a chassis on a loop of the test's own,
 * a loopback TCP pair, and running the loop until something is true. */
#ifndef CHASSISD_TEST_LOOP_HELPERS_H
#define CHASSISD_TEST_LOOP_HELPERS_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/conn.h"

/* A listening socket on 127.0.0.1 and an ephemeral port. */
static inline int listen_loopback(int backlog, unsigned *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(fd, backlog), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* *ours non-blocking (for conn_open), *theirs blocking with a timeout. */
static inline void tcp_pair(int *ours, int *theirs, struct sockaddr_in *peer)
{
	unsigned port;
	int lfd = listen_loopback(1, &port);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)port) };
	socklen_t len = sizeof(*peer);
	struct timeval two_seconds = { 2, 0 };

	*theirs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(*theirs, (struct sockaddr *)&to, sizeof(to)), 0);
	*ours = accept4(lfd, (struct sockaddr *)peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	cr_assert_geq(*ours, 0);
	setsockopt(*theirs, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof(two_seconds));
	close(lfd);
}

static inline double clock_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop until done() or the seconds are up; false on time out. */
static inline bool run_until(struct event_base *base, bool (*done)(void *arg), void *arg, double seconds)
{
	double end = clock_seconds() + seconds;

	while (!done(arg)) {
		if (clock_seconds() > end)
			return false;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return true;
}

#endif
