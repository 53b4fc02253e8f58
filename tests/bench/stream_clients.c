/* Load generator for tests/bench/gateway.
 *   stream_clients PORT PATH CLIENTS WARMUP SECONDS
 * Opens CLIENTS connections to 127.0.0.1:PORT at once, GETs PATH on each
 * and reads every one as fast as it comes (one thread, epoll), throwing the
 * bytes away. Bytes are counted from WARMUP seconds on, for SECONDS.
 * Prints one line: clients_open min_bps median_bps max_bps (bits per
 * second per client over the window); a client whose connection ended
 * early counts as 0. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_client(int port, const char *path)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char request[512];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int n = snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || write(fd, request, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	return fd;
}

static int compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static char buf[1 << 18];
	int port, clients, open_now = 0, ep;
	double warmup, seconds, start, from, until;
	unsigned long long *bytes;
	double *bps;
	int *fds;

	if (argc != 6) {
		fprintf(stderr, "usage: stream_clients PORT PATH CLIENTS WARMUP SECONDS\n");
		return 2;
	}
	port = atoi(argv[1]);
	clients = atoi(argv[3]);
	warmup = atof(argv[4]);
	seconds = atof(argv[5]);
	bytes = calloc((size_t)clients, sizeof(*bytes));
	bps = calloc((size_t)clients, sizeof(*bps));
	fds = calloc((size_t)clients, sizeof(*fds));
	ep = epoll_create1(0);
	if (bytes == NULL || bps == NULL || fds == NULL || ep < 0)
		return 1;
	for (int i = 0; i < clients; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (unsigned)i };

		fds[i] = open_client(port, argv[2]);
		if (fds[i] < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			fprintf(stderr, "client %d: cannot connect\n", i);
			fds[i] = -1;
			continue;
		}
		open_now++;
	}
	start = now();
	from = start + warmup;
	until = from + seconds;
	while (now() < until && open_now > 0) {
		struct epoll_event events[256];
		int n = epoll_wait(ep, events, 256, 100);

		for (int e = 0; e < n; e++) {
			int i = (int)events[e].data.u32;
			ssize_t got = read(fds[i], buf, sizeof(buf));

			if (got <= 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
				close(fds[i]);
				fds[i] = -1;
				open_now--;
				continue;
			}
			if (now() >= from)
				bytes[i] += (unsigned long long)got;
		}
	}
	for (int i = 0; i < clients; i++)
		bps[i] = fds[i] < 0 ? 0 : (double)bytes[i] * 8 / seconds;
	qsort(bps, (size_t)clients, sizeof(*bps), compare);
	printf("%d %.0f %.0f %.0f\n", open_now, bps[0], bps[clients / 2], bps[clients - 1]);
	return 0;
}
