/* A stream's RTCP socket: sender reports go out from it to each
 * destination's port + 1, and receiver reports come back to it. RFC 3550
 * receivers answer the address an SR came from (ffmpeg with
 * -sdp_flags rtcp_to_source, GStreamer's rtpbin when told the port), so
 * the socket that sends is the one that listens: one per address family,
 * not connected (a connected socket would hear only the destination), on
 * a port of the config's choosing or the kernel's. */
#ifndef CHASSISD_RTP_RTCP_LINK_H
#define CHASSISD_RTP_RTCP_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct conf_stream;
struct event_base;
struct rtcp_link;

/* One datagram that arrived (any bytes, len may be 0). */
typedef void rtcp_link_fn(void *arg, const uint8_t *data, size_t len);

struct rtcp_link_counters {
	uint64_t sent, send_errors;	/* datagrams, per destination */
	uint64_t received;
};

/* Sockets for conf's destination families, bound to local_port (0: any)
 * with the stream's multicast interface, TTL and loop. NULL with the
 * reason in err. */
struct rtcp_link *rtcp_link_open(struct event_base *base, const struct conf_stream *conf, unsigned local_port,
				 rtcp_link_fn *on_datagram, void *arg, char *err, size_t err_len);
/* To every destination's port + 1, now, without queueing: RTCP is small
 * and rare, and a report the kernel refuses is only counted. */
void rtcp_link_send(struct rtcp_link *link, const void *data, size_t len);
/* The local port of the family's socket, 0 when there is none. */
unsigned rtcp_link_port(const struct rtcp_link *link, int family);
const struct rtcp_link_counters *rtcp_link_counters(const struct rtcp_link *link);
void rtcp_link_close(struct rtcp_link *link);

#endif
