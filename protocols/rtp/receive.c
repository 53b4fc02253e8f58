/* rtp as a listener: each datagram goes through the receiver's state
 * (jitter.c); what leaves its reorder buffer in order is appended to the
 * record file and handed to the unit's taps (an HTTP gateway). RTCP: the
 * listener's port + 1 is bound too, for the senders' SRs (their LSR and
 * where their RTCP goes), and an RR with SDES CNAME goes to each sender
 * heard, about every 5 s, randomised (RFC 3550 6.2, 6.3).
 *
 * Kamaelia's RTPDeframer raised on any CSRC or extension, and its reorder
 * buffer was a FIFO. */
#include "protocols/rtp/receive.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/log.h"
#include "daemon/pacer.h"
#include "protocols/rtp/jitter.h"
#include "protocols/rtp/packet.h"

#define RTCP_INTERVAL_MS 5000
#define RTCP_MAX 1500
/* RTCP datagrams read per wakeup: a flood must not starve the loop. */
#define RTCP_READS_PER_WAKEUP 64
#define RECORD_MODE 0640
#define NS_PER_MS 1000000ull

struct rtp_receiver {
	LIST_ENTRY(rtp_receiver) link;
	struct event_base *base;
	struct chassis *chassis;
	char *unit;
	char *cname;
	uint32_t ssrc;			/* ours, in the RRs */
	struct rtp_jitter *jitter;
	struct event *expire;		/* held packets behind a gap are due */
	bool playing_known;
	uint32_t playing;		/* the SSRC last logged as played */
	/* RTCP */
	int rtcp_fd;
	int rtcp_family;		/* AF_INET6 for "*": IPv4 peers are mapped */
	struct event *rtcp_readable, *rtcp_timer;
	uint64_t rtcp_in, rtcp_out, rtcp_send_errors;
	/* record */
	int record_fd;
	char *record_path;
	uint64_t recorded, record_errors;
	bool record_error_logged;
};

/* Every running receiver: how a state of the rtp module is told from a
 * stream's without a field in the stream. */
static LIST_HEAD(, rtp_receiver) receivers = LIST_HEAD_INITIALIZER(receivers);

const char *const rtp_receive_option_names[] = {
	"jitter-buffer", "reorder-packets", "senders", "sender-switch", "record", NULL,
};

static struct log_context receiver_context(const struct rtp_receiver *rx)
{
	return (struct log_context){ .listener = rx->unit, .protocol = "rtp" };
}

/* ---- configuration ---- */

void rtp_receive_configure(cfg_t *sec, struct conf_scope *scope, struct rtp_receive_settings *out)
{
	long v;

	memset(out, 0, sizeof(*out));
	out->jitter_ms = 50;
	out->reorder_packets = 64;
	out->senders = 8;
	out->switch_ms = 1000;
	if (sec == NULL)
		return;
	if (conf_scope_int(scope, sec, "jitter-buffer", 1, 10000, &v))
		out->jitter_ms = (unsigned)v;
	if (conf_scope_int(scope, sec, "reorder-packets", 1, RTP_JITTER_MAX_PACKETS, &v))
		out->reorder_packets = (unsigned)v;
	if (conf_scope_int(scope, sec, "senders", 1, RTP_JITTER_MAX_SENDERS, &v))
		out->senders = (unsigned)v;
	if (conf_scope_int(scope, sec, "sender-switch", 0, 3600000, &v))
		out->switch_ms = (unsigned)v;
	if (cfg_getstr(sec, "record") != NULL) {
		if (cfg_getstr(sec, "record")[0] != '/')
			conf_scope_error(scope, "record", "the record file must be an absolute path, not \"%s\"",
					 cfg_getstr(sec, "record"));
		out->record = strdup(cfg_getstr(sec, "record"));
	}
}

void rtp_receive_settings_free(struct rtp_receive_settings *settings)
{
	free(settings->record);
	settings->record = NULL;
}

bool rtp_receive_same(const struct rtp_receive_settings *a, const struct rtp_receive_settings *b)
{
	return a->jitter_ms == b->jitter_ms && a->reorder_packets == b->reorder_packets && a->senders == b->senders &&
	       a->switch_ms == b->switch_ms &&
	       ((a->record == NULL && b->record == NULL) || (a->record && b->record && strcmp(a->record, b->record) == 0));
}

/* ---- sinks ---- */

