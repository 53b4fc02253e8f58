/* Outbound connections: resolve, connect without blocking, and hand the
 * socket to conn.c once it is connected.
 *
 * As OpenBSD relayd's relay_connect()/relay_connected(): a non-blocking
 * connect() finished by write-readiness and SO_ERROR, under one deadline
 * for the whole attempt, names and every address included. A host name is
 * resolved by libevent's evdns (the hosts file, then the resolv.conf
 * servers), so the loop never waits on a resolver. Every step runs from
 * the loop, never from inside conn_connect(), so a module never hears of
 * an outcome before it has the handle. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/chassis.h"
#include "daemon/conn.h"

struct connect {
	struct conn_owner *owner;
	struct chassis *chassis;
	struct conn_profile profile;
	connect_failed_fn *failed;
	void *arg;
	char *host;
	char port[8];
	struct evutil_addrinfo *addrs, *next;
	/* An IP literal needs no resolver and no allocation: the one entry. */
	struct evutil_addrinfo literal;
	struct sockaddr_storage literal_sa;
	struct evdns_getaddrinfo_request *resolving;
	int fd;
	int error;			/* the last address's, for failed() */
	struct event *step;		/* start, and each try after a failed one */
	struct event *writable;
	struct event *deadline;
	/* Over TLS the connect lasts until the handshake's outcome: the
	 * module hears failed() for a peer that cannot prove its name. */
	bool handshaking;
	bool cancelled;			/* conn_connect_cancel() during the handshake */
};

static void connect_free(struct connect *c)
{
	if (c->resolving != NULL)
		evdns_getaddrinfo_cancel(c->resolving);	/* its callback runs now, with EVUTIL_EAI_CANCEL */
	if (c->addrs != NULL)
		evutil_freeaddrinfo(c->addrs);
	if (c->fd >= 0)
		close(c->fd);
	if (c->step != NULL)
		event_free(c->step);
	if (c->writable != NULL)
		event_free(c->writable);
	if (c->deadline != NULL)
		event_free(c->deadline);
	chassis_release(c->chassis);
	free(c->host);
	free(c);
}

static void connect_fail(struct connect *c, int error)
{
	connect_failed_fn *failed = c->failed;
	void *arg = c->arg;

	connect_free(c);
	failed(arg, error);
}

/* conn.c's word on the handshake, once. A cancelled connect's connection
 * is closed, never handed to the module. */
static bool connect_on_handshake(void *arg, int error)
{
	struct connect *c = arg;
	bool cancelled = c->cancelled;

	c->handshaking = false;
	if (cancelled || error == 0)
		connect_free(c);
	else
		connect_fail(c, error);
	return !cancelled;
}

/* The socket is connected: it becomes a connection of the owner's (over
 * TLS, once the handshake is done: connect_on_handshake()). */
static void connect_done(struct connect *c)
{
	struct sockaddr_storage peer;
	socklen_t peer_len = (socklen_t)c->next->ai_addrlen;
	int fd = c->fd;

	memcpy(&peer, c->next->ai_addr, peer_len);
	c->fd = -1;
	if (c->profile.tls != NULL) {
		c->profile.tls_peer_name = c->host;
		c->profile.handshake_outcome = connect_on_handshake;
		c->profile.handshake_arg = c;
		event_del(c->deadline);		/* the handshake has a deadline of its own */
		if (c->writable != NULL)
			event_del(c->writable);	/* persistent: it would fire all through the handshake */
	}
	c->handshaking = c->profile.tls != NULL;
	if (conn_open(c->owner, &c->profile, fd, (struct sockaddr *)&peer, peer_len, c->arg) < 0) {
		c->handshaking = false;
		connect_fail(c, ENOMEM);
		return;
	}
	if (!c->handshaking)
		connect_free(c);
}

static void connect_on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct connect *c = arg;
	int error = 0;
	socklen_t len = sizeof(error);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
		error = errno;
	if (error == 0) {
		connect_done(c);
		return;
	}
	c->error = error;
	event_free(c->writable);
	c->writable = NULL;
	close(c->fd);
	c->fd = -1;
	c->next = c->next->ai_next;
	event_active(c->step, EV_TIMEOUT, 0);
	(void)what;
}

enum connect_start { CONNECT_NONE_LEFT, CONNECT_WAITING, CONNECT_CONNECTED };

/* Starts connect() to the next address. */
static enum connect_start connect_try_next(struct connect *c)
{
	for (; c->next != NULL; c->next = c->next->ai_next) {
		struct evutil_addrinfo *a = c->next;

		c->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			c->error = errno;
			continue;
		}
		/* As on accepted sockets: each callback's output goes whole. */
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		if (connect(c->fd, a->ai_addr, (socklen_t)a->ai_addrlen) == 0)
			return CONNECT_CONNECTED;
		/* To a peer on this host the handshake is over by the time
		 * connect() returns EINPROGRESS: the SYN-ACK waits in the
		 * socket's backlog until the call releases the socket. A
		 * second connect() says so (0, or EISCONN elsewhere than
		 * Linux), or that the peer refused, and the wait for EPOLLOUT
		 * is saved with its epoll_ctl calls and the SO_ERROR. A peer
		 * further away: EALREADY, one syscall more on a connect that
		 * takes a round trip anyway. */
		if (errno == EINPROGRESS &&
		    (connect(c->fd, a->ai_addr, (socklen_t)a->ai_addrlen) == 0 || errno == EISCONN))
			return CONNECT_CONNECTED;
		if (errno == EINPROGRESS || errno == EALREADY) {
			/* EV_READ too, and persistent, so that the fd stays in epoll
			 * until connect_free(): conn_open() adds its read event to
			 * a registration that is already there, and the handover
			 * costs one EPOLL_CTL_MOD instead of a DEL and an ADD. */
			c->writable = event_new(c->chassis->base, c->fd, EV_READ | EV_WRITE | EV_PERSIST,
						connect_on_writable, c);
			if (c->writable != NULL && event_add(c->writable, NULL) == 0)
				return CONNECT_WAITING;
			c->error = ENOMEM;
		} else {
			c->error = errno;
		}
		close(c->fd);
		c->fd = -1;
	}
	return CONNECT_NONE_LEFT;
}

