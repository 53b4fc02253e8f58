/* daemon/sender.c: a stream's datagrams to real sockets, the bounded
 * queue, and a datagram the kernel refuses. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/sender.h"

static int bound_receiver(struct endpoint *to)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	struct timeval tv = { 1, 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), big = 4 << 20;

	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	memset(to, 0, sizeof(*to));
	memcpy(&to->sa, &sin, sizeof(sin));
	to->len = sizeof(sin);
	return fd;
}

static struct sender *open_sender(struct event_base *base, struct endpoint *to, size_t n_to, unsigned queue)
{
	struct conf_stream conf = { .destinations = to, .n_destinations = n_to, .ttl = 1, .queue = queue };
	char err[128];
	struct sender *s = sender_open(base, &conf, "t", err, sizeof(err));

	cr_assert_not_null(s, "%s", err);
	return s;
}

Test(sender, a_full_queue_drops_the_newest_and_counts_them)
{
	struct event_base *base = event_base_new();
	struct endpoint to;
	int rx = bound_receiver(&to);
	struct sender *s = open_sender(base, &to, 1, 8);
	char buf[16];

	for (int i = 0; i < 10; i++) {
		buf[0] = (char)i;
		sender_add(s, buf, 1);
	}
	cr_assert_eq(sender_queued(s), 8);
	cr_assert_eq(sender_counters(s)->dropped_queue_full, 2);
	sender_flush(s);
	cr_assert_eq(sender_queued(s), 0);
	cr_assert_eq(sender_counters(s)->datagrams, 8);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(recv(rx, buf, sizeof(buf), 0), 1);
		cr_assert_eq(buf[0], i, "datagram %d out of order", i);
	}
	sender_close(s, NULL, 0);
	close(rx);
	event_base_free(base);
}

Test(sender, every_destination_gets_every_datagram_in_one_batch)
{
	struct event_base *base = event_base_new();
	struct endpoint to[2];
	int rx0 = bound_receiver(&to[0]), rx1 = bound_receiver(&to[1]);
	struct sender *s = open_sender(base, to, 2, 256);
	char buf[2000];

	for (int i = 0; i < 100; i++) {
		memset(buf, i, 1316);
		sender_add(s, buf, 1316);
	}
	sender_flush(s);
	cr_assert_eq(sender_counters(s)->datagrams, 200);
	cr_assert_eq(sender_counters(s)->bytes, 200 * 1316);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(recv(rx0, buf, sizeof(buf), 0), 1316);
		cr_assert_eq((unsigned char)buf[1315], i);
		cr_assert_eq(recv(rx1, buf, sizeof(buf), 0), 1316);
		cr_assert_eq((unsigned char)buf[0], i);
	}
	sender_close(s, NULL, 0);
	close(rx0);
	close(rx1);
	event_base_free(base);
}

Test(sender, a_datagram_the_kernel_refuses_is_dropped_and_the_rest_go)
{
	struct event_base *base = event_base_new();
	struct endpoint to;
	int rx = bound_receiver(&to);
	struct sender *s = open_sender(base, &to, 1, 16);
	static char huge[70000];
	char buf[16];

	sender_add(s, "a", 1);
	sender_add(s, huge, sizeof(huge));	/* over the IPv4 maximum: EMSGSIZE */
	sender_add(s, "b", 1);
	sender_flush(s);
	cr_assert_eq(sender_counters(s)->dropped_error, 1);
	cr_assert_eq(sender_counters(s)->datagrams, 2);
	cr_assert_eq(recv(rx, buf, sizeof(buf), 0), 1);
	cr_assert_eq(buf[0], 'a');
	cr_assert_eq(recv(rx, buf, sizeof(buf), 0), 1);
	cr_assert_eq(buf[0], 'b');
	sender_close(s, NULL, 0);
	close(rx);
	event_base_free(base);
}
