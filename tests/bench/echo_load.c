/* Load generator for tests/bench/echo.
 *   echo_load rr PORT CONNS SECONDS SIZE   closed loop: each connection sends SIZE
 *                                           bytes and waits for them; prints round trips/s
 *   echo_load churn PORT SECONDS           one client: connect, echo 64 B, close; prints conns/s
 *   echo_load idle PORT N                  holds N echo-checked connections until stdin closes
 *   echo_load blast PORT MIB               a server: sends every connection MIB MiB, then EOF
 *   echo_load drain PORT MIB               reads a blast to its EOF; prints MB/s (10^6 bytes)
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

static int dial(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static int echo_blocking(int fd, const char *buf, size_t size)
{
	char in[65536];
	size_t got = 0;

	if (write(fd, buf, size) != (ssize_t)size)
		return -1;
	while (got < size) {
		ssize_t n = read(fd, in, size - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int round_trips(int port, int conns, double seconds, size_t size)
{
	int ep = epoll_create1(0), *fds = calloc((size_t)conns, sizeof(int));
	size_t *pending = calloc((size_t)conns, sizeof(size_t));
	char *buf = calloc(1, size), in[65536];
	long long count = 0;
	double start, end;

	for (int i = 0; i < conns; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (unsigned)i };
		fds[i] = dial(port);
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
	}
	start = now();
	end = start + seconds;
	for (int i = 0; i < conns; i++) {
		pending[i] = size;
		if (write(fds[i], buf, size) != (ssize_t)size)
			return 1;
	}
	while (now() < end) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 100);
		for (int k = 0; k < n; k++) {
			int i = (int)evs[k].data.u32;
			ssize_t got = read(fds[i], in, sizeof(in));
			if (got <= 0) {
				fprintf(stderr, "connection %d closed\n", i);
				return 1;
			}
			pending[i] -= (size_t)got;
			if (pending[i] == 0) {
				count++;
				pending[i] = size;
				if (write(fds[i], buf, size) != (ssize_t)size)
					return 1;
			}
		}
	}
	printf("%.0f\n", (double)count / (now() - start));
	return 0;
}

static int churn(int port, double seconds)
{
	struct linger lin = { 1, 0 };	/* RST on close: no TIME_WAIT pile-up on the client */
	double start = now(), end = start + seconds;
	char buf[64] = { 0 };
	long long count = 0;

	while (now() < end) {
		int fd = dial(port);
		if (echo_blocking(fd, buf, sizeof(buf)) < 0) {
			fprintf(stderr, "echo failed\n");
			return 1;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
		close(fd);
		count++;
	}
	printf("%.0f\n", (double)count / (now() - start));
	return 0;
}

static int idle(int port, int n)
{
	char b = 'x', line[16];

	for (int i = 0; i < n; i++) {
		int fd = dial(port);
		if (echo_blocking(fd, &b, 1) < 0) {
			fprintf(stderr, "connection %d not served\n", i);
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL)
		;
	return 0;
}

/* The upstream for a transfer: every connection gets MIB MiB, then EOF.
 * Big blocking writes, so that the source is never what is measured. */
static int blast(int port, long mib)
{
	static char block[1 << 20];
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 16) < 0) {
		perror("blast");
		return 1;
	}
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		for (long i = 0; fd >= 0 && i < mib; i++)
			if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
				break;
		if (fd >= 0)
			close(fd);
	}
}

/* Reads until EOF; prints MB/s (10^6 bytes) from connect to EOF. */
static int drain(int port, long mib)
{
	static char in[262144];
	double start = now();
	int fd = dial(port);
	long long got = 0;
	ssize_t n;

	while ((n = read(fd, in, sizeof(in))) > 0)
		got += n;
	close(fd);
	if (got != (long long)mib << 20) {
		fprintf(stderr, "got %lld of %ld MiB\n", got, mib);
		return 1;
	}
	printf("%.0f\n", (double)got / 1e6 / (now() - start));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "rr") == 0)
		return round_trips(atoi(argv[2]), atoi(argv[3]), atof(argv[4]), (size_t)atoi(argv[5]));
	if (argc == 4 && strcmp(argv[1], "churn") == 0)
		return churn(atoi(argv[2]), atof(argv[3]));
	if (argc == 4 && strcmp(argv[1], "idle") == 0)
		return idle(atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && strcmp(argv[1], "blast") == 0)
		return blast(atoi(argv[2]), atol(argv[3]));
	if (argc == 4 && strcmp(argv[1], "drain") == 0)
		return drain(atoi(argv[2]), atol(argv[3]));
	fprintf(stderr, "usage: echo_load rr PORT CONNS SECONDS SIZE | churn PORT SECONDS | idle PORT N | blast PORT MIB | drain PORT MIB\n");
	return 2;
}
