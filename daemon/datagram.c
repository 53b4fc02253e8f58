#include "daemon/datagram.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/core.h"
#include "daemon/log.h"
#include "daemon/netsim.h"

/* Large enough for any UDP payload, so nothing is ever truncated. */
#define DATAGRAM_MAX 65536
/* A flood on one socket must not starve every other socket and timer;
 * what is left is read on the next pass of the loop. */
#define DATAGRAMS_PER_WAKEUP 1024

struct datagram {
	struct datagram_port *port;
	const void *payload;
	size_t len;
	struct sockaddr_storage source;
	socklen_t source_len;
};

static unsigned char datagram_buffer[DATAGRAM_MAX];

static void datagram_log(const struct datagram *dgram, int level, const char *what)
{
	const struct datagram_profile *profile = dgram->port->profile;
	struct log_context ctx = {
		.listener = profile->unit,
		.protocol = profile->protocol,
		.transport = profile->transport,
		.peer = (const struct sockaddr *)&dgram->source,
	};

	log_write(level, &ctx, "datagram dropped: %s", what);
}

void datagram_drop(struct datagram *dgram, const char *reason)
{
	dgram->port->counters.dropped++;
	if (log_enabled(LOG_DEBUG))
		datagram_log(dgram, LOG_DEBUG, reason);
}

/* What the simulator holds a datagram with: where it came in, from whom. */
struct datagram_meta {
	struct datagram_port *port;
	struct sockaddr_storage source;
	socklen_t source_len;
};

static void datagram_deliver(struct datagram_port *port, struct datagram *dgram)
{
	const struct datagram_profile *profile = port->profile;

	if (profile->chassis != NULL && !profile->module_feeds_taps && !LIST_EMPTY(&profile->chassis->taps))
		chassis_tap_deliver(profile->chassis, profile->unit, dgram->payload, dgram->len);
	profile->datagram(dgram);
}

static void datagram_on_simulated(void *arg, const void *data, size_t len, const void *meta, size_t meta_len)
{
	struct datagram_meta m;
	struct datagram dgram = { .payload = data, .len = len };

	/* A held datagram's meta comes back at any alignment. */
	memcpy(&m, meta, sizeof(m));
	dgram.port = m.port;
	dgram.source = m.source;
	dgram.source_len = m.source_len;
	datagram_deliver(m.port, &dgram);
	(void)arg;
	(void)meta_len;
}

struct netsim *datagram_netsim_new(struct event_base *base, const struct conf_netsim *conf)
{
	return netsim_new(base, conf, datagram_on_simulated, NULL);
}

static void datagram_handle(struct datagram_port *port, struct datagram *dgram)
{
	const struct datagram_profile *profile = port->profile;

	port->counters.datagrams++;
	addr_unmap(&dgram->source, &dgram->source_len);
	if (profile->access != NULL && !conf_listener_allows(profile->access, (struct sockaddr *)&dgram->source)) {
		port->counters.denied++;
		return;
	}
	if (profile->netsim != NULL) {
		struct datagram_meta meta = { port, dgram->source, dgram->source_len };
		netsim_push(profile->netsim, dgram->payload, dgram->len, &meta, sizeof(meta));
		return;
	}
	datagram_deliver(port, dgram);
}

struct datagram_wait {
	struct datagram_port *port;	/* NULL once the port has stopped */
	int fd;
	const void *settings;
	void *state;
	struct sockaddr_storage source;
	socklen_t source_len;
	struct timespec arrived;	/* the kernel's stamp: which datagram it is */
};

/* The waiting datagram's source and arrival stamp, leaving it queued. */
static ssize_t datagram_peek(int fd, struct sockaddr_storage *source, socklen_t *source_len, struct timespec *arrived)
{
	char byte, control[CMSG_SPACE(sizeof(struct timespec))];
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = { .msg_name = source, .msg_namelen = sizeof(*source), .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control, .msg_controllen = sizeof(control) };
	ssize_t n = recvmsg(fd, &msg, MSG_PEEK | MSG_DONTWAIT);

	*arrived = (struct timespec){ 0, 0 };
	if (n < 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS)
			memcpy(arrived, CMSG_DATA(c), sizeof(*arrived));
	*source_len = msg.msg_namelen;
	addr_unmap(source, source_len);
	return n;
}

