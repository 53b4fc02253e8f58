#include "daemon/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/datagram.h"
#include "daemon/log.h"
#include "daemon/runtime.h"
#include "daemon/protocol.h"
#include "systemd/activation.h"

/* OpenBSD httpd waits a second before accepting again when out of fds;
 * a closing connection resumes it sooner. */
#define ACCEPT_RESUME_SECONDS 1

static struct log_context listener_context(const struct listener *ls)
{
	const struct conf_listener *conf = ls->service->conf;

	return (struct log_context){
		.listener = conf->name,
		.protocol = conf->module->name,
		.transport = transport_name(conf->transport),
	};
}

static int set_int_option(int fd, int level, int name, int value, const char *what, char *err,
			  size_t errlen)
{
	if (setsockopt(fd, level, name, &value, sizeof(value)) == 0)
		return 0;
	snprintf(err, errlen, "%s: %s", what, strerror(errno));
	return -1;
}

static int multicast_send_options(int fd, const struct conf_listener *conf, char *err, size_t errlen)
{
	if (conf->endpoint.sa.ss_family == AF_INET) {
		struct ip_mreqn mreq = { .imr_address = conf->if_addr, .imr_ifindex = (int)conf->ifindex };
		if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) < 0) {
			snprintf(err, errlen, "IP_MULTICAST_IF %s: %s", conf->interface, strerror(errno));
			return -1;
		}
		if (set_int_option(fd, IPPROTO_IP, IP_MULTICAST_TTL, conf->ttl, "IP_MULTICAST_TTL", err, errlen) < 0 ||
		    set_int_option(fd, IPPROTO_IP, IP_MULTICAST_LOOP, conf->loop, "IP_MULTICAST_LOOP", err, errlen) < 0)
			return -1;
		return 0;
	}
	if (set_int_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, (int)conf->ifindex, "IPV6_MULTICAST_IF", err, errlen) < 0 ||
	    set_int_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, conf->ttl, "IPV6_MULTICAST_HOPS", err, errlen) < 0 ||
	    set_int_option(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, conf->loop, "IPV6_MULTICAST_LOOP", err, errlen) < 0)
		return -1;
	return 0;
}

static int multicast_join(int fd, const struct conf_listener *conf, char *err, size_t errlen)
{
	int rc;

	if (conf->endpoint.sa.ss_family == AF_INET) {
		struct ip_mreqn mreq = {
			.imr_multiaddr = ((const struct sockaddr_in *)&conf->endpoint.sa)->sin_addr,
			.imr_address = conf->if_addr,
			.imr_ifindex = (int)conf->ifindex,
		};
		rc = setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq));
	} else {
		struct ipv6_mreq mreq = {
			.ipv6mr_multiaddr = ((const struct sockaddr_in6 *)&conf->endpoint.sa)->sin6_addr,
			.ipv6mr_interface = conf->ifindex,
		};
		rc = setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mreq, sizeof(mreq));
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot join group on interface %s: %s", conf->interface,
			 strerror(errno));
		return -1;
	}
	return multicast_send_options(fd, conf, err, errlen);
}

static int socket_prepare(int fd, const struct conf_listener *conf, int family, char *err,
			  size_t errlen)
{
	/* TCP: restart while old connections sit in TIME_WAIT. Multicast:
	 * several listeners (and other programs) share one group port. */
	if (conf->transport != TRANSPORT_UDP &&
	    set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", err, errlen) < 0)
		return -1;
	/* Explicit, so the bindv6only sysctl cannot change what "*" means. */
	if (family == AF_INET6 &&
	    set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, !conf->endpoint.any, "IPV6_V6ONLY", err, errlen) < 0)
		return -1;
	return 0;
}

/* "*" wants one dual-stack socket; a host without IPv6 gets IPv4 only. */
static int socket_for(const struct conf_listener *conf, struct sockaddr_storage *sa, socklen_t *len)
{
	int type = conf->transport == TRANSPORT_TCP ? SOCK_STREAM : SOCK_DGRAM;
	int fd;

	memcpy(sa, &conf->endpoint.sa, conf->endpoint.len);
	*len = conf->endpoint.len;
	fd = socket(sa->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && errno == EAFNOSUPPORT && conf->endpoint.any) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;
		unsigned port = addr_port((const struct sockaddr *)&conf->endpoint.sa);
		memset(sa, 0, sizeof(*sa));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		log_notice("listener %s: no IPv6 on this host, \"*\" means IPv4 only", conf->name);
		fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	return fd;
}