/* A regular file takes the whole write, or says why not. */
static void record_write(struct rtp_receiver *rx, const uint8_t *payload, size_t len)
{
	while (len > 0) {
		ssize_t n = write(rx->record_fd, payload, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			struct log_context ctx = receiver_context(rx);
			rx->record_errors++;
			if (!rx->record_error_logged)
				log_write(LOG_ERR, &ctx, "cannot write to %s: %s (further errors only counted)",
					  rx->record_path, n < 0 ? strerror(errno) : "nothing written");
			rx->record_error_logged = true;
			return;
		}
		rx->recorded += (uint64_t)n;
		payload += n;
		len -= (size_t)n;
	}
}

static void on_play(void *arg, const uint8_t *payload, size_t len)
{
	struct rtp_receiver *rx = arg;

	if (rx->record_fd >= 0)
		record_write(rx, payload, len);
	chassis_tap_payload(rx->chassis, rx->unit, payload, len);
}

/* ---- the reorder buffer's timer ---- */

static void arm_expire(struct rtp_receiver *rx)
{
	uint64_t due = rtp_jitter_due(rx->jitter), now = pacer_now_ns();
	uint64_t wait = due > now ? due - now : 0;
	struct timeval tv = { (time_t)(wait / 1000000000u), (suseconds_t)(wait % 1000000000u / 1000) };

	if (due == 0) {
		evtimer_del(rx->expire);
		return;
	}
	evtimer_add(rx->expire, &tv);
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
	struct rtp_receiver *rx = arg;

	rtp_jitter_expire(rx->jitter, pacer_now_ns());
	arm_expire(rx);
	(void)fd;
	(void)what;
}

/* A new sender played (the first, or one after another went quiet):
 * logged once per change, not per packet. */
static void log_switch(struct rtp_receiver *rx)
{
	struct log_context ctx = receiver_context(rx);
	uint32_t ssrc;

	if (!rtp_jitter_playing(rx->jitter, &ssrc) || (rx->playing_known && ssrc == rx->playing))
		return;
	if (rx->playing_known)
		log_write(LOG_INFO, &ctx, "rtp sender changed: SSRC %08" PRIx32 " now, was %08" PRIx32, ssrc,
			  rx->playing);
	else
		log_write(LOG_INFO, &ctx, "rtp sender SSRC %08" PRIx32 " playing", ssrc);
	rx->playing = ssrc;
	rx->playing_known = true;
}

static socklen_t sockaddr_length(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

void rtp_receive_datagram(struct datagram *dgram)
{
	struct rtp_receiver *rx = datagram_service_state(dgram);
	const struct sockaddr *from = datagram_source(dgram);
	size_t len;
	const uint8_t *pkt = datagram_payload(dgram, &len);

	rtp_jitter_input(rx->jitter, pkt, len, from, sockaddr_length(from), pacer_now_ns());
	log_switch(rx);
	arm_expire(rx);
}

/* ---- RTCP ---- */

static void on_rtcp_readable(evutil_socket_t fd, short what, void *arg)
{
	struct rtp_receiver *rx = arg;
	uint8_t buf[RTCP_MAX];

	for (int i = 0; i < RTCP_READS_PER_WAKEUP; i++) {
		struct sockaddr_storage from;
		socklen_t from_len = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &from_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		rx->rtcp_in++;
		addr_unmap(&from, &from_len);
		rtp_jitter_rtcp(rx->jitter, buf, (size_t)n, (struct sockaddr *)&from, from_len, pacer_now_ns());
	}
	(void)what;
}

/* A sender's address is only what its packets say: never report to what
 * could reflect or fan out (port 0, echo, chargen, a group, broadcast). */
static bool may_report_to(const struct sockaddr *sa)
{
	unsigned port = addr_port(sa);

	if (port == 0 || port == 7 || port == 19 || addr_is_multicast(sa))
		return false;
	if (sa->sa_family == AF_INET) {
		in_addr_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return a != INADDR_ANY && a != INADDR_BROADCAST;
	}
	return !IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* A dual-stack socket sends to IPv4 peers through mapped addresses. */
static void map_for(const struct rtp_receiver *rx, struct sockaddr_storage *to, socklen_t *to_len)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)to;

	if (rx->rtcp_family != AF_INET6 || to->ss_family != AF_INET)
		return;
	memcpy(&sin, to, sizeof(sin));
	memset(to, 0, sizeof(*to));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = sin.sin_port;
	sin6->sin6_addr.s6_addr[10] = sin6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&sin6->sin6_addr.s6_addr[12], &sin.sin_addr, 4);
	*to_len = sizeof(*sin6);
}