static void connect_on_step(evutil_socket_t fd, short what, void *arg)
{
	struct connect *c = arg;

	switch (connect_try_next(c)) {
	case CONNECT_NONE_LEFT:
		connect_fail(c, c->error);
		break;
	case CONNECT_CONNECTED:
		connect_done(c);
		break;
	case CONNECT_WAITING:
		break;
	}
	(void)fd;
	(void)what;
}

static void connect_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	connect_fail(arg, ETIMEDOUT);
	(void)fd;
	(void)what;
}

static int connect_error_of(int eai)
{
	switch (eai) {
	case EVUTIL_EAI_NONAME:
#ifdef EVUTIL_EAI_NODATA
	case EVUTIL_EAI_NODATA:
#endif
		return ENOENT;
	case EVUTIL_EAI_MEMORY:
		return ENOMEM;
	case EVUTIL_EAI_SYSTEM:
		return errno ? errno : EIO;
	default:
		return EHOSTUNREACH;
	}
}

static void connect_on_resolved(int result, struct evutil_addrinfo *addrs, void *arg)
{
	struct connect *c = arg;

	if (result == EVUTIL_EAI_CANCEL)
		return;		/* connect_free() is under way */
	c->resolving = NULL;
	if (result != 0) {
		connect_fail(c, connect_error_of(result));
		return;
	}
	c->addrs = c->next = addrs;
	c->error = ENOENT;
	event_active(c->step, EV_TIMEOUT, 0);
}

static struct evdns_base *connect_dns(struct chassis *ch)
{
	if (ch->dns == NULL)
		ch->dns = evdns_base_new(ch->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
							   EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	return ch->dns;
}

/* A plain IPv4 or IPv6 literal, straight into c->literal: getaddrinfo()
 * would cost more than the connect() on every relayed connection. */
static bool connect_literal(struct connect *c, unsigned port)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&c->literal_sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->literal_sa;

	if (inet_pton(AF_INET, c->host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		c->literal.ai_addrlen = sizeof(*in4);
	} else if (inet_pton(AF_INET6, c->host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		c->literal.ai_addrlen = sizeof(*in6);
	} else {
		return false;
	}
	c->literal.ai_family = c->literal_sa.ss_family;
	c->literal.ai_socktype = SOCK_STREAM;
	c->literal.ai_protocol = IPPROTO_TCP;
	c->literal.ai_addr = (struct sockaddr *)&c->literal_sa;
	c->next = &c->literal;
	return true;
}

/* An IP literal is parsed on the spot (a scoped IPv6 one by
 * getaddrinfo); a name goes to evdns. */
static int connect_resolve(struct connect *c, unsigned port)
{
	struct evutil_addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP };
	struct evdns_base *dns;

	if (!connect_literal(c, port)) {
		snprintf(c->port, sizeof(c->port), "%u", port);
		hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
		if (evutil_getaddrinfo(c->host, c->port, &hints, &c->addrs) != 0) {
			dns = connect_dns(c->chassis);
			if (dns == NULL)
				return -1;
			hints.ai_flags = EVUTIL_AI_NUMERICSERV;
			/* The callback may run before this returns (the
			 * hosts file): it only schedules the step, which runs
			 * from the loop. */
			c->resolving = evdns_getaddrinfo(dns, c->host, c->port, &hints, connect_on_resolved, c);
			return 0;
		}
		c->next = c->addrs;
	}
	/* Active, not a zero timeout: it runs in this loop turn, without an
	 * epoll_wait(0) first. */
	event_active(c->step, EV_TIMEOUT, 0);
	return 0;
}

struct connect *conn_connect(const struct unit_env *env, const char *host, unsigned port, unsigned timeout_ms,
			     const struct conn_hooks *hooks, connect_failed_fn *failed, void *arg)
{
	return conn_connect_tls(env, host, port, timeout_ms, NULL, hooks, failed, arg);
}

struct connect *conn_connect_tls(const struct unit_env *env, const char *host, unsigned port,
				 unsigned timeout_ms, const struct tls_context *tls, const struct conn_hooks *hooks,
				 connect_failed_fn *failed, void *arg)
{
	struct chassis *ch = env->chassis;
	struct timeval deadline = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	struct connect *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->owner = env->outbound;
	c->chassis = ch;
	c->profile = *env->outbound_profile;
	c->profile.hooks = hooks;
	c->profile.tls = tls;
	c->failed = failed;
	c->arg = arg;
	c->fd = -1;
	chassis_hold(ch);	/* a stopping daemon waits for it as for a connection */
	c->host = strdup(host);
	c->step = evtimer_new(ch->base, connect_on_step, c);
	c->deadline = evtimer_new(ch->base, connect_on_deadline, c);
	if (c->host == NULL || c->step == NULL || c->deadline == NULL || evtimer_add(c->deadline, &deadline) < 0 ||
	    connect_resolve(c, port) < 0) {
		connect_free(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

void conn_connect_cancel(struct connect *c)
{
	/* Its connection finishes the handshake or fails it within the
	 * handshake's deadline, and is closed then: the outcome frees c. */
	if (c->handshaking) {
		c->cancelled = true;
		return;
	}
	connect_free(c);
}
