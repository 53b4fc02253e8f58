/* An RTP receiver's state, without sockets or timers: the senders it
 * hears by SSRC with their RFC 3550 statistics (A.1 sequence validation
 * with probation, A.3 loss, A.8 interarrival jitter, the last SR for
 * LSR/DLSR), and a reorder buffer for the one sender being played out,
 * bounded in packets and in time. What leaves the buffer in sequence
 * order, duplicates and late packets left out, goes to play(). The
 * caller gives the time, so a test or a fuzzer can drive it. */
#ifndef CHASSISD_RTP_JITTER_H
#define CHASSISD_RTP_JITTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "protocols/rtp/packet.h"

struct rtp_jitter_limits {
	unsigned packets;		/* reorder window, 1..RTP_JITTER_MAX_PACKETS */
	uint64_t hold_ns;		/* how long a packet waits behind a gap */
	unsigned senders;		/* SSRCs kept, the least recently heard forgotten */
	uint64_t switch_ns;		/* silence after which another sender is played */
};
#define RTP_JITTER_MAX_PACKETS 4096
#define RTP_JITTER_MAX_SENDERS 256

/* One sender, for status pages and RTCP. */
struct rtp_sender_stats {
	uint32_t ssrc;
	bool valid;			/* out of probation (RFC 3550 A.1) */
	bool playing;			/* the one whose payload is played out */
	uint64_t received;		/* valid, duplicates left out where seen */
	int64_t lost;			/* expected - received (A.3); < 0 with duplicates */
	uint64_t late;			/* came after its place was played or skipped */
	uint64_t duplicates;
	uint64_t reordered;		/* came after a later one, still in time */
	uint64_t skipped;		/* sequence numbers the play-out went past */
	uint64_t played;
	uint64_t restarts;		/* sequence jumps taken as a new start (A.1) */
	uint64_t malformed;		/* its SSRC readable, the rest not */
	double jitter_ms;
};

struct rtp_input_counters {
	uint64_t packets;
	uint64_t malformed, short_packets, bad_version, bad_padding;
	uint64_t probation;		/* dropped while their sender was on probation (A.1) */
	uint64_t not_played;		/* valid, of a sender not being played */
	uint64_t switches;		/* times another sender was played */
};

typedef void rtp_play_fn(void *arg, const uint8_t *payload, size_t len);

struct rtp_jitter;

/* NULL when out of memory; limits are clamped to their ranges. */
struct rtp_jitter *rtp_jitter_new(const struct rtp_jitter_limits *limits, rtp_play_fn *play, void *arg);
void rtp_jitter_free(struct rtp_jitter *jb);

/* One datagram from `from` (may be NULL) at monotonic now_ns: any bytes. */
void rtp_jitter_input(struct rtp_jitter *jb, const uint8_t *pkt, size_t len, const struct sockaddr *from,
		      socklen_t from_len, uint64_t now_ns);
/* An RTCP compound from `from` at the RTCP port: an SR's time is kept for
 * the LSR and DLSR of that sender's reports, and where RTCP for it goes. */
void rtp_jitter_rtcp(struct rtp_jitter *jb, const uint8_t *pkt, size_t len, const struct sockaddr *from,
		     socklen_t from_len, uint64_t now_ns);
/* When held packets must go even with a gap before them (0: none held);
 * rtp_jitter_expire() then skips the gap and plays on. */
uint64_t rtp_jitter_due(const struct rtp_jitter *jb);
void rtp_jitter_expire(struct rtp_jitter *jb, uint64_t now_ns);
/* Plays out everything held, skipping gaps (the listener stops). */
void rtp_jitter_flush(struct rtp_jitter *jb);

/* The SSRC of the sender being played, and whether there is one. */
bool rtp_jitter_playing(const struct rtp_jitter *jb, uint32_t *ssrc);
const struct rtp_input_counters *rtp_jitter_counters(const struct rtp_jitter *jb);
/* The i-th sender known (i from 0): false past the last. */
bool rtp_jitter_sender(const struct rtp_jitter *jb, size_t i, struct rtp_sender_stats *stats);

/* A report block (RFC 3550 6.4.1, A.3) for each valid sender heard since
 * the last call, and where its RTCP goes (the address its SRs came from,
 * else its RTP address at port + 1). Returns how many, at most cap. */
size_t rtp_jitter_reports(struct rtp_jitter *jb, uint64_t now_ns, struct rtcp_report *blocks,
			  struct sockaddr_storage *to, socklen_t *to_len, size_t cap);

#endif