static void send_reports(struct rtp_receiver *rx)
{
	struct rtcp_report blocks[RTP_JITTER_MAX_SENDERS];
	struct sockaddr_storage to[RTP_JITTER_MAX_SENDERS];
	socklen_t to_len[RTP_JITTER_MAX_SENDERS];
	size_t n = rtp_jitter_reports(rx->jitter, pacer_now_ns(), blocks, to, to_len, RTP_JITTER_MAX_SENDERS);

	/* One RR per sender, to where that sender's RTCP goes. */
	for (size_t i = 0; i < n; i++) {
		uint8_t out[RTCP_MAX];
		size_t len = rtcp_write_rr(out, sizeof(out), rx->ssrc, &blocks[i], 1, rx->cname);

		if (len == 0 || !may_report_to((struct sockaddr *)&to[i]))
			continue;
		map_for(rx, &to[i], &to_len[i]);
		if (sendto(rx->rtcp_fd, out, len, MSG_DONTWAIT, (struct sockaddr *)&to[i], to_len[i]) < 0)
			rx->rtcp_send_errors++;
		else
			rx->rtcp_out++;
	}
}

static uint32_t random32(void)
{
	uint32_t value = 0;

	if (getrandom(&value, sizeof(value), 0) != sizeof(value))
		value = (uint32_t)pacer_now_ns() ^ (uint32_t)getpid() << 16;
	return value;
}

/* RFC 3550 6.2: 0.5 to 1.5 times the interval, so receivers started
 * together do not report together. */
static void rtcp_schedule(struct rtp_receiver *rx)
{
	unsigned ms = RTCP_INTERVAL_MS / 2 + random32() % RTCP_INTERVAL_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(rx->rtcp_timer, &tv);
}

static void on_rtcp_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rtp_receiver *rx = arg;

	send_reports(rx);
	rtcp_schedule(rx);
	(void)fd;
	(void)what;
}

static int rtcp_open(struct rtp_receiver *rx, const struct unit_env *env, char *err, size_t err_len)
{
	unsigned port = addr_port((const struct sockaddr *)&env->listener->endpoint.sa) + 1;

	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);

	rx->rtcp_fd = chassis_datagram_socket(env, port, err, err_len);
	if (rx->rtcp_fd < 0)
		return -1;
	if (getsockname(rx->rtcp_fd, (struct sockaddr *)&local, &local_len) == 0)
		rx->rtcp_family = local.ss_family;
	rx->rtcp_readable = event_new(rx->base, rx->rtcp_fd, EV_READ | EV_PERSIST, on_rtcp_readable, rx);
	rx->rtcp_timer = evtimer_new(rx->base, on_rtcp_timer, rx);
	if (rx->rtcp_readable == NULL || rx->rtcp_timer == NULL || event_add(rx->rtcp_readable, NULL) < 0) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	rtcp_schedule(rx);
	return 0;
}

/* ---- the module ---- */

static void receiver_free(struct rtp_receiver *rx)
{
	if (rx->jitter != NULL)
		rtp_jitter_flush(rx->jitter);
	if (rx->expire != NULL)
		event_free(rx->expire);
	if (rx->rtcp_readable != NULL)
		event_free(rx->rtcp_readable);
	if (rx->rtcp_timer != NULL)
		event_free(rx->rtcp_timer);
	if (rx->rtcp_fd >= 0)
		close(rx->rtcp_fd);
	if (rx->record_fd >= 0)
		close(rx->record_fd);
	rtp_jitter_free(rx->jitter);
	free(rx->record_path);
	free(rx->cname);
	free(rx->unit);
	free(rx);
}

