#include "daemon/sender.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/log.h"

/* Senders still sending what a stopped stream queued: freed at exit. */
static LIST_HEAD(, sender) lingering = LIST_HEAD_INITIALIZER(lingering);

/* After ENOBUFS the socket stays writable: try again after this long. */
#define SENDER_NOBUFS_RETRY_US 1000

/* Datagrams per sendmmsg: a tick of a fast stream, one syscall. */
#define SENDER_BATCH 64
/* Room in the kernel for bursts of a fast stream. */
#define SENDER_SNDBUF (1024 * 1024)

struct queued {
	unsigned char *data;
	size_t len, cap;
	unsigned destination;
};

struct sender {
	LIST_ENTRY(sender) lingering_link;
	struct event_base *base;
	int fd4, fd6;
	/* The only destination of its family: the socket is connected to it,
	 * so the kernel looks up no route per datagram. */
	bool connected4, connected6;
	struct event *writable4, *writable6;
	struct sockaddr_storage *to;
	socklen_t *to_len;
	size_t n_to;
	struct queued *queue;		/* a ring */
	size_t cap, head, count;
	struct sender_counters counters;
	char *unit;
	bool warned;			/* one log line per blocked episode */
	bool blocked;			/* waiting for the kernel to take more */
	struct event *retry;		/* after ENOBUFS, which no event reports */
	/* closing */
	struct chassis *chassis;
	struct event *linger;
};

