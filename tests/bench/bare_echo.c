/* The reference: the least a libevent echo server can do (bufferevents, no
 * limits, no logging). chassisd's echo is measured against it. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_read(struct bufferevent *bev, void *arg)
{
	bufferevent_write_buffer(bev, bufferevent_get_input(bev));
	(void)arg;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
	(void)arg;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);

	bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
	bufferevent_enable(bev, EV_READ);
	(void)l;
	(void)sa;
	(void)len;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct event_base *base = event_base_new();

	if (argc != 2) {
		fprintf(stderr, "usage: bare_echo PORT\n");
		return 2;
	}
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	if (!evconnlistener_new_bind(base, on_accept, base, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, -1,
				     (struct sockaddr *)&sin, sizeof(sin))) {
		perror("bind");
		return 1;
	}
	return event_base_dispatch(base);
}
