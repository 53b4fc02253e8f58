#include "daemon/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/addr.h"
#include "conf/conf.h"
#include "conf/tls.h"
#include "daemon/chassis.h"
#include "daemon/core.h"
#include "daemon/log.h"
#include "daemon/netsim.h"
#include "daemon/protocol.h"
#include "daemon/service.h"
#include "daemon/tls.h"
#include "systemd/activation.h"

/* OpenBSD httpd waits a second before accepting again when out of fds;
 * a closing connection resumes it sooner. */
#define ACCEPT_RESUME_SECONDS 1

/* Listeners paused for want of fds. Fds are the process's, so any
 * listener's closing connection is a reason for all of them to try again. */
static TAILQ_HEAD(, listener) paused = TAILQ_HEAD_INITIALIZER(paused);

static struct log_context listener_context(const struct listener *ls)
{
	const struct conf_listener *conf = ls->service->conf;

	return (struct log_context){
		.listener = conf->unit.name,
		.protocol = conf->unit.module->name,
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

/* Joins (or leaves) the group on the listener's interface. */
static int multicast_membership(int fd, const struct conf_listener *conf, bool join, char *err, size_t errlen)
{
	int rc;

	if (conf->endpoint.sa.ss_family == AF_INET) {
		struct ip_mreqn mreq = {
			.imr_multiaddr = ((const struct sockaddr_in *)&conf->endpoint.sa)->sin_addr,
			.imr_address = conf->if_addr,
			.imr_ifindex = (int)conf->ifindex,
		};
		rc = setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &mreq, sizeof(mreq));
	} else {
		struct ipv6_mreq mreq = {
			.ipv6mr_multiaddr = ((const struct sockaddr_in6 *)&conf->endpoint.sa)->sin6_addr,
			.ipv6mr_interface = conf->ifindex,
		};
		rc = setsockopt(fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &mreq, sizeof(mreq));
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot %s group on interface %s: %s", join ? "join" : "leave", conf->interface,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/* join = "on-demand": the group is joined later, when the first tap
 * comes (listener_enable()). */
static int multicast_join(int fd, const struct conf_listener *conf, char *err, size_t errlen)
{
	if (!conf->join_on_demand && multicast_membership(fd, conf, true, err, errlen) < 0)
		return -1;
	return multicast_send_options(fd, conf, err, errlen);
}

static int socket_prepare(int fd, const struct conf_listener *conf, int family, bool shared, char *err,
			  size_t errlen)
{
	/* TCP: restart while old connections sit in TIME_WAIT. Multicast:
	 * several listeners (and other programs) share one group port.
	 * shared: a module's second socket, which the module's next instance
	 * binds again while this one still has it (a reload). */
	if ((conf->transport != TRANSPORT_UDP || shared) &&
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
		log_notice("listener %s: no IPv6 on this host, \"*\" means IPv4 only", conf->unit.name);
		fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	return fd;
}

static int socket_open(const struct conf_listener *conf, bool shared, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int fd = socket_for(conf, &sa, &len);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (socket_prepare(fd, conf, sa.ss_family, shared, err, errlen) < 0)
		goto fail;
	if (conf->transport == TRANSPORT_MULTICAST)
		addr_scope_group(&sa, conf->ifindex);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		bool privileged = errno == EACCES && addr_port((const struct sockaddr *)&sa) < 1024;

		snprintf(err, errlen, "cannot bind %s (%s): %s%s", conf->address, transport_name(conf->transport),
			 strerror(errno), privileged ? " (a port below 1024 needs root or CAP_NET_BIND_SERVICE)" : "");
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

int chassis_datagram_socket(const struct unit_env *env, unsigned port, char *err, size_t err_len)
{
	struct conf_listener conf;
	struct sockaddr *sa;

	if (env->listener == NULL || env->listener->transport == TRANSPORT_TCP || port == 0 || port > 65535) {
		snprintf(err, err_len, "no datagram listener to bind like, or port %u", port);
		return -1;
	}
	conf = *env->listener;
	sa = (struct sockaddr *)&conf.endpoint.sa;
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
	return socket_open(&conf, true, err, err_len);
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
		return socket_open(conf, false, err, errlen);
	/* systemd cannot join groups: that is always ours to do. */
	if (conf->transport == TRANSPORT_MULTICAST && multicast_join(fd, conf, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void listener_resume_accept(struct listener *ls)
{
	if (ls->acceptor == NULL || !ls->accept_paused)
		return;
	ls->accept_paused = false;
	TAILQ_REMOVE(&paused, ls, paused_link);
	evtimer_del(ls->resume_timer);
	event_add(ls->acceptor, NULL);
}

/* The owner's word on each connection it accepted. */
static void listener_on_closed(struct conn_owner *owner, struct conn *conn, enum conn_end end)
{
	struct listener *ls = (struct listener *)((char *)owner - offsetof(struct listener, owner));
	struct listener *waiting;

	source_table_release(&ls->sources, conn_peer(conn));
	if (end == CONN_END_IDLE)
		ls->counters.idle_closed++;
	service_release(conn_owner_ref(conn));
	/* A freed fd may be just what a paused listener waits for. */
	while ((waiting = TAILQ_FIRST(&paused)) != NULL)
		listener_resume_accept(waiting);
	if (ls->retired && ls->owner.n_conns == 0 && !ls->closing_all)
		ls->gone(ls, ls->gone_arg);
}

struct listener *listener_open(struct chassis *chassis, struct service *svc, char *err, size_t errlen)
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
	ls->chassis = chassis;
	ls->fd = fd;
	ls->joined = svc->conf->transport == TRANSPORT_MULTICAST && !svc->conf->join_on_demand;
	ls->port.fd = -1;
	ls->adopted = adopted;
	ls->service = svc;
	service_ref(svc);
	conn_owner_init(&ls->owner, chassis, listener_on_closed);
	ls->owner.tls = &ls->counters.tls;
	return ls;
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

	if (!conf_listener_allows(conf, peer)) {
		ls->counters.denied++;
		if (log_enabled(LOG_DEBUG)) {
			struct log_context ctx = listener_context(ls);
			ctx.peer = peer;
			log_write(LOG_DEBUG, &ctx, "connection denied by allow/deny");
		}
		return false;
	}
	if (ls->chassis->connections >= ls->chassis->max_connections) {
		ls->counters.refused_limit++;
		listener_log_limit(ls, peer, "daemon max-connections reached");
		return false;
	}
	if (ls->owner.n_conns >= conf->max_connections) {
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

static void listener_accept(struct listener *ls, int fd, struct sockaddr_storage *peer, socklen_t peer_len)
{
	if (ls->out_of_fds) {
		struct log_context ctx = listener_context(ls);
		ls->out_of_fds = false;
		log_write(LOG_NOTICE, &ctx, "accepting again");
	}
	addr_unmap(peer, &peer_len);
	if (!listener_admit(ls, (struct sockaddr *)peer)) {
		close(fd);
		return;
	}
	ls->counters.accepted++;
	service_ref(ls->service);
	if (conn_open(&ls->owner, &ls->service->profile, fd, (struct sockaddr *)peer, peer_len, NULL) < 0) {
		source_table_release(&ls->sources, (struct sockaddr *)peer);
		service_release(ls->service);
	}
}

static void listener_on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
	listener_resume_accept(arg);
	(void)fd;
	(void)what;
}

/* The socket stays readable after accept() fails for want of fds, and
 * the loop would spin. Pause instead. */
static void listener_accept_failed(struct listener *ls, int err)
{
	struct log_context ctx = listener_context(ls);
	struct timeval resume = { ACCEPT_RESUME_SECONDS, 0 };

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_write(LOG_WARNING, &ctx, "accept failed: %s", strerror(err));
		return;
	}
	event_del(ls->acceptor);
	if (!ls->accept_paused)
		TAILQ_INSERT_TAIL(&paused, ls, paused_link);
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

/* One connection per wakeup, as nginx without multi_accept. */
static void listener_on_acceptable(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *ls = arg;
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof(peer);
	int fd = accept4(lfd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK);

	if (fd >= 0)
		listener_accept(ls, fd, &peer, peer_len);
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
		listener_accept_failed(ls, errno);
	(void)what;
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
	int seconds = protocol_of(conf->unit.module)->client_sends_first ? LISTENER_DEFER_SECONDS : 0;
	int lowat = (int)conf->notsent_lowat;

	if (conf->transport != TRANSPORT_TCP)
		return;
	setsockopt(ls->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	setsockopt(ls->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof(seconds));
	setsockopt(ls->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

/* A datagram listener's receive buffer: what arrives while the loop is
 * busy waits there, and beyond it the kernel drops (RcvbufErrors). As
 * root the size is taken as asked (SO_RCVBUFFORCE); otherwise the kernel
 * caps it at net.core.rmem_max, which is said once. */
static void listener_set_datagram_options(struct listener *ls)
{
	const struct conf_listener *conf = ls->service->conf;
	int want = (int)conf->receive_buffer, got = 0;
	socklen_t len = sizeof(got);

	if (conf->transport == TRANSPORT_TCP || want == 0 || ls->fd < 0)
		return;
	if (setsockopt(ls->fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(ls->fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
	/* Linux reports twice what was set (it counts its bookkeeping). */
	if (getsockopt(ls->fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 && got / 2 < want)
		log_notice("listener %s: receive-buffer %d capped to %d bytes by net.core.rmem_max", conf->unit.name,
			   want, got / 2);
}

/* join = "on-demand": a member only while the listener has taps. */
static void listener_on_tap_count(void *arg, unsigned n_taps)
{
	struct listener *ls = arg;
	const struct conf_listener *conf = ls->service->conf;
	struct log_context ctx = listener_context(ls);
	bool want = n_taps > 0;
	char err[256];

	if (ls->fd < 0 || want == ls->joined)
		return;
	if (multicast_membership(ls->fd, conf, want, err, sizeof(err)) < 0) {
		log_write(LOG_WARNING, &ctx, "%s", err);
		return;
	}
	ls->joined = want;
	log_write(LOG_INFO, &ctx, "%s group %s on %s: %u tap%s", want ? "joined" : "left", conf->address,
		  conf->interface, n_taps, n_taps == 1 ? "" : "s");
}

/* Follows the config's join mode, also when a reload changes it or the
 * name on a kept socket. */
static int listener_follow_join(struct listener *ls)
{
	const struct conf_listener *conf = ls->service->conf;
	char err[256];

	chassis_unwatch_taps(ls->tap_watch);
	ls->tap_watch = NULL;
	if (conf->transport != TRANSPORT_MULTICAST || ls->fd < 0)
		return 0;
	if (conf->join_on_demand) {
		ls->tap_watch = chassis_watch_taps(ls->chassis, conf->unit.name, listener_on_tap_count, ls);
		return ls->tap_watch != NULL ? 0 : -1;
	}
	if (!ls->joined) {
		if (multicast_membership(ls->fd, conf, true, err, sizeof(err)) < 0) {
			log_warning("listener %s: %s", conf->unit.name, err);
			return -1;
		}
		ls->joined = true;
	}
	return 0;
}

int listener_enable(struct listener *ls)
{
	const struct conf_listener *conf = ls->service->conf;
	struct event_base *base = ls->chassis->base;

	if (conf->transport == TRANSPORT_TCP) {
		listener_set_tcp_options(ls);
		ls->resume_timer = evtimer_new(base, listener_on_resume_timer, ls);
		/* socket_open() already called listen(). */
		ls->acceptor = event_new(base, ls->fd, EV_READ | EV_PERSIST, listener_on_acceptable, ls);
		if (ls->acceptor == NULL || ls->resume_timer == NULL || event_add(ls->acceptor, NULL) < 0)
			return -1;
		return 0;
	}
	if (datagram_port_start(&ls->port, base, ls->fd, conf->endpoint.sa.ss_family == AF_INET6 && conf->endpoint.any,
				&ls->service->datagram) < 0)
		return -1;
	listener_set_datagram_options(ls);
	return listener_follow_join(ls);
}

void listener_set_service(struct listener *ls, struct service *svc)
{
	const struct conf_listener *conf = svc->conf;
	char err[256];

	service_ref(svc);
	service_release(ls->service);
	ls->service = svc;
	ls->port.profile = &svc->datagram;
	listener_set_tcp_options(ls);
	listener_set_datagram_options(ls);
	if (conf->transport == TRANSPORT_MULTICAST && multicast_send_options(ls->fd, conf, err, sizeof(err)) < 0)
		log_warning("listener %s: %s", conf->unit.name, err);
	listener_follow_join(ls);
}

static void listener_stop_accepting(struct listener *ls)
{
	chassis_unwatch_taps(ls->tap_watch);
	ls->tap_watch = NULL;
	if (ls->accept_paused) {
		TAILQ_REMOVE(&paused, ls, paused_link);
		ls->accept_paused = false;
	}
	if (ls->acceptor != NULL) {
		event_free(ls->acceptor);
		ls->acceptor = NULL;
	} else if (ls->fd >= 0) {
		datagram_port_stop(&ls->port);
	}
	if (ls->fd >= 0)
		close(ls->fd);
	ls->fd = -1;
	if (ls->resume_timer != NULL)
		event_free(ls->resume_timer);
	ls->resume_timer = NULL;
}

static void listener_close_connections(struct listener *ls)
{
	struct conn *conn;

	ls->closing_all = true;
	while ((conn = TAILQ_FIRST(&ls->owner.conns)) != NULL)
		conn_close_now(conn);
	ls->closing_all = false;
}

static void listener_on_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct listener *ls = arg;
	struct log_context ctx = listener_context(ls);

	log_write(LOG_NOTICE, &ctx, "shutdown grace over: closing %u connection%s", ls->owner.n_conns,
		  ls->owner.n_conns == 1 ? "" : "s");
	listener_close_connections(ls);
	ls->gone(ls, ls->gone_arg);
	(void)fd;
	(void)what;
}

bool listener_retire(struct listener *ls, unsigned grace, void (*gone)(struct listener *ls, void *arg), void *arg)
{
	struct timeval tv = { (time_t)grace, 0 };

	listener_stop_accepting(ls);
	ls->retired = true;
	ls->gone = gone;
	ls->gone_arg = arg;
	if (ls->owner.n_conns == 0)
		return false;
	ls->grace_timer = evtimer_new(ls->chassis->base, listener_on_grace_over, ls);
	if (ls->grace_timer != NULL)
		evtimer_add(ls->grace_timer, &tv);
	return true;
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

/* A datagram listener's fault simulation, as a row of the status page. */
static void listener_netsim_row(const struct listener *ls, char *rows, size_t rows_len)
{
	const struct netsim_counters *n;
	size_t used = strlen(rows);

	if (ls->service->datagram.netsim == NULL || used >= rows_len)
		return;
	n = netsim_counters(ls->service->datagram.netsim);
	snprintf(rows + used, rows_len - used,
		 "netsim - in=%llu out=%llu lost=%llu duplicated=%llu reordered=%llu delayed=%llu corrupted=%llu "
		 "overflow=%llu\n",
		 (unsigned long long)n->in, (unsigned long long)n->out, (unsigned long long)n->lost,
		 (unsigned long long)n->duplicated, (unsigned long long)n->reordered, (unsigned long long)n->delayed,
		 (unsigned long long)n->corrupted, (unsigned long long)n->overflow);
}

void listener_stats(const struct listener *ls, struct chassis_listener_stats *stats, char *counters,
		    size_t counters_len, char *rows, size_t rows_len)
{
	const struct conf_listener *conf = ls->service->conf;
	const struct listener_counters *c = &ls->counters;
	const struct datagram_counters *d = &ls->port.counters;

	service_module_status(ls->service, counters, counters_len, rows, rows_len);
	listener_netsim_row(ls, rows, rows_len);
	*stats = (struct chassis_listener_stats){
		.name = conf->unit.name,
		.protocol = conf->unit.module->name,
		.transport = transport_name(conf->transport),
		.address = conf->address,
		.retired = ls->retired,
		.connections = ls->owner.n_conns,
		.accepted = c->accepted,
		.denied = c->denied + d->denied,
		.refused_limit = c->refused_limit,
		.refused_per_source = c->refused_per_source,
		.idle_closed = c->idle_closed,
		.accept_paused = c->accept_paused,
		.tls = conf->tls != NULL,
		.tls_handshakes = c->tls.handshakes,
		.tls_resumed = c->tls.resumed,
		.tls_version_1_2 = c->tls.tls12,
		.tls_version_1_3 = c->tls.tls13,
		.tls_kernel_send = c->tls.kernel_send,
		.tls_failed_protocol_version = c->tls.failed_protocol,
		.tls_failed_no_shared_cipher = c->tls.failed_cipher,
		.tls_failed_client_certificate = c->tls.failed_client_certificate,
		.tls_failed_timeout = c->tls.failed_timeout,
		.tls_failed_other = c->tls.failed_other,
		.tls_certificate_expiry_seconds = conf->tls != NULL ? tls_expiry_seconds(conf->tls->context) : 0,
		.datagrams = d->datagrams,
		.replies = d->replies,
		.dropped = d->dropped,
		.module_counters = counters,
		.module_rows = rows,
	};
}

void listener_log_status(const struct listener *ls)
{
	struct chassis_listener_stats s;
	struct log_context ctx = listener_context(ls);
	char counters[512], rows[2048], extra[520] = "";

	listener_stats(ls, &s, counters, sizeof(counters), rows, sizeof(rows));
	if (counters[0] != '\0')
		snprintf(extra, sizeof(extra), " %s", counters);
	if (ls->service->conf->transport == TRANSPORT_TCP)
		log_write(LOG_INFO, &ctx,
			  "status: %s %u connection%s, accepted=%llu denied=%llu refused_limit=%llu "
			  "refused_per_source=%llu idle_closed=%llu accept_paused=%llu%s%s",
			  s.address, s.connections, s.connections == 1 ? "" : "s", (unsigned long long)s.accepted, (unsigned long long)s.denied,
			  (unsigned long long)s.refused_limit, (unsigned long long)s.refused_per_source,
			  (unsigned long long)s.idle_closed, (unsigned long long)s.accept_paused, extra,
			  s.retired ? " (retired)" : "");
	else
		log_write(LOG_INFO, &ctx, "status: %s datagrams=%llu replies=%llu dropped=%llu denied=%llu%s%s",
			  s.address, (unsigned long long)s.datagrams, (unsigned long long)s.replies,
			  (unsigned long long)s.dropped, (unsigned long long)s.denied, extra,
			  s.retired ? " (retired)" : "");
	log_lines(LOG_INFO, &ctx, "status: ", rows);
}