static int record_open(struct rtp_receiver *rx, const char *path, char *err, size_t err_len)
{
	rx->record_path = strdup(path);
	/* O_NONBLOCK: a FIFO with no reader fails here rather than block the
	 * loop, and a full one counts write errors; a regular file ignores it. */
	rx->record_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, RECORD_MODE);
	if (rx->record_path == NULL || rx->record_fd < 0) {
		snprintf(err, err_len, "cannot open the record file %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int receiver_open(struct rtp_receiver *rx, const struct rtp_receive_settings *settings, bool rtcp,
			 const struct unit_env *env, char *err, size_t err_len)
{
	struct rtp_jitter_limits limits = {
		.packets = settings->reorder_packets,
		.hold_ns = settings->jitter_ms * NS_PER_MS,
		.senders = settings->senders,
		.switch_ns = settings->switch_ms * NS_PER_MS,
	};

	rx->jitter = rtp_jitter_new(&limits, on_play, rx);
	rx->expire = evtimer_new(rx->base, on_expire, rx);
	if (rx->jitter == NULL || rx->expire == NULL || rx->unit == NULL || rx->cname == NULL)
		return -1;
	if (settings->record != NULL && record_open(rx, settings->record, err, err_len) < 0)
		return -1;
	if (rtcp && rtcp_open(rx, env, err, err_len) < 0)
		return -1;
	return 0;
}

void *rtp_receive_start(const struct rtp_receive_settings *settings, bool rtcp, const char *cname,
			const struct unit_env *env)
{
	struct rtp_receiver *rx = calloc(1, sizeof(*rx));
	struct log_context ctx = { .listener = env->unit, .protocol = "rtp" };
	char err[512] = "out of memory";

	if (rx == NULL)
		return NULL;
	rx->base = env->base;
	rx->chassis = env->chassis;
	rx->rtcp_fd = -1;
	rx->record_fd = -1;
	rx->ssrc = random32();
	rx->unit = strdup(env->unit);
	rx->cname = strdup(cname);
	if (receiver_open(rx, settings, rtcp, env, err, sizeof(err)) < 0) {
		log_write(LOG_ERR, &ctx, "listener %s: %s", env->unit, err);
		receiver_free(rx);
		return NULL;
	}
	LIST_INSERT_HEAD(&receivers, rx, link);
	return rx;
}

bool rtp_is_receiver(const void *state)
{
	const struct rtp_receiver *rx;

	LIST_FOREACH(rx, &receivers, link)
		if (rx == state)
			return true;
	return false;
}

void rtp_receive_stop(void *state)
{
	struct rtp_receiver *rx = state;

	LIST_REMOVE(rx, link);
	receiver_free(rx);
}

/* ---- status ---- */

void rtp_receive_status(const void *state, char *buf, size_t len)
{
	const struct rtp_receiver *rx = state;
	const struct rtp_input_counters *c = rtp_jitter_counters(rx->jitter);

	snprintf(buf, len,
		 "rtp_packets=%" PRIu64 " malformed=%" PRIu64 " malformed_short=%" PRIu64 " malformed_version=%" PRIu64
		 " malformed_padding=%" PRIu64 " probation=%" PRIu64 " not_played=%" PRIu64 " sender_switches=%" PRIu64
		 " recorded_bytes=%" PRIu64 " record_errors=%" PRIu64 " rtcp_in=%" PRIu64 " rtcp_out=%" PRIu64
		 " rtcp_send_errors=%" PRIu64 " receiver_ssrc=%" PRIu32,
		 c->packets, c->malformed, c->short_packets, c->bad_version, c->bad_padding, c->probation, c->not_played,
		 c->switches, rx->recorded, rx->record_errors, rx->rtcp_in, rx->rtcp_out, rx->rtcp_send_errors, rx->ssrc);
}

/* A row per sender: "sender SSRC received=... lost=...". Counters are
 * unsigned: a negative loss (duplicates, RFC 3550 6.4.1) shows as 0. */
void rtp_receive_status_rows(const void *state, char *buf, size_t len)
{
	const struct rtp_receiver *rx = state;
	struct rtp_sender_stats s;
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; used < len && rtp_jitter_sender(rx->jitter, i, &s); i++) {
		int n = snprintf(buf + used, len - used,
				 "sender %08" PRIx32 " playing=%d valid=%d received=%" PRIu64 " lost=%" PRIu64
				 " late=%" PRIu64 " duplicates=%" PRIu64 " reordered=%" PRIu64 " skipped=%" PRIu64
				 " played=%" PRIu64 " restarts=%" PRIu64 " malformed=%" PRIu64 " jitter_us=%" PRIu64 "\n",
				 s.ssrc, s.playing, s.valid, s.received, s.lost > 0 ? (uint64_t)s.lost : 0, s.late,
				 s.duplicates, s.reordered, s.skipped, s.played, s.restarts, s.malformed,
				 (uint64_t)(s.jitter_ms * 1000.0));
		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = '\0';	/* no half row */
			return;
		}
		used += (size_t)n;
	}
}
