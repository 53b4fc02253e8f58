#include "daemon/datagram.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/listener.h"
#include "daemon/log.h"
#include "daemon/runtime.h"
#include "daemon/protocol.h"

/* Large enough for any UDP payload, so nothing is ever truncated. */
#define DATAGRAM_MAX 65536
/* A flood on one socket must not starve every other socket and timer;
 * what is left is read on the next pass of the loop. */
#define DATAGRAMS_PER_WAKEUP 1024

struct datagram {
	struct listener *listener;
	const void *payload;
	size_t len;
	struct sockaddr_storage source;
	socklen_t source_len;
};

static unsigned char datagram_buffer[DATAGRAM_MAX];

static void datagram_log(const struct datagram *dgram, int level, const char *what)
{
	const struct conf_listener *conf = dgram->listener->service->conf;
	struct log_context ctx = {
		.listener = conf->name,
		.protocol = conf->module->name,
		.transport = transport_name(conf->transport),
		.peer = (const struct sockaddr *)&dgram->source,
	};

	log_write(level, &ctx, "datagram dropped: %s", what);
}

void datagram_drop(struct datagram *dgram, const char *reason)
{
	dgram->listener->counters.dropped++;
	if (log_enabled(LOG_DEBUG))
		datagram_log(dgram, LOG_DEBUG, reason);
}

static void datagram_handle(struct listener *ls, struct datagram *dgram)
{
	const struct conf_listener *conf = ls->service->conf;

	ls->counters.datagrams++;
	addr_unmap(&dgram->source, &dgram->source_len);
	if (!listener_allows(conf, (struct sockaddr *)&dgram->source)) {
		ls->counters.denied++;
		return;
	}
	protocol_of(conf->module)->datagram(dgram);
}

void datagram_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct listener *ls = arg;

	for (int i = 0; i < DATAGRAMS_PER_WAKEUP; i++) {
		struct datagram dgram = {
			.listener = ls,
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
				log_warning("listener %s: recvfrom: %s", ls->service->conf->name, strerror(errno));
			return;
		}
		dgram.len = (size_t)n;
		if (dgram.len > sizeof(datagram_buffer)) {
			ls->counters.datagrams++;
			datagram_drop(&dgram, "larger than 64 KiB");
			continue;
		}
		datagram_handle(ls, &dgram);
	}
	(void)what;
}

/* ---- the chassis API ---- */

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
	return dgram->listener->service->conf->settings;
}

void *datagram_service_state(const struct datagram *dgram)
{
	return dgram->listener->service->state;
}

void datagram_reply(struct datagram *dgram, const void *data, size_t len)
{
	struct listener *ls = dgram->listener;
	struct sockaddr_storage to = dgram->source;
	socklen_t to_len = dgram->source_len;

	/* A dual-stack socket sends to IPv4 peers through mapped addresses. */
	if (to.ss_family == AF_INET && ls->service->conf->endpoint.sa.ss_family == AF_INET6 &&
	    ls->service->conf->endpoint.any) {
		struct sockaddr_in sin = *(struct sockaddr_in *)&dgram->source;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;
		memset(&to, 0, sizeof(to));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = sin.sin_port;
		sin6->sin6_addr.s6_addr[10] = sin6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sin6->sin6_addr.s6_addr[12], &sin.sin_addr, 4);
		to_len = sizeof(*sin6);
	}
	if (sendto(ls->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, to_len) < 0) {
		datagram_drop(dgram, "reply not sent");
		return;
	}
	ls->counters.replies++;
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
