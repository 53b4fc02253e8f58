/* The rtp receiver's state machine (jitter.c) on arbitrary datagram
 * sequences, not just single packets: the input is a few limit bytes, then
 * records of [kind][time step][length][bytes]. A kind bit repairs the
 * version to 2, so that most records get past the first check and into
 * probation, sequence tracking, the reorder buffer, sender changes and
 * SRs. Whatever comes in: no crash, no read outside a datagram, what is
 * played is never more than what was taken, and the buffer's deadline is
 * never in the past after an expiry. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/rtp/jitter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KIND_RTCP 0x01
#define KIND_REPAIR 0x02
#define KIND_EXPIRE 0x04
#define KIND_FLUSH 0x08
#define RECORD_HEADER 4

static uint64_t played_bytes, played_packets;

static void on_play(void *arg, const uint8_t *payload, size_t len)
{
	volatile uint8_t sink = 0;

	/* Touch every byte: the sanitizer sees a payload out of bounds. */
	for (size_t i = 0; i < len; i++)
		sink ^= payload[i];
	played_bytes += len;
	played_packets++;
	(void)arg;
	(void)sink;
}

static void check_senders(const struct rtp_jitter *jb)
{
	struct rtp_sender_stats s;
	uint64_t played = 0;
	unsigned playing = 0;

	for (size_t i = 0; rtp_jitter_sender(jb, i, &s); i++) {
		played += s.played;
		playing += s.playing;
		if (s.playing && !s.valid)
			abort();
	}
	/* Forgotten senders took their counts with them. */
	if (played > played_packets || playing > 1)
		abort();
}

static void feed(struct rtp_jitter *jb, const uint8_t *data, size_t size)
{
	struct sockaddr_in from = { .sin_family = AF_INET, .sin_port = htons(5000) };
	uint64_t now = 1000000000ull;
	uint8_t copy[2048];

	while (size >= RECORD_HEADER) {
		uint8_t kind = data[0];
		size_t len = ((size_t)data[2] << 8 | data[3]) % sizeof(copy);

		now += (uint64_t)data[1] * 1000000ull;
		data += RECORD_HEADER;
		size -= RECORD_HEADER;
		len = len < size ? len : size;
		memcpy(copy, data, len);	/* exactly len bytes readable in the original */
		if ((kind & KIND_REPAIR) && len > 0)
			copy[0] = (uint8_t)(0x80 | (copy[0] & 0x3f));
		from.sin_port = htons((uint16_t)(5000 + (kind >> 4)));
		if (kind & KIND_RTCP)
			rtp_jitter_rtcp(jb, copy, len, (struct sockaddr *)&from, sizeof(from), now);
		else
			rtp_jitter_input(jb, copy, len, (struct sockaddr *)&from, sizeof(from), now);
		if (kind & KIND_EXPIRE) {
			rtp_jitter_expire(jb, now);
			if (rtp_jitter_due(jb) != 0 && rtp_jitter_due(jb) <= now)
				abort();
		}
		if (kind & KIND_FLUSH)
			rtp_jitter_flush(jb);
		check_senders(jb);
		data += len;
		size -= len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rtp_jitter_limits limits;
	struct rtcp_report blocks[8];
	struct sockaddr_storage to[8];
	socklen_t to_len[8];
	struct rtp_jitter *jb;

	if (size < 4)
		return 0;
	limits = (struct rtp_jitter_limits){
		.packets = 1u + data[0] % 32,
		.hold_ns = (uint64_t)data[1] * 1000000ull,
		.senders = 1u + data[2] % 8,
		.switch_ns = (uint64_t)data[3] * 10000000ull,
	};
	played_bytes = played_packets = 0;
	jb = rtp_jitter_new(&limits, on_play, NULL);
	if (jb == NULL)
		return 0;
	feed(jb, data + 4, size - 4);
	if (rtp_jitter_reports(jb, UINT64_MAX / 2, blocks, to, to_len, 8) > 8)
		abort();
	rtp_jitter_flush(jb);
	if (rtp_jitter_due(jb) != 0)
		abort();
	rtp_jitter_free(jb);
	return 0;
}