static void sender_log(const struct sender *sender, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void sender_log(const struct sender *sender, int level, const char *fmt, ...)
{
	struct log_context ctx = { .stream = sender->unit };
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_write(level, &ctx, "%s", text);
}

static int set_int(int fd, int level, int option, int value)
{
	return setsockopt(fd, level, option, &value, sizeof(value));
}

static int sender_socket4(const struct conf_stream *conf, char *err, size_t err_len)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct ip_mreqn mreq = { .imr_address = conf->if_addr, .imr_ifindex = (int)conf->ifindex };

	if (fd < 0) {
		snprintf(err, err_len, "socket: %s", strerror(errno));
		return -1;
	}
	set_int(fd, SOL_SOCKET, SO_SNDBUF, SENDER_SNDBUF);
	if ((conf->interface != NULL && setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) < 0) ||
	    set_int(fd, IPPROTO_IP, IP_MULTICAST_TTL, conf->ttl) < 0 ||
	    set_int(fd, IPPROTO_IP, IP_MULTICAST_LOOP, conf->loop) < 0) {
		snprintf(err, err_len, "multicast options on %s: %s", conf->interface ? conf->interface : "-",
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int sender_socket6(const struct conf_stream *conf, char *err, size_t err_len)
{
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, err_len, "socket: %s", strerror(errno));
		return -1;
	}
	set_int(fd, SOL_SOCKET, SO_SNDBUF, SENDER_SNDBUF);
	if ((conf->ifindex != 0 && set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, (int)conf->ifindex) < 0) ||
	    set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, conf->ttl) < 0 ||
	    set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, conf->loop) < 0) {
		snprintf(err, err_len, "multicast options on %s: %s", conf->interface ? conf->interface : "-",
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void sender_on_writable(evutil_socket_t fd, short what, void *arg)
{
	sender_flush(arg);
	(void)fd;
	(void)what;
}

static void sender_free(struct sender *sender)
{
	for (size_t i = 0; sender->queue != NULL && i < sender->cap; i++)
		free(sender->queue[i].data);
	if (sender->writable4 != NULL)
		event_free(sender->writable4);
	if (sender->writable6 != NULL)
		event_free(sender->writable6);
	if (sender->linger != NULL)
		event_free(sender->linger);
	if (sender->retry != NULL)
		event_free(sender->retry);
	if (sender->fd4 >= 0)
		close(sender->fd4);
	if (sender->fd6 >= 0)
		close(sender->fd6);
	free(sender->queue);
	free(sender->to);
	free(sender->to_len);
	free(sender->unit);
	free(sender);
}

static void sender_connect_single(struct sender *sender, int family, int fd, bool *connected);

static int sender_sockets(struct sender *sender, struct event_base *base, const struct conf_stream *conf, char *err,
			  size_t err_len)
{
	for (size_t i = 0; i < sender->n_to; i++) {
		if (sender->to[i].ss_family == AF_INET && sender->fd4 < 0) {
			sender->fd4 = sender_socket4(conf, err, err_len);
			if (sender->fd4 < 0)
				return -1;
			sender->writable4 = event_new(base, sender->fd4, EV_WRITE, sender_on_writable, sender);
		} else if (sender->to[i].ss_family == AF_INET6 && sender->fd6 < 0) {
			sender->fd6 = sender_socket6(conf, err, err_len);
			if (sender->fd6 < 0)
				return -1;
			sender->writable6 = event_new(base, sender->fd6, EV_WRITE, sender_on_writable, sender);
		}
	}
	sender_connect_single(sender, AF_INET, sender->fd4, &sender->connected4);
	sender_connect_single(sender, AF_INET6, sender->fd6, &sender->connected6);
	return 0;
}

static void sender_connect_single(struct sender *sender, int family, int fd, bool *connected)
{
	size_t n = 0, which = 0;

	for (size_t i = 0; i < sender->n_to; i++)
		if (sender->to[i].ss_family == family) {
			n++;
			which = i;
		}
	/* Not connected is as good, only slower: a failure changes nothing. */
	*connected = n == 1 && connect(fd, (struct sockaddr *)&sender->to[which], sender->to_len[which]) == 0;
}

struct sender *sender_open(struct event_base *base, const struct conf_stream *conf, const char *unit, char *err,
			   size_t err_len)
{
	struct sender *sender = calloc(1, sizeof(*sender));

	snprintf(err, err_len, "out of memory");
	if (sender == NULL)
		return NULL;
	sender->fd4 = sender->fd6 = -1;
	sender->base = base;
	sender->retry = evtimer_new(base, sender_on_writable, sender);
	sender->n_to = conf->n_destinations;
	sender->cap = conf->queue;
	sender->to = calloc(sender->n_to, sizeof(*sender->to));
	sender->to_len = calloc(sender->n_to, sizeof(*sender->to_len));
	sender->queue = calloc(sender->cap, sizeof(*sender->queue));
	sender->unit = strdup(unit);
	if (sender->to == NULL || sender->to_len == NULL || sender->queue == NULL || sender->unit == NULL ||
	    sender->retry == NULL) {
		sender_free(sender);
		return NULL;
	}
	for (size_t i = 0; i < sender->n_to; i++) {
		sender->to[i] = conf->destinations[i].sa;
		sender->to_len[i] = conf->destinations[i].len;
	}
	if (sender_sockets(sender, base, conf, err, err_len) < 0) {
		sender_free(sender);
		return NULL;
	}
	return sender;
}

static bool sender_enqueue(struct sender *sender, const void *data, size_t len, unsigned destination)
{
	struct queued *q;

	if (sender->count == sender->cap)
		return false;
	q = &sender->queue[(sender->head + sender->count) % sender->cap];
	if (q->cap < len) {
		unsigned char *grown = realloc(q->data, len);
		if (grown == NULL)
			return false;
		q->data = grown;
		q->cap = len;
	}
	memcpy(q->data, data, len);
	q->len = len;
	q->destination = destination;
	sender->count++;
	return true;
}

void sender_add(struct sender *sender, const void *data, size_t len)
{
	for (unsigned i = 0; i < sender->n_to; i++)
		if (!sender_enqueue(sender, data, len, i))
			sender->counters.dropped_queue_full++;
}

static int sender_fd_for(const struct sender *sender, const struct queued *q)
{
	return sender->to[q->destination].ss_family == AF_INET ? sender->fd4 : sender->fd6;
}

/* The next run of queued datagrams for one socket, as mmsghdrs. */
static unsigned sender_batch(struct sender *sender, struct mmsghdr *msgs, struct iovec *iov, int *fd)
{
	unsigned n = 0;

	*fd = sender_fd_for(sender, &sender->queue[sender->head]);
	while (n < SENDER_BATCH && n < sender->count) {
		struct queued *q = &sender->queue[(sender->head + n) % sender->cap];

		if (sender_fd_for(sender, q) != *fd)
			break;
		bool connected = *fd == sender->fd4 ? sender->connected4 : sender->connected6;

		iov[n] = (struct iovec){ q->data, q->len };
		msgs[n] = (struct mmsghdr){ .msg_hdr = {
			.msg_name = connected ? NULL : &sender->to[q->destination],
			.msg_namelen = connected ? 0 : sender->to_len[q->destination],
			.msg_iov = &iov[n],
			.msg_iovlen = 1,
		} };
		n++;
	}
	return n;
}

static void sender_pop(struct sender *sender, unsigned n, bool sent)
{
	for (unsigned i = 0; i < n; i++) {
		struct queued *q = &sender->queue[sender->head];

		if (sent) {
			sender->counters.datagrams++;
			sender->counters.bytes += q->len;
		}
		sender->head = (sender->head + 1) % sender->cap;
		sender->count--;
	}
}

static void sender_wait_writable(struct sender *sender, int fd, int error)
{
	struct timeval later = { 0, SENDER_NOBUFS_RETRY_US };

	sender->counters.blocked++;
	sender->blocked = true;
	if (error == ENOBUFS)
		evtimer_add(sender->retry, &later);
	else
		event_add(fd == sender->fd4 ? sender->writable4 : sender->writable6, NULL);
	if (!sender->warned) {
		sender->warned = true;
		sender_log(sender, LOG_DEBUG, "socket full (%s): %zu datagram%s waiting", strerror(error), sender->count,
			   sender->count == 1 ? "" : "s");
	}
}

void sender_flush(struct sender *sender)
{
	struct mmsghdr msgs[SENDER_BATCH];
	struct iovec iov[SENDER_BATCH];
	unsigned refusals = 0;

	while (sender->count > 0) {
		int fd;
		unsigned n = sender_batch(sender, msgs, iov, &fd);
		int sent = sendmmsg(fd, msgs, n, MSG_DONTWAIT);

		if (sent > 0) {
			sender_pop(sender, (unsigned)sent, true);
			continue;
		}
		/* A connected socket reports an earlier datagram's ICMP port
		 * unreachable on this send, which did not go: the error is
		 * consumed, so send it again (a bounded number of times). */
		if (errno == EINTR || (errno == ECONNREFUSED && refusals++ < SENDER_BATCH))
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			sender_wait_writable(sender, fd, errno);
			return;
		}
		/* This one datagram cannot go (too big, no route): drop it
		 * and go on with the rest. */
		if (sender->counters.dropped_error++ == 0)
			sender_log(sender, LOG_WARNING, "datagram not sent: %s", strerror(errno));
		sender_pop(sender, 1, false);
	}
	sender->warned = false;
	sender->blocked = false;
	if (sender->linger != NULL)
		sender_close(sender, NULL, 0);
}

bool sender_can_take(const struct sender *sender)
{
	return !sender->blocked && sender->cap - sender->count >= sender->n_to;
}

size_t sender_queued(const struct sender *sender)
{
	return sender->count;
}

const struct sender_counters *sender_counters(const struct sender *sender)
{
	return &sender->counters;
}

static void sender_on_linger(evutil_socket_t fd, short what, void *arg)
{
	struct sender *sender = arg;

	sender->count = 0;		/* what the kernel never took is dropped */
	sender_close(sender, NULL, 0);
	(void)fd;
	(void)what;
}

void sender_close(struct sender *sender, struct chassis *chassis, unsigned linger_ms)
{
	struct timeval tv = { linger_ms / 1000, (linger_ms % 1000) * 1000 };

	if (sender == NULL)
		return;
	if (sender->linger == NULL) {
		sender_flush(sender);
		if (sender->count > 0 && linger_ms > 0 && chassis != NULL &&
		    (sender->linger = evtimer_new(sender->base, sender_on_linger, sender)) != NULL) {
			sender->chassis = chassis;
			chassis_hold(chassis);
			evtimer_add(sender->linger, &tv);
			LIST_INSERT_HEAD(&lingering, sender, lingering_link);
			return;
		}
		sender_free(sender);
		return;
	}
	if (sender->count > 0)
		return;			/* still lingering */
	LIST_REMOVE(sender, lingering_link);
	chassis_release(sender->chassis);
	sender_free(sender);
}

void sender_free_lingering(void)
{
	struct sender *sender;

	while ((sender = LIST_FIRST(&lingering)) != NULL) {
		LIST_REMOVE(sender, lingering_link);
		sender_free(sender);
	}
}
