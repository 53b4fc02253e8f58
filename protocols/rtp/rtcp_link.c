#include "protocols/rtp/rtcp_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/addr.h"
#include "conf/conf.h"

/* Datagrams one wakeup reads at most: a flood of reports cannot hold
 * the loop. */
#define RTCP_LINK_READ_BURST 32
/* The biggest RTCP compound packet we read whole; longer ones are cut
 * by the kernel and fail to parse (counted as malformed). */
#define RTCP_LINK_DATAGRAM_MAX 2048

struct rtcp_side {
	int fd;
	struct event *readable;
};

struct rtcp_link {
	struct rtcp_side v4, v6;
	struct sockaddr_storage *to;	/* each destination, port + 1 */
	size_t n_to;
	rtcp_link_fn *on_datagram;
	void *arg;
	struct rtcp_link_counters counters;
};

static int set_int(int fd, int level, int option, int value)
{
	return setsockopt(fd, level, option, &value, sizeof(value));
}

static int multicast_options(int fd, int family, const struct conf_stream *conf)
{
	if (family == AF_INET) {
		struct ip_mreqn mreq = { .imr_address = conf->if_addr, .imr_ifindex = (int)conf->ifindex };

		if (conf->interface != NULL && setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) < 0)
			return -1;
		return set_int(fd, IPPROTO_IP, IP_MULTICAST_TTL, conf->ttl) < 0 ||
			       set_int(fd, IPPROTO_IP, IP_MULTICAST_LOOP, conf->loop) < 0
			       ? -1
			       : 0;
	}
	if (conf->ifindex != 0 && set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, (int)conf->ifindex) < 0)
		return -1;
	return set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, conf->ttl) < 0 ||
		       set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, conf->loop) < 0 ||
		       set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) < 0
		       ? -1
		       : 0;
}

static int bind_any(int fd, int family, unsigned port)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		len = sizeof(*sin6);
	}
	return bind(fd, (struct sockaddr *)&ss, len);
}

static void rtcp_link_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct rtcp_link *link = arg;
	uint8_t data[RTCP_LINK_DATAGRAM_MAX];

	for (unsigned i = 0; i < RTCP_LINK_READ_BURST; i++) {
		ssize_t n = recv(fd, data, sizeof(data), 0);

		if (n < 0)
			break;		/* EAGAIN, or an ICMP error of an earlier send: both harmless */
		link->counters.received++;
		link->on_datagram(link->arg, data, (size_t)n);
	}
	(void)what;
}

static int side_open(struct rtcp_side *side, struct event_base *base, int family, const struct conf_stream *conf,
		     unsigned port, struct rtcp_link *link, char *err, size_t err_len)
{
	side->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (side->fd < 0 || multicast_options(side->fd, family, conf) < 0) {
		snprintf(err, err_len, "the RTCP socket: %s", strerror(errno));
		return -1;
	}
	/* A changed stream starts before the old one stops: the new socket
	 * shares the fixed port for that moment, and Linux hands unicast
	 * datagrams to the one bound last. */
	if (port != 0 && set_int(side->fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0) {
		snprintf(err, err_len, "the RTCP socket: %s", strerror(errno));
		return -1;
	}
	if (bind_any(side->fd, family, port) < 0) {
		snprintf(err, err_len, "cannot bind the RTCP port %u: %s", port, strerror(errno));
		return -1;
	}
	side->readable = event_new(base, side->fd, EV_READ | EV_PERSIST, rtcp_link_on_readable, link);
	if (side->readable == NULL || event_add(side->readable, NULL) < 0) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	return 0;
}

static void side_close(struct rtcp_side *side)
{
	if (side->readable != NULL)
		event_free(side->readable);
	if (side->fd >= 0)
		close(side->fd);
}

/* RTCP goes to each destination's port + 1 (RFC 3550 11); the
 * configuration refuses port 65535. */
static void rtcp_destinations(struct rtcp_link *link, const struct conf_stream *conf)
{
	for (size_t i = 0; i < conf->n_destinations; i++) {
		struct sockaddr *sa = (struct sockaddr *)&link->to[i];
		uint16_t port = htons((uint16_t)(addr_port((const struct sockaddr *)&conf->destinations[i].sa) + 1));

		link->to[i] = conf->destinations[i].sa;
		if (sa->sa_family == AF_INET)
			((struct sockaddr_in *)sa)->sin_port = port;
		else
			((struct sockaddr_in6 *)sa)->sin6_port = port;
	}
	link->n_to = conf->n_destinations;
}

static bool has_family(const struct conf_stream *conf, int family)
{
	for (size_t i = 0; i < conf->n_destinations; i++)
		if (conf->destinations[i].sa.ss_family == family)
			return true;
	return false;
}

struct rtcp_link *rtcp_link_open(struct event_base *base, const struct conf_stream *conf, unsigned local_port,
				 rtcp_link_fn *on_datagram, void *arg, char *err, size_t err_len)
{
	struct rtcp_link *link = calloc(1, sizeof(*link));

	snprintf(err, err_len, "out of memory");
	if (link == NULL)
		return NULL;
	link->v4.fd = link->v6.fd = -1;
	link->on_datagram = on_datagram;
	link->arg = arg;
	link->to = calloc(conf->n_destinations ? conf->n_destinations : 1, sizeof(*link->to));
	if (link->to == NULL ||
	    (has_family(conf, AF_INET) && side_open(&link->v4, base, AF_INET, conf, local_port, link, err, err_len) < 0) ||
	    (has_family(conf, AF_INET6) &&
	     side_open(&link->v6, base, AF_INET6, conf, local_port, link, err, err_len) < 0)) {
		rtcp_link_close(link);
		return NULL;
	}
	rtcp_destinations(link, conf);
	return link;
}

void rtcp_link_send(struct rtcp_link *link, const void *data, size_t len)
{
	for (size_t i = 0; i < link->n_to; i++) {
		const struct sockaddr *to = (const struct sockaddr *)&link->to[i];
		int fd = to->sa_family == AF_INET ? link->v4.fd : link->v6.fd;
		socklen_t to_len = to->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

		if (sendto(fd, data, len, 0, to, to_len) == (ssize_t)len)
			link->counters.sent++;
		else
			link->counters.send_errors++;
	}
}

unsigned rtcp_link_port(const struct rtcp_link *link, int family)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = family == AF_INET ? link->v4.fd : link->v6.fd;

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	return addr_port((struct sockaddr *)&ss);
}

const struct rtcp_link_counters *rtcp_link_counters(const struct rtcp_link *link)
{
	return &link->counters;
}

void rtcp_link_close(struct rtcp_link *link)
{
	if (link == NULL)
		return;
	side_close(&link->v4);
	side_close(&link->v6);
	free(link->to);
	free(link);
}