/* A program that exits without reading its datagram would be woken by it
 * again at once, forever: that datagram is dropped instead. The arrival
 * stamp tells it from a retransmission of the same bytes. */
static void datagram_drop_if_unread(struct datagram_wait *wait)
{
	struct sockaddr_storage source;
	socklen_t source_len;
	struct timespec arrived;
	char byte;

	if (datagram_peek(wait->fd, &source, &source_len, &arrived) < 0 || arrived.tv_sec != wait->arrived.tv_sec ||
	    arrived.tv_nsec != wait->arrived.tv_nsec || source_len != wait->source_len ||
	    memcmp(&source, &wait->source, source_len) != 0)
		return;
	recv(wait->fd, &byte, 1, MSG_DONTWAIT);
	wait->port->counters.dropped++;
	log_write(LOG_WARNING, &(struct log_context){ .listener = wait->port->profile->unit, .peer = (struct sockaddr *)&source },
		  "datagram dropped: the program left it unread (it would start the program again and again)");
}

/* A wait-mode port offers its socket, the waiting datagram unread. Denied
 * sources are read and dropped first, as the module would never see them. */
static void datagram_offer(struct datagram_port *port, int fd)
{
	const struct datagram_profile *profile = port->profile;
	struct datagram_wait *wait = calloc(1, sizeof(*wait));
	char byte;

	if (wait == NULL)
		return;
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &(int){ 1 }, sizeof(int));
	for (int i = 0; i < DATAGRAMS_PER_WAKEUP; i++) {
		ssize_t n = datagram_peek(fd, &wait->source, &wait->source_len, &wait->arrived);

		if (n < 0 && (errno == EINTR || errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH))
			continue;
		if (n < 0)
			break;
		if (profile->access != NULL && !conf_listener_allows(profile->access, (struct sockaddr *)&wait->source)) {
			port->counters.datagrams++;
			port->counters.denied++;
			recv(fd, &byte, 1, MSG_DONTWAIT);
			continue;
		}
		*wait = (struct datagram_wait){ port, fd, profile->settings, profile->state, wait->source,
						wait->source_len, wait->arrived };
		port->wait = wait;
		port->counters.datagrams++;
		event_del(port->readable);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		profile->socket_waiting(wait);
		return;
	}
	free(wait);
}

static void datagram_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct datagram_port *port = arg;

	if (port->profile->socket_waiting != NULL) {
		if (port->wait == NULL)
			datagram_offer(port, fd);
		return;
	}

	for (int i = 0; i < DATAGRAMS_PER_WAKEUP; i++) {
		struct datagram dgram = {
			.port = port,
			.payload = datagram_buffer,
			.source_len = sizeof(dgram.source),
		};
		ssize_t n = recvfrom(fd, datagram_buffer, sizeof(datagram_buffer), MSG_TRUNC | MSG_DONTWAIT,
				     (struct sockaddr *)&dgram.source, &dgram.source_len);
		if (n < 0) {
			/* ICMP errors from earlier replies surface here; they
			 * concern one peer, not the socket. */
			if (errno == EINTR || errno == ECONNREFUSED || errno == EHOSTUNREACH ||
			    errno == ENETUNREACH)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warning("listener %s: recvfrom: %s", port->profile->unit, strerror(errno));
			return;
		}
		dgram.len = (size_t)n;
		if (dgram.len > sizeof(datagram_buffer)) {
			port->counters.datagrams++;
			datagram_drop(&dgram, "larger than 64 KiB");
			continue;
		}
		datagram_handle(port, &dgram);
	}
	(void)what;
}