static int socket_open(const struct conf_listener *conf, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int fd = socket_for(conf, &sa, &len);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (socket_prepare(fd, conf, sa.ss_family, err, errlen) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		snprintf(err, errlen, "cannot bind %s (%s): %s", conf->address,
			 transport_name(conf->transport), strerror(errno));
		goto fail;
	}
	if (conf->transport == TRANSPORT_TCP && listen(fd, SOMAXCONN) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", conf->address, strerror(errno));
		goto fail;
	}
	if (conf->transport == TRANSPORT_MULTICAST && multicast_join(fd, conf, err, errlen) < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* A socket passed by systemd, or one of our own. */
static int socket_obtain(const struct conf_listener *conf, bool *adopted, char *err, size_t errlen)
{
	int fd = -1;
	int taken = activation_take(conf, &fd, err, errlen);

	*adopted = taken > 0;
	if (taken < 0)
		return -1;
	if (taken == 0)
		return socket_open(conf, err, errlen);
	/* systemd cannot join groups: that is always ours to do. */
	if (conf->transport == TRANSPORT_MULTICAST && multicast_join(fd, conf, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

struct listener *listener_open(struct runtime *rt, struct service *svc, char *err, size_t errlen)
{
	struct listener *ls;
	bool adopted;
	int fd = socket_obtain(svc->conf, &adopted, err, errlen);

	if (fd < 0)
		return NULL;
	ls = calloc(1, sizeof(*ls));
	if (ls == NULL) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return NULL;
	}
	ls->rt = rt;
	ls->fd = fd;
	ls->adopted = adopted;
	ls->service = svc;
	service_ref(svc);
	TAILQ_INIT(&ls->conns);
	return ls;
}

bool listener_allows(const struct conf_listener *conf, const struct sockaddr *peer)
{
	bool allowed = conf->n_allow == 0;

	for (size_t i = 0; i < conf->n_deny; i++)
		if (cidr_match(&conf->deny[i], peer))
			return false;
	for (size_t i = 0; !allowed && i < conf->n_allow; i++)
		allowed = cidr_match(&conf->allow[i], peer);
	return allowed;
}

/* One line per second per listener at most: a flood must not become a
 * flood of log lines too. */
static void listener_log_limit(struct listener *ls, const struct sockaddr *peer, const char *what)
{
	struct log_context ctx = listener_context(ls);
	time_t now = time(NULL);

	if (now == ls->last_limit_log)
		return;
	ls->last_limit_log = now;
	ctx.peer = peer;
	ctx.event = LOG_EVENT_LIMIT_HIT;
	log_write(LOG_NOTICE, &ctx, "connection refused: %s", what);
}

/* NULL when the connection may go ahead; the per-source slot is then taken. */
static bool listener_admit(struct listener *ls, const struct sockaddr *peer)
{
	const struct conf_listener *conf = ls->service->conf;

	if (!listener_allows(conf, peer)) {
		ls->counters.denied++;
		if (log_enabled(LOG_DEBUG)) {
			struct log_context ctx = listener_context(ls);
			ctx.peer = peer;
			log_write(LOG_DEBUG, &ctx, "connection denied by allow/deny");
		}
		return false;
	}
	if (ls->rt->connections >= runtime_max_connections(ls->rt)) {
		ls->counters.refused_limit++;
		listener_log_limit(ls, peer, "daemon max-connections reached");
		return false;
	}
	if (ls->n_conns >= conf->max_connections) {
		ls->counters.refused_limit++;
		listener_log_limit(ls, peer, "listener max-connections reached");
		return false;
	}
	if (!source_table_acquire(&ls->sources, peer, conf->per_source)) {
		ls->counters.refused_per_source++;
		listener_log_limit(ls, peer, "per-source limit reached");
		return false;
	}
	return true;
}

static void listener_on_accept(struct evconnlistener *acceptor, evutil_socket_t fd,
			       struct sockaddr *sa, int sa_len, void *arg)
{
	struct listener *ls = arg;
	struct sockaddr_storage peer;
	socklen_t peer_len = (socklen_t)sa_len;

	if (ls->out_of_fds) {
		struct log_context ctx = listener_context(ls);
		ls->out_of_fds = false;
		log_write(LOG_NOTICE, &ctx, "accepting again");
	}
	memcpy(&peer, sa, peer_len);
	addr_unmap(&peer, &peer_len);
	if (!listener_admit(ls, (struct sockaddr *)&peer)) {
		evutil_closesocket(fd);
		return;
	}
	ls->counters.accepted++;
	if (conn_open(ls, fd, (struct sockaddr *)&peer, peer_len) < 0)
		source_table_release(&ls->sources, (struct sockaddr *)&peer);
	(void)acceptor;
}

static void listener_on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
	listener_resume_accept(arg);
	(void)fd;
	(void)what;
}

void listener_resume_accept(struct listener *ls)
{
	if (ls->acceptor == NULL || !ls->accept_paused)
		return;
	ls->accept_paused = false;
	evtimer_del(ls->resume_timer);
	evconnlistener_enable(ls->acceptor);
}

/* libevent keeps a listener armed after accept() fails; with no fd left
 * the socket stays readable and the loop would spin. Pause instead. */
static void listener_on_accept_error(struct evconnlistener *acceptor, void *arg)
{
	struct listener *ls = arg;
	struct log_context ctx = listener_context(ls);
	struct timeval resume = { ACCEPT_RESUME_SECONDS, 0 };
	int err = EVUTIL_SOCKET_ERROR();

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_write(LOG_WARNING, &ctx, "accept failed: %s", strerror(err));
		return;
	}
	evconnlistener_disable(acceptor);
	ls->accept_paused = true;
	evtimer_add(ls->resume_timer, &resume);
	ls->counters.accept_paused++;
	if (!ls->out_of_fds) {
		ls->out_of_fds = true;
		ctx.event = LOG_EVENT_ACCEPT_PAUSED;
		log_write(LOG_WARNING, &ctx, "accept paused: %s; resuming when a connection closes",
			  strerror(err));
	}
}

/* TCP_DEFER_ACCEPT: the kernel completes the handshake but hands the
 * connection over only when the request is in (or after this many
 * seconds), so the first read finds it and a connection that is answered
 * and closed at once never joins epoll. A reload may change the protocol. */
#define LISTENER_DEFER_SECONDS 5

/* TCP_NODELAY: each callback's output goes out whole when it returns;
 * Nagle would only hold back an answer's last segment for the peer's
 * delayed ACK.
 * TCP_NOTSENT_LOWAT: a write stops, and EPOLLOUT waits, while more than
 * this many bytes sit in the kernel unsent. Without it sendfile queues up
 * to the whole send buffer (megabytes per slow client); the rest is sent
 * from whichever CPU processes the client's ACKs, on loopback the
 * client's own (10 MiB to 4 clients: 1.15x the requests/s of no mark,
 * paired runs).
 * Accepted sockets inherit all three: calls here, none per connection. */
static void listener_set_tcp_options(struct listener *ls)
{
	const struct conf_listener *conf = ls->service->conf;
	int seconds = protocol_of(conf->module)->client_sends_first ? LISTENER_DEFER_SECONDS : 0;
	int lowat = (int)conf->notsent_lowat;

	if (conf->transport != TRANSPORT_TCP)
		return;
	setsockopt(ls->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	setsockopt(ls->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof(seconds));
	setsockopt(ls->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

int listener_enable(struct listener *ls)
{
	struct event_base *base = ls->rt->base;

	if (ls->service->conf->transport == TRANSPORT_TCP) {
		listener_set_tcp_options(ls);
		ls->resume_timer = evtimer_new(base, listener_on_resume_timer, ls);
		/* Backlog 0: socket_open() already called listen(). */
		ls->acceptor = evconnlistener_new(base, listener_on_accept, ls, LEV_OPT_CLOSE_ON_FREE,
						  0, ls->fd);
		if (ls->acceptor == NULL || ls->resume_timer == NULL)
			return -1;
		evconnlistener_set_error_cb(ls->acceptor, listener_on_accept_error);
		return 0;
	}
	ls->readable = event_new(base, ls->fd, EV_READ | EV_PERSIST, datagram_on_readable, ls);
	if (ls->readable == NULL)
		return -1;
	return event_add(ls->readable, NULL);
}

void listener_set_service(struct listener *ls, struct service *svc)
{
	const struct conf_listener *conf = svc->conf;
	char err[256];

	service_ref(svc);
	service_release(ls->service);
	ls->service = svc;
	listener_set_tcp_options(ls);
	if (conf->transport == TRANSPORT_MULTICAST && multicast_send_options(ls->fd, conf, err, sizeof(err)) < 0)
		log_warning("listener %s: %s", conf->name, err);
}

static void listener_stop_accepting(struct listener *ls)
{
	if (ls->acceptor != NULL) {
		evconnlistener_free(ls->acceptor);	/* closes the fd */
		ls->acceptor = NULL;
	} else if (ls->fd >= 0) {
		if (ls->readable != NULL)
			event_free(ls->readable);
		ls->readable = NULL;
		close(ls->fd);
	}
	ls->fd = -1;
	if (ls->resume_timer != NULL)
		event_free(ls->resume_timer);
	ls->resume_timer = NULL;
}

static void listener_on_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct listener *ls = arg;
	struct log_context ctx = listener_context(ls);

	log_write(LOG_NOTICE, &ctx, "shutdown grace over: closing %u connection%s", ls->n_conns,
		  ls->n_conns == 1 ? "" : "s");
	listener_close_connections(ls);
	runtime_reap_listener(ls->rt, ls);
	(void)fd;
	(void)what;
}

void listener_retire(struct listener *ls, unsigned grace)
{
	struct timeval tv = { (time_t)grace, 0 };

	listener_stop_accepting(ls);
	if (ls->n_conns == 0)
		return;
	ls->grace_timer = evtimer_new(ls->rt->base, listener_on_grace_over, ls);
	if (ls->grace_timer != NULL)
		evtimer_add(ls->grace_timer, &tv);
}

void listener_close_connections(struct listener *ls)
{
	struct conn *conn;

	ls->closing_all = true;
	while ((conn = TAILQ_FIRST(&ls->conns)) != NULL)
		conn_close_now(conn);
	ls->closing_all = false;
}

void listener_free(struct listener *ls)
{
	listener_close_connections(ls);
	listener_stop_accepting(ls);
	if (ls->grace_timer != NULL)
		event_free(ls->grace_timer);
	source_table_free(&ls->sources);
	service_release(ls->service);
	free(ls);
}

void listener_log_status(const struct listener *ls)
{
	const struct listener_counters *c = &ls->counters;
	const struct protocol *protocol = protocol_of(ls->service->conf->module);
	struct log_context ctx = listener_context(ls);
	char extra[256] = "";

	if (protocol->status != NULL && ls->service->state != NULL) {
		extra[0] = ' ';
		protocol->status(ls->service->state, extra + 1, sizeof(extra) - 1);
	}

	if (ls->service->conf->transport == TRANSPORT_TCP)
		log_write(LOG_INFO, &ctx,
			  "status: %s %u connections, accepted=%llu denied=%llu refused_limit=%llu "
			  "refused_per_source=%llu idle_closed=%llu accept_paused=%llu%s%s",
			  ls->service->conf->address, ls->n_conns, (unsigned long long)c->accepted,
			  (unsigned long long)c->denied, (unsigned long long)c->refused_limit,
			  (unsigned long long)c->refused_per_source, (unsigned long long)c->idle_closed,
			  (unsigned long long)c->accept_paused, extra, ls->fd < 0 ? " (retired)" : "");
	else
		log_write(LOG_INFO, &ctx,
			  "status: %s datagrams=%llu replies=%llu dropped=%llu denied=%llu%s%s",
			  ls->service->conf->address, (unsigned long long)c->datagrams,
			  (unsigned long long)c->replies, (unsigned long long)c->dropped,
			  (unsigned long long)c->denied, extra, ls->fd < 0 ? " (retired)" : "");
}
