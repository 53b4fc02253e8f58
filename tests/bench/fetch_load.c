/* Load generator for tests/bench/fortune.
 *   fetch_load PORT CLIENTS SECONDS
 * CLIENTS threads each connect, read until the server closes, and close,
 * for SECONDS. Prints completed fetches per second; a fetch that got no
 * bytes counts as a failure and is reported on stderr. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;
static double deadline;
static atomic_ulong fetched, empty;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t fetch_once(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			total += (size_t)n;
	close(fd);
	return total;
}

static void *client(void *arg)
{
	(void)arg;
	while (now() < deadline) {
		if (fetch_once() > 0)
			atomic_fetch_add(&fetched, 1);
		else
			atomic_fetch_add(&empty, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t threads[256];
	int clients;
	double seconds, start;

	if (argc != 4) {
		fprintf(stderr, "usage: fetch_load PORT CLIENTS SECONDS\n");
		return 2;
	}
	port = atoi(argv[1]);
	clients = atoi(argv[2]);
	seconds = atof(argv[3]);
	if (clients < 1 || clients > 256)
		return 2;
	start = now();
	deadline = start + seconds;
	for (int i = 0; i < clients; i++)
		pthread_create(&threads[i], NULL, client, NULL);
	for (int i = 0; i < clients; i++)
		pthread_join(threads[i], NULL);
	if (empty > 0)
		fprintf(stderr, "fetch_load: %lu empty replies\n", (unsigned long)empty);
	printf("%.0f\n", (double)fetched / (now() - start));
	return 0;
}