int datagram_port_start(struct datagram_port *port, struct event_base *base, int fd, bool dual_stack,
			const struct datagram_profile *profile)
{
	port->fd = fd;
	port->dual_stack = dual_stack;
	port->profile = profile;
	port->readable = event_new(base, fd, EV_READ | EV_PERSIST, datagram_on_readable, port);
	if (port->readable == NULL)
		return -1;
	return event_add(port->readable, NULL);
}

void datagram_port_stop(struct datagram_port *port)
{
	if (port->wait != NULL)
		port->wait->port = NULL;
	port->wait = NULL;
	if (port->readable != NULL)
		event_free(port->readable);
	port->readable = NULL;
	port->fd = -1;
}

/* ---- the chassis API ---- */

int datagram_wait_socket(const struct datagram_wait *wait)
{
	return wait->fd;
}

const struct sockaddr *datagram_wait_source(const struct datagram_wait *wait)
{
	return (const struct sockaddr *)&wait->source;
}

const void *datagram_wait_settings(const struct datagram_wait *wait)
{
	return wait->settings;
}

void *datagram_wait_service_state(const struct datagram_wait *wait)
{
	return wait->state;
}

void datagram_wait_drop(struct datagram_wait *wait, const char *reason)
{
	char byte;

	if (wait->port != NULL) {
		recv(wait->fd, &byte, 1, MSG_DONTWAIT);
		wait->port->counters.dropped++;
		if (log_enabled(LOG_DEBUG))
			log_write(LOG_DEBUG, &(struct log_context){ .listener = wait->port->profile->unit,
								 .peer = datagram_wait_source(wait) },
				  "datagram dropped: %s", reason);
	}
	datagram_wait_done(wait);
}

void datagram_wait_done(struct datagram_wait *wait)
{
	struct datagram_port *port = wait->port;

	if (port != NULL) {
		datagram_drop_if_unread(wait);
		port->wait = NULL;
		fcntl(wait->fd, F_SETFL, fcntl(wait->fd, F_GETFL) | O_NONBLOCK);
		event_add(port->readable, NULL);
	}
	free(wait);
}

const struct sockaddr *datagram_source(const struct datagram *dgram)
{
	return (const struct sockaddr *)&dgram->source;
}

const void *datagram_payload(const struct datagram *dgram, size_t *len)
{
	*len = dgram->len;
	return dgram->payload;
}

const void *datagram_settings(const struct datagram *dgram)
{
	return dgram->port->profile->settings;
}

void *datagram_service_state(const struct datagram *dgram)
{
	return dgram->port->profile->state;
}

void datagram_reply(struct datagram *dgram, const void *data, size_t len)
{
	struct datagram_port *port = dgram->port;
	struct sockaddr_storage to = dgram->source;
	socklen_t to_len = dgram->source_len;

	/* A dual-stack socket sends to IPv4 peers through mapped addresses. */
	if (to.ss_family == AF_INET && port->dual_stack) {
		struct sockaddr_in sin = *(struct sockaddr_in *)&dgram->source;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;
		memset(&to, 0, sizeof(to));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = sin.sin_port;
		sin6->sin6_addr.s6_addr[10] = sin6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sin6->sin6_addr.s6_addr[12], &sin.sin_addr, 4);
		to_len = sizeof(*sin6);
	}
	if (sendto(port->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, to_len) < 0) {
		datagram_drop(dgram, "reply not sent");
		return;
	}
	port->counters.replies++;
}

bool datagram_source_is_reflector(const struct datagram *dgram)
{
	const struct sockaddr *sa = datagram_source(dgram);
	unsigned port = addr_port(sa);

	if (port == 0 || port == 7 || port == 19 || addr_is_multicast(sa))
		return true;
	if (sa->sa_family == AF_INET) {
		in_addr_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return a == INADDR_ANY || a == INADDR_BROADCAST;
	}
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}
